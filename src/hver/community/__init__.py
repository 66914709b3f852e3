"""Community: discussions and pull requests, one numbered thread per repo.

`threads` keeps the threads and their events (comments, status and title changes,
commits) and decides who may do what to them; `pulls` adds what a pull request is beyond
a thread: the git ref `refs/pr/{num}`, who may move it, and merging it. Like `core`, this
package knows nothing of HTTP; the API (`api/discussions.py`) and the web UI
(`web/community.py`) call the same functions.
"""
