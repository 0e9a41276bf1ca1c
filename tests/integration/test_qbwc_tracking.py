"""Fulfilment on QuickBooks Desktop: a Shopify order shipped (through the sandbox's REST fulfillment-orders API)
gets ShipDate, ShipMethodRef and the tracking number on its Desktop sale, once, through the Web Connector, under
every update policy; a re-run writes nothing.

The same stack as `test_qbwc.py` (the web app on a real port, the zeep Web Connector, the company-file
stand-in, the Shopify sandbox over real HTTP).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from test_qbwc import Desk, make_desk, sqlite_url

from ledgerlink.domain.settings import TransactionType, UpdatePolicy
from ledgerlink.sandbox.qbd.company import Txn
from ledgerlink.sandbox.shopify import generate_orders
from ledgerlink.sandbox.shopify import lifecycle as shopify
from ledgerlink.sandbox.shopify.fulfilments import FulfilmentsClient
from ledgerlink.store.models import QbwcSession
from ledgerlink.sync.engine import load_settings, save_settings

pytestmark = pytest.mark.integration

ORDER_ID = 7_700_000_000_005
NUMBER = 9005
UPS = "1Z999AA10123456784"
LONG = "940010000000000000000000000001"  # 30 characters: too long for Desktop's Other (29)
MOD = {TransactionType.SALES_RECEIPT: "SalesReceipt", TransactionType.INVOICE: "Invoice"}


@pytest.fixture
def desk_factory(tmp_path: Path) -> Iterator[Callable[..., Desk]]:
    made: list[Desk] = []

    def build(transaction_type: TransactionType, policy: UpdatePolicy) -> Desk:
        desk = make_desk(sqlite_url(tmp_path), tmp_path, orders=1, transaction_type=transaction_type)
        made.append(desk)
        with desk.app.db.session() as session:
            settings = load_settings(session, desk.channel_id)
            statuses = ["pending", "partially_paid", "paid", "partially_refunded", "refunded", "voided"]
            orders = settings.orders.model_copy(update={"financial_statuses": statuses})
            save_settings(
                session, desk.channel_id, settings.model_copy(update={"orders": orders, "update_policy": policy})
            )
        return desk

    yield build
    for desk in made:
        for wc in desk.connectors:
            wc.close()
        desk.web.stop()
        desk.shop_server.stop()
        desk.app.db.dispose()


def add_order(desk: Desk) -> None:
    """Order #9005: a generated order with two lines, paid in full, not shipped."""
    template = next(o for o in generate_orders(12, seed=5) if len(o["line_items"]) >= 2)
    order = shopify.unpaid_order(template)
    order.update(id=ORDER_ID, order_number=NUMBER, name=f"#{NUMBER}")
    desk.shop.add_orders([order])
    shopify.capture(desk.shop, ORDER_ID)


def fulfil(desk: Desk, tracking: str, company: str, lines: list[tuple[int, int]] | None = None) -> dict[str, Any]:
    """A shipping app ships the order over the sandbox's REST API; returns the fulfillment."""
    client = FulfilmentsClient.for_sandbox(desk.shop, desk.shop_server.base_url)
    try:
        return client.fulfil(ORDER_ID, tracking, company=company, lines=lines)
    finally:
        client.close()


def drain(desk: Desk) -> Counter[str]:
    """Run the Web Connector until it has nothing to do; the new sessions' counts."""
    with desk.app.db.session() as session:
        before = set(session.scalars(select(QbwcSession.ticket)))
    desk.drain()
    counts: Counter[str] = Counter()
    with desk.app.db.session() as session:
        for sess in session.scalars(select(QbwcSession)):
            if sess.ticket not in before:
                counts.update(sess.counts or {})
    return counts


def cycle(desk: Desk) -> Counter[str]:
    report = desk.sync()
    assert not report.failures, report.failures
    return drain(desk)


def ours(desk: Desk, kind: str) -> list[Txn]:
    return [t for t in desk.qb.transactions(kind) if t.ref_number == str(NUMBER) and not t.voided]


def edit_memo_in_quickbooks(desk: Desk, txn: Txn, memo: str) -> None:
    """The bookkeeper changes the sale's memo in QuickBooks: it gets a new EditSequence."""
    obj = txn.kind
    request = (
        f'<{obj}ModRq requestID="1"><{obj}Mod><TxnID>{txn.txn_id}</TxnID><EditSequence>{txn.edit_sequence}'
        f"</EditSequence><Memo>{memo}</Memo></{obj}Mod></{obj}ModRq>"
    )
    answer = desk.qb.process(
        '<?xml version="1.0"?><?qbxml version="13.0"?><QBXML><QBXMLMsgsRq onError="stopOnError">'
        f"{request}</QBXMLMsgsRq></QBXML>"
    )
    assert 'statusCode="0"' in answer, answer


@pytest.mark.parametrize(
    ("transaction_type", "policy"),
    [
        (TransactionType.SALES_RECEIPT, UpdatePolicy.IGNORE),
        (TransactionType.INVOICE, UpdatePolicy.VOID_AND_REPOST),
    ],
)
def test_fulfilled_order_gets_tracking_once_through_the_web_connector(
    desk_factory: Callable[..., Desk], transaction_type: TransactionType, policy: UpdatePolicy
) -> None:
    desk = desk_factory(transaction_type, policy)
    obj = MOD[transaction_type]
    add_order(desk)
    cycle(desk)
    [sale] = ours(desk, obj)
    total, lines = sale.total, [(line.amount, line.quantity) for line in sale.lines]
    assert (sale.ship_date, sale.other) == ("", "")

    # Shipped in Shopify; meanwhile the bookkeeper edits the sale's memo in QuickBooks, after the sync read it
    # and before the Web Connector runs: the first Mod meets a stale EditSequence (3200), is read again and
    # sent again — and leaves the bookkeeper's memo alone (a shipment-only Mod names no memo when none is due).
    shipped = fulfil(desk, UPS, "UPS", lines=[(0, 1)])
    report = desk.sync()
    assert not report.failures, report.failures
    edit_memo_in_quickbooks(desk, sale, "Gift wrap, called the customer")
    counts = drain(desk)
    assert counts["stale_edit_sequence"] == 1
    assert counts["edit_sequences_refreshed"] == 1
    assert counts["updated"] == 1
    assert desk.qb.stats[f"{obj}Mod"] == 3  # the bookkeeper's, ours refused as stale, ours again
    assert ours(desk, obj) == [sale]  # the same sale: nothing voided or posted again, whatever the policy
    assert sale.ship_date == shipped["created_at"][:10]
    assert sale.refs["ShipMethodRef"].name == "UPS"
    assert sale.other == UPS
    assert sale.memo == "Gift wrap, called the customer"
    assert sale.total == total
    assert [(line.amount, line.quantity) for line in sale.lines] == lines

    # A re-run: nothing to write.
    mods, sequence = desk.qb.stats[f"{obj}Mod"], sale.edit_sequence
    counts = cycle(desk)
    assert counts["updated"] == counts["posted"] == 0
    assert desk.qb.stats[f"{obj}Mod"] == mods
    assert sale.edit_sequence == sequence

    # A second parcel with a carrier the company file has no ship method for, and a tracking number too long
    # for Other: the first carrier stays the ship method, the rest goes under the memo; written once.
    fulfil(desk, LONG, "DHL Express")
    counts = cycle(desk)
    assert counts["updated"] == 1
    assert sale.refs["ShipMethodRef"].name == "UPS"
    assert sale.other == f"{UPS} +1"
    assert sale.memo.endswith("Shipped via UPS, DHL Express")
    assert sale.total == total
    assert cycle(desk)["updated"] == 0
    assert desk.qb.stats[f"{obj}Mod"] == mods + 1
    assert ours(desk, obj) == [sale]


def test_order_shipped_before_its_first_sync_is_added_with_its_tracking(
    desk_factory: Callable[..., Desk],
) -> None:
    desk = desk_factory(TransactionType.SALES_ORDER, UpdatePolicy.UPDATE)
    add_order(desk)
    shipped = fulfil(desk, LONG, "DHL Express")
    counts = cycle(desk)
    assert counts["posted"] >= 1
    [sales_order] = ours(desk, "SalesOrder")
    assert sales_order.ship_date == shipped["created_at"][:10]
    assert "ShipMethodRef" not in sales_order.refs  # no "DHL Express" in the company file's Ship Via list
    assert sales_order.other == ""  # 30 characters do not fit in Other: the memo says it
    assert sales_order.memo.endswith(f"Shipped via DHL Express; Tracking {LONG}")
    assert f"#{NUMBER}" in sales_order.memo
    adds = desk.qb.stats["SalesOrderAdd"]

    # Edited in Shopify later: under "update" the whole sales order is modified, and keeps its shipment.
    shopify.edit_quantity(desk.shop, ORDER_ID, 1, 3)
    counts = cycle(desk)
    assert counts["updated"] == 1
    assert sales_order.total == Decimal(desk.shop.orders[ORDER_ID]["total_price"])
    assert sales_order.ship_date == shipped["created_at"][:10]
    assert sales_order.memo.endswith(f"Shipped via DHL Express; Tracking {LONG}")
    assert cycle(desk)["updated"] == 0
    assert desk.qb.stats["SalesOrderAdd"] == adds
    assert ours(desk, "SalesOrder") == [sales_order]
