"""Signing in and out of the web UI: sessions, cookies, CSRF, and what a session may do."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from webforms import browser as _browser
from webforms import csrf as _csrf
from webforms import sign_in as _sign_in

Server = Any


@pytest.fixture(autouse=True)
def _clean(no_server_errors: None) -> None:
    pass


def test_sign_in_page_and_wrong_password(server: Server, web_user_factory) -> None:  # type: ignore[no-untyped-def]
    who = web_user_factory()
    with _browser(server) as b:
        page = b.get("/login?next=/models")
        assert page.status_code == 200
        assert '<label for="login-username">' in page.text and 'type="password"' in page.text
        assert 'name="next" value="/models"' in page.text
        for name, password in ((who.name, "wrong password"), ("nobody-here", "whatever1"),
                               (who.name, "")):
            r = _sign_in(b, name, password)
            assert r.status_code == 401
            assert 'role="alert"' in r.text
            assert "hver_session" not in r.headers.get("set-cookie", "")
        assert "hver_session" not in b.cookies


def test_sign_in_session_and_sign_out(server: Server, web_user_factory, api) -> None:  # type: ignore[no-untyped-def]
    who = web_user_factory()
    # A private repo of the user: invisible until they sign in.
    from huggingface_hub import HfApi
    mine = HfApi(endpoint=server.endpoint, token=who.token)
    repo_id = f"{who.name}/secret-model"
    mine.create_repo(repo_id, private=True)
    with _browser(server) as b:
        assert b.get(f"/{repo_id}").status_code == 404
        r = _sign_in(b, who.name, who.password, next_url=f"/{repo_id}")
        assert r.status_code == 303 and r.headers["location"] == f"/{repo_id}"
        cookie = r.headers["set-cookie"]
        assert "hver_session=hver_s_" in cookie
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
        page = b.get(f"/{repo_id}")
        assert page.status_code == 200 and "secret-model" in page.text
        assert f">{who.name}</a>" in page.text and "Sign out" in page.text
        # Home lists the user's own repos, private ones included.
        home = b.get("/").text
        assert "Your repositories" in home and f'href="/{repo_id}"' in home
        # Signed in, the login page sends you on.
        again = b.get("/login?next=/datasets")
        assert again.status_code == 303 and again.headers["location"] == "/datasets"
        # The cookie is for pages and file downloads, never the API.
        assert b.get(f"/api/models/{repo_id}").status_code == 404
        assert b.get(f"/{repo_id}/resolve/main/.gitattributes").status_code == 200
        # Sign-out needs the page's CSRF token.
        assert b.post("/logout", data={"csrf": "0" * 64}).status_code == 403
        assert b.get(f"/{repo_id}").status_code == 200
        out = b.post("/logout", data={"csrf": _csrf(page.text)})
        assert out.status_code == 303 and out.headers["location"] == "/"
        assert b.get(f"/{repo_id}").status_code == 404
        home = b.get("/").text
        assert "Sign in" in home and "Your repositories" not in home
        assert f'href="/{repo_id}"' not in home


def test_ended_sessions(server: Server, web_user_factory) -> None:  # type: ignore[no-untyped-def]
    who = web_user_factory()
    with _browser(server) as b, _browser(server) as stolen:
        _sign_in(b, who.name, who.password)
        stolen.cookies.set("hver_session", b.cookies["hver_session"])
        assert f">{who.name}</a>" in stolen.get("/").text
        b.post("/logout", data={"csrf": _csrf(b.get("/").text)})
        # The server forgot the session: a copy of the cookie is worth nothing.
        assert f">{who.name}</a>" not in stolen.get("/").text
        # A disabled user's session stops working; a new password ends all sessions.
        _sign_in(b, who.name, who.password)
        server.hver("user", "disable", who.name)
        assert f">{who.name}</a>" not in b.get("/").text
        server.hver("user", "enable", who.name)
        assert f">{who.name}</a>" in b.get("/").text
        server.hver("user", "set-password", who.name, stdin="another-password-1\n")
        assert f">{who.name}</a>" not in b.get("/").text
        assert _sign_in(b, who.name, who.password).status_code == 401
        assert _sign_in(b, who.name, "another-password-1").status_code == 303


def test_next_cannot_leave_the_site(server: Server, web_user_factory) -> None:  # type: ignore[no-untyped-def]
    who = web_user_factory()
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"):
        with _browser(server) as b:
            r = _sign_in(b, who.name, who.password, next_url=target)
            assert r.status_code == 303 and r.headers["location"] == "/"


def test_cross_site_forms_are_refused(server: Server, web_user_factory) -> None:  # type: ignore[no-untyped-def]
    who = web_user_factory()
    with _browser(server) as b:
        r = b.post("/login", data={"username": who.name, "password": who.password},
                   headers={"Origin": "https://evil.example"})
        assert r.status_code == 403 and "hver_session" not in b.cookies
        _sign_in(b, who.name, who.password)
        token = _csrf(b.get("/").text)
        r = b.post("/logout", data={"csrf": token}, headers={"Origin": "https://evil.example"})
        assert r.status_code == 403
        assert f">{who.name}</a>" in b.get("/").text


def test_malformed_login_form(server: Server) -> None:
    with _browser(server) as b:
        r = b.post("/login", content=b"\xff\xfe=%%%&&", headers={
            "Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code in (400, 401)
        r = b.post("/login", content=b"--x\r\nbroken", headers={
            "Content-Type": "multipart/form-data; boundary=x"})
        assert 400 <= r.status_code < 500


def test_login_refuses_opaque_and_malformed_origins(server: Server, web_user_factory) -> None:  # type: ignore[no-untyped-def]
    who = web_user_factory()
    with _browser(server) as b:
        for origin in ("null", "http://[", "http://127.0.0.1:1"):
            r = b.post("/login", data={"username": who.name, "password": who.password},
                       headers={"Origin": origin})
            assert r.status_code == 403, origin
        assert "hver_session" not in b.cookies
        # A `next` with control characters or an unparsable URL goes home.
        for target in ("/\t/[", "/a\nb"):
            r = b.get("/login", params={"next": target})
            assert r.status_code == 200 and 'name="next" value="/"' in r.text


def test_home_keeps_to_a_fine_grained_tokens_scope(server: Server, web_user_factory) -> None:  # type: ignore[no-untyped-def]
    who = web_user_factory()
    from huggingface_hub import HfApi
    mine = HfApi(endpoint=server.endpoint, token=who.token)
    inside, outside = f"{who.name}/in-scope", f"{who.name}/out-of-scope"
    for repo_id in (inside, outside):
        mine.create_repo(repo_id, private=True)
    scoped = server.hver("token", "create", who.name, "--fine-grained", "--repo", f"{inside}:read")
    home = httpx.get(f"{server.endpoint}/", headers={"Accept": "text/html",
                                                     "Authorization": f"Bearer {scoped}"}).text
    assert f'href="/{inside}"' in home and f'href="/{outside}"' not in home


def test_files_never_run_in_the_browser(server: Server, api, repo_factory) -> None:  # type: ignore[no-untyped-def]
    """Repo files are served from the origin the session cookie lives on: the browser is
    told never to render active content from them."""
    import io

    from huggingface_hub import CommitOperationAdd
    repo_id = repo_factory()
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    files = {"x.svg": svg, "x.xhtml": b"<html xmlns='http://www.w3.org/1999/xhtml'/>",
             "x.xml": b"<a/>", "x.html": b"<script>alert(1)</script>", "x.png": b"\x89PNG",
             "big.svg": svg + b"<!--" + b"x" * 11_000_000 + b"-->"}
    api.create_commit(repo_id, [CommitOperationAdd(path_in_repo=p, path_or_fileobj=io.BytesIO(d))
                                for p, d in files.items()], commit_message="files")
    expected = {"x.svg": "application/octet-stream", "x.xhtml": "application/octet-stream",
                "x.xml": "application/octet-stream", "x.html": "text/plain; charset=utf-8",
                "x.png": "image/png", "big.svg": "application/octet-stream"}
    for path, media in expected.items():
        r = httpx.get(f"{server.endpoint}/{repo_id}/resolve/main/{path}", follow_redirects=True,
                      timeout=60)
        assert r.status_code == 200 and r.content == files[path], path
        assert r.headers["content-type"] == media, path
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert "sandbox" in r.headers["content-security-policy"], path


def test_web_upload_exemption_is_only_the_upload_route(server: Server) -> None:
    """Only the upload form may send a body over `max_request_body`; a path that merely
    contains `/upload/` (a dataset named `upload`) is refused before it is read."""
    body = b"x" * (11 * 1024 * 1024)
    for path in ("/datasets/someone/upload/ask-access", "/datasets/someone/upload/like",
                 "/someone/upload/settings/visibility"):
        r = httpx.post(f"{server.endpoint}{path}", content=body, timeout=60,
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 413, path
        assert r.headers["x-error-message"].startswith("Request body is larger than"), path
