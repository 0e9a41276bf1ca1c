"""OAuth tokens of a books connection, kept encrypted in the database and refreshed one company at a time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select

from ledgerlink.books.base import Tokens
from ledgerlink.domain.errors import NeedsUserError
from ledgerlink.store.crypto import SecretBox
from ledgerlink.store.db import Database
from ledgerlink.store.models import Connection


def tokens_to_secrets(tokens: Tokens) -> dict[str, str]:
    return {
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "access_expires_at": tokens.access_expires_at.isoformat(),
        "refresh_expires_at": tokens.refresh_expires_at.isoformat() if tokens.refresh_expires_at else "",
    }


def tokens_from_secrets(secrets: dict[str, str]) -> Tokens:
    refresh_expires = secrets.get("refresh_expires_at") or ""
    return Tokens(
        access_token=secrets["access_token"],
        refresh_token=secrets["refresh_token"],
        access_expires_at=datetime.fromisoformat(secrets["access_expires_at"]),
        refresh_expires_at=datetime.fromisoformat(refresh_expires) if refresh_expires else None,
    )


class DbTokenStore:
    """`TokenStore` over the connection row: the newest refresh token is written in the same transaction
    that holds the row lock, so two workers never both spend one refresh token (QuickBooks rotates them)."""

    def __init__(self, db: Database, box: SecretBox, connection_id: int) -> None:
        self.db = db
        self.box = box
        self.connection_id = connection_id

    def load(self) -> Tokens:
        with self.db.session(readonly=True) as session:
            conn = session.get(Connection, self.connection_id)
            if conn is None:
                raise NeedsUserError("the QuickBooks connection was removed", action="reconnect")
            secrets = self.box.open(conn.secrets)
        if "access_token" not in secrets:
            raise NeedsUserError("QuickBooks is not connected yet: connect it first", action="reconnect")
        return tokens_from_secrets(secrets)

    def refresh(self, stale_access_token: str, do_refresh: Callable[[Tokens], Tokens]) -> Tokens:
        refused: NeedsUserError | None = None
        with self.db.session() as session:
            conn = session.scalars(
                select(Connection).where(Connection.id == self.connection_id).with_for_update()
            ).one()
            secrets = self.box.open(conn.secrets)
            current = tokens_from_secrets(secrets)
            if current.access_token != stale_access_token:
                return current  # another worker refreshed while we waited for the lock
            try:
                fresh = do_refresh(current)
            except NeedsUserError as exc:
                # Commit the state so the dashboard shows "needs reconnecting", then stop the run.
                conn.status, conn.status_detail = "needs_reconnect", str(exc)
                refused = exc
            else:
                secrets.update(tokens_to_secrets(fresh))
                conn.secrets = self.box.seal(secrets)
                conn.secrets_version += 1
                conn.status, conn.status_detail = "ok", ""
        if refused is not None:
            raise refused
        return fresh
