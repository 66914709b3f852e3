"""A real hver server on a random loopback port, driven by the real clients.

huggingface_hub reads HF_ENDPOINT when it is imported, so the port of this
worker's server is chosen, and the environment set, before any test imports it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_HOME = Path(tempfile.mkdtemp(prefix="hver-tests-"))
PORT = free_port()
ENDPOINT = f"http://127.0.0.1:{PORT}"
os.environ.update({
    "HF_ENDPOINT": ENDPOINT,
    "HF_HOME": str(_HOME / "hf-home"),
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_XET_CACHE": str(_HOME / "xet-cache"),
    "HF_XET_CLIENT_RETRY_BASE_DELAY": "100ms",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_UPDATE_DOWNLOAD_COUNTS": "0",
    "DISABLE_SAFETENSORS_CONVERSION": "1",
})
os.environ.pop("HF_TOKEN", None)
os.environ.pop("HF_HUB_DISABLE_XET", None)  # the default install: large files go through Xet


@dataclass
class Server:
    """A `hver serve` subprocess on its own data directory."""

    data: Path
    port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hver(self, *args: str, stdin: str | None = None) -> str:
        """Run the hver CLI against this server's data directory; returns stdout."""
        out = subprocess.run(
            [sys.executable, "-m", "hver", *args, "--data", str(self.data)],
            env=self.env, check=True, capture_output=True, text=True, input=stdin,
        )
        return out.stdout.strip()

    def new_user_api(self, prefix: str):  # type: ignore[no-untyped-def]
        """A fresh user with a write token on this server: (name, token, HfApi)."""
        from huggingface_hub import HfApi

        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        _, token = self.hver("user", "create", name, "--token", "write").splitlines()
        return name, token, HfApi(endpoint=self.endpoint, token=token)

    def start(self) -> None:
        log = (self.data.parent / f"server-{self.port}.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hver", "serve", "--data", str(self.data),
             "--port", str(self.port)],
            env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: workers die with it
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hver serve exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{self.endpoint}/api/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("hver serve did not start in time")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if sig == signal.SIGKILL:  # the whole group, as a machine's crash would
                os.killpg(self.proc.pid, sig)
            else:  # the supervisor stops its workers itself
                self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


def _server(data: Path, port: int, **settings: str) -> Server:
    env = dict(os.environ)
    # One worker process unless a test asks for more (tests/test_workers.py): the default
    # (one per core) would double every test server's start-up and memory.
    env["HVER_WORKERS"] = "1"
    env.update({f"HVER_{k.upper()}": v for k, v in settings.items()})
    env["HVER_LOG_LEVEL"] = "warning"
    return Server(data=data, port=port, env=env)


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    # Small multipart threshold so the multipart LFS path is exercised by ordinary tests.
    # Every test's visitors share one client IP (127.0.0.1), as a whole building behind
    # one NAT would: no anonymous rate limit here (tests/test_limits.py tests it).
    srv = _server(_HOME / "data", PORT, lfs_multipart_threshold=str(8 * 1024 * 1024),
                  lfs_part_size=str(3 * 1024 * 1024), rate_limit_anonymous="0")
    srv.data.mkdir(parents=True, exist_ok=True)
    srv.start()
    yield srv
    srv.stop()
    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def unstarted_server() -> Callable[..., Server]:
    """Servers a module runs itself (its own scope and settings): made, not started.
    Test modules take this fixture rather than import conftest, which would run twice."""

    def make(data: Path, **settings: str) -> Server:
        return _server(data, free_port(), **settings)

    return make


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Extra servers with their own data directory and settings (crash tests, limits)."""
    started: list[Server] = []

    def make(**settings: str) -> Server:
        srv = _server(tmp_path / f"data-{len(started)}", free_port(), **settings)
        srv.data.mkdir(parents=True)
        srv.start()
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()


@dataclass
class User:
    name: str
    token: str
    read_token: str


@pytest.fixture(scope="session")
def user_factory(server: Server) -> Callable[..., User]:
    def make(prefix: str = "user") -> User:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        made, token, read_token = server.hver(
            "user", "create", name, "--email", f"{name}@example.org",
            "--token", "write", "--token", "read").splitlines()
        assert made == name
        return User(name=name, token=token, read_token=read_token)

    return make


@dataclass
class WebUser(User):
    password: str


@pytest.fixture(scope="session")
def web_user_factory(server: Server, user_factory: Callable[..., User]) -> Callable[..., WebUser]:
    """Users who can sign in to the web UI with a password (and use tokens as usual)."""

    def make(prefix: str = "web") -> WebUser:
        made = user_factory(prefix)
        password = f"pw-{uuid.uuid4().hex}"
        server.hver("user", "set-password", made.name, stdin=f"{password}\n")
        return WebUser(made.name, made.token, made.read_token, password)

    return make


@pytest.fixture(scope="session")
def user(user_factory: Callable[..., User]) -> User:
    return user_factory("alice")


@pytest.fixture(scope="session")
def other(user_factory: Callable[..., User]) -> User:
    return user_factory("bob")


@pytest.fixture
def api(server: Server, user: User):  # type: ignore[no-untyped-def]
    from huggingface_hub import HfApi

    return HfApi(endpoint=server.endpoint, token=user.token)


@pytest.fixture
def repo_factory(api, user: User) -> Callable[..., str]:  # type: ignore[no-untyped-def]
    def make(repo_type: str = "model", private: bool = False, name: str | None = None) -> str:
        repo_id = f"{user.name}/{name or 'repo-' + uuid.uuid4().hex[:8]}"
        api.create_repo(repo_id, repo_type=repo_type, private=private)
        return repo_id

    return make


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    d = tmp_path / "hf-cache"
    d.mkdir()
    return d


@pytest.fixture
def no_server_errors(server: Server) -> Iterator[None]:
    """Fail the test if the session server logged an unexpected error (a 500) during it."""
    log = server.data.parent / f"server-{server.port}.log"
    start = log.stat().st_size if log.exists() else 0
    yield
    if log.exists():
        with log.open("rb") as fh:
            fh.seek(start)
            new = fh.read().decode("utf-8", "replace")
        assert "unexpected error" not in new and "Traceback" not in new, new[-3000:]


@pytest.fixture
def lfs_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients as with HF_HUB_DISABLE_XET=1 (or no hf_xet): large files go through LFS."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
