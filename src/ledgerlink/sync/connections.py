"""Companies and their connections: create them, store credentials encrypted, build their adapters."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.books.base import Books
from ledgerlink.channels.base import Channel, channel_class
from ledgerlink.domain.errors import LedgerlinkError
from ledgerlink.store.crypto import SecretBox
from ledgerlink.store.db import Database
from ledgerlink.store.models import Company, Connection
from ledgerlink.sync.tokens import DbTokenStore


def create_company(session: Session, name: str) -> Company:
    company = Company(name=name)
    session.add(company)
    session.flush()
    return company


def add_connection(
    session: Session,
    box: SecretBox,
    company: Company,
    *,
    name: str,
    kind: str,
    role: str,
    config: dict[str, Any],
    secrets: dict[str, Any],
    books_id: int | None = None,
) -> Connection:
    """Store a connection; `secrets` are encrypted, `config` is plain (nothing secret in it).

    Connecting again under the same name replaces its configuration and credentials (a reconnect keeps the
    connection's id, so its ledger and the markers in QuickBooks stay valid)."""
    existing = session.scalars(
        select(Connection).where(Connection.company_id == company.id, Connection.name == name)
    ).first()
    if existing is not None:
        if existing.kind != kind:
            raise LedgerlinkError(f"connection {name!r} is a {existing.kind} connection, not {kind}")
        existing.config = config
        existing.secrets = box.seal(secrets)
        existing.secrets_version += 1
        existing.status, existing.status_detail = "ok", ""
        if books_id is not None:
            existing.books_id = books_id
        return existing
    conn = Connection(
        company_id=company.id,
        name=name,
        kind=kind,
        role=role,
        config=config,
        secrets=box.seal(secrets),
        books_id=books_id,
    )
    session.add(conn)
    session.flush()
    return conn


def find_connection(session: Session, name: str, company_id: int | None = None) -> Connection:
    query = select(Connection).where(Connection.name == name)
    if company_id is not None:
        query = query.where(Connection.company_id == company_id)
    found = list(session.scalars(query))
    if not found:
        raise LedgerlinkError(f"no connection named {name!r}")
    if len(found) > 1:
        raise LedgerlinkError(f"several companies have a connection named {name!r}; name the company")
    return found[0]


class AdapterFactory:
    """Builds the channel and books adapters for connection rows (the registry is keyed by kind).

    The QuickBooks Online adapters of one company share one pacer in this process: every sync pass builds a new
    adapter, and a pacer of its own would not know what the last pass (a second ago) sent, and bounce off 429s."""

    def __init__(self, db: Database, box: SecretBox, **books_options: Any) -> None:
        self.db = db
        self.box = box
        self.books_options = books_options
        self._pacers: dict[tuple[str, int, int, int], Any] = {}
        self._pacers_lock = threading.Lock()

    def qbo_pacer(self, config: Any) -> Any:
        """The in-process pacer of a QuickBooks Online company (by realm and limits)."""
        from ledgerlink.books.qbo import WindowPacer

        key = (config.realm_id, config.requests_per_minute, config.requests_per_second, config.batches_per_minute)
        with self._pacers_lock:
            pacer = self._pacers.get(key)
            if pacer is None:
                pacer = self._pacers[key] = WindowPacer(
                    requests_per_minute=config.requests_per_minute,
                    requests_per_second=config.requests_per_second,
                    batches_per_minute=config.batches_per_minute,
                )
            return pacer

    def channel(self, conn: Connection) -> Channel:
        cls = channel_class(conn.kind)
        config = cls.Config.model_validate({**conn.config, **self.box.open(conn.secrets)})
        channel: Channel = cls(config)
        return channel

    def books(self, conn: Connection) -> Books:
        if conn.kind == "qbd":
            # Desktop is never called: the adapter reads what the Web Connector sessions recorded.
            from ledgerlink.books.qbd import QbdBooks, QbdConfig
            from ledgerlink.sync.qbwc import DbDesktopLedger

            desktop: Books = QbdBooks(QbdConfig.model_validate(conn.config), DbDesktopLedger(self.db, conn.id))
            return desktop
        if conn.kind != "qbo":
            raise LedgerlinkError(f"no books adapter for kind {conn.kind!r}")
        from ledgerlink.books.qbo import QboConfig, connect

        secrets = self.box.open(conn.secrets)
        config = QboConfig.model_validate(
            {**conn.config, "client_secret": secrets.get("client_secret", ""), **self.books_options}
        )
        pacer = self.qbo_pacer(config) if config.pace else None
        books: Books = connect(config, DbTokenStore(self.db, self.box, conn.id), pacer=pacer)
        return books
