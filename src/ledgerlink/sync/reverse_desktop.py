"""The reverse direction with QuickBooks Desktop as the source: Desktop sales → ShipStation, shipments → back.

Desktop cannot be asked: the Web Connector comes to us. So the work is split in two halves that meet in the
`reverse_orders` / `reverse_shipments` ledger (the same tables as QuickBooks Online's, `qbo_id` = TxnID and the
sync tokens = EditSequence):

**In the Web Connector session** (`sync/qbwc.py` calls `reverse_set` to build message sets, `bind_reverse` with
each answer and `reverse_has_work`):
  1. *read*: once per session, for the ShipStation connections that send this company file's sales, the chosen
     types (SalesOrderQuery, InvoiceQuery, SalesReceiptQuery) modified since the cursor, through iterators
     (MaxReturned = the connection's page size), TxnDeletedQuery for deletions since then, and the ship methods.
     Each sale is decided and recorded like an Online one: new or changed (EditSequence not the one sent, nor
     our own write-back's) → `sending` with the createorder body; voided, deleted, or a sales order closed in
     QuickBooks → `cancelling` with the last body sent; shipped or cancelled in ShipStation → left, with why.
     The cursor moves to the newest TimeModified read (QuickBooks' own clock) once every page is read.
  2. *write back*: each shipment recorded `writing` (below) is read again by TxnID, then one …ModRq writes
     ShipDate, ShipMethodRef, the tracking number (`Other`, or the memo) and closes a sales order
     (IsManuallyClosed), with the EditSequence just read. 3200 (changed in between) → read again and retry
     (up to `MAX_WRITE_ATTEMPTS` a session); the new EditSequence becomes `own_sync_token`, so the next read
     does not send the sale to ShipStation again; a sale already carrying it all is marked written unchanged.
  The session's progress (iterators open, Mods computed, shipments done) is kept in the session's `refresh`
  JSON under "reverse", so any web process can answer the next call.

**In a sync job** (`DesktopReverseSync.run`, chosen by `sync/jobs.py` for a ShipStation connection whose books
are Desktop): the recorded `sending`/`cancelling` orders go to ShipStation in createorders calls of 100 (an upsert
by orderKey, so a resend after a crash holds each sale once); then `GET /shipments` from the shipments cursor (or
a SHIP_NOTIFY's `resource_url`) records each shipment of our orders `writing` and the order `shipped`, for the
next Web Connector session to write back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from lxml import etree
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ledgerlink.books.qbd.qbxml import (
    REVERSE_OBJECTS,
    Answer,
    list_query,
    read_sale,
    ship_mod,
    txn_changes_query,
    txn_deleted_query,
    txn_query,
)
from ledgerlink.channels.shipstation import ShipStationChannel
from ledgerlink.channels.shipstation_outbound import ShipStationOutbound
from ledgerlink.domain.errors import LedgerlinkError, MappingError
from ledgerlink.domain.reverse import (
    FromBooksSettings,
    ItemInfo,
    ShipmentFacts,
    cancelled,
    desktop_is_closed,
    desktop_is_voided,
    desktop_order_key,
    desktop_to_shipstation,
    desktop_total,
    desktop_wanted,
    desktop_write_back,
    shipment_facts,
)
from ledgerlink.domain.settings import SyncDirection
from ledgerlink.store.db import Database
from ledgerlink.store.models import (
    Connection,
    QbdListEntry,
    QbwcSession,
    ReverseCursor,
    ReverseOrder,
    ReverseShipment,
    ReverseState,
)
from ledgerlink.sync.connections import AdapterFactory
from ledgerlink.sync.engine import load_settings
from ledgerlink.sync.reverse import (
    ReverseReport,
    _jsonable,
    _load_rows,
    _restore,
    new_reverse_order,
    poll_shipments,
    record_created,
)

log = logging.getLogger(__name__)

STALE_EDIT_SEQUENCE = 3200
NOT_FOUND = 3120
MAX_WRITE_ATTEMPTS = 5
DELETED_TOKEN = "deleted"  # noqa: S105 - an EditSequence stand-in, not a secret
DEFAULT_PAGE_SIZE = 100


def _now() -> datetime:
    return datetime.now(UTC)


# -- which connections read this company file ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reader:
    """A ShipStation connection that sends the sales of a Desktop company file."""

    connection_id: int
    company_id: int
    books_id: int
    settings: FromBooksSettings


def readers(session: Session, books_id: int) -> list[Reader]:
    """The ShipStation connections paired with this Desktop books whose settings say FROM_BOOKS."""
    found: list[Reader] = []
    rows = session.scalars(
        select(Connection)
        .where(Connection.books_id == books_id, Connection.kind == "shipstation")
        .order_by(Connection.id)
    ).all()
    for conn in rows:
        try:
            settings = load_settings(session, conn.id)
        except LedgerlinkError:
            continue
        if settings.direction is SyncDirection.FROM_BOOKS:
            found.append(Reader(conn.id, conn.company_id, books_id, settings.from_books))
    return found


def _types(found: Sequence[Reader]) -> list[str]:
    chosen = {t.value for r in found for t in r.settings.transaction_types}
    return [obj for obj in REVERSE_OBJECTS if obj in chosen]


# -- the Web Connector session's half ---------------------------------------------------------------------------

Part = tuple[etree._Element, dict[str, Any]]


def _state(sess: QbwcSession) -> dict[str, Any] | None:
    state = (sess.refresh or {}).get("reverse")
    return dict(state) if isinstance(state, Mapping) else None


def _save(sess: QbwcSession, state: dict[str, Any]) -> None:
    sess.refresh = {**(sess.refresh or {"open": {}, "done": True}), "reverse": state}


def reverse_has_work(session: Session, books_id: int, sess: QbwcSession | None) -> bool:
    """A session is wanted when ShipStation connections read this company file (each session polls once); within
    one, while pages, Mods or shipments to write back are left."""
    if not readers(session, books_id):
        return False
    state = _state(sess) if sess is not None else None
    if state is None:
        return True
    if state.get("open") or state.get("mods") or not state.get("settled"):
        return True
    return bool(_pending_shipments(session, books_id, exclude=state.get("handled") or []))


def reverse_set(session: Session, sess: QbwcSession, *, page_size: int, clock: Callable[[], datetime]) -> list[Part]:
    """The next reverse message set of this session: the reads, their next pages, then the write-backs."""
    found = readers(session, sess.books_id)
    if not found:
        return []
    state = _state(sess)
    if state is None:
        return _first_reads(session, sess, found, page_size, clock)
    parts: list[Part] = []
    for obj, iterator_id in dict(state.get("open") or {}).items():
        parts.append(
            (txn_changes_query(obj, "0", max_returned=page_size, iterator_id=iterator_id), _entry("changes", obj=obj))
        )
    if parts:
        return parts
    if not state.get("settled"):
        _settle(session, sess, found, state)
    mods = list(state.get("mods") or [])
    if mods:
        state["mods"] = []
        _save(sess, state)
        return [(_mod_request(m), _entry("mod", **m)) for m in mods]
    handled = list(state.get("handled") or [])
    for shipment, order in _pending_shipments(session, sess.books_id, exclude=handled):
        query = txn_query(order.entity, "0", txn_ids=[order.qbo_id])
        parts.append((query, _entry("read", shipment=shipment.id)))
        handled.append(shipment.id)
        if len(parts) >= page_size:
            break
    state["handled"] = handled
    _save(sess, state)
    return parts


def _entry(what: str, **values: Any) -> dict[str, Any]:
    return {"what": f"reverse_{what}", "id": 0, **values}


def _first_reads(
    session: Session, sess: QbwcSession, found: Sequence[Reader], page_size: int, clock: Callable[[], datetime]
) -> list[Part]:
    since = min(_changes_cursor(session, r, clock) for r in found)
    parts: list[Part] = [
        (txn_changes_query(obj, "0", modified_from=since, max_returned=page_size), _entry("changes", obj=obj))
        for obj in _types(found)
    ]
    parts.append((txn_deleted_query(_types(found), "0", deleted_from=since), _entry("deleted")))
    parts.append((list_query("ShipMethod", "0"), _entry("ship_methods")))
    _save(sess, {"open": {}, "newest": "", "failed": False, "settled": False, "mods": [], "handled": []})
    return parts


def _changes_cursor(session: Session, reader: Reader, clock: Callable[[], datetime]) -> datetime:
    row = session.get(ReverseCursor, reader.connection_id)
    if row is not None and row.changes_since is not None:
        since = row.changes_since
        return since if since.tzinfo is not None else since.replace(tzinfo=UTC)
    return clock() - timedelta(days=reader.settings.first_sync_days)


def _settle(session: Session, sess: QbwcSession, found: Sequence[Reader], state: dict[str, Any]) -> None:
    """Every page is read: the cursors move to the newest change QuickBooks showed (unless a read failed)."""
    newest = str(state.get("newest") or "")
    if newest and not state.get("failed"):
        moment = datetime.fromisoformat(newest)
        moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        for reader in found:
            row = session.get(ReverseCursor, reader.connection_id)
            if row is None:
                row = ReverseCursor(connection_id=reader.connection_id)
                session.add(row)
            row.changes_since = moment
    state["settled"] = True
    _save(sess, state)


def _pending_shipments(
    session: Session, books_id: int, *, exclude: Iterable[int] = ()
) -> list[tuple[ReverseShipment, ReverseOrder]]:
    query = (
        select(ReverseShipment, ReverseOrder)
        .join(ReverseOrder, ReverseOrder.id == ReverseShipment.reverse_order_id)
        .where(ReverseOrder.books_id == books_id, ReverseShipment.state == "writing")
        .order_by(ReverseShipment.id)
    )
    skip = set(exclude)
    return [(s, o) for s, o in session.execute(query).all() if s.id not in skip]


def _mod_request(mod: Mapping[str, Any]) -> etree._Element:
    ship_date = mod.get("ship_date")
    return ship_mod(
        str(mod["obj"]),
        "0",
        txn_id=str(mod["txn_id"]),
        edit_sequence=str(mod["edit_sequence"]),
        ship_date=datetime.fromisoformat(ship_date).date() if ship_date else None,
        ship_method=str(mod.get("ship_method") or ""),
        close=bool(mod.get("close")),
        memo=mod.get("memo"),
        other=mod.get("other"),
    )


def bind_reverse(session: Session, sess: QbwcSession, entry: Mapping[str, Any], got: Answer | None) -> None:
    """One answer to a reverse request (`entry` is what `reverse_set` recorded for it)."""
    state = _state(sess) or {}
    what = str(entry.get("what"))
    found = readers(session, sess.books_id)
    if what == "reverse_changes":
        obj = str(entry.get("obj"))
        opened = dict(state.get("open") or {})
        if got is None or not got.ok:
            state["failed"] = True
            opened.pop(obj, None)
        else:
            newest = str(state.get("newest") or "")
            for ret in got.rets:
                if ret.element is None:
                    continue
                sale = read_sale(ret.element)
                _decide_all(session, found, obj, sale)
                modified = sale["TimeModified"]
                if modified and (not newest or _moment(modified) > _moment(newest)):
                    newest = modified
            state["newest"] = newest
            if got.iterator_id and got.remaining > 0:
                opened[obj] = got.iterator_id
            else:
                opened.pop(obj, None)
        state["open"] = opened
    elif what == "reverse_deleted":
        if got is None or not got.ok:
            state["failed"] = True
        else:
            for ret in got.rets:
                if ret.element is not None:
                    sale = read_sale(ret.element)
                    _decide_all(session, found, str(sale["type"]), sale, deleted=True)
    elif what == "reverse_ship_methods":
        if got is not None and got.ok:
            state["ship_methods"] = [r.name or r.full_name for r in got.rets if r.is_active]
    elif what == "reverse_read":
        _bind_read(session, state, found, int(entry["shipment"]), got)
    elif what == "reverse_mod":
        _bind_mod(session, state, entry, got)
    _save(sess, state)


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _bind_read(
    session: Session, state: dict[str, Any], found: Sequence[Reader], shipment_id: int, got: Answer | None
) -> None:
    shipment = session.get(ReverseShipment, shipment_id)
    if shipment is None or shipment.state != "writing" or got is None:
        return
    order = session.get_one(ReverseOrder, shipment.reverse_order_id)
    reader = next((r for r in found if r.connection_id == order.connection_id), None)
    if got.code in (1, NOT_FOUND) or (got.ok and got.ret is None):
        shipment.state, shipment.detail = "skipped", "the QuickBooks Desktop sale is gone (deleted there)"
        return
    if not got.ok or got.ret is None or got.ret.element is None or reader is None:
        shipment.state, shipment.detail = "failed", f"reading the QuickBooks Desktop sale failed: {got.describe()}"
        return
    sale = read_sale(got.ret.element)
    fact = ShipmentFacts(
        shipment_id=shipment.shipment_id,
        order_key=order.order_key,
        tracking_number=shipment.tracking_number,
        carrier_code=shipment.carrier_code,
        service_code=shipment.service_code,
        ship_date=datetime.fromisoformat(shipment.ship_date).date() if shipment.ship_date else None,
    )
    change = desktop_write_back(sale, order.entity, fact, reader.settings, state.get("ship_methods") or [])
    if change is None:
        # All there already (e.g. the answer to our Mod was lost): written, nothing sent.
        _written(shipment, order, str(sale["EditSequence"]))
        return
    mods = list(state.get("mods") or [])
    mods.append(
        {
            "shipment": shipment.id,
            "obj": order.entity,
            "txn_id": order.qbo_id,
            "edit_sequence": sale["EditSequence"],
            "ship_date": change.ship_date.isoformat() if change.ship_date else "",
            "ship_method": change.ship_method,
            "close": change.close,
            "memo": change.memo,
            "other": change.other,
        }
    )
    state["mods"] = mods


def _bind_mod(session: Session, state: dict[str, Any], entry: Mapping[str, Any], got: Answer | None) -> None:
    shipment = session.get(ReverseShipment, int(entry["shipment"]))
    if shipment is None or shipment.state != "writing" or got is None:
        return
    order = session.get_one(ReverseOrder, shipment.reverse_order_id)
    if got.code == STALE_EDIT_SEQUENCE:
        attempts = dict(state.get("attempts") or {})
        tries = int(attempts.get(str(shipment.id), 0)) + 1
        attempts[str(shipment.id)] = tries
        state["attempts"] = attempts
        if tries < MAX_WRITE_ATTEMPTS:
            # Changed in QuickBooks since we read it: read it again and write again (next set).
            state["handled"] = [i for i in state.get("handled") or [] if i != shipment.id]
            return
        # Still `writing`: the next session reads it and tries again.
        shipment.detail = "QuickBooks Desktop kept answering that the sale was being changed; tried again next session"
        return
    if got.ok and got.ret is not None:
        _written(shipment, order, got.ret.edit_sequence)
        return
    shipment.state = "failed"
    shipment.detail = f"QuickBooks Desktop refused the tracking write-back: {got.describe()}"
    order.detail = shipment.detail


def _written(shipment: ReverseShipment, order: ReverseOrder, edit_sequence: str) -> None:
    shipment.state, shipment.detail = "written", ""
    shipment.qbo_sync_token = edit_sequence[:20]
    order.own_sync_token = edit_sequence[:20]


# -- deciding what each sale needs (recorded in the session's transaction) --------------------------------------


def _decide_all(
    session: Session, found: Sequence[Reader], entity: str, sale: Mapping[str, Any], *, deleted: bool = False
) -> None:
    items: dict[str, ItemInfo] | None = None
    subtotals: frozenset[str] = frozenset()
    for reader in found:
        if entity not in reader.settings.entities:
            continue
        if items is None and not deleted:
            items, subtotals = _items(session, reader.books_id, sale)
        decide(session, reader, entity, sale, items or {}, subtotals, deleted=deleted)


def _items(session: Session, books_id: int, sale: Mapping[str, Any]) -> tuple[dict[str, ItemInfo], frozenset[str]]:
    ids = sorted({str((line.get("ItemRef") or {}).get("ListID") or "") for line in sale.get("lines") or []} - {""})
    if not ids:
        return {}, frozenset()
    rows = session.scalars(
        select(QbdListEntry).where(
            QbdListEntry.books_id == books_id, QbdListEntry.list == "item", QbdListEntry.list_id.in_(ids)
        )
    ).all()
    items = {r.list_id: ItemInfo(name=r.full_name) for r in rows}
    return items, frozenset(r.list_id for r in rows if r.kind == "Subtotal")


def decide(
    session: Session,
    reader: Reader,
    entity: str,
    sale: Mapping[str, Any],
    items: Mapping[str, ItemInfo],
    subtotal_items: frozenset[str] = frozenset(),
    *,
    deleted: bool = False,
) -> str:
    """Record what one Desktop sale needs for one connection; returns what was decided (for counts and tests)."""
    txn_id = str(sale.get("TxnID") or "")
    if not txn_id:
        return "ignored"
    key = desktop_order_key(reader.books_id, entity, txn_id)
    row = _load_rows(session, reader.connection_id, [key]).get(key)
    token = DELETED_TOKEN if deleted else str(sale.get("EditSequence") or "")
    if row is not None and token in (row.sent_sync_token, row.own_sync_token, row.seen_sync_token):
        return "unchanged"
    label = str(sale.get("RefNumber") or "") or f"{entity} {txn_id}"
    voided = not deleted and desktop_is_voided(sale)
    closed = not deleted and desktop_is_closed(sale, entity)
    if deleted or voided or closed:
        if row is None:
            return "ignored"
        row.seen_sync_token = token
        what = "deleted" if deleted else "voided" if voided else "closed"
        if row.state in (ReverseState.SHIPPED, ReverseState.CANCELLED) or (
            row.state == ReverseState.REFUSED and row.order_status == "shipped"
        ):
            if row.state == ReverseState.SHIPPED and closed:
                return "unchanged"  # closed by our own write-back (or by hand after it shipped)
            if row.state != ReverseState.CANCELLED:
                row.detail = f"{what} in QuickBooks after it shipped in ShipStation: the order stays shipped"
                return "refused"
            return "unchanged"
        if not row.sent_sync_token or not row.body:
            row.state = ReverseState.SKIPPED
            row.detail = f"{what} in QuickBooks before it reached ShipStation"
            return "skipped"
        row.state = ReverseState.CANCELLING
        row.body = cancelled(row.body)
        row.sending_sync_token = token
        row.detail = f"{what} in QuickBooks: cancelling the ShipStation order"
        return "cancelling"
    reason = desktop_wanted(sale, entity, reader.settings)
    if reason is not None:
        if row is not None:
            row.seen_sync_token = token
            row.detail = f"no longer sent: {reason}; the ShipStation order was left as it is"
        return "filtered"
    if row is not None and row.state in (ReverseState.SHIPPED, ReverseState.CANCELLED, ReverseState.REFUSED):
        row.seen_sync_token = token
        row.detail = (
            f"edited in QuickBooks after it was {row.order_status or row.state} in ShipStation: not changed there"
        )
        return "refused"
    if row is None:
        owner = (reader.company_id, reader.connection_id, reader.books_id)
        row = new_reverse_order(session, owner, entity, txn_id, label[:64], key)
    try:
        body = desktop_to_shipstation(
            sale, entity, reader.books_id, reader.settings, items=items, subtotal_items=subtotal_items
        )
    except MappingError as exc:
        row.state = ReverseState.FAILED if not row.sent_sync_token else row.state
        row.seen_sync_token = token
        row.detail = str(exc)
        return "failed"
    row.doc_number = label[:64]
    row.state = ReverseState.SENDING
    row.sending_sync_token = token[:20]
    row.seen_sync_token = ""
    row.body = _jsonable(body)
    row.total = desktop_total(sale)
    row.detail = ""
    return "sending"


# -- the sync job's half ---------------------------------------------------------------------------------------


@dataclass
class _Desk:
    connection_id: int
    books_id: int
    settings: FromBooksSettings
    outbound: ShipStationOutbound


class DesktopReverseSync:
    """Sends what the Web Connector sessions recorded to ShipStation, and records ShipStation's shipments for the
    next session to write back (see the module docstring)."""

    def __init__(self, db: Database, adapters: AdapterFactory, *, clock: Callable[[], datetime] = _now) -> None:
        self.db = db
        self.adapters = adapters
        self.clock = clock

    def run(self, connection_id: int) -> ReverseReport:
        """Send the recorded orders and cancellations; then record what ShipStation shipped."""
        report = ReverseReport()
        try:
            with self._context(connection_id) as ctx:
                self._send_recorded(ctx, report)
                self._poll_shipments(ctx, report)
                report.calls = dict(ctx.outbound.calls)
        except LedgerlinkError as exc:
            report.error = str(exc)
            log.warning("Desktop reverse sync of connection %s stopped: %s", connection_id, exc)
        return report

    def on_ship_notify(self, connection_id: int, resource_url: str) -> ReverseReport:
        """A SHIP_NOTIFY webhook: the shipments it points at are recorded (the cursor stays put)."""
        report = ReverseReport()
        try:
            with self._context(connection_id) as ctx:
                self._record_shipments(ctx, ctx.outbound.shipments_at(resource_url), report)
                report.calls = dict(ctx.outbound.calls)
        except LedgerlinkError as exc:
            report.error = str(exc)
        return report

    @contextmanager
    def _context(self, connection_id: int) -> Iterator[_Desk]:
        with self.db.session(readonly=True) as session:
            conn = session.get(Connection, connection_id)
            if conn is None:
                raise LedgerlinkError(f"no connection {connection_id}")
            books = session.get(Connection, conn.books_id) if conn.books_id is not None else None
            if conn.kind != "shipstation" or books is None or books.kind != "qbd":
                raise LedgerlinkError(f"connection {conn.name!r} is not a ShipStation connection paired with Desktop")
            settings = load_settings(session, connection_id)
            books_id = books.id
        if settings.direction is not SyncDirection.FROM_BOOKS:
            raise LedgerlinkError(f"connection {connection_id} does not sync orders from QuickBooks (direction)")
        channel = self.adapters.channel(conn)
        if not isinstance(channel, ShipStationChannel):
            raise LedgerlinkError(f"connection {connection_id} is not a ShipStation channel")
        try:
            yield _Desk(connection_id, books_id, settings.from_books, ShipStationOutbound(channel))
        finally:
            channel.close()

    def _send_recorded(self, ctx: _Desk, report: ReverseReport) -> None:
        with self.db.session(readonly=True) as session:
            rows = session.scalars(
                select(ReverseOrder)
                .where(
                    ReverseOrder.connection_id == ctx.connection_id,
                    ReverseOrder.state.in_([ReverseState.SENDING, ReverseState.CANCELLING]),
                )
                .order_by(ReverseOrder.id)
            ).all()
            sends = [(r.order_key, r.sending_sync_token, r.state == ReverseState.CANCELLING, r.body) for r in rows]
        sends = [s for s in sends if s[3]]
        if not sends:
            return
        results = ctx.outbound.create_orders([_restore(body or {}) for _k, _t, _c, body in sends])
        report.counts["createorders_calls"] += -(-len(sends) // 100)
        by_key = {key: (token, cancel) for key, token, cancel, _body in sends}
        with self.db.session() as session:
            rows_by_key = _load_rows(session, ctx.connection_id, list(by_key))
            for result in results:
                row = rows_by_key.get(result.order_key)
                if row is None or result.order_key not in by_key:
                    continue
                token, cancel = by_key[result.order_key]
                status = str((row.body or {}).get("orderStatus") or "")
                record_created(row, token, cancel, status, result, report)

    def _poll_shipments(self, ctx: _Desk, report: ReverseReport) -> None:
        poll_shipments(
            self.db,
            ctx.connection_id,
            ctx.outbound,
            ctx.settings.first_sync_days,
            self.clock,
            lambda page: self._record_shipments(ctx, page, report),
        )

    def _record_shipments(self, ctx: _Desk, rows: Iterable[Mapping[str, Any]], report: ReverseReport) -> None:
        """Each new shipment of our orders: `writing` (for the next Web Connector session), the order `shipped`."""
        facts = [f for f in (shipment_facts(r) for r in rows) if f is not None and not f.voided]
        report.counts["shipments_seen"] += len(facts)
        for fact in facts:
            try:
                with self.db.session() as session:
                    order = session.scalars(
                        select(ReverseOrder).where(
                            ReverseOrder.connection_id == ctx.connection_id, ReverseOrder.order_key == fact.order_key
                        )
                    ).first()
                    if order is None:
                        continue  # not one of ours
                    known = session.scalars(
                        select(ReverseShipment.id).where(
                            ReverseShipment.connection_id == ctx.connection_id,
                            ReverseShipment.shipment_id == fact.shipment_id,
                        )
                    ).first()
                    if known is not None:
                        report.counts["shipments_known"] += 1
                        continue
                    session.add(
                        ReverseShipment(
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
                    )
                    order.state = ReverseState.SHIPPED
                    order.order_status = "shipped"
                    order.tracking_number = fact.tracking_number[:100]
                report.counts["shipments_recorded"] += 1
            except IntegrityError:
                report.counts["shipments_known"] += 1  # another run recorded it at the same moment
