"""Domain errors. Each carries the HTTP status and the Hub's `X-Error-Code`.

Only `hver.api.errors` turns them into responses; domain code raises them and
knows nothing of HTTP beyond the status number recorded here.
"""

from __future__ import annotations


class HverError(Exception):
    status: int = 400
    code: str | None = None

    def __init__(
        self, message: str, *, status: int | None = None, code: str | None = None,
        commit: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.commit = commit  # the revision's commit, when the error happened at one
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code


class BadRequest(HverError):
    status = 400
    code = "BadRequest"


class InvalidName(BadRequest):
    code = "InvalidName"


class InvalidPath(BadRequest):
    """A file path a repo cannot hold: 422, as the Hub answers it."""

    status = 422
    code = "InvalidPath"


class Unauthorized(HverError):
    status = 401
    code = "Unauthorized"


class Forbidden(HverError):
    status = 403
    code = "Forbidden"


class NotFound(HverError):
    status = 404
    code = "NotFound"


class RepoNotFound(NotFound):
    code = "RepoNotFound"

    def __init__(self, message: str = "Repository not found") -> None:
        super().__init__(message)


class RepoMoved(HverError):
    """The id names no repo, but a repo moved from it (and the actor may read that repo):
    the request belongs at the repo's id now. The API renders it as a redirect to the
    same route at the new id; where the route names no repo, as RepoNotFound."""

    status = 307
    code = None

    def __init__(self, namespace: str, name: str) -> None:
        super().__init__(f"This repository moved to {namespace}/{name}.")
        self.namespace = namespace
        self.name = name


class RevisionNotFound(NotFound):
    code = "RevisionNotFound"


class EntryNotFound(NotFound):
    code = "EntryNotFound"


class Conflict(HverError):
    status = 409
    code = "Conflict"


class PreconditionFailed(HverError):
    """`parentCommit` no longer names the head of the branch."""

    status = 412
    code = "PreconditionFailed"


class PayloadTooLarge(HverError):
    status = 413
    code = "PayloadTooLarge"


class LfsObjectMissing(HverError):
    status = 422
    code = "LfsObjectMissing"


class GatedRepo(HverError):
    """The files of a gated repo, to someone without access: 401 anonymous, 403 logged in."""

    status = 403
    code = "GatedRepo"
