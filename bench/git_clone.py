"""git over HTTP: hver against `git http-backend` behind nginx, in the same run.

    .venv/bin/python bench/git_clone.py            # 1,000 files + 1 GiB LFS; 10,000 commits
    .venv/bin/python bench/git_clone.py --lfs-mib 64 --commits 2000   # a quick run

Starts its own `hver serve` (one worker, temporary data directory, random loopback port),
pushes a repo of `--files` small files and one `--lfs-mib` LFS file to it with git and
git-lfs (timed: the push), and makes a bare copy of it that nginx serves through
fcgiwrap and `git http-backend` (the baseline). Then, in alternating order,
`--pack-rounds` (7) and `--rounds` (2) times:

- **pack phase**: `git clone` with `GIT_LFS_SKIP_SMUDGE=1` from each (what git itself
  moves), with hver's server CPU;
- **LFS phase**: `git lfs pull` in a hver clone, against `git lfs pull` in the
  http-backend clone, whose LFS batch request nginx answers with a fixed body naming
  the same bytes as a static file (sendfile): the same client work on both sides, so the
  ratio is what hver's LFS server costs. curl of the file from nginx is printed for
  scale.

Last, a repo of `--commits` commits (one small file changed each, made with
`git fast-import`) is pushed to hver and cloned from it while the server's peak RSS
(VmHWM, reset before) is read. Targets printed: pack phase ≥ 0.8× http-backend, LFS
phase ≥ 0.8× nginx, peak RSS < 300 MB. Needs git, git-lfs, nginx and fcgiwrap (Debian:
`apt-get install -y git-lfs nginx fcgiwrap`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from transfer import (
    Hver,
    cpu_seconds,
    free_port,
    make_random_file,
    peak_rss_mb,
    reset_peak_rss,
    stop_process,
)

USER = "bench"
TARGET_PACK = 0.8
TARGET_LFS = 0.8
TARGET_RSS_MB = 300.0


def run_git(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            stdin: bytes | None = None) -> float:
    """Run git; returns the seconds it took. Dirty pages are written back first, so that
    the writeback of what the last step wrote (GiB, in the LFS phase) is not timed."""
    os.sync()
    start = time.perf_counter()
    done = subprocess.run(["git", *args], cwd=cwd, env=env, input=stdin,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if done.returncode:
        raise SystemExit(f"git {args[0]} failed: {done.stderr.decode(errors='replace')}")
    return time.perf_counter() - start


class Backend:
    """nginx + fcgiwrap + `git http-backend`, exporting every repo under `projects`."""

    def __init__(self, root: Path, projects: Path, lfs_batch: str) -> None:
        self.dir = root / "backend"
        self.dir.mkdir()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.socket = self.dir / "fcgiwrap.sock"
        user = "user root root;\n" if os.geteuid() == 0 else ""
        temp = "".join(f"  {k}_temp_path {self.dir}/{k};\n"
                       for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (self.dir / "nginx.conf").write_text(
            f"{user}daemon off;\nworker_processes 2;\npid {self.dir}/nginx.pid;\n"
            f"error_log {self.dir}/error.log warn;\n"
            "events { worker_connections 64; }\n"
            "http {\n  access_log off;\n  sendfile on;\n"
            f"  default_type application/octet-stream;\n{temp}"
            f"  server {{\n    listen 127.0.0.1:{self.port};\n"
            f"    location /static/ {{ alias {root / 'static'}/; }}\n"
            # git-lfs's batch request, answered with a fixed body: its objects are then
            # fetched from /static/ (the like-for-like baseline of the LFS phase).
            "    location = /clone.git/info/lfs/objects/batch {\n"
            "      default_type application/vnd.git-lfs+json;\n"
            f"      return 200 '{lfs_batch.replace('{port}', str(self.port))}';\n    }}\n"
            "    location / {\n"
            "      include /etc/nginx/fastcgi_params;\n"
            "      fastcgi_param SCRIPT_FILENAME /usr/lib/git-core/git-http-backend;\n"
            f"      fastcgi_param GIT_PROJECT_ROOT {projects};\n"
            "      fastcgi_param GIT_HTTP_EXPORT_ALL \"\";\n"
            "      fastcgi_param PATH_INFO $uri;\n"
            "      fastcgi_param GIT_PROTOCOL $http_git_protocol;\n"
            "      fastcgi_buffering off;\n"
            f"      fastcgi_pass unix:{self.socket};\n"
            "    }\n  }\n}\n")
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        import httpx

        log = (self.dir / "stderr.log").open("ab")
        self.procs.append(subprocess.Popen(["fcgiwrap", "-c", "4", "-s", f"unix:{self.socket}"],
                                           stdout=subprocess.DEVNULL, stderr=log))
        self.procs.append(subprocess.Popen(
            ["nginx", "-p", str(self.dir), "-e", str(self.dir / "error.log"),
             "-c", str(self.dir / "nginx.conf")], stdout=subprocess.DEVNULL, stderr=log))
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                httpx.get(self.url + "/static/", timeout=1)
                if self.socket.exists():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError((self.dir / "stderr.log").read_text()[-2000:])

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop_process(proc, signal.SIGTERM, 20)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def fast_import_stream(commits: int) -> bytes:
    """`commits` commits on main, each rewriting one of 100 small files."""
    out = bytearray()
    for n in range(commits):
        body = f"line {n}\n".encode() * 4
        msg = f"commit {n}\n".encode()
        out += b"commit refs/heads/main\n"
        out += f"mark :{n + 1}\n".encode()
        out += f"committer Bench <bench@example.org> {1_700_000_000 + n} +0000\n".encode()
        out += b"data %d\n%s" % (len(msg), msg)
        if n:
            out += f"from :{n}\n".encode()
        out += f"M 100644 inline files/f{n % 100:03d}.txt\n".encode()
        out += b"data %d\n%s\n" % (len(body), body)
    return bytes(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--files", type=int, default=1000, help="small files (1000)")
    p.add_argument("--lfs-mib", type=int, default=1024, help="size of the LFS file (1024)")
    p.add_argument("--commits", type=int, default=10_000, help="history depth (10000)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of the LFS phase (2)")
    p.add_argument("--pack-rounds", type=int, default=7,
                   help="rounds of the pack phase (7): a clone takes a few tenths of a second")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args()
    for tool in ("git", "git-lfs", "nginx", "fcgiwrap", "curl"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not on PATH (Debian: apt-get install -y git-lfs "
                             "nginx fcgiwrap curl)")
    root = Path(tempfile.mkdtemp(prefix="hver-git-bench-"))
    try:
        return run(args, root)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def run(args: argparse.Namespace, root: Path) -> int:
    from huggingface_hub import HfApi

    home = root / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(HOME=str(home), GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1")
    run_git("lfs", "install", "--skip-repo", env=env)
    run_git("config", "--global", "user.name", "Bench", env=env)
    run_git("config", "--global", "user.email", "bench@example.org", env=env)
    print(f"git clone bench: {args.files} files + {args.lfs_mib} MiB LFS, {args.commits} "
          f"commits, {args.pack_rounds} pack / {args.rounds} LFS rounds, {os.cpu_count()} CPUs, "
          f"tmp {root}", flush=True)

    hver = Hver(root)
    hver.env.update(HVER_WORKERS="1", HVER_RATE_LIMIT_EXEMPT=USER)
    hver.cli("user", "create", USER)
    token = hver.cli("token", "create", USER)
    hver.start()
    assert hver.proc is not None
    pid = hver.proc.pid
    backend: Backend | None = None
    try:
        api = HfApi(endpoint=hver.endpoint, token=token)
        api.create_repo(f"{USER}/clone")
        host = hver.endpoint.removeprefix("http://")
        remote = f"http://{USER}:{token}@{host}/{USER}/clone"

        src = root / "src"
        run_git("clone", "-q", remote, str(src), env=env)
        run_git("lfs", "track", "*.bin", cwd=src, env=env)
        for n in range(args.files):
            folder = src / "files" / f"{n // 100:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{n:05d}.txt").write_bytes(os.urandom(512).hex().encode() * 2)
        make_random_file(src / "big.bin", args.lfs_mib * 1024 * 1024)
        run_git("add", "-A", cwd=src, env=env)
        run_git("commit", "-qm", "bench files", cwd=src, env=env)
        push = run_git("push", "-q", "origin", "main", cwd=src, env=env)
        print(f"  push (git + git-lfs): {push:.2f} s", flush=True)

        projects = root / "git"
        projects.mkdir()
        run_git("clone", "-q", "--bare", remote, str(projects / "clone.git"),
                env=env | {"GIT_LFS_SKIP_SMUDGE": "1"})
        static = root / "static"
        static.mkdir()
        os.link(src / "big.bin", static / "big.bin")
        oid = sha256_of(src / "big.bin")
        size = (src / "big.bin").stat().st_size
        batch = json.dumps({"transfer": "basic", "objects": [{
            "oid": oid, "size": size, "authenticated": True,
            "actions": {"download": {"href": "http://127.0.0.1:{port}/static/big.bin"}}}]})
        backend = Backend(root, projects, batch)
        backend.start()

        skip = env | {"GIT_LFS_SKIP_SMUDGE": "1"}
        pack: dict[str, list[float]] = {"hver": [], "http-backend": []}
        lfs: dict[str, list[float]] = {"hver": [], "nginx": [], "curl": []}
        cpu: list[float] = []
        lfs_cpu: list[float] = []
        for rnd in range(max(args.rounds, args.pack_rounds)):
            order = ["hver", "http-backend"] if rnd % 2 == 0 else ["http-backend", "hver"]
            for who in order:
                dst = root / f"clone-{who}-{rnd}"
                url = remote if who == "hver" else f"{backend.url}/clone.git"
                c0 = cpu_seconds(pid)
                took = run_git("clone", "-q", url, str(dst), env=skip)
                if rnd < args.pack_rounds:
                    pack[who].append(took)
                    if who == "hver":
                        cpu.append(cpu_seconds(pid) - c0)
                if rnd >= args.rounds:
                    shutil.rmtree(dst)
                    continue
                if who == "hver":
                    c0 = cpu_seconds(pid)
                    lfs["hver"].append(run_git("lfs", "pull", cwd=dst, env=env))
                    lfs_cpu.append(cpu_seconds(pid) - c0)
                else:
                    lfs["nginx"].append(run_git("lfs", "pull", cwd=dst, env=env))
                    if sha256_of(dst / "big.bin") != oid:
                        raise SystemExit("the baseline's git lfs pull fetched other bytes")
                    os.sync()
                    start = time.perf_counter()
                    subprocess.run(["curl", "-sS", "--fail", "-o", str(dst / "big.copy"),
                                    f"{backend.url}/static/big.bin"], check=True)
                    lfs["curl"].append(time.perf_counter() - start)
                shutil.rmtree(dst)

        history = root / "history"
        run_git("init", "-q", "-b", "main", str(history), env=env)
        run_git("fast-import", "--quiet", cwd=history, env=env,
                stdin=fast_import_stream(args.commits))
        api.create_repo(f"{USER}/history")
        deep = f"http://{USER}:{token}@{host}/{USER}/history"
        # Over the repo's first commit (its .gitattributes): a writer's forced push.
        push_history = run_git("push", "-q", "--force", deep, "main", cwd=history, env=env)
        reset = reset_peak_rss(pid)
        clone_history = run_git("clone", "-q", deep, str(root / "history-clone"), env=env)
        rss = peak_rss_mb(pid)
    finally:
        if backend is not None:
            backend.stop()
        hver.stop()

    best = {k: min(v) for k, v in pack.items()}
    lfs_best = {k: min(v) for k, v in lfs.items()}
    size_mib = args.lfs_mib
    pack_ratio = best["http-backend"] / best["hver"]
    lfs_ratio = lfs_best["nginx"] / lfs_best["hver"]
    print(f"\n{'measurement':<44} {'best s':>8}   rounds")
    for who in ("hver", "http-backend"):
        print(f"{'pack phase, git clone from ' + who:<44} {best[who]:8.2f}   "
              + " ".join(f"{t:.2f}" for t in pack[who]))
    print(f"{'hver server CPU per pack-phase clone':<44} {min(cpu):8.2f}")
    print(f"{'LFS phase, git lfs pull from hver':<44} {lfs_best['hver']:8.2f}   "
          f"{size_mib / lfs_best['hver']:.0f} MiB/s")
    print(f"{'LFS baseline, git lfs pull from nginx':<44} {lfs_best['nginx']:8.2f}   "
          f"{size_mib / lfs_best['nginx']:.0f} MiB/s")
    print(f"{'hver server CPU per LFS phase':<44} {min(lfs_cpu):8.2f}   "
          f"{min(lfs_cpu) / (size_mib / 1024):.2f} s/GiB")
    print(f"{'for scale: curl of the file from nginx':<44} {lfs_best['curl']:8.2f}   "
          f"{size_mib / lfs_best['curl']:.0f} MiB/s")
    print(f"{'push of ' + str(args.commits) + ' commits':<44} {push_history:8.2f}")
    print(f"{'clone of ' + str(args.commits) + ' commits':<44} {clone_history:8.2f}")
    print(f"{'peak server RSS in that clone (MB)':<44} {rss:8.0f}"
          + ("" if reset else "   (VmHWM not reset: peak since start)"))
    print()
    print(f"{'PASS' if pack_ratio >= TARGET_PACK else 'MISS'}  pack phase {pack_ratio:.2f}x "
          f"http-backend (target >= {TARGET_PACK}x)")
    print(f"{'PASS' if lfs_ratio >= TARGET_LFS else 'MISS'}  LFS phase {lfs_ratio:.2f}x nginx "
          f"(target >= {TARGET_LFS}x)")
    print(f"{'PASS' if rss < TARGET_RSS_MB else 'MISS'}  peak RSS {rss:.0f} MB while cloning "
          f"{args.commits} commits (target < {TARGET_RSS_MB:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    raise SystemExit(main())
