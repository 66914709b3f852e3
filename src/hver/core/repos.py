"""Repos: create, delete, move, settings, lookup, listing, and the index behind listings."""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from math import isqrt
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    FromClause,
    Select,
    String,
    Text,
    and_,
    cast,
    delete,
    event,
    func,
    insert,
    inspect,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.util import ClauseAdapter

from hver.core import access, audit
from hver.core.accounts import READ_PERMISSION, Actor, get_account
from hver.core.cards import (
    CardError,
    CardIndex,
    as_list,
    index_card,
    parse_front_matter,
    tag_matches,
)
from hver.core.hub import Hub
from hver.core.lru import Lru
from hver.core.tree import suffixes_below
from hver.db.models import (
    Repo,
    RepoGram,
    RepoGramCount,
    RepoRedirect,
    RepoTag,
    RepoTagCount,
    utcnow,
)
from hver.errors import BadRequest, Conflict, Forbidden, RepoMoved, RepoNotFound
from hver.names import RepoType, validate_namespace, validate_part
from hver.storage.git import FILE_MODE, GitRepo
from hver.storage.lfs import parse_pointer

DEFAULT_BRANCH = "main"
SPACE_SDKS = ("gradio", "streamlit", "docker", "static")
GITATTRIBUTES = """\
*.7z filter=lfs diff=lfs merge=lfs -text
*.arrow filter=lfs diff=lfs merge=lfs -text
*.bin filter=lfs diff=lfs merge=lfs -text
*.bz2 filter=lfs diff=lfs merge=lfs -text
*.ckpt filter=lfs diff=lfs merge=lfs -text
*.ftz filter=lfs diff=lfs merge=lfs -text
*.gz filter=lfs diff=lfs merge=lfs -text
*.h5 filter=lfs diff=lfs merge=lfs -text
*.joblib filter=lfs diff=lfs merge=lfs -text
*.lfs.* filter=lfs diff=lfs merge=lfs -text
*.lz4 filter=lfs diff=lfs merge=lfs -text
*.mds filter=lfs diff=lfs merge=lfs -text
*.mlmodel filter=lfs diff=lfs merge=lfs -text
*.model filter=lfs diff=lfs merge=lfs -text
*.msgpack filter=lfs diff=lfs merge=lfs -text
*.npy filter=lfs diff=lfs merge=lfs -text
*.npz filter=lfs diff=lfs merge=lfs -text
*.onnx filter=lfs diff=lfs merge=lfs -text
*.ot filter=lfs diff=lfs merge=lfs -text
*.parquet filter=lfs diff=lfs merge=lfs -text
*.pb filter=lfs diff=lfs merge=lfs -text
*.pickle filter=lfs diff=lfs merge=lfs -text
*.pkl filter=lfs diff=lfs merge=lfs -text
*.pt filter=lfs diff=lfs merge=lfs -text
*.pth filter=lfs diff=lfs merge=lfs -text
*.rar filter=lfs diff=lfs merge=lfs -text
*.safetensors filter=lfs diff=lfs merge=lfs -text
saved_model/**/* filter=lfs diff=lfs merge=lfs -text
*.tar.* filter=lfs diff=lfs merge=lfs -text
*.tar filter=lfs diff=lfs merge=lfs -text
*.tflite filter=lfs diff=lfs merge=lfs -text
*.tgz filter=lfs diff=lfs merge=lfs -text
*.wasm filter=lfs diff=lfs merge=lfs -text
*.xz filter=lfs diff=lfs merge=lfs -text
*.zip filter=lfs diff=lfs merge=lfs -text
*.zst filter=lfs diff=lfs merge=lfs -text
*tfevents* filter=lfs diff=lfs merge=lfs -text
*.gguf filter=lfs diff=lfs merge=lfs -text
"""


def author_line(actor: Actor) -> str:
    email = actor.email or f"{actor.name}@users.noreply.hver"
    return f"{actor.name} <{email}>"


def find_repo(session: Session, repo_type: RepoType, namespace: str, name: str) -> Repo | None:
    """The repo of that type and id, whatever the case the id is written in (as on the Hub,
    `Alice/Model` is `alice/model`); the repo keeps the casing it was given. The one lookup:
    the API, the web UI and every check that a name is free go through it."""
    if not (namespace.isascii() and name.isascii()):
        return None  # stored ids are ASCII: no Unicode case folding may alias one
    return session.scalar(
        select(Repo).where(
            Repo.type == repo_type.value,
            func.lower(Repo.namespace) == func.lower(namespace),
            func.lower(Repo.name) == func.lower(name),
        )
    )


def get_repo(
    session: Session, actor: Actor | None, repo_type: RepoType, namespace: str, name: str
) -> Repo:
    """The repo if it exists and the actor may read it; RepoNotFound otherwise.

    An id a repo was moved from raises RepoMoved, naming the repo's id now, but only to
    whoever may read that repo: to anyone else it is missing, like the repo itself.
    """
    repo = find_repo(session, repo_type, namespace, name)
    if repo is None:
        moved = _redirect_target(session, repo_type, namespace, name)
        if moved is not None and access.can_read(actor, moved):
            raise RepoMoved(moved.namespace, moved.name)
        raise RepoNotFound()
    if not access.can_read(actor, repo):
        raise RepoNotFound()
    return repo


def _redirect_where(repo_type: RepoType, namespace: str, name: str) -> list[ColumnElement[bool]]:
    return [RepoRedirect.type == repo_type.value,
            func.lower(RepoRedirect.namespace) == func.lower(namespace),
            func.lower(RepoRedirect.name) == func.lower(name)]


def _redirect_target(session: Session, repo_type: RepoType, namespace: str,
                     name: str) -> Repo | None:
    """The repo moved away from this id, if one was (in any case, as repo ids)."""
    if not (namespace.isascii() and name.isascii()):
        return None
    return session.scalar(select(Repo).join(RepoRedirect, RepoRedirect.repo_id == Repo.id)
                          .where(*_redirect_where(repo_type, namespace, name)))


def _take_id(session: Session, repo_type: RepoType, namespace: str, name: str) -> None:
    """A repo takes this id: a redirect from it, left by a move, goes."""
    session.execute(delete(RepoRedirect).where(*_redirect_where(repo_type, namespace, name)))


def create_repo(
    hub: Hub,
    actor: Actor | None,
    repo_type: RepoType,
    namespace: str,
    name: str,
    private: bool = False,
    space_sdk: str | None = None,
) -> Repo:
    """A new repo whose first commit holds `.gitattributes`, and for a Space its card with
    the SDK (`sdk:` in README.md's front matter, where the Hub keeps it)."""
    validate_namespace(namespace)
    validate_part(name)
    if repo_type is RepoType.space and space_sdk is not None and space_sdk not in SPACE_SDKS:
        raise BadRequest(f"Invalid Space SDK {space_sdk!r}: one of {', '.join(SPACE_SDKS)}.")
    with hub.db.read() as session:
        account = get_account(session, namespace)
        # The namespace as its account spells it: `Alice/x` is created as `alice/x`.
        namespace = account.name if account is not None else namespace
        existing = find_repo(session, repo_type, namespace, name)
    access.require_namespace_write(actor, namespace)
    assert actor is not None
    if account is None or account.mirror_upstream is not None:
        raise Forbidden(f"You don't have the rights to create repos under {namespace!r}.")
    if existing is not None:
        raise Conflict("You already created this repo")
    key = uuid.uuid4().hex
    git = hub.git.init(key)
    files = {".gitattributes": (FILE_MODE, git.add_blob(GITATTRIBUTES.encode()))}
    if repo_type is RepoType.space and space_sdk is not None:
        card = f"---\ntitle: {name}\nsdk: {space_sdk}\n---\n\n# {name}\n"
        files["README.md"] = (FILE_MODE, git.add_blob(card.encode()))
    sha = git.write_commit(git.write_tree(files), [], "initial commit", author_line(actor))
    git.cas_ref(f"refs/heads/{DEFAULT_BRANCH}", None, sha)
    idx = card_index(git, sha, repo_type.value)
    now = utcnow()
    repo = Repo(
        type=repo_type.value, namespace=namespace, name=name, storage_key=key,
        private=private, created_at=now, last_modified=now, sha=sha, tags=idx.tags,
        card_data=idx.card_data, pipeline_tag=idx.pipeline_tag,
        library_name=idx.library_name, downloads=0, likes=0,
    )
    try:
        with hub.db.write() as session:
            if find_repo(session, repo_type, namespace, name) is not None:
                raise Conflict("You already created this repo")
            _take_id(session, repo_type, namespace, name)
            session.add(repo)
    except (Conflict, IntegrityError):
        hub.git.delete(key)
        raise Conflict("You already created this repo") from None
    return repo


def delete_repo(hub: Hub, actor: Actor | None, repo_type: RepoType, namespace: str,
                name: str) -> None:
    with hub.db.write() as session:
        repo = get_repo(session, actor, repo_type, namespace, name)
        access.require_admin(actor, repo)
        key = repo.storage_key
        session.execute(delete(RepoRedirect).where(RepoRedirect.repo_id == repo.id))
        session.delete(repo)
        audit.record(session, actor, "repo.delete", f"{repo.type}/{repo.repo_id}")
    # The index row is gone, so the repo is gone; the directory follows.
    hub.git.delete(key)


def move_repo(hub: Hub, actor: Actor | None, repo_type: RepoType, src: tuple[str, str],
              dst: tuple[str, str]) -> Repo:
    validate_namespace(dst[0])
    validate_part(dst[1])
    with hub.db.write() as session:
        repo = get_repo(session, actor, repo_type, *src)
        access.require_admin(actor, repo)
        account = get_account(session, dst[0])
        dst = (account.name if account is not None else dst[0], dst[1])
        if dst[0] != repo.namespace:
            access.require_namespace_write(actor, dst[0])
            if account is None or account.mirror_upstream is not None:
                raise Forbidden(f"You don't have the rights to create repos under {dst[0]!r}.")
        return _rename(session, actor, repo, dst, "repo.move")


def transfer_repo(hub: Hub, by: Actor | str, repo_type: RepoType, src: tuple[str, str],
                  dst_namespace: str, dst_name: str | None = None) -> Repo:
    """Site administration: move a repo to another namespace whoever owns it."""
    dst = (dst_namespace, dst_name or src[1])
    validate_namespace(dst[0])
    validate_part(dst[1])
    with hub.db.write() as session:
        repo = find_repo(session, repo_type, *src)
        if repo is None:
            raise RepoNotFound(f"No {repo_type.value} repo {src[0]}/{src[1]}.")
        account = get_account(session, dst[0])
        if account is None:
            raise BadRequest(f"No user or organization named {dst[0]!r}.")
        if (account.mirror_upstream is None) != (repo.mirror_upstream is None):
            raise BadRequest("A namespace holds mirrored repos or local ones, never both.")
        return _rename(session, by, repo, (account.name, dst[1]), "repo.transfer")


def _rename(session: Session, by: Actor | str | None, repo: Repo, dst: tuple[str, str],
            event: str) -> Repo:
    """Give the repo its new name (the git repository keeps its key) and record it. A name
    taken by another repo in any case is refused; the repo's own name in another case is not.
    The old id goes on naming the repo (a redirect) until another repo takes it."""
    repo_type = RepoType(repo.type)
    taken = find_repo(session, repo_type, *dst)
    if taken is not None and (taken.id != repo.id or (taken.namespace, taken.name) == dst):
        raise Conflict(f"A {repo_type.value} repository called {dst[0]}/{dst[1]} "
                       "already exists")
    source = repo.repo_id
    old = (repo.namespace, repo.name)
    _take_id(session, repo_type, *dst)
    repo.namespace, repo.name = dst
    if (old[0].lower(), old[1].lower()) != (dst[0].lower(), dst[1].lower()):
        session.add(RepoRedirect(type=repo.type, namespace=old[0], name=old[1],
                                 repo_id=repo.id, created_at=utcnow()))
    audit.record(session, by, event, f"{repo.type}/{dst[0]}/{dst[1]}", source=source)
    return repo


def update_settings(hub: Hub, actor: Actor | None, repo_type: RepoType, namespace: str,
                    name: str, private: bool | None, gated: str | bool | None) -> Repo:
    with hub.db.write() as session:
        repo = get_repo(session, actor, repo_type, namespace, name)
        access.require_admin(actor, repo)
        target = f"{repo.type}/{repo.repo_id}"
        if private is not None and private != repo.private:
            audit.record(session, actor, "repo.visibility", target,
                         visibility="private" if private else "public")
            repo.private = private
        if gated is not None:
            if gated is False or gated == "false":
                new_gated = None
            elif gated in ("auto", "manual"):
                new_gated = str(gated)
            else:
                raise BadRequest(f"Invalid gated value {gated!r}: 'auto', 'manual' or false.")
            if new_gated != repo.gated:
                audit.record(session, actor, "repo.gated", target, gated=new_gated or False,
                             previous=repo.gated or False)
                repo.gated = new_gated
        return repo


def card_index(git: GitRepo, commit: str, repo_type: str) -> CardIndex:
    """Card data and tags of the repo as of `commit`.

    Reads what the index needs and no more: README.md (parsed once per blob id), the names
    at the root, and the extensions of the files below (cached per tree id, so a commit
    reads again only the folders it changed)."""
    root = git.commit(commit).tree
    card: dict[str, object] | None = None
    readme = git.lookup(root, "README.md")
    if readme is not None and not readme.is_dir:
        card = _card(git, readme.sha)
    return index_card(card, repo_type, index_paths(git, root))


def index_paths(git: GitRepo, root: str) -> set[str]:
    """What `index_card` looks at in a repo's file list, without the whole list: the files
    at the root (`config.json`), and one stand-in name (`*.gguf`) for each extension any
    file below has."""
    names = {e.path for e in git.tree(root) if not e.is_dir}
    return names | {f"*{suffix}" for suffix in suffixes_below(git, root)}


_cards = Lru[str, tuple[dict[str, object] | None]](capacity=1024)


def _card(git: GitRepo, blob: str) -> dict[str, object] | None:
    """The front matter of a README blob (None: an LFS file, or invalid), parsed once."""
    hit = _cards.get(blob)
    if hit is None:
        data = git.blob(blob)
        card: dict[str, object] | None = None
        if parse_pointer(data) is None:
            try:
                card = parse_front_matter(data.decode("utf-8", "replace"))
            except CardError:
                card = None
        hit = _cards.put(blob, (card,))
    # The index keeps the dict (stored in the row): each caller gets its own copy.
    return copy.deepcopy(hit[0])


def refresh_index(hub: Hub, repo: Repo, git: GitRepo | None = None) -> Repo:
    """Bring the listing index of a repo up to date with its default branch.

    Called after commits to the default branch and whenever a reader sees the
    index lag behind git (a crash between the ref update and this write). The repo's
    `repo_tags` follow its new tags and card in the same transaction (`_repo_updated`).
    """
    git = git or hub.git.open(repo.storage_key)
    head = git.ref(f"refs/heads/{DEFAULT_BRANCH}")
    if head is None or head == repo.sha:
        return repo
    info = git.commit(head)
    idx = card_index(git, head, repo.type)
    with hub.db.write() as session:
        row = session.get(Repo, repo.id)
        if row is None:
            return repo
        row.sha = head
        row.last_modified = _from_ts(info.timestamp)
        row.card_data = idx.card_data
        row.tags = idx.tags
        row.pipeline_tag = idx.pipeline_tag
        row.library_name = idx.library_name
        return row


def _from_ts(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None)


SORTS = {
    "lastModified": Repo.last_modified,
    "last_modified": Repo.last_modified,
    "createdAt": Repo.created_at,
    "created_at": Repo.created_at,
    "downloads": Repo.downloads,
    "likes": Repo.likes,
    "trendingScore": Repo.likes,
    "id": Repo.name,
}


# What a listing shows of each repo (`api.info.summary`), in this order, as the database
# holds it: plain rows, not ORM objects (whose making took about as long as the rest of a
# listing), with dates (on SQLite) and JSON as stored text, so that a row can be hashed
# and compared whole (`api.info` keeps each summary's encoding by its row).
LISTED = (Repo.id, Repo.type, Repo.namespace, Repo.name, Repo.private, Repo.gated,
          Repo.downloads, Repo.likes, cast(Repo.tags, Text),
          type_coerce(Repo.created_at, String), type_coerce(Repo.last_modified, String),
          Repo.pipeline_tag, Repo.library_name, Repo.sha)
LISTED_WITH_CARD = (*LISTED, cast(Repo.card_data, Text))


def list_repos(
    session: Session,
    actor: Actor | None,
    repo_type: RepoType,
    *,
    search: Sequence[str] = (),
    author: str | None = None,
    filters: Sequence[str] = (),
    sort: str | None = None,
    direction: int = -1,
    offset: int = 0,
    limit: int = 100,
) -> list[Repo]:
    """The page `list_rows` finds, as Repo objects (the web pages' short lists)."""
    ids = [row[0] for row in list_rows(
        session, actor, repo_type, (Repo.id,), search=search, author=author, filters=filters,
        sort=sort, direction=direction, offset=offset, limit=limit)]
    # Visibility tested again, as in `list_rows`' own second read.
    found = {r.id: r for r in session.scalars(
        select(Repo).where(Repo.id.in_(ids), *_visible_to(actor)))}
    return [found[i] for i in ids if i in found]


MAX_TERMS = 8  # filters, and search terms, of one listing


def list_rows(
    session: Session,
    actor: Actor | None,
    repo_type: RepoType,
    columns: Sequence[ColumnElement[Any] | InstrumentedAttribute[Any]],
    *,
    search: Sequence[str] = (),
    author: str | None = None,
    filters: Sequence[str] = (),
    sort: str | None = None,
    direction: int = -1,
    offset: int = 0,
    limit: int = 100,
) -> list[tuple[Any, ...]]:
    """A page of the repos of a type that `actor` may see, matching every search term (a
    substring of the id, any case) and every filter (`core.cards.tag_matches`), in the
    sort's order (ties by id): a row of `columns` (the first `Repo.id`) for each.

    Three plans, chosen per request: read the sort's index in order, testing each repo,
    which is quick when matches are common; when a filter or a search term matches few
    repos (`repo_tags`, `repo_grams`), take just those and sort them; and in id order,
    read the rows of the rarest filter or trigram in id order (they are kept so), testing
    the others, which is quick whatever the matches' share."""
    column = SORTS.get(sort or "")
    if sort and column is None:
        raise BadRequest(f"Invalid sort {sort!r}: one of {', '.join(sorted(SORTS))}.")
    filters, search = list(dict.fromkeys(filters)), list(dict.fromkeys(search))
    if len(filters) > MAX_TERMS or len(search) > MAX_TERMS:
        # Each term is a join: past a few, a database's planner, not the data, is the cost.
        raise BadRequest(f"At most {MAX_TERMS} filters and {MAX_TERMS} search terms.")
    q = select(*columns)
    if author:  # in any case, as namespaces are
        q = q.where(func.lower(Repo.namespace) == author.lower())
    if column is None:
        q = q.order_by(Repo.id.desc() if direction < 0 else Repo.id.asc())
    else:
        q = q.order_by(column.desc() if direction < 0 else column.asc(), Repo.id.desc())
    # What a repo's row must pass: who may see it, and the search terms.
    on_row = [*_visible_to(actor), *(func.lower(Repo.namespace + "/" + Repo.name)
                                     .like(f"%{term.lower()}%") for term in search)]
    indexed = [f for f in filters if len(f) <= MAX_TAG]
    rest = [f for f in filters if len(f) > MAX_TAG]  # longer than any row of `repo_tags`
    probes = _probes(search, indexed)
    # The row's tests apart, so that no database plans by its guess of what the search's
    # LIKE leaves (PostgreSQL then reads every repo rather than the few).
    adapt = ClauseAdapter(_ROW).traverse
    row_test = _each_row(select(_ROW.c.id).where(_ROW.c.id == Repo.id, *map(adapt, on_row)))
    few = None
    if probes and not author:
        sized = _by_size(session.connection(), probes)
        probes = [p for p, _ in sized]  # the rarest first: the tests that fail soonest
        if column is None:
            return _page(session, _in_id_order(q, probes, direction)
                         .where(Repo.type.concat("") == repo_type.value, row_test),
                         rest, offset, limit)
        few = _few(session.connection(), sized, offset + limit)
    if few is not None:
        # Sort the few. The type is tested as an expression no index serves: given
        # `type = ?`, SQLite walks the sort's index instead, testing each repo. SQLite reads
        # each of the few by its id whatever the other tests, so it tests the row it read
        # rather than read it again.
        sqlite = session.get_bind().dialect.name == "sqlite"
        q = q.where(Repo.id.in_(few), Repo.type.concat("") == repo_type.value,
                    *(on_row if sqlite else [row_test]))
        if rest or sqlite:  # SQLite has read the rows already: sort them as they are
            return _page(session, q, rest, offset, limit)
        # Sort the ids alone, then read the page's rows: a sort of whole rows (cards and
        # all) costs more than finding them.
        conn = session.connection()
        ids = list(conn.scalars(q.with_only_columns(Repo.id).offset(offset).limit(limit)))
        # Visibility is tested again: on PostgreSQL (read committed) each statement sees
        # the data of its own start, and a repo may have been made private between them.
        rows = {r[0]: r for r in conn.execute(
            select(*columns).where(Repo.id.in_(ids), *_visible_to(actor)))}
        return [tuple(rows[i]) for i in ids if i in rows]
    q = q.where(Repo.type == repo_type.value)
    if indexed or search:
        # Read the sort's index in order, testing the tags and the search's trigrams in their
        # indexes first, and a repo's row only when those hold: most rows are never read.
        q = q.where(*_holds(probes, Repo.__table__.c.id), row_test)
    else:
        q = q.where(*on_row)
    return _page(session, q, rest, offset, limit)


def _in_id_order(q: Select[Any], probes: Sequence[tuple[FromClause, str]],
                 direction: int) -> Select[Any]:
    """`q` (in id order) read from the rows of its rarest probe (the first), which are in
    repo id order for each value, testing the others in their indexes before a repo's row.
    Each candidate costs about as much as a step of the type's id index would, and there
    are fewer of them, by that probe's share of repos."""
    best, others = probes[0], probes[1:]
    drive = _DRIVE[best[0]]
    key = drive.c.repo_id
    return (q.join_from(drive, Repo, Repo.id == key)
            .where(_key(drive) == best[1], *_holds(others, key))
            .order_by(None).order_by(key.desc() if direction < 0 else key.asc()))


def _page(session: Session, q: Select[Any], rest: Sequence[str], offset: int,
          limit: int) -> list[tuple[Any, ...]]:
    """The page of `q`'s rows that also match the filters `rest`, too long for `repo_tags`.

    Those run over the candidates in order. The database first drops the rows whose JSON
    text cannot match; the rest is read in batches, only as far as the page needs."""
    conn = session.connection()  # plain rows: no ORM on the way
    if not rest:
        return [tuple(r) for r in conn.execute(q.offset(offset).limit(limit)).all()]
    for f in rest:
        maybe = _may_match(f)
        if maybe is not None:
            q = q.where(maybe)
    width = len(q.selected_columns)
    out: list[tuple[Any, ...]] = []
    skipped = 0
    result = conn.execute(q.add_columns(Repo.tags, Repo.card_data)
                          .execution_options(yield_per=_FILTER_BATCH))
    try:
        for *row, tags, card in result:
            if all(tag_matches(f, tags or [], card) for f in rest):
                if skipped < offset:
                    skipped += 1
                    continue
                out.append(tuple(row[:width]))
                if len(out) >= limit:
                    break
    finally:
        result.close()
    return out


def _fewest(session: Session, search: Sequence[str], filters: Sequence[str],
            want: int) -> Select[tuple[int]] | None:
    """`_few` for these search terms and filters."""
    probes = _probes(search, filters)
    if not probes:
        return None
    conn = session.connection()
    return _few(conn, _by_size(conn, probes), want)


def _few(conn: Connection, sized: Sequence[tuple[tuple[FromClause, str], int]],
         want: int) -> Select[tuple[int]] | None:
    """The ids of the repos that hold every filter's tag and every search term's trigrams (a
    superset of the page's repos), when sorting those is cheaper than reading the sort's
    index in order until `want` repos match; None when it is not. `sized`: the probes and
    their counts, fewest first (`_by_size`).

    Reading in order costs about want / share rows, where share = matches / repos; sorting
    the matches costs about `matches`. So the matches are sorted when the rarest tag or
    trigram has fewer than sqrt(want * repos) rows. The others are then tested on each of
    those rows, in the index."""
    (best, found), others = sized[0], [p for p, _ in sized[1:]]
    if found > isqrt(want * (conn.scalar(_LAST_ID) or 0)):
        return None
    table, value = best
    # Every other filter, and the rarest other trigram (the search itself is tested on the
    # row): a term's trigrams mostly hold together, so a second one seldom drops enough
    # rows to pay for its tests (at 1M repos, `phi-3-gguf` by downloads: 2 ms of 20 saved
    # without it); and PostgreSQL joins these, its planning time growing with their number.
    others = ([p for p in others if p[0] is _TAGS]
              + [p for p in others if p[0] is _GRAMS][:_GRAMS_JOINED])
    return select(table.c.repo_id).where(
        _key(table) == value,
        *(select(_OTHER[t].c.repo_id).where(_key(_OTHER[t]) == v,
                                            _OTHER[t].c.repo_id == table.c.repo_id).exists()
          for t, v in others))


def _by_size(conn: Connection, probes: Sequence[tuple[FromClause, str]]
             ) -> list[tuple[tuple[FromClause, str], int]]:
    """Each probe with the number of repos that hold it (`repo_tag_counts`,
    `repo_gram_counts`), fewest first; ties in the probes' order."""
    found: dict[tuple[FromClause, str], int] = {}
    for table, counts in _COUNTS.items():
        values = [v for t, v in probes if t is table]
        if values:
            key = _key(counts)
            found.update(((table, v), n) for v, n in conn.execute(
                select(key, counts.c.repos).where(key.in_(values))))
    return sorted(((p, found.get(p, 0)) for p in probes), key=lambda pn: pn[1])


def _key(table: FromClause) -> ColumnElement[str]:
    return table.c.tag if "tag" in table.c else table.c.gram


_GRAMS_PER_TERM = 8
_GRAMS_JOINED = 1
_TAGS, _GRAMS = RepoTag.__table__, RepoGram.__table__
_COUNTS = {_TAGS: RepoTagCount.__table__, _GRAMS: RepoGramCount.__table__}
# Other rows of the same table, for the tests of a row of repo_tags or repo_grams.
_OTHER = {_TAGS: _TAGS.alias("other_tags"), _GRAMS: _GRAMS.alias("other_grams")}
# The rows of the probe a listing in id order is read from (`_in_id_order`).
_DRIVE = {_TAGS: _TAGS.alias("by_tag"), _GRAMS: _GRAMS.alias("by_gram")}
_ROW = Repo.__table__.alias("row")  # a repo's row, for the tests of a row of an index
_LAST_ID = select(func.max(Repo.id))


def _probes(search: Sequence[str], filters: Sequence[str]) -> list[tuple[FromClause, str]]:
    """What a matching repo holds: each filter's row in repo_tags, and the trigrams of each
    search term in repo_grams."""
    out = [(_TAGS, f) for f in dict.fromkeys(filters)]
    for term in search:
        out += [(_GRAMS, g) for g in _term_grams(term.lower())[:_GRAMS_PER_TERM]]
    return list(dict.fromkeys(out))


def _holds(probes: Sequence[tuple[FromClause, str]],
           repo_pk: ColumnElement[int]) -> list[ColumnElement[bool]]:
    """Tests that the repo `repo_pk` names holds each probe's row (in the index: no row of
    repos is read)."""
    return [_each_row(select(_OTHER[t].c.repo_id)
                      .where(_key(_OTHER[t]) == v, _OTHER[t].c.repo_id == repo_pk))
            for t, v in probes]


def _each_row(test: Select[tuple[int]]) -> ColumnElement[bool]:
    """EXISTS `test`, tested on each row in turn. The OFFSET keeps PostgreSQL from making
    it a join: with many of them, planning alone took longer than reading the rows."""
    return test.offset(0).exists()


def _term_grams(term: str) -> list[str]:
    """The trigrams every id matching `LIKE '%term%'` holds: those of the term's runs of
    literal characters (`_` and `%` are LIKE wildcards; PostgreSQL escapes with `\\`)."""
    out: list[str] = []
    for run in re.split(r"[_%\\]", term):
        out += [run[i:i + 3] for i in range(len(run) - 2) if run[i:i + 3] not in out]
    # Grams with a digit or punctuation first: they tend to be the rarer ones.
    return sorted(out, key=lambda g: g.isalpha())


# --- what listings find rare matches by: kept in step with every change of a repo -----

MAX_TAG = 200  # `repo_tags.tag`: longer filters are tested on the card itself


def filter_terms(tags: Sequence[str] | None, card: Mapping[str, Any] | None) -> set[str]:
    """Every `filter=` value that `core.cards.tag_matches` accepts for a repo with these
    index tags and card (as long as `repo_tags` holds): the tags, and `key:value` for each
    value of the card (`library:` stands for `library_name`)."""
    out = {t for t in tags or [] if isinstance(t, str) and t}
    if card:
        for key, value in card.items():
            # "a:b:c" is key "a", value "b:c": a card key with a colon never matches.
            if ":" in key or key == "library":
                continue
            out.update(f"{key}:{v}" for v in as_list(value) if v)
        library = card.get("library_name")
        if isinstance(library, str) and library:
            out.add(f"library:{library}")
    return {t for t in out if len(t) <= MAX_TAG}


def id_grams(namespace: str, name: str) -> set[str]:
    """The trigrams of a repo's id, lowercased, for `search=`."""
    text = f"{namespace}/{name}".lower()
    return {text[i:i + 3] for i in range(len(text) - 2)}


def _old_new(target: Repo, key: str) -> tuple[Any, Any]:
    """An attribute's value before and after the flush (`active_history` loads the old)."""
    history = inspect(target).attrs[key].history
    value = getattr(target, key)
    if not history.has_changes():
        return value, value
    return (history.deleted[0] if history.deleted else None), value


def _sync_listing_rows(connection: Connection, repo_pk: int,
                       old: tuple[set[str], set[str]], new: tuple[set[str], set[str]]) -> None:
    """Replace a repo's `repo_tags` and `repo_grams` rows (old terms, grams) by the new, and
    keep their counts."""
    for table, column, counts, counted, before, after in (
            (RepoTag, RepoTag.tag, RepoTagCount, RepoTagCount.tag, old[0], new[0]),
            (RepoGram, RepoGram.gram, RepoGramCount, RepoGramCount.gram, old[1], new[1])):
        gone, added = sorted(before - after), sorted(after - before)
        if gone:
            connection.execute(delete(table).where(table.repo_id == repo_pk, column.in_(gone)))
            connection.execute(update(counts).where(counted.in_(gone))
                               .values(repos=counts.repos - 1))
            connection.execute(delete(counts).where(counted.in_(gone), counts.repos <= 0))
        if added:
            connection.execute(insert(table), [{column.key: v, "repo_id": repo_pk}
                                               for v in added])
            # One more repo for each value, or a first; as a single statement: no read.
            upsert = (sqlite_insert if connection.dialect.name == "sqlite" else pg_insert)
            connection.execute(
                upsert(counts).on_conflict_do_update(index_elements=[counted],
                                                     set_={"repos": counts.repos + 1}),
                [{counted.key: v, "repos": 1} for v in added])


@event.listens_for(Repo, "after_insert")
def _repo_inserted(_mapper: Any, connection: Connection, target: Repo) -> None:
    _sync_listing_rows(connection, target.id, (set(), set()),
                       (filter_terms(target.tags, target.card_data),
                        id_grams(target.namespace, target.name)))


@event.listens_for(Repo, "after_update")
def _repo_updated(_mapper: Any, connection: Connection, target: Repo) -> None:
    (old_ns, ns), (old_name, name) = _old_new(target, "namespace"), _old_new(target, "name")
    (old_tags, tags), (old_card, card) = _old_new(target, "tags"), _old_new(target, "card_data")
    if (old_ns, old_name, old_tags, old_card) == (ns, name, tags, card):
        return
    _sync_listing_rows(connection, target.id,
                       (filter_terms(old_tags, old_card), id_grams(old_ns, old_name)),
                       (filter_terms(tags, card), id_grams(ns, name)))


@event.listens_for(Repo, "after_delete")
def _repo_deleted(_mapper: Any, connection: Connection, target: Repo) -> None:
    _sync_listing_rows(connection, target.id,
                       (filter_terms(target.tags, target.card_data),
                        id_grams(target.namespace, target.name)), (set(), set()))


_FILTER_BATCH = 100
# Filter values whose JSON encoding is the value itself and that hold no LIKE escape or
# `%` (`_` is a LIKE wildcard, which only widens the test).
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9 _.:/+=@,-]+")


def _may_match(filter_value: str) -> ColumnElement[bool] | None:
    """A test on the stored JSON text that every repo `tag_matches` accepts passes (it may
    pass others, which `tag_matches` then drops); None when the value is not plain.

    A match is the value among the index tags (a JSON string: quoted), or, for
    `key:value`, `str()` of something in the card: quoted when a string, else a number
    or a boolean whose JSON text is the same up to case.
    """
    if _PLAIN_VALUE.fullmatch(filter_value) is None:
        return None
    test = cast(Repo.tags, Text).like(f'%"{filter_value}"%')
    value = filter_value.partition(":")[2]
    if not value:
        return test
    text = value.lower()
    quote = "" if text in ("true", "false", "nan", "inf", "-inf") or _is_number(text) else '"'
    return or_(test, func.lower(cast(Repo.card_data, Text)).like(f"%{quote}{text}{quote}%"))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _scoped_private(actor: Actor) -> list[ColumnElement[bool]]:
    """The private repos a fine-grained token may list: in its scopes and the user's reach."""
    out: list[ColumnElement[bool]] = []
    for scope in actor.scopes or ():
        if not scope.allows(READ_PERMISSION):
            continue
        if scope.type == "repo":
            ns, _, name = scope.name.partition("/")
            if access.namespace_role(actor, ns) is not None:
                out.append(and_(Repo.type == scope.repo_type, Repo.namespace == ns,
                                Repo.name == name))
        elif access.namespace_role(actor, scope.name) is not None:
            out.append(Repo.namespace == scope.name)
    return out


def count_download(hub: Hub, repo_id: int) -> None:
    """One download of the repo with primary key `repo_id`: counted in memory, written
    with the others every few seconds (`hver.core.downloads`), never on the read path."""
    hub.downloads.add(repo_id)


def _visible_to(actor: Actor | None) -> list[ColumnElement[bool]]:
    """The conditions that keep a listing to the repos `actor` may see."""
    if actor is None:
        return [Repo.private.is_(False)]
    if actor.scopes is not None:
        return [or_(Repo.private.is_(False), *_scoped_private(actor))]
    if actor.is_admin:
        return []
    return [or_(Repo.private.is_(False), Repo.namespace.in_([actor.name, *actor.orgs]))]


def own_repos(session: Session, actor: Actor, limit: int = 10) -> list[Repo]:
    """The repos of `actor`'s own namespace and of their orgs (those the actor may see: a
    fine-grained token, only its scopes' private ones), most recently updated first."""
    return list(session.scalars(
        select(Repo).where(Repo.namespace.in_([actor.name, *actor.orgs]), *_visible_to(actor))
        .order_by(Repo.last_modified.desc(), Repo.id.desc()).limit(limit)))
