"""What a merchant does to an order after it was placed, done to a sandbox shop in-process.

Edit a line's quantity, capture a payment, refund lines or shipping, cancel: each changes the stored order
the way Shopify would (totals, transactions, refunds, `financial_status`, a later `updated_at`), through
`ShopifySandbox.update_order`, so the change is picked up by the next poll (and delivered to webhooks).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ledgerlink.sandbox.shopify import fulfilments, refunds
from ledgerlink.sandbox.shopify.app import ShopifySandbox
from ledgerlink.sandbox.shopify.refunds import ZERO, _cents, _d, _money, _money_set

_CAPTURED = frozenset({"sale", "capture"})


def _later(order: Mapping[str, Any]) -> str:
    """A timestamp for a new refund or transaction: now, but never before the order was created."""
    created = datetime.fromisoformat(str(order["created_at"]))
    now = datetime.now(UTC).replace(microsecond=0)
    return max(now, created).isoformat()


def unpaid_order(order: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a generated order as a fresh, unpaid, open order (pending, no refunds, not cancelled)."""
    fresh = copy.deepcopy(dict(order))
    tip = _d(fresh.get("total_tip_received"))
    if tip:
        total = _d(fresh["total_price"]) - tip
        fresh.update(total_tip_received="0.00", total_price=_money(total))
        fresh["total_price_set"] = _money_set(total, str(fresh.get("currency") or "USD"))
    fresh.update(
        financial_status="pending",
        fulfillment_status=None,
        refunds=[],
        cancelled_at=None,
        cancel_reason=None,
        closed_at=None,
        gateway="manual",
        payment_gateway_names=["manual"],
    )
    fresh.pop("transactions", None)
    return fresh


def transactions(shop: ShopifySandbox, order_id: int) -> list[dict[str, Any]]:
    """The order's transactions as the shop serves them."""
    found = shop.list_transactions(order_id)
    return copy.deepcopy(found or [])


def captured(shop: ShopifySandbox, order_id: int) -> Decimal:
    """What has been captured for the order so far (successful sales and captures)."""
    return sum(
        (_d(t["amount"]) for t in transactions(shop, order_id) if t["kind"] in _CAPTURED and t["status"] == "success"),
        ZERO,
    )


def refunded_money(order: Mapping[str, Any]) -> Decimal:
    """The money the order's refunds gave back."""
    return sum(
        (
            _d(t["amount"])
            for refund in order.get("refunds") or []
            for t in refund.get("transactions") or []
            if t.get("kind") == "refund" and t.get("status", "success") == "success"
        ),
        ZERO,
    )


def _status(total: Decimal, paid: Decimal, refunded: Decimal) -> str:
    if refunded > 0:
        return "refunded" if refunded >= paid and paid >= total else "partially_refunded"
    if paid >= total:
        return "paid"
    return "partially_paid" if paid > 0 else "pending"


def capture(
    shop: ShopifySandbox, order_id: int, amount: Decimal | None = None, *, card: str = "Visa"
) -> dict[str, Any]:
    """Capture `amount` (by default all that is still owed); the order becomes partially paid or paid."""
    order = shop.orders[order_id]
    total = _d(order["total_price"])
    listed = transactions(shop, order_id)
    before = captured(shop, order_id)
    amount = _cents(total - before if amount is None else amount)
    if amount <= 0 or before + amount > total:
        raise ValueError(f"cannot capture {amount}: {before} of {total} is captured already")
    listed.append(
        {
            "id": order_id * 100 + 50 + len(listed),
            "order_id": order_id,
            "kind": "capture",
            "gateway": "shopify_payments",
            "status": "success",
            "created_at": _later(order),
            "processed_at": _later(order),
            "amount": _money(amount),
            "currency": order.get("currency", "USD"),
            "parent_id": None,
            "test": False,
            "payment_details": {"credit_card_company": card},
        }
    )
    shop.set_transactions(order_id, listed)
    status = _status(total, before + amount, refunded_money(order))
    return shop.update_order(order_id, {"financial_status": status, "gateway": "shopify_payments"})


def edit_quantity(shop: ShopifySandbox, order_id: int, line: int, quantity: int) -> dict[str, Any]:
    """Change the quantity of line `line` (its position); discounts and taxes scale with it, totals follow."""
    order = copy.deepcopy(shop.orders[order_id])
    items = order["line_items"]
    item = items[line]
    old = int(item["quantity"])
    if quantity < 1 or old < 1:
        raise ValueError("quantities must be at least 1")
    factor = Decimal(quantity) / Decimal(old)
    item["quantity"] = quantity
    item["fulfillable_quantity"] = quantity
    for tax in item.get("tax_lines") or []:
        tax["price"] = _money(_d(tax["price"]) * factor)
    for allocation in item.get("discount_allocations") or []:
        allocation["amount"] = _money(_d(allocation["amount"]) * factor)
    if "discount_allocations" in item:
        item["total_discount"] = _money(sum((_d(a["amount"]) for a in item["discount_allocations"]), ZERO))
    else:
        item["total_discount"] = _money(_d(item.get("total_discount")) * factor)
    return shop.update_order(order_id, _totals(order))


def _totals(order: dict[str, Any]) -> dict[str, Any]:
    currency = str(order.get("currency") or "USD")
    items = order["line_items"]
    gross = sum((_d(i["price"]) * int(i["quantity"]) for i in items), ZERO)
    line_discounts = sum((_d(i.get("total_discount")) for i in items), ZERO)
    shipping = sum((_d(s.get("discounted_price", s.get("price"))) for s in order.get("shipping_lines") or []), ZERO)
    shipping_discounts = sum(
        (_d(a["amount"]) for s in order.get("shipping_lines") or [] for a in s.get("discount_allocations") or []),
        ZERO,
    )
    tax = sum(
        (
            _d(t["price"])
            for holder in (*items, *(order.get("shipping_lines") or []))
            for t in holder.get("tax_lines") or []
        ),
        ZERO,
    )
    subtotal = gross - line_discounts
    total = subtotal + shipping + tax + _d(order.get("total_tip_received"))
    return {
        "line_items": items,
        "total_line_items_price": _money(gross),
        "total_line_items_price_set": _money_set(gross, currency),
        "subtotal_price": _money(subtotal),
        "subtotal_price_set": _money_set(subtotal, currency),
        "total_discounts": _money(line_discounts + shipping_discounts),
        "total_discounts_set": _money_set(line_discounts + shipping_discounts, currency),
        "total_tax": _money(tax),
        "total_tax_set": _money_set(tax, currency),
        "total_price": _money(total),
        "total_price_set": _money_set(total, currency),
    }


def _refunded_quantities(order: Mapping[str, Any]) -> dict[int, int]:
    done: dict[int, int] = {}
    for refund in order.get("refunds") or []:
        for item in refund.get("refund_line_items") or []:
            done[int(item["line_item_id"])] = done.get(int(item["line_item_id"]), 0) + int(item["quantity"])
    return done


def _shipping_left(order: Mapping[str, Any]) -> Decimal:
    charged = sum((_d(s.get("discounted_price", s.get("price"))) for s in order.get("shipping_lines") or []), ZERO)
    refunded = sum(
        (
            -_d(adj.get("amount"))
            for refund in order.get("refunds") or []
            for adj in refund.get("order_adjustments") or []
            if adj.get("kind") == "shipping_refund"
        ),
        ZERO,
    )
    return charged - refunded


def refund(
    shop: ShopifySandbox,
    order_id: int,
    lines: Sequence[tuple[int, int]] = (),
    *,
    shipping: bool = False,
    restock: bool = True,
    note: str = "Customer return",
) -> dict[str, Any]:
    """Refund `(line position, quantity)` pairs and, with `shipping`, the shipping left; money goes back up to
    what was captured. The same code as the sandbox's `refunds.json` (sandbox/shopify/refunds.py), in-process:
    calculate, then create with the suggested transaction. Returns the order."""
    order = shop.orders[order_id]
    body: dict[str, Any] = {
        "refund_line_items": [
            {
                "line_item_id": order["line_items"][index]["id"],
                "quantity": quantity,
                "restock_type": "return" if restock else "no_restock",
            }
            for index, quantity in lines
        ]
    }
    if shipping:
        body["shipping"] = {"full_refund": True}
    try:
        suggested = refunds.calculate(order, transactions(shop, order_id), body)["transactions"]
    except refunds.RefundRefused as exc:
        raise ValueError(exc.message) from exc
    body["note"] = note
    body["transactions"] = [{"parent_id": t["parent_id"], "amount": t["amount"], "kind": "refund"} for t in suggested]
    try:
        refunds.create_refund(shop, order_id, body)
    except refunds.RefundRefused as exc:
        raise ValueError(exc.message) from exc
    return shop.orders[order_id]


def cancel(shop: ShopifySandbox, order_id: int, *, reason: str = "customer") -> dict[str, Any]:
    """Cancel the order as Shopify does: what is left of it is refunded (restocked), then it is closed; an
    order that was never paid is voided instead."""
    order = shop.orders[order_id]
    done = _refunded_quantities(order)
    left = [
        (index, int(item["quantity"]) - done.get(int(item["id"]), 0))
        for index, item in enumerate(order["line_items"])
        if int(item["quantity"]) - done.get(int(item["id"]), 0) > 0
    ]
    paid = captured(shop, order_id) > 0 or order.get("financial_status") in {"paid", "partially_refunded"}
    if paid and (left or _shipping_left(order) > 0):
        refund(shop, order_id, left, shipping=True, note="Order cancelled")
    now = _later(shop.orders[order_id])
    changes: dict[str, Any] = {"cancelled_at": now, "cancel_reason": reason, "closed_at": now}
    if not paid:
        changes["financial_status"] = "voided"
    return shop.update_order(order_id, changes)


def fulfil(
    shop: ShopifySandbox,
    order_id: int,
    tracking_number: str,
    *,
    company: str = "UPS",
    lines: Sequence[tuple[int, int]] | None = None,
    when: datetime | None = None,
) -> dict[str, Any]:
    """Ship `(line position, quantity)` pairs (by default everything not shipped yet) with a tracking number,
    in-process, as Shopify records it (see `fulfilments.ship`: the same code the REST `fulfillments.json`
    endpoint runs); returns the order as changed."""
    items = shop.orders[order_id]["line_items"]
    wanted = (
        [(index, int(item.get("fulfillable_quantity", item["quantity"]))) for index, item in enumerate(items)]
        if lines is None
        else list(lines)
    )
    wanted = [(index, quantity) for index, quantity in wanted if quantity != 0]
    try:
        fulfilments.ship(shop, order_id, wanted, tracking_number=tracking_number, company=company, when=when)
    except fulfilments.FulfilmentRefused as exc:
        raise ValueError(exc.message) from None
    return shop.orders[order_id]
