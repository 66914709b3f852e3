"""A hub mirroring another: cold misses, warm hits, and what the upstream is asked.

    .venv/bin/python bench/mirror.py [--size-mib 512] [--rounds 2]

Starts two `hver serve` (temporary data directories, random loopback ports): an
upstream, and a mirror of it (`HVER_UPSTREAM_URL`), and, when an `nginx` binary is on
PATH, an nginx serving the mirror's stored copy of the file with sendfile; with
`--link-mbit N`, the upstream sits behind a relay carrying N Mbit/s (as a network link
to a distant hub would), which the direct download and the mirror's fetch both cross. Per
round, a
new repo on the upstream holds one new random file of `--size-mib`, stored through LFS
(uploaded with Xet off), then, with curl (`-L -o /dev/null`, through /resolve):

- **direct**: the file from the upstream itself (what a client would get without a
  mirror), the baseline of the cold miss;
- **cold**: the same file through the mirror, which fetches it from the upstream (and
  checks its size and sha256) before it answers;
- **warm**: the file through the mirror again, served from its own copy; the baseline is
  nginx serving that copy.

Server CPU seconds per GiB (utime + stime from /proc) are the mirror's. The best round of
each is kept. Then the **upstream calls** of a `snapshot_download` of a 10-file repo (8
small files kept in git, 2 large ones) through the mirror with an empty cache, cold (the
repo never seen) and warm (again, with another empty cache, within the TTL), counted in
the upstream's access log. It prints a table, then each target with PASS/MISS: cold
≥ 0.8× direct, warm ≥ 0.9× nginx and ≤ 0.5 s CPU per GiB, warm upstream calls 0.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from transfer import GiB, Hver, LinkShaper, MiB, Nginx, cpu_seconds, make_random_file

TARGETS = {"cold": 0.8, "warm": 0.9, "warm_cpu": 0.5}


def curl_get(url: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(["curl", "-sS", "--fail", "-L", "-o", "/dev/null", url], check=True)
    return time.perf_counter() - t0


def timed(pid: int | None, url: str) -> tuple[float, float]:
    """(seconds, CPU seconds of `pid`) of one curl download."""
    cpu0 = cpu_seconds(pid) if pid else 0.0
    seconds = curl_get(url)
    return seconds, (cpu_seconds(pid) - cpu0) if pid else 0.0


def upstream_requests(log: Path, since: int) -> list[str]:
    """The access-log lines the upstream wrote after byte `since` of its log."""
    with log.open("rb") as fh:
        fh.seek(since)
        text = fh.read().decode("utf-8", "replace")
    return [line for line in text.splitlines() if '" ' in line and "HTTP/1.1" in line]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--link-mbit", type=float, default=0,
                        help="put the upstream behind a link of this many Mbit/s (both the "
                        "direct download and the mirror's fetch cross it); 0: loopback")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="hver-bench-mirror-"))
    try:
        return run(args, root)
    finally:
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


def run(args: argparse.Namespace, root: Path) -> int:
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    from huggingface_hub import CommitOperationAdd, HfApi, constants, snapshot_download

    size = args.size_mib * MiB
    (root / "up").mkdir()
    (root / "mirror").mkdir()
    up = Hver(root / "up")
    up.env["HVER_LOG_LEVEL"] = "info"  # its access log counts what the mirror asks
    up.env["HVER_RATE_LIMIT_ANONYMOUS"] = "0"
    link = LinkShaper(up.port, args.link_mbit) if args.link_mbit else None
    far = link.endpoint if link is not None else up.endpoint  # the upstream as reached
    if link is not None:
        up.env["HVER_PUBLIC_URL"] = far  # its LFS hrefs lead over the link too
    up.start()
    name, token = up.cli("user", "create", "bench", "--token", "write").splitlines()
    mirror = Hver(root / "mirror")
    mirror.env.update(HVER_UPSTREAM_URL=far, HVER_UPSTREAM_TOKEN=token,
                      HVER_MIRROR_TTL="300", HVER_RATE_LIMIT_ANONYMOUS="0")
    mirror.start()
    assert mirror.proc is not None and up.proc is not None
    mpid = mirror.proc.pid
    api = HfApi(endpoint=up.endpoint, token=token)
    constants.HF_HUB_DISABLE_XET = True  # the big files go through LFS
    nginx_dir = root / "docroot"
    nginx_dir.mkdir()
    ngx = Nginx(root, nginx_dir) if shutil.which("nginx") else None
    if ngx is None:
        print("nginx not found: the warm row has no baseline", file=sys.stderr)
    else:
        ngx.start()
    rows: dict[str, list[tuple[float, float]]] = {"direct": [], "cold": [], "warm": [],
                                                  "nginx": []}
    try:
        for r in range(args.rounds):
            repo_id = f"{name}/big-{r}-{os.urandom(3).hex()}"
            api.create_repo(repo_id)
            src = root / f"file-{r}.bin"
            make_random_file(src, size)
            api.upload_file(repo_id=repo_id, path_or_fileobj=str(src), path_in_repo="f.bin")
            src.unlink()
            subprocess.run(["sync"], check=True)
            direct = f"{far}/{repo_id}/resolve/main/f.bin"
            via = f"{mirror.endpoint}/{repo_id}/resolve/main/f.bin"
            rows["direct"].append(timed(None, direct))
            curl_get(f"{mirror.endpoint}/api/models/{repo_id}")  # the repo in, not the file
            rows["cold"].append(timed(mpid, via))
            subprocess.run(["sync"], check=True)
            rows["warm"].append(timed(mpid, via))
            if ngx is not None:
                oid = api.get_paths_info(repo_id, ["f.bin"])[0].lfs.sha256  # type: ignore[union-attr]
                blob = mirror.data / "blobs" / "lfs" / oid[:2] / oid[2:4] / oid
                copy = nginx_dir / f"f-{r}.bin"
                os.link(blob, copy)
                rows["nginx"].append(timed(None, f"{ngx.url}/f-{r}.bin"))
                copy.unlink()

        # What the upstream is asked for one snapshot, cold and warm.
        repo_id = f"{name}/snap-{os.urandom(3).hex()}"
        api.create_repo(repo_id)
        ops = [CommitOperationAdd(f"small-{i}.json", f'{{"i": {i}}}'.encode()) for i in range(8)]
        ops += [CommitOperationAdd(f"large-{i}.bin", os.urandom(MiB)) for i in range(2)]
        api.create_commit(repo_id, operations=ops, commit_message="10 files")
        calls = {}
        for phase in ("cold", "warm"):
            since = up.log.stat().st_size
            snapshot_download(repo_id, cache_dir=root / f"cache-{phase}",
                              endpoint=mirror.endpoint)
            time.sleep(0.5)  # the log line of the last request
            calls[phase] = upstream_requests(up.log, since)
    finally:
        if ngx is not None:
            ngx.stop()
        mirror.stop()
        up.stop()
        if link is not None:
            link.close()
    report(rows, calls, size, args.link_mbit)
    return 0


def report(rows: dict[str, list[tuple[float, float]]], calls: dict[str, list[str]],
           size: int, link_mbit: float) -> None:
    def best(key: str) -> tuple[float, float] | None:
        return min(rows[key]) if rows[key] else None

    def rate(t: float) -> float:
        return size / MiB / t

    link = f"over a {link_mbit:g} Mbit/s link" if link_mbit else "on loopback"
    print(f"\n{size // MiB} MiB file stored through LFS upstream, {link}; best of "
          f"{len(rows['cold'])} rounds (curl -L -o /dev/null)\n")
    print(f"| {'path':40} | {'MiB/s':>8} | {'vs':>14} | {'mirror CPU s/GiB':>16} |")
    print(f"|{'-' * 42}|{'-' * 10}|{'-' * 16}|{'-' * 18}|")
    direct, cold, warm, ngx = best("direct"), best("cold"), best("warm"), best("nginx")
    assert direct is not None and cold is not None and warm is not None
    print(f"| {'direct from the upstream':40} | {rate(direct[0]):8.0f} | {'':>14} | {'':>16} |")
    print(f"| {'cold miss through the mirror':40} | {rate(cold[0]):8.0f} | "
          f"{direct[0] / cold[0]:9.2f}× dir | {cold[1] / (size / GiB):16.2f} |")
    if ngx is not None:
        print(f"| {'nginx, the mirror copy':40} | {rate(ngx[0]):8.0f} | {'':>14} | {'':>16} |")
    vs = f"{ngx[0] / warm[0]:9.2f}× ngx" if ngx is not None else ""
    print(f"| {'warm hit through the mirror':40} | {rate(warm[0]):8.0f} | {vs:>14} | "
          f"{warm[1] / (size / GiB):16.2f} |")
    for key in ("direct", "cold", "warm", "nginx"):
        print(f"  {key}: " + ", ".join(f"{rate(t):.0f} MiB/s" for t, _ in rows[key]))
    print("\nupstream requests of a snapshot_download of 10 files (8 in git, 2 large):")
    for phase, lines in calls.items():
        api = [line for line in lines if "/api/" in line]
        print(f"  {phase}: {len(lines)} requests, {len(api)} to /api/")
        for line in lines:
            print(f"    {line.split('- ', 1)[-1][:110]}")
    print("\ntargets:")
    checks = [("cold miss ≥ 0.8× direct", direct[0] / cold[0] >= TARGETS["cold"]),
              ("warm CPU ≤ 0.5 s/GiB", warm[1] / (size / GiB) <= TARGETS["warm_cpu"]),
              ("warm upstream requests = 0", not calls["warm"])]
    if ngx is not None:
        checks.insert(1, ("warm hit ≥ 0.9× nginx", ngx[0] / warm[0] >= TARGETS["warm"]))
    for text, ok in checks:
        print(f"  {'PASS' if ok else 'MISS'}  {text}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    raise SystemExit(main())
