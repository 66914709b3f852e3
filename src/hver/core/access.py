"""Who may do what to a repo. A repo the actor may not read does not exist for them."""

from __future__ import annotations

from hver.core.accounts import Actor
from hver.db.models import Repo
from hver.errors import Forbidden, RepoNotFound, Unauthorized


def namespace_role(actor: Actor | None, namespace: str) -> str | None:
    """The actor's role in a namespace: 'admin' for their own, their org role, or None."""
    if actor is None:
        return None
    if actor.is_admin or actor.name == namespace:
        return "admin"
    return actor.orgs.get(namespace)


def can_read(actor: Actor | None, repo: Repo) -> bool:
    return not repo.private or namespace_role(actor, repo.namespace) is not None


def require_read(actor: Actor | None, repo: Repo) -> None:
    if not can_read(actor, repo):
        raise RepoNotFound()


def require_namespace_write(actor: Actor | None, namespace: str) -> None:
    """May the actor create, delete or move repos in this namespace?"""
    if actor is None:
        raise Unauthorized("You must be authenticated to do this.")
    if not actor.can_write:
        raise Forbidden("This token has read access only.")
    if namespace_role(actor, namespace) not in ("write", "admin"):
        raise Forbidden(f"You don't have the rights to create or change repos under {namespace!r}.")


def require_write(actor: Actor | None, repo: Repo) -> None:
    """Write access to the content of a repo; invisible repos stay missing."""
    require_read(actor, repo)
    if actor is None:
        raise Unauthorized("You must be authenticated to write to this repo.")
    if not actor.can_write:
        raise Forbidden("This token has read access only.")
    if namespace_role(actor, repo.namespace) not in ("write", "admin"):
        raise Forbidden(f"You don't have write access to {repo.repo_id}.")


def require_admin(actor: Actor | None, repo: Repo) -> None:
    """Settings, deletion and moves: the owner, an org admin, or a site admin."""
    require_write(actor, repo)
    assert actor is not None
    if namespace_role(actor, repo.namespace) != "admin":
        raise Forbidden(f"You must be an admin of {repo.namespace!r} to change this.")


def require_site_admin(actor: Actor | None) -> None:
    if actor is None:
        raise Unauthorized("You must be authenticated to do this.")
    if not actor.is_admin:
        raise Forbidden("Only site admins may do this.")
