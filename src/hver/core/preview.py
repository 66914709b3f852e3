"""Dataset previews: a dataset repo's configs and splits, and the first rows of a split.

Configs and splits are worked out from the repo's file names the way the `datasets`
library does (`datasets/data_files.py` and `load.py`), for the common layouts: the
`configs` of the README front matter, else the split naming conventions, else every
data file in one `train` split. Rows come from a split's first data file, read with
pyarrow through `content.open_file`, and the readers stop at what the rows need: a
parquet footer and the first row groups, the first lines of a csv or a jsonl. For a file
kept in LFS or as Xet chunks only those bytes are fetched, whatever the file's size.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
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
MAX_PATTERN_STARS = 12

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


def _segment_regex(segment: str) -> str:
    out, i = [], 0
    while i < len(segment):
        c = segment[i]
        if c == "*":
            while i + 1 < len(segment) and segment[i + 1] == "*":
                i += 1
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and (end := segment.find("]", i + 2)) != -1:
            body = segment[i + 1:end]
            negate = body.startswith("!")
            body = body[1:] if negate else body
            body = body.replace("\\", "\\\\").replace("[", "\\[")
            if body.startswith("^"):
                body = "\\" + body
            out.append(f"[{'^' if negate else ''}{body}]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob as fsspec (>= 2023.12) reads it: `*` stays within a folder, a `**` segment
    spans any number of folders. PreviewError for a pattern that is not a valid glob, or
    too long or wild to match quickly (a README's patterns are anyone's input)."""
    if len(pattern) > MAX_PATTERN_CHARS or pattern.count("*") > MAX_PATTERN_STARS:
        raise PreviewError(f"The data_files pattern {_short(pattern, 80)!r} is too complex.")
    parts = [p for i, p in enumerate(pattern.split("/"))
             if not (p == "**" and i > 0 and pattern.split("/")[i - 1] == "**")]
    out = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
        else:
            out.append(_segment_regex(part) + ("" if last else "/"))
    try:
        return re.compile("".join(out) + r"\Z")
    except re.error:
        raise PreviewError(f"The data_files pattern {_short(pattern, 80)!r} is not a valid "
                           "glob.") from None


def _suffixes(path: str) -> list[str]:
    return ["." + s.lower() for s in PurePosixPath(path).name.split(".")[1:]]


def _is_data_file(path: str) -> bool:
    return any(s in MODULES or s in ARCHIVES for s in _suffixes(path))


def _hidden_count(parts: Iterable[str]) -> int:
    return sum(1 for p in parts if p.startswith(".") and set(p) != {"."})


def _unrequested(path: str, pattern: str) -> bool:
    """A hidden file, or one in a hidden or `__special` folder, that the pattern does not
    name explicitly: `datasets` leaves those out."""
    p, q = PurePosixPath(path), PurePosixPath(pattern)
    if _hidden_count(p.parts) != _hidden_count(q.parts):
        return True
    special = [x for x in p.parent.parts if x.startswith("__")]
    return len(special) != len([x for x in q.parent.parts if x.startswith("__")])


def _clean(pattern: str) -> str:
    return pattern.strip().removeprefix("./").lstrip("/")


def resolve(pattern: str, paths: list[str], base: str = "") -> list[str]:
    """The repo files (below folder `base`) that a data_files pattern names, sorted."""
    pattern = _clean(pattern)
    full = f"{base.strip('/')}/{pattern}" if base.strip("/") else pattern
    regex = glob_regex(full)
    ignore = FILES_TO_IGNORE - {PurePosixPath(full).name}
    return sorted(p for p in paths
                  if regex.match(p) and PurePosixPath(p).name not in ignore
                  and not _unrequested(p, full) and _is_data_file(p))


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


def dataset_configs(git: GitRepo, commit: str) -> list[DatasetConfig]:
    """The configs of the dataset repo at `commit`; PreviewError when its README's
    `configs` cannot be read."""
    paths = [e.path for e in git.walk(core_tree.root_tree(git, commit)) if not e.is_dir]
    return configs_from_files(paths, _card(git, commit))


def default_config(configs: list[DatasetConfig]) -> DatasetConfig | None:
    return next((c for c in configs if c.default), configs[0] if configs else None)


def find(configs: list[DatasetConfig], config: str, split: str) \
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


def _from_table(table: pa.Table, num_rows: int | None) -> Rows:
    media = _media_columns(table.schema)
    columns = [Column(f.name, _short(str(f.type), MAX_TYPE_CHARS)) for f in table.schema]
    values = [[display(v, media.get(f.name)) for v in table.column(i).to_pylist()]
              for i, f in enumerate(table.schema)]
    return Rows(columns, [list(r) for r in zip(*values, strict=True)] if values else [],
                num_rows)


def _from_records(records: list[dict[str, Any]], num_rows: int | None = None) -> Rows:
    names: dict[str, None] = {}
    for r in records:
        names.update(dict.fromkeys(r))
    columns = []
    for name in names:
        try:
            kind = str(pa.array([r.get(name) for r in records]).type)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            kind = "mixed"
        columns.append(Column(name, _short(kind, MAX_TYPE_CHARS)))
    rows = [[display(r.get(name)) for name in names] for r in records]
    return Rows(columns, rows, num_rows)


def read_parquet(fh: BinaryIO, limit: int) -> Rows:
    """The first `limit` rows, reading the footer and only the row groups they are in."""
    pf = pq.ParquetFile(fh, pre_buffer=False)
    meta = pf.metadata
    groups, count = [], 0
    for i in range(meta.num_row_groups):
        if count >= limit:
            break
        groups.append(i)
        count += meta.row_group(i).num_rows
    batches = []
    if groups and limit > 0:
        count = 0
        for batch in pf.iter_batches(batch_size=limit, row_groups=groups):
            batches.append(batch)
            count += batch.num_rows
            if count >= limit:
                break
    table = pa.Table.from_batches(batches, schema=pf.schema_arrow).slice(0, limit)
    return _from_table(table, meta.num_rows)


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
        n = max(len(v) for v in doc.values())
        doc = [{k: v[i] if i < len(v) else None for k, v in doc.items()} for i in range(n)]
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
    return preview
