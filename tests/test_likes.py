"""Likes through the real client: unlike, list_liked_repos, list_repo_likers; private
repos stay invisible to outsiders here too."""

from __future__ import annotations

import uuid

import httpx
from huggingface_hub import HfApi
from huggingface_hub.errors import RepositoryNotFoundError


def _like(server, token, repo_id, method="POST", kind="models"):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, f"{server.endpoint}/api/{kind}/{repo_id}/like", headers=headers)


def test_like_unlike_and_listings(server, api, user, other, repo_factory):  # type: ignore[no-untyped-def]
    model = repo_factory()
    dataset = repo_factory(repo_type="dataset")
    bob = HfApi(endpoint=server.endpoint, token=other.token)

    assert _like(server, None, model).status_code == 401
    r = _like(server, other.token, model)
    assert r.status_code == 200 and r.json() == {"likes": 1}
    assert _like(server, other.token, model).json() == {"likes": 1}  # idempotent
    assert _like(server, user.token, model).json() == {"likes": 2}
    assert _like(server, other.token, dataset, kind="datasets").json() == {"likes": 1}

    assert api.model_info(model).likes == 2
    liked = bob.list_liked_repos(other.name)
    assert liked.models == [model] and liked.datasets == [dataset] and liked.spaces == []
    assert [u.username for u in api.list_repo_likers(model)] == [other.name, user.name]

    bob.unlike(model)
    assert api.model_info(model).likes == 1
    assert bob.list_liked_repos(other.name).models == []
    assert [u.username for u in api.list_repo_likers(model)] == [user.name]


def test_private_repo_likes_stay_private(server, api, user, other, repo_factory):  # type: ignore[no-untyped-def]
    private = repo_factory(private=True)
    missing = f"{user.name}/missing-{uuid.uuid4().hex[:8]}"
    assert _like(server, user.token, private).json() == {"likes": 1}
    bob = HfApi(endpoint=server.endpoint, token=other.token)
    for repo_id in (private, missing):
        r = _like(server, other.token, repo_id)
        assert (r.status_code, r.headers["X-Error-Code"]) == (404, "RepoNotFound")
        r = _like(server, other.token, repo_id, method="DELETE")
        assert (r.status_code, r.headers["X-Error-Code"]) == (404, "RepoNotFound")
        r = httpx.get(f"{server.endpoint}/api/models/{repo_id}/likers",
                      headers={"Authorization": f"Bearer {other.token}"})
        assert (r.status_code, r.headers["X-Error-Code"]) == (404, "RepoNotFound")
        try:
            list(bob.list_repo_likers(repo_id))
        except RepositoryNotFoundError:
            pass
        else:
            raise AssertionError(f"likers of {repo_id} visible to an outsider")
    assert private not in bob.list_liked_repos(user.name).models
    assert private in api.list_liked_repos(user.name).models
    r = httpx.get(f"{server.endpoint}/api/users/no-such-user-{uuid.uuid4().hex[:6]}/likes")
    assert r.status_code == 404
