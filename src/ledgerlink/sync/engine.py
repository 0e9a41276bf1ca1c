"""pull → plan → push, as in DESIGN.md "Exactly once".

Every step is recorded in the database before it is done, so a crash anywhere is resumed by running the
sync again, and nothing is posted twice:
  * pull stores each page of orders (raw kept, canonical form, content hash, revision) and only then
    advances the cursor;
  * plan writes postings with deterministic keys; an existing key is never planned twice;
  * push claims postings, marks them `sending` in their own committed transaction, sends them, and stores the
    remote id in the transaction that marks them `posted`; a posting found `sending` later is looked up in
    the books first and only re-sent when the books have no trace of it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, defer

from ledgerlink import metrics
from ledgerlink.books.base import Books, Operation, PushRequest, PushResult, PushStatus
from ledgerlink.channels.base import Channel, Cursor, Window
from ledgerlink.domain.catalog import Catalog, CatalogQuery, MasterData, fold
from ledgerlink.domain.documents import Document
from ledgerlink.domain.errors import ConfigError, LedgerlinkError, MappingError, NeedsUserError, RetryableError
from ledgerlink.domain.order import Order
from ledgerlink.domain.plan import (
    REFUND_ROLE,
    SALE_ROLES,
    ChangeKind,
    Plan,
    PostedDoc,
    catalog_query,
    plan,
    reconcile,
)
from ledgerlink.domain.settings import ChannelSettings
from ledgerlink.jsonwire import storable
from ledgerlink.store.db import Database
from ledgerlink.store.models import (
    Connection,
    CursorRow,
    Event,
    OrderRevision,
    OrderState,
    Posting,
    PostingState,
    SettingsRevision,
    StoredOrder,
    SyncRun,
)
from ledgerlink.sync.keys import order_marker, posting_key
from ledgerlink.sync.locks import LockTimeout, PushLease

PLAN_CHUNK = 250
# While pulling, plan every this many orders pulled (see SyncEngine._plan_stored).
PLAN_EVERY = 1000
STALE_OBJECT_CODE = "5010"
# A document that keeps changing under us (5010 every time) fails after this many sends.
MAX_STALE_ATTEMPTS = 5
CLAIM_SIZE = 30
# Batches in flight at once per company: QuickBooks allows 10 concurrent requests; two keep it busy while the
# engine records one batch and claims the next.
CONCURRENT_BATCHES = 2
OPEN_POSTING_STATES = (PostingState.PENDING, PostingState.SENDING, PostingState.POSTED, PostingState.FAILED)
# An order's state without its bodies: the raw and canonical JSON are large and slow to decode.
_WITHOUT_BODIES = (defer(StoredOrder.raw), defer(StoredOrder.canonical))


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What one sync pass covers. A created-at window or order numbers turn it into a manual sync."""

    created_from: date | None = None
    created_to: date | None = None
    order_numbers: tuple[str, ...] = ()
    dry_run: bool = False
    retry_failed: bool = False
    trigger: str = "manual"
    # A worker of many: when another worker holds the company's push lease, leave the pushing to it.
    defer_push: bool = False

    @property
    def manual_window(self) -> bool:
        return bool(self.created_from or self.created_to or self.order_numbers)


@dataclass(slots=True)
class RunReport:
    """The outcome of a run, as the CLI and dashboard show it."""

    run_id: int | None = None
    counts: Counter[str] = field(default_factory=Counter)
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (order number, field, message)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    previews: list[Plan] = field(default_factory=list)
    error: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.error


ChannelFactory = Callable[[Connection], Channel]
BooksFactory = Callable[[Connection], Books]
Progress = Callable[[str, int, int | None], None]


def _now() -> datetime:
    return datetime.now(UTC)


class SyncEngine:
    """Runs sync passes for channel connections. Adapters come from the factories (the composition root)."""

    def __init__(
        self,
        db: Database,
        *,
        channel_factory: ChannelFactory,
        books_factory: BooksFactory,
        clock: Callable[[], datetime] = _now,
        sleep: Callable[[float], None] = time.sleep,
        progress: Progress | None = None,
    ) -> None:
        self.db = db
        self.channel_factory = channel_factory
        self.books_factory = books_factory
        self.clock = clock
        self.sleep = sleep
        self.progress = progress or (lambda _stage, _done, _total: None)

    # -- the run ----------------------------------------------------------------------------------------

    def run(
        self,
        channel_id: int,
        options: RunOptions | None = None,
        *,
        on_start: Callable[[int], None] | None = None,
    ) -> RunReport:
        """One pull/plan/push pass for a channel connection; never raises for one bad order."""
        options = options or RunOptions()
        report = RunReport()
        with self.db.session() as session:
            conn = self._connection(session, channel_id)
            settings = load_settings(session, channel_id)
            books_id = conn.books_id
            if books_id is None:
                raise LedgerlinkError(f"channel connection {conn.name!r} has no QuickBooks connection to post to")
            books_conn = self._connection(session, books_id)
            run: SyncRun | None = None
            if not options.dry_run:
                run = SyncRun(company_id=conn.company_id, connection_id=conn.id, trigger=options.trigger)
                session.add(run)
                session.flush()
                report.run_id = run.id
        if on_start is not None and report.run_id is not None:
            on_start(report.run_id)
        channel = self.channel_factory(conn)
        books = self.books_factory(books_conn)
        api_before = dict(_api_stats(books))
        live = _LiveCounts(self.db, report)
        outer = self.progress

        def progress(stage: str, done: int, total: int | None) -> None:
            outer(stage, done, total)
            live.write(stage)

        self.progress = progress
        try:
            started = time.perf_counter()
            if options.dry_run:
                self._dry_run(channel, books, settings, options, report)
                return report
            if options.retry_failed:
                report.counts["orders_retried"] += self._retry_failed(conn.id, options.order_numbers)
            # The stages overlap: each page is planned as soon as it is stored, and a pusher thread posts full
            # batches while the channel is still being read, so the company's API budget is not left idle.
            pusher = _Pusher(self, books_conn, books, report) if books_conn.kind != "qbd" else None
            planning = _PlanPass(nudge=pusher.nudge if pusher is not None else None)
            if pusher is not None:
                pusher.start()
            try:
                self._pull(
                    conn,
                    channel,
                    options,
                    report,
                    on_page=lambda: self._plan_stored(conn, books, settings, options, report, planning),
                )
                report.timings["pull"] = time.perf_counter() - started
                mark = time.perf_counter()
                self._plan(conn, books, settings, options, report, planning, final=True)
                report.timings["plan"] = time.perf_counter() - mark
            except BaseException:
                if pusher is not None:
                    pusher.stop()  # what it had planned stays pending for the next run
                raise
            mark = time.perf_counter()
            if pusher is not None:
                pusher.finish(wait=not options.defer_push)
            report.timings["push"] = time.perf_counter() - mark
        except NeedsUserError as exc:
            report.error = f"{exc} ({exc.action})" if exc.action else str(exc)
        except LedgerlinkError as exc:
            report.error = str(exc)
        finally:
            self.progress = outer
            channel.close()
            metrics.observe_api(str(books_conn.config.get("realm_id", books_conn.id)), _api_stats(books), api_before)
            books.close()
            if report.run_id is not None:
                self._finish(report, conn.id)
                metrics.observe_run(conn.company_id, report.counts, report.error)
        return report

    def _connection(self, session: Session, connection_id: int) -> Connection:
        conn = session.get(Connection, connection_id)
        if conn is None:
            raise LedgerlinkError(f"no connection with id {connection_id}")
        return conn

    def _finish(self, report: RunReport, channel_id: int) -> None:
        failed = report.counts.get("orders_failed", 0) + report.counts.get("postings_failed", 0)
        with self.db.session() as session:
            run = session.get(SyncRun, report.run_id)
            if run is None:
                return
            run.finished_at = self.clock()
            run.counts = dict(report.counts)
            run.timings = {k: round(v, 3) for k, v in report.timings.items()}
            run.error = report.error
            run.state = "failed" if report.error else ("partial" if failed else "succeeded")
            conn = session.get(Connection, channel_id)
            if conn is not None and not report.error:
                conn.last_synced_at = run.finished_at
            session.add(
                Event(
                    company_id=run.company_id,
                    connection_id=channel_id,
                    run_id=run.id,
                    level="error" if report.error else "info",
                    kind="run_finished",
                    message=report.error or _summary(report.counts),
                )
            )

    # -- pull -------------------------------------------------------------------------------------------

    def _pull(
        self,
        conn: Connection,
        channel: Channel,
        options: RunOptions,
        report: RunReport,
        *,
        on_page: Callable[[], None] | None = None,
    ) -> None:
        with self.db.session() as session:
            row = session.get(CursorRow, conn.id)
            cursor = Cursor.from_json(row.value) if row is not None else None
        window = _window(options)
        advance = not options.manual_window
        for page in channel.pull(None if options.manual_window else cursor, window):
            for attempt in range(3):
                page_report = RunReport()
                try:
                    with self.db.session() as session:
                        self._store_page(session, conn, channel, page.orders, page_report)
                        if advance and page.next_cursor is not None:
                            row = session.get(CursorRow, conn.id, with_for_update=True)
                            if row is None:
                                session.add(CursorRow(connection_id=conn.id, value=page.next_cursor.to_json()))
                            elif Cursor.from_json(row.value).updated_at <= page.next_cursor.updated_at:
                                row.value = page.next_cursor.to_json()
                except IntegrityError:
                    # Another worker stored the same new orders first; storing the page again finds them.
                    if attempt == 2:
                        raise
                    continue
                break
            report.counts.update(page_report.counts)
            report.failures.extend(page_report.failures)
            self.progress("pull", report.counts["pulled"], None)
            if on_page is not None:
                on_page()

    def _store_page(
        self, session: Session, conn: Connection, channel: Channel, raws: Sequence[dict[str, Any]], report: RunReport
    ) -> None:
        """Store a page of orders: each parsed, the ones already stored read in one query, one flush for all."""
        arrivals = [a for raw in raws if (a := self._arrival(session, conn, channel, raw, report)) is not None]
        ids = sorted({a.channel_order_id for a in arrivals})
        known = {
            o.channel_order_id: o
            for o in session.scalars(
                select(StoredOrder)
                .where(StoredOrder.connection_id == conn.id, StoredOrder.channel_order_id.in_(ids))
                .options(*_WITHOUT_BODIES)
            )
        }
        revised: list[tuple[StoredOrder, int, _Arrival]] = []
        for arrival in arrivals:
            stored = known.get(arrival.channel_order_id)
            canonical = arrival.order.model_dump(mode="json") if arrival.order else None
            if stored is None:
                stored = StoredOrder(
                    company_id=conn.company_id,
                    connection_id=conn.id,
                    channel_order_id=arrival.channel_order_id,
                    number=arrival.number,
                    revision=1,
                    content_hash=arrival.content_hash,
                    raw=arrival.body,
                    canonical=canonical,
                    state=OrderState.PENDING,
                )
                session.add(stored)
                known[arrival.channel_order_id] = stored
                report.counts["orders_new"] += 1
            elif stored.content_hash == arrival.content_hash:
                report.counts["orders_unchanged"] += 1
                continue
            else:
                stored.revision += 1
                stored.content_hash = arrival.content_hash
                stored.raw = arrival.body
                stored.canonical = canonical
                stored.number = arrival.number
                report.counts["orders_changed"] += 1
                self._on_new_revision(session, stored)
            _apply_order_facts(stored, arrival.order)
            revised.append((stored, stored.revision, arrival))
        session.flush()
        for stored, revision, arrival in revised:
            session.add(
                OrderRevision(
                    order_id=stored.id, revision=revision, content_hash=arrival.content_hash, raw=arrival.body
                )
            )
            error = arrival.error
            if error is not None and revision == stored.revision:
                _fail_order(session, stored, error.field or "", error.detail, kind="bad_order")
                report.counts["orders_failed"] += 1
                report.failures.append((arrival.number, error.field or "", error.detail))

    def _arrival(
        self, session: Session, conn: Connection, channel: Channel, raw: dict[str, Any], report: RunReport
    ) -> _Arrival | None:
        """One raw order parsed, with what identifies it; None (and an event) when it has no id at all."""
        report.counts["pulled"] += 1
        order: Order | None = None
        error: MappingError | None = None
        try:
            order = channel.parse(raw)
        except MappingError as exc:
            error = exc
        # Kept as it came, but with lone surrogates (half an emoji) replaced: no database would store them.
        body = storable(raw.get("order", raw) if isinstance(raw.get("order"), dict) else raw)
        channel_order_id = order.channel_order_id if order else _short_text(body.get("id") or body.get("orderId"))
        number = order.number if order else (error.order if error and error.order else "")
        number = (
            _short_text(number)
            or _short_text(body.get("order_number") or body.get("orderNumber"))
            or (channel_order_id)
        )
        if not channel_order_id:
            # Without an id the order cannot be tracked; keep it in the event log so it is not lost.
            report.counts["orders_failed"] += 1
            message = f"an order without an id was received and could not be stored: {error or 'no id'}"
            report.failures.append((number or "?", "id", message))
            session.add(
                Event(
                    company_id=conn.company_id,
                    connection_id=conn.id,
                    level="error",
                    kind="bad_order",
                    message=f"{message}; raw: {str(body)[:2000]}",
                )
            )
            return None
        content_hash = order.content_hash() if order else _raw_hash(body)
        return _Arrival(channel_order_id, number, content_hash, body, order, error)

    def _on_new_revision(self, session: Session, stored: StoredOrder) -> None:
        """A changed order: unsent postings of the old revision are superseded and the new revision is the
        target. What is in the books stays bound; planning compares the new revision with it and creates,
        updates or voids documents as the update policy says (postings still being sent are waited for)."""
        postings = session.scalars(select(Posting).where(Posting.order_id == stored.id)).all()
        in_books = [p for p in postings if p.state in (PostingState.POSTED, PostingState.SENDING)]
        for posting in postings:
            if posting.state in (PostingState.PENDING, PostingState.FAILED):
                posting.state = PostingState.SUPERSEDED
        stored.state, stored.detail, stored.error_field = OrderState.PENDING, "", ""
        if not in_books:
            return
        settings = load_settings(session, stored.connection_id)
        session.add(
            Event(
                company_id=stored.company_id,
                connection_id=stored.connection_id,
                order_id=stored.id,
                level="info",
                kind="changed_after_posting",
                message=f"changed in the channel after it was posted (revision {stored.revision}); the books "
                f"follow as the update policy says ({settings.update_policy.value})",
            )
        )

    # -- plan -------------------------------------------------------------------------------------------

    def _plan(
        self,
        conn: Connection,
        books: Books,
        settings: ChannelSettings,
        options: RunOptions,
        report: RunReport,
        planning: _PlanPass | None = None,
        *,
        final: bool = False,
    ) -> None:
        """Plan the orders stored since the last call of this pass (all waiting orders on the first call).

        The `final` call also takes the orders a page changed behind the pass's position (a new revision of
        an order planned or posted before): they are pending again, and only they need another look."""
        planning = planning or _PlanPass()
        behind = planning.last_id
        planning.last_id = self._plan_range(conn, books, settings, options, report, planning, after=behind)
        if final and behind:
            self._plan_range(
                conn, books, settings, options, report, planning, upto=behind, states=(OrderState.PENDING,)
            )

    def _plan_stored(
        self,
        conn: Connection,
        books: Books,
        settings: ChannelSettings,
        options: RunOptions,
        report: RunReport,
        planning: _PlanPass,
    ) -> None:
        """After a page is stored: plan the first page at once (the pusher has work while the next pages are
        read), then every PLAN_EVERY orders. Larger steps fill the look-up and create batches better (each
        step's last batch goes out part-full)."""
        if planning.pulled_at == 0 or report.counts["pulled"] - planning.pulled_at >= PLAN_EVERY:
            planning.pulled_at = report.counts["pulled"]
            self._plan(conn, books, settings, options, report, planning)

    def _plan_range(
        self,
        conn: Connection,
        books: Books,
        settings: ChannelSettings,
        options: RunOptions,
        report: RunReport,
        planning: _PlanPass,
        *,
        after: int = 0,
        upto: int | None = None,
        states: tuple[OrderState, ...] = (OrderState.PENDING, OrderState.FAILED, OrderState.SKIPPED),
    ) -> int:
        """Plan the waiting orders with ids in (after, upto], chunk by chunk; returns the last id seen."""
        last_id = after
        while True:
            with self.db.session() as session:
                query = (
                    select(StoredOrder)
                    .options(defer(StoredOrder.raw))
                    .where(
                        StoredOrder.connection_id == conn.id,
                        StoredOrder.id > last_id,
                        StoredOrder.canonical.is_not(None),
                        StoredOrder.state.in_(states),
                    )
                    .order_by(StoredOrder.id)
                    .limit(PLAN_CHUNK)
                )
                if upto is not None:
                    query = query.where(StoredOrder.id <= upto)
                if options.order_numbers:
                    query = query.where(StoredOrder.number.in_(options.order_numbers))
                chunk = list(session.scalars(query))
                if not chunk:
                    return last_id
                last_id = chunk[-1].id
                busy = _orders_with_live_postings(session, [o.id for o in chunk])
            todo = [o for o in chunk if o.id not in busy]
            orders = {o.id: Order.model_validate(o.canonical) for o in todo}
            planned = report.counts["postings_planned"]
            planning.catalog = self._plan_chunk(
                conn, books, settings, todo, orders, planning.catalog, report, planning.asked
            )
            self.progress("plan", report.counts["orders_planned"], None)
            if planning.nudge is not None and report.counts["postings_planned"] > planned:
                planning.nudge()

    def _plan_chunk(
        self,
        conn: Connection,
        books: Books,
        settings: ChannelSettings,
        rows: list[StoredOrder],
        orders: dict[int, Order],
        catalog: Catalog | None,
        report: RunReport,
        asked: CatalogQuery | None = None,
    ) -> Catalog:
        wanted = CatalogQuery()
        for order in orders.values():
            wanted.merge(catalog_query(order, settings))
        if asked is not None:
            # The catalog carries what earlier chunks found, and what they did not find is not there either
            # (what this pass creates is added by ensure): ask the books only for keys not asked yet.
            fresh = CatalogQuery(
                skus=wanted.skus - asked.skus,
                item_names=wanted.item_names - asked.item_names,
                emails=wanted.emails - asked.emails,
                customer_names=wanted.customer_names - asked.customer_names,
            )
            asked.merge(wanted)
            wanted = fresh
        catalog = books.catalog(wanted, catalog)
        catalog = self._ensure_payment_methods(books, settings, orders.values(), catalog)
        with self.db.session() as session:
            in_books = _books_state(session, list(orders))
        plans, errors = _plan_all(orders, settings, catalog, in_books)
        needs = MasterData()
        for p in plans.values():
            needs.merge(p.needs)
        need_errors: dict[str, str] = {}
        unreachable = ""  # QuickBooks did not answer while creating: the orders that need it wait, not fail
        if needs:
            try:
                catalog, need_errors = books.ensure(needs, catalog)
            except RetryableError as unanswered:
                unreachable = str(unanswered)
            else:
                report.counts["customers_created"] += len(needs.customers) - sum(
                    1 for k in need_errors if k in needs.customers
                )
                report.counts["items_created"] += len(needs.items) - sum(1 for k in need_errors if k in needs.items)
                waiting = {oid: orders[oid] for oid, p in plans.items() if p.needs}
                replanned, more_errors = _plan_all(waiting, settings, catalog, in_books)
                plans.update(replanned)
                errors.update(more_errors)
        with self.db.session() as session:
            # Lock the orders and check again: another worker may have planned or posted some meanwhile.
            locked = {
                o.id: o
                for o in session.scalars(
                    select(StoredOrder)
                    .where(StoredOrder.id.in_([r.id for r in rows]))
                    .options(*_WITHOUT_BODIES)
                    .order_by(StoredOrder.id)
                    .with_for_update()
                )
            }
            busy = _orders_with_live_postings(session, list(locked))
            known: dict[int, list[Posting]] = {}
            for posting in session.scalars(
                select(Posting).where(Posting.order_id.in_(list(locked))).order_by(Posting.id)
            ):
                known.setdefault(posting.order_id, []).append(posting)
            settle: list[int] = []
            for row in rows:
                stored = locked.get(row.id)
                if stored is None or stored.revision != row.revision or stored.id in busy:
                    continue
                # The books changed under us (another worker finished a posting): plan again next time. An
                # order with nothing in the books needs no look: its postings' keys already keep it single.
                if row.id in in_books and _books_state(session, [stored.id]).get(stored.id) != in_books[row.id]:
                    continue
                if row.id in errors:
                    exc = errors[row.id]
                    _fail_order(session, stored, exc.field or "", exc.detail, kind="plan_failed")
                    report.counts["orders_failed"] += 1
                    report.failures.append((stored.number, exc.field or "", exc.detail))
                    continue
                result = plans[row.id]
                posted_before = bool(in_books.get(row.id, _BooksState()).docs)
                if result.skipped is not None:
                    if posted_before:
                        # Out of the filter now, but in the books: left as posted.
                        stored.state, stored.detail, stored.error_field = OrderState.POSTED, result.skipped, ""
                        continue
                    stored.state, stored.detail, stored.error_field = OrderState.SKIPPED, result.skipped, ""
                    report.counts["orders_skipped"] += 1
                    report.skipped.append((stored.number, result.skipped))
                    continue
                if not result.ready and unreachable:
                    # Left pending, with the reason on the order: the next pass looks the records up (they
                    # may have been created) and creates what is still missing.
                    stored.detail = f"waiting for QuickBooks to create its customer or items: {unreachable}"
                    report.counts["orders_waiting"] += 1
                    continue
                if not result.ready:
                    missing = sorted({r.name or r.key for d in result.documents for r in d.unresolved()})
                    why = "; ".join(need_errors.get(r, "") for r in result.needs.customers | result.needs.items)
                    message = f"QuickBooks could not create {', '.join(missing)}" + (
                        f": {why}" if why.strip("; ") else ""
                    )
                    _fail_order(session, stored, "master_data", message, kind="plan_failed")
                    report.counts["orders_failed"] += 1
                    report.failures.append((stored.number, "master_data", message))
                    continue
                created = self._write_changes(session, conn, stored, result, known.get(stored.id, []))
                if (
                    result.order.refunds
                    and created
                    and not any(d.role.startswith(REFUND_ROLE) for d in result.documents)
                ):
                    refunded = sum((r.amount for r in result.order.refunds), Decimal(0))
                    session.add(
                        Event(
                            company_id=stored.company_id,
                            connection_id=conn.id,
                            order_id=stored.id,
                            level="warning",
                            kind="refund_not_posted",
                            message=f"order {stored.number}: its refunds ({refunded}) are not posted (refund "
                            f"setting: {settings.refunds.mode.value}) — record them in QuickBooks",
                        )
                    )
                    report.counts["refunds_not_posted"] += 1
                report.counts["postings_planned"] += created
                for change in result.changes:
                    if change.operation is not ChangeKind.CREATE:
                        report.counts[f"planned_{change.operation.value}"] += 1
                if created:
                    report.counts["orders_planned"] += 1
                    stored.state, stored.detail, stored.error_field = OrderState.PLANNED, "", ""
                else:
                    # Nothing to change: the books already say what the order says.
                    stored.state, stored.detail, stored.error_field = OrderState.POSTED, "", ""
                if result.void_all:
                    session.add(
                        Event(
                            company_id=stored.company_id,
                            connection_id=conn.id,
                            order_id=stored.id,
                            level="info",
                            kind="order_voided",
                            message=f"order {stored.number}: {result.void_all}; its documents are voided",
                        )
                    )
                settle.append(stored.id)
            # Another worker may have posted some or all of these already: the postings decide the state.
            session.flush()
            _settle_orders(session, settle)
        return catalog

    def _ensure_payment_methods(
        self, books: Books, settings: ChannelSettings, orders: Iterable[Order], catalog: Catalog
    ) -> Catalog:
        """Create the payment methods the orders name and the books lack (when the settings allow it)."""
        ensure = getattr(books, "ensure_payment_methods", None)
        if not settings.payments.create_methods or ensure is None:
            return catalog
        names = {
            name
            for order in orders
            for payment in order.payments
            if (name := (payment.method or payment.gateway).strip())
            and not any(
                fold(candidate) in catalog.payment_methods
                for candidate in (payment.method, payment.gateway)
                if candidate
            )
        }
        if not names:
            return catalog
        grown: Catalog = ensure(sorted(names), catalog)
        return grown

    def _write_changes(
        self, session: Session, conn: Connection, stored: StoredOrder, result: Plan, postings: Sequence[Posting]
    ) -> int:
        """One posting per change (role and operation) of this revision, each waiting for the one before it
        (voids before reposts, the sale before its payments and refunds). A posting already open is kept.
        `postings` are the order's postings so far, in id order."""
        if conn.books_id is None:
            raise LedgerlinkError(f"channel connection {conn.name!r} has no QuickBooks connection to post to")
        existing = [p for p in postings if p.revision == stored.revision]
        open_ = {(p.role, p.operation): p for p in existing if p.state in OPEN_POSTING_STATES}
        replaced = Counter((p.role, p.operation) for p in existing if p.state == PostingState.SUPERSEDED)
        bindings = _live_bindings(postings)
        previous: Posting | None = None
        created = 0
        for change in result.changes:
            doc, operation = change.document, change.operation.value
            found = open_.get((doc.role, operation))
            if found is not None:
                if found.state == PostingState.PENDING and previous is not None:
                    found.depends_on = previous  # re-chained after a retry replaced the one before
                previous = found
                continue
            binding = bindings.get(doc.role)
            if change.operation is ChangeKind.CREATE:
                role = doc.role if result.generation == 1 else f"{doc.role}-g{result.generation}"
                doc = doc.model_copy(update={"marker": order_marker(conn.id, stored.channel_order_id, role)})
            elif binding is not None:
                # The document keeps its marker and number in the books; an update carries them on.
                bound = Document.model_validate(binding.document)
                doc = doc.model_copy(update={"marker": bound.marker, "doc_number": bound.doc_number})
            key = posting_key(
                conn.id,
                stored.channel_order_id,
                doc.role,
                stored.revision,
                operation,
                attempt=replaced[(doc.role, operation)],
            )
            posting = Posting(
                key=key,
                company_id=stored.company_id,
                books_id=conn.books_id,
                order_id=stored.id,
                revision=stored.revision,
                role=doc.role,
                kind=doc.kind.value,
                operation=operation,
                doc_number=doc.doc_number,
                document=doc.model_dump(mode="json"),
                total=Decimal(0) if change.operation is ChangeKind.VOID else doc.total,
                depends_on=previous,
                state=PostingState.PENDING,
            )
            session.add(posting)
            previous = posting
            created += 1
        return created

    def _dry_run(
        self, channel: Channel, books: Books, settings: ChannelSettings, options: RunOptions, report: RunReport
    ) -> None:
        """Pull and plan without writing anything: what would be posted."""
        orders: dict[int, Order] = {}
        for page in channel.pull(None, _window(options)):
            for raw in page.orders:
                report.counts["pulled"] += 1
                try:
                    order = channel.parse(raw)
                except MappingError as exc:
                    report.failures.append((str(raw.get("order_number", "?")), exc.field or "", exc.detail))
                    continue
                orders[len(orders)] = order
        wanted = CatalogQuery()
        for order in orders.values():
            wanted.merge(catalog_query(order, settings))
        catalog = books.catalog(wanted, None)
        plans, errors = _plan_all(orders, settings, catalog)
        for index, problem in errors.items():
            report.failures.append((orders[index].number, problem.field or "", problem.detail))
        for p in plans.values():
            if p.skipped:
                report.skipped.append((p.order.number, p.skipped))
            else:
                report.previews.append(p)

    # -- push -------------------------------------------------------------------------------------------

    def push(self, books_conn: Connection, books: Books, report: RunReport, *, wait: bool = True) -> None:
        """Post every ready posting of this books connection, one pusher per company at a time.

        With `wait` false, a worker that finds the company's lease taken leaves its postings to the holder
        and returns (`push_deferred`), so workers are never parked on one busy company. The holder looks for
        ready postings once more after letting the lease go: a posting planned after its last claim, by a
        worker that found the lease still taken, is then posted by it and never stranded.
        """
        if books_conn.kind == "qbd":
            # QuickBooks Desktop is pulled, never called: the Web Connector collects the pending postings.
            return
        while True:
            try:
                self._push_round(books_conn.id, books, report, wait=600.0 if wait else 0.0)
            except LockTimeout:
                if wait:
                    raise
                report.counts["push_deferred"] += 1
                return
            if not self._has_ready(books_conn.id):
                return

    def _push_round(self, books_id: int, books: Books, report: RunReport, *, wait: float, fill: int = 1) -> None:
        """Take the company's push lease (waiting up to `wait` seconds) and post what is ready.

        With `fill` above 1 only batches of at least `fill` postings go out, and the round ends when fewer are
        ready (a run still planning sends full batches; what is left, and retries, go in its last round)."""
        with PushLease(self.db, books_id, sleep=self.sleep, wait=wait) as lease:
            self._push_held(lease, books, books_id, report, fill=fill)

    def _push_held(self, lease: PushLease, books: Books, books_id: int, report: RunReport, *, fill: int = 1) -> None:
        """Post under the lease: up to CONCURRENT_BATCHES batches in flight, so QuickBooks works on one while
        the engine records the last and claims the next. Postings that depend on one in flight are not ready
        (the claim wants the dependency posted); postings left `sending` are looked up only here, at the start,
        when nothing of this lease is in flight."""
        self._recover(books, books_id, report)
        with ThreadPoolExecutor(max_workers=CONCURRENT_BATCHES, thread_name_prefix=f"send-{books_id}") as pool:
            in_flight: set[Future[RunReport]] = set()
            try:
                while True:
                    claimed = self._claim(books_id, fill=fill) if len(in_flight) < CONCURRENT_BATCHES else []
                    if claimed:
                        in_flight.add(pool.submit(self._send_and_record, books, books_id, claimed))
                        continue
                    if in_flight:
                        done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                        for future in done:
                            sent = future.result()  # each batch counts on its own report: no lost updates
                            report.counts.update(sent.counts)
                            report.failures.extend(sent.failures)
                        lease.renew()
                        self.progress("push", report.counts["posted"], None)
                        continue
                    if fill > 1:
                        return
                    retry_in = self._next_retry_in(books_id)
                    if retry_in is None:
                        return
                    self.sleep(min(retry_in, 60.0))
                    lease.renew()
            finally:
                # An error stops the claiming; what is already sent is recorded before the lease goes.
                for future in in_flight:
                    if future.exception() is None:
                        report.counts.update(future.result().counts)
                        report.failures.extend(future.result().failures)

    def _send_and_record(self, books: Books, books_id: int, claimed: list[tuple[int, dict[str, Any]]]) -> RunReport:
        report = RunReport()
        requests = [self._request(posting_id, payload) for posting_id, payload in claimed]
        results = self._send(books, requests)
        self._record(books, books_id, requests, results, report)
        return report

    def _has_ready(self, books_id: int) -> bool:
        """True when a pending posting waits only for a pusher (due now or later; its dependency posted)."""
        dep = aliased(Posting)
        with self.db.session() as session:
            found = session.scalars(
                select(Posting.id)
                .where(
                    Posting.books_id == books_id,
                    Posting.state == PostingState.PENDING,
                    or_(
                        Posting.depends_on_id.is_(None),
                        exists().where(and_(dep.id == Posting.depends_on_id, dep.state == PostingState.POSTED)),
                    ),
                )
                .limit(1)
            ).first()
        return found is not None

    def _retry_failed(self, channel_id: int, numbers: tuple[str, ...]) -> int:
        """Put this channel's failed orders (or the named ones) back in line to be planned again."""
        with self.db.session() as session:
            query = select(StoredOrder).where(
                StoredOrder.connection_id == channel_id, StoredOrder.state == OrderState.FAILED
            )
            if numbers:
                query = query.where(StoredOrder.number.in_(numbers))
            orders = session.scalars(query).all()
            for order in orders:
                retry_order(session, order)
            return len(orders)

    def _recover(self, books: Books, books_id: int, report: RunReport) -> None:
        """Postings left `sending` by a crash or a lost answer: look them up before anything is re-sent."""
        with self.db.session() as session:
            stuck = list(
                session.scalars(
                    select(Posting).where(Posting.books_id == books_id, Posting.state == PostingState.SENDING)
                )
            )
            linked = {p.id: _linked(session, p) for p in stuck}
            for posting in [p for p in stuck if p.operation != Operation.CREATE.value]:
                # An update or a void is sent again: repeating it changes nothing more.
                posting.state, posting.claim_token = PostingState.PENDING, None
                report.counts["recovered_resend"] += 1
            stuck = [p for p in stuck if p.operation == Operation.CREATE.value]
        for posting in stuck:
            request = PushRequest(
                key=posting.key, document=Document.model_validate(posting.document), linked=linked[posting.id]
            )
            try:
                found = books.find(request)
            except RetryableError:
                # Not reachable now: the posting stays as it is (a `sending` one is looked up again before
                # anything is re-sent, at the next push round or the next run); the other postings go on.
                report.counts["lookup_failed"] += 1
                continue
            with self.db.session() as session:
                row = session.get(Posting, posting.id)
                if row is None or row.state != PostingState.SENDING:
                    continue
                if found is not None:
                    _mark_posted(session, row, found.remote_id, found.sync_token, found.total, bound=True)
                    report.counts["recovered_bound"] += 1
                    report.counts["posted"] += 1
                    report.counts[f"posted_{row.kind}"] += 1
                    _observe_posted(session, row)
                    _settle_order(session, row.order_id)
                else:
                    row.state, row.claim_token = PostingState.PENDING, None
                    report.counts["recovered_resend"] += 1

    def _claim(self, books_id: int, *, fill: int = 1) -> list[tuple[int, dict[str, Any]]]:
        """Claim up to a batch of ready postings: pending, due, and whose dependency is posted (none when
        fewer than `fill` are ready)."""
        token = uuid.uuid4().hex
        now = self.clock()
        dep = aliased(Posting)
        with self.db.session() as session:
            candidates = (
                select(Posting.id)
                .where(
                    Posting.books_id == books_id,
                    Posting.state == PostingState.PENDING,
                    or_(Posting.not_before.is_(None), Posting.not_before <= now),
                    or_(
                        Posting.depends_on_id.is_(None),
                        exists().where(and_(dep.id == Posting.depends_on_id, dep.state == PostingState.POSTED)),
                    ),
                )
                .order_by(Posting.id)
                .limit(CLAIM_SIZE)
            )
            if not self.db.is_sqlite:
                candidates = candidates.with_for_update(skip_locked=True)
            ids = list(session.scalars(candidates))
            if not ids or len(ids) < fill:
                return []
            # The conditional update is the guarantee: a row another worker claimed is no longer `pending`.
            session.execute(
                update(Posting)
                .where(Posting.id.in_(ids), Posting.state == PostingState.PENDING)
                .values(state=PostingState.SENDING, claim_token=token, attempts=Posting.attempts + 1)
                .execution_options(synchronize_session=False)
            )
            # Read back in the same transaction: it commits with the claim, before anything is sent.
            rows = session.scalars(select(Posting).where(Posting.claim_token == token).order_by(Posting.id)).all()
            claimed: list[tuple[int, dict[str, Any]]] = []
            for row in rows:
                remote_id, sync_token = _target(session, row) if row.operation != "create" else (None, None)
                payload = {
                    "key": row.key,
                    "document": row.document,
                    "linked": _linked(session, row),
                    "operation": row.operation,
                    "remote_id": remote_id,
                    "sync_token": sync_token,
                }
                claimed.append((row.id, payload))
            return claimed

    def _request(self, posting_id: int, payload: dict[str, Any]) -> PushRequest:
        return PushRequest(
            key=payload["key"],
            document=Document.model_validate(payload["document"]),
            operation=Operation(payload.get("operation") or Operation.CREATE.value),
            remote_id=payload.get("remote_id"),
            sync_token=payload.get("sync_token"),
            linked=payload["linked"],
        )

    def _send(self, books: Books, requests: Sequence[PushRequest]) -> list[PushResult]:
        try:
            return list(books.push(requests))
        except NeedsUserError:
            # Nothing was sent (the token could not be refreshed): give the postings back, then stop the run.
            self._release([r.key for r in requests])
            raise

    def _release(self, keys: Iterable[str]) -> None:
        with self.db.session() as session:
            session.execute(
                update(Posting)
                .where(Posting.key.in_(list(keys)), Posting.state == PostingState.SENDING)
                .values(state=PostingState.PENDING, claim_token=None)
            )

    def _record(
        self,
        books: Books,
        books_id: int,
        requests: Sequence[PushRequest],
        results: Sequence[PushResult],
        report: RunReport,
    ) -> None:
        by_key = {r.key: r for r in results}
        unknown: list[PushRequest] = []
        stale: list[PushRequest] = []
        with self.db.session() as session:
            # One read for the batch's postings and one for their orders (in the identity map from then on).
            rows = {
                row.key: row
                for row in session.scalars(
                    select(Posting).where(Posting.key.in_([r.key for r in requests])).options(defer(Posting.document))
                )
            }
            order_ids = sorted({row.order_id for row in rows.values()})
            # Held here: the session's identity map keeps objects only while someone refers to them.
            orders = list(
                session.scalars(select(StoredOrder).where(StoredOrder.id.in_(order_ids)).options(*_WITHOUT_BODIES))
            )
            for request in requests:
                row = rows[request.key]
                result = by_key.get(request.key)
                if result is None or result.status is PushStatus.UNKNOWN:
                    unknown.append(request)
                    continue
                if result.status is PushStatus.POSTED:
                    _mark_posted(
                        session,
                        row,
                        result.remote_id,
                        result.sync_token,
                        result.total,
                        bound=result.bound_existing,
                        note=result.error,
                    )
                    _rebind(session, row)
                    if row.operation != Operation.CREATE.value:
                        report.counts["updated" if row.operation == Operation.UPDATE.value else "voided"] += 1
                    report.counts["posted"] += 1
                    report.counts[f"posted_{row.kind}"] += 1
                    _observe_posted(session, row)
                    if result.bound_existing:
                        report.counts["bound_existing"] += 1
                elif result.status is PushStatus.RETRY and not (
                    result.code == STALE_OBJECT_CODE and row.attempts >= MAX_STALE_ATTEMPTS
                ):
                    if result.code == STALE_OBJECT_CODE and row.operation != Operation.CREATE.value:
                        stale.append(request)
                    row.state, row.claim_token = PostingState.PENDING, None
                    row.not_before = self.clock() + timedelta(seconds=max(result.retry_after, 0.5))
                    row.error, row.error_code = result.error, result.code
                    report.counts["retried"] += 1
                else:
                    row.state, row.claim_token = PostingState.FAILED, None
                    row.error, row.error_code = result.error, result.code
                    report.counts["postings_failed"] += 1
                    order = session.get(StoredOrder, row.order_id)
                    number = order.number if order else "?"
                    report.failures.append((number, row.kind, result.error))
            _settle_orders(session, order_ids)
            del orders
        if stale:
            self._refresh_tokens(books, stale, report)
        if unknown:
            report.counts["unknown_outcome"] += len(unknown)
            self._resolve_unknown(books, unknown, report)

    def _refresh_tokens(self, books: Books, requests: Sequence[PushRequest], report: RunReport) -> None:
        """A stale SyncToken (5010) on a void (or an update the books could not re-apply): look the document
        up for its current token and store it on the role's binding, so the retry goes out with it."""
        for request in requests:
            try:
                found = books.find(request)
            except RetryableError:
                # Not reachable now: the posting stays as it is (a `sending` one is looked up again before
                # anything is re-sent, at the next push round or the next run); the other postings go on.
                report.counts["lookup_failed"] += 1
                continue
            if found is None or not found.sync_token:
                continue
            with self.db.session() as session:
                row = session.scalars(select(Posting).where(Posting.key == request.key)).one()
                binding = _bindings(session, row.order_id).get(row.role)
                if binding is not None and binding.remote_id == found.remote_id:
                    binding.sync_token = found.sync_token
                    row.not_before = None
                    report.counts["sync_tokens_refreshed"] += 1

    def _resolve_unknown(self, books: Books, requests: Sequence[PushRequest], report: RunReport) -> None:
        for request in requests:
            if request.operation is not Operation.CREATE:
                # Sending an update or a void again is harmless (a stale token is re-read): no look-up needed.
                with self.db.session() as session:
                    row = session.scalars(select(Posting).where(Posting.key == request.key)).one()
                    row.state, row.claim_token = PostingState.PENDING, None
                continue
            try:
                found = books.find(request)
            except RetryableError:
                # Not reachable now: the posting stays as it is (a `sending` one is looked up again before
                # anything is re-sent, at the next push round or the next run); the other postings go on.
                report.counts["lookup_failed"] += 1
                continue
            with self.db.session() as session:
                row = session.scalars(select(Posting).where(Posting.key == request.key)).one()
                if found is not None:
                    _mark_posted(session, row, found.remote_id, found.sync_token, found.total, bound=True)
                    report.counts["posted"] += 1
                    report.counts[f"posted_{row.kind}"] += 1
                    report.counts["recovered_bound"] += 1
                    _observe_posted(session, row)
                    _settle_order(session, row.order_id)
                else:
                    row.state, row.claim_token = PostingState.PENDING, None

    def _next_retry_in(self, books_id: int) -> float | None:
        with self.db.session() as session:
            due = session.scalars(
                select(Posting.not_before)
                .where(
                    Posting.books_id == books_id, Posting.state == PostingState.PENDING, Posting.not_before.is_not(None)
                )
                .order_by(Posting.not_before)
                .limit(1)
            ).first()
        if due is None:
            return None
        return max(0.0, (due - self.clock()).total_seconds())


# -- helpers shared by the steps ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Arrival:
    """A raw order from a page, parsed (or not: `error` says why), with what identifies and stores it."""

    channel_order_id: str
    number: str
    content_hash: str
    body: dict[str, Any]
    order: Order | None
    error: MappingError | None


@dataclass(slots=True)
class _PlanPass:
    """What one pass's planning carries from chunk to chunk: the catalog read so far, the keys already asked
    of the books (found or not), the last order id planned, and whom to tell that postings are ready."""

    nudge: Callable[[], None] | None = None
    catalog: Catalog | None = None
    asked: CatalogQuery = field(default_factory=CatalogQuery)
    last_id: int = 0
    pulled_at: int = 0  # the pass's pulled count at the last planning step


class _Pusher:
    """Posts a run's postings from a thread of its own while the run is still pulling and planning.

    While planning goes on, it sends only full batches (a batch request costs the same with 3 documents as with
    30); `finish` posts the rest, retries included, as the sequential push does. Its lease rounds never wait
    for another worker's lease: the last round does, as `push` always has. An error of the thread (a token
    that needs the user, a lost lease) is raised again by `finish`, in the run's own thread."""

    def __init__(self, engine: SyncEngine, books_conn: Connection, books: Books, report: RunReport) -> None:
        self.engine = engine
        self.books_conn = books_conn
        self.books_id = books_conn.id
        self.books = books
        self.report = report
        self._wake = threading.Event()
        self._done = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name=f"push-{self.books_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def nudge(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._done.is_set():
                    return
                try:
                    self.engine._push_round(self.books_id, self.books, self.report, wait=0.0, fill=CLAIM_SIZE)
                except LockTimeout:
                    continue  # another worker is posting to this company: the last round waits for it
        except BaseException as exc:  # handed to the run's thread by finish()
            self._error = exc

    def stop(self) -> None:
        """End the thread after the batch it is sending, if any."""
        self._done.set()
        self._wake.set()
        self._thread.join()

    def finish(self, *, wait: bool) -> None:
        """Stop the thread, raise its error if it had one, then post everything that is ready."""
        self.stop()
        if self._error is not None:
            raise self._error
        self.engine.push(self.books_conn, self.books, self.report, wait=wait)


class _LiveCounts:
    """Writes a running pass's counts to its SyncRun row at most once a second (the dashboard's progress bar)."""

    def __init__(self, db: Database, report: RunReport, every: float = 1.0) -> None:
        self.db = db
        self.report = report
        self.every = every
        self.last = 0.0
        self._lock = threading.Lock()  # the run's thread and its pusher both report progress

    def write(self, stage: str) -> None:
        if self.report.run_id is None or time.monotonic() - self.last < self.every:
            return
        if not self._lock.acquire(blocking=False):
            return
        try:
            self.last = time.monotonic()
            with self.db.session() as session:
                run = session.get(SyncRun, self.report.run_id)
                if run is not None:
                    run.counts = {**self.report.counts, "stage": stage}
        finally:
            self._lock.release()


def load_settings(session: Session, connection_id: int) -> ChannelSettings:
    """The settings in force for a channel connection (the newest saved revision), or the defaults."""
    row = session.scalars(
        select(SettingsRevision)
        .where(SettingsRevision.connection_id == connection_id)
        .order_by(SettingsRevision.revision.desc())
        .limit(1)
    ).first()
    if row is None:
        return ChannelSettings()
    try:
        return ChannelSettings.model_validate(row.data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"the saved settings (revision {row.revision}) are not valid: {first['msg']}; save them again",
            field=where,
        ) from None


def save_settings(session: Session, connection_id: int, settings: ChannelSettings, changed_by: str = "") -> int:
    """Store a new revision of the settings (who changed it is kept for the history); returns its number."""
    current = session.scalars(
        select(SettingsRevision.revision)
        .where(SettingsRevision.connection_id == connection_id)
        .order_by(SettingsRevision.revision.desc())
        .limit(1)
    ).first()
    revision = (current or 0) + 1
    session.add(
        SettingsRevision(
            connection_id=connection_id,
            revision=revision,
            schema_version=settings.version,
            data=settings.model_dump(mode="json"),
            changed_by=changed_by,
        )
    )
    return revision


def retry_order(session: Session, order: StoredOrder) -> None:
    """Plan a failed order again with the settings now in force: refused documents are replaced (new key,
    same marker); documents already in the books are kept and never sent again."""
    if order.state != OrderState.FAILED or order.error_field == "revision":
        return
    session.execute(
        update(Posting)
        .where(Posting.order_id == order.id, Posting.state == PostingState.FAILED)
        .values(state=PostingState.SUPERSEDED)
    )
    order.state, order.detail, order.error_field = OrderState.PENDING, "", ""


def _plan_all(
    orders: dict[int, Order],
    settings: ChannelSettings,
    catalog: Catalog,
    in_books: dict[int, _BooksState] | None = None,
) -> tuple[dict[int, Plan], dict[int, MappingError]]:
    """Plan each order against what the books hold of it (`in_books`, by order id; previews pass none)."""
    plans: dict[int, Plan] = {}
    errors: dict[int, MappingError] = {}
    for oid, order in orders.items():
        state = (in_books or {}).get(oid, _BooksState())
        try:
            if in_books is None:
                plans[oid] = plan(order, settings, catalog)
            else:
                plans[oid] = reconcile(order, settings, catalog, books=state.docs, generation=state.generation)
        except MappingError as exc:
            errors[oid] = exc
    return plans, errors


@dataclass(frozen=True, slots=True)
class _BooksState:
    """What the books hold of one order: its live documents (by role) and the numbering generation.

    Two states are equal when the same postings are bound: planning checks nothing moved in between."""

    docs: tuple[PostedDoc, ...] = field(default=(), compare=False)
    bound: tuple[int, ...] = ()
    generation: int = 1


def _bindings(session: Session, order_id: int) -> dict[str, Posting]:
    """The live binding of each role of an order: its newest posted create or update (not voided)."""
    rows = session.scalars(
        select(Posting)
        .where(
            Posting.order_id == order_id,
            Posting.state == PostingState.POSTED,
            Posting.operation != Operation.VOID.value,
        )
        .order_by(Posting.id)
    )
    return _live_bindings(rows)


def _live_bindings(postings: Iterable[Posting]) -> dict[str, Posting]:
    """The live binding of each role among an order's postings (in id order): the newest posted create or update."""
    return {p.role: p for p in postings if p.state == PostingState.POSTED and p.operation != Operation.VOID.value}


def _books_state(session: Session, order_ids: list[int]) -> dict[int, _BooksState]:
    """The books state of each order (orders with nothing in the books are left out)."""
    if not order_ids:
        return {}
    rows = session.scalars(
        select(Posting)
        .where(Posting.order_id.in_(order_ids), Posting.state == PostingState.POSTED)
        .order_by(Posting.id)
    ).all()
    live: dict[int, dict[str, Posting]] = {}
    reposts: dict[int, set[int]] = {}
    for row in rows:
        if row.operation == Operation.VOID.value:
            if row.role in SALE_ROLES:
                reposts.setdefault(row.order_id, set()).add(row.revision)
            continue
        live.setdefault(row.order_id, {})[row.role] = row
    found: dict[int, _BooksState] = {}
    for oid in set(live) | set(reposts):
        bound = live.get(oid, {})
        found[oid] = _BooksState(
            docs=tuple(PostedDoc(role, Document.model_validate(p.document)) for role, p in bound.items()),
            bound=tuple(sorted(p.id for p in bound.values())),
            generation=1 + len(reposts.get(oid, set())),
        )
    return found


def _orders_with_live_postings(session: Session, order_ids: list[int]) -> set[int]:
    """Orders not to plan now: their current revision has unfinished postings (pending, sending, failed), or
    a posting of any revision is still on its way to the books (planning waits until the books settle)."""
    current = select(StoredOrder.revision).where(StoredOrder.id == Posting.order_id).scalar_subquery()
    unfinished = session.execute(
        select(Posting.order_id).where(
            Posting.order_id.in_(order_ids),
            Posting.revision == current,
            Posting.state.in_((PostingState.PENDING, PostingState.SENDING, PostingState.FAILED)),
        )
    )
    in_flight = session.execute(
        select(Posting.order_id).where(
            Posting.order_id.in_(order_ids),
            Posting.state.in_((PostingState.PENDING, PostingState.SENDING)),
        )
    )
    return {r[0] for r in unfinished} | {r[0] for r in in_flight}


def _linked(session: Session, posting: Posting) -> tuple[tuple[str, str], ...]:
    """Remote ids of the documents this posting links to (the live binding of each role of the order)."""
    roles = [link["role"] for link in posting.document.get("links", [])]
    if not roles:
        return ()
    rows = session.execute(
        select(Posting.role, Posting.remote_id)
        .where(
            Posting.order_id == posting.order_id,
            Posting.role.in_(roles),
            Posting.state == PostingState.POSTED,
            Posting.operation != Operation.VOID.value,
        )
        .order_by(Posting.id)
    )
    found = {role: remote for role, remote in rows if remote}
    return tuple(found.items())


def _target(session: Session, posting: Posting) -> tuple[str | None, str | None]:
    """For an update or a void: the remote id and sync token of the document it changes."""
    binding = _bindings(session, posting.order_id).get(posting.role)
    if binding is None or binding.id == posting.id:
        return None, None
    return binding.remote_id, binding.sync_token


def _rebind(session: Session, row: Posting) -> None:
    """After an update or a void is in the books: the role's older bindings are history."""
    if row.operation == Operation.CREATE.value:
        return
    state = PostingState.VOIDED if row.operation == Operation.VOID.value else PostingState.SUPERSEDED
    session.execute(
        update(Posting)
        .where(
            Posting.order_id == row.order_id,
            Posting.role == row.role,
            Posting.id != row.id,
            Posting.state == PostingState.POSTED,
            Posting.operation != Operation.VOID.value,
            Posting.id < row.id,
        )
        .values(state=state)
        .execution_options(synchronize_session=False)
    )


def _mark_posted(
    session: Session,
    row: Posting,
    remote_id: str | None,
    sync_token: str | None,
    total: Any,
    *,
    bound: bool,
    note: str = "",
) -> None:
    row.state, row.claim_token = PostingState.POSTED, None
    row.remote_id, row.sync_token = remote_id, sync_token
    row.posted_total = total
    row.bound_existing = bound
    row.posted_at = datetime.now(UTC)
    row.error, row.error_code = note, ""
    if total is not None and total != row.total:
        session.add(
            Event(
                company_id=row.company_id,
                order_id=row.order_id,
                level="error",
                kind="total_mismatch",
                message=f"{row.kind} {row.doc_number}: QuickBooks shows {total}, the order total is {row.total}",
            )
        )


def _observe_posted(session: Session, row: Posting) -> None:
    """Metrics for a posted document: counted per company, and the lag from the order's change in the channel."""
    order = session.get(StoredOrder, row.order_id)
    changed = (order.channel_updated_at or order.channel_created_at) if order is not None else None
    metrics.observe_posted(row.company_id, row.kind, changed, row.posted_at or datetime.now(UTC))


def _api_stats(books: Books) -> dict[str, int]:
    """The QBO client's request counters, when the adapter has one (for the per-realm API metrics)."""
    stats = getattr(getattr(books, "client", None), "stats", None)
    return dict(stats) if isinstance(stats, dict) else {}


def _settle_order(session: Session, order_id: int) -> None:
    """The order is posted when every posting of its current revision is; failed when one failed."""
    _settle_orders(session, [order_id])


def _settle_orders(session: Session, order_ids: Sequence[int]) -> None:
    """`_settle_order` for many orders, with one query for all their postings."""
    if not order_ids:
        return
    orders = {
        o.id: o
        for o in session.scalars(select(StoredOrder).where(StoredOrder.id.in_(order_ids)).options(*_WITHOUT_BODIES))
    }
    postings: dict[int, list[tuple[str, str]]] = {}
    for order_id, revision, state, error in session.execute(
        select(Posting.order_id, Posting.revision, Posting.state, Posting.error)
        .where(Posting.order_id.in_(list(orders)))
        .order_by(Posting.id)
    ):
        if revision == orders[order_id].revision:
            postings.setdefault(order_id, []).append((state, error))
    for order_id, order in orders.items():
        states = [state for state, _error in postings.get(order_id, [])]
        if not states:
            continue
        if all(s == PostingState.POSTED for s in states):
            order.state, order.detail, order.error_field = OrderState.POSTED, "", ""
        elif any(s == PostingState.FAILED for s in states):
            errors = [error for state, error in postings[order_id] if state == PostingState.FAILED]
            order.state, order.detail, order.error_field = OrderState.FAILED, "; ".join(errors), "posting"
        else:
            order.state = OrderState.PLANNED


def _fail_order(session: Session, stored: StoredOrder, field_name: str, message: str, *, kind: str) -> None:
    stored.state, stored.detail, stored.error_field = OrderState.FAILED, message, field_name
    session.add(
        Event(
            company_id=stored.company_id,
            connection_id=stored.connection_id,
            order_id=stored.id,
            level="error",
            kind=kind,
            message=f"order {stored.number}: {field_name}: {message}",
        )
    )


def _apply_order_facts(stored: StoredOrder, order: Order | None) -> None:
    if order is None:
        return
    stored.total = order.totals.total
    stored.currency = order.currency
    stored.channel_created_at = order.created_at
    stored.channel_updated_at = order.updated_at


def _short_text(value: Any, limit: int = 64) -> str:
    """An id or number from a raw order that failed to parse, usable as a key, or "" (then it is not one)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return ""
    try:
        text = str(value).strip()
    except ValueError:  # an integer too long to print
        return ""
    if not text or len(text) > limit or not text.isprintable() or not text.isascii():
        return ""
    return text


def _raw_hash(body: dict[str, Any]) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _window(options: RunOptions) -> Window:
    return Window(
        created_from=datetime.combine(options.created_from, datetime.min.time(), UTC) if options.created_from else None,
        created_to=(datetime.combine(options.created_to, datetime.max.time(), UTC) if options.created_to else None),
        order_numbers=options.order_numbers,
    )


def _summary(counts: Counter[str] | dict[str, int]) -> str:
    keys = (
        "pulled",
        "orders_new",
        "orders_changed",
        "orders_planned",
        "posted",
        "orders_skipped",
        "orders_failed",
        "postings_failed",
    )
    return ", ".join(f"{k.replace('_', ' ')} {counts.get(k, 0)}" for k in keys)
