"""Upload and download one big LFS file through hver, and nginx for comparison.

    .venv/bin/python bench/transfer.py [--size-mib 1024] [--keep]

Starts its own `hver serve` (temporary data directory, random loopback port) and, when
an `nginx` binary is on PATH, an nginx serving hver's stored copy of the same blob with
sendfile. Everything is measured in the same run on the same machine:

- the local limit for an upload: read + sha256 + write + fsync of the same bytes;
- upload with curl (`curl -T` to a signed href from the LFS batch API) and with the
  real client (`HfApi.upload_file`; its own sha256 pass is timed separately);
- download with curl (`curl -L -o /dev/null` from /resolve) and with the real client
  (`hf_hub_download` into a fresh cache); for nginx, curl and huggingface_hub's own
  `http_get` (the same transfer loop hf_hub_download runs) into a file;
- server CPU seconds (utime + stime from /proc) per GiB moved, and the server's peak
  RSS (VmHWM) after every phase.

It prints a table, then each target with PASS/MISS. Exit status is 0 either way.

    .venv/bin/python bench/transfer.py --xet [--size-mib 1024] [--keep]

measures the Xet path instead, with the client as installed by default (hf_xet on):
every client call runs in a process of its own, without HF_HUB_DISABLE_XET, with a
fresh HF_XET_CACHE and HF_HOME. Per round, a new random file is uploaded with
`HfApi.upload_file`, then a copy with 5% of its bytes rewritten in 3 places is
uploaded over it from another fresh cache (the dedup can only come from the hub's
global-dedup answers), `hver storage stats` read before and after. The first version
is downloaded with `hf_hub_download` through Xet and with curl through /resolve (the
first read decodes the chunks and keeps the file as a blob, later ones are sent from
it), next to nginx and an LFS-stored file of the same size. Both modes end with a
concurrent phase (8 uploads of 256 MiB at once, then 8 downloads; `--no-concurrent`
skips it): the server's peak RSS during it and its RSS after.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

MiB = 1024 * 1024
GiB = 1024 * MiB
CHUNK = 8 * MiB
TICK = os.sysconf("SC_CLK_TCK")
TARGETS = {
    "download_curl": 0.8,     # × nginx, curl client
    "download_client": 0.9,   # × nginx, huggingface_hub client
    "cpu_per_gib": 0.5,       # server CPU seconds per GiB served
    "upload": 0.7,            # × local sha256 + write
    "rss_mb": 300,            # peak server RSS
    "upload_cpu": 2.0,        # server CPU seconds per GiB uploaded (LFS and Xet)
    "fetch_cpu": 0.2,         # server CPU seconds per GiB of Xet fetch ranges served
    "rss_after_mb": 200,      # server RSS once the concurrent transfers are over
}
CONCURRENT = 8  # transfers at once in the concurrent phase
CONCURRENT_MIB = 256  # each of this size


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- /proc accounting -------------------------------------------------------------

def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                kids = Path(f"/proc/{p}/task/{task}/children").read_text().split()
                todo.extend(int(k) for k in kids)
        except OSError:
            pass
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` and its live descendants (nginx: master + worker)."""
    total = 0
    for p in _descendants(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat
    return total / TICK


def _status_mb(pid: int, field: str) -> list[float]:
    """`field` (kB in /proc/PID/status) of `pid` and its live descendants, in MB: the
    server may run worker processes (`--workers`, by default one per core)."""
    out = []
    for p in _descendants(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith(f"{field}:"):
                    out.append(int(line.split()[1]) / 1024)
        except OSError:
            continue
    return out


def rss_mb(pid: int) -> float:
    """The largest RSS of the server's processes (master and workers)."""
    return max(_status_mb(pid, "VmRSS"), default=float("nan"))


def peak_rss_mb(pid: int) -> float:
    """The largest peak RSS (VmHWM) of the server's processes: the busiest worker's."""
    return max(_status_mb(pid, "VmHWM"), default=float("nan"))


def total_rss_mb(pid: int) -> float:
    """The RSS of all the server's processes together."""
    return sum(_status_mb(pid, "VmRSS"))


# --- results ------------------------------------------------------------------------

@dataclass
class Row:
    what: str
    server: str
    client: str
    nbytes: int
    seconds: float
    cpu: float | None = None        # server CPU seconds during the phase
    rss: float | None = None        # server VmHWM after the phase, MB
    note: str = ""

    @property
    def mbps(self) -> float:
        return self.nbytes / MiB / self.seconds if self.seconds > 0 else float("inf")

    @property
    def cpu_per_gib(self) -> float | None:
        return None if self.cpu is None else self.cpu / (self.nbytes / GiB)


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)

    def add(self, row: Row, echo: bool = True) -> Row:
        self.rows.append(row)
        if echo:
            show(row)
        return row


def show(row: Row) -> None:
    cpu = f", server CPU {row.cpu_per_gib:.2f} s/GiB" if row.cpu is not None else ""
    print(f"  {row.what:<9} {row.server:<6} {row.client:<22} {row.mbps:8.0f} MiB/s "
          f"({row.seconds:.2f} s){cpu}", flush=True)


@contextmanager
def measured(pid: int | None) -> Iterator[dict[str, float]]:
    out: dict[str, float] = {}
    cpu0 = cpu_seconds(pid) if pid else 0.0
    t0 = time.perf_counter()
    yield out
    out["seconds"] = time.perf_counter() - t0
    if pid:
        out["cpu"] = cpu_seconds(pid) - cpu0
        out["rss"] = peak_rss_mb(pid)


# --- the file -----------------------------------------------------------------------

def make_file(path: Path, size: int) -> str:
    """Write `size` incompressible bytes, no two 8 MiB chunks alike; return their sha256."""
    h = hashlib.sha256()
    block = os.urandom(64 * MiB)
    with path.open("wb") as fh:
        left, i = size, 0
        while left:
            n = min(CHUNK, left)
            off = (i * CHUNK) % len(block)
            chunk = i.to_bytes(8, "little") + block[off + 8:off + n]
            h.update(chunk)
            fh.write(chunk)
            left -= n
            i += 1
    return h.hexdigest()


def hash_and_write(src: Path, dst: Path) -> float:
    """What an upload must do at least: read, sha256 and write the bytes, then fsync."""
    t0 = time.perf_counter()
    h = hashlib.sha256()
    with src.open("rb") as fin, dst.open("wb") as fout:
        while chunk := fin.read(CHUNK):
            h.update(chunk)
            fout.write(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    h.hexdigest()
    return time.perf_counter() - t0


# --- servers ------------------------------------------------------------------------

def stop_process(proc: subprocess.Popen[bytes] | None, sig: int, timeout: float) -> None:
    """Ask a server to stop with `sig`; kill it after `timeout` seconds."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Hver:
    def __init__(self, root: Path, data: Path | None = None) -> None:
        """A server for `data` (default: a new ROOT/hver-data), logging to ROOT/hver.log."""
        self.data = data if data is not None else root / "hver-data"
        self.data.mkdir(parents=True, exist_ok=data is not None)
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ, HVER_LOG_LEVEL="warning")
        self.log = root / "hver.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "hver", *args, "--data", str(self.data)],
            env=self.env, check=True, capture_output=True, text=True, timeout=300,
        ).stdout.strip()

    def start(self) -> None:
        import httpx

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hver", "serve", "--data", str(self.data),
             "--port", str(self.port)],
            env=self.env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"hver serve exited ({self.proc.returncode}); see {self.log}")
            try:
                if httpx.get(f"{self.endpoint}/api/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise SystemExit("hver serve did not start in 60 s")

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM, 30)


class Nginx:
    """nginx in the foreground, serving one directory with sendfile."""

    def __init__(self, root: Path, docroot: Path) -> None:
        self.dir = root / "nginx"
        self.dir.mkdir()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        user = "user root root;\n" if os.geteuid() == 0 else ""
        temp = "".join(f"  {k}_temp_path {self.dir}/{k};\n"
                       for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (self.dir / "nginx.conf").write_text(
            f"{user}daemon off;\nworker_processes 1;\npid {self.dir}/nginx.pid;\n"
            f"error_log {self.dir}/error.log warn;\n"
            "events { worker_connections 64; }\n"
            "http {\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n"
            f"  default_type application/octet-stream;\n{temp}"
            f"  server {{ listen 127.0.0.1:{self.port}; root {docroot}; }}\n}}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import httpx

        self.proc = subprocess.Popen(
            ["nginx", "-p", str(self.dir), "-e", str(self.dir / "error.log"),
             "-c", str(self.dir / "nginx.conf")],
            stdout=subprocess.DEVNULL, stderr=(self.dir / "stderr.log").open("ab"),
        )
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.dir / "stderr.log").read_text()[-2000:])
            try:
                httpx.get(self.url + "/", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("nginx did not start")

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGQUIT, 20)  # nginx's graceful shutdown


# --- clients ------------------------------------------------------------------------

def curl(*args: str) -> None:
    subprocess.run(["curl", "-sS", "--fail", "-H", "Expect:", *args], check=True,
                   stdout=subprocess.DEVNULL)


def http_get_to(url: str, dest: Path) -> None:
    """huggingface_hub's own download loop (what hf_hub_download runs) into a file."""
    from huggingface_hub.file_download import http_get

    with dest.open("wb") as fh:
        http_get(url, fh)


def nginx_download(ngx: Nginx, name: str, dest: Path, size: int,
                   curl_fetch: Callable[[str], object] | None,
                   record: Callable[[tuple[str, str], Row], None]) -> None:
    """The nginx baseline of one round: curl (when given) and huggingface_hub's http_get."""
    assert ngx.proc is not None
    npid = ngx.proc.pid
    url = f"{ngx.url}/{name}"
    if curl_fetch is not None:
        with measured(npid) as m:
            curl_fetch(url)
        record(("nginx", "curl"), Row(
            "download", "nginx", "curl -o /dev/null", size, m["seconds"], m["cpu"]))
    with measured(npid) as m:
        http_get_to(url, dest)
    record(("nginx", "client"), Row(
        "download", "nginx", "hf http_get -> file", size, m["seconds"], m["cpu"]))
    if dest.stat().st_size != size:
        raise SystemExit("nginx download has the wrong size")


def alternate_rounds(rounds: int, hver_round: Callable[[int], None],
                     nginx_round: Callable[[int], None], ngx: Nginx | None) -> None:
    """hver and nginx in turns, the first alternating, so neither always runs warm; nginx
    is stopped at the end."""
    try:
        for rnd in range(rounds):
            order = [hver_round, nginx_round] if rnd % 2 == 0 else [nginx_round, hver_round]
            for fn in order:
                if fn is nginx_round and ngx is None:
                    continue
                fn(rnd)
    finally:
        if ngx is not None:
            ngx.stop()


def signed_upload_href(endpoint: str, token: str, repo_id: str, oid: str, size: int) -> str:
    import httpx

    r = httpx.post(
        f"{endpoint}/{repo_id}.git/info/lfs/objects/batch",
        headers={"Authorization": f"Bearer {token}",
                 "Accept": "application/vnd.git-lfs+json",
                 "Content-Type": "application/vnd.git-lfs+json"},
        json={"operation": "upload", "transfers": ["basic"], "hash_algo": "sha256",
              "objects": [{"oid": oid, "size": size}]},
        timeout=60,
    )
    r.raise_for_status()
    obj = r.json()["objects"][0]
    if "actions" not in obj or "upload" not in obj["actions"]:
        raise RuntimeError(f"no upload action for a fresh object: {obj}")
    return str(obj["actions"]["upload"]["href"])


def signed_download_href(endpoint: str, token: str, repo_id: str, oid: str, size: int) -> str:
    import httpx

    r = httpx.post(
        f"{endpoint}/{repo_id}.git/info/lfs/objects/batch",
        headers={"Authorization": f"Bearer {token}",
                 "Accept": "application/vnd.git-lfs+json",
                 "Content-Type": "application/vnd.git-lfs+json"},
        json={"operation": "download", "transfers": ["basic"], "hash_algo": "sha256",
              "objects": [{"oid": oid, "size": size}]},
        timeout=60,
    )
    r.raise_for_status()
    return str(r.json()["objects"][0]["actions"]["download"]["href"])


@dataclass
class Burst:
    """One concurrent phase: CONCURRENT transfers at once."""

    what: str
    nbytes: int
    seconds: float
    cpu: float
    peak: float | None  # largest VmHWM of a server process during the phase (MB); None if
                        # it could not be reset
    after: float        # largest VmRSS of a server process a moment after the phase (MB)
    total_after: float  # all server processes together, a moment after (MB)


def concurrent_phase(root: Path, endpoint: str, token: str, repo_id: str,
                     pid: int) -> list[Burst]:
    """CONCURRENT curl uploads of CONCURRENT_MIB each at once (signed LFS hrefs), then as
    many downloads of them at once; the server's peak RSS during each and its RSS after."""
    size = CONCURRENT_MIB * MiB
    files = []
    for i in range(CONCURRENT):
        path = root / f"burst-{i}.bin"
        files.append((path, make_file(path, size)))

    def burst(what: str, jobs: list[Callable[[], None]]) -> Burst:
        hwm = reset_peak_rss(pid)
        errors: list[BaseException] = []

        def run(job: Callable[[], None]) -> None:
            try:
                job()
            except BaseException as e:  # reported after the phase
                errors.append(e)

        threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
        with measured(pid) as m:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        if errors:
            raise SystemExit(f"{what}: {errors[0]!r}")
        time.sleep(2)  # what the server frees after the last response
        b = Burst(what, size * len(jobs), m["seconds"], m["cpu"],
                  m["rss"] if hwm else None, rss_mb(pid), total_rss_mb(pid))
        peak = f"{b.peak:.0f} MB" if b.peak is not None else "n/a"
        print(f"  {what:<32} {b.nbytes / MiB / b.seconds:8.0f} MiB/s ({b.seconds:.2f} s), "
              f"server CPU {b.cpu / (b.nbytes / GiB):.2f} s/GiB, peak RSS {peak}, "
              f"RSS after {b.after:.0f} MB (all processes: {b.total_after:.0f} MB)", flush=True)
        return b

    def curl_job(*args: str) -> Callable[[], None]:
        return lambda: curl(*args)

    ups = burst(f"{CONCURRENT} uploads at once (curl)", [
        curl_job("-T", str(path), signed_upload_href(endpoint, token, repo_id, oid, size))
        for path, oid in files])
    downs = burst(f"{CONCURRENT} downloads at once (curl)", [
        curl_job("-o", "/dev/null", signed_download_href(endpoint, token, repo_id, oid, size))
        for _, oid in files])
    for path, _ in files:
        path.unlink()
    return [ups, downs]


# --- the run ------------------------------------------------------------------------

def run(args: argparse.Namespace, root: Path) -> int:
    size = args.size_mib * MiB
    os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
    os.environ["HF_HUB_DISABLE_XET"] = "1"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ["HF_HOME"] = str(root / "hf-home")
    os.environ.pop("HF_TOKEN", None)

    have_curl = shutil.which("curl") is not None
    have_nginx = shutil.which("nginx") is not None
    print(f"hver transfer bench: {args.size_mib} MiB file, {os.cpu_count()} CPUs, "
          f"python {sys.version.split()[0]}, tmp {root}")

    # Every upload needs bytes the server has not seen: two new files per round.
    t0 = time.perf_counter()
    files: list[tuple[Path, str]] = []
    for i in range(args.rounds * 2):
        path = root / f"f{i}.bin"
        files.append((path, make_file(path, size)))
    print(f"  generated {len(files)} test files in {time.perf_counter() - t0:.1f} s")
    src_a, oid_a = files[0]

    res = Results()
    # The local limit for an upload, measured twice, the better one kept.
    # Into new files, kept until the end: on a VM, filling fresh page-cache pages costs
    # far more than rewriting just-freed ones, and an upload always writes a new file.
    limit_s = min(hash_and_write(src_a, root / f"limit-{i}.bin") for i in range(2))
    limit = res.add(Row("limit", "local", "sha256+write+fsync", size, limit_s))

    hver = Hver(root)
    hver.start()
    assert hver.proc is not None
    pid = hver.proc.pid
    print(f"  hver at {hver.endpoint} (pid {pid}, {len(_descendants(pid))} processes), "
          f"startup peak RSS {peak_rss_mb(pid):.0f} MB (the largest process's)")
    name = "bench"
    hver.cli("user", "create", name, "--email", "bench@example.org")
    token = hver.cli("token", "create", name, "--role", "write")
    repo_id = f"{name}/big"

    from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download

    api = HfApi(endpoint=hver.endpoint, token=token)
    api.create_repo(repo_id)

    # Uploads: the real client (its own sha256 pass timed apart from the commit: PUT,
    # verify, commit) and curl PUT to a signed href; the order flips every round.
    ups: dict[str, list[Row]] = {}

    def upload_client(path: Path, oid: str) -> None:
        t0 = time.perf_counter()
        op = CommitOperationAdd(path_in_repo=path.name, path_or_fileobj=str(path))
        assert op.upload_info.sha256.hex() == oid  # computed lazily: time it here
        hash_s = time.perf_counter() - t0
        with measured(pid) as m:
            api.create_commit(repo_id, operations=[op], commit_message=path.name)
        row = Row("upload", "hver", "huggingface_hub", size, m["seconds"], m["cpu"], m["rss"])
        total = size / MiB / (m["seconds"] + hash_s)
        row.note = f"+ client sha256 {hash_s:.2f} s = {total:.0f} MiB/s"
        ups.setdefault("client", []).append(row)
        show(row)

    def upload_curl(path: Path, oid: str) -> None:
        href = signed_upload_href(hver.endpoint, token, repo_id, oid, size)
        with measured(pid) as m:
            curl("-T", str(path), href)
        row = Row("upload", "hver", "curl", size, m["seconds"], m["cpu"], m["rss"])
        ups.setdefault("curl", []).append(row)
        show(row)
        api.create_commit(repo_id, operations=[
            CommitOperationAdd(path_in_repo=path.name, path_or_fileobj=str(path))],
            commit_message=path.name)

    for rnd in range(args.rounds):
        jobs = [(upload_client, files[2 * rnd]), (upload_curl, files[2 * rnd + 1])]
        if rnd % 2:
            jobs.reverse()
        for fn, (path, oid) in jobs:
            if fn is upload_curl and not have_curl:
                continue
            fn(path, oid)
    for rows in ups.values():
        best = min(rows, key=lambda r: r.seconds)
        if len(rows) > 1:
            best.note = (best.note + "; " if best.note else "") + "rounds: " + ", ".join(
                f"{r.mbps:.0f}" for r in rows) + " MiB/s"
        res.add(best, echo=False)
    up_client = min(ups["client"], key=lambda r: r.seconds)
    up_curl = min(ups["curl"], key=lambda r: r.seconds) if "curl" in ups else None

    blob = hver.data / "blobs" / "lfs" / oid_a[0:2] / oid_a[2:4] / oid_a
    if not blob.exists():
        found = [p for p in hver.data.rglob(oid_a) if p.is_file()]
        blob = found[0] if found else blob

    # Downloads. Warm the page cache first so both servers read from memory. hver and
    # nginx take turns (the order flips every round) and each keeps its best round; every
    # downloaded file is kept to the end, so no client reuses pages another just freed.
    if blob.exists():
        with blob.open("rb") as fh:
            while fh.read(CHUNK):
                pass
    ngx: Nginx | None = None
    nginx_note = ""
    if not have_nginx:
        nginx_note = "nginx is not installed: skipped the nginx comparison."
    elif not blob.exists():
        nginx_note = f"hver's blob not found at {blob}: skipped nginx."
    else:
        ngx = Nginx(root, blob.parent)
        try:
            ngx.start()
        except (RuntimeError, OSError) as e:
            nginx_note = f"nginx failed to start, skipped: {e}"
            ngx.stop()
            ngx = None

    resolve = f"{hver.endpoint}/{repo_id}/resolve/main/{src_a.name}"
    runs: dict[tuple[str, str], list[Row]] = {}

    def record(key: tuple[str, str], row: Row) -> None:
        runs.setdefault(key, []).append(row)
        show(row)

    def hver_round(rnd: int) -> None:
        if have_curl:
            with measured(pid) as m:
                curl("-L", "-o", "/dev/null", resolve)
            record(("hver", "curl"), Row(
                "download", "hver", "curl -o /dev/null", size, m["seconds"], m["cpu"], m["rss"]))
        with measured(pid) as m:
            got = hf_hub_download(repo_id, src_a.name, cache_dir=root / f"hf-cache-{rnd}",
                                  endpoint=hver.endpoint)
        record(("hver", "client"), Row(
            "download", "hver", "hf_hub_download", size, m["seconds"], m["cpu"], m["rss"]))
        if Path(got).stat().st_size != size:
            raise SystemExit("hf_hub_download returned the wrong size")

    def nginx_round(rnd: int) -> None:
        assert ngx is not None
        fetch = (lambda url: curl("-o", "/dev/null", url)) if have_curl else None
        nginx_download(ngx, blob.name, root / f"nginx-download-{rnd}.bin", size, fetch, record)

    alternate_rounds(args.rounds, hver_round, nginx_round, ngx)

    down: dict[tuple[str, str], Row] = {}
    for key in [("hver", "curl"), ("hver", "client"), ("nginx", "curl"), ("nginx", "client")]:
        if key in runs:
            best = min(runs[key], key=lambda r: r.seconds)
            speeds = ", ".join(f"{r.mbps:.0f}" for r in runs[key])
            best.note = f"rounds: {speeds} MiB/s" if len(runs[key]) > 1 else ""
            down[key] = res.add(best, echo=False)
    worst_cpu = max((r.cpu_per_gib or 0.0 for k, rs in runs.items() if k[0] == "hver"
                     for r in rs), default=None)

    rss_peak = peak_rss_mb(pid)
    bursts = (concurrent_phase(root, hver.endpoint, token, repo_id, pid)
              if have_curl and args.concurrent else [])
    hver.stop()
    report(res, limit, up_client, up_curl, down, worst_cpu, rss_peak,
           nginx_note, have_curl, bursts)
    return 0


def burst_checks(bursts: list[Burst]) -> list[
        tuple[str, float | None, Callable[[float], bool], str]]:
    """The concurrent phase's targets: peak RSS during, RSS after."""
    if not bursts:
        return []
    peaks = [b.peak for b in bursts if b.peak is not None]
    return [
        (f"peak server RSS      <= 300 MB, {CONCURRENT} x {CONCURRENT_MIB} MiB at once",
         max(peaks) if peaks else None, lambda v: v <= TARGETS["rss_mb"], "{:.0f} MB"),
        ("server RSS after     < 200 MB, once they are over", max(b.after for b in bursts),
         lambda v: v < TARGETS["rss_after_mb"], "{:.0f} MB"),
    ]


def report(res: Results, limit: Row, up_client: Row, up_curl: Row | None,
           down: dict[tuple[str, str], Row], worst_cpu: float | None,
           rss_peak: float, nginx_note: str, have_curl: bool,
           bursts: list[Burst]) -> None:
    print()
    print(f"{'phase':<9} {'server':<6} {'client':<22} {'MiB/s':>8} {'seconds':>8} "
          f"{'srv CPU s/GiB':>14} {'peak RSS MB':>12}  vs")
    for r in res.rows:
        vs = ""
        if r.what == "upload":
            vs = f"{r.mbps / limit.mbps:.2f}x limit"
        elif r.what == "download" and r.server == "hver":
            key = "curl" if r.client.startswith("curl") else "client"
            ref = down.get(("nginx", key))
            vs = f"{r.mbps / ref.mbps:.2f}x nginx" if ref else ""
        cpu = f"{r.cpu_per_gib:14.2f}" if r.cpu is not None else f"{'':14}"
        rss = f"{r.rss:12.0f}" if r.rss is not None else f"{'':12}"
        print(f"{r.what:<9} {r.server:<6} {r.client:<22} {r.mbps:8.0f} {r.seconds:8.2f} "
              f"{cpu} {rss}  {vs} {r.note}".rstrip())
    if nginx_note:
        print(nginx_note)
    if not have_curl:
        print("curl is not installed: skipped the curl rows.")

    print("\ntargets:")
    checks: list[tuple[str, float | None, Callable[[float], bool], str]] = []

    def ratio(a: tuple[str, str], b: tuple[str, str]) -> float | None:
        return down[a].mbps / down[b].mbps if a in down and b in down else None

    checks.append(("download, curl       >= 0.80x nginx",
                   ratio(("hver", "curl"), ("nginx", "curl")),
                   lambda v: v >= TARGETS["download_curl"], "{:.2f}x"))
    checks.append(("download, hf client  >= 0.90x nginx",
                   ratio(("hver", "client"), ("nginx", "client")),
                   lambda v: v >= TARGETS["download_client"], "{:.2f}x"))
    checks.append(("server CPU per GiB served <= 0.5 s", worst_cpu,
                   lambda v: v <= TARGETS["cpu_per_gib"], "{:.2f} s (worst hver download)"))
    if up_curl is not None:
        checks.append(("upload, curl         >= 0.70x limit", up_curl.mbps / limit.mbps,
                       lambda v: v >= TARGETS["upload"], "{:.2f}x"))
    checks.append(("upload, hf client    >= 0.70x limit", up_client.mbps / limit.mbps,
                   lambda v: v >= TARGETS["upload"], "{:.2f}x (PUT + verify + commit)"))
    if up_curl is not None and up_curl.cpu_per_gib is not None:
        checks.append(("upload server CPU    <= 2 s per GiB (curl PUT)", up_curl.cpu_per_gib,
                       lambda v: v <= TARGETS["upload_cpu"], "{:.2f} s"))
    checks.append(("peak server RSS      < 300 MB", rss_peak,
                   lambda v: v < TARGETS["rss_mb"], "{:.0f} MB"))
    checks.extend(burst_checks(bursts))
    for label, value, ok, fmt in checks:
        if value is None:
            print(f"  SKIP  {label}")
        else:
            mark = "PASS" if ok(value) else "MISS"
            print(f"  {mark}  {label}: {fmt.format(value)}")


# --- Xet mode -----------------------------------------------------------------------

XET_FILE = "big.bin"
XET_EDIT = 0.05       # share of the bytes rewritten for the second version
XET_REGIONS = 3       # in this many contiguous runs, spread over the file
XET_TARGETS = {"reupload": 0.25}  # second version's upload time / the first's
PROTO = b"@@ "        # marks the client process's protocol lines on its stdout


def make_random_file(path: Path, size: int) -> None:
    """`size` random bytes. Not make_file: its 64 MiB period would dedup inside the file."""
    with path.open("wb") as fh:
        left = size
        while left:
            n = min(CHUNK, left)
            fh.write(os.urandom(n))
            left -= n


def edit_copy(src: Path, dst: Path) -> int:
    """`src` with XET_EDIT of its bytes rewritten in place in XET_REGIONS runs, centred
    at 1/6, 3/6, 5/6 of the file (the first chunk is kept); returns the bytes rewritten."""
    shutil.copyfile(src, dst)
    size = src.stat().st_size
    run = int(size * XET_EDIT) // XET_REGIONS
    with dst.open("r+b") as fh:
        for i in range(XET_REGIONS):
            fh.seek(size * (2 * i + 1) // (2 * XET_REGIONS) - run // 2)
            fh.write(os.urandom(run))
    return run * XET_REGIONS


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def reset_peak_rss(pid: int) -> bool:
    """Restart VmHWM from the current RSS in the server's processes (Linux >= 4.0, own or
    root's processes)."""
    try:
        for p in _descendants(pid):
            Path(f"/proc/{p}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def xet_client() -> int:
    """Child process: one huggingface_hub call, hf_xet on. Reads a job (JSON) on stdin,
    says `ready`, waits for `go`, runs the call and prints the result (JSON)."""
    import resource

    job = json.loads(sys.stdin.readline())
    from huggingface_hub import (
        HfApi,
        constants,
        get_hf_file_metadata,
        hf_hub_download,
        hf_hub_url,
    )

    if constants.HF_HUB_DISABLE_XET:
        raise SystemExit("HF_HUB_DISABLE_XET is set in the client process")
    out: dict[str, object] = {}
    act: Callable[[], None]
    if job["op"] == "upload":
        import huggingface_hub.utils as hf_utils
        from huggingface_hub.utils import _xet_progress_reporting as xet_progress

        # hf_xet reports bytes to send and bytes sent to the progress reporter; record
        # the last report instead of drawing bars (looked up when the upload starts).
        last: dict[str, int] = {}

        class Recorder:
            def __init__(self, *args: object, **kwargs: object) -> None:
                pass

            def update_progress(self, group: object, items: object = None) -> None:
                last["total"] = int(group.total_bytes)  # type: ignore[attr-defined]
                last["sent"] = int(group.total_transfer_bytes_completed)  # type: ignore[attr-defined]

            def reset_for_next_commit(self) -> None:
                pass

            def close(self) -> None:
                pass

        setattr(hf_utils, "are_progress_bars_disabled", lambda *a, **k: False)  # noqa: B010
        xet_progress.XetUploadProgressReporter = Recorder  # type: ignore[misc,assignment]
        api = HfApi(endpoint=job["endpoint"], token=job["token"])

        def act() -> None:
            info = api.upload_file(path_or_fileobj=job["path"], path_in_repo=job["name"],
                                   repo_id=job["repo"], commit_message=job["message"])
            out.update(commit=info.oid, **last)
    elif job["op"] == "hash":
        import hf_xet

        def act() -> None:
            hf_xet.hash_files([job["path"]])
    else:
        url = hf_hub_url(job["repo"], job["name"], revision=job["revision"],
                         endpoint=job["endpoint"])
        meta = get_hf_file_metadata(url, token=job["token"])
        out["xet"] = meta.xet_file_data is not None

        def act() -> None:
            out["path"] = hf_hub_download(job["repo"], job["name"], revision=job["revision"],
                                          cache_dir=job["cache"], endpoint=job["endpoint"],
                                          token=job["token"])

    def say(text: str) -> None:
        sys.stdout.buffer.write(PROTO + text.encode() + b"\n")
        sys.stdout.flush()

    say("ready")
    if sys.stdin.readline().strip() != "go":
        return 1
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    act()
    out["seconds"] = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    out["cpu"] = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
    say(json.dumps(out))
    return 0


class ClientFailed(RuntimeError):
    pass


def run_xet_client(root: Path, tag: str, job: dict[str, object], pid: int,
                   timeout: float) -> tuple[dict[str, float], dict[str, object]]:
    """Run one client call in a fresh process (own HF_HOME and HF_XET_CACHE, Xet on),
    measuring the server from `go` to the result; killed after `timeout` seconds."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_DISABLE_XET", "HF_TOKEN", "HF_XET_CACHE", "HF_HOME")}
    env |= {"HF_HOME": str(root / f"hf-home-{tag}"), "HF_XET_CACHE": str(root / f"xet-{tag}"),
            "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    log = root / f"client-{tag}.log"
    deadline = time.monotonic() + timeout
    with log.open("ab") as err:
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--xet-client"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                env=env, cwd=root)
    assert proc.stdin is not None and proc.stdout is not None
    stdout = proc.stdout.fileno()
    pending = b""

    def expect() -> str:
        nonlocal pending
        while True:
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                if line.startswith(PROTO):
                    return line[len(PROTO):].decode()
            left = deadline - time.monotonic()
            if left <= 0:
                raise ClientFailed(f"client {tag} ran past {timeout:g} s")
            ready, _, _ = select.select([stdout], [], [], left)
            if ready:
                data = os.read(stdout, 65536)
                if not data:
                    tail = log.read_text(errors="replace")[-3000:]
                    raise ClientFailed(f"client {tag} exited ({proc.wait()}):\n{tail}")
                pending += data

    try:
        proc.stdin.write((json.dumps(job) + "\n").encode())
        proc.stdin.flush()
        if expect() != "ready":
            raise ClientFailed(f"client {tag}: unexpected answer")
        reset_peak_rss(pid)
        with measured(pid) as m:
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
            result = json.loads(expect())
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return m, result


class LinkShaper:
    """A TCP relay in front of the server that carries at most `mbit` Mbit/s each way, as
    a network link between a client and the hub would (`--link-mbit`). Each direction is
    one token bucket shared by all connections; no latency is added. The hub builds its
    URLs (LFS hrefs, Xet CAS and fetch URLs) from the Host header, so everything the
    client is sent to goes through the link too."""

    def __init__(self, target_port: int, mbit: float) -> None:
        self.rate = mbit * 1e6 / 8  # bytes per second
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.buckets = [self._bucket(), self._bucket()]  # client->server, server->client
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _bucket(self) -> Callable[[int], None]:
        lock = threading.Lock()
        state = {"t": time.monotonic()}  # the time at which the link is free again

        def take(n: int) -> None:
            with lock:
                start = max(state["t"], time.monotonic())
                state["t"] = start + n / self.rate
                wait = state["t"] - time.monotonic()
            if wait > 0:
                time.sleep(wait)

        return take

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            up = socket.create_connection(self.target)
            for pair in ((conn, up, self.buckets[0]), (up, conn, self.buckets[1])):
                threading.Thread(target=self._pump, args=pair, daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, take: Callable[[int], None]) -> None:
        try:
            while data := src.recv(256 * 1024):
                take(len(data))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.closed = True
        self.listener.close()


def curl_size(timeout: float, *args: str) -> int:
    """curl into /dev/null, bounded in time; returns the bytes it received."""
    out = subprocess.run(["curl", "-sS", "--fail", "-m", str(int(timeout)), "-o", "/dev/null",
                          "-w", "%{size_download}", *args], check=True, capture_output=True,
                         text=True, timeout=timeout + 10)
    return int(out.stdout.strip())


def wait_for_cache(data: Path, seconds: float = 60) -> None:
    """Wait until the first whole plain read's copy of the Xet file is stored (the server
    fsyncs and stores it after the response)."""
    deadline = time.monotonic() + seconds
    while not any((data / "blobs" / "xet" / "files").glob("*/*")):
        if time.monotonic() > deadline:
            print("  (no cached copy of the Xet file appeared: plain reads decode)")
            return
        time.sleep(0.1)


def run_xet(args: argparse.Namespace, root: Path) -> int:
    size = args.size_mib * MiB
    # The LFS reference calls run in this process and must not use Xet; Xet clients
    # run in processes of their own without this variable (run_xet_client).
    os.environ["HF_HUB_DISABLE_XET"] = "1"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ["HF_HOME"] = str(root / "hf-home")
    os.environ.pop("HF_TOKEN", None)
    timeout = float(args.client_timeout)

    for tool in ("curl",):
        if shutil.which(tool) is None:
            raise SystemExit(f"--xet needs {tool}")
    have_nginx = shutil.which("nginx") is not None
    print(f"hver transfer bench, Xet: {args.size_mib} MiB file, {os.cpu_count()} CPUs, "
          f"python {sys.version.split()[0]}, tmp {root}")

    t0 = time.perf_counter()
    firsts = [root / f"x{r}.bin" for r in range(args.rounds)]
    for path in firsts:
        make_random_file(path, size)
    seconds = [root / f"x{r}-v2.bin" for r in range(args.rounds)]
    edited = [edit_copy(a, b) for a, b in zip(firsts, seconds, strict=True)]
    lfs_src = root / "lfs.bin"
    make_random_file(lfs_src, size)
    print(f"  generated {2 * args.rounds + 1} test files in {time.perf_counter() - t0:.1f} s "
          f"(second versions: {edited[0] / MiB:.1f} MiB rewritten in {XET_REGIONS} runs)")

    res = Results()
    limit_s = min(hash_and_write(firsts[0], root / f"limit-{i}.bin") for i in range(2))
    limit = res.add(Row("limit", "local", "sha256+write+fsync", size, limit_s))

    hver = Hver(root)
    hver.start()
    try:
        return _run_xet(args, root, hver, res, limit, firsts, seconds, lfs_src,
                        have_nginx, timeout)
    finally:
        hver.stop()


def _run_xet(args: argparse.Namespace, root: Path, hver: Hver, res: Results, limit: Row,
             firsts: list[Path], seconds: list[Path], lfs_src: Path, have_nginx: bool,
             timeout: float) -> int:
    size = firsts[0].stat().st_size
    assert hver.proc is not None
    pid = hver.proc.pid
    hwm_ok = reset_peak_rss(pid)
    print(f"  hver at {hver.endpoint} (pid {pid}, {len(_descendants(pid))} processes), "
          f"startup peak RSS {peak_rss_mb(pid):.0f} MB (the largest process's)")
    name = "bench"
    hver.cli("user", "create", name, "--email", "bench@example.org")
    token = hver.cli("token", "create", name, "--role", "write")

    from huggingface_hub import HfApi, hf_hub_download

    api = HfApi(endpoint=hver.endpoint, token=token)

    def stats(repo: str) -> dict[str, float]:
        return dict(json.loads(hver.cli("storage", "stats", repo, "--json")))

    def sent(out: dict[str, object]) -> str:
        """Bytes the client reported sent (hf_xet's progress), when it reported any."""
        n = out.get("sent")
        return f"sent {int(n) / MiB:.1f} MiB" if isinstance(n, int) else "sent: not reported"

    def job(**kw: object) -> dict[str, object]:
        return {"endpoint": hver.endpoint, "token": token, "name": XET_FILE} | kw

    # Uploads go through a shaped link when asked; everything else stays on loopback.
    link = LinkShaper(hver.port, args.link_mbit) if args.link_mbit > 0 else None
    up_endpoint = link.endpoint if link is not None else hver.endpoint
    if link is not None:
        print(f"  uploads through a {args.link_mbit:g} Mbit/s link at {link.endpoint}")

    # Uploads: per round a new file into a repo of its own, then its second version.
    ups: list[Row] = []
    reups: list[Row] = []
    floors: list[Row] = []
    storage: list[tuple[dict[str, float], dict[str, float], dict[str, float]]] = []
    commits: list[str] = []
    for rnd in range(args.rounds):
        repo = f"{name}/xet-{rnd}"
        api.create_repo(repo)
        s0 = stats(repo)
        m, out = run_xet_client(root, f"up-{rnd}", job(
            op="upload", repo=repo, path=str(firsts[rnd]), message="v1", endpoint=up_endpoint),
            pid, timeout)
        commits.append(str(out["commit"]))
        s1 = stats(repo)
        if s1["xetFiles"] <= s0["xetFiles"]:
            raise SystemExit("the upload was not stored as a Xet file")
        row = Row("upload", "hver", "upload_file (xet)", size, m["seconds"], m["cpu"],
                  m["rss"] if hwm_ok else None)
        row.note = (f"{sent(out)}, client CPU {out['cpu']:.1f} s; "
                    f"stored +{(s1['storedBytes'] - s0['storedBytes']) / MiB:.1f} MiB")
        ups.append(row)
        show(row)

        # What the client does for any upload, before the network: chunk and hash it all.
        _, out = run_xet_client(root, f"hash-{rnd}", job(op="hash", path=str(seconds[rnd])),
                                pid, timeout)
        row = Row("floor", "local", "hf_xet.hash_files", size, float(str(out["seconds"])))
        row.note = "client chunking + Xet hashing only (no sha256, no network)"
        floors.append(row)
        show(row)

        m, out = run_xet_client(root, f"reup-{rnd}", job(
            op="upload", repo=repo, path=str(seconds[rnd]), message="v2, 5% changed",
            endpoint=up_endpoint), pid, timeout)
        s2 = stats(repo)
        if s2["xetFiles"] <= s1["xetFiles"]:
            raise SystemExit("the re-upload was not stored as a Xet file")
        storage.append((s0, s1, s2))
        row = Row("re-upload", "hver", "upload_file (xet)", size, m["seconds"], m["cpu"],
                  m["rss"] if hwm_ok else None)
        row.note = (f"{sent(out)}, client CPU {out['cpu']:.1f} s; "
                    f"stored +{(s2['storedBytes'] - s1['storedBytes']) / MiB:.1f} MiB")
        reups.append(row)
        show(row)

    # The LFS reference: the same size through LFS, downloaded by this process (Xet off).
    api.create_repo(f"{name}/lfs")
    api.upload_file(path_or_fileobj=str(lfs_src), path_in_repo=XET_FILE,
                    repo_id=f"{name}/lfs", commit_message="lfs")
    lfs_is_lfs = stats(f"{name}/lfs")["xetFiles"] == 0

    # Downloads of the first round's first version. Warm the page cache first: the stored
    # xorbs, the LFS blob and nginx's copy (a hard link to the source file).
    for path in [*(hver.data.rglob("*")), firsts[0]]:
        if path.is_file() and path.stat().st_size >= MiB:
            with path.open("rb") as fh:
                while fh.read(CHUNK):
                    pass
    ngx: Nginx | None = None
    nginx_note = ""
    if not have_nginx:
        nginx_note = "nginx is not installed: skipped the nginx comparison."
    else:
        docroot = root / "docroot"
        docroot.mkdir()
        os.link(firsts[0], docroot / XET_FILE)
        ngx = Nginx(root, docroot)
        try:
            ngx.start()
        except (RuntimeError, OSError) as e:
            nginx_note = f"nginx failed to start, skipped: {e}"
            ngx.stop()
            ngx = None

    repo0, rev0 = f"{name}/xet-0", commits[0]
    want = sha256_file(firsts[0])
    runs: dict[tuple[str, str], list[Row]] = {}

    def record(key: tuple[str, str], row: Row) -> None:
        runs.setdefault(key, []).append(row)
        show(row)

    def hver_round(rnd: int) -> None:
        m, out = run_xet_client(root, f"down-{rnd}", job(
            op="download", repo=repo0, revision=rev0, cache=str(root / f"hf-cache-xet-{rnd}")),
            pid, timeout)
        if not out["xet"]:
            raise SystemExit("the download's metadata has no Xet file data: not a Xet download")
        got = Path(str(out["path"]))
        if got.stat().st_size != size:
            raise SystemExit("hf_hub_download (xet) returned the wrong size")
        if rnd == 0 and sha256_file(got) != want:
            raise SystemExit("hf_hub_download (xet) returned other bytes")
        row = Row("download", "hver", "hf_hub_download (xet)", size, m["seconds"], m["cpu"],
                  m["rss"] if hwm_ok else None, f"client CPU {out['cpu']:.1f} s")
        record(("hver", "xet"), row)

        url = f"{hver.endpoint}/{repo0}/resolve/{rev0}/{XET_FILE}"
        # The first whole read decodes the chunks and keeps what it sent as a blob; the
        # reads after it are sent from that blob by sendfile.
        kinds = [("plain-first", "curl -L (1st, decodes)"), ("plain", "curl -L (plain HTTP)")]
        for key, label in kinds if rnd == 0 else kinds[1:]:
            if key == "plain":
                wait_for_cache(hver.data)
            reset_peak_rss(pid)
            with measured(pid) as m:
                got_n = curl_size(timeout, "-L", url)
            if got_n != size:
                raise SystemExit(f"curl got {got_n} bytes from {url}")
            record(("hver", key), Row("download", "hver", label, size, m["seconds"], m["cpu"],
                                      m["rss"] if hwm_ok else None))

        reset_peak_rss(pid)
        with measured(pid) as m:
            lfs_got = hf_hub_download(f"{name}/lfs", XET_FILE, endpoint=hver.endpoint,
                                      cache_dir=root / f"hf-cache-lfs-{rnd}")
        if Path(lfs_got).stat().st_size != size:
            raise SystemExit("hf_hub_download (LFS) returned the wrong size")
        record(("hver", "lfs"), Row("download", "hver", "hf_hub_download (LFS)", size,
                                    m["seconds"], m["cpu"], m["rss"] if hwm_ok else None))

    def nginx_round(rnd: int) -> None:
        assert ngx is not None
        nginx_download(ngx, XET_FILE, root / f"nginx-download-{rnd}.bin", size,
                       lambda url: curl_size(timeout, url), record)

    alternate_rounds(args.rounds, hver_round, nginx_round, ngx)

    def best(rows: list[Row]) -> Row:
        top = min(rows, key=lambda r: r.seconds)
        if len(rows) > 1:
            top.note = (top.note + "; " if top.note else "") + "rounds: " + ", ".join(
                f"{r.mbps:.0f}" for r in rows) + " MiB/s"
        return res.add(top, echo=False)

    up, reup = best(ups), best(reups)
    floor = best(floors)
    down = {key: best(rows) for key, rows in runs.items()}
    rss_all = max((r.rss for r in [*ups, *reups, *(x for rs in runs.values() for x in rs)]
                   if r.server == "hver" and r.rss is not None), default=None)
    if link is not None:
        link.close()
    bursts = (concurrent_phase(root, hver.endpoint, token, f"{name}/lfs", pid)
              if args.concurrent else [])
    report_xet(res, limit, up, reup, floor, ups, reups, down, storage, rss_all, hwm_ok,
               nginx_note, lfs_is_lfs, args.link_mbit, bursts)
    return 0


def report_xet(res: Results, limit: Row, up: Row, reup: Row, floor: Row, ups: list[Row],
               reups: list[Row], down: dict[tuple[str, str], Row],
               storage: list[tuple[dict[str, float], dict[str, float], dict[str, float]]],
               rss_peak: float | None, hwm_ok: bool, nginx_note: str, have_lfs: bool,
               link_mbit: float = 0, bursts: list[Burst] | None = None) -> None:
    ratios = [b.seconds / a.seconds for a, b in zip(ups, reups, strict=True)]
    print()
    print(f"{'phase':<9} {'server':<6} {'client':<22} {'MiB/s':>8} {'seconds':>8} "
          f"{'srv CPU s/GiB':>14} {'peak RSS MB':>12}  vs")
    for r in res.rows:
        vs = ""
        if r.what == "upload":
            vs = f"{r.mbps / limit.mbps:.2f}x limit"
        elif r.what == "re-upload":
            vs = f"{reup.seconds / up.seconds:.2f}x first upload's time"
        elif r.what == "floor":
            vs = f"{r.seconds / up.seconds:.2f}x first upload's time"
        elif r.what == "download" and r.server == "hver":
            ref = down.get(("nginx", "curl" if r.client.startswith("curl") else "client"))
            vs = f"{r.mbps / ref.mbps:.2f}x nginx" if ref else ""
            lfs = down.get(("hver", "lfs"))
            if r.client == "hf_hub_download (xet)" and lfs is not None:
                vs += f"{', ' if vs else ''}{r.mbps / lfs.mbps:.2f}x LFS"
        cpu = f"{r.cpu_per_gib:14.2f}" if r.cpu is not None else f"{'':14}"
        rss = f"{r.rss:12.0f}" if r.rss is not None else f"{'':12}"
        print(f"{r.what:<9} {r.server:<6} {r.client:<22} {r.mbps:8.0f} {r.seconds:8.2f} "
              f"{cpu} {rss}  {vs} {r.note}".rstrip())
    print("limit: read + sha256 + write + fsync of the same bytes into a new file, in-process.")
    if link_mbit > 0:
        print(f"uploads and re-uploads went through a {link_mbit:g} Mbit/s link "
              f"({link_mbit / 8 / 1.048576:.0f} MiB/s each way); downloads over loopback.")
    print("peak RSS: the largest VmHWM of the server's processes, reset before each phase"
          if hwm_ok else
          "peak RSS: the server's VmHWM since start (could not reset it per phase)")
    if nginx_note:
        print(nginx_note)
    print("\nstorage (hver storage stats REPO --json), per round: "
          "empty -> v1 -> v2 (5% rewritten)")

    def describe(s: dict[str, float]) -> str:
        return (f"logical {s['logicalBytes'] / MiB:.1f} MiB, stored "
                f"{s['storedBytes'] / MiB:.1f} MiB, ratio {s['dedupRatio']:.2f}")

    for rnd, (_empty, s1, s2) in enumerate(storage):
        print(f"  round {rnd}: v1 {describe(s1)}; v2 {describe(s2)}; v2 added "
              f"{(s2['storedBytes'] - s1['storedBytes']) / MiB:.1f} MiB stored "
              f"({(s2['storedBytes'] - s1['storedBytes']) / (s1['logicalBytes'] or 1):.1%} "
              f"of the file); re-upload took {ratios[rnd]:.2f}x the first upload's time")

    print(f"  re-upload {reup.seconds:.2f} s (best); the client's chunk + hash pass alone "
          f"(hf_xet.hash_files, one process) takes {floor.seconds:.2f} s")

    print("\ntargets:")
    checks: list[tuple[str, float | None, Callable[[float], bool], str]] = [
        ("re-upload, 5% changed <= 0.25x first upload's time", reup.seconds / up.seconds,
         lambda v: v <= XET_TARGETS["reupload"], "{:.2f}x (best re-upload / best upload)"),
        ("peak server RSS        < 300 MB (Xet phases)", rss_peak,
         lambda v: v < TARGETS["rss_mb"], "{:.0f} MB"),
        ("LFS target: upload     >= 0.70x limit", None if link_mbit else up.mbps / limit.mbps,
         lambda v: v >= TARGETS["upload"], "{:.2f}x"),
    ]

    def ratio(a: tuple[str, str], b: tuple[str, str]) -> float | None:
        return down[a].mbps / down[b].mbps if a in down and b in down else None

    checks.append(("LFS target: hf client  >= 0.90x nginx (Xet download)",
                   ratio(("hver", "xet"), ("nginx", "client")),
                   lambda v: v >= TARGETS["download_client"], "{:.2f}x"))
    checks.append(("LFS target: curl       >= 0.80x nginx (plain HTTP of a Xet file)",
                   ratio(("hver", "plain"), ("nginx", "curl")),
                   lambda v: v >= TARGETS["download_curl"], "{:.2f}x"))
    xet_down = down.get(("hver", "xet"))
    checks.append(("LFS target: server CPU <= 0.5 s per GiB (Xet download)",
                   xet_down.cpu_per_gib if xet_down else None,
                   lambda v: v <= TARGETS["cpu_per_gib"], "{:.2f} s"))
    checks.append(("Xet fetch ranges: server CPU <= 0.2 s per GiB (hf_hub_download)",
                   xet_down.cpu_per_gib if xet_down else None,
                   lambda v: v <= TARGETS["fetch_cpu"], "{:.2f} s"))
    checks.append(("Xet upload: server CPU <= 2 s per GiB (best upload)", up.cpu_per_gib,
                   lambda v: v <= TARGETS["upload_cpu"], "{:.2f} s"))
    checks.extend(burst_checks(bursts or []))
    for label, value, ok, fmt in checks:
        if value is None:
            print(f"  SKIP  {label}")
        else:
            mark = "PASS" if ok(value) else "MISS"
            print(f"  {mark}  {label}: {fmt.format(value)}")
    first = down.get(("hver", "plain-first"))
    first_ratio = ratio(("hver", "plain-first"), ("nginx", "curl"))
    if first is not None and first_ratio is not None:
        print(f"  (info: the first plain read, which decodes and keeps the copy: "
              f"{first_ratio:.2f}x nginx, server CPU {first.cpu_per_gib:.2f} s/GiB)")
    if not have_lfs:
        print("  (the LFS reference file was stored as Xet: its row is not an LFS download)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size-mib", type=int, default=1024, help="file size in MiB (1024)")
    p.add_argument("--rounds", type=int, default=2,
                   help="rounds of each measurement, the order flipping; best kept (2)")
    p.add_argument("--tmp", type=Path, default=None,
                   help="directory for the files and data (a new temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--no-concurrent", dest="concurrent", action="store_false",
                   help=f"skip the concurrent phase ({CONCURRENT} x {CONCURRENT_MIB} MiB "
                        "uploads, then downloads, at once)")
    p.add_argument("--xet", action="store_true",
                   help="measure Xet uploads, re-uploads and downloads instead of LFS")
    p.add_argument("--link-mbit", type=float, default=0,
                   help="with --xet: send the uploads through a link of this many Mbit/s "
                        "each way (a relay in this process) instead of straight over "
                        "loopback; 0 (default): loopback")
    p.add_argument("--client-timeout", type=float, default=600,
                   help="--xet: seconds one client call may take before it is killed (600)")
    p.add_argument("--xet-client", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.xet_client:
        return xet_client()
    root = Path(tempfile.mkdtemp(prefix="hver-bench-", dir=args.tmp))
    try:
        return run_xet(args, root) if args.xet else run(args, root)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
