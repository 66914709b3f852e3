"""Small requests under load: how close they come to the framework's floor.

    .venv/bin/python bench/smallfiles.py [--seconds 3] [--rounds 3] [--workers N]

Starts its own `hver serve` (temporary data directory, random loopback port), makes a
user `bench` with a write token and a model repo holding a 1 KiB `config.json` (in git), a
binary file stored through LFS and, when hf_xet is installed, one stored as Xet chunks.
Then, with `wrk` (64 connections, one thread), it loads in turns, each for `--seconds`:

- `GET /api/health` on the same server: the framework's floor;
- `GET /{ns}/{name}/resolve/main/config.json` with a Bearer token (counted as a
  download on every GET, as a client that sends no HEAD first);
- `HEAD` of the LFS file through `/resolve/main/...` (a redirect to the blob), and a
  `GET` of the Xet file (a redirect too: wrk cannot read a HEAD's 200 with a length);
- `GET /api/models/{ns}/{name}` (`model_info`) with the token;
- nginx serving a 1 KiB static file, when an `nginx` binary is on PATH.

Rounds alternate the order (`--rounds`, 3; the best round of each is kept, all are
listed). Then each target once more at 1 connection, for the p50 there. It prints
req/s, p50 and p99 per target, each req/s as a ratio to `/api/health`'s, the server's
CPU per request, and PASS/MISS against the targets: ≥ 0.5× health and p99 < 50 ms at 64
connections, p50 ≤ 1 ms at 1 connection. Exit status is 0 either way.

The server runs with the default rate limits; the bench user alone is exempt
(`HVER_RATE_LIMIT_EXEMPT=bench`), so the figures are the server's, not the limiter's.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from transfer import Hver, Nginx, cpu_seconds

from hver.config import Settings

CONNECTIONS = 64
TARGET_RATIO = 0.5
TARGET_P99_MS = 50.0
TARGET_P50_1_MS = 1.0
USER = "bench"


@dataclass
class Target:
    label: str
    url: str
    method: str = "GET"
    token: str | None = None
    baseline: bool = False
    server: str = "hver"


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us: float | None = None  # server CPU per request


@dataclass
class Results:
    at64: dict[str, list[Run]] = field(default_factory=dict)
    at1: dict[str, Run] = field(default_factory=dict)

    def best(self, label: str) -> Run:
        return max(self.at64[label], key=lambda r: r.rps)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if m is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(target: Target, connections: int, seconds: float, script_dir: Path,
        pid: int | None) -> Run:
    """One wrk run; the server CPU per request when `pid` is given."""
    script = script_dir / f"{target.method.lower()}.lua"
    if not script.exists():
        script.write_text(f'wrk.method = "{target.method}"\n')
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
           "--timeout", "10s", "-s", str(script)]
    if target.token:
        cmd += ["-H", f"Authorization: Bearer {target.token}"]
    cmd.append(target.url)
    cpu0 = cpu_seconds(pid) if pid else 0.0
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    cpu = cpu_seconds(pid) - cpu0 if pid else None
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = re.search(r"Socket errors:.*?timeout (\d+)", out)
    errors = (int(bad.group(1)) if bad else 0) + (int(errs.group(1)) if errs else 0)
    cpu_us = cpu / total * 1e6 if cpu is not None and total else None
    return Run(rps, p50, p99, errors, cpu_us)


def setup(hver: Hver, root: Path) -> tuple[str, str, str | None, str]:
    """The bench user's token, the repo id, the Xet file's name (None without hf_xet) and the
    LFS file's name."""
    import httpx
    from huggingface_hub import HfApi

    hver.cli("user", "create", USER, "--email", "bench@example.org")
    token = hver.cli("token", "create", USER, "--role", "write")
    repo_id = f"{USER}/small"
    api = HfApi(endpoint=hver.endpoint, token=token)
    api.create_repo(repo_id)
    config = b'{"architectures": ["BertModel"], "hidden_size": 768, "pad": "' + b"x" * 940 + b'"}'
    api.upload_file(path_or_fileobj=config, path_in_repo="config.json", repo_id=repo_id)
    # LFS: an upload with hf_xet disabled, in a process of its own (the switch is read
    # at import); Xet: the same from another process with it enabled, when installed.
    blob = root / "lfs.bin"
    blob.write_bytes(os.urandom(256 * 1024))
    code = ("import sys; from huggingface_hub import HfApi; "
            "HfApi(endpoint=sys.argv[1], token=sys.argv[2]).upload_file("
            "path_or_fileobj=sys.argv[3], path_in_repo=sys.argv[4], repo_id=sys.argv[5])")
    env = dict(os.environ, HF_HUB_DISABLE_PROGRESS_BARS="1", HF_HOME=str(root / "hf-home"))
    subprocess.run([sys.executable, "-c", code, hver.endpoint, token, str(blob),
                    "lfs.bin", repo_id], env=dict(env, HF_HUB_DISABLE_XET="1"), check=True)
    xet_name: str | None = None
    try:
        import hf_xet  # noqa: F401
    except ImportError:
        print("  hf_xet is not installed: no Xet file", flush=True)
    else:
        env.pop("HF_HUB_DISABLE_XET", None)
        blob = root / "xet.bin"  # other bytes: the hub would not take the same sha256 again
        blob.write_bytes(os.urandom(256 * 1024))
        subprocess.run([sys.executable, "-c", code, hver.endpoint, token, str(blob),
                        "xet.bin", repo_id], env=env, check=True)
        xet_name = "xet.bin"
    # Check each target answers as it should before loading it.
    auth = {"Authorization": f"Bearer {token}"}
    base = f"{hver.endpoint}/{repo_id}/resolve/main"
    r = httpx.get(f"{base}/config.json", headers=auth)
    assert r.status_code == 200 and r.content == config, r.text
    r = httpx.head(f"{base}/lfs.bin", headers=auth)
    assert r.status_code == 302 and "X-Xet-Hash" not in r.headers, (r.status_code, r.headers)
    if xet_name:
        r = httpx.head(f"{base}/{xet_name}", headers=auth)
        if r.status_code != 200 or "X-Xet-Hash" not in r.headers:
            print("  the Xet upload was stored through LFS: no Xet target", flush=True)
            xet_name = None
    r = httpx.get(f"{hver.endpoint}/api/models/{repo_id}", headers=auth)
    assert r.status_code == 200 and r.json()["id"] == repo_id, r.text
    return token, repo_id, xet_name, "lfs.bin"


def report(targets: list[Target], res: Results, workers: int) -> None:
    health = res.best("health")
    print(f"\n64 connections, best of {len(res.at64['health'])} rounds "
          f"(hver workers: {workers}):")
    print(f"{'target':<34} {'req/s':>9} {'x health':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'CPU us/req':>10} {'errors':>6}   rounds req/s")
    for t in targets:
        if t.label not in res.at64:
            continue
        b = res.best(t.label)
        cpu = f"{b.cpu_us:10.0f}" if b.cpu_us is not None else f"{'-':>10}"
        rounds = " ".join(f"{r.rps:.0f}" for r in res.at64[t.label])
        print(f"{t.label:<34} {b.rps:9.0f} {b.rps / health.rps:8.2f}x {b.p50_ms:8.2f} "
              f"{b.p99_ms:8.2f} {cpu} {b.errors:6d}   {rounds}")
    print("\n1 connection:")
    print(f"{'target':<34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for t in targets:
        if t.label in res.at1:
            r = res.at1[t.label]
            print(f"{t.label:<34} {r.rps:9.0f} {r.p50_ms:8.3f} {r.p99_ms:8.3f}")
    print()
    for t in targets:
        if t.baseline or t.label not in res.at64:
            continue
        b = res.best(t.label)
        one = res.at1.get(t.label)
        checks = [(b.rps / health.rps >= TARGET_RATIO, f"{b.rps / health.rps:.2f}x health "
                   f"(>= {TARGET_RATIO})"),
                  (b.p99_ms < TARGET_P99_MS, f"p99 {b.p99_ms:.1f} ms (< {TARGET_P99_MS:.0f})"),
                  (b.errors == 0, f"{b.errors} errors")]
        if one is not None:
            checks.append((one.p50_ms <= TARGET_P50_1_MS,
                           f"p50 at 1 conn {one.p50_ms:.2f} ms (<= {TARGET_P50_1_MS:.0f})"))
        ok = all(c for c, _ in checks)
        print(f"{'PASS' if ok else 'MISS'}  {t.label}: " + ", ".join(m for _, m in checks))


def run(args: argparse.Namespace, root: Path) -> int:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not on PATH (Debian: apt-get install wrk)")
    print(f"hver small-request bench: {CONNECTIONS} connections, {args.seconds} s per run, "
          f"{args.rounds} rounds, {os.cpu_count()} CPUs, python {sys.version.split()[0]}, "
          f"tmp {root}", flush=True)
    hver = Hver(root)
    hver.env["HVER_RATE_LIMIT_EXEMPT"] = USER  # default limits; the bench user is exempt
    if args.workers:
        hver.env["HVER_WORKERS"] = str(args.workers)
    hver.start()
    assert hver.proc is not None
    pid = hver.proc.pid
    ngx: Nginx | None = None
    try:
        token, repo_id, xet_name, lfs_name = setup(hver, root)
        base = f"{hver.endpoint}/{repo_id}/resolve/main"
        targets = [
            Target("health", f"{hver.endpoint}/api/health", baseline=True),
            Target("resolve config.json (GET, git)", f"{base}/config.json", token=token),
            Target("resolve LFS file (HEAD)", f"{base}/{lfs_name}", "HEAD", token),
        ]
        if xet_name:
            # GET, answered with a redirect: a HEAD's 200 announces the file's length with
            # no body, which wrk cannot parse (it waits for the body). Same lookup.
            targets.append(Target("resolve Xet file (GET -> 302)", f"{base}/{xet_name}",
                                  token=token))
        targets.append(Target("model_info", f"{hver.endpoint}/api/models/{repo_id}",
                              token=token))
        if shutil.which("nginx"):
            docroot = root / "static"
            docroot.mkdir()
            (docroot / "config.json").write_bytes(b"x" * 1024)
            ngx = Nginx(root, docroot)
            ngx.start()
            targets.append(Target("nginx static 1 KiB", f"{ngx.url}/config.json",
                                  baseline=True, server="nginx"))
        else:
            print("  nginx is not on PATH: no static baseline", flush=True)
        res = Results()
        for t in targets:  # warm up: first requests fill caches and connections
            wrk(t, CONNECTIONS, 1, root, None)
        for rnd in range(args.rounds):
            order = targets if rnd % 2 == 0 else targets[::-1]
            for t in order:
                who = ngx.proc.pid if t.server == "nginx" and ngx and ngx.proc else pid
                r = wrk(t, CONNECTIONS, args.seconds, root, who)
                res.at64.setdefault(t.label, []).append(r)
                print(f"  round {rnd}: {t.label:<34} {r.rps:9.0f} req/s  p50 {r.p50_ms:6.2f} ms"
                      f"  p99 {r.p99_ms:6.2f} ms", flush=True)
        for t in targets:
            res.at1[t.label] = wrk(t, 1, args.seconds, root, None)
        report(targets, res, args.workers or Settings().resolved_workers)
    finally:
        if ngx is not None:
            ngx.stop()
        hver.stop()
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=int, default=3, help="seconds per wrk run (3)")
    p.add_argument("--rounds", type=int, default=3, help="rounds at 64 connections (3)")
    p.add_argument("--workers", type=int, default=0,
                   help="hver worker processes (default: the server's own default)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="hver-bench-"))
    try:
        return run(args, root)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
