"""A reverse proxy between a mirror and its upstream, for tests: it counts the requests
the mirror sends, and can stop answering, as an unreachable upstream would."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import ThreadingMixIn
from typing import Any

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-authorization", "proxy-authenticate", "host"}


class CountingProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.requests: list[tuple[str, str]] = []  # (method, path) in arrival order
        self.down = False  # True: every connection is closed unanswered
        # path substring -> bytes of body after which the next such response is cut
        self.cut: dict[str, int] = {}
        self.range_headers: list[tuple[str, str | None]] = []  # (path, Range) of each GET
        self.slow: dict[str, int] = {}  # path substring -> bytes a second its bodies get
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _relay(self) -> None:
                if proxy.down:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                with proxy._lock:
                    proxy.requests.append((self.command, self.path))
                    proxy.range_headers.append((self.path, self.headers.get("Range")))
                    cut_key = next((k for k in proxy.cut if k in self.path), None)
                    cut_at = proxy.cut.pop(cut_key) if cut_key is not None else None
                    rate = next((v for k, v in proxy.slow.items() if k in self.path), None)
                body = self._body()
                conn = http.client.HTTPConnection("127.0.0.1", proxy.target_port, timeout=60)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in HOP_BY_HOP}
                headers["Host"] = f"127.0.0.1:{proxy.target_port}"
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                self.send_response(resp.status, resp.reason)
                length = resp.getheader("Content-Length")
                for k, v in resp.getheaders():
                    if k.lower() not in HOP_BY_HOP:
                        self.send_header(k, v)
                chunked = length is None and self.command != "HEAD" and resp.status not in (
                    204, 304)
                if chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                sent = 0
                while self.command != "HEAD":
                    data = resp.read1(65536)
                    if not data:
                        break
                    if cut_at is not None and sent + len(data) >= cut_at:
                        self.wfile.write(data[:cut_at - sent])  # then the line drops
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        conn.close()
                        return
                    sent += len(data)
                    if rate is not None:
                        time.sleep(len(data) / rate)
                    if chunked:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    else:
                        self.wfile.write(data)
                if chunked:
                    self.wfile.write(b"0\r\n\r\n")
                conn.close()

            def _body(self) -> bytes | None:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = bytearray()
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            return bytes(out)
                        out += self.rfile.read(size)
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else None

            do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _relay

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def count(self, contains: str = "") -> int:
        with self._lock:
            return sum(1 for _, path in self.requests if contains in path)

    def paths(self) -> Counter[str]:
        with self._lock:
            return Counter(path.split("?")[0] for _, path in self.requests)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class FakeUpstream:
    """A hub as a malicious or broken upstream could be: repo info as it likes, and
    repos served by git's smart HTTP (dulwich) holding what no hver push would."""

    def __init__(self, namespace: str = "evil") -> None:
        from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

        from dulwich.server import DictBackend
        from dulwich.web import HTTPGitApplication

        self.namespace = namespace
        self.info: dict[str, dict[str, Any] | None] = {}
        self.repos: dict[bytes, Any] = {}
        self._git = HTTPGitApplication(DictBackend(self.repos))
        fake = self

        # Large files, as an upstream may claim them: path -> the X-Xet-Hash its resolve
        # answers; every LFS batch answers an href that leads nowhere, every
        # reconstruction 404.
        self.xet_hashes: dict[str, str] = {}
        self.log: list[tuple[str, str]] = []

        def app(environ: dict[str, Any], start: Any) -> list[bytes]:
            path = environ["PATH_INFO"]
            fake.log.append((environ["REQUEST_METHOD"], path))
            if "/resolve/" in path:
                file = path.split("/resolve/", 1)[1].split("/", 1)[1]
                headers = [("Content-Length", "0")]
                if file in fake.xet_hashes:
                    headers.append(("X-Xet-Hash", fake.xet_hashes[file]))
                start("200 OK", headers)
                return [b""]
            if path.endswith("/info/lfs/objects/batch"):
                length = int(environ.get("CONTENT_LENGTH") or 0)
                asked = json.loads(environ["wsgi.input"].read(length))["objects"][0]
                start("200 OK", [("Content-Type", "application/vnd.git-lfs+json")])
                return [json.dumps({"objects": [asked | {"actions": {"download": {
                    "href": "http://127.0.0.1:9/nowhere"}}}]}).encode()]
            if "/xet-read-token/" in path:
                start("200 OK", [("X-Xet-Cas-Url", fake.endpoint + "/cas"),
                                 ("X-Xet-Access-Token", "t")])
                return [b"{}"]
            if path.startswith("/cas/"):
                start("404 Not Found", [])
                return [b""]
            parts = path.split("/")
            if len(parts) == 5 and parts[1] == "api":
                body = fake.info.get(parts[4])
                if body is None:
                    start("404 Not Found", [("X-Error-Code", "RepoNotFound")])
                    return [b"{}"]
                start("200 OK", [("Content-Type", "application/json")])
                return [json.dumps(body).encode()]
            result: list[bytes] = fake._git(environ, start)
            return result

        class Server(ThreadingMixIn, WSGIServer):
            daemon_threads = True

        class Quiet(WSGIRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

        self._server = make_server("127.0.0.1", 0, app, server_class=Server,
                                   handler_class=Quiet)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def repo(self, name: str, files: dict[bytes, Any], **info: Any) -> Any:
        """A repo whose main branch holds `files` (name -> bytes, or (mode, sha))."""
        from dulwich.repo import MemoryRepo

        repo = MemoryRepo()
        repo.refs[b"refs/heads/main"] = self.commit(repo, files)
        self.repos[f"/{self.namespace}/{name}.git".encode()] = repo
        self.info[name] = {"id": f"{self.namespace}/{name}", "private": False,
                           "gated": False} | info
        return repo

    @staticmethod
    def commit(repo: Any, files: dict[bytes, Any], parents: tuple[bytes, ...] = ()) -> bytes:
        from dulwich.objects import Blob, Commit, Tree

        tree = Tree()
        for name, value in files.items():
            if isinstance(value, tuple):
                tree.add(name, value[0], value[1])
            else:
                blob = Blob.from_string(value)
                repo.object_store.add_object(blob)
                tree.add(name, 0o100644, blob.id)
        repo.object_store.add_object(tree)
        commit = Commit()
        commit.tree, commit.parents = tree.id, list(parents)
        commit.author = commit.committer = b"x <x@example.org>"
        commit.commit_time = commit.author_time = 1_700_000_000 + len(parents)
        commit.commit_timezone = commit.author_timezone = 0
        commit.message = b"commit"
        repo.object_store.add_object(commit)
        return bytes(commit.id)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
