"""The air gap: mirrored repos carried to a hub that cannot reach their upstream.

`export` writes what this hub holds of them into a directory (the layout is in
`hver.mirror.directory`); `import_` reads one as an upstream (`directory.Directory`)
and syncs from it through the mirror's own code: `refs.bring_in`/`refs.catch_up` for
the git history, `fetch.bring_object` for each large file. Before any of it becomes
visible, every byte is checked: the bundle's pack (its checksum) and its trees (what
a fetched pack is checked for), each LFS file's sha256 and size, each xorb's hash, each
recipe's file hash from its chunks, and each Xet file's decoded sha256 against its oid.
To decode them, the checks store the xorbs they checked, held by no repo (content-
addressed and readable only through a file a repo holds: a failed import leaves nothing
any reader can reach). The mirror's own path then checks each file again as it brings it
in, as it does for any upstream: an import reads each large file twice.

Export and import stream each file (a MiB at a time); what they keep in memory is one
repo's list of objects, one xorb's chunk index, and the ids of one repo's git objects.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from dulwich.object_store import MissingObjectFinder
from dulwich.objects import ObjectID
from dulwich.pack import full_unpacked_object, write_pack_data
from sqlalchemy import select, update

from hver.core import repos as core_repos
from hver.core import tree as core_tree
from hver.core import xet as core_xet
from hver.core.accounts import get_account
from hver.core.hub import Hub
from hver.db.models import LfsObject, MirrorRepo, Repo
from hver.errors import BadRequest, HverError
from hver.mirror import PACK_CAP, fetch, refs
from hver.mirror.directory import (
    BUNDLE_HEADER,
    CHUNK,
    FORMAT,
    MANIFEST,
    VERSION,
    Directory,
    ExportBroken,
    Exported,
    Held,
    bundle_name,
    lfs_name,
    read_manifest,
    read_recipe,
    recipe_name,
    xorb_name,
)
from hver.mirror.rules import Rules
from hver.mirror.upstream import MIRRORED_REFS, UpstreamUnavailable
from hver.names import RepoType
from hver.storage.git import GitRepo
from hver.storage.lfs import blob_key
from hver.xet.hashing import file_hash, hex_hash, raw_hash
from hver.xet.shard import Term
from hver.xet.xorb import XorbIndex

Say = Callable[[str], None]  # a progress line (stderr)


@dataclass(frozen=True)
class Moved:
    """A repo exported or imported: its id, the commit of its main branch, its large
    files (how many, how many bytes), and those left out of an export (no exported
    commit names them) or the error that stopped its import."""

    type: str
    id: str
    sha: str | None
    files: int
    bytes: int
    left_out: int = 0
    error: str | None = None


def mirrored_repos(hub: Hub) -> list[Repo]:
    with hub.db.read() as session:
        return list(session.scalars(select(Repo).where(Repo.mirror_upstream.is_not(None))
                                    .order_by(Repo.type, Repo.namespace, Repo.name)))


# -- export -----------------------------------------------------------------------------


def export(hub: Hub, dest: Path, repos: Sequence[Repo], say: Say | None = None
           ) -> list[Moved]:
    """Write `repos` (mirrored ones) into `dest`, the manifest last: a directory without
    one is a cut export. Files an earlier export left there are reused when their size
    is right (an import checks every byte anyway)."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / MANIFEST).unlink(missing_ok=True)  # from here on the directory is "cut"
    entries: list[dict[str, Any]] = []
    out: list[Moved] = []
    done: set[str] = set()  # files of the export written already (shared by repos)
    for repo in repos:
        if repo.mirror_upstream is None or repo.mirror_id is None:
            raise BadRequest(f"{repo.repo_id} is a local repo, not a mirror.")
        entry, moved = _export_repo(hub, dest, repo, done)
        entries.append(entry)
        out.append(moved)
        if say is not None:
            say(f"{repo.type}s/{repo.repo_id}: {moved.files} large files, "
                f"{moved.bytes:,} bytes" + (f"; {moved.left_out} named by no exported "
                                            "commit, left out" if moved.left_out else ""))
    manifest = {"format": FORMAT, "version": VERSION, "upstream": hub.settings.upstream_url,
                "exportedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "repos": entries}
    _write_atomically(dest / MANIFEST, json.dumps(manifest, indent=1).encode())
    _fsync_dir(dest)
    return out


def _export_repo(hub: Hub, dest: Path, repo: Repo, done: set[str]
                 ) -> tuple[dict[str, Any], Moved]:
    git = hub.git.open(repo.storage_key)
    tips: dict[str, str] = {}
    for prefix in MIRRORED_REFS:
        tips.update({prefix + name: sha for name, sha in git.refs(prefix).items()})
    _write_bundle(git, tips, dest / bundle_name(RepoType(repo.type), repo.repo_id))
    with hub.db.read() as session:
        held = session.execute(select(LfsObject.oid, LfsObject.size, LfsObject.xet_hash)
                               .where(LfsObject.repo_id == repo.id)
                               .order_by(LfsObject.oid)).tuples().all()
        state = session.get(MirrorRepo, repo.id)
    where = _where(git, tips.values(), {oid for oid, _, _ in held})
    objects: list[dict[str, Any]] = []
    total = 0
    for oid, size, fh in held:
        if oid not in where:
            continue
        if fh is None:
            _copy_out(hub, blob_key(oid), dest, lfs_name(oid), size, done)
        else:
            _export_xet(hub, dest, fh, done)
        commit, path = where[oid]
        total += size
        objects.append({"oid": oid, "size": size, "xetHash": fh, "commit": commit,
                        "path": path})
    entry = {"type": repo.type, "id": repo.repo_id, "upstreamId": repo.mirror_id,
             "upstream": repo.mirror_upstream, "refs": tips, "gated": repo.gated,
             "createdAt": repo.created_at.isoformat() if repo.created_at else None,
             "lastSync": state.checked_at if state is not None else 0.0,
             "objects": objects}
    moved = Moved(repo.type, repo.repo_id, repo.sha, len(objects), total,
                  left_out=len(held) - len(objects))
    return entry, moved


def _write_bundle(git: GitRepo, tips: dict[str, str], path: Path) -> None:
    """A git bundle (v2) of the refs: every object they reach, written whole as the
    pack is made (one object in memory at a time)."""
    store = git.repo.object_store
    wants = {ObjectID(sha.encode()) for sha in tips.values()}
    todo = sorted({oid for oid, _ in MissingObjectFinder(store, haves=(), wants=wants)})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with tmp.open("wb") as fh:
        fh.write(BUNDLE_HEADER)
        for name, sha in sorted(tips.items()):
            fh.write(f"{sha} {name}\n".encode())
        fh.write(b"\n")
        write_pack_data(fh.write, (full_unpacked_object(store[oid]) for oid in todo),
                        git.repo.object_format, num_records=len(todo))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _where(git: GitRepo, tips: Iterable[str], oids: set[str]) -> dict[str, tuple[str, str]]:
    """A commit reachable from the tips, and a path in it, naming each of `oids` (newest
    first; the walk stops once each is found). What no commit names is not served by
    any commit, and is left out."""
    found: dict[str, tuple[str, str]] = {}
    if not oids:
        return found
    commits = {ObjectID(git.peel(sha).encode()) for sha in tips}
    for entry in git.repo.get_walker(include=sorted(commits)):
        commit = entry.commit.id.decode()
        for f in core_tree.files_at(git, commit).files:
            if f.lfs is not None and f.lfs.oid in oids and f.lfs.oid not in found:
                found[f.lfs.oid] = (commit, f.path)
        if len(found) == len(oids):
            break
    return found


def _export_xet(hub: Hub, dest: Path, fh: str, done: set[str]) -> None:
    name = recipe_name(fh)
    if name in done:
        return
    info = core_xet.get_file(hub, fh)
    if info is None:
        raise HverError(f"Xet file {fh} is held but not recorded here.")
    xorbs = sorted({hex_hash(t.xorb) for t in info.terms})
    indexes = core_xet.xorb_indexes(hub, xorbs)
    for x in xorbs:
        _copy_out(hub, core_xet.xorb_key(x), dest, xorb_name(x), indexes[x].offsets[-1], done)
    recipe = {"hash": fh, "size": info.size,
              "terms": [{"xorb": hex_hash(t.xorb), "start": t.chunk_start, "end": t.chunk_end,
                         "bytes": t.unpacked_bytes} for t in info.terms],
              "xorbs": {x: {"size": indexes[x].offsets[-1], "chunks": len(indexes[x].sizes)}
                        for x in xorbs}}
    _write_atomically(dest / name, json.dumps(recipe).encode())
    done.add(name)


def _copy_out(hub: Hub, key: str, dest: Path, name: str, size: int, done: set[str]) -> None:
    target = dest / name
    if name in done or (target.is_file() and target.stat().st_size == size):
        done.add(name)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    with hub.blobs.open(key) as src, tmp.open("wb") as out:
        shutil.copyfileobj(src, out, CHUNK)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, target)
    done.add(name)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- import -----------------------------------------------------------------------------


def import_(hub: Hub, root: Path, say: Say | None = None) -> list[Moved]:
    """Bring every repo of an export in (or catch it up), each checked whole before it
    shows; a repo that fails is left as it was (absent, or as held) and the next one is
    tried. The error of each is in its `Moved`."""
    from hver.githttp.receive import MIN_OBJECT_CAP

    exported = read_manifest(root)
    cap = max(MIN_OBJECT_CAP, 4 * hub.settings.max_inline_file_size)
    dirs = {url: Directory(root, exported, url, hub.settings.tmp_dir, cap, PACK_CAP)
            for url in {r.upstream for r in exported}}
    checked: set[str] = set()  # xorbs checked by this import (repos share them)
    out = []
    try:
        for r in exported:
            try:
                moved = _import_repo(hub, dirs[r.upstream], r, checked)
            except (HverError, UpstreamUnavailable) as exc:
                message = exc.message if isinstance(exc, HverError) else str(exc)
                moved = Moved(r.type.value, r.id, None, 0, 0, error=message)
            out.append(moved)
            if say is not None:
                say(f"{r.type.plural}/{r.id}: " + (f"refused: {moved.error}" if moved.error
                    else f"{moved.files} large files, {moved.bytes:,} bytes"))
    finally:
        for d in dirs.values():
            d.close()
    return out


def _import_repo(hub: Hub, d: Directory, r: Exported, checked: set[str]) -> Moved:
    ns, name = r.id.split("/")
    with hub.db.read() as session:
        account = get_account(session, ns)
        held = core_repos.find_repo(session, r.type, ns, name)
    if account is not None and account.mirror_upstream is None:
        raise ExportBroken(f"{ns} is a namespace of this hub's own, not a mirror's: "
                           f"{r.id} is not imported.")
    if held is not None and (held.mirror_upstream != r.upstream
                             or (held.mirror_id or "").lower() != r.upstream_id.lower()):
        raise ExportBroken(f"{r.id} here is not a mirror of {r.upstream_id} from "
                           f"{r.upstream}: not imported.")
    d.unpack(r.type, r.upstream_id)  # the bundle's pack checked
    for o in r.objects:  # every large file checked, and stored held by no repo
        if o.xet_hash is None:
            _check_lfs(hub, d.root, o)
        else:
            _check_xet(hub, d.root, o, checked)
    try:
        repo = _sync(hub, d, r, held)
    except UpstreamUnavailable as exc:  # the bundle's trees or refs: nothing moved
        raise ExportBroken(f"{r.bundle}: {exc}") from None
    for o in r.objects:  # checked above; the mirror's own path checks them again
        where = (o.commit, o.path) if o.xet_hash is not None else None
        try:
            if not fetch.bring_object(hub, d, repo, o.oid, o.size, where):
                raise ExportBroken(f"{lfs_name(o.oid)}: not one {r.id} holds")
        except UpstreamUnavailable as exc:
            raise ExportBroken(f"{r.id}: {o.oid}: {exc}") from None
    return Moved(r.type.value, r.id, repo.sha, len(r.objects),
                 sum(o.size for o in r.objects))


def _sync(hub: Hub, d: Directory, r: Exported, held: Repo | None) -> Repo:
    """The repo brought in, or caught up, from the export; a repo this hub checked
    against its upstream after the export was made keeps its refs (an import never
    moves a repo back)."""
    if held is None:
        found = d.repo_info(r.type, r.upstream_id)
        assert found is not None
        ns, name = r.id.split("/")
        repo = refs.bring_in(hub, d, Rules(), r.type, found, local=(ns, name))
        if repo is None:
            raise ExportBroken(f"{ns} is a namespace of this hub's own: {r.id} is not "
                               "imported.")
        _stamp(hub, repo, r.last_sync, replace=True)
        return repo
    with hub.db.read() as session:
        state = session.get(MirrorRepo, held.id)
    if state is not None and state.checked_at > r.last_sync:
        return held
    repo = refs.catch_up(hub, d, held)
    _stamp(hub, repo, r.last_sync, replace=False)
    return repo


def _stamp(hub: Hub, repo: Repo, last_sync: float, replace: bool) -> None:
    """The repo's last sync: the exporting hub's (when the upstream last answered for
    it), unless this hub's is later."""
    if not last_sync:
        return
    with hub.db.atomic() as session:
        query = update(MirrorRepo).where(MirrorRepo.repo_id == repo.id)
        if not replace:
            query = query.where(MirrorRepo.checked_at < last_sync)
        session.execute(query.values(checked_at=last_sync))


def _staged_copy(hub: Hub, root: Path, name: str) -> Path:
    """A file of the export copied into a staging file of the blob store."""
    out, staged = hub.blobs.staging_file()
    try:
        with out, (root / name).open("rb") as src:
            shutil.copyfileobj(src, out, CHUNK)
            out.flush()
            os.fsync(out.fileno())
    except FileNotFoundError:
        staged.unlink(missing_ok=True)
        raise ExportBroken(f"{name}: missing from the export.") from None
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    return staged


def _check_lfs(hub: Hub, root: Path, o: Held) -> None:
    """An LFS file's size and sha256, hashed where it lies (`fetch.bring_object` copies
    it in, and checks it again as it does)."""
    name = lfs_name(o.oid)
    digest, size = hashlib.sha256(), 0
    try:
        with (root / name).open("rb") as fh:
            while data := fh.read(CHUNK):
                digest.update(data)
                size += len(data)
    except FileNotFoundError:
        raise ExportBroken(f"{name}: missing from the export.") from None
    if size != o.size:
        raise ExportBroken(f"{name}: {size} bytes, the manifest says {o.size}.")
    if digest.hexdigest() != o.oid:
        raise ExportBroken(f"{name}: its sha256 is {digest.hexdigest()}.")


def _check_xet(hub: Hub, root: Path, o: Held, checked: set[str]) -> None:
    assert o.xet_hash is not None
    fh, name = o.xet_hash, recipe_name(o.xet_hash)
    try:
        recipe = read_recipe(root, fh)
    except UpstreamUnavailable as exc:
        raise ExportBroken(str(exc)) from None
    for x, meta in recipe["xorbs"].items():
        if x not in checked:
            _check_xorb(hub, root, x, int(meta["size"]), int(meta["chunks"]))
            checked.add(x)
    terms = [Term(raw_hash(t["xorb"]), int(t["start"]), int(t["end"]), int(t["bytes"]))
             for t in recipe["terms"]]
    indexes = core_xet.xorb_indexes(hub, recipe["xorbs"])
    chunks: list[tuple[bytes, int]] = []
    for t in terms:
        idx = indexes[hex_hash(t.xorb)]
        if t.chunk_end > len(idx.sizes) or sum(
                idx.sizes[t.chunk_start:t.chunk_end]) != t.unpacked_bytes:
            raise ExportBroken(f"{name}: a term does not match its xorb's chunks.")
        chunks.extend(zip(idx.hashes[t.chunk_start:t.chunk_end],
                          idx.sizes[t.chunk_start:t.chunk_end], strict=True))
    if hex_hash(file_hash(chunks)) != fh:
        raise ExportBroken(f"{name}: its chunks do not hash to {fh}.")
    size = sum(s for _, s in chunks)
    if size != o.size or int(recipe["size"]) != o.size:
        raise ExportBroken(f"{name}: {size} bytes, the manifest says {o.size}.")
    digest = hashlib.sha256()
    for piece in core_xet.iter_content(hub, core_xet.XetFileInfo(fh, size, terms), 0, size):
        digest.update(piece)
    if digest.hexdigest() != o.oid:
        raise ExportBroken(f"{name}: decodes to sha256 {digest.hexdigest()}, the manifest "
                           f"says {o.oid}.")


def _check_xorb(hub: Hub, root: Path, xorb: str, size: int, chunks: int) -> None:
    name = xorb_name(xorb)
    staged = _staged_copy(hub, root, name)
    try:
        with staged.open("rb") as fh:
            index = _index(fh, name)
        if hex_hash(index.hash()) != xorb:
            raise ExportBroken(f"{name}: its chunks hash to {hex_hash(index.hash())}, not "
                               "to its name.")
        if index.offsets[-1] != size or len(index.sizes) != chunks or \
                staged.stat().st_size != size:
            raise ExportBroken(f"{name}: not the size its recipe says.")
        core_xet.store_fetched_xorb(hub, xorb, index, staged)
    finally:
        staged.unlink(missing_ok=True)


def _index(fh: BinaryIO, name: str) -> XorbIndex:
    try:
        return core_xet.index_xorb_file(fh)
    except HverError as exc:
        raise ExportBroken(f"{name}: {exc.message}") from None
