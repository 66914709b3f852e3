"""Dataset previews: a dataset repo's configs and splits, and the first rows of a split.

Configs and splits are worked out from the repo's file names the way the `datasets`
library does (`datasets/data_files.py` and `load.py`), for the common layouts: the
`configs` of the README front matter, else the split naming conventions, else every
data file in one `train` split; from a dataset's first MAX_FILES files, and kept per
commit for later views. Rows come from a split's first data file, read with pyarrow
through `content.open_file`, and the readers stop at what the rows need: a parquet
footer and the first pages of the first row groups, the first lines of a csv or a
jsonl. For a file kept in LFS or as Xet chunks only those bytes are fetched, whatever
the file's size. A preview shows at most MAX_COLUMNS columns.
"""

from __future__ import annotations

import bisect
import functools
import io
import itertools
import json
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from hver.core import tree as core_tree
from hver.core.cards import CardError, parse_front_matter
from hver.core.content import open_file
from hver.core.hub import Hub
from hver.errors import HverError
from hver.storage.git import GitRepo

ROWS = 100
MAX_CELL_CHARS = 200
MAX_TYPE_CHARS = 80
MAX_ERROR_CHARS = 300
# The most a line-based reader (csv, jsonl, txt) reads from the head of a file.
MAX_HEAD_BYTES = 4 * 1024 * 1024
# A `.json` file that is one document (not JSON Lines) is parsed whole up to this size.
MAX_JSON_DOCUMENT_BYTES = 4 * 1024 * 1024
_READ_CHUNK = 64 * 1024
MAX_PATTERN_CHARS = 300
# The most files of a dataset that configs and splits are worked out from.
MAX_FILES = 10_000
# Layouts kept for later views: at most this many, holding this many file paths in all.
LAYOUT_CACHE_ENTRIES = 256
LAYOUT_CACHE_FILES = 200_000
# The most columns a preview shows.
MAX_COLUMNS = 100
# The most a parquet reader reads of a file (footer, pages) for the first rows.
MAX_PARQUET_READ_BYTES = 64 * 1024 * 1024

# --- configs and splits, after datasets/data_files.py ----------------------------------------

TRAIN, VALIDATION, TEST = "train", "validation", "test"
DEFAULT_CONFIG = "default"
SPLIT_KEYWORDS = {
    TRAIN: ["train", "training"],
    VALIDATION: ["validation", "valid", "dev", "val"],
    TEST: ["test", "testing", "eval", "evaluation"],
}
_SEP = "-._ 0-9"
_IN_FILE_NAME = ["**/{keyword}[{sep}]*", "**/*[{sep}]{keyword}[{sep}]*"]
_IN_DIR_NAME = ["**/{keyword}/**", "**/{keyword}[{sep}]*/**", "**/*[{sep}]{keyword}/**",
                "**/*[{sep}]{keyword}[{sep}]*/**"]
SPLIT_PATTERN_SHARDED = "data/*-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9]*.*"
_SHARDED_SPLIT = re.compile(r"^(.*)-\d{5}-of-\d{5}")
_SPLIT_NAME = re.compile(r"^\w+(\.\w+)*$")
FILES_TO_IGNORE = frozenset({"README.md", "config.json", "dataset_info.json",
                             "dataset_infos.json", "dummy_data.zip", "dataset_dict.json"})


def _patterns(templates: list[str]) -> dict[str, list[str]]:
    return {split: [t.format(keyword=k, sep=_SEP) for k in keywords for t in templates]
            for split, keywords in SPLIT_KEYWORDS.items()}


DEFAULT_PATTERNS = [_patterns(_IN_DIR_NAME), _patterns(_IN_FILE_NAME), {TRAIN: ["**"]}]

# The data file extensions `datasets` knows (a subset), with the builder each one picks.
MODULES = {
    ".parquet": "parquet", ".geoparquet": "parquet", ".gpq": "parquet",
    ".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".ndjson": "json",
    ".arrow": "arrow", ".txt": "text", ".tar": "webdataset", ".xml": "xml",
    ".hdf5": "hdf5", ".h5": "hdf5", ".lance": "lance",
    **{f".{e}": "imagefolder" for e in ("png", "jpg", "jpeg", "gif", "webp", "bmp", "tif",
                                         "tiff")},
    **{f".{e}": "audiofolder" for e in ("wav", "mp3", "flac", "ogg", "opus", "m4a")},
    **{f".{e}": "videofolder" for e in ("mp4", "mkv", "avi", "mov", "webm")},
    ".pdf": "pdffolder",
}
ARCHIVES = frozenset({".zip", ".gz", ".zst", ".bz2", ".xz", ".lz4", ".7z", ".tgz"})
# Among equally common extensions, `datasets` prefers these, in this order.
_PREFERRED = (".parquet", ".lance", ".vortex", ".arrow", ".jsonl", ".json", ".csv")


class PreviewError(ValueError):
    """Why a preview cannot be shown: a message for the page."""


@dataclass(frozen=True)
class SplitFiles:
    name: str
    files: tuple[str, ...]  # repo paths, sorted


@dataclass(frozen=True)
class DatasetConfig:
    name: str
    splits: tuple[SplitFiles, ...]
    default: bool = False

    def split(self, name: str) -> SplitFiles | None:
        return next((s for s in self.splits if s.name == name), None)


# --- data_files globs --------------------------------------------------------------------------
# A README's patterns are anyone's input, so they are not translated to regular expressions,
# whose backtracking over several `*` takes exponential time on a near miss. A glob is cut
# at its stars into chunks of one-character tokens; a match puts the first chunk at the
# start, the last at the end, and each other chunk at the first place after the previous
# one where it fits. That first place is as good as any later one (what follows has only
# more room), so nothing is ever retried: a match takes at most len(pattern) * len(path)
# steps. Folders are matched the same way, with `**` for the star and names for characters.


class _Class:
    """A `[...]` set of characters, `[!...]` for its complement."""

    __slots__ = ("chars", "negate", "ranges")

    def __init__(self, negate: bool, chars: frozenset[str],
                 ranges: tuple[tuple[str, str], ...]) -> None:
        self.negate, self.chars, self.ranges = negate, chars, ranges

    def matches(self, c: str) -> bool:
        found = c in self.chars or any(lo <= c <= hi for lo, hi in self.ranges)
        return found != self.negate


_ANY = _Class(True, frozenset(), ())  # `?`: any one character
_Token = str | _Class  # a str is one literal character


def _not_a_glob(pattern: str) -> PreviewError:
    return PreviewError(f"The data_files pattern {_short(pattern, 80)!r} is not a valid glob.")


def _class_end(glob: str, start: int) -> int:
    """Where the set opened by the `[` at `start` ends, as fnmatch reads it (a `]` first,
    or after the `!`, is one of its characters); -1 when it does not: that `[` is itself."""
    i = start + 1
    i += glob.startswith("!", i)
    i += glob.startswith("]", i)
    return glob.find("]", i)


def _class(body: str, pattern: str) -> _Class:
    """The set between `[` and `]`: `!` first negates, `a-z` is a range, anything else
    (`^`, `\\`, `[`, a `-` first or last) stands for itself."""
    negate = body.startswith("!")
    body = body[1:] if negate else body
    chars, ranges, i = set(), [], 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            if body[i] > body[i + 2]:
                raise _not_a_glob(pattern)
            ranges.append((body[i], body[i + 2]))
            i += 3
        else:
            chars.add(body[i])
            i += 1
    return _Class(negate, frozenset(chars), tuple(ranges))


class _Chunk:
    """One-character tokens between two stars of a name's glob."""

    __slots__ = ("literal", "run", "run_at", "tokens")

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tuple(tokens)
        self.literal = "".join(t for t in tokens if isinstance(t, str)) \
            if all(isinstance(t, str) for t in tokens) else None
        # The longest run of literal characters, to look for with str.find.
        self.run, self.run_at, start = "", 0, 0
        for i, t in enumerate([*tokens, None]):
            if not isinstance(t, str):
                if i - start > len(self.run):
                    self.run = "".join(t for t in tokens[start:i] if isinstance(t, str))
                    self.run_at = start
                start = i + 1

    def __len__(self) -> int:
        return len(self.tokens)

    def lead(self) -> str:
        """The literal characters the chunk starts with."""
        out = []
        for t in self.tokens:
            if not isinstance(t, str):
                break
            out.append(t)
        return "".join(out)

    def at(self, name: str, i: int) -> bool:
        """Whether the chunk matches `name` at `i` (where it fits)."""
        if self.literal is not None:
            return name.startswith(self.literal, i)
        return all(t == c if isinstance(t, str) else t.matches(c)
                   for t, c in zip(self.tokens, name[i:i + len(self.tokens)], strict=True))

    def find(self, name: str, start: int, end: int) -> int:
        """The first place in name[start:end] where the chunk matches, or -1."""
        if self.literal is not None:
            return name.find(self.literal, start, end)
        last = end - len(self.tokens)
        if not self.run:
            return next((i for i in range(start, last + 1) if self.at(name, i)), -1)
        tail = len(self.tokens) - self.run_at
        i = name.find(self.run, start + self.run_at, end - tail + len(self.run))
        while i != -1:
            if self.at(name, i - self.run_at):
                return i - self.run_at
            i = name.find(self.run, i + 1, end - tail + len(self.run))
        return -1


class _Name:
    """The glob of one folder or file name: chunks, with a `*` between each two."""

    __slots__ = ("chunks", "literal", "size")

    def __init__(self, glob: str, pattern: str) -> None:
        chunks: list[list[_Token]] = [[]]
        i = 0
        while i < len(glob):
            c = glob[i]
            if c == "*":
                if chunks[-1] or len(chunks) == 1:  # `**` within a name is a `*`
                    chunks.append([])
            elif c == "?":
                chunks[-1].append(_ANY)
            elif c == "[" and (end := _class_end(glob, i)) != -1:
                chunks[-1].append(_class(glob[i + 1:end], pattern))
                i = end
            else:
                chunks[-1].append(c)
            i += 1
        self.chunks = tuple(_Chunk(c) for c in chunks)
        self.size = sum(len(c) for c in self.chunks)  # the fewest characters it matches
        self.literal = self.chunks[0].literal if len(self.chunks) == 1 else None

    def runs(self) -> list[str]:
        """Runs of literal characters that a matching name holds."""
        return [c.run for c in self.chunks if c.run]

    def match(self, name: str) -> bool:
        first, last = self.chunks[0], self.chunks[-1]
        if len(self.chunks) == 1:
            return len(name) == len(first) and first.at(name, 0)
        end = len(name) - len(last)
        if len(name) < self.size or not first.at(name, 0) or not last.at(name, end):
            return False
        i = len(first)
        for chunk in self.chunks[1:-1]:
            i = chunk.find(name, i, end)
            if i == -1:
                return False
            i += len(chunk)
        return True


def _names_at(parts: Sequence[_Name], names: Sequence[str], i: int) -> bool:
    return all(p.match(n) for p, n in zip(parts, names[i:i + len(parts)], strict=True))


@dataclass(frozen=True)
class Glob:
    """A compiled data_files glob; see `compile_glob`."""

    pattern: str
    chunks: tuple[tuple[_Name, ...], ...]  # names, with a `**` between each two
    prefix: str  # every matching path starts with this
    runs: tuple[str, ...]  # and holds each of these

    def match(self, path: str) -> bool:
        """Whether `path` matches. A `**` stands for any names, fsspec's for non-empty
        ones: the same for paths as git stores them, which have no empty names."""
        if not path.startswith(self.prefix):
            return False
        for run in self.runs:  # a quick no, for most paths
            if run not in path:
                return False
        names = path.split("/")
        first, last = self.chunks[0], self.chunks[-1]
        if len(self.chunks) == 1:
            return len(names) == len(first) and _names_at(first, names, 0)
        end = len(names) - len(last)
        if end < len(first) or not _names_at(first, names, 0) \
                or not _names_at(last, names, end):
            return False
        i = len(first)
        for chunk in self.chunks[1:-1]:
            i = next((j for j in range(i, end - len(chunk) + 1)
                      if _names_at(chunk, names, j)), -1)
            if i == -1:
                return False
            i += len(chunk)
        return True


@functools.lru_cache(maxsize=1024)
def compile_glob(pattern: str) -> Glob:
    """A glob as fsspec (>= 2023.12) reads it: `*` and `?` stay within a folder, `[...]` is
    a set of characters, a `**` folder spans any number of folders. PreviewError for a
    pattern that is not a valid glob, or is longer than MAX_PATTERN_CHARS."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PreviewError(f"The data_files pattern {_short(pattern, 80)!r} is too long.")
    names = pattern.split("/")
    chunks: list[list[_Name]] = [[]]
    for i, name in enumerate(names):
        if name != "**":
            chunks[-1].append(_Name(name, pattern))
        elif i == len(names) - 1:  # a last `**` is one name or more, of any kind
            chunks[-1].append(_Name("*", pattern))
            chunks.append([])
        elif chunks[-1] or len(chunks) == 1:
            chunks.append([])
    prefix = ""
    for i, part in enumerate(chunks[0]):
        if part.literal is None:
            prefix += part.chunks[0].lead()
            break
        prefix += part.literal + ("/" if i + 1 < len(chunks[0]) or len(chunks) > 1 else "")
    runs = {r for chunk in chunks for part in chunk for r in part.runs()}
    return Glob(pattern, tuple(tuple(c) for c in chunks), prefix,
                tuple(sorted(runs, key=len, reverse=True)))


def _parts(path: str) -> list[str]:
    """PurePosixPath(path).parts for a relative path; str methods are faster, and this runs
    for every path a pattern matches."""
    return [p for p in path.split("/") if p and p != "."]


def _name(path: str) -> str:
    parts = _parts(path)
    return parts[-1] if parts else ""


def _suffixes(path: str) -> list[str]:
    return ["." + s.lower() for s in _name(path).split(".")[1:]]


def _is_data_file(path: str) -> bool:
    return any(s in MODULES or s in ARCHIVES for s in _suffixes(path))


def _hidden_count(parts: Iterable[str]) -> int:
    return sum(1 for p in parts if p.startswith(".") and set(p) != {"."})


def _unrequested(path: str, pattern: str) -> bool:
    """A hidden file, or one in a hidden or `__special` folder, that the pattern does not
    name explicitly: `datasets` leaves those out."""
    p, q = _parts(path), _parts(pattern)
    if _hidden_count(p) != _hidden_count(q):
        return True
    special = [x for x in p[:-1] if x.startswith("__")]
    return len(special) != len([x for x in q[:-1] if x.startswith("__")])


def _clean(pattern: str) -> str:
    return pattern.strip().removeprefix("./").lstrip("/")


def resolve(pattern: str, paths: list[str], base: str = "") -> list[str]:
    """The repo files (below folder `base`) that a data_files pattern names, from `paths`
    (sorted), sorted."""
    pattern = _clean(pattern)
    full = f"{base.strip('/')}/{pattern}" if base.strip("/") else pattern
    glob = compile_glob(full)
    ignore = FILES_TO_IGNORE - {_name(full)}
    # Only paths that start with the pattern's literal prefix can match (in sorted paths,
    # one run of them) and hold its literal runs: cheap tests that leave few to match.
    start = bisect.bisect_left(paths, glob.prefix)
    candidates = list(itertools.takewhile(lambda p: p.startswith(glob.prefix),
                                          itertools.islice(paths, start, None))) \
        if glob.prefix else paths
    for run in glob.runs:
        candidates = [p for p in candidates if run in p]
    return [p for p in candidates
            if glob.match(p) and _name(p) not in ignore
            and not _unrequested(p, full) and _is_data_file(p)]


def _split_order(names: Iterable[str]) -> list[str]:
    names = set(names)
    known = [s for s in (TRAIN, VALIDATION, TEST) if s in names]
    return known + sorted(names - set(known))


def default_patterns(paths: list[str], base: str = "") -> dict[str, list[str]]:
    """split -> patterns found by the naming conventions, as `get_data_patterns` does."""
    sharded = resolve(SPLIT_PATTERN_SHARDED, paths, base)
    if sharded:
        splits = {m.group(1) for p in sharded
                  if (m := _SHARDED_SPLIT.match(PurePosixPath(p).name))}
        if splits and all(_SPLIT_NAME.match(s) for s in splits):
            return {s: [SPLIT_PATTERN_SHARDED.replace("*", s, 1)] for s in _split_order(splits)}
    for patterns in DEFAULT_PATTERNS:
        found = {split: pats for split, pats in patterns.items()
                 if any(resolve(p, paths, base) for p in pats)}
        if found:
            return found
    return {}


def sanitize_patterns(data_files: Any) -> dict[str, list[str]]:
    """README `data_files` (a string, a list, a list of {split, path}, or a mapping) ->
    split -> patterns; PreviewError when it has none of these shapes."""
    def as_list(value: Any) -> list[str]:
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) for v in items):
            raise PreviewError("README.md `configs`: data_files paths must be strings.")
        return items

    if isinstance(data_files, str):
        return {TRAIN: [data_files]}
    if isinstance(data_files, Mapping):
        return {str(k): as_list(v) for k, v in data_files.items()}
    if isinstance(data_files, list):
        if not any(isinstance(d, Mapping) for d in data_files):
            return {TRAIN: as_list(data_files)}
        out: dict[str, list[str]] = {}
        for d in data_files:
            if not (isinstance(d, Mapping) and "split" in d and "path" in d):
                raise PreviewError("README.md `configs`: each data_files entry must have a "
                                   "`split` and a `path`.")
            if str(d["split"]) in out:
                raise PreviewError(f"README.md `configs`: split {d['split']!r} is listed "
                                   "twice.")
            out[str(d["split"])] = as_list(d["path"])
        return out
    raise PreviewError("README.md `configs`: data_files must be a path, a list or a mapping.")


def _module_of(files: list[str]) -> str | None:
    """The builder `datasets` would pick for these files: the most common extension."""
    counts = Counter(s for f in files for s in _suffixes(f))

    def key(item: tuple[str, int]) -> tuple[Any, ...]:
        ext, n = item
        return (n, *(ext == p for p in _PREFERRED), ext)

    for ext, _ in sorted(counts.items(), key=key, reverse=True):
        if ext in MODULES:
            return MODULES[ext]
    return None


def _splits(patterns: dict[str, list[str]], paths: list[str], base: str) -> tuple[SplitFiles, ...]:
    out = []
    for split, pats in patterns.items():
        files = sorted({f for p in pats for f in resolve(p, paths, base)})
        module = _module_of(files)
        # Keep the files of the split's format (a README image next to csv files is no row).
        files = [f for f in files if module is None or any(
            MODULES.get(s) == module for s in _suffixes(f))]
        if files:
            out.append(SplitFiles(split, tuple(files)))
    return tuple(out)


def configs_from_files(paths: Iterable[str], card: Mapping[str, Any]) -> list[DatasetConfig]:
    """The configs of a dataset with these files and this README front matter."""
    paths = sorted(paths)
    declared = card.get("configs")
    if not declared:
        splits = _splits(default_patterns(paths), paths, "")
        return [DatasetConfig(DEFAULT_CONFIG, splits, True)] if splits else []
    if not isinstance(declared, list):
        raise PreviewError("README.md `configs` must be a list.")
    out, seen = [], set()
    for entry in declared:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("config_name"), str):
            raise PreviewError("README.md `configs`: each config needs a `config_name`.")
        name = entry["config_name"]
        if name in seen:
            raise PreviewError(f"README.md `configs`: config {name!r} is listed twice.")
        seen.add(name)
        base = entry.get("data_dir") or ""
        if not isinstance(base, str):
            raise PreviewError("README.md `configs`: data_dir must be a string.")
        data_files = entry.get("data_files")
        patterns = (sanitize_patterns(data_files) if data_files is not None
                    else default_patterns(paths, base))
        splits = _splits(patterns, paths, base)
        is_default = len(declared) == 1 or name == DEFAULT_CONFIG or bool(entry.get("default"))
        out.append(DatasetConfig(name, splits, is_default))
    return out


def _card(git: GitRepo, commit: str) -> dict[str, Any]:
    try:
        readme = core_tree.get_file(git, commit, "README.md")
    except HverError:
        return {}
    if readme.lfs is not None:
        return {}
    try:
        return parse_front_matter(git.blob(readme.oid).decode("utf-8", "replace"))
    except CardError as e:
        raise PreviewError(str(e)) from None


@dataclass(frozen=True)
class DatasetLayout:
    """A dataset's configs at one commit, worked out from its first MAX_FILES files."""

    configs: tuple[DatasetConfig, ...]
    files_cut: bool  # the dataset has more files, which were not looked at

    @property
    def note(self) -> str | None:
        if not self.files_cut:
            return None
        return (f"This dataset has more than {MAX_FILES:,} files: its configs and splits "
                f"are worked out from the first {MAX_FILES:,}.")

    def weight(self) -> int:
        return 1 + sum(len(s.files) for c in self.configs for s in c.splits)


class _LayoutCache:
    """The layouts (or README `configs` problems) of recently viewed commits. A commit
    never changes, so an entry stays true; the least recently used go first, once there
    are more than `entries` or they hold more than `files` file paths in all."""

    def __init__(self, entries: int, files: int) -> None:
        self.entries, self.files = entries, files
        self._items: OrderedDict[tuple[int, str], DatasetLayout | str] = OrderedDict()
        self._weight = 0
        self._lock = threading.Lock()

    @staticmethod
    def _weigh(value: DatasetLayout | str) -> int:
        return value.weight() if isinstance(value, DatasetLayout) else 1

    def get(self, key: tuple[int, str]) -> DatasetLayout | str | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple[int, str], value: DatasetLayout | str) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._weight -= self._weigh(old)
            self._items[key] = value
            self._weight += self._weigh(value)
            while len(self._items) > 1 and (len(self._items) > self.entries
                                            or self._weight > self.files):
                _, dropped = self._items.popitem(last=False)
                self._weight -= self._weigh(dropped)


_layouts = _LayoutCache(LAYOUT_CACHE_ENTRIES, LAYOUT_CACHE_FILES)


def _layout(git: GitRepo, commit: str) -> DatasetLayout:
    files = (e.path for e in git.walk(core_tree.root_tree(git, commit)) if not e.is_dir)
    paths = list(itertools.islice(files, MAX_FILES + 1))
    cut = len(paths) > MAX_FILES
    configs = configs_from_files(paths[:MAX_FILES], _card(git, commit))
    return DatasetLayout(tuple(configs), cut)


def dataset_layout(git: GitRepo, repo_pk: int, commit: str) -> DatasetLayout:
    """The configs of the dataset repo `repo_pk` at `commit` (a commit sha), from its first
    MAX_FILES files (in git's order); PreviewError when its README's `configs` cannot be
    read. Kept for later views of the same commit."""
    key = (repo_pk, commit)
    found = _layouts.get(key)
    if found is None:
        try:
            found = _layout(git, commit)
        except PreviewError as e:
            found = str(e)
        _layouts.put(key, found)
    if isinstance(found, str):
        raise PreviewError(found)
    return found


def default_config(configs: Sequence[DatasetConfig]) -> DatasetConfig | None:
    return next((c for c in configs if c.default), configs[0] if configs else None)


def find(configs: Sequence[DatasetConfig], config: str, split: str) \
        -> tuple[DatasetConfig, SplitFiles] | None:
    for c in configs:
        if c.name == config:
            s = c.split(split)
            return (c, s) if s is not None else None
    return None


# --- reading the first rows ------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    type: str


@dataclass
class Rows:
    columns: list[Column]
    rows: list[list[str]]
    num_rows: int | None  # rows in the whole file, when the format says so cheaply
    more_columns: int = 0  # columns past MAX_COLUMNS, not shown


@dataclass
class Preview:
    config: str
    split: str
    path: str
    files: int  # how many data files the split has
    columns: list[Column]
    rows: list[list[str]]
    num_rows: int | None
    error: str | None = None
    more_columns: int = 0
    note: str | None = None  # about the dataset's files, as DatasetLayout.note


def size_text(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000:
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<binary {size_text(len(value))}>"
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def display(value: Any, media: str | None = None) -> str:
    """A cell as text: nested values as compact JSON, bytes as a size, at most
    MAX_CELL_CHARS characters. `media` names a `datasets` Image/Audio/... column."""
    if media and isinstance(value, Mapping) and "bytes" in value:
        data = value.get("bytes")
        if isinstance(data, (bytes, bytearray)):
            return f"<{media} {size_text(len(data))}>"
        return _short(f"<{media} {value.get('path') or ''}>".replace(" >", ">"), MAX_CELL_CHARS)
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, (bytes, bytearray, memoryview)):
        text = _jsonable(value)
    elif isinstance(value, (Mapping, list, tuple)):
        text = json.dumps(_jsonable(value), ensure_ascii=False, separators=(",", ":"))
    else:
        text = str(value)
    return _short(text, MAX_CELL_CHARS)


def _media_columns(schema: pa.Schema) -> dict[str, str]:
    """Columns that `datasets` features mark as Image, Audio, Video or Pdf."""
    raw = (schema.metadata or {}).get(b"huggingface")
    try:
        features = json.loads(raw)["info"]["features"] if raw else {}
    except (ValueError, KeyError, TypeError):
        return {}
    if not isinstance(features, dict):
        return {}
    return {name: str(f["_type"]).lower() for name, f in features.items()
            if isinstance(f, dict) and f.get("_type") in ("Image", "Audio", "Video", "Pdf")}


def _from_table(table: pa.Table, num_rows: int | None, more_columns: int = 0) -> Rows:
    """The table's first MAX_COLUMNS columns as text; `more_columns` were left out before."""
    if table.num_columns > MAX_COLUMNS:
        more_columns += table.num_columns - MAX_COLUMNS
        table = table.select(range(MAX_COLUMNS))
    media = _media_columns(table.schema)
    columns = [Column(f.name, _short(str(f.type), MAX_TYPE_CHARS)) for f in table.schema]
    values = [[display(v, media.get(f.name)) for v in table.column(i).to_pylist()]
              for i, f in enumerate(table.schema)]
    return Rows(columns, [list(r) for r in zip(*values, strict=True)] if values else [],
                num_rows, more_columns)


def _from_records(records: list[dict[str, Any]], num_rows: int | None = None,
                  more_columns: int = 0) -> Rows:
    """The records' first MAX_COLUMNS keys as columns; `more_columns` were left out before."""
    names: dict[str, None] = {}
    for r in records:
        names.update(dict.fromkeys(r))
    shown = list(names)[:MAX_COLUMNS]
    more_columns += len(names) - len(shown)
    columns = []
    for name in shown:
        try:
            kind = str(pa.array([r.get(name) for r in records]).type)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            kind = "mixed"
        columns.append(Column(name, _short(kind, MAX_TYPE_CHARS)))
    rows = [[display(r.get(name)) for name in shown] for r in records]
    return Rows(columns, rows, num_rows, more_columns)


class _Budget(io.RawIOBase):
    """A read-only file that refuses, with a PreviewError, to read more than `budget`
    bytes in all: a parquet file's footer or first pages may be of any size."""

    def __init__(self, fh: BinaryIO, budget: int, message: str) -> None:
        super().__init__()
        self._fh, self._left, self._message = fh, budget, message

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > self._left:
            # Refused before reading: a reader asks for a whole page or footer at once.
            raise PreviewError(self._message)
        data = self._fh.read(size)
        self._left -= len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def read_parquet(fh: BinaryIO, limit: int,
                 max_bytes: int = MAX_PARQUET_READ_BYTES) -> Rows:
    """The first `limit` rows: the footer, then the first pages of the first MAX_COLUMNS
    columns of the row groups those rows are in, reading at most `max_bytes` in all.

    pyarrow reads a whole column chunk at once unless given a `buffer_size`; with one it
    reads a chunk's pages through a buffer of that size, so the first rows of a large row
    group cost a few pages.
    """
    budget = _Budget(fh, max_bytes, f"This parquet file's first rows are too large to "
                     f"preview (more than {size_text(max_bytes)} to read).")
    pf = pq.ParquetFile(budget, pre_buffer=False, buffer_size=1 << 20)
    meta, schema = pf.metadata, pf.schema_arrow
    more_columns = max(0, len(schema) - MAX_COLUMNS)
    columns = schema.names[:MAX_COLUMNS] if more_columns else None
    if more_columns:
        schema = pa.schema(list(schema)[:MAX_COLUMNS], metadata=schema.metadata)
    groups, count = [], 0
    for i in range(meta.num_row_groups):
        if count >= limit:
            break
        groups.append(i)
        count += meta.row_group(i).num_rows
    batches = []
    if groups and limit > 0:
        count = 0
        for batch in pf.iter_batches(batch_size=limit, row_groups=groups, columns=columns):
            batches.append(batch)
            count += batch.num_rows
            if count >= limit:
                break
    table = pa.Table.from_batches(batches, schema=schema).slice(0, limit)
    return _from_table(table, meta.num_rows, more_columns)


def _head(fh: BinaryIO, data: bytes, lines: int) -> tuple[bytes, bool]:
    """`data` (the file's first bytes, read so far) extended to hold at least `lines`
    newlines, up to MAX_HEAD_BYTES; and whether the file ended."""
    count = data.count(b"\n")
    while count < lines and len(data) < MAX_HEAD_BYTES:
        chunk = fh.read(min(_READ_CHUNK, MAX_HEAD_BYTES - len(data)))
        if not chunk:
            return data, True
        data += chunk
        count += chunk.count(b"\n")
    return data, False


def _first_lines(data: bytes, n: int) -> bytes:
    """The first `n` whole lines of `data` (fewer when it holds fewer): a line cut off by
    the read is no row, and lines past the `n`th are not parsed."""
    end = -1
    for _ in range(n):
        nxt = data.find(b"\n", end + 1)
        if nxt == -1:
            break
        end = nxt
    return data[: end + 1]


def read_csv(fh: BinaryIO, limit: int, delimiter: str = ",") -> Rows:
    """The first `limit` rows, parsed from the first lines of the file only.

    pyarrow's streaming reader reads ahead to the end of a file object, so the lines are
    read here and pyarrow parses them in memory. A quoted value may span lines: when the
    lines held fewer rows than asked for, more are read, up to MAX_HEAD_BYTES.
    """
    read_options = pa_csv.ReadOptions(use_threads=False)
    parse_options = pa_csv.ParseOptions(delimiter=delimiter, newlines_in_values=True)
    data, lines = b"", limit + 1  # the header, then the rows
    while True:
        data, ended = _head(fh, data, lines)
        head = data if ended else _first_lines(data, lines)
        table = pa_csv.read_csv(pa.BufferReader(head), read_options=read_options,
                                parse_options=parse_options)
        if table.num_rows >= limit or ended or len(data) >= MAX_HEAD_BYTES:
            return _from_table(table.slice(0, limit), None)
        lines *= 2


def head_lines(fh: BinaryIO, limit: int, max_bytes: int = MAX_HEAD_BYTES) -> Iterator[bytes]:
    """The first `limit` non-blank lines, reading at most `max_bytes`. A line cut off by
    that budget is not yielded."""
    pending, read, found = b"", 0, 0
    while found < limit:
        chunk = fh.read(min(_READ_CHUNK, max_bytes - read)) if read < max_bytes else b""
        read += len(chunk)
        pending += chunk
        *lines, pending = pending.split(b"\n")
        if not chunk:  # the end of the file, or of the budget
            if read < max_bytes or (read == max_bytes and not pending):
                lines.append(pending)
            pending = b""
        for line in lines:
            if line.strip():
                yield line
                found += 1
                if found >= limit:
                    return
        if not chunk:
            return


def _json_line(line: bytes, number: int) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError as e:
        raise PreviewError(f"Line {number} is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise PreviewError(f"Line {number} is not a JSON object.")
    return value


def read_jsonl(fh: BinaryIO, limit: int) -> Rows:
    """The first `limit` rows of a JSON Lines file, from its first lines only."""
    records = [_json_line(line, i) for i, line in enumerate(head_lines(fh, limit), 1)]
    return _from_records(records)


def read_json(fh: BinaryIO, limit: int) -> Rows:
    """A `.json` file: JSON Lines when its first line is an object, else one document
    (an array of objects, or an object of columns) when it is small enough."""
    first = next(head_lines(fh, 1), b"")
    try:
        json.loads(first)
        is_lines = first.lstrip().startswith(b"{")
    except ValueError:
        is_lines = False
    fh.seek(0)
    if is_lines:
        return read_jsonl(fh, limit)
    data = fh.read(MAX_JSON_DOCUMENT_BYTES + 1)
    if len(data) > MAX_JSON_DOCUMENT_BYTES:
        raise PreviewError("This JSON file is one large document, too large to preview; "
                           "JSON Lines files preview at any size.")
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise PreviewError(f"Not valid JSON: {e}") from None
    if isinstance(doc, dict) and doc and all(isinstance(v, list) for v in doc.values()):
        # An object of columns: only the rows and columns shown are made.
        n = max(len(v) for v in doc.values())
        shown = list(doc.items())[:MAX_COLUMNS]
        records = [{k: v[i] if i < len(v) else None for k, v in shown}
                   for i in range(min(n, limit))]
        return _from_records(records, n, len(doc) - len(shown))
    if isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list) or not all(isinstance(r, dict) for r in doc):
        raise PreviewError("The JSON document is not a list of objects.")
    return _from_records(doc[:limit], len(doc))


def read_text(fh: BinaryIO, limit: int) -> Rows:
    lines = [line.decode("utf-8", "replace").rstrip("\r") for line in head_lines(fh, limit)]
    return Rows([Column("text", "string")], [[display(x)] for x in lines], None)


READERS: dict[str, Callable[[BinaryIO, int], Rows]] = {
    ".parquet": read_parquet, ".geoparquet": read_parquet, ".gpq": read_parquet,
    ".csv": read_csv, ".tsv": lambda fh, n: read_csv(fh, n, "\t"),
    ".jsonl": read_jsonl, ".ndjson": read_jsonl, ".json": read_json, ".txt": read_text,
}


def read_rows(fh: BinaryIO, path: str, limit: int = ROWS) -> Rows:
    """The first `limit` rows of the data file `path`, open as `fh`."""
    suffix = PurePosixPath(path).suffix.lower()
    reader = READERS.get(suffix)
    if reader is None:
        raise PreviewError(f"{suffix or 'These'} files cannot be previewed here yet.")
    return reader(fh, limit)


def preview_split(hub: Hub, git: GitRepo, repo_pk: int, commit: str, config: DatasetConfig,
                  split: SplitFiles, limit: int = ROWS) -> Preview:
    """The first rows of a split, from its first file. A file that cannot be read gives
    a Preview with an `error` message, never an exception."""
    path = split.files[0]
    preview = Preview(config.name, split.name, path, len(split.files), [], [], None)
    try:
        info = core_tree.get_file(git, commit, path)
        with open_file(hub, git, repo_pk, info) as fh:
            rows = read_rows(fh, path, limit)
    except PreviewError as e:
        preview.error = f"{path}: {e}"
    except HverError as e:
        preview.error = e.message
    # Deliberately broad: the file is user data, and pyarrow or a decoder may reject it in
    # many ways (ArrowInvalid, OSError, UnicodeDecodeError...); each is a message, not a 500.
    except Exception as e:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        preview.error = _short(f"{path} could not be read as {PurePosixPath(path).suffix} "
                               f"data: {detail}", MAX_ERROR_CHARS)
    else:
        preview.columns, preview.rows, preview.num_rows = rows.columns, rows.rows, rows.num_rows
        preview.more_columns = rows.more_columns
    return preview
