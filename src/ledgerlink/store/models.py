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
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
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
    # The posting this one waits for; set on new postings so a plan is written without a flush per posting.
    depends_on: Mapped[Posting | None] = relationship(remote_side="Posting.id", lazy="select")
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


# -- QuickBooks Desktop (the Web Connector) ------------------------------------------------------------------


class QbdCompanyFile(Base):
    """What we know of one Desktop company file: when the Web Connector last came, when the lists were read."""

    __tablename__ = "qbd_company_files"

    books_id: Mapped[int] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    company_file: Mapped[str] = mapped_column(String(500), default="")
    country: Mapped[str] = mapped_column(String(5), default="US")
    qbxml_version: Mapped[str] = mapped_column(String(10), default="")
    lists_refreshed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    refresh_requested_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_contact_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_session_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")


class QbwcSession(Base):
    """One Web Connector session, by ticket, so any web process can answer its next call."""

    __tablename__ = "qbwc_sessions"

    ticket: Mapped[str] = mapped_column(String(64), primary_key=True)
    books_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(10), default="open")  # open | closed
    # The message set the Web Connector is running now, and whether it is a recovery (oldMessageSetID) ask.
    outstanding: Mapped[str | None] = mapped_column(String(24), nullable=True)
    outstanding_mode: Mapped[str] = mapped_column(String(10), default="")
    # List refresh in progress: {"Customer": iteratorID, …} for lists whose iterator is still open.
    refresh: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    company_file: Mapped[str] = mapped_column(String(500), default="")
    qbxml_version: Mapped[str] = mapped_column(String(10), default="")
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class QbdMessageSet(Base):
    """A qbXML message set handed to the Web Connector (its newMessageSetID), and what each request was for.

    `state`: sent (no answer yet) → answered; or unknown (QuickBooks kept no answer) → resolved once every
    posting in it was looked up by RefNumber."""

    __tablename__ = "qbd_message_sets"
    __table_args__ = (Index("ix_qbd_message_sets_books_state", "books_id", "state"),)

    id: Mapped[int] = mapped_column(BIGID, primary_key=True)
    set_id: Mapped[str] = mapped_column(String(24), unique=True)
    books_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    ticket: Mapped[str] = mapped_column(String(64), default="")
    purpose: Mapped[str] = mapped_column(String(10))  # work | refresh | lookup
    state: Mapped[str] = mapped_column(String(10), default="sent")
    # [{"rid": "1", "what": "posting" | "customer" | "item" | "query" | "lookup", "id": …, "list": …}]
    requests: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    recoveries: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class QbdQueuedRecord(Base):
    """A customer or item to add to the company file on the next Web Connector session."""

    __tablename__ = "qbd_queued_records"
    __table_args__ = (
        UniqueConstraint("books_id", "kind", "fold_name"),
        Index("ix_qbd_queued_records_books_state", "books_id", "state"),
    )

    id: Mapped[int] = mapped_column(BIGID, primary_key=True)
    books_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))  # customer | item
    need_key: Mapped[str] = mapped_column(String(400))
    name: Mapped[str] = mapped_column(String(100))
    fold_name: Mapped[str] = mapped_column(String(100))
    alias: Mapped[str] = mapped_column(String(400), default="")
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(10), default="pending")  # pending | sending | done | failed
    list_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class QbdListEntry(Base):
    """The lists of the company file as the last Web Connector session read them (the Desktop catalog)."""

    __tablename__ = "qbd_list_entries"
    __table_args__ = (
        UniqueConstraint("books_id", "list", "list_id"),
        Index("ix_qbd_list_entries_name", "books_id", "list", "fold_name"),
        Index("ix_qbd_list_entries_sku", "books_id", "list", "fold_sku"),
        Index("ix_qbd_list_entries_email", "books_id", "list", "fold_email"),
        Index("ix_qbd_list_entries_alias", "books_id", "list", "fold_alias"),
    )

    id: Mapped[int] = mapped_column(BIGID, primary_key=True)
    books_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    list: Mapped[str] = mapped_column(String(20))
    list_id: Mapped[str] = mapped_column(String(40))
    full_name: Mapped[str] = mapped_column(String(400))
    fold_name: Mapped[str] = mapped_column(String(400))
    fold_alias: Mapped[str] = mapped_column(String(400), default="")
    fold_sku: Mapped[str] = mapped_column(String(100), default="")
    fold_email: Mapped[str] = mapped_column(String(320), default="")
    kind: Mapped[str] = mapped_column(String(40), default="")
    special: Mapped[str] = mapped_column(String(40), default="")
    edit_sequence: Mapped[str] = mapped_column(String(20), default="")
    is_active: Mapped[bool] = mapped_column(default=True)
    refreshed_by: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class QbdTransaction(Base):
    """A transaction QuickBooks Desktop reported back (an add's answer or a look-up): what `find` reads."""

    __tablename__ = "qbd_transactions"
    __table_args__ = (
        UniqueConstraint("books_id", "txn_id"),
        Index("ix_qbd_transactions_ref", "books_id", "txn_type", "ref_number"),
    )

    id: Mapped[int] = mapped_column(BIGID, primary_key=True)
    books_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    txn_type: Mapped[str] = mapped_column(String(30))
    txn_id: Mapped[str] = mapped_column(String(40))
    ref_number: Mapped[str] = mapped_column(String(20), default="")
    edit_sequence: Mapped[str] = mapped_column(String(20), default="")
    total: Mapped[Decimal | None] = mapped_column(MONEY, nullable=True)
    memo: Mapped[str] = mapped_column(Text, default="")
    customer: Mapped[str] = mapped_column(String(200), default="")
    posting_id: Mapped[int | None] = mapped_column(ForeignKey("postings.id", ondelete="SET NULL"), nullable=True)
    set_id: Mapped[str] = mapped_column(String(24), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


# -- Webhooks ------------------------------------------------------------------------------------------------


class WebhookReceipt(Base):
    """One verified channel webhook delivery (Shopify), kept by its `X-Shopify-Webhook-Id`.

    The unique constraint is the dedupe: Shopify delivers at least once, retries for hours and keeps the same
    id, so a storm of one delivery inserts one row and queues at most one sync. Forged deliveries never get here.
    """

    __tablename__ = "webhook_receipts"
    __table_args__ = (
        UniqueConstraint("connection_id", "webhook_id"),
        Index("ix_webhook_receipts_received", "received_at"),
    )

    id: Mapped[int] = mapped_column(BIGID, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), index=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    webhook_id: Mapped[str] = mapped_column(String(100))
    topic: Mapped[str] = mapped_column(String(60))
    channel_order_id: Mapped[str] = mapped_column(String(64), default="")
    order_number: Mapped[str] = mapped_column(String(64), default="")
    outcome: Mapped[str] = mapped_column(String(20), default="queued")  # queued | ignored
    detail: Mapped[str] = mapped_column(Text, default="")
    job_id: Mapped[int | None] = mapped_column(ForeignKey("sync_jobs.id", ondelete="SET NULL"), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class BooksEvent(Base):
    """An entity change QuickBooks Online reported by webhook (legacy or CloudEvents), for the reverse direction
    (QuickBooks → channel) and reconciliation. Ids only: the consumer reads the entity (or CDC) itself.

    `event_id` is the CloudEvents id, or a digest of the legacy notification; unique per books connection, so
    Intuit's retries record an event once. `processed_at` is set by whoever consumed it."""

    __tablename__ = "books_events"
    __table_args__ = (
        UniqueConstraint("books_id", "event_id"),
        Index("ix_books_events_pending", "books_id", "processed_at", "id"),
        Index("ix_books_events_entity", "books_id", "entity", "entity_id"),
    )

    id: Mapped[int] = mapped_column(BIGID, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), index=True)
    books_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    realm_id: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(12))  # legacy | cloudevents
    entity: Mapped[str] = mapped_column(String(40))  # QBO's entity name: Invoice, SalesReceipt, Item, …
    entity_id: Mapped[str] = mapped_column(String(64))
    operation: Mapped[str] = mapped_column(String(20))  # Create | Update | Delete | Void | Merge | Emailed
    occurred_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


# -- Reverse direction: QuickBooks sales → ShipStation orders ---------------------------------------------------


class ReverseState(enum.StrEnum):
    SENDING = "sending"  # recorded before the createorders call; a crash leaves it here and the next run resends
    SENT = "sent"  # ShipStation has the order as of `sent_sync_token`
    SHIPPED = "shipped"  # ShipStation shipped it: never overwritten again
    CANCELLING = "cancelling"  # the QuickBooks sale was voided or deleted; the cancel is being sent
    CANCELLED = "cancelled"
    REFUSED = "refused"  # ShipStation would not change it (shipped or cancelled there): `detail` says what
    FAILED = "failed"  # ShipStation refused the order or it could not be mapped: `detail` says why
    SKIPPED = "skipped"  # deleted or voided before it was ever sent


class ReverseOrder(Base):
    """One QuickBooks sale sent (or to be sent) to ShipStation: what was sent, as of which SyncToken.

    `sending_sync_token` is written (and committed) before the createorders call and `sent_sync_token` after
    ShipStation answered; a document whose SyncToken is the sent one, or `own_sync_token` (our own tracking
    write-back), is not sent again. `body` is the last order sent, kept to cancel it (ShipStation replaces
    whole orders, and a deleted sale can no longer be read).
    """

    __tablename__ = "reverse_orders"
    __table_args__ = (
        UniqueConstraint("connection_id", "order_key"),
        Index("ix_reverse_orders_doc", "connection_id", "entity", "qbo_id"),
        Index("ix_reverse_orders_state", "connection_id", "state"),
    )

    id: Mapped[int] = mapped_column(BIGID, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), index=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    books_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    entity: Mapped[str] = mapped_column(String(20))
    qbo_id: Mapped[str] = mapped_column(String(64))
    doc_number: Mapped[str] = mapped_column(String(64), default="")
    order_key: Mapped[str] = mapped_column(String(120))
    state: Mapped[str] = mapped_column(String(20), default=ReverseState.SENDING)
    seen_sync_token: Mapped[str] = mapped_column(String(20), default="")
    sending_sync_token: Mapped[str] = mapped_column(String(20), default="")
    sent_sync_token: Mapped[str] = mapped_column(String(20), default="")
    own_sync_token: Mapped[str] = mapped_column(String(20), default="")
    order_status: Mapped[str] = mapped_column(String(30), default="")
    body: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    shipstation_order_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    total: Mapped[Decimal | None] = mapped_column(MONEY, nullable=True)
    tracking_number: Mapped[str] = mapped_column(String(100), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    sends: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class ReverseShipment(Base):
    """One ShipStation shipment of an order we sent, and whether it is written onto the QuickBooks sale."""

    __tablename__ = "reverse_shipments"
    __table_args__ = (UniqueConstraint("connection_id", "shipment_id"),)

    id: Mapped[int] = mapped_column(BIGID, primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    reverse_order_id: Mapped[int] = mapped_column(ForeignKey("reverse_orders.id", ondelete="CASCADE"), index=True)
    shipment_id: Mapped[int] = mapped_column(BigInteger)
    tracking_number: Mapped[str] = mapped_column(String(100), default="")
    carrier_code: Mapped[str] = mapped_column(String(50), default="")
    service_code: Mapped[str] = mapped_column(String(80), default="")
    ship_date: Mapped[str] = mapped_column(String(10), default="")
    state: Mapped[str] = mapped_column(String(20), default="writing")  # writing | written | skipped | failed
    qbo_sync_token: Mapped[str] = mapped_column(String(20), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class ReverseCursor(Base):
    """How far the reverse direction has read: QuickBooks changes (CDC) and ShipStation shipments."""

    __tablename__ = "reverse_cursors"

    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True)
    changes_since: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    shipments_since: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
