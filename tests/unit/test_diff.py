"""The field-level diff of two revisions of an order (domain/diff.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from orderbook import ADDRESS, GOLDEN_TOTAL, golden_lines, make_order, tax

from ledgerlink.domain.diff import Change, ChangeKind, diff_orders, quantity_text
from ledgerlink.domain.order import Fulfillment, OrderLine, Refund, RefundLine, Totals

D = Decimal
pytestmark = pytest.mark.unit


def by_field(changes: list[Change]) -> dict[str, Change]:
    found = {c.field: c for c in changes}
    assert len(found) == len(changes), "one change per field"
    return found


def test_same_order_has_no_changes_even_when_only_updated_at_moved() -> None:
    order = make_order()
    later = make_order(updated_at=datetime(2024, 3, 6, tzinfo=UTC))
    assert diff_orders(order, later) == []


def test_quantity_edit_shows_quantity_tax_and_totals() -> None:
    before = make_order()
    first, second = golden_lines()
    edited = first.model_copy(update={"quantity": D("3"), "tax_lines": (tax("3.38"),)})
    after = make_order(
        lines=(edited, second),
        totals=Totals(subtotal=D("72.47"), shipping=D("8.00"), discounts=D("9.00"), tax=D("4.66"), total=D("79.13")),
    )
    changes = by_field(diff_orders(before, after))
    assert set(changes) == {
        "lines[l1].quantity",
        "lines[l1].tax",
        "totals.subtotal",
        "totals.tax",
        "totals.total",
    }
    assert str(changes["lines[l1].quantity"]) == "Quantity of “T-shirt blue M” (TEE-BLU-M): 2 → 3"
    assert str(changes["lines[l1].tax"]) == "Tax on “T-shirt blue M” (TEE-BLU-M): 2.25 → 3.38"
    assert str(changes["totals.total"]) == "Order total: 58.01 → 79.13"


def test_lines_added_removed_and_repriced() -> None:
    first, _second = golden_lines()
    added = OrderLine(line_id="l3", sku="CAP-1", name="Cap", quantity=D("1.5"), unit_price=D("1200"))
    after = make_order(lines=(first.model_copy(update={"unit_price": D("18.00")}), added))
    changes = by_field(diff_orders(make_order(), after))
    assert changes["lines[l2]"].kind is ChangeKind.REMOVED
    assert str(changes["lines[l2]"]) == "Line “Mug” (MUG-01) removed (was 1 × 12.50)"
    assert changes["lines[l3]"].kind is ChangeKind.ADDED
    assert str(changes["lines[l3]"]) == "Line “Cap” (CAP-1) added: 1.5 × 1,200.00"
    assert str(changes["lines[l1].unit_price"]) == "Price of “T-shirt blue M” (TEE-BLU-M): 19.99 → 18.00"


def test_equal_amounts_written_differently_are_not_changes() -> None:
    first, second = golden_lines()
    after = make_order(lines=(first.model_copy(update={"quantity": D("2.000"), "unit_price": D("19.990")}), second))
    assert diff_orders(make_order(), after) == []


def test_status_address_refund_and_fulfilment() -> None:
    refund = Refund(
        refund_id="r1",
        lines=(RefundLine(line_id="l2", quantity=D("1"), subtotal=D("12.50"), tax=D("0.78"), restock=True),),
        amount=D("13.28"),
        note="Customer return",
    )
    moved = ADDRESS.model_copy(update={"line1": "9 Elm St", "city": "Chicago"})
    shipped = Fulfillment(fulfillment_id="f1", status="success", tracking_company="UPS", tracking_numbers=("1Z9",))
    cancelled = datetime(2024, 3, 9, 10, 0, tzinfo=UTC)
    after = make_order(
        financial_status="partially_refunded",
        shipping_address=moved,
        refunds=(refund,),
        fulfillments=(shipped,),
        cancelled_at=cancelled,
    )
    changes = by_field(diff_orders(make_order(), after))
    assert str(changes["financial_status"]) == "Payment status: paid → partially_refunded"
    assert str(changes["shipping_address"]) == (
        "Shipping address: Jane Doe, 1 Main St, Springfield, IL 62701, US → Jane Doe, 9 Elm St, Chicago, IL 62701, US"
    )
    assert "billing_address" not in changes
    assert str(changes["refunds[r1]"]) == "Refund r1 added: 13.28, 1 item, “Customer return”"
    assert str(changes["fulfillments[f1]"]) == "Fulfilment f1 added: success, UPS, tracking 1Z9"
    assert str(changes["cancelled_at"]) == "Cancellation added: 2024-03-09 10:00"
    # A later revision changes the tracking number of the same fulfilment.
    retracked = after.model_copy(update={"fulfillments": (shipped.model_copy(update={"tracking_numbers": ("1Z7",)}),)})
    again = by_field(diff_orders(after, retracked))
    assert list(again) == ["fulfillments[f1].tracking"]
    assert again["fulfillments[f1].tracking"].after == "success, UPS, tracking 1Z7"


def test_payment_and_fee_changes() -> None:
    before = make_order(payments=())
    after = make_order()
    changes = by_field(diff_orders(before, after))
    assert str(changes["payments[p1]"]) == f"Payment p1 added: {GOLDEN_TOTAL} (card)"
    lower_tip = make_order(fees=(make_order().fees[0].model_copy(update={"amount": D("1.00")}),))
    assert [str(c) for c in diff_orders(after, lower_tip)] == ["Fee “Tip”: 3.00 → 1.00"]


def test_quantity_text_has_no_exponent() -> None:
    assert quantity_text(D("100")) == "100"
    assert quantity_text(D("2.50")) == "2.5"
    assert quantity_text(D("0")) == "0"
