"""The LFS side of a repo: which objects it holds, and what a batch request needs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from hver.core.hub import Hub
from hver.db.models import LfsObject, Repo
from hver.errors import BadRequest
from hver.storage.lfs import blob_key, check_oid

MAX_BATCH_OBJECTS = 1000


@dataclass
class BatchObject:
    oid: str
    size: int
    present: bool = False  # already stored for this repo: nothing to transfer
    parts: int = 0  # > 0: upload in this many parts
    error: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def parse_objects(objects: Any) -> list[tuple[str, int]]:
    if not isinstance(objects, list):
        raise BadRequest("'objects' must be a list.")
    if len(objects) > MAX_BATCH_OBJECTS:
        raise BadRequest(f"At most {MAX_BATCH_OBJECTS} objects per batch request.")
    out = []
    for obj in objects:
        if not isinstance(obj, dict):
            raise BadRequest("Each object must be a JSON object.")
        oid, size = check_oid(obj.get("oid")), obj.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadRequest(f"Invalid size for object {oid}.")
        out.append((oid, size))
    return out


def repo_objects(hub: Hub, repo: Repo, oids: set[str]) -> dict[str, int]:
    with hub.db.read() as session:
        return dict(
            session.execute(
                select(LfsObject.oid, LfsObject.size).where(
                    LfsObject.repo_id == repo.id, LfsObject.oid.in_(oids)
                )
            ).tuples().all()
        )


def plan_upload(hub: Hub, repo: Repo, objects: list[tuple[str, int]]) -> list[BatchObject]:
    known = repo_objects(hub, repo, {oid for oid, _ in objects})
    stored = stored_objects(hub, repo.id, set(known))
    out = []
    threshold = hub.settings.lfs_multipart_threshold
    for oid, size in objects:
        obj = BatchObject(oid, size)
        if oid in known and known[oid] == size and oid in stored:
            obj.present = True
        elif size >= threshold:
            obj.parts = max(1, math.ceil(size / hub.settings.lfs_part_size))
        out.append(obj)
    return out


def plan_download(hub: Hub, repo: Repo, objects: list[tuple[str, int]]) -> list[BatchObject]:
    known = repo_objects(hub, repo, {oid for oid, _ in objects})
    stored = stored_objects(hub, repo.id, set(known))
    out = []
    for oid, size in objects:
        obj = BatchObject(oid, known.get(oid, size))
        if oid not in stored:
            obj.error = {"code": 404, "message": "Object does not exist"}
        out.append(obj)
    return out


def register_object(hub: Hub, repo_id: int, oid: str, size: int) -> None:
    """Record that `repo_id` holds the (already stored and verified) object."""
    try:
        with hub.db.write() as session:
            if session.get(LfsObject, (repo_id, oid)) is None:
                session.add(LfsObject(repo_id=repo_id, oid=oid, size=size))
    except IntegrityError:
        pass  # a concurrent upload of the same object won the race: same row


def has_object(hub: Hub, repo_id: int, oid: str) -> int | None:
    with hub.db.read() as session:
        row = session.get(LfsObject, (repo_id, oid))
        return row.size if row is not None else None


def stored_objects(hub: Hub, repo_id: int, oids: set[str]) -> set[str]:
    """Those of a repo's `oids` whose content is stored: as a Xet file or an LFS blob."""
    if not oids:
        return set()
    with hub.db.read() as session:
        xet = set(session.scalars(select(LfsObject.oid).where(
            LfsObject.repo_id == repo_id, LfsObject.oid.in_(oids),
            LfsObject.xet_hash.is_not(None))))
    return xet | {oid for oid in oids - xet if hub.blobs.exists(blob_key(oid))}
