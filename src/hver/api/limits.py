"""Request limits, as a pure ASGI middleware: per-token rate limits and a body-size cap.

Rate limits are token buckets, one per credential: a bucket holds a minute's budget
(`rate_limit` requests for a token, `rate_limit_anonymous` for a client IP without
one) and refills continuously. A request that finds its bucket empty is answered 429
with `Retry-After` and the IETF draft `RateLimit` headers that huggingface_hub reads
(it then waits and retries). Buckets are keyed on a keyed hash of the token (the key
derived from the hub's secret), never the token itself. Every worker process and every
server on the same database shares them (`hver.core.rate_limits`): each decides from
memory and writes what it spent a few times a second, so several processes can together
overspend a budget by a few percent for a moment, never for long.

What is counted where:

- `/api/health` is never limited (load balancers and monitors poll it).
- Signed URLs (`/_lfs/...`, `/xet/{cas}/fetch/...`, `/xet/{cas}/uploads/...`) are not
  limited: they carry no token, were handed out by a request that was counted, grant
  one object, one xorb upload or a few byte ranges, and expire. A large download or
  multipart upload makes many of them.
- Xet CAS calls count against the account their CAS token names (anonymous readers:
  against their IP), so minting more CAS tokens buys no extra budget.
- Sign-in attempts (`POST /login`) count against the client IP alone, in a budget of
  their own (`LOGIN_PER_MINUTE`, never more than `rate_limit_anonymous`; none when that
  is 0), whatever `Authorization` header they carry: no header buys a fresh budget for
  guessing passwords. Per account, `hver.core.login_throttle` slows guessing further.
- Everything else counts against its `Authorization` token (Bearer, or a Basic
  password as git sends), else against the client IP.
- The tokens of the users named in `rate_limit_exempt` (a benchmark's, a CI's) are not
  limited once a route has accepted them; their first request counts as any new token's.

A token gets a budget of its own only once the hub has accepted it: made up, a token
would otherwise be a fresh budget per request. Until a request with it succeeds
(the route resolved it to a user), a token's requests count against its client IP, in
a bucket the size of the anonymous one but apart from it, so that the first requests of
a building's new tokens do not spend its visitors' budget: an address gets at most
twice the anonymous budget, whatever it sends. Accepted tokens are remembered (as
keyed hashes) while in use, and forgotten after `KNOWN_TTL` unused or once refused.
This costs no database lookup: the route looks the token up anyway, and the middleware
reads its verdict from the request's state.

Bodies: a request declaring a `Content-Length` over its limit is refused before it is
read; a body sent without one is counted as it streams and refused (413) once it
passes the limit. Nothing is buffered here. Commit bodies (`max_commit_body`), LFS
uploads to signed URLs (bounded by the signed size) and Xet xorbs and shards (bounded
by the CAS) have their own limits; every other body is capped at `max_request_body`.
File uploads through the web UI (`POST /[datasets/|spaces/]{ns}/{name}/upload/{rev}`)
are streamed to staging files by their route, which enforces `max_web_upload`; git
pushes (`POST .../git-receive-pack`) are spooled by theirs, which enforces
`max_commit_body`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import re
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hver.api.errors import error_response
from hver.config import Settings
from hver.core import xet as core_xet
from hver.core.accounts import Actor
from hver.core.rate_limits import WINDOW, RateLimiter, SharedBuckets
from hver.core.signing import Signer
from hver.errors import HverError, PayloadTooLarge
from hver.names import RESERVED_NAMESPACES

SWEEP_EVERY = 60.0  # seconds between removals of idle remembered tokens
LOGIN_PER_MINUTE = 30  # sign-in attempts per client IP, at most
KNOWN_TTL = 24 * 3600.0  # seconds an accepted token is remembered after its last use

_UNLIMITED = re.compile(r"^/(?:api/health$|_lfs/|xet/[^/]+/(?:fetch|uploads)/)")
_CAS = re.compile(r"^/xet/[^/]+/")
_COMMIT = re.compile(r"^/api/(?:models|datasets|spaces)/[^/]+/[^/]+/commit/.+$")
_OWN_BODY_LIMIT = re.compile(r"^/(?:_lfs/upload/|xet/)")
# The web UI's upload form: a page URL, so never under the API prefixes.
# Exactly the route's shape: a model's namespace is never a reserved name, so
# `/datasets/{ns}/upload/...` (a dataset `ns/upload`) is not a model upload.
_RESERVED = "|".join(re.escape(n) for n in sorted({*RESERVED_NAMESPACES, "xet"}))
_WEB_UPLOAD = re.compile(
    rf"^/(?:(?:datasets|spaces)/|(?!(?:{_RESERVED})/))[^/]+/[^/]+/upload/[^/]+(?:/.*)?$")
_GIT_PUSH = re.compile(
    rf"^/(?:(?:datasets|spaces)/|(?!(?:{_RESERVED})/))[^/]+/[^/]+/git-receive-pack$")


def credential(header: bytes | None) -> str | None:
    """The token in an Authorization header (Bearer, or a Basic password); None if none."""
    if not header:
        return None
    scheme, _, value = header.decode("latin-1").partition(" ")
    value = value.strip()
    if not value:
        return None
    if scheme.lower() == "bearer":
        return value
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


class _Digests:
    """Bucket keys: keyed hashes of credentials and addresses, never the credentials. The
    key derives from the hub's secret, so every worker and server names a bucket alike."""

    def __init__(self, secret: bytes) -> None:
        self.key = hmac.new(secret, b"hver rate-limit buckets", hashlib.sha256).digest()

    def __call__(self, kind: bytes, value: str) -> bytes:
        return hashlib.blake2b(kind + b"\0" + value.encode("utf-8", "surrogateescape"),
                               key=self.key, digest_size=16).digest()


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value)
    return None


class LimitsMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings, signer: Signer,
                 shared: SharedBuckets | None = None) -> None:
        self.app = app
        self.signer = signer
        self.digest = _Digests(signer.key)
        self.max_body = settings.max_request_body
        self.tokens = RateLimiter(settings.rate_limit, name="token", shared=shared)
        self.anonymous = RateLimiter(settings.rate_limit_anonymous, name="anonymous",
                                     shared=shared)
        self.unverified = RateLimiter(settings.rate_limit_anonymous, name="unverified",
                                      shared=shared)
        self.logins = RateLimiter(min(LOGIN_PER_MINUTE, settings.rate_limit_anonymous),
                                  name="login", shared=shared)
        self.known = _KnownTokens()
        # Users whose tokens are not limited (`rate_limit_exempt`), and the digests of
        # their tokens the routes have accepted (until one is refused).
        self.exempt_users = {n.strip().lower() for n in settings.rate_limit_exempt.split(",")
                             if n.strip()}
        self.exempt: set[bytes] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if not _UNLIMITED.match(path):
            limiter, key, resource, token = self._bucket(scope, path)
            wait = 0.0 if token is not None and token in self.exempt else limiter.take(key)
            if wait > 0:
                await self._too_many(scope, receive, send, limiter, resource, wait)
                return
            if token is not None:
                send = self._learn(scope, send, token, limiter is self.unverified)
        limit = self._body_limit(path, scope["method"])
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(limit)(scope, receive, send)
            return
        await _LimitedBody(self.app, limit)(scope, receive, send)

    def _bucket(self, scope: Scope, path: str) -> tuple[RateLimiter, bytes, str, bytes | None]:
        """The limiter and bucket a request counts against, its resource name, and the
        digest of its token when the route's verdict on that token is to be learnt."""
        client = scope.get("client")
        ip = self.digest(b"ip", str(client[0]) if client else "unknown")
        if path == "/login" and scope["method"] == "POST":
            return self.logins, ip, "login", None
        token = credential(_header(scope, b"authorization"))
        if token is not None and _CAS.match(path):
            try:
                account = core_xet.parse_token(self.signer, token).account_id
            except HverError:
                account = None  # refused by the route: counted as anonymous
            if account is not None:
                return self.tokens, self.digest(b"account", str(account)), "api", None
        elif token is not None:
            digest = self.digest(b"token", token)
            if self.known.has(digest):
                return self.tokens, digest, "api", digest
            return self.unverified, ip, "anonymous", digest
        return self.anonymous, ip, "anonymous", None

    def _learn(self, scope: Scope, send: Send, token: bytes, first: bool) -> Send:
        """`send`, learning from the response whether the route accepted the token."""
        state = scope.setdefault("state", {})  # where the route's Request.state lives

        async def learning(message: Message) -> None:
            if message["type"] == "http.response.start":
                actor = state.get("hver_actor")
                if isinstance(actor, Actor) and actor.token_id is not None:
                    if first:  # it has spent from its address; count it against itself too
                        self.tokens.take(token)
                    self.known.add(token)
                    if actor.name.lower() in self.exempt_users:
                        self.exempt.add(token)
                elif message["status"] == 401:
                    self.known.discard(token)  # revoked, expired, or never valid
                    self.exempt.discard(token)
            await send(message)

        return learning

    def _body_limit(self, path: str, method: str) -> int | None:
        if self.max_body <= 0 or _OWN_BODY_LIMIT.match(path):
            return None
        if method == "POST" and _COMMIT.match(path):
            return None  # the commit route enforces max_commit_body as it reads
        if method == "POST" and _WEB_UPLOAD.match(path):
            return None  # the upload page enforces max_web_upload as it reads
        if method == "POST" and _GIT_PUSH.match(path):
            return None  # a git push: its route enforces max_commit_body as it reads
        return self.max_body

    @staticmethod
    async def _too_many(scope: Scope, receive: Receive, send: Send, limiter: RateLimiter,
                        resource: str, wait: float) -> None:
        seconds = max(1, math.ceil(wait))
        who = {"api": "this token may make",
               "login": "this client address may make",
               "anonymous": "this client address may make, without an accepted token,"}[resource]
        what = "sign-in attempts" if resource == "login" else "requests"
        response = error_response(
            429, f"Too many requests: {who} {int(limiter.capacity)} {what} a minute. "
                 f"Retry after {seconds} s.", "TooManyRequests")
        response.headers["Retry-After"] = str(seconds)
        response.headers["RateLimit"] = f'"{resource}";r=0;t={seconds}'
        response.headers["RateLimit-Policy"] = (
            f'"token bucket";"{resource}";q={int(limiter.capacity)};w={int(WINDOW)}')
        await response(scope, receive, send)


class _KnownTokens:
    """Digests of tokens a route has accepted, with when each was last used."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.seen: dict[bytes, float] = {}  # oldest use first
        self.swept = clock()

    def has(self, digest: bytes) -> bool:
        now = self.clock()
        if now - self.swept >= SWEEP_EVERY:
            self.swept = now
            while self.seen and now - next(iter(self.seen.values())) >= KNOWN_TTL:
                del self.seen[next(iter(self.seen))]
        return digest in self.seen

    def add(self, digest: bytes) -> None:
        self.seen.pop(digest, None)
        self.seen[digest] = self.clock()

    def discard(self, digest: bytes) -> None:
        self.seen.pop(digest, None)


def _too_large(limit: int) -> ASGIApp:
    return error_response(413, f"Request body is larger than {limit} bytes.",
                          PayloadTooLarge.code)


class _LimitedBody:
    """Counts body bytes as the app receives them; past `limit` the app gets a 413 error.

    The error is raised from `receive`, so the route's handler answers it as any
    PayloadTooLarge. Should something between turn it into another status (FastAPI
    reports a failed body read as 400), the response is replaced by the 413.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        seen = 0
        exceeded = False
        replaced = False

        async def counted() -> Message:
            nonlocal seen, exceeded
            if exceeded:
                raise PayloadTooLarge(f"Request body is larger than {self.limit} bytes.")
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    exceeded = True
                    raise PayloadTooLarge(f"Request body is larger than {self.limit} bytes.")
            return message

        async def guarded(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return
            if (exceeded and message["type"] == "http.response.start"
                    and message["status"] != 413):
                replaced = True
                await _too_large(self.limit)(scope, receive, send)
                return
            await send(message)

        await self.app(scope, counted, guarded)
