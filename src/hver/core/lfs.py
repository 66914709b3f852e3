"""The LFS side of a repo: which objects it holds, and what a batch request needs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError

from hver.core.hub import Hub
from hver.core.objects import held_object, held_objects, record_contribution
from hver.db.models import LfsObject, Repo
from hver.errors import BadRequest, Conflict
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


def plan_upload(hub: Hub, repo: Repo, objects: list[tuple[str, int]],
                contributor: int | None = None) -> list[BatchObject]:
    """What to transfer: objects the repo holds (or, for a contributor, that they uploaded
    to it already) are present."""
    held = held_objects(hub, repo.id, {oid for oid, _ in objects}, contributor)
    out = []
    threshold = hub.settings.lfs_multipart_threshold
    for oid, size in objects:
        obj = BatchObject(oid, size)
        if oid in held and held[oid].size == size:
            obj.present = True
        elif size >= threshold:
            obj.parts = max(1, math.ceil(size / hub.settings.lfs_part_size))
        out.append(obj)
    return out


MIRROR_BATCH = 100  # a mirrored repo's objects one LFS batch may have fetched


def plan_download(hub: Hub, repo: Repo, objects: list[tuple[str, int]]) -> list[BatchObject]:
    """Only objects the repo holds can be downloaded from it, whoever else holds them. A
    mirrored repo's are brought in from the upstream first (`hver.mirror`)."""
    held = held_objects(hub, repo.id, {oid for oid, _ in objects})
    if hub.mirror is not None and repo.mirror_upstream is not None:
        # Fetched side by side, each once, at most MIRROR_BATCH a request (the sizes
        # are the client's: the upstream must hold each at that size).
        missing = sorted({(oid, size) for oid, size in objects if oid not in held})
        parts = [hub.mirror.start(repo, oid, size) for oid, size in missing[:MIRROR_BATCH]]
        for part in parts:
            if part is not None:
                part.wait_done(None)
        if parts:
            held = held_objects(hub, repo.id, {oid for oid, _ in objects})
    out = []
    for oid, size in objects:
        obj = BatchObject(oid, held[oid].size if oid in held else size)
        if oid not in held:
            obj.error = {"code": 404, "message": "Object does not exist"}
        out.append(obj)
    return out


def repo_by_pk(hub: Hub, repo_pk: int) -> Repo | None:
    """The repo a signed URL names by primary key (its signature also names the storage
    key, which a later repo never shares)."""
    if not 0 < repo_pk < 2**63:  # beyond any id, and beyond what the database can compare
        return None
    with hub.db.read() as session:
        return session.get(Repo, repo_pk)


def register_object(hub: Hub, repo_id: int, oid: str, size: int,
                    contributor: int | None = None) -> None:
    """Record that `repo_id` holds the (already stored and verified) object; for a
    `contributor` (an account that may not write the repo), that they uploaded it
    (`core.objects.record_contribution`).

    The blob is looked for again under the write lock: a blob that was stored already
    when this upload arrived may have been removed since, by the last holder deleting
    it for good (`core.objects.release_held`, in a write transaction of its own)."""
    try:
        with hub.db.write() as session:
            if not hub.blobs.exists(blob_key(oid)):
                raise Conflict(f"Object {oid} was deleted while it was being uploaded; "
                               "upload it again.")
            if contributor is not None:
                record_contribution(session, repo_id, contributor, oid, size)
            elif session.get(LfsObject, (repo_id, oid)) is None:
                session.add(LfsObject(repo_id=repo_id, oid=oid, size=size))
    except IntegrityError:
        pass  # a concurrent upload of the same object won the race: same row


def has_object(hub: Hub, repo_id: int, oid: str, contributor: int | None = None) -> int | None:
    """The size of `oid` if the repo holds it (or `contributor` uploaded it), else None."""
    obj = held_object(hub, repo_id, oid, contributor=contributor)
    return obj.size if obj is not None else None
