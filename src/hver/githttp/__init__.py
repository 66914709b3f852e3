"""git over HTTP: the smart protocol's services on a hub repository, with no HTTP in them.

`service` runs dulwich's server handlers on a repository the caller has already opened
(and authorised); the HTTP layer (`hver.api.git`) parses requests, decides who may do
what through `hver.core.access`, and streams what the services write.
"""
