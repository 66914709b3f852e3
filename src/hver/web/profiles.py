"""Profile pages of users and organizations (`/{name}`), and an organization's settings
page for its admins (`/organizations/{org}/settings/members`): its members and full name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from hver.api.deps import get_hub, param
from hver.core import access
from hver.core import likes as core_likes
from hver.core import orgs as core_orgs
from hver.core import repos as core_repos
from hver.core.accounts import ORG_ROLES, WRITE_PERMISSION, Actor, get_account, get_org
from hver.core.hub import Hub
from hver.db.models import Account, Repo
from hver.errors import BadRequest, Forbidden, HverError, NotFound
from hver.names import RepoType
from hver.web.pages import KIND_LABELS, _common, render
from hver.web.session import field, form_user, page_actor, require_user

router = APIRouter(include_in_schema=False)
PROFILE_REPOS = 100  # per kind; the listing pages have the rest


@dataclass(frozen=True)
class Section:
    """One list of repos on a profile page."""

    title: str
    repos: list[Repo]
    more_url: str | None  # the full listing, when this one is cut short


def is_org_admin(actor: Actor | None, org: str) -> bool:
    """Whether the actor may manage the org's members (the rule of `core.orgs`)."""
    return (actor is not None and access.namespace_role(actor, org) == "admin"
            and access.token_allows_namespace(actor, org, WRITE_PERMISSION))


def _sections(hub: Hub, actor: Actor | None, name: str) -> list[Section]:
    out = []
    with hub.db.read() as session:
        for t in RepoType:
            repos = core_repos.list_repos(session, actor, t, author=name, sort="lastModified",
                                          limit=PROFILE_REPOS + 1)
            more = f"/{t.plural}?author={name}" if len(repos) > PROFILE_REPOS else None
            if repos or t is not RepoType.space:
                out.append(Section(KIND_LABELS[t], repos[:PROFILE_REPOS], more))
    return out


@router.get("/{name:hver_ns}", response_class=HTMLResponse)
async def profile(request: Request, name: str) -> HTMLResponse:
    actor = await page_actor(request)
    hub = get_hub(request)
    name = param(name)

    def run() -> dict[str, Any]:
        with hub.db.read() as session:
            account = get_account(session, name)
            if account is None:
                raise NotFound(f"No user or organization named {name!r}.")
            kind = account.kind
            p = core_orgs.profile(session, actor, account.name, kind)
            if kind == "user":
                liked = [x.repo for x in core_likes.liked_by(session, actor, account.name)]
                members: list[tuple[Account, str]] = []
            else:
                liked = []
                members = core_orgs.members(session, account.name)
        return {"account": p.account, "kind": kind, "orgs": p.orgs, "liked": liked,
                "members": members, "sections": _sections(hub, actor, account.name),
                "org_admin": kind == "org" and is_org_admin(actor, account.name)}

    context = await run_in_threadpool(run)
    return render("profile.html", **context, **_common(request))


# --- organization members ------------------------------------------------------------------


def _admin_org(hub: Hub, actor: Actor, org: str) -> Account:
    """The org, for its admins; 404 when there is none, 403 to everyone else."""
    with hub.db.read() as session:
        account = get_org(session, org)
    if not is_org_admin(actor, account.name):
        raise Forbidden(f"You must be an admin of {account.name!r} to manage its members.")
    return account


async def _members_page(request: Request, actor: Actor, org: str, *, status: int = 200,
                        error: str | None = None) -> HTMLResponse:
    hub = get_hub(request)

    def run() -> dict[str, Any]:
        account = _admin_org(hub, actor, org)
        with hub.db.read() as session:
            return {"org": account, "members": core_orgs.members(session, account.name)}

    context = await run_in_threadpool(run)
    return render("org_members.html", status=status, error=error, roles=ORG_ROLES,
                  **context, **_common(request))


@router.get("/organizations/{org}/settings/members", response_class=HTMLResponse)
async def members_page(request: Request, org: str) -> HTMLResponse:
    actor = await require_user(request)
    return await _members_page(request, actor, param(org))


@router.post("/organizations/{org}/settings/members/{action}")
async def members_action(request: Request, org: str, action: str) -> Response:
    if action not in ("set", "remove"):
        raise NotFound(f"No member action {action!r}.")
    actor, form = await form_user(request)
    hub = get_hub(request)
    org_name = (await run_in_threadpool(_admin_org, hub, actor, param(org))).name
    user, role = field(form, "user"), field(form, "role")

    def run() -> None:
        if not user:
            raise BadRequest("Enter a username.")
        with hub.db.write() as session:
            if action == "set":
                core_orgs.set_member(session, actor, org_name, user, role)
            else:
                core_orgs.drop_member(session, actor, org_name, user)

    try:
        await run_in_threadpool(run)
    except HverError as exc:  # an unknown user, a bad role, the last admin
        return await _members_page(request, actor, org_name, status=exc.status,
                                   error=exc.message)
    if user == actor.name and not actor.is_admin and (action == "remove" or role != "admin"):
        return RedirectResponse(f"/{org_name}", status_code=303)  # no longer theirs to manage
    return RedirectResponse(f"/organizations/{org_name}/settings/members", status_code=303)


@router.post("/organizations/{org}/settings/profile")
async def org_profile(request: Request, org: str) -> Response:
    """An org admin sets the organization's full name (blank clears it)."""
    actor, form = await form_user(request)
    hub = get_hub(request)
    org_name = (await run_in_threadpool(_admin_org, hub, actor, param(org))).name
    fullname = field(form, "fullname")

    def run() -> None:
        with hub.db.write() as session:
            core_orgs.set_fullname(session, actor, org_name, fullname)

    try:
        await run_in_threadpool(run)
    except HverError as exc:  # a name too long
        return await _members_page(request, actor, org_name, status=exc.status,
                                   error=exc.message)
    return RedirectResponse(f"/organizations/{org_name}/settings/members", status_code=303)
