"""Settings pages: the user's profile and access tokens, a repo's settings (visibility,
gating, access requests, rename, delete), and the like button of repo pages.

Every form goes through `hver.web.session.form_user` (same origin, signed in, CSRF);
the work is done by `hver.core`, which checks who may do it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from hver.api.deps import get_hub, load_repo, param
from hver.core import access, accounts, gating
from hver.core import likes as core_likes
from hver.core import repos as core_repos
from hver.core.accounts import FINE_GRAINED, Actor
from hver.core.hub import Hub
from hver.db.models import AccessRequest, Like, Repo
from hver.errors import BadRequest, HverError, NotFound
from hver.names import RepoType
from hver.web.pages import _common, _RepoView, render, repo_url
from hver.web.session import SignInRequired, form_user, page_actor, require_user
from hver.web.session import field as form_field

router = APIRouter(include_in_schema=False)

TOKEN_ROLES = {"read": "Read", "write": "Write", FINE_GRAINED: "Fine-grained"}
SCOPE_ROWS = 3  # repository rows of the new-token form
PERMISSION_LABELS = {accounts.READ_PERMISSION: "read", accounts.WRITE_PERMISSION: "write"}
GATING = {"off": "Off", "auto": "Automatic approval", "manual": "Manual approval"}


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


# --- profile -------------------------------------------------------------------------------


@router.get("/settings")
async def settings_home() -> Response:
    return RedirectResponse("/settings/tokens", status_code=303)


async def _profile_page(request: Request, me: Actor, *, status: int = 200,
                        error: str | None = None, values: dict[str, str] | None = None,
                        saved: bool = False) -> HTMLResponse:
    hub = get_hub(request)
    if values is None:
        def run() -> dict[str, str]:
            with hub.db.read() as session:
                user = accounts.get_user(session, me.name)
                return {"fullname": user.fullname or "", "email": user.email or ""}

        values = await run_in_threadpool(run)
    return render("profile_settings.html", status=status, values=values, error=error,
                  saved=saved, section="profile", **_common(request))


@router.get("/settings/profile", response_class=HTMLResponse)
async def profile_settings(request: Request) -> HTMLResponse:
    me = await require_user(request)
    return await _profile_page(request, me, saved=request.query_params.get("saved") == "1")


@router.post("/settings/profile", response_class=HTMLResponse)
async def save_profile(request: Request) -> Response:
    me, form = await form_user(request)
    values = {"fullname": form_field(form, "fullname"), "email": form_field(form, "email")}
    hub = get_hub(request)

    def run() -> None:
        with hub.db.write() as session:
            accounts.update_profile(session, me.name, values["fullname"], values["email"],
                                    actor=me)

    try:
        await run_in_threadpool(run)
    except BadRequest as exc:
        return await _profile_page(request, me, status=exc.status, error=exc.message,
                                   values=values)
    return RedirectResponse("/settings/profile?saved=1", status_code=303)


# --- access tokens -------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenRow:
    id: int
    name: str
    role: str
    scopes: list[str]
    created: str
    last_used: str


def _scope_text(scope: dict[str, Any]) -> str:
    perms = ", ".join(PERMISSION_LABELS.get(p, p) for p in scope.get("permissions", []))
    kind = scope.get("repoType", "model") if scope.get("type") == "repo" else scope.get("type")
    return f"{kind} {scope.get('name')}: {perms}"


def _token_row(info: accounts.TokenInfo) -> TokenRow:
    return TokenRow(
        id=info.id, name=info.name, role=TOKEN_ROLES.get(info.role, info.role),
        scopes=[_scope_text(s) for s in info.scopes or []],
        created=info.created_at.strftime("%Y-%m-%d %H:%M UTC"),
        last_used=info.last_used_at.strftime("%Y-%m-%d %H:%M UTC") if info.last_used_at
        else "Never")


async def _tokens_page(request: Request, me: Actor, *, status: int = 200,
                       error: str | None = None, new_token: str | None = None,
                       new_name: str | None = None, values: dict[str, Any] | None = None,
                       ) -> Response:
    hub = get_hub(request)

    def run() -> list[TokenRow]:
        with hub.db.read() as session:
            return [_token_row(t) for t in accounts.list_tokens(session, me.name)]

    tokens = await run_in_threadpool(run)
    values = values or {"name": "", "role": "read", "scopes": []}
    scopes = list(values["scopes"]) + [("", "read")] * (SCOPE_ROWS - len(values["scopes"]))
    response = render("tokens.html", status=status, tokens=tokens, error=error,
                      new_token=new_token, new_name=new_name, values=values, scope_rows=scopes,
                      roles=TOKEN_ROLES, section="tokens", **_common(request))
    # The page may carry a token's secret: never keep it in a cache.
    return _no_store(response)


@router.get("/settings/tokens", response_class=HTMLResponse)
async def tokens(request: Request) -> Response:
    me = access.require_full_token(await require_user(request))
    return await _tokens_page(request, me)


def _scope_rows(form: FormData) -> list[tuple[str, str]]:
    repos = [v for v in form.getlist("scope_repo") if isinstance(v, str)]
    perms = [v for v in form.getlist("scope_permission") if isinstance(v, str)]
    rows = [(r.strip(), p) for r, p in zip(repos, perms, strict=False)]
    return [r for r in rows if r[0]][:20]


@router.post("/settings/tokens", response_class=HTMLResponse)
async def create_token(request: Request) -> Response:
    actor, form = await form_user(request)
    me = access.require_full_token(actor)
    name, role = form_field(form, "name"), form_field(form, "role") or "read"
    rows = _scope_rows(form) if role == FINE_GRAINED else []
    values = {"name": name, "role": role, "scopes": rows}
    hub = get_hub(request)

    def run() -> tuple[accounts.TokenInfo, str]:
        if role not in TOKEN_ROLES:
            raise BadRequest("Choose a role: read, write or fine-grained.")
        scopes = [accounts.parse_scope("repo", f"{repo}:{perm}", me.name)
                  for repo, perm in rows]
        with hub.db.write() as session:
            return accounts.issue_token(session, me.name, role, name, scopes or None, actor=me)

    try:
        info, secret = await run_in_threadpool(run)
    except BadRequest as exc:
        return await _tokens_page(request, me, status=exc.status, error=exc.message,
                                  values=values)
    # Shown in this response only: the secret is not stored, so no later page can show it.
    return await _tokens_page(request, me, new_token=secret, new_name=info.name)


@router.post("/settings/tokens/revoke")
async def revoke_token(request: Request) -> Response:
    actor, form = await form_user(request)
    me = access.require_full_token(actor)
    token_id = form_field(form, "token")
    if not token_id.isdigit():
        raise BadRequest("Choose a token to revoke.")
    hub = get_hub(request)

    def run() -> None:
        with hub.db.write() as session:
            accounts.revoke_token(session, me.name, token_id, actor=me)

    await run_in_threadpool(run)
    return RedirectResponse("/settings/tokens", status_code=303)


# --- what a repo page shows its viewer: the like button and the gate -----------------------


@dataclass(frozen=True)
class GateField:
    label: str
    kind: str  # "text", "checkbox", "select", "date"
    options: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Gate:
    """A gated repo as its viewer sees it: their request's status, and the form to ask."""

    status: str | None  # None: not asked (or a visitor); "pending", "accepted", "rejected"
    fields: list[GateField]


def _gate_fields(repo: Repo) -> list[GateField]:
    out = []
    for label, spec in gating.form_fields(repo).items():
        kind = str(spec.get("type") if isinstance(spec, dict) else spec)
        options: list[str] = []
        if kind == "select" and isinstance(spec, dict):
            raw = spec.get("options") or []
            options = [str(o.get("value", o.get("label", ""))) if isinstance(o, dict) else str(o)
                       for o in raw] if isinstance(raw, list) else []
        kind = {"date_picker": "date"}.get(kind, kind)
        if kind not in ("checkbox", "select", "date"):
            kind = "text"
        out.append(GateField(label, kind, options))
    return out


def repo_viewer(hub: Hub, actor: Actor | None, repo: Repo) -> dict[str, Any]:
    """`liked` (whether the viewer likes the repo) and `gate` (None unless gated)."""
    liked, status = False, None
    if actor is not None:
        with hub.db.read() as session:
            liked = session.get(Like, (actor.id, repo.id)) is not None
            if repo.gated:
                if gating.has_access(session, actor, repo):
                    status = "accepted"
                else:
                    row = session.get(AccessRequest, (repo.id, actor.id))
                    status = row.status if row is not None else None
    gate = Gate(status, _gate_fields(repo)) if repo.gated else None
    return {"liked": liked, "gate": gate}


def _like(repo_type: RepoType) -> Callable[..., Any]:
    async def like(request: Request, ns: str, name: str) -> Response:
        actor, form = await form_user(request)
        want = form_field(form, "liked")
        if want not in ("true", "false"):
            raise BadRequest("'liked' must be true or false.")
        hub = get_hub(request)

        def run() -> str:
            with hub.db.write() as session:
                repo = core_repos.get_repo(session, actor, repo_type, param(ns), param(name))
                core_likes.set_like(session, actor, repo, want == "true")
                return repo_url(repo_type, repo.repo_id)

        return RedirectResponse(await run_in_threadpool(run), status_code=303)

    return like


# --- repo settings -------------------------------------------------------------------------


def _admin_repo(hub: Hub, actor: Actor | None, repo_type: RepoType, ns: str, name: str) -> Repo:
    """The repo, for its admins: missing (404) to those who may not read it, 403 to readers."""
    repo = load_repo(hub, actor, repo_type, ns, name)
    if actor is None:
        raise SignInRequired(repo_url(repo_type, repo.repo_id) + "/settings")
    access.require_admin(actor, repo)
    return repo


def _namespaces(actor: Actor) -> list[str]:
    """Where the actor may move a repo: their own namespace and orgs they write to."""
    return [actor.name, *sorted(o for o, role in actor.orgs.items() if role in ("write", "admin"))]


async def _settings_page(request: Request, repo_type: RepoType, ns: str, name: str, *,
                         status: int = 200, error: str | None = None,
                         confirm: str = "") -> HTMLResponse:
    hub = get_hub(request)
    actor = await page_actor(request)

    def run() -> dict[str, Any]:
        repo = _admin_repo(hub, actor, repo_type, ns, name)
        assert actor is not None
        view = _RepoView(repo, repo_type, core_repos.DEFAULT_BRANCH, "",
                         repo_url(repo_type, repo.repo_id), admin=True)
        requests = {s: gating.list_requests(hub, actor, repo_type, repo.namespace, repo.name, s)
                    for s in gating.STATUSES} if repo.gated else None
        return {"view": view, "requests": requests, "namespaces": _namespaces(actor)}

    context = await run_in_threadpool(run)
    return render("repo_settings.html", status=status, tab="settings", error=error,
                  confirm=confirm, gating_modes=GATING, **context, **_common(request))


def _settings_get(repo_type: RepoType) -> Callable[..., Any]:
    async def settings_page(request: Request, ns: str, name: str) -> HTMLResponse:
        return await _settings_page(request, repo_type, ns, name)

    return settings_page


# An action: (hub, actor, repo, form) -> where to go next (None: back to the settings).
Action = Callable[[Hub, Actor, Repo, FormData], str | None]


def _visibility(hub: Hub, actor: Actor, repo: Repo, form: FormData) -> str | None:
    visibility = form_field(form, "visibility")
    if visibility not in ("public", "private"):
        raise BadRequest("Visibility must be public or private.")
    core_repos.update_settings(hub, actor, RepoType(repo.type), repo.namespace, repo.name,
                               visibility == "private", None)
    return None


def _gating(hub: Hub, actor: Actor, repo: Repo, form: FormData) -> str | None:
    mode = form_field(form, "gated")
    if mode not in GATING:
        raise BadRequest("Gating must be off, auto or manual.")
    core_repos.update_settings(hub, actor, RepoType(repo.type), repo.namespace, repo.name,
                               None, False if mode == "off" else mode)
    return None


def _handle_request(hub: Hub, actor: Actor, repo: Repo, form: FormData) -> str | None:
    user, status = form_field(form, "user"), form_field(form, "status")
    reason = form_field(form, "reason") if status == "rejected" else ""
    if not user:
        raise BadRequest("Choose a request to handle.")
    gating.handle_request(hub, actor, RepoType(repo.type), repo.namespace, repo.name,
                          user=user, rid=None, status=status, reason=reason or None)
    return None


def _grant(hub: Hub, actor: Actor, repo: Repo, form: FormData) -> str | None:
    user = form_field(form, "user")
    if not user:
        raise BadRequest("Enter the username to grant access to.")
    gating.grant_access(hub, actor, RepoType(repo.type), repo.namespace, repo.name, user)
    return None


def _move(hub: Hub, actor: Actor, repo: Repo, form: FormData) -> str | None:
    namespace, name = form_field(form, "namespace"), form_field(form, "name")
    if not namespace or not name:
        raise BadRequest("Choose an owner and a name.")
    repo_type = RepoType(repo.type)
    moved = core_repos.move_repo(hub, actor, repo_type, (repo.namespace, repo.name),
                                 (namespace, name))
    return repo_url(repo_type, moved.repo_id)


def _delete(hub: Hub, actor: Actor, repo: Repo, form: FormData) -> str | None:
    if form_field(form, "confirm") != repo.repo_id:
        raise BadRequest(f"Type {repo.repo_id} exactly to confirm the deletion.")
    core_repos.delete_repo(hub, actor, RepoType(repo.type), repo.namespace, repo.name)
    return f"/{actor.name}"


ACTIONS: dict[str, Action] = {
    "visibility": _visibility, "gating": _gating, "access-requests": _handle_request,
    "grant": _grant, "move": _move, "delete": _delete,
}


def _settings_post(repo_type: RepoType) -> Callable[..., Any]:
    async def settings_action(request: Request, ns: str, name: str, action: str) -> Response:
        act = ACTIONS.get(action)
        if act is None:
            raise NotFound(f"No setting {action!r}.")
        actor, form = await form_user(request)
        hub = get_hub(request)
        repo = await run_in_threadpool(_admin_repo, hub, actor, repo_type, ns, name)
        try:
            target = await run_in_threadpool(act, hub, actor, repo, form)
        except HverError as exc:  # the form's input: shown on the page with the form
            return await _settings_page(
                request, repo_type, ns, name, status=exc.status, error=exc.message,
                confirm=form_field(form, "confirm") if action == "delete" else "")
        return RedirectResponse(target or f"{repo_url(repo_type, repo.repo_id)}/settings",
                                status_code=303)

    return settings_action


def _routes() -> None:
    # Datasets and spaces first: `/datasets/x/settings` is not the model `datasets/x`.
    for t in (RepoType.dataset, RepoType.space, RepoType.model):
        base = f"/{t.url_prefix}{{ns:hver_ns}}/{{name}}"
        router.add_api_route(f"{base}/settings", _settings_get(t), methods=["GET"],
                             response_class=HTMLResponse)
        router.add_api_route(f"{base}/settings/{{action}}", _settings_post(t), methods=["POST"])
        router.add_api_route(f"{base}/like", _like(t), methods=["POST"])


_routes()
