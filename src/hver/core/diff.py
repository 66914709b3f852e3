"""What a commit changed, file by file, and which commits changed a path.

A commit is compared with its first parent (the initial commit with the empty tree).
Text files get unified-diff hunks; binary files and LFS files get their sizes (and
sha256 for LFS), never their pointer text. The work is bounded, since difflib is
quadratic or worse on some inputs: blobs over `MAX_BLOB_BYTES` are not diffed; a file is
not compared when it has over `MAX_FILE_LINES` lines, when the lines between its unchanged
start and end make over `MAX_PAIRS` (old, new) pairs, or when comparing it takes over
`MAX_FILE_STEPS` steps. A commit's diffs stop once they have read `MAX_READ_BYTES` of text,
taken `MAX_STEPS` steps or made `MAX_LINES` lines (a cut diff counts in full), and after
`MAX_FILES` files, with the result saying so.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import accumulate, islice
from typing import Literal

from dulwich.diff_tree import tree_changes
from dulwich.objects import ObjectID
from dulwich.objects import TreeEntry as GitTreeEntry

from hver.core.tree import FileInfo, describe
from hver.errors import NotFound
from hver.storage.git import CommitInfo, GitRepo, TreeEntry

MAX_BLOB_BYTES = 512 * 1024  # larger text files are listed, not diffed
MAX_LINES = 5000  # diff lines (context included) shown for one commit
MAX_FILES = 300  # changed files listed for one commit
MAX_FILE_LINES = 20_000  # old + new lines of a file; longer files are not compared
MAX_PAIRS = 25_000_000  # old x new lines, unchanged start and end left out, to compare
MAX_FILE_STEPS = 4_000_000  # comparison steps for one file (see _Matcher): 0.6 s at most
MAX_STEPS = 8_000_000  # comparison steps for one commit
MAX_READ_BYTES = 8 * 1024 * 1024  # text read to diff one commit
CONTEXT = 3
HISTORY_SCAN = 10_000  # commits examined for one page of a path's history

_SHA_RE = re.compile(r"^[0-9a-f]{40}$")

Status = Literal["added", "deleted", "modified"]
# too_large: over MAX_BLOB_BYTES; large_diff: too costly to compare (MAX_FILE_*, MAX_PAIRS);
# over_limit: left out because the commit's budget was spent.
Kind = Literal["text", "binary", "lfs", "too_large", "large_diff", "over_limit"]


@dataclass(frozen=True)
class Line:
    kind: Literal["context", "add", "del", "note"]
    old: int | None  # line number in the old file
    new: int | None  # line number in the new file
    text: str


@dataclass(frozen=True)
class Hunk:
    header: str  # "@@ -1,3 +1,4 @@"
    lines: list[Line]


@dataclass
class FileChange:
    path: str
    status: Status
    old: FileInfo | None
    new: FileInfo | None
    kind: Kind = "text"
    hunks: list[Hunk] = field(default_factory=list)
    added: int = 0
    removed: int = 0


@dataclass
class CommitDiff:
    commit: CommitInfo
    parent: str | None  # the commit compared with; None: the empty tree
    files: list[FileChange]
    more_files: bool  # files beyond MAX_FILES were left out
    truncated: bool  # some text diffs were left out to stay within the commit's budget

    @property
    def added(self) -> int:
        return sum(f.added for f in self.files)

    @property
    def removed(self) -> int:
        return sum(f.removed for f in self.files)


def find_commit(git: GitRepo, oid: str) -> CommitInfo:
    """The commit with full sha `oid` in this repository; NotFound for anything else."""
    if not _SHA_RE.match(oid) or not git.has_commit(oid):
        raise NotFound(f"Commit {oid} not found in this repository.")
    return git.commit(oid)


@dataclass
class _Budget:
    """What is left of one commit's diffing work; each may go below zero."""
    lines: int  # diff lines to show
    steps: int  # comparison steps
    read: int  # bytes of text to read

    @property
    def spent(self) -> bool:
        return self.lines <= 0 or self.steps <= 0 or self.read < 0


class _TooCostly(Exception):
    def __init__(self, steps: int) -> None:
        super().__init__(steps)
        self.steps = steps


def commit_diff(git: GitRepo, commit: CommitInfo, max_lines: int = MAX_LINES,
                max_files: int = MAX_FILES, max_blob: int = MAX_BLOB_BYTES) -> CommitDiff:
    """The changes `commit` made, against its first parent."""
    parent = commit.parents[0] if commit.parents else None
    return compare(git, parent, commit, max_lines, max_files, max_blob)


def compare(git: GitRepo, base: str | None, commit: CommitInfo, max_lines: int = MAX_LINES,
            max_files: int = MAX_FILES, max_blob: int = MAX_BLOB_BYTES) -> CommitDiff:
    """The changes from commit `base` (None: the empty tree) to `commit`: a pull request's
    against its merge base, a commit's against its parent."""
    old_tree = git.commit(base).tree if base else None
    changes = tree_changes(
        git.repo.object_store, _oid(old_tree) if old_tree else None, _oid(commit.tree))
    files: list[FileChange] = []
    more_files = False
    budget = _Budget(max_lines, MAX_STEPS, MAX_READ_BYTES)
    truncated = False
    for change in changes:
        if len(files) == max_files:
            more_files = True
            break
        old = _info(git, change.old)
        new = _info(git, change.new)
        if new is not None:
            fc = FileChange(new.path, "modified" if old else "added", old, new)
        elif old is not None:
            fc = FileChange(old.path, "deleted", old, new)
        else:  # pragma: no cover - tree_changes yields no empty changes
            continue
        _fill(git, fc, budget, max_blob)
        if fc.kind == "over_limit":
            truncated = True
        files.append(fc)
    return CommitDiff(commit, base, files, more_files, truncated)


def patch_text(diff: CommitDiff) -> str:
    """The diff as `git diff` prints it (text hunks; other files by a one-line note)."""
    out: list[str] = []
    for f in diff.files:
        a = f"a/{f.old.path}" if f.old else "/dev/null"
        b = f"b/{f.new.path}" if f.new else "/dev/null"
        out.append(f"diff --git a/{f.path} b/{f.path}")
        if f.kind != "text":
            out.append(f"Binary files {a} and {b} differ")
            continue
        out += [f"--- {a}", f"+++ {b}"]
        for hunk in f.hunks:
            out.append(hunk.header)
            marks = {"context": " ", "add": "+", "del": "-", "note": "\\ "}
            out += [marks[line.kind] + line.text for line in hunk.lines]
    return "\n".join(out) + ("\n" if out else "")


def _oid(sha: str) -> ObjectID:
    return ObjectID(sha.encode())


def _info(git: GitRepo, entry: GitTreeEntry | None) -> FileInfo | None:
    if entry is None or entry.path is None or entry.sha is None:
        return None
    path = entry.path.decode("utf-8", "surrogateescape")
    return describe(git, TreeEntry(path, entry.mode, entry.sha.decode()))


def _text(git: GitRepo, info: FileInfo | None, max_blob: int) -> str | None | Literal[False]:
    """The file as text; None when absent; False when binary or too large to diff."""
    if info is None:
        return None
    if info.size > max_blob:
        return False
    data = git.blob(info.oid)
    if b"\0" in data[:8000]:
        return False
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return False


def _fill(git: GitRepo, fc: FileChange, budget: _Budget, max_blob: int) -> None:
    """Diff one file, charging what it costs to `budget`, cut or not."""
    if (fc.old and fc.old.lfs) or (fc.new and fc.new.lfs):
        fc.kind = "lfs"
        return
    sizes = [i.size for i in (fc.old, fc.new) if i]
    if max(sizes, default=0) > max_blob:
        fc.kind = "too_large"
        return
    if budget.spent:
        fc.kind = "over_limit"
        return
    budget.read -= sum(sizes)
    if budget.read < 0:
        fc.kind = "over_limit"
        return
    old, new = _text(git, fc.old, max_blob), _text(git, fc.new, max_blob)
    if old is False or new is False:
        fc.kind = "binary"
        return
    a, b = _lines(old or ""), _lines(new or "")
    budget.steps -= len(a) + len(b)  # splitting, trimming and indexing them
    if len(a) + len(b) > MAX_FILE_LINES or _pairs(a, b) > MAX_PAIRS:
        fc.kind = "large_diff"
        return
    max_steps = min(MAX_FILE_STEPS, budget.steps)
    try:
        hunks = list(_hunks(a, b, CONTEXT, max_steps))
    except _TooCostly as e:
        budget.steps -= e.steps
        fc.kind = "large_diff" if max_steps == MAX_FILE_STEPS else "over_limit"
        return
    shown = sum(len(h.lines) for h in hunks)
    budget.lines -= shown
    if budget.lines < 0:
        fc.kind = "over_limit"
        return
    fc.hunks = hunks
    fc.added = sum(1 for h in hunks for ln in h.lines if ln.kind == "add")
    fc.removed = sum(1 for h in hunks for ln in h.lines if ln.kind == "del")


def _range(start: int, length: int) -> str:
    """A hunk header range, as `diff -u` writes it."""
    if length == 1:
        return str(start + 1)
    if length == 0:
        return f"{start},0"
    return f"{start + 1},{length}"


def _pairs(a: list[str], b: list[str]) -> int:
    """(old, new) line pairs between the first and the last line that differ."""
    n = min(len(a), len(b))
    start = 0
    while start < n and a[start] == b[start]:
        start += 1
    end = 0
    while end < n - start and a[-1 - end] == b[-1 - end]:
        end += 1
    return (len(a) - start - end) * (len(b) - start - end)


class _Matcher(difflib.SequenceMatcher[str]):
    """A SequenceMatcher that raises _TooCostly once it has taken over `max_steps` steps.

    A step is one turn of `find_longest_match`'s loops: each line of a's range, and each
    place in b where that line occurs (`b2j`, whose popular lines autojunk drops). Those
    turns bound what the matcher does, and a's prefix sums count them before each call.
    """

    a: list[str]  # set by SequenceMatcher.set_seq1
    b2j: dict[str, list[int]]  # set by SequenceMatcher.set_seq2

    def __init__(self, a: list[str], b: list[str], max_steps: int) -> None:
        super().__init__(None, a, b, autojunk=True)
        self.max_steps = max_steps
        self.steps = 0
        self._cost: list[int] | None = None  # _cost[i]: steps of a[:i]

    def find_longest_match(self, alo: int = 0, ahi: int | None = None, blo: int = 0,
                           bhi: int | None = None) -> difflib.Match:
        if self._cost is None:
            self._cost = list(accumulate(
                (len(self.b2j.get(line, ())) + 1 for line in self.a), initial=0))
        hi = len(self.a) if ahi is None else ahi
        self.steps += self._cost[hi] - self._cost[alo] + 1
        if self.steps > self.max_steps:
            raise _TooCostly(self.steps)
        return super().find_longest_match(alo, ahi, blo, bhi)


def unified_hunks(old: str, new: str, context: int = CONTEXT) -> Iterator[Hunk]:
    """The hunks of `diff -u old new`, each line with its old and new line numbers.
    Unbounded: commit_diff bounds its own calls."""
    return _hunks(_lines(old), _lines(new), context, None)


def _hunks(a: list[str], b: list[str], context: int, max_steps: int | None) -> Iterator[Hunk]:
    """unified_hunks of a and b as lines; _TooCostly after over `max_steps` steps."""
    matcher = (difflib.SequenceMatcher(None, a, b) if max_steps is None
               else _Matcher(a, b, max_steps))
    for group in matcher.get_grouped_opcodes(context):
        first, last = group[0], group[-1]
        header = (f"@@ -{_range(first[1], last[2] - first[1])} "
                  f"+{_range(first[3], last[4] - first[3])} @@")
        lines: list[Line] = []
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                for k in range(i2 - i1):
                    _append(lines, Line("context", i1 + k + 1, j1 + k + 1, a[i1 + k]),
                            i1 + k + 1 == len(a))
                continue
            for k in range(i1, i2):
                _append(lines, Line("del", k + 1, None, a[k]), k + 1 == len(a))
            for k in range(j1, j2):
                _append(lines, Line("add", None, k + 1, b[k]), k + 1 == len(b))
        yield Hunk(header, lines)


def _lines(text: str) -> list[str]:
    """Lines as git counts them: ended by LF only, each keeping its LF."""
    parts = text.split("\n")
    out = [f"{p}\n" for p in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return out


def _append(lines: list[Line], line: Line, last: bool) -> None:
    text = line.text
    ended = text.endswith("\n")
    lines.append(Line(line.kind, line.old, line.new, text.rstrip("\n").removesuffix("\r")))
    if last and not ended:
        lines.append(Line("note", None, None, "No newline at end of file"))


# -- history of a path ------------------------------------------------------------------------


@dataclass
class PathHistory:
    commits: list[CommitInfo]
    more: bool  # commits beyond this page touched the path
    scan_limited: bool  # the walk stopped at HISTORY_SCAN commits


def path_history(git: GitRepo, start: str, path: str, offset: int, limit: int,
                 max_scan: int = HISTORY_SCAN) -> PathHistory:
    """Commits reachable from `start` that changed `path` (a file or a folder), newest
    first: those where it differs from every parent. Examines at most `max_scan` commits.
    """
    entries: dict[str, str | None] = {}

    def entry(commit: str, tree: str | None = None) -> str | None:
        """`path` in `commit` as (mode, sha), or None when absent."""
        if commit not in entries:
            hit = git.lookup(tree or git.commit(commit).tree, path)
            entries[commit] = f"{hit.mode:o} {hit.sha}" if hit else None
        return entries[commit]

    found: list[CommitInfo] = []
    scanned = 0
    for c in islice(git.history(start), max_scan):
        scanned += 1
        here = entry(c.id, c.tree)
        # A root commit changed the path if it has it; any other, if no parent agrees.
        changed = all(entry(p) != here for p in c.parents) if c.parents else here is not None
        if changed:
            found.append(c)
            if len(found) > offset + limit:
                break
        # Only the entries of commits still to come are needed again.
        entries.pop(c.id, None)
    return PathHistory(found[offset:offset + limit], len(found) > offset + limit,
                       scanned >= max_scan and len(found) <= offset + limit)
