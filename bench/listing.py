"""Listing and search pages over many repos: how fast the server renders them.

    .venv/bin/python bench/listing.py [--repos 10000] [--requests 50] [--db URL]

Fills a temporary data directory with `--repos` repos (7 models to 3 datasets, across
about 200 users and organizations, most with a model or dataset card: pipeline tag,
library, languages, license, tags; some private) through the domain layer (`hver.core`,
the same calls the API makes, without HTTP), then starts its own `hver serve` on it
(random loopback port) and times, over loopback with httpx and keep-alive, `--requests`
GETs of each listing page, interleaved round by round, after a few warm-up requests.
`/api/health` and `/static/hver.css`, served by the same process, are the baselines.

It prints the median, p95 and min per page, the ratio of each median to the baseline's,
and PASS/FAIL for the target: every page's median under 100 ms. Exit status is 0 either
way.

`--db postgresql+psycopg://USER@HOST/DB` runs against PostgreSQL (a PostgreSQL driver must
be importable): a database of its own is created on that server for the run and dropped
after it. `--data DIR` fills DIR and keeps it (and its database); a later run with the same
`--data DIR` reuses it without filling.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import create_engine, func, select, text, update
from sqlalchemy.engine import make_url
from transfer import Hver

from hver.config import Settings
from hver.core import accounts, commits, repos
from hver.core.hub import Hub
from hver.db.models import Account, Repo, utcnow
from hver.names import RepoType

TARGET_MS = 100.0
WARMUP = 3
SEED = 20261127
N_ACCOUNTS = 200
N_ORGS = 40
PRIVATE_SHARE = 0.08
NO_CARD_SHARE = 0.08

MODEL_BASES = ["bert", "roberta", "distilbert", "deberta-v3", "electra", "gpt2", "t5",
               "llama-3", "mistral", "whisper", "wav2vec2", "vit", "clip", "xlm-roberta",
               "bart", "marian", "qwen2", "phi-3", "gemma", "falcon", "icebert", "convbert"]
MODEL_VARIANTS = ["base", "large", "small", "tiny", "mini", "finetuned-ner", "sst2", "squad",
                  "chat", "instruct", "uncased", "cased", "lora", "gguf", "onnx", "distilled"]
DATASET_TOPICS = ["news", "wiki", "reviews", "tweets", "speech", "squad", "medical", "legal",
                  "code", "books", "dialogues", "images", "parliament", "subtitles", "sagas"]
DATASET_KINDS = ["corpus", "qa", "ner", "sentiment", "parallel", "summaries", "cleaned",
                 "v2", "small", "instructions", "preferences"]
PIPELINES = {  # model pipeline tag: weight
    "text-classification": 18, "token-classification": 8, "text-generation": 20,
    "translation": 6, "summarization": 4, "fill-mask": 8, "question-answering": 5,
    "automatic-speech-recognition": 6, "image-classification": 7, "feature-extraction": 6,
    "sentence-similarity": 5, "text-to-image": 4,
}
TASKS = ["text-classification", "token-classification", "question-answering", "translation",
         "summarization", "text-generation", "automatic-speech-recognition",
         "image-classification"]
LIBRARIES = {"transformers": 55, "sentence-transformers": 10, "peft": 8, "diffusers": 5,
             "timm": 5, "gguf": 6, "onnx": 3, "spacy": 3, "fasttext": 2}
LANGUAGES = {"en": 45, "is": 8, "de": 7, "fr": 6, "es": 6, "da": 4, "sv": 4, "nb": 3,
             "fi": 3, "ja": 4, "zh": 5, "ar": 3, "pl": 2}
LICENSES = {"apache-2.0": 35, "mit": 25, "cc-by-4.0": 12, "cc-by-sa-4.0": 6, "llama3": 5,
            "openrail": 4, "other": 8, "gpl-3.0": 3, "cc-by-nc-4.0": 2}
EXTRA_TAGS = ["pytorch", "safetensors", "ner", "medical", "legal", "chat", "conversational",
              "code", "biology", "finance", "icelandic-nlp", "benchmark", "synthetic"]
SIZES = ["n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M"]

REPO_LINK = re.compile(r'class="repo-link" href="[^"]*">([^<]+)</a>')


# --- the data -----------------------------------------------------------------------------

def pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def languages(rng: random.Random) -> list[str]:
    if rng.random() < 0.1:  # multilingual
        return sorted(set(rng.choices(list(LANGUAGES), weights=list(LANGUAGES.values()),
                                      k=rng.randint(2, 5))))
    return [pick(rng, LANGUAGES)]


def model_card(rng: random.Random, name: str, datasets: list[str]) -> dict[str, Any]:
    card: dict[str, Any] = {
        "license": pick(rng, LICENSES),
        "language": languages(rng),
        "library_name": pick(rng, LIBRARIES),
        "pipeline_tag": pick(rng, PIPELINES),
        "tags": rng.sample(EXTRA_TAGS, rng.randint(0, 3)),
    }
    if datasets and rng.random() < 0.4:
        card["datasets"] = rng.sample(datasets, min(len(datasets), rng.randint(1, 2)))
    if rng.random() < 0.3:
        card["base_model"] = f"{rng.choice(MODEL_BASES)}-{rng.choice(MODEL_VARIANTS)}"
    return card


def dataset_card(rng: random.Random) -> dict[str, Any]:
    return {
        "license": pick(rng, LICENSES),
        "language": languages(rng),
        "task_categories": rng.sample(TASKS, rng.randint(1, 2)),
        "size_categories": [rng.choice(SIZES)],
        "tags": rng.sample(EXTRA_TAGS, rng.randint(0, 2)),
    }


def readme(card: dict[str, Any], repo_id: str) -> bytes:
    front = yaml.safe_dump(card, sort_keys=False, allow_unicode=True)
    return (f"---\n{front}---\n\n# {repo_id}\n\nA repo of the listing benchmark. It has a "
            "card and nothing else.\n").encode()


def spread(rng: random.Random, n: int, weights: list[float]) -> list[int]:
    """How many of `n` repos each account gets, drawn by weight; every account at least 1."""
    counts = [1] * len(weights)
    for i in rng.choices(range(len(weights)), weights=weights, k=n - len(weights)):
        counts[i] += 1
    return counts


@dataclass
class Filled:
    repos: int
    seconds: float


def fill(settings: Settings, n: int, seed: int, progress: Callable[[str], None]) -> Filled:
    """Make ~200 accounts and `n` repos with cards, through `hver.core` on `settings`."""
    rng = random.Random(seed)
    t0 = time.perf_counter()
    hub = Hub.open(settings)
    try:
        users = [f"user{i:03d}" for i in range(N_ACCOUNTS - N_ORGS)]
        org_owner = {f"{rng.choice(DATASET_TOPICS)}-lab{i:02d}": rng.choice(users)
                     for i in range(N_ORGS)}
        orgs = list(org_owner)
        with hub.db.write() as session:
            for u in users:
                accounts.create_user(session, u, f"{u}@bench.example")
            for o, owner in org_owner.items():
                accounts.create_org(session, o, owner)
            # user000, whose token the signed-in listing uses, is in three organizations.
            for o in orgs[:3]:
                if org_owner[o] != users[0]:
                    accounts.add_member(session, o, users[0], "write")
        with hub.db.read() as session:
            actors = {u: accounts.actor_for(session, accounts.get_user(session, u), "write",
                                            "bench") for u in users}
        names = users + orgs
        # A few busy accounts, many quiet ones (roughly Zipf); user000 among the busiest.
        counts = spread(rng, n, [1 / (rank + 1) ** 0.8 for rank in range(len(names))])
        plan: list[tuple[str, RepoType]] = []
        for name, count in zip(names, counts, strict=True):
            plan += [(name, RepoType.model if rng.random() < 0.7 else RepoType.dataset)
                     for _ in range(count)]
        rng.shuffle(plan)

        taken: set[tuple[str, str, str]] = set()
        made_datasets: list[str] = []
        for done, (ns, kind) in enumerate(plan, 1):
            if kind is RepoType.model:
                base = f"{rng.choice(MODEL_BASES)}-{rng.choice(MODEL_VARIANTS)}"
            else:
                base = f"{rng.choice(DATASET_TOPICS)}-{rng.choice(DATASET_KINDS)}"
            if rng.random() < 0.3:
                base += f"-{rng.choice(list(LANGUAGES))}"
            name, k = base, 1
            while (kind.value, ns, name) in taken:
                k += 1
                name = f"{base}-{k}"
            taken.add((kind.value, ns, name))
            actor = actors[org_owner.get(ns, ns)]
            private = rng.random() < (0.3 if ns == users[0] else PRIVATE_SHARE)
            repo = repos.create_repo(hub, actor, kind, ns, name, private=private)
            if rng.random() >= NO_CARD_SHARE:
                card = (model_card(rng, name, made_datasets) if kind is RepoType.model
                        else dataset_card(rng))
                commits.create_commit(hub, actor, repo, repos.DEFAULT_BRANCH,
                                      [commits.AddFile("README.md", readme(card, repo.repo_id))],
                                      "Add card")
            if kind is RepoType.dataset:
                made_datasets.append(repo.repo_id)
            if done % 1000 == 0:
                rate = done / (time.perf_counter() - t0)
                progress(f"  filled {done}/{n} repos ({rate:.0f}/s)")

        # Repos made in one run all look new and unused: spread their dates over three
        # years and give them long-tailed download and like counts, as a hub has.
        now = utcnow().replace(microsecond=0)
        rows = []
        with hub.db.read() as session:
            ids = list(session.scalars(select(Repo.id).order_by(Repo.id)))
        for repo_pk in ids:
            created = now - timedelta(seconds=rng.randint(0, 3 * 365 * 86400))
            downloads = min(int(rng.paretovariate(0.9) * 5) - 5, 50_000_000)
            rows.append({"id": repo_pk, "created_at": created,
                         "last_modified": created + (now - created) * rng.random(),
                         "downloads": downloads,
                         "likes": int(rng.random() * downloads ** 0.5)})
        with hub.db.write() as session:
            session.execute(update(Repo), rows)
            if session.get_bind().dialect.name == "postgresql":
                # What autovacuum does after a load (where it runs): planner statistics.
                session.execute(text("ANALYZE"))
    finally:
        hub.close()
    return Filled(len(plan), time.perf_counter() - t0)


@dataclass
class Subjects:
    """What the timed pages ask for, read from the filled database."""

    repos: int
    models: int
    datasets: int
    private: int
    owner: str      # the user whose token lists private repos
    token: str
    author: str     # the busiest namespace


def subjects(settings: Settings) -> Subjects:
    hub = Hub.open(settings)
    try:
        with hub.db.read() as session:
            def count(*where: Any) -> int:
                return int(session.scalar(select(func.count()).select_from(Repo)
                                          .where(*where)) or 0)

            total = count()
            models = count(Repo.type == "model")
            datasets = count(Repo.type == "dataset")
            private = count(Repo.private.is_(True))
            owner = session.execute(
                select(Repo.namespace, func.count()).join(Account, Account.name == Repo.namespace)
                .where(Repo.private.is_(True), Account.kind == "user")
                .group_by(Repo.namespace).order_by(func.count().desc()).limit(1)).first()
            author = session.execute(
                select(Repo.namespace, func.count()).where(Repo.type == "model")
                .group_by(Repo.namespace).order_by(func.count().desc()).limit(1)).first()
        if owner is None or author is None:
            raise SystemExit("the database has no private repos of a user to list")
        with hub.db.write() as session:
            token = accounts.create_token(session, owner[0], "read",
                                          f"bench-{uuid.uuid4().hex[:6]}")
    finally:
        hub.close()
    return Subjects(total, models, datasets, private, owner[0], token, author[0])


# --- PostgreSQL: a database of the run's own ---------------------------------------------

@contextmanager
def database(url: str | None, fresh: bool, keep: bool) -> Iterator[str | None]:
    """The URL to run on: `url` itself, or a new database on the same server when `fresh`
    (dropped on the way out unless `keep`)."""
    if url is None or not fresh or not url.startswith("postgresql"):
        yield url
        return
    base = make_url(url)
    name = f"hver_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as e:  # whatever the driver raises: say it and stop
        admin.dispose()
        raise SystemExit(f"could not create a database on {base.render_as_string()}: {e}") from e
    made = base.set(database=name).render_as_string(hide_password=False)
    try:
        yield made
    finally:
        if keep:
            print(f"kept database {made}")
        else:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- timing ----------------------------------------------------------------------------------

@dataclass
class Page:
    label: str
    path: str
    token: str | None = None
    baseline: bool = False
    check: Callable[[str], str | None] | None = None  # the page's body -> a problem, or None


def shown(body: str) -> list[str]:
    return REPO_LINK.findall(body)


def check_listing(want: int | None = None,
                  each: Callable[[str], bool] | None = None) -> Callable[[str], str | None]:
    """A check that the page lists repos: `want` of them, each passing `each`."""
    def check(body: str) -> str | None:
        ids = shown(body)
        if want is not None and len(ids) != want:
            return f"shows {len(ids)} repos, not {want}"
        if not ids:
            return "shows no repos"
        if each is not None and not all(each(i) for i in ids):
            return f"shows repos it should not: {[i for i in ids if not each(i)][:3]}"
        return None

    return check


def pages(s: Subjects, model_term: str, dataset_term: str) -> list[Page]:
    per_page = 30
    return [
        Page("/api/health (baseline)", "/api/health", baseline=True),
        Page("/static/hver.css (baseline)", "/static/hver.css", baseline=True),
        Page("home", "/", check=check_listing()),
        Page("models", "/models", check=check_listing(per_page)),
        Page("models, search", f"/models?search={model_term}",
             check=check_listing(each=lambda i: model_term in i.lower())),
        Page("models, pipeline+language, by downloads",
             "/models?pipeline_tag=text-classification&language=is&sort=downloads",
             check=check_listing()),
        Page("models, author", f"/models?author={s.author}",
             check=check_listing(each=lambda i: i.startswith(f"{s.author}/"))),
        Page("datasets, search", f"/datasets?search={dataset_term}",
             check=check_listing(each=lambda i: dataset_term in i.lower())),
        Page("models, page 100", "/models?p=100",
             # Page 100 is full only with enough public models (the default 10,000 repos).
             check=check_listing(per_page) if s.models - s.private > 101 * per_page else None),
        Page("models, signed in (token)", "/models", token=s.token,
             check=check_listing(per_page)),
    ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def measure(endpoint: str, todo: list[Page], requests: int) -> dict[str, list[float]]:
    """Seconds per request of every page: `requests` rounds, each page once per round, the
    order rotating, after WARMUP untimed requests of each."""
    times: dict[str, list[float]] = {p.label: [] for p in todo}
    with httpx.Client(base_url=endpoint, timeout=60, headers={"Accept": "text/html"}) as client:
        def get(p: Page) -> httpx.Response:
            headers = {"Authorization": f"Bearer {p.token}"} if p.token else {}
            return client.get(p.path, headers=headers)

        for p in todo:
            for _ in range(WARMUP):
                r = get(p)
                if r.status_code != 200:
                    raise SystemExit(f"{p.path}: HTTP {r.status_code}\n{r.text[:500]}")
            problem = p.check(r.text) if p.check is not None else None
            if problem:
                raise SystemExit(f"{p.path} {problem}")
        for rnd in range(requests):
            shift = rnd % len(todo)
            for p in todo[shift:] + todo[:shift]:
                t0 = time.perf_counter()
                r = get(p)
                dt = time.perf_counter() - t0
                if r.status_code != 200:
                    raise SystemExit(f"{p.path}: HTTP {r.status_code}")
                times[p.label].append(dt)
    return times


def check_private(endpoint: str, s: Subjects) -> None:
    """The signed-in listing is the private-filter path: the token shows the owner's private
    repos, and the same page without it does not."""
    path = f"{endpoint}/models?author={s.owner}"
    anon = httpx.get(path, timeout=60).text
    mine = httpx.get(path, headers={"Authorization": f"Bearer {s.token}"}, timeout=60).text
    badge = '<span class="badge">private</span>'
    if badge in anon or badge not in mine:
        raise SystemExit(f"{path}: private repos are not listed for their owner only")


def report(todo: list[Page], times: dict[str, list[float]]) -> bool:
    base = statistics.median(times[todo[0].label])
    print(f"\n{'page':<42} {'median ms':>9} {'p95 ms':>8} {'min ms':>8} {'x health':>9}  path")
    worst: list[tuple[str, float]] = []
    for p in todo:
        ms = [t * 1000 for t in times[p.label]]
        med = statistics.median(ms)
        print(f"{p.label:<42} {med:9.1f} {percentile(ms, 0.95):8.1f} {min(ms):8.1f} "
              f"{med / (base * 1000):8.1f}x  {p.path}{' (Bearer)' if p.token else ''}")
        if not p.baseline:
            worst.append((p.label, med))
    label, med = max(worst, key=lambda w: w[1])
    ok = med < TARGET_MS
    print(f"\n{'PASS' if ok else 'FAIL'}  median < {TARGET_MS:.0f} ms on every page "
          f"(slowest: {label}, {med:.1f} ms)")
    return ok


# --- the run --------------------------------------------------------------------------------

MARKER = "bench-listing.json"  # in a filled data directory: its database URL


def run(args: argparse.Namespace, root: Path) -> int:
    print(f"hver listing bench: {args.repos} repos, {args.requests} requests per page, "
          f"python {sys.version.split()[0]}, tmp {root}", flush=True)
    data: Path = args.data or root / "hver-data"
    marker = data / MARKER
    reuse = marker.exists()
    db_url = json.loads(marker.read_text())["database_url"] if reuse else args.db
    # A data directory given with --data is kept, and so is its database.
    with database(db_url, fresh=not reuse, keep=args.keep or args.data is not None) as url:
        settings = Settings.from_env({}, data=data, database_url=url or "")
        print(f"  database: {settings.resolved_database_url}", flush=True)
        if reuse:
            print(f"  reusing the repos in {data}", flush=True)
        else:
            filled = fill(settings, args.repos, args.seed, lambda m: print(m, flush=True))
            marker.write_text(json.dumps({"database_url": url or ""}))
            print(f"  filled {filled.repos} repos in {filled.seconds:.0f} s", flush=True)
        s = subjects(settings)
        print(f"  {s.repos} repos: {s.models} models, {s.datasets} datasets, {s.private} "
              f"private; token of {s.owner}; busiest author {s.author}", flush=True)

        hver = Hver(root, data)
        hver.env.update(HVER_RATE_LIMIT="0", HVER_RATE_LIMIT_ANONYMOUS="0",
                        HVER_DATABASE_URL=url or "")
        hver.start()
        try:
            check_private(hver.endpoint, s)
            todo = pages(s, args.search, args.dataset_search)
            times = measure(hver.endpoint, todo, args.requests)
        finally:
            hver.stop()
        report(todo, times)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repos", type=int, default=10_000, help="repos to fill in (10000)")
    p.add_argument("--requests", type=int, default=50, help="timed requests per page (50)")
    p.add_argument("--db", default=None,
                   help="SQLAlchemy URL of a PostgreSQL server (a new database is made there "
                        "for the run); default: SQLite in the data directory")
    p.add_argument("--data", type=Path, default=None,
                   help="data directory to fill, or to reuse when it already holds repos")
    p.add_argument("--search", default="bert", help="the models search term (bert)")
    p.add_argument("--dataset-search", default="news", help="the datasets search term (news)")
    p.add_argument("--seed", type=int, default=SEED, help="seed of the generated repos")
    p.add_argument("--tmp", type=Path, default=None,
                   help="directory for the temporary files (a new temporary one)")
    p.add_argument("--keep", action="store_true",
                   help="keep the temporary directory and database")
    args = p.parse_args()
    if args.repos < N_ACCOUNTS:
        p.error(f"--repos must be at least {N_ACCOUNTS}")
    root = Path(tempfile.mkdtemp(prefix="hver-bench-", dir=args.tmp))
    try:
        return run(args, root)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
