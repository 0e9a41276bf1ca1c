"""The reverse direction: QuickBooks Online sales → ShipStation orders, and ShipStation's shipments → back.

One `ReverseSync.run(connection_id)` (a ShipStation channel connection whose settings say FROM_BOOKS):

1. **Changes**: CDC windows from the connection's cursor (`books/qbo/cdc.py`), SalesReceipts and Invoices as
   `from_books` chooses, filtered by class. Per sale, `reverse_orders` knows the SyncToken last sent: an
   unchanged sale is not sent again, nor our own tracking write-back (`own_sync_token`).
2. **Send**: the orders to create or update are recorded `sending` (with their body and SyncToken) and
   committed *before* one `createorders` call per 100; the answers mark them `sent` (or `failed`/`refused` with
   ShipStation's words). A crash in between leaves `sending` rows, which the next run sends again: createorders
   is an upsert by orderKey, so ShipStation still holds each sale once. A sale voided or deleted in QuickBooks
   is cancelled the same way (`cancelling` → `cancelled`), by resending the last body with status cancelled.
   ShipStation never changes a shipped or cancelled order: an edit or void after that is recorded as
   `refused`-style detail on the row, and ShipStation is not asked when we already know it shipped.
3. **Cursor**: advanced only after the window's sales are recorded.
4. **Shipments**: `GET /shipments` from the shipments cursor (or `on_ship_notify(resource_url)` for a
   SHIP_NOTIFY webhook) → for our orders, a `reverse_shipments` row is written (`writing`) before the sparse
   update of TrackingNum/ShipDate/ShipMethodRef (and, with `write_shipping_cost`, the label cost as a line of
   the PrivateNote) on the QuickBooks sale (Id + SyncToken; 5010 → re-read and retry) and marked `written`
   after; a shipment already written is never written again.

`send_one(connection_id, entity, doc_number)` is the settings' "Test with one sale": the same recording and
upsert for one sale chosen by its number, so the scheduled sync later finds it already sent.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ledgerlink.books.qbo.adapter import QboBooks
from ledgerlink.books.qbo.cdc import CdcReader, Change
from ledgerlink.books.qbo.client import QboClient, WindowPacer, equals, one_of
from ledgerlink.books.qbo.client import select as qbo_select
from ledgerlink.channels.shipstation import ShipStationChannel, parse_pacific
from ledgerlink.channels.shipstation_outbound import MAX_BULK_ORDERS, CreateResult, ShipStationOutbound
from ledgerlink.domain.errors import LedgerlinkError, MappingError, PermanentError
from ledgerlink.domain.reverse import (
    SHIPPING_ITEM_ID,
    CustomerInfo,
    FromBooksSettings,
    ItemInfo,
    SaleType,
    ShipmentFacts,
    cancelled,
    is_voided,
    note_with_cost,
    order_key,
    shipment_facts,
    to_shipstation,
    tracking_update,
    wanted,
)
from ledgerlink.domain.settings import SyncDirection
from ledgerlink.store.db import Database
from ledgerlink.store.models import Connection, ReverseCursor, ReverseOrder, ReverseShipment, ReverseState
from ledgerlink.sync.connections import AdapterFactory
from ledgerlink.sync.engine import load_settings

log = logging.getLogger(__name__)

STALE_OBJECT_CODE = "5010"
NOT_FOUND_CODE = "610"
STALE_RETRIES = 3
MAX_IN_VALUES = 100
MAX_WINDOWS_PER_RUN = 200
_OPEN = (ReverseState.SENT, ReverseState.SENDING)
_DELETED_TOKEN = "deleted"  # noqa: S105 - a SyncToken stand-in, not a secret


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ReverseReport:
    """What one reverse run did; `refusals` and `failures` are (document, why) for the activity page."""

    counts: Counter[str] = field(default_factory=Counter)
    refusals: list[tuple[str, str]] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and not self.failures


@dataclass(frozen=True)
class TestSend:
    """What "Test with one sale" did: `ok`, a sentence for the page, and the ShipStation order as stored there."""

    ok: bool
    message: str
    doc_number: str = ""
    order_key: str = ""
    order_status: str = ""
    shipstation_order_id: int | None = None
    order_total: Decimal | None = None


@dataclass
class _Context:
    connection_id: int
    company_id: int
    books_id: int
    realm_id: str
    settings: FromBooksSettings
    channel: ShipStationChannel
    outbound: ShipStationOutbound
    client: QboClient
    reader: CdcReader
    items: dict[str, ItemInfo] = field(default_factory=dict)
    customers: dict[str, CustomerInfo] = field(default_factory=dict)


@dataclass
class _Send:
    key: str
    entity: str
    doc_id: str
    number: str
    token: str
    body: dict[str, Any]
    cancel: bool


class ReverseSync:
    """Runs the reverse direction for one ShipStation connection (see the module docstring)."""

    def __init__(self, db: Database, adapters: AdapterFactory, *, clock: Callable[[], datetime] = _now) -> None:
        self.db = db
        self.adapters = adapters
        self.clock = clock
        # One in-process pacer per company, kept across runs: runs close together (a webhook, then the poll)
        # would each start an empty window and together pass QuickBooks' 10 requests a second.
        self._pacers: dict[str, WindowPacer] = {}

    # -- entry points ----------------------------------------------------------------------------------------

    def run(self, connection_id: int) -> ReverseReport:
        """Send new, changed, voided and deleted sales; then write back what ShipStation shipped."""
        report = ReverseReport()
        try:
            with self._context(connection_id) as ctx:
                self._push(ctx, report)
                self._poll_shipments(ctx, report)
                report.calls = dict(ctx.outbound.calls)
        except LedgerlinkError as exc:
            report.error = str(exc)
            log.warning("reverse sync of connection %s stopped: %s", connection_id, exc)
        return report

    def push(self, connection_id: int) -> ReverseReport:
        """Only the QuickBooks → ShipStation half."""
        report = ReverseReport()
        try:
            with self._context(connection_id) as ctx:
                self._push(ctx, report)
                report.calls = dict(ctx.outbound.calls)
        except LedgerlinkError as exc:
            report.error = str(exc)
        return report

    def poll_shipments(self, connection_id: int) -> ReverseReport:
        """Only the ShipStation shipments → QuickBooks half."""
        report = ReverseReport()
        try:
            with self._context(connection_id) as ctx:
                self._poll_shipments(ctx, report)
                report.calls = dict(ctx.outbound.calls)
        except LedgerlinkError as exc:
            report.error = str(exc)
        return report

    def on_ship_notify(self, connection_id: int, resource_url: str) -> ReverseReport:
        """A SHIP_NOTIFY webhook: read the shipments it points at and write ours back (the cursor stays put).

        ShipStation's webhooks are unsigned, so the URL is only followed on the account's own API host, and a
        delivery is a hint: the poll reads the same shipments and the ledger writes each one once.
        """
        report = ReverseReport()
        try:
            with self._context(connection_id) as ctx:
                rows = ctx.outbound.shipments_at(resource_url)
                self._ship(ctx, rows, report)
                report.calls = dict(ctx.outbound.calls)
        except LedgerlinkError as exc:
            report.error = str(exc)
        return report

    def send_one(self, connection_id: int, entity: str, doc_number: str) -> TestSend:
        """Send one QuickBooks sale, found by its number, to ShipStation now ("Test with one sale").

        The sale is recorded and upserted exactly as the sync does it, so the next sync does not send it again
        (unless it changes); the filters by type and class apply, and a refusal is said in words.
        """
        number = doc_number.strip()
        if entity not in {t.value for t in SaleType if not t.desktop_only}:
            return TestSend(False, f"{entity or 'That type'} cannot be read from QuickBooks Online.")
        if not number:
            return TestSend(False, "Enter the number of a sale in QuickBooks.")
        report = ReverseReport()
        try:
            with self._context(connection_id) as ctx:
                rows = ctx.client.query(qbo_select(entity, equals("DocNumber", number)))
                if not rows:
                    return TestSend(False, f"QuickBooks has no {_words(entity)} numbered {number}.", number)
                row = rows[0]
                change = Change(entity, str(row.get("Id") or ""), False, row, None)
                key = order_key(ctx.realm_id, entity, change.id)
                sends = self._handle(ctx, [change], report)
                if sends:
                    self._send(ctx, sends, report)
        except LedgerlinkError as exc:
            return TestSend(False, f"Nothing was sent: {exc}", number)
        return self._test_outcome(connection_id, key, number, entity, report)

    def _test_outcome(self, connection_id: int, key: str, number: str, entity: str, report: ReverseReport) -> TestSend:
        with self.db.session(readonly=True) as session:
            row = _load_rows(session, connection_id, [key]).get(key)
        what = f"{_words(entity).capitalize()} {number}"
        if row is None:
            return TestSend(False, f"{what} was not sent: {_why(report) or 'it is not one of the sales chosen'}.")
        facts = TestSend(False, "", number, key, row.order_status, row.shipstation_order_id, row.total)
        if report.counts["created"] or report.counts["updated"]:
            done = "created" if report.counts["created"] else "updated"
            status = row.order_status.replace("_", " ")
            return replace(facts, ok=True, message=f"{what} was {done} in ShipStation as {status}.")
        if report.counts["unchanged"] and row.state in (ReverseState.SENT, ReverseState.SHIPPED):
            status = row.order_status.replace("_", " ") or row.state
            message = f"{what} is already in ShipStation ({status}), unchanged since it was sent."
            return replace(facts, ok=True, message=message)
        return replace(facts, message=f"{what} was not sent: {_why(report) or row.detail or row.state}.")

    # -- set-up ---------------------------------------------------------------------------------------------

    @contextmanager
    def _context(self, connection_id: int) -> Iterator[_Context]:
        with self.db.session(readonly=True) as session:
            conn = session.get(Connection, connection_id)
            if conn is None:
                raise LedgerlinkError(f"no connection {connection_id}")
            if conn.kind != "shipstation" or conn.books_id is None:
                raise LedgerlinkError(f"connection {conn.name!r} is not a ShipStation connection paired with books")
            books_conn = session.get(Connection, conn.books_id)
            if books_conn is None or books_conn.kind != "qbo":
                raise LedgerlinkError("orders from QuickBooks need a QuickBooks Online connection")
            settings = load_settings(session, connection_id)
            company_id, books_id, realm_id = conn.company_id, books_conn.id, str(books_conn.config.get("realm_id"))
        if settings.direction is not SyncDirection.FROM_BOOKS:
            raise LedgerlinkError(f"connection {connection_id} does not sync orders from QuickBooks (direction)")
        channel = self.adapters.channel(conn)
        if not isinstance(channel, ShipStationChannel):
            raise LedgerlinkError(f"connection {connection_id} is not a ShipStation channel")
        books = self.adapters.books(books_conn)
        if not isinstance(books, QboBooks):
            channel.close()
            raise LedgerlinkError(
                "QuickBooks Desktop sales are read when the Web Connector runs (sync/reverse_desktop.py), "
                "not one at a time from here"
            )
        if isinstance(books.client.pacer, WindowPacer):
            # A pacer shared through Redis (scaled out) is left alone; the in-process one is kept per company.
            books.client.pacer = self._pacers.setdefault(realm_id, books.client.pacer)
        try:
            yield _Context(
                connection_id=connection_id,
                company_id=company_id,
                books_id=books_id,
                realm_id=realm_id,
                settings=settings.from_books,
                channel=channel,
                outbound=ShipStationOutbound(channel),
                client=books.client,
                reader=CdcReader(books.client),
            )
        finally:
            channel.close()
            books.close()

    # -- QuickBooks → ShipStation ---------------------------------------------------------------------------

    def _push(self, ctx: _Context, report: ReverseReport) -> None:
        """Window by window: record the sales to send (`sending`), advance the cursor, send in full hundreds.

        Sends wait across windows until a hundred are ready (or the last window is read), so a backlog goes out
        in the fewest createorders calls; each is recorded before the cursor passes it, so a crash loses none.
        """
        pending: dict[str, _Send] = {}
        self._resume(ctx, pending, report)
        since = self._changes_cursor(ctx)
        entities = ctx.settings.online_entities
        if not entities:
            raise LedgerlinkError("Sales Orders exist only in QuickBooks Desktop: choose another transaction type")
        for _ in range(MAX_WINDOWS_PER_RUN):
            batch = ctx.reader.read(entities, since)
            report.counts["cdc_windows"] += 1
            if batch.lookback_clamped:
                report.refusals.append(
                    ("(all)", "the last sync is over 30 days ago: older QuickBooks changes could not be read")
                )
            self._queue(pending, self._handle(ctx, batch.changes, report))
            if not batch.deletions_complete:
                self._queue(pending, self._reconcile_deletions(ctx, report))
            with self.db.session() as session:
                cursor_row(session, ctx.connection_id).changes_since = batch.next_since
            since = batch.next_since
            if len(pending) >= MAX_BULK_ORDERS:
                self._flush(ctx, pending, report, whole_hundreds=True)
            if batch.caught_up:
                break
        else:
            report.counts["windows_left"] += 1
        self._flush(ctx, pending, report, whole_hundreds=False)

    @staticmethod
    def _queue(pending: dict[str, _Send], sends: Iterable[_Send]) -> None:
        for send in sends:
            pending.pop(send.key, None)  # a newer revision of the same sale replaces the older one
            pending[send.key] = send

    def _flush(self, ctx: _Context, pending: dict[str, _Send], report: ReverseReport, *, whole_hundreds: bool) -> None:
        count = len(pending) - len(pending) % MAX_BULK_ORDERS if whole_hundreds else len(pending)
        if count <= 0:
            return
        keys = list(pending)[:count]
        self._send(ctx, [pending.pop(k) for k in keys], report)

    def _changes_cursor(self, ctx: _Context) -> datetime:
        with self.db.session(readonly=True) as session:
            row = session.get(ReverseCursor, ctx.connection_id)
            if row is not None and row.changes_since is not None:
                return row.changes_since
        return self.clock() - timedelta(days=ctx.settings.first_sync_days)

    def _resume(self, ctx: _Context, pending: dict[str, _Send], report: ReverseReport) -> None:
        """Send again what a crashed run recorded but may not have sent (createorders is an upsert)."""
        with self.db.session(readonly=True) as session:
            rows = session.scalars(
                select(ReverseOrder).where(
                    ReverseOrder.connection_id == ctx.connection_id,
                    ReverseOrder.state.in_([ReverseState.SENDING, ReverseState.CANCELLING]),
                )
            ).all()
        sends = [
            _Send(
                r.order_key,
                r.entity,
                r.qbo_id,
                r.doc_number,
                r.sending_sync_token,
                _restore(r.body or {}),
                r.state == ReverseState.CANCELLING,
            )
            for r in rows
            if r.body
        ]
        report.counts["resumed"] += len(sends)
        self._queue(pending, sends)

    def _handle(self, ctx: _Context, changes: Sequence[Change], report: ReverseReport) -> list[_Send]:
        """Decide and record (committed) what each changed sale needs; returns the orders to send."""
        latest: dict[str, Change] = {}
        for change in changes:
            key = order_key(ctx.realm_id, change.entity, change.id)
            known = latest.get(key)
            if known is None or _newer(change, known):
                latest[key] = change
        if not latest:
            return []
        report.counts["read"] += len(latest)
        rows = self._rows(ctx.connection_id, latest)
        live = [
            c for k, c in latest.items() if not c.deleted and not is_voided(c.row) and self._needs_send(rows.get(k), c)
        ]
        self._learn(ctx, [c.row for c in live])
        sends: list[_Send] = []
        with self.db.session() as session:
            current = _load_rows(session, ctx.connection_id, list(latest))
            for key, change in latest.items():
                send = self._decide(ctx, session, key, change, current.get(key), report)
                if send is not None:
                    sends.append(send)
        return sends

    def _needs_send(self, row: ReverseOrder | None, change: Change) -> bool:
        token = change.sync_token
        return row is None or token not in (row.sent_sync_token, row.own_sync_token, row.seen_sync_token)

    def _decide(
        self,
        ctx: _Context,
        session: Session,
        key: str,
        change: Change,
        row: ReverseOrder | None,
        report: ReverseReport,
    ) -> _Send | None:
        """What to do with one changed sale; records everything but the send itself (done in `_send`)."""
        label = str(change.row.get("DocNumber") or "") or f"{change.entity} {change.id}"
        token = _DELETED_TOKEN if change.deleted else change.sync_token
        gone = change.deleted or is_voided(change.row)
        if row is not None and token in (row.sent_sync_token, row.own_sync_token, row.seen_sync_token):
            report.counts["unchanged"] += 1
            return None
        if gone:
            if row is None:
                report.counts["ignored"] += 1
                return None
            row.seen_sync_token = token
            what = "deleted" if change.deleted else "voided"
            if row.state in (ReverseState.SHIPPED, ReverseState.CANCELLED) or (
                row.state == ReverseState.REFUSED and row.order_status == "shipped"
            ):
                if row.state != ReverseState.CANCELLED:
                    row.detail = f"{what} in QuickBooks after it shipped in ShipStation: the order stays shipped"
                    report.refusals.append((row.doc_number, row.detail))
                    report.counts["refused"] += 1
                return None
            if not row.sent_sync_token or not row.body:
                # ShipStation never had it: nothing to cancel.
                row.state = ReverseState.SKIPPED
                row.detail = f"{what} in QuickBooks before it reached ShipStation"
                report.counts["skipped"] += 1
                return None
            row.state = ReverseState.CANCELLING
            row.body = cancelled(row.body)
            row.sending_sync_token = token
            row.detail = f"{what} in QuickBooks: cancelling the ShipStation order"
            return _Send(key, row.entity, row.qbo_id, row.doc_number, token, _restore(row.body), cancel=True)
        reason = wanted(change.row, change.entity, ctx.settings)
        if reason is not None:
            if row is None:
                report.counts["filtered"] += 1
                return None
            row.seen_sync_token = token
            row.detail = f"no longer sent: {reason}; the ShipStation order was left as it is"
            report.counts["filtered"] += 1
            return None
        if row is not None and row.state in (ReverseState.SHIPPED, ReverseState.CANCELLED, ReverseState.REFUSED):
            row.seen_sync_token = token
            status = row.order_status or row.state
            row.detail = f"edited in QuickBooks after it was {status} in ShipStation: not changed there"
            report.refusals.append((row.doc_number, row.detail))
            report.counts["refused"] += 1
            return None
        try:
            body = to_shipstation(
                change.row,
                change.entity,
                ctx.realm_id,
                ctx.settings,
                items=ctx.items,
                customer=ctx.customers.get(_ref(change.row.get("CustomerRef"))),
            )
        except MappingError as exc:
            row = row or self._new_row(session, ctx, key, change, label)
            row.state = ReverseState.FAILED if not row.sent_sync_token else row.state
            row.seen_sync_token = token
            row.detail = str(exc)
            report.failures.append((label, str(exc)))
            report.counts["failed"] += 1
            return None
        row = row or self._new_row(session, ctx, key, change, label)
        row.doc_number = label
        row.state = ReverseState.SENDING
        row.sending_sync_token = token
        row.seen_sync_token = ""
        row.body = _jsonable(body)
        row.total = _total(change.row)
        row.detail = ""
        return _Send(key, change.entity, change.id, label, token, body, cancel=False)

    def _new_row(self, session: Session, ctx: _Context, key: str, change: Change, label: str) -> ReverseOrder:
        return new_reverse_order(
            session, (ctx.company_id, ctx.connection_id, ctx.books_id), change.entity, change.id, label, key
        )

    def _send(self, ctx: _Context, sends: Sequence[_Send], report: ReverseReport) -> None:
        """One createorders call per 100 (the rows are already recorded `sending`/`cancelling`)."""
        results = ctx.outbound.create_orders([s.body for s in sends])
        report.counts["createorders_calls"] += -(-len(sends) // MAX_BULK_ORDERS)
        by_key = {s.key: s for s in sends}
        with self.db.session() as session:
            rows = _load_rows(session, ctx.connection_id, list(by_key))
            for result in results:
                send = by_key.get(result.order_key)
                row = rows.get(result.order_key)
                if send is None or row is None:
                    continue
                record_created(row, send.token, send.cancel, str(send.body.get("orderStatus") or ""), result, report)

    def _reconcile_deletions(self, ctx: _Context, report: ReverseReport) -> list[_Send]:
        """After a saturated CDC answer: open orders whose sale no longer exists were deleted."""
        with self.db.session(readonly=True) as session:
            open_rows = session.scalars(
                select(ReverseOrder).where(
                    ReverseOrder.connection_id == ctx.connection_id, ReverseOrder.state.in_(_OPEN)
                )
            ).all()
        by_entity: dict[str, list[ReverseOrder]] = {}
        for row in open_rows:
            by_entity.setdefault(row.entity, []).append(row)
        gone: list[Change] = []
        for entity, rows in by_entity.items():
            existing = ctx.reader.existing_ids(entity, [r.qbo_id for r in rows])
            gone += [Change(entity, r.qbo_id, True, {"Id": r.qbo_id}, None) for r in rows if r.qbo_id not in existing]
        report.counts["reconciled"] += 1
        return self._handle(ctx, gone, report) if gone else []

    def _rows(self, connection_id: int, keyed: Mapping[str, Change]) -> dict[str, ReverseOrder]:
        with self.db.session(readonly=True) as session:
            return _load_rows(session, connection_id, list(keyed))

    def _learn(self, ctx: _Context, sales: Iterable[Mapping[str, Any]]) -> None:
        """Read the items and customers the sales name that this run has not read yet (batched IN queries)."""
        item_ids: set[str] = set()
        customer_ids: set[str] = set()
        for sale in sales:
            customer_ids.add(_ref(sale.get("CustomerRef")))
            for line in _all_lines(sale):
                detail = line.get("SalesItemLineDetail")
                if isinstance(detail, Mapping):
                    item_ids.add(_ref(detail.get("ItemRef")))
        item_ids -= {"", SHIPPING_ITEM_ID, *ctx.items}
        customer_ids -= {"", *ctx.customers}
        for row in _in_query(ctx.client, "Item", item_ids):
            ctx.items[str(row.get("Id"))] = ItemInfo(name=str(row.get("Name") or ""), sku=str(row.get("Sku") or ""))
        for row in _in_query(ctx.client, "Customer", customer_ids):
            ctx.customers[str(row.get("Id"))] = _customer_info(row)

    # -- ShipStation → QuickBooks -----------------------------------------------------------------------------

    def _poll_shipments(self, ctx: _Context, report: ReverseReport) -> None:
        self._retry_shipments(ctx, report)
        poll_shipments(
            self.db,
            ctx.connection_id,
            ctx.outbound,
            ctx.settings.first_sync_days,
            self.clock,
            lambda page: self._ship(ctx, page, report),
        )

    def _ship(self, ctx: _Context, rows: Iterable[Mapping[str, Any]], report: ReverseReport) -> None:
        facts = [f for f in (shipment_facts(r) for r in rows) if f is not None and not f.voided]
        report.counts["shipments_seen"] += len(facts)
        if not facts:
            return
        with self.db.session(readonly=True) as session:
            orders = {
                r.order_key: r
                for r in session.scalars(
                    select(ReverseOrder).where(
                        ReverseOrder.connection_id == ctx.connection_id,
                        ReverseOrder.order_key.in_(sorted({f.order_key for f in facts})),
                    )
                )
            }
            done = {
                s.shipment_id: s.state
                for s in session.scalars(
                    select(ReverseShipment).where(
                        ReverseShipment.connection_id == ctx.connection_id,
                        ReverseShipment.shipment_id.in_([f.shipment_id for f in facts]),
                    )
                )
            }
        for fact in facts:
            order = orders.get(fact.order_key)
            if order is None:
                continue  # not one of ours (ShipStation's own marketplaces)
            if fact.shipment_id in done:
                # Written, skipped, or failed earlier (failures are retried by `_retry_shipments`).
                report.counts["shipments_known"] += 1
                continue
            self._write_back(ctx, order, fact, report)

    def _retry_shipments(self, ctx: _Context, report: ReverseReport) -> None:
        """Shipments read earlier whose write-back failed or was cut short (the cursor is already past them)."""
        with self.db.session(readonly=True) as session:
            pairs = session.execute(
                select(ReverseShipment, ReverseOrder)
                .join(ReverseOrder, ReverseOrder.id == ReverseShipment.reverse_order_id)
                .where(
                    ReverseShipment.connection_id == ctx.connection_id,
                    ReverseShipment.state.in_(["writing", "failed"]),
                )
            ).all()
        for shipment, order in pairs:
            fact = ShipmentFacts(
                shipment_id=shipment.shipment_id,
                order_key=order.order_key,
                tracking_number=shipment.tracking_number,
                carrier_code=shipment.carrier_code,
                service_code=shipment.service_code,
                ship_date=date.fromisoformat(shipment.ship_date) if shipment.ship_date else None,
                shipment_cost=self._cost_again(ctx, order, shipment.shipment_id),
            )
            report.counts["shipments_retried"] += 1
            self._write_back(ctx, order, fact, report)

    def _write_back(self, ctx: _Context, order: ReverseOrder, fact: ShipmentFacts, report: ReverseReport) -> None:
        try:
            self._record_shipment(ctx, order, fact)
        except IntegrityError:
            # Another run recorded this shipment at the same moment: it writes it.
            report.counts["shipments_known"] += 1
            return
        if not (ctx.settings.write_tracking or ctx.settings.write_shipping_cost):
            self._shipment_state(ctx, fact, "skipped", "tracking write-back is off")
            report.counts["shipments_not_written"] += 1
            return
        try:
            token = self._update_sale(ctx, order, fact)
        except PermanentError as exc:
            if exc.code == NOT_FOUND_CODE:
                self._shipment_state(ctx, fact, "skipped", f"the QuickBooks sale is gone: {exc}")
                report.counts["shipments_not_written"] += 1
                return
            self._shipment_state(ctx, fact, "failed", str(exc))
            report.failures.append((order.doc_number, f"tracking not written to QuickBooks: {exc}"))
            report.counts["shipments_failed"] += 1
            return
        except LedgerlinkError as exc:
            self._shipment_state(ctx, fact, "failed", str(exc))
            report.failures.append((order.doc_number, f"tracking not written to QuickBooks: {exc}"))
            report.counts["shipments_failed"] += 1
            return
        if token is None:
            self._shipment_state(ctx, fact, "skipped", "nothing to write: tracking write-back is off, no label cost")
            report.counts["shipments_not_written"] += 1
            return
        with self.db.session() as session:
            written = self._shipment_row(session, ctx, fact)
            written.state = "written"
            written.qbo_sync_token = token
            written.detail = ""
            session.get_one(ReverseOrder, order.id).own_sync_token = token
        report.counts["shipments_written"] += 1

    @staticmethod
    def _cost_again(ctx: _Context, order: ReverseOrder, shipment_id: int) -> Decimal | None:
        """A retried shipment's label cost, read from ShipStation again (only the write-back needing it asks)."""
        if not ctx.settings.write_shipping_cost or order.shipstation_order_id is None:
            return None
        for raw in ctx.outbound.shipments_of_order(order.shipstation_order_id):
            fact = shipment_facts(raw)
            if fact is not None and fact.shipment_id == shipment_id:
                return fact.shipment_cost
        return None

    def _shipment_row(self, session: Session, ctx: _Context, fact: ShipmentFacts) -> ReverseShipment:
        return session.scalars(
            select(ReverseShipment).where(
                ReverseShipment.connection_id == ctx.connection_id,
                ReverseShipment.shipment_id == fact.shipment_id,
            )
        ).one()

    def _shipment_state(self, ctx: _Context, fact: ShipmentFacts, state: str, detail: str) -> None:
        with self.db.session() as session:
            row = self._shipment_row(session, ctx, fact)
            row.state = state
            row.detail = detail

    def _record_shipment(self, ctx: _Context, order: ReverseOrder, fact: ShipmentFacts) -> None:
        """The shipment is recorded (`writing`) and the order marked shipped before QuickBooks is written."""
        with self.db.session() as session:
            shipment = session.scalars(
                select(ReverseShipment).where(
                    ReverseShipment.connection_id == ctx.connection_id,
                    ReverseShipment.shipment_id == fact.shipment_id,
                )
            ).first()
            if shipment is None:
                shipment = ReverseShipment(
                    connection_id=ctx.connection_id,
                    reverse_order_id=order.id,
                    shipment_id=fact.shipment_id,
                    tracking_number=fact.tracking_number[:100],
                    carrier_code=fact.carrier_code[:50],
                    service_code=fact.service_code[:80],
                    ship_date=fact.ship_date.isoformat() if fact.ship_date else "",
                    state="writing",
                    qbo_sync_token="",
                    detail="",
                )
                session.add(shipment)
            row = session.get_one(ReverseOrder, order.id)
            row.state = ReverseState.SHIPPED
            row.order_status = "shipped"
            row.tracking_number = fact.tracking_number[:100]

    def _update_sale(self, ctx: _Context, order: ReverseOrder, fact: ShipmentFacts) -> str | None:
        """The sparse update on the sale; on a stale SyncToken (5010) read it again and retry.

        Returns the sale's SyncToken after it, or None when the settings leave nothing to write."""
        path = f"{order.entity.lower()}/{order.qbo_id}"
        current = ctx.client.get(path).get(order.entity)
        for attempt in range(STALE_RETRIES + 1):
            if not isinstance(current, Mapping):
                raise PermanentError(f"QuickBooks Online has no {order.entity} {order.qbo_id} any more")
            body = _write_back_body(order.qbo_id, current, fact, ctx.settings)
            if body is None:
                return None
            if all(current.get(k) == v for k, v in body.items() if k not in ("Id", "SyncToken", "sparse")):
                return str(current.get("SyncToken") or "")  # already written (a crash after the update)
            try:
                updated = ctx.client.post(
                    order.entity,
                    body,
                    requestid=f"ll-ship-{ctx.connection_id}-{fact.shipment_id}-{attempt}"[:50],
                )
            except PermanentError as exc:
                if exc.code != STALE_OBJECT_CODE or attempt == STALE_RETRIES:
                    raise
                current = ctx.client.get(path).get(order.entity)
                continue
            return str(updated.get("SyncToken") or "")
        raise PermanentError("QuickBooks Online kept answering that the sale was changed by someone else")

    # -- helpers ----------------------------------------------------------------------------------------------


def new_reverse_order(
    session: Session, owner: tuple[int, int, int], entity: str, remote_id: str, doc_number: str, order_key: str
) -> ReverseOrder:
    """The ledger row of a QuickBooks sale about to be sent (`owner`: company, ShipStation connection, books)."""
    company_id, connection_id, books_id = owner
    row = ReverseOrder(
        company_id=company_id,
        connection_id=connection_id,
        books_id=books_id,
        entity=entity,
        qbo_id=remote_id,
        doc_number=doc_number,
        order_key=order_key,
        state=ReverseState.SENDING,
        seen_sync_token="",
        sending_sync_token="",
        sent_sync_token="",
        own_sync_token="",
        order_status="",
        tracking_number="",
        detail="",
        sends=0,
    )
    session.add(row)
    session.flush()
    return row


def cursor_row(session: Session, connection_id: int) -> ReverseCursor:
    """The reverse sync's cursors of a ShipStation connection (created on first use)."""
    row = session.get(ReverseCursor, connection_id)
    if row is None:
        row = ReverseCursor(connection_id=connection_id)
        session.add(row)
    return row


def poll_shipments(
    db: Database,
    connection_id: int,
    outbound: ShipStationOutbound,
    first_sync_days: int,
    clock: Callable[[], datetime],
    record: Callable[[Sequence[Mapping[str, Any]]], None],
) -> None:
    """Hand every ShipStation shipment since the connection's cursor to `record`, page by page, then move the cursor
    to the newest createDate seen (the first time: `first_sync_days` back)."""
    with db.session(readonly=True) as session:
        cursor = session.get(ReverseCursor, connection_id)
        since = cursor.shipments_since if cursor is not None else None
    if since is None:
        since = clock() - timedelta(days=first_sync_days + 1)
    newest = since
    for page in outbound.shipments_since(since):
        record(page)
        for raw in page:
            created = raw.get("createDate")
            if isinstance(created, str) and created:
                try:
                    newest = max(newest, parse_pacific(created))
                except ValueError:
                    continue
    with db.session() as session:
        cursor_row(session, connection_id).shipments_since = newest


def record_created(
    row: ReverseOrder, token: str, cancel: bool, order_status: str, result: CreateResult, report: ReverseReport
) -> None:
    """ShipStation's answer (createorders) for one order sent from QuickBooks, Online or Desktop."""
    row.sends += 1
    if result.success:
        if result.order_id is not None:
            row.shipstation_order_id = result.order_id
        row.order_status = order_status
        if cancel:
            row.state = ReverseState.CANCELLED
            row.detail = "cancelled in ShipStation (voided or deleted in QuickBooks)"
            report.counts["cancelled"] += 1
        else:
            report.counts["updated" if row.sent_sync_token else "created"] += 1
            row.state = ReverseState.SENT
            row.sent_sync_token = token
            row.detail = ""
        return
    if result.frozen:
        text = result.error.casefold()
        row.order_status = "shipped" if "shipped" in text else "cancelled" if "cancel" in text else "frozen"
        row.state = ReverseState.REFUSED
        row.seen_sync_token = token
        row.detail = f"ShipStation keeps the order as it is: {result.error}"
        report.refusals.append((row.doc_number, row.detail))
        report.counts["refused"] += 1
        return
    row.state = ReverseState.FAILED if not row.sent_sync_token else ReverseState.SENT
    row.seen_sync_token = token
    row.detail = f"ShipStation refused the order: {result.error}"
    report.failures.append((row.doc_number, row.detail))
    report.counts["failed"] += 1


def _write_back_body(
    doc_id: str, current: Mapping[str, Any], fact: ShipmentFacts, settings: FromBooksSettings
) -> dict[str, Any] | None:
    """The sparse update the settings ask for: tracking fields, the label cost in the memo, both, or nothing."""
    token = str(current.get("SyncToken") or "0")
    note = None
    if settings.write_shipping_cost:
        note = note_with_cost(str(current.get("PrivateNote") or ""), fact)
    if settings.write_tracking:
        return tracking_update(doc_id, token, fact, private_note=note)
    if note is None:
        return None
    return {"Id": doc_id, "SyncToken": token, "sparse": True, "PrivateNote": note}


_WORDS = {"SalesReceipt": "sales receipt", "Invoice": "invoice", "Estimate": "estimate", "SalesOrder": "sales order"}


def _words(entity: str) -> str:
    return _WORDS.get(entity, entity)


def _why(report: ReverseReport) -> str:
    found = report.failures or report.refusals
    if found:
        return found[0][1]
    if report.counts["filtered"]:
        return "its type or QuickBooks class is not one of those chosen"
    if report.counts["ignored"]:
        return "it is voided or deleted in QuickBooks"
    return ""


def _newer(change: Change, other: Change) -> bool:
    if change.deleted != other.deleted:
        return change.deleted
    try:
        return int(change.sync_token or -1) > int(other.sync_token or -1)
    except ValueError:
        return True


def _ref(ref: object) -> str:
    return str(ref.get("value") or "") if isinstance(ref, Mapping) else ""


def _all_lines(sale: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    lines = [line for line in sale.get("Line") or [] if isinstance(line, Mapping)]
    out: list[Mapping[str, Any]] = []
    for line in lines:
        group = line.get("GroupLineDetail")
        if isinstance(group, Mapping):
            out.extend(i for i in group.get("Line") or [] if isinstance(i, Mapping))
        else:
            out.append(line)
    return out


def _in_query(client: QboClient, entity: str, ids: set[str]) -> list[dict[str, Any]]:
    wanted_ids = sorted(ids)
    rows: list[dict[str, Any]] = []
    for start in range(0, len(wanted_ids), MAX_IN_VALUES):
        rows += client.query(qbo_select(entity, one_of("Id", wanted_ids[start : start + MAX_IN_VALUES])))
    return rows


def _customer_info(row: Mapping[str, Any]) -> CustomerInfo:
    email = row.get("PrimaryEmailAddr")
    phone = row.get("PrimaryPhone")
    bill = row.get("BillAddr")
    ship = row.get("ShipAddr")
    return CustomerInfo(
        display_name=str(row.get("DisplayName") or row.get("CompanyName") or ""),
        company=str(row.get("CompanyName") or ""),
        email=str(email.get("Address") or "") if isinstance(email, Mapping) else "",
        phone=str(phone.get("FreeFormNumber") or "") if isinstance(phone, Mapping) else "",
        bill_addr=dict(bill) if isinstance(bill, Mapping) else None,
        ship_addr=dict(ship) if isinstance(ship, Mapping) else None,
    )


def _total(row: Mapping[str, Any]) -> Decimal | None:
    raw = row.get("TotalAmt")
    try:
        return Decimal(str(raw)) if raw is not None else None
    except ArithmeticError:
        return None


def _load_rows(session: Session, connection_id: int, keys: Sequence[str]) -> dict[str, ReverseOrder]:
    found: dict[str, ReverseOrder] = {}
    for start in range(0, len(keys), 500):
        chunk = list(keys[start : start + 500])
        for row in session.scalars(
            select(ReverseOrder).where(ReverseOrder.connection_id == connection_id, ReverseOrder.order_key.in_(chunk))
        ):
            found[row.order_key] = row
    return found


_MONEY_KEYS = frozenset({"amountPaid", "taxAmount", "shippingAmount", "unitPrice"})


def _restore(body: Mapping[str, Any]) -> dict[str, Any]:
    """A stored body as it is sent: the money fields (kept as strings in JSON) as Decimals again."""
    restored: dict[str, Any] = {}
    for key, value in body.items():
        if key in _MONEY_KEYS and isinstance(value, str):
            restored[key] = Decimal(value)
        elif key == "items" and isinstance(value, list):
            restored[key] = [_restore(item) if isinstance(item, Mapping) else item for item in value]
        else:
            restored[key] = value
    return restored


def _jsonable(value: Any) -> Any:
    """A body for a JSON column: Decimals as strings (read back by ShipStation as numbers all the same)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
