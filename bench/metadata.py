"""Metadata at scale: `list_models` (every sort, filters, search) and `model_info` over many repos.

    .venv/bin/python bench/metadata.py [--repos 10000,100000] [--requests 40] [--db URL]
    .venv/bin/python bench/metadata.py --repos 1000000          # about 6 minutes to fill

For each size in `--repos` it fills a fresh data directory, starts its own `hver serve`
on it (random loopback port, rate limits off) and times `--requests` GETs of each
request below over loopback with httpx and keep-alive, interleaved round by round after
a few warm-up requests, then prints p50 and p95 per request and PASS/FAIL against the
targets: listings (`limit=100`) p50 <= 10 ms, search p50 <= 20 ms, `model_info` p50 <=
2 ms.

The fast bulk fill (documented here because it is not how repos are normally made):

- accounts (160 users, 40 orgs, user000 a member of three) and a handful of real repos
  (`REAL`, each with a git repository and a README card) are made through `hver.core`,
  as the API would; `model_info` is timed on those, since it reads git;
- every other repo is one row of `repos`, written with SQLAlchemy Core `insert()`
  executemany in batches of `BATCH` rows: the same card data, tags, pipeline tag and
  library that `core.cards.index_card` derives from a README (the cards of
  bench/listing.py: pipeline tags, libraries, languages, licenses, tags by realistic
  weights), ~8% private, ~8% with no card, dates over three years, long-tailed
  downloads and likes, accounts' repo counts roughly Zipf. Their `storage_key` names no
  git repository: nothing in a listing reads git, and a request that would (their
  `model_info`, a file) is not timed. `sha` is set, so no listing tries to catch the
  index up;
- each row's `repo_tags` and `repo_grams` rows (what `core.repos` writes when a repo
  changes: `filter_terms`, `id_grams`) go in the same transaction, sorted by key; their
  counts (`repo_tag_counts`, `repo_gram_counts`) are counted from them once at the end;
- on PostgreSQL `VACUUM ANALYZE` follows the load, as autovacuum would (statistics, and
  the visibility map that lets index-only scans skip the table); SQLite gets no ANALYZE
  (hver runs none), so its plans are the ones a fresh server gets.

`--data DIR` keeps each size's data directory (DIR/data-SIZE), and with `--db` its
database, and times them again on later runs without filling (the server migrates them
to the newest schema at start).

`--db postgresql+psycopg://USER@HOST/DB` runs against PostgreSQL: a database of its own
is created on that server for each size and dropped after it (`--keep` keeps it).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from listing import (
    DATASET_KINDS,
    DATASET_TOPICS,
    LANGUAGES,
    MODEL_BASES,
    MODEL_VARIANTS,
    N_ACCOUNTS,
    N_ORGS,
    NO_CARD_SHARE,
    PRIVATE_SHARE,
    SEED,
    database,
    dataset_card,
    model_card,
    percentile,
    readme,
    spread,
)
from sqlalchemy import func, insert, select, text
from transfer import Hver

from hver.config import Settings
from hver.core import accounts, commits, repos
from hver.core.cards import index_card
from hver.core.hub import Hub
from hver.db.models import Base, Repo, utcnow
from hver.names import RepoType

WARMUP = 3
BATCH = 20_000
REAL = 5  # real repos (git + card) of user000, for model_info
LIST_MS, SEARCH_MS, INFO_MS = 10.0, 20.0, 2.0
SORTS = ["", "lastModified", "createdAt", "downloads", "likes", "id"]


# --- the fill ---------------------------------------------------------------------------------

def _names(rng: random.Random, kind: str) -> str:
    if kind == "model":
        base = f"{rng.choice(MODEL_BASES)}-{rng.choice(MODEL_VARIANTS)}"
    else:
        base = f"{rng.choice(DATASET_TOPICS)}-{rng.choice(DATASET_KINDS)}"
    if rng.random() < 0.3:
        base += f"-{rng.choice(list(LANGUAGES))}"
    return base


def _rows(rng: random.Random, n: int, names: list[str], owner: str) -> Iterator[dict[str, Any]]:
    """`n` rows of `repos`, as the listing index would hold them after a card commit."""
    counts = spread(rng, n, [1 / (rank + 1) ** 0.8 for rank in range(len(names))])
    plan = [ns for ns, c in zip(names, counts, strict=True) for _ in range(c)]
    rng.shuffle(plan)
    now = utcnow().replace(microsecond=0)
    taken: dict[tuple[str, str, str], int] = {}
    datasets: list[str] = []
    for ns in plan:
        kind = "model" if rng.random() < 0.7 else "dataset"
        base = _names(rng, kind)
        k = taken.get((kind, ns, base), 0) + 1
        taken[(kind, ns, base)] = k
        name = base if k == 1 else f"{base}-{k}"
        card: dict[str, Any] | None = None
        if rng.random() >= NO_CARD_SHARE:
            card = model_card(rng, name, datasets[-50:]) if kind == "model" else dataset_card(rng)
        idx = index_card(card, kind, {"README.md"})
        if kind == "dataset" and len(datasets) < 10_000:
            datasets.append(f"{ns}/{name}")
        created = now - timedelta(seconds=rng.randint(0, 3 * 365 * 86400))
        downloads = min(int(rng.paretovariate(0.9) * 5) - 5, 50_000_000)
        yield {
            "type": kind, "namespace": ns, "name": name, "storage_key": uuid.uuid4().hex,
            "private": rng.random() < (0.3 if ns == owner else PRIVATE_SHARE), "gated": None,
            "created_at": created, "last_modified": created + (now - created) * rng.random(),
            "sha": f"{rng.getrandbits(160):040x}", "card_data": idx.card_data,
            "tags": idx.tags, "pipeline_tag": idx.pipeline_tag,
            "library_name": idx.library_name, "downloads": downloads,
            "likes": int(rng.random() * downloads ** 0.5),
        }


@dataclass
class Filled:
    owner: str
    token: str
    author: str         # the busiest namespace
    quiet: str          # a namespace with few models
    real: list[str]     # repo ids with a git repository
    seconds: float
    database: str = ""  # its PostgreSQL database, if any


def fill(settings: Settings, n: int, seed: int) -> Filled:
    rng = random.Random(seed)
    t0 = time.perf_counter()
    hub = Hub.open(settings)
    try:
        users = [f"user{i:03d}" for i in range(N_ACCOUNTS - N_ORGS)]
        org_owner = {f"{rng.choice(DATASET_TOPICS)}-lab{i:02d}": rng.choice(users)
                     for i in range(N_ORGS)}
        owner = users[0]
        with hub.db.write() as session:
            for u in users:
                accounts.create_user(session, u, f"{u}@bench.example")
            for o, o_owner in org_owner.items():
                accounts.create_org(session, o, o_owner)
            for o in list(org_owner)[:3]:
                if org_owner[o] != owner:
                    accounts.add_member(session, o, owner, "write")
            token = accounts.create_token(session, owner, "read", "bench")
        with hub.db.read() as session:
            actor = accounts.actor_for(session, accounts.get_user(session, owner), "write",
                                       "bench")
        real = []
        for i in range(REAL):
            repo = repos.create_repo(hub, actor, RepoType.model, owner, f"real-model-{i}")
            card = model_card(rng, repo.name, [])
            commits.create_commit(hub, actor, repo, repos.DEFAULT_BRANCH, [
                commits.AddFile("README.md", readme(card, repo.repo_id)),
                commits.AddFile("config.json", b'{"model_type": "bert"}'),
            ], "Add card")
            real.append(repo.repo_id)
        rows = _rows(rng, n - REAL, users + list(org_owner), owner)
        done = 0
        while True:
            batch = [r for _, r in zip(range(BATCH), rows, strict=False)]
            if not batch:
                break
            with hub.db.write() as session:
                if session.get_bind().dialect.name == "sqlite":
                    # The fill's inserts land all over repo_tags and repo_grams: keep them
                    # in memory (this connection only; 256 MB).
                    session.execute(text("PRAGMA cache_size=-262144"))
                first = (session.scalar(select(func.max(Repo.id))) or 0) + 1
                for pk, row in enumerate(batch, first):
                    row["id"] = pk
                session.execute(insert(Base.metadata.tables["repos"]), batch)
                # What `core.repos` writes for each repo it changes (`filter_terms`,
                # `id_grams`), in key order, by the driver's executemany (SQLAlchemy's
                # per-row work would take most of the fill's time).
                conn = session.connection()
                mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
                conn.exec_driver_sql(
                    f"INSERT INTO repo_tags (tag, repo_id) VALUES ({mark}, {mark})",
                    sorted((t, r["id"]) for r in batch
                           for t in repos.filter_terms(r["tags"], r["card_data"])))
                conn.exec_driver_sql(
                    f"INSERT INTO repo_grams (gram, repo_id) VALUES ({mark}, {mark})",
                    sorted((g, r["id"]) for r in batch
                           for g in repos.id_grams(r["namespace"], r["name"])))
            done += len(batch)
            if done % (5 * BATCH) < BATCH:
                rate = done / (time.perf_counter() - t0)
                print(f"  filled {done}/{n} repos ({rate:.0f}/s)", flush=True)
        with hub.db.write() as session:
            # Their counts (`repo_tag_counts`, `repo_gram_counts`, which `core.repos` keeps
            # with each change), counted once from the rows, as migration 0014 does.
            for counts, rows, key in (("repo_tag_counts", "repo_tags", "tag"),
                                      ("repo_gram_counts", "repo_grams", "gram")):
                session.execute(text(f"DELETE FROM {counts}"))
                session.execute(text(f"INSERT INTO {counts} ({key}, repos) "
                                     f"SELECT {key}, count(*) FROM {rows} GROUP BY {key}"))
        if hub.db.engine.dialect.name == "postgresql":
            with hub.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.exec_driver_sql("VACUUM ANALYZE")
        with hub.db.read() as session:
            by_ns = session.execute(
                select(Repo.namespace, func.count()).where(Repo.type == "model")
                .group_by(Repo.namespace).order_by(func.count().desc())).all()
    finally:
        hub.close()
    return Filled(owner, token, by_ns[0][0], by_ns[-1][0], real, time.perf_counter() - t0)


# --- timing -----------------------------------------------------------------------------------

@dataclass
class Req:
    label: str
    path: str
    target: float
    token: bool = False


def requests_for(f: Filled) -> list[Req]:
    out = [Req("/api/health (floor)", "/api/health", 0)]
    for s in SORTS:
        out.append(Req(f"list sort={s or '(default)'}",
                       f"/api/models?limit=100{f'&sort={s}' if s else ''}", LIST_MS))
    out += [
        Req("list sort=downloads direction=1", "/api/models?limit=100&sort=downloads&direction=1",
            LIST_MS),
        Req("list sort=createdAt direction=1", "/api/models?limit=100&sort=createdAt&direction=1",
            LIST_MS),
        Req("list signed in (token)", "/api/models?limit=100", LIST_MS, token=True),
        Req("list author=busiest", f"/api/models?limit=100&author={f.author}", LIST_MS),
        Req("list author=quiet, by downloads",
            f"/api/models?limit=100&author={f.quiet}&sort=downloads", LIST_MS),
        Req("list author=owner (token)", f"/api/models?limit=100&author={f.owner}", LIST_MS,
            token=True),
        Req("list pipeline_tag", "/api/models?limit=100&pipeline_tag=text-classification",
            LIST_MS),
        Req("list library, by likes", "/api/models?limit=100&library=peft&sort=likes", LIST_MS),
        Req("list language=is, by downloads",
            "/api/models?limit=100&language=is&sort=downloads", LIST_MS),
        Req("list license=mit", "/api/models?limit=100&license=mit", LIST_MS),
        Req("list filter=medical (tag)", "/api/models?limit=100&filter=medical", LIST_MS),
        Req("list pipeline+language=pl", "/api/models?limit=100&pipeline_tag=translation"
            "&language=pl", LIST_MS),
        Req("search bert", "/api/models?limit=100&search=bert", SEARCH_MS),
        Req("search phi-3-gguf, by downloads",
            "/api/models?limit=100&search=phi-3-gguf&sort=downloads", SEARCH_MS),
        Req("search rare (few hits)", "/api/models?limit=100&search=falcon-onnx-pl", SEARCH_MS),
        Req("model_info", f"/api/models/{f.real[0]}", INFO_MS),
        Req("model_info (token)", f"/api/models/{f.real[1]}", INFO_MS, token=True),
    ]
    return out


def measure(endpoint: str, token: str, todo: list[Req], n: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {r.label: [] for r in todo}
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=endpoint, timeout=120) as client:
        def get(r: Req) -> httpx.Response:
            resp = client.get(r.path, headers=auth if r.token else {})
            if resp.status_code != 200:
                raise SystemExit(f"{r.path}: HTTP {resp.status_code}\n{resp.text[:300]}")
            return resp

        for r in todo:
            for _ in range(WARMUP):
                get(r)
        for rnd in range(n):
            shift = rnd % len(todo)
            for r in todo[shift:] + todo[:shift]:
                t0 = time.perf_counter()
                get(r)
                times[r.label].append(time.perf_counter() - t0)
    return times


def report(size: int, backend: str, todo: list[Req], times: dict[str, list[float]]) -> bool:
    print(f"\n{size:,} repos, {backend}")
    print(f"{'request':<36} {'p50 ms':>8} {'p95 ms':>8} {'target':>7}")
    ok = True
    for r in todo:
        ms = [t * 1000 for t in times[r.label]]
        p50 = statistics.median(ms)
        good = r.target == 0 or p50 <= r.target
        ok = ok and good
        target = f"{r.target:.0f}" if r.target else ""
        print(f"{r.label:<36} {p50:8.1f} {percentile(ms, 0.95):8.1f} {target:>7}"
              f"{'' if good else '  MISS'}")
    print(f"{'PASS' if ok else 'FAIL'} at {size:,} repos ({backend})", flush=True)
    return ok


def run_size(args: argparse.Namespace, root: Path, size: int) -> None:
    data = (args.data or root) / f"data-{size}"
    done = data / "bench-filled.json"
    data.mkdir(parents=True, exist_ok=args.data is not None)
    kept = Filled(**json.loads(done.read_text())) if done.exists() else None
    with ExitStack() as stack:
        # A kept fill brings its database along; a new one on PostgreSQL makes its own (kept
        # with the data directory under --data).
        url = kept.database if kept is not None else stack.enter_context(
            database(args.db, fresh=True, keep=args.keep or args.data is not None))
        settings = Settings.from_env({}, data=data, database_url=url or "")
        backend = "PostgreSQL" if url else "SQLite"
        if kept is not None:
            f = kept
            print(f"reusing {size:,} repos in {data}", flush=True)
        else:
            print(f"filling {size:,} repos ({backend})", flush=True)
            f = fill(settings, size, args.seed)
            f.database = url or ""
            print(f"  filled in {f.seconds:.0f} s; busiest author {f.author}, quiet {f.quiet}",
                  flush=True)
            if args.data is not None:
                done.write_text(json.dumps(asdict(f)))
        hver = Hver(root, data)
        hver.env.update(HVER_RATE_LIMIT="0", HVER_RATE_LIMIT_ANONYMOUS="0",
                        HVER_DATABASE_URL=url or "")
        hver.start()
        try:
            todo = requests_for(f)
            times = measure(hver.endpoint, f.token, todo, args.requests)
        finally:
            hver.stop()
        report(size, backend, todo, times)
    if not args.keep and args.data is None:
        shutil.rmtree(data, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repos", default="10000,100000",
                   help="comma-separated sizes to fill and time (10000,100000); 1000000 "
                        "for the 1M figure")
    p.add_argument("--requests", type=int, default=40, help="timed requests per row (40)")
    p.add_argument("--db", default=None,
                   help="SQLAlchemy URL of a PostgreSQL server (a new database per size is "
                        "made there); default: SQLite in the data directory")
    p.add_argument("--seed", type=int, default=SEED, help="seed of the generated repos")
    p.add_argument("--tmp", type=Path, default=None, help="directory for the temporary files")
    p.add_argument("--keep", action="store_true", help="keep the data and databases")
    p.add_argument("--data", type=Path, default=None,
                   help="keep each size's filled data directory (and database) under "
                        "DATA/data-SIZE and time it again on later runs instead of filling")
    args = p.parse_args()
    sizes = [int(s) for s in args.repos.split(",")]
    if min(sizes) < N_ACCOUNTS:
        p.error(f"--repos must be at least {N_ACCOUNTS}")
    root = Path(tempfile.mkdtemp(prefix="hver-metadata-", dir=args.tmp))
    print(f"hver metadata bench: python {sys.version.split()[0]}, tmp {root}", flush=True)
    try:
        for size in sizes:
            run_size(args, root, size)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
