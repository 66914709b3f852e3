"""Gated repos: metadata stays public, file content needs access, as on the Hub.

Outsiders get `GatedRepoError` (401 anonymous, 403 logged in) on every file but the
card (`.gitattributes` too, as on the Hub); users get access by asking ("auto": at once; "manual":
when a repo admin accepts) or by a grant; repo admins manage the requests with the
client's `*_access_request` calls.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from huggingface_hub import (
    CommitOperationAdd,
    HfApi,
    constants,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub.errors import (
    BadRequestError,
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
)

CONFIG = b'{"model_type": "gated-test"}\n'
WEIGHTS = os.urandom(64 * 1024)  # a plain LFS object
XET_WEIGHTS = os.urandom(200 * 1024)  # stored through Xet
README = b"---\nlicense: other\n---\n# A gated model\n"
FORM_README = (
    b"---\nlicense: other\nextra_gated_fields:\n  Company: text\n  Country: country\n"
    b"  Intended use:\n    type: select\n    options: [Research, Education]\n"
    b"  I agree to the license: checkbox\n---\n# A gated model with a form\n"
)
GATED_FILES = ["config.json", "weights.bin", "model.safetensors"]


@pytest.fixture
def make_gated(server, user) -> Callable[..., str]:  # type: ignore[no-untyped-def]
    """A repo with a card, a config, an LFS and a Xet file, gated as asked."""

    def make(gated: str = "manual", readme: bytes = README, namespace: str | None = None,
             private: bool = False, repo_type: str = "model", token: str | None = None) -> str:
        api = HfApi(endpoint=server.endpoint, token=token or user.token)
        repo_id = f"{namespace or user.name}/gated-{uuid.uuid4().hex[:8]}"
        api.create_repo(repo_id, repo_type=repo_type, private=private)
        with pytest.MonkeyPatch.context() as mp:  # weights.bin as a plain LFS object
            mp.setattr(constants, "HF_HUB_DISABLE_XET", True)
            api.create_commit(repo_id, repo_type=repo_type, commit_message="files", operations=[
                CommitOperationAdd("README.md", readme),
                CommitOperationAdd("config.json", CONFIG),
                CommitOperationAdd("weights.bin", WEIGHTS),
            ])
        api.upload_file(path_or_fileobj=XET_WEIGHTS, path_in_repo="model.safetensors",
                        repo_id=repo_id, repo_type=repo_type, commit_message="xet weights")
        api.update_repo_settings(repo_id, repo_type=repo_type, gated=gated)
        return repo_id

    return make


def _headers(token: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"} if token else {}


def ask(server, token: str | None, repo_id: str, repo_type: str = "model",
        **kwargs: Any) -> httpx.Response:
    """The user's side of the gate: POST ask-access with the form's answers."""
    return httpx.post(f"{server.endpoint}/api/{repo_type}s/{repo_id}/ask-access",
                      headers=_headers(token), **kwargs)


def download(server, token: str | bool, repo_id: str, filename: str, cache: Path,
             repo_type: str = "model") -> bytes:
    path = hf_hub_download(repo_id, filename, repo_type=repo_type, cache_dir=cache,
                           token=token, endpoint=server.endpoint)
    return Path(path).read_bytes()


def _all_files(server, token: str | bool, repo_id: str, cache: Path) -> dict[str, bytes]:
    return {f: download(server, token, repo_id, f, cache) for f in GATED_FILES}


def _gated_error(server, token: str | bool, repo_id: str, filename: str,
                 cache: Path) -> GatedRepoError:
    with pytest.raises(GatedRepoError) as e:
        download(server, token, repo_id, filename, cache)
    return e.value


EXPECTED = {"config.json": CONFIG, "weights.bin": WEIGHTS, "model.safetensors": XET_WEIGHTS}


@pytest.mark.usefixtures("no_server_errors")
def test_outsiders_get_gated_error(server, make_gated, other, tmp_path):
    repo_id = make_gated()
    for i, filename in enumerate(GATED_FILES):
        anon = _gated_error(server, False, repo_id, filename, tmp_path / f"a{i}")
        assert anon.response.status_code == 401
        assert anon.response.headers["X-Error-Code"] == "GatedRepo"
        assert anon.server_message is not None
        assert (f"Access to model {repo_id} is restricted. You must have access to it and be "
                "authenticated to access it. Please log in.") in anon.server_message
        for token in (other.token, other.read_token):
            bob = _gated_error(server, token, repo_id, filename, tmp_path / f"b{i}")
            assert bob.response.status_code == 403
            assert bob.server_message is not None
            assert (f"Access to model {repo_id} is restricted and you are not in the authorized "
                    f"list. Visit {server.endpoint}/{repo_id} to ask for access."
                    ) in bob.server_message
    for token in (False, other.token):
        with pytest.raises(GatedRepoError):
            snapshot_download(repo_id, cache_dir=tmp_path / "snap", token=token,
                              endpoint=server.endpoint)


@pytest.mark.usefixtures("no_server_errors")
def test_card_stays_readable_and_gitattributes_is_gated(server, make_gated, other, tmp_path):
    repo_id = make_gated(readme=FORM_README)
    for i, token in enumerate((False, other.token)):
        assert download(server, token, repo_id, "README.md", tmp_path / f"r{i}") == FORM_README
        _gated_error(server, token, repo_id, ".gitattributes", tmp_path / f"g{i}")


@pytest.mark.usefixtures("no_server_errors")
def test_metadata_stays_public(server, make_gated, other):
    repo_id = make_gated()
    for token in (False, other.token):
        bob = HfApi(endpoint=server.endpoint, token=token)
        info = bob.model_info(repo_id, files_metadata=True)
        assert info.gated == "manual"
        assert info.card_data is not None and info.card_data["license"] == "other"
        assert {s.rfilename for s in info.siblings or []} == {
            ".gitattributes", "README.md", *GATED_FILES}
        assert sorted(bob.list_repo_files(repo_id)) == sorted(
            [".gitattributes", "README.md", *GATED_FILES])
        paths = bob.get_paths_info(repo_id, ["weights.bin", "config.json"])
        assert {p.path: p.size for p in paths} == {"weights.bin": len(WEIGHTS),
                                                     "config.json": len(CONFIG)}
        assert [b.name for b in bob.list_repo_refs(repo_id).branches] == ["main"]
        assert [c.title for c in bob.list_repo_commits(repo_id)][:2] == ["xet weights", "files"]
        assert repo_id in {m.id for m in bob.list_models(author=repo_id.split("/")[0])}
        assert bob.repo_exists(repo_id) is True
        with pytest.raises(GatedRepoError):  # file_exists re-raises on gated repos, as on the Hub
            bob.file_exists(repo_id, "config.json")


@pytest.mark.usefixtures("no_server_errors")
def test_auto_gating_grants_on_ask(server, api, make_gated, other, tmp_path):
    repo_id = make_gated(gated="auto")
    _gated_error(server, other.token, repo_id, "config.json", tmp_path / "before")
    r = ask(server, other.token, repo_id)
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "accepted"}
    assert _all_files(server, other.token, repo_id, tmp_path / "after") == EXPECTED
    snap = snapshot_download(repo_id, cache_dir=tmp_path / "snap", token=other.read_token,
                             endpoint=server.endpoint)
    assert (Path(snap) / "model.safetensors").read_bytes() == XET_WEIGHTS
    accepted = list(api.list_accepted_access_requests(repo_id))
    assert [(a.username, a.email, a.status, a.fields) for a in accepted] == [
        (other.name, f"{other.name}@example.org", "accepted", None)]
    assert list(api.list_pending_access_requests(repo_id)) == []
    # Anonymous users cannot ask; asking again changes nothing.
    anon = ask(server, None, repo_id)
    assert anon.status_code == 401
    assert ask(server, other.token, repo_id).json() == {"status": "accepted"}


@pytest.mark.usefixtures("no_server_errors")
def test_manual_flow(server, api, make_gated, other, user_factory, tmp_path):
    repo_id = make_gated(gated="manual")
    r = ask(server, other.token, repo_id)
    assert r.status_code == 200 and r.json() == {"status": "pending"}
    err = _gated_error(server, other.token, repo_id, "config.json", tmp_path / "pending")
    assert err.response.status_code == 403
    assert f"Your request to access model {repo_id} is awaiting a review" in str(
        err.server_message)

    pending = list(api.list_pending_access_requests(repo_id))
    assert [(p.username, p.email, p.status) for p in pending] == [
        (other.name, f"{other.name}@example.org", "pending")]
    assert len(pending[0].request_id) == 24

    api.accept_access_request(repo_id, other.name)
    assert download(server, other.token, repo_id, "weights.bin", tmp_path / "ok") == WEIGHTS
    assert [a.username for a in api.list_accepted_access_requests(repo_id)] == [other.name]
    with pytest.raises(HfHubHTTPError) as again:  # already accepted
        api.accept_access_request(repo_id, other.name)
    assert again.value.response.status_code == 404

    api.reject_access_request(repo_id, other.name, rejection_reason="Not this time.")
    err = _gated_error(server, other.token, repo_id, "config.json", tmp_path / "rejected")
    assert f"Your request to access model {repo_id} has been rejected" in str(
        err.server_message)
    rejected = list(api.list_rejected_access_requests(repo_id))
    assert [(x.username, x.status) for x in rejected] == [(other.name, "rejected")]
    assert list(api.list_accepted_access_requests(repo_id)) == []
    # A rejected user asking again stays rejected.
    assert ask(server, other.token, repo_id).json() == {"status": "rejected"}

    api.cancel_access_request(repo_id, request_id=rejected[0].request_id)
    assert [p.username for p in api.list_pending_access_requests(repo_id)] == [other.name]
    with pytest.raises(HfHubHTTPError) as cancelled:  # already pending
        api.cancel_access_request(repo_id, other.name)
    assert cancelled.value.response.status_code == 404
    api.accept_access_request(repo_id, request_id=rejected[0].request_id)
    assert _all_files(server, other.token, repo_id, tmp_path / "back") == EXPECTED

    # A grant needs no request; the granted user's email is not shared.
    carol = user_factory("carol")
    _gated_error(server, carol.token, repo_id, "config.json", tmp_path / "carol0")
    assert api.grant_access(repo_id, carol.name) is not None
    assert download(server, carol.token, repo_id, "config.json", tmp_path / "carol") == CONFIG
    by_user = {a.username: a for a in api.list_accepted_access_requests(repo_id)}
    assert set(by_user) == {other.name, carol.name}
    assert by_user[carol.name].email is None and by_user[other.name].email is not None
    with pytest.raises(BadRequestError):  # already has access
        api.grant_access(repo_id, carol.name)
    with pytest.raises(HfHubHTTPError) as nobody:
        api.grant_access(repo_id, f"nobody-{uuid.uuid4().hex[:6]}")
    assert nobody.value.response.status_code == 404
    with pytest.raises(HfHubHTTPError) as no_request:
        api.accept_access_request(repo_id, user_factory("dave").name)
    assert no_request.value.response.status_code == 404

    # Revoking: cancel sends the user back to pending, and the files away.
    api.cancel_access_request(repo_id, carol.name)
    _gated_error(server, carol.token, repo_id, "config.json", tmp_path / "carol2")


@pytest.mark.usefixtures("no_server_errors")
def test_extra_gated_fields_are_required(server, api, make_gated, other, tmp_path):
    repo_id = make_gated(gated="auto", readme=FORM_README)
    answers = {"Company": "Acme", "Country": "Norway", "Intended use": "Research",
               "I agree to the license": "on"}
    for missing in answers:
        partial = {k: v for k, v in answers.items() if k != missing}
        r = ask(server, other.token, repo_id, data=partial)
        assert r.status_code == 400, r.text
        assert r.json()["error"] == f"Missing required field {missing!r}."
    bad = ask(server, other.token, repo_id, json=answers | {"Intended use": "Fun"})
    assert bad.status_code == 400
    assert "must be one of: Research, Education" in bad.json()["error"]
    unchecked = ask(server, other.token, repo_id, json=answers | {"I agree to the license": False})
    assert unchecked.status_code == 400
    _gated_error(server, other.token, repo_id, "config.json", tmp_path / "refused")

    r = ask(server, other.token, repo_id, data=answers | {"Unasked": "dropped"})  # a web form
    assert r.status_code == 200 and r.json() == {"status": "accepted"}
    assert download(server, other.token, repo_id, "config.json", tmp_path / "ok") == CONFIG
    [req] = list(api.list_accepted_access_requests(repo_id))
    assert req.username == other.name
    assert req.fields == {"Company": "Acme", "Country": "Norway", "Intended use": "Research",
                          "I agree to the license": True}


@pytest.mark.usefixtures("no_server_errors")
def test_json_fields_and_manual_form(server, api, make_gated, user_factory):
    repo_id = make_gated(gated="manual", readme=FORM_README)
    carol = user_factory("carol")
    fields = {"Company": "Initech", "Country": "Peru", "Intended use": "Education",
              "I agree to the license": True}
    r = ask(server, carol.token, repo_id, json={"fields": fields})
    assert r.status_code == 200 and r.json() == {"status": "pending"}
    [req] = list(api.list_pending_access_requests(repo_id))
    assert (req.username, req.fields) == (carol.name, fields)
    assert req.timestamp.tzinfo is not None


@pytest.mark.usefixtures("no_server_errors")
def test_owner_org_members_and_admins_always_read(server, user, other, user_factory, tmp_path):
    org = f"org-{uuid.uuid4().hex[:8]}"
    server.hver("org", "create", org, "--owner", user.name)
    reader, outsider = user_factory("reader"), user_factory("outsider")
    server.hver("org", "add-member", org, reader.name, "--role", "read")
    admin_name = f"root-{uuid.uuid4().hex[:6]}"
    server.hver("user", "create", admin_name, "--admin")
    admin_token = server.hver("token", "create", admin_name, "--role", "read")

    api = HfApi(endpoint=server.endpoint, token=user.token)
    org_repo = f"{org}/gated-{uuid.uuid4().hex[:8]}"
    api.create_repo(org_repo)
    api.upload_file(path_or_fileobj=CONFIG, path_in_repo="config.json", repo_id=org_repo)
    api.update_repo_settings(org_repo, gated="manual")

    for i, token in enumerate((user.token, user.read_token, reader.read_token, admin_token)):
        assert download(server, token, org_repo, "config.json", tmp_path / f"m{i}") == CONFIG
    _gated_error(server, outsider.token, org_repo, "config.json", tmp_path / "out")
    _gated_error(server, other.token, org_repo, "config.json", tmp_path / "other")


@pytest.mark.usefixtures("no_server_errors")
def test_xet_and_lfs_refused_without_access(server, api, make_gated, other, tmp_path):
    repo_id = make_gated()
    url = f"{server.endpoint}/api/models/{repo_id}/xet-read-token/main"
    anon = httpx.get(url)
    assert (anon.status_code, anon.headers["X-Error-Code"]) == (401, "GatedRepo")
    bob = httpx.get(url, headers=_headers(other.token))
    assert (bob.status_code, bob.headers["X-Error-Code"]) == (403, "GatedRepo")
    batch = {"operation": "download", "transfers": ["basic"], "hash_algo": "sha256",
             "objects": [{"oid": hashlib.sha256(WEIGHTS).hexdigest(), "size": len(WEIGHTS)}]}
    lfs = httpx.post(f"{server.endpoint}/{repo_id}.git/info/lfs/objects/batch", json=batch,
                     headers=_headers(other.token))
    assert (lfs.status_code, lfs.headers["X-Error-Code"]) == (403, "GatedRepo")
    assert "href" not in lfs.text
    # The resolve HEAD a Xet client sends gives away neither hash nor token link.
    head = httpx.head(f"{server.endpoint}/{repo_id}/resolve/main/model.safetensors",
                      headers=_headers(other.token))
    assert head.status_code == 403 and "X-Xet-Hash" not in head.headers

    # A CAS token for a repo of one's own does not reach the gated repo's files (this one
    # only: the same content in a repo one may read is readable there anyway).
    unique = os.urandom(150 * 1024)
    api.upload_file(path_or_fileobj=unique, path_in_repo="unique.safetensors", repo_id=repo_id)
    [entry] = api.get_paths_info(repo_id, ["unique.safetensors"])
    xet_hash = entry.xet_hash
    assert xet_hash is not None
    own = f"{other.name}/own-{uuid.uuid4().hex[:8]}"
    HfApi(endpoint=server.endpoint, token=other.token).create_repo(own)
    tok = httpx.get(f"{server.endpoint}/api/models/{own}/xet-read-token/main",
                    headers=_headers(other.token)).json()
    recon = httpx.get(f"{tok['casUrl']}/v1/reconstructions/{xet_hash}",
                      headers=_headers(tok["accessToken"]))
    assert recon.status_code == 404

    api.grant_access(repo_id, other.name)
    ok = httpx.get(url, headers=_headers(other.token))
    assert ok.status_code == 200 and ok.json()["accessToken"]
    recon = httpx.get(f"{ok.json()['casUrl']}/v1/reconstructions/{xet_hash}",
                      headers=_headers(ok.json()["accessToken"]))
    assert recon.status_code == 200 and recon.json()["terms"]
    # A CAS token reaches the files of its own repo only.
    recon = httpx.get(f"{tok['casUrl']}/v1/reconstructions/{xet_hash}",
                      headers=_headers(tok["accessToken"]))
    assert recon.status_code == 404
    lfs = httpx.post(f"{server.endpoint}/{repo_id}.git/info/lfs/objects/batch", json=batch,
                     headers=_headers(other.token))
    assert lfs.status_code == 200
    href = lfs.json()["objects"][0]["actions"]["download"]["href"]
    assert httpx.get(href).content == WEIGHTS


@pytest.mark.usefixtures("no_server_errors")
def test_private_and_gated_stays_invisible(server, api, make_gated, other, tmp_path):
    repo_id = make_gated(private=True)
    bob = HfApi(endpoint=server.endpoint, token=other.token)
    with pytest.raises(RepositoryNotFoundError) as e:
        download(server, other.token, repo_id, "config.json", tmp_path)
    assert not isinstance(e.value, GatedRepoError)
    assert e.value.response.status_code == 404
    asked = ask(server, other.token, repo_id)
    assert (asked.status_code, asked.headers["X-Error-Code"]) == (404, "RepoNotFound")
    with pytest.raises(RepositoryNotFoundError):
        list(bob.list_pending_access_requests(repo_id))
    with pytest.raises(RepositoryNotFoundError):
        bob.grant_access(repo_id, other.name)
    # Its owner still manages it.
    api.grant_access(repo_id, other.name)
    assert [a.username for a in api.list_accepted_access_requests(repo_id)] == [other.name]


@pytest.mark.usefixtures("no_server_errors")
def test_management_needs_repo_admin(server, api, user, make_gated, other, user_factory):
    repo_id = make_gated()
    assert ask(server, other.token, repo_id).json() == {"status": "pending"}
    bob = HfApi(endpoint=server.endpoint, token=other.token)
    with pytest.raises(HfHubHTTPError) as e:
        list(bob.list_pending_access_requests(repo_id))
    assert e.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as e:
        bob.accept_access_request(repo_id, other.name)
    assert e.value.response.status_code == 403
    anon = httpx.get(f"{server.endpoint}/api/models/{repo_id}/user-access-request/pending")
    assert anon.status_code == 401
    read_only = HfApi(endpoint=server.endpoint, token=user.read_token)
    with pytest.raises(HfHubHTTPError) as e:
        read_only.grant_access(repo_id, other.name)
    assert e.value.response.status_code == 403
    assert [p.username for p in api.list_pending_access_requests(repo_id)] == [other.name]

    # Org repos: org admins manage, write members do not.
    org = f"org-{uuid.uuid4().hex[:8]}"
    server.hver("org", "create", org, "--owner", user.name)
    writer = user_factory("writer")
    server.hver("org", "add-member", org, writer.name, "--role", "write")
    org_repo = make_gated(namespace=org)
    with pytest.raises(HfHubHTTPError) as e:
        HfApi(endpoint=server.endpoint, token=writer.token).grant_access(org_repo, other.name)
    assert e.value.response.status_code == 403
    api.grant_access(org_repo, other.name)
    assert [a.username for a in api.list_accepted_access_requests(org_repo)] == [other.name]


@pytest.mark.usefixtures("no_server_errors")
def test_ungated_repo_refuses_requests(server, api, repo_factory, other, tmp_path):
    repo_id = repo_factory()
    api.upload_file(path_or_fileobj=CONFIG, path_in_repo="config.json", repo_id=repo_id)
    assert download(server, False, repo_id, "config.json", tmp_path) == CONFIG
    with pytest.raises(BadRequestError):
        list(api.list_pending_access_requests(repo_id))
    with pytest.raises(BadRequestError):
        api.grant_access(repo_id, other.name)
    assert ask(server, other.token, repo_id).status_code == 400


@pytest.mark.usefixtures("no_server_errors")
def test_ungating_opens_and_regating_restores(server, api, make_gated, other, tmp_path):
    repo_id = make_gated(gated="manual")
    assert ask(server, other.token, repo_id).json() == {"status": "pending"}
    api.update_repo_settings(repo_id, gated=False)
    assert download(server, other.token, repo_id, "config.json", tmp_path / "open") == CONFIG
    api.update_repo_settings(repo_id, gated="manual")
    _gated_error(server, other.token, repo_id, "config.json", tmp_path / "closed")
    assert [p.username for p in api.list_pending_access_requests(repo_id)] == [other.name]


@pytest.mark.usefixtures("no_server_errors")
def test_gated_dataset(server, api, make_gated, other, tmp_path):
    repo_id = make_gated(repo_type="dataset", gated="auto")
    with pytest.raises(GatedRepoError) as e:
        hf_hub_download(repo_id, "config.json", repo_type="dataset", cache_dir=tmp_path / "a",
                        token=other.token, endpoint=server.endpoint)
    assert f"Access to dataset {repo_id} is restricted" in str(e.value.server_message)
    assert f"{server.endpoint}/datasets/{repo_id}" in str(e.value.server_message)
    # The Hub's web form posts to the repo page's ask-access.
    r = httpx.post(f"{server.endpoint}/datasets/{repo_id}/ask-access",
                   headers=_headers(other.token), data={})
    assert r.status_code == 200 and r.json() == {"status": "accepted"}
    path = hf_hub_download(repo_id, "weights.bin", repo_type="dataset",
                           cache_dir=tmp_path / "b", token=other.token, endpoint=server.endpoint)
    assert Path(path).read_bytes() == WEIGHTS
    [req] = list(api.list_accepted_access_requests(repo_id, repo_type="dataset"))
    assert req.username == other.name
