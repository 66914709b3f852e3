"""hver on PostgreSQL: a real server (two worker processes) on a fresh database, driven by
the real clients, the CLI and the web UI.

Needs PostgreSQL at HVER_TEST_POSTGRES (default: postgresql://postgres@127.0.0.1:5432/test,
a user who may create databases); each module run makes its own `hver_<random>` database
and drops it afterwards. Without PostgreSQL these tests fail, unless HVER_SKIP_POSTGRES=1.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationCopy,
    CommitOperationDelete,
    HfApi,
    hf_hub_download,
)
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError
from sqlalchemy import create_engine, make_url, text
from threads import parallel
from webforms import browser, sign_in

from hver.core import accounts
from hver.core.likes import set_like
from hver.core.repos import find_repo
from hver.db.engine import MIGRATIONS, Database, alembic_config
from hver.db.models import Base
from hver.errors import Conflict
from hver.names import RepoType

ADMIN_URL = os.environ.get("HVER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
TAG = f"pgtag-{uuid.uuid4().hex[:8]}"  # a tag only this module's repos carry
CARD = f"---\nlicense: mit\ntags:\n- {TAG}\npipeline_tag: text-classification\n---\n# On PG\n"
BIG = os.urandom(3 * 1024 * 1024)  # large enough that the client sends it through Xet


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty database, dropped afterwards (with any connection left to it); yields
    its SQLAlchemy URL."""
    try:
        import psycopg
        from psycopg import sql

        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)
    except Exception as e:  # noqa: BLE001 - ImportError or any connection failure
        why = f"PostgreSQL is not reachable at {ADMIN_URL}: {e}"
    else:
        why = ""
    if why and os.environ.get("HVER_SKIP_POSTGRES") == "1":
        pytest.skip(why)
    if why:
        pytest.fail(f"{why}\nStart it (or point HVER_TEST_POSTGRES at one, and install "
                    "'hver[postgres]'), or set HVER_SKIP_POSTGRES=1 to skip.", pytrace=False)
    name = f"hver_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            url = make_url(ADMIN_URL).set(drivername="postgresql+psycopg", database=name)
            yield url.render_as_string(hide_password=False)
        finally:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


Server = Any  # tests/conftest.py's Server


@dataclass
class Pg:
    server: Server
    url: str

    @property
    def log(self) -> Path:
        return self.server.data.parent / f"server-{self.server.port}.log"


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory,
       unstarted_server: Callable[..., Server]) -> Iterator[Pg]:
    with fresh_database() as url:
        srv = unstarted_server(tmp_path_factory.mktemp("pg") / "data", database_url=url,
                               workers="2", rate_limit_anonymous="0")
        srv.data.mkdir(parents=True)
        try:
            srv.start()
            yield Pg(srv, url)
        finally:
            srv.stop()


@pytest.fixture(autouse=True)
def _no_server_errors(pg: Pg) -> Iterator[None]:
    start = pg.log.stat().st_size if pg.log.exists() else 0
    yield
    if pg.log.exists():
        with pg.log.open("rb") as fh:
            fh.seek(start)
            new = fh.read().decode("utf-8", "replace")
        assert "unexpected error" not in new and "Traceback" not in new, new[-3000:]


@dataclass
class Person:
    name: str
    token: str
    api: HfApi


@pytest.fixture(scope="module")
def people(pg: Pg) -> list[Person]:
    """Six users with write tokens, made by CLI processes running side by side."""
    srv = pg.server
    names = [f"pg{i}-{uuid.uuid4().hex[:6]}" for i in range(6)]

    def make(i: int) -> Person:
        srv.hver("user", "create", names[i], "--email", f"{names[i]}@example.org")
        token = srv.hver("token", "create", names[i])
        return Person(names[i], token, HfApi(endpoint=srv.endpoint, token=token))

    made = parallel(len(names), make)
    assert not [p for p in made if isinstance(p, Exception)], made
    return made


@pytest.fixture(scope="module")
def owner(people: list[Person]) -> Person:
    return people[0]


@pytest.fixture(scope="module")
def other(people: list[Person]) -> Person:
    return people[1]


def _repo(owner: Person, private: bool = False) -> str:
    repo_id = f"{owner.name}/pg-{uuid.uuid4().hex[:8]}"
    owner.api.create_repo(repo_id, private=private)
    return repo_id


def _download(pg: Pg, token: str | bool, repo_id: str, path: str, cache: Path,
              revision: str | None = None) -> bytes:
    return Path(hf_hub_download(repo_id, path, revision=revision, cache_dir=cache, token=token,
                                endpoint=pg.server.endpoint)).read_bytes()


# --- schema ----------------------------------------------------------------------------------


def _head(url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def test_server_start_migrated_to_head_and_models_match(pg: Pg) -> None:
    head = _head(pg.url)
    newest = sorted(p.name for p in (MIGRATIONS / "versions").glob("[0-9]*.py"))[-1]
    assert head is not None and newest.startswith(f"{head}_")
    engine = create_engine(pg.url)
    try:
        with engine.connect() as conn:
            assert conn.dialect.name == "postgresql"
            assert list(conn.scalars(text("SELECT version_num FROM alembic_version"))) == [head]
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    finally:
        engine.dispose()


def test_servers_starting_together_migrate_once() -> None:
    """Several processes (servers, workers, CLI commands) starting at once on an empty
    database: one migrates, the others wait for it and find the schema current."""
    with fresh_database() as url:
        code = "import sys; from hver.db.engine import Database; Database(sys.argv[1]).migrate()"

        def start(i: int) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-c", code, url], capture_output=True,
                                  text=True, timeout=120)

        results = parallel(3, start)
        assert [r.returncode for r in results] == [0, 0, 0], [r.stderr[-2000:] for r in results]
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                assert list(conn.scalars(text("SELECT version_num FROM alembic_version"))) == [
                    _head(url)]
                assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        finally:
            engine.dispose()


def test_writes_take_turns_across_connections(pg: Pg) -> None:
    """A write transaction waits for the one in progress, as with SQLite's `BEGIN IMMEDIATE`:
    what it reads then includes everything the first one committed."""
    first, second = Database(pg.url), Database(pg.url)
    inside = threading.Event()
    name = f"pgturn-{uuid.uuid4().hex[:6]}"

    def slow_writer() -> None:
        with first.write() as session:
            accounts.create_user(session, name)
            inside.set()
            time.sleep(0.5)  # still uncommitted: a writer that did not wait cannot see it

    try:
        t = threading.Thread(target=slow_writer)
        t.start()
        assert inside.wait(10)
        started = time.monotonic()
        with second.write() as session:
            seen = session.scalar(text("SELECT count(*) FROM accounts WHERE name = :n"),
                                  {"n": name})
        waited = time.monotonic() - started
        t.join()
        assert seen == 1, "the second writer did not wait for the first to commit"
        assert waited > 0.2
        # Names are unique up to case: of two writers racing for one name, one wins.
        name = f"PgCase-{uuid.uuid4().hex[:6]}"

        def create(i: int) -> None:
            db = (first, second)[i % 2]
            with db.write() as session:
                accounts.create_user(session, name if i % 2 else name.lower())

        results = parallel(4, create)
        assert results.count(None) == 1, results
        assert all(isinstance(r, Conflict) for r in results if r is not None), results
    finally:
        first.dispose()
        second.dispose()


def test_overlapping_likes_count_exactly(pg: Pg, owner: Person, people: list[Person]) -> None:
    """Liking counts the likes and stores the count: a second like arriving while the first
    is uncommitted must wait for it, or one of the two is lost from the count."""
    repo_id = _repo(owner)
    ns, name = repo_id.split("/")
    first, second = Database(pg.url), Database(pg.url)
    inside = threading.Event()

    def like(db: Database, who: Person) -> int:
        with db.write() as session:
            repo = find_repo(session, RepoType.model, ns, name)
            assert repo is not None
            count = set_like(session, accounts.authenticate(session, who.token), repo, True)
            if db is first:
                inside.set()
                time.sleep(0.5)
            return count

    try:
        t = threading.Thread(target=like, args=(first, people[2]))
        t.start()
        assert inside.wait(10)
        assert like(second, people[3]) == 2
        t.join()
    finally:
        first.dispose()
        second.dispose()
    assert owner.api.model_info(repo_id).likes == 2


# --- the clients -----------------------------------------------------------------------------


def test_files_round_trip(pg: Pg, owner: Person, other: Person, tmp_path: Path) -> None:
    repo_id = _repo(owner)
    private_id = _repo(owner, private=True)
    files = {"README.md": CARD.encode(), "config.json": b'{"model_type": "bert"}\n',
             "notes.txt": b"first notes\n"}
    owner.api.create_commit(repo_id, operations=[
        CommitOperationAdd(p, data) for p, data in files.items()], commit_message="card")
    owner.api.upload_file(path_or_fileobj=BIG, path_in_repo="model.safetensors",
                          repo_id=repo_id, commit_message="weights")
    owner.api.create_commit(repo_id, commit_message="shuffle", operations=[
        CommitOperationDelete("notes.txt"),
        CommitOperationCopy("model.safetensors", "copy.safetensors"),
        CommitOperationAdd("sub/more.txt", b"more\n"),
    ])
    expected = {**files, "model.safetensors": BIG, "copy.safetensors": BIG,
                "sub/more.txt": b"more\n"}
    del expected["notes.txt"]
    assert sorted(owner.api.list_repo_files(repo_id)) == sorted([".gitattributes", *expected])
    assert [c.title for c in owner.api.list_repo_commits(repo_id)][:3] == [
        "shuffle", "weights", "card"]
    for i, (path, data) in enumerate(expected.items()):
        got = _download(pg, False, repo_id, path, tmp_path / f"c{i}")
        assert _sha256(got) == _sha256(data), path
    (weights,) = owner.api.get_paths_info(repo_id, ["model.safetensors"])
    assert weights.lfs is not None and weights.lfs.sha256 == _sha256(BIG)
    # The big file went through Xet: the index that rebuilds it lives in PostgreSQL.
    engine = create_engine(pg.url)
    try:
        with engine.connect() as conn:
            row = conn.execute(text(
                "SELECT o.size, f.size FROM lfs_objects o JOIN xet_files f "
                "ON f.file_hash = o.xet_hash WHERE o.oid = :oid"), {"oid": _sha256(BIG)}).one()
            assert tuple(row) == (len(BIG), len(BIG))
    finally:
        engine.dispose()
    info = owner.api.model_info(repo_id)
    assert info.card_data is not None and info.card_data["license"] == "mit"
    assert TAG in (info.tags or []) and info.pipeline_tag == "text-classification"

    owner.api.upload_file(path_or_fileobj=b"secret\n", path_in_repo="s.txt", repo_id=private_id)
    assert _download(pg, owner.token, private_id, "s.txt", tmp_path / "mine") == b"secret\n"
    for token in (other.token, False):
        with pytest.raises(RepositoryNotFoundError):
            HfApi(endpoint=pg.server.endpoint, token=token).model_info(private_id)
        with pytest.raises(RepositoryNotFoundError):
            _download(pg, token, private_id, "s.txt", tmp_path / "theirs")


def test_listing_search_filter_sort_and_likes(pg: Pg, owner: Person, people: list[Person]
                                              ) -> None:
    stem = f"pgl-{uuid.uuid4().hex[:6]}"
    ids = [f"{owner.name}/{stem}-{i}" for i in range(3)]
    for i, repo_id in enumerate(ids):
        owner.api.create_repo(repo_id, private=(i == 2))
        card = CARD if i < 2 else CARD.replace("license: mit", "license: apache-2.0")
        owner.api.upload_file(path_or_fileobj=card.encode(), path_in_repo="README.md",
                              repo_id=repo_id)

    def like(i: int) -> int:
        r = httpx.post(f"{pg.server.endpoint}/api/models/{ids[1]}/like",
                       headers={"Authorization": f"Bearer {people[i].token}"}, timeout=60)
        assert r.status_code == 200, r.text
        return int(r.json()["likes"])

    # Everyone likes the second repo at once, on both workers: no like is lost.
    results = parallel(len(people), like)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert max(results) == len(people)
    assert owner.api.model_info(ids[1]).likes == len(people)
    assert {u.username for u in owner.api.list_repo_likers(ids[1])} == {
        p.name for p in people}
    like(0)  # a like twice is one like
    people[1].api.unlike(ids[1])
    assert owner.api.model_info(ids[1]).likes == len(people) - 1
    liked = people[2].api.list_liked_repos(people[2].name).models
    assert ids[1] in liked and ids[0] not in liked

    anon = HfApi(endpoint=pg.server.endpoint, token=False)
    assert [m.id for m in anon.list_models(search=stem, sort="created_at")] == [ids[1], ids[0]]
    assert [m.id for m in owner.api.list_models(search=stem.upper(), sort="created_at")] == [
        ids[2], ids[1], ids[0]]
    assert [m.id for m in owner.api.list_models(search=stem, sort="likes")][0] == ids[1]
    assert [m.id for m in anon.list_models(filter=TAG, author=owner.name, search=stem,
                                           sort="created_at")] == [ids[1], ids[0]]
    assert [m.id for m in owner.api.list_models(filter=[TAG, "license:apache-2.0"])] == [ids[2]]
    assert list(anon.list_models(filter=[TAG, "license:apache-2.0"])) == []
    assert [m.id for m in anon.list_models(search=stem, pipeline_tag="text-classification",
                                           sort="last_modified")][-1] == ids[0]
    assert list(anon.list_models(filter=f"{TAG}-nope")) == []


def test_branches_and_tags(pg: Pg, owner: Person, tmp_path: Path) -> None:
    repo_id = _repo(owner)
    owner.api.create_branch(repo_id, branch="dev")
    owner.api.upload_file(path_or_fileobj=b"on dev\n", path_in_repo="dev.txt", repo_id=repo_id,
                          revision="dev")
    owner.api.create_tag(repo_id, tag="v1", revision="dev")
    refs = owner.api.list_repo_refs(repo_id)
    assert sorted(b.name for b in refs.branches) == ["dev", "main"]
    assert [t.name for t in refs.tags] == ["v1"]
    assert _download(pg, False, repo_id, "dev.txt", tmp_path, revision="v1") == b"on dev\n"
    assert "dev.txt" not in owner.api.list_repo_files(repo_id)
    owner.api.delete_branch(repo_id, branch="dev")
    owner.api.delete_tag(repo_id, tag="v1")
    refs = owner.api.list_repo_refs(repo_id)
    assert [b.name for b in refs.branches] == ["main"] and refs.tags == []


def test_gated_request_and_accept(pg: Pg, owner: Person, other: Person, tmp_path: Path) -> None:
    repo_id = _repo(owner)
    owner.api.upload_file(path_or_fileobj=b"weights\n", path_in_repo="w.txt", repo_id=repo_id)
    owner.api.update_repo_settings(repo_id, gated="manual")
    with pytest.raises(GatedRepoError):
        _download(pg, other.token, repo_id, "w.txt", tmp_path / "before")
    r = httpx.post(f"{pg.server.endpoint}/api/models/{repo_id}/ask-access",
                   headers={"Authorization": f"Bearer {other.token}"})
    assert r.status_code == 200 and r.json() == {"status": "pending"}
    assert [p.username for p in owner.api.list_pending_access_requests(repo_id)] == [other.name]
    owner.api.accept_access_request(repo_id, other.name)
    assert [a.username for a in owner.api.list_accepted_access_requests(repo_id)] == [other.name]
    assert _download(pg, other.token, repo_id, "w.txt", tmp_path / "after") == b"weights\n"


def test_move_repo_and_revoke_token(pg: Pg, owner: Person, tmp_path: Path) -> None:
    src = _repo(owner)
    owner.api.upload_file(path_or_fileobj=b"moving\n", path_in_repo="m.txt", repo_id=src)
    dst = f"{owner.name}/moved-{uuid.uuid4().hex[:6]}"
    owner.api.move_repo(src, dst)
    assert owner.api.model_info(src).id == dst  # the old id redirects
    assert owner.api.model_info(dst).id == dst
    assert _download(pg, False, dst, "m.txt", tmp_path) == b"moving\n"

    srv = pg.server
    token = srv.hver("token", "create", owner.name, "--name", "short-lived")
    assert HfApi(endpoint=srv.endpoint, token=token).whoami()["name"] == owner.name
    srv.hver("token", "revoke", owner.name, "short-lived")
    with pytest.raises(HfHubHTTPError) as e:
        HfApi(endpoint=srv.endpoint, token=token).whoami()
    assert e.value.response.status_code == 401
    listed = json.loads(srv.hver("token", "list", owner.name, "--json"))
    assert "short-lived" not in {t["name"] for t in listed}


def test_same_parent_one_wins_and_no_commit_is_lost(pg: Pg, owner: Person) -> None:
    repo_id = _repo(owner)
    parent = owner.api.list_repo_commits(repo_id)[0].commit_id

    def commit(i: int, parent_commit: str | None = parent) -> Any:
        return HfApi(endpoint=pg.server.endpoint, token=owner.token).create_commit(
            repo_id, operations=[CommitOperationAdd(f"w{i}.txt", f"writer {i}".encode())],
            commit_message=f"writer {i}", parent_commit=parent_commit)

    first = parallel(2, commit)
    wins = [r for r in first if not isinstance(r, Exception)]
    (loss,) = [r for r in first if isinstance(r, Exception)]
    assert len(wins) == 1 and isinstance(loss, HfHubHTTPError), first
    assert loss.response.status_code == 412
    commits = owner.api.list_repo_commits(repo_id)
    assert [c.commit_id for c in commits[:2]] == [wins[0].oid, parent]

    # Without parent_commit both land, one on top of the other.
    results = parallel(2, lambda i: commit(i + 2, None))
    assert not [r for r in results if isinstance(r, Exception)], results
    commits = owner.api.list_repo_commits(repo_id)
    assert {c.commit_id for c in commits[:2]} == {r.oid for r in results}
    assert commits[2].commit_id == wins[0].oid
    assert set(owner.api.list_repo_files(repo_id)) == {
        ".gitattributes", f"w{first.index(wins[0])}.txt", "w2.txt", "w3.txt"}


def test_web_sign_in_and_pages(pg: Pg, owner: Person) -> None:
    srv = pg.server
    password = f"pw-{uuid.uuid4().hex}"
    srv.hver("user", "set-password", owner.name, stdin=f"{password}\n")
    repo_id = _repo(owner, private=True)
    owner.api.upload_file(path_or_fileobj=CARD.encode(), path_in_repo="README.md",
                          repo_id=repo_id)
    with browser(srv) as b:
        assert b.get(f"/{repo_id}").status_code == 404
        assert sign_in(b, owner.name, "wrong password").status_code == 401
        r = sign_in(b, owner.name, password, next_url=f"/{repo_id}")
        assert r.status_code == 303 and r.headers["location"] == f"/{repo_id}"
        page = b.get(f"/{repo_id}")
        assert page.status_code == 200
        assert "On PG" in page.text and f">{owner.name}</a>" in page.text
        home = b.get("/")
        assert "Your repositories" in home.text and f'href="/{repo_id}"' in home.text
        listing = b.get("/models", params={"search": repo_id.split("/")[1]})
        assert listing.status_code == 200 and f'href="/{repo_id}"' in listing.text
