"""Passwords, fine-grained tokens, token management, disabled users and the audit log."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from hver.config import Settings
from hver.core import accounts
from hver.core.hub import Hub
from hver.errors import BadRequest, Unauthorized


def hver_in(server, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The hver CLI with `stdin`, not checked: the caller asserts on the result."""
    return subprocess.run(
        [sys.executable, "-m", "hver", *args, "--data", str(server.data)],
        env=server.env, input=stdin, capture_output=True, text=True,
    )


def status_of(call) -> int:  # type: ignore[no-untyped-def]
    with pytest.raises(HfHubHTTPError) as e:
        call()
    return e.value.response.status_code


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def audit(server, *args: str) -> list[dict]:
    return json.loads(server.hver("audit", "--json", *args))


def test_fine_grained_repo_scopes(server, user_factory, tmp_path, no_server_errors):
    owner = user_factory("fg")
    api = HfApi(endpoint=server.endpoint, token=owner.token)
    rw, ro, hidden, public = (f"{owner.name}/{uniq(n)}" for n in ("rw", "ro", "hidden", "pub"))
    for repo_id in (rw, ro, hidden):
        api.create_repo(repo_id, private=True)
    api.create_repo(public)
    ds = api.create_repo(f"{owner.name}/{uniq('ds')}", repo_type="dataset", private=True).repo_id
    token = server.hver("token", "create", owner.name, "--fine-grained", "--name", "ci",
                        "--repo", f"{rw}:read,write", "--repo", f"{ro}:repo.content.read",
                        "--repo", f"datasets/{ds}:read")
    fg = HfApi(endpoint=server.endpoint, token=token)

    # whoami, as huggingface_hub parses it.
    me = fg.whoami()
    assert me["name"] == owner.name
    access_token = me["auth"]["accessToken"]
    assert access_token["role"] == "fineGrained" and access_token["displayName"] == "ci"
    scoped = {(s["entity"]["type"], s["entity"]["name"]): sorted(s["permissions"])
              for s in access_token["fineGrained"]["scoped"]}
    assert scoped == {("model", rw): ["repo.content.read", "repo.write"],
                      ("model", ro): ["repo.content.read"],
                      ("dataset", ds): ["repo.content.read"]}

    # In scope: read and write.
    info = fg.upload_file(path_or_fileobj=b"hello", path_in_repo="a.txt", repo_id=rw)
    assert info.oid
    assert fg.repo_info(rw).private is True
    path = hf_hub_download(rw, "a.txt", token=token, cache_dir=tmp_path)
    assert Path(path).read_bytes() == b"hello"
    assert fg.repo_info(ro).id == ro
    assert fg.repo_info(ds, repo_type="dataset").id == ds
    # Read-only scope: writes are refused.
    assert status_of(lambda: fg.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt",
                                            repo_id=ro)) == 403
    # Out of scope: a private repo is missing, a public one readable but not writable.
    with pytest.raises(RepositoryNotFoundError):
        fg.repo_info(hidden)
    with pytest.raises(RepositoryNotFoundError):
        fg.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=hidden)
    assert fg.repo_info(public).id == public
    assert status_of(lambda: fg.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt",
                                            repo_id=public)) == 403
    assert status_of(lambda: fg.create_repo(f"{owner.name}/{uniq('new')}")) == 403
    listed = {m.id for m in fg.list_models(author=owner.name)}
    assert listed == {rw, ro, public}
    # The owner's own write token still reaches everything.
    assert {m.id for m in api.list_models(author=owner.name)} == {rw, ro, hidden, public}
    # repo.write on a repo the user owns covers its settings and its deletion, as on the Hub.
    assert status_of(lambda: fg.delete_repo(ro)) == 403
    fg.delete_repo(rw)
    with pytest.raises(RepositoryNotFoundError):
        api.repo_info(rw)


def test_fine_grained_namespace_scopes(server, user_factory, no_server_errors):
    owner = user_factory("fgorg")
    api = HfApi(endpoint=server.endpoint, token=owner.token)
    org = uniq("org")
    server.hver("org", "create", org, "--owner", owner.name)
    in_org = api.create_repo(f"{org}/{uniq('secret')}", private=True).repo_id
    mine = api.create_repo(f"{owner.name}/{uniq('mine')}", private=True).repo_id

    reader = HfApi(endpoint=server.endpoint, token=server.hver(
        "token", "create", owner.name, "--fine-grained", "--org", f"{org}:read"))
    assert reader.repo_info(in_org).id == in_org
    assert status_of(lambda: reader.upload_file(path_or_fileobj=b"x", path_in_repo="x",
                                                repo_id=in_org)) == 403
    with pytest.raises(RepositoryNotFoundError):
        reader.repo_info(mine)
    assert status_of(lambda: reader.create_repo(f"{org}/{uniq('n')}")) == 403

    # The user's own namespace, with write: create, write and delete repos there only.
    writer = HfApi(endpoint=server.endpoint, token=server.hver(
        "token", "create", owner.name, "--fine-grained", "--org", f"{owner.name}:write"))
    scoped = writer.whoami()["auth"]["accessToken"]["fineGrained"]["scoped"]
    assert scoped == [{"entity": {"type": "user", "name": owner.name},
                       "permissions": ["repo.write"]}]
    new = writer.create_repo(f"{owner.name}/{uniq('made')}", private=True).repo_id
    assert writer.upload_file(path_or_fileobj=b"y", path_in_repo="y", repo_id=mine).oid
    assert writer.repo_info(new).private is True
    with pytest.raises(RepositoryNotFoundError):
        writer.repo_info(in_org)
    writer.delete_repo(new)
    with pytest.raises(RepositoryNotFoundError):
        api.repo_info(new)

    # A scope must name something the user could be given.
    bad = hver_in(server, "token", "create", owner.name, "--fine-grained", "--org",
                  f"{uniq('nope')}:read")
    assert bad.returncode == 1 and "No organization" in bad.stderr
    bad = hver_in(server, "token", "create", owner.name, "--repo", f"{mine}:read")
    assert bad.returncode == 1 and "--fine-grained" in bad.stderr
    bad = hver_in(server, "token", "create", owner.name, "--fine-grained", "--repo",
                  f"{mine}:admin")
    assert bad.returncode == 1 and "Unknown permission" in bad.stderr


def test_token_list_and_revoke(server, user_factory, no_server_errors):
    u = user_factory("tok")
    secret = server.hver("token", "create", u.name, "--name", "laptop", "--role", "read")
    api = HfApi(endpoint=server.endpoint, token=secret)
    assert api.whoami()["auth"]["accessToken"] == {
        "displayName": "laptop", "role": "read",
        "createdAt": api.whoami()["auth"]["accessToken"]["createdAt"]}

    listed = json.loads(server.hver("token", "list", u.name, "--json"))
    assert [t["name"] for t in listed][-1] == "laptop"
    laptop = listed[-1]
    assert laptop["role"] == "read" and laptop["lastUsedAt"] is not None
    table = server.hver("token", "list", u.name)
    assert "laptop" in table and secret not in table and u.token not in table
    assert secret not in json.dumps(listed)

    assert hver_in(server, "token", "revoke", u.name, "laptop").returncode == 0
    with pytest.raises(HfHubHTTPError) as e:
        api.whoami()
    assert e.value.response.status_code == 401
    # By id too; an unknown token is an error.
    ids = [t["id"] for t in json.loads(server.hver("token", "list", u.name, "--json"))]
    assert len(ids) == 2
    assert hver_in(server, "token", "revoke", u.name, ids[1]).returncode == 0
    assert status_of(lambda: HfApi(endpoint=server.endpoint, token=u.read_token).whoami()) \
        == 401
    missing = hver_in(server, "token", "revoke", u.name, "laptop")
    assert missing.returncode == 1 and "has no token" in missing.stderr
    assert HfApi(endpoint=server.endpoint, token=u.token).whoami()["name"] == u.name


def test_disabled_user(server, user_factory, repo_factory, no_server_errors):
    u = user_factory("off")
    api = HfApi(endpoint=server.endpoint, token=u.token)
    repo_id = api.create_repo(f"{u.name}/{uniq('r')}").repo_id
    server.hver("user", "disable", u.name)
    assert status_of(api.whoami) == 401
    assert status_of(lambda: api.upload_file(path_or_fileobj=b"x", path_in_repo="x",
                                             repo_id=repo_id)) == 401
    r = httpx.get(f"{server.endpoint}/api/models/{repo_id}",
                  headers={"authorization": f"Bearer {u.read_token}"})
    assert r.status_code == 401 and u.read_token not in r.text
    server.hver("user", "enable", u.name)
    assert api.whoami()["name"] == u.name


def test_passwords(server, user_factory):
    name = uniq("pw")
    made = hver_in(server, "user", "create", name, "--password-stdin",
                   stdin="correct horse\n")
    assert made.returncode == 0 and made.stdout.strip() == name
    short = hver_in(server, "user", "set-password", name, stdin="short\n")
    assert short.returncode == 1 and "at least 8" in short.stderr

    hub = Hub.open(Settings.from_env(data=server.data))
    try:
        with hub.db.read() as session:
            actor = accounts.verify_password(session, name, "correct horse")
            assert actor.name == name and actor.can_write
            stored = accounts.get_user(session, name).password_hash
            assert stored is not None and stored.startswith("scrypt$16384$8$1$")
            assert "correct horse" not in stored
            for who, password in ((name, "correct horsE"), (name, ""), (uniq("ghost"), "x" * 9)):
                with pytest.raises(Unauthorized):
                    accounts.verify_password(session, who, password)
        # Salted: the same password hashes differently each time, and both verify.
        again = accounts.hash_password("correct horse")
        assert again != stored and accounts.check_password("correct horse", again)
        assert not accounts.check_password("correct horse", "scrypt$bogus")
        with pytest.raises(BadRequest):
            accounts.hash_password("1234567")

        # Logins, failed and successful, are in the audit log (never the password).
        with pytest.raises(Unauthorized):
            accounts.login(hub.db, name, "wrong password", source="127.0.0.1")
        assert accounts.login(hub.db, name, "correct horse").name == name
        logged = [(e["event"], e["actor"]) for e in audit(server, "--limit", "50")
                  if e["target"] == name and e["event"].startswith("login.")]
        assert logged[:2] == [("login.success", name), ("login.failure", None)]
        assert "wrong password" not in server.hver("audit", "--json")

        assert hver_in(server, "user", "set-password", name,
                       stdin="battery staple\n").returncode == 0
        with hub.db.read() as session:
            with pytest.raises(Unauthorized):
                accounts.verify_password(session, name, "correct horse")
            assert accounts.verify_password(session, name, "battery staple").name == name
        server.hver("user", "disable", name)
        with hub.db.read() as session, pytest.raises(Unauthorized):
            accounts.verify_password(session, name, "battery staple")
        # A user without a password cannot log in with one.
        nopw = user_factory("nopw")
        with hub.db.read() as session, pytest.raises(Unauthorized):
            accounts.verify_password(session, nopw.name, "")
    finally:
        hub.close()


def test_token_api(server, user_factory, no_server_errors):
    u = user_factory("self")
    url = f"{server.endpoint}/api/settings/tokens"
    auth = {"authorization": f"Bearer {u.token}"}
    made = httpx.post(url, headers=auth, json={"name": "script", "role": "read"})
    assert made.status_code == 200, made.text
    body = made.json()
    assert body["name"] == "script" and body["role"] == "read"
    secret = body["token"]
    assert secret.startswith("hf_")
    assert HfApi(endpoint=server.endpoint, token=secret).whoami()["name"] == u.name

    listed = httpx.get(url, headers=auth)
    assert listed.status_code == 200 and secret not in listed.text
    assert [t["name"] for t in listed.json()][-1] == "script"
    assert {"id", "name", "role", "createdAt", "lastUsedAt", "scopes"} <= set(listed.json()[0])

    repo_id = HfApi(endpoint=server.endpoint, token=u.token).create_repo(
        f"{u.name}/{uniq('api')}", private=True).repo_id
    fg = httpx.post(url, headers=auth, json={
        "name": "one-repo", "role": "fineGrained",
        "scopes": [{"type": "repo", "name": repo_id, "permissions": ["repo.content.read"]}]})
    assert fg.status_code == 200, fg.text
    assert fg.json()["scopes"] == [{"type": "repo", "name": repo_id,
                                    "permissions": ["repo.content.read"], "repoType": "model"}]
    fg_api = HfApi(endpoint=server.endpoint, token=fg.json()["token"])
    assert fg_api.repo_info(repo_id).id == repo_id
    assert fg_api.whoami()["auth"]["accessToken"]["role"] == "fineGrained"

    # Read-only and fine-grained tokens may not manage tokens.
    for weak in (u.read_token, fg.json()["token"]):
        r = httpx.post(url, headers={"authorization": f"Bearer {weak}"}, json={})
        assert r.status_code == 403 and r.headers["x-error-code"] == "Forbidden"
    assert httpx.get(url).status_code == 401
    bad = httpx.post(url, headers=auth, json={"role": "fineGrained"})
    assert bad.status_code == 400 and "at least one scope" in bad.json()["error"]

    gone = httpx.delete(f"{url}/{body['id']}", headers=auth)
    assert gone.status_code == 200 and gone.json()["name"] == "script"
    assert status_of(HfApi(endpoint=server.endpoint, token=secret).whoami) == 401
    assert httpx.delete(f"{url}/{body['id']}", headers=auth).status_code == 404
    # Another user's token cannot be revoked by id.
    other = user_factory("else")
    other_id = json.loads(server.hver("token", "list", other.name, "--json"))[0]["id"]
    assert httpx.delete(f"{url}/{other_id}", headers=auth).status_code == 404
    assert HfApi(endpoint=server.endpoint, token=other.token).whoami()["name"] == other.name

    log = (server.data.parent / f"server-{server.port}.log").read_text(errors="replace")
    assert secret not in log and fg.json()["token"] not in log


def test_audit_log(server, user_factory, no_server_errors):
    start = audit(server, "--limit", "1")
    since = start[0]["at"] if start else "2000-01-01"
    admin = uniq("root")
    server.hver("user", "create", admin, "--admin")
    admin_token = server.hver("token", "create", admin)
    owner = user_factory("aud")
    member = user_factory("mem")
    org = uniq("auditorg")
    server.hver("org", "create", org, "--owner", owner.name)
    server.hver("org", "add-member", org, member.name, "--role", "read")
    server.hver("org", "set-role", org, member.name, "admin")
    server.hver("org", "remove-member", org, member.name)
    assert hver_in(server, "user", "set-password", owner.name,
                   stdin="a long password\n").returncode == 0
    server.hver("user", "disable", member.name)
    server.hver("user", "enable", member.name)
    revoked = server.hver("token", "create", owner.name, "--name", "temp")
    server.hver("token", "revoke", owner.name, "temp")

    api = HfApi(endpoint=server.endpoint, token=owner.token)
    repo_id = api.create_repo(f"{owner.name}/{uniq('r')}").repo_id
    api.update_repo_settings(repo_id, private=True)
    api.update_repo_settings(repo_id, gated="manual")
    moved = f"{org}/{repo_id.split('/')[1]}"
    api.move_repo(repo_id, moved)
    transferred = server.hver("repo", "transfer", moved, owner.name, "--name", "back")
    assert transferred == f"{owner.name}/back"
    assert api.repo_info(transferred).private is True
    # A site admin moves anyone's repo through the API.
    admin_api = HfApi(endpoint=server.endpoint, token=admin_token)
    admin_api.move_repo(transferred, f"{admin}/taken")
    admin_api.delete_repo(f"{admin}/taken")

    entries = audit(server, "--since", since)
    seen = {(e["event"], e["actor"], e["target"]) for e in entries}
    expected = {
        ("user.create", "@cli", admin), ("org.create", "@cli", org),
        ("org.member.add", "@cli", org), ("org.member.role", "@cli", org),
        ("org.member.remove", "@cli", org), ("user.password", "@cli", owner.name),
        ("user.disable", "@cli", member.name), ("user.enable", "@cli", member.name),
        ("token.create", "@cli", owner.name), ("token.revoke", "@cli", owner.name),
        ("repo.visibility", owner.name, f"model/{repo_id}"),
        ("repo.gated", owner.name, f"model/{repo_id}"),
        ("repo.move", owner.name, f"model/{moved}"),
        ("repo.transfer", "@cli", f"model/{owner.name}/back"),
        ("repo.move", admin, f"model/{admin}/taken"),
        ("repo.delete", admin, f"model/{admin}/taken"),
    }
    assert expected <= seen, expected - seen
    role = next(e for e in entries if e["event"] == "org.member.role" and e["target"] == org)
    assert role["details"] == {"user": member.name, "role": "admin", "previous": "read"}
    gated = next(e for e in entries if e["event"] == "repo.gated"
                 and e["target"] == f"model/{repo_id}")
    assert gated["details"] == {"gated": "manual", "previous": False}
    text = json.dumps(entries) + server.hver("audit", "--since", since)
    for secret in (revoked, admin_token, owner.token, owner.read_token):
        assert secret not in text

    # Filters, on the command line and through the site admin's API.
    only = audit(server, "--event", "token.revoke", "--actor", "@cli", "--since", since)
    assert only and all(e["event"] == "token.revoke" for e in only)
    url = f"{server.endpoint}/api/admin/audit"
    r = httpx.get(url, params={"event": "repo.delete", "actor": admin},
                  headers={"authorization": f"Bearer {admin_token}"})
    assert r.status_code == 200
    assert [e["target"] for e in r.json()] == [f"model/{admin}/taken"]
    assert admin_token not in r.text
    assert httpx.get(url, headers={"authorization": f"Bearer {owner.token}"}).status_code == 403
    assert httpx.get(url).status_code == 401
    fg_admin = server.hver("token", "create", admin, "--fine-grained", "--org", f"{admin}:read")
    assert httpx.get(url, headers={"authorization": f"Bearer {fg_admin}"}).status_code == 403
    bad = httpx.get(url, params={"since": "yesterday"},
                    headers={"authorization": f"Bearer {admin_token}"})
    assert bad.status_code == 400


def test_names_are_unique_whatever_their_case(server):
    base = uuid.uuid4().hex[:8]
    server.hver("user", "create", f"n{base}xb")
    server.hver("user", "create", f"n{base}_b")  # `_` is a character, not a wildcard
    with pytest.raises(subprocess.CalledProcessError) as taken:
        server.hver("user", "create", f"N{base}XB")
    assert "already taken" in taken.value.stderr
