"""Settings pages in the browser's place: tokens, profile, repo settings, access requests,
profiles, organization members and likes, driven over HTTP by signed-in clients."""

from __future__ import annotations

import html
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError
from webforms import browser as _browser
from webforms import csrf as _csrf
from webforms import signed_in as _signed_in

Server = Any
CONFIG = b'{"model_type": "settings-test"}\n'
FORM_README = (b"---\nlicense: other\nextra_gated_fields:\n  Company: text\n"
               b"  I agree to the terms: checkbox\n---\n# Gated\n")


@pytest.fixture(autouse=True)
def _clean(no_server_errors: None) -> None:
    pass


# Made once for the module (each is a few CLI runs); every test makes its own repos and orgs.
@pytest.fixture(scope="module")
def owner(web_user_factory):  # type: ignore[no-untyped-def]
    return web_user_factory("owner")


@pytest.fixture(scope="module")
def second(web_user_factory):  # type: ignore[no-untyped-def]
    return web_user_factory("second")


@pytest.fixture(scope="module")
def third(web_user_factory):  # type: ignore[no-untyped-def]
    return web_user_factory("third")


def _post(b: httpx.Client, url: str, data: dict[str, Any], page: str | None = None
          ) -> httpx.Response:
    """Send a form as the page at `page` (default: `url`'s settings page) would."""
    token = _csrf(b.get(page or "/").text)
    return b.post(url, data={"csrf": token, **data})


def _hf(server: Server, token: str) -> HfApi:
    return HfApi(endpoint=server.endpoint, token=token)


def _repo(server: Server, who: Any, private: bool = False, files: dict[str, bytes] | None = None,
          repo_type: str = "model", namespace: str | None = None) -> str:
    api = _hf(server, who.token)
    repo_id = f"{namespace or who.name}/m-{uuid.uuid4().hex[:8]}"
    api.create_repo(repo_id, private=private, repo_type=repo_type)
    if files:
        api.create_commit(repo_id, [CommitOperationAdd(p, d) for p, d in files.items()],
                          commit_message="files", repo_type=repo_type)
    return repo_id


# --- tokens and profile --------------------------------------------------------------------


def test_token_created_shown_once_and_revoked(server: Server, owner) -> None:  # type: ignore[no-untyped-def]
    who = owner
    with _browser(server) as anon:
        r = anon.get("/settings/tokens")
        assert r.status_code == 303 and r.headers["location"] == "/login?next=/settings/tokens"
    with _signed_in(server, who) as b:
        r = b.get("/settings")
        assert r.status_code == 303 and r.headers["location"] == "/settings/tokens"
        page = b.get("/settings/tokens")
        assert page.status_code == 200 and "<h1>Access tokens</h1>" in page.text
        # Without the CSRF token nothing is made.
        assert b.post("/settings/tokens", data={"name": "ci", "role": "read"}).status_code == 403
        assert ">ci</th>" not in b.get("/settings/tokens").text
        r = b.post("/settings/tokens", data={"csrf": _csrf(page.text), "name": "ci",
                                            "role": "read"})
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
        m = re.search(r'id="new-token"[^>]*readonly value="(hf_[A-Za-z0-9]+)"', r.text)
        assert m, r.text
        secret = m.group(1)
        assert "will not be shown again" in r.text
        assert '<label for="new-token">' in r.text
        me = _hf(server, secret).whoami()
        assert me["name"] == who.name and me["auth"]["accessToken"]["role"] == "read"
        # Reloading never shows it again; the table shows the token, not its secret.
        again = b.get("/settings/tokens").text
        assert secret not in again and 'id="new-token"' not in again
        row = re.search(r"<th scope=\"row\">ci</th>.*?</tr>", again, re.S)
        assert row and "Read" in row.group(0) and "Never" not in row.group(0)  # just used
        token_id = re.search(r'name="token" value="(\d+)"', row.group(0))
        assert token_id
        r = b.post("/settings/tokens/revoke", data={"csrf": _csrf(again),
                                                   "token": token_id.group(1)})
        assert r.status_code == 303 and r.headers["location"] == "/settings/tokens"
        assert ">ci</th>" not in b.get("/settings/tokens").text
    with pytest.raises(HfHubHTTPError) as e:
        _hf(server, secret).whoami()
    assert e.value.response.status_code == 401


def test_fine_grained_token_reaches_its_repo_only(server: Server, owner) -> None:  # type: ignore[no-untyped-def]
    who = owner
    mine, other = _repo(server, who, private=True), _repo(server, who, private=True)
    with _signed_in(server, who) as b:
        csrf = _csrf(b.get("/settings/tokens").text)
        bad = b.post("/settings/tokens", data={"csrf": csrf, "name": "fg", "role": "fineGrained",
                                              "scope_repo": "not a repo",
                                              "scope_permission": "read"})
        assert bad.status_code == 400 and 'role="alert"' in bad.text
        assert 'id="new-token"' not in bad.text and 'value="not a repo"' in bad.text
        none = b.post("/settings/tokens", data={"csrf": csrf, "role": "fineGrained"})
        assert none.status_code == 400 and "at least one scope" in none.text
        r = b.post("/settings/tokens", data={
            "csrf": csrf, "name": "fg", "role": "fineGrained",
            "scope_repo": [mine, ""], "scope_permission": ["write", "read"]})
        assert r.status_code == 200, r.text
        secret = re.search(r'readonly value="(hf_[A-Za-z0-9]+)"', r.text).group(1)  # type: ignore[union-attr]
        row = re.search(r"<th scope=\"row\">fg</th>.*?</tr>", r.text, re.S)
        assert row and "Fine-grained" in row.group(0) and f"model {mine}: write" in row.group(0)
    api = _hf(server, secret)
    assert api.model_info(mine).id == mine
    api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=mine)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info(other)


def test_profile_settings(server: Server, web_user_factory) -> None:  # type: ignore[no-untyped-def]
    who = web_user_factory()
    with _signed_in(server, who) as b:
        page = b.get("/settings/profile")
        assert page.status_code == 200
        assert f'value="{who.name}@example.org"' in page.text
        bad = b.post("/settings/profile", data={"csrf": _csrf(page.text), "fullname": "Ada",
                                               "email": "not-an-email"})
        assert bad.status_code == 400 and 'role="alert"' in bad.text
        assert "not a valid email" in html.unescape(bad.text)
        assert _hf(server, who.token).whoami()["fullname"] == who.name  # unchanged
        r = b.post("/settings/profile", data={"csrf": _csrf(page.text),
                                             "fullname": "Ada Lovelace",
                                             "email": "ada@example.net"})
        assert r.status_code == 303 and r.headers["location"] == "/settings/profile?saved=1"
        saved = b.get("/settings/profile?saved=1").text
        assert "Your profile was saved." in saved and 'value="Ada Lovelace"' in saved
    me = _hf(server, who.token).whoami()
    assert me["fullname"] == "Ada Lovelace" and me["email"] == "ada@example.net"
    assert "<h1>Ada Lovelace</h1>" in httpx.get(f"{server.endpoint}/{who.name}").text


# --- repo settings -------------------------------------------------------------------------


def test_visibility_toggle_and_csrf(server: Server, owner, second) -> None:  # type: ignore[no-untyped-def]
    outsider = second
    repo_id = _repo(server, owner)
    settings = f"/{repo_id}/settings"
    with _signed_in(server, owner) as b, _signed_in(server, outsider) as o:
        page = b.get(settings)
        assert page.status_code == 200 and "Make private" in page.text
        assert f'href="/{repo_id}/settings" aria-current="page">Settings</a>' in page.text
        assert f'href="/{repo_id}/settings"' in b.get(f"/{repo_id}").text  # the tab
        assert f'href="/{repo_id}/settings"' not in o.get(f"/{repo_id}").text
        # No CSRF token, or a cross-site origin: refused, nothing changed.
        assert b.post(f"{settings}/visibility", data={"visibility": "private"}).status_code == 403
        r = b.post(f"{settings}/visibility", headers={"Origin": "https://evil.example"},
                   data={"csrf": _csrf(page.text), "visibility": "private"})
        assert r.status_code == 403
        assert o.get(f"/{repo_id}").status_code == 200
        bad = b.post(f"{settings}/visibility", data={"csrf": _csrf(page.text),
                                                     "visibility": "secret"})
        assert bad.status_code == 400 and 'role="alert"' in bad.text
        r = b.post(f"{settings}/visibility", data={"csrf": _csrf(page.text),
                                                   "visibility": "private"})
        assert r.status_code == 303 and r.headers["location"] == settings
        assert "Make public" in b.get(settings).text
        assert o.get(f"/{repo_id}").status_code == 404
        assert httpx.get(f"{server.endpoint}/{repo_id}").status_code == 404
        assert _hf(server, owner.token).model_info(repo_id).private is True


def test_readers_get_403_and_outsiders_404(server: Server, owner, second) -> None:  # type: ignore[no-untyped-def]
    admin, writer = owner, second
    org = f"org-{uuid.uuid4().hex[:8]}"
    server.hver("org", "create", org, "--owner", admin.name)
    server.hver("org", "add-member", org, writer.name, "--role", "write")
    public = _repo(server, admin, namespace=org)
    private = _repo(server, admin, private=True)
    forms = {"visibility": {"visibility": "private"}, "gating": {"gated": "manual"},
             "access-requests": {"user": writer.name, "status": "accepted"},
             "grant": {"user": writer.name}, "move": {"namespace": org, "name": "taken"},
             "delete": {"confirm": public}}
    with _signed_in(server, writer) as w, _browser(server) as anon:
        # An org member who may write, but is not its admin: 403 everywhere.
        assert w.get(f"/{public}").status_code == 200
        assert f'href="/{public}/settings"' not in w.get(f"/{public}").text
        r = w.get(f"/{public}/settings")
        assert r.status_code == 403 and "Access denied" in r.text
        csrf = _csrf(w.get("/").text)
        for action, data in forms.items():
            r = w.post(f"/{public}/settings/{action}", data={"csrf": csrf, **data})
            assert r.status_code == 403, action
        assert _hf(server, admin.token).model_info(public).private is False
        # Someone else's private repo: missing, like a repo that does not exist.
        for url in (f"/{private}/settings", f"/{admin.name}/no-such-repo/settings"):
            assert w.get(url).status_code == 404
        for action, data in forms.items():
            r = w.post(f"/{private}/settings/{action}", data={"csrf": csrf, **data})
            assert r.status_code == 404, action
        # Visitors are sent to sign in; private stays missing.
        r = anon.get(f"/{public}/settings")
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
        assert anon.get(f"/{private}/settings").status_code == 404
    with _signed_in(server, admin) as a:  # the org's admin
        assert a.get(f"/{public}/settings").status_code == 200
        assert a.post(f"/{public}/settings/nonsense",
                      data={"csrf": _csrf(a.get("/").text)}).status_code == 404


def _ask_on_page(b: httpx.Client, repo_id: str, answers: dict[str, str]) -> httpx.Response:
    page = b.get(f"/{repo_id}").text
    assert f'action="/{repo_id}/ask-access"' in page and "Request access" in page
    return b.post(f"/{repo_id}/ask-access", data={"csrf": _csrf(page), **answers})


def test_gating_manual_accept(server: Server, owner, second, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    asker = second
    repo_id = _repo(server, owner, files={"README.md": FORM_README, "config.json": CONFIG})
    settings = f"/{repo_id}/settings"
    with _signed_in(server, owner) as b, _signed_in(server, asker) as a, \
            _browser(server) as anon:
        page = b.get(settings).text
        assert 'id="gated-off" type="radio" name="gated" value="off" checked' in page
        assert "Access requests</h2>" not in page
        r = b.post(f"{settings}/gating", data={"csrf": _csrf(page), "gated": "manual"})
        assert r.status_code == 303
        page = b.get(settings).text
        assert 'value="manual" checked' in page and "No pending requests." in page
        # Visitors are asked to sign in; the signed-in get the card's form.
        assert "Sign in to request access" in anon.get(f"/{repo_id}").text
        form = a.get(f"/{repo_id}").text
        assert '<label for="gate-field-1">Company</label>' in form
        assert 'type="checkbox" name="I agree to the terms" value="on" required' in form
        # The page's form needs its CSRF token; a missing answer is a 400.
        r = a.post(f"/{repo_id}/ask-access", data={"Company": "Acme",
                                                    "I agree to the terms": "on"})
        assert r.status_code == 403
        r = _ask_on_page(a, repo_id, {"Company": "Acme"})
        assert r.status_code == 400 and "I agree to the terms" in html.unescape(r.text)
        r = _ask_on_page(a, repo_id, {"Company": "Acme", "I agree to the terms": "on"})
        assert r.status_code == 303 and r.headers["location"] == f"/{repo_id}"
        assert "Your request is pending" in a.get(f"/{repo_id}").text
        with pytest.raises(GatedRepoError):
            hf_hub_download(repo_id, "config.json", cache_dir=tmp_path / "a", token=asker.token)
        # The owner sees it pending, with the answers, and accepts it.
        page = b.get(settings).text
        pending = page.split('id="requests-pending"')[1].split('id="requests-accepted"')[0]
        assert asker.name in pending and "Acme" in pending
        r = b.post(f"{settings}/access-requests", data={"csrf": _csrf(page), "user": asker.name,
                                                        "status": "accepted"})
        assert r.status_code == 303
        page = b.get(settings).text
        accepted = page.split('id="requests-accepted"')[1].split('id="requests-rejected"')[0]
        assert asker.name in accepted and "No pending requests." in page
        assert "Access granted" in a.get(f"/{repo_id}").text
    path = hf_hub_download(repo_id, "config.json", cache_dir=tmp_path / "b", token=asker.token)
    assert Path(path).read_bytes() == CONFIG
    [req] = _hf(server, owner.token).list_accepted_access_requests(repo_id)
    assert req.username == asker.name and req.fields == {"Company": "Acme",
                                                         "I agree to the terms": True}


def test_gating_reject_and_grant(server: Server, owner, second, third, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    asker, friend = second, third
    repo_id = _repo(server, owner, files={"config.json": CONFIG}, repo_type="dataset")
    _hf(server, owner.token).update_repo_settings(repo_id, gated="manual", repo_type="dataset")
    url = f"/datasets/{repo_id}"
    with _signed_in(server, owner) as b, _signed_in(server, asker) as a:
        page = a.get(url).text
        assert "Request access" in page
        r = a.post(f"{url}/ask-access", data={"csrf": _csrf(page)})
        assert r.status_code == 303 and r.headers["location"] == url
        page = b.get(f"{url}/settings").text
        r = b.post(f"{url}/settings/access-requests", data={
            "csrf": _csrf(page), "user": asker.name, "status": "rejected",
            "reason": "Not for now"})
        assert r.status_code == 303
        page = b.get(f"{url}/settings").text
        rejected = page.split('id="requests-rejected"')[1]
        assert asker.name in rejected
        assert "was rejected" in a.get(url).text
        # A grant for someone who never asked; an unknown user is a clear error.
        bad = b.post(f"{url}/settings/grant", data={"csrf": _csrf(page), "user": "nobody-x1"})
        assert bad.status_code == 404 and 'role="alert"' in bad.text
        r = b.post(f"{url}/settings/grant", data={"csrf": _csrf(page), "user": friend.name})
        assert r.status_code == 303
    with pytest.raises(GatedRepoError):
        hf_hub_download(repo_id, "config.json", repo_type="dataset", cache_dir=tmp_path / "a",
                        token=asker.token)
    path = hf_hub_download(repo_id, "config.json", repo_type="dataset", cache_dir=tmp_path / "b",
                           token=friend.token)
    assert Path(path).read_bytes() == CONFIG
    [req] = _hf(server, owner.token).list_rejected_access_requests(repo_id, repo_type="dataset")
    assert req.username == asker.name


def test_rename_and_delete(server: Server, owner) -> None:  # type: ignore[no-untyped-def]
    api = _hf(server, owner.token)
    repo_id = _repo(server, owner)
    new_id = f"{owner.name}/renamed-{uuid.uuid4().hex[:6]}"
    with _signed_in(server, owner) as b:
        page = b.get(f"/{repo_id}/settings").text
        assert f'<option value="{owner.name}" selected>' in page
        bad = b.post(f"/{repo_id}/settings/move", data={"csrf": _csrf(page),
                                                        "namespace": owner.name, "name": "a/b"})
        assert bad.status_code == 400 and 'role="alert"' in bad.text
        r = b.post(f"/{repo_id}/settings/move", data={"csrf": _csrf(page),
                                                      "namespace": owner.name,
                                                      "name": new_id.split("/")[1]})
        assert r.status_code == 303 and r.headers["location"] == f"/{new_id}"
        old = b.get(f"/{repo_id}")  # the old id sends browsers on, as on the Hub
        assert old.status_code == 301 and old.headers["location"].endswith(f"/{new_id}")
        assert b.get(f"/{new_id}").status_code == 200
        assert api.model_info(new_id).id == new_id
        # Deleting needs the full id typed in.
        page = b.get(f"/{new_id}/settings").text
        for wrong in ("", new_id.split("/")[1], new_id.upper()):
            r = b.post(f"/{new_id}/settings/delete", data={"csrf": _csrf(page), "confirm": wrong})
            assert r.status_code == 400 and 'role="alert"' in r.text
            assert api.repo_exists(new_id)
        r = b.post(f"/{new_id}/settings/delete", data={"csrf": _csrf(page), "confirm": new_id})
        assert r.status_code == 303 and r.headers["location"] == f"/{owner.name}"
        assert not api.repo_exists(new_id)
        assert b.get(f"/{new_id}").status_code == 404
        assert b.get(f"/{repo_id}").status_code == 404  # the redirect went with the repo
        assert b.get(f"/{owner.name}").status_code == 200


# --- profiles, organizations, likes --------------------------------------------------------


def test_profile_pages(server: Server, owner, second) -> None:  # type: ignore[no-untyped-def]
    who, fan = owner, second
    org = f"org-{uuid.uuid4().hex[:8]}"
    server.hver("org", "create", org, "--owner", who.name)
    server.hver("org", "add-member", org, fan.name, "--role", "read")
    public, private = _repo(server, who), _repo(server, who, private=True)
    dataset = _repo(server, who, repo_type="dataset")
    org_model, org_secret = _repo(server, who, namespace=org), \
        _repo(server, who, namespace=org, private=True)
    r = httpx.post(f"{server.endpoint}/api/models/{public}/like",
                   headers={"Authorization": f"Bearer {fan.token}"})
    assert r.status_code == 200
    with _browser(server) as anon:
        page = anon.get(f"/{who.name}")
        assert page.status_code == 200 and f"<h1>{who.name}</h1>" in page.text
        for shown in (public, dataset):
            assert f">{shown}</a>" in page.text
        assert private not in page.text
        assert f'<a href="/{org}">{org}</a>' in page.text
        fan_page = anon.get(f"/{fan.name}").text
        liked = fan_page.split('id="profile-likes"')[1]
        assert f">{public}</a>" in liked
        org_page = anon.get(f"/{org}").text
        assert f">{org_model}</a>" in org_page and org_secret not in org_page
        members = org_page.split('id="profile-members"')[1]
        assert f">{who.name}</a> <span class=\"badge\">admin</span>" in members
        assert f">{fan.name}</a> <span class=\"badge\">read</span>" in members
        assert "Manage members" not in org_page
        assert anon.get("/no-such-user-zz").status_code == 404
        assert "<h1>Models</h1>" in anon.get("/models").text  # not taken for a user
    with _signed_in(server, who) as b:
        page = b.get(f"/{who.name}").text
        assert f">{private}</a>" in page and "Edit your profile" in page
        org_page = b.get(f"/{org}").text
        assert f">{org_secret}</a>" in org_page and "Manage members" in org_page


def test_org_members_page(server: Server, owner, second, third) -> None:  # type: ignore[no-untyped-def]
    admin, newbie, reader = owner, second, third
    org = f"org-{uuid.uuid4().hex[:8]}"
    server.hver("org", "create", org, "--owner", admin.name)
    server.hver("org", "add-member", org, reader.name, "--role", "read")
    url = f"/organizations/{org}/settings/members"

    def roles() -> dict[str, str]:
        r = httpx.get(f"{server.endpoint}/api/organizations/{org}/members")
        return {m["user"]: m["role"] for m in r.json()}

    with _signed_in(server, admin) as b, _signed_in(server, reader) as rd:
        page = b.get(url)
        assert page.status_code == 200 and f">{reader.name}</a>" in page.text
        csrf = _csrf(page.text)
        assert b.post(f"{url}/set", data={"user": newbie.name, "role": "read"}).status_code == 403
        r = b.post(f"{url}/set", data={"csrf": csrf, "user": newbie.name, "role": "read"})
        assert r.status_code == 303 and r.headers["location"] == url
        assert roles()[newbie.name] == "read"
        r = b.post(f"{url}/set", data={"csrf": csrf, "user": newbie.name, "role": "write"})
        assert r.status_code == 303 and roles()[newbie.name] == "write"
        bad = b.post(f"{url}/set", data={"csrf": csrf, "user": newbie.name, "role": "owner"})
        assert bad.status_code == 400 and 'role="alert"' in bad.text
        missing = b.post(f"{url}/set", data={"csrf": csrf, "user": "nobody-zz9", "role": "read"})
        assert missing.status_code == 404 and 'role="alert"' in missing.text
        last = b.post(f"{url}/remove", data={"csrf": csrf, "user": admin.name})
        assert last.status_code == 409 and "last admin" in html.unescape(last.text)
        r = b.post(f"{url}/remove", data={"csrf": csrf, "user": newbie.name})
        assert r.status_code == 303 and newbie.name not in roles()
        # A member who is not an admin, and a missing org.
        assert rd.get(url).status_code == 403
        r = rd.post(f"{url}/set", data={"csrf": _csrf(rd.get("/").text), "user": reader.name,
                                        "role": "admin"})
        assert r.status_code == 403 and roles()[reader.name] == "read"
        assert b.get("/organizations/no-such-org-zz/settings/members").status_code == 404
    with _browser(server) as anon:
        r = anon.get(url)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")


def test_like_toggles(server: Server, owner, second) -> None:  # type: ignore[no-untyped-def]
    fan = second
    repo_id, private = _repo(server, owner), _repo(server, owner, private=True)
    with _browser(server) as anon:
        page = anon.get(f"/{repo_id}").text
        assert "0 likes" in page and "Sign in to like" in page and "aria-pressed" not in page
    with _signed_in(server, fan) as b:
        page = b.get(f"/{repo_id}").text
        assert 'aria-pressed="false">Like</button>' in page
        assert b.post(f"/{repo_id}/like", data={"liked": "true"}).status_code == 403
        r = b.post(f"/{repo_id}/like", data={"csrf": _csrf(page), "liked": "true"})
        assert r.status_code == 303 and r.headers["location"] == f"/{repo_id}"
        page = b.get(f"/{repo_id}").text
        assert "1 like<" in page and 'aria-pressed="true">Unlike</button>' in page
        assert _hf(server, owner.token).model_info(repo_id).likes == 1
        r = b.post(f"/{repo_id}/like", data={"csrf": _csrf(page), "liked": "false"})
        assert r.status_code == 303
        assert "0 likes" in b.get(f"/{repo_id}").text
        assert b.post(f"/{private}/like", data={"csrf": _csrf(page),
                                                "liked": "true"}).status_code == 404
