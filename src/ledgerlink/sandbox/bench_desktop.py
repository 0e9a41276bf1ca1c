"""QuickBooks Desktop through the Web Connector: a backlog of orders, collected in Web Connector sessions.

A company with Shopify → QuickBooks Desktop (as `demo --scenario desktop` sets it up: Sales Orders + Invoices +
Payments, refunds as credit memos) on a temporary SQLite database. The web app serves `/qbwc` on a real port;
the Web Connector is the zeep driver, QuickBooks the company file stand-in. One sync pulls and plans the
backlog; then Web Connector sessions run until the service answers "none".

What it measures is *our* side: the Web Connector gives each call two minutes, and QuickBooks itself (which
runs roughly 5–20 requests a second on a real PC) takes most of that, so the server's time per round trip
(sendRequestXML + receiveResponseXML, as the driver times them over HTTP and SOAP) must stay small. The
stand-in's own time is reported apart (`quickbooks_ms_*`); it is far faster than real QuickBooks.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from ledgerlink.bootstrap import bootstrap
from ledgerlink.config import Settings
from ledgerlink.domain.settings import TransactionType
from ledgerlink.sandbox.bench_common import RssSampler, percentile
from ledgerlink.sandbox.demo_desktop import connect_desktop
from ledgerlink.sandbox.qbd import QbdCompany
from ledgerlink.sandbox.qbd.driver import SessionLog
from ledgerlink.sandbox.server import serve
from ledgerlink.sandbox.shopify import ShopifySandbox, generate_orders
from ledgerlink.store.models import OrderState, Posting, PostingState, StoredOrder
from ledgerlink.web.app import create_app

WEB_CONNECTOR_LIMIT_SECONDS = 120.0


def bench_desktop(orders: int, *, seed: int = 29) -> dict[str, Any]:
    """`orders` Shopify orders into the Desktop stand-in through the Web Connector; figures, never assertions."""
    shop = ShopifySandbox(time_scale=60.0)
    shop.add_orders(generate_orders(orders, seed=seed))
    qb = QbdCompany()
    sampler = RssSampler()
    error = ""
    sync_seconds = 0.0
    drained: list[SessionLog] = []
    with tempfile.TemporaryDirectory(prefix="ledgerlink-bench-desktop-") as tmp:
        app = bootstrap(Settings(data_dir=Path(tmp), database_url=f"sqlite:///{tmp}/desktop.db"))
        try:
            with serve(shop.app) as shop_server, serve(create_app(app)) as web, sampler:
                setup = connect_desktop(
                    app,
                    qb,
                    f"{web.base_url}/qbwc?wsdl",
                    shop.credentials(shop_server.base_url),
                    transaction_type=TransactionType.SALES_ORDER_INVOICE_PAYMENT,
                    company_name="Desktop Bench Merchant",
                )
                try:
                    mark = time.perf_counter()
                    report = app.engine().run(setup.channel_id)
                    sync_seconds = time.perf_counter() - mark
                    error = report.error
                    drained = setup.drain()
                finally:
                    setup.connector.close()
            problems = [e for log in drained for e in log.errors] + [f"{log.lost} lost" for log in drained if log.lost]
            if drained and drained[-1].status != "none":
                problems.append(f"the Web Connector still had work after {len(drained)} sessions")
            if not error and problems:
                error = "; ".join(problems[:3])
            with app.db.session(readonly=True) as session:
                posted_orders = int(
                    session.scalar(select(func.count()).where(StoredOrder.state == OrderState.POSTED)) or 0
                )
                states = Counter(state for (state,) in session.execute(select(Posting.state)))
        finally:
            app.db.dispose()
    work = [log for log in drained if log.round_trips]
    return _figures(orders, posted_orders, states, work, qb, sync_seconds, sampler, error)


def _figures(
    orders: int,
    posted_orders: int,
    states: Counter[str],
    work: list[SessionLog],
    qb: QbdCompany,
    sync_seconds: float,
    sampler: RssSampler,
    error: str,
) -> dict[str, Any]:
    trips = [trip for log in work for trip in log.round_trips]
    server_ms = [trip.server_seconds * 1000 for trip in trips]
    quickbooks_ms = [trip.quickbooks_seconds * 1000 for trip in trips]
    sizes = [trip.requests for trip in trips]
    sessions = len(work)
    longest_trip = max((t.server_seconds + t.quickbooks_seconds for t in trips), default=0.0)
    memory = sampler.summary()
    return {
        "orders": orders,
        "orders_posted": posted_orders,
        "documents_posted": states.get(PostingState.POSTED, 0),
        "documents_failed": states.get(PostingState.FAILED, 0),
        "documents_waiting": states.get(PostingState.PENDING, 0) + states.get(PostingState.SENDING, 0),
        "transactions_in_company_file": len(qb.transactions()),
        "sessions": sessions,
        "orders_per_session": round(posted_orders / sessions, 1) if sessions else 0,
        "message_sets": len(trips),
        "requests": sum(sizes),
        "requests_per_set_mean": round(sum(sizes) / len(sizes), 1) if sizes else 0,
        "requests_per_set_max": max(sizes, default=0),
        "server_ms_per_round_trip_mean": round(sum(server_ms) / len(server_ms), 1) if server_ms else 0,
        "server_ms_per_round_trip_p50": round(percentile(server_ms, 0.5), 1),
        "server_ms_per_round_trip_p95": round(percentile(server_ms, 0.95), 1),
        "server_ms_per_round_trip_max": round(max(server_ms, default=0.0), 1),
        "quickbooks_ms_per_round_trip_mean": round(sum(quickbooks_ms) / len(quickbooks_ms), 1) if quickbooks_ms else 0,
        "longest_round_trip_seconds": round(longest_trip, 2),
        "round_trip_limit_seconds": WEB_CONNECTOR_LIMIT_SECONDS,
        "longest_session_seconds": round(max((log.seconds for log in work), default=0.0), 2),
        "sync_seconds": round(sync_seconds, 2),
        "session_seconds": round(sum(log.seconds for log in work), 2),
        "peak_rss_mb": memory["peak_mb"],
        "memory": memory,
        "error": error,
    }
