"""Stock levels from QuickBooks Online to Shopify ("push stock levels from QuickBooks", a channel setting).

Run at the tail of every scheduled or manual sync job of a Shopify connection (sync/jobs.py `run_job`), after
the orders are posted, so the books already count what was just sold:

1. which inventory items changed: QuickBooks' Change Data Capture since the connection's cursor (the first push
   reads every inventory item instead); the cursor is `reverse_cursors.changes_since` of the Shopify connection,
   the row that records how far a connection has read QuickBooks' changes;
2. their SKUs are matched to Shopify variants (products.json) and the quantities worked out purely
   (domain/stock.py: on hand less the buffer, whole units, never negative);
3. the current levels at the shop's first active location are read (inventory_levels.json), and only those that
   differ are set (inventory_levels/set.json, an absolute value: a retry never doubles anything), through the
   channel's client, which keeps under Shopify's leaky bucket and waits out a 429;
4. a SKU that cannot be pushed is explained in the event log, and the others still go. The cursor advances only
   when nothing failed for a passing reason, so a failed SKU is tried again by the next push.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from ledgerlink.books.qbo.adapter import QboBooks
from ledgerlink.books.qbo.cdc import CdcReader
from ledgerlink.channels.shopify import ShopifyChannel
from ledgerlink.domain.errors import LedgerlinkError, PermanentError, RetryableError
from ledgerlink.domain.stock import BooksStock, ChannelVariant, compare, match
from ledgerlink.store.db import Database
from ledgerlink.store.models import Connection, Event, ReverseCursor
from ledgerlink.sync.connections import AdapterFactory
from ledgerlink.sync.engine import load_settings

# Changes committed just before a read may show up a little late in CDC: read a little before the cursor.
OVERLAP = timedelta(minutes=2)
MAX_WINDOWS = 50
INVENTORY_QUERY = "SELECT * FROM Item WHERE Type = 'Inventory'"


@dataclass(slots=True)
class StockReport:
    """What one push did: levels set, already right, SKUs left out (with why) and failed (with why)."""

    pushed: dict[str, int] = field(default_factory=dict)
    unchanged: int = 0
    unmatched: dict[str, str] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    items_read: int = 0
    skipped: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and not self.failures


def _now() -> datetime:
    return datetime.now(UTC)


class StockPush:
    """Pushes one Shopify connection's stock levels from its QuickBooks Online company."""

    def __init__(self, db: Database, adapters: AdapterFactory, *, clock: Callable[[], datetime] = _now) -> None:
        self.db = db
        self.adapters = adapters
        self.clock = clock

    def run(self, connection_id: int) -> StockReport:
        """Push what changed since the last push; never raises for one SKU (the report says why)."""
        report = StockReport()
        with self.db.session(readonly=True) as session:
            conn = session.get(Connection, connection_id)
            if conn is None:
                raise LedgerlinkError(f"no connection {connection_id}")
            settings = load_settings(session, connection_id)
            books_conn = session.get(Connection, conn.books_id) if conn.books_id is not None else None
            cursor = session.get(ReverseCursor, connection_id)
            since = cursor.changes_since if cursor is not None else None
            company_id = conn.company_id
        if not settings.push_stock_levels:
            report.skipped = "the setting 'push stock levels from QuickBooks' is off"
            return report
        if conn.kind != "shopify" or books_conn is None or books_conn.kind != "qbo":
            report.skipped = "stock levels go from QuickBooks Online to Shopify only"
            return report
        channel = self.adapters.channel(conn)
        books = self.adapters.books(books_conn)
        try:
            if not isinstance(channel, ShopifyChannel) or not isinstance(books, QboBooks):
                report.skipped = "stock levels go from QuickBooks Online to Shopify only"
                return report
            started = self.clock()
            next_since: datetime | None = None
            try:
                items, next_since = self._changed_items(books, since, started)
                report.items_read = len(items)
                if items:
                    self._push(channel, items, settings.stock_buffer, dict(settings.items.sku_map), report)
            except (RetryableError, PermanentError, LedgerlinkError) as exc:
                report.error = str(exc)
            # A SKU that failed for a passing reason (or a push that stopped) is read again next time.
            retry = bool(report.error) or any(why.startswith("try again") for why in report.failures.values())
            self._record(company_id, connection_id, report, None if retry else next_since)
        finally:
            channel.close()
            books.close()
        return report

    def _changed_items(
        self, books: QboBooks, since: datetime | None, started: datetime
    ) -> tuple[list[BooksStock], datetime]:
        """The inventory items changed since `since` (all of them on the first push) and the next cursor."""
        if since is None:
            rows = books.client.query(INVENTORY_QUERY)
            return _stock(rows), started - OVERLAP
        reader = CdcReader(books.client, overlap=OVERLAP)
        latest: dict[str, dict[str, Any]] = {}
        position = since - OVERLAP
        for _window in range(MAX_WINDOWS):
            batch = reader.read(["Item"], position)
            for change in batch.changes:
                if not change.deleted:
                    latest[change.id] = change.row
            position = batch.next_since
            if batch.caught_up:
                break
        return _stock(latest.values()), position

    def _push(
        self,
        channel: ShopifyChannel,
        items: list[BooksStock],
        buffer: int,
        sku_map: Mapping[str, str],
        report: StockReport,
    ) -> None:
        locations = [loc for loc in channel.locations() if loc.get("active", True) is not False and "id" in loc]
        if not locations:
            raise PermanentError("the Shopify store has no active location to keep stock at")
        location_id = str(sorted(locations, key=lambda loc: int(loc["id"]))[0]["id"])
        variants = [
            ChannelVariant(
                sku=str(v.get("sku") or ""),
                inventory_item_id=str(v.get("inventory_item_id") or ""),
                variant_id=str(v.get("id") or ""),
            )
            for v in channel.variants()
            if v.get("inventory_item_id")
        ]
        matched = match(items, variants, buffer=buffer, sku_map=sku_map)
        report.unmatched.update(matched.unmatched)
        report.failures.update(matched.problems)
        current = channel.inventory_levels(matched.wanted, location_id) if matched.changes else {}
        plan = compare(matched, current)
        report.unchanged += len(plan.unchanged)
        for change in plan.changes:
            try:
                channel.set_inventory_level(change.inventory_item_id, location_id, change.available)
            except PermanentError as exc:
                report.failures[change.sku] = f"{exc} (QuickBooks item {change.item_name!r})"
                continue
            except RetryableError as exc:
                report.failures[change.sku] = f"try again later: {exc}"
                continue
            report.pushed[change.sku] = change.available

    def _record(self, company_id: int, connection_id: int, report: StockReport, next_since: datetime | None) -> None:
        with self.db.session() as session:
            if next_since is not None:
                row = session.get(ReverseCursor, connection_id)
                if row is None:
                    row = ReverseCursor(connection_id=connection_id)
                    session.add(row)
                row.changes_since = next_since

            def event(level: str, kind: str, message: str) -> None:
                session.add(
                    Event(company_id=company_id, connection_id=connection_id, level=level, kind=kind, message=message)
                )

            for sku, why in sorted(report.failures.items()):
                event("error", "stock_failed", f"stock of SKU {sku} not pushed to Shopify: {why}")
            if report.error:
                event("error", "stock_failed", f"stock levels not pushed to Shopify: {report.error}")
            if report.pushed:
                shown = ", ".join(f"{sku} → {qty}" for sku, qty in sorted(report.pushed.items())[:20])
                more = f" and {len(report.pushed) - 20} more" if len(report.pushed) > 20 else ""
                event("info", "stock_pushed", f"stock levels pushed to Shopify: {shown}{more}")


def _stock(rows: Iterable[Mapping[str, Any]]) -> list[BooksStock]:
    """Inventory items that track their quantity, as the domain sees them (others have no stock to push)."""
    found: list[BooksStock] = []
    for row in rows:
        if row.get("Type") != "Inventory" or row.get("TrackQtyOnHand") is False or row.get("Active") is False:
            continue
        try:
            quantity = Decimal(str(row.get("QtyOnHand", 0)))
        except (InvalidOperation, ValueError):
            continue
        found.append(
            BooksStock(
                item_id=str(row.get("Id") or ""),
                name=str(row.get("Name") or ""),
                sku=str(row.get("Sku") or ""),
                quantity=quantity,
            )
        )
    return found


def push_stock_after_sync(db: Database, adapters: AdapterFactory, connection_id: int) -> StockReport | None:
    """The tail of a sync job: push stock when the connection's settings ask for it (None when they do not).
    A failure is recorded in the event log, never raised: the orders' sync already succeeded or failed."""
    with db.session(readonly=True) as session:
        conn = session.get(Connection, connection_id)
        if conn is None or conn.kind != "shopify" or not load_settings(session, connection_id).push_stock_levels:
            return None
    try:
        return StockPush(db, adapters).run(connection_id)
    except LedgerlinkError as exc:  # e.g. the connection cannot be opened: say so where the merchant looks
        with db.session() as session:
            session.add(
                Event(
                    company_id=conn.company_id,
                    connection_id=connection_id,
                    level="error",
                    kind="stock_failed",
                    message=f"stock levels not pushed to Shopify: {exc}",
                )
            )
        return StockReport(error=str(exc))
