"""What the mirror asks of an upstream hub: the interface, its answers and its errors.

`hver.mirror.hub_http` speaks it to a hub over HTTP (the public Hub, another hver). The
rest of the mirror knows nothing of how an upstream is reached.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from hver.names import RepoType
from hver.storage.git import GitRepo

# The refs a mirror follows: branches, tags, and the Hub's converted branches
# (`refs/convert/parquet`). Pull requests stay upstream's.
MIRRORED_REFS = ("refs/heads/", "refs/tags/", "refs/convert/")


class Sink(Protocol):
    """Where fetched bytes go: a file, or a `hver.mirror.partial.PartWriter`."""

    def write(self, data: bytes | memoryview, /) -> int: ...

    def tell(self) -> int: ...

    def seek(self, pos: int, whence: int = 0, /) -> int: ...

    def truncate(self, size: int | None = None, /) -> int: ...


class UpstreamUnavailable(Exception):
    """The upstream did not answer, or answered something that is not an answer about
    the repo (a 5xx, a rate limit, a broken pack). Nothing was changed. `unreachable`:
    no answer at all (refused, timed out)."""

    def __init__(self, message: str, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


@dataclass(frozen=True)
class UpstreamRepo:
    """What the upstream says of a repo it shows to the mirror's token."""

    id: str  # as the upstream spells it
    private: bool
    gated: str | None  # None, "auto" or "manual"
    created_at: datetime | None


class Upstream(Protocol):
    url: str  # what mirrored repos record as their upstream

    def repo_info(self, repo_type: RepoType, repo_id: str) -> UpstreamRepo | None:
        """The repo, or None when the upstream has no such repo for the mirror's token."""
        ...

    def fetch_git(self, repo_type: RepoType, repo_id: str, git: GitRepo) -> dict[str, str]:
        """The upstream's `MIRRORED_REFS` (name -> object id), with every object they
        reach that `git` lacks added to it. Refs are not changed."""
        ...

    def lfs_download(self, repo_type: RepoType, repo_id: str, oid: str, size: int
                     ) -> tuple[str, dict[str, str]] | None:
        """Where the upstream serves a large file of the repo (an href and headers to
        send), which vouches that the repo holds it; None: it does not."""
        ...

    def download(self, href: str, headers: dict[str, str], out: Sink, limit: int) -> None:
        """The bytes at an href `lfs_download` gave, written to `out` (at most `limit`)."""
        ...

    def xet_file_hash(self, repo_type: RepoType, repo_id: str, commit: str,
                      path: str) -> str | None:
        """The Xet file hash the upstream stores a file of a commit as (None: not Xet)."""
        ...

    def xet_reconstruction(self, repo_type: RepoType, repo_id: str, commit: str,
                           file_hash: str) -> dict[str, Any]:
        """The upstream's v2 reconstruction of a whole Xet file of the repo."""
        ...

    def xet_range(self, url: str, start: int, end: int, out: Sink) -> None:
        """Bytes [start, end] of a xorb, from a URL of a reconstruction, into `out`."""
        ...

    def close(self) -> None: ...
