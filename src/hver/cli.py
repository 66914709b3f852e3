"""Command line: serve, and account administration on the data directory directly.

Data goes to stdout (a token, a name), messages to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from hver.config import Settings
from hver.core import accounts, repos, xet
from hver.core.hub import Hub
from hver.errors import HverError, RepoNotFound
from hver.names import RepoType


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        data=getattr(args, "data", None), host=getattr(args, "host", None),
        port=getattr(args, "port", None),
    )


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
    if args.workers:
        settings = Settings.from_env(data=settings.data, host=settings.host, port=settings.port,
                                     workers=args.workers)
    hub = Hub.open(settings)
    if hasattr(hub.blobs, "clean_staging"):
        hub.blobs.clean_staging(older_than=24 * 3600)
    with hub.db.read() as session:
        has_users = accounts.has_users(session)
    url = f"http://{settings.host}:{settings.port}"
    print(f"hver is serving {settings.data.resolve()} at {url}", file=sys.stderr)
    if not has_users:
        print(
            "No users yet. Make one and a token, then log in:\n"
            f"  hver user create alice --data {settings.data}\n"
            f"  hver token create alice --data {settings.data}\n"
            f"  export HF_ENDPOINT={url} HF_TOKEN=<the token>\n"
            "  hf auth whoami",
            file=sys.stderr,
        )
    else:
        print(f"Log in with: export HF_ENDPOINT={url} HF_TOKEN=<token from "
              f"'hver token create USER --data {settings.data}'>", file=sys.stderr)
    if settings.workers > 1:
        hub.close()
        os.environ["HVER_DATA"] = str(settings.data)
        uvicorn.run("hver.app:app_from_env", factory=True, host=settings.host,
                    port=settings.port, workers=settings.workers, log_level=settings.log_level,
                    http=_http_protocol())
        return 0
    app = create_app(settings, hub)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                http=_http_protocol())
    return 0


def cmd_user_create(args: argparse.Namespace) -> int:
    hub = Hub.open(_settings(args))
    with hub.db.write() as session:
        accounts.create_user(session, args.name, email=args.email, is_admin=args.admin)
    print(args.name)
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    hub = Hub.open(_settings(args))
    with hub.db.write() as session:
        token = accounts.create_token(session, args.user, role=args.role, name=args.name or "")
    print(token)
    return 0


def cmd_org_create(args: argparse.Namespace) -> int:
    hub = Hub.open(_settings(args))
    with hub.db.write() as session:
        accounts.create_org(session, args.name, args.owner)
    print(args.name)
    return 0


def cmd_org_add(args: argparse.Namespace) -> int:
    hub = Hub.open(_settings(args))
    with hub.db.write() as session:
        accounts.add_member(session, args.org, args.user, args.role)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hver", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def with_data(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--data", help="data directory (default: $HVER_DATA or ./hver-data)")
        return p

    serve = with_data(sub.add_parser("serve", help="run the hub"))
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8080)")
    serve.add_argument("--workers", type=int, default=0, help="worker processes")
    serve.set_defaults(func=cmd_serve)

    user = sub.add_parser("user", help="manage users").add_subparsers(dest="action",
                                                                      required=True)
    uc = with_data(user.add_parser("create", help="create a user"))
    uc.add_argument("name")
    uc.add_argument("--email")
    uc.add_argument("--admin", action="store_true", help="make a site admin")
    uc.set_defaults(func=cmd_user_create)

    token = sub.add_parser("token", help="manage API tokens").add_subparsers(dest="action",
                                                                            required=True)
    tc = with_data(token.add_parser("create", help="create a token; prints it on stdout"))
    tc.add_argument("user")
    tc.add_argument("--role", choices=accounts.ROLES, default="write")
    tc.add_argument("--name", help="a label for the token")
    tc.set_defaults(func=cmd_token_create)

    org = sub.add_parser("org", help="manage organizations").add_subparsers(dest="action",
                                                                           required=True)
    oc = with_data(org.add_parser("create", help="create an organization"))
    oc.add_argument("name")
    oc.add_argument("--owner", required=True, help="the user who becomes its first admin")
    oc.set_defaults(func=cmd_org_create)
    oa = with_data(org.add_parser("add-member", help="add a member or change their role"))
    oa.add_argument("org")
    oa.add_argument("user")
    oa.add_argument("--role", choices=accounts.ORG_ROLES, default="write")
    oa.set_defaults(func=cmd_org_add)

    storage = sub.add_parser("storage", help="large-file storage").add_subparsers(
        dest="action", required=True)
    ss = with_data(storage.add_parser(
        "stats", help="logical and stored bytes of large files, and the dedup ratio"))
    ss.add_argument("repo", nargs="?", help="NAMESPACE/NAME (default: the whole hub)")
    ss.add_argument("--type", choices=[t.value for t in RepoType], default="model")
    ss.add_argument("--json", action="store_true", help="print one JSON object")
    ss.set_defaults(func=cmd_storage_stats)
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
