"""Raw Xet CAS calls and hand-built xorbs and shards, for what a well-behaved client never
sends (tests/test_xet.py, tests/attacks)."""

from __future__ import annotations

import hashlib
import random
import time
from typing import Any

import httpx

from hver.xet.hashing import file_hash, verification_hash
from hver.xet.shard import CasInfo, FileRecipe, Shard, Term, serialize_shard
from hver.xet.xorb import build_xorb


class Cas:
    """Raw CAS calls with a token from the Hub, for what a well-behaved client never sends."""

    def __init__(self, endpoint: str, repo: str, hub_token: str | None, kind: str,
                 repo_type: str = "models", ttl: int = 3600) -> None:
        headers = {"Authorization": f"Bearer {hub_token}"} if hub_token else {}
        r = httpx.get(f"{endpoint}/api/{repo_type}/{repo}/xet-{kind}-token/main",
                      headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert r.headers["X-Xet-Access-Token"] == body["accessToken"]
        assert r.headers["X-Xet-Cas-Url"] == body["casUrl"]
        assert int(r.headers["X-Xet-Token-Expiration"]) == body["exp"]
        assert time.time() < body["exp"] <= time.time() + ttl + 1
        self.url = body["casUrl"]
        self.token = body["accessToken"]

    def call(self, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.request(method, f"{self.url}{path}", content=body, timeout=60,
                             headers={"Authorization": f"Bearer {self.token}",
                                      **(headers or {})})


def make_file(seed: int, n_chunks: int = 3) -> tuple[bytes, bytes, Any, list[bytes]]:
    """(xorb body, xorb hash, index, chunks) for a file of `n_chunks` random chunks."""
    rng = random.Random(seed)
    chunks = [rng.randbytes(rng.randint(10_000, 60_000)) for _ in range(n_chunks)]
    body, index = build_xorb(chunks)
    return body, index.hash(), index, chunks


def shard_for(xorb: bytes, index: Any, chunks: list[bytes], *,
              fh: bytes | None = None, sha: bytes | None = None) -> bytes:
    pairs = list(zip(index.hashes, index.sizes, strict=True))
    recipe = FileRecipe(
        file_hash=fh or file_hash(pairs),
        terms=[Term(xorb, 0, len(chunks), sum(index.sizes))],
        verification=[verification_hash(index.hashes)],
        sha256=sha or hashlib.sha256(b"".join(chunks)).digest(),
    )
    return serialize_shard(Shard(files=[recipe], xorbs=[
        CasInfo(xorb, list(index.hashes), list(index.sizes))]), with_footer=False)
