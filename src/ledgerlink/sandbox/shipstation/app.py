"""A stateful emulator of the ShipStation v1 API (orders, shipments, stores, webhooks), on the real wire format.

What it reproduces, because clients get these wrong against the real thing:
- Basic auth with the API key and secret, answering 401 otherwise;
- 40 requests a minute per key pair in fixed windows, `X-Rate-Limit-Limit/Remaining/Reset` on every answer
  and 429 past the limit (in scaled time, so tests run fast);
- page-number paging (`page`, `pageSize` ≤ 500) answering `{orders, total, page, pages}`;
- dates as US Pacific wall-clock time without an offset, in bodies and in filters, compared as wall-clock
  time: in November's repeated hour an order modified at 01:10 PST sorts *before* one modified at 01:40 PDT
  although it happened later, which is what a client's modifyDate cursor must survive;
- `createorder(s)` as whole-order upserts keyed by `orderKey`; shipped and cancelled orders cannot change;
- `markasshipped` creating a shipment (no label bought: `shipmentCost` 0), and `createlabelfororder` buying a
  label (a `shipmentCost` from a small rate table); webhooks that POST `{resource_url, resource_type}`;
- injected faults (5xx, 429, and connection resets and timeouts: sandbox/faults.py) for retry tests,
  in-process or over `/_sandbox/faults`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Literal

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from ledgerlink import jsonwire
from ledgerlink.sandbox.faults import (
    CONNECTION_FAULT_KINDS,
    ConnectionFaultKind,
    ConnectionFaults,
    around_work,
    is_connection_fault,
)
from ledgerlink.sandbox.server import serve
from ledgerlink.sandbox.shipstation.generator import PACIFIC, STORES, generate_orders, store_record

DEFAULT_API_KEY = "ss_sandbox_key_0123456789abcdef"
DEFAULT_API_SECRET = "ss_sandbox_secret_fedcba9876543210"
RATE_LIMIT = 40
# The sandbox's label rates: a base per carrier (createlabelfororder adds 0.55 a unit shipped).
_LABEL_BASE = {"usps": Decimal("4.35"), "ups": Decimal("8.95"), "fedex": Decimal("9.40"), "stamps_com": Decimal("4.35")}
WINDOW_SECONDS = 60.0
MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 100
MAX_BULK_ORDERS = 100

ORDER_STATUSES = frozenset(
    {
        "awaiting_payment",
        "awaiting_shipment",
        "pending_fulfillment",
        "shipped",
        "on_hold",
        "cancelled",
        "rejected_fulfillment",
    }
)
# What createorder accepts; only the first three can still be changed afterwards.
_CREATABLE = frozenset({"awaiting_payment", "awaiting_shipment", "on_hold", "shipped", "cancelled"})
_FROZEN = frozenset({"shipped", "cancelled"})
WEBHOOK_EVENTS = frozenset(
    {
        "ORDER_NOTIFY",
        "ITEM_ORDER_NOTIFY",
        "SHIP_NOTIFY",
        "ITEM_SHIP_NOTIFY",
        "FULFILLMENT_SHIPPED",
        "FULFILLMENT_REJECTED",
    }
)
_SORT_FIELDS = {"orderdate": "orderDate", "modifydate": "modifyDate", "createdate": "createDate"}
_DATE_FILTERS = {
    "createDate": "createDate",
    "modifyDate": "modifyDate",
    "orderDate": "orderDate",
    "paymentDate": "paymentDate",
}
# Orders without the sorted date come first, as SQL Server sorts NULL first.
_NEVER = datetime(1, 1, 1)  # noqa: DTZ001 - Pacific wall time is naive on purpose
_CENT = Decimal("0.01")
_ZERO = Decimal("0.00")
_WALL = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$"
)
# The order fields a createorder body may carry; anything else ShipStation assigns or ignores.
_WRITABLE = (
    "orderNumber",
    "orderKey",
    "orderDate",
    "paymentDate",
    "shipByDate",
    "orderStatus",
    "customerId",
    "customerUsername",
    "customerEmail",
    "billTo",
    "shipTo",
    "items",
    "amountPaid",
    "taxAmount",
    "shippingAmount",
    "customerNotes",
    "internalNotes",
    "gift",
    "giftMessage",
    "paymentMethod",
    "requestedShippingService",
    "carrierCode",
    "serviceCode",
    "packageCode",
    "confirmation",
    "shipDate",
    "holdUntilDate",
    "weight",
    "dimensions",
    "insuranceOptions",
    "internationalOptions",
    "advancedOptions",
    "tagIds",
)
_ITEM_FIELDS = (
    "lineItemKey",
    "sku",
    "name",
    "imageUrl",
    "weight",
    "quantity",
    "unitPrice",
    "taxAmount",
    "shippingAmount",
    "warehouseLocation",
    "options",
    "productId",
    "fulfillmentSku",
    "adjustment",
    "upc",
)


class ApiError(Exception):
    """An answer ShipStation gives instead of the resource: a status and its ASP.NET-style body."""

    def __init__(self, status: int, message: str, model_state: Mapping[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.model_state = dict(model_state or {})

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"Message": self.message}
        if self.model_state:
            body["ModelState"] = self.model_state
        return body


@dataclass(slots=True)
class Fault:
    """A fault to inject: `status` answers `status` (e.g. 500, 503), `throttle` answers 429; `times` times.

    The connection faults of sandbox/faults.py answer nothing: `reset`/`reset_after_write` drop the connection
    before or after the work, `timeout`/`timeout_after_write` hold it `delay_ms` (30 s when 0) first.
    `path` limits it to request paths containing that text (e.g. "/orders"); empty matches every API call.
    """

    kind: Literal["status", "throttle"] | ConnectionFaultKind
    status: int = 500
    times: int = 1
    path: str = ""
    delay_ms: int = 0

    def matches(self, path: str) -> bool:
        return self.times > 0 and self.path in path


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """One request the sandbox answered."""

    method: str
    path: str
    query: str
    status: int


@dataclass(slots=True)
class SandboxStats:
    """Counters for tests and benchmarks."""

    requests: int = 0
    throttled: int = 0
    faults: int = 0


@dataclass(slots=True)
class _RateWindow:
    started: float
    used: int = 0


@dataclass(frozen=True, slots=True)
class Delivery:
    """One webhook POST the sandbox made."""

    target_url: str
    body: dict[str, str]
    status: int


# -- Pacific wall-clock time --------------------------------------------------------------------------------


def parse_wall(raw: object) -> datetime:
    """A ShipStation date (or filter value) as naive Pacific wall-clock time; an explicit offset is converted.

    Raises ValueError for anything else.
    """
    if not isinstance(raw, str):
        raise ValueError(f"not a date: {raw!r}")
    match = _WALL.match(raw.strip())
    if match is None:
        raise ValueError(f"not a date: {raw!r}")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    wall = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), micro)  # noqa: DTZ001 - Pacific wall time, naive on purpose
    if offset is None:
        return wall
    zone = UTC if offset == "Z" else datetime.strptime(offset.replace(":", ""), "%z").tzinfo
    return wall.replace(tzinfo=zone).astimezone(PACIFIC).replace(tzinfo=None)


def format_wall(wall: datetime) -> str:
    """Naive Pacific time as ShipStation writes it: `2026-03-08T01:30:00.0000000`."""
    return wall.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0"


def wall_of(moment: datetime) -> datetime:
    """An aware moment as naive Pacific wall-clock time."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(PACIFIC).replace(tzinfo=None)


# -- money --------------------------------------------------------------------------------------------------


def _decimal(raw: object, field: str, errors: dict[str, list[str]]) -> Decimal:
    if raw is None:
        return _ZERO
    if isinstance(raw, bool) or not isinstance(raw, int | float | Decimal | str):
        errors.setdefault(field, []).append(f"Could not convert {raw!r} to decimal.")
        return _ZERO
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        errors.setdefault(field, []).append(f"Could not convert {raw!r} to decimal.")
        return _ZERO
    if not value.is_finite():
        errors.setdefault(field, []).append(f"Could not convert {raw!r} to decimal.")
        return _ZERO
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


def order_total(order: Mapping[str, Any]) -> Decimal:
    """ShipStation's orderTotal: Σ item unitPrice × quantity (adjustments negative) + shipping + tax."""
    errors: dict[str, list[str]] = {}
    items = order.get("items") or []
    lines = sum(
        (
            (_decimal(item.get("unitPrice"), "unitPrice", errors) * Decimal(str(item.get("quantity") or 0))).quantize(
                _CENT, rounding=ROUND_HALF_UP
            )
            for item in items
            if isinstance(item, Mapping)
        ),
        _ZERO,
    )
    shipping = _decimal(order.get("shippingAmount"), "shippingAmount", errors)
    tax = _decimal(order.get("taxAmount"), "taxAmount", errors)
    return lines + shipping + tax


def _number(value: object) -> float:
    """`json.dumps` hook: exact Decimals (from a parsed request) become JSON numbers."""
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"not JSON: {value!r}")


def _plain(value: Any) -> Any:
    """Decimals (from a request parsed exactly) to JSON numbers, recursively, for storing and answering."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# -- the sandbox --------------------------------------------------------------------------------------------


class ShipStationSandbox:
    """One emulated ShipStation account: stores, orders, shipments, webhooks, the rate limit and faults."""

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        api_secret: str = DEFAULT_API_SECRET,
        *,
        stores: Sequence[Mapping[str, Any]] = STORES,
        rate_limit: int = RATE_LIMIT,
        time_scale: float = 1.0,
        clock: Callable[[], float] | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        if rate_limit < 1 or time_scale <= 0:
            raise ValueError("rate_limit and time_scale must be positive")
        self.api_key = api_key
        self.api_secret = api_secret
        self.rate_limit = rate_limit
        self.time_scale = time_scale
        self.base_url: str | None = None
        self._clock = clock or time.monotonic
        self._now = now or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._key_pairs = {(api_key, api_secret)}
        self._windows: dict[tuple[str, str], _RateWindow] = {}
        self._stores = [store_record(dict(store)) for store in stores]
        self._orders: dict[int, dict[str, Any]] = {}
        self._walls: dict[int, dict[str, datetime | None]] = {}
        self._by_key: dict[str, int] = {}
        self._shipments: dict[int, dict[str, Any]] = {}
        self._webhooks: dict[int, dict[str, Any]] = {}
        self._batches: dict[str, list[int]] = {}
        self._next_order_id = 900_000_001
        self._next_item_id = 950_000_001
        self._next_shipment_id = 70_000_001
        self._next_webhook_id = 4_101
        self._faults: list[Fault] = []
        self.requests: list[LoggedRequest] = []
        self.deliveries: list[Delivery] = []
        self.stats = SandboxStats()
        self._app: FastAPI | None = None

    # -- for tests and the demo -------------------------------------------------------------------------

    @property
    def app(self) -> FastAPI:
        """The ASGI app (built on first use, never at import time)."""
        if self._app is None:
            self._app = create_app(self)
        return self._app

    @property
    def window_seconds(self) -> float:
        """The length of one rate-limit window on the sandbox's clock (a minute, scaled)."""
        return WINDOW_SECONDS / self.time_scale

    def credentials(self, base_url: str) -> dict[str, str]:
        """What a ShipStationChannel config needs to talk to this sandbox at `base_url`."""
        return {"base_url": base_url, "api_key": self.api_key, "api_secret": self.api_secret}

    def add_key_pair(self, api_key: str, api_secret: str) -> None:
        """Accept another key pair (each pair has its own 40-a-minute budget)."""
        with self._lock:
            self._key_pairs.add((api_key, api_secret))

    def add_orders(self, orders: Iterable[Mapping[str, Any]]) -> None:
        """Store orders as given (e.g. generated ones), replacing any with the same orderId.

        Shipped orders get the shipment ShipStation would have for them.
        """
        # A JSON round trip is a fast deep copy, and proves the orders are plain JSON.
        copies: list[dict[str, Any]] = json.loads(json.dumps(list(orders), default=_number))
        with self._lock:
            for order in copies:
                order_id = int(order["orderId"])
                self._store(order_id, order)
                self._next_order_id = max(self._next_order_id, order_id + 1)
                if order.get("orderStatus") == "shipped" and not any(
                    s["orderId"] == order_id for s in self._shipments.values()
                ):
                    ship_date = order.get("shipDate") or order["modifyDate"][:10]
                    self._ship(order, order.get("carrierCode") or "stamps_com", ship_date, f"9400{order_id:018d}")

    def modify(
        self, order_id: int, changes: Mapping[str, Any] | None = None, *, at: datetime | str | None = None
    ) -> dict[str, Any]:
        """Change an order as the merchant would; `modifyDate` becomes `at` (aware, or a raw Pacific string).

        Without `at`, the modify date is the sandbox's now.
        """
        with self._lock:
            if order_id not in self._orders:
                raise KeyError(order_id)
            order = {**self._orders[order_id], **json.loads(json.dumps(_plain(dict(changes or {}))))}
            if isinstance(at, str):
                order["modifyDate"] = format_wall(parse_wall(at))
            else:
                order["modifyDate"] = format_wall(wall_of(at or self._now()))
            order["orderTotal"] = float(order_total(order))
            self._store(order_id, order)
            return json.loads(json.dumps(order))  # type: ignore[no-any-return]

    @property
    def orders(self) -> dict[int, dict[str, Any]]:
        """A snapshot of the stored orders by orderId."""
        with self._lock:
            return {order_id: json.loads(json.dumps(order)) for order_id, order in self._orders.items()}

    @property
    def shipments(self) -> list[dict[str, Any]]:
        """A snapshot of the shipments, oldest first."""
        with self._lock:
            return [json.loads(json.dumps(s)) for _, s in sorted(self._shipments.items())]

    @property
    def webhooks(self) -> list[dict[str, Any]]:
        """The current webhook subscriptions."""
        with self._lock:
            return [dict(hook) for _, hook in sorted(self._webhooks.items())]

    def inject(self, fault: Fault | Mapping[str, Any]) -> Fault:
        """Add a fault; it answers the next `times` matching API requests."""
        injected = fault if isinstance(fault, Fault) else _fault_from(fault)
        with self._lock:
            self._faults.append(injected)
        return injected

    def clear_faults(self) -> None:
        """Remove every pending fault."""
        with self._lock:
            self._faults.clear()

    def deliver(
        self, event: str, ids: Sequence[int] = (), *, base_url: str | None = None, timeout: float = 5.0
    ) -> list[Delivery]:
        """POST `{"resource_url", "resource_type"}` for `event` to every subscriber of it, as ShipStation does.

        `ids` are the orderIds the event is about; the resource URL lists exactly them (orders for the
        ORDER events, their shipments for the SHIP events) with Basic auth, like the real batch URLs.
        """
        if event not in WEBHOOK_EVENTS or event.startswith("FULFILLMENT"):
            raise ValueError(
                f"the sandbox delivers ORDER_NOTIFY, ITEM_ORDER_NOTIFY, SHIP_NOTIFY, ITEM_SHIP_NOTIFY; not {event!r}"
            )
        root = (base_url or self.base_url or "").rstrip("/")
        if not root:
            raise ValueError("no base_url: serve the sandbox first or pass base_url")
        batch = uuid.uuid4().hex[:16]
        with self._lock:
            stores = {self._store_id(self._orders[i]) for i in ids if i in self._orders}
            if "SHIP" in event:
                self._batches[batch] = [s for s, row in self._shipments.items() if row["orderId"] in set(ids)]
                resource = f"{root}/shipments?batchId={batch}&includeShipmentItems={event == 'ITEM_SHIP_NOTIFY'}"
            else:
                self._batches[batch] = list(ids)
                resource = f"{root}/orders?importBatch={batch}"
            targets = [
                hook["target_url"]
                for hook in self._webhooks.values()
                if hook["event"] == event and (hook["store_id"] is None or hook["store_id"] in stores)
            ]
        body = {"resource_url": resource, "resource_type": event}
        made: list[Delivery] = []
        with httpx.Client(timeout=timeout) as client:
            for target in targets:
                try:
                    status = client.post(target, json=body).status_code
                except httpx.HTTPError:
                    status = 0
                made.append(Delivery(target, body, status))
        with self._lock:
            self.deliveries.extend(made)
        return made

    # -- internals ----------------------------------------------------------------------------------------

    def _store(self, order_id: int, order: dict[str, Any]) -> None:
        walls: dict[str, datetime | None] = {}
        for name in _DATE_FILTERS.values():
            raw = order.get(name)
            walls[name] = None if raw in (None, "") else parse_wall(raw)
        self._orders[order_id] = order
        self._walls[order_id] = walls
        key = order.get("orderKey")
        if key:
            self._by_key[str(key)] = order_id

    @staticmethod
    def _store_id(order: Mapping[str, Any]) -> int | None:
        options = order.get("advancedOptions") or {}
        store = options.get("storeId") if isinstance(options, Mapping) else None
        return store if isinstance(store, int) else None

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(path):
                    fault.times -= 1
                    self.stats.faults += 1
                    self._faults = [f for f in self._faults if f.times > 0]
                    return fault
        return None

    def _authorize(self, header: str | None) -> tuple[str, str] | None:
        """The key pair of a Basic Authorization header, if the sandbox knows it."""
        if not header or not header.lower().startswith("basic "):
            return None
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        key, _, secret = decoded.partition(":")
        pair = (key, secret)
        with self._lock:
            return pair if pair in self._key_pairs else None

    def _count(self, pair: tuple[str, str]) -> tuple[bool, dict[str, str]]:
        """Count one request against the key pair's window: (accepted, rate headers)."""
        with self._lock:
            now = self._clock()
            window = self._windows.get(pair)
            if window is None or now >= window.started + self.window_seconds:
                window = self._windows[pair] = _RateWindow(started=now)
            accepted = window.used < self.rate_limit
            if accepted:
                window.used += 1
            reset = window.started + self.window_seconds - now
            return accepted, self._rate_headers(self.rate_limit - window.used, reset)

    def _current_headers(self, pair: tuple[str, str]) -> dict[str, str]:
        with self._lock:
            now = self._clock()
            window = self._windows.get(pair)
            if window is None or now >= window.started + self.window_seconds:
                return self._rate_headers(self.rate_limit, self.window_seconds)
            return self._rate_headers(self.rate_limit - window.used, window.started + self.window_seconds - now)

    def _rate_headers(self, remaining: int, reset: float) -> dict[str, str]:
        # ShipStation sends whole seconds; in scaled time whole seconds would round a window away, so
        # milliseconds, rounded up so a client that waits exactly this long lands in the next window.
        shown = str(max(1, math.ceil(reset))) if self.time_scale == 1 else f"{math.ceil(reset * 1000) / 1000:.3f}"
        return {
            "X-Rate-Limit-Limit": str(self.rate_limit),
            "X-Rate-Limit-Remaining": str(max(0, remaining)),
            "X-Rate-Limit-Reset": shown,
        }

    def _log(self, request: Request, status: int, throttled: bool) -> None:
        with self._lock:
            self.stats.requests += 1
            if throttled:
                self.stats.throttled += 1
            self.requests.append(LoggedRequest(request.method, request.url.path, request.url.query, status))

    def _stamp(self) -> str:
        return format_wall(wall_of(self._now()))

    # -- orders -------------------------------------------------------------------------------------------

    def list_orders(self, params: Mapping[str, str]) -> dict[str, Any]:
        """GET /orders: the filtered, sorted page; raises `ApiError` on a bad parameter."""
        page, page_size = _paging(params)
        status = params.get("orderStatus")
        if status and status not in ORDER_STATUSES:
            raise ApiError(400, "The request is invalid.", {"orderStatus": [f"'{status}' is not a valid status."]})
        sort_raw = params.get("sortBy") or ""
        sort_field = _SORT_FIELDS.get(sort_raw.lower()) if sort_raw else None
        if sort_raw and sort_field is None:
            raise ApiError(400, "The request is invalid.", {"sortBy": [f"'{sort_raw}' is not a valid sort field."]})
        descending = _descending(params)
        ranges = _ranges(params, _DATE_FILTERS)
        store = _int_param(params, "storeId")
        number = (params.get("orderNumber") or "").strip().lower()
        name = (params.get("customerName") or "").strip().lower()
        keyword = (params.get("itemKeyword") or "").strip().lower()
        batch = params.get("importBatch")
        with self._lock:
            wanted = set(self._batches.get(batch, [])) if batch else None
            rows = []
            for order_id, order in self._orders.items():
                walls = self._walls[order_id]
                if status and order.get("orderStatus") != status:
                    continue
                if store is not None and self._store_id(order) != store:
                    continue
                if number and not str(order.get("orderNumber", "")).lower().startswith(number):
                    continue
                if wanted is not None and order_id not in wanted:
                    continue
                if name and name not in str((order.get("billTo") or {}).get("name") or "").lower():
                    continue
                if keyword and not any(
                    keyword in f"{item.get('sku') or ''} {item.get('name') or ''}".lower()
                    for item in order.get("items") or []
                ):
                    continue
                if not _in_ranges(walls, ranges):
                    continue
                rows.append(order_id)
            if sort_field is None:
                # ShipStation's default: ascending orderId.
                rows.sort(reverse=descending)
            else:
                # Wall-clock order, as ShipStation stores Pacific local time (no offset).
                rows.sort(key=lambda i: (self._walls[i][sort_field] or _NEVER, i), reverse=descending)
            total = len(rows)
            chosen = rows[(page - 1) * page_size : page * page_size]
            orders = [json.loads(json.dumps(self._orders[i])) for i in chosen]
        return {"orders": orders, "total": total, "page": page, "pages": math.ceil(total / page_size)}

    def get_order(self, order_id: int) -> dict[str, Any]:
        with self._lock:
            order = self._orders.get(order_id)
            if order is None:
                raise ApiError(404, "Order not found")
            return json.loads(json.dumps(order))  # type: ignore[no-any-return]

    def create_order(self, body: object) -> dict[str, Any]:
        """POST /orders/createorder: create, or replace the whole order with the same orderKey."""
        with self._lock:
            return self._upsert(body)

    def create_orders(self, body: object) -> dict[str, Any]:
        """POST /orders/createorders: up to 100 upserts, each answered on its own."""
        if not isinstance(body, list):
            raise ApiError(400, "The request is invalid.", {"orders": ["Expected an array of orders."]})
        if len(body) > MAX_BULK_ORDERS:
            raise ApiError(400, f"A maximum of {MAX_BULK_ORDERS} orders may be created or updated at once.")
        results = []
        with self._lock:
            for raw in body:
                source = raw if isinstance(raw, Mapping) else {}
                try:
                    order = self._upsert(raw)
                except ApiError as exc:
                    detail = "; ".join(f"{k}: {', '.join(v)}" for k, v in exc.model_state.items())
                    results.append(
                        {
                            "orderId": None,
                            "orderNumber": source.get("orderNumber"),
                            "orderKey": source.get("orderKey"),
                            "success": False,
                            "errorMessage": f"{exc.message} {detail}".strip(),
                        }
                    )
                    continue
                results.append(
                    {
                        "orderId": order["orderId"],
                        "orderNumber": order["orderNumber"],
                        "orderKey": order["orderKey"],
                        "success": True,
                        "errorMessage": None,
                    }
                )
        return {"hasErrors": any(not r["success"] for r in results), "results": results}

    def _upsert(self, body: object) -> dict[str, Any]:
        """One createorder under the lock: validate, replace or create, answer the stored order."""
        if not isinstance(body, Mapping):
            raise ApiError(400, "The request is invalid.", {"apiOrder": ["An order object is required."]})
        errors: dict[str, list[str]] = {}
        for name in ("orderNumber", "orderDate", "orderStatus", "billTo", "shipTo"):
            if body.get(name) in (None, ""):
                errors.setdefault(f"apiOrder.{name}", []).append(f"The {name} field is required.")
        number = body.get("orderNumber")
        if number not in (None, "") and (not isinstance(number, str) or len(number) > 50):
            errors.setdefault("apiOrder.orderNumber", []).append("orderNumber must be text of at most 50 characters.")
        status = body.get("orderStatus")
        if status not in (None, "") and status not in _CREATABLE:
            errors.setdefault("apiOrder.orderStatus", []).append(f"'{status}' is not a valid status.")
        for name in ("billTo", "shipTo"):
            if body.get(name) not in (None, "") and not isinstance(body.get(name), Mapping):
                errors.setdefault(f"apiOrder.{name}", []).append("An address object is expected.")
        dates: dict[str, str | None] = {}
        for name in ("orderDate", "paymentDate", "shipByDate", "holdUntilDate"):
            raw = body.get(name)
            if raw in (None, ""):
                dates[name] = None
                continue
            try:
                dates[name] = format_wall(parse_wall(raw))
            except ValueError:
                errors.setdefault(f"apiOrder.{name}", []).append(f"Could not convert {raw!r} to a date.")
        items = body.get("items") or []
        if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
            errors.setdefault("apiOrder.items", []).append("items must be an array of objects.")
            items = []
        for index, item in enumerate(items):
            quantity = item.get("quantity", 1)
            if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
                errors.setdefault(f"apiOrder.items[{index}].quantity", []).append("quantity must be a whole number.")
            _decimal(item.get("unitPrice"), f"apiOrder.items[{index}].unitPrice", errors)
        for name in ("amountPaid", "taxAmount", "shippingAmount"):
            _decimal(body.get(name), f"apiOrder.{name}", errors)
        if errors:
            raise ApiError(400, "The request is invalid.", errors)

        key = str(body.get("orderKey") or uuid.uuid4().hex)
        existing_id = self._by_key.get(key)
        existing = self._orders.get(existing_id) if existing_id is not None else None
        if existing is not None and existing.get("orderStatus") in _FROZEN:
            raise ApiError(
                400,
                f"Order {existing.get('orderNumber')} is {existing.get('orderStatus')} and can no longer be updated.",
            )
        stamp = self._stamp()
        if existing_id is None:
            existing_id = self._next_order_id
            self._next_order_id += 1
        # Whole-order replace: what the body does not say is reset, not kept from the old order.
        order: dict[str, Any] = {
            "orderId": existing_id,
            **{name: _plain(body.get(name)) for name in _WRITABLE},
            **dates,
            "orderKey": key,
            "createDate": existing["createDate"] if existing is not None else stamp,
            "modifyDate": stamp,
            "userId": None,
            "externallyFulfilled": False,
            "externallyFulfilledBy": None,
            "labelMessages": None,
        }
        order["items"] = [self._item(item, stamp) for item in items]
        for name in ("amountPaid", "taxAmount", "shippingAmount"):
            order[name] = float(_decimal(body.get(name), name, {}))
        options = dict(order.get("advancedOptions") or {})
        options.setdefault("storeId", self._manual_store())
        order["advancedOptions"] = options
        order["orderTotal"] = float(order_total(order))
        self._store(existing_id, order)
        return json.loads(json.dumps(order))  # type: ignore[no-any-return]

    def _item(self, raw: Mapping[str, Any], stamp: str) -> dict[str, Any]:
        item = {name: _plain(raw.get(name)) for name in _ITEM_FIELDS}
        item["orderItemId"] = self._next_item_id
        self._next_item_id += 1
        item["quantity"] = raw.get("quantity", 1)
        item["unitPrice"] = float(_decimal(raw.get("unitPrice"), "unitPrice", {}))
        item["adjustment"] = bool(raw.get("adjustment", False))
        item["options"] = item["options"] or []
        item["createDate"] = item["modifyDate"] = stamp
        return item

    def _manual_store(self) -> int | None:
        manual = [s["storeId"] for s in self._stores if s.get("marketplaceId") == 0]
        return manual[0] if manual else None

    # -- shipments ----------------------------------------------------------------------------------------

    def mark_as_shipped(self, body: object) -> dict[str, Any]:
        """POST /orders/markasshipped: the order becomes shipped and a shipment records the tracking number."""
        if not isinstance(body, Mapping):
            raise ApiError(400, "The request is invalid.")
        errors: dict[str, list[str]] = {}
        order_id = body.get("orderId")
        if isinstance(order_id, bool) or not isinstance(order_id, int):
            errors.setdefault("orderId", []).append("The orderId field is required.")
        if not body.get("carrierCode"):
            errors.setdefault("carrierCode", []).append("The carrierCode field is required.")
        ship_raw = body.get("shipDate")
        ship_date = None
        if ship_raw not in (None, ""):
            try:
                ship_date = parse_wall(ship_raw).date().isoformat()
            except ValueError:
                errors.setdefault("shipDate", []).append(f"Could not convert {ship_raw!r} to a date.")
        if errors:
            raise ApiError(400, "The request is invalid.", errors)
        with self._lock:
            order = self._orders.get(int(str(order_id)))
            if order is None:
                raise ApiError(404, f"Order {order_id} not found")
            if order.get("orderStatus") == "cancelled":
                raise ApiError(400, f"Order {order.get('orderNumber')} is cancelled and cannot be shipped.")
            stamp = self._stamp()
            order = {
                **order,
                "orderStatus": "shipped",
                "shipDate": ship_date or stamp[:10],
                "carrierCode": str(body["carrierCode"]),
                "modifyDate": stamp,
            }
            self._store(order["orderId"], order)
            self._ship(order, str(body["carrierCode"]), order["shipDate"], str(body.get("trackingNumber") or ""))
            return {"orderId": order["orderId"], "orderNumber": order["orderNumber"]}

    def create_label_for_order(self, body: object) -> dict[str, Any]:
        """POST /orders/createlabelfororder: buy a label; the order becomes shipped and the shipment is answered.

        The cost is the sandbox's rate table: a base per carrier plus 0.55 a unit shipped (Decimal, to the cent).
        """
        if not isinstance(body, Mapping):
            raise ApiError(400, "The request is invalid.")
        errors: dict[str, list[str]] = {}
        order_id = body.get("orderId")
        if isinstance(order_id, bool) or not isinstance(order_id, int):
            errors.setdefault("orderId", []).append("The orderId field is required.")
        for name in ("carrierCode", "serviceCode"):
            if not body.get(name):
                errors.setdefault(name, []).append(f"The {name} field is required.")
        if errors:
            raise ApiError(400, "The request is invalid.", errors)
        with self._lock:
            order = self._orders.get(int(str(order_id)))
            if order is None:
                raise ApiError(404, f"Order {order_id} not found")
            if order.get("orderStatus") in ("cancelled", "shipped"):
                raise ApiError(400, f"Order {order.get('orderNumber')} is {order.get('orderStatus')}.")
            stamp = self._stamp()
            carrier, service = str(body["carrierCode"]), str(body["serviceCode"])
            units = sum(int(i.get("quantity") or 0) for i in order.get("items") or [] if not i.get("adjustment"))
            cost = _LABEL_BASE.get(carrier, Decimal("9.00")) + Decimal("0.55") * units
            order = {
                **order,
                "orderStatus": "shipped",
                "shipDate": stamp[:10],
                "carrierCode": carrier,
                "serviceCode": service,
                "modifyDate": stamp,
            }
            self._store(order["orderId"], order)
            tracking = f"SBX{self._next_shipment_id:012d}"
            shipment_id = self._ship(order, carrier, order["shipDate"], tracking, cost=cost)
            return json.loads(json.dumps(self._shipments[shipment_id]))  # type: ignore[no-any-return]

    def _ship(
        self, order: Mapping[str, Any], carrier: str, ship_date: str, tracking: str, *, cost: Decimal = Decimal(0)
    ) -> int:
        shipment_id = self._next_shipment_id
        self._next_shipment_id += 1
        self._shipments[shipment_id] = {
            "shipmentId": shipment_id,
            "orderId": order["orderId"],
            "orderKey": order.get("orderKey"),
            "userId": None,
            "customerEmail": order.get("customerEmail"),
            "orderNumber": order.get("orderNumber"),
            "createDate": order["modifyDate"],
            "shipDate": ship_date,
            "shipmentCost": float(cost),
            "insuranceCost": 0.0,
            "trackingNumber": tracking,
            "isReturnLabel": False,
            "batchNumber": None,
            "carrierCode": carrier,
            "serviceCode": order.get("serviceCode"),
            "packageCode": order.get("packageCode"),
            "confirmation": order.get("confirmation"),
            "warehouseId": (order.get("advancedOptions") or {}).get("warehouseId"),
            "voided": False,
            "voidDate": None,
            "marketplaceNotified": False,
            "notifyErrorMessage": None,
            "shipTo": order.get("shipTo"),
            "weight": order.get("weight"),
            "dimensions": order.get("dimensions"),
            "insuranceOptions": order.get("insuranceOptions"),
            "advancedOptions": order.get("advancedOptions"),
            "shipmentItems": [i for i in order.get("items") or [] if not i.get("adjustment")],
            "labelData": None,
            "formData": None,
        }
        return shipment_id

    def list_shipments(self, params: Mapping[str, str]) -> dict[str, Any]:
        """GET /shipments: filtered by order, ship date, create date or webhook batch; newest id last."""
        page, page_size = _paging(params)
        order_id = _int_param(params, "orderId")
        number = (params.get("orderNumber") or "").strip().lower()
        ship_low, ship_high = _range(params, "shipDate")
        create_low, create_high = _range(params, "createDate")
        with_items = (params.get("includeShipmentItems") or "").lower() == "true"
        batch = params.get("batchId")
        with self._lock:
            wanted = set(self._batches.get(batch, [])) if batch else None
            rows = []
            for shipment_id, shipment in sorted(self._shipments.items()):
                if order_id is not None and shipment["orderId"] != order_id:
                    continue
                if number and not str(shipment.get("orderNumber") or "").lower().startswith(number):
                    continue
                if wanted is not None and shipment_id not in wanted:
                    continue
                shipped = parse_wall(shipment["shipDate"])
                created = parse_wall(shipment["createDate"])
                if (ship_low and shipped < ship_low) or (ship_high and shipped > ship_high):
                    continue
                if (create_low and created < create_low) or (create_high and created > create_high):
                    continue
                row = json.loads(json.dumps(shipment))
                if not with_items:
                    row["shipmentItems"] = None
                rows.append(row)
        total = len(rows)
        return {
            "shipments": rows[(page - 1) * page_size : page * page_size],
            "total": total,
            "page": page,
            "pages": math.ceil(total / page_size),
        }

    # -- stores and webhooks -------------------------------------------------------------------------------

    def list_stores(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        marketplace = _int_param(params, "marketplaceId")
        with self._lock:
            return [
                dict(store)
                for store in self._stores
                if marketplace is None or store.get("marketplaceId") == marketplace
            ]

    def subscribe(self, body: object) -> dict[str, Any]:
        """POST /webhooks/subscribe: remember who wants which event."""
        if not isinstance(body, Mapping):
            raise ApiError(400, "The request is invalid.")
        errors: dict[str, list[str]] = {}
        target = body.get("target_url")
        if not isinstance(target, str) or not target.startswith(("http://", "https://")):
            errors["target_url"] = ["A valid target_url is required."]
        event = body.get("event")
        if event not in WEBHOOK_EVENTS:
            errors["event"] = [f"'{event}' is not a valid event."]
        store = body.get("store_id")
        if store is not None and (isinstance(store, bool) or not isinstance(store, int)):
            errors["store_id"] = ["store_id must be a number or null."]
        if errors:
            raise ApiError(400, "The request is invalid.", errors)
        with self._lock:
            hook_id = self._next_webhook_id
            self._next_webhook_id += 1
            self._webhooks[hook_id] = {
                "id": hook_id,
                "target_url": target,
                "event": event,
                "store_id": store,
                "friendly_name": body.get("friendly_name"),
            }
        return {"id": hook_id}

    def unsubscribe(self, hook_id: int) -> None:
        with self._lock:
            if self._webhooks.pop(hook_id, None) is None:
                raise ApiError(404, f"Webhook {hook_id} not found")

    def list_webhooks(self) -> dict[str, Any]:
        """GET /webhooks, in ShipStation's PascalCase shape."""
        with self._lock:
            return {
                "webhooks": [
                    {
                        "IsLabelAPIHook": False,
                        "WebHookID": hook["id"],
                        "SellerID": None,
                        "StoreID": hook["store_id"],
                        "HookType": hook["event"],
                        "MessageFormat": "Json",
                        "Url": hook["target_url"],
                        "Name": hook["friendly_name"],
                        "BulkCopyBatchID": None,
                        "BulkCopyRecordID": None,
                        "Active": True,
                        "WebhookLogs": [],
                        "Seller": None,
                        "Store": None,
                    }
                    for _, hook in sorted(self._webhooks.items())
                ]
            }


# -- query parsing --------------------------------------------------------------------------------------


def _int_param(params: Mapping[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(str(raw))
    except ValueError:
        raise ApiError(400, "The request is invalid.", {name: [f"The value '{raw}' is not valid."]}) from None


def _paging(params: Mapping[str, str]) -> tuple[int, int]:
    page = _int_param(params, "page")
    page = 1 if page is None else page
    size = _int_param(params, "pageSize")
    size = DEFAULT_PAGE_SIZE if size is None else size
    if page < 1:
        raise ApiError(400, "The request is invalid.", {"page": ["page must be 1 or more."]})
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise ApiError(
            400, "The request is invalid.", {"pageSize": [f"pageSize must be between 1 and {MAX_PAGE_SIZE}."]}
        )
    return page, size


def _descending(params: Mapping[str, str]) -> bool:
    raw = (params.get("sortDir") or "ASC").upper()
    if raw not in {"ASC", "DESC"}:
        raise ApiError(400, "The request is invalid.", {"sortDir": [f"'{raw}' is not ASC or DESC."]})
    return raw == "DESC"


def _range(params: Mapping[str, str], prefix: str) -> tuple[datetime | None, datetime | None]:
    bounds: list[datetime | None] = []
    for suffix in ("Start", "End"):
        name = f"{prefix}{suffix}"
        raw = params.get(name)
        if raw in (None, ""):
            bounds.append(None)
            continue
        try:
            # A "+" in a query string that was not percent-encoded arrives as a space.
            bounds.append(parse_wall(str(raw)))
        except ValueError:
            raise ApiError(400, "The request is invalid.", {name: [f"The value '{raw}' is not valid."]}) from None
    return bounds[0], bounds[1]


def _ranges(params: Mapping[str, str], fields: Mapping[str, str]) -> dict[str, tuple[datetime | None, datetime | None]]:
    ranges = {}
    for prefix, field in fields.items():
        low, high = _range(params, prefix)
        if low is not None or high is not None:
            ranges[field] = (low, high)
    return ranges


def _in_ranges(
    walls: Mapping[str, datetime | None], ranges: Mapping[str, tuple[datetime | None, datetime | None]]
) -> bool:
    for field, (low, high) in ranges.items():
        value = walls.get(field)
        if value is None:
            return False
        # Both bounds inclusive, compared as Pacific wall-clock time.
        if (low is not None and value < low) or (high is not None and value > high):
            return False
    return True


def _fault_from(raw: Mapping[str, Any]) -> Fault:
    kind = raw.get("kind")
    if kind not in {"status", "throttle", *CONNECTION_FAULT_KINDS}:
        known = ", ".join(repr(k) for k in ["status", "throttle", *sorted(CONNECTION_FAULT_KINDS)])
        raise ValueError(f"unknown fault kind {kind!r}; use one of {known}")
    return Fault(
        kind=kind,
        status=int(raw.get("status", 429 if kind == "throttle" else 500)),
        times=int(raw.get("times", 1)),
        path=str(raw.get("path", "")),
        delay_ms=int(raw.get("delay_ms", 0)),
    )


# -- the ASGI app -----------------------------------------------------------------------------------------


def _error(exc: ApiError) -> Response:
    return JSONResponse(exc.body(), exc.status)


async def _json_body(request: Request) -> Any:
    try:
        return jsonwire.loads(await request.body())
    except ValueError:
        raise ApiError(400, "The request is invalid.", {"body": ["The body is not valid JSON."]}) from None


def create_app(sandbox: ShipStationSandbox) -> FastAPI:
    """Build the FastAPI app that serves `sandbox` over HTTP."""
    app = FastAPI(title="ShipStation v1 API sandbox", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(ApiError)
    async def api_errors(request: Request, exc: ApiError) -> Response:
        return _error(exc)

    @app.middleware("http")
    async def gate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.url.path.startswith("/_sandbox/"):
            return await call_next(request)
        answer, throttled = await _admit(sandbox, request, call_next)
        sandbox._log(request, answer.status_code, throttled)
        return answer

    @app.get("/orders")
    async def orders(request: Request) -> Response:
        return JSONResponse(sandbox.list_orders(request.query_params))

    @app.get("/orders/{order_id}")
    async def order(order_id: str) -> Response:
        if not order_id.isdigit():
            raise ApiError(404, "No HTTP resource was found that matches the request URI.")
        return JSONResponse(sandbox.get_order(int(order_id)))

    @app.post("/orders/createorder")
    async def create_order(request: Request) -> Response:
        return JSONResponse(sandbox.create_order(await _json_body(request)))

    @app.post("/orders/createorders")
    async def create_orders(request: Request) -> Response:
        return JSONResponse(sandbox.create_orders(await _json_body(request)))

    @app.post("/orders/markasshipped")
    async def mark_as_shipped(request: Request) -> Response:
        return JSONResponse(sandbox.mark_as_shipped(await _json_body(request)))

    @app.post("/orders/createlabelfororder")
    async def create_label(request: Request) -> Response:
        return JSONResponse(sandbox.create_label_for_order(await _json_body(request)))

    @app.get("/shipments")
    async def shipments(request: Request) -> Response:
        return JSONResponse(sandbox.list_shipments(request.query_params))

    @app.get("/stores")
    async def stores(request: Request) -> Response:
        return JSONResponse(sandbox.list_stores(request.query_params))

    @app.get("/webhooks")
    async def webhooks() -> Response:
        return JSONResponse(sandbox.list_webhooks())

    @app.post("/webhooks/subscribe")
    async def subscribe(request: Request) -> Response:
        return JSONResponse(sandbox.subscribe(await _json_body(request)), 201)

    @app.delete("/webhooks/{hook_id}")
    async def unsubscribe(hook_id: int) -> Response:
        sandbox.unsubscribe(hook_id)
        return Response(status_code=200)

    @app.post("/_sandbox/faults")
    async def add_fault(request: Request) -> Response:
        try:
            fault = sandbox.inject(await request.json())
        except (ValueError, TypeError, AttributeError) as exc:
            return JSONResponse({"Message": str(exc)}, 400)
        return JSONResponse({"fault": asdict(fault)}, 201)

    @app.delete("/_sandbox/faults")
    async def clear_faults() -> Response:
        sandbox.clear_faults()
        return Response(status_code=204)

    @app.get("/_sandbox/stats")
    async def stats() -> Response:
        return JSONResponse(asdict(sandbox.stats))

    # Last, so outermost: it turns the connection faults' marker answers into dropped connections.
    app.add_middleware(ConnectionFaults)
    return app


async def _admit(
    sandbox: ShipStationSandbox, request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> tuple[Response, bool]:
    """Auth, injected faults and the rate limit, in ShipStation's order: (answer, whether it was a 429)."""
    pair = sandbox._authorize(request.headers.get("Authorization"))
    if pair is None:
        return PlainTextResponse("401 Unauthorized", 401, headers={"WWW-Authenticate": 'Basic realm="api"'}), False
    fault = sandbox._take_fault(request.url.path)
    if fault is not None and fault.kind == "throttle":
        headers = sandbox._current_headers(pair)
        headers["X-Rate-Limit-Remaining"] = "0"
        return JSONResponse({"message": "Too Many Requests"}, 429, headers=headers), True
    accepted, headers = sandbox._count(pair)
    if not accepted:
        return JSONResponse({"message": "Too Many Requests"}, 429, headers=headers), True
    if fault is not None and is_connection_fault(fault.kind):
        # No answer at all, before the work or after it was done.
        answer: Response = await around_work(fault.kind, fault.delay_ms, lambda: call_next(request))
    elif fault is not None:
        answer = JSONResponse({"Message": "An error has occurred."}, fault.status)
    else:
        try:
            answer = await call_next(request)
        except ApiError as exc:  # raised before routing reached a handler (e.g. by a dependency)
            answer = _error(exc)
    answer.headers.update(headers)
    return answer, False


def run_standalone(host: str = "127.0.0.1", port: int = 8766, orders: int = 250, seed: int = 7) -> None:
    """Serve a sandbox account with `orders` generated orders; print one JSON line of credentials, then block."""
    sandbox = ShipStationSandbox()
    sandbox.add_orders(generate_orders(orders, seed=seed, start=datetime.now(UTC) - timedelta(days=30)))
    server = serve(sandbox.app, host, port)
    sandbox.base_url = server.base_url
    print(json.dumps(sandbox.credentials(server.base_url)), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
