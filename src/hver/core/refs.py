"""Branches and tags."""

from __future__ import annotations

from dataclasses import dataclass

from hver.core import access
from hver.core.accounts import Actor
from hver.core.hub import Hub
from hver.core.repos import DEFAULT_BRANCH, author_line
from hver.core.tree import resolve_revision
from hver.db.models import Repo
from hver.errors import Conflict, Forbidden, RevisionNotFound
from hver.names import validate_branch
from hver.storage.git import GitRepo

REF_KINDS = {"branches": "refs/heads/", "tags": "refs/tags/", "converts": "refs/convert/",
             "pullRequests": "refs/pr/"}


@dataclass(frozen=True)
class RefInfo:
    name: str
    ref: str
    target_commit: str


def list_refs(git: GitRepo, include_prs: bool) -> dict[str, list[RefInfo]]:
    out: dict[str, list[RefInfo]] = {}
    for kind, prefix in REF_KINDS.items():
        if kind == "pullRequests" and not include_prs:
            continue
        out[kind] = [
            RefInfo(name, prefix + name, git.peel(sha))
            for name, sha in sorted(git.refs(prefix).items())
        ]
    return out


def create_branch(hub: Hub, actor: Actor | None, repo: Repo, branch: str,
                  starting_point: str | None) -> str:
    access.require_write(actor, repo)
    validate_branch(branch)
    git = hub.git.open(repo.storage_key)
    start = resolve_revision(git, starting_point or DEFAULT_BRANCH)
    if not git.cas_ref(f"refs/heads/{branch}", None, start):
        raise Conflict(f"Reference refs/heads/{branch} already exists")
    return start


def delete_branch(hub: Hub, actor: Actor | None, repo: Repo, branch: str) -> None:
    """Delete a branch; never the default one (403), and a missing one (a tag's name too)
    is RevisionNotFound, in the Hub's words."""
    access.require_write(actor, repo)
    name = f"refs/heads/{branch}"
    if branch == DEFAULT_BRANCH:
        raise Forbidden(f"Cannot delete {name}")
    git = hub.git.open(repo.storage_key)
    sha = git.ref(name)
    if sha is None or not git.delete_ref(name, sha):
        raise RevisionNotFound(f"Invalid rev id: {branch}")


def create_tag(hub: Hub, actor: Actor | None, repo: Repo, revision: str, tag: str,
               message: str | None) -> str:
    """Tag `revision`: a missing revision is RevisionNotFound before the tag's name is
    looked at, as on the Hub."""
    access.require_write(actor, repo)
    git = hub.git.open(repo.storage_key)
    target = resolve_revision(git, revision)
    validate_branch(tag)
    value = target
    if message:
        assert actor is not None
        value = git.write_tag(tag, target, message, author_line(actor))
    if not git.cas_ref(f"refs/tags/{tag}", None, value):
        raise Conflict(f"Tag {tag} already exists")
    return target


def delete_tag(hub: Hub, actor: Actor | None, repo: Repo, tag: str) -> None:
    access.require_write(actor, repo)
    git = hub.git.open(repo.storage_key)
    name = f"refs/tags/{tag}"
    sha = git.ref(name)
    if sha is None or not git.delete_ref(name, sha):
        raise RevisionNotFound(f"Tag {tag} not found")
