"""Shopify's REST refunds, emulated: `POST orders/{id}/refunds/calculate.json` and `POST orders/{id}/refunds.json`.

What a Shopify app does to refund: it asks `calculate` what the chosen lines and shipping are worth (prorated
discounts and taxes, and a `suggested_refund` transaction capped at what is left to refund), then creates the
refund with the lines, the shipping and the refund transactions it wants. The refund is stored on the order as
Shopify returns it (`refund_line_items` with subtotal and total_tax, a `shipping_refund` order adjustment, the
refund transactions), the order's `financial_status` follows, and `updated_at` moves on, so polls and webhooks
see it. `RefundsClient` is that app, over real HTTP, for the demo and the tests.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ledgerlink.sandbox.shopify.admin_api import AdminApiClient

if TYPE_CHECKING:
    from ledgerlink.sandbox.shopify.app import ShopifySandbox

CENT = Decimal("0.01")
ZERO = Decimal(0)
RESTOCK_TYPES = frozenset({"no_restock", "cancel", "return", "legacy_restock"})
_CAPTURED = frozenset({"sale", "capture"})


class RefundRefused(Exception):
    """A refund Shopify would refuse with 422 and `{"errors": {field: [message]}}`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _d(value: object) -> Decimal:
    return Decimal(str(value if value not in (None, "") else "0"))


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _money(value: Decimal) -> str:
    return f"{_cents(value):.2f}"


def _money_set(value: Decimal, currency: str) -> dict[str, Any]:
    amount = {"amount": _money(value), "currency_code": currency}
    return {"shop_money": amount, "presentment_money": dict(amount)}


def _amount(raw: object, field: str) -> Decimal:
    try:
        value = Decimal(str(raw))
    except (InvalidOperation, ValueError):
        raise RefundRefused(field, f"is not a number: {raw!r}") from None
    if not value.is_finite() or value < 0:
        raise RefundRefused(field, "must be a positive amount")
    return _cents(value)


def _later(order: Mapping[str, Any]) -> str:
    created = datetime.fromisoformat(str(order["created_at"]))
    return max(datetime.now(UTC).replace(microsecond=0), created).isoformat()


def captured(transactions: Sequence[Mapping[str, Any]]) -> Decimal:
    """What was captured: successful sales and captures."""
    return sum(
        (_d(t.get("amount")) for t in transactions if t.get("kind") in _CAPTURED and t.get("status") == "success"),
        ZERO,
    )


def refunded_money(order: Mapping[str, Any]) -> Decimal:
    """The money the order's refunds gave back."""
    return sum(
        (
            _d(t.get("amount"))
            for refund in order.get("refunds") or []
            for t in refund.get("transactions") or []
            if t.get("kind") == "refund" and t.get("status", "success") == "success"
        ),
        ZERO,
    )


def paid(order: Mapping[str, Any], transactions: Sequence[Mapping[str, Any]]) -> Decimal:
    """What the buyer paid: the captures, or the whole total once the order says it is paid."""
    money = captured(transactions)
    if order.get("financial_status") in {"paid", "partially_refunded", "refunded"}:
        money = max(money, _d(order.get("total_price")))
    return money


def financial_status(total: Decimal, paid_amount: Decimal, refunded: Decimal) -> str:
    """Shopify's financial status for these sums."""
    if refunded > 0:
        return "refunded" if refunded >= paid_amount and paid_amount >= total else "partially_refunded"
    if paid_amount >= total:
        return "paid"
    return "partially_paid" if paid_amount > 0 else "pending"


def _refunded_quantities(order: Mapping[str, Any]) -> dict[str, int]:
    done: dict[str, int] = {}
    for refund in order.get("refunds") or []:
        for item in refund.get("refund_line_items") or []:
            key = str(item["line_item_id"])
            done[key] = done.get(key, 0) + int(item["quantity"])
    return done


def _shipping_refunded(order: Mapping[str, Any]) -> Decimal:
    return sum(
        (
            -_d(adj.get("amount"))
            for refund in order.get("refunds") or []
            for adj in refund.get("order_adjustments") or []
            if adj.get("kind") == "shipping_refund"
        ),
        ZERO,
    )


@dataclass(frozen=True, slots=True)
class _Worked:
    """A refund request worked out: its lines, its shipping, and what it is worth."""

    lines: list[dict[str, Any]]
    shipping: Decimal
    shipping_tax: Decimal
    shipping_left: Decimal
    value: Decimal
    refundable: Decimal


def _work_out(order: Mapping[str, Any], transactions: Sequence[Mapping[str, Any]], body: Mapping[str, Any]) -> _Worked:
    currency = str(order.get("currency") or "USD")
    items = {str(item["id"]): item for item in order.get("line_items") or []}
    done = _refunded_quantities(order)
    asked = body.get("refund_line_items") or []
    if not isinstance(asked, list):
        raise RefundRefused("refund_line_items", "must be a list")
    lines: list[dict[str, Any]] = []
    value = ZERO
    seen: dict[str, int] = {}
    for index, raw in enumerate(asked):
        field = f"refund_line_items[{index}]"
        if not isinstance(raw, Mapping):
            raise RefundRefused(field, "must be an object")
        key = str(raw.get("line_item_id"))
        item = items.get(key)
        if item is None:
            raise RefundRefused(f"{field}.line_item_id", f"line item {key} does not belong to the order")
        try:
            quantity = int(raw.get("quantity", 0))
        except (TypeError, ValueError):
            raise RefundRefused(f"{field}.quantity", "must be a whole number") from None
        restock = str(raw.get("restock_type") or "no_restock")
        if restock not in RESTOCK_TYPES:
            raise RefundRefused(f"{field}.restock_type", f"must be one of {', '.join(sorted(RESTOCK_TYPES))}")
        ordered = int(item["quantity"])
        left = ordered - done.get(key, 0) - seen.get(key, 0)
        if quantity < 1 or quantity > left:
            raise RefundRefused(f"{field}.quantity", f"cannot refund more items than were purchased ({left} left)")
        seen[key] = seen.get(key, 0) + quantity
        share = Decimal(quantity) / Decimal(ordered)
        net = _cents((_d(item["price"]) * ordered - _d(item.get("total_discount"))) * share)
        tax = _cents(sum((_d(t.get("price")) for t in item.get("tax_lines") or []), ZERO) * share)
        value += net + tax
        lines.append(
            {
                "line_item_id": item["id"],
                "quantity": quantity,
                "restock_type": restock,
                "location_id": raw.get("location_id"),
                "price": _money(_d(item["price"])),
                "discounted_price": _money(net / quantity),
                "subtotal": _money(net),
                "subtotal_set": _money_set(net, currency),
                "total_tax": _money(tax),
                "total_tax_set": _money_set(tax, currency),
            }
        )
    net_shipping = sum((_d(s.get("discounted_price", s.get("price"))) for s in order.get("shipping_lines") or []), ZERO)
    tax_shipping = sum(
        (_d(t.get("price")) for s in order.get("shipping_lines") or [] for t in s.get("tax_lines") or []), ZERO
    )
    shipping_left = net_shipping - _shipping_refunded(order)
    shipping = shipping_tax = ZERO
    wanted = body.get("shipping")
    if wanted is not None:
        if not isinstance(wanted, Mapping):
            raise RefundRefused("shipping", "must be an object")
        if wanted.get("full_refund") is True:
            shipping = shipping_left
        elif "amount" in wanted:
            shipping = _amount(wanted["amount"], "shipping.amount")
        if shipping > shipping_left:
            raise RefundRefused("shipping.amount", f"cannot be more than the {_money(shipping_left)} left to refund")
        if shipping > 0 and net_shipping > 0:
            shipping_tax = _cents(tax_shipping * shipping / net_shipping)
        value += shipping + shipping_tax
    refundable = max(ZERO, paid(order, transactions) - refunded_money(order))
    return _Worked(lines, shipping, shipping_tax, shipping_left, _cents(value), refundable)


def _parent(transactions: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    for transaction in reversed(transactions):
        if transaction.get("kind") in _CAPTURED and transaction.get("status") == "success":
            return dict(transaction)
    return None


def calculate(
    order: Mapping[str, Any], transactions: Sequence[Mapping[str, Any]], body: Mapping[str, Any]
) -> dict[str, Any]:
    """The `calculate.json` answer: the lines and shipping priced, and the suggested refund transaction."""
    worked = _work_out(order, transactions, body)
    currency = str(order.get("currency") or "USD")
    parent = _parent(transactions)
    suggested = min(worked.value, worked.refundable)
    return {
        "currency": currency,
        "shipping": {
            "amount": _money(worked.shipping),
            "tax": _money(worked.shipping_tax),
            "maximum_refundable": _money(worked.shipping_left),
        },
        "refund_line_items": worked.lines,
        "transactions": (
            [
                {
                    "order_id": order["id"],
                    "kind": "suggested_refund",
                    "gateway": (parent or {}).get("gateway", "manual"),
                    "parent_id": (parent or {}).get("id"),
                    "amount": _money(suggested),
                    "currency": currency,
                    "maximum_refundable": _money(worked.refundable),
                }
            ]
            if suggested > 0
            else []
        ),
    }


def create(
    order: Mapping[str, Any], transactions: Sequence[Mapping[str, Any]], body: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new refund of `order` as `refunds.json` creates it: (the refund, the changes to the order).

    Money moves only through the `transactions` of the request (kind "refund"), never beyond what was paid
    and not refunded yet."""
    worked = _work_out(order, transactions, body)
    asked = body.get("transactions") or []
    if not isinstance(asked, list):
        raise RefundRefused("transactions", "must be a list")
    if not worked.lines and worked.shipping == 0 and not asked:
        raise RefundRefused("base", "a refund needs line items, shipping or a transaction")
    order_id = int(order["id"])
    currency = str(order.get("currency") or "USD")
    refunds = list(order.get("refunds") or [])
    refund_id = 9_800_000_000_000 + (order_id % 1_000_000_000) * 10 + len(refunds)
    when = _later(order)
    known = {str(t.get("id")): t for t in transactions}
    money: list[dict[str, Any]] = []
    back = ZERO
    for index, raw in enumerate(asked):
        field = f"transactions[{index}]"
        if not isinstance(raw, Mapping):
            raise RefundRefused(field, "must be an object")
        if str(raw.get("kind") or "refund") != "refund":
            raise RefundRefused(f"{field}.kind", "must be refund")
        amount = _amount(raw.get("amount"), f"{field}.amount")
        parent_id = raw.get("parent_id")
        if parent_id is not None and str(parent_id) not in known:
            raise RefundRefused(f"{field}.parent_id", f"transaction {parent_id} does not belong to the order")
        back += amount
        money.append(
            {
                "id": refund_id * 10 + 5 + index,
                "order_id": order_id,
                "kind": "refund",
                "gateway": str(raw.get("gateway") or (known.get(str(parent_id)) or {}).get("gateway") or "manual"),
                "status": "success",
                "created_at": when,
                "processed_at": when,
                "amount": _money(amount),
                "currency": currency,
                "parent_id": parent_id,
                "test": False,
            }
        )
    if back > worked.refundable:
        raise RefundRefused(
            "transactions", f"the refund of {_money(back)} exceeds the {_money(worked.refundable)} left to refund"
        )
    adjustments = []
    if worked.shipping > 0 or worked.shipping_tax > 0:
        adjustments.append(
            {
                "id": refund_id * 10 + 9,
                "order_id": order_id,
                "refund_id": refund_id,
                "kind": "shipping_refund",
                "reason": "Shipping refund",
                "amount": _money(-worked.shipping),
                "tax_amount": _money(-worked.shipping_tax),
            }
        )
    restock = any(line["restock_type"] != "no_restock" for line in worked.lines)
    refund = {
        "id": refund_id,
        "order_id": order_id,
        "created_at": when,
        "processed_at": when,
        "note": str(body.get("note") or ""),
        "restock": restock,
        "refund_line_items": [
            {
                "id": refund_id * 10 + position,
                **{k: v for k, v in line.items() if k not in ("price", "discounted_price")},
            }
            for position, line in enumerate(worked.lines)
        ],
        "order_adjustments": adjustments,
        "transactions": money,
    }
    changes: dict[str, Any] = {"refunds": [*copy.deepcopy(refunds), refund]}
    paid_amount = paid(order, transactions)
    if paid_amount > 0:
        changes["financial_status"] = financial_status(
            _d(order.get("total_price")), paid_amount, refunded_money(order) + back
        )
    return refund, changes


_CREATING = threading.Lock()


def create_refund(sandbox: ShopifySandbox, order_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
    """Create a refund of a sandbox order and store it (one at a time: two must not both refund the same
    money). Raises KeyError for an unknown order, RefundRefused for a refund Shopify would refuse."""
    with _CREATING:
        order = sandbox.orders[order_id]
        refund, changes = create(order, sandbox.list_transactions(order_id) or [], body)
        sandbox.update_order(order_id, changes)
    return refund


def add_routes(app: FastAPI, sandbox: ShopifySandbox) -> None:
    """Serve the two refund endpoints of `sandbox` (auth, rate limit and faults are the app's middleware)."""

    async def read(request: Request) -> Mapping[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise RefundRefused("refund", "Required parameter missing or invalid") from None
        refund = body.get("refund") if isinstance(body, Mapping) else None
        if not isinstance(refund, Mapping):
            raise RefundRefused("refund", "Required parameter missing or invalid")
        return refund

    @app.post("/admin/api/{version}/orders/{order_id:int}/refunds/calculate.json")
    async def calculate_route(version: str, order_id: int, request: Request) -> Response:
        order = sandbox.orders.get(order_id)
        if order is None:
            return JSONResponse({"errors": "Not Found"}, 404)
        try:
            answer = calculate(order, sandbox.list_transactions(order_id) or [], await read(request))
        except RefundRefused as exc:
            return JSONResponse({"errors": {exc.field: [exc.message]}}, 422)
        return JSONResponse({"refund": answer})

    @app.post("/admin/api/{version}/orders/{order_id:int}/refunds.json")
    async def create_route(version: str, order_id: int, request: Request) -> Response:
        try:
            refund = await run_in_threadpool(create_refund, sandbox, order_id, await read(request))
        except KeyError:
            return JSONResponse({"errors": "Not Found"}, 404)
        except RefundRefused as exc:
            return JSONResponse({"errors": {exc.field: [exc.message]}}, 422)
        return JSONResponse({"refund": refund}, 201)

    @app.get("/admin/api/{version}/orders/{order_id:int}/refunds.json")
    async def list_route(version: str, order_id: int) -> Response:
        order = sandbox.orders.get(order_id)
        if order is None:
            return JSONResponse({"errors": "Not Found"}, 404)
        return JSONResponse({"refunds": order.get("refunds") or []})


class RefundsClient(AdminApiClient):
    """A Shopify app refunding over the Admin REST API, as real apps do: calculate first, then create with the
    suggested transaction. For the demo and the tests (ledgerlink itself never refunds)."""

    def refund(
        self,
        order_id: int,
        lines: Sequence[tuple[int, int]] = (),
        *,
        shipping: bool = False,
        restock: bool = True,
        note: str = "Customer return",
    ) -> dict[str, Any]:
        """Refund `(line position, quantity)` pairs and, with `shipping`, all the shipping left; the money is
        what `calculate` suggests (never more than was paid). Returns the created refund."""
        order = self._get(f"orders/{order_id}.json")["order"]
        items = order["line_items"]
        body: dict[str, Any] = {
            "refund_line_items": [
                {
                    "line_item_id": items[index]["id"],
                    "quantity": quantity,
                    "restock_type": "return" if restock else "no_restock",
                }
                for index, quantity in lines
            ]
        }
        if shipping:
            body["shipping"] = {"full_refund": True}
        calculated = self._post(f"orders/{order_id}/refunds/calculate.json", {"refund": body})["refund"]
        body["note"] = note
        body["transactions"] = [
            {"parent_id": t["parent_id"], "amount": t["amount"], "kind": "refund", "gateway": t["gateway"]}
            for t in calculated.get("transactions") or []
        ]
        created: dict[str, Any] = self._post(f"orders/{order_id}/refunds.json", {"refund": body})["refund"]
        return created

    def _refused(self, message: str) -> Exception:
        return RefundRefused("http", message)
