"""Likes that leak or that a read token casts, and repo ids that differ only in case
(issue 11), each tried through the real client or plain HTTP against a real server.

- A user's public overview counted their likes of private repos: a stranger learnt that
  private repos exist, and how many the user liked.
- A read token (the kind handed to a notebook or a download job) could like and unlike as
  its user.
- `alice/secret` and `alice/SECRET` could both exist: a look-alike beside the real repo
  for anyone who types or links the id in another case. On the Hub repo ids are one
  whatever their case.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError


def _auth(token: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"} if token else {}


def _like(server: Any, token: str | None, repo_id: str, method: str = "POST") -> httpx.Response:
    return httpx.request(method, f"{server.endpoint}/api/models/{repo_id}/like",
                         headers=_auth(token))


def _uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- likes --------------------------------------------------------------------------------------


def test_overview_counts_no_likes_of_repos_the_viewer_cannot_read(server, user_factory) -> None:  # type: ignore[no-untyped-def]
    owner, stranger = user_factory("liker"), user_factory("stranger")
    owner_api = HfApi(endpoint=server.endpoint, token=owner.token)
    public = owner_api.create_repo(f"{owner.name}/{_uniq('pub')}").repo_id
    secret = owner_api.create_repo(f"{owner.name}/{_uniq('priv')}", private=True).repo_id
    for repo_id in (public, secret):  # the client has `unlike` only: the Hub's route it is
        assert _like(server, owner.token, repo_id).status_code == 200

    assert owner_api.get_user_overview(owner.name).num_likes == 2
    for token in (stranger.token, False):  # another user, anonymous
        seen = HfApi(endpoint=server.endpoint, token=token).get_user_overview(owner.name)
        assert seen.num_likes == 1
        assert secret not in HfApi(endpoint=server.endpoint, token=token).list_liked_repos(
            owner.name).models
    r = httpx.get(f"{server.endpoint}/api/users/{owner.name}/overview")
    assert r.status_code == 200 and r.json()["numLikes"] == 1


def _fine_grained(server: Any, owner: Any, scopes: list[dict[str, Any]]) -> str:
    r = httpx.post(f"{server.endpoint}/api/settings/tokens", headers=_auth(owner.token),
                   json={"name": _uniq("fg"), "role": "fineGrained", "scopes": scopes})
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def test_read_tokens_cannot_like_or_unlike(server, repo_factory, user_factory) -> None:  # type: ignore[no-untyped-def]
    repo_id = repo_factory()
    fan = user_factory("fan")
    reader = HfApi(endpoint=server.endpoint, token=fan.read_token)
    r = _like(server, fan.read_token, repo_id)
    assert (r.status_code, r.headers["X-Error-Code"]) == (403, "Forbidden")
    assert HfApi(endpoint=server.endpoint).model_info(repo_id).likes == 0

    # A like cast with a write token stays when a read token tries to take it back.
    assert _like(server, fan.token, repo_id).json() == {"likes": 1}
    with pytest.raises(HfHubHTTPError) as exc:
        reader.unlike(repo_id)
    assert exc.value.response.status_code == 403
    assert _like(server, fan.read_token, repo_id, "DELETE").status_code == 403
    assert HfApi(endpoint=server.endpoint).model_info(repo_id).likes == 1
    assert repo_id in reader.list_liked_repos(fan.name).models


def test_fine_grained_tokens_like_only_when_they_may_write_as_the_user(  # type: ignore[no-untyped-def]
        server, repo_factory, user_factory) -> None:
    repo_id = repo_factory()
    fan = user_factory("fgfan")
    fan_repo = HfApi(endpoint=server.endpoint, token=fan.token).create_repo(
        f"{fan.name}/{_uniq('own')}").repo_id
    weak = [
        [{"type": "user", "name": fan.name, "permissions": ["repo.content.read"]}],
        [{"type": "repo", "name": repo_id, "permissions": ["repo.content.read"]}],
        [{"type": "repo", "name": fan_repo, "permissions": ["repo.write"]}],  # one repo's CI
    ]
    for scopes in weak:
        r = _like(server, _fine_grained(server, fan, scopes), repo_id)
        assert r.status_code == 403, (scopes, r.text)
    strong = _fine_grained(server, fan, [
        {"type": "user", "name": fan.name, "permissions": ["repo.write"]}])
    assert _like(server, strong, repo_id).json() == {"likes": 1}
    HfApi(endpoint=server.endpoint, token=strong).unlike(repo_id)
    assert HfApi(endpoint=server.endpoint).model_info(repo_id).likes == 0


# -- repo ids whatever their case ----------------------------------------------------------------


def _error(r: httpx.Response) -> tuple[int, str | None, str | None]:
    return r.status_code, r.headers.get("X-Error-Code"), r.headers.get("X-Error-Message")


def _create(server: Any, token: str, ns: str, name: str, repo_type: str = "model",
            private: bool = False) -> httpx.Response:
    return httpx.post(f"{server.endpoint}/api/repos/create", headers=_auth(token),
                      json={"name": name, "organization": ns, "type": repo_type,
                            "private": private})


def test_a_repo_id_in_another_case_is_the_same_repo(server, api, user) -> None:  # type: ignore[no-untyped-def]
    name = _uniq("Secret")
    repo_id = f"{user.name}/{name}"
    assert _create(server, user.token, user.name, name).status_code == 200
    sha = api.model_info(repo_id).sha

    exact = _create(server, user.token, user.name, name)
    for other_case in (name.upper(), name.lower()):
        twin = _create(server, user.token, user.name, other_case)
        assert _error(twin) == _error(exact) and twin.status_code == 409
        with pytest.raises(HfHubHTTPError) as exc:
            api.create_repo(f"{user.name}/{other_case}")
        assert exc.value.response.status_code == 409
        api.create_repo(f"{user.name}/{other_case}", exist_ok=True)  # makes nothing

    # Any casing finds it, and every answer keeps the casing it was created with.
    for spelled in (f"{user.name.upper()}/{name.lower()}", f"{user.name}/{name.upper()}"):
        info = api.model_info(spelled)
        assert (info.id, info.sha) == (repo_id, sha)
    api.upload_file(path_or_fileobj=b"one repo\n", path_in_repo="a.txt",
                    repo_id=f"{user.name}/{name.lower()}")
    assert api.list_repo_files(repo_id) == [".gitattributes", "a.txt"]
    assert [r.id for r in api.list_models(author=user.name, search=name.lower())] == [repo_id]


def test_private_repo_in_another_case_stays_missing(server, user, other) -> None:  # type: ignore[no-untyped-def]
    name = _uniq("hidden")
    owner = HfApi(endpoint=server.endpoint, token=user.token)
    owner.create_repo(f"{user.name}/{name}", private=True)
    assert owner.model_info(f"{user.name}/{name.upper()}").private is True
    for token in (other.token, other.read_token, False):
        with pytest.raises(RepositoryNotFoundError):
            HfApi(endpoint=server.endpoint, token=token).model_info(f"{user.name}/{name.upper()}")


def test_a_move_may_not_take_a_name_in_another_case(api, user, repo_factory) -> None:  # type: ignore[no-untyped-def]
    taken = repo_factory(name=_uniq("taken"))
    mover = repo_factory(name=_uniq("mover"))
    with pytest.raises(HfHubHTTPError) as exc:
        api.move_repo(mover, f"{user.name}/{taken.split('/')[1].upper()}")
    assert exc.value.response.status_code == 409
    assert api.model_info(mover).id == mover and api.model_info(taken).id == taken

    # Its own name in another case is no one else's: that rename is allowed.
    recased = f"{user.name}/{mover.split('/')[1].upper()}"
    api.move_repo(mover, recased)
    assert api.model_info(mover).id == recased


def test_types_still_have_their_own_names(api, user) -> None:  # type: ignore[no-untyped-def]
    name = _uniq("shared")
    api.create_repo(f"{user.name}/{name}")
    api.create_repo(f"{user.name}/{name.upper()}", repo_type="dataset")
    assert api.dataset_info(f"{user.name}/{name}").id == f"{user.name}/{name.upper()}"
    assert api.model_info(f"{user.name}/{name.upper()}").id == f"{user.name}/{name}"
