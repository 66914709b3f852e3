"""Organizations: overviews and members through the real client; org admins manage
members over the API, and nobody else can."""

from __future__ import annotations

import uuid

import httpx
from huggingface_hub import HfApi


def test_overviews_and_members(server, api, user, other, user_factory):  # type: ignore[no-untyped-def]
    org = f"org-{uuid.uuid4().hex[:8]}"
    server.hver("org", "create", org, "--owner", user.name)
    server.hver("org", "add-member", org, other.name, "--role", "read")
    api.create_repo(f"{org}/public-model")
    api.create_repo(f"{org}/secret-model", private=True)
    api.create_repo(f"{org}/data", repo_type="dataset")

    mine = api.get_organization_overview(org)
    assert (mine.name, mine.num_users, mine.num_models, mine.num_datasets) == (org, 2, 2, 1)
    anon = HfApi(endpoint=server.endpoint, token=False).get_organization_overview(org)
    assert anon.num_models == 1  # the private model is not counted for outsiders
    members = {u.username for u in api.list_organization_members(org)}
    assert members == {user.name, other.name}

    me = api.get_user_overview(user.name)
    assert me.username == user.name and org in {o.name for o in me.orgs}


def test_org_admins_manage_members(server, api, user, other, user_factory):  # type: ignore[no-untyped-def]
    org = f"org-{uuid.uuid4().hex[:8]}"
    server.hver("org", "create", org, "--owner", user.name)
    third = user_factory("carol")
    url = f"{server.endpoint}/api/organizations/{org}/members"

    def put(token, who, role):  # type: ignore[no-untyped-def]
        return httpx.put(f"{url}/{who}", json={"role": role},
                         headers={"Authorization": f"Bearer {token}"})

    assert put(other.token, third.name, "write").status_code == 403  # not a member
    assert put(user.read_token, third.name, "write").status_code == 403  # read token
    assert httpx.put(f"{url}/{third.name}", json={"role": "write"}).status_code == 401
    r = put(user.token, other.name, "write")
    assert r.status_code == 200 and r.json() == {"user": other.name, "role": "write"}
    assert put(other.token, third.name, "read").status_code == 403  # writers don't manage
    assert put(user.token, other.name, "admin").status_code == 200
    assert put(other.token, third.name, "read").status_code == 200  # now an admin
    assert put(user.token, third.name, "owner").status_code == 400
    members = {u.username: u for u in api.list_organization_members(org)}
    assert set(members) == {user.name, other.name, third.name}

    r = httpx.delete(f"{url}/{third.name}", headers={"Authorization": f"Bearer {other.token}"})
    assert r.status_code == 200
    r = httpx.delete(f"{url}/{other.name}", headers={"Authorization": f"Bearer {user.token}"})
    assert r.status_code == 200
    r = httpx.delete(f"{url}/{user.name}", headers={"Authorization": f"Bearer {user.token}"})
    assert r.status_code == 409  # an organization keeps an admin
    assert {u.username for u in api.list_organization_members(org)} == {user.name}
    events = server.hver("audit", "--actor", user.name, "--json")
    assert "org.member.remove" in events and other.name in events
