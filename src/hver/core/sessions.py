"""Browser sessions: a password sign-in gives a random secret, kept by the browser in a
cookie; the database keeps only its sha256, the user and an expiry.

A session acts for its user with full (write) rights, like the user's own password.
It ends when the user signs out, when it expires, when the user's password changes,
and (without being deleted) while the user is disabled.

Forms sent from a signed-in browser carry a CSRF token derived from the session's
secret: another site can make the browser send the cookie, but cannot read it, so it
cannot produce the token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hver.core.accounts import Actor, actor_for, hash_token, login
from hver.db.engine import Database
from hver.db.models import Account, WebSession, utcnow
from hver.errors import Unauthorized

SESSION_TTL = timedelta(days=14)
SESSION_PREFIX = "hver_s_"
SESSION_TOKEN_NAME = "web session"


def sign_in(db: Database, name: str, password: str, source: str | None = None) -> str:
    """A new session's secret for `name`, if the password is theirs (`accounts.login`,
    which audits the attempt); Unauthorized otherwise."""
    actor = login(db, name, password, source=source)
    secret = SESSION_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    with db.write() as session:
        session.add(WebSession(secret_hash=hash_token(secret), user_id=actor.id,
                               created_at=now, expires_at=now + SESSION_TTL))
        # Sign-ins are rare: the moment to drop every expired session.
        session.execute(delete(WebSession).where(WebSession.expires_at < now))
    return secret


def resolve(db: Database, secret: str) -> Actor:
    """The user a session's secret stands for; Unauthorized when it is unknown, expired,
    or its user disabled."""
    if not secret.startswith(SESSION_PREFIX):
        raise Unauthorized("Not signed in.", code="InvalidSession")
    with db.read() as session:
        row = session.scalar(select(WebSession).where(
            WebSession.secret_hash == hash_token(secret)))
        user = session.get(Account, row.user_id) if row is not None else None
        if row is None or user is None or user.disabled or row.expires_at < utcnow():
            raise Unauthorized("Your session has ended; please sign in again.",
                               code="InvalidSession")
        return actor_for(session, user, "write", SESSION_TOKEN_NAME)


def sign_out(db: Database, secret: str) -> None:
    with db.write() as session:
        session.execute(delete(WebSession).where(WebSession.secret_hash == hash_token(secret)))


def end_all(session: Session, user_id: int) -> None:
    """End every session of a user (their password changed)."""
    session.execute(delete(WebSession).where(WebSession.user_id == user_id))


def csrf_token(secret: str) -> str:
    return hmac.new(secret.encode(), b"hver csrf", hashlib.sha256).hexdigest()


def check_csrf(secret: str, token: str) -> bool:
    return hmac.compare_digest(csrf_token(secret), token)
