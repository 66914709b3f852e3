"""Gated repos: asking for access, and the repo admins' `user-access-request` routes."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from hver.api.deps import (
    SESSION_COOKIE,
    ActorDep,
    HubDep,
    get_actor,
    param,
    repo_type_from_plural,
)
from hver.api.util import iso, parse_json
from hver.core import gating
from hver.core.accounts import Actor
from hver.core.hub import Hub
from hver.db.models import Repo
from hver.errors import BadRequest
from hver.names import RepoType

router = APIRouter()
MAX_FORM_BYTES = 64 * 1024


def require_file_access(hub: Hub, actor: Actor | None, repo: Repo, site: str,
                        path: str | None = None) -> None:
    """GatedRepo unless the actor may read file content of `repo`; `site` is `base_url`."""
    page = f"{site}/{RepoType(repo.type).url_prefix}{repo.repo_id}"
    gating.require_file_access(hub, actor, repo, page, path)


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class HandleBody(_Body):
    user: str | None = None
    requestId: str | None = None
    status: str
    rejectionReason: str | None = None


class GrantBody(_Body):
    user: str


async def _form(request: Request) -> dict[str, Any]:
    """The gate form's answers: a JSON object or an urlencoded form (a `fields` key of
    either may hold them, as an object or a JSON string)."""
    body = b""
    async for piece in request.stream():
        body += piece
        if len(body) > MAX_FORM_BYTES:  # refused before the rest is read
            raise BadRequest("The access request form is too large.", status=413,
                             code="PayloadTooLarge")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    data: Any
    if not body.strip():
        data = {}
    elif ctype == "application/x-www-form-urlencoded":
        data = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    else:
        data = parse_json(body, "Send the form as JSON or application/x-www-form-urlencoded.")
    if not isinstance(data, dict):
        raise BadRequest("The access request form must be an object.")
    fields = data.get("fields")
    if isinstance(fields, str):
        fields = parse_json(fields, "'fields' must be a JSON object.")
    out: dict[str, Any] = {str(k): v for k, v in data.items() if k != "fields"}
    if isinstance(fields, dict):
        out |= {str(k): v for k, v in fields.items()}
    return out


async def _ask(request: Request, repo_type: RepoType, ns: str, name: str, hub: Hub,
               actor: Actor | None) -> Any:
    submitted = await _form(request)
    status = await run_in_threadpool(gating.ask_access, hub, actor, repo_type, param(ns),
                                     param(name), submitted)
    return {"status": status}


@router.post("/api/{plural}/{ns}/{name}/ask-access")
async def ask_access(request: Request, plural: str, ns: str, name: str, hub: HubDep,
                     actor: ActorDep) -> Any:
    return await _ask(request, repo_type_from_plural(plural), ns, name, hub, actor)


def _web_ask(repo_type: RepoType) -> Any:
    async def ask(request: Request, ns: str, name: str, hub: HubDep) -> Any:
        # Imported here: the web package imports this module.
        from hver.web.session import SignInRequired, check_csrf, check_origin

        page = f"/{repo_type.url_prefix}{param(ns)}/{param(name)}"
        # A signed-in browser sends the repo page's form with its session cookie (and the
        # page's CSRF token) and is sent back to the page; API clients get JSON.
        browser = "authorization" not in request.headers and SESSION_COOKIE in request.cookies
        if browser:
            request.state.hver_page = True
            check_origin(request)
        actor = await get_actor(request)
        if not browser:
            return await _ask(request, repo_type, ns, name, hub, actor)
        if actor is None:  # the session ended
            raise SignInRequired(page)
        submitted = await _form(request)
        csrf = submitted.pop("csrf", None)
        check_csrf(request, csrf if isinstance(csrf, str) else None)
        await run_in_threadpool(gating.ask_access, hub, actor, repo_type, param(ns),
                                param(name), submitted)
        return RedirectResponse(page, status_code=303)

    return ask


for _t in RepoType:  # the Hub's web form posts here
    router.add_api_route(f"/{_t.url_prefix}{{ns}}/{{name}}/ask-access", _web_ask(_t),
                         methods=["POST"])


def _view(r: gating.RequestView) -> dict[str, Any]:
    out: dict[str, Any] = {
        "requestId": r.request_id,
        "status": r.status,
        "timestamp": iso(r.timestamp),
        "user": {"user": r.username, "fullname": r.fullname, "email": r.email,
                 "type": "user"},
    }
    if r.fields:
        out["fields"] = r.fields
    return out


@router.get("/api/{plural}/{ns}/{name}/user-access-request/{status}")
async def list_requests(plural: str, ns: str, name: str, status: str, hub: HubDep,
                        actor: ActorDep) -> Any:
    views = await run_in_threadpool(gating.list_requests, hub, actor,
                                    repo_type_from_plural(plural), param(ns), param(name),
                                    status)
    return [_view(v) for v in views]


@router.post("/api/{plural}/{ns}/{name}/user-access-request/handle")
async def handle_request(plural: str, ns: str, name: str, body: HandleBody, hub: HubDep,
                         actor: ActorDep) -> Any:
    await run_in_threadpool(
        lambda: gating.handle_request(
            hub, actor, repo_type_from_plural(plural), param(ns), param(name),
            user=body.user, rid=body.requestId, status=body.status,
            reason=body.rejectionReason))
    return {"status": body.status}


@router.post("/api/{plural}/{ns}/{name}/user-access-request/grant")
async def grant_access(plural: str, ns: str, name: str, body: GrantBody, hub: HubDep,
                       actor: ActorDep) -> Any:
    await run_in_threadpool(gating.grant_access, hub, actor, repo_type_from_plural(plural),
                            param(ns), param(name), body.user)
    return {"user": body.user, "status": "accepted"}
