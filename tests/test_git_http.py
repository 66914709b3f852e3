"""git over HTTP: the real `git` and `git-lfs` against a real hver.

Clones of public, private and gated repos with and without a token (Basic, any user
name, the token as password), shallow clones, fetches of new commits, and large files
through git-lfs from both LFS- and Xet-stored copies. Pushes land as API commits do:
LFS files through git-lfs, branches and tags, pull requests by non-writers on their
`refs/pr/N`, and every refusal (read tokens, rewrites, large files outside LFS, pointers
to objects never uploaded, the default branch deleted) leaves the refs as they were.
"""

from __future__ import annotations

import hashlib
import html
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from huggingface_hub import HfApi, constants

pytestmark = pytest.mark.skipif(shutil.which("git") is None or shutil.which("git-lfs") is None,
                                reason="needs git and git-lfs (Debian: apt-get install git-lfs)")

MB = 1024 * 1024
ZERO = "0" * 40


@pytest.fixture(autouse=True)
def _clean(no_server_errors: None) -> None:
    pass


@pytest.fixture
def git_env(tmp_path: Path) -> dict[str, str]:
    """git with no prompts, no user config and git-lfs installed in a home of its own."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(HOME=str(home), GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1",
               GIT_LFS_SKIP_SMUDGE="0")
    subprocess.run(["git", "lfs", "install", "--skip-repo"], env=env, check=True,
                   capture_output=True)
    return env


def git(env: dict[str, str], *args: str, cwd: Path | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["git", *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=300)
    if check and done.returncode:
        raise AssertionError(f"git {' '.join(args)}: {done.returncode}\n{done.stderr}")
    return done


def url(server: Any, repo: str, token: str | None = None, prefix: str = "") -> str:
    host = server.endpoint.removeprefix("http://")
    cred = f"anyone:{token}@" if token else ""
    return f"http://{cred}{host}/{prefix}{repo}"


def head_now(api: HfApi, repo: str) -> str:
    sha = api.model_info(repo).sha
    assert sha is not None
    return sha


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_clone_a_public_model_with_lfs_and_xet_files(
        server: Any, user_factory: Callable[..., Any], git_env: dict[str, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    user = user_factory("gitpub")
    api = HfApi(endpoint=server.endpoint, token=user.token)
    repo = f"{user.name}/model"
    api.create_repo(repo)
    xet_data, lfs_data = os.urandom(20 * MB), os.urandom(20 * MB)
    api.upload_file(path_or_fileobj=b'{"model_type": "gpt2"}', path_in_repo="config.json",
                    repo_id=repo)
    api.upload_file(path_or_fileobj=xet_data, path_in_repo="xet.bin", repo_id=repo)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    api.upload_file(path_or_fileobj=lfs_data, path_in_repo="weights/lfs.bin", repo_id=repo)
    head = api.model_info(repo).sha

    out = tmp_path / "clone"
    git(git_env, "clone", url(server, repo), str(out))  # anonymous: a public repo
    assert git(git_env, "rev-parse", "HEAD", cwd=out).stdout.strip() == head
    assert (out / "config.json").read_bytes() == b'{"model_type": "gpt2"}'
    assert sha256(out / "xet.bin") == hashlib.sha256(xet_data).hexdigest()
    assert sha256(out / "weights" / "lfs.bin") == hashlib.sha256(lfs_data).hexdigest()
    # The history is the hub's: the same commits, in the same order.
    log = git(git_env, "log", "--format=%H", cwd=out).stdout.split()
    assert log == [c.commit_id for c in api.list_repo_commits(repo)]

    # A new commit on the hub reaches the clone with `git pull`; `.git` in the URL too.
    api.upload_file(path_or_fileobj=b"# card\n", path_in_repo="README.md", repo_id=repo)
    git(git_env, "pull", "--ff-only", url(server, repo) + ".git", "main", cwd=out)
    assert (out / "README.md").read_bytes() == b"# card\n"
    assert git(git_env, "rev-parse", "HEAD", cwd=out).stdout.strip() == api.model_info(repo).sha

    # A shallow clone holds only the last commit; a deeper fetch brings one more.
    shallow = tmp_path / "shallow"
    git(git_env, "clone", "--depth", "1", url(server, repo), str(shallow))
    assert git(git_env, "rev-list", "--count", "HEAD", cwd=shallow).stdout.strip() == "1"
    assert sha256(shallow / "xet.bin") == hashlib.sha256(xet_data).hexdigest()
    git(git_env, "fetch", "--deepen", "1", cwd=shallow)
    assert git(git_env, "rev-list", "--count", "HEAD", cwd=shallow).stdout.strip() == "2"

    # A partial clone fetches the blobs it skipped when it checks them out.
    partial = tmp_path / "partial"
    git(git_env, "clone", "--filter=blob:none", "--no-checkout", url(server, repo), str(partial))
    missing = git(git_env, "rev-list", "--objects", "--missing=print", "HEAD", cwd=partial)
    assert any(line.startswith("?") for line in missing.stdout.splitlines())
    git(git_env, "checkout", "main", cwd=partial)
    assert (partial / "README.md").read_bytes() == b"# card\n"
    assert sha256(partial / "weights" / "lfs.bin") == hashlib.sha256(lfs_data).hexdigest()

    # Clients of protocol versions 0 and 1 (older git, or set so) clone the same.
    for version in ("0", "1"):
        old = tmp_path / f"v{version}"
        git(git_env, "-c", f"protocol.version={version}", "clone", url(server, repo), str(old))
        assert git(git_env, "rev-parse", "HEAD", cwd=old).stdout.strip() == head_now(api, repo)
        assert sha256(old / "xet.bin") == hashlib.sha256(xet_data).hexdigest()


def test_private_repos_are_missing_repos(server: Any, user_factory: Callable[..., Any],
                                         git_env: dict[str, str], tmp_path: Path) -> None:
    owner, other = user_factory("gitown"), user_factory("gitother")
    api = HfApi(endpoint=server.endpoint, token=owner.token)
    repo = f"{owner.name}/secret"
    api.create_repo(repo, private=True)
    api.upload_file(path_or_fileobj=b"private bytes", path_in_repo="notes.txt", repo_id=repo)
    missing = f"{owner.name}/no-such-repo"

    def attempt(repo_id: str, token: str | None) -> str:
        done = git(git_env, "clone", url(server, repo_id, token), str(tmp_path / "x"),
                   check=False)
        assert done.returncode != 0
        assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())
        return done.stderr.replace(repo_id, "REPO").replace(token or "-", "TOKEN")

    # Without credentials git is asked for them, for both (no prompt here: it fails).
    assert attempt(repo, None) == attempt(missing, None)
    assert "could not read Username" in attempt(repo, None)
    # Another user's token: "not found", for both.
    assert attempt(repo, other.token) == attempt(missing, other.token)
    assert "not found" in attempt(repo, other.token)
    # The HTTP answers are the same too.
    for path in (repo, missing):
        r = httpx.get(f"{server.endpoint}/{path}/info/refs?service=git-upload-pack")
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic")
        r = httpx.get(f"{server.endpoint}/{path}/info/refs?service=git-upload-pack",
                      headers={"authorization": f"Bearer {other.token}"})
        assert (r.status_code, r.headers["X-Error-Code"]) == (404, "RepoNotFound")

    # The owner's read token, as the password of any user name, or as a Bearer header.
    out = tmp_path / "mine"
    git(git_env, "clone", url(server, repo, owner.read_token), str(out))
    assert (out / "notes.txt").read_bytes() == b"private bytes"
    bearer = tmp_path / "bearer"
    git(git_env, "-c", f"http.extraHeader=Authorization: Bearer {owner.token}", "clone",
        url(server, repo), str(bearer))
    assert (bearer / "notes.txt").read_bytes() == b"private bytes"


def test_gated_repos_need_granted_access(server: Any, user_factory: Callable[..., Any],
                                         git_env: dict[str, str], tmp_path: Path) -> None:
    owner, visitor = user_factory("gitgate"), user_factory("gitvisit")
    api = HfApi(endpoint=server.endpoint, token=owner.token)
    repo = f"{owner.name}/gated"
    api.create_repo(repo)
    api.upload_file(path_or_fileobj=b"gated bytes", path_in_repo="data.txt", repo_id=repo)
    api.update_repo_settings(repo, gated="manual")

    refused = git(git_env, "clone", url(server, repo, visitor.token), str(tmp_path / "no"),
                  check=False)
    assert refused.returncode != 0 and "403" in refused.stderr
    r = httpx.get(f"{server.endpoint}/{repo}/info/refs?service=git-upload-pack",
                  headers={"authorization": f"Bearer {visitor.token}"})
    assert (r.status_code, r.headers["X-Error-Code"]) == (403, "GatedRepo")
    anonymous = httpx.get(f"{server.endpoint}/{repo}/info/refs?service=git-upload-pack")
    assert anonymous.status_code == 401

    api.grant_access(repo, visitor.name)
    out = tmp_path / "yes"
    git(git_env, "clone", url(server, repo, visitor.token), str(out))
    assert (out / "data.txt").read_bytes() == b"gated bytes"


def test_datasets_and_refusals(server: Any, user_factory: Callable[..., Any],
                               git_env: dict[str, str], tmp_path: Path) -> None:
    user = user_factory("gitdata")
    api = HfApi(endpoint=server.endpoint, token=user.token)
    repo = f"{user.name}/corpus"
    api.create_repo(repo, repo_type="dataset")
    api.upload_file(path_or_fileobj=b"a,b\n1,2\n", path_in_repo="train.csv", repo_id=repo,
                    repo_type="dataset")
    # The clone command the dataset's page shows, as a newcomer would paste it.
    page = httpx.get(f"{server.endpoint}/datasets/{repo}").text
    command = next(line for line in html.unescape(page).splitlines()
                   if line.startswith("git clone "))
    assert command == f"git clone {server.endpoint}/datasets/{repo}"
    out = tmp_path / "ds"
    git(git_env, *command.split()[1:], str(out))
    assert (out / "train.csv").read_bytes() == b"a,b\n1,2\n"
    # A model of that id does not exist.
    assert git(git_env, "ls-remote", url(server, repo, user.token), check=False).returncode

    base = f"{server.endpoint}/datasets/{repo}"
    r = httpx.get(f"{base}/info/refs")  # the dumb protocol is not served
    assert (r.status_code, r.headers["X-Error-Code"]) == (403, "Forbidden")
    r = httpx.post(f"{base}/git-upload-pack", content=b"0000",
                   headers={"content-type": "text/plain"})
    assert r.status_code == 400 and r.headers["X-Error-Code"]
    r = httpx.post(f"{base}/git-upload-pack", content=b"\x1f\x8b not gzip",
                   headers={"content-type": "application/x-git-upload-pack-request",
                            "content-encoding": "gzip"})
    assert r.status_code == 400 and r.headers["X-Error-Code"] == "BadRequest"
    # Garbage where pkt-lines belong: git's ERR line (or nothing), never a server error
    # (the `no_server_errors` fixture reads the log).
    token = {"authorization": f"Bearer {user.token}"}
    for service, body in (("upload-pack", b"zzzz not a pkt-line"),
                          ("upload-pack", b"0032want " + b"0" * 40 + b"\n0000"),
                          ("receive-pack", b"003fnot a command line at all, really, not one\n0000"),
                          ("receive-pack", b"00041234")):
        r = httpx.post(f"{base}/git-{service}", content=body, headers={
            "content-type": f"application/x-git-{service}-request", **token})
        assert r.status_code == 200 and b"ok refs" not in r.content, (service, r.content)
    assert api.list_repo_files(repo, repo_type="dataset") == [".gitattributes", "train.csv"]


def commit_all(env: dict[str, str], cwd: Path, message: str) -> str:
    git(env, "add", "-A", cwd=cwd)
    git(env, "-c", "user.name=Pusher", "-c", "user.email=pusher@example.org", "commit", "-qm",
        message, cwd=cwd)
    return git(env, "rev-parse", "HEAD", cwd=cwd).stdout.strip()


def test_push_lands_as_a_commit(server: Any, user_factory: Callable[..., Any],
                                git_env: dict[str, str], tmp_path: Path) -> None:
    user = user_factory("gitpush")
    api = HfApi(endpoint=server.endpoint, token=user.token)
    repo = f"{user.name}/pushed"
    api.create_repo(repo)
    api.upload_file(path_or_fileobj=b'{"v": 1}', path_in_repo="config.json", repo_id=repo)
    work = tmp_path / "work"
    remote = url(server, repo, user.token)
    git(git_env, "clone", remote, str(work))
    git(git_env, "lfs", "track", "*.safetensors", cwd=work)
    weights = os.urandom(3 * MB)
    (work / "model.safetensors").write_bytes(weights)
    (work / "config.json").write_text('{"v": 2}')
    (work / "README.md").write_text("---\nlicense: mit\ntags: [pushed]\n---\n# Pushed\n")
    sha = commit_all(git_env, work, "Add weights over git")
    git(git_env, "push", "origin", "main", cwd=work)

    info = api.model_info(repo, files_metadata=True)
    assert info.sha == sha  # the pushed commit itself, id and all
    files = {s.rfilename: s for s in info.siblings or []}
    assert set(files) == {".gitattributes", "config.json", "model.safetensors", "README.md"}
    assert files["model.safetensors"].lfs is not None
    assert files["model.safetensors"].lfs.sha256 == hashlib.sha256(weights).hexdigest()
    assert info.card_data is not None and info.card_data.get("license") == "mit"
    assert "pushed" in (info.tags or [])
    got = Path(api.hf_hub_download(repo, "model.safetensors", cache_dir=tmp_path / "cache"))
    assert got.read_bytes() == weights
    page = httpx.get(f"{server.endpoint}/{repo}/commits/main")
    assert page.status_code == 200 and "Add weights over git" in page.text
    page = httpx.get(f"{server.endpoint}/{repo}")
    assert page.status_code == 200 and "Pushed" in page.text  # the card, rendered
    assert api.list_repo_commits(repo)[0].title == "Add weights over git"

    # A branch and a tag, pushed.
    git(git_env, "checkout", "-qb", "dev", cwd=work)
    (work / "dev.txt").write_text("on dev")
    dev = commit_all(git_env, work, "Dev work")
    git(git_env, "tag", "v1", cwd=work)
    git(git_env, "push", "origin", "dev", "v1", cwd=work)
    refs = api.list_repo_refs(repo)
    assert {b.name: b.target_commit for b in refs.branches}["dev"] == dev
    assert {t.name: t.target_commit for t in refs.tags}["v1"] == dev
    assert api.list_repo_files(repo) == sorted(files)  # main did not move

    # A rewrite of history by a writer is theirs to make (forced), and a deletion too;
    # never of the default branch.
    git(git_env, "reset", "-q", "--hard", "HEAD~1", cwd=work)
    (work / "dev.txt").write_text("rewritten")
    forced = commit_all(git_env, work, "Rewrite dev")
    rejected = git(git_env, "push", "origin", "dev", cwd=work, check=False)
    assert rejected.returncode != 0 and "non-fast-forward" in rejected.stderr + rejected.stdout
    git(git_env, "push", "--force", "origin", "dev", cwd=work)
    assert {b.name: b.target_commit for b in api.list_repo_refs(repo).branches}["dev"] == forced
    git(git_env, "push", "origin", ":dev", cwd=work)
    assert "dev" not in {b.name for b in api.list_repo_refs(repo).branches}
    refused = git(git_env, "push", "origin", ":main", cwd=work, check=False)
    assert refused.returncode != 0 and "default branch cannot be deleted" in refused.stderr
    assert api.model_info(repo).sha == sha


def test_refused_pushes_change_nothing(server: Any, user_factory: Callable[..., Any],
                                       git_env: dict[str, str], tmp_path: Path) -> None:
    owner, reader = user_factory("gitrefuse"), user_factory("gitreader")
    api = HfApi(endpoint=server.endpoint, token=owner.token)
    repo = f"{owner.name}/guarded"
    api.create_repo(repo)
    api.upload_file(path_or_fileobj=b"v1", path_in_repo="notes.txt", repo_id=repo)
    head = api.model_info(repo).sha
    work = tmp_path / "work"
    git(git_env, "clone", url(server, repo, owner.token), str(work))

    def refused(remote: str, *args: str, env: dict[str, str] | None = None) -> str:
        done = git(git_env | (env or {}), "push", remote, *args, cwd=work, check=False)
        assert done.returncode != 0, done.stderr
        assert api.model_info(repo).sha == head
        return done.stderr + done.stdout

    # Anonymous: asked for credentials. Another user's token, and the owner's read token.
    (work / "notes.txt").write_text("v2")
    new = commit_all(git_env, work, "v2")
    assert "could not read Username" in refused(url(server, repo), "HEAD:main")
    # Anyone signed in may open pull requests, so may push, but only to theirs.
    assert "write access" in refused(url(server, repo, reader.token), "HEAD:main")
    assert "403" in refused(url(server, repo, owner.read_token), "HEAD:main")

    # A large file outside LFS (`.raw` is not in the hub's LFS patterns): the Hub's hint.
    # Nothing of it enters the repo.
    (work / "big.raw").write_bytes(os.urandom(11 * MB))
    big = commit_all(git_env, work, "big")
    text = refused(url(server, repo, owner.token), "HEAD:main")
    assert "git-lfs" in text and "big.raw" in text
    r = httpx.get(f"{server.endpoint}/{repo}/resolve/{big}/big.raw",
                  headers={"authorization": f"Bearer {owner.token}"})
    assert r.status_code == 404, r.status_code
    r = httpx.get(f"{server.endpoint}/{repo}/resolve/{new}/notes.txt",
                  headers={"authorization": f"Bearer {owner.token}"})
    assert r.status_code == 404, r.status_code  # its parent did not land either

    # A pointer to an object never uploaded (git-lfs told not to push it).
    git(git_env, "reset", "-q", "--hard", new, cwd=work)
    oid = hashlib.sha256(b"never sent").hexdigest()
    (work / "ghost.raw").write_text(
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize 10\n")
    commit_all(git_env, work, "ghost")
    text = refused(url(server, repo, owner.token), "HEAD:main",
                   env={"GIT_LFS_SKIP_PUSH": "1"})
    assert "never uploaded" in text

    # Refs outside heads, tags and pull requests; a ref that moved since the fetch.
    assert "refs/heads" in refused(url(server, repo, owner.token), "HEAD:refs/meta/x")
    api.upload_file(path_or_fileobj=b"elsewhere", path_in_repo="other.txt", repo_id=repo)
    head = api.model_info(repo).sha
    git(git_env, "reset", "-q", "--hard", new, cwd=work)
    assert "rejected" in refused(url(server, repo, owner.token), "HEAD:main")


def test_pull_requests_by_push(server: Any, user_factory: Callable[..., Any],
                               git_env: dict[str, str], tmp_path: Path) -> None:
    owner, contributor = user_factory("gitprown"), user_factory("gitprcon")
    api = HfApi(endpoint=server.endpoint, token=owner.token)
    repo = f"{owner.name}/open"
    api.create_repo(repo)
    api.upload_file(path_or_fileobj=b"base", path_in_repo="data.txt", repo_id=repo)
    head = api.model_info(repo).sha
    theirs = HfApi(endpoint=server.endpoint, token=contributor.token)
    pr = theirs.create_pull_request(repo, title="Better data")
    assert pr.num == 1

    work = tmp_path / "work"
    remote = url(server, repo, contributor.token)
    git(git_env, "clone", remote, str(work))
    git(git_env, "lfs", "track", "*.bin", cwd=work)
    blob = os.urandom(MB)
    (work / "extra.bin").write_bytes(blob)
    (work / "data.txt").write_text("better")
    sha = commit_all(git_env, work, "Improve the data")
    # Not the branch: they cannot write the repo.
    done = git(git_env, "push", "origin", "HEAD:main", cwd=work, check=False)
    assert done.returncode != 0
    assert api.model_info(repo).sha == head
    # Their pull request's ref: the commit lands there, on the thread too.
    git(git_env, "push", "origin", "HEAD:refs/pr/1", cwd=work)
    details = api.get_discussion_details(repo, 1)
    assert details.is_pull_request and details.status in {"draft", "open"}
    refs = api.list_repo_refs(repo, include_pull_requests=True)
    assert {r.ref: r.target_commit for r in refs.pull_requests or []}["refs/pr/1"] == sha
    assert any(e.type == "commit" for e in details.events)
    assert api.hf_hub_download(repo, "data.txt", revision="refs/pr/1",
                               cache_dir=tmp_path / "c") is not None
    got = Path(theirs.hf_hub_download(repo, "extra.bin", revision="refs/pr/1",
                                      cache_dir=tmp_path / "c2"))
    assert got.read_bytes() == blob
    # Merged by the owner, the files reach main.
    if details.status == "draft":
        api.change_discussion_status(repo, 1, new_status="open")
    api.merge_pull_request(repo, 1)
    assert api.hf_hub_download(repo, "data.txt", cache_dir=tmp_path / "c3") is not None
    assert (Path(api.hf_hub_download(repo, "data.txt", cache_dir=tmp_path / "c4"))
            .read_bytes() == b"better")


def pkt(line: bytes) -> bytes:
    return f"{len(line) + 4:04x}".encode() + line


def test_an_interrupted_push_changes_nothing(server: Any, user_factory: Callable[..., Any],
                                             git_env: dict[str, str], tmp_path: Path) -> None:
    """The pack of a push cut short (a dropped connection, a killed client) is refused
    whole: no ref moves and none of its objects can be read."""
    user = user_factory("gitcut")
    api = HfApi(endpoint=server.endpoint, token=user.token)
    repo = f"{user.name}/cut"
    api.create_repo(repo)
    api.upload_file(path_or_fileobj=b"v1", path_in_repo="notes.txt", repo_id=repo)
    old = api.model_info(repo).sha
    work = tmp_path / "work"
    git(git_env, "clone", url(server, repo, user.token), str(work))
    (work / "notes.txt").write_bytes(os.urandom(64 * 1024))
    new = commit_all(git_env, work, "v2")
    pack = subprocess.run(["git", "pack-objects", "--stdout", "--revs"], cwd=work, env=git_env,
                          input=f"{new}\n^{old}\n".encode(), capture_output=True,
                          check=True).stdout
    head = pkt(f"{old} {new} refs/heads/main\0report-status\n".encode()) + b"0000"
    endpoint = f"{server.endpoint}/{repo}/git-receive-pack"
    headers = {"content-type": "application/x-git-receive-pack-request",
               "authorization": f"Bearer {user.token}"}

    cut = httpx.post(endpoint, content=head + pack[: len(pack) // 2], headers=headers)
    assert cut.status_code == 200, cut.text
    assert b"ng refs/heads/main" in cut.content and b"unpack ok" not in cut.content
    assert api.model_info(repo).sha == old
    r = httpx.get(f"{server.endpoint}/{repo}/resolve/{new}/notes.txt", headers=headers)
    assert r.status_code == 404

    whole = httpx.post(endpoint, content=head + pack, headers=headers)
    assert b"unpack ok" in whole.content and b"ok refs/heads/main" in whole.content
    assert api.model_info(repo).sha == new


def commit_on(parent: str, tree: Any, message: str) -> Any:
    """A dulwich commit of `tree` on `parent`, built by hand (to send in a raw push)."""
    from dulwich.objects import Commit

    c = Commit()
    c.tree, c.parents = tree.id, [cast(Any, parent.encode())]
    c.author = c.committer = b"T <t@example.org>"
    c.author_time = c.commit_time = 1_700_000_000
    c.author_timezone = c.commit_timezone = 0
    c.message = message.encode()
    return c


def raw_push(server: Any, repo: str, token: str, commands: list[tuple[str, str, str]],
             objects: list[Any], caps: str = "report-status") -> bytes:
    """A receive-pack request built by hand: `commands` (old, new, ref) and a pack of
    dulwich `objects`, sent as git would; returns the report."""
    from io import BytesIO

    from dulwich.object_format import DEFAULT_OBJECT_FORMAT
    from dulwich.pack import write_pack_objects

    lines = [f"{old} {new} {ref}".encode() for old, new, ref in commands]
    lines[0] += b"\0" + caps.encode()
    pack = BytesIO()
    write_pack_objects(pack, [(o, None) for o in objects],
                       object_format=DEFAULT_OBJECT_FORMAT)
    body = b"".join(pkt(line + b"\n") for line in lines) + b"0000" + pack.getvalue()
    r = httpx.post(f"{server.endpoint}/{repo}/git-receive-pack", content=body, headers={
        "content-type": "application/x-git-receive-pack-request",
        "authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return r.content


def test_only_accepted_objects_enter_the_repo(server: Any, user_factory: Callable[..., Any],
                                              tmp_path: Path) -> None:
    """One push, two refs: the refused one's objects (and objects no ref names) stay out,
    though the other ref lands; malformed trees are refused before anything moves."""
    from dulwich.objects import Blob, Tree

    user = user_factory("gitquar")
    api = HfApi(endpoint=server.endpoint, token=user.token)
    repo = f"{user.name}/quarantine"
    api.create_repo(repo)
    main = head_now(api, repo)
    auth = {"authorization": f"Bearer {user.token}"}

    def commit_of(tree: Tree, message: str) -> Any:
        return commit_on(main, tree, message)

    def tree_of(entries: list[tuple[bytes, int, Any]]) -> Tree:
        t = Tree()
        for name, mode, sha in entries:
            t.add(name, mode, sha)
        return t

    good_blob, secret, stray = Blob.from_string(b"fine"), Blob.from_string(b"secret"), \
        Blob.from_string(b"no ref names me")
    big = Blob.from_string(os.urandom(11 * MB))
    good_tree = tree_of([(b"ok.txt", 0o100644, good_blob.id)])
    bad_tree = tree_of([(b"big.raw", 0o100644, big.id), (b"s.txt", 0o100644, secret.id)])
    good, bad = commit_of(good_tree, "good"), commit_of(bad_tree, "bad")
    report = raw_push(server, repo, user.token,
                      [(ZERO, good.id.decode(), "refs/heads/ok"),
                       (ZERO, bad.id.decode(), "refs/heads/bad")],
                      [good_blob, good_tree, good, secret, big, bad_tree, bad, stray])
    assert b"ok refs/heads/ok" in report and b"ng refs/heads/bad" in report, report
    refs = {b.name: b.target_commit for b in api.list_repo_refs(repo).branches}
    assert refs["ok"] == good.id.decode() and "bad" not in refs
    r = httpx.get(f"{server.endpoint}/{repo}/resolve/ok/ok.txt", headers=auth)
    assert r.status_code == 200 and r.content == b"fine"
    for sha, path in ((bad.id, "s.txt"), (bad.id[:8], "s.txt"), (bad.id, "big.raw")):
        r = httpx.get(f"{server.endpoint}/{repo}/resolve/{sha.decode()}/{path}", headers=auth)
        assert r.status_code == 404, (sha, path, r.status_code)
    from dulwich.repo import Repo as DulwichRepo

    git_dir = server.data / "repos"

    stored = [DulwichRepo(str(p)) for p in git_dir.glob("*/*.git")]
    holder = next(s for s in stored if good.id in s.object_store)
    for obj in (secret, big, bad_tree, bad, stray):
        assert obj.id not in holder.object_store, obj

    # A folder entry naming a blob: refused (no 500 on the pages that would read it).
    folder = tree_of([(b"asdir", 0o040000, good_blob.id)])
    c = commit_of(folder, "malformed")
    report = raw_push(server, repo, user.token, [(ZERO, c.id.decode(), "refs/heads/mal")],
                      [good_blob, folder, c])
    assert b"ng refs/heads/mal" in report and b"is not a tree" in report, report
    assert "mal" not in {b.name for b in api.list_repo_refs(repo).branches}
    assert httpx.get(f"{server.endpoint}/api/models/{repo}/revision/ok").status_code == 200


def test_a_moved_repo_is_cloned_from_its_old_url(
        server: Any, user_factory: Callable[..., Any], git_env: dict[str, str],
        tmp_path: Path) -> None:
    user = user_factory("gitmove")
    api = HfApi(endpoint=server.endpoint, token=user.token)
    old, new = f"{user.name}/before", f"{user.name}/after"
    api.create_repo(old)
    api.upload_file(path_or_fileobj=b"moved", path_in_repo="m.txt", repo_id=old)
    api.move_repo(old, new)
    r = httpx.get(f"{server.endpoint}/{old}.git/info/refs?service=git-upload-pack",
                  headers={"authorization": f"Bearer {user.token}"})
    assert r.status_code == 307
    assert r.headers["location"] == f"/{new}.git/info/refs?service=git-upload-pack"
    out = tmp_path / "moved"
    git(git_env, "clone", url(server, old, user.token), str(out))
    assert (out / "m.txt").read_bytes() == b"moved"


def test_a_pack_bomb_is_refused_before_it_inflates(
        server: Any, user_factory: Callable[..., Any]) -> None:
    """A small pack of an object that inflates past the push's cap (64 MiB here) is
    refused from its header: the server never holds the object."""
    from dulwich.objects import Blob, Tree

    owner, visitor = user_factory("gitbomb"), user_factory("gitbombv")
    api = HfApi(endpoint=server.endpoint, token=owner.token)
    repo = f"{owner.name}/bombed"
    api.create_repo(repo)
    main = head_now(api, repo)
    bomb = Blob.from_string(b"\0" * (80 * MB))
    tree = Tree()
    tree.add(b"zeros.raw", 0o100644, bomb.id)
    c = commit_on(main, tree, "bomb")
    # By anyone who may open a pull request: here a visitor, on a ref they may not move.
    report = raw_push(server, repo, visitor.token, [(main, c.id.decode(), "refs/heads/main")],
                      [bomb, tree, c])
    assert b"over the" in report and b"ng refs/heads/main" in report, report
    assert head_now(api, repo) == main


def _repo_dir(server: Any, head: str) -> Path:
    """The bare repository on the server whose `main` is at `head`."""
    return next(p for p in (server.data / "repos").glob("*/*.git")
                if (p / "refs/heads/main").is_file()
                and (p / "refs/heads/main").read_text().strip() == head)


@pytest.mark.parametrize("atomic", [True, False])
def test_an_atomic_push_moves_every_ref_or_none(
        server: Any, user_factory: Callable[..., Any], git_env: dict[str, str],
        tmp_path: Path, atomic: bool) -> None:
    """Another writer holds one ref's lock while a push of two refs is applied, and moves
    that ref: with `--atomic` neither ref moves; without it, the other one does."""
    import threading
    import time

    user = user_factory("gitatomic")
    api = HfApi(endpoint=server.endpoint, token=user.token)
    repo = f"{user.name}/atomic-{atomic}"
    api.create_repo(repo)
    api.upload_file(path_or_fileobj=os.urandom(32), path_in_repo="seed.bin", repo_id=repo)
    base = head_now(api, repo)
    api.create_branch(repo, branch="side")
    api.create_branch(repo, branch="other", revision=base)
    elsewhere = api.upload_file(path_or_fileobj=b"elsewhere", path_in_repo="x.txt",
                                repo_id=repo, revision="other").oid
    work = tmp_path / "work"
    git(git_env, "clone", url(server, repo, user.token), str(work))
    (work / "notes.txt").write_text("new")
    new = commit_all(git_env, work, "both")

    side = _repo_dir(server, base) / "refs/heads/side"
    lock = side.with_name("side.lock")
    lock.write_text("")  # the other writer's lock, held while the push is decided

    def other_writer() -> None:
        time.sleep(1.5)
        side.write_text(f"{elsewhere}\n")
        lock.unlink()

    t = threading.Thread(target=other_writer)
    t.start()
    done = git(git_env, "push", *(["--atomic"] if atomic else []), "origin", "HEAD:main",
               "HEAD:side", cwd=work, check=False)
    t.join()
    assert done.returncode != 0, done.stderr
    refs = {b.name: b.target_commit for b in api.list_repo_refs(repo).branches}
    assert refs["side"] == elsewhere
    assert refs["main"] == (base if atomic else new), done.stderr


def test_every_object_a_push_brings_is_checked(server: Any, user_factory: Callable[..., Any]
                                               ) -> None:
    """Each refusal names what is wrong, and nothing moves: objects of the wrong type, a
    missing object, a symbolic link, and a large file outside LFS in a commit that is not
    the tip (every new commit is checked, not only the last). An annotated tag lands."""
    from dulwich.objects import Blob, Tag, Tree

    user = user_factory("gitfsck")
    api = HfApi(endpoint=server.endpoint, token=user.token)
    repo = f"{user.name}/fsck"
    api.create_repo(repo)
    main = head_now(api, repo)

    def tree_of(*entries: tuple[bytes, int, Any]) -> Tree:
        t = Tree()
        for name, mode, sha in entries:
            t.add(name, mode, sha)
        return t

    def refused(objects: list[Any], tip: Any, why: bytes, ref: str = "refs/heads/x") -> None:
        report = raw_push(server, repo, user.token, [(ZERO, tip.id.decode(), ref)], objects)
        assert f"ng {ref}".encode() in report and why in report, report
        assert {b.name for b in api.list_repo_refs(repo).branches} == {"main"}
        assert head_now(api, repo) == main

    blob = Blob.from_string(b"text")
    files = tree_of((b"a.txt", 0o100644, blob.id))
    as_file = tree_of((b"f.txt", 0o100644, files.id))  # a file entry naming a tree
    c = commit_on(main, as_file, "tree as file")
    refused([blob, files, as_file, c], c, b"is not a blob")
    ghost = Blob.from_string(b"not in the pack")
    missing = tree_of((b"g.txt", 0o100644, ghost.id))
    c = commit_on(main, missing, "missing")
    refused([missing, c], c, b"missing from the push")
    link = tree_of((b"l", 0o120000, blob.id))
    c = commit_on(main, link, "link")
    refused([blob, link, c], c, b"symbolic links")
    c = commit_on(main, files, "parent is a blob")
    c.parents = [blob.id]
    refused([blob, files, c], c, b"is not a commit")
    big = Blob.from_string(os.urandom(11 * MB))
    with_big = tree_of((b"big.raw", 0o100644, big.id))
    first = commit_on(main, with_big, "big")
    second = commit_on(first.id.decode(), files, "big gone")
    refused([big, with_big, first, blob, files, second], second, b"git-lfs")

    ok = commit_on(main, files, "fine")
    tag = Tag()
    tag.name, tag.object = b"v1", (type(ok), ok.id)
    tag.tagger, tag.tag_time, tag.tag_timezone = b"T <t@example.org>", 1_700_000_000, 0
    tag.message = b"release\n"
    report = raw_push(server, repo, user.token, [(ZERO, tag.id.decode(), "refs/tags/v1")],
                      [blob, files, ok, tag])
    assert b"ok refs/tags/v1" in report, report
    assert {t.name: t.target_commit for t in api.list_repo_refs(repo).tags}["v1"] == \
        ok.id.decode()
    r = httpx.get(f"{server.endpoint}/{repo}/resolve/v1/a.txt",
                  headers={"authorization": f"Bearer {user.token}"})
    assert r.status_code == 200 and r.content == b"text"


def test_large_lfs_files_are_pushed_in_parts(server: Any, user_factory: Callable[..., Any],
                                             git_env: dict[str, str], tmp_path: Path) -> None:
    """Objects over the multipart threshold (8 MiB on the tests' server, 3 MiB parts):
    stock git-lfs PUTs them whole; with the Hub's transfer agent (`hf
    lfs-enable-largefiles`) git-lfs is told to use `multipart` and sends them in parts."""
    user = user_factory("gitparts")
    api = HfApi(endpoint=server.endpoint, token=user.token)
    repo = f"{user.name}/parts"
    api.create_repo(repo)
    work = tmp_path / "work"
    git(git_env, "clone", url(server, repo, user.token), str(work))
    git(git_env, "lfs", "track", "*.bin", cwd=work)
    whole, parted = os.urandom(10 * MB), os.urandom(10 * MB + 12345)
    (work / "whole.bin").write_bytes(whole)
    commit_all(git_env, work, "whole")
    git(git_env, "push", "origin", "main", cwd=work)

    # The locking API is not supported: git-lfs is told so (501) and turns its lock
    # checks off for this remote, with no warning.
    lfs_url = url(server, repo, user.token) + ".git/info/lfs"  # git-lfs's key, as it is
    assert git(git_env, "config", f"lfs.{lfs_url}.locksverify", cwd=work).stdout.strip() \
        == "false"
    r = httpx.post(f"{server.endpoint}/{repo}.git/info/lfs/locks/verify", json={})
    assert r.status_code == 501, r.status_code

    hf = Path(sys.executable).with_name("hf")
    env = git_env | {"PATH": f"{hf.parent}{os.pathsep}{git_env['PATH']}"}
    subprocess.run([str(hf), "lfs-enable-largefiles", "."], cwd=work, env=env, check=True,
                   capture_output=True)
    (work / "parted.bin").write_bytes(parted)
    commit_all(git_env, work, "in parts")
    done = git(env | {"GIT_TRACE": "1"}, "push", "origin", "main", cwd=work)
    assert 'adapter "multipart"' in done.stderr

    for name, data in (("whole.bin", whole), ("parted.bin", parted)):
        got = Path(api.hf_hub_download(repo, name, cache_dir=tmp_path / "cache"))
        assert sha256(got) == hashlib.sha256(data).hexdigest(), name


def test_ref_names_and_ids_a_push_gets_wrong(server: Any, user_factory: Callable[..., Any]
                                             ) -> None:
    """Refused with a reason, never a server error: a branch that would be a folder of
    another (`a` and `a/b`), an object id in upper case, a parent missing from the push.
    A deleted branch leaves no folder behind: its name's prefix can be a branch again."""
    from dulwich.objects import Blob, Tree

    user = user_factory("gitnames")
    api = HfApi(endpoint=server.endpoint, token=user.token)
    repo = f"{user.name}/names"
    api.create_repo(repo)
    main = head_now(api, repo)
    blob = Blob.from_string(b"x")
    tree = Tree()
    tree.add(b"x.txt", 0o100644, blob.id)
    c = commit_on(main, tree, "c")
    sha = c.id.decode()

    def branches() -> set[str]:
        return {b.name for b in api.list_repo_refs(repo).branches}

    report = raw_push(server, repo, user.token, [(ZERO, sha, "refs/heads/a"),
                                                 (ZERO, sha, "refs/heads/a/b")],
                      [blob, tree, c], caps="report-status atomic")
    assert report.count(b"conflicts with") == 2, report
    assert branches() == {"main"}
    report = raw_push(server, repo, user.token, [(ZERO, sha, "refs/heads/a"),
                                                 (ZERO, sha, "refs/heads/a/b")],
                      [blob, tree, c])
    assert b"ok refs/heads/a\n" in report and b"ng refs/heads/a/b" in report, report
    assert branches() == {"main", "a"}

    report = raw_push(server, repo, user.token, [(ZERO, sha, "refs/heads/f/g")], [])
    assert b"ok refs/heads/f/g" in report, report
    report = raw_push(server, repo, user.token, [(sha, ZERO, "refs/heads/f/g")], [])
    assert b"ok refs/heads/f/g" in report, report
    api.create_branch(repo, branch="f")  # no folder `f/` left in its way
    assert branches() == {"main", "a", "f"}

    report = raw_push(server, repo, user.token, [(ZERO, sha.upper(), "refs/heads/up")], [])
    assert b"ng refs/heads/up malformed command" in report, report
    orphan = commit_on(main, tree, "parent not sent")
    orphan.parents = [Blob.from_string(b"never pushed").id]
    report = raw_push(server, repo, user.token, [(ZERO, orphan.id.decode(), "refs/heads/o")],
                      [blob, tree, orphan])
    assert b"ng refs/heads/o malformed objects" in report, report
    assert branches() == {"main", "a", "f"}


def test_fetches_after_pushed_deltas(server: Any, user_factory: Callable[..., Any],
                                     git_env: dict[str, str], tmp_path: Path) -> None:
    """Packs are sent as the repo stores them (pushed deltas kept as deltas): a fetch of
    edits whose bases the fetcher has, a fresh clone, and a shallow fetch all check out
    and pass `git fsck`, with loose objects from API commits in the mix."""
    user = user_factory("gitdelta")
    api = HfApi(endpoint=server.endpoint, token=user.token)
    repo = f"{user.name}/deltas"
    api.create_repo(repo)
    remote = url(server, repo, user.token)
    base = "\n".join(f"line {n} {'x' * 40}" for n in range(2000)) + "\n"
    api.upload_file(path_or_fileobj=base.encode(), path_in_repo="text.txt", repo_id=repo)
    reader, writer = tmp_path / "reader", tmp_path / "writer"
    git(git_env, "clone", remote, str(reader))
    git(git_env, "clone", remote, str(writer))
    text = base
    for n in range(3):  # small edits of a large file: pushed as deltas
        text = text.replace(f"line {n * 7} ", f"line {n * 7} edited ")
        (writer / "text.txt").write_text(text)
        commit_all(git_env, writer, f"edit {n}")
        git(git_env, "push", "origin", "main", cwd=writer)
    api.upload_file(path_or_fileobj=b"loose", path_in_repo="api.txt", repo_id=repo)
    git(git_env, "pull", "-q", "origin", "main", cwd=reader)
    assert (reader / "text.txt").read_text() == text
    assert (reader / "api.txt").read_bytes() == b"loose"
    git(git_env, "fsck", "--strict", cwd=reader)
    fresh, shallow = tmp_path / "fresh", tmp_path / "shallow"
    git(git_env, "clone", remote, str(fresh))
    git(git_env, "fsck", "--strict", cwd=fresh)
    git(git_env, "clone", "--depth", "2", remote, str(shallow))
    assert (shallow / "text.txt").read_text() == text
