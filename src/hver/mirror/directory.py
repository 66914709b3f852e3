"""An exported directory (`hver mirror export`) read as an upstream hub: the second
backend of `hver.mirror.upstream.Upstream`, beside `hub_http`, so that `hver mirror
import` is a sync from it through the same `refs` and `fetch` code (`transfer`).

The layout, all of it named by what it holds:

    manifest.json                  written last: without it the export is cut
    git/{type}s/NS/NAME.bundle     a git bundle (v2) of a repo's mirrored refs
    lfs/OID                        a large file stored as LFS, named by its sha256
    xet/xorbs/HASH                 a xorb as this hub stores it (chunks, no footer)
    xet/files/HASH.json            a Xet file's recipe: its terms, and its xorbs' sizes

Nothing here trusts the directory: a bundle's pack is checked as a fetched pack is (its
checksum, the size caps), and the mirror checks every large file it brings in. The
directory vouches only for the objects its manifest lists for a repo (a hash alone is no
credential, `core.objects`), and `transfer` checks all of them before any is used.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from dulwich.objects import ObjectID
from dulwich.repo import Repo as DulwichRepo

from hver.core import tree as core_tree
from hver.errors import HverError, InvalidName
from hver.githttp.receive import PackRefused, scan_pack_data
from hver.mirror.upstream import MIRRORED_REFS, Sink, UpstreamRepo, UpstreamUnavailable
from hver.names import RepoType, validate_namespace, validate_part
from hver.storage.git import GitRepo

FORMAT = "hver-mirror-export"
VERSION = 1
MANIFEST = "manifest.json"
BUNDLE_HEADER = b"# v2 git bundle\n"
CHUNK = 1 << 20
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_SHA1 = re.compile(r"[0-9a-f]{40}\Z")


class ExportBroken(HverError):
    """An exported directory that is cut, damaged or not one: nothing of it is used."""

    code = "ExportBroken"


@dataclass(frozen=True)
class Held:
    """A large file an exported repo holds, and one place its commits name it."""

    oid: str
    size: int
    xet_hash: str | None
    commit: str
    path: str


@dataclass(frozen=True)
class Exported:
    """One repo of an export, as its manifest describes it."""

    type: RepoType
    id: str  # the exporting hub's local id
    upstream_id: str
    upstream: str
    refs: dict[str, str]
    gated: str | None
    created_at: datetime | None
    last_sync: float
    objects: tuple[Held, ...]

    @property
    def bundle(self) -> str:
        return bundle_name(self.type, self.id)


def bundle_name(repo_type: RepoType, repo_id: str) -> str:
    return f"git/{repo_type.plural}/{repo_id}.bundle"


def lfs_name(oid: str) -> str:
    return f"lfs/{oid}"


def xorb_name(xorb: str) -> str:
    return f"xet/xorbs/{xorb}"


def recipe_name(file_hash: str) -> str:
    return f"xet/files/{file_hash}.json"


def read_manifest(root: Path) -> list[Exported]:
    """The repos of an export, every name and hash in it checked for form (so that no
    file name built from them leaves the directory)."""
    path = root / MANIFEST
    if not path.is_file():
        raise ExportBroken(f"{path}: missing; the export was cut or this is not one "
                           "(`hver mirror export` writes it last).")
    try:
        body = json.loads(path.read_text("utf-8"))
        if body.get("format") != FORMAT or body.get("version") != VERSION:
            raise ExportBroken(f"{path}: not a {FORMAT} of version {VERSION}.")
        return [_repo(r) for r in body["repos"]]
    except (ValueError, KeyError, TypeError, AttributeError, InvalidName) as exc:
        raise ExportBroken(f"{path}: not a manifest this hub reads: {exc!r}"[:400]) from None


def _repo(r: dict[str, Any]) -> Exported:
    repo_type = RepoType.parse(str(r["type"]))
    ns, name = str(r["id"]).split("/")
    validate_namespace(ns)
    validate_part(name)
    refs = {str(k): str(v) for k, v in r["refs"].items()}
    if not all(_SHA1.match(v) and k.startswith(MIRRORED_REFS) for k, v in refs.items()):
        raise ValueError("a ref is not a mirrored ref naming an object id")
    objects = []
    for o in r["objects"]:
        oid, fh = str(o["oid"]), o["xetHash"]
        if not _HEX64.match(oid) or (fh is not None and not _HEX64.match(str(fh))):
            raise ValueError(f"{oid!r}: an oid or Xet hash is not one")
        if not _SHA1.match(str(o["commit"])):
            raise ValueError(f"{oid}: its commit is not a commit id")
        objects.append(Held(oid, int(o["size"]), None if fh is None else str(fh),
                            str(o["commit"]), str(o["path"])))
    created = r.get("createdAt")
    gated = r.get("gated")
    return Exported(
        type=repo_type, id=f"{ns}/{name}", upstream_id=str(r["upstreamId"]),
        upstream=str(r["upstream"]), refs=refs,
        gated=gated if gated in ("auto", "manual") else None,
        created_at=datetime.fromisoformat(created) if created else None,
        last_sync=float(r.get("lastSync") or 0.0), objects=tuple(objects))


class Directory:
    """The repos of an export that name `url` as their upstream, served as that
    upstream would (for what the export holds of it)."""

    def __init__(self, root: Path, repos: list[Exported], url: str, tmp_dir: Path,
                 object_cap: int, pack_cap: int) -> None:
        self.url = url
        self.root = root
        self._repos = {(r.type, r.upstream_id.lower()): r for r in repos if r.upstream == url}
        self._tmp_dir = tmp_dir
        self._object_cap = object_cap
        self._pack_cap = pack_cap
        self._unpacked: dict[tuple[RepoType, str], GitRepo] = {}

    def __repr__(self) -> str:
        return f"Directory({str(self.root)!r}, {self.url!r})"

    def _get(self, repo_type: RepoType, repo_id: str) -> Exported | None:
        return self._repos.get((repo_type, repo_id.lower()))

    def repo_info(self, repo_type: RepoType, repo_id: str) -> UpstreamRepo | None:
        r = self._get(repo_type, repo_id)
        if r is None:
            return None
        return UpstreamRepo(id=r.upstream_id, private=False, gated=r.gated,
                            created_at=r.created_at)

    def unpack(self, repo_type: RepoType, repo_id: str) -> GitRepo:
        """The repo's bundle unpacked into a scratch repository of its own (once): its
        pack checked as a fetched pack is, its refs those of the manifest."""
        r = self._get(repo_type, repo_id)
        if r is None:
            raise UpstreamUnavailable(f"the export holds no {repo_type.value} {repo_id}")
        key = (repo_type, r.upstream_id.lower())
        if key in self._unpacked:
            return self._unpacked[key]
        scratch = Path(tempfile.mkdtemp(dir=self._tmp_dir, prefix="mirror-bundle-"))
        try:
            DulwichRepo.init_bare(str(scratch)).close()
            git = GitRepo(scratch)
            self._fill(r, git)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        self._unpacked[key] = git  # removed by `close`
        return git

    def _fill(self, r: Exported, git: GitRepo) -> None:
        path = self.root / r.bundle
        try:
            if path.stat().st_size > self._pack_cap:
                raise UpstreamUnavailable(f"over {self._pack_cap} bytes")
            with path.open("rb") as fh:
                if fh.readline() != BUNDLE_HEADER:
                    raise UpstreamUnavailable("not a git bundle (v2)")
                refs: dict[str, str] = {}
                while (line := fh.readline()) not in (b"\n", b""):
                    sha, _, name = line.rstrip(b"\n").partition(b" ")
                    if sha.startswith(b"-"):
                        raise UpstreamUnavailable("the bundle needs other commits first")
                    refs[name.decode("utf-8", "replace")] = sha.decode("ascii", "replace")
                if refs != r.refs:
                    raise UpstreamUnavailable("its refs are not the manifest's")
                start = fh.tell()
                scan_pack_data(fh, self._object_cap)  # the caps a fetched pack has
                fh.seek(start)
                git.repo.object_store.add_thin_pack(fh.read, None)  # its checksum
        except FileNotFoundError:
            raise UpstreamUnavailable(f"{r.bundle}: missing") from None
        except UpstreamUnavailable as exc:
            raise UpstreamUnavailable(f"{r.bundle}: {exc}") from None
        except PackRefused as exc:
            raise UpstreamUnavailable(f"{r.bundle}: its pack was refused: {exc}") from None
        except Exception as exc:  # a broken pack: dulwich raises many kinds
            raise UpstreamUnavailable(f"{r.bundle}: its pack is broken: {exc!r}"[:400]
                                      ) from None

    def fetch_git(self, repo_type: RepoType, repo_id: str, git: GitRepo) -> dict[str, str]:
        r = self._get(repo_type, repo_id)
        if r is None:
            raise UpstreamUnavailable(f"the export holds no {repo_type.value} {repo_id}")
        src = self.unpack(repo_type, repo_id).repo.object_store
        store = git.repo.object_store
        wants = {oid for oid in (ObjectID(s.encode()) for s in r.refs.values())
                 if oid not in store}
        if wants:  # only what `git` lacks: a catch-up adds no object twice
            haves = {sha for sha in git.repo.refs.as_dict().values() if sha in src}
            count, objects = src.generate_pack_data(haves, wants, ofs_delta=True)
            store.add_pack_data(count, objects)
        return dict(r.refs)

    def lfs_download(self, repo_type: RepoType, repo_id: str, oid: str, size: int
                     ) -> tuple[str, dict[str, str]] | None:
        r = self._get(repo_type, repo_id)
        held = next((o for o in r.objects if o.oid == oid), None) if r is not None else None
        if held is None or held.size != size or held.xet_hash is not None:
            return None
        return lfs_name(oid), {}

    def download(self, href: str, headers: dict[str, str], out: Sink, limit: int) -> None:
        self._copy(href, 0, limit, out, exact=False)

    def xet_file_hash(self, repo_type: RepoType, repo_id: str, commit: str,
                      path: str) -> str | None:
        r = self._get(repo_type, repo_id)
        if r is None:
            return None
        try:
            info = core_tree.get_file(self.unpack(repo_type, repo_id), commit, path)
        except HverError:
            return None
        if info.lfs is None:
            return None
        held = next((o for o in r.objects if o.oid == info.lfs.oid), None)
        return held.xet_hash if held is not None else None

    def xet_reconstruction(self, repo_type: RepoType, repo_id: str, commit: str,
                           file_hash: str) -> dict[str, Any]:
        """The file's recipe as a v2 plan, each xorb one whole range."""
        r = self._get(repo_type, repo_id)
        if r is None or not any(o.xet_hash == file_hash for o in r.objects):
            raise UpstreamUnavailable(f"the export's {repo_id} holds no Xet file {file_hash}")
        recipe = read_recipe(self.root, file_hash)
        return {"offset_into_first_range": 0,
                "terms": [{"hash": t["xorb"], "unpacked_length": t["bytes"],
                           "range": {"start": t["start"], "end": t["end"]}}
                          for t in recipe["terms"]],
                "xorbs": {x: [{"url": xorb_name(x), "ranges": [{
                    "chunks": {"start": 0, "end": meta["chunks"]},
                    "bytes": {"start": 0, "end": meta["size"] - 1}}]}]
                    for x, meta in recipe["xorbs"].items()}}

    def xet_range(self, url: str, start: int, end: int, out: Sink) -> None:
        self._copy(url, start, end - start + 1, out, exact=True)

    def _copy(self, name: str, start: int, length: int, out: Sink, exact: bool) -> None:
        """Bytes of a file of the export (one `lfs_download` or a plan named) into `out`."""
        kind, _, digest = name.rpartition("/")
        if kind not in ("lfs", "xet/xorbs") or not _HEX64.match(digest):
            raise UpstreamUnavailable(f"{name!r} is no file of the export")
        written = 0
        try:
            with (self.root / name).open("rb") as fh:
                fh.seek(start)
                while written < length and (data := fh.read(min(CHUNK, length - written))):
                    out.write(data)
                    written += len(data)
                if not exact and fh.read(1):
                    raise UpstreamUnavailable(f"{name}: longer than the file it holds")
        except OSError as exc:
            raise UpstreamUnavailable(f"{name}: {exc}", unreachable=True) from None
        if exact and written != length:
            raise UpstreamUnavailable(f"{name}: shorter than its recipe says")

    def close(self) -> None:
        for git in self._unpacked.values():
            shutil.rmtree(git.path, ignore_errors=True)
        self._unpacked.clear()


def read_recipe(root: Path, file_hash: str) -> dict[str, Any]:
    """A Xet file's recipe, checked for form: `hash`, `size`, `terms` (each `xorb`,
    `start`, `end`, `bytes`) and `xorbs` (each `size` and `chunks`)."""
    name = recipe_name(file_hash)
    try:
        body: dict[str, Any] = json.loads((root / name).read_text("utf-8"))
        ok = body["hash"] == file_hash and int(body["size"]) >= 0 and all(
            _HEX64.match(x) and int(m["size"]) > 0 and int(m["chunks"]) > 0
            for x, m in body["xorbs"].items()) and all(
            t["xorb"] in body["xorbs"] and 0 <= int(t["start"]) < int(t["end"])
            and int(t["bytes"]) >= 0 for t in body["terms"])
    except FileNotFoundError:
        raise UpstreamUnavailable(f"{name}: missing") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UpstreamUnavailable(f"{name}: not a recipe: {exc!r}"[:300]) from None
    if not ok:
        raise UpstreamUnavailable(f"{name}: not a recipe of {file_hash}")
    return body
