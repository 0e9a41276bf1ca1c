"""A Desktop order's life through the Web Connector: edited → modified once, paid, edited again over a stale
EditSequence, cancelled → voided once; syncing and running the Web Connector again change nothing.

The same stack as `test_qbwc.py` (the web app on a real port, the zeep Web Connector, the company-file
stand-in); the order is changed in the Shopify sandbox the way a merchant changes it.
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

from ledgerlink.domain.settings import TransactionType
from ledgerlink.sandbox.qbd.company import Txn
from ledgerlink.sandbox.shopify import generate_orders
from ledgerlink.sandbox.shopify import lifecycle as shopify
from ledgerlink.store.models import Connection, OrderState, Posting, PostingState, QbwcSession, StoredOrder
from ledgerlink.sync.engine import load_settings, save_settings

ORDER_ID = 7_700_000_000_001
NUMBER = 9001
D = Decimal


@pytest.fixture
def desk_factory(tmp_path: Path) -> Iterator[Callable[..., Desk]]:
    made: list[Desk] = []

    def build(**kwargs: Any) -> Desk:
        desk = make_desk(sqlite_url(tmp_path), tmp_path, orders=1, **kwargs)
        made.append(desk)
        with desk.app.db.session() as session:
            settings = load_settings(session, desk.channel_id)
            statuses = ["pending", "partially_paid", "paid", "partially_refunded", "refunded", "voided"]
            orders = settings.orders.model_copy(update={"financial_statuses": statuses})
            save_settings(session, desk.channel_id, settings.model_copy(update={"orders": orders}))
        return desk

    yield build
    for desk in made:
        for wc in desk.connectors:
            wc.close()
        desk.web.stop()
        desk.shop_server.stop()
        desk.app.db.dispose()


def add_order(desk: Desk, *, paid: bool) -> None:
    """Order #9001: a generated order with two lines, renumbered; unpaid, or paid in full."""
    template = next(o for o in generate_orders(12, seed=5) if len(o["line_items"]) >= 2)
    order = shopify.unpaid_order(template)
    order.update(id=ORDER_ID, order_number=NUMBER, name=f"#{NUMBER}")
    desk.shop.add_orders([order])
    shopify.edit_quantity(desk.shop, ORDER_ID, 0, 2)
    if paid:
        shopify.capture(desk.shop, ORDER_ID)


def cycle(desk: Desk) -> Counter[str]:
    """Sync, then run the Web Connector until it has nothing to do; the sessions' counts."""
    report = desk.sync()
    assert not report.failures, report.failures
    before = _session_ids(desk)
    desk.drain()
    counts: Counter[str] = Counter()
    with desk.app.db.session() as session:
        for sess in session.scalars(select(QbwcSession)):
            if sess.ticket not in before:
                counts.update(sess.counts or {})
    return counts


def _session_ids(desk: Desk) -> set[str]:
    with desk.app.db.session() as session:
        return set(session.scalars(select(QbwcSession.ticket)))


def ours(desk: Desk, kind: str) -> list[Txn]:
    """Our order's transactions of a kind in the company file (voided ones included, deleted ones not)."""
    return [t for t in desk.qb.transactions(kind) if t.ref_number == str(NUMBER) or f"#{NUMBER}" in t.memo]


def order_state(desk: Desk) -> str:
    with desk.app.db.session() as session:
        return str(session.scalars(select(StoredOrder.state).where(StoredOrder.number == str(NUMBER))).one())


def order_postings(desk: Desk) -> list[Posting]:
    with desk.app.db.session() as session:
        order_id = session.scalars(select(StoredOrder.id).where(StoredOrder.number == str(NUMBER))).one()
        rows = list(session.scalars(select(Posting).where(Posting.order_id == order_id).order_by(Posting.id)))
        for row in rows:
            session.expunge(row)
        return rows


def channel_total(desk: Desk) -> Decimal:
    return D(desk.shop.orders[ORDER_ID]["total_price"])


def test_invoice_edited_paid_edited_over_a_stale_edit_sequence_then_cancelled(
    desk_factory: Callable[..., Desk],
) -> None:
    desk = desk_factory(transaction_type=TransactionType.INVOICE)
    add_order(desk, paid=False)

    # 1. posted: one unpaid invoice.
    cycle(desk)
    [invoice] = ours(desk, "Invoice")
    assert invoice.total == channel_total(desk)
    assert ours(desk, "ReceivePayment") == []

    # 2. edited: the same invoice is modified once (InvoiceMod on its TxnID), nothing is added.
    adds = desk.qb.stats["InvoiceAdd"]
    shopify.edit_quantity(desk.shop, ORDER_ID, 0, 3)
    counts = cycle(desk)
    assert counts["updated"] == 1
    assert desk.qb.stats["InvoiceMod"] == 1
    assert desk.qb.stats["InvoiceAdd"] == adds
    assert ours(desk, "Invoice") == [invoice]
    assert invoice.total == channel_total(desk)
    assert order_state(desk) == OrderState.POSTED
    states = Counter((p.operation, p.state) for p in order_postings(desk))
    assert states == {("create", PostingState.SUPERSEDED): 1, ("update", PostingState.POSTED): 1}

    # 3. paid: a payment taken later applies to the invoice posted before the edit.
    shopify.capture(desk.shop, ORDER_ID)
    cycle(desk)
    [payment] = ours(desk, "ReceivePayment")
    assert payment.applied_to == [(invoice, channel_total(desk))]
    assert invoice.balance == 0

    # 4. edited again: applying the payment gave the invoice a new EditSequence, so the first InvoiceMod is
    #    refused as stale (3200); the invoice is read again by TxnID and the Mod goes out once more.
    shopify.edit_quantity(desk.shop, ORDER_ID, 0, 4)
    counts = cycle(desk)
    assert counts["stale_edit_sequence"] == 1
    assert counts["edit_sequences_refreshed"] == 1
    assert counts["updated"] == 1
    assert desk.qb.stats["InvoiceMod"] == 3
    assert invoice.total == channel_total(desk)
    # (The order still says "paid", so the difference is paid by a second payment.)
    payments = ours(desk, "ReceivePayment")
    assert payments[0] is payment
    assert invoice.applied == sum((p.total for p in payments), D(0))
    assert order_state(desk) == OrderState.POSTED

    # 5. cancelled: the payments are deleted (qbXML cannot void one), then the invoice voided; each once.
    shopify.cancel(desk.shop, ORDER_ID)
    counts = cycle(desk)
    assert (counts["deleted"], counts["voided"]) == (len(payments), 1)
    assert (desk.qb.stats["TxnDel"], desk.qb.stats["TxnVoid"]) == (len(payments), 1)
    assert ours(desk, "ReceivePayment") == []
    assert {p.txn_id for p in payments} == set(desk.qb.deleted)
    assert invoice.applied == 0
    assert ours(desk, "Invoice") == [invoice]
    assert invoice.voided
    assert invoice.total == 0
    assert invoice.memo.startswith("VOID: ")
    assert order_state(desk) == OrderState.POSTED
    live = [p for p in order_postings(desk) if p.state == PostingState.POSTED and p.operation != "void"]
    assert live == []

    # 6. again: nothing planned, the Web Connector has nothing to do, the company file is unchanged.
    stats = Counter(desk.qb.stats)
    again = desk.sync()
    assert again.counts.get("postings_planned", 0) == 0
    assert desk.connector().run().status == "none"
    assert {k: v for k, v in desk.qb.stats.items() if k not in ("message_sets",)} == {
        k: v for k, v in stats.items() if k not in ("message_sets",)
    }


@pytest.mark.parametrize("remove_with", ["void", "delete"])
def test_cancelled_sales_order_invoice_and_payment_leave_quickbooks_once(
    desk_factory: Callable[..., Desk], remove_with: str
) -> None:
    desk = desk_factory(transaction_type=TransactionType.SALES_ORDER_INVOICE_PAYMENT)
    with desk.app.db.session() as session:
        books = session.get(Connection, desk.books_id)
        assert books is not None
        books.config = {**books.config, "remove_with": remove_with}
    add_order(desk, paid=True)
    cycle(desk)
    [order] = ours(desk, "SalesOrder")
    [invoice] = ours(desk, "Invoice")
    [payment] = ours(desk, "ReceivePayment")
    assert invoice.linked == [order.txn_id]

    shopify.cancel(desk.shop, ORDER_ID)
    counts = cycle(desk)
    # Sales orders and payments can only be deleted through qbXML; the invoice is voided unless told otherwise.
    gone = {payment.txn_id, order.txn_id} | ({invoice.txn_id} if remove_with == "delete" else set())
    assert set(desk.qb.deleted) == gone
    assert counts["deleted"] == len(gone)
    assert counts["voided"] == 3 - len(gone)
    if remove_with == "void":
        assert ours(desk, "Invoice") == [invoice]
        assert invoice.voided
        assert invoice.total == 0
    else:
        assert ours(desk, "Invoice") == []
    assert order_state(desk) == OrderState.POSTED

    before = len(desk.qb.transactions()), len(desk.qb.deleted)
    assert desk.sync().counts.get("postings_planned", 0) == 0
    assert desk.connector().run().status == "none"
    assert (len(desk.qb.transactions()), len(desk.qb.deleted)) == before
