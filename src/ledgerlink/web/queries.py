"""Read models of the dashboard, Sync Activity and Unmatched products pages: queries scoped to one company."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from ledgerlink.domain.settings import ChannelSettings, ScheduleKind, SyncDirection
from ledgerlink.store.crypto import SecretBox
from ledgerlink.store.models import (
    Connection,
    OrderState,
    Posting,
    PostingState,
    StoredOrder,
    SyncJob,
    SyncRun,
)
from ledgerlink.sync.engine import load_settings
from ledgerlink.sync.qbwc import QUEUED_FOR_DESKTOP

PAGE_SIZE = 50
ORDER_STATES = ("posted", "planned", "failed", "skipped", "pending")
ACTIVE_JOB_STATES = ("queued", "running")

KIND_TITLES = {
    "SalesReceipt": "Sales Receipt",
    "Invoice": "Invoice",
    "Estimate": "Estimate",
    "SalesOrder": "Sales Order",
    "Payment": "Payment",
    "CreditMemo": "Credit Memo",
    "RefundReceipt": "Refund Receipt",
}
CHANNEL_TITLES = {"shopify": "Shopify", "shipstation": "ShipStation", "woocommerce": "WooCommerce", "qbo": "QuickBooks"}

_ORDER_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SKU_LINE = re.compile(r"^lines\[(\d+)\]\.sku$")


def kind_title(kind: str) -> str:
    """A document kind in words ("SalesReceipt" → "Sales Receipt")."""
    return KIND_TITLES.get(kind, kind)


def channel_title(kind: str) -> str:
    """A connection kind in words ("shopify" → "Shopify")."""
    return CHANNEL_TITLES.get(kind, kind.title())


def settings_url(connection_id: int, section: str) -> str:
    """Where a section of a channel's settings is edited (Settings → channel → section)."""
    return f"/settings/{connection_id}/{section}"


# -- connections -----------------------------------------------------------------------------------------------


def company_connection(
    session: Session, company_id: int, connection_id: int, role: str | None = None
) -> Connection | None:
    """A connection of this company (None for another company's id or a wrong role)."""
    conn = session.get(Connection, connection_id)
    if conn is None or conn.company_id != company_id or (role is not None and conn.role != role):
        return None
    return conn


def channel_connections(session: Session, company_id: int) -> list[Connection]:
    """The company's selling-channel connections, in the order they were added."""
    return list(
        session.scalars(
            select(Connection)
            .where(Connection.company_id == company_id, Connection.role == "channel")
            .order_by(Connection.id)
        )
    )


def books_label(box: SecretBox | None, books: Connection) -> str:
    """How a QuickBooks connection is named to a person: its company's name when known, else the connection's."""
    if box is not None:
        try:
            name = box.open(books.secrets).get("company_name")
        except ValueError:  # a row sealed with another key still gets a name
            name = None
        if name:
            return str(name)
    return books.name


def has_connections(session: Session, company_id: int) -> bool:
    return bool(session.scalar(select(func.count()).select_from(Connection).where(Connection.company_id == company_id)))


# -- the dashboard ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NextRun:
    """When the schedule runs the sync next: a moment, or words ("manual only")."""

    text: str
    at: datetime | None = None


def next_run(settings: ChannelSettings, last_start: datetime | None, now: datetime, *, ready: bool = True) -> NextRun:
    """The next scheduled run, the way `sync.jobs.due_connections` decides it."""
    if settings.direction is not SyncDirection.TO_BOOKS:
        return NextRun("not scheduled (orders come from QuickBooks)")
    if not ready:
        return NextRun("not scheduled until the settings are complete")
    schedule = settings.schedule
    if schedule.kind is ScheduleKind.MANUAL:
        return NextRun("manual only")
    if schedule.kind is ScheduleKind.INTERVAL:
        if last_start is None:
            return NextRun("within a minute")
        at = last_start + timedelta(minutes=schedule.every_minutes)
        return NextRun("within a minute", None) if at <= now else NextRun(f"every {schedule.every_minutes} min", at)
    if schedule.daily_at is None:  # the settings model forbids it; keep the page up anyway
        return NextRun("manual only")
    today_at = datetime.combine(now.date(), schedule.daily_at, UTC)
    if now >= today_at and (last_start is None or last_start < today_at):
        return NextRun("within a minute")
    at = today_at if now < today_at else today_at + timedelta(days=1)
    return NextRun(f"daily at {schedule.daily_at.strftime('%H:%M')} UTC", at)


@dataclass(slots=True)
class ChannelCard:
    """Everything the dashboard shows for one channel connection."""

    connection: Connection
    books: Connection | None
    settings: ChannelSettings
    missing: list[str]
    last_run: SyncRun | None
    next_run: NextRun
    posted_today: int
    posted_month: int
    failures: int
    job: SyncJob | None
    progress: dict[str, Any] = field(default_factory=dict)
    books_name: str = ""

    @property
    def title(self) -> str:
        return channel_title(self.connection.kind)

    @property
    def last_posted(self) -> int:
        return int((self.last_run.counts or {}).get("posted", 0)) if self.last_run else 0

    @property
    def desktop(self) -> bool:
        """Posts to QuickBooks Desktop: a run only queues documents for the Web Connector."""
        return self.books is not None and self.books.kind == "qbd"

    @property
    def last_queued(self) -> int:
        """Documents the last run queued for the books (on Desktop: for the next Web Connector session)."""
        return int((self.last_run.counts or {}).get("postings_planned", 0)) if self.last_run else 0

    @property
    def last_failed(self) -> int:
        if self.last_run is None:
            return 0
        counts = self.last_run.counts or {}
        return int(counts.get("orders_failed", 0)) + int(counts.get("postings_failed", 0))

    @property
    def healthy(self) -> bool:
        return self.connection.status == "ok" and (self.books is None or self.books.status == "ok")


def _posted_since(session: Session, connection_id: int, since: datetime) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(StoredOrder)
            .where(
                StoredOrder.connection_id == connection_id,
                StoredOrder.state == OrderState.POSTED,
                StoredOrder.updated_at >= since,
            )
        )
        or 0
    )


def active_job(session: Session, connection_id: int) -> SyncJob | None:
    """The sync waiting or running for a connection, if any (the running one first)."""
    jobs = list(
        session.scalars(
            select(SyncJob)
            .where(SyncJob.connection_id == connection_id, SyncJob.state.in_(ACTIVE_JOB_STATES))
            .order_by(SyncJob.id)
        )
    )
    running = [j for j in jobs if j.state == "running"]
    candidates = running or jobs
    return candidates[0] if candidates else None


def channel_cards(
    session: Session, company_id: int, now: datetime | None = None, box: SecretBox | None = None
) -> list[ChannelCard]:
    """One card per channel connection of the company (`box` opens the QuickBooks company's name)."""
    now = now or datetime.now(UTC)
    day = datetime.combine(now.date(), datetime.min.time(), UTC)
    month = day.replace(day=1)
    cards: list[ChannelCard] = []
    for conn in channel_connections(session, company_id):
        settings = load_settings(session, conn.id)
        books = session.get(Connection, conn.books_id) if conn.books_id else None
        last_run = session.scalars(
            select(SyncRun).where(SyncRun.connection_id == conn.id).order_by(SyncRun.id.desc()).limit(1)
        ).first()
        missing = settings.missing()
        failures = int(
            session.scalar(
                select(func.count())
                .select_from(StoredOrder)
                .where(StoredOrder.connection_id == conn.id, StoredOrder.state == OrderState.FAILED)
            )
            or 0
        )
        job = active_job(session, conn.id)
        card = ChannelCard(
            connection=conn,
            books=books,
            settings=settings,
            missing=missing,
            last_run=last_run,
            next_run=next_run(
                settings, last_run.started_at if last_run else None, now, ready=books is not None and not missing
            ),
            posted_today=_posted_since(session, conn.id, day),
            posted_month=_posted_since(session, conn.id, month),
            failures=failures,
            job=job,
            books_name=books_label(box, books) if books is not None else "",
        )
        if job is not None:
            card.progress = job_progress(session, job)
        cards.append(card)
    return cards


def job_progress(session: Session, job: SyncJob) -> dict[str, Any]:
    """`{percent, text, finished}` of a sync job, from its state and its run's live counts."""
    if job.state == "queued":
        return {"percent": 0, "text": "Waiting to start…", "finished": False}
    run = session.get(SyncRun, job.run_id) if job.run_id else None
    counts: dict[str, Any] = dict(run.counts or {}) if run else {}
    if job.state in ("done", "failed"):
        if job.state == "failed" or (run is not None and run.state == "failed"):
            why = job.error or (run.error if run else "") or "the sync stopped"
            return {"percent": 100, "text": f"The sync failed: {why}", "finished": True}
        failed = int(counts.get("orders_failed", 0)) + int(counts.get("postings_failed", 0))
        text = f"Done: {counts.get('posted', 0)} documents posted"
        channel = session.get(Connection, job.connection_id)
        books = session.get(Connection, channel.books_id) if channel is not None and channel.books_id else None
        if books is not None and books.kind == "qbd":
            text = f"Done: {counts.get('postings_planned', 0)} documents {QUEUED_FOR_DESKTOP}"
        text += f", {failed} failed" if failed else ""
        return {"percent": 100, "text": text, "finished": True}
    stage = str(counts.get("stage", ""))
    pulled = int(counts.get("pulled", 0))
    planned = int(counts.get("orders_planned", 0))
    posted = int(counts.get("posted", 0))
    if stage == "push":
        planned_docs = int(counts.get("postings_planned", 0)) or planned
        share = min(posted / planned_docs, 1.0) if planned_docs else 0.5
        percent = 50 + 50 * share
        text = f"Posting to QuickBooks: {posted} of {planned_docs} documents" if planned_docs else f"Posted {posted}"
    elif stage == "plan":
        todo = int(counts.get("orders_new", 0)) + int(counts.get("orders_changed", 0))
        share = min(planned / todo, 1.0) if todo else 0.5
        percent = 30 + 20 * share
        text = f"Preparing documents: {planned} orders ready"
    else:
        # The channel does not say how many orders will come: creep towards 30 % as pages arrive.
        percent = 30 * pulled / (pulled + 100) if pulled else 2
        text = f"Reading orders from the channel: {pulled} so far" if pulled else "Starting…"
    return {"percent": round(min(percent, 99), 1), "text": text, "finished": False}


# -- Sync now ---------------------------------------------------------------------------------------------------


def parse_order_numbers(text: str) -> tuple[list[str], str]:
    """Order numbers typed by a person ("#1001, 1002 1003") → (["1001", "1002", "1003"], error or "")."""
    numbers: list[str] = []
    for part in re.split(r"[\s,;]+", text.strip()):
        if not part:
            continue
        number = part.lstrip("#")
        if not _ORDER_NUMBER.match(number):
            return [], f"“{part}” is not an order number: use the numbers as Shopify shows them, e.g. 1001, 1002"
        if number not in numbers:
            numbers.append(number)
    if len(numbers) > 200:
        return [], "at most 200 order numbers at a time: use a date range for more"
    return numbers, ""


def parse_day(text: str) -> tuple[date | None, str]:
    """A date typed in a form ("2025-01-31"), or None when blank; with an error message when unreadable."""
    text = text.strip()
    if not text:
        return None, ""
    try:
        return date.fromisoformat(text), ""
    except ValueError:
        return None, "use a date like 2025-01-31"


# -- Sync Activity: orders --------------------------------------------------------------------------------------


@dataclass(slots=True)
class OrderRow:
    """One order in the Orders tab."""

    order: StoredOrder
    connection: Connection
    documents: str

    @property
    def channel(self) -> str:
        return self.connection.name


@dataclass(slots=True)
class OrdersPage:
    rows: list[OrderRow]
    total: int
    page: int
    pages: int


def documents_summary(postings: list[Posting]) -> str:
    """The QuickBooks documents of an order in words: "Sales Receipt 1001", "Invoice 1001 + Payment"."""
    parts: list[str] = []
    numbers: set[str] = set()
    for posting in sorted(postings, key=lambda p: p.id):
        if posting.state in (PostingState.SUPERSEDED, PostingState.VOIDED):
            continue
        title = kind_title(posting.kind)
        if posting.doc_number and posting.doc_number not in numbers:
            title += f" {posting.doc_number}"
            numbers.add(posting.doc_number)
        parts.append(title)
    return " + ".join(parts)


def clean_search(text: str) -> str:
    """What a person types to find an order ("#1001 ") → the number to look for ("1001")."""
    return text.strip().lstrip("#").strip()


def orders_page(
    session: Session,
    company_id: int,
    *,
    q: str = "",
    state: str = "",
    connection_id: int | None = None,
    page: int = 1,
    failed_only: bool = False,
) -> OrdersPage:
    """The company's orders, newest first, filtered and paginated (`PAGE_SIZE` a page)."""
    conditions: list[Any] = [StoredOrder.company_id == company_id]
    number = clean_search(q)
    if number:
        conditions.append(or_(StoredOrder.number == number, StoredOrder.number.contains(number, autoescape=True)))
    if failed_only:
        conditions.append(StoredOrder.state == OrderState.FAILED)
    elif state in ORDER_STATES:
        conditions.append(StoredOrder.state == state)
    if connection_id:
        conditions.append(StoredOrder.connection_id == connection_id)
    total = int(session.scalar(select(func.count()).select_from(StoredOrder).where(*conditions)) or 0)
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(page, 1), pages)
    ordering: list[Any] = [StoredOrder.channel_created_at.desc().nulls_last(), StoredOrder.id.desc()]
    if number:
        ordering.insert(0, StoredOrder.number != number)  # an exact match on the number first
    rows = [
        (row[0], row[1])
        for row in session.execute(
            select(StoredOrder, Connection)
            .join(Connection, Connection.id == StoredOrder.connection_id)
            .where(*conditions)
            .order_by(*ordering)
            .offset((page - 1) * PAGE_SIZE)
            .limit(PAGE_SIZE)
        )
    ]
    postings: dict[int, list[Posting]] = defaultdict(list)
    if rows:
        for posting in session.scalars(select(Posting).where(Posting.order_id.in_([o.id for o, _ in rows]))):
            postings[posting.order_id].append(posting)
    return OrdersPage(
        rows=[OrderRow(order=o, connection=c, documents=documents_summary(postings[o.id])) for o, c in rows],
        total=total,
        page=page,
        pages=pages,
    )


def company_order(session: Session, company_id: int, order_id: int) -> StoredOrder | None:
    """An order of this company (None for another company's id)."""
    order = session.get(StoredOrder, order_id)
    return order if order is not None and order.company_id == company_id else None


def runs_page(
    session: Session, company_id: int, *, connection_id: int | None = None, limit: int = 100
) -> list[tuple[SyncRun, Connection]]:
    """The company's latest sync runs with their channel connection."""
    query = (
        select(SyncRun, Connection)
        .join(Connection, Connection.id == SyncRun.connection_id)
        .where(SyncRun.company_id == company_id)
        .order_by(SyncRun.id.desc())
        .limit(limit)
    )
    if connection_id:
        query = query.where(SyncRun.connection_id == connection_id)
    return [(row[0], row[1]) for row in session.execute(query)]


# -- Unmatched products -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class UnmatchedProduct:
    """A channel SKU no QuickBooks item matches, and the orders it holds up."""

    connection: Connection
    sku: str
    name: str
    orders: list[StoredOrder] = field(default_factory=list)
    reason: str = ""

    @property
    def order_numbers(self) -> list[str]:
        return [o.number for o in self.orders]

    @property
    def key(self) -> str:
        """Names the product's row on the page (its form's errors and typed value)."""
        return product_key(self.connection.id, self.sku)


def product_key(connection_id: int, sku: str) -> str:
    """The key of an unmatched product: its channel connection and its SKU, ignoring case."""
    return f"{connection_id}:{sku.strip().casefold()}"


def sku_line_index(error_field: str) -> int | None:
    """The line index of an unmatched-product error field ("lines[2].sku" → 2)."""
    found = _SKU_LINE.match(error_field or "")
    return int(found.group(1)) if found else None


def unmatched_products(session: Session, company_id: int) -> list[UnmatchedProduct]:
    """Failed orders held up by an unmatched product, grouped by channel connection and SKU."""
    held = session.execute(
        select(StoredOrder, Connection)
        .join(Connection, Connection.id == StoredOrder.connection_id)
        .where(
            StoredOrder.company_id == company_id,
            StoredOrder.state == OrderState.FAILED,
            StoredOrder.error_field.like("lines[%].sku"),
        )
        .order_by(StoredOrder.id)
    )
    groups: dict[tuple[int, str], UnmatchedProduct] = {}
    for order, conn in ((row[0], row[1]) for row in held):
        index = sku_line_index(order.error_field)
        lines = (order.canonical or {}).get("lines") or []
        if index is None or index >= len(lines):
            continue
        line = lines[index]
        sku = str(line.get("sku") or "").strip()
        name = str(line.get("name") or "").strip()
        if not sku:
            # A line without a SKU cannot be mapped by SKU; the Errors tab explains it instead.
            continue
        key = (conn.id, sku.casefold())
        group = groups.get(key)
        if group is None:
            group = groups[key] = UnmatchedProduct(connection=conn, sku=sku, name=name, reason=order.detail)
        group.orders.append(order)
    return sorted(groups.values(), key=lambda g: (-len(g.orders), g.connection.id, g.sku.casefold()))


def recent_orders(session: Session, company_id: int, limit: int = 200) -> list[tuple[StoredOrder, Connection]]:
    """The company's most recently stored orders (the previewer's picker)."""
    return [
        (row[0], row[1])
        for row in session.execute(
            select(StoredOrder, Connection)
            .join(Connection, Connection.id == StoredOrder.connection_id)
            .where(StoredOrder.company_id == company_id, StoredOrder.canonical.is_not(None))
            .order_by(StoredOrder.id.desc())
            .limit(limit)
        )
    ]
