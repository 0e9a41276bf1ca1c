"""The JSON API's request and response bodies; FastAPI publishes them in /api/openapi.json."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ledgerlink.domain.settings import ChannelSettings, TransactionType


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class CompanyOut(_Out):
    """The company the token belongs to."""

    id: int
    name: str
    notify_email: str
    notify_events: list[str]
    created_at: datetime


class ConnectionOut(_Out):
    """A books connection (QuickBooks) or a channel connection (a store). Credentials are never shown."""

    id: int
    name: str
    kind: str = Field(description="qbo, qbd, shopify, shipstation")
    role: str = Field(description="books or channel")
    status: str = Field(description="ok, needs_reconnect, error, disconnected, waiting")
    status_detail: str
    books_id: int | None = Field(description="for a channel: the books connection its orders are posted to")
    config: dict[str, Any] = Field(description="the non-secret settings of the connection (shop, realm id, …)")
    last_synced_at: datetime | None
    created_at: datetime


class SettingsOut(BaseModel):
    """The settings in force for a channel connection."""

    connection_id: int
    revision: int = Field(description="0 while only the defaults apply")
    missing: list[str] = Field(description="settings a sync cannot run without (dotted field names)")
    settings: ChannelSettings


class SettingsRevisionOut(BaseModel):
    """One saved version of a channel connection's settings."""

    revision: int
    schema_version: int
    changed_by: str
    saved_at: datetime
    settings: dict[str, Any]


class DocumentOut(BaseModel):
    """A QuickBooks document made for an order."""

    kind: str = Field(description="SalesReceipt, Invoice, Estimate, Payment, CreditMemo, …")
    role: str
    state: str = Field(description="pending, sending, posted, failed, superseded, voided")
    doc_number: str
    remote_id: str | None = Field(description="the document's id in QuickBooks once posted")
    total: Decimal
    posted_at: datetime | None
    error: str


class OrderOut(BaseModel):
    """A channel order and where it stands in the sync."""

    id: int
    number: str
    channel: str = Field(description="the channel connection's name")
    connection_id: int
    state: str = Field(description="pending, skipped, failed, planned, posted")
    detail: str = Field(description="why it failed or was skipped, in words")
    error_field: str = Field(description="the order field that made it fail, e.g. lines[0].sku")
    total: Decimal | None
    currency: str
    channel_created_at: datetime | None
    updated_at: datetime
    documents: list[DocumentOut] = Field(description="documents of the order's current revision")


class EventOut(BaseModel):
    level: str
    kind: str
    message: str
    created_at: datetime


class OrderDetailOut(OrderOut):
    """An order with its revision and event history."""

    revision: int
    events: list[EventOut]


class OrderPage(BaseModel):
    total: int
    limit: int
    offset: int
    orders: list[OrderOut]


class RunOut(_Out):
    """One sync pass: its counts (live while running: counts.stage), timings and error."""

    id: int
    connection_id: int
    trigger: str
    state: str = Field(description="running, succeeded, partial, failed")
    started_at: datetime
    finished_at: datetime | None
    counts: dict[str, Any]
    timings: dict[str, Any]
    error: str


class JobOut(_Out):
    """A requested sync: queued, running, done or failed; `run_id` once its run started."""

    id: int
    connection_id: int
    trigger: str
    state: str
    options: dict[str, Any]
    run_id: int | None
    requested_by: str
    error: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class SyncRequest(BaseModel):
    """What to sync: everything new (empty body), a created-at window, or some order numbers."""

    model_config = ConfigDict(extra="forbid")

    since: date | None = None
    until: date | None = None
    orders: list[str] = Field(default_factory=list, max_length=250)
    retry_failed: bool = False


class JobCreated(BaseModel):
    job_id: int


class RetryOut(BaseModel):
    order_id: int
    state: str


class PreviewRequest(BaseModel):
    """An order as the channel sends it; the answer shows the documents it would become, without posting."""

    model_config = ConfigDict(extra="forbid")

    channel: str = "shopify"
    order: dict[str, Any]
    transaction_type: TransactionType | None = None
    connection_id: int | None = Field(default=None, description="use this channel connection's settings")


class PreviewDocument(BaseModel):
    kind: str
    role: str
    books: str
    payload: dict[str, Any]


class PreviewOut(BaseModel):
    order: dict[str, Any]
    documents: list[PreviewDocument]
    needs: dict[str, Any]
    skipped: str | None = None
    note: str | None = None
