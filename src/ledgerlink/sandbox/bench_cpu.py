"""CPU: `plan()` on one core, and the engine's pull (parse + store) and plan stages over many stored orders.

The pass runs the engine's own stages against stubs: a channel that yields generated orders page by page
(made as they are asked for, so the generator holds one page at a time) and a `Books` that answers every
catalog lookup at once (nothing to create). Nothing is pushed. Memory is sampled through the whole pass.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from ledgerlink.books.base import Books, PushRequest, PushResult, PushStatus, RemoteDoc
from ledgerlink.bootstrap import bootstrap
from ledgerlink.channels.base import Channel, ChannelPage, Cursor, Window
from ledgerlink.channels.shopify import parse_order
from ledgerlink.config import Settings
from ledgerlink.domain.catalog import (
    Account,
    Catalog,
    CatalogQuery,
    CompanyFacts,
    CustomerRecord,
    ItemRecord,
    MasterData,
)
from ledgerlink.domain.order import Order
from ledgerlink.domain.plan import plan
from ledgerlink.domain.settings import AccountMapping, ChannelSettings
from ledgerlink.sandbox.bench_common import RssSampler
from ledgerlink.sandbox.shopify import generate_orders
from ledgerlink.store.models import Connection
from ledgerlink.sync.connections import add_connection, create_company
from ledgerlink.sync.engine import RunOptions, RunReport, save_settings

PAGE = 250
ACCOUNTS = {a: Account(id=a, name=a, type="Income") for a in ("INC", "DISC", "DEP", "AR")}
MAPPING = AccountMapping(item_income="INC", item_discount="DISC", deposit="DEP", accounts_receivable="AR")


def bench_plan(orders: int) -> dict[str, float]:
    """Orders planned per second on one core (no I/O; master data already matched)."""
    parsed = [parse_order(raw) for raw in generate_orders(orders, seed=3)]
    settings = ChannelSettings(accounts=MAPPING, orders={"financial_statuses": []})
    catalog = Catalog(company=CompanyFacts(), accounts=ACCOUNTS)
    started = time.perf_counter()
    planned = 0
    for order in parsed:
        try:
            plan(order, settings, catalog)
            planned += 1
        except Exception:  # noqa: S112 - a benchmark counts what plans; errors are not its business
            continue
    elapsed = time.perf_counter() - started
    return {"orders": planned, "seconds": round(elapsed, 3), "orders_per_second": round(planned / elapsed, 1)}


class GeneratedChannel:
    """`Channel` yielding `count` generated orders in pages, each page generated when it is asked for."""

    kind: ClassVar[str] = "shopify"
    Config: ClassVar[type[BaseModel]] = BaseModel

    def __init__(self, count: int) -> None:
        self.count = count

    def pull(self, cursor: Cursor | None, window: Window) -> Iterator[ChannelPage]:
        """Pages of fresh orders with ids and numbers unique across pages."""
        for first in range(0, self.count, PAGE):
            size = min(PAGE, self.count - first)
            page = generate_orders(size, seed=first)
            for offset, raw in enumerate(page):
                index = first + offset
                raw["id"] = 7_000_000_000 + index
                raw["order_number"] = 100_001 + index
                raw["name"] = f"#{100_001 + index}"
            yield ChannelPage(orders=page, next_cursor=None)

    def parse(self, raw: Mapping[str, Any]) -> Order:
        """As the Shopify channel."""
        return parse_order(raw)

    def close(self) -> None:
        """Nothing to close."""


class CatalogOnlyBooks:
    """`Books` that finds every customer and item asked for, creates nothing and is never pushed to."""

    kind: ClassVar[str] = "qbo"

    def catalog(self, wanted: CatalogQuery, base: Catalog | None = None) -> Catalog:
        """Every wanted key resolves to a record."""
        start = base or Catalog(company=CompanyFacts(books="qbo"), accounts=ACCOUNTS)
        items = [ItemRecord(id=f"i-{s}", name=s, sku=s) for s in wanted.skus]
        items += [ItemRecord(id=f"n-{n}", name=n) for n in wanted.item_names]
        customers = [CustomerRecord(id=f"e-{e}", display_name=e, email=e) for e in wanted.emails]
        customers += [CustomerRecord(id=f"c-{n}", display_name=n) for n in wanted.customer_names]
        return start.with_records(items=items, customers=customers)

    def ensure(self, needs: MasterData, catalog: Catalog) -> tuple[Catalog, dict[str, str]]:
        """Nothing is missing."""
        return catalog, {}

    def push(self, requests: Sequence[PushRequest]) -> list[PushResult]:
        """Not used by this benchmark."""
        return [PushResult(r.key, PushStatus.RETRY, error="not pushed in the CPU benchmark") for r in requests]

    def find(self, request: PushRequest) -> RemoteDoc | None:
        """Not used by this benchmark."""
        return None

    def close(self) -> None:
        """Nothing to close."""


def bench_pass(orders: int) -> dict[str, Any]:
    """The engine's pull (parse + store) and plan stages over `orders` orders in SQLite, memory sampled."""
    channel: Channel = GeneratedChannel(orders)
    books: Books = CatalogOnlyBooks()
    with tempfile.TemporaryDirectory() as tmp:
        app = bootstrap(Settings(data_dir=Path(tmp), database_url=f"sqlite:///{tmp}/cpu.db"))
        with app.db.session() as session:
            company = create_company(session, "CPU Merchant")
            books_conn = add_connection(
                session, app.box, company, name="books", kind="qbo", role="books", config={}, secrets={}
            )
            conn = add_connection(
                session,
                app.box,
                company,
                name="shopify",
                kind="shopify",
                role="channel",
                config={},
                secrets={},
                books_id=books_conn.id,
            )
            save_settings(session, conn.id, ChannelSettings(accounts=MAPPING))
            conn_id = conn.id
        engine = app.engine()
        report = RunReport()
        with app.db.session() as session:
            stored_conn = session.get(Connection, conn_id)
        if stored_conn is None:
            raise RuntimeError("the benchmark's connection is gone")
        settings = ChannelSettings(accounts=MAPPING)
        with RssSampler(every=0.25) as rss:
            started = time.perf_counter()
            engine._pull(stored_conn, channel, RunOptions(), report)
            pulled = time.perf_counter() - started
            engine._plan(stored_conn, books, settings, RunOptions(), report)
            planned = time.perf_counter() - started - pulled
        app.db.dispose()
    return {
        "orders": orders,
        "pull_seconds": round(pulled, 2),
        "pull_orders_per_second": round(orders / pulled, 1) if pulled else 0.0,
        "plan_seconds": round(planned, 2),
        "plan_orders_per_second": round(orders / planned, 1) if planned else 0.0,
        "orders_planned": report.counts.get("orders_planned", 0),
        "orders_skipped": report.counts.get("orders_skipped", 0),
        "orders_failed": report.counts.get("orders_failed", 0),
        "memory": rss.summary(),
    }
