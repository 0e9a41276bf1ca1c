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

The engine overlaps the stages (sync/engine.py): each 1,000 orders pulled are planned at once, and a pusher
thread posts full batches of 30, two in flight, while the channel is still being read; each customer and item key
is looked up once a pass.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select

from ledgerlink.books.base import Books
from ledgerlink.books.qbo import WindowPacer
from ledgerlink.bootstrap import App, bootstrap
from ledgerlink.config import Settings
from ledgerlink.domain.catalog import CatalogQuery, fold
from ledgerlink.domain.order import Order
from ledgerlink.domain.plan import catalog_query
from ledgerlink.sandbox.bench_common import RssSampler, real_minutes, setup_company
from ledgerlink.sandbox.bench_host import HostSpec, SandboxHost
from ledgerlink.store.models import Connection, OrderState, Posting, PostingState, StoredOrder
from ledgerlink.sync.engine import RunReport, load_settings

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
    pacers: dict[str, ProbedPacer] = {}  # one per company, as AdapterFactory keeps them

    def books(conn: Connection) -> Books:
        adapter = original(conn)
        client = getattr(adapter, "client", None)
        if client is None:
            return adapter
        config = client.config
        if config.realm_id not in pacers:
            pacers[config.realm_id] = ProbedPacer(
                probe,
                requests_per_minute=config.requests_per_minute,
                requests_per_second=config.requests_per_second,
                batches_per_minute=config.batches_per_minute,
                minute=60.0 / time_scale,
            )
        client.pacer = pacers[config.realm_id]
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


# -- the run ----------------------------------------------------------------------------------------------------


def bench_backfill(orders: int, time_scale: float, *, seed: int = 5, latency_ms: float = 0.0) -> dict[str, Any]:
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
        engine = app.engine()
        with RssSampler() as rss:
            started = time.perf_counter()
            cpu_started = time.process_time()
            report = engine.run(channel_id)
            wall = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
        after = host.stats()
        floor = workload(app, channel_id, report)
        app.db.dispose()
    figures = _figures(orders, time_scale, wall, cpu, report, before, after, floor, probe, started, rss)
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
    """Each stage's wall time, with the pacer waits and HTTP time of the requests started in it (summed over the
    engine's threads: the pusher posts while the run pulls and plans, so they may exceed the stage's time), in
    real-limit seconds; batches per real minute against the limit of 40; commits per pushed batch."""
    bounds: list[tuple[str, float, float]] = []
    mark = started
    for stage in ("pull", "plan", "push"):
        seconds = report.timings.get(stage, 0.0)
        bounds.append((stage, mark, mark + seconds))
        mark += seconds
    stages: dict[str, Any] = {}
    for stage, start, end in bounds:
        found = probe.window(start, end)
        real = (end - start) * time_scale
        stages[stage] = {
            "real_seconds": round(real, 1),
            "pacer_wait_real_seconds": round(found["pacer_wait_s"] * time_scale, 1),
            "http_real_seconds": round(found["http_s"] * time_scale, 1),
            "batches": found["batches"],
            "batches_per_real_minute": round(found["batches"] / (real / 60.0), 1) if real else 0.0,
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
