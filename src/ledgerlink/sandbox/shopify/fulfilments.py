"""Shopify's REST fulfilment, emulated: the fulfillment-orders flow of current API versions.

Since API version 2023-01 an app no longer posts `orders/{id}/fulfillments.json`; it reads the order's
fulfillment orders (`GET orders/{id}/fulfillment_orders.json`: what each location has to ship, line by line,
with the quantity still to ship) and creates a fulfillment against them (`POST fulfillments.json` with
`line_items_by_fulfillment_order` and `tracking_info {number, company, url}`; a fulfillment order named without
lines ships all it has left). Each fulfillment carries one tracking number, so two parcels are two fulfillments.

The sandbox ships everything from its one location, so an order has one fulfillment order, derived from the
order as it stands: its line items (`fulfillable_quantity` is what is left), its status (open, in_progress,
closed, cancelled). Ids are derived too (fixed offsets from the order's and the line items' ids), so nothing
more is stored than what Shopify shows on the order itself: the fulfillment (status success, tracking_company,
tracking_number(s), the lines shipped), the lines' `fulfillable_quantity`, and the order's `fulfillment_status`
(partial or fulfilled) with a later `updated_at`, so a poll sees it and webhooks (`orders/updated`,
`fulfillments/create`, `orders/fulfilled` or `orders/partially_fulfilled`) are delivered.

`FulfilmentsClient` is a shipping app doing that over real HTTP, for the demo and the tests.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ledgerlink.sandbox.shopify.admin_api import AdminApiClient
from ledgerlink.sandbox.shopify.inventory import PRIMARY_LOCATION

if TYPE_CHECKING:
    from ledgerlink.sandbox.shopify.app import ShopifySandbox

# Fulfillment order ids (and their line items' ids) are the order's (line item's) id plus a fixed offset:
# distinct from every other id in the sandbox and still inside JSON's safe integer range.
FULFILLMENT_ORDER_OFFSET = 1_000_000_000_000_000
FULFILLMENT_ORDER_LINE_OFFSET = 2_000_000_000_000_000
_FULFILLMENT_ID_BASE = 5_500_000_000_000
_CREATING = threading.Lock()


class FulfilmentRefused(Exception):
    """A fulfilment Shopify would refuse: 422 (or 400 for a malformed body) with `{"errors": [message]}`."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _left(item: Mapping[str, Any]) -> int:
    return int(item.get("fulfillable_quantity", item.get("quantity", 0)) or 0)


def _status(order: Mapping[str, Any]) -> str:
    items = order.get("line_items") or []
    if order.get("cancelled_at"):
        return "cancelled"
    if all(_left(item) == 0 for item in items):
        return "closed"
    if any(_left(item) < int(item.get("quantity", 0)) for item in items):
        return "in_progress"
    return "open"


def fulfillment_orders(order: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The order's fulfillment orders as `GET orders/{id}/fulfillment_orders.json` lists them (one: the sandbox
    ships from one location)."""
    order_id = int(order["id"])
    fo_id = order_id + FULFILLMENT_ORDER_OFFSET
    status = _status(order)
    moment = str(order.get("updated_at") or order["created_at"])
    return [
        {
            "id": fo_id,
            "order_id": order_id,
            "assigned_location_id": PRIMARY_LOCATION,
            "request_status": "unsubmitted",
            "status": status,
            "supported_actions": ["create_fulfillment", "move"] if status in ("open", "in_progress") else [],
            "destination": copy.deepcopy(order.get("shipping_address")),
            "fulfillment_holds": [],
            "line_items": [
                {
                    "id": int(item["id"]) + FULFILLMENT_ORDER_LINE_OFFSET,
                    "fulfillment_order_id": fo_id,
                    "quantity": int(item.get("quantity", 0)),
                    "line_item_id": int(item["id"]),
                    "inventory_item_id": item.get("inventory_item_id"),
                    "fulfillable_quantity": _left(item),
                    "variant_id": item.get("variant_id"),
                }
                for item in order.get("line_items") or []
            ],
            "created_at": str(order["created_at"]),
            "updated_at": moment,
        }
    ]


def _wanted(order: Mapping[str, Any], groups: Sequence[Any]) -> list[tuple[int, int]]:
    """`line_items_by_fulfillment_order` of one order as (line position, quantity) pairs."""
    items = order.get("line_items") or []
    position = {int(item["id"]) + FULFILLMENT_ORDER_LINE_OFFSET: index for index, item in enumerate(items)}
    wanted: dict[int, int] = {}
    for group in groups:
        named = group.get("fulfillment_order_line_items") if isinstance(group, Mapping) else None
        if named is None or named == []:
            for index, item in enumerate(items):
                if _left(item) > 0:
                    wanted[index] = wanted.get(index, 0) + _left(item)
            continue
        if not isinstance(named, list):
            raise FulfilmentRefused("fulfillment_order_line_items must be a list", 400)
        for line in named:
            try:
                line_id, quantity = int(line["id"]), int(line["quantity"])
            except (KeyError, TypeError, ValueError):
                raise FulfilmentRefused("each fulfillment order line item needs an id and a quantity", 400) from None
            if line_id not in position:
                raise FulfilmentRefused(f"Fulfillment order line item {line_id} does not exist.")
            if quantity <= 0:
                raise FulfilmentRefused("Invalid fulfillment order line item quantity requested.")
            wanted[position[line_id]] = wanted.get(position[line_id], 0) + quantity
    for index, quantity in wanted.items():
        if quantity > _left(items[index]):
            raise FulfilmentRefused("Invalid fulfillment order line item quantity requested.")
    if not wanted:
        raise FulfilmentRefused("Fulfillment order has no line items left to fulfill.")
    return sorted(wanted.items())


def ship(
    sandbox: ShopifySandbox,
    order_id: int,
    lines: Sequence[tuple[int, int]],
    *,
    tracking_number: str = "",
    company: str = "",
    url: str = "",
    when: datetime | None = None,
) -> dict[str, Any]:
    """Record a fulfillment of `(line position, quantity)` pairs as Shopify does, and return it: the order's
    `fulfillments` grows, its lines' `fulfillable_quantity` falls, `fulfillment_status` becomes partial or
    fulfilled and `updated_at` moves on (`update_order`, which also delivers the webhooks)."""
    with _CREATING:
        order = copy.deepcopy(sandbox.orders[order_id])
        if order.get("cancelled_at"):
            raise FulfilmentRefused(f"Fulfillment order {order_id + FULFILLMENT_ORDER_OFFSET} is cancelled.")
        items = order["line_items"]
        shipped: list[dict[str, Any]] = []
        for index, quantity in lines:
            if not 0 <= index < len(items):
                raise FulfilmentRefused(f"the order has no line {index}", 400)
            item = items[index]
            if quantity <= 0 or quantity > _left(item):
                raise FulfilmentRefused("Invalid fulfillment order line item quantity requested.")
            item["fulfillable_quantity"] = _left(item) - quantity
            item["fulfillment_status"] = "fulfilled" if item["fulfillable_quantity"] == 0 else "partial"
            shipped.append({**copy.deepcopy(item), "quantity": quantity})
        if not shipped:
            raise FulfilmentRefused("Fulfillment order has no line items left to fulfill.")
        fulfillments = list(order.get("fulfillments") or [])
        created = datetime.fromisoformat(str(order["created_at"]))
        moment = (when or max(datetime.now(UTC).replace(microsecond=0), created)).isoformat()
        number = tracking_number.strip()
        link = url.strip() or (f"https://track.example/{number}" if number else "")
        fulfillment = {
            "id": _FULFILLMENT_ID_BASE + (order_id % 1_000_000_000) * 10 + len(fulfillments),
            "order_id": order_id,
            "name": f"{order.get('name', '#')}.{len(fulfillments) + 1}",
            "status": "success",
            "service": "manual",
            "shipment_status": None,
            "location_id": PRIMARY_LOCATION,
            "created_at": moment,
            "updated_at": moment,
            "tracking_company": company.strip() or None,
            "tracking_number": number or None,
            "tracking_numbers": [number] if number else [],
            "tracking_url": link or None,
            "tracking_urls": [link] if link else [],
            "receipt": {},
            "line_items": shipped,
        }
        fulfillments.append(fulfillment)
        done = all(_left(item) == 0 for item in items)
        changes = {
            "line_items": items,
            "fulfillments": fulfillments,
            "fulfillment_status": "fulfilled" if done else "partial",
        }
        sandbox.update_order(order_id, changes)
    return fulfillment


def create_fulfillment(sandbox: ShopifySandbox, body: Mapping[str, Any]) -> dict[str, Any]:
    """`POST fulfillments.json`'s `fulfillment`: every fulfillment order named must be open and of one order."""
    groups = body.get("line_items_by_fulfillment_order")
    if not isinstance(groups, list) or not groups:
        raise FulfilmentRefused("line_items_by_fulfillment_order is required", 400)
    order_ids: set[int] = set()
    for group in groups:
        try:
            order_ids.add(int(group["fulfillment_order_id"]) - FULFILLMENT_ORDER_OFFSET)
        except (KeyError, TypeError, ValueError):
            raise FulfilmentRefused("each entry needs a fulfillment_order_id", 400) from None
    if len(order_ids) != 1:
        raise FulfilmentRefused("All fulfillment orders must belong to the same order.")
    (order_id,) = order_ids
    order = sandbox.orders.get(order_id)
    if order is None:
        raise KeyError(order_id)
    status = _status(order)
    if status not in ("open", "in_progress"):
        fo_id = order_id + FULFILLMENT_ORDER_OFFSET
        raise FulfilmentRefused(f"Fulfillment order {fo_id} has an unfulfillable status= {status}.")
    tracking = body.get("tracking_info") or {}
    if not isinstance(tracking, Mapping):
        raise FulfilmentRefused("tracking_info must be an object", 400)
    return ship(
        sandbox,
        order_id,
        _wanted(order, groups),
        tracking_number=str(tracking.get("number") or ""),
        company=str(tracking.get("company") or ""),
        url=str(tracking.get("url") or ""),
    )


def add_routes(app: FastAPI, sandbox: ShopifySandbox) -> None:
    """Serve the fulfilment endpoints of `sandbox` (auth, rate limit and faults are the app's middleware)."""

    @app.get("/admin/api/{version}/orders/{order_id:int}/fulfillment_orders.json")
    async def list_fulfillment_orders(version: str, order_id: int) -> Response:
        order = sandbox.orders.get(order_id)
        if order is None:
            return JSONResponse({"errors": "Not Found"}, 404)
        return JSONResponse({"fulfillment_orders": fulfillment_orders(order)})

    @app.get("/admin/api/{version}/orders/{order_id:int}/fulfillments.json")
    async def list_fulfillments(version: str, order_id: int) -> Response:
        order = sandbox.orders.get(order_id)
        if order is None:
            return JSONResponse({"errors": "Not Found"}, 404)
        return JSONResponse({"fulfillments": order.get("fulfillments") or []})

    @app.post("/admin/api/{version}/fulfillments.json")
    async def create_route(version: str, request: Request) -> Response:
        try:
            raw = await request.json()
        except ValueError:
            raw = None
        body = raw.get("fulfillment") if isinstance(raw, Mapping) else None
        if not isinstance(body, Mapping):
            return JSONResponse({"errors": {"fulfillment": "Required parameter missing or invalid"}}, 400)
        try:
            fulfillment = await run_in_threadpool(create_fulfillment, sandbox, body)
        except KeyError:
            return JSONResponse({"errors": "Not Found"}, 404)
        except FulfilmentRefused as exc:
            return JSONResponse({"errors": [exc.message]}, exc.status)
        return JSONResponse({"fulfillment": fulfillment}, 201)


class FulfilmentsClient(AdminApiClient):
    """A shipping app fulfilling over the Admin REST API, as current apps do: read the order's fulfillment
    orders, then create a fulfillment against them with the tracking. For the demo and the tests (ledgerlink
    itself never fulfils)."""

    def fulfil(
        self,
        order_id: int,
        tracking_number: str,
        *,
        company: str = "UPS",
        lines: Sequence[tuple[int, int]] | None = None,
        notify_customer: bool = False,
    ) -> dict[str, Any]:
        """Ship `(line position, quantity)` pairs of the order (by default all that is left) with one tracking
        number; returns the created fulfillment."""
        order = self._get(f"orders/{order_id}.json")["order"]
        (fo,) = self._get(f"orders/{order_id}/fulfillment_orders.json")["fulfillment_orders"]
        group: dict[str, Any] = {"fulfillment_order_id": fo["id"]}
        if lines is not None:
            by_line = {int(line["line_item_id"]): int(line["id"]) for line in fo["line_items"]}
            items = order["line_items"]
            group["fulfillment_order_line_items"] = [
                {"id": by_line[int(items[index]["id"])], "quantity": quantity} for index, quantity in lines
            ]
        body = {
            "fulfillment": {
                "line_items_by_fulfillment_order": [group],
                "tracking_info": {"number": tracking_number, "company": company},
                "notify_customer": notify_customer,
            }
        }
        created: dict[str, Any] = self._post("fulfillments.json", body)["fulfillment"]
        return created

    def _refused(self, message: str) -> Exception:
        return FulfilmentRefused(message, 422)
