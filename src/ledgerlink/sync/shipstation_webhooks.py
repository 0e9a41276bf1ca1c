"""ShipStation's SHIP_NOTIFY webhook: registered when a connection sends sales from QuickBooks, received, queued.

ShipStation signs nothing: a delivery is `{"resource_url", "resource_type"}` and nothing else (reference §3.1).
So, as with Shopify, the address carries an unguessable per-connection token (`ship_notify_token` in the
connection's config), and the delivery is only a hint: the job it queues reads `resource_url` with the
account's own credentials, only on the account's own API host (`ShipStationOutbound.shipments_at`), and the
shipments cursor of the scheduled sync reads the same shipments anyway. The ledger writes each one once.

- `register_ship_notify(app, connection)`: one `SHIP_NOTIFY` subscription at our address for the store the
  sales go to (all stores when none is chosen); subscriptions of ours for another store or an old token are
  removed. Called when the direction is set to "from QuickBooks" (wizard, Settings) and, when that could not
  reach ShipStation, again before each reverse sync (`ensure_registered`).
- `handle_ship_notify(app, token, body)`: 401 for an unknown token; 400 for a body that is not ShipStation's or
  points away from the account; dedupe on the resource URL (each of ShipStation's batches has its own, and a
  retry repeats it) in `webhook_receipts`; then a job `{"ship_notify": resource_url}` is queued, which the worker
  runs at once (`ReverseSync.on_ship_notify`): tracking comes back without waiting for the schedule.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ledgerlink.bootstrap import App
from ledgerlink.channels.shipstation import ShipStationChannel, ShipStationConfig
from ledgerlink.channels.shipstation_outbound import ShipStationOutbound, is_shipments_url
from ledgerlink.domain.errors import LedgerlinkError
from ledgerlink.domain.settings import SyncDirection
from ledgerlink.jsonwire import storable
from ledgerlink.store.models import Connection
from ledgerlink.sync.engine import load_settings
from ledgerlink.sync.jobs import enqueue
from ledgerlink.sync.webhooks import UNVERIFIED, Outcome, WebhookSetupError, new_receipt, new_webhook_token

log = logging.getLogger(__name__)

PATH = "/webhooks/shipstation/"
EVENTS = ("SHIP_NOTIFY", "ITEM_SHIP_NOTIFY")
EVENT = "SHIP_NOTIFY"
FRIENDLY_NAME = "ledgerlink: tracking back to QuickBooks"
# A settings page waits this long at most for ShipStation (its retries and rate-limit waits included).
QUICK_WAIT_SECONDS = 1.0


def ship_notify_address(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}{PATH}{token}"


class _Impatient(LedgerlinkError):
    """ShipStation did not answer within the time a page may wait."""


def quick_channel(app: App, connection: Connection, budget: float = QUICK_WAIT_SECONDS) -> ShipStationChannel:
    """A ShipStation adapter for a web request: it waits `budget` seconds in all, then gives up.

    The sync's adapter patiently waits out rate-limit windows and backs off for minutes; a page must not.
    """
    config = ShipStationConfig.model_validate({**connection.config, **app.box.open(connection.secrets)})
    spent = [0.0]

    def sleep(seconds: float) -> None:
        spent[0] += seconds
        if spent[0] > budget:
            raise _Impatient("ShipStation did not answer in time; try again in a minute")
        time.sleep(seconds)

    return ShipStationChannel(config, sleep=sleep)


def register_ship_notify(app: App, connection: Connection) -> int:
    """Subscribe the connection's SHIP_NOTIFY address at ShipStation (idempotent); returns the subscription id.

    Stores `ship_notify_token` (if new) and `ship_notify_hook` in the connection's config: call it with the
    connection attached to a session that commits afterwards. Raises WebhookSetupError, or the channel's
    errors (LedgerlinkError) when ShipStation refuses or cannot be reached: polling still covers shipments then.
    """
    if connection.kind != "shipstation":
        raise WebhookSetupError(f"SHIP_NOTIFY is registered for ShipStation connections, not {connection.kind}")
    token = str(connection.config.get("ship_notify_token") or "") or new_webhook_token()
    address = ship_notify_address(app.settings.public_url, token)
    prefix = ship_notify_address(app.settings.public_url, "")
    with app.db.session(readonly=True) as session:
        store_id = load_settings(session, connection.id).from_books.store_id
        others = _tokens_in_use(session, exclude=connection.id)
    channel = quick_channel(app, connection)
    try:
        outbound = ShipStationOutbound(channel)
        kept: int | None = None
        for hook in outbound.webhooks():
            if not hook.url.startswith(prefix) or hook.url.removeprefix(prefix) in others:
                continue  # not ours, or another connection's
            if hook.url == address and hook.event == EVENT and hook.store_id == store_id and kept is None:
                kept = hook.hook_id
            else:
                outbound.unsubscribe(hook.hook_id)  # an old token of ours, another store, or a duplicate
        if kept is None:
            kept = outbound.subscribe(address, EVENT, store_id=store_id, friendly_name=FRIENDLY_NAME)
    finally:
        channel.close()
    connection.config = {**connection.config, "ship_notify_token": token, "ship_notify_hook": kept}
    log.info("SHIP_NOTIFY registered for connection %s (subscription %s)", connection.id, kept)
    return kept


def ensure_registered(app: App, connection_id: int) -> str:
    """Register SHIP_NOTIFY for a from-QuickBooks connection that has no subscription yet; "" or why not."""
    with app.db.session(readonly=True) as session:
        conn = session.get(Connection, connection_id)
        if conn is None or conn.kind != "shipstation" or conn.config.get("ship_notify_hook"):
            return ""
        if load_settings(session, conn.id).direction is not SyncDirection.FROM_BOOKS:
            return ""
    try:
        register_ship_notify(app, conn)  # detached: no transaction is held while ShipStation answers
    except LedgerlinkError as exc:
        log.warning("SHIP_NOTIFY not registered for connection %s: %s", connection_id, exc)
        return str(exc)
    with app.db.session() as session:
        row = session.get(Connection, connection_id)
        if row is not None:
            keys = ("ship_notify_token", "ship_notify_hook")
            row.config = {**row.config, **{k: conn.config[k] for k in keys}}
    return ""


def _tokens_in_use(session: Session, *, exclude: int | None = None) -> set[str]:
    query = select(Connection.id, Connection.config).where(Connection.kind == "shipstation")
    return {
        str(config.get("ship_notify_token"))
        for conn_id, config in session.execute(query)
        if conn_id != exclude and isinstance(config, dict) and config.get("ship_notify_token")
    }


# -- receiving -------------------------------------------------------------------------------------------------


def find_connection(session: Session, token: str) -> Connection | None:
    """The ShipStation connection whose SHIP_NOTIFY address carries `token`."""
    if not token or len(token) > 200:
        return None
    candidates = session.scalars(
        select(Connection).where(
            Connection.kind == "shipstation", Connection.config["ship_notify_token"].as_string() == token
        )
    ).all()
    for conn in candidates:
        if hmac.compare_digest(str(conn.config.get("ship_notify_token") or "").encode(), token.encode()):
            return conn
    return None


def handle_ship_notify(app: App, token: str, body: bytes) -> Outcome:
    """Check, deduplicate and queue one delivery. Never reads ShipStation or QuickBooks in the request."""
    with app.db.session(readonly=True) as session:
        conn = find_connection(session, token)
        if conn is None:
            return UNVERIFIED
        connection_id, base_url = conn.id, str(conn.config.get("base_url") or "")
    try:
        payload = storable(json.loads(body))
    except (ValueError, RecursionError):
        return Outcome(400, {"error": "the body is not JSON"})
    if not isinstance(payload, dict):
        return Outcome(400, {"error": "the body is not a JSON object"})
    resource_url, resource_type = payload.get("resource_url"), payload.get("resource_type")
    if not isinstance(resource_url, str) or not isinstance(resource_type, str) or not resource_url:
        return Outcome(400, {"error": "not a ShipStation webhook: resource_url and resource_type are required"})
    if len(resource_url) > 2000:
        return Outcome(400, {"error": "resource_url is too long"})
    if resource_type not in EVENTS:
        return Outcome(200, {"status": "ignored", "reason": f"{resource_type[:40]} is not synced"})
    if not is_shipments_url(resource_url, base_url):
        return Outcome(400, {"error": "resource_url is not a shipments URL of this ShipStation account"})
    webhook_id = "ss:" + hashlib.sha256(f"{resource_type}|{resource_url}".encode()).hexdigest()[:64]
    try:
        with app.db.session() as session:
            return _accept(session, connection_id, resource_type, webhook_id, resource_url)
    except IntegrityError:
        return Outcome(200, {"status": "duplicate"})


def _accept(session: Session, connection_id: int, topic: str, webhook_id: str, resource_url: str) -> Outcome:
    received = new_receipt(session, connection_id, topic, webhook_id)
    if isinstance(received, Outcome):
        return received
    conn, receipt = received
    reason = _not_receiving(session, conn)
    if reason:
        receipt.outcome, receipt.detail = "ignored", reason
        return Outcome(200, {"status": "ignored", "reason": reason})
    options: dict[str, Any] = {"ship_notify": resource_url}
    job = enqueue(session, conn, trigger="webhook", options=options, requested_by=f"shipstation {topic}")
    receipt.job_id = job.id
    receipt.detail = resource_url[:500]
    return Outcome(200, {"status": "queued", "job": job.id})


def _not_receiving(session: Session, conn: Connection) -> str:
    """Why a SHIP_NOTIFY must not queue a write-back now ("" when it may)."""
    if conn.books_id is None:
        return "no QuickBooks connection to write tracking to"
    try:
        settings = load_settings(session, conn.id)
    except LedgerlinkError as exc:
        return str(exc)
    if settings.direction is not SyncDirection.FROM_BOOKS:
        return "this connection does not send sales from QuickBooks"
    if not (settings.from_books.write_tracking or settings.from_books.write_shipping_cost):
        return "tracking write-back is off"
    return ""
