"""Webhooks: verify, deduplicate, and turn a channel event into a sync of that one order; record books events.

Webhooks are hints, polling is the truth: a verified Shopify webhook queues a sync of the order it names
(`enqueue(..., options={"orders": [number]}, trigger="webhook")`), the scheduled sync by `updated_at` still
runs and catches whatever a webhook missed, and the ledger makes sure the two never post one order twice.

- Shopify: `POST /webhooks/shopify/{token}`. The token (in the connection's config as `webhook_token`) names
  the connection; `X-Shopify-Hmac-Sha256` is checked against the connection's `webhook_secret` (the app's
  client secret, in its sealed secrets) on the raw body; `X-Shopify-Webhook-Id` is the dedupe key
  (`webhook_receipts`, unique per connection), so a storm of one delivery queues at most one job.
- QuickBooks Online: `POST /webhooks/qbo`. `intuit-signature` is checked against the verifier token
  (`LEDGERLINK_QBO_VERIFIER_TOKEN`); legacy and CloudEvents payloads are normalised into `books_events`, one
  row per entity change and books connection of that realm, for the reverse direction and reconciliation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ledgerlink.bootstrap import App
from ledgerlink.domain.errors import LedgerlinkError
from ledgerlink.domain.settings import ScheduleKind, SyncDirection
from ledgerlink.jsonwire import storable
from ledgerlink.store.crypto import SecretBox
from ledgerlink.store.models import BooksEvent, Connection, StoredOrder, WebhookReceipt
from ledgerlink.sync.engine import load_settings
from ledgerlink.sync.jobs import enqueue

log = logging.getLogger(__name__)

SHOPIFY_TOPICS = ("orders/create", "orders/updated", "orders/paid", "orders/cancelled", "refunds/create")
SHOPIFY_PATH = "/webhooks/shopify/"
QBO_PATH = "/webhooks/qbo"
# Shopify retries a delivery for about 4 hours with the same webhook id; receipts are kept well past that.
RECEIPT_RETENTION = timedelta(days=7)
MAX_BODY_BYTES = 5 * 1024 * 1024
TOKEN_BYTES = 32


class WebhookSetupError(LedgerlinkError):
    """Webhooks cannot be registered for this connection (the message says why)."""


# -- signatures ----------------------------------------------------------------------------------------------


def sign(body: bytes, secret: str) -> str:
    """base64(HMAC-SHA256(body, secret)): Shopify's `X-Shopify-Hmac-Sha256` and Intuit's `intuit-signature`."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify(body: bytes, secret: str, given: str | None) -> bool:
    """Whether `given` is the signature of the raw `body` with `secret` (constant-time; no secret: never)."""
    if not secret or not given:
        return False
    return hmac.compare_digest(sign(body, secret).encode(), given.strip().encode())


# -- Shopify: registration -----------------------------------------------------------------------------------


def new_webhook_token() -> str:
    """An unguessable URL token naming one connection's webhook address."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def shopify_address(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}{SHOPIFY_PATH}{token}"


def set_webhook_secret(box: SecretBox, connection: Connection, secret: str) -> None:
    """Keep the app's client secret (what Shopify signs webhooks with) in the connection's sealed secrets."""
    stored = box.open(connection.secrets) if connection.secrets else {}
    stored["webhook_secret"] = secret
    connection.secrets = box.seal(stored)
    connection.secrets_version += 1


def register_shopify_webhooks(app: App, connection: Connection) -> list[str]:
    """Subscribe the connection's webhook address to the five order topics at Shopify; returns the topics.

    Gives the connection a `webhook_token` in its config if it has none (the caller's session stores it, so
    call this with the connection attached to a session that commits afterwards; this only reads).
    Idempotent; subscriptions at an address of ours whose token no other connection holds (this connection's
    before a reconnect wiped its config) are deleted, those of other connections left alone.
    Raises WebhookSetupError without a `webhook_secret` (deliveries could not be verified), and the channel's
    errors (LedgerlinkError) when Shopify refuses or cannot be reached: polling still covers the store then.
    """
    if connection.kind != "shopify":
        raise WebhookSetupError(f"webhooks are registered for Shopify connections, not {connection.kind}")
    if not app.box.open(connection.secrets).get("webhook_secret"):
        raise WebhookSetupError("the store's API secret key is not set: without it webhooks cannot be verified")
    token = str(connection.config.get("webhook_token") or "")
    if not token:
        token = new_webhook_token()
        connection.config = {**connection.config, "webhook_token": token}
    public_url = app.settings.public_url
    address = shopify_address(public_url, token)
    prefix = shopify_address(public_url, "")
    with app.db.session(readonly=True) as session:
        others = _tokens_in_use(session, exclude=connection.id)

    def replaces(other: str) -> bool:
        # An address of ours whose token no connection holds any more (this one's, before a reconnect).
        return other.startswith(prefix) and other.removeprefix(prefix) not in others

    channel = app.adapters.channel(connection)
    try:
        register = getattr(channel, "register_webhooks", None)
        if register is None:
            raise WebhookSetupError(f"the {connection.kind} adapter cannot register webhooks")
        topics: list[str] = register(address, SHOPIFY_TOPICS, replaces=replaces)
    finally:
        channel.close()
    log.info("webhooks registered for connection %s: %s", connection.id, ", ".join(topics))
    return topics


def unregister_shopify_webhooks(app: App, connection: Connection) -> int:
    """Remove the connection's subscriptions at Shopify (before the connection is deleted); returns how many.

    Optional: Shopify drops a subscription by itself after 8 failed deliveries (ours answer 401 once the
    connection is gone). Raises the channel's errors (LedgerlinkError)."""
    token = str(connection.config.get("webhook_token") or "")
    if connection.kind != "shopify" or not token:
        return 0
    channel = app.adapters.channel(connection)
    try:
        unregister = getattr(channel, "unregister_webhooks", None)
        return int(unregister(shopify_address(app.settings.public_url, token))) if unregister is not None else 0
    finally:
        channel.close()


def _tokens_in_use(session: Session, *, exclude: int | None = None) -> set[str]:
    query = select(Connection.id, Connection.config).where(Connection.kind == "shopify")
    return {
        str(config.get("webhook_token"))
        for conn_id, config in session.execute(query)
        if conn_id != exclude and isinstance(config, dict) and config.get("webhook_token")
    }


# -- Shopify: receiving --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShopifyDelivery:
    """What the route read off one POST."""

    token: str
    body: bytes
    hmac: str | None
    topic: str
    webhook_id: str
    shop_domain: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer to a webhook: `status` is the HTTP status; `body` its JSON."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)


UNVERIFIED = Outcome(401, {"error": "unverified webhook"})


def find_shopify_connection(session: Session, token: str) -> Connection | None:
    """The Shopify connection whose webhook address carries `token`."""
    if not token or len(token) > 200:
        return None
    candidates = session.scalars(
        select(Connection).where(Connection.kind == "shopify", Connection.config["webhook_token"].as_string() == token)
    ).all()
    for conn in candidates:
        if hmac.compare_digest(str(conn.config.get("webhook_token") or "").encode(), token.encode()):
            return conn
    return None


def handle_shopify(app: App, delivery: ShopifyDelivery) -> Outcome:
    """Verify, deduplicate and queue. Unverified: 401 and nothing written. Never syncs in the request."""
    with app.db.session(readonly=True) as session:
        conn = find_shopify_connection(session, delivery.token)
        if conn is None:
            return UNVERIFIED
        secret = str(app.box.open(conn.secrets).get("webhook_secret") or "")
        connection_id, shop = conn.id, str(conn.config.get("shop") or "")
    if not verify(delivery.body, secret, delivery.hmac):
        return UNVERIFIED
    # The client secret is the app's, shared by every store that installed it: the shop must be this one.
    if delivery.shop_domain and shop and delivery.shop_domain.strip().lower() != shop:
        return UNVERIFIED
    try:
        payload = storable(json.loads(delivery.body))
    except (ValueError, RecursionError):
        return Outcome(400, {"error": "the body is not JSON (or is nested too deeply)"})
    if not isinstance(payload, dict):
        return Outcome(400, {"error": "the body is not a JSON object"})
    # Without Shopify's id (never the case for real deliveries) the body itself is the identity.
    webhook_id = delivery.webhook_id.strip()[:100] or "sha256:" + hashlib.sha256(delivery.body).hexdigest()[:64]
    try:
        with app.db.session() as session:
            return _accept(session, connection_id, delivery.topic.strip(), webhook_id, payload)
    except IntegrityError:
        # The same delivery, committed by a concurrent request first.
        return Outcome(200, {"status": "duplicate"})


def new_receipt(
    session: Session, connection_id: int, topic: str, webhook_id: str
) -> tuple[Connection, WebhookReceipt] | Outcome:
    """The delivery's receipt, added and flushed; or the answer to give when the connection is unknown or the
    delivery was received before (a concurrent duplicate raises IntegrityError at the flush: the caller answers)."""
    conn = session.get(Connection, connection_id)
    if conn is None:
        return UNVERIFIED
    duplicate = session.scalars(
        select(WebhookReceipt.id).where(
            WebhookReceipt.connection_id == connection_id, WebhookReceipt.webhook_id == webhook_id
        )
    ).first()
    if duplicate is not None:
        return Outcome(200, {"status": "duplicate"})
    receipt = WebhookReceipt(
        company_id=conn.company_id, connection_id=connection_id, webhook_id=webhook_id, topic=topic[:60]
    )
    session.add(receipt)
    session.flush()  # the unique constraint decides between concurrent duplicates here
    return conn, receipt


def _accept(session: Session, connection_id: int, topic: str, webhook_id: str, payload: dict[str, Any]) -> Outcome:
    received = new_receipt(session, connection_id, topic, webhook_id)
    if isinstance(received, Outcome):
        return received
    conn, receipt = received
    target = _target(session, conn, topic, payload)
    receipt.channel_order_id, receipt.order_number = target.channel_order_id[:64], target.number[:64]
    reason = target.skip or _not_syncable(session, conn)
    if reason:
        receipt.outcome, receipt.detail = "ignored", reason
        return Outcome(200, {"status": "ignored", "reason": reason})
    options: dict[str, Any] = {"orders": [target.number]} if target.number else {}
    job = enqueue(session, conn, trigger="webhook", options=options, requested_by=f"shopify {topic}"[:320])
    receipt.job_id = job.id
    receipt.detail = target.detail
    return Outcome(200, {"status": "queued", "job": job.id})


@dataclass(frozen=True, slots=True)
class _Target:
    number: str = ""
    channel_order_id: str = ""
    skip: str = ""
    detail: str = ""


def _target(session: Session, conn: Connection, topic: str, payload: dict[str, Any]) -> _Target:
    """Which order the event is about: its number, or none for a sync of everything changed (the poll)."""
    if topic.startswith("orders/"):
        number = order_number(payload)
        order_id = str(payload.get("id") or "")
        if not number:
            return _Target(channel_order_id=order_id, skip="the order has no number")
        return _Target(number=number, channel_order_id=order_id)
    if topic == "refunds/create":
        order_id = str(payload.get("order_id") or "")
        stored = session.scalars(
            select(StoredOrder.number).where(
                StoredOrder.connection_id == conn.id, StoredOrder.channel_order_id == order_id
            )
        ).first()
        if stored:
            return _Target(number=stored, channel_order_id=order_id)
        # An order never pulled: the refund moved its updated_at, so the next pull by updated_at brings it.
        return _Target(channel_order_id=order_id, detail="order not stored yet: a sync of changed orders")
    return _Target(skip=f"topic {topic or '(none)'} is not synced")


def order_number(payload: dict[str, Any]) -> str:
    """The order number as the ledger stores it (`order_number`, else `name` without "#")."""
    for key in ("order_number", "name"):
        value = payload.get(key)
        if value not in (None, ""):
            return str(value).strip().lstrip("#")
    return ""


def _not_syncable(session: Session, conn: Connection) -> str:
    """Why a webhook must not queue a sync of this connection now ("" when it may)."""
    if conn.books_id is None:
        return "no QuickBooks connection to post to yet"
    try:
        settings = load_settings(session, conn.id)
    except LedgerlinkError as exc:
        return str(exc)
    if settings.direction is not SyncDirection.TO_BOOKS:
        return "this connection does not post orders to QuickBooks"
    if settings.missing():
        return "the setup wizard is not finished"
    if settings.schedule.kind is ScheduleKind.MANUAL:
        return "the sync is set to run only when started by hand"
    return ""


def prune_receipts(session: Session, now: datetime | None = None) -> int:
    """Forget receipts older than Shopify's retry window (and then some); returns how many went."""
    cutoff = (now or datetime.now(UTC)) - RECEIPT_RETENTION
    result = session.execute(delete(WebhookReceipt).where(WebhookReceipt.received_at < cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# -- QuickBooks Online ---------------------------------------------------------------------------------------

# CloudEvents `type` names entities in lower case (qbo.salesreceipt.created.v1): QBO's own spelling back.
_QBO_ENTITIES = {
    name.lower(): name
    for name in (
        "Account",
        "Bill",
        "BillPayment",
        "Budget",
        "Class",
        "CreditMemo",
        "Currency",
        "Customer",
        "Department",
        "Deposit",
        "Employee",
        "Estimate",
        "Invoice",
        "Item",
        "JournalCode",
        "JournalEntry",
        "Payment",
        "PaymentMethod",
        "Preferences",
        "Purchase",
        "PurchaseOrder",
        "RefundReceipt",
        "SalesReceipt",
        "TaxAgency",
        "Term",
        "TimeActivity",
        "Transfer",
        "Vendor",
        "VendorCredit",
    )
}
_QBO_OPERATIONS = {
    "created": "Create",
    "updated": "Update",
    "deleted": "Delete",
    "voided": "Void",
    "merged": "Merge",
    "emailed": "Emailed",
}


@dataclass(frozen=True, slots=True)
class QboChange:
    """One entity change from either payload shape."""

    realm_id: str
    entity: str
    entity_id: str
    operation: str
    occurred_at: datetime | None
    event_id: str
    source: str
    raw: dict[str, Any]


class PayloadError(ValueError):
    """A verified body that is neither payload shape."""


def parse_qbo_payload(payload: Any) -> list[QboChange]:
    """Normalise a legacy (`eventNotifications`) or CloudEvents (a JSON array) body into changes."""
    if isinstance(payload, dict) and isinstance(payload.get("eventNotifications"), list):
        return list(_legacy(payload["eventNotifications"]))
    if isinstance(payload, dict) and payload.get("specversion"):
        payload = [payload]  # a single CloudEvent, not batched
    if isinstance(payload, list):
        return [_cloud_event(item) for item in payload]
    raise PayloadError("neither a legacy eventNotifications object nor a CloudEvents array")


def _legacy(notifications: list[Any]) -> list[QboChange]:
    changes: list[QboChange] = []
    for notification in notifications:
        if not isinstance(notification, dict):
            raise PayloadError("an eventNotifications item is not an object")
        realm = str(notification.get("realmId") or "")
        event = notification.get("dataChangeEvent") or {}
        if not isinstance(event, dict):
            raise PayloadError("an eventNotifications item's dataChangeEvent is not an object")
        entities = event.get("entities") or []
        if not realm or not isinstance(entities, list):
            raise PayloadError("an eventNotifications item lacks realmId or dataChangeEvent.entities")
        for entity in entities:
            if not isinstance(entity, dict):
                raise PayloadError("a dataChangeEvent entity is not an object")
            name, entity_id = str(entity.get("name") or ""), str(entity.get("id") or "")
            operation, updated = str(entity.get("operation") or ""), str(entity.get("lastUpdated") or "")
            if not name or not entity_id or not operation:
                raise PayloadError("a dataChangeEvent entity lacks name, id or operation")
            digest = hashlib.sha256("|".join((realm, name, entity_id, operation, updated)).encode()).hexdigest()
            changes.append(
                QboChange(
                    realm_id=realm,
                    entity=name,
                    entity_id=entity_id,
                    operation=operation,
                    occurred_at=_instant(updated),
                    event_id=f"legacy:{digest[:64]}",
                    source="legacy",
                    raw=entity,
                )
            )
    return changes


def _cloud_event(item: Any) -> QboChange:
    if not isinstance(item, dict):
        raise PayloadError("a CloudEvent is not an object")
    kind = str(item.get("type") or "")
    parts = kind.split(".")
    realm, entity_id, event_id = (str(item.get(k) or "") for k in ("intuitaccountid", "intuitentityid", "id"))
    if len(parts) < 3 or parts[0] != "qbo" or not realm or not entity_id or not event_id:
        raise PayloadError("a CloudEvent lacks type qbo.<entity>.<verb>, id, intuitaccountid or intuitentityid")
    entity = _QBO_ENTITIES.get(parts[1].lower(), parts[1][:1].upper() + parts[1][1:])
    operation = _QBO_OPERATIONS.get(parts[2].lower(), parts[2][:1].upper() + parts[2][1:])
    return QboChange(
        realm_id=realm,
        entity=entity,
        entity_id=entity_id,
        operation=operation,
        occurred_at=_instant(str(item.get("time") or "")),
        event_id=f"ce:{event_id}"[:100],
        source="cloudevents",
        raw=item,
    )


def _instant(text: str) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)  # a timestamp at the edge of the calendar overflows here, not in the DB
    except (ValueError, OverflowError):
        return None


def handle_qbo(app: App, body: bytes, signature: str | None) -> Outcome:
    """Verify with the verifier token, normalise, record per books connection of the realm. Never 5xx for
    an unknown realm: Intuit would retry (and eventually disable the endpoint) for nothing."""
    if not verify(body, app.settings.qbo_verifier_token.get_secret_value(), signature):
        return UNVERIFIED
    try:
        changes = parse_qbo_payload(storable(json.loads(body)))
    except RecursionError:
        return Outcome(400, {"error": "not a QuickBooks webhook: the body is nested too deeply"})
    except (ValueError, PayloadError) as exc:
        return Outcome(400, {"error": f"not a QuickBooks webhook: {exc}"})
    with app.db.session() as session:
        counts = record_books_events(session, changes)
    return Outcome(200, {"status": "recorded", **counts})


def record_books_events(session: Session, changes: Sequence[QboChange]) -> dict[str, Any]:
    """Store each change once per QuickBooks Online connection of its realm; returns counts."""
    recorded = duplicates = 0
    unknown: set[str] = set()
    books_by_realm: dict[str, list[Connection]] = {}
    for change in changes:
        if change.realm_id not in books_by_realm:
            books_by_realm[change.realm_id] = list(
                session.scalars(
                    select(Connection).where(
                        Connection.kind == "qbo", Connection.config["realm_id"].as_string() == change.realm_id
                    )
                )
            )
        books = books_by_realm[change.realm_id]
        if not books:
            unknown.add(change.realm_id)
            continue
        for conn in books:
            seen = session.scalars(
                select(BooksEvent.id).where(BooksEvent.books_id == conn.id, BooksEvent.event_id == change.event_id)
            ).first()
            if seen is not None:
                duplicates += 1
                continue
            try:
                with session.begin_nested():
                    session.add(
                        BooksEvent(
                            company_id=conn.company_id,
                            books_id=conn.id,
                            realm_id=change.realm_id[:32],
                            event_id=change.event_id,
                            source=change.source,
                            entity=change.entity[:40],
                            entity_id=change.entity_id[:64],
                            operation=change.operation[:20],
                            occurred_at=change.occurred_at,
                            payload=change.raw,
                        )
                    )
            except IntegrityError:
                duplicates += 1
                continue
            recorded += 1
    if unknown:
        log.info("QuickBooks webhook for realms with no connection: %s", ", ".join(sorted(unknown)))
    return {"recorded": recorded, "duplicates": duplicates, "unknown_realms": sorted(unknown)}


def pending_books_events(
    session: Session, books_id: int, *, entities: Sequence[str] | None = None, limit: int = 500
) -> list[BooksEvent]:
    """Recorded changes not yet consumed, oldest first (the reverse direction and reconciliation read these)."""
    query = select(BooksEvent).where(BooksEvent.books_id == books_id, BooksEvent.processed_at.is_(None))
    if entities:
        query = query.where(BooksEvent.entity.in_(list(entities)))
    return list(session.scalars(query.order_by(BooksEvent.id).limit(limit)))


def mark_books_events_processed(session: Session, ids: Sequence[int], now: datetime | None = None) -> None:
    moment = now or datetime.now(UTC)
    for event in session.scalars(select(BooksEvent).where(BooksEvent.id.in_(list(ids)))):
        event.processed_at = moment
