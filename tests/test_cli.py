"""The `hf` CLI against hver, and hver's own administration CLI."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from huggingface_hub import HfApi

HF = str(Path(sys.executable).parent / "hf")


@pytest.fixture
def hf(server, user, tmp_path):
    """Run `hf ...` as a subprocess logged in as `user`; returns the CompletedProcess."""
    env = dict(os.environ)
    env.update(HF_ENDPOINT=server.endpoint, HF_TOKEN=user.token, HF_HOME=str(tmp_path / "hf"),
               NO_COLOR="1")

    def run(*args: str, check: bool = True, token: str | None = None):
        e = env if token is None else {**env, "HF_TOKEN": token}
        out = subprocess.run([HF, *args], env=e, capture_output=True, text=True, timeout=120,
                             cwd=tmp_path)
        if check:
            assert out.returncode == 0, (args, out.stdout, out.stderr)
        return out

    return run


def as_json(out) -> dict:
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_whoami(hf, server, user):
    out = as_json(hf("auth", "whoami", "--format", "json"))
    assert out["user"] == user.name and out["endpoint"] == server.endpoint
    human = hf("auth", "whoami").stdout
    assert user.name in human and server.endpoint in human
    bad = hf("auth", "whoami", check=False, token="hf_definitely_wrong")
    assert bad.returncode != 0


def test_repo_create(hf, api, user, server):
    name = f"{user.name}/cli-{uuid.uuid4().hex[:6]}"
    out = as_json(hf("repos", "create", name, "--format", "json"))
    assert out == {"repo_id": name, "url": f"{server.endpoint}/{name}"}
    assert api.repo_info(name).id == name
    # Exists already: an error, unless --exist-ok.
    assert hf("repos", "create", name, check=False).returncode != 0
    hf("repos", "create", name, "--exist-ok")

    ds = f"{user.name}/cli-ds-{uuid.uuid4().hex[:6]}"
    out = as_json(hf("repos", "create", ds, "--type", "dataset", "--private", "--format",
                     "json"))
    assert out["url"] == f"{server.endpoint}/datasets/{ds}"
    info = api.repo_info(ds, repo_type="dataset")
    assert info.private is True


def test_upload_file_and_folder_then_download(hf, api, repo_factory, tmp_path):
    repo_id = repo_factory()
    local = tmp_path / "model.txt"
    local.write_bytes(b"a model card\n")
    out = as_json(hf("upload", repo_id, str(local), "--format", "json"))
    sha = out["url"].rsplit("/commit/", 1)[1]
    assert api.list_repo_commits(repo_id)[0].commit_id == sha
    hf("upload", repo_id, str(local), "renamed/inside.txt", "--commit-message", "placed")
    assert api.list_repo_commits(repo_id)[0].title == "placed"

    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_bytes(b"a\n")
    (folder / "sub" / "b.json").write_bytes(b'{"b": 1}\n')
    weights = os.urandom(300_000) + b"\x00"
    (folder / "sub" / "w.bin").write_bytes(weights)
    hf("upload", repo_id, str(folder), "dest")
    assert {"model.txt", "renamed/inside.txt", "dest/a.txt", "dest/sub/b.json",
            "dest/sub/w.bin"} <= set(api.list_repo_files(repo_id))
    (entry,) = api.get_paths_info(repo_id, ["dest/sub/w.bin"])
    assert entry.lfs is not None and entry.lfs.sha256 == hashlib.sha256(weights).hexdigest()

    # --include/--exclude
    hf("upload", repo_id, str(folder), "filtered", "--include", "*.json")
    got = set(api.list_repo_files(repo_id))
    assert "filtered/sub/b.json" in got and "filtered/a.txt" not in got

    dl = tmp_path / "dl"
    out = as_json(hf("download", repo_id, "dest/sub/w.bin", "--local-dir", str(dl), "--format",
                     "json"))
    assert Path(out["path"]) == dl / "dest" / "sub" / "w.bin"
    assert (dl / "dest" / "sub" / "w.bin").read_bytes() == weights
    hf("download", repo_id, "model.txt", "renamed/inside.txt", "--local-dir", str(dl))
    assert (dl / "model.txt").read_bytes() == b"a model card\n"
    assert (dl / "renamed" / "inside.txt").read_bytes() == b"a model card\n"
    # Whole repo into a directory.
    snap = tmp_path / "snap"
    hf("download", repo_id, "--local-dir", str(snap))
    assert (snap / "dest" / "sub" / "b.json").read_bytes() == b'{"b": 1}\n'

    missing = hf("download", repo_id, "nope.txt", "--local-dir", str(dl), check=False)
    assert missing.returncode != 0


def test_upload_with_read_token_fails(hf, repo_factory, user, tmp_path, api):
    repo_id = repo_factory()
    head = api.list_repo_commits(repo_id)[0].commit_id
    f = tmp_path / "x.txt"
    f.write_bytes(b"x")
    out = hf("upload", repo_id, str(f), check=False, token=user.read_token)
    assert out.returncode != 0
    assert api.list_repo_commits(repo_id)[0].commit_id == head


# -- hver's own CLI --------------------------------------------------------------------


def run_hver(server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hver", *args, "--data", str(server.data)],
                          env=server.env, capture_output=True, text=True, timeout=60)


def test_hver_user_and_token(server):
    name = f"cli-{uuid.uuid4().hex[:6]}"
    assert server.hver("user", "create", name, "--email", f"{name}@example.org") == name

    out = run_hver(server, "token", "create", name)
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert len(lines) == 1 and lines[0] == lines[0].strip() and " " not in lines[0]
    token = lines[0]
    assert len(token) >= 20
    me = HfApi(endpoint=server.endpoint, token=token).whoami()
    assert me["name"] == name and me["auth"]["accessToken"]["role"] == "write"

    read = server.hver("token", "create", name, "--role", "read", "--name", "ci")
    assert read != token and "\n" not in read
    me = HfApi(endpoint=server.endpoint, token=read).whoami()
    assert me["auth"]["accessToken"]["role"] == "read"

    dup = run_hver(server, "user", "create", name)
    assert dup.returncode != 0 and dup.stdout == "" and dup.stderr.strip()
    # A user and their first tokens in one call; refused whole (no token) for a taken name.
    both = f"cli-{uuid.uuid4().hex[:6]}"
    made, write, read = server.hver("user", "create", both, "--token", "write",
                                    "--token", "read").splitlines()
    assert made == both
    for secret, role in ((write, "write"), (read, "read")):
        me = HfApi(endpoint=server.endpoint, token=secret).whoami()
        assert me["name"] == both and me["auth"]["accessToken"]["role"] == role
    dup = run_hver(server, "user", "create", both, "--token", "write")
    assert dup.returncode != 0 and dup.stdout == ""
    nobody = run_hver(server, "token", "create", f"nobody-{uuid.uuid4().hex[:6]}")
    assert nobody.returncode != 0 and nobody.stdout == ""
    bad = run_hver(server, "user", "create", "bad name")
    assert bad.returncode != 0 and bad.stdout == ""


def test_hver_org_create_and_write(server, user, other):
    org = f"org-{uuid.uuid4().hex[:6]}"
    assert server.hver("org", "create", org, "--owner", user.name) == org
    me = HfApi(endpoint=server.endpoint, token=user.token).whoami()
    assert org in [o["name"] for o in me.get("orgs", [])]

    # The owner may create and write repos in the org; a non-member may not.
    api = HfApi(endpoint=server.endpoint, token=user.token)
    repo_id = f"{org}/shared"
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=b"org file", path_in_repo="o.txt", repo_id=repo_id)
    assert "o.txt" in api.list_repo_files(repo_id)
    outsider = HfApi(endpoint=server.endpoint, token=other.token)
    with pytest.raises(Exception) as exc:
        outsider.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id)
    assert getattr(exc.value, "response", None) is not None
    assert exc.value.response.status_code == 403

    server.hver("org", "add-member", org, other.name, "--role", "write")
    outsider.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id)
    assert "x.txt" in api.list_repo_files(repo_id)

    dup = run_hver(server, "org", "create", org, "--owner", user.name)
    assert dup.returncode != 0 and dup.stdout == ""
    no_owner = run_hver(server, "org", "create", f"org-{uuid.uuid4().hex[:6]}", "--owner",
                        f"ghost-{uuid.uuid4().hex[:6]}")
    assert no_owner.returncode != 0
