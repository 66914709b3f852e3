"""The HTML pages. GET only, registered after every API route, and never matching a path
under an API prefix, so they cannot shadow the API.

Everything a template shows is autoescaped; the two exceptions, passed in as `Markup`, are
a card rendered by `core.markdown.render_card` (sanitized HTML) and source highlighted by
Pygments (which escapes the text itself and adds only class-named spans).
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from pygments import highlight as pygments_highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import TextLexer, get_lexer_for_filename
from pygments.util import ClassNotFound
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException

from hver.api.deps import base_url, get_actor, get_hub, load_repo, param
from hver.api.gating import require_file_access
from hver.api.request_id import REQUEST_ID_HEADER
from hver.core import access, safetensors_meta
from hver.core import diff as core_diff
from hver.core import repos as core_repos
from hver.core import tree as core_tree
from hver.core.accounts import Actor
from hver.core.cards import as_list
from hver.core.hub import Hub
from hver.core.markdown import render_card
from hver.core.refs import list_refs
from hver.db.models import Repo
from hver.errors import BadRequest, HverError, NotFound, RepoMoved
from hver.mirror import read_fields
from hver.names import RESERVED_NAMESPACES, RepoType, validate_path
from hver.web import preview as web_preview
from hver.web.session import SignInRequired, csrf_for, login_url

_HERE = Path(__file__).parent
# Paths whose errors stay JSON whatever the client accepts: the API and the file protocols.
API_PREFIXES = ("/api/", "/xet/", "/_lfs/")
PAGE_SIZE = 30
COMMITS_PAGE = 50
MAX_TEXT_BYTES = 512 * 1024
MAX_HIGHLIGHT_BYTES = 256 * 1024  # larger text files are shown plain
MAX_EVAL_ROWS = 200
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
# The web UI's own files, read once: the stylesheet and the drop zone's script.
_STATIC = {name: ((_HERE / "static" / name).read_bytes(), media)
           for name, media in (("hver.css", "text/css"), ("upload.js", "application/javascript"))}


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
    co2_grams: float | None = None
    # The model-index results: (task, dataset, metric, value).
    evals: list[tuple[str, str, str, str]] = field(default_factory=list)


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
        co2_grams=_co2(data.get("co2_eq_emissions")),
        evals=_evals(data.get("model-index")),
    )


def _co2(value: Any) -> float | None:
    """`co2_eq_emissions`: grams, as a number or as {"emissions": grams, ...}."""
    if isinstance(value, dict):
        value = value.get("emissions")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        grams = float(value)
    except OverflowError:  # an int beyond float's range
        return None
    return grams if abs(grams) < float("inf") else None  # NaN fails the test too


def _evals(index: Any) -> list[tuple[str, str, str, str]]:
    """(task, dataset, metric, value) rows of a card's `model-index`; malformed parts skipped."""
    def label(d: Any) -> str:
        if not isinstance(d, dict):
            return ""
        return str(d.get("name") or d.get("type") or "")

    rows: list[tuple[str, str, str, str]] = []
    for model in index if isinstance(index, list) else []:
        results = model.get("results") if isinstance(model, dict) else None
        for result in results if isinstance(results, list) else []:
            if not isinstance(result, dict):
                continue
            metrics = result.get("metrics")
            for metric in metrics if isinstance(metrics, list) else []:
                if isinstance(metric, dict) and metric.get("value") is not None:
                    rows.append((label(result.get("task")), label(result.get("dataset")),
                                 label(metric), str(metric["value"])))
    return rows[:MAX_EVAL_ROWS]


_FORMATTER = HtmlFormatter(nowrap=True)


def highlight(path: str, text: str) -> Markup:
    """`text` as Pygments HTML: its own characters escaped, tokens in class-only spans."""
    html = pygments_highlight(text, _lexer(path, len(text)), _FORMATTER)
    # Pygments leaves quotes as they are; escape them as everywhere else on the page.
    return Markup(html.replace("'", "&#39;"))


def _line_count(text: str) -> int:
    """Lines as Pygments shows them (it reads a lone CR as a line end too)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.count("\n") + (not text.endswith("\n"))


def _lexer(path: str, size: int) -> Lexer:
    if size <= MAX_HIGHLIGHT_BYTES:
        try:
            lexer: Lexer = get_lexer_for_filename(path, stripnl=False)
            return lexer
        except ClassNotFound:
            pass
    return TextLexer(stripnl=False)


def usage(repo_type: RepoType, repo_id: str, endpoint: str) -> list[tuple[str, str]]:
    """The "Use this ..." snippets: (label, code)."""
    flag = "" if repo_type is RepoType.model else f" --repo-type {repo_type.value}"
    cli = f"export HF_ENDPOINT={endpoint}\nhf download {repo_id}{flag}"
    folder = repo_id.rsplit("/", 1)[-1]
    clone = ("git", "git lfs install\n"
             f"git clone {endpoint}/{repo_type.url_prefix}{repo_id}\n"
             f"# to push: a token of yours as the password\n"
             f"cd {folder} && git push")
    if repo_type is RepoType.model:
        lib = ("transformers", "import os\n"
               f'os.environ["HF_ENDPOINT"] = "{endpoint}"\n\n'
               "from transformers import AutoModel\n\n"
               f'model = AutoModel.from_pretrained("{repo_id}")')
        return [lib, ("hf CLI", cli), clone]
    if repo_type is RepoType.dataset:
        lib = ("datasets", "import os\n"
               f'os.environ["HF_ENDPOINT"] = "{endpoint}"\n\n'
               "from datasets import load_dataset\n\n"
               f'ds = load_dataset("{repo_id}")')
        return [lib, ("hf CLI", cli), clone]
    return [("hf CLI", cli), clone]


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


def error_page(status: int, message: str | None = None,
               request: Request | None = None) -> HTMLResponse:
    if status >= 500 or message is None:
        message = {
            404: "This page does not exist, or you do not have access to it.",
            500: "The server could not complete this request. Please try again later.",
        }.get(status, "The request could not be completed.")
    title = _STATUS_TITLES.get(status, "Error")
    common = _common(request) if request is not None else {}
    return render("error.html", status=status, title=title, status_code=status, message=message,
                  **common)


Handler = Callable[[Request, Any], Any]


def install(app: FastAPI) -> None:
    """Add the pages, last, and have browser requests get HTML error pages."""
    app.include_router(router)
    handlers = app.exception_handlers

    def wrap(key: Any, page: Callable[[Request, Any], Response]) -> None:
        original: Handler | None = handlers.get(key)
        if original is None:  # pragma: no cover - api.errors installs all three
            return

        async def handler(request: Request, exc: Any) -> Any:
            response = await original(request, exc)
            if wants_html(request) and not isinstance(exc, RepoMoved):  # a move redirects
                html = page(request, exc)
                if REQUEST_ID_HEADER in response.headers:  # set by the 500 handler
                    html.headers[REQUEST_ID_HEADER] = response.headers[REQUEST_ID_HEADER]
                return html
            return response

        handlers[key] = handler

    def hver_error(request: Request, exc: HverError) -> Response:
        if isinstance(exc, SignInRequired):
            return RedirectResponse(login_url(exc.next_url), status_code=303)
        return error_page(exc.status, exc.message, request)

    wrap(HverError, hver_error)
    wrap(HTTPException, lambda request, exc: error_page(exc.status_code, request=request))
    wrap(Exception, lambda request, exc: error_page(500, request=request))


# --- routes --------------------------------------------------------------------------------

router = APIRouter(include_in_schema=False)


async def _page(request: Request) -> tuple[Hub, Actor | None]:
    request.state.hver_page = True
    return get_hub(request), await get_actor(request)


def _common(request: Request) -> dict[str, Any]:
    """What the layout of every page shows: the search box, and who is signed in."""
    return {"search_query": request.query_params.get("search", ""),
            "me": getattr(request.state, "hver_actor", None), "csrf": csrf_for(request),
            "here": request.url.path}


@router.get("/static/{name}")
async def static_file(name: str) -> Response:
    if name not in _STATIC:
        raise NotFound(f"No static file {name!r}.")
    data, media = _STATIC[name]
    return Response(data, media_type=media, headers={"Cache-Control": "public, max-age=3600"})


@router.get("/")
async def home(request: Request) -> HTMLResponse:
    hub, actor = await _page(request)

    def run() -> dict[str, list[Repo]]:
        with hub.db.read() as session:
            out = {"own": core_repos.own_repos(session, actor) if actor is not None else []}
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
            **(_common(request) | {"search_query": search if repo_type is RepoType.model
                                   else ""}),
        )

    return listing


@dataclass
class _RepoView:
    repo: Repo
    repo_type: RepoType
    revision: str
    commit: str
    url: str
    admin: bool = False  # may the viewer change the repo's settings (the Settings tab)
    mirror: dict[str, Any] | None = None  # a mirrored repo's upstream and last check


def _open(hub: Hub, actor: Actor | None, repo_type: RepoType, ns: str, name: str,
          revision: str) -> tuple[_RepoView, Any]:
    repo = load_repo(hub, actor, repo_type, ns, name)
    git = hub.git.open(repo.storage_key)
    commit = core_tree.resolve_revision(git, revision)
    view = _RepoView(repo, repo_type, revision, commit, repo_url(repo_type, repo.repo_id),
                     admin=access.can_admin(actor, repo),
                     mirror=read_fields(hub, repo) if repo.mirror_upstream else None)
    return view, git


def _repo_page(repo_type: RepoType) -> Any:
    async def repo_page(request: Request, ns: str, name: str) -> HTMLResponse:
        hub, actor = await _page(request)
        endpoint = base_url(request)

        def run() -> dict[str, Any]:
            from hver.web.settings import repo_viewer  # that module builds on this one

            view, git = _open(hub, actor, repo_type, ns, name, core_repos.DEFAULT_BRANCH)
            card_html = None
            try:
                readme = core_tree.get_file(git, view.commit, "README.md")
            except NotFound:
                readme = None
            if readme is not None and readme.lfs is None:
                text = git.blob(readme.oid).decode("utf-8", "replace")
                card_html = Markup(render_card(text))  # sanitized: the one safe HTML
            files = core_tree.list_files(git, view.commit)
            tensors = safetensors_meta.repo_meta(hub, git, view.repo.id, files)
            return {"view": view, "card": card_of(view.repo), "card_html": card_html,
                    "total_size": sum(f.size for f in files), "tensors": tensors,
                    "params": safetensors_meta.format_count(tensors.total) if tensors else None,
                    "usage": usage(repo_type, view.repo.repo_id, endpoint),
                    "data_preview": web_preview.card_preview(hub, actor, view, git, endpoint)
                    if repo_type is RepoType.dataset else None,
                    **repo_viewer(hub, actor, view.repo)}

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
                    "crumbs": _crumbs(path), "refs": _refs(git)}

        context = await run_in_threadpool(run)
        return render("tree.html", tab="files", **context, **_common(request))

    return tree_page


def _refs(git: Any) -> dict[str, Any]:
    """The branches and tags the revision selector offers."""
    refs = list_refs(git, include_prs=False)
    return {"branches": refs["branches"], "tags": refs["tags"]}


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
                    "code": highlight(path, text) if text is not None else None,
                    "line_count": _line_count(text) if text else 0,
                    "image": media in IMAGE_TYPES, "crumbs": _crumbs(path), "refs": _refs(git),
                    "download": f"{view.url}/resolve/{rev_segment(view.revision)}/"
                                f"{path_segments(path)}"}

        context = await run_in_threadpool(run)
        return render("blob.html", tab="files", **context, **_common(request))

    return blob_page


def _commits_page(repo_type: RepoType) -> Any:
    async def commits_page(request: Request, ns: str, name: str, revision: str,
                           path: str = "") -> HTMLResponse:
        hub, actor = await _page(request)
        page = _int_param(request, "p")
        path = param(path).strip("/")
        if path:
            validate_path(path)

        def run() -> dict[str, Any]:
            view, git = _open(hub, actor, repo_type, ns, name, param(revision))
            start = page * COMMITS_PAGE
            scan_limited = path_is_dir = False
            if path:
                path_is_dir = core_tree.get_entry(git, view.commit, path).is_dir
                found = core_diff.path_history(git, view.commit, path, start, COMMITS_PAGE)
                chunk, more, scan_limited = found.commits, found.more, found.scan_limited
            else:
                chunk = list(islice(git.history(view.commit), start, start + COMMITS_PAGE + 1))
                more = len(chunk) > COMMITS_PAGE
            commits = [{"id": c.id, "title": c.title, "author": c.author.split(" <", 1)[0],
                        "date": day(c.timestamp)} for c in chunk[:COMMITS_PAGE]]
            return {"view": view, "commits": commits, "more": more, "path": path,
                    "crumbs": _crumbs(path), "refs": _refs(git), "scan_limited": scan_limited,
                    "scan_max": core_diff.HISTORY_SCAN, "path_is_dir": path_is_dir}

        context = await run_in_threadpool(run)
        base = f"{request.url.path}?p="
        return render("commits.html", tab="commits", page=page,
                      prev_url=f"{base}{page - 1}" if page > 0 else None,
                      next_url=f"{base}{page + 1}" if context.pop("more") else None,
                      **context, **_common(request))

    return commits_page


def _commit_page(repo_type: RepoType) -> Any:
    async def commit_page(request: Request, ns: str, name: str, oid: str) -> HTMLResponse:
        hub, actor = await _page(request)
        site = base_url(request)

        def run() -> dict[str, Any]:
            repo = load_repo(hub, actor, repo_type, ns, name)
            require_file_access(hub, actor, repo, site)  # diffs show file content
            git = hub.git.open(repo.storage_key)
            commit = core_diff.find_commit(git, param(oid))
            view = _RepoView(repo, repo_type, commit.id, commit.id,
                             repo_url(repo_type, repo.repo_id), admin=access.can_admin(actor, repo))
            when = datetime.fromtimestamp(commit.timestamp, UTC)
            return {"view": view, "commit": commit, "diff": core_diff.commit_diff(git, commit),
                    "author": commit.author.split(" <", 1)[0],
                    "body": commit.message.partition("\n")[2].strip("\n"),
                    "when": when, "when_text": when.strftime("%Y-%m-%d %H:%M UTC"),
                    "max_lines": core_diff.MAX_LINES, "max_files": core_diff.MAX_FILES,
                    "max_blob": human_size(core_diff.MAX_BLOB_BYTES)}

        context = await run_in_threadpool(run)
        return render("commit.html", tab="commits", **context, **_common(request))

    return commit_page


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
        _add(f"{base}/commits/{{revision}}/{{path:path}}", _commits_page(t))
        _add(f"{base}/commit/{{oid}}", _commit_page(t))
    viewer = f"/{RepoType.dataset.url_prefix}{{ns:hver_ns}}/{{name}}/viewer"
    _add(viewer, web_preview.viewer_page)
    _add(f"{viewer}/{{config}}/{{split}}", web_preview.viewer_page)


_routes(list(RepoType))
