"""Writing from the browser: new repos, file uploads, editing a text file, branches and tags.

Every form goes through `hver.web.session` (same origin, signed in, CSRF). A private
repo stays a 404 for outsiders; a reader gets a 403 page and nothing is written. The
upload form is streamed (`hver.core.web_upload`): its files never sit in memory, and
its CSRF field is checked before any file byte is accepted.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool

from hver.api.deps import base_url, get_hub, param
from hver.api.gating import require_file_access
from hver.core import access, web_upload
from hver.core import refs as core_refs
from hver.core import repos as core_repos
from hver.core import tree as core_tree
from hver.core.accounts import Actor
from hver.core.commits import AddFile, Landed, create_commit
from hver.core.hub import Hub
from hver.db.models import Repo
from hver.errors import (
    BadRequest,
    Conflict,
    EntryNotFound,
    HverError,
    PayloadTooLarge,
    PreconditionFailed,
    RevisionNotFound,
)
from hver.names import RepoType, validate_path
from hver.web.pages import (
    MAX_TEXT_BYTES,
    _common,
    _crumbs,
    _open,
    _RepoView,
    env,
    path_segments,
    render,
    repo_url,
    rev_segment,
)
from hver.web.session import (
    MAX_FORM_FIELD_SIZE,
    MAX_FORM_FIELDS,
    check_csrf,
    check_origin,
    field,
    form_user,
    page_actor,
    require_user,
)

router = APIRouter(include_in_schema=False)
SPACE_SDKS = core_repos.SPACE_SDKS
NEW_PAGES = {RepoType.model: "/new", RepoType.dataset: "/new-dataset",
             RepoType.space: "/new-space"}
# Errors a form shows above itself (re-rendered with their status); others get a page.
_FORM_ERRORS = (BadRequest, Conflict, PayloadTooLarge, RevisionNotFound)


env.globals["may_write"] = access.can_write  # to offer the upload and edit links, or not
env.globals["may_contribute"] = access.can_contribute  # to offer a pull request


async def _writable(request: Request, repo_type: RepoType, ns: str, name: str,
                    revision: str) -> tuple[Hub, Actor, _RepoView, Any]:
    """The signed-in writer's view of a repo at `revision`: visitors are sent to sign
    in, outsiders of a private repo get 404, readers 403."""
    actor = await require_user(request)
    hub = get_hub(request)

    def run() -> tuple[_RepoView, Any]:
        view, git = _open(hub, actor, repo_type, ns, name, revision)
        access.require_write(actor, view.repo)
        return view, git

    view, git = await run_in_threadpool(run)
    return hub, actor, view, git


async def _editable(request: Request, repo_type: RepoType, ns: str, name: str,
                    revision: str) -> tuple[Hub, Actor, _RepoView, Any, bool]:
    """`_writable`, or for those who may only propose changes (`access.require_contribute`,
    and read the repo's files) the same view and False: they commit to a pull request."""
    actor = await require_user(request)
    hub = get_hub(request)
    site = base_url(request)

    def run() -> tuple[_RepoView, Any, bool]:
        view, git = _open(hub, actor, repo_type, ns, name, revision)
        if access.can_write(actor, view.repo):
            return view, git, True
        access.require_contribute(actor, view.repo)
        require_file_access(hub, actor, view.repo, site)
        return view, git, False

    view, git, writer = await run_in_threadpool(run)
    return hub, actor, view, git, writer


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# --- new repo ------------------------------------------------------------------------


def _owners(actor: Actor) -> list[str]:
    orgs = sorted(org for org, role in actor.orgs.items() if role in ("write", "admin"))
    return [actor.name, *orgs]


def _new_repo_page(request: Request, actor: Actor, repo_type: RepoType, values: dict[str, str],
                   error: str | None = None, status: int = 200) -> HTMLResponse:
    return render("new_repo.html", status=status, repo_type=repo_type, owners=_owners(actor),
                  sdks=SPACE_SDKS, values=values, error=error, action=NEW_PAGES[repo_type],
                  **_common(request))


def _new_repo(repo_type: RepoType) -> tuple[Any, Any]:
    async def page(request: Request) -> HTMLResponse:
        actor = await require_user(request)
        values = {"owner": actor.name, "name": "", "visibility": "public", "sdk": SPACE_SDKS[0]}
        return _new_repo_page(request, actor, repo_type, values)

    async def submit(request: Request) -> Response:
        actor, form = await form_user(request)
        values = {k: field(form, k) for k in ("owner", "name", "visibility", "sdk")}
        hub = get_hub(request)

        def run() -> Repo:
            if values["visibility"] not in ("public", "private"):
                raise BadRequest("Choose public or private.")
            if repo_type is RepoType.space and values["sdk"] not in SPACE_SDKS:
                raise BadRequest(f"Choose an SDK: {', '.join(SPACE_SDKS)}.")
            if not values["name"]:
                raise BadRequest("Give the repository a name.")
            sdk = values["sdk"] if repo_type is RepoType.space else None
            try:
                return core_repos.create_repo(hub, actor, repo_type, values["owner"],
                                              values["name"], values["visibility"] == "private",
                                              space_sdk=sdk)
            except Conflict:
                raise Conflict(f"{values['owner']}/{values['name']} already exists.") from None

        try:
            repo = await run_in_threadpool(run)
        except HverError as exc:
            return _new_repo_page(request, actor, repo_type, values, exc.message, exc.status)
        return _see_other(repo_url(repo_type, repo.repo_id))

    return page, submit


for _type, _path in NEW_PAGES.items():
    _get, _post = _new_repo(_type)
    router.add_api_route(_path, _get, methods=["GET"], response_class=HTMLResponse)
    router.add_api_route(_path, _post, methods=["POST"], response_class=HTMLResponse)


# --- upload --------------------------------------------------------------------------


def _upload_page(request: Request, view: _RepoView, folder: str, error: str | None = None,
                 status: int = 200, summary: str = "", description: str = "") -> HTMLResponse:
    action = f"{view.url}/upload/{rev_segment(view.revision)}"
    return render("upload.html", status=status, tab="files", view=view, folder=folder,
                  crumbs=_crumbs(folder), error=error, summary=summary, description=description,
                  action=f"{action}/{path_segments(folder)}" if folder else action,
                  **_common(request))


def _folder(path: str) -> str:
    folder = param(path).strip("/")
    return validate_path(folder) if folder else ""


def _boundary(request: Request) -> bytes:
    ctype, options = parse_options_header(request.headers.get("content-type"))
    boundary = options.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise BadRequest("Files are uploaded as multipart/form-data.", code="InvalidForm")
    return boundary


async def _receive(request: Request, hub: Hub) -> web_upload.FormUpload:
    """Stream the body into staging files; the CSRF field must come before any file."""
    limit = hub.settings.max_web_upload
    declared = request.headers.get("content-length")
    if limit and declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The upload is larger than {limit} bytes.")
    limits = web_upload.FormLimits(hub.settings.max_commit_files, MAX_FORM_FIELDS,
                                   MAX_FORM_FIELD_SIZE)
    form = web_upload.FormUpload(hub.blobs, _boundary(request), limits, "csrf",
                                 lambda token: check_csrf(request, token))
    seen = 0
    try:
        async for chunk in request.stream():
            seen += len(chunk)
            if limit and seen > limit:
                raise PayloadTooLarge(f"The upload is larger than {limit} bytes.")
            if chunk:
                await run_in_threadpool(form.feed, chunk)
        form.finish()
    except BaseException:
        # On a cancelled request `feed` may still be running in its worker thread:
        # `abort` does not wait for it, and it cleans up after itself when done.
        form.abort()
        raise
    return form


def _upload(repo_type: RepoType) -> tuple[Any, Any]:
    async def page(request: Request, ns: str, name: str, revision: str,
                   path: str = "") -> HTMLResponse:
        folder = _folder(path)
        _, _, view, git = await _writable(request, repo_type, ns, name, param(revision))
        # Only a branch can be committed to.
        await run_in_threadpool(core_tree.branch_ref, git, view.revision)
        return _upload_page(request, view, folder)

    async def submit(request: Request, ns: str, name: str, revision: str,
                     path: str = "") -> Response:
        request.state.hver_page = True
        check_origin(request)
        folder = _folder(path)
        hub, actor, view, _ = await _writable(request, repo_type, ns, name, param(revision))
        summary = description = ""
        try:
            form = await _receive(request, hub)
            folder = form.fields.get("path", folder).strip().strip("/")
            summary = form.fields.get("summary", "")
            description = form.fields.get("description", "")
            await run_in_threadpool(
                web_upload.commit_upload, hub, actor, view.repo, view.revision, folder,
                form.files, summary, description)
        except _FORM_ERRORS as exc:
            return _upload_page(request, view, folder, exc.message, exc.status, summary,
                                description)
        target = f"{view.url}/tree/{rev_segment(view.revision)}"
        return _see_other(f"{target}/{path_segments(folder)}" if folder else target)

    return page, submit


# --- edit ----------------------------------------------------------------------------


def _editable_text(git: Any, commit: str, path: str) -> str | None:
    """The file's text, None if it does not exist yet; BadRequest if it is not editable."""
    try:
        info = core_tree.get_entry(git, commit, path)
    except EntryNotFound:
        return None
    if info.is_dir:
        raise BadRequest(f"{path} is a folder: only files can be edited.")
    if info.lfs is not None or info.size > MAX_TEXT_BYTES:
        raise BadRequest(f"{path} is too large or stored with LFS: it cannot be edited here.")
    data: bytes = git.blob(info.oid)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or "\0" in text:
        raise BadRequest(f"{path} is not a text file: it cannot be edited here.")
    return text


def _card_label(repo_type: RepoType) -> str:
    return {RepoType.model: "model card", RepoType.dataset: "dataset card"}.get(
        repo_type, "README")


def _edit_page(request: Request, view: _RepoView, path: str, content: str, parent: str,
               is_new: bool, error: str | None = None, status: int = 200, summary: str = "",
               description: str = "", writer: bool = True) -> HTMLResponse:
    return render("edit.html", status=status, tab="files", view=view, path=path,
                  crumbs=_crumbs(path), content=content, parent=parent, is_new=is_new,
                  error=error, summary=summary, description=description, writer=writer,
                  card_label=_card_label(view.repo_type) if path == "README.md" else None,
                  action=f"{view.url}/edit/{rev_segment(view.revision)}/{path_segments(path)}",
                  **_common(request))


def _edit(repo_type: RepoType) -> tuple[Any, Any]:
    async def page(request: Request, ns: str, name: str, revision: str,
                   path: str) -> HTMLResponse:
        path = validate_path(param(path).strip("/"))
        _, _, view, git, writer = await _editable(request, repo_type, ns, name, param(revision))

        def run() -> str | None:
            core_tree.branch_ref(git, view.revision)  # only a branch can be committed to
            return _editable_text(git, view.commit, path)

        text = await run_in_threadpool(run)
        return _edit_page(request, view, path, text or "", view.commit, text is None,
                          writer=writer)

    async def submit(request: Request, ns: str, name: str, revision: str,
                     path: str) -> Response:
        _, form = await form_user(request)
        path = validate_path(param(path).strip("/"))
        hub, actor, view, git, writer = await _editable(request, repo_type, ns, name,
                                                        param(revision))
        # On a pull request's ref, the commit goes to it (for its author and the writers:
        # `community.pulls.commit_target`); elsewhere a non-writer's opens a pull request.
        on_pr = view.revision.startswith("refs/pr/")
        create_pr = not on_pr and (not writer or field(form, "target") == "pr")
        raw = form.get("content", "")
        if not isinstance(raw, str):
            raise BadRequest("'content' must be a text field.")
        parent, summary, description = (field(form, k) for k in
                                        ("parent", "summary", "description"))

        def run() -> Landed:
            old = _editable_text(git, view.commit, path)
            # Browsers send a textarea's lines ending in CRLF: keep the file's own endings.
            content = raw if old is not None and "\r\n" in old else raw.replace("\r\n", "\n")
            data = content.encode("utf-8")
            if len(data) > MAX_TEXT_BYTES:
                raise PayloadTooLarge(f"The text is over {MAX_TEXT_BYTES} bytes.")
            verb = "Create" if old is None else "Update"
            return create_commit(hub, actor, view.repo, view.revision, [AddFile(path, data)],
                                 summary or f"{verb} {path}", description,
                                 parent_commit=parent or view.commit, create_pr=create_pr)

        try:
            landed = await run_in_threadpool(run)
        except PreconditionFailed:
            return _edit_page(
                request, view, path, raw, view.commit, False, status=409,
                error=f"{path} has changed since you opened it: someone else committed to "
                      f"{view.revision}. Your text is kept below; committing it now replaces "
                      "their version.", summary=summary, description=description,
                writer=writer)
        except _FORM_ERRORS as exc:
            return _edit_page(request, view, path, raw, parent, False, exc.message,
                              exc.status, summary, description, writer)
        if landed.pr_num is not None:
            return _see_other(f"{view.url}/discussions/{landed.pr_num}")
        if path == "README.md" and view.revision == core_repos.DEFAULT_BRANCH:
            return _see_other(view.url)
        return _see_other(f"{view.url}/blob/{rev_segment(view.revision)}/{path_segments(path)}")

    return page, submit


# --- branches and tags -----------------------------------------------------------------


def _refs_page(request: Request, view: _RepoView, git: Any, writer: bool,
               error: str | None = None, status: int = 200,
               values: dict[str, str] | None = None) -> HTMLResponse:
    refs = core_refs.list_refs(git, include_prs=False)
    return render("refs.html", status=status, tab="files", view=view, branches=refs["branches"],
                  tags=refs["tags"], writer=writer, error=error, values=values or {},
                  default_branch=core_repos.DEFAULT_BRANCH, **_common(request))


def _refs(repo_type: RepoType) -> Any:
    async def page(request: Request, ns: str, name: str) -> HTMLResponse:
        actor = await page_actor(request)
        hub = get_hub(request)
        view, git = await run_in_threadpool(_open, hub, actor, repo_type, ns, name,
                                            core_repos.DEFAULT_BRANCH)
        return _refs_page(request, view, git, access.can_write(actor, view.repo))

    def submit(kind: str, delete: bool) -> Any:
        async def handler(request: Request, ns: str, name: str) -> Response:
            _, form = await form_user(request)
            hub, actor, view, git = await _writable(request, repo_type, ns, name,
                                                    core_repos.DEFAULT_BRANCH)
            values = {k: field(form, k) for k in ("name", "revision", "message")}
            target, revision = values["name"], values["revision"] or core_repos.DEFAULT_BRANCH

            def run() -> None:
                if kind == "branch" and delete:
                    core_refs.delete_branch(hub, actor, view.repo, target)
                elif kind == "branch":
                    core_refs.create_branch(hub, actor, view.repo, target, revision)
                elif delete:
                    core_refs.delete_tag(hub, actor, view.repo, target)
                else:
                    core_refs.create_tag(hub, actor, view.repo, revision, target,
                                         values["message"] or None)

            try:
                await run_in_threadpool(run)
            except _FORM_ERRORS as exc:
                return _refs_page(request, view, git, True, exc.message, exc.status,
                                  values | {"kind": kind})
            return _see_other(f"{view.url}/refs")

        return handler

    return page, submit


def _add(path: str, endpoint: Any, method: str) -> None:
    router.add_api_route(path, endpoint, methods=[method], response_class=HTMLResponse)


def _routes() -> None:
    # Datasets and spaces first: `/datasets/x/upload/y` is not the model `datasets/x`.
    for t in (RepoType.dataset, RepoType.space, RepoType.model):
        base = f"/{t.url_prefix}{{ns:hver_ns}}/{{name}}"
        upload_page, upload_submit = _upload(t)
        for suffix in ("/upload/{revision}", "/upload/{revision}/{path:path}"):
            _add(base + suffix, upload_page, "GET")
            _add(base + suffix, upload_submit, "POST")
        edit_page, edit_submit = _edit(t)
        _add(f"{base}/edit/{{revision}}/{{path:path}}", edit_page, "GET")
        _add(f"{base}/edit/{{revision}}/{{path:path}}", edit_submit, "POST")
        refs_page, refs_submit = _refs(t)
        _add(f"{base}/refs", refs_page, "GET")
        for kind in ("branch", "tag"):
            _add(f"{base}/refs/{kind}", refs_submit(kind, False), "POST")
            _add(f"{base}/refs/{kind}/delete", refs_submit(kind, True), "POST")


_routes()
