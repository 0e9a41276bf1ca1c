"""Shopify order JSON → `Order`: the reference fixture, generated orders (golden and property), bad input."""

from __future__ import annotations

import copy
import functools
import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledgerlink.channels.base import channel_class
from ledgerlink.channels.shopify import ShopifyChannel, ShopifyConfig, parse_order
from ledgerlink.domain.errors import MappingError
from ledgerlink.domain.money import total
from ledgerlink.domain.order import Order
from ledgerlink.sandbox.shopify.generator import generate_orders, generate_transactions

pytestmark = pytest.mark.unit


def shared_dir() -> Path:
    """`shared/` lives beside the repository (`../shared` from the repository root, in CI next to the clone)."""
    repo = Path(__file__).resolve().parents[2]
    return repo.parent / "shared"


def fixture(name: str) -> Any:
    return json.loads((shared_dir() / "reference" / "fixtures" / name).read_text(encoding="utf-8"))


def balance(order: Order) -> Decimal:
    """What the lines, shipping, tax and fees add up to; must equal the channel's total."""
    return total(
        [
            *(line.gross - line.discount_total for line in order.lines),
            *(shipping.net for shipping in order.shipping_lines),
            order.tax_total,
            *(fee.amount for fee in order.fees),
        ]
    ) - total(d.amount for d in order.order_discounts)


def with_transactions(raw: dict[str, Any]) -> dict[str, Any]:
    """What `pull` hands to `parse`: partially paid orders carry their transactions."""
    if raw["financial_status"] == "partially_paid":
        return {**raw, "transactions": generate_transactions(raw)}
    return raw


@pytest.fixture(scope="module")
def generated() -> list[dict[str, Any]]:
    return generate_orders(400, seed=11)


# -- the reference fixture -------------------------------------------------------------------------------


def test_parses_the_reference_fixture() -> None:
    order = parse_order(fixture("shopify_order_rest.json"))

    assert order.channel == "shopify"
    assert order.channel_order_id == "450789469"
    assert order.number == "1001"
    assert order.label == "1001"
    assert order.created_at == datetime(2008, 1, 10, 16, 0, tzinfo=UTC)
    assert order.created_at.utcoffset() == timedelta(hours=-5)
    assert order.updated_at == order.created_at
    assert order.cancelled_at is None
    assert order.currency == "USD"
    assert order.financial_status == "authorized"
    assert order.fulfillment_status == ""
    assert order.taxes_included is False
    assert order.customer.channel_id == "207119551"
    assert order.customer.email == "bob.norman@hostmail.com"
    assert order.customer.display_name == "Bob Norman"
    assert order.customer.phone == "555-625-1199"
    assert order.billing_address.line1 == "Chestnut Street 92"
    assert order.billing_address.region == "KY"
    assert order.billing_address.country == "US"
    assert order.billing_address.postal_code == "40202"
    assert order.shipping_address.name == "Bob Norman"
    assert [line.sku for line in order.lines] == ["IPOD2008GREEN", "IPOD2008RED", "IPOD2008BLACK"]
    assert next(line.name for line in order.lines) == "IPod Nano - 8gb - green"
    assert all(line.quantity == 1 and line.unit_price == Decimal("199.00") for line in order.lines)
    assert order.lines[0].line_id == "466157049"
    assert order.lines[0].variant_id == "39072856"
    assert order.lines[0].product_id == "632910392"
    assert [(s.title, s.price, s.net) for s in order.shipping_lines] == [
        ("Free Shipping", Decimal("0.00"), Decimal("0.00"))
    ]
    assert order.totals.subtotal == Decimal("398.00")
    assert order.totals.shipping == Decimal("0.00")
    assert order.totals.discounts == Decimal("0.00")
    assert order.totals.tax == Decimal("11.94")
    assert order.totals.total == Decimal("409.94")
    assert order.source == "web"
    assert order.note == ""
    assert order.payments == ()
    assert order.refunds == ()


def test_bare_and_wrapped_orders_parse_alike() -> None:
    wrapped = fixture("shopify_order_rest.json")
    assert parse_order(wrapped) == parse_order(wrapped["order"])
    config = ShopifyConfig(shop="x.myshopify.com", access_token="t")
    with httpx.Client() as client:
        assert ShopifyChannel(config, client=client).parse(wrapped) == parse_order(wrapped)


def test_an_authorization_is_not_a_payment() -> None:
    raw = {
        **fixture("shopify_order_rest.json")["order"],
        "transactions": fixture("shopify_order_transactions_rest.json"),
    }
    order = parse_order(raw)
    assert order.payments == ()
    assert order.paid_amount == Decimal("0.00")


def test_a_capture_is_a_payment() -> None:
    transactions = fixture("shopify_order_transactions_rest.json")
    capture = {**transactions[0], "id": 389404470, "kind": "capture", "amount": "100.00", "parent_id": 389404469}
    order = parse_order({**fixture("shopify_order_rest.json")["order"], "transactions": [*transactions, capture]})
    assert [(p.payment_id, p.amount, p.gateway, p.method) for p in order.payments] == [
        ("389404470", Decimal("100.00"), "bogus", "Visa")
    ]
    assert order.paid_amount == Decimal("100.00")


def test_registered_as_the_shopify_channel() -> None:
    assert channel_class("shopify") is ShopifyChannel


def test_config_marks_the_token_secret_and_cleans_the_shop() -> None:
    schema = ShopifyConfig.model_json_schema()
    assert schema["properties"]["access_token"]["secret"] is True
    assert all(schema["properties"][name].get("description") for name in ("shop", "access_token", "api_version"))
    assert ShopifyChannel.Config is ShopifyConfig
    config = ShopifyConfig(shop="https://My-Store.myshopify.com/admin", access_token="shpat_x")
    assert config.shop == "my-store.myshopify.com"
    assert config.api_root == "https://my-store.myshopify.com/admin/api/2025-01"
    assert "shpat_x" not in repr(config)
    local = ShopifyConfig(shop="a.myshopify.com", access_token="t", base_url="http://127.0.0.1:9/")
    assert local.api_root == "http://127.0.0.1:9/admin/api/2025-01"


# -- the generator ------------------------------------------------------------------------------------


def test_generator_is_deterministic() -> None:
    assert generate_orders(30, seed=3) == generate_orders(30, seed=3)
    assert generate_orders(30, seed=3) != generate_orders(30, seed=4)


def test_generated_orders_add_up_as_shopify_computes(generated: list[dict[str, Any]]) -> None:
    for raw in generated:
        lines = raw["line_items"]
        gross = sum(Decimal(line["price"]) * line["quantity"] for line in lines)
        line_discounts = sum(Decimal(a["amount"]) for line in lines for a in line["discount_allocations"])
        shipping_discounts = sum(Decimal(a["amount"]) for s in raw["shipping_lines"] for a in s["discount_allocations"])
        taxes = [t for line in lines for t in line["tax_lines"]] + [
            t for s in raw["shipping_lines"] for t in s["tax_lines"]
        ]
        shipping = sum(Decimal(s["discounted_price"]) for s in raw["shipping_lines"])
        assert Decimal(raw["total_line_items_price"]) == gross
        assert Decimal(raw["subtotal_price"]) == gross - line_discounts
        assert Decimal(raw["total_discounts"]) == line_discounts + shipping_discounts
        assert Decimal(raw["total_tax"]) == sum(Decimal(t["price"]) for t in taxes)
        assert Decimal(raw["total_price"]) == (
            Decimal(raw["subtotal_price"]) + shipping + Decimal(raw["total_tax"]) + Decimal(raw["total_tip_received"])
        )
        assert raw["total_price_set"]["shop_money"]["amount"] == raw["total_price"]
        for line in lines:
            assert Decimal(line["total_discount"]) == sum(Decimal(a["amount"]) for a in line["discount_allocations"])
            net = Decimal(line["price"]) * line["quantity"] - Decimal(line["total_discount"])
            for tax in line["tax_lines"]:
                # Each tax line is rounded on its own line, half up, as Shopify does.
                assert Decimal(tax["price"]) == (net * Decimal(str(tax["rate"]))).quantize(
                    Decimal("0.01"), "ROUND_HALF_UP"
                )
            assert line["taxable"] or not line["tax_lines"]
        for code in raw["discount_codes"]:
            applied = [i for i, a in enumerate(raw["discount_applications"]) if a.get("code") == code["code"]]
            allocated = [
                Decimal(a["amount"])
                for item in [*lines, *raw["shipping_lines"]]
                for a in item["discount_allocations"]
                if a["discount_application_index"] in applied
            ]
            assert Decimal(code["amount"]) == sum(allocated)


def test_generated_orders_look_like_a_real_shop(generated: list[dict[str, Any]]) -> None:
    assert [raw["name"] for raw in generated[:3]] == ["#1001", "#1002", "#1003"]
    assert [raw["order_number"] for raw in generated[:3]] == [1001, 1002, 1003]
    assert len({raw["id"] for raw in generated}) == len(generated)
    statuses = Counter(raw["financial_status"] for raw in generated)
    assert statuses.most_common(1)[0][0] == "paid"
    assert {"pending", "authorized", "partially_paid", "partially_refunded", "refunded"} <= set(statuses)
    assert any(raw["cancelled_at"] and raw["cancel_reason"] for raw in generated)
    assert all(datetime.fromisoformat(raw["created_at"]).utcoffset() is not None for raw in generated)
    assert all(raw["updated_at"] >= raw["created_at"] for raw in generated)
    codes = Counter(code["code"] for raw in generated for code in raw["discount_codes"])
    assert codes["WELCOME10"] >= 2
    assert "FREESHIP" in codes
    customers = Counter(raw["customer"]["id"] for raw in generated if raw["customer"])
    assert customers.most_common(1)[0][1] > 1
    names = {raw["billing_address"]["name"] for raw in generated}
    assert {"Zoë Ångström", "José Müller", "王小明"} <= names
    lines = [line for raw in generated for line in raw["line_items"]]
    assert any(not line.get("sku") for line in lines)
    assert any(not line["taxable"] for line in lines)
    assert any(
        line["discount_allocations"] and raw["discount_applications"][0]["allocation_method"] == "one"
        for raw in generated
        for line in raw["line_items"]
    )
    assert any(not s["tax_lines"] and Decimal(s["price"]) == 0 for raw in generated for s in raw["shipping_lines"])
    rates = {t["rate"] for line in lines for t in line["tax_lines"]}
    assert {0.0625, 0.0725, 0.06} <= rates
    refunded = [raw for raw in generated if raw["financial_status"] in {"refunded", "partially_refunded"}]
    assert refunded
    assert all(raw["refunds"][0]["transactions"][0]["kind"] == "refund" for raw in refunded)


def test_generated_transactions_follow_the_financial_status(generated: list[dict[str, Any]]) -> None:
    for raw in generated:
        kinds = [(t["kind"], t["status"]) for t in generate_transactions(raw)]
        captured = sum(
            Decimal(t["amount"])
            for t in generate_transactions(raw)
            if t["kind"] in {"sale", "capture"} and t["status"] == "success"
        )
        status = raw["financial_status"]
        if status == "paid":
            assert captured == Decimal(raw["total_price"])
        elif status == "partially_paid":
            assert Decimal(0) < captured < Decimal(raw["total_price"])
        elif status == "authorized":
            assert kinds == [("authorization", "success")]
        elif status == "pending":
            assert kinds == [("sale", "pending")]
        elif status == "voided":
            assert [k for k, _ in kinds] == ["authorization", "void"]
        else:
            assert ("refund", "success") in kinds


def test_broken_orders_are_two_extra_with_notes() -> None:
    orders = generate_orders(20, seed=5, broken=True)
    assert len(orders) == 22
    assert orders[:20] == generate_orders(20, seed=5)
    mismatched, zero = orders[20], orders[21]
    assert mismatched["note"]
    assert zero["note"]
    parsed = parse_order(mismatched)
    assert parsed.totals.total - balance(parsed) == Decimal("1.00")
    with pytest.raises(MappingError) as caught:
        parse_order(zero)
    position = len(zero["line_items"]) - 1
    assert caught.value.field == f"line_items[{position}].quantity"
    assert caught.value.order == str(zero["order_number"])


def test_generating_ten_thousand_orders() -> None:
    started = time.perf_counter()
    orders = generate_orders(10_000)
    assert len(orders) == 10_000
    assert len({o["id"] for o in orders}) == 10_000
    print(f"generated 10,000 orders in {time.perf_counter() - started:.2f} s (a figure, not a pass/fail)")


# -- generated orders through parse ------------------------------------------------------------------------


def test_every_generated_order_parses_and_balances(generated: list[dict[str, Any]]) -> None:
    for raw in generated:
        order = parse_order(with_transactions(raw))
        assert balance(order) == order.totals.total, order.number
        assert order.totals.subtotal == total(line.gross - line.discount_total for line in order.lines)
        assert order.totals.tax == order.tax_total
        assert order.totals.discounts == total(
            [*(line.discount_total for line in order.lines), *(s.discount_total for s in order.shipping_lines)]
        )


def test_discounts_keep_their_codes_and_titles(generated: list[dict[str, Any]]) -> None:
    orders = [parse_order(raw) for raw in generated]
    line_discounts = [d for order in orders for line in order.lines for d in line.discounts]
    shipping_discounts = [d for order in orders for s in order.shipping_lines for d in s.discounts]
    assert {d.code for d in line_discounts} >= {"WELCOME10", ""}
    assert {d.description for d in line_discounts if not d.code} <= {"Damaged box", "Staff discount"}
    assert all(d.description == d.code for d in line_discounts if d.code)
    assert {d.code for d in shipping_discounts} == {"FREESHIP"}
    free = [s for order in orders for s in order.shipping_lines if s.discounts]
    assert all(s.net == 0 and not s.tax_lines for s in free)


def test_lines_map_sku_quantity_and_tax(generated: list[dict[str, Any]]) -> None:
    raw = next(r for r in generated if any(t for line in r["line_items"] for t in line["tax_lines"]))
    order = parse_order(raw)
    source = raw["line_items"][0]
    line = order.lines[0]
    assert line.line_id == str(source["id"])
    assert line.sku == (source.get("sku") or "")
    assert line.name == source["name"]
    assert line.quantity == source["quantity"]
    assert line.unit_price == Decimal(source["price"])
    assert [(t.title, t.rate, t.amount) for t in line.tax_lines] == [
        (t["title"], Decimal(str(t["rate"])), Decimal(t["price"])) for t in source["tax_lines"]
    ]
    blank = [line for r in generated for line in parse_order(r).lines if not line.sku]
    assert blank
    assert all(line.sku == "" for line in blank)


def test_refunds_map_lines_shipping_and_amount(generated: list[dict[str, Any]]) -> None:
    refunded = [parse_order(r) for r in generated if r["financial_status"] == "refunded"]
    assert refunded
    for order in refunded:
        (refund,) = order.refunds
        assert refund.amount == order.totals.total
        assert (
            total([*(r.subtotal + r.tax for r in refund.lines), refund.shipping, refund.adjustments]) == refund.amount
        )
        assert {r.line_id for r in refund.lines} == {line.line_id for line in order.lines}
    assert any(order.refunds[0].shipping > 0 for order in refunded)
    partial = [parse_order(r) for r in generated if r["financial_status"] == "partially_refunded"]
    assert partial
    assert all(o.refunds[0].amount <= o.totals.total and len(o.refunds[0].lines) == 1 for o in partial)
    raw = next(r for r in generated if r["refunds"])
    restock = raw["refunds"][0]["refund_line_items"][0]["restock_type"] != "no_restock"
    assert parse_order(raw).refunds[0].lines[0].restock is restock


def test_partially_paid_orders_carry_their_captures(generated: list[dict[str, Any]]) -> None:
    raw = next(r for r in generated if r["financial_status"] == "partially_paid")
    order = parse_order(with_transactions(raw))
    assert order.payments
    assert all(p.gateway == "shopify_payments" and p.processed_at is not None for p in order.payments)
    assert Decimal(0) < order.paid_amount < order.totals.total


def test_cancelled_and_guest_orders(generated: list[dict[str, Any]]) -> None:
    cancelled = next(r for r in generated if r["cancelled_at"])
    assert parse_order(cancelled).cancelled_at == datetime.fromisoformat(cancelled["cancelled_at"])
    guest = {**generated[3], "customer": None}
    customer = parse_order(guest).customer
    assert customer.channel_id == ""
    assert customer.first_name == generated[3]["billing_address"]["first_name"]
    assert customer.email == generated[3]["email"]


def test_tags_note_and_source() -> None:
    raw = {**generate_orders(1)[0], "tags": "vip, gift ,, wholesale", "note": " Leave at door ", "source_name": "pos"}
    order = parse_order(raw)
    assert order.tags == ("vip", "gift", "wholesale")
    assert order.note == "Leave at door"
    assert order.source == "pos"


def test_a_tip_is_a_fee() -> None:
    raw = copy.deepcopy(generate_orders(1)[0])
    raw["total_tip_received"] = "3.00"
    raw["total_price"] = str(Decimal(raw["total_price"]) + 3)
    order = parse_order(raw)
    assert [(f.name, f.amount) for f in order.fees] == [("Tip", Decimal("3.00"))]
    assert balance(order) == order.totals.total


def test_an_unallocated_order_discount_stays_at_order_level() -> None:
    raw = copy.deepcopy(generate_orders(1)[0])
    raw["discount_applications"].append(
        {
            "type": "manual",
            "title": "Loyalty credit",
            "value": "4.00",
            "value_type": "fixed_amount",
            "allocation_method": "across",
            "target_selection": "all",
            "target_type": "line_item",
        }
    )
    raw["total_price"] = str(Decimal(raw["total_price"]) - 4)
    order = parse_order(raw)
    assert [(d.amount, d.description) for d in order.order_discounts] == [(Decimal("4.00"), "Loyalty credit")]
    assert balance(order) == order.totals.total


def test_old_orders_without_allocations_use_total_discount() -> None:
    raw = copy.deepcopy(next(r for r in generate_orders(40) if r["discount_codes"] and r["shipping_lines"]))
    for line in raw["line_items"]:
        del line["discount_allocations"]
    for shipping in raw["shipping_lines"]:
        del shipping["discount_allocations"]
    order = parse_order(raw)
    assert balance(order) == order.totals.total


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2**32), count=st.integers(min_value=1, max_value=40))
def test_any_generated_batch_parses_and_balances(seed: int, count: int) -> None:
    for raw in generate_orders(count, seed=seed):
        order = parse_order(with_transactions(raw))
        assert balance(order) == order.totals.total
        assert order.number == str(raw["order_number"])
        assert order.created_at.tzinfo is not None


# -- bad input -----------------------------------------------------------------------------------------


@functools.cache
def _complete_order() -> str:
    """A generated order that has every part the bad-input cases break (as JSON, so each test gets a copy)."""
    order = next(
        r
        for r in generate_orders(3000, seed=2)
        if len(r["line_items"]) >= 2
        and r["refunds"]
        and r["refunds"][0]["refund_line_items"]
        and r["line_items"][0]["tax_lines"]
        and r["line_items"][0]["discount_allocations"]
        and r["shipping_lines"]
    )
    return json.dumps(order)


def _base() -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(_complete_order())
    return raw


def _set(path: str, value: object) -> Any:
    def change(raw: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = raw
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if value is _DELETE:
            del target[last]
        elif last.isdigit():
            target[int(last)] = value
        else:
            target[last] = value

    return change


_DELETE = object()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (_set("id", _DELETE), "id"),
        (_set("id", None), "id"),
        (_set("created_at", "yesterday"), "created_at"),
        (_set("created_at", None), "created_at"),
        (_set("updated_at", 5), "updated_at"),
        (_set("currency", None), "currency"),
        (_set("total_price", _DELETE), "total_price"),
        (_set("total_price", "12,50"), "total_price"),
        (_set("total_tax", [1]), "total_tax"),
        (_set("line_items", "nope"), "line_items"),
        (_set("line_items.1", 5), "line_items[1]"),
        (_set("line_items.1.price", "abc"), "line_items[1].price"),
        (_set("line_items.1.price", _DELETE), "line_items[1].price"),
        (_set("line_items.1.quantity", 0), "line_items[1].quantity"),
        (_set("line_items.1.quantity", "two"), "line_items[1].quantity"),
        (_set("line_items.1.quantity", None), "line_items[1].quantity"),
        (_set("line_items.0.id", _DELETE), "line_items[0].id"),
        (_set("line_items.0.taxable", "yes"), "line_items[0].taxable"),
        (_set("line_items.0.tax_lines.0.rate", "x"), "line_items[0].tax_lines[0].rate"),
        (_set("line_items.0.tax_lines.0.price", "NaN"), "line_items[0].tax_lines[0].price"),
        (_set("line_items.0.discount_allocations.0.amount", {}), "line_items[0].discount_allocations[0].amount"),
        (
            _set("line_items.0.discount_allocations.0.discount_application_index", 9),
            "line_items[0].discount_allocations[0].discount_application_index",
        ),
        (
            _set("line_items.0.discount_allocations.0.discount_application_index", "0"),
            "line_items[0].discount_allocations[0].discount_application_index",
        ),
        (_set("shipping_lines.0.price", "free"), "shipping_lines[0].price"),
        (_set("shipping_lines.0.tax_lines", {}), "shipping_lines[0].tax_lines"),
        (_set("billing_address", "somewhere"), "billing_address"),
        (_set("customer", ["x"]), "customer"),
        (_set("cancelled_at", "soon"), "cancelled_at"),
        (_set("refunds.0.refund_line_items.0.subtotal", "x"), "refunds[0].refund_line_items[0].subtotal"),
        (_set("refunds.0.refund_line_items.0.line_item_id", None), "refunds[0].refund_line_items[0].line_item_id"),
        (_set("refunds.0.transactions.0.amount", "?"), "refunds[0].transactions[0].amount"),
        (
            _set("transactions", [{"id": 1, "kind": "sale", "status": "success", "amount": "x"}]),
            "transactions[0].amount",
        ),
    ],
)
def test_bad_fields_raise_mapping_errors_naming_the_field(change: Any, field: str) -> None:
    raw = _base()
    change(raw)
    with pytest.raises(MappingError) as caught:
        parse_order(raw)
    assert caught.value.field == field
    assert caught.value.order == str(raw["order_number"])


def test_an_order_without_a_number_is_named_by_its_id() -> None:
    raw = _base()
    del raw["order_number"], raw["name"]
    raw["line_items"][0]["quantity"] = -1
    with pytest.raises(MappingError) as caught:
        parse_order(raw)
    assert caught.value.order == str(raw["id"])


@pytest.mark.parametrize("raw", [[], "order", None, {"order": "x"}, {}])
def test_not_an_order_at_all(raw: Any) -> None:
    with pytest.raises(MappingError):
        parse_order(raw)
