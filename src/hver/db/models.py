"""SQLAlchemy tables. The schema itself is created by the Alembic migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


# Ids that name something are never reused: a deleted token's, repo's or account's id must
# never come to name a new one (signed grants, audit entries and clients keep old ids).
# PostgreSQL's sequences never go back; SQLite needs AUTOINCREMENT for that.
NEVER_REUSE_IDS: dict[str, Any] = {"sqlite_autoincrement": True}


class Account(Base):
    """A user or an organization: both live in one namespace."""

    __tablename__ = "accounts"
    __table_args__ = NEVER_REUSE_IDS
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(96), unique=True)
    kind: Mapped[str] = mapped_column(String(8))  # "user" | "org"
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    fullname: Mapped[str | None] = mapped_column(String(200), nullable=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # A namespace the mirror made for an upstream hub's namespace (`hver.mirror`): an org
    # with no members, holding only mirrored repos. None: a local account.
    mirror_upstream: Mapped[str | None] = mapped_column(String(300), nullable=True)


class Membership(Base):
    __tablename__ = "memberships"
    org_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(16))  # "read" | "write" | "admin"


class Token(Base):
    """An API token; only the sha256 of its secret is kept."""

    __tablename__ = "tokens"
    __table_args__ = NEVER_REUSE_IDS
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))  # "read" | "write" | "fineGrained"
    # Fine-grained tokens: [{"type": "repo"|"org", "name": ..., "permissions": [...]}]
    scopes: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Repo(Base):
    """The index entry of a repo. Its content lives in the git repository `storage_key`."""

    __tablename__ = "repos"
    __table_args__ = (
        # One per listing sort: the rows of a type in the sort's order, ties by id (as
        # `core.repos.list_repos` orders them), so a page reads only its rows. Descending
        # listings read them backwards; ascending ones tie by id descending, which the
        # `_asc` indexes hold where ties are many (most repos have no downloads or likes).
        Index("ix_repos_type_id", "type", "id"),
        Index("ix_repos_type_name", "type", "name", "id"),
        Index("ix_repos_type_last_modified", "type", "last_modified", "id"),
        Index("ix_repos_type_created_at", "type", "created_at", "id"),
        Index("ix_repos_type_downloads", "type", "downloads", "id"),
        Index("ix_repos_type_likes", "type", "likes", "id"),
        NEVER_REUSE_IDS,
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    type: Mapped[str] = mapped_column(String(8))
    # Old values of what `repo_tags` and `repo_grams` are derived from are loaded before a
    # change, so the rows derived from them can be found and replaced (`core.repos`).
    namespace: Mapped[str] = mapped_column(String(96), index=True, active_history=True)
    name: Mapped[str] = mapped_column(String(96), active_history=True)
    storage_key: Mapped[str] = mapped_column(String(64), unique=True)
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    gated: Mapped[str | None] = mapped_column(String(8), nullable=True)  # None|"auto"|"manual"
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_modified: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    sha: Mapped[str | None] = mapped_column(String(40), nullable=True)
    card_data: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True,
                                                            active_history=True)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list, active_history=True)
    pipeline_tag: Mapped[str | None] = mapped_column(String(64), nullable=True)
    library_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    downloads: Mapped[int] = mapped_column(Integer, default=0)
    likes: Mapped[int] = mapped_column(Integer, default=0)
    # A mirror of a repo of an upstream hub (`hver.mirror`): the hub's URL and the repo's
    # id there. Its refs follow the upstream's; nothing local writes to its content.
    mirror_upstream: Mapped[str | None] = mapped_column(String(300), nullable=True)
    mirror_id: Mapped[str | None] = mapped_column(String(200), nullable=True)

    @property
    def repo_id(self) -> str:
        return f"{self.namespace}/{self.name}"


# Repo ids are unique whatever their case, as on the Hub (`alice/Model` is `alice/model`);
# `core.repos.find_repo` looks them up through this index.
Index("uq_repos_type_lower_namespace_name", Repo.type, func.lower(Repo.namespace),
      func.lower(Repo.name), unique=True)
Index("ix_repos_type_asc_downloads", Repo.type, Repo.downloads, Repo.id.desc())
Index("ix_repos_type_asc_likes", Repo.type, Repo.likes, Repo.id.desc())
# An author's listing (`author=`, any case) in each sort's order; by name, the author's
# rows are few enough to sort.
for _sort in ("id", "last_modified", "created_at", "downloads", "likes"):
    Index(f"ix_repos_type_author_{_sort}", Repo.type, func.lower(Repo.namespace),
          getattr(Repo, _sort), *([] if _sort == "id" else [Repo.id]))
# Account names are unique whatever their case too (`core.accounts._new_account` checks);
# namespaces are looked up through this index, as repo ids are.
Index("ix_accounts_lower_name", func.lower(Account.name))


# Listings at scale (`core.repos.list_repos`): what a filter or a search can match, one row
# per repo and value, so a rare match is found without reading every repo. No foreign key:
# a repo's rows go with it by their values (`core.repos`), and ids are never reused, so a
# row left behind could only name no repo; an index on repo_id for a cascade would cost as
# much as the table.
WITHOUT_ROWID: dict[str, Any] = {"sqlite_with_rowid": False}


class RepoTag(Base):
    """A `filter=` value that matches the repo (`core.cards.tag_matches`): its index tags,
    and `key:value` for the values of its card."""

    __tablename__ = "repo_tags"
    __table_args__ = WITHOUT_ROWID
    tag: Mapped[str] = mapped_column(String(200), primary_key=True)
    repo_id: Mapped[int] = mapped_column(Integer, primary_key=True)


class RepoGram(Base):
    """A trigram of the repo's id, lowercased: `search=` looks for a substring of the id."""

    __tablename__ = "repo_grams"
    __table_args__ = WITHOUT_ROWID
    gram: Mapped[str] = mapped_column(String(3), primary_key=True)
    repo_id: Mapped[int] = mapped_column(Integer, primary_key=True)


# How many repos hold each value of `repo_tags` and `repo_grams`: a listing picks its plan by
# them (`core.repos`), with one lookup instead of counting rows. Kept in step with those
# tables by the same writes; a count that drifted would only make a plan slower.
class RepoTagCount(Base):
    __tablename__ = "repo_tag_counts"
    __table_args__ = WITHOUT_ROWID
    tag: Mapped[str] = mapped_column(String(200), primary_key=True)
    repos: Mapped[int] = mapped_column(Integer)


class RepoGramCount(Base):
    __tablename__ = "repo_gram_counts"
    __table_args__ = WITHOUT_ROWID
    gram: Mapped[str] = mapped_column(String(3), primary_key=True)
    repos: Mapped[int] = mapped_column(Integer)


class RepoRedirect(Base):
    """An id a repo was moved away from. Requests naming it are sent on to the repo (as
    on the Hub) until a repo takes the id again; the repo's deletion removes it."""

    __tablename__ = "repo_redirects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    type: Mapped[str] = mapped_column(String(8))
    namespace: Mapped[str] = mapped_column(String(96))
    name: Mapped[str] = mapped_column(String(96))
    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


# One redirect per id, whatever its case, as repo ids.
Index("uq_repo_redirects_type_lower_namespace_name", RepoRedirect.type,
      func.lower(RepoRedirect.namespace), func.lower(RepoRedirect.name), unique=True)


class LfsObject(Base):
    """A large file a repo may reference, by sha256: uploaded to it through LFS (a blob
    whose sha256 was checked) or through Xet (`xet_hash`, the file its writer uploaded
    under that sha256)."""

    __tablename__ = "lfs_objects"
    repo_id: Mapped[int] = mapped_column(
        ForeignKey("repos.id", ondelete="CASCADE"), primary_key=True
    )
    oid: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    xet_hash: Mapped[str | None] = mapped_column(
        ForeignKey("xet_files.file_hash"), nullable=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class XetXorb(Base):
    """A stored xorb: its bytes live in the blob store; `chunk_index` locates each chunk."""

    __tablename__ = "xet_xorbs"
    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)  # stored bytes
    unpacked_size: Mapped[int] = mapped_column(BigInteger)
    num_chunks: Mapped[int] = mapped_column(Integer)
    chunk_index: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class XetXorbUpload(Base):
    """Who has sent a xorb's bytes: they hold its content and may reference it."""

    __tablename__ = "xet_xorb_uploads"
    xorb_hash: Mapped[str] = mapped_column(
        ForeignKey("xet_xorbs.hash", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )


class XetFile(Base):
    """A file stored as Xet chunks, by its file hash: the terms that rebuild it."""

    __tablename__ = "xet_files"
    file_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    terms: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class XetFileXorb(Base):
    """Which xorbs a file's terms name: for access checks, dedup answers and stats."""

    __tablename__ = "xet_file_xorbs"
    file_hash: Mapped[str] = mapped_column(
        ForeignKey("xet_files.file_hash", ondelete="CASCADE"), primary_key=True
    )
    xorb_hash: Mapped[str] = mapped_column(
        ForeignKey("xet_xorbs.hash"), primary_key=True, index=True
    )
    # The chunk ranges of the xorb that the file's terms use, merged ([start, end) pairs
    # of little-endian u32): what a reader of the file may reference in new shards.
    ranges: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class XetChunk(Base):
    """The global-dedup index: chunks a client may ask about, and xorbs holding each (several:
    an answer names one the asker may reference)."""

    __tablename__ = "xet_dedup_chunks"
    chunk_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    xorb_hash: Mapped[str] = mapped_column(ForeignKey("xet_xorbs.hash"), primary_key=True)


class AccessRequest(Base):
    """A user's request for the files of a gated repo, and its fate."""

    __tablename__ = "access_requests"
    repo_id: Mapped[int] = mapped_column(
        ForeignKey("repos.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(16))  # "pending" | "accepted" | "rejected"
    fields: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AuditEvent(Base):
    """A security-relevant event: who did what to which account, token or repo."""

    __tablename__ = "audit_events"
    __table_args__ = NEVER_REUSE_IDS
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    actor: Mapped[str | None] = mapped_column(String(96), nullable=True)
    event: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str | None] = mapped_column(String(300), nullable=True)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class Like(Base):
    """A user's like of a repo (`Repo.likes` counts them)."""

    __tablename__ = "likes"
    user_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    repo_id: Mapped[int] = mapped_column(
        ForeignKey("repos.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class WebSession(Base):
    """A browser's signed-in session; only the sha256 of the cookie's secret is kept."""

    __tablename__ = "web_sessions"
    __table_args__ = NEVER_REUSE_IDS
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class Discussion(Base):
    """A numbered thread of a repo: a discussion, or a pull request (`is_pr`), whose commits
    live on the git ref `refs/pr/{num}`. Numbers are per repo and never reused."""

    __tablename__ = "discussions"
    __table_args__ = (
        Index("uq_discussions_repo_num", "repo_id", "num", unique=True),
        NEVER_REUSE_IDS,
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"))
    num: Mapped[int] = mapped_column(Integer)
    is_pr: Mapped[bool] = mapped_column(Boolean, default=False)
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(8))  # open | closed | merged | draft
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), nullable=True)
    target_branch: Mapped[str | None] = mapped_column(String(300), nullable=True)
    merge_commit: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class DiscussionEvent(Base):
    """One event of a thread: a comment, a status or title change, or a commit pushed to
    a pull request. `data` holds what the type needs (comments keep every version)."""

    __tablename__ = "discussion_events"
    __table_args__ = NEVER_REUSE_IDS
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True)
    discussion_id: Mapped[int] = mapped_column(
        ForeignKey("discussions.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(16))  # comment|status-change|title-change|commit
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class ContributedObject(Base):
    """A large file a contributor (who may not write the repo) uploaded to it for a pull
    request: proven theirs, but held by the repo (`LfsObject`) only once a commit of
    theirs names it. Until then it is served to nobody, and no other account may name it."""

    __tablename__ = "contributed_objects"
    repo_id: Mapped[int] = mapped_column(
        ForeignKey("repos.id", ondelete="CASCADE"), primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    oid: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    xet_hash: Mapped[str | None] = mapped_column(
        ForeignKey("xet_files.file_hash"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class RateBucket(Base):
    """A rate-limit bucket every worker and server shares (`hver.core.rate_limits`): what
    is left of a minute's budget (`tokens`, below zero when overspent) at `stamp`
    (seconds since the epoch). Keyed by limiter and a keyed hash of the credential or
    address, never the credential. A row idle for two windows is full, and swept."""

    __tablename__ = "rate_buckets"
    key: Mapped[bytes] = mapped_column(LargeBinary(48), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    stamp: Mapped[float] = mapped_column(Float, index=True)


class SignInFailure(Base):
    """Failed password sign-ins of one account name (a keyed hash of it), shared by every
    worker and server (`hver.core.login_throttle`). Times are seconds since the epoch."""

    __tablename__ = "sign_in_failures"
    key: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    pending: Mapped[int] = mapped_column(Integer, default=0)
    pending_since: Mapped[float] = mapped_column(Float, default=0.0)
    locked_until: Mapped[float] = mapped_column(Float, default=0.0)
    last: Mapped[float] = mapped_column(Float, index=True)


class MirrorRepo(Base):
    """What the mirror knows of a mirrored repo (`hver.mirror.refs`). Times are seconds
    since the epoch. `checked_at`: the last time upstream answered for it;
    `checking_until`: a server checks it now (a lease), or, after a failure, when the next
    try may start."""

    __tablename__ = "mirror_repos"
    repo_id: Mapped[int] = mapped_column(
        ForeignKey("repos.id", ondelete="CASCADE"), primary_key=True)
    checked_at: Mapped[float] = mapped_column(Float, default=0.0)
    changed_at: Mapped[float] = mapped_column(Float, default=0.0)
    checking_until: Mapped[float] = mapped_column(Float, default=0.0)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # `hver mirror add`: a revision whose files (those `include` globs match and
    # `exclude` ones do not; None: all) are kept fetched, by `hver mirror sync` too.
    pinned: Mapped[str | None] = mapped_column(String(255), nullable=True)
    include: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    exclude: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    fetched_files: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    fetched_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Reads of large files it held (`hver.mirror.cache`: gathered in memory, written in
    # batches); the misses are `fetched_files`.
    hits: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class MirrorObject(Base):
    """When a large file a mirrored repo holds was last read, for the quota's
    least-recently-used eviction (`hver.mirror.cache`): written when it is brought in
    and by the batched flush of reads; seconds since the epoch. A row whose file the
    repo no longer holds means nothing (`lfs_objects` says what is held)."""

    __tablename__ = "mirror_objects"
    repo_id: Mapped[int] = mapped_column(
        ForeignKey("repos.id", ondelete="CASCADE"), primary_key=True)
    oid: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    last_access: Mapped[float] = mapped_column(Float, index=True)
