"""Domain logic of the hub.

Nothing here knows of HTTP: functions take plain values and the stores, return
plain values, and raise `hver.errors` exceptions that the API layer renders.
"""
