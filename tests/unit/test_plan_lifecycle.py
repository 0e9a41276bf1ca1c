"""Golden cases for an order's life after it was posted: updates (each policy), later payments, refunds,
cancellations. An order and what the books hold go in; the exact changes come out, every total checked."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from orderbook import (
    DEPOSIT,
    DISCOUNT,
    GOLDEN_TOTAL,
    RECEIVABLE,
    full_catalog,
    make_order,
    make_settings,
)

from ledgerlink.domain.catalog import ItemRecord
from ledgerlink.domain.documents import DocLine, Document, DocumentKind, LineKind, Link, Ref
from ledgerlink.domain.errors import ConfigError
from ledgerlink.domain.order import Order, Payment, Refund, RefundLine, Totals
from ledgerlink.domain.plan import ChangeKind, Plan, PostedDoc, plan, reconcile, same_document
from ledgerlink.domain.settings import (
    AccountMapping,
    CancelMode,
    ChannelSettings,
    OrderFilter,
    PaymentSettings,
    RefundMode,
    RefundSettings,
    RestockMode,
    TransactionType,
    UpdatePolicy,
)

pytestmark = pytest.mark.unit

D = Decimal
LATER = datetime(2024, 3, 9, 10, 0, tzinfo=UTC)
CUSTOMER = Ref(key="customer:77", name="Jane Doe", id="77")


def settings(**changes: Any) -> ChannelSettings:
    return make_settings(**changes)


def invoice_settings(**changes: Any) -> ChannelSettings:
    """Invoices, and unpaid orders synced too (they become open invoices)."""
    statuses = ["pending", "partially_paid", "paid", "partially_refunded", "refunded"]
    return make_settings(
        transaction_type=TransactionType.INVOICE, orders=OrderFilter(financial_statuses=statuses), **changes
    )


def in_books(result: Plan) -> tuple[PostedDoc, ...]:
    """What the books hold once every document of `result` was posted."""
    return tuple(PostedDoc(doc.role, doc.model_copy(update={"marker": f"ll-x-{doc.role}"})) for doc in result.documents)


def ops(result: Plan) -> list[tuple[str, str, str, Decimal]]:
    return [(c.operation.value, c.role, c.document.doc_number, c.document.total) for c in result.changes]


def unpaid(**changes: Any) -> Order:
    return make_order(financial_status="pending", payments=(), **changes)


def edited() -> Order:
    """The golden order with the mug's quantity raised from 1 to 2 (12.50 and 0.78 tax more)."""
    order = make_order()
    mug = order.lines[1].model_copy(update={"quantity": D(2), "tax_lines": (order.lines[1].tax_lines[0],) * 2})
    total = GOLDEN_TOTAL + D("12.50") + D("0.78")
    totals = order.totals.model_copy(update={"subtotal": D("64.98"), "tax": D("4.31"), "total": total})
    return order.model_copy(
        update={
            "lines": (order.lines[0], mug),
            "totals": totals,
            "updated_at": LATER,
            "payments": (Payment(payment_id="p1", amount=total, gateway="shopify_payments", method="card"),),
        }
    )


def one_tee_back(refund_id: str = "r1", **changes: Any) -> Refund:
    """One of the two discounted T-shirts back: 17.99 (19.99 less half of 4.00) and 1.13 tax."""
    fields: dict[str, Any] = {
        "refund_id": refund_id,
        "created_at": LATER,
        "lines": (RefundLine(line_id="l1", quantity=D(1), subtotal=D("17.99"), tax=D("1.13"), restock=True),),
        "amount": D("19.12"),
        "note": "Customer return",
    }
    fields.update(changes)
    return Refund(**fields)


# -- updates -------------------------------------------------------------------------------------------------


def test_a_change_the_books_do_not_show_changes_nothing() -> None:
    first = reconcile(make_order(), settings(), full_catalog())
    again = reconcile(
        make_order(note="gift wrap", tags=("vip",), updated_at=LATER), settings(), full_catalog(), books=in_books(first)
    )
    assert again.changes == []
    assert again.documents
    assert same_document(again.documents[0], first.documents[0])


def test_update_policy_update_sends_the_changed_receipt_as_an_update() -> None:
    first = reconcile(make_order(), settings(), full_catalog())
    assert ops(first) == [("create", "receipt", "1001", GOLDEN_TOTAL)]
    result = reconcile(edited(), settings(), full_catalog(), books=in_books(first))
    assert ops(result) == [("update", "receipt", "1001", D("71.29"))]
    receipt = result.changes[0].document
    assert receipt.lines_total() == receipt.total == D("71.29")
    mug = next(line for line in receipt.lines if line.description == "Mug")
    assert (mug.quantity, mug.unit_price, mug.amount) == (D(2), D("12.50"), D("25.00"))
    assert receipt.tax_total == D("4.31")


def test_update_policy_update_follows_the_customer_and_addresses() -> None:
    first = reconcile(make_order(), settings(), full_catalog())
    moved = make_order(shipping_address=make_order().shipping_address.model_copy(update={"city": "Chicago"}))
    result = reconcile(moved, settings(), full_catalog(), books=in_books(first))
    assert ops(result) == [("update", "receipt", "1001", GOLDEN_TOTAL)]
    assert result.changes[0].document.shipping_address is not None
    assert result.changes[0].document.shipping_address.city == "Chicago"


def test_update_policy_ignore_leaves_what_is_posted() -> None:
    first = reconcile(make_order(), settings(update_policy=UpdatePolicy.IGNORE), full_catalog())
    result = reconcile(edited(), settings(update_policy=UpdatePolicy.IGNORE), full_catalog(), books=in_books(first))
    assert result.changes == []


def test_update_policy_ignore_still_posts_a_refund() -> None:
    ignore = settings(update_policy=UpdatePolicy.IGNORE)
    first = reconcile(make_order(), ignore, full_catalog())
    refunded = make_order(financial_status="partially_refunded", refunds=(one_tee_back(),), updated_at=LATER)
    result = reconcile(refunded, ignore, full_catalog(), books=in_books(first))
    assert ops(result) == [("create", "refund:r1", "1001-R1", D("19.12"))]


def test_void_and_repost_voids_then_posts_under_a_new_number() -> None:
    policy = settings(update_policy=UpdatePolicy.VOID_AND_REPOST)
    first = reconcile(make_order(), policy, full_catalog())
    result = reconcile(edited(), policy, full_catalog(), books=in_books(first))
    assert ops(result) == [("void", "receipt", "1001", GOLDEN_TOTAL), ("create", "receipt", "1001-2", D("71.29"))]
    assert result.generation == 2
    # Posted as generation 2, the same revision compares equal: nothing more to do.
    again = reconcile(edited(), policy, full_catalog(), books=in_books(result), generation=2)
    assert again.changes == []


def test_void_and_repost_of_an_invoice_voids_its_payment_first() -> None:
    policy = invoice_settings(update_policy=UpdatePolicy.VOID_AND_REPOST)
    first = reconcile(make_order(), policy, full_catalog())
    assert [c.role for c in first.changes] == ["invoice", "payment"]
    result = reconcile(edited(), policy, full_catalog(), books=in_books(first))
    assert ops(result) == [
        ("void", "payment", "1001", GOLDEN_TOTAL),
        ("void", "invoice", "1001", GOLDEN_TOTAL),
        ("create", "invoice", "1001-2", D("71.29")),
        ("create", "payment", "1001-2", D("71.29")),
    ]


def test_an_invoice_edited_down_shrinks_its_payment_before_the_invoice() -> None:
    policy = invoice_settings()
    first = reconcile(edited(), policy, full_catalog())
    assert ops(first)[1] == ("create", "payment", "1001", D("71.29"))
    result = reconcile(make_order(updated_at=LATER), policy, full_catalog(), books=in_books(first))
    assert ops(result) == [("update", "payment", "1001", GOLDEN_TOTAL), ("update", "invoice", "1001", GOLDEN_TOTAL)]
    payment = result.changes[0].document
    assert payment.links == (Link(role="invoice", kind=DocumentKind.INVOICE, amount=GOLDEN_TOTAL),)


# -- payments ------------------------------------------------------------------------------------------------


def test_unpaid_invoice_has_no_payment_until_the_capture() -> None:
    policy = invoice_settings()
    first = reconcile(unpaid(), policy, full_catalog())
    assert ops(first) == [("create", "invoice", "1001", GOLDEN_TOTAL)]
    captured = make_order(
        financial_status="partially_paid",
        payments=(Payment(payment_id="t1", amount=D("20.00"), gateway="shopify_payments", method="card"),),
        updated_at=LATER,
    )
    second = reconcile(captured, policy, full_catalog(), books=in_books(first))
    assert ops(second) == [("create", "payment", "1001", D("20.00"))]
    payment = second.changes[0].document
    assert payment.links == (Link(role="invoice", kind=DocumentKind.INVOICE, amount=D("20.00")),)
    assert payment.txn_date == date(2024, 3, 5)  # the first payment keeps the order's date
    books = (*in_books(first), *in_books(second)[1:])
    paid = make_order(updated_at=datetime(2024, 3, 12, 9, 0, tzinfo=UTC))
    third = reconcile(paid, policy, full_catalog(), books=books)
    assert ops(third) == [("create", "payment-2", "1001", GOLDEN_TOTAL - D("20.00"))]
    assert third.changes[0].document.txn_date == date(2024, 3, 12)  # a later capture, on its day
    # Everything captured is in the books: nothing more, and never over the invoice's balance.
    assert reconcile(paid, policy, full_catalog(), books=(*books, *in_books(third)[2:])).changes == []


def test_paid_at_sale_invoice_gets_its_payment_at_once() -> None:
    result = reconcile(make_order(), invoice_settings(), full_catalog())
    assert ops(result) == [("create", "invoice", "1001", GOLDEN_TOTAL), ("create", "payment", "1001", GOLDEN_TOTAL)]


def test_deposit_account_by_method_then_currency() -> None:
    by_method = PaymentSettings(deposit_by_method={"shopify_payments": "36"}, deposit_by_currency={"USD": "37"})
    receipt = plan(make_order(), settings(payments=by_method), full_catalog()).documents[0]
    assert receipt.deposit_account is not None
    assert receipt.deposit_account.id == "36"
    by_currency = PaymentSettings(deposit_by_currency={"usd": "37"})
    payment = plan(make_order(), invoice_settings(payments=by_currency), full_catalog()).documents[1]
    assert payment.deposit_account is not None
    assert payment.deposit_account.id == "37"
    assert plan(make_order(), settings(), full_catalog()).documents[0].deposit_account == Ref(
        key=f"account:{DEPOSIT}", name="Undeposited Funds", id=DEPOSIT
    )


# -- refunds -------------------------------------------------------------------------------------------------


def test_refund_receipt_of_a_sales_receipt_balances_to_the_refund() -> None:
    refunded = make_order(financial_status="partially_refunded", refunds=(one_tee_back(),))
    result = plan(refunded, settings(accounts=_with_refund_from()), full_catalog())
    receipt, refund = result.documents
    assert receipt.total == GOLDEN_TOTAL
    assert refund == Document(
        role="refund:r1",
        kind=DocumentKind.REFUND_RECEIPT,
        order_number="1001",
        doc_number="1001-R1",
        txn_date=date(2024, 3, 9),
        customer=CUSTOMER,
        lines=(
            DocLine(
                kind=LineKind.ITEM,
                amount=D("19.99"),
                description="Refund: T-shirt blue M",
                item=Ref(key="item:11", name="T-shirt blue M", id="11"),
                quantity=D(1),
                unit_price=D("19.99"),
                taxable=True,
            ),
            DocLine(
                kind=LineKind.DISCOUNT,
                amount=D("2.00"),
                description="Discount on the refunded lines",
                account=Ref(key=f"account:{DISCOUNT}", name="Discounts given", id=DISCOUNT),
            ),
        ),
        tax_total=D("1.13"),
        total=D("19.12"),
        memo="Shopify order #1001, refund 1: Customer return",
        billing_address=receipt.billing_address,
        shipping_address=receipt.shipping_address,
        deposit_account=Ref(key="account:99", name="", id="99"),
        payment_method=Ref(key="payment_method:5", name="card", id="5"),
        links=(Link(role="receipt", kind=DocumentKind.SALES_RECEIPT),),
    )
    assert refund.lines_total() == refund.total == refunded.refunds[0].amount


def test_refund_of_shipping_and_a_second_refund_are_numbered_in_turn() -> None:
    second = Refund(refund_id="r2", created_at=LATER, shipping=D("8.50"), amount=D("8.50"))
    refunded = make_order(financial_status="partially_refunded", refunds=(one_tee_back(), second))
    docs = plan(refunded, settings(), full_catalog()).documents
    assert [(d.doc_number, d.total) for d in docs] == [
        ("1001", GOLDEN_TOTAL),
        ("1001-R1", D("19.12")),
        ("1001-R2", D("8.50")),
    ]
    shipping = docs[2].lines[0]
    assert (shipping.kind, shipping.amount, shipping.item) == (
        LineKind.SHIPPING,
        D("8.50"),
        Ref(key="shipping", name="Shipping", id="SHIPPING_ITEM_ID"),
    )
    assert docs[1].deposit_account is not None
    assert docs[1].deposit_account.id == DEPOSIT


def test_refund_money_differing_from_its_lines_is_balanced_by_an_adjustment() -> None:
    refunded = make_order(financial_status="partially_refunded", refunds=(one_tee_back(amount=D("15.00")),))
    refund = plan(refunded, settings(), full_catalog()).documents[1]
    assert refund.total == refund.lines_total() == D("15.00")
    assert refund.lines[-1].kind is LineKind.ADJUSTMENT
    assert refund.lines[-1].amount == D("-4.12")


def test_credit_memo_of_a_paid_invoice_is_left_as_credit() -> None:
    refunded = make_order(financial_status="partially_refunded", refunds=(one_tee_back(),))
    docs = plan(refunded, invoice_settings(), full_catalog()).documents
    assert [(d.role, d.kind, d.total) for d in docs] == [
        ("invoice", DocumentKind.INVOICE, GOLDEN_TOTAL),
        ("payment", DocumentKind.PAYMENT, GOLDEN_TOTAL),
        ("refund:r1", DocumentKind.CREDIT_MEMO, D("19.12")),
    ]
    memo = docs[2]
    assert memo.ar_account == Ref(key=f"account:{RECEIVABLE}", name="Accounts Receivable (A/R)", id=RECEIVABLE)
    assert memo.deposit_account is None


def test_credit_memo_of_an_unpaid_invoice_is_applied_to_it() -> None:
    refunded = unpaid(refunds=(one_tee_back(amount=D(0)),))
    docs = plan(refunded, invoice_settings(), full_catalog()).documents
    assert [(d.role, d.kind, d.total) for d in docs] == [
        ("invoice", DocumentKind.INVOICE, GOLDEN_TOTAL),
        ("refund:r1", DocumentKind.CREDIT_MEMO, D("19.12")),
        ("apply:r1", DocumentKind.PAYMENT, D(0)),
    ]
    assert docs[2].links == (
        Link(role="invoice", kind=DocumentKind.INVOICE, amount=D("19.12")),
        Link(role="refund:r1", kind=DocumentKind.CREDIT_MEMO, amount=D("19.12")),
    )
    assert docs[2].deposit_account is None


def test_not_restocked_inventory_goes_back_as_the_no_restock_item() -> None:
    catalog = full_catalog().with_records(
        items=[ItemRecord(id="11", name="T-shirt blue M", sku="TEE-BLU-M", type="Inventory")]
    )
    lines = (RefundLine(line_id="l1", quantity=D(1), subtotal=D("17.99"), tax=D("1.13"), restock=False),)
    refunded = make_order(financial_status="partially_refunded", refunds=(one_tee_back(lines=lines),))
    result = plan(refunded, settings(), catalog)
    assert result.documents[1].lines[0].item == Ref(key="name:returns (not restocked)", name="Returns (not restocked)")
    assert "name:returns (not restocked)" in result.needs.items
    always = settings(refunds=RefundSettings(restock=RestockMode.ALWAYS))
    assert plan(refunded, always, catalog).documents[1].lines[0].item == Ref(
        key="item:11", name="T-shirt blue M", id="11"
    )


def test_refund_setting_void_voids_everything_once_fully_refunded() -> None:
    policy = invoice_settings(refunds=RefundSettings(mode=RefundMode.VOID))
    first = reconcile(make_order(), policy, full_catalog())
    partial = make_order(financial_status="partially_refunded", refunds=(one_tee_back(),))
    assert reconcile(partial, policy, full_catalog(), books=in_books(first)).changes == []
    full = make_order(financial_status="refunded", refunds=(one_tee_back(amount=GOLDEN_TOTAL),))
    result = reconcile(full, policy, full_catalog(), books=in_books(first))
    assert ops(result) == [("void", "payment", "1001", GOLDEN_TOTAL), ("void", "invoice", "1001", GOLDEN_TOTAL)]
    assert result.void_all is not None
    never_posted = reconcile(full, policy, full_catalog())
    assert never_posted.skipped == "refunded in full before it was synced (refund setting: void)"


def test_refund_of_an_order_never_synced_posts_the_original_first() -> None:
    refunded = make_order(financial_status="partially_refunded", refunds=(one_tee_back(),))
    result = reconcile(refunded, settings(), full_catalog())
    assert ops(result) == [("create", "receipt", "1001", GOLDEN_TOTAL), ("create", "refund:r1", "1001-R1", D("19.12"))]
    off = settings(refunds=RefundSettings(sync_original_first=False))
    assert reconcile(refunded, off, full_catalog()).skipped is not None
    posted = reconcile(make_order(), off, full_catalog())
    assert [c.role for c in reconcile(refunded, off, full_catalog(), books=in_books(posted)).changes] == ["refund:r1"]


def test_refund_numbers_must_fit_quickbooks() -> None:
    refunded = make_order(number="123456789", financial_status="partially_refunded", refunds=(one_tee_back(),))
    long_prefix = settings(doc_number_prefix="SHOPIFY-US")
    assert plan(make_order(number="123456789"), long_prefix, full_catalog()).documents[0].doc_number == (
        "SHOPIFY-US123456789"
    )
    with pytest.raises(ConfigError, match="SHOPIFY-US123456789-R1"):
        plan(refunded, long_prefix, full_catalog())


# -- cancellations ---------------------------------------------------------------------------------------------


def test_cancelled_after_posting_voids_sale_payments_and_refunds() -> None:
    policy = invoice_settings()
    refunded = make_order(financial_status="partially_refunded", refunds=(one_tee_back(),))
    first = reconcile(refunded, policy, full_catalog())
    cancelled = refunded.model_copy(update={"cancelled_at": LATER, "financial_status": "refunded"})
    result = reconcile(cancelled, policy, full_catalog(), books=in_books(first))
    assert ops(result) == [
        ("void", "payment", "1001", GOLDEN_TOTAL),
        ("void", "refund:r1", "1001-R1", D("19.12")),
        ("void", "invoice", "1001", GOLDEN_TOTAL),
    ]
    assert all(c.operation is ChangeKind.VOID for c in result.changes)


def test_cancelled_after_posting_credited_when_the_settings_say_so() -> None:
    policy = settings(refunds=RefundSettings(on_cancel=CancelMode.REFUND))
    first = reconcile(make_order(), policy, full_catalog())
    everything = Refund(
        refund_id="r9",
        created_at=LATER,
        lines=(
            RefundLine(line_id="l1", quantity=D(2), subtotal=D("35.98"), tax=D("2.25")),
            RefundLine(line_id="l2", quantity=D(1), subtotal=D("12.50"), tax=D("0.78")),
        ),
        shipping=D("8.50"),
        adjustments=D("-2.00"),
        amount=D("58.01"),
    )
    cancelled = make_order(cancelled_at=LATER, financial_status="refunded", refunds=(everything,))
    result = reconcile(cancelled, policy, full_catalog(), books=in_books(first))
    assert ops(result) == [("create", "refund:r9", "1001-R1", D("58.01"))]


def test_cancelled_before_posting_is_never_posted() -> None:
    result = reconcile(make_order(cancelled_at=LATER), settings(), full_catalog())
    assert result.skipped == "cancelled before it was synced"
    assert result.changes == []


def test_totals_helpers() -> None:
    refunded = make_order(refunds=(one_tee_back(), one_tee_back("r2")))
    assert refunded.refunded_total == D("38.24")
    assert not refunded.fully_refunded
    assert make_order(financial_status="refunded").fully_refunded
    assert Order.model_validate(make_order().model_dump()).totals == make_order().totals
    assert isinstance(make_order().totals, Totals)


def _with_refund_from() -> AccountMapping:
    return make_settings().accounts.model_copy(update={"refund_from": "99"})
