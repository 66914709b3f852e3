"""Who may do what to a repo. A repo the actor may not read does not exist for them.

Two things decide: the user's role in the repo's namespace, and what their token
allows. Read and write tokens allow everything the user may do (read tokens: reads
only); a fine-grained token allows only what its scopes name. Outside them its user
is treated as having no access: private repos are missing (404), public ones are
read-only (403 on writes).
"""

from __future__ import annotations

from collections.abc import Callable

from hver.core.accounts import DISCUSSION_PERMISSION, READ_PERMISSION, WRITE_PERMISSION, Actor
from hver.db.models import Repo
from hver.errors import Forbidden, HverError, RepoNotFound, Unauthorized


def namespace_role(actor: Actor | None, namespace: str) -> str | None:
    """The actor's role in a namespace: 'admin' for their own, their org role, or None."""
    if actor is None:
        return None
    if actor.is_admin or actor.name == namespace:
        return "admin"
    return actor.orgs.get(namespace)


def token_allows(actor: Actor, repo_type: str, namespace: str, name: str,
                 permission: str) -> bool:
    """Whether the actor's token grants `permission` (a Hub permission name) on a repo."""
    if actor.scopes is None:
        return permission == READ_PERMISSION or actor.token_role == "write"
    return any(s.covers(repo_type, namespace, name) and s.allows(permission)
               for s in actor.scopes)


def token_allows_namespace(actor: Actor, namespace: str, permission: str) -> bool:
    """Whether the token grants `permission` on every repo of a namespace (creating some)."""
    if actor.scopes is None:
        return permission == READ_PERMISSION or actor.token_role == "write"
    return any(s.type != "repo" and s.name.lower() == namespace.lower() and s.allows(permission)
               for s in actor.scopes)


def can_read(actor: Actor | None, repo: Repo) -> bool:
    if not repo.private:
        return True
    if actor is None or namespace_role(actor, repo.namespace) is None:
        return False
    return token_allows(actor, repo.type, repo.namespace, repo.name, READ_PERMISSION)


def require_read(actor: Actor | None, repo: Repo) -> None:
    if not can_read(actor, repo):
        raise RepoNotFound()


def require_namespace_write(actor: Actor | None, namespace: str) -> None:
    """May the actor create, delete or move repos in this namespace?"""
    if actor is None:
        raise Unauthorized("You must be authenticated to do this.")
    if not actor.can_write:
        raise Forbidden("This token has read access only.")
    if not token_allows_namespace(actor, namespace, WRITE_PERMISSION):
        raise Forbidden(f"This token may not create or change repos under {namespace!r}.")
    if namespace_role(actor, namespace) not in ("write", "admin"):
        raise Forbidden(f"You don't have the rights to create or change repos under {namespace!r}.")


def require_write(actor: Actor | None, repo: Repo) -> None:
    """Write access to the content of a repo; invisible repos stay missing, mirrored
    ones are read-only (commits, uploads, git pushes, branches, settings, deletion)."""
    require_read(actor, repo)
    if actor is None:
        raise Unauthorized("You must be authenticated to write to this repo.")
    if repo.mirror_upstream is not None:  # its content is the upstream's, nobody's here
        raise Forbidden(f"{repo.repo_id} mirrors {repo.mirror_id} on {repo.mirror_upstream} "
                        "and is read-only here.")
    if not actor.can_write:
        raise Forbidden("This token has read access only.")
    if not token_allows(actor, repo.type, repo.namespace, repo.name, WRITE_PERMISSION):
        raise Forbidden(f"This token has no write access to {repo.repo_id}.")
    if namespace_role(actor, repo.namespace) not in ("write", "admin"):
        raise Forbidden(f"You don't have write access to {repo.repo_id}.")


def require_contribute(actor: Actor | None, repo: Repo) -> None:
    """Open and comment on discussions, open pull requests and push to one's own: anyone
    signed in who may read the repo, with a token that may write (a fine-grained one:
    `discussion.write` or `repo.write` on the repo). Gated repos also need access to their
    files for pull requests (`community.pulls`, which has the database at hand)."""
    require_read(actor, repo)
    if actor is None:
        raise Unauthorized("You must be authenticated to do this.")
    if not any(token_allows(actor, repo.type, repo.namespace, repo.name, p)
               for p in (DISCUSSION_PERMISSION, WRITE_PERMISSION)):
        raise Forbidden(f"This token may not write discussions on {repo.repo_id}.")


def can_contribute(actor: Actor | None, repo: Repo) -> bool:
    return _passes(require_contribute, actor, repo)


def require_admin(actor: Actor | None, repo: Repo) -> None:
    """Settings, deletion and moves: the owner, an org admin, or a site admin."""
    require_write(actor, repo)
    assert actor is not None
    if namespace_role(actor, repo.namespace) != "admin":
        raise Forbidden(f"You must be an admin of {repo.namespace!r} to change this.")


def can_write(actor: Actor | None, repo: Repo) -> bool:
    """`require_write` as a question (to offer, or not, what it guards)."""
    return _passes(require_write, actor, repo)


def can_admin(actor: Actor | None, repo: Repo) -> bool:
    """`require_admin` as a question."""
    return _passes(require_admin, actor, repo)


def _passes(check: Callable[[Actor | None, Repo], None], actor: Actor | None,
            repo: Repo) -> bool:
    try:
        check(actor, repo)
    except HverError:
        return False
    return True


def require_site_admin(actor: Actor | None) -> None:
    if actor is None:
        raise Unauthorized("You must be authenticated to do this.")
    if not actor.is_admin:
        raise Forbidden("Only site admins may do this.")
    if actor.fine_grained:
        raise Forbidden("Site administration needs a read or write token, not a "
                        "fine-grained one.")


def require_full_token(actor: Actor | None) -> Actor:
    """Managing one's own tokens: a write token (not read-only, not fine-grained)."""
    if actor is None:
        raise Unauthorized("You must be authenticated to do this.")
    if actor.fine_grained or actor.token_role != "write":
        raise Forbidden("Managing tokens needs a write token.")
    return actor
