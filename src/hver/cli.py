"""Command line: serve, and account administration on the data directory directly.

Data goes to stdout (a token, a name), messages to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from hver.config import Settings
from hver.core import accounts, repos, xet, xet_grants
from hver.core.hub import Hub
from hver.errors import BadRequest, HverError, RepoNotFound
from hver.names import RepoType, split_repo_id


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(**_flags(args))


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags (`hver serve` has one per setting)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(Settings)
            if getattr(args, f.name, None) is not None}


def _setting_flags(p: argparse.ArgumentParser) -> None:
    """A flag for every setting (`--upstream-url` for HVER_UPSTREAM_URL), from its
    declaration: its help, its type, no default (the variable, else the default, holds)."""
    for f in dataclasses.fields(Settings):
        if f.name == "data":
            continue
        flag = "--" + f.name.replace("_", "-")
        help = f"{f.metadata['help']} (HVER_{f.name.upper()})"
        if isinstance(f.default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                           help=help)
        else:
            kind = type(f.default) if isinstance(f.default, (int, float)) else str
            p.add_argument(flag, type=kind, default=None, help=help,
                           metavar=f.name.upper())


def _http_protocol() -> str:
    """hver's httptools protocol (sendfile downloads, bigger upload reads) when available."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "auto"
    return "hver.serving:HverHttpToolsProtocol"


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from hver.app import create_app

    settings = _settings(args)
    hub = Hub.open(settings)
    if hasattr(hub.blobs, "clean_staging"):
        hub.blobs.clean_staging(older_than=24 * 3600)
    xet_grants.sweep(hub, force=True)
    hub.remove_stale_locks()
    with hub.db.read() as session:
        has_users = accounts.has_users(session)
    url = f"http://{settings.host}:{settings.port}"
    print(f"hver is serving {settings.data.resolve()} at {url}", file=sys.stderr)
    if not has_users:
        print(
            "No users yet. Make one with a password (for the web UI) and a token (for\n"
            "the clients), then log in:\n"
            f"  hver user create alice --password-stdin --data {settings.data}\n"
            f"  hver token create alice --data {settings.data}\n"
            f"  export HF_ENDPOINT={url} HF_TOKEN=<the token>\n"
            "  hf auth whoami\n"
            f"and sign in to the web UI at {url}/login",
            file=sys.stderr,
        )
    else:
        print(f"Log in with: export HF_ENDPOINT={url} HF_TOKEN=<token from "
              f"'hver token create USER --data {settings.data}'>\n"
              f"Web UI: {url}/login (password set with 'hver user set-password USER "
              f"--data {settings.data}')", file=sys.stderr)
    workers = settings.resolved_workers
    if workers > 1:
        hub.close()
        # The workers read their settings from the environment: the flags go there.
        for name, value in _flags(args).items():
            os.environ[f"HVER_{name.upper()}"] = str(value)
        os.environ["HVER_DATA"] = str(settings.data)
        uvicorn.run("hver.app:app_from_env", factory=True, host=settings.host,
                    port=settings.port, workers=workers, log_level=settings.log_level,
                    http=_http_protocol())
        return 0
    app = create_app(settings, hub)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                http=_http_protocol())
    return 0


def _read_password() -> str:
    """A password from stdin: its first line, without the line ending."""
    if sys.stdin.isatty():
        import getpass

        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise BadRequest("The passwords differ.")
        return password
    return sys.stdin.readline().rstrip("\r\n")


def cmd_user_create(args: argparse.Namespace) -> int:
    hub = Hub.open(_settings(args))
    password = _read_password() if args.password_stdin else None
    with hub.db.write() as session:
        accounts.create_user(session, args.name, email=args.email, is_admin=args.admin,
                             password=password)
        # Its first tokens, in the same transaction: the user is made with them or not.
        tokens = [accounts.create_token(session, args.name, role=role)
                  for role in args.token or ()]
    print(args.name)
    for token in tokens:
        print(token)
    return 0


def cmd_user_set_password(args: argparse.Namespace) -> int:
    hub = Hub.open(_settings(args))
    password = _read_password()
    with hub.db.write() as session:
        accounts.set_password(session, args.name, password)
    print(f"Password of {args.name} set.", file=sys.stderr)
    return 0


def cmd_user_disable(args: argparse.Namespace) -> int:
    hub = Hub.open(_settings(args))
    disabled = args.action == "disable"
    with hub.db.write() as session:
        accounts.set_disabled(session, args.name, disabled)
    print(f"{args.name} is {'disabled' if disabled else 'enabled'}.", file=sys.stderr)
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    hub = Hub.open(_settings(args))
    scopes = [accounts.parse_scope("repo", spec, args.user) for spec in args.repo]
    scopes += [accounts.parse_scope("org", spec, args.user) for spec in args.org]
    if scopes and not args.fine_grained:
        raise BadRequest("--repo and --org make a fine-grained token: add --fine-grained.")
    role = accounts.FINE_GRAINED if args.fine_grained else args.role
    with hub.db.write() as session:
        token = accounts.create_token(session, args.user, role=role, name=args.name or "",
                                      scopes=scopes or None)
    print(token)
    return 0


def _ts(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if at is not None else "never"


def _scope_text(scope: dict[str, Any]) -> str:
    perms = ",".join(sorted(scope.get("permissions", [])))
    kind = scope["type"]
    if kind == "repo" and scope.get("repoType", "model") != "model":
        kind = f"repo:{scope['repoType']}"
    return f"{kind}:{scope['name']}={perms}"


def cmd_token_list(args: argparse.Namespace) -> int:
    hub = Hub.open(_settings(args))
    with hub.db.read() as session:
        tokens = accounts.list_tokens(session, args.user)
    if args.json:
        print(json.dumps([t.as_dict() for t in tokens]))
        return 0
    print(f"{'ID':>6}  {'NAME':24} {'ROLE':12} {'CREATED':20} {'LAST USED':20} SCOPES")
    for t in tokens:
        scopes = " ".join(_scope_text(s) for s in t.scopes or [])
        print(f"{t.id:>6}  {t.name:24} {t.role:12} {_ts(t.created_at):20} "
              f"{_ts(t.last_used_at):20} {scopes}".rstrip())
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    hub = Hub.open(_settings(args))
    with hub.db.write() as session:
        info = accounts.revoke_token(session, args.user, args.token)
    print(f"Revoked token {info.id} ({info.name}) of {args.user}.", file=sys.stderr)
    return 0


def cmd_org_create(args: argparse.Namespace) -> int:
    hub = Hub.open(_settings(args))
    with hub.db.write() as session:
        accounts.create_org(session, args.name, args.owner)
        if args.fullname:
            accounts.set_org_fullname(session, args.name, args.fullname)
    print(args.name)
    return 0


def cmd_org_set_fullname(args: argparse.Namespace) -> int:
    hub = Hub.open(_settings(args))
    with hub.db.write() as session:
        accounts.set_org_fullname(session, args.org, args.fullname)
    return 0


def cmd_org_add(args: argparse.Namespace) -> int:
    hub = Hub.open(_settings(args))
    with hub.db.write() as session:
        accounts.add_member(session, args.org, args.user, args.role)
    return 0


def cmd_org_set_role(args: argparse.Namespace) -> int:
    hub = Hub.open(_settings(args))
    with hub.db.write() as session:
        accounts.set_member_role(session, args.org, args.user, args.role)
    return 0


def cmd_org_remove(args: argparse.Namespace) -> int:
    hub = Hub.open(_settings(args))
    with hub.db.write() as session:
        accounts.remove_member(session, args.org, args.user)
    return 0


def cmd_repo_transfer(args: argparse.Namespace) -> int:
    hub = Hub.open(_settings(args))
    repo_type = RepoType.parse(args.type)
    repo = repos.transfer_repo(hub, accounts.CLI_ACTOR, repo_type, split_repo_id(args.repo),
                               args.namespace, args.name)
    print(repo.repo_id)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from hver.api.accounts import audit_entries, parse_since

    hub = Hub.open(_settings(args))
    entries = audit_entries(hub, event=args.event, actor=args.actor,
                            since=parse_since(args.since), limit=args.limit)
    if args.json:
        print(json.dumps(entries))
        return 0
    for e in reversed(entries):  # oldest first, as a log reads
        details = " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(e["details"].items()))
        print(f"{e['at']}  {e['actor'] or '-':20} {e['event']:18} {e['target'] or '-'}"
              f"  {details}".rstrip())
    return 0


def cmd_storage_stats(args: argparse.Namespace) -> int:
    hub = Hub.open(_settings(args))
    fields: dict[str, object] = {}
    repo_id = None
    if args.repo:
        namespace, _, name = args.repo.partition("/")
        with hub.db.read() as session:
            repo = repos.find_repo(session, RepoType(args.type), namespace, name)
        if repo is None:
            raise RepoNotFound(f"No {args.type} repo {args.repo!r}.")
        fields = {"repo": repo.repo_id, "type": repo.type}
        repo_id = repo.id
    stats = xet.storage_stats(hub, repo_id)
    if args.json:
        print(json.dumps(fields | stats.as_dict()))
        return 0
    for key, value in fields.items():
        print(f"{key + ':':16}{value}")
    print(f"{'files:':16}{stats.files} ({stats.xet_files} stored as Xet chunks)")
    print(f"{'logical bytes:':16}{stats.logical_bytes:,}")
    print(f"{'stored bytes:':16}{stats.stored_bytes:,} ({stats.xorbs} xorbs)")
    print(f"{'dedup ratio:':16}{stats.dedup_ratio:.2f}")
    return 0


def _mirror(args: argparse.Namespace) -> Any:
    hub = Hub.open(_settings(args))
    if hub.mirror is None:
        raise BadRequest("No upstream hub: set HVER_UPSTREAM_URL (and HVER_UPSTREAM_TOKEN).")
    return hub.mirror


def _progress(what: str) -> Any:
    """A progress line on stderr (rewritten in place on a terminal)."""
    tty = sys.stderr.isatty()
    last = [0.0]

    def show(done: int, files: int, done_bytes: int, size: int) -> None:
        now = time.monotonic()
        if tty and done < files and now - last[0] < 0.2:
            return
        last[0] = now
        pct = 100 * done_bytes // size if size else 100
        line = (f"{what}: {done}/{files} large files, {done_bytes / 2**20:,.1f} / "
                f"{size / 2**20:,.1f} MiB ({pct}%)")
        if tty:
            print(f"\r{line}", end="\n" if done == files else "", file=sys.stderr, flush=True)
        elif done == files:
            print(line, file=sys.stderr)

    return show


def _mirror_repo_arg(text: str, repo_type: str) -> tuple[RepoType, str, str, str | None]:
    """[TYPE/]NS/NAME[@REV] (TYPE: models, datasets, spaces)."""
    spec, _, revision = text.partition("@")
    parts = spec.split("/")
    if len(parts) == 3 and parts[0] in ("models", "datasets", "spaces"):
        repo_type = parts[0][:-1]
        parts = parts[1:]
    if len(parts) != 2 or not all(parts):
        raise BadRequest(f"Expected [TYPE/]NAMESPACE/NAME[@REVISION], got {text!r}.")
    return RepoType.parse(repo_type), parts[0], parts[1], revision or None


def cmd_mirror_add(args: argparse.Namespace) -> int:
    from hver.mirror import ahead

    mirror = _mirror(args)
    repo_type, ns, name, revision = _mirror_repo_arg(args.repo, args.type)
    pinned = ahead.add(mirror, repo_type, ns, name, revision, args.include, args.exclude,
                       _progress(f"{ns}/{name}"))
    print(f"{pinned.repo.type}s/{pinned.repo.repo_id}@{pinned.commit}")
    print(f"{pinned.files} large files ({pinned.bytes:,} bytes) held; {pinned.fetched} "
          "brought in now", file=sys.stderr)
    return 0


def cmd_mirror_sync(args: argparse.Namespace) -> int:
    from hver.mirror import ahead

    mirror = _mirror(args)
    repos = ahead.mirrored_repos(mirror)
    if args.repos:
        wanted = {(t.value, n.lower(), m.lower()) for t, n, m, _ in
                  (_mirror_repo_arg(r, args.type) for r in args.repos)}
        repos = [r for r in repos if (r.type, r.namespace.lower(), r.name.lower()) in wanted]
        if len(repos) != len(wanted):
            raise RepoNotFound("Not every repo named is a mirrored repo here.")
    failed = 0
    for repo in repos:
        pinned = ahead.sync(mirror, repo, _progress(repo.repo_id))
        state = {s["id"]: s for s in ahead.status(mirror) if s["type"] == repo.type}
        error = state.get(repo.repo_id, {}).get("lastError")
        if error:
            failed += 1
            print(f"{repo.type}s/{repo.repo_id}: {error}", file=sys.stderr)
        print(f"{repo.type}s/{repo.repo_id}@{pinned.commit}")
    return 1 if failed else 0


def cmd_mirror_status(args: argparse.Namespace) -> int:
    from hver.mirror import ahead

    mirror = _mirror(args)
    rows = ahead.status(mirror)
    total = ahead.totals(mirror, rows)
    if args.json:
        print(json.dumps(rows))
    else:
        print(f"{'REPO':50} {'LAST SYNC':20} {'FILES':>6} {'HELD':>12} {'FETCHED':>12} "
              f"{'HITS':>7} {'MISSES':>7} {'RATIO':>6} PINNED")
        for r in rows:
            repo = f"{r['type']}s/{r['id']}"
            pin = r["pinned"] or "-"
            if r["include"] or r["exclude"]:
                pin += f" +{','.join(r['include'] or ['*'])} -{','.join(r['exclude'] or [])}"
            print(f"{repo:50} {(r['lastSync'] or 'never'):20} {r['heldFiles']:>6} "
                  f"{r['heldBytes']:>12,} {r['fetchedBytes']:>12,} {r['hits']:>7} "
                  f"{r['misses']:>7} {_percent(r['hitRatio']):>6} {pin}")
            if r["lastError"]:
                print(f"  last error: {r['lastError']}")
    quota = f"{total['quota']:,}" if total["quota"] else "no quota"
    print(f"{total['repos']} mirrored repos, {total['heldBytes']:,} bytes of large files held "
          f"(each file once; {quota}); {total['hits']} hits, {total['misses']} misses "
          f"({_percent(total['hitRatio'])})", file=sys.stderr)
    return 0


def _percent(ratio: float | None) -> str:
    return "-" if ratio is None else f"{100 * ratio:.0f}%"


def cmd_mirror_export(args: argparse.Namespace) -> int:
    from hver.mirror import transfer

    hub = Hub.open(_settings(args))
    repos = transfer.mirrored_repos(hub)
    if args.repos:
        wanted = {(t.value, n.lower(), m.lower()) for t, n, m, _ in
                  (_mirror_repo_arg(r, args.type) for r in args.repos)}
        repos = [r for r in repos if (r.type, r.namespace.lower(), r.name.lower()) in wanted]
        if len(repos) != len(wanted):
            raise RepoNotFound("Not every repo named is a mirrored repo here.")
    say = functools.partial(print, file=sys.stderr)
    for moved in transfer.export(hub, Path(args.dir), repos, say):
        print(f"{moved.type}s/{moved.id}@{moved.sha}")
    return 0


def cmd_mirror_import(args: argparse.Namespace) -> int:
    from hver.mirror import transfer

    hub = Hub.open(_settings(args))
    failed = 0
    say = functools.partial(print, file=sys.stderr)
    for moved in transfer.import_(hub, Path(args.dir), say):
        if moved.error is None:
            print(f"{moved.type}s/{moved.id}@{moved.sha}")
        else:
            failed += 1
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hver", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def with_data(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--data", help="data directory (default: $HVER_DATA or ./hver-data)")
        return p

    serve = with_data(sub.add_parser("serve", help="run the hub"))
    _setting_flags(serve)
    serve.set_defaults(func=cmd_serve)

    user = sub.add_parser("user", help="manage users").add_subparsers(dest="action",
                                                                      required=True)
    uc = with_data(user.add_parser("create", help="create a user"))
    uc.add_argument("name")
    uc.add_argument("--email")
    uc.add_argument("--admin", action="store_true", help="make a site admin")
    uc.add_argument("--password-stdin", action="store_true",
                    help="read a password (for the web UI) from the first line of stdin")
    uc.add_argument("--token", action="append", choices=["read", "write"], metavar="ROLE",
                    help="also create a token of this role (read or write), printed on a "
                         "line of its own after the name; may be repeated")
    uc.set_defaults(func=cmd_user_create)
    up = with_data(user.add_parser("set-password",
                                   help="set a user's password, read from stdin"))
    up.add_argument("name")
    up.set_defaults(func=cmd_user_set_password)
    for action, what in (("disable", "disable a user: their tokens and password stop working"),
                         ("enable", "enable a disabled user again")):
        ud = with_data(user.add_parser(action, help=what))
        ud.add_argument("name")
        ud.set_defaults(func=cmd_user_disable)

    token = sub.add_parser("token", help="manage API tokens").add_subparsers(dest="action",
                                                                            required=True)
    tc = with_data(token.add_parser("create", help="create a token; prints it on stdout"))
    tc.add_argument("user")
    tc.add_argument("--role", choices=accounts.ROLES, default="write")
    tc.add_argument("--name", help="a label for the token")
    tc.add_argument("--fine-grained", action="store_true",
                    help="a token that reaches only what --repo and --org name")
    tc.add_argument("--repo", action="append", default=[], metavar="[TYPES/]NS/NAME:PERMS",
                    help="fine-grained: a repo (datasets/NS/NAME, spaces/NS/NAME for those) "
                    "and comma-separated permissions: read, write or Hub names such as "
                    "repo.content.read, repo.write; repeatable")
    tc.add_argument("--org", action="append", default=[], metavar="NAMESPACE:PERMS",
                    help="fine-grained: every repo of an org (or of the user's own "
                    "namespace), creating them too with write; repeatable")
    tc.set_defaults(func=cmd_token_create)
    tl = with_data(token.add_parser("list", help="a user's tokens (never their secrets)"))
    tl.add_argument("user")
    tl.add_argument("--json", action="store_true", help="print one JSON array")
    tl.set_defaults(func=cmd_token_list)
    tr = with_data(token.add_parser("revoke", help="revoke a token by id or name"))
    tr.add_argument("user")
    tr.add_argument("token", metavar="TOKEN_ID_OR_NAME")
    tr.set_defaults(func=cmd_token_revoke)

    org = sub.add_parser("org", help="manage organizations").add_subparsers(dest="action",
                                                                           required=True)
    oc = with_data(org.add_parser("create", help="create an organization"))
    oc.add_argument("name")
    oc.add_argument("--owner", required=True, help="the user who becomes its first admin")
    oc.add_argument("--fullname", help="its full name, as whoami and its page show it")
    oc.set_defaults(func=cmd_org_create)
    of = with_data(org.add_parser("set-fullname", help="set an organization's full name"))
    of.add_argument("org")
    of.add_argument("fullname", help="the full name; empty to clear it")
    of.set_defaults(func=cmd_org_set_fullname)
    oa = with_data(org.add_parser("add-member", help="add a member or change their role"))
    oa.add_argument("org")
    oa.add_argument("user")
    oa.add_argument("--role", choices=accounts.ORG_ROLES, default="write")
    oa.set_defaults(func=cmd_org_add)
    osr = with_data(org.add_parser("set-role", help="change a member's role"))
    osr.add_argument("org")
    osr.add_argument("user")
    osr.add_argument("role", choices=accounts.ORG_ROLES)
    osr.set_defaults(func=cmd_org_set_role)
    orm = with_data(org.add_parser("remove-member", help="remove a member"))
    orm.add_argument("org")
    orm.add_argument("user")
    orm.set_defaults(func=cmd_org_remove)

    repo = sub.add_parser("repo", help="site administration of repos").add_subparsers(
        dest="action", required=True)
    rt = with_data(repo.add_parser("transfer", help="move a repo to another namespace"))
    rt.add_argument("repo", metavar="NAMESPACE/NAME")
    rt.add_argument("namespace", metavar="NEW_NAMESPACE")
    rt.add_argument("--type", choices=[t.value for t in RepoType], default="model")
    rt.add_argument("--name", help="a new name too (default: keep it)")
    rt.set_defaults(func=cmd_repo_transfer)

    au = with_data(sub.add_parser("audit", help="the audit log, oldest first"))
    au.add_argument("--event", help="only this event, e.g. token.create")
    au.add_argument("--actor", help="only events by this user (@cli: the command line)")
    au.add_argument("--since", help="only events at or after this ISO 8601 date or time (UTC)")
    au.add_argument("--limit", type=int, default=1000, help="the newest N events (1000)")
    au.add_argument("--json", action="store_true", help="print one JSON array, newest first")
    au.set_defaults(func=cmd_audit)

    storage = sub.add_parser("storage", help="large-file storage").add_subparsers(
        dest="action", required=True)
    ss = with_data(storage.add_parser(
        "stats", help="logical and stored bytes of large files, and the dedup ratio"))
    ss.add_argument("repo", nargs="?", help="NAMESPACE/NAME (default: the whole hub)")
    ss.add_argument("--type", choices=[t.value for t in RepoType], default="model")
    ss.add_argument("--json", action="store_true", help="print one JSON object")
    ss.set_defaults(func=cmd_storage_stats)

    mirror = sub.add_parser("mirror", help="the mirror of an upstream hub (HVER_UPSTREAM_URL)"
                            ).add_subparsers(dest="action", required=True)
    ma = with_data(mirror.add_parser(
        "add", help="bring a repo in now and fetch its large files at a revision"))
    ma.add_argument("repo", metavar="[TYPE/]NS/NAME[@REV]",
                    help="TYPE: models (default), datasets or spaces; REV: main by default")
    ma.add_argument("--type", choices=[t.value for t in RepoType], default="model")
    ma.add_argument("--include", action="append", metavar="GLOB",
                    help="fetch only large files matching it (repeatable)")
    ma.add_argument("--exclude", action="append", metavar="GLOB",
                    help="never fetch large files matching it (repeatable)")
    ma.set_defaults(func=cmd_mirror_add)
    msy = with_data(mirror.add_parser(
        "sync", help="catch mirrored repos up now, and fetch what they pin at their tips"))
    msy.add_argument("repos", nargs="*", metavar="[TYPE/]NS/NAME", help="default: all")
    msy.add_argument("--type", choices=[t.value for t in RepoType], default="model")
    msy.set_defaults(func=cmd_mirror_sync)
    mst = with_data(mirror.add_parser("status", help="each mirrored repo and what it holds"))
    mst.add_argument("--json", action="store_true", help="print one JSON array")
    mst.set_defaults(func=cmd_mirror_status)
    mex = with_data(mirror.add_parser(
        "export", help="write mirrored repos and their large files into a directory, "
                       "for a hub that cannot reach the upstream"))
    mex.add_argument("dir", metavar="DIR")
    mex.add_argument("repos", nargs="*", metavar="[TYPE/]NS/NAME", help="default: all")
    mex.add_argument("--type", choices=[t.value for t in RepoType], default="model")
    mex.set_defaults(func=cmd_mirror_export)
    mim = with_data(mirror.add_parser(
        "import", help="bring in (or catch up) the repos of an export, every hash checked"))
    mim.add_argument("dir", metavar="DIR")
    mim.set_defaults(func=cmd_mirror_import)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except HverError as e:
        print(f"hver: {e.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
