"""Backfill into one company under QuickBooks Online's limits (time-scaled), with a profile and the ceiling.

The ceiling is what the limits allow for *this* workload. Intuit allows 40 batch requests a minute of at
most 30 items each (1,200 operations a minute); 500 requests a minute and 10 a second do not bind when
everything is batched. Every operation the workload needs takes one of those 1,200 slots:

    operations = documents + master-data creates + lookups
    lookups    = 6 reads of the company (CompanyInfo, Preferences, Account, TaxCode, PaymentMethod, Class)
                 + one query per distinct buyer e-mail (QBO has no IN on e-mail addresses)
                 + one query per 100 distinct SKUs, item names and customer names (IN lists)
    ceiling    = posted orders / (ceil(operations / 30) / 40) orders a minute

The transaction type is the wizard's default, a SalesReceipt per paid order (no Payment: with invoices each
order is two documents, an Invoice and a Payment that links to it, and the ceiling halves). Orders the default
filter skips (pending, authorized, voided, …) are pulled but need no operation. Documents only, the ceiling
would be 1,200 orders a minute; the master data of a first backfill (a customer per new buyer, the lookups)
brings it down.

The engine prototype (`pipelined=True`) measures two changes to `sync/engine.py` without editing it:
  * pull, plan and push page by page (after each page of 250 orders is stored, plan and push it) instead of
    pulling everything, then planning everything, then pushing everything: the batch budget of the minutes
    spent pulling is otherwise lost, since the window banks at most 40 batches;
  * look up each customer and item key once a pass (the engine asks QBO again for every buyer e-mail, name
    and SKU of each 250-order chunk: a repeat buyer is looked up in every chunk he appears in, and a buyer QBO
    does not know by e-mail, found by name or created, is asked for by e-mail again and again).
"""

from __future__ import annotations

import math
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, cast

from pydantic import BaseModel
from sqlalchemy import event, func, select

from ledgerlink.books.base import Books, PushRequest, PushResult, RemoteDoc
from ledgerlink.books.qbo import WindowPacer
from ledgerlink.bootstrap import App, bootstrap
from ledgerlink.channels.base import Channel, ChannelPage, Cursor, Window
from ledgerlink.config import Settings
from ledgerlink.domain.catalog import Catalog, CatalogQuery, MasterData, fold
from ledgerlink.domain.errors import LedgerlinkError
from ledgerlink.domain.order import Order
from ledgerlink.domain.plan import catalog_query
from ledgerlink.sandbox.bench_common import RssSampler, real_minutes, setup_company
from ledgerlink.sandbox.bench_host import HostSpec, SandboxHost
from ledgerlink.store.models import Connection, OrderState, Posting, PostingState, StoredOrder
from ledgerlink.sync.engine import RunOptions, RunReport, SyncEngine, load_settings

BATCHES_PER_MINUTE = 40
BATCH_ITEMS = 30
BASE_READS = 6
IN_LIST = 100


@dataclass
class Probe:
    """What the QBO adapters of a run did, stamped so it can be split by stage."""

    acquires: list[tuple[float, float, bool]] = field(default_factory=list)  # (start, waited, is_batch)
    http: list[tuple[float, float]] = field(default_factory=list)  # (start, seconds)
    commits: list[float] = field(default_factory=list)

    def window(self, start: float, end: float) -> dict[str, float]:
        """Pacer waits, HTTP time, batches, requests and commits between `start` and `end`."""
        acquires = [a for a in self.acquires if start <= a[0] < end]
        return {
            "pacer_wait_s": round(sum(a[1] for a in acquires), 3),
            "http_s": round(sum(s for t, s in self.http if start <= t < end), 3),
            "requests": len(acquires),
            "batches": sum(1 for a in acquires if a[2]),
            "commits": sum(1 for t in self.commits if start <= t < end),
        }


class ProbedPacer(WindowPacer):
    """`WindowPacer` that records how long each request waited for room."""

    def __init__(self, probe: Probe, **kw: Any) -> None:
        super().__init__(**kw)
        self.probe = probe

    def acquire(self, is_batch: bool) -> None:
        """As `WindowPacer.acquire`, timed."""
        started = time.perf_counter()
        super().acquire(is_batch)
        self.probe.acquires.append((started, time.perf_counter() - started, is_batch))


def instrument(app: App, time_scale: float, probe: Probe) -> None:
    """QBO adapters that pace in the sandbox's scaled minute and report to `probe`; commits counted too."""
    original = app.adapters.books

    def books(conn: Connection) -> Books:
        adapter = original(conn)
        client = getattr(adapter, "client", None)
        if client is None:
            return adapter
        config = client.config
        client.pacer = ProbedPacer(
            probe,
            requests_per_minute=config.requests_per_minute,
            requests_per_second=config.requests_per_second,
            batches_per_minute=config.batches_per_minute,
            minute=60.0 / time_scale,
        )
        send = client.http.request

        def timed(*args: Any, **kw: Any) -> Any:
            started = time.perf_counter()
            try:
                return send(*args, **kw)
            finally:
                probe.http.append((started, time.perf_counter() - started))

        setattr(client.http, "request", timed)  # noqa: B010 - wrapping one instance's method
        return adapter

    app.adapters.books = books  # type: ignore[method-assign]
    event.listen(app.db.engine, "commit", lambda _conn: probe.commits.append(time.perf_counter()))


# -- the prototype's two changes ------------------------------------------------------------------------------


class KnownLookups:
    """`Books` that asks QBO once a pass for each customer and item key: what it found, created or did not find
    is known for the rest of the pass (the catalog it carries holds the found and created ones; the keys asked
    for are remembered, so a buyer QBO does not know by e-mail is not asked for again in every chunk).
    """

    kind: ClassVar[str] = "qbo"

    def __init__(self, inner: Books) -> None:
        self.inner = inner
        self.known: Catalog | None = None
        self.asked: set[tuple[str, str]] = set()
        self.client = getattr(inner, "client", None)  # the engine reads the API counters from it

    def _new(self, kind: str, keys: set[str], found: dict[str, Any]) -> set[str]:
        fresh = {k for k in keys if fold(k) not in found and (kind, fold(k)) not in self.asked}
        self.asked |= {(kind, fold(k)) for k in fresh}
        return fresh

    def catalog(self, wanted: CatalogQuery, base: Catalog | None = None) -> Catalog:
        """Only the keys not asked for yet in this pass are looked up."""
        base = base if base is not None else self.known
        if base is not None:
            wanted = CatalogQuery(
                skus=self._new("sku", wanted.skus, base.items_by_sku),
                item_names=self._new("item", wanted.item_names, base.items_by_name),
                emails=self._new("email", wanted.emails, base.customers_by_email),
                customer_names=self._new("customer", wanted.customer_names, base.customers_by_name),
            )
        self.known = self.inner.catalog(wanted, base)
        return self.known

    def ensure(self, needs: MasterData, catalog: Catalog) -> tuple[Catalog, dict[str, str]]:
        """As the inner adapter; the grown catalog is kept."""
        grown, errors = self.inner.ensure(needs, catalog)
        self.known = grown
        return grown, errors

    def push(self, requests: Any) -> list[PushResult]:
        """As the inner adapter."""
        return self.inner.push(requests)

    def find(self, request: PushRequest) -> RemoteDoc | None:
        """As the inner adapter."""
        return self.inner.find(request)

    def close(self) -> None:
        """As the inner adapter."""
        self.inner.close()


class PagePipeline:
    """`Channel` whose `pull` plans and pushes each page once the engine has stored it (and asks for the next)."""

    kind: ClassVar[str] = "shopify"
    Config: ClassVar[type[BaseModel]] = BaseModel

    def __init__(self, inner: Channel, engine: SyncEngine, conn: Connection, books: Books) -> None:
        self.inner = inner
        self.engine = engine
        self.conn = conn
        self.books = books
        self.report = RunReport()
        with engine.db.session() as session:
            self.settings = load_settings(session, conn.id)
            self.books_conn = session.get(Connection, conn.books_id)

    def pull(self, cursor: Cursor | None, window: Window) -> Iterator[ChannelPage]:
        """The inner pages; between two of them, what is stored is planned and pushed."""
        for page in self.inner.pull(cursor, window):
            yield page
            self._plan_and_push(page)

    def _plan_and_push(self, page: ChannelPage) -> None:
        numbers: list[str] = []
        for raw in page.orders:
            try:
                numbers.append(self.inner.parse(raw).number)
            except LedgerlinkError:
                continue
        # Only this page's orders (the engine's plan stage also takes up every skipped order again, which once
        # a pass is enough). The prototype reaches into the plan stage; the real change lives in `SyncEngine.run`.
        options = RunOptions(order_numbers=tuple(numbers))
        self.engine._plan(self.conn, self.books, self.settings, options, self.report)
        if self.books_conn is not None:
            self.engine.push(self.books_conn, self.books, self.report)

    def parse(self, raw: Any) -> Order:
        """As the inner channel."""
        return self.inner.parse(raw)

    def close(self) -> None:
        """As the inner channel."""
        self.inner.close()


def prototype_engine(app: App) -> tuple[SyncEngine, list[PagePipeline]]:
    """An engine with both prototype changes, built from `app`'s factories (no engine code is changed)."""
    made_books: list[Books] = []
    pipelines: list[PagePipeline] = []

    def books_factory(conn: Connection) -> Books:
        books: Books = KnownLookups(app.adapters.books(conn))
        made_books.append(books)
        return books

    def channel_factory(conn: Connection) -> Channel:
        # The engine makes the channel first, then the books: the pipeline takes the books when it first runs.
        books = _LazyBooks(made_books)
        pipeline = PagePipeline(app.adapters.channel(conn), engine, conn, cast(Books, books))
        pipelines.append(pipeline)
        return cast(Channel, pipeline)

    engine = SyncEngine(app.db, channel_factory=channel_factory, books_factory=books_factory)
    return engine, pipelines


class _LazyBooks:
    """The books adapter the engine makes for the run, once it has made it (channel first, then books)."""

    kind: ClassVar[str] = "qbo"

    def __init__(self, made: list[Books]) -> None:
        self.made = made

    def __getattr__(self, name: str) -> Any:
        return getattr(self.made[-1], name)


# -- the run ----------------------------------------------------------------------------------------------------


def bench_backfill(
    orders: int, time_scale: float, *, pipelined: bool = False, seed: int = 5, latency_ms: float = 0.0
) -> dict[str, Any]:
    """Backfill `orders` generated orders into one company; figures in real-limit terms."""
    spec = HostSpec(
        companies=1,
        orders=orders,
        seed=seed,
        time_scale=time_scale,
        shop_time_scale=time_scale,
        latency_ms=latency_ms,
    )
    probe = Probe()
    with SandboxHost(spec) as host, tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), database_url=f"sqlite:///{tmp}/bench.db")
        app = bootstrap(settings, throttle_wait=60.0 / time_scale, requests_per_minute=500, batches_per_minute=40)
        channel_id = setup_company(app, host.endpoints[0], "Backfill Merchant")
        before = host.stats()
        instrument(app, time_scale, probe)
        engine, pipelines = prototype_engine(app) if pipelined else (app.engine(), [])
        with RssSampler() as rss:
            started = time.perf_counter()
            cpu_started = time.process_time()
            report = engine.run(channel_id)
            wall = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
        for pipeline in pipelines:
            report.counts.update(pipeline.report.counts)
        after = host.stats()
        floor = workload(app, channel_id, report)
        app.db.dispose()
    figures = _figures(orders, time_scale, wall, cpu, report, before, after, floor, probe, started, rss, pipelined)
    figures["qbo_latency_ms"] = latency_ms
    return figures


def workload(app: App, channel_id: int, report: RunReport) -> dict[str, int]:
    """The operations this backfill needs at least: documents, creates and lookups (see the module doc)."""
    wanted = CatalogQuery()
    with app.db.session() as session:
        settings = load_settings(session, channel_id)
        for (canonical,) in session.execute(
            select(StoredOrder.canonical).where(
                StoredOrder.connection_id == channel_id, StoredOrder.state == OrderState.POSTED
            )
        ):
            wanted.merge(catalog_query(Order.model_validate(canonical), settings))
        posted_orders = session.scalar(
            select(func.count())
            .select_from(StoredOrder)
            .where(StoredOrder.connection_id == channel_id, StoredOrder.state == OrderState.POSTED)
        )
        kinds = Counter(
            kind for (kind,) in session.execute(select(Posting.kind).where(Posting.state == PostingState.POSTED))
        )
    creates = report.counts.get("customers_created", 0) + report.counts.get("items_created", 0)
    lookups = (
        BASE_READS
        + len({fold(e) for e in wanted.emails})
        + math.ceil(len(wanted.skus) / IN_LIST)
        + math.ceil(len(wanted.item_names) / IN_LIST)
        + math.ceil(len(wanted.customer_names) / IN_LIST)
    )
    documents = sum(kinds.values())
    return {
        "posted_orders": int(posted_orders or 0),
        "documents": documents,
        "creates": creates,
        "lookups": lookups,
        "distinct_emails": len({fold(e) for e in wanted.emails}),
        **{f"documents_{k}": v for k, v in kinds.items()},
    }


def _figures(
    orders: int,
    time_scale: float,
    wall: float,
    cpu: float,
    report: RunReport,
    before: dict[str, int],
    after: dict[str, int],
    floor: dict[str, int],
    probe: Probe,
    started: float,
    rss: RssSampler,
    pipelined: bool,
) -> dict[str, Any]:
    stats = {k: after.get(k, 0) - before.get(k, 0) for k in after if not k.startswith("max")}
    posted = floor["posted_orders"]
    minutes = real_minutes(wall, time_scale)
    rate = posted / minutes if minutes else 0.0
    operations = floor["documents"] + floor["creates"] + floor["lookups"]
    min_batches = math.ceil(operations / BATCH_ITEMS)
    ceiling = posted / (min_batches / BATCHES_PER_MINUTE) if min_batches else 0.0
    docs_only = BATCHES_PER_MINUTE * BATCH_ITEMS * posted / max(floor["documents"], 1)
    # QuickBooks operations: every batch item, and every request that is not a batch.
    qbo_operations = stats.get("batch_items", 0) + stats.get("requests", 0) - stats.get("batches", 0)
    memory = rss.summary()
    figures: dict[str, Any] = {
        "engine": "prototype: page pipeline + known lookups" if pipelined else "current",
        "transaction_type": "sales_receipt",
        "orders": orders,
        "orders_pulled": report.counts.get("pulled", 0),
        "orders_posted": posted,
        "orders_skipped": report.counts.get("orders_skipped", 0),
        "orders_failed": report.counts.get("orders_failed", 0),
        "time_scale": time_scale,
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "real_minutes": round(minutes, 2),
        "orders_per_minute": round(rate, 1),
        "orders_pulled_per_minute": round(report.counts.get("pulled", 0) / minutes, 1) if minutes else 0.0,
        "ceiling_orders_per_minute": round(ceiling, 1),
        "ratio_to_ceiling": round(rate / ceiling, 3) if ceiling else 0.0,
        "docs_only_ceiling_orders_per_minute": round(docs_only, 1),
        "ratio_to_docs_only_ceiling": round(rate / docs_only, 3) if docs_only else 0.0,
        "ceiling_operations": {**floor, "operations": operations, "min_batches": min_batches},
        "requests_per_order": round(stats.get("requests", 0) / max(posted, 1), 3),
        "operations_per_order": round(qbo_operations / max(posted, 1), 3),
        "batches": stats.get("batches", 0),
        "batch_items": stats.get("batch_items", 0),
        "batch_fill": round(stats.get("batch_items", 0) / max(stats.get("batches", 0), 1), 1),
        "requests": stats.get("requests", 0),
        "throttled_429": stats.get("throttled", 0),
        "peak_rss_mb": memory["peak_mb"],
        "memory": memory,
        "profile": _profile(report, probe, started, wall, time_scale),
        "error": report.error,
    }
    return figures


def _profile(report: RunReport, probe: Probe, started: float, wall: float, time_scale: float) -> dict[str, Any]:
    """Each stage's wall time split into pacer waits, HTTP (the sandbox answering) and the rest (engine CPU and
    database), in real-limit seconds; and database commits per pushed batch."""
    bounds: list[tuple[str, float, float]] = []
    mark = started
    for stage in ("pull", "plan", "push"):
        seconds = report.timings.get(stage, 0.0)
        bounds.append((stage, mark, mark + seconds))
        mark += seconds
    stages: dict[str, Any] = {}
    for stage, start, end in bounds:
        found = probe.window(start, end)
        seconds = end - start
        stages[stage] = {
            "real_seconds": round(seconds * time_scale, 1),
            "pacer_wait_real_seconds": round(found["pacer_wait_s"] * time_scale, 1),
            "http_real_seconds": round(found["http_s"] * time_scale, 1),
            "other_real_seconds": round((seconds - found["pacer_wait_s"] - found["http_s"]) * time_scale, 1),
            "batches": found["batches"],
            "requests": found["requests"],
            "commits": found["commits"],
        }
    total = probe.window(started, started + wall)
    push = stages.get("push", {})
    return {
        "stages": stages,
        "pacer_wait_share": round(total["pacer_wait_s"] / wall, 3) if wall else 0.0,
        "http_share": round(total["http_s"] / wall, 3) if wall else 0.0,
        "commits_per_push_batch": round(push.get("commits", 0) / max(push.get("batches", 0), 1), 1),
    }
