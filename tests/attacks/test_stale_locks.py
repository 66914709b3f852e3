"""Lock files a killed server left behind (issue 11).

A server killed while it moved a branch leaves `refs/heads/main.lock`; killed while it
wrote a loose object, `objects/xx/….lock`. Before the start-up sweep the next server's
commits to that branch waited and failed with 409 until the lock was 30 s old, and
`git fsck` reported the object lock as a bad object file.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from hver.storage.git import GitStore


def _plant(path: Path, content: bytes, age_s: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    then = time.time() - age_s
    os.utime(path, (then, then))


def test_locks_left_by_a_killed_server_do_not_block_the_next_one(server_factory) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory()
    name, _, api = srv.new_user_api("locks")
    repo_id = f"{name}/survivor"
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=b"before\n", path_in_repo="a.txt", repo_id=repo_id)
    (git_dir,) = (srv.data / "repos").glob("*/*.git")
    head = (git_dir / "refs" / "heads" / "main").read_bytes()
    srv.kill()

    # What a crash a moment ago leaves: younger than the 30 s after which a writer takes
    # a ref lock for stale, older than the next server.
    ref_lock = git_dir / "refs" / "heads" / "main.lock"
    object_lock = git_dir / "objects" / "ab" / ("cd" * 19 + ".lock")
    packed_lock = git_dir / "packed-refs.lock"
    for lock in (ref_lock, object_lock, packed_lock):
        _plant(lock, head, age_s=2)
    srv.start()

    started = time.monotonic()
    info = api.upload_file(path_or_fileobj=b"after\n", path_in_repo="b.txt", repo_id=repo_id)
    assert time.monotonic() - started < 5  # no waiting on a dead writer's lock
    assert api.model_info(repo_id).sha == info.oid
    for lock in (ref_lock, object_lock, packed_lock):
        assert not lock.exists(), lock
    fsck = subprocess.run(["git", "fsck", "--no-dangling"], cwd=git_dir, capture_output=True,
                          text=True, check=False)
    assert fsck.returncode == 0 and fsck.stdout + fsck.stderr == "", fsck.stdout + fsck.stderr


def test_the_sweep_keeps_locks_newer_than_the_server(tmp_path: Path) -> None:
    """Only what predates the server goes: a lock taken since is a live writer's."""
    store = GitStore(tmp_path / "repos")
    repo = store.init("ab" * 16)
    old = repo.path / "refs" / "heads" / "main.lock"
    new = repo.path / "refs" / "heads" / "dev.lock"
    keep = repo.path / "objects" / "ab" / ("cd" * 19)  # an object, not a lock
    _plant(old, b"x", age_s=60)
    _plant(keep, b"x", age_s=60)
    start = time.time() - 30
    _plant(new, b"x", age_s=1)
    assert store.remove_stale_locks(before=start) == 1
    assert not old.exists() and new.exists() and keep.exists()
