"""One repo with many files: commit, listing and repo-info costs as the repo grows.

    .venv/bin/python bench/repo_size.py [--files 10000,50000,100000] [--uploads 20]

Seeds one model repo (`bench/big`) straight through storage, then grows it to each size
in `--files`: the repo is made with `hver.core.repos.create_repo` (as the API does), and
the files are written into its git repository directly (`hver.storage.git`): their blobs
in one pack (`object_store.add_objects`), the whole tree with `GitRepo.write_tree`, one
commit moved onto `main` by compare-and-swap, and the listing index caught up with
`hver.core.repos.refresh_index`. Filling 100,000 files takes a few seconds, where
100,000 commits through the API would take hours. The files are small text files (each
one distinct) in three levels of folders, 100 to a folder (`data/NN/NN/fNNNNNN.txt`),
beside a README.md with a card and a config.json.

At each size it starts its own `hver serve` on the data directory (random loopback port,
rate limits off; a fresh process, so nothing is cached yet), and measures over loopback:

- **commit**: `--uploads` (20) commits of one small new file each, as `upload_file`
  sends them (`POST /api/models/bench/big/commit/main`, NDJSON, the file inline), timed
  with httpx: the server's commit time plus a loopback round trip. p50 and max.
- **upload_file**: `HfApi.upload_file` of one small new file (5 times; p50), the whole
  client call (its preupload request and the commit).
- **listing**: `HfApi.list_repo_files` of the whole repo (recursive tree, 1,000 entries a
  page, following the `Link` headers); the count is checked. Three figures: the first
  listing ever of the new files (a server started for it alone: it reads every new blob
  once and writes the trees' records, `hver.core.tree_sizes`), then, on the next fresh
  server, its first call (the records on disk, nothing in memory) and the best of 3.
- **model info**: `GET /api/models/bench/big` with httpx (the server's time and the
  transfer of the body: what the target is about), the first call after the last commit
  and p50 of 20 after it; the body's size. Then `HfApi.model_info` (p50 of 5), which adds
  the client's own parsing (a `RepoSibling` per file: most of its time at 100,000 files).
- **server RSS** after all that (`VmRSS`): what the caches of one big repo hold.

Prints one table row per size and PASS/MISS against the targets at 100,000 files:
commit p50 ≤ 30 ms, full listing ≤ 1 s (best of 3, and the first on a fresh server), model
info GET p50 ≤ 50 ms. Exit status 0 either way.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from dulwich.objects import Blob
from transfer import Hver

from hver.config import Settings
from hver.core import accounts, repos
from hver.core.hub import Hub
from hver.names import RepoType
from hver.storage.git import FILE_MODE

NS, NAME = "bench", "big"
REPO_ID = f"{NS}/{NAME}"
CARD = "---\nlicense: mit\nlibrary_name: transformers\ntags:\n- bench\n---\n\n# big\n"


def path_of(i: int) -> str:
    return f"data/{i // 10_000:02d}/{i // 100 % 100:02d}/f{i:06d}.txt"


def setup(settings: Settings) -> str:
    """The bench user, a write token, and the empty repo (its first commit only)."""
    hub = Hub.open(settings)
    try:
        with hub.db.write() as session:
            accounts.create_user(session, NS, f"{NS}@bench.example")
        with hub.db.write() as session:
            token = accounts.create_token(session, NS, "write", "bench")
        with hub.db.read() as session:
            actor = accounts.actor_for(session, accounts.get_user(session, NS), "write",
                                       "bench")
        repos.create_repo(hub, actor, RepoType.model, NS, NAME)
    finally:
        hub.close()
    return token


def grow(settings: Settings, have: int, want: int) -> float:
    """Add files `have`..`want` in one commit, straight into storage; seconds taken."""
    t0 = time.perf_counter()
    hub = Hub.open(settings)
    try:
        with hub.db.read() as session:
            repo = repos.find_repo(session, RepoType.model, NS, NAME)
        assert repo is not None
        git = hub.git.open(repo.storage_key)
        head = git.ref("refs/heads/main")
        assert head is not None
        files = git.flatten(git.commit(head).tree)
        blobs = []
        for i in range(have, want):
            blob = Blob.from_string(f"row {i}: {'x' * (i % 50)}\n".encode())
            blobs.append((blob, None))
            files[path_of(i)] = (FILE_MODE, blob.id.decode())
        for extra, text in (("README.md", CARD), ("config.json", '{"model_type": "bench"}\n')):
            blob = Blob.from_string(text.encode())
            blobs.append((blob, None))
            files[extra] = (FILE_MODE, blob.id.decode())
        git.repo.object_store.add_objects(blobs)
        tree = git.write_tree(files)
        sha = git.write_commit(tree, [head], f"add files {have}..{want}", f"{NS} <{NS}@b>")
        assert git.cas_ref("refs/heads/main", head, sha)
        repos.refresh_index(hub, repo, git)
    finally:
        hub.close()
    return time.perf_counter() - t0


def ndjson_commit(path: str, content: bytes) -> bytes:
    lines = [
        {"key": "header", "value": {"summary": f"Upload {path}", "description": ""}},
        {"key": "file", "value": {"content": base64.b64encode(content).decode(),
                                  "path": path, "encoding": "base64"}},
    ]
    return b"\n".join(json.dumps(x).encode() for x in lines)


def p50(xs: list[float]) -> float:
    return statistics.median(xs)


def measure(endpoint: str, token: str, files: int, uploads: int, tag: str) -> dict[str, Any]:
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint, token=token)
    auth = {"Authorization": f"Bearer {token}"}
    out: dict[str, Any] = {"files": files}
    expected = files + 3  # .gitattributes, README.md, config.json
    with httpx.Client(base_url=endpoint, headers=auth, timeout=600) as http:
        # Listing first: nothing cached in the fresh server's memory yet.
        out["list_first"] = list_all(api, expected)
        best = []
        for _ in range(3):
            t = time.perf_counter()
            api.list_repo_files(REPO_ID)
            best.append(time.perf_counter() - t)
        out["list_best"] = min(best)

        commit_times = []
        for k in range(uploads):
            body = ndjson_commit(f"uploads/{tag}/c{k:03d}.txt", f"commit {k}\n".encode())
            t = time.perf_counter()
            r = http.post(f"/api/models/{REPO_ID}/commit/main", content=body,
                          headers={"Content-Type": "application/x-ndjson"})
            commit_times.append(time.perf_counter() - t)
            r.raise_for_status()
        out["commit_p50"] = p50(commit_times)
        out["commit_max"] = max(commit_times)

        upload_times = []
        for k in range(5):
            t = time.perf_counter()
            api.upload_file(path_or_fileobj=f"upload {k}\n".encode(),
                            path_in_repo=f"uploads/{tag}/u{k:03d}.txt", repo_id=REPO_ID)
            upload_times.append(time.perf_counter() - t)
        out["upload_p50"] = p50(upload_times)

        t = time.perf_counter()
        r = http.get(f"/api/models/{REPO_ID}")
        out["info_first"] = time.perf_counter() - t
        r.raise_for_status()
        out["info_bytes"] = len(r.content)
        siblings = len(r.json()["siblings"])
        if siblings != expected + uploads + 5:
            raise SystemExit(f"model_info lists {siblings} files, expected "
                             f"{expected + uploads + 5}")
        info_times = []
        for _ in range(20):
            t = time.perf_counter()
            http.get(f"/api/models/{REPO_ID}").raise_for_status()
            info_times.append(time.perf_counter() - t)
        out["info_p50"] = p50(info_times)
        client_times = []
        for _ in range(5):
            t = time.perf_counter()
            api.model_info(REPO_ID)
            client_times.append(time.perf_counter() - t)
        out["info_client_p50"] = p50(client_times)
    return out


def list_all(api: Any, expected: int) -> float:
    """Seconds `list_repo_files` takes, its paths checked."""
    t = time.perf_counter()
    listed = api.list_repo_files(REPO_ID)
    seconds = time.perf_counter() - t
    if len(listed) != expected or len(set(listed)) != expected:
        raise SystemExit(f"listing gave {len(listed)} paths ({len(set(listed))} distinct),"
                         f" expected {expected}")
    return seconds


def first_listing_ever(root: Path, data: Path, token: str, expected: int) -> float:
    """The first listing of the files just added, on a server of its own: every new blob
    read once, and the records of the new trees written for the servers after it."""
    from huggingface_hub import HfApi

    hver = Hver(root, data)
    hver.env.update(HVER_RATE_LIMIT="0", HVER_RATE_LIMIT_ANONYMOUS="0")
    hver.start()
    try:
        return list_all(HfApi(endpoint=hver.endpoint, token=token), expected)
    finally:
        hver.stop()


def row(m: dict[str, Any]) -> str:
    return (f"| {m['files']:,} | {m['commit_p50'] * 1e3:.1f} (max {m['commit_max'] * 1e3:.0f})"
            f" | {m['upload_p50'] * 1e3:.0f} | {m['list_ever']:.2f} / {m['list_first']:.2f}"
            f" / {m['list_best']:.2f}"
            f" | {m['info_first'] * 1e3:.0f} / {m['info_p50'] * 1e3:.1f}"
            f" | {m['info_client_p50'] * 1e3:.0f} | {m['info_bytes'] / 1e6:.2f}"
            f" | {m['rss_mb']:.0f} |")


def run(args: argparse.Namespace, root: Path) -> int:
    sizes = sorted(int(s) for s in args.files.split(","))
    print(f"hver repo-size bench: {', '.join(f'{n:,}' for n in sizes)} files, "
          f"python {sys.version.split()[0]}, tmp {root}", flush=True)
    data = root / "hver-data"
    data.mkdir()
    settings = Settings.from_env({}, data=data)
    token = setup(settings)
    results: list[dict[str, Any]] = []
    have = 0
    for n in sizes:
        # The uploads of earlier sizes stay in the repo: count them as files.
        seconds = grow(settings, have, n - have_uploads(results))
        have = n - have_uploads(results)
        print(f"  filled to {n:,} files in {seconds:.1f} s", flush=True)
        ever = first_listing_ever(root, data, token, n + 3)
        hver = Hver(root, data)
        hver.env.update(HVER_RATE_LIMIT="0", HVER_RATE_LIMIT_ANONYMOUS="0")
        hver.start()
        try:
            m = measure(hver.endpoint, token, n, args.uploads, f"n{n}")
            m["list_ever"] = ever
            assert hver.proc is not None
            m["rss_mb"] = rss_mb(hver.proc.pid)
        finally:
            hver.stop()
        m["uploads"] = args.uploads + 5
        results.append(m)
        print(f"  {n:,} files: {json.dumps({k: round(v, 4) for k, v in m.items()})}",
              flush=True)
    print()
    print("| files | commit p50 ms (max) | upload_file p50 ms | list_repo_files s "
          "(first ever / fresh server / best) | GET model info ms (first / p50) "
          "| `model_info` ms | MB | server RSS MB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for m in results:
        print(row(m))
    last = results[-1]
    if last["files"] >= 100_000:
        print()
        for label, value, target in (("commit p50", last["commit_p50"], 0.030),
                                     ("full listing (best of 3)", last["list_best"], 1.0),
                                     ("full listing, fresh server", last["list_first"], 1.0),
                                     ("model info GET p50", last["info_p50"], 0.050)):
            verdict = "PASS" if value <= target else "MISS"
            print(f"{verdict} {label}: {value * 1e3:.1f} ms (target {target * 1e3:.0f} ms)")
    return 0


def rss_mb(pid: int) -> float:
    """The server's resident memory now (VmRSS), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def have_uploads(results: list[dict[str, Any]]) -> int:
    return sum(int(m["uploads"]) for m in results)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--files", default="10000,50000,100000",
                   help="comma-separated repo sizes to measure at (10000,50000,100000)")
    p.add_argument("--uploads", type=int, default=20, help="timed commits per size (20)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="hver-repo-size-"))
    try:
        return run(args, root)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
