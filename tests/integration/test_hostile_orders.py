"""Hostile orders among good ones, through one real sync run (Shopify sandbox → engine on SQLite → QBO sandbox).

Every hostile order is stored as failed with an error naming its field (one without an id, which cannot be
stored, is kept in the event log), and every good order is posted exactly once as if they were not there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ledgerlink.channels.shopify import parse_order
from ledgerlink.domain.plan import eligibility
from ledgerlink.sandbox.shopify import generate_orders
from ledgerlink.store.models import Event, OrderState, StoredOrder
from ledgerlink.sync.engine import load_settings, save_settings

StackFactory = Callable[..., Any]
GOOD = 50
# As deep as JSON goes through the sandbox's encoder and the adapter's decoder (Python's recursion limit).
DEPTH = 500


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def deep_object(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def set_path(order: dict[str, Any], path: str, value: object) -> None:
    """`line_items.0.price` = value."""
    *parents, last = path.split(".")
    target: Any = order
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value


# (where, hostile value, the field the error must name)
HOSTILE: list[tuple[str, object, str]] = [
    ("total_price", "1e999", "total_price"),
    ("line_items.0.quantity", 10**400, "line_items[0].quantity"),
    ("line_items.0.price", "٣", "line_items[0].price"),
    ("currency", None, "currency"),
    ("line_items", {"not": "a list"}, "line_items"),
    ("line_items.0", nested(DEPTH), "line_items[0]"),
    ("note", deep_object(DEPTH), "note"),
    ("total_tax", "NaN", "total_tax"),
    ("subtotal_price", 1e308, "subtotal_price"),
    (
        "line_items.0.tax_lines",
        [{"title": "Tax", "price": "0.00", "rate": "Infinity"}],
        "line_items[0].tax_lines[0].rate",
    ),
    ("customer", "jane@example.com", "customer"),
    ("cancelled_at", "9999-12-31T23:59:59-23:59", "cancelled_at"),
    ("shipping_lines.0.price", [], "shipping_lines[0].price"),
    ("taxes_included", "yes", "taxes_included"),
    (
        "refunds",
        [{"id": 1, "refund_line_items": [{"line_item_id": 1, "quantity": "-0", "subtotal": "1.00"}]}],
        "refunds[0].refund_line_items[0].quantity",
    ),
    ("order_number", "x" * 1_000, "order_number"),
    ("total_tip_received", "9" * 5_000, "total_tip_received"),
    (
        "line_items.0.discount_allocations",
        [{"amount": "1.00", "discount_application_index": 99}],
        "line_items[0].discount_allocations[0].discount_application_index",
    ),
    ("customer.id", {"$oid": "5f1d"}, "customer.id"),
    ("billing_address.zip", ["12345"], "billing_address.zip"),
]
HOSTILE_ID = 9_100_000_000
NO_ID = (9_200_000_001, 9_200_000_002)


def hostile_orders() -> list[dict[str, Any]]:
    """Generated orders with one hostile field each, under ids and numbers of their own."""
    base = generate_orders(len(HOSTILE) + len(NO_ID), seed=99)
    orders = []
    for index, (where, value, _field) in enumerate(HOSTILE):
        order = base[index]
        order.update(id=HOSTILE_ID + index, order_number=9100 + index, name=f"#{9100 + index}")
        set_path(order, where, value)  # shared, never changed: the sandbox stores a copy
        orders.append(order)
    for order_id, order in zip(NO_ID, base[len(HOSTILE) :], strict=True):
        order.update(id=order_id, order_number=order_id % 10_000, name=f"#{order_id % 10_000}")
        orders.append(order)
    orders[-1]["line_items"] = nested(DEPTH)  # hostile and without an id: nothing to store it under
    return orders


def test_hostile_orders_fail_by_name_and_the_good_ones_still_post(stack_factory: StackFactory, tmp_path: Path) -> None:
    stack = stack_factory(f"sqlite:///{tmp_path / 'ledgerlink.db'}", orders=GOOD)
    good = {str(order["id"]): order for order in stack.shop.orders.values()}
    assert len(good) == GOOD
    stack.shop.add_orders(hostile_orders())
    with stack.shop._lock:
        for order_id in NO_ID:
            # What a broken integration or proxy could hand over: an order without its id.
            del stack.shop._orders[order_id]["id"]
    with stack.app.db.session() as session:
        settings = load_settings(session, stack.channel_id)
        everything = settings.orders.model_copy(update={"financial_statuses": []})
        save_settings(session, stack.channel_id, settings.model_copy(update={"orders": everything}))
        settings = load_settings(session, stack.channel_id)

    report = stack.app.engine().run(stack.channel_id)

    assert report.error == ""
    assert report.counts["pulled"] == GOOD + len(HOSTILE) + len(NO_ID)
    with stack.app.db.session() as session:
        stored = {o.channel_order_id: o for o in session.scalars(select(StoredOrder))}
        events = session.scalars(select(Event).where(Event.kind == "bad_order")).all()
        # Nothing lost: every order with an id is stored, the two without one are in the event log.
        assert set(stored) == set(good) | {str(HOSTILE_ID + i) for i in range(len(HOSTILE))}
        no_id = [e for e in events if e.order_id is None]
        assert len(no_id) == len(NO_ID)
        assert all("without an id" in e.message for e in no_id)

        for index, (where, _value, field) in enumerate(HOSTILE):
            order = stored[str(HOSTILE_ID + index)]
            assert order.state == OrderState.FAILED, (where, order.state, order.detail)
            assert order.error_field == field, (where, order.detail)
            assert order.raw, where  # the raw order is kept for a person to look at
            assert len(order.detail) <= 1_000, where
            assert any(e.order_id == order.id and field in e.message for e in events), where

        # The good orders fare as if the hostile ones were not there: each one the filter lets through is
        # posted (or left out by the refund settings, which say so), none fails.
        eligible = {order_id for order_id, raw in good.items() if eligibility(parse_order(raw), settings) is None}
        states = Counter(stored[order_id].state for order_id in good)
        assert states[OrderState.FAILED] == 0
        assert states[OrderState.POSTED] + states[OrderState.SKIPPED] == GOOD, states
        posted = {order_id for order_id in good if stored[order_id].state == OrderState.POSTED}
        assert posted <= eligible
        assert all("refund" in stored[order_id].detail for order_id in eligible - posted)
        numbers = {stored[order_id].number for order_id in posted}
    assert len(posted) > GOOD // 2
    receipts = Counter(str(e.get("DocNumber")) for e in stack.qbo.entities("SalesReceipt"))
    assert set(receipts) == numbers
    assert max(receipts.values()) == 1
