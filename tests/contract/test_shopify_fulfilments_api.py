"""The Shopify sandbox's REST fulfilment over real HTTP: fulfillment orders, fulfillments with tracking, the
refusals, what the order shows afterwards (and what ledgerlink's parser reads of it), and the webhooks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ledgerlink.channels.shopify import parse_order
from ledgerlink.domain.documents import shipment_of
from ledgerlink.sandbox.server import serve
from ledgerlink.sandbox.shopify import ShopifySandbox, generate_orders
from ledgerlink.sandbox.shopify.fulfilments import FulfilmentRefused, FulfilmentsClient
from ledgerlink.sandbox.shopify.lifecycle import unpaid_order

pytestmark = pytest.mark.contract

API = "/admin/api/2025-01"
ORDER = unpaid_order(next(o for o in generate_orders(40, seed=3) if len(o["line_items"]) >= 2))
ORDER_ID = int(ORDER["id"])
Shop = tuple[ShopifySandbox, httpx.Client, str]


@pytest.fixture
def shop() -> Iterator[Shop]:
    sandbox = ShopifySandbox(bucket_size=1000)
    sandbox.add_orders([ORDER])
    with serve(sandbox.app) as server:
        client = httpx.Client(base_url=server.base_url, headers={"X-Shopify-Access-Token": sandbox.access_token})
        try:
            yield sandbox, client, server.base_url
        finally:
            client.close()


def fulfillment_order(http: httpx.Client) -> dict[str, Any]:
    answer = http.get(f"{API}/orders/{ORDER_ID}/fulfillment_orders.json")
    assert answer.status_code == 200, answer.text
    (found,) = answer.json()["fulfillment_orders"]
    return dict(found)


def test_fulfillment_order_lists_what_is_left_to_ship(shop: Shop) -> None:
    _sandbox, http, _url = shop
    fo = fulfillment_order(http)
    assert fo["order_id"] == ORDER_ID
    assert fo["status"] == "open"
    assert "create_fulfillment" in fo["supported_actions"]
    assert [line["line_item_id"] for line in fo["line_items"]] == [item["id"] for item in ORDER["line_items"]]
    assert [line["fulfillable_quantity"] for line in fo["line_items"]] == [
        item["quantity"] for item in ORDER["line_items"]
    ]
    assert all(line["fulfillment_order_id"] == fo["id"] for line in fo["line_items"])


def test_fulfilling_one_line_with_tracking_changes_the_order_as_shopify_does(shop: Shop) -> None:
    sandbox, http, _url = shop
    before = sandbox.orders[ORDER_ID]
    fo = fulfillment_order(http)
    first = fo["line_items"][0]
    body = {
        "fulfillment": {
            "line_items_by_fulfillment_order": [
                {"fulfillment_order_id": fo["id"], "fulfillment_order_line_items": [{"id": first["id"], "quantity": 1}]}
            ],
            "tracking_info": {"number": "1Z999AA10123456784", "company": "UPS"},
            "notify_customer": False,
        }
    }
    answer = http.post(f"{API}/fulfillments.json", json=body)
    assert answer.status_code == 201, answer.text
    created = answer.json()["fulfillment"]
    assert created["status"] == "success"
    assert created["order_id"] == ORDER_ID
    assert created["tracking_numbers"] == ["1Z999AA10123456784"]
    assert created["tracking_company"] == "UPS"
    assert [(line["id"], line["quantity"]) for line in created["line_items"]] == [(first["line_item_id"], 1)]

    order = sandbox.orders[ORDER_ID]
    assert order["fulfillment_status"] == "partial"
    assert order["updated_at"] > before["updated_at"]
    assert order["line_items"][0]["fulfillable_quantity"] == ORDER["line_items"][0]["quantity"] - 1
    assert fulfillment_order(http)["status"] == "in_progress"
    listed = http.get(f"{API}/orders/{ORDER_ID}/fulfillments.json").json()["fulfillments"]
    assert [f["id"] for f in listed] == [created["id"]]
    # What ledgerlink reads: the shipment the books get.
    shipment = shipment_of(parse_order(order))
    assert shipment is not None
    assert (shipment.tracking_number, shipment.carrier) == ("1Z999AA10123456784", "UPS")
    assert shipment.ship_date is not None
    assert shipment.ship_date.isoformat() == created["created_at"][:10]


def test_a_fulfillment_order_named_without_lines_ships_all_that_is_left(shop: Shop) -> None:
    sandbox, http, base_url = shop
    client = FulfilmentsClient.for_sandbox(sandbox, base_url)
    try:
        client.fulfil(ORDER_ID, "PARCEL-1", company="USPS", lines=[(0, 1)])
        client.fulfil(ORDER_ID, "PARCEL-2", company="FedEx")
    finally:
        client.close()
    order = sandbox.orders[ORDER_ID]
    assert order["fulfillment_status"] == "fulfilled"
    assert all(item["fulfillable_quantity"] == 0 for item in order["line_items"])
    assert [f["tracking_number"] for f in order["fulfillments"]] == ["PARCEL-1", "PARCEL-2"]
    shipped = sum(line["quantity"] for f in order["fulfillments"] for line in f["line_items"])
    assert shipped == sum(item["quantity"] for item in ORDER["line_items"])
    fo = fulfillment_order(http)
    assert fo["status"] == "closed"
    assert fo["supported_actions"] == []


def test_refusals_change_nothing(shop: Shop) -> None:
    sandbox, http, _url = shop
    before = sandbox.orders[ORDER_ID]
    fo = fulfillment_order(http)
    first = fo["line_items"][0]

    def post(body: Any) -> httpx.Response:
        return http.post(f"{API}/fulfillments.json", json=body)

    too_many = {"id": first["id"], "quantity": first["fulfillable_quantity"] + 1}
    cases = [
        ({"nothing": 1}, 400),
        ({"fulfillment": {"line_items_by_fulfillment_order": []}}, 400),
        ({"fulfillment": {"line_items_by_fulfillment_order": [{"fulfillment_order_id": "x"}]}}, 400),
        (
            {
                "fulfillment": {
                    "line_items_by_fulfillment_order": [
                        {"fulfillment_order_id": fo["id"], "fulfillment_order_line_items": [too_many]}
                    ]
                }
            },
            422,
        ),
        (
            {
                "fulfillment": {
                    "line_items_by_fulfillment_order": [
                        {"fulfillment_order_id": fo["id"], "fulfillment_order_line_items": [{"id": 5, "quantity": 1}]}
                    ]
                }
            },
            422,
        ),
    ]
    for body, status in cases:
        answer = post(body)
        assert answer.status_code == status, (body, answer.text)
        assert answer.json()["errors"]
    assert post({"fulfillment": {"line_items_by_fulfillment_order": [{"fulfillment_order_id": 9}]}}).status_code == 404
    assert sandbox.orders[ORDER_ID] == before
    # Shipped in full, the fulfillment order is closed: one more fulfillment is refused.
    client = FulfilmentsClient.for_sandbox(sandbox, str(http.base_url))
    try:
        client.fulfil(ORDER_ID, "ALL-OF-IT")
        with pytest.raises(FulfilmentRefused, match="unfulfillable status"):
            client.fulfil(ORDER_ID, "AGAIN")
    finally:
        client.close()
    assert len(sandbox.orders[ORDER_ID]["fulfillments"]) == 1


def test_unknown_order_and_missing_token(shop: Shop) -> None:
    _sandbox, http, _url = shop
    assert http.get(f"{API}/orders/42/fulfillment_orders.json").status_code == 404
    anonymous = httpx.post(f"{http.base_url}{API}/fulfillments.json", json={"fulfillment": {}})
    assert anonymous.status_code == 401


def test_fulfilling_delivers_the_fulfilment_webhooks(shop: Shop) -> None:
    sandbox, _http, base_url = shop
    received: list[tuple[str, dict[str, Any]]] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        received.append((request.headers["X-Shopify-Topic"], json.loads(request.content)))
        return httpx.Response(200)

    sandbox.deliver_webhooks_with(httpx.Client(transport=httpx.MockTransport(receiver)))
    for topic in ("orders/updated", "orders/fulfilled", "orders/partially_fulfilled", "fulfillments/create"):
        sandbox.webhooks.subscribe(topic, "https://books.example/webhooks/shopify")
    client = FulfilmentsClient.for_sandbox(sandbox, base_url)
    try:
        created = client.fulfil(ORDER_ID, "1Z1", lines=[(0, 1)])
        client.fulfil(ORDER_ID, "1Z2")
    finally:
        client.close()
    topics = [topic for topic, _ in received]
    assert topics.count("orders/updated") == 2
    assert topics.count("fulfillments/create") == 2
    assert topics.count("orders/partially_fulfilled") == 1
    assert topics.count("orders/fulfilled") == 1
    first = next(payload for topic, payload in received if topic == "fulfillments/create")
    assert first["id"] == created["id"]
    assert first["order_id"] == ORDER_ID
    assert first["tracking_number"] == "1Z1"
