"""Pull requests: a thread whose commits live on the git ref `refs/pr/{num}`.

`commit_target` is the one place that decides which ref a commit may move:
- a branch: the repo's writers (`access.require_write`);
- a new pull request (`create_pr`) off a branch: anyone who may contribute
  (`access.require_contribute`) and, on a gated repo, read its files;
- an open pull request's ref: its author (who may still contribute) and the writers.

A pull request starts at its base branch's head. Merging is for writers: a merge commit
whose parents are the base head and the pull request's head, its tree a three-way merge
of the two against their merge base, file by file; a file both sides changed differently
is a conflict, and the merge is refused. The base ref moves by compare-and-swap, so a
merge never loses a commit that landed meanwhile.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from hver.community import threads
from hver.core import access, diff, gating, objects
from hver.core.accounts import Actor
from hver.core.hub import Hub
from hver.core.repos import DEFAULT_BRANCH, author_line, refresh_index
from hver.core.tree import branch_ref
from hver.db.models import Discussion, Repo
from hver.errors import BadRequest, Conflict, Forbidden, GatedRepo, RevisionNotFound
from hver.storage.git import CommitInfo, GitRepo

PR_REF = re.compile(r"refs/pr/([1-9][0-9]{0,8})")
MAX_MERGE_ATTEMPTS = 20
OPEN = ("open", "draft")


def pr_ref(num: int) -> str:
    return f"refs/pr/{num}"


@dataclass(frozen=True)
class CommitTarget:
    """Where a commit goes: `ref` (None: a new pull request off `base`)."""

    ref: str | None
    base: str | None = None
    pr_num: int | None = None


def commit_target(hub: Hub, actor: Actor | None, repo: Repo, revision: str,
                  create_pr: bool) -> CommitTarget:
    """May `actor` commit to `revision` of `repo` (or open a pull request off it)? The ref
    the commit moves, or RepoNotFound / Unauthorized / Forbidden / RevisionNotFound."""
    git = hub.git.open(repo.storage_key)
    match = PR_REF.fullmatch(revision)
    if create_pr:
        if match:
            raise BadRequest("A pull request cannot be opened off another pull request.")
        _require_contribute_files(hub, actor, repo)
        return CommitTarget(None, base=branch_ref(git, revision))
    if match is None:
        access.require_write(actor, repo)
        return CommitTarget(branch_ref(git, revision))
    num = int(match.group(1))
    with hub.db.read() as session:
        thread = threads.get_thread(session, repo, num)
    if not thread.is_pr:
        raise RevisionNotFound(f"Invalid rev id: {revision}")
    if not access.can_write(actor, repo):
        _require_contribute_files(hub, actor, repo)
        assert actor is not None
        if thread.author_id != actor.id:
            raise Forbidden("Only its author or the repo's writers may push to this pull "
                            "request.")
    if thread.status not in OPEN:
        raise BadRequest(f"Pull request #{num} is {thread.status}: it takes no more commits.")
    return CommitTarget(branch_ref(git, revision), pr_num=num)


def may_upload(session: Session, actor: Actor | None, repo: Repo) -> bool:
    """May `actor` send large-file content (LFS objects, Xet xorbs and shards) to `repo`?
    Its writers, and whoever may open a pull request on it (with access to its files, on
    a gated repo). Bytes uploaded this way are held by the repo, but no ref names them
    until a commit does, and `commit_target` decides which ref that may be."""
    if access.can_write(actor, repo):
        return True
    return access.can_contribute(actor, repo) and gating.has_access(session, actor, repo)


def require_upload(hub: Hub, actor: Actor | None, repo: Repo) -> int | None:
    """`may_upload`, or the error that says why not. Returns the contributor's account id
    for a non-writer (their uploads are held apart until they commit them:
    `core.objects.record_contribution`), None for a writer."""
    if access.can_write(actor, repo):
        return None
    _require_contribute_files(hub, actor, repo)
    assert actor is not None
    return actor.id


def _require_contribute_files(hub: Hub, actor: Actor | None, repo: Repo) -> None:
    access.require_contribute(actor, repo)
    with hub.db.read() as session:
        if not gating.has_access(session, actor, repo):
            raise GatedRepo(f"You need access to the files of {repo.repo_id} to propose "
                            "changes to them.")


def open_pull_request(hub: Hub, actor: Actor | None, repo: Repo, title: str,
                      description: str = "", *, base: str = DEFAULT_BRANCH,
                      head: str | None = None, status: str = "draft",
                      promote: Iterable[str] = ()) -> Discussion:
    """A new pull request whose ref starts at `head` (default: the base branch's head);
    with `head`, that commit is recorded as the pull request's first, and the objects it
    names that its author contributed (`promote`) become held by the repo."""
    _require_contribute_files(hub, actor, repo)
    git = hub.git.open(repo.storage_key)
    base_ref = base if base.startswith("refs/heads/") else branch_ref(git, base)
    start = head or git.ref(base_ref)
    if start is None:
        raise RevisionNotFound(f"Invalid rev id: {base}")
    with hub.db.write() as session:
        thread = threads.open_thread(session, actor, repo, title, description, is_pr=True,
                                     status=status, target_branch=base_ref)
        if head is not None:
            _record_commit(session, git, actor, thread, head)
            if actor is not None:
                objects.promote(session, repo.id, actor.id, promote)
        # The number is new under the write lock: a ref left there by a crash before an
        # earlier transaction committed names nothing, and is overwritten.
        git.set_ref(pr_ref(thread.num), start)
        session.expunge(thread)
    return thread


def advance(hub: Hub, actor: Actor | None, repo: Repo, num: int, old: str, new: str,
            promote: Iterable[str] = ()) -> bool:
    """Move pull request `num`'s ref from `old` to `new` and record the commit, under the
    write lock, as merging is: no commit lands on a pull request once it is merged or
    closed. False if the ref had moved (build again on its new head)."""
    git = hub.git.open(repo.storage_key)
    try:
        with hub.db.write() as session:
            take_commit(session, git, actor, repo, num, new)
            if actor is not None:
                objects.promote(session, repo.id, actor.id, promote)
            if not git.cas_ref(pr_ref(num), old, new):
                raise _Moved()  # rolls the promotion back
    except _Moved:
        return False
    return True


def take_commit(session: Session, git: GitRepo, actor: Actor | None, repo: Repo, num: int,
                sha: str) -> None:
    """Record commit `sha` on pull request `num`, which must be open, in the transaction
    (under the write lock) that moves its ref: no commit lands on a pull request once it
    is merged or closed."""
    thread = threads.get_thread(session, repo, num)
    if thread.status not in OPEN:
        raise BadRequest(f"Pull request #{num} is {thread.status}: it takes no more commits.")
    _record_commit(session, git, actor, thread, sha)


class _Moved(Exception):
    pass


def _record_commit(session: Session, git: GitRepo, actor: Actor | None, thread: Discussion,
                   sha: str) -> None:
    threads.add_event(session, actor, thread, "commit",
                      {"oid": sha, "subject": git.commit(sha).title})


# -- reading --------------------------------------------------------------------------------

MAX_COMMITS = 250


def span(git: GitRepo, thread: Discussion) -> tuple[str | None, str] | None:
    """(merge base, head) of a pull request: what it changes. None: its ref is gone."""
    head = git.ref(pr_ref(thread.num))
    if head is None or thread.target_branch is None:
        return None
    if thread.merge_commit is not None:
        other: str | None = git.commit(thread.merge_commit).parents[0]
    else:
        other = git.ref(thread.target_branch)
    return (git.merge_base(other, head) if other else None), head


def changes(hub: Hub, repo: Repo, thread: Discussion) -> diff.CommitDiff | None:
    git = hub.git.open(repo.storage_key)
    found = span(git, thread)
    return diff.compare(git, found[0], git.commit(found[1])) if found else None


def commits(hub: Hub, repo: Repo, thread: Discussion) -> list[CommitInfo]:
    """The pull request's own commits, newest first."""
    git = hub.git.open(repo.storage_key)
    found = span(git, thread)
    return git.commits_between(found[0], found[1], MAX_COMMITS) if found else []


# -- merging --------------------------------------------------------------------------------


Files = dict[str, tuple[int, str]]


def three_way(base: Files, ours: Files, theirs: Files) -> tuple[Files, list[str]]:
    """The merged files, and the paths both sides changed differently."""
    merged: Files = {}
    conflicts: list[str] = []
    for path in sorted(base.keys() | ours.keys() | theirs.keys()):
        b, o, t = base.get(path), ours.get(path), theirs.get(path)
        if o == t or b == t:
            pick = o
        elif b == o:
            pick = t
        else:
            conflicts.append(path)
            continue
        if pick is not None:
            merged[path] = pick
    for path in merged:  # one side's new file where the other made a folder
        parts = path.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in merged:
                conflicts.append(path)
    return merged, conflicts


def _merge_files(git: GitRepo, base_head: str, head: str) -> tuple[Files, list[str]]:
    base = git.merge_base(base_head, head)

    def flat(sha: str | None) -> Files:
        return git.flatten(git.commit(sha).tree) if sha else {}

    return three_way(flat(base), flat(base_head), flat(head))


def conflicting_files(hub: Hub, repo: Repo, thread: Discussion) -> list[str]:
    """What merging the open pull request now would conflict on."""
    if not thread.is_pr or thread.status not in OPEN or thread.target_branch is None:
        return []
    git = hub.git.open(repo.storage_key)
    base_head, head = git.ref(thread.target_branch), git.ref(pr_ref(thread.num))
    if base_head is None or head is None:
        return []
    return _merge_files(git, base_head, head)[1]


def merge(hub: Hub, actor: Actor | None, repo: Repo, num: int, text: str | None = None) -> str:
    """Merge the pull request into its base branch; returns the merge commit."""
    access.require_write(actor, repo)
    assert actor is not None
    git = hub.git.open(repo.storage_key)
    with hub.db.read() as session:
        thread = threads.get_thread(session, repo, num)
    if not thread.is_pr:
        raise BadRequest(f"#{num} is a discussion, not a pull request.")
    if thread.status not in OPEN:
        raise BadRequest(f"Pull request #{num} is {thread.status}: it cannot be merged.")
    assert thread.target_branch is not None
    head = git.ref(pr_ref(num))
    assert head is not None
    note = threads.check_text(text) if text is not None and text.strip() else None
    message = f"Merge pull request #{num}: {thread.title}"
    for _ in range(MAX_MERGE_ATTEMPTS):
        base_head = git.ref(thread.target_branch)
        if base_head is None:
            raise RevisionNotFound(f"Invalid rev id: {thread.target_branch}")
        files, conflicts = _merge_files(git, base_head, head)
        if conflicts:
            raise Conflict(
                f"Pull request #{num} has merge conflicts in {', '.join(conflicts[:20])}: "
                "update it with the base branch's changes first.", code="MergeConflict")
        sha = git.write_commit(git.write_tree(files), [base_head, head], message,
                               author_line(actor))
        with hub.db.write() as session:
            row = threads.get_thread(session, repo, num)
            if row.status not in OPEN or git.ref(pr_ref(num)) != head:
                raise Conflict(f"Pull request #{num} changed while merging; try again.")
            if not git.cas_ref(thread.target_branch, base_head, sha):
                continue
            if note is not None:
                threads.comment(session, actor, repo, num, note)
            row.status, row.merge_commit = "merged", sha
            threads.add_event(session, actor, row, "status-change", {"status": "merged"})
        if thread.target_branch == f"refs/heads/{DEFAULT_BRANCH}":
            refresh_index(hub, repo, git)
        return sha
    raise Conflict("The base branch is moving too fast; try again.")
