"""The tables. The ledger (`postings`) is how we know what is already in the books."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


MONEY = Numeric(14, 2, asdecimal=True)
BIGID = BigInteger().with_variant(Integer, "sqlite")

naming = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=naming)


class OrderState(enum.StrEnum):
    PENDING = "pending"  # stored, not planned yet (new or changed revision)
    SKIPPED = "skipped"  # left out by the order filter
    FAILED = "failed"  # a person must act: the error says what
    PLANNED = "planned"  # postings written, not all posted yet
    POSTED = "posted"  # every posting of the current revision is in the books


class PostingState(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    POSTED = "posted"
    FAILED = "failed"
    SUPERSEDED = "superseded"
    VOIDED = "voided"


class Company(Base):
    __tablename__ = "companies"

    id: Mapped[int] = mapped_column(BIGID, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    notify_email: Mapped[str] = mapped_column(String(320), default="")
    # Which events e-mail the notify address: "sync_failed", "order_failed", "needs_reconnect".
    notify_events: Mapped[list[str]] = mapped_column(JSON, default=list)
    wizard_step: Mapped[str] = mapped_column(String(30), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class User(Base):
    """A person who signs in; belongs to one or more companies through memberships."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BIGID, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("user_id", "company_id"),)

    id: Mapped[int] = mapped_column(BIGID, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(20), default="owner")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ApiToken(Base):
    """A token for the JSON API; only its hash is stored, the token is shown once when created."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BIGID, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class SyncJob(Base):
    """A requested sync ("Sync now", the schedule, a webhook): queued, then run by a worker."""

    __tablename__ = "sync_jobs"
    __table_args__ = (Index("ix_sync_jobs_state", "state", "id"),)

    id: Mapped[int] = mapped_column(BIGID, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), index=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), index=True)
    trigger: Mapped[str] = mapped_column(String(20), default="manual")
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(20), default="queued")  # queued | running | done | failed
    run_id: Mapped[int | None] = mapped_column(ForeignKey("sync_runs.id", ondelete="SET NULL"), nullable=True)
    requested_by: Mapped[str] = mapped_column(String(320), default="")
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class Connection(Base):
    """A linked external system: a channel (Shopify store, …) or the books (a QuickBooks company)."""

    __tablename__ = "connections"
    __table_args__ = (UniqueConstraint("company_id", "name"),)

    id: Mapped[int] = mapped_column(BIGID, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(30))
    role: Mapped[str] = mapped_column(String(10))  # "channel" | "books"
    books_id: Mapped[int | None] = mapped_column(ForeignKey("connections.id"), nullable=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    secrets: Mapped[str] = mapped_column(Text, default="")
    secrets_version: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(30), default="ok")
    status_detail: Mapped[str] = mapped_column(Text, default="")
    last_synced_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class SettingsRevision(Base):
    """Every saved version of a channel connection's settings; the highest revision is in force."""

    __tablename__ = "channel_settings"
    __table_args__ = (UniqueConstraint("connection_id", "revision"),)

    id: Mapped[int] = mapped_column(BIGID, primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), index=True)
    revision: Mapped[int] = mapped_column(Integer)
    schema_version: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    changed_by: Mapped[str] = mapped_column(String(320), default="")
    saved_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class StoredOrder(Base):
    """The latest revision of one channel order: raw JSON kept, canonical form, state in the sync."""

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("connection_id", "channel_order_id"),
        Index("ix_orders_connection_state", "connection_id", "state"),
    )

    id: Mapped[int] = mapped_column(BIGID, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), index=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    channel_order_id: Mapped[str] = mapped_column(String(64))
    number: Mapped[str] = mapped_column(String(64), index=True)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    content_hash: Mapped[str] = mapped_column(String(64))
    raw: Mapped[dict[str, Any]] = mapped_column(JSON)
    canonical: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    total: Mapped[Decimal | None] = mapped_column(MONEY, nullable=True)
    currency: Mapped[str] = mapped_column(String(3), default="")
    channel_created_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    channel_updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    state: Mapped[str] = mapped_column(String(20), default=OrderState.PENDING)
    detail: Mapped[str] = mapped_column(Text, default="")
    error_field: Mapped[str] = mapped_column(String(200), default="")
    first_seen_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class OrderRevision(Base):
    """History: each content revision of an order as it arrived."""

    __tablename__ = "order_revisions"
    __table_args__ = (UniqueConstraint("order_id", "revision"),)

    id: Mapped[int] = mapped_column(BIGID, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    revision: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    raw: Mapped[dict[str, Any]] = mapped_column(JSON)
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Posting(Base):
    """One document for one order revision: the outbox row and, once posted, the binding to the books."""

    __tablename__ = "postings"
    __table_args__ = (
        Index("ix_postings_books_state", "books_id", "state"),
        Index("ix_postings_order", "order_id"),
    )

    id: Mapped[int] = mapped_column(BIGID, primary_key=True)
    key: Mapped[str] = mapped_column(String(40), unique=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), index=True)
    books_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    revision: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(30))
    kind: Mapped[str] = mapped_column(String(30))
    operation: Mapped[str] = mapped_column(String(10), default="create")
    doc_number: Mapped[str] = mapped_column(String(40), default="")
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    total: Mapped[Decimal] = mapped_column(MONEY)
    depends_on_id: Mapped[int | None] = mapped_column(ForeignKey("postings.id"), nullable=True)
    state: Mapped[str] = mapped_column(String(20), default=PostingState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    claim_token: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    remote_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sync_token: Mapped[str | None] = mapped_column(String(32), nullable=True)
    posted_total: Mapped[Decimal | None] = mapped_column(MONEY, nullable=True)
    bound_existing: Mapped[bool] = mapped_column(default=False)
    error: Mapped[str] = mapped_column(Text, default="")
    error_code: Mapped[str] = mapped_column(String(20), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
    posted_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class CursorRow(Base):
    """How far a connection has been read; advanced only after the orders it covers are stored."""

    __tablename__ = "cursors"

    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class SyncRun(Base):
    """One pull/plan/push pass with its counts, timings and errors (the dashboard's history)."""

    __tablename__ = "sync_runs"

    id: Mapped[int] = mapped_column(BIGID, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), index=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), index=True)
    trigger: Mapped[str] = mapped_column(String(20), default="manual")
    state: Mapped[str] = mapped_column(String(20), default="running")
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    timings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str] = mapped_column(Text, default="")


class Event(Base):
    """The event log: what happened to which order, in words a bookkeeper can act on."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BIGID, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), index=True)
    connection_id: Mapped[int | None] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("sync_runs.id", ondelete="CASCADE"), index=True)
    level: Mapped[str] = mapped_column(String(10), default="info")
    kind: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class BooksLock(Base):
    """The push lease of one books connection: one pusher per QuickBooks company at a time."""

    __tablename__ = "books_locks"

    books_id: Mapped[int] = mapped_column(BIGID, primary_key=True, autoincrement=False)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
