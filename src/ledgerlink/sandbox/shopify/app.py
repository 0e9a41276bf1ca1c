"""A stateful emulator of the Shopify Admin REST API (orders, transactions), on the real wire format.

What it reproduces, because clients get these wrong against the real thing:
- `X-Shopify-Access-Token` auth, answering 401 with Shopify's words;
- cursor pagination: a `Link` header with opaque `page_info` tokens that carry the filters, the sort and the
  position as (sort key, id), so pages stay stable when orders change in between; a request with
  `page_info` may only add `limit` and `fields`;
- the leaky bucket per shop (`X-Shopify-Shop-Api-Call-Limit`, 429 with `Retry-After`), in scaled time;
- injected faults (5xx, 429, and connection resets and timeouts: sandbox/faults.py) for retry tests,
  in-process or over `/_sandbox/faults`;
- webhook subscriptions (`webhooks.json`) and signed deliveries with retries (sandbox/shopify/webhooks.py):
  `add_orders` and `update_order` deliver the topics the change implies to the subscribed addresses.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import threading
import time
from bisect import bisect_left, bisect_right
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledgerlink.sandbox.faults import (
    CONNECTION_FAULT_KINDS,
    ConnectionFaultKind,
    ConnectionFaults,
    around_work,
    is_connection_fault,
)
from ledgerlink.sandbox.server import serve
from ledgerlink.sandbox.shopify.fulfilments import add_routes as add_fulfilment_routes
from ledgerlink.sandbox.shopify.generator import generate_orders, generate_transactions
from ledgerlink.sandbox.shopify.inventory import ShopInventory
from ledgerlink.sandbox.shopify.inventory import add_routes as add_inventory_routes
from ledgerlink.sandbox.shopify.refunds import add_routes as add_refund_routes
from ledgerlink.sandbox.shopify.webhooks import Attempt, SubscriptionRefused, WebhookHub, order_events

DEFAULT_SHOP = "ledgerlink-demo.myshopify.com"
DEFAULT_TOKEN = "shpat_sandbox_0123456789abcdef"
DEFAULT_API_VERSION = "2025-01"
# The app's client secret ("API secret key"): Shopify signs webhooks with it.
DEFAULT_WEBHOOK_SECRET = "shpss_sandbox_fedcba9876543210"  # guards only a local emulator
MAX_LIMIT = 250
DEFAULT_LIMIT = 50

INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"
THROTTLED = "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."
CALL_LIMIT_HEADER = "X-Shopify-Shop-Api-Call-Limit"

_VERSION = re.compile(r"^(\d{4}-\d{2}|unstable)$")
_FILTER_PARAMS = frozenset(
    {
        "status",
        "financial_status",
        "fulfillment_status",
        "created_at_min",
        "created_at_max",
        "updated_at_min",
        "updated_at_max",
        "processed_at_min",
        "processed_at_max",
        "since_id",
        "ids",
        "name",
        "order",
    }
)
_PAGE_PARAMS = frozenset({"page_info", "limit", "fields"})
_SORT_FIELDS = frozenset({"id", "created_at", "updated_at", "processed_at"})
_TIME_FIELDS = ("created_at", "updated_at", "processed_at")
_FINANCIAL = frozenset(
    {"authorized", "pending", "paid", "partially_paid", "refunded", "voided", "partially_refunded", "unpaid", "any"}
)
_UNPAID = frozenset({"authorized", "pending", "partially_paid"})


class _BadRequest(Exception):
    """A request Shopify would refuse with 400 and `{"errors": {param: message}}`."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


@dataclass(slots=True)
class Fault:
    """A fault to inject: `status` answers `status` (e.g. 500, 503), `throttle` answers 429; `times` times.

    The connection faults of sandbox/faults.py answer nothing: `reset`/`reset_after_write` drop the connection
    before or after the work, `timeout`/`timeout_after_write` hold it `delay_ms` (30 s when 0) first.
    `path` limits it to request paths containing that text (e.g. "transactions"); empty matches every API call.
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
class _Listing:
    """A parsed orders query: filters (as the raw strings, so they fit in a page_info token) and sort."""

    filters: dict[str, str]
    sort_field: str = "id"
    descending: bool = True
    # Position of the last (direction "next") or first (direction "previous") order already shown.
    position: tuple[float, int] | None = None
    direction: str = "next"
    times: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)


class ShopifySandbox:
    """One emulated shop: its orders, its rate-limit bucket, its injected faults and a request log."""

    def __init__(
        self,
        shop: str = DEFAULT_SHOP,
        access_token: str = DEFAULT_TOKEN,
        *,
        api_version: str = DEFAULT_API_VERSION,
        bucket_size: int = 40,
        leak_per_second: float = 2.0,
        time_scale: float = 1.0,
        clock: Callable[[], float] | None = None,
        webhook_secret: str = DEFAULT_WEBHOOK_SECRET,
    ) -> None:
        if bucket_size < 1 or leak_per_second <= 0 or time_scale <= 0:
            raise ValueError("bucket_size, leak_per_second and time_scale must be positive")
        self.shop = shop
        self.access_token = access_token
        self.api_version = api_version
        self.bucket_size = bucket_size
        self.leak_per_second = leak_per_second
        self.time_scale = time_scale
        self._clock = clock or time.monotonic
        self._lock = threading.Lock()
        self._orders: dict[int, dict[str, Any]] = {}
        self._times: dict[int, dict[str, float]] = {}
        self._transactions: dict[int, list[dict[str, Any]]] = {}
        self._faults: list[Fault] = []
        self._level = 0.0
        self._level_at = self._clock()
        self.requests: list[LoggedRequest] = []
        self.stats = SandboxStats()
        self._app: FastAPI | None = None
        self.inventory = ShopInventory()  # products, locations and stock levels (sandbox/shopify/inventory.py)
        self.webhook_secret = webhook_secret
        self.webhooks = WebhookHub(
            shop, webhook_secret, api_version=api_version, clock=self._clock, time_scale=time_scale
        )

    # -- for tests and the demo -------------------------------------------------------------------------

    @property
    def app(self) -> FastAPI:
        """The ASGI app (built on first use, never at import time)."""
        if self._app is None:
            self._app = create_app(self)
        return self._app

    def credentials(self, base_url: str) -> dict[str, str]:
        """What a ShopifyChannel config needs to talk to this sandbox at `base_url`."""
        return {
            "base_url": base_url,
            "shop": self.shop,
            "access_token": self.access_token,
            "api_version": self.api_version,
            "webhook_secret": self.webhook_secret,
        }

    def add_orders(self, orders: Iterable[Mapping[str, Any]]) -> None:
        """Store orders (replacing any with the same id). A `transactions` key is kept aside for its endpoint."""
        # A JSON round trip is a fast deep copy, and proves the orders are plain JSON.
        copies: list[dict[str, Any]] = json.loads(json.dumps(list(orders)))
        notify = self.webhooks.active
        events: list[tuple[str, dict[str, Any]]] = []
        with self._lock:
            for order in copies:
                order_id = int(order["id"])
                transactions = order.pop("transactions", None)
                if transactions is not None:
                    self._transactions[order_id] = transactions
                if notify:
                    events.extend(order_events(self._orders.get(order_id), order))
                self._store(order_id, order)
        self._deliver_all(events)

    def update_order(self, order_id: int, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Change an order as the merchant would; `updated_at` moves past every other order's (unless given)."""
        changes = json.loads(json.dumps(dict(changes)))
        with self._lock:
            if order_id not in self._orders:
                raise KeyError(order_id)
            order = {**self._orders[order_id], **changes}
            if "updated_at" not in changes:
                latest = max(t["updated_at"] for t in self._times.values())
                zone = _parse_time(str(order["updated_at"])).tzinfo
                moment = datetime.fromtimestamp(math.floor(latest) + 1, tz=UTC).astimezone(zone)
                order["updated_at"] = moment.isoformat(timespec="seconds")
            events = order_events(self._orders[order_id], order) if self.webhooks.active else []
            self._store(order_id, order)
            changed: dict[str, Any] = json.loads(json.dumps(order))
        self._deliver_all(events)
        return changed

    def deliver(self, topic: str, order: Mapping[str, Any] | int) -> list[Attempt]:
        """Deliver one webhook now to the subscriptions of `topic`: an order (or its id), or a refund payload
        for refunds/create. Returns the attempts (failed ones are retried by `webhooks.retry_due()`)."""
        if isinstance(order, int):
            with self._lock:
                payload = json.loads(json.dumps(self._orders[order]))
        else:
            payload = json.loads(json.dumps(dict(order)))
        return self.webhooks.deliver(topic, payload)

    def deliver_webhooks_with(self, client: Any) -> None:
        """POST webhooks with this httpx.Client (e.g. a Starlette TestClient of an in-process app)."""
        self.webhooks.client = client

    def _deliver_all(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        # Outside the lock: the receiver may well call this shop back while handling the webhook.
        for topic, payload in events:
            self.webhooks.deliver(topic, payload)

    def set_transactions(self, order_id: int, transactions: list[dict[str, Any]]) -> None:
        """Serve these transactions for the order instead of the ones derived from its status."""
        with self._lock:
            self._transactions[order_id] = json.loads(json.dumps(transactions))

    @property
    def orders(self) -> dict[int, dict[str, Any]]:
        """A snapshot of the stored orders by id."""
        with self._lock:
            return dict(self._orders)

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

    # -- internals ----------------------------------------------------------------------------------------

    def _store(self, order_id: int, order: dict[str, Any]) -> None:
        self._orders[order_id] = order
        self._times[order_id] = {
            name: _parse_time(str(order.get(name) or order["created_at"])).timestamp() for name in _TIME_FIELDS
        }

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(path):
                    fault.times -= 1
                    self.stats.faults += 1
                    self._faults = [f for f in self._faults if f.times > 0]
                    return fault
        return None

    def _drip(self) -> tuple[bool, int]:
        """Add this request to the bucket: (accepted, level to report)."""
        with self._lock:
            now = self._clock()
            leaked = (now - self._level_at) * self.leak_per_second * self.time_scale
            self._level = max(0.0, self._level - leaked)
            self._level_at = now
            if self._level + 1 > self.bucket_size:
                return False, self.bucket_size
            self._level += 1
            return True, min(self.bucket_size, math.ceil(self._level))

    @property
    def retry_after(self) -> float:
        """Shopify's fixed Retry-After of 2 seconds, in scaled time."""
        return round(2.0 / self.time_scale, 3) or 0.001

    def _log(self, request: Request, status: int) -> None:
        with self._lock:
            self.stats.requests += 1
            self.requests.append(LoggedRequest(request.method, request.url.path, request.url.query, status))

    # -- the API -----------------------------------------------------------------------------------------

    def list_orders(self, params: Mapping[str, str], page_url: str) -> tuple[dict[str, Any], dict[str, str]]:
        """GET orders.json: (body, headers), or raises `_BadRequest`."""
        limit = _limit(params.get("limit"))
        fields = _fields(params.get("fields"))
        if "page_info" in params:
            extra = sorted(set(params) - _PAGE_PARAMS)
            if extra:
                raise _BadRequest(
                    "page_info",
                    f"Invalid value. Only limit and fields may be sent with page_info, not: {', '.join(extra)}",
                )
            listing = _decode_page_info(params["page_info"])
        else:
            listing = _listing(params)
        with self._lock:
            keys, ids = self._sorted(listing)
            if listing.position is None:
                start = 0
            else:
                here = _sort_key(listing, listing.position)
                if listing.direction == "next":
                    start = bisect_right(keys, here)
                else:
                    start = max(0, bisect_left(keys, here) - limit)
            page_ids = ids[start : start + limit]
            body = {"orders": [_project(self._orders[i], fields) for i in page_ids]}
            headers: dict[str, str] = {}
            links = []
            if page_ids and start > 0:
                links.append(self._link(page_url, listing, page_ids[0], "previous", limit, params.get("fields")))
            if page_ids and start + len(page_ids) < len(ids):
                links.append(self._link(page_url, listing, page_ids[-1], "next", limit, params.get("fields")))
            if links:
                headers["Link"] = ", ".join(links)
        return body, headers

    def count_orders(self, params: Mapping[str, str]) -> int:
        """GET orders/count.json (the same filters as the list, no paging)."""
        listing = _listing({k: v for k, v in params.items() if k not in {"limit", "fields", "order"}})
        with self._lock:
            return sum(1 for order_id in self._orders if self._matches(order_id, listing))

    def get_order(self, order_id: int, fields: str | None) -> dict[str, Any] | None:
        with self._lock:
            order = self._orders.get(order_id)
            return None if order is None else _project(order, _fields(fields))

    def list_transactions(self, order_id: int) -> list[dict[str, Any]] | None:
        with self._lock:
            order = self._orders.get(order_id)
            if order is None:
                return None
            given = self._transactions.get(order_id)
        return given if given is not None else generate_transactions(order)

    def _sorted(self, listing: _Listing) -> tuple[list[tuple[float, int]], list[int]]:
        rows = sorted(
            (_sort_key(listing, self._position(order_id, listing.sort_field)), order_id)
            for order_id in self._orders
            if self._matches(order_id, listing)
        )
        return [key for key, _ in rows], [order_id for _, order_id in rows]

    def _position(self, order_id: int, sort_field: str) -> tuple[float, int]:
        value = float(order_id) if sort_field == "id" else self._times[order_id][sort_field]
        return (value, order_id)

    def _matches(self, order_id: int, listing: _Listing) -> bool:
        order = self._orders[order_id]
        filters = listing.filters
        status = filters.get("status", "open")
        cancelled = order.get("cancelled_at") is not None
        closed = order.get("closed_at") is not None
        if (
            (status == "open" and (cancelled or closed))
            or (status == "closed" and not closed)
            or (status == "cancelled" and not cancelled)
        ):
            return False
        financial = filters.get("financial_status", "any")
        if financial == "unpaid":
            if order.get("financial_status") not in _UNPAID:
                return False
        elif financial != "any" and order.get("financial_status") != financial:
            return False
        if not _fulfillment_matches(filters.get("fulfillment_status", "any"), order.get("fulfillment_status")):
            return False
        times = self._times[order_id]
        for name, (low, high) in listing.times.items():
            if (low is not None and times[name] < low) or (high is not None and times[name] > high):
                return False
        if "since_id" in filters and order_id <= int(filters["since_id"]):
            return False
        if "ids" in filters and order_id not in {int(i) for i in filters["ids"].split(",") if i.strip()}:
            return False
        if "name" in filters:
            wanted = filters["name"].strip()
            name = str(order.get("name", ""))
            if name not in {wanted, f"#{wanted.lstrip('#')}"}:
                return False
        return True

    def _link(self, page_url: str, listing: _Listing, order_id: int, rel: str, limit: int, fields: str | None) -> str:
        token = _encode_page_info(listing, self._position(order_id, listing.sort_field), rel)
        query = f"limit={limit}&page_info={token}"
        if fields:
            query += f"&fields={fields}"
        return f'<{page_url}?{query}>; rel="{rel}"'


# -- query parsing --------------------------------------------------------------------------------------


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise _BadRequest("limit", "Invalid value.") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise _BadRequest("limit", f"Invalid value. limit must be between 1 and {MAX_LIMIT}")
    return limit


def _fields(raw: str | None) -> list[str] | None:
    if not raw:
        return None
    return [name.strip() for name in raw.split(",") if name.strip()]


def _project(order: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    if fields is None:
        return order
    return {name: order[name] for name in fields if name in order}


def _parse_time(raw: str) -> datetime:
    parsed = datetime.fromisoformat(raw)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _fulfillment_matches(wanted: str, actual: object) -> bool:
    if wanted == "any":
        return True
    if wanted == "shipped":
        return actual == "fulfilled"
    if wanted == "unshipped":
        return actual is None
    if wanted == "unfulfilled":
        return actual in {None, "partial"}
    return actual == wanted


def _listing(params: Mapping[str, str]) -> _Listing:
    filters = {name: params[name] for name in _FILTER_PARAMS if name in params and name != "order"}
    listing = _Listing(filters=filters)
    sort = params.get("order", "id desc").strip().split()
    if len(sort) not in {1, 2} or sort[0] not in _SORT_FIELDS or (len(sort) == 2 and sort[1] not in {"asc", "desc"}):
        raise _BadRequest("order", f"Invalid value: {params.get('order')!r}")
    listing.sort_field = sort[0]
    listing.descending = len(sort) == 2 and sort[1] == "desc"
    if "order" not in params:
        listing.descending = True
    _check_filters(listing)
    return listing


def _check_filters(listing: _Listing) -> None:
    """Validate the filters and pre-parse the time ranges."""
    filters = listing.filters
    if filters.get("status", "open") not in {"open", "closed", "cancelled", "any"}:
        raise _BadRequest("status", "Invalid value.")
    if filters.get("financial_status", "any") not in _FINANCIAL:
        raise _BadRequest("financial_status", "Invalid value.")
    for name in ("since_id",):
        if name in filters and not filters[name].strip().isdigit():
            raise _BadRequest(name, "Invalid value.")
    if "ids" in filters and not all(i.strip().isdigit() for i in filters["ids"].split(",") if i.strip()):
        raise _BadRequest("ids", "Invalid value.")
    for name in _TIME_FIELDS:
        low = _time_param(filters, f"{name}_min")
        high = _time_param(filters, f"{name}_max")
        if low is not None or high is not None:
            listing.times[name] = (low, high)


def _time_param(filters: Mapping[str, str], name: str) -> float | None:
    raw = filters.get(name)
    if raw is None or raw == "":
        return None
    try:
        # A "+" in a query string that was not percent-encoded arrives as a space.
        return _parse_time(raw.strip().replace(" ", "+")).timestamp()
    except ValueError:
        raise _BadRequest(name, "Invalid value.") from None


def _sort_key(listing: _Listing, position: tuple[float, int]) -> tuple[float, int]:
    # Descending order is ascending order of the negated key, so one bisect serves both.
    value, order_id = position
    return (-value, -order_id) if listing.descending else (value, order_id)


def _encode_page_info(listing: _Listing, position: tuple[float, int], direction: str) -> str:
    payload = {
        "f": listing.filters,
        "s": listing.sort_field,
        "d": listing.descending,
        "p": [position[0], position[1]],
        "r": direction,
    }
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_page_info(token: str) -> _Listing:
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
        filters = {str(k): str(v) for k, v in payload["f"].items()}
        listing = _Listing(
            filters=filters,
            sort_field=str(payload["s"]),
            descending=bool(payload["d"]),
            position=(float(payload["p"][0]), int(payload["p"][1])),
            direction="previous" if payload["r"] == "previous" else "next",
        )
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, binascii.Error):
        raise _BadRequest("page_info", "Invalid value.") from None
    if listing.sort_field not in _SORT_FIELDS:
        raise _BadRequest("page_info", "Invalid value.")
    _check_filters(listing)
    return listing


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


def create_app(sandbox: ShopifySandbox) -> FastAPI:
    """Build the FastAPI app that serves `sandbox` over HTTP."""
    app = FastAPI(title="Shopify Admin API sandbox", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(StarletteHTTPException)
    async def shopify_errors(request: Request, exc: StarletteHTTPException) -> Response:
        return JSONResponse({"errors": "Not Found" if exc.status_code == 404 else exc.detail}, exc.status_code)

    @app.middleware("http")
    async def gate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if not request.url.path.startswith("/admin/"):
            return await call_next(request)
        refusal, headers, dropped = _admit(sandbox, request)
        if dropped is not None:  # an injected connection fault: no answer at all, before or after the work
            answer = await around_work(dropped.kind, dropped.delay_ms, lambda: call_next(request))
        else:
            answer = refusal if refusal is not None else await call_next(request)
        answer.headers.update(headers)
        sandbox._log(request, answer.status_code)
        return answer

    @app.get("/admin/api/{version}/orders.json")
    async def orders(version: str, request: Request) -> Response:
        _check_version(version)
        params = dict(request.query_params)
        page_url = f"{str(request.base_url).rstrip('/')}{request.url.path}"
        try:
            body, headers = sandbox.list_orders(params, page_url)
        except _BadRequest as exc:
            return JSONResponse({"errors": {exc.param: exc.message}}, 400)
        return JSONResponse(body, headers=headers)

    @app.get("/admin/api/{version}/orders/count.json")
    async def count(version: str, request: Request) -> Response:
        _check_version(version)
        try:
            return JSONResponse({"count": sandbox.count_orders(dict(request.query_params))})
        except _BadRequest as exc:
            return JSONResponse({"errors": {exc.param: exc.message}}, 400)

    @app.get("/admin/api/{version}/orders/{order_id:int}.json")
    async def order(version: str, order_id: int, request: Request) -> Response:
        _check_version(version)
        found = sandbox.get_order(order_id, request.query_params.get("fields"))
        if found is None:
            return JSONResponse({"errors": "Not Found"}, 404)
        return JSONResponse({"order": found})

    @app.get("/admin/api/{version}/orders/{order_id:int}/transactions.json")
    async def transactions(version: str, order_id: int) -> Response:
        _check_version(version)
        found = sandbox.list_transactions(order_id)
        if found is None:
            return JSONResponse({"errors": "Not Found"}, 404)
        return JSONResponse({"transactions": found})

    @app.get("/admin/api/{version}/webhooks.json")
    async def list_webhooks(version: str, request: Request) -> Response:
        _check_version(version)
        query = request.query_params
        found = sandbox.webhooks.subscriptions(query.get("topic"), query.get("address"))
        return JSONResponse({"webhooks": [sub.to_json() for sub in found]})

    @app.get("/admin/api/{version}/webhooks/count.json")
    async def count_webhooks(version: str, request: Request) -> Response:
        _check_version(version)
        query = request.query_params
        return JSONResponse({"count": len(sandbox.webhooks.subscriptions(query.get("topic"), query.get("address")))})

    @app.post("/admin/api/{version}/webhooks.json")
    async def create_webhook(version: str, request: Request) -> Response:
        _check_version(version)
        try:
            body = await request.json()
            hook = body["webhook"]
            topic, address = str(hook["topic"]), str(hook["address"])
            fmt = str(hook.get("format", "json"))
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"errors": {"webhook": "Required parameter missing or invalid"}}, 400)
        try:
            sub = sandbox.webhooks.subscribe(topic, address, fmt, api_version=version)
        except SubscriptionRefused as exc:
            return JSONResponse({"errors": {exc.field: [exc.message]}}, 422)
        return JSONResponse({"webhook": sub.to_json()}, 201)

    @app.get("/admin/api/{version}/webhooks/{webhook_id:int}.json")
    async def get_webhook(version: str, webhook_id: int) -> Response:
        _check_version(version)
        sub = sandbox.webhooks.get(webhook_id)
        if sub is None:
            return JSONResponse({"errors": "Not Found"}, 404)
        return JSONResponse({"webhook": sub.to_json()})

    @app.delete("/admin/api/{version}/webhooks/{webhook_id:int}.json")
    async def delete_webhook(version: str, webhook_id: int) -> Response:
        _check_version(version)
        if not sandbox.webhooks.unsubscribe(webhook_id):
            return JSONResponse({"errors": "Not Found"}, 404)
        return JSONResponse({})

    @app.post("/_sandbox/webhooks/deliver")
    async def deliver_webhook(request: Request) -> Response:
        """Test hook: {"topic": …, "order_id": …} delivers that order (in a worker thread: the receiver may be
        this very process)."""
        try:
            raw = await request.json()
            topic, order_id = str(raw["topic"]), int(raw["order_id"])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"errors": "send {topic, order_id}"}, 400)
        if order_id not in sandbox.orders:
            return JSONResponse({"errors": "Not Found"}, 404)
        attempts = await run_in_threadpool(sandbox.deliver, topic, order_id)
        return JSONResponse({"attempts": [asdict(a) for a in attempts]})

    @app.post("/_sandbox/faults")
    async def add_fault(request: Request) -> Response:
        try:
            fault = sandbox.inject(await request.json())
        except (ValueError, TypeError, AttributeError) as exc:
            return JSONResponse({"errors": str(exc)}, 400)
        return JSONResponse({"fault": asdict(fault)}, 201)

    @app.delete("/_sandbox/faults")
    async def clear_faults() -> Response:
        sandbox.clear_faults()
        return Response(status_code=204)

    @app.get("/_sandbox/stats")
    async def stats() -> Response:
        return JSONResponse(asdict(sandbox.stats))

    add_refund_routes(app, sandbox)  # orders/{id}/refunds.json and refunds/calculate.json (refunds.py)
    add_inventory_routes(app, sandbox)  # products, locations, inventory_levels (inventory.py)
    add_fulfilment_routes(app, sandbox)  # fulfillment_orders.json and fulfillments.json (fulfilments.py)

    # Last, so outermost: it turns the connection faults' marker answers into dropped connections.
    app.add_middleware(ConnectionFaults)
    return app


def _check_version(version: str) -> None:
    if not _VERSION.match(version):
        raise StarletteHTTPException(404)


def _admit(sandbox: ShopifySandbox, request: Request) -> tuple[Response | None, dict[str, str], Fault | None]:
    """Auth, rate limit and injected faults, in Shopify's order.

    Returns the answer that stops the request (None lets it through), the headers every answer gets, and the
    connection fault to carry out instead of answering, if one is armed.
    """
    if request.headers.get("X-Shopify-Access-Token") != sandbox.access_token:
        return JSONResponse({"errors": INVALID_TOKEN}, 401), {}, None
    fault = sandbox._take_fault(request.url.path)
    if fault is not None and fault.kind == "throttle":
        return _throttled(sandbox), {}, None
    accepted, level = sandbox._drip()
    if not accepted:
        return _throttled(sandbox), {}, None
    headers = {CALL_LIMIT_HEADER: f"{level}/{sandbox.bucket_size}"}
    if fault is not None and is_connection_fault(fault.kind):
        return None, headers, fault
    if fault is not None:
        return JSONResponse({"errors": _STATUS_TEXT.get(fault.status, "Error")}, fault.status), headers, None
    return None, headers, None


_STATUS_TEXT = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    400: "Bad Request",
    404: "Not Found",
}


def _throttled(sandbox: ShopifySandbox) -> Response:
    with sandbox._lock:
        sandbox.stats.throttled += 1
    headers = {
        CALL_LIMIT_HEADER: f"{sandbox.bucket_size}/{sandbox.bucket_size}",
        "Retry-After": str(sandbox.retry_after),
    }
    return JSONResponse({"errors": THROTTLED}, 429, headers=headers)


def run_standalone(host: str = "127.0.0.1", port: int = 8765, orders: int = 250, seed: int = 7) -> None:
    """Serve a sandbox shop with `orders` generated orders; print one JSON line of credentials, then block."""
    sandbox = ShopifySandbox()
    sandbox.add_orders(generate_orders(orders, seed=seed, start=datetime.now(UTC) - timedelta(days=30)))
    server = serve(sandbox.app, host, port)
    sandbox.webhooks.start_worker()
    print(json.dumps(sandbox.credentials(server.base_url)), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.webhooks.close()
        server.stop()
