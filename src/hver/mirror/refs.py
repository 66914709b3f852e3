"""Mirrored repos: brought in from the upstream on first use, and their refs and settings
caught up with the upstream's when they are due.

A mirrored repo is an ordinary repo (its row, its git repository) whose refs and commits
are the upstream's exactly, so that every route serves it unchanged; `mirror_upstream`
marks it, and `hver.core.access.require_write` keeps it read-only.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime

from dulwich.object_store import MissingObjectFinder
from dulwich.objects import Commit, ObjectID, Tag, Tree
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from hver.core import repos as core_repos
from hver.core.accounts import create_mirror_namespace, get_account
from hver.core.cards import CardIndex
from hver.core.hub import Hub
from hver.db.models import MirrorRepo, Repo, utcnow
from hver.errors import Conflict, InvalidName, InvalidPath
from hver.mirror.rules import Rules
from hver.mirror.upstream import MIRRORED_REFS, Upstream, UpstreamRepo, UpstreamUnavailable
from hver.names import (
    RepoType,
    validate_branch,
    validate_namespace,
    validate_part,
    validate_path,
)
from hver.storage.git import GitRepo

log = logging.getLogger("hver.mirror")
MAIN = f"refs/heads/{core_repos.DEFAULT_BRANCH}"
SERVABLE_MODES = (0o100644, 0o100755, 0o040000)  # files and folders, as commits here


class Hidden(UpstreamUnavailable):
    """The upstream shows a mirrored repo no more: it is hidden here (not an outage)."""


def upstream_id(rules: Rules, namespace: str, name: str) -> str | None:
    """The upstream repo a local id would mirror; None: the id cannot be a mirror's."""
    upstream_ns = rules.upstream_namespace(namespace)
    if upstream_ns is None:
        return None
    try:
        validate_namespace(upstream_ns)
        validate_part(name)
    except InvalidName:
        return None
    return f"{upstream_ns}/{name}"


def local_id(rules: Rules, repo_id: str) -> tuple[str, str]:
    ns, _, name = repo_id.partition("/")
    return rules.local_namespace(ns), name


def bring_in(hub: Hub, upstream: Upstream, rules: Rules, repo_type: RepoType,
             found: UpstreamRepo, local: tuple[str, str] | None = None) -> Repo | None:
    """A local mirror of `found` (public upstream, allowed by the rules), its refs and
    history fetched before its row makes it visible; the repo another server brought in
    meanwhile, if one did; None if the local id is a local namespace's. `local`: the
    local id (namespace, name) to use instead of the rules' (an import keeps the
    exporting hub's)."""
    namespace, name = local or local_id(rules, found.id)
    key = uuid.uuid4().hex
    git = hub.git.init(key)
    try:
        refs = upstream.fetch_git(repo_type, found.id, git)
        _move_refs(git, refs)
        head = refs.get(MAIN)
        idx = core_repos.card_index(git, head, repo_type.value) if head else CardIndex(None)
        now = utcnow()
        repo = Repo(
            type=repo_type.value, namespace=namespace, name=name, storage_key=key,
            private=False, gated=found.gated, created_at=found.created_at or now,
            last_modified=_commit_time(git, head) or now, sha=head, tags=idx.tags,
            card_data=idx.card_data, pipeline_tag=idx.pipeline_tag,
            library_name=idx.library_name, downloads=0, likes=0,
            mirror_upstream=upstream.url, mirror_id=found.id)
        for attempt in (1, 2):
            try:
                kept = _add(hub, repo_type, repo, upstream.url)
                break
            except (IntegrityError, Conflict):  # its namespace or id taken at this moment
                if attempt == 2:
                    raise
        if kept is not repo:
            hub.git.delete(key)
        else:
            log.info("mirror: brought in %s %s from %s", repo_type.value, found.id,
                     upstream.url)
        return kept
    except BaseException:
        hub.git.delete(key)
        raise


def _add(hub: Hub, repo_type: RepoType, repo: Repo, upstream: str) -> Repo | None:
    """The new mirrored repo's row (and its namespace's, the first time); the repo
    already there if another server brought it in first; None in a local namespace."""
    with hub.db.write() as session:
        account = get_account(session, repo.namespace)
        if account is None:
            account = create_mirror_namespace(session, repo.namespace, upstream)
        if account.mirror_upstream is None:
            return None
        repo.namespace = account.name
        existing = core_repos.find_repo(session, repo_type, account.name, repo.name)
        if existing is not None:
            return existing
        session.add(repo)
        session.flush()
        stamp = time.time()
        session.add(MirrorRepo(repo_id=repo.id, checked_at=stamp, changed_at=stamp,
                               checking_until=0.0))
        return repo


def catch_up(hub: Hub, upstream: Upstream, repo: Repo) -> Repo:
    """Bring a mirrored repo's refs and gate in line with the upstream's. A repo the
    upstream no longer shows (deleted, made private) is left as it is."""
    assert repo.mirror_id is not None
    repo_type = RepoType(repo.type)
    found = upstream.repo_info(repo_type, repo.mirror_id)
    hidden = found is None or found.private
    if hidden != repo.private or (found is not None and found.gated != repo.gated):
        # Gone upstream (deleted, or made private: its owner may be taking something
        # back): hidden here too, as a private repo of a namespace nobody belongs to;
        # shown again once the upstream shows it.
        with hub.db.write() as session:
            row = session.get(Repo, repo.id)
            if row is not None:
                row.private = hidden
                if found is not None:
                    row.gated = found.gated
                repo = row
        if hidden:
            log.warning("mirror: %s %s is gone from %s; hidden here", repo.type,
                        repo.mirror_id, upstream.url)
    if hidden:
        raise Hidden("the upstream shows this repo no more (deleted or made private); "
                     "hidden here")
    assert found is not None
    git = hub.git.open(repo.storage_key)
    refs = upstream.fetch_git(repo_type, found.id, git)
    changed = _move_refs(git, refs)
    if changed:
        with hub.db.atomic() as session:
            session.execute(update(MirrorRepo).where(MirrorRepo.repo_id == repo.id)
                            .values(changed_at=time.time()))
    return core_repos.refresh_index(hub, repo, git)


def _servable(git: GitRepo, refs: dict[str, str]) -> dict[str, str]:
    """The upstream's refs this hub can hold, once every object they bring is one it can
    serve: the main branch, and other branches and converted branches naming commits,
    tags naming commits (or tags of them; other refs are left out), and each new tree
    holds files and folders whose names a commit here could hold (no gitlinks, no
    symlinks, valid UTF-8 paths). A tree that fails refuses the whole update
    (UpstreamUnavailable): the repo stays as it was."""
    store = git.repo.object_store
    kept: dict[str, str] = {}
    try:
        for name, sha in refs.items():
            obj = store[ObjectID(sha.encode())]
            target = obj
            while isinstance(target, Tag):
                target = store[target.object[1]]
            if not isinstance(target, Commit) or (
                    not name.startswith("refs/tags/") and not isinstance(obj, Commit)):
                if name == MAIN:
                    raise UpstreamUnavailable("the upstream's main branch names no commit")
                log.warning("mirror: %s names no commit; left out", name)
                continue
            kept[name] = sha
        if MAIN not in kept:
            raise UpstreamUnavailable("the upstream's repo has no main branch")
        haves = {oid for oid in git.repo.refs.as_dict().values() if oid in store}
        wants = {ObjectID(s.encode()) for s in kept.values()}
        for oid, _ in MissingObjectFinder(store, haves=haves, wants=wants):
            obj = store[oid]
            if isinstance(obj, Tree):
                for entry in obj.iteritems():
                    _check_entry(entry.path, entry.mode)
    except KeyError as exc:
        raise UpstreamUnavailable(f"the upstream's pack lacks object {exc}") from None
    return kept


def _check_entry(raw: bytes, mode: int) -> None:
    if mode not in SERVABLE_MODES:
        raise UpstreamUnavailable(f"the upstream's tree holds {raw!r} of mode {mode:o}, "
                                  "which this hub does not serve")
    try:
        validate_path(raw.decode("utf-8"))
    except (UnicodeDecodeError, InvalidPath):
        raise UpstreamUnavailable(f"the upstream's tree holds a name this hub does not "
                                  f"serve: {raw!r}") from None


def _move_refs(git: GitRepo, refs: dict[str, str]) -> bool:
    """The repo's mirrored refs made the upstream's, all at once (the old values
    compared and swapped: a concurrent catch-up loses, and the next one redoes it).
    Whether any moved."""
    local = {}
    for prefix in MIRRORED_REFS:
        local.update({prefix + name: sha for name, sha in git.refs(prefix).items()})
    refs = _servable(git, {name: sha for name, sha in refs.items() if _valid_ref(name)})
    updates = [(name, local.get(name), refs.get(name))
               for name in sorted(set(local) | set(refs)) if local.get(name) != refs.get(name)]
    if not updates:
        return False
    try:
        moved = git.update_refs(updates)
    except Conflict as exc:  # names git cannot hold together (`a` and `a/b`)
        raise UpstreamUnavailable(f"the upstream's refs: {exc.message}") from None
    if not moved:
        log.warning("mirror: refs of %s moved meanwhile; the next check redoes it", git.path)
        return False
    return True


def _commit_time(git: GitRepo, sha: str | None) -> datetime | None:
    if sha is None:
        return None
    return datetime.fromtimestamp(git.commit(sha).timestamp, UTC).replace(tzinfo=None)


def _valid_ref(name: str) -> bool:
    """A ref this hub could hold: one of `MIRRORED_REFS`, named as a local one must be."""
    prefix = next((p for p in MIRRORED_REFS if name.startswith(p)), None)
    if prefix is None:
        return False
    try:
        validate_branch(name[len(prefix):])
    except InvalidName:
        return False
    return True
