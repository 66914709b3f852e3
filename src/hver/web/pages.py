"""The HTML pages. GET only, registered after every API route, and never matching a path
under an API prefix, so they cannot shadow the API.

Everything a template shows is autoescaped; the one exception is a card rendered by
`core.markdown.render_card`, which is sanitized HTML and passed in as `Markup`.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException

from hver.api.deps import base_url, get_actor, get_hub, load_repo, param
from hver.api.gating import require_file_access
from hver.core import repos as core_repos
from hver.core import tree as core_tree
from hver.core.accounts import Actor
from hver.core.cards import as_list
from hver.core.hub import Hub
from hver.core.markdown import render_card
from hver.db.models import Repo
from hver.errors import BadRequest, HverError, NotFound
from hver.names import RESERVED_NAMESPACES, RepoType, validate_path

_HERE = Path(__file__).parent
# Paths whose errors stay JSON whatever the client accepts: the API and the file protocols.
API_PREFIXES = ("/api/", "/xet/", "/_lfs/")
PAGE_SIZE = 30
COMMITS_PAGE = 50
MAX_TEXT_BYTES = 512 * 1024
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"})
SORT_LABELS = {
    "lastModified": "Recently updated",
    "createdAt": "Recently created",
    "downloads": "Most downloads",
    "likes": "Most likes",
}
# The Hub's web names for sorts, next to the API's.
SORT_ALIASES = {"modified": "lastModified", "created": "createdAt", "trending": "likes"}
KIND_LABELS = {RepoType.model: "Models", RepoType.dataset: "Datasets", RepoType.space: "Spaces"}


class _Namespace(Convertor[str]):
    """A namespace segment of a page URL: never a reserved first segment (api, models, ...)."""

    _names = "|".join(sorted({*RESERVED_NAMESPACES, "xet"}, key=len, reverse=True))
    regex = rf"(?!(?:{_names})/)[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("hver_ns", _Namespace())

env = Environment(
    loader=FileSystemLoader(_HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_CSS = (_HERE / "static" / "hver.css").read_bytes()


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"  # pragma: no cover


def day(value: datetime | int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        value = datetime.fromtimestamp(value, UTC)
    return value.strftime("%Y-%m-%d")


def repo_url(repo_type: RepoType | str, repo_id: str) -> str:
    return f"/{RepoType(repo_type).url_prefix}{repo_id}"


def rev_segment(revision: str) -> str:
    """A revision as one URL segment: `refs/pr/1` -> `refs%2Fpr%2F1`."""
    return quote(revision, safe="")


def path_segments(path: str) -> str:
    return quote(path, safe="/")


env.filters["size"] = human_size
env.filters["day"] = day
env.filters["rev"] = rev_segment
env.filters["path"] = path_segments
env.globals["repo_url"] = repo_url


def render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = env.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status)


@dataclass
class Card:
    """What the metadata header of a repo page shows."""

    license: list[str]
    languages: list[str]
    tags: list[str]
    base_models: list[str]
    datasets: list[str]
    pipeline_tag: str | None
    library: str | None


def card_of(repo: Repo) -> Card:
    data = repo.card_data or {}
    return Card(
        license=as_list(data.get("license")),
        languages=as_list(data.get("language")),
        tags=as_list(data.get("tags")),
        base_models=as_list(data.get("base_model")),
        datasets=as_list(data.get("datasets")),
        pipeline_tag=repo.pipeline_tag,
        library=repo.library_name,
    )


def usage(repo_type: RepoType, repo_id: str, endpoint: str) -> list[tuple[str, str]]:
    """The "Use this ..." snippets: (label, code)."""
    flag = "" if repo_type is RepoType.model else f" --repo-type {repo_type.value}"
    cli = f"export HF_ENDPOINT={endpoint}\nhf download {repo_id}{flag}"
    if repo_type is RepoType.model:
        lib = ("transformers", "import os\n"
               f'os.environ["HF_ENDPOINT"] = "{endpoint}"\n\n'
               "from transformers import AutoModel\n\n"
               f'model = AutoModel.from_pretrained("{repo_id}")')
        return [lib, ("hf CLI", cli)]
    if repo_type is RepoType.dataset:
        lib = ("datasets", "import os\n"
               f'os.environ["HF_ENDPOINT"] = "{endpoint}"\n\n'
               "from datasets import load_dataset\n\n"
               f'ds = load_dataset("{repo_id}")')
        return [lib, ("hf CLI", cli)]
    return [("hf CLI", cli)]


# --- error pages ---------------------------------------------------------------------------

_STATUS_TITLES = {400: "Bad request", 401: "Sign-in required", 403: "Access denied",
                  404: "Page not found", 405: "Method not allowed", 500: "Something went wrong"}


def wants_html(request: Request) -> bool:
    """A browser's request for a page (not the API, not a file download)."""
    if getattr(request.state, "hver_page", False):
        return True
    path = request.url.path
    if request.method not in ("GET", "HEAD") or path.startswith(API_PREFIXES):
        return False
    if "/resolve/" in path:
        return False
    return "text/html" in request.headers.get("accept", "")


def error_page(status: int, message: str | None = None) -> HTMLResponse:
    if status >= 500 or message is None:
        message = {
            404: "This page does not exist, or you do not have access to it.",
            500: "The server could not complete this request. Please try again later.",
        }.get(status, "The request could not be completed.")
    title = _STATUS_TITLES.get(status, "Error")
    return render("error.html", status=status, title=title, status_code=status, message=message)


Handler = Callable[[Request, Any], Any]


def install(app: FastAPI) -> None:
    """Add the pages, last, and have browser requests get HTML error pages."""
    app.include_router(router)
    handlers = app.exception_handlers

    def wrap(key: Any, page: Callable[[Any], HTMLResponse]) -> None:
        original: Handler | None = handlers.get(key)
        if original is None:  # pragma: no cover - api.errors installs all three
            return

        async def handler(request: Request, exc: Any) -> Any:
            response = await original(request, exc)
            if wants_html(request):
                return page(exc)
            return response

        handlers[key] = handler

    wrap(HverError, lambda exc: error_page(exc.status, exc.message))
    wrap(HTTPException, lambda exc: error_page(exc.status_code))
    wrap(Exception, lambda exc: error_page(500))


# --- routes --------------------------------------------------------------------------------

router = APIRouter(include_in_schema=False)


async def _page(request: Request) -> tuple[Hub, Actor | None]:
    request.state.hver_page = True
    return get_hub(request), await get_actor(request)


def _common(request: Request) -> dict[str, Any]:
    return {"search_query": request.query_params.get("search", "")}


@router.get("/static/hver.css")
async def stylesheet() -> Response:
    return Response(_CSS, media_type="text/css",
                    headers={"Cache-Control": "public, max-age=3600"})


@router.get("/")
async def home(request: Request) -> HTMLResponse:
    hub, actor = await _page(request)

    def run() -> dict[str, list[Repo]]:
        with hub.db.read() as session:
            out = {}
            for t in (RepoType.model, RepoType.dataset):
                for sort in ("lastModified", "downloads"):
                    out[f"{t.value}_{sort}"] = core_repos.list_repos(
                        session, actor, t, sort=sort, limit=6)
            return out

    lists = await run_in_threadpool(run)
    return render("home.html", lists=lists, **_common(request))


def _int_param(request: Request, name: str) -> int:
    raw = request.query_params.get(name, "0") or "0"
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"'{name}' must be a whole number.") from None
    if not 0 <= value <= 100_000:
        raise BadRequest(f"'{name}' is out of range.")
    return value


def _listing_filters(request: Request, repo_type: RepoType) -> tuple[list[str], dict[str, str]]:
    """The tag filters of a listing URL, and the named ones for the form."""
    q = request.query_params
    named = {k: q.get(k, "").strip() for k in ("pipeline_tag", "library", "language", "license")}
    filters: list[str] = [f for f in q.getlist("filter") if f]
    if named["pipeline_tag"]:
        filters.append(named["pipeline_tag"] if repo_type is RepoType.model
                       else f"task_categories:{named['pipeline_tag']}")
    if named["library"]:
        filters.append(named["library"] if repo_type is RepoType.model
                       else f"library:{named['library']}")
    if named["language"]:
        filters.append(f"language:{named['language']}")
    if named["license"]:
        filters.append(f"license:{named['license']}")
    return filters, named


def _listing(repo_type: RepoType) -> Any:
    async def listing(request: Request) -> HTMLResponse:
        hub, actor = await _page(request)
        q = request.query_params
        search = q.get("search", "").strip()
        author = q.get("author", "").strip()
        sort = q.get("sort", "") or "lastModified"
        sort = SORT_ALIASES.get(sort, sort)
        if sort not in SORT_LABELS:
            raise BadRequest(f"Unknown sort; one of {', '.join(SORT_LABELS)}.")
        page = _int_param(request, "p")
        filters, named = _listing_filters(request, repo_type)

        def run() -> list[Repo]:
            with hub.db.read() as session:
                return core_repos.list_repos(
                    session, actor, repo_type, search=[search] if search else [],
                    author=author or None, filters=filters, sort=sort,
                    offset=page * PAGE_SIZE, limit=PAGE_SIZE + 1)

        repos = await run_in_threadpool(run)
        state = [(k, v) for k, v in q.multi_items() if k != "p" and v]

        def page_url(n: int) -> str:
            return f"{request.url.path}?{urlencode([*state, ('p', str(n))])}"

        return render(
            "listing.html", repo_type=repo_type, kind=KIND_LABELS[repo_type],
            repos=repos[:PAGE_SIZE], page=page,
            prev_url=page_url(page - 1) if page > 0 else None,
            next_url=page_url(page + 1) if len(repos) > PAGE_SIZE else None,
            search=search, author=author, sort=sort, sorts=SORT_LABELS, named=named,
            extra_filters=[f for f in q.getlist("filter") if f],
            search_query=search if repo_type is RepoType.model else "",
        )

    return listing


@dataclass
class _RepoView:
    repo: Repo
    repo_type: RepoType
    revision: str
    commit: str
    url: str


def _open(hub: Hub, actor: Actor | None, repo_type: RepoType, ns: str, name: str,
          revision: str) -> tuple[_RepoView, Any]:
    repo = load_repo(hub, actor, repo_type, ns, name)
    git = hub.git.open(repo.storage_key)
    commit = core_tree.resolve_revision(git, revision)
    view = _RepoView(repo, repo_type, revision, commit, repo_url(repo_type, repo.repo_id))
    return view, git


def _repo_page(repo_type: RepoType) -> Any:
    async def repo_page(request: Request, ns: str, name: str) -> HTMLResponse:
        hub, actor = await _page(request)
        endpoint = base_url(request)

        def run() -> dict[str, Any]:
            view, git = _open(hub, actor, repo_type, ns, name, core_repos.DEFAULT_BRANCH)
            card_html = None
            try:
                readme = core_tree.get_file(git, view.commit, "README.md")
            except NotFound:
                readme = None
            if readme is not None and readme.lfs is None:
                text = git.blob(readme.oid).decode("utf-8", "replace")
                card_html = Markup(render_card(text))  # sanitized: the one safe HTML
            return {"view": view, "card": card_of(view.repo), "card_html": card_html,
                    "usage": usage(repo_type, view.repo.repo_id, endpoint)}

        context = await run_in_threadpool(run)
        return render("repo.html", tab="card", **context, **_common(request))

    return repo_page


def _tree_page(repo_type: RepoType) -> Any:
    async def tree_page(request: Request, ns: str, name: str, revision: str,
                        path: str = "") -> HTMLResponse:
        hub, actor = await _page(request)
        path = param(path).strip("/")
        if path:
            validate_path(path)

        def run() -> dict[str, Any]:
            view, git = _open(hub, actor, repo_type, ns, name, param(revision))
            entries = list(core_tree.list_tree(git, view.commit, path, False))
            if len(entries) == 1 and not entries[0].is_dir and entries[0].path == path:
                raise NotFound(f"{path} is a file, not a folder.")
            entries.sort(key=lambda f: (not f.is_dir, f.path.lower()))
            return {"view": view, "entries": entries, "path": path,
                    "crumbs": _crumbs(path)}

        context = await run_in_threadpool(run)
        return render("tree.html", tab="files", **context, **_common(request))

    return tree_page


def _crumbs(path: str) -> list[tuple[str, str]]:
    parts = path.split("/") if path else []
    return [(p, "/".join(parts[: i + 1])) for i, p in enumerate(parts)]


def _blob_page(repo_type: RepoType) -> Any:
    async def blob_page(request: Request, ns: str, name: str, revision: str,
                        path: str) -> HTMLResponse:
        hub, actor = await _page(request)
        path = param(path).strip("/")
        validate_path(path)
        site = base_url(request)

        def run() -> dict[str, Any]:
            view, git = _open(hub, actor, repo_type, ns, name, param(revision))
            require_file_access(hub, actor, view.repo, site, path)
            info = core_tree.get_file(git, view.commit, path)
            media = mimetypes.guess_type(path)[0] or ""
            text: str | None = None
            if info.lfs is None and info.size <= MAX_TEXT_BYTES and media not in IMAGE_TYPES:
                data = git.blob(info.oid)
                if b"\0" not in data:
                    try:
                        text = data.decode("utf-8")
                    except UnicodeDecodeError:
                        text = None
            return {"view": view, "info": info, "path": path, "text": text,
                    "image": media in IMAGE_TYPES, "crumbs": _crumbs(path),
                    "download": f"{view.url}/resolve/{rev_segment(view.revision)}/"
                                f"{path_segments(path)}"}

        context = await run_in_threadpool(run)
        return render("blob.html", tab="files", **context, **_common(request))

    return blob_page


def _commits_page(repo_type: RepoType) -> Any:
    async def commits_page(request: Request, ns: str, name: str, revision: str) -> HTMLResponse:
        hub, actor = await _page(request)
        page = _int_param(request, "p")

        def run() -> dict[str, Any]:
            view, git = _open(hub, actor, repo_type, ns, name, param(revision))
            start = page * COMMITS_PAGE
            chunk = list(islice(git.history(view.commit), start, start + COMMITS_PAGE + 1))
            commits = [{"id": c.id, "title": c.title, "author": c.author.split(" <", 1)[0],
                        "date": day(c.timestamp)} for c in chunk[:COMMITS_PAGE]]
            return {"view": view, "commits": commits, "more": len(chunk) > COMMITS_PAGE}

        context = await run_in_threadpool(run)
        base = f"{request.url.path}?p="
        return render("commits.html", tab="commits", page=page,
                      prev_url=f"{base}{page - 1}" if page > 0 else None,
                      next_url=f"{base}{page + 1}" if context.pop("more") else None,
                      **context, **_common(request))

    return commits_page


def _add(path: str, endpoint: Any) -> None:
    router.add_api_route(path, endpoint, methods=["GET"], response_class=HTMLResponse)


def _routes(types: Sequence[RepoType]) -> None:
    for t in types:
        _add(f"/{t.plural}", _listing(t))
    # Datasets and spaces first: `/datasets/x/tree/y` is not the model `datasets/x`.
    for t in (RepoType.dataset, RepoType.space, RepoType.model):
        ns = "{ns:hver_ns}"
        base = f"/{t.url_prefix}{ns}/{{name}}"
        _add(base, _repo_page(t))
        _add(f"{base}/tree/{{revision}}", _tree_page(t))
        _add(f"{base}/tree/{{revision}}/{{path:path}}", _tree_page(t))
        _add(f"{base}/blob/{{revision}}/{{path:path}}", _blob_page(t))
        _add(f"{base}/commits/{{revision}}", _commits_page(t))


_routes(list(RepoType))
