"""The Shopify sandbox's products, locations and inventory levels (Admin REST), for the stock push.

- `GET products.json` (`limit`, `fields`, `Link` pagination by `page_info`): products with their variants, each
  variant with its `sku`, `inventory_item_id` and `inventory_quantity`;
- `GET locations.json`: the shop's locations;
- `GET inventory_levels.json?inventory_item_ids=…&location_ids=…`: the `available` quantity per item and location;
- `POST inventory_levels/set.json {location_id, inventory_item_id, available}`: sets the quantity (an absolute
  value, so sending it twice is harmless). An item that does not track inventory is refused with 422, as Shopify
  does; an unknown item or location too.

Auth, the leaky bucket and injected faults are the app's middleware, as for every Admin API call.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

if TYPE_CHECKING:
    from ledgerlink.sandbox.shopify.app import ShopifySandbox

MAX_LIMIT = 250
DEFAULT_LIMIT = 50
PRIMARY_LOCATION = 65_000_000_001
NOT_TRACKED = "Inventory item does not have inventory tracking enabled"


@dataclass(slots=True)
class Variant:
    """A product variant and its inventory item (Shopify keeps stock on the item, per location)."""

    id: int
    product_id: int
    sku: str
    title: str
    price: str
    inventory_item_id: int
    tracked: bool = True


@dataclass(slots=True)
class ShopInventory:
    """Products, locations and levels of one sandbox shop."""

    locations: dict[int, dict[str, Any]] = field(default_factory=dict)
    products: dict[int, dict[str, Any]] = field(default_factory=dict)
    variants: dict[int, Variant] = field(default_factory=dict)
    levels: dict[tuple[int, int], int] = field(default_factory=dict)
    sets: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.add_location(PRIMARY_LOCATION, "Warehouse")

    def add_location(self, location_id: int, name: str, *, active: bool = True) -> dict[str, Any]:
        location = {
            "id": location_id,
            "name": name,
            "active": active,
            "legacy": False,
            "address1": "1 Dock St",
            "city": "Springfield",
            "country_code": "US",
            "created_at": _now(),
            "updated_at": _now(),
        }
        with self._lock:
            self.locations[location_id] = location
        return location

    def add_product(
        self, title: str, sku: str, *, price: str = "10.00", available: int = 0, tracked: bool = True
    ) -> Variant:
        """One product with one variant, stocked at the primary location."""
        with self._lock:
            number = len(self.products) + 1
            product_id = 632_910_392 + number
            variant = Variant(
                id=808_950_810 + number,
                product_id=product_id,
                sku=sku,
                title="Default Title",
                price=price,
                inventory_item_id=39_072_856 + number,
                tracked=tracked,
            )
            self.products[product_id] = {"id": product_id, "title": title, "status": "active", "created_at": _now()}
            self.variants[variant.id] = variant
            self.levels[(variant.inventory_item_id, PRIMARY_LOCATION)] = available
        return variant

    def add_products_for(self, orders: Iterable[Mapping[str, Any]], *, available: int = 0) -> list[Variant]:
        """A product for each SKU the orders sell that the shop does not have yet."""
        known = {v.sku.casefold() for v in self.variants.values()}
        made: list[Variant] = []
        for order in orders:
            for item in order.get("line_items") or []:
                sku = str(item.get("sku") or "").strip()
                if sku and sku.casefold() not in known:
                    known.add(sku.casefold())
                    title, price = str(item.get("title") or sku), str(item.get("price") or "0")
                    made.append(self.add_product(title, sku, price=price, available=available))
        return made

    def by_sku(self, sku: str) -> Variant:
        found = [v for v in self.variants.values() if v.sku.casefold() == sku.casefold()]
        if len(found) != 1:
            raise KeyError(sku)
        return found[0]

    def available(self, sku: str, location_id: int = PRIMARY_LOCATION) -> int | None:
        """The level of the variant with this SKU (for tests)."""
        return self.levels.get((self.by_sku(sku).inventory_item_id, location_id))

    # -- the API -------------------------------------------------------------------------------------------

    def product_json(self, product_id: int) -> dict[str, Any]:
        product = dict(self.products[product_id])
        product["variants"] = [
            {
                "id": v.id,
                "product_id": v.product_id,
                "title": v.title,
                "sku": v.sku,
                "price": v.price,
                "inventory_item_id": v.inventory_item_id,
                "inventory_management": "shopify" if v.tracked else None,
                "inventory_quantity": sum(q for (item, _loc), q in self.levels.items() if item == v.inventory_item_id),
            }
            for v in self.variants.values()
            if v.product_id == product_id
        ]
        return product

    def set_level(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """inventory_levels/set.json: raises `_Refused` as Shopify would."""
        try:
            item_id = int(body["inventory_item_id"])
            location_id = int(body["location_id"])
            available = int(body["available"])
        except (KeyError, TypeError, ValueError):
            raise _Refused("inventory_item_id, location_id and available (a whole number) are required", 400) from None
        with self._lock:
            variant = next((v for v in self.variants.values() if v.inventory_item_id == item_id), None)
            if variant is None:
                raise _Refused("Inventory item not found", 422, "inventory_item_id")
            if location_id not in self.locations:
                raise _Refused("Location not found", 422, "location_id")
            if not variant.tracked:
                raise _Refused(NOT_TRACKED, 422, "inventory_item_id")
            self.levels[(item_id, location_id)] = available
            self.sets += 1
        return {"inventory_item_id": item_id, "location_id": location_id, "available": available, "updated_at": _now()}


class _Refused(Exception):
    def __init__(self, message: str, status: int, field: str = "base") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.field = field

    def response(self) -> Response:
        if self.status == 400:
            return JSONResponse({"errors": self.message}, 400)
        return JSONResponse({"errors": {self.field: [self.message]}}, self.status)


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def _ids(raw: str | None, name: str) -> list[int] | None:
    if raw is None:
        return None
    try:
        return [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise _Refused(f"{name}: Invalid value.", 400) from None


def _page_token(after: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode().rstrip("=")


def _after(token: str) -> int:
    try:
        return int(json.loads(base64.urlsafe_b64decode((token + "=" * (-len(token) % 4)).encode()))["after"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise _Refused("page_info: Invalid value.", 400) from None


def _limit(raw: str | None) -> int:
    try:
        limit = int(raw) if raw is not None else DEFAULT_LIMIT
    except ValueError:
        raise _Refused("limit: Invalid value.", 400) from None
    if not 1 <= limit <= MAX_LIMIT:
        raise _Refused(f"limit: must be between 1 and {MAX_LIMIT}", 400)
    return limit


def add_routes(app: FastAPI, sandbox: ShopifySandbox) -> None:
    """Serve the inventory endpoints of `sandbox.inventory`."""
    stock = sandbox.inventory

    @app.get("/admin/api/{version}/products.json")
    async def products(version: str, request: Request) -> Response:
        query = request.query_params
        try:
            limit = _limit(query.get("limit"))
            after = _after(query["page_info"]) if "page_info" in query else 0
        except _Refused as exc:
            return exc.response()
        fields = [f.strip() for f in (query.get("fields") or "").split(",") if f.strip()]
        with stock._lock:
            ids = sorted(i for i in stock.products if i > after)
            page = ids[:limit]
            rows = [stock.product_json(i) for i in page]
        if fields:
            rows = [{k: v for k, v in row.items() if k in fields} for row in rows]
        headers = {}
        if len(ids) > limit:
            url = f"{str(request.base_url).rstrip('/')}{request.url.path}"
            extra = f"&fields={query['fields']}" if fields else ""
            headers["Link"] = f'<{url}?limit={limit}&page_info={_page_token(page[-1])}{extra}>; rel="next"'
        return JSONResponse({"products": rows}, headers=headers)

    @app.get("/admin/api/{version}/locations.json")
    async def locations(version: str) -> Response:
        with stock._lock:
            return JSONResponse({"locations": [dict(loc) for _id, loc in sorted(stock.locations.items())]})

    @app.get("/admin/api/{version}/inventory_levels.json")
    async def levels(version: str, request: Request) -> Response:
        query = request.query_params
        try:
            items = _ids(query.get("inventory_item_ids"), "inventory_item_ids")
            places = _ids(query.get("location_ids"), "location_ids")
        except _Refused as exc:
            return exc.response()
        if items is None and places is None:
            return JSONResponse({"errors": "inventory_item_ids or location_ids is required"}, 422)
        with stock._lock:
            rows = [
                {"inventory_item_id": item, "location_id": loc, "available": qty, "updated_at": _now()}
                for (item, loc), qty in sorted(stock.levels.items())
                if (items is None or item in items) and (places is None or loc in places)
            ]
        return JSONResponse({"inventory_levels": rows})

    @app.post("/admin/api/{version}/inventory_levels/set.json")
    async def set_level(version: str, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"errors": "Required parameter missing or invalid"}, 400)
        try:
            level = stock.set_level(body if isinstance(body, Mapping) else {})
        except _Refused as exc:
            return exc.response()
        return JSONResponse({"inventory_level": level})
