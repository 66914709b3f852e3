"""A sharded safetensors checkpoint's metadata in one answer: its index file and the
header of every shard it names (`get_sharded_safetensors_metadata`).

Each shard is read through `core.content.open_file`: its first 8 bytes and its JSON
header, nothing more, whatever the shard's size or storage (git, LFS blob, Xet chunks),
and only content the repo holds. Headers are checked and rebuilt from the fields the
format defines, so the answer has a known shape.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any, TypeGuard

from hver.core.content import open_file
from hver.core.hub import Hub
from hver.core.tree import get_file
from hver.errors import BadRequest, PayloadTooLarge
from hver.names import validate_path
from hver.storage.git import GitRepo

MAX_INDEX_BYTES = 16 * 1024 * 1024  # real index files are a few MB at most
MAX_HEADER_BYTES = 25_000_000  # huggingface_hub's SAFETENSORS_MAX_HEADER_LENGTH
MAX_TOTAL_HEADER_BYTES = 128 * 1024 * 1024  # all shards' headers in one answer
MAX_SHARDS = 2000
MAX_DIMS = 64


class SafetensorsError(BadRequest):
    code = "SafetensorsParsingError"


def sharded_metadata(hub: Hub, git: GitRepo, repo_pk: int, commit: str,
                     index_path: str) -> dict[str, Any]:
    """{"index": the index without its weight_map, "headers": {shard: header}} for the
    index file `index_path` at `commit`; shard names as the index gives them (relative to
    its folder). EntryNotFound for a missing file, SafetensorsError for a malformed one."""
    index_info = get_file(git, commit, index_path)
    if index_info.size > MAX_INDEX_BYTES:
        raise PayloadTooLarge(f"{index_path} is over {MAX_INDEX_BYTES} bytes.")
    with open_file(hub, git, repo_pk, index_info) as fh:
        index = _json(fh.read(MAX_INDEX_BYTES + 1), index_path)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(
            isinstance(v, str) for v in weight_map.values()):
        raise SafetensorsError(f"{index_path} is not a safetensors index: no weight_map of "
                               "tensor names to files.")
    shards = sorted(set(weight_map.values()))
    if len(shards) > MAX_SHARDS:
        raise PayloadTooLarge(f"{index_path} names over {MAX_SHARDS} files.")
    folder = posixpath.dirname(index_path)
    budget = MAX_TOTAL_HEADER_BYTES
    headers: dict[str, Any] = {}
    for shard in shards:
        path = validate_path(posixpath.join(folder, shard) if folder else shard)
        header, used = _header(hub, git, repo_pk, commit, path, budget)
        budget -= used
        headers[shard] = header
    return {"index": {k: v for k, v in index.items() if k != "weight_map"},
            "headers": headers}


def _header(hub: Hub, git: GitRepo, repo_pk: int, commit: str, path: str,
            budget: int) -> tuple[dict[str, Any], int]:
    info = get_file(git, commit, path)
    with open_file(hub, git, repo_pk, info) as fh:
        head = fh.read(8)
        length = int.from_bytes(head, "little")
        if len(head) < 8 or length < 2 or length > info.size - 8:
            raise SafetensorsError(f"{path} is not a safetensors file.")
        if length > MAX_HEADER_BYTES:
            raise SafetensorsError(f"The header of {path} is over {MAX_HEADER_BYTES} bytes.")
        if length > budget:
            raise PayloadTooLarge("The shards' headers are too large to send in one answer.")
        data = fh.read(length)
    if len(data) != length:
        raise SafetensorsError(f"{path} is truncated.")
    return _checked(_json(data, path), path), length


def _json(data: bytes, path: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise SafetensorsError(f"{path} is not valid JSON.") from None


def _checked(header: Any, path: str) -> dict[str, Any]:
    """The header rebuilt from the fields the format defines; SafetensorsError if any is
    missing or of the wrong type."""
    bad = SafetensorsError(f"The header of {path} is not a safetensors header.")
    if not isinstance(header, dict):
        raise bad
    out: dict[str, Any] = {}
    for name, tensor in header.items():
        if name == "__metadata__":
            if not isinstance(tensor, dict) or not all(
                    isinstance(v, str) for v in tensor.values()):
                raise bad
            out[name] = dict(tensor)
            continue
        if not isinstance(tensor, dict):
            raise bad
        dtype, shape, offsets = tensor.get("dtype"), tensor.get("shape"), tensor.get("data_offsets")
        if (not isinstance(dtype, str) or not _ints(shape) or len(shape) > MAX_DIMS
                or not _ints(offsets) or len(offsets) != 2):
            raise bad
        out[name] = {"dtype": dtype, "shape": shape, "data_offsets": offsets}
    return out


def _ints(value: Any) -> TypeGuard[list[int]]:
    """A list of non-negative ints."""
    return isinstance(value, list) and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
