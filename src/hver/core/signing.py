"""Short-lived signed URLs: LFS upload hrefs and blob downloads carry their own credentials,
because clients send no Authorization header to them."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from hver.errors import Forbidden


class Signer:
    def __init__(self, key: bytes, ttl: int) -> None:
        self.key = key
        self.ttl = ttl

    def sign(self, *parts: object, expires: int | None = None) -> tuple[int, str]:
        exp = expires if expires is not None else int(time.time()) + self.ttl
        return exp, self._mac(parts, exp)

    def verify(self, *parts: object, exp: int | str, sig: str) -> None:
        try:
            exp_i = int(exp)
        except (TypeError, ValueError):
            raise Forbidden("Invalid signed URL.") from None
        if exp_i < time.time():
            raise Forbidden("This signed URL has expired.")
        if not hmac.compare_digest(self._mac(parts, exp_i), sig or ""):
            raise Forbidden("Invalid signed URL.")

    def _mac(self, parts: tuple[object, ...], exp: int) -> str:
        msg = "\x1f".join([*(str(p) for p in parts), str(exp)]).encode()
        return hmac.new(self.key, msg, hashlib.sha256).hexdigest()


def load_key(configured: str, data_dir: Path) -> bytes:
    """The configured secret, else one kept in the data directory (made once, 0600)."""
    if configured:
        return configured.encode()
    return _read_or_create(data_dir / "secret.key").encode()


def load_instance_id(data_dir: Path) -> str:
    """A random id for this hub's data, made once: it changes when the data is wiped.

    It is part of the Xet CAS URL, because clients cache what a CAS holds per URL.
    """
    return _read_or_create(data_dir / "instance.id")[:16]


def _read_or_create(path: Path) -> str:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
            fh.flush()
            os.fsync(fh.fileno())
    for _ in range(100):  # another process may be writing it this instant
        value = path.read_text().strip()
        if value:
            return value
        time.sleep(0.01)
    raise RuntimeError(f"{path} is empty")
