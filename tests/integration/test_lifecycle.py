"""The whole life of an order, end to end: both sandboxes, a real database, the engine as it runs.

An order is posted, edited, paid later, partly refunded and cancelled in the Shopify sandbox; after every sync
the QuickBooks Online sandbox must show the channel's totals to the cent, and nothing is ever posted twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from ledgerlink.books.base import PushResult, PushStatus
from ledgerlink.domain.settings import RefundMode, RefundSettings, TransactionType, UpdatePolicy
from ledgerlink.sandbox.shopify import generate_orders
from ledgerlink.sandbox.shopify import lifecycle as shopify
from ledgerlink.store.models import OrderState, Posting, PostingState, StoredOrder
from ledgerlink.sync.engine import SyncEngine, load_settings, save_settings

StackFactory = Callable[..., Any]
D = Decimal
ORDER_ID = 7_700_000_000_001
NUMBER = 9001
SALES = ("SalesReceipt", "Invoice", "Estimate", "CreditMemo", "RefundReceipt")


def add_unpaid_order(stack: Any, seed: int = 5) -> dict[str, Any]:
    """A fresh unpaid order #9001 in the shop (a generated one, renumbered), with two units on its first line."""
    template = next(o for o in generate_orders(12, seed=seed) if len(o["line_items"]) >= 2)
    order = shopify.unpaid_order(template)
    order.update(id=ORDER_ID, order_number=NUMBER, name=f"#{NUMBER}")
    stack.shop.add_orders([order])
    return shopify.edit_quantity(stack.shop, ORDER_ID, 0, 2)


def configure(stack: Any, **changes: Any) -> None:
    with stack.app.db.session() as session:
        settings = load_settings(session, stack.channel_id)
        statuses = ["pending", "partially_paid", "paid", "partially_refunded", "refunded", "voided"]
        settings = settings.model_copy(
            update={"orders": settings.orders.model_copy(update={"financial_statuses": statuses}), **changes}
        )
        save_settings(session, stack.channel_id, settings)


def ours(entity: dict[str, Any]) -> bool:
    number = str(entity.get("DocNumber") or entity.get("PaymentRefNum") or "")
    return number == str(NUMBER) or number.startswith(f"{NUMBER}-")


def books(stack: Any) -> dict[str, list[dict[str, Any]]]:
    """Our order's documents in QuickBooks by entity, voided ones included."""
    return {kind: [e for e in stack.qbo.entities(kind) if ours(e)] for kind in (*SALES, "Payment")}


def live_total(docs: list[dict[str, Any]]) -> Decimal:
    return sum((D(str(e["TotalAmt"])) for e in docs if not str(e.get("PrivateNote", "")).startswith("Voided")), D(0))


def channel(stack: Any) -> dict[str, Decimal]:
    order = stack.shop.orders[ORDER_ID]
    refunds = sum(
        (
            D(i["subtotal"]) + D(i["total_tax"])
            for r in order.get("refunds") or []
            for i in r.get("refund_line_items") or []
        ),
        D(0),
    ) + sum(
        (
            -(D(a["amount"]) + D(a["tax_amount"]))
            for r in order.get("refunds") or []
            for a in r.get("order_adjustments") or []
        ),
        D(0),
    )
    return {
        "total": D(order["total_price"]),
        "captured": shopify.captured(stack.shop, ORDER_ID),
        "refunded": refunds,
        "money_back": shopify.refunded_money(order),
    }


def assert_no_number_twice(stack: Any) -> None:
    numbers = Counter(str(e["DocNumber"]) for kind in SALES for e in stack.qbo.entities(kind) if e.get("DocNumber"))
    assert max(numbers.values(), default=1) == 1, numbers


def sync(stack: Any) -> Any:
    report = stack.app.engine().run(stack.channel_id)
    assert report.error == "", report.error
    assert not report.failures, report.failures
    assert_no_number_twice(stack)
    return report


def stored(stack: Any) -> StoredOrder:
    with stack.app.db.session() as session:
        order = session.scalars(select(StoredOrder).where(StoredOrder.channel_order_id == str(ORDER_ID))).one()
        session.expunge(order)
        return order


def postings(stack: Any) -> list[Posting]:
    with stack.app.db.session() as session:
        order = session.scalars(select(StoredOrder).where(StoredOrder.channel_order_id == str(ORDER_ID))).one()
        rows = list(session.scalars(select(Posting).where(Posting.order_id == order.id).order_by(Posting.id)))
        for row in rows:
            session.expunge(row)
        return rows


def test_invoice_edited_paid_refunded_cancelled(stack_factory: StackFactory, db_url: str) -> None:
    stack = stack_factory(db_url, orders=3)
    configure(stack, transaction_type=TransactionType.INVOICE)
    add_unpaid_order(stack)

    # 1. posted: an unpaid invoice, no payment.
    sync(stack)
    docs = books(stack)
    assert len(docs["Invoice"]) == 1
    assert live_total(docs["Invoice"]) == channel(stack)["total"]
    assert docs["Payment"] == []
    assert D(str(docs["Invoice"][0]["Balance"])) == channel(stack)["total"]

    # 2. edited: the same invoice is updated (sparse, with its SyncToken), not posted again.
    shopify.edit_quantity(stack.shop, ORDER_ID, 0, 3)
    report = sync(stack)
    assert report.counts["updated"] == 1
    docs = books(stack)
    assert len(docs["Invoice"]) == 1
    assert docs["Invoice"][0]["SyncToken"] == "1"
    assert live_total(docs["Invoice"]) == channel(stack)["total"]

    # 3. paid in two captures: a partial Payment, then a second one for the rest; never over the balance.
    first = (channel(stack)["total"] / 3).quantize(D("0.01"))
    shopify.capture(stack.shop, ORDER_ID, first)
    sync(stack)
    docs = books(stack)
    assert [D(str(p["TotalAmt"])) for p in docs["Payment"]] == [first]
    shopify.capture(stack.shop, ORDER_ID)
    sync(stack)
    docs = books(stack)
    assert len(docs["Invoice"]) == 1
    assert live_total(docs["Payment"]) == channel(stack)["captured"] == channel(stack)["total"]
    assert D(str(stack.qbo.entity("Invoice", docs["Invoice"][0]["Id"])["Balance"])) == 0

    # 4. one unit of the first line refunded: credit memo R1 for exactly the refund, left as the buyer's credit.
    shopify.refund(stack.shop, ORDER_ID, [(0, 1)])
    sync(stack)
    docs = books(stack)
    assert [m["DocNumber"] for m in docs["CreditMemo"]] == [f"{NUMBER}-R1"]
    assert live_total(docs["CreditMemo"]) == channel(stack)["refunded"] == channel(stack)["money_back"] > 0
    assert live_total(docs["Invoice"]) - live_total(docs["CreditMemo"]) == (
        channel(stack)["total"] - channel(stack)["refunded"]
    )

    # Syncing again changes nothing.
    again = sync(stack)
    assert again.counts["posted"] == again.counts.get("postings_planned", 0) == 0
    assert books(stack) == docs

    # 5. cancelled: the rest is refunded in the channel; the invoice, its payments and the credit memo are voided.
    shopify.cancel(stack.shop, ORDER_ID)
    report = sync(stack)
    docs = books(stack)
    assert report.counts["voided"] == 4  # two payments, the credit memo, the invoice
    assert live_total(docs["Invoice"]) == live_total(docs["Payment"]) == live_total(docs["CreditMemo"]) == 0
    # Voided, not deleted, and nothing posted for the cancellation's own refund.
    assert (len(docs["Invoice"]), len(docs["Payment"]), len(docs["CreditMemo"])) == (1, 2, 1)
    net = channel(stack)["total"] - channel(stack)["refunded"]
    assert net == 0
    assert stored(stack).state == OrderState.POSTED
    states = Counter(p.state for p in postings(stack))
    assert states[PostingState.VOIDED] >= 4  # invoice, two payments, credit memo
    assert states[PostingState.FAILED] == states[PostingState.PENDING] == 0


def test_sales_receipt_refund_receipt_and_void_and_repost(stack_factory: StackFactory, tmp_path: Any) -> None:
    stack = stack_factory(f"sqlite:///{tmp_path / 'repost.db'}", orders=3)
    configure(stack, update_policy=UpdatePolicy.VOID_AND_REPOST)
    add_unpaid_order(stack)
    shopify.capture(stack.shop, ORDER_ID)
    sync(stack)
    docs = books(stack)
    assert [r["DocNumber"] for r in docs["SalesReceipt"]] == [str(NUMBER)]

    shopify.edit_quantity(stack.shop, ORDER_ID, 0, 3)
    sync(stack)
    docs = books(stack)
    numbers = sorted((r["DocNumber"], D(str(r["TotalAmt"]))) for r in docs["SalesReceipt"])
    assert numbers == [(str(NUMBER), D(0)), (f"{NUMBER}-2", channel(stack)["total"])]

    shopify.refund(stack.shop, ORDER_ID, [(1, 1)], shipping=True)
    sync(stack)
    docs = books(stack)
    assert [r["DocNumber"] for r in docs["RefundReceipt"]] == [f"{NUMBER}-2-R1"]
    assert live_total(docs["RefundReceipt"]) == channel(stack)["money_back"] == channel(stack)["refunded"]
    # Nothing else moved: the repost stays as it is.
    assert live_total(docs["SalesReceipt"]) == channel(stack)["total"]


def test_ignore_leaves_posted_documents_but_posts_refunds(stack_factory: StackFactory, tmp_path: Any) -> None:
    stack = stack_factory(f"sqlite:///{tmp_path / 'ignore.db'}", orders=3)
    configure(stack, update_policy=UpdatePolicy.IGNORE)
    add_unpaid_order(stack)
    shopify.capture(stack.shop, ORDER_ID)
    sync(stack)
    before = books(stack)["SalesReceipt"]
    shopify.edit_quantity(stack.shop, ORDER_ID, 0, 1)
    report = sync(stack)
    assert report.counts["posted"] == 0
    assert books(stack)["SalesReceipt"] == before
    assert stored(stack).state == OrderState.POSTED


def test_refund_of_an_order_never_synced_posts_the_original_first(stack_factory: StackFactory, tmp_path: Any) -> None:
    stack = stack_factory(f"sqlite:///{tmp_path / 'first.db'}", orders=3)
    configure(stack, refunds=RefundSettings(mode=RefundMode.REFUND_RECEIPT))
    add_unpaid_order(stack)
    shopify.capture(stack.shop, ORDER_ID)
    shopify.refund(stack.shop, ORDER_ID, [(0, 1)])
    sync(stack)
    rows = postings(stack)
    assert [p.kind for p in rows] == ["SalesReceipt", "RefundReceipt"]
    assert rows[1].depends_on_id == rows[0].id
    docs = books(stack)
    assert live_total(docs["SalesReceipt"]) - live_total(docs["RefundReceipt"]) == (
        channel(stack)["total"] - channel(stack)["refunded"]
    )


def test_partly_posted_revision_is_finished_by_the_next_one(stack_factory: StackFactory, tmp_path: Any) -> None:
    """The invoice went in, its payment was refused; then the order changed: the new revision is the target,
    the invoice is updated (not posted again) and the payment is posted once."""
    stack = stack_factory(f"sqlite:///{tmp_path / 'partial.db'}", orders=3)
    configure(stack, transaction_type=TransactionType.INVOICE)
    add_unpaid_order(stack)
    shopify.capture(stack.shop, ORDER_ID)
    adapters = stack.app.adapters

    class RefusePayments:
        kind = "qbo"

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def push(self, requests: Any) -> Any:
            sent = [r for r in requests if r.document.kind.value != "Payment"]
            results = list(self.inner.push(sent)) if sent else []
            refused = [r for r in requests if r.document.kind.value == "Payment"]
            return results + [PushResult(r.key, PushStatus.FAILED, error="refused", code="6000") for r in refused]

    refusing = SyncEngine(
        stack.app.db, channel_factory=adapters.channel, books_factory=lambda conn: RefusePayments(adapters.books(conn))
    )
    refusing.run(stack.channel_id)
    assert stored(stack).state == OrderState.FAILED
    assert books(stack)["Payment"] == []
    shopify.edit_quantity(stack.shop, ORDER_ID, 0, 3)
    report = sync(stack)
    assert report.counts["updated"] == 1
    docs = books(stack)
    assert len(docs["Invoice"]) == 1
    assert len(docs["Payment"]) == 1
    assert live_total(docs["Invoice"]) == live_total(docs["Payment"]) == channel(stack)["total"]
    assert stored(stack).state == OrderState.POSTED
    assert sync(stack).counts["posted"] == 0


def test_stale_sync_token_is_read_again_and_the_update_applied(stack_factory: StackFactory, tmp_path: Any) -> None:
    stack = stack_factory(f"sqlite:///{tmp_path / 'stale.db'}", orders=3)
    configure(stack, transaction_type=TransactionType.INVOICE)
    add_unpaid_order(stack)
    sync(stack)
    invoice = books(stack)["Invoice"][0]
    # Someone edits the invoice in QuickBooks: our stored SyncToken is now stale.
    stack.qbo.company.write(
        "Invoice",
        {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"], "sparse": True, "CustomerMemo": {"value": "hi"}},
        operation="update",
    )
    shopify.edit_quantity(stack.shop, ORDER_ID, 0, 4)
    report = sync(stack)
    assert report.counts["updated"] == 1
    docs = books(stack)
    assert live_total(docs["Invoice"]) == channel(stack)["total"]
    assert docs["Invoice"][0]["SyncToken"] == "2"

    # Edited by hand again, then cancelled: the void meets a stale token, looks the invoice up, voids it.
    invoice = docs["Invoice"][0]
    stack.qbo.company.write(
        "Invoice",
        {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"], "sparse": True, "CustomerMemo": {"value": "ho"}},
        operation="update",
    )
    shopify.cancel(stack.shop, ORDER_ID)
    report = sync(stack)
    assert report.counts["sync_tokens_refreshed"] == 1
    assert report.counts["voided"] == 1
    assert live_total(books(stack)["Invoice"]) == 0
    assert stored(stack).state == OrderState.POSTED
