"""The audit log: security-relevant events, written in the transaction that makes them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hver.core.accounts import Actor
from hver.db.models import AuditEvent


def record(session: Session, actor: Actor | str | None, event: str, target: str | None = None,
           **details: Any) -> None:
    """Add an event to the session's transaction; it lands (or not) with the change itself.

    Never pass a token or password in `details`.
    """
    name = actor.name if isinstance(actor, Actor) else actor
    session.add(AuditEvent(actor=name, event=event, target=target, details=details or None))


def events(session: Session, *, since: datetime | None = None, event: str | None = None,
           actor: str | None = None, limit: int = 1000) -> list[AuditEvent]:
    """The newest events first."""
    q = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if since is not None:
        q = q.where(AuditEvent.at >= since)
    if event is not None:
        q = q.where(AuditEvent.event == event)
    if actor is not None:
        q = q.where(AuditEvent.actor == actor)
    return list(session.scalars(q))
