"""`make bench`: figures, never assertions.

Now: `plan()` throughput on one core, and a backfill into the QuickBooks Online sandbox with Intuit's
documented limits enforced (time-scaled so it runs in seconds; reported in real-limit terms). The scale-out
benchmark (naive client, many companies, webhook lag) comes with the Celery work.
"""

from __future__ import annotations

import json
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ledgerlink.bootstrap import bootstrap
from ledgerlink.config import Settings
from ledgerlink.domain.catalog import Account, Catalog, CompanyFacts
from ledgerlink.domain.plan import plan
from ledgerlink.domain.settings import AccountMapping, ChannelSettings
from ledgerlink.sandbox.demo import setup_demo_company
from ledgerlink.sandbox.qbo import QboLimits, QboSandbox
from ledgerlink.sandbox.server import serve
from ledgerlink.sandbox.shopify import ShopifySandbox, generate_orders

TIME_SCALE = 30.0
BACKFILL_ORDERS = 3000
PLAN_ORDERS = 5000


def bench_plan() -> dict[str, float]:
    """Orders planned per second on one core (no I/O; master data already matched)."""
    from ledgerlink.channels.shopify import parse_order

    orders = [parse_order(raw) for raw in generate_orders(PLAN_ORDERS, seed=3)]
    accounts = {a: Account(id=a, name=a, type="Income") for a in ("INC", "DISC", "DEP", "AR")}
    settings = ChannelSettings(
        accounts=AccountMapping(item_income="INC", item_discount="DISC", deposit="DEP", accounts_receivable="AR"),
        orders={"financial_statuses": []},
    )
    catalog = Catalog(company=CompanyFacts(), accounts=accounts)
    started = time.perf_counter()
    planned = 0
    for order in orders:
        try:
            plan(order, settings, catalog)
            planned += 1
        except Exception:  # noqa: S112 - a benchmark counts what plans; errors are not its business
            continue
    elapsed = time.perf_counter() - started
    return {"orders": planned, "seconds": round(elapsed, 3), "orders_per_second": round(planned / elapsed, 1)}


def bench_backfill(orders: int = BACKFILL_ORDERS) -> dict[str, Any]:
    """A backfill of `orders` into one company under Intuit's limits (time-scaled)."""
    limits = QboLimits(time_scale=TIME_SCALE)
    qbo = QboSandbox(limits=limits)
    shop = ShopifySandbox(time_scale=TIME_SCALE * 10)
    shop.add_orders(generate_orders(orders, seed=5))
    with tempfile.TemporaryDirectory() as tmp, serve(qbo.app) as qbo_server, serve(shop.app) as shop_server:
        settings = Settings(data_dir=Path(tmp), database_url=f"sqlite:///{tmp}/bench.db")
        # The client paces itself in the same scaled time as the sandbox enforces.
        app = bootstrap(settings, throttle_wait=60.0 / TIME_SCALE, requests_per_minute=500, batches_per_minute=40)
        channel_id = setup_demo_company(app, qbo, qbo_server.base_url, shop, shop_server.base_url)
        _scale_pacing(app, TIME_SCALE)
        started = time.perf_counter()
        report = app.engine().run(channel_id)
        wall = time.perf_counter() - started
        app.db.dispose()
    posted_orders = report.counts.get("orders_planned", 0)
    real_minutes = wall * TIME_SCALE / 60.0
    stats = qbo.stats
    # Ceiling: 40 batch requests a minute of 30 operations; each order here is one document.
    ceiling = 40 * 30
    rate = posted_orders / real_minutes if real_minutes else 0.0
    return {
        "orders": orders,
        "orders_posted": posted_orders,
        "wall_seconds": round(wall, 2),
        "time_scale": TIME_SCALE,
        "real_minutes": round(real_minutes, 2),
        "orders_per_minute": round(rate, 1),
        "ceiling_orders_per_minute": ceiling,
        "ratio_to_ceiling": round(rate / ceiling, 3),
        "requests_per_order": round(stats.requests / max(posted_orders, 1), 3),
        "batches": stats.batches,
        "throttled_429": stats.throttled,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "error": report.error,
    }


def _scale_pacing(app: Any, scale: float) -> None:
    """Make the books adapter's pacer count in the sandbox's scaled minute."""
    original = app.adapters.books

    def books(conn: Any) -> Any:
        from ledgerlink.books.qbo import WindowPacer

        adapter = original(conn)
        config = adapter.config
        adapter.client.pacer = WindowPacer(
            requests_per_minute=config.requests_per_minute,
            requests_per_second=config.requests_per_second,
            batches_per_minute=config.batches_per_minute,
            minute=60.0 / scale,
        )
        return adapter

    app.adapters.books = books


def run_bench(console: Console, out: Path = Path("build/bench.json")) -> None:
    """Run the benchmarks, print a table and write build/bench.json."""
    console.print("plan(): planning generated orders on one core …")
    planned = bench_plan()
    console.print(f"backfill: {BACKFILL_ORDERS} orders into one company, limits time-scaled ×{TIME_SCALE:g} …")
    backfill = bench_backfill()
    table = Table(title="ledgerlink benchmark (figures in real-limit terms)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("plan(): orders per second, one core", f"{planned['orders_per_second']:,}")
    for key in (
        "orders_posted",
        "orders_per_minute",
        "ceiling_orders_per_minute",
        "ratio_to_ceiling",
        "requests_per_order",
        "batches",
        "throttled_429",
        "peak_rss_mb",
        "wall_seconds",
        "real_minutes",
    ):
        table.add_row(f"backfill: {key.replace('_', ' ')}", str(backfill[key]))
    console.print(table)
    if backfill["error"]:
        console.print(f"[red]backfill stopped: {backfill['error']}[/red]")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"plan": planned, "backfill": backfill}, indent=2) + "\n")
    console.print(f"written to {out}")
