"""ShipStation order JSON → `Order`: ShipStation's documented body, generated orders, tax and discounts, bad input."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ledgerlink.channels.base import channel_parser
from ledgerlink.channels.shipstation import ShipStationConfig, parse_order
from ledgerlink.domain.errors import MappingError
from ledgerlink.domain.money import total
from ledgerlink.domain.order import Discount, Order
from ledgerlink.sandbox.shipstation import ShipStationSandbox, generate_orders, order_total

pytestmark = pytest.mark.unit

D = Decimal


def fixture(name: str) -> Any:
    shared = Path(__file__).resolve().parents[2].parent / "shared"
    return json.loads((shared / "reference" / "fixtures" / name).read_text(encoding="utf-8"))


def balance(order: Order) -> Decimal:
    """Σ lines − discounts + shipping + tax + fees − order discounts: must equal the channel's total."""
    return total(
        [
            *(line.gross - line.discount_total for line in order.lines),
            *(shipping.net for shipping in order.shipping_lines),
            order.tax_total,
            *(fee.amount for fee in order.fees),
        ]
    ) - total(d.amount for d in order.order_discounts)


def stored(body: dict[str, Any]) -> dict[str, Any]:
    """What ShipStation answers for a createorder body (orderId, orderTotal, dates), via the sandbox in process."""
    sandbox = ShipStationSandbox(now=lambda: datetime(2026, 7, 1, 19, 0, tzinfo=UTC))
    return sandbox.create_order(body)


def item(
    price: str, quantity: int = 1, *, adjustment: bool = False, tax: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "orderItemId": extra.pop("orderItemId", None),
        "sku": extra.pop("sku", "SKU"),
        "name": extra.pop("name", "Thing"),
        "quantity": quantity,
        "unitPrice": D(price),
        "taxAmount": None if tax is None else D(tax),
        "adjustment": adjustment,
        **extra,
    }


def order(items: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """A minimal stored order; orderTotal is ShipStation's sum unless given."""
    raw: dict[str, Any] = {
        "orderId": 42,
        "orderNumber": "A-42",
        "orderDate": "2026-07-01T10:00:00.0000000",
        "modifyDate": "2026-07-01T11:00:00.0000000",
        "orderStatus": "shipped",
        "items": items,
        "taxAmount": D("0"),
        "shippingAmount": D("0"),
        "amountPaid": None,
        **fields,
    }
    if "orderTotal" not in fields:
        raw["orderTotal"] = order_total(raw)
    if raw["amountPaid"] is None:
        raw["amountPaid"] = raw["orderTotal"]
    return raw


@pytest.fixture(scope="module")
def generated() -> list[dict[str, Any]]:
    return generate_orders(400, seed=11)


# -- ShipStation's documented order -------------------------------------------------------------------------


def test_parses_shipstations_documented_order() -> None:
    raw = stored(fixture("shipstation_v1_createorder_request.json"))
    parsed = parse_order(raw)

    assert parsed.channel == "shipstation"
    assert parsed.channel_order_id == str(raw["orderId"])
    assert parsed.number == parsed.label == "TEST-ORDER-API-DOCS"
    # 08:46:27 on 29 June is daylight time in California: UTC−7.
    assert parsed.created_at == datetime(2015, 6, 29, 15, 46, 27, tzinfo=UTC)
    assert parsed.updated_at == datetime(2026, 7, 1, 19, 0, tzinfo=UTC)
    assert parsed.currency == "USD"
    assert parsed.financial_status == "paid"
    assert parsed.fulfillment_status == ""
    assert parsed.cancelled_at is None
    [line] = parsed.lines
    assert (line.sku, line.name, line.quantity, line.unit_price) == ("ABC123", "Test item #1", 2, D("99.99"))
    assert line.product_id == "123456"
    # The item says 2.50 of tax but the order 5.00: the order's tax is spread over the lines instead.
    assert [(t.title, t.amount) for t in line.tax_lines] == [("Sales tax", D("5.00"))]
    assert parsed.order_discounts == (Discount(amount=D("20.55"), code="DISCOUNT CODE", description="10% OFF"),)
    [shipping] = parsed.shipping_lines
    assert (shipping.title, shipping.code, shipping.price, shipping.tax_lines) == (
        "Priority Mail",
        "fedex_2day",
        D("10.00"),
        (),
    )
    assert parsed.totals.subtotal == D("199.98")
    assert parsed.totals.discounts == D("20.55")
    assert parsed.totals.total == D("194.43") == balance(parsed)
    # Paid 218.73 against a total of 194.43: paid, and no more than the total counts as paid.
    assert [p.amount for p in parsed.payments] == [D("194.43")]
    assert parsed.payments[0].method == "Credit Card"
    assert parsed.customer.email == "headhoncho@whitehouse.gov"
    assert parsed.customer.display_name == "The President"
    assert parsed.customer.channel_id == "37701499"
    assert parsed.billing_address.is_empty()
    assert parsed.shipping_address.line1 == "1600 Pennsylvania Ave"
    assert parsed.shipping_address.line2 == "Oval Office"
    assert (parsed.shipping_address.region, parsed.shipping_address.country) == ("DC", "US")
    assert parsed.source == "store 12345"
    assert parsed.note == "Please ship as soon as possible!"


def test_a_createorder_body_is_not_an_order_yet() -> None:
    with pytest.raises(MappingError) as caught:
        parse_order(fixture("shipstation_v1_createorder_request.json"))
    assert (caught.value.order, caught.value.field) == ("TEST-ORDER-API-DOCS", "orderId")


def test_the_registry_knows_the_parser() -> None:
    assert channel_parser("shipstation") is parse_order
    assert ShipStationConfig(api_key="k", api_secret="s").order_statuses == ("shipped",)  # type: ignore[arg-type]
    schema = ShipStationConfig.model_json_schema()["properties"]
    assert schema["api_key"]["secret"] is True
    assert schema["api_secret"]["secret"] is True
    with pytest.raises(ValueError, match="lost"):
        ShipStationConfig(api_key="k", api_secret="s", order_statuses=("lost",))  # type: ignore[arg-type]


# -- generated orders ----------------------------------------------------------------------------------------


def test_every_generated_order_parses_and_balances(generated: list[dict[str, Any]]) -> None:
    parsed = [parse_order(raw) for raw in generated]
    assert all(balance(o) == o.totals.total for o in parsed)
    assert all(o.tax_total == o.totals.tax for o in parsed)
    statuses = {raw["orderStatus"]: o for raw, o in zip(generated, parsed, strict=True)}
    assert statuses["shipped"].fulfillment_status == "fulfilled"
    assert statuses["cancelled"].cancelled_at == statuses["cancelled"].updated_at
    assert {o.financial_status for o in parsed} == {"paid", "pending", "partially_paid"}
    assert sum(bool(o.order_discounts) for o in parsed) > 40
    # Unicode names travel unchanged.
    assert {"Zoë Ångström", "José Müller", "王小明"} <= {o.customer.display_name for o in parsed}


def test_parsing_is_pure_and_stable(generated: list[dict[str, Any]]) -> None:
    raw = copy.deepcopy(generated[0])
    assert parse_order(raw) == parse_order(raw)
    assert raw == generated[0]
    assert parse_order(raw).content_hash() == parse_order(json.loads(json.dumps(raw))).content_hash()


# -- money: tax, discounts, payments -----------------------------------------------------------------------------


def test_the_orders_tax_is_spread_over_the_lines_to_the_cent() -> None:
    parsed = parse_order(order([item("10.00"), item("10.00"), item("0.00"), item("10.00")], taxAmount=D("1.00")))
    assert [line.tax_total for line in parsed.lines] == [D("0.33"), D("0.33"), D("0.00"), D("0.34")]
    assert [line.taxable for line in parsed.lines] == [True, True, False, True]
    assert balance(parsed) == parsed.totals.total == D("31.00")


def test_itemised_tax_is_kept_when_it_adds_up() -> None:
    raw = order([item("10.00", tax="0.50"), item("30.00", tax="0.50")], taxAmount=D("1.00"))
    assert [line.tax_total for line in parse_order(raw).lines] == [D("0.50"), D("0.50")]
    raw = order([item("10.00", tax="0.50"), item("30.00", tax="0.40")], taxAmount=D("1.00"))
    assert [line.tax_total for line in parse_order(raw).lines] == [D("0.25"), D("0.75")]


def test_tax_with_no_product_to_carry_it_goes_on_shipping() -> None:
    parsed = parse_order(order([], shippingAmount=D("0"), taxAmount=D("0.70")))
    [shipping] = parsed.shipping_lines
    assert (shipping.price, shipping.tax_total) == (D("0.00"), D("0.70"))
    assert balance(parsed) == parsed.totals.total == D("0.70")


def test_negative_adjustments_are_order_discounts_and_positive_ones_fees() -> None:
    raw = order(
        [
            item("50.00", 2),
            item("-12.50", adjustment=True, sku="PROMO", name="Spring promotion"),
            item("-1.25", 2, adjustment=True, sku="", name="Coupon"),
            item("3.00", adjustment=True, sku="HANDLING", name="Handling"),
        ],
        shippingAmount=D("4.99"),
        taxAmount=D("7.10"),
    )
    parsed = parse_order(raw)
    assert [line.sku for line in parsed.lines] == ["SKU"]
    assert parsed.order_discounts == (
        Discount(amount=D("12.50"), code="PROMO", description="Spring promotion"),
        Discount(amount=D("2.50"), code="", description="Coupon"),
    )
    assert [(f.name, f.amount) for f in parsed.fees] == [("Handling", D("3.00"))]
    assert parsed.totals.total == D("100.00") - D("15.00") + D("3.00") + D("4.99") + D("7.10") == balance(parsed)


def test_a_total_the_parts_do_not_explain_is_refused_not_booked_as_a_discount() -> None:
    raw = order([item("20.00")], orderTotal=D("18.00"), amountPaid=D("18.00"))
    with pytest.raises(MappingError, match=r"orderTotal 18\.00 .* = 20\.00") as caught:
        parse_order(raw)
    assert (caught.value.order, caught.value.field) == ("A-42", "orderTotal")


def test_a_missing_order_total_is_shipstations_sum() -> None:
    raw = order([item("20.00")], shippingAmount=D("5"), taxAmount=D("1.5"))
    del raw["orderTotal"]
    assert parse_order(raw).totals.total == D("26.50")


@pytest.mark.parametrize(
    ("paid", "status", "payments"),
    [
        ("26.50", "paid", ["26.50"]),
        ("30.00", "paid", ["26.50"]),
        ("0", "pending", []),
        (None, "pending", []),
        ("10.00", "partially_paid", ["10.00"]),
    ],
)
def test_financial_status_comes_from_amount_paid(paid: str | None, status: str, payments: list[str]) -> None:
    raw = order([item("20.00")], shippingAmount=D("5"), taxAmount=D("1.5"), amountPaid=D(paid) if paid else D(0))
    if paid is None:
        raw["amountPaid"] = None
    parsed = parse_order(raw)
    assert parsed.financial_status == status
    assert [p.amount for p in parsed.payments] == [D(p) for p in payments]
    # Unpaid is not discounted: the books still see the whole total.
    assert parsed.totals.total == D("26.50")
    assert parsed.order_discounts == ()


# -- times, store, currency --------------------------------------------------------------------------------------


def test_pacific_times_become_aware_utc_across_dst() -> None:
    winter = parse_order(order([item("1")], orderDate="2026-01-10T09:00:00.0000000"))
    assert winter.created_at == datetime(2026, 1, 10, 17, tzinfo=UTC)
    repeated = parse_order(order([item("1")], modifyDate="2026-11-01T01:30:00.0000000"))
    assert repeated.updated_at == datetime(2026, 11, 1, 8, 30, tzinfo=UTC)
    gap = parse_order(order([item("1")], modifyDate="2026-03-08T02:30:00.0000000"))
    assert gap.updated_at == datetime(2026, 3, 8, 9, 30, tzinfo=UTC)
    cancelled = parse_order(order([item("1")], orderStatus="cancelled", amountPaid=D(0)))
    assert cancelled.cancelled_at == datetime(2026, 7, 1, 18, tzinfo=UTC)


def test_store_and_marketplace_name_the_source() -> None:
    options = {"advancedOptions": {"storeId": 310201, "source": "Amazon"}}
    named = parse_order(order([item("1")], storeName="Amazon US", marketplaceName="Amazon", **options))
    assert named.source == "Amazon US"
    assert "Amazon" in named.tags
    assert parse_order(order([item("1")], **options)).source == "store 310201"
    assert parse_order(order([item("1")], advancedOptions={"source": "Webstore"})).source == "Webstore"


def test_currency_defaults_to_usd_or_comes_from_advanced_options() -> None:
    assert parse_order(order([item("1")])).currency == "USD"
    assert parse_order(order([item("1")], advancedOptions={"currency": "cad"})).currency == "CAD"


# -- bad input -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("orderId", None),
        ("orderId", True),
        ("orderDate", "soon"),
        ("modifyDate", 20260701),
        ("orderStatus", "teleported"),
        ("items", "three mugs"),
        ("items[0]", "a mug"),
        ("items[0].quantity", -1),
        ("items[0].quantity", "two"),
        ("items[0].unitPrice", "free"),
        ("items[0].unitPrice", -5),
        ("items[0].adjustment", "yes"),
        ("items[0].taxAmount", "some"),
        ("items[1].unitPrice", {"amount": 1}),
        ("shippingAmount", -4),
        ("taxAmount", "NaN"),
        ("amountPaid", "lots"),
        ("orderTotal", "1e999999"),
        ("billTo", ["Main Street"]),
        ("shipTo.name", ["Ava"]),
        ("advancedOptions", "Amazon"),
        ("advancedOptions.currency", "dollars"),
        ("customerId", 1.5),
        ("paymentDate", "today"),
    ],
)
def test_a_bad_field_names_the_order_and_the_json_path(path: str, value: object) -> None:
    raw = order(
        [item("20.00"), item("-2.00", adjustment=True)],
        advancedOptions={"storeId": 1},
        billTo={"name": "Ava"},
        shipTo={"name": "Ava"},
        paymentDate="2026-07-01T10:00:00.0000000",
    )
    target: Any = raw
    *parents, last = path.replace("[", ".").replace("]", "").split(".")
    for step in parents:
        target = target[int(step)] if step.isdigit() else target[step]
    target[int(last) if last.isdigit() else last] = value

    with pytest.raises(MappingError) as caught:
        parse_order(raw)

    assert caught.value.field == path
    assert caught.value.order == ("42" if path == "orderNumber" else "A-42")


def test_not_an_object_at_all() -> None:
    with pytest.raises(MappingError, match="expected an order object"):
        parse_order(["not", "an", "order"])  # type: ignore[arg-type]


# -- property: any order ShipStation could hold balances ------------------------------------------------------------

money = st.decimals(min_value=0, max_value=500, places=2, allow_nan=False, allow_infinity=False)


@settings(max_examples=150, deadline=None)
@given(
    prices=st.lists(st.tuples(money, st.integers(min_value=1, max_value=5)), min_size=0, max_size=6),
    discounts=st.lists(st.decimals(min_value=D("0.01"), max_value=50, places=2), max_size=3),
    shipping=money,
    tax=money,
    itemised=st.booleans(),
)
def test_any_consistent_order_balances_to_the_cent(
    prices: list[tuple[Decimal, int]], discounts: list[Decimal], shipping: Decimal, tax: Decimal, itemised: bool
) -> None:
    items = [item(str(price), quantity) for price, quantity in prices]
    if itemised and items:
        # Items that itemise the tax: all on the first one, which must still be kept as given.
        for index, entry in enumerate(items):
            entry["taxAmount"] = tax if index == 0 else D("0")
    # Marketplaces never discount more than the goods.
    assume(sum(discounts, D(0)) <= sum((price * quantity for price, quantity in prices), D(0)))
    items += [item(str(-amount), adjustment=True) for amount in discounts]
    parsed = parse_order(order(items, shippingAmount=shipping, taxAmount=tax))
    assert balance(parsed) == parsed.totals.total
    assert parsed.tax_total == tax
    assert all(t.amount >= 0 for line in parsed.lines for t in line.tax_lines)
    if itemised and parsed.lines:
        assert parsed.lines[0].tax_total == tax
