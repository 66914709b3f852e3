"""Every setting, declared once: its default, its `HVER_*` variable and its help.

Settings are read once (flags over environment over defaults) and passed to
`create_app()`; nothing else reads the environment.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
MAX_AUTO_WORKERS = 8


def usable_cpus() -> int:
    """The CPUs this process may use: its affinity, within a cgroup v2 quota (a
    container's `--cpus`), rounded up."""
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return cpus


def _setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    data: Path = _setting(Path("hver-data"), "Data directory: database, git repos, blobs.")
    host: str = _setting("127.0.0.1", "Address to listen on.")
    port: int = _setting(8080, "Port to listen on.")
    database_url: str = _setting("", "SQLAlchemy URL; default: SQLite in the data directory.")
    blob_url: str = _setting("", "Where large files live; default: file://DATA/blobs.")
    public_url: str = _setting(
        "", "Base URL clients use to reach this hub; default: taken from each request's Host."
    )
    secret: str = _setting(
        "", "Key that signs upload and download URLs; default: DATA/secret.key, made once."
    )
    max_inline_file_size: int = _setting(
        10 * MiB, "Largest file accepted inside a commit body; larger files must go through LFS."
    )
    max_commit_body: int = _setting(
        256 * MiB, "Largest NDJSON commit body, in bytes."
    )
    max_commit_files: int = _setting(25_000, "Most operations in one commit.")
    max_request_body: int = _setting(
        10 * MiB, "Largest body of any other request (JSON and the like), in bytes; "
        "commits, LFS and Xet uploads have their own limits. 0: no limit."
    )
    max_web_upload: int = _setting(
        5 * 1024 * MiB, "Largest body of a file upload through the web UI, in bytes. 0: no limit."
    )
    rate_limit: int = _setting(
        6000, "Requests a minute per token (per account for Xet CAS calls); 0: no limit."
    )
    rate_limit_anonymous: int = _setting(
        600, "Requests a minute per client IP for requests without a token; 0: no limit."
    )
    rate_limit_exempt: str = _setting(
        "", "Users (comma-separated names) whose tokens have no rate limit: benchmarks, CI."
    )
    lfs_multipart_threshold: int = _setting(
        4096 * MiB, "LFS objects at least this large are uploaded in parts."
    )
    lfs_part_size: int = _setting(512 * MiB, "Part size of multipart LFS uploads.")
    signed_url_ttl: int = _setting(3600, "Lifetime of signed upload and download URLs, seconds.")
    xet_token_ttl: int = _setting(3600, "Lifetime of Xet CAS access tokens, seconds.")
    workers: int = _setting(
        0, "Server worker processes; 0: one per CPU core this process may use, at most 8."
    )
    cache_ttl: float = _setting(
        5.0, "Seconds a server trusts what it cached of tokens, users, org roles and repo "
        "settings when another machine may change them (on this machine: changes apply at "
        "once); 0: no caching."
    )
    download_flush_interval: float = _setting(
        1.0, "Seconds between writes of the download counts a server process gathers."
    )
    log_level: str = _setting("info", "Log level of the server.")
    upstream_url: str = _setting(
        "", "A hub this one mirrors (e.g. https://huggingface.co): repos it does not hold "
        "are looked up there and brought in on first use. Unset: no mirror.")
    upstream_token: str = _setting(
        "", "The token the mirror reads the upstream hub with (never shown, never logged).")
    mirror_ttl: float = _setting(
        300.0, "Seconds a mirrored repo's refs and settings are trusted before the upstream "
        "is asked again; a pinned commit never needs it.")
    offline: bool = _setting(
        False, "Serve only what the mirror holds: never ask the upstream hub.")
    mirror_prefix: str = _setting(
        "", "A prefix of the local namespaces that mirror upstream ones: with 'hf-', the "
        "upstream's org/model is hf-org/model here. Empty: the same ids.")
    mirror_allow: str = _setting(
        "", "Upstream repos the mirror may bring in: comma-separated globs of ids "
        "(org/*, datasets/org/*); empty: all.")
    mirror_deny: str = _setting(
        "", "Upstream repos the mirror never brings in: comma-separated globs, as "
        "HVER_MIRROR_ALLOW; they win over it.")
    mirror_quota: int = _setting(
        0, "Bytes of large files mirrored repos may hold (each file counted once); past it, "
        "the least recently read ones a pin does not keep are released, and fetched again "
        "when next read. 0: no limit.")

    @property
    def resolved_workers(self) -> int:
        if self.workers > 0:
            return self.workers
        return max(1, min(MAX_AUTO_WORKERS, usable_cpus()))

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data.resolve() / 'hver.db'}"

    @property
    def resolved_blob_url(self) -> str:
        return self.blob_url or f"file://{self.data.resolve() / 'blobs'}"

    @property
    def repos_dir(self) -> Path:
        return self.data / "repos"

    @property
    def tmp_dir(self) -> Path:
        return self.data / "tmp"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then `HVER_<NAME>` variables, then explicit overrides (flags)."""
        env = dict(os.environ) if env is None else env
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(f"HVER_{f.name.upper()}")
            if raw is not None and raw != "":
                values[f.name] = _convert(f.default, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "data" in values:
            values["data"] = Path(values["data"])
        return cls(**values)


def _convert(default: Any, raw: str) -> Any:
    if isinstance(default, bool):
        return raw.lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    if isinstance(default, Path):
        return Path(raw)
    return raw


def describe() -> list[tuple[str, str, str]]:
    """(variable, default, help) for every setting, for docs and `--help`."""
    return [
        (f"HVER_{f.name.upper()}", str(f.default) or "(unset)", f.metadata["help"])
        for f in dataclasses.fields(Settings)
    ]
