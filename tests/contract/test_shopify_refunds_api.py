"""The Shopify sandbox's REST refunds over real HTTP: calculate, create, the refusals, and what the order shows."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from ledgerlink.channels.shopify import parse_order
from ledgerlink.sandbox.server import serve
from ledgerlink.sandbox.shopify import ShopifySandbox, generate_orders
from ledgerlink.sandbox.shopify.refunds import RefundsClient

pytestmark = pytest.mark.contract

D = Decimal
API = "/admin/api/2025-01"


def _paid_order() -> dict[str, Any]:
    return next(
        o
        for o in generate_orders(60, seed=3)
        if o["financial_status"] == "paid"
        and len(o["line_items"]) >= 2
        and o.get("shipping_lines")
        and D(o["shipping_lines"][0]["price"]) > 0
        and not o.get("refunds")
        and not o.get("cancelled_at")
        and all(int(i["quantity"]) >= 1 for i in o["line_items"])
    )


ORDER = _paid_order()
ORDER_ID = int(ORDER["id"])


@pytest.fixture
def shop() -> Iterator[tuple[ShopifySandbox, httpx.Client]]:
    sandbox = ShopifySandbox(bucket_size=1000)
    sandbox.add_orders([ORDER])
    with serve(sandbox.app) as server:
        client = httpx.Client(base_url=server.base_url, headers={"X-Shopify-Access-Token": sandbox.access_token})
        try:
            yield sandbox, client
        finally:
            client.close()


def line_body(index: int, quantity: int = 1, restock: str = "return") -> dict[str, Any]:
    return {"line_item_id": ORDER["line_items"][index]["id"], "quantity": quantity, "restock_type": restock}


def test_calculate_prices_lines_and_shipping_and_stores_nothing(shop: tuple[ShopifySandbox, httpx.Client]) -> None:
    sandbox, http = shop
    body = {"refund": {"refund_line_items": [line_body(0)], "shipping": {"full_refund": True}}}
    answer = http.post(f"{API}/orders/{ORDER_ID}/refunds/calculate.json", json=body)
    assert answer.status_code == 200
    refund = answer.json()["refund"]
    item = ORDER["line_items"][0]
    (line,) = refund["refund_line_items"]
    share = D(1) / D(item["quantity"])
    net = ((D(item["price"]) * int(item["quantity"]) - D(item.get("total_discount") or 0)) * share).quantize(D("0.01"))
    assert D(line["subtotal"]) == net
    shipping = D(ORDER["shipping_lines"][0].get("discounted_price", ORDER["shipping_lines"][0]["price"]))
    assert D(refund["shipping"]["amount"]) == shipping
    (suggested,) = refund["transactions"]
    assert suggested["kind"] == "suggested_refund"
    worth = D(line["subtotal"]) + D(line["total_tax"]) + shipping + D(refund["shipping"]["tax"])
    assert D(suggested["amount"]) == min(worth, D(ORDER["total_price"]))
    assert sandbox.orders[ORDER_ID].get("refunds") in (None, [])


def test_create_stores_the_refund_the_parser_reads(shop: tuple[ShopifySandbox, httpx.Client]) -> None:
    sandbox, http = shop
    updated_before = sandbox.orders[ORDER_ID]["updated_at"]
    body = {
        "refund": {
            "note": "too small",
            "refund_line_items": [line_body(1, restock="no_restock")],
            "transactions": [{"kind": "refund", "amount": "5.00", "gateway": "shopify_payments"}],
        }
    }
    answer = http.post(f"{API}/orders/{ORDER_ID}/refunds.json", json=body)
    assert answer.status_code == 201, answer.text
    refund = answer.json()["refund"]
    assert refund["note"] == "too small"
    assert [t["amount"] for t in refund["transactions"]] == ["5.00"]
    order = http.get(f"{API}/orders/{ORDER_ID}.json").json()["order"]
    assert order["financial_status"] == "partially_refunded"
    assert order["updated_at"] > updated_before
    assert [r["id"] for r in http.get(f"{API}/orders/{ORDER_ID}/refunds.json").json()["refunds"]] == [refund["id"]]
    (parsed,) = parse_order(order).refunds
    assert parsed.amount == D("5.00")
    assert parsed.lines[0].line_id == str(ORDER["line_items"][1]["id"])
    assert parsed.lines[0].restock is False
    assert parsed.lines[0].subtotal == D(refund["refund_line_items"][0]["subtotal"])


@pytest.mark.parametrize(
    ("refund", "field"),
    [
        ({"refund_line_items": [line_body(0, quantity=999)]}, "refund_line_items[0].quantity"),
        ({"refund_line_items": [{"line_item_id": 1, "quantity": 1}]}, "refund_line_items[0].line_item_id"),
        ({"transactions": [{"kind": "refund", "amount": "999999.00"}]}, "transactions"),
        ({"transactions": [{"kind": "refund", "amount": "1.00", "parent_id": 42}]}, "transactions[0].parent_id"),
        ({"shipping": {"amount": "999.00"}}, "shipping.amount"),
        ({}, "base"),
    ],
)
def test_refusals_name_the_field_and_change_nothing(
    shop: tuple[ShopifySandbox, httpx.Client], refund: dict[str, Any], field: str
) -> None:
    sandbox, http = shop
    answer = http.post(f"{API}/orders/{ORDER_ID}/refunds.json", json={"refund": refund})
    assert answer.status_code == 422
    assert field in answer.json()["errors"]
    assert not sandbox.orders[ORDER_ID].get("refunds")


def test_unknown_order_and_missing_token(shop: tuple[ShopifySandbox, httpx.Client]) -> None:
    sandbox, http = shop
    assert http.post(f"{API}/orders/1/refunds.json", json={"refund": {}}).status_code == 404
    anonymous = httpx.post(f"{http.base_url}{API}/orders/{ORDER_ID}/refunds.json", json={"refund": {}})
    assert anonymous.status_code == 401
    assert not sandbox.orders[ORDER_ID].get("refunds")


def test_client_refunds_everything_and_never_more_than_was_paid(shop: tuple[ShopifySandbox, httpx.Client]) -> None:
    sandbox, http = shop
    client = RefundsClient.for_sandbox(sandbox, str(http.base_url))
    try:
        lines = [(index, int(item["quantity"])) for index, item in enumerate(ORDER["line_items"])]
        client.refund(ORDER_ID, lines[:1])
        client.refund(ORDER_ID, lines[1:], shipping=True)
        with pytest.raises(Exception, match="422"):
            client.refund(ORDER_ID, [], shipping=True)  # nothing left
    finally:
        client.close()
    order = sandbox.orders[ORDER_ID]
    assert order["financial_status"] == "refunded"
    money = sum((D(t["amount"]) for r in order["refunds"] for t in r["transactions"]), D(0))
    assert money == D(order["total_price"])
