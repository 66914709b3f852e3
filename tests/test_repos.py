"""Repo management through the real client: create, delete, move, settings, existence checks."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    RepositoryNotFoundError,
)


def _name(prefix: str = "r") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --- create_repo ---------------------------------------------------------------------------


def test_create_public_model_repo(api, user, server):
    repo_id = f"{user.name}/{_name()}"
    url = api.create_repo(repo_id)
    assert url == f"{server.endpoint}/{repo_id}"
    assert url.repo_id == repo_id
    assert url.repo_type == "model"
    assert url.namespace == user.name
    info = api.model_info(repo_id)
    assert info.id == repo_id
    assert info.private is False
    # A new repo already has a commit holding .gitattributes.
    assert info.sha is not None and len(info.sha) == 40
    assert [s.rfilename for s in info.siblings] == [".gitattributes"]


def test_create_repo_without_namespace_uses_callers(api, user, server):
    name = _name()
    url = api.create_repo(name)  # organization: null -> the caller's namespace
    assert url.repo_id == f"{user.name}/{name}"
    assert api.repo_exists(f"{user.name}/{name}")


def test_create_private_repo(api, user):
    repo_id = f"{user.name}/{_name()}"
    api.create_repo(repo_id, private=True)
    assert api.model_info(repo_id).private is True
    # Anonymous callers cannot see it.
    assert HfApi(endpoint=api.endpoint, token=False).repo_exists(repo_id) is False


def test_create_repo_visibility_argument(api, user):
    repo_id = f"{user.name}/{_name()}"
    api.create_repo(repo_id, visibility="private")
    assert api.model_info(repo_id).private is True


def test_create_existing_repo_conflicts(api, user, server):
    repo_id = f"{user.name}/{_name()}"
    api.create_repo(repo_id)
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo(repo_id)
    assert exc.value.response.status_code == 409


def test_create_existing_repo_exist_ok_returns_url(api, user, server):
    repo_id = f"{user.name}/{_name()}"
    first = api.create_repo(repo_id)
    sha = api.model_info(repo_id).sha
    again = api.create_repo(repo_id, exist_ok=True)
    assert again == first == f"{server.endpoint}/{repo_id}"
    assert again.repo_id == repo_id
    # The existing repo is untouched.
    assert api.model_info(repo_id).sha == sha


def test_create_409_body_carries_url(api, user, server):
    """exist_ok relies on `url` in the JSON of the 409."""
    repo_id = f"{user.name}/{_name()}"
    api.create_repo(repo_id, repo_type="dataset")
    r = httpx.post(f"{server.endpoint}/api/repos/create",
                   headers={"authorization": f"Bearer {user.token}"},
                   json={"name": repo_id.split("/")[1], "organization": user.name,
                         "type": "dataset"})
    assert r.status_code == 409
    assert r.json()["url"] == f"{server.endpoint}/datasets/{repo_id}"


@pytest.mark.parametrize("repo_type,prefix", [("dataset", "datasets/"), ("space", "spaces/")])
def test_create_other_repo_types(api, user, server, repo_type, prefix):
    repo_id = f"{user.name}/{_name()}"
    kwargs = {"space_sdk": "gradio"} if repo_type == "space" else {}
    url = api.create_repo(repo_id, repo_type=repo_type, **kwargs)
    assert url == f"{server.endpoint}/{prefix}{repo_id}"
    assert url.repo_type == repo_type
    assert api.repo_exists(repo_id, repo_type=repo_type)
    # The same name is free in the other types: types are separate namespaces.
    assert not api.repo_exists(repo_id)
    info = api.repo_info(repo_id, repo_type=repo_type)
    assert info.id == repo_id
    assert len(info.sha) == 40


def test_same_name_in_two_types(api, user):
    repo_id = f"{user.name}/{_name()}"
    api.create_repo(repo_id)
    api.create_repo(repo_id, repo_type="dataset")
    api.upload_file(path_or_fileobj=b"model", path_in_repo="which.txt", repo_id=repo_id)
    api.upload_file(path_or_fileobj=b"dataset", path_in_repo="which.txt", repo_id=repo_id,
                    repo_type="dataset")
    assert api.model_info(repo_id).sha != api.dataset_info(repo_id).sha
    assert api.list_repo_files(repo_id) == [".gitattributes", "which.txt"]
    assert api.list_repo_files(repo_id, repo_type="dataset") == [".gitattributes", "which.txt"]


def test_create_repo_in_someone_elses_namespace_is_refused(api, other):
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo(f"{other.name}/{_name()}")
    assert exc.value.response.status_code == 403


def test_create_repo_anonymous_is_refused(server):
    anon = HfApi(endpoint=server.endpoint, token=False)
    with pytest.raises(HfHubHTTPError) as exc:
        anon.create_repo(f"someone/{_name()}")
    assert exc.value.response.status_code == 401


def test_create_repo_with_read_token_is_refused(server, user):
    ro = HfApi(endpoint=server.endpoint, token=user.read_token)
    repo_id = f"{user.name}/{_name()}"
    with pytest.raises(HfHubHTTPError) as exc:
        ro.create_repo(repo_id)
    assert exc.value.response.status_code == 403
    assert not HfApi(endpoint=server.endpoint, token=user.token).repo_exists(repo_id)


def test_create_repo_invalid_name_is_400(api, user, server):
    r = httpx.post(f"{server.endpoint}/api/repos/create",
                   headers={"authorization": f"Bearer {user.token}"},
                   json={"name": "bad name!", "organization": user.name})
    assert r.status_code == 400
    assert r.headers["X-Error-Code"] == "InvalidName"


def test_create_repo_in_org(server, api, user, other):
    org = _name("org")
    server.hver("org", "create", org, "--owner", user.name)
    repo_id = f"{org}/{_name()}"
    url = api.create_repo(repo_id, private=True)
    assert url.repo_id == repo_id
    assert url.namespace == org
    assert api.model_info(repo_id).private is True
    assert org in {o["name"] for o in api.whoami()["orgs"]}
    # A non-member cannot create there, nor see the private repo.
    bob = HfApi(endpoint=server.endpoint, token=other.token)
    with pytest.raises(HfHubHTTPError) as exc:
        bob.create_repo(f"{org}/{_name()}")
    assert exc.value.response.status_code == 403
    assert bob.repo_exists(repo_id) is False
    # Once a read member, bob sees it but cannot write.
    server.hver("org", "add-member", org, other.name, "--role", "read")
    assert bob.repo_exists(repo_id) is True
    with pytest.raises(HfHubHTTPError) as exc:
        bob.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id)
    assert exc.value.response.status_code == 403


# --- delete_repo -----------------------------------------------------------------------------


def test_delete_repo(api, repo_factory):
    repo_id = repo_factory()
    api.upload_file(path_or_fileobj=b"bye", path_in_repo="a.txt", repo_id=repo_id)
    api.delete_repo(repo_id)
    assert api.repo_exists(repo_id) is False
    with pytest.raises(RepositoryNotFoundError):
        api.model_info(repo_id)
    with pytest.raises(RepositoryNotFoundError):
        api.delete_repo(repo_id)
    api.delete_repo(repo_id, missing_ok=True)


def test_delete_then_recreate_starts_empty(api, repo_factory):
    repo_id = repo_factory(repo_type="dataset")
    api.upload_file(path_or_fileobj=b"old", path_in_repo="old.txt", repo_id=repo_id,
                    repo_type="dataset")
    api.delete_repo(repo_id, repo_type="dataset")
    api.create_repo(repo_id, repo_type="dataset")
    assert api.list_repo_files(repo_id, repo_type="dataset") == [".gitattributes"]


def test_delete_repo_of_another_user(api, repo_factory, server, other):
    repo_id = repo_factory()
    bob = HfApi(endpoint=server.endpoint, token=other.token)
    with pytest.raises(HfHubHTTPError) as exc:
        bob.delete_repo(repo_id)
    assert exc.value.response.status_code == 403
    assert api.repo_exists(repo_id)


def test_delete_only_deletes_the_given_type(api, user):
    repo_id = f"{user.name}/{_name()}"
    api.create_repo(repo_id)
    api.create_repo(repo_id, repo_type="dataset")
    api.delete_repo(repo_id, repo_type="dataset")
    assert api.repo_exists(repo_id)
    assert not api.repo_exists(repo_id, repo_type="dataset")


# --- move_repo -------------------------------------------------------------------------------


def test_move_repo(api, repo_factory, user, cache_dir):
    src = repo_factory()
    api.upload_file(path_or_fileobj=b"content", path_in_repo="f.txt", repo_id=src)
    api.upload_file(path_or_fileobj=b"\x00lfs" * 100, path_in_repo="w.bin", repo_id=src)
    sha = api.model_info(src).sha
    dst = f"{user.name}/{_name('moved')}"
    api.move_repo(src, dst)
    assert api.model_info(src).id == dst  # the old id redirects, as on the Hub
    info = api.model_info(dst)
    assert info.id == dst
    assert info.sha == sha
    assert sorted(s.rfilename for s in info.siblings) == [".gitattributes", "f.txt", "w.bin"]
    p = hf_hub_download(dst, "w.bin", cache_dir=cache_dir, token=api.token)
    assert Path(p).read_bytes() == b"\x00lfs" * 100
    # The old name is free again: a new repo takes it from the redirect.
    api.create_repo(src)
    assert api.list_repo_files(src) == [".gitattributes"]
    assert api.model_info(dst).sha == sha


def test_move_dataset_repo(api, repo_factory, user):
    src = repo_factory(repo_type="dataset")
    dst = f"{user.name}/{_name('moved')}"
    api.move_repo(src, dst, repo_type="dataset")
    assert api.repo_exists(dst, repo_type="dataset")
    assert api.dataset_info(src).id == dst  # the old id redirects
    assert not api.repo_exists(src)  # to a dataset only


def test_move_onto_existing_repo_conflicts(api, repo_factory):
    a, b = repo_factory(), repo_factory()
    with pytest.raises(HfHubHTTPError) as exc:
        api.move_repo(a, b)
    assert exc.value.response.status_code == 409
    assert api.repo_exists(a) and api.repo_exists(b)


def test_move_missing_repo(api, user):
    with pytest.raises(RepositoryNotFoundError):
        api.move_repo(f"{user.name}/{_name('nope')}", f"{user.name}/{_name()}")


def test_move_into_foreign_namespace_is_refused(api, repo_factory, other):
    src = repo_factory()
    with pytest.raises(HfHubHTTPError) as exc:
        api.move_repo(src, f"{other.name}/{_name()}")
    assert exc.value.response.status_code == 403
    assert api.repo_exists(src)


# --- settings --------------------------------------------------------------------------------


def test_update_repo_settings_private_round_trip(api, repo_factory, server):
    repo_id = repo_factory()
    anon = HfApi(endpoint=server.endpoint, token=False)
    assert anon.repo_exists(repo_id)
    api.update_repo_settings(repo_id, private=True)
    assert api.model_info(repo_id).private is True
    assert anon.repo_exists(repo_id) is False
    api.update_repo_settings(repo_id, private=False)
    assert api.model_info(repo_id).private is False
    assert anon.repo_exists(repo_id) is True


def test_update_repo_settings_dataset(api, repo_factory):
    repo_id = repo_factory(repo_type="dataset")
    api.update_repo_settings(repo_id, repo_type="dataset", private=True)
    assert api.dataset_info(repo_id).private is True


def test_update_repo_settings_gated(api, repo_factory):
    repo_id = repo_factory()
    api.update_repo_settings(repo_id, gated="manual")
    assert api.model_info(repo_id).gated == "manual"
    api.update_repo_settings(repo_id, gated=False)
    assert api.model_info(repo_id).gated is False


def test_update_settings_by_non_owner_is_refused(api, repo_factory, server, other):
    repo_id = repo_factory()
    bob = HfApi(endpoint=server.endpoint, token=other.token)
    with pytest.raises(HfHubHTTPError) as exc:
        bob.update_repo_settings(repo_id, private=True)
    assert exc.value.response.status_code == 403
    assert api.model_info(repo_id).private is False


def test_update_settings_missing_repo(api, user):
    with pytest.raises(RepositoryNotFoundError):
        api.update_repo_settings(f"{user.name}/{_name('nope')}", private=True)


# --- existence checks ------------------------------------------------------------------------


def test_repo_exists(api, repo_factory, user):
    model = repo_factory()
    dataset = repo_factory(repo_type="dataset")
    assert api.repo_exists(model) is True
    assert api.repo_exists(dataset, repo_type="dataset") is True
    assert api.repo_exists(dataset) is False
    assert api.repo_exists(f"{user.name}/{_name('nope')}") is False
    assert api.repo_exists(f"nobody-{uuid.uuid4().hex[:6]}/x") is False


def test_file_exists(api, repo_factory):
    repo_id = repo_factory()
    api.upload_file(path_or_fileobj=b"x", path_in_repo="dir/a.txt", repo_id=repo_id)
    api.upload_file(path_or_fileobj=b"\x00" * 64, path_in_repo="w.bin", repo_id=repo_id)
    api.create_branch(repo_id, branch="dev")
    api.upload_file(path_or_fileobj=b"y", path_in_repo="only-dev.txt", repo_id=repo_id,
                    revision="dev")
    assert api.file_exists(repo_id, "dir/a.txt") is True
    assert api.file_exists(repo_id, "w.bin") is True  # LFS: a redirect still means "exists"
    assert api.file_exists(repo_id, "dir/missing.txt") is False
    assert api.file_exists(repo_id, "dir") is False  # a folder is not a file
    assert api.file_exists(repo_id, "only-dev.txt") is False
    assert api.file_exists(repo_id, "only-dev.txt", revision="dev") is True
    assert api.file_exists(f"{repo_id}-missing", "dir/a.txt") is False


def test_file_exists_dataset(api, repo_factory):
    repo_id = repo_factory(repo_type="dataset")
    api.upload_file(path_or_fileobj=b"a,b\n", path_in_repo="data.csv", repo_id=repo_id,
                    repo_type="dataset")
    assert api.file_exists(repo_id, "data.csv", repo_type="dataset") is True
    assert api.file_exists(repo_id, "data.csv") is False  # no such model


def test_revision_exists(api, repo_factory, user):
    repo_id = repo_factory()
    sha = api.model_info(repo_id).sha
    api.create_branch(repo_id, branch="feature/x")
    api.create_tag(repo_id, tag="v1")
    assert api.revision_exists(repo_id, "main") is True
    assert api.revision_exists(repo_id, "feature/x") is True
    assert api.revision_exists(repo_id, "v1") is True
    assert api.revision_exists(repo_id, sha) is True
    assert api.revision_exists(repo_id, "refs/heads/main") is True
    assert api.revision_exists(repo_id, "nope") is False
    assert api.revision_exists(repo_id, "0" * 40) is False
    assert api.revision_exists(f"{user.name}/{_name('nope')}", "main") is False


# --- whoami ----------------------------------------------------------------------------------


def test_whoami_invalid_token(server):
    bad = HfApi(endpoint=server.endpoint, token="hf_definitely_not_a_token")
    with pytest.raises(HfHubHTTPError) as exc:
        bad.whoami()
    assert exc.value.response.status_code == 401
    r = httpx.get(f"{server.endpoint}/api/whoami-v2",
                  headers={"authorization": "Bearer hf_definitely_not_a_token"})
    assert r.status_code == 401
    assert "error" in r.json()


def test_whoami_anonymous_is_401(server):
    r = httpx.get(f"{server.endpoint}/api/whoami-v2")
    assert r.status_code == 401


def test_whoami_read_token(server, user):
    me = HfApi(endpoint=server.endpoint, token=user.read_token).whoami()
    assert me["name"] == user.name
    assert me["type"] == "user"
    assert me["auth"]["accessToken"]["role"] == "read"


def test_invalid_token_on_public_read_is_401(api, repo_factory, server):
    """A wrong token is an error even where no token is needed, as on the Hub."""
    repo_id = repo_factory()
    r = httpx.get(f"{server.endpoint}/api/models/{repo_id}",
                  headers={"authorization": "Bearer hf_wrong"})
    assert r.status_code == 401


def test_read_token_cannot_manage_own_repo(server, user, repo_factory, api):
    repo_id = repo_factory()
    ro = HfApi(endpoint=server.endpoint, token=user.read_token)
    assert ro.model_info(repo_id).id == repo_id  # reading is fine
    for action in (
        lambda: ro.delete_repo(repo_id),
        lambda: ro.update_repo_settings(repo_id, private=True),
        lambda: ro.move_repo(repo_id, f"{user.name}/{_name('moved')}"),
        lambda: ro.create_branch(repo_id, branch="dev"),
        lambda: ro.create_tag(repo_id, tag="v1"),
    ):
        with pytest.raises(HfHubHTTPError) as exc:
            action()
        assert exc.value.response.status_code == 403
    info = api.model_info(repo_id)
    assert info.private is False
    refs = api.list_repo_refs(repo_id)
    assert [b.name for b in refs.branches] == ["main"] and refs.tags == []
