"""Gated repos: metadata stays public, file content needs an accepted access request.

A gated repo (`Repo.gated` "auto" or "manual") lets anyone who may read it see its
info, tree, refs and commits, and read its card (`README.md`), which shows the gate.
Every other file's content (`.gitattributes` too, as on the Hub) is for the repo's
namespace (the owner, org members, site admins) and for users whose access request was
accepted: at once under "auto", by a repo admin under "manual". Rows of `access_requests`
outlive gating being switched off and apply again when it is switched back on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hver.core import access, audit
from hver.core import repos as core_repos
from hver.core.accounts import READ_PERMISSION, Actor, get_account
from hver.core.hub import Hub
from hver.db.models import AccessRequest, Account, Repo, utcnow
from hver.errors import BadRequest, GatedRepo, NotFound, Unauthorized
from hver.names import RepoType

STATUSES = ("pending", "accepted", "rejected")
# Readable without access, as on the Hub: the card that shows the gate.
OPEN_FILES = frozenset({"README.md"})
MAX_FIELD_LENGTH = 2000
MAX_REASON_LENGTH = 200
_TRUE = {"true", "on", "yes", "1", "checked"}


@dataclass(frozen=True)
class RequestView:
    """One access request, as a repo admin sees it."""

    request_id: str
    username: str
    fullname: str | None
    email: str | None  # None when access was granted rather than asked for
    status: str
    timestamp: datetime
    fields: dict[str, Any] | None


def request_id(repo_pk: int, user_pk: int) -> str:
    """An opaque, stable id for the request of one user on one repo (24 hex digits)."""
    return f"{repo_pk:012x}{user_pk:012x}"


def _parse_request_id(repo: Repo, rid: str) -> int:
    """The user id a request id names; NotFound when it names another repo or nothing."""
    try:
        if len(rid) != 24:
            raise ValueError(rid)
        repo_pk, user_pk = int(rid[:12], 16), int(rid[12:], 16)
    except ValueError:
        raise NotFound(f"No access request {rid!r}.") from None
    if repo_pk != repo.id:
        raise NotFound(f"No access request {rid!r}.")
    return user_pk


def _kind(repo: Repo) -> str:
    return RepoType(repo.type).value


def _has_namespace_access(actor: Actor | None, repo: Repo) -> bool:
    """A member of the repo's namespace (or a site admin) with a token that reaches it."""
    return access.namespace_role(actor, repo.namespace) is not None and _in_scope(actor, repo)


def _in_scope(actor: Actor | None, repo: Repo) -> bool:
    """Whether the actor's token reaches the repo's files: a fine-grained token outside
    its scopes has no access to gated content, whatever its user may do."""
    return actor is not None and access.token_allows(
        actor, repo.type, repo.namespace, repo.name, READ_PERMISSION)


def _status(session: Session, actor: Actor, repo: Repo) -> str | None:
    row = session.get(AccessRequest, (repo.id, actor.id))
    return row.status if row is not None else None


def has_access(session: Session, actor: Actor | None, repo: Repo) -> bool:
    """May the actor read the content of every file of `repo` (which they may read)?"""
    if not repo.gated or _has_namespace_access(actor, repo):
        return True
    return (actor is not None and _in_scope(actor, repo)
            and _status(session, actor, repo) == "accepted")


def require_file_access(hub: Hub, actor: Actor | None, repo: Repo, page_url: str,
                        path: str | None = None) -> None:
    """GatedRepo unless the actor may read file content of `repo` (at `path`, if given).

    `page_url` is the repo's page, where the message sends users to ask for access.
    """
    if not repo.gated or path in OPEN_FILES or _has_namespace_access(actor, repo):
        return
    kind = _kind(repo)
    if actor is None:
        raise GatedRepo(
            f"Access to {kind} {repo.repo_id} is restricted. You must have access to it and "
            "be authenticated to access it. Please log in.", status=401)
    with hub.db.read() as session:
        status = _status(session, actor, repo)
    if status == "accepted" and _in_scope(actor, repo):
        return
    if status == "pending":
        raise GatedRepo(f"Your request to access {kind} {repo.repo_id} is awaiting a review "
                        "from the repo authors.")
    if status == "rejected":
        raise GatedRepo(f"Your request to access {kind} {repo.repo_id} has been rejected by "
                        "the repo's authors.")
    raise GatedRepo(f"Access to {kind} {repo.repo_id} is restricted and you are not in the "
                    f"authorized list. Visit {page_url} to ask for access.")


# -- the gate's form ----------------------------------------------------------------------------


def _options(spec: dict[str, Any]) -> list[str]:
    out = []
    for opt in spec.get("options") or []:
        if isinstance(opt, dict):
            out.append(str(opt.get("value", opt.get("label", ""))))
        else:
            out.append(str(opt))
    return out


def form_fields(repo: Repo) -> dict[str, Any]:
    """The card's `extra_gated_fields`: label -> type ("text", "checkbox", ...) or spec."""
    fields = (repo.card_data or {}).get("extra_gated_fields")
    return {str(k): v for k, v in fields.items()} if isinstance(fields, dict) else {}


def check_fields(repo: Repo, submitted: dict[str, Any]) -> dict[str, Any]:
    """The answers to the card's form, every one required; BadRequest on a missing one.

    Answers to questions the form does not ask are dropped.
    """
    out: dict[str, Any] = {}
    for label, spec in form_fields(repo).items():
        kind = spec.get("type") if isinstance(spec, dict) else spec
        value = submitted.get(label)
        if isinstance(value, str):
            value = value.strip()
        if value is None or value == "" or value == []:
            raise BadRequest(f"Missing required field {label!r}.")
        if kind == "checkbox":
            if value is not True and str(value).lower() not in _TRUE:
                raise BadRequest(f"Field {label!r} must be checked.")
            out[label] = True
            continue
        if isinstance(value, (dict, list)):
            raise BadRequest(f"Field {label!r} must be a single value.")
        text = str(value)
        if len(text) > MAX_FIELD_LENGTH:
            raise BadRequest(f"Field {label!r} is longer than {MAX_FIELD_LENGTH} characters.")
        if kind == "select" and isinstance(spec, dict):
            options = _options(spec)
            if options and text not in options:
                raise BadRequest(f"Field {label!r} must be one of: {', '.join(options)}.")
        out[label] = text
    return out


# -- users ---------------------------------------------------------------------------------------


def _write_repo(session: Session, actor: Actor | None, repo_type: RepoType, namespace: str,
                name: str) -> Repo:
    repo = core_repos.get_repo(session, actor, repo_type, namespace, name)
    if not repo.gated:
        raise BadRequest(f"The {_kind(repo)} {repo.repo_id} is not gated.")
    return repo


def _target(repo: Repo) -> str:
    return f"{_kind(repo)}:{repo.repo_id}"


def ask_access(hub: Hub, actor: Actor | None, repo_type: RepoType, namespace: str, name: str,
               submitted: dict[str, Any]) -> str:
    """Ask for the files of a gated repo; the request's status ("accepted" or "pending").

    Under "auto" a request is accepted at once. Asking again while pending updates the
    answers; an accepted request stays accepted and a rejected one stays rejected.
    """
    if actor is None:
        raise Unauthorized("You must be authenticated to ask for access.")
    for attempt in (1, 2):  # two first requests at once: the loser finds the winner's row
        try:
            return _ask(hub, actor, repo_type, namespace, name, submitted)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _ask(hub: Hub, actor: Actor, repo_type: RepoType, namespace: str, name: str,
         submitted: dict[str, Any]) -> str:
    with hub.db.write() as session:
        repo = _write_repo(session, actor, repo_type, namespace, name)
        if _has_namespace_access(actor, repo):
            return "accepted"
        row = session.get(AccessRequest, (repo.id, actor.id))
        if row is not None and row.status in ("accepted", "rejected"):
            return row.status
        fields = check_fields(repo, submitted)
        status = "accepted" if repo.gated == "auto" else "pending"
        now = utcnow()
        if row is None:
            session.add(AccessRequest(repo_id=repo.id, user_id=actor.id, status=status,
                                      fields=fields, created_at=now, updated_at=now))
        else:
            row.status, row.fields, row.updated_at = status, fields, now
        session.flush()
        audit.record(session, actor, "access-request.ask", _target(repo), user=actor.name,
                     status=status)
        return status


# -- repo admins ---------------------------------------------------------------------------------


def _admin_repo(session: Session, actor: Actor | None, repo_type: RepoType, namespace: str,
                name: str) -> Repo:
    repo = core_repos.get_repo(session, actor, repo_type, namespace, name)
    access.require_admin(actor, repo)
    if not repo.gated:
        raise BadRequest(f"The {_kind(repo)} {repo.repo_id} is not gated.")
    return repo


def list_requests(hub: Hub, actor: Actor | None, repo_type: RepoType, namespace: str,
                  name: str, status: str) -> list[RequestView]:
    """The repo's requests in one status, oldest first (repo admins)."""
    if status not in STATUSES:
        raise NotFound(f"Unknown request status {status!r}.")
    with hub.db.read() as session:
        repo = _admin_repo(session, actor, repo_type, namespace, name)
        rows = session.execute(
            select(AccessRequest, Account)
            .join(Account, Account.id == AccessRequest.user_id)
            .where(AccessRequest.repo_id == repo.id, AccessRequest.status == status)
            .order_by(AccessRequest.created_at, AccessRequest.user_id)
        ).tuples().all()
        return [
            RequestView(
                request_id=request_id(repo.id, user.id), username=user.name,
                fullname=user.fullname, email=user.email if req.fields is not None else None,
                status=req.status, timestamp=req.created_at, fields=req.fields or None,
            )
            for req, user in rows
        ]


def _user(session: Session, name: str) -> Account:
    user = get_account(session, name)
    if user is None or user.kind != "user":
        raise NotFound(f"No user named {name!r}.")
    return user


def handle_request(hub: Hub, actor: Actor | None, repo_type: RepoType, namespace: str,
                   name: str, *, user: str | None, rid: str | None, status: str,
                   reason: str | None = None) -> None:
    """Accept, reject or cancel (back to pending) a user's request (repo admins)."""
    if status not in STATUSES:
        raise BadRequest(f"Invalid status {status!r}: one of {', '.join(STATUSES)}.")
    if (user is None) == (rid is None):
        raise BadRequest("Give exactly one of 'user' and 'requestId'.")
    if reason is not None and status != "rejected":
        raise BadRequest("A rejection reason is only for rejecting a request.")
    if reason is not None and len(reason) > MAX_REASON_LENGTH:
        raise BadRequest(f"The rejection reason is longer than {MAX_REASON_LENGTH} characters.")
    with hub.db.write() as session:
        repo = _admin_repo(session, actor, repo_type, namespace, name)
        if user is not None:
            account = _user(session, user)
        else:
            assert rid is not None
            found = session.get(Account, _parse_request_id(repo, rid))
            if found is None:
                raise NotFound(f"No access request {rid!r}.")
            account = found
        row = session.get(AccessRequest, (repo.id, account.id))
        if row is None:
            raise NotFound(f"{account.name} has no access request for {repo.repo_id}.")
        if row.status == status:
            raise NotFound(f"The request of {account.name} is already {status}.")
        previous, row.status, row.updated_at = row.status, status, utcnow()
        event = {"accepted": "accept", "rejected": "reject", "pending": "cancel"}[status]
        details: dict[str, Any] = {"user": account.name, "from": previous, "to": status}
        if reason:
            details["reason"] = reason
        audit.record(session, actor, f"access-request.{event}", _target(repo), **details)


def grant_access(hub: Hub, actor: Actor | None, repo_type: RepoType, namespace: str, name: str,
                 user: str) -> None:
    """Give a user access without a request of theirs (repo admins)."""
    with hub.db.write() as session:
        repo = _admin_repo(session, actor, repo_type, namespace, name)
        account = _user(session, user)
        row = session.get(AccessRequest, (repo.id, account.id))
        now = utcnow()
        if row is not None and row.status == "accepted":
            raise BadRequest(f"{account.name} already has access to {repo.repo_id}.")
        previous = row.status if row is not None else None
        if row is None:
            session.add(AccessRequest(repo_id=repo.id, user_id=account.id, status="accepted",
                                      fields=None, created_at=now, updated_at=now))
        else:
            row.status, row.updated_at = "accepted", now
        audit.record(session, actor, "access-request.grant", _target(repo), user=account.name,
                     **{"from": previous})
