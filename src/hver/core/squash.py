"""Super-squash: a branch's history replaced by one commit with the same tree.

The new commit has no parent and the head's tree, and the branch moves to it by
compare-and-swap, like any commit: a commit that lands meanwhile is not lost, the
squash is made again from the new head. The old commits stay in the object store,
unreachable from this branch (other refs that name them keep them). Large files stay
held by the repo: squashing changes no `lfs_objects` row.
"""

from __future__ import annotations

from hver.core import access
from hver.core.accounts import Actor
from hver.core.hub import Hub
from hver.core.repos import DEFAULT_BRANCH, author_line, refresh_index
from hver.core.tree import branch_ref
from hver.db.models import Repo
from hver.errors import BadRequest, Conflict, RevisionNotFound

MAX_CAS_ATTEMPTS = 100


def default_message(branch: str) -> str:
    return f"Super-squash branch '{branch}'"


def super_squash(hub: Hub, actor: Actor | None, repo: Repo, branch: str,
                 message: str | None = None) -> str:
    """Squash branch `branch` (a branch name, `refs/heads/...` or `refs/pr/N`) into one
    commit; returns its id. BadRequest for a tag, RevisionNotFound for no such branch."""
    access.require_write(actor, repo)
    assert actor is not None
    git = hub.git.open(repo.storage_key)
    if not branch.startswith("refs/") and git.ref(f"refs/heads/{branch}") is None \
            and git.ref(f"refs/tags/{branch}") is not None:
        raise BadRequest(f"{branch} is a tag: only a branch's history can be squashed.",
                         code="InvalidReference")
    ref = branch_ref(git, branch)
    text = (message or "").strip() or default_message(branch)
    author = author_line(actor)
    for _ in range(MAX_CAS_ATTEMPTS):
        head = git.ref(ref)
        if head is None:  # deleted meanwhile
            raise RevisionNotFound(f"Invalid rev id: {branch} is not a branch.")
        sha = git.write_commit(git.commit(head).tree, [], text, author)
        if git.cas_ref(ref, head, sha):
            break
    else:
        raise Conflict("The branch is moving too fast; try again.")
    if ref == f"refs/heads/{DEFAULT_BRANCH}":
        refresh_index(hub, repo, git)
    return sha
