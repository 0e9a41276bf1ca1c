"""ShipStation (v1 API) as a selling channel: pull changed orders by modify date and parse them into `Order`.

Three things shape this adapter:

- **Pacific wall-clock time.** ShipStation writes and filters every date as US Pacific local time without an
  offset (`2026-11-01T01:30:00.0000000`), and compares them as such. In November's repeated hour an order
  modified at 01:10 PST is "before" one modified at 01:40 PDT although it happened later; in March's gap the
  wall clock jumps from 02:00 to 03:00. Cursors are stored as aware UTC (the earliest instant a wall time can
  mean), and a cursor that falls in the repeated hour is read from an hour earlier, so nothing modified in
  that hour is skipped; the orders read twice are dropped by the engine's content hash.
- **Its sums.** `orderTotal` = Σ item `unitPrice` × `quantity` (discounts are items with `adjustment: true`
  and a negative price) + `shippingAmount` + `taxAmount`. Discounts become order-level discounts; the
  order's tax is spread over the product lines to the cent (ShipStation does not say which line was taxed).
  A total that these parts do not explain is refused, never silently booked as a discount.
- **40 requests a minute per key pair**, announced in `X-Rate-Limit-*` headers: the adapter waits for the
  window to reset when it has used it up instead of running into 429s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from ledgerlink import jsonwire
from ledgerlink.channels.base import ChannelPage, Cursor, Window, register_channel
from ledgerlink.channels.fields import FieldReader, key_text
from ledgerlink.domain.errors import MappingError, PermanentError, RetryableError
from ledgerlink.domain.money import ZERO, cents, parse_quantity, shown, total
from ledgerlink.domain.order import (
    Address,
    Customer,
    Discount,
    Fee,
    Order,
    OrderLine,
    Payment,
    ShippingLine,
    TaxLine,
    Totals,
)
from ledgerlink.http import RetryPolicy, new_client, rate_limit_wait, send_with_retries

PACIFIC = ZoneInfo("America/Los_Angeles")
DEFAULT_BASE_URL = "https://ssapi.shipstation.com"
PAGE_SIZE = 500
MAX_THROTTLED_TRIES = 8
MAX_FAILED_TRIES = 5
# ShipStation's window is a minute; when it does not say how long to wait, wait a whole one.
DEFAULT_RESET_SECONDS = 60.0
RECONNECT_MESSAGE = "ShipStation refused the API key and secret: reconnect the account"
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
TAX_TITLE = "Sales tax"
# The store keeps ids and order numbers in 64 characters (ShipStation's order numbers hold at most 50).
_FILTER_FORMAT = "%Y-%m-%d %H:%M:%S"


class ShipStationConfig(BaseModel):
    """How to reach one ShipStation account; the connection wizard renders these fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: SecretStr = Field(
        description="API Key from ShipStation's Settings → Account → API Settings",
        json_schema_extra={"secret": True},
    )
    api_secret: SecretStr = Field(
        description="API Secret from the same page",
        json_schema_extra={"secret": True},
    )
    base_url: str = Field(
        default=DEFAULT_BASE_URL,
        description="Where to send requests; only the local sandbox changes it",
        min_length=1,
    )
    store_id: int | None = Field(
        default=None,
        description="Only orders of this ShipStation store (marketplace); empty for every store",
    )
    order_statuses: tuple[str, ...] = Field(
        default=("shipped",),
        description="Which ShipStation order statuses to sync; empty for every status",
    )
    ship_notify_token: str = Field(
        default="",
        description="Set by ledgerlink when it registers SHIP_NOTIFY: the unguessable part of the webhook address",
    )
    ship_notify_hook: int | None = Field(
        default=None, description="Set by ledgerlink: the id of its SHIP_NOTIFY subscription at ShipStation"
    )

    @field_validator("order_statuses")
    @classmethod
    def _known_statuses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - ORDER_STATUSES)
        if unknown:
            raise ValueError(f"unknown ShipStation order status {', '.join(unknown)}; known: {sorted(ORDER_STATUSES)}")
        return value

    @field_validator("base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.strip().rstrip("/")


# -- Pacific time ---------------------------------------------------------------------------------------


def parse_pacific(raw: str) -> datetime:
    """A ShipStation timestamp as an aware UTC datetime; raises ValueError if it is not one.

    ShipStation sends Pacific wall-clock time without an offset. A wall time of November's repeated hour
    means two instants and one of March's skipped hour means none; either way we take the *earliest*
    instant it can mean, so a cursor built from it never jumps past an order. (An explicit offset, which
    ShipStation does not send, is honoured.)
    """
    parsed = datetime.fromisoformat(raw.strip())
    try:
        if parsed.tzinfo is not None:
            return parsed.astimezone(UTC)
        first = parsed.replace(tzinfo=PACIFIC, fold=0).astimezone(UTC)
        second = parsed.replace(tzinfo=PACIFIC, fold=1).astimezone(UTC)
    except OverflowError:  # 9999-12-31 late in the evening, Pacific, is past the last UTC instant
        raise ValueError(f"{raw!r} is out of range") from None
    return min(first, second)


def is_repeated_hour(wall: datetime) -> bool:
    """Whether a naive Pacific wall time happens twice (November's fall-back hour)."""
    early = wall.replace(tzinfo=PACIFIC, fold=0).utcoffset()
    late = wall.replace(tzinfo=PACIFIC, fold=1).utcoffset()
    return early is not None and late is not None and early > late


def pacific_wall(moment: datetime) -> datetime:
    """An aware moment (naive is read as UTC) as naive Pacific wall-clock time."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(PACIFIC).replace(tzinfo=None)


def modify_date_start(cursor: Cursor) -> str:
    """The `modifyDateStart` that reads every order modified at or after `cursor`.

    ShipStation compares wall-clock times. During the repeated hour an order can be modified later than the
    cursor with an *earlier* wall time (01:10 PST after 01:40 PDT), so a cursor whose wall time lies in that
    hour reads from an hour earlier, before the hour began. The March gap needs nothing: a UTC instant
    always has a wall time, and later instants have later wall times there.
    """
    wall = pacific_wall(cursor.updated_at)
    if is_repeated_hour(wall):
        wall -= timedelta(hours=1)
    # Whole seconds, as ShipStation's own examples write the filter; flooring only reads a little more.
    return wall.strftime(_FILTER_FORMAT)


def _filter_time(moment: datetime, *, upper: bool = False) -> str:
    """A window bound as a Pacific filter; an ambiguous bound is widened to cover both readings."""
    wall = pacific_wall(moment)
    if is_repeated_hour(wall):
        wall += timedelta(hours=1) if upper else -timedelta(hours=1)
    if upper:
        wall = wall.replace(microsecond=0) + timedelta(seconds=1 if wall.microsecond else 0)
    return wall.strftime(_FILTER_FORMAT)


# -- the adapter ----------------------------------------------------------------------------------------


@register_channel
class ShipStationChannel:
    """The ShipStation adapter: `pull` reads `GET /orders` by `modifyDate`; `parse` maps one order, purely."""

    kind: ClassVar[str] = "shipstation"
    # Typed as the `Channel` protocol declares it; the adapter itself works with `ShipStationConfig`.
    Config: ClassVar[type[BaseModel]] = ShipStationConfig

    def __init__(
        self,
        config: BaseModel | Mapping[str, Any],
        *,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        page_size: int = PAGE_SIZE,
    ) -> None:
        if isinstance(config, ShipStationConfig):
            self.config = config
        elif isinstance(config, BaseModel):
            self.config = ShipStationConfig.model_validate(config.model_dump())
        else:
            self.config = ShipStationConfig.model_validate(config)
        if not 1 <= page_size <= PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {PAGE_SIZE}")
        self._owns_client = client is None
        self._client = client if client is not None else new_client()
        self._sleep = sleep
        self._clock = clock
        self._page_size = page_size
        # When the current rate-limit window ends (on `clock`), once the last answer said none are left.
        self._resume_at: float | None = None
        self._store_names: dict[int, tuple[str, str]] | None = None

    # -- pull -------------------------------------------------------------------------------------------

    def pull(self, cursor: Cursor | None, window: Window) -> Iterator[ChannelPage]:
        """Orders modified since `cursor` (inclusive, plus the repeated hour's margin), oldest first.

        With `window.order_numbers`, fetches exactly those orders instead and leaves the cursor alone.
        """
        stores = self._stores()
        if window.order_numbers:
            for number in window.order_numbers:
                params = self._params(window) | {"orderNumber": number}
                for orders in self._numbered_pages(params):
                    # `orderNumber` matches by prefix; keep the order asked for.
                    exact = [o for o in orders if str(o.get("orderNumber")) == number]
                    yield ChannelPage(orders=self._prepare(exact, stores), next_cursor=None)
            return
        params = self._params(window) | {"sortBy": "ModifyDate", "sortDir": "ASC"}
        start = modify_date_start(cursor) if cursor is not None else None
        position = cursor
        page = 1
        seen: set[tuple[object, object]] = set()
        first = True
        while True:
            query = dict(params, page=str(page), pageSize=str(self._page_size))
            if start is not None:
                query["modifyDateStart"] = start
            body = self._get_json("/orders", query)
            orders = _orders_of(body)
            position = _last_position(orders) or position
            # Paging restarts from the last modify date (see below), which repeats its boundary orders.
            fresh = [o for o in orders if (o.get("orderId"), o.get("modifyDate")) not in seen]
            seen.update((o.get("orderId"), o.get("modifyDate")) for o in orders)
            wanted = [o for o in fresh if self._wanted(o)]
            if first or fresh:
                yield ChannelPage(orders=self._prepare(wanted, stores), next_cursor=position)
            first = False
            if not orders or page >= _pages(body):
                return
            # Page numbers shift when an order read earlier is modified meanwhile (it moves to the end), which
            # would skip one; restarting from the last modify date cannot. Only a page full of one modify
            # date (a bulk edit) makes no progress that way, and then the next page number is read.
            following = _filter_of(orders[-1])
            if following is None or following == start:
                page += 1
            else:
                start, page = following, 1

    def _params(self, window: Window) -> dict[str, str]:
        params: dict[str, str] = {}
        statuses = self.config.order_statuses
        if len(statuses) == 1:
            # ShipStation filters by one status only; several are filtered here (see `_wanted`).
            params["orderStatus"] = statuses[0]
        if self.config.store_id is not None:
            params["storeId"] = str(self.config.store_id)
        # `Order.created_at` is the order date, so a created-at window filters on it.
        if window.created_from is not None:
            params["orderDateStart"] = _filter_time(window.created_from)
        if window.created_to is not None:
            params["orderDateEnd"] = _filter_time(window.created_to, upper=True)
        return params

    def _wanted(self, order: Mapping[str, Any]) -> bool:
        statuses = self.config.order_statuses
        return not statuses or order.get("orderStatus") in statuses

    def _numbered_pages(self, params: dict[str, str]) -> Iterator[list[dict[str, Any]]]:
        page = 1
        while True:
            body = self._get_json("/orders", dict(params, page=str(page), pageSize=str(self._page_size)))
            orders = _orders_of(body)
            yield [o for o in orders if self._wanted(o)]
            if not orders or page >= _pages(body):
                return
            page += 1

    def _prepare(self, orders: list[dict[str, Any]], stores: Mapping[int, tuple[str, str]]) -> list[dict[str, Any]]:
        """Name each order's store (ShipStation gives only its id) so that `parse` stays pure."""
        for order in orders:
            options = order.get("advancedOptions")
            store_id = options.get("storeId") if isinstance(options, Mapping) else None
            if isinstance(store_id, int) and store_id in stores:
                order["storeName"], order["marketplaceName"] = stores[store_id]
        return orders

    def _stores(self) -> Mapping[int, tuple[str, str]]:
        """Store id → (store name, marketplace name), read once per adapter."""
        if self._store_names is None:
            body = self._get_json("/stores", {"showInactive": "true"})
            names: dict[int, tuple[str, str]] = {}
            if isinstance(body, list):
                for store in body:
                    if isinstance(store, Mapping) and isinstance(store.get("storeId"), int):
                        names[store["storeId"]] = (
                            str(store.get("storeName") or ""),
                            str(store.get("marketplaceName") or ""),
                        )
            self._store_names = names
        return self._store_names

    def _get_json(self, path: str, params: Mapping[str, str]) -> Any:
        response = self._get(path, params)
        try:
            return response.json(parse_constant=_not_json)
        except (ValueError, RecursionError) as exc:
            # Not UTF-8, not JSON, a number past Python's digit limit, or nested past the parser's depth.
            raise RetryableError(
                f"ShipStation sent a body that is not JSON ({response.status_code}): {shown(str(exc))}"
            ) from exc

    def _get(self, path: str, params: Mapping[str, str]) -> httpx.Response:
        """GET within the rate limit, with passing faults retried a bounded number of times."""
        return self.request("GET", path, params=params)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        replayable: bool = True,
    ) -> httpx.Response:
        """One call within the key pair's rate limit (waits for the window instead of a 429; retries a 429).

        `body` is sent as JSON (Decimals exact). Passing faults are retried a bounded number of times when the
        call may be repeated (`ledgerlink.http`'s loop): reads always; writes only when `replayable`
        (ShipStation's createorder(s) are upserts by orderKey, so repeating them is safe; `markasshipped` is
        not). Only a failure to connect proves a request never left: a write that may not be repeated and whose
        answer was lost (a reset, a read timeout, 502/504) raises `UnknownOutcome` at once, never re-sent.
        """
        url = f"{self.config.base_url}{path}"
        auth = (self.config.api_key.get_secret_value(), self.config.api_secret.get_secret_value())
        content = None if body is None else jsonwire.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if content is not None else None
        query = dict(params or {})

        def send() -> httpx.Response:
            self._wait_for_window()
            return self._client.request(method, url, params=query, auth=auth, content=content, headers=headers)

        response = send_with_retries(
            send, SHIPSTATION_RETRIES.attempts(method, url, replayable=replayable), self._sleep
        )
        self._note_budget(response)
        return response

    def _note_budget(self, response: httpx.Response) -> None:
        """Remember to wait for the next window once this one is used up (the key pair's 40 a minute)."""
        remaining = _header_number(response, "X-Rate-Limit-Remaining")
        if remaining is not None and remaining <= 0:
            self._resume_at = self._clock() + _reset_seconds(response)

    def _wait_for_window(self) -> None:
        if self._resume_at is None:
            return
        wait = self._resume_at - self._clock()
        self._resume_at = None
        if wait > 0:
            self._sleep(wait)

    def close(self) -> None:
        """Release the HTTP client (only if this adapter made it)."""
        if self._owns_client:
            self._client.close()

    # -- parse ------------------------------------------------------------------------------------------

    def parse(self, raw: Mapping[str, Any]) -> Order:
        """Pure: one ShipStation order to an `Order`."""
        return parse_order(raw)


# -- HTTP helpers ---------------------------------------------------------------------------------------


def _not_json(constant: str) -> None:
    """NaN and Infinity are not JSON (Python reads them; PostgreSQL refuses to store an order holding them)."""
    raise ValueError(f"{constant} is not a JSON value")


def _header_number(response: httpx.Response, name: str) -> float | None:
    raw = response.headers.get(name)
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


def _reset_seconds(response: httpx.Response) -> float:
    """Seconds until the rate-limit window resets: ShipStation's header, else Retry-After, else a minute."""
    return rate_limit_wait(response, DEFAULT_RESET_SECONDS)


def _orders_of(body: Any) -> list[dict[str, Any]]:
    orders = body.get("orders") if isinstance(body, dict) else None
    if not isinstance(orders, list) or not all(isinstance(order, dict) for order in orders):
        raise PermanentError("ShipStation's answer has no 'orders' list")
    return orders


def _pages(body: Mapping[str, Any]) -> int:
    pages = body.get("pages")
    return pages if isinstance(pages, int) and not isinstance(pages, bool) else 0


def _filter_of(order: Mapping[str, Any]) -> str | None:
    """An order's modifyDate as a `modifyDateStart` filter (floored to the second), if it is readable."""
    raw = order.get("modifyDate")
    if not isinstance(raw, str):
        return None
    try:
        wall = datetime.fromisoformat(raw.strip())
        if wall.tzinfo is not None:
            wall = pacific_wall(wall)
    except (ValueError, OverflowError):
        return None
    return wall.strftime(_FILTER_FORMAT)


def _last_position(orders: Sequence[Mapping[str, Any]]) -> Cursor | None:
    """Cursor at the last order of a page (pages come in modify-date order, as ShipStation compares them)."""
    for order in reversed(orders):
        raw = order.get("modifyDate")
        if not isinstance(raw, str):
            continue
        try:
            moment = parse_pacific(raw)
        except ValueError:
            continue
        return Cursor(updated_at=moment, tie_breaker=str(order.get("orderId", "")))
    return None


def _error_text(response: httpx.Response) -> str:
    """ShipStation's own words: ASP.NET's `Message` (and `ModelState`), or the text of the body."""
    try:
        body = response.json()
    except (ValueError, RecursionError):
        return response.content[:200].decode("utf-8", "replace")
    if not isinstance(body, dict):
        return shown(body)
    message = _said(body.get("Message") or body.get("message") or body.get("ExceptionMessage") or "")
    state = body.get("ModelState")
    if isinstance(state, dict):
        details = "; ".join(
            f"{_said(key)}: {', '.join(map(_said, value)) if isinstance(value, list) else _said(value)}"
            for key, value in state.items()
        )
        message = f"{message} {details}".strip()
    return message[:500] or shown(body)


def _said(value: object) -> str:
    """A message of ShipStation's as text: strings as they are (shortened), anything else shown safely."""
    return value[:200] if isinstance(value, str) else shown(value)


# The first 429 waits exactly for the window's reset; if the window still refuses (another app on the same key
# pair, or a reset rounded down to 0), each further one waits longer.
SHIPSTATION_RETRIES = RetryPolicy(
    remote="ShipStation",
    reconnect_message=RECONNECT_MESSAGE,
    describe=_error_text,
    throttle_default=DEFAULT_RESET_SECONDS,
    throttle_backoff=True,
    max_failed=MAX_FAILED_TRIES,
    max_throttled=MAX_THROTTLED_TRIES,
)


# -- parse ----------------------------------------------------------------------------------------------


def parse_order(raw: Mapping[str, Any]) -> Order:
    """Map a ShipStation v1 order to an `Order`; every bad field raises `MappingError` naming its JSON path."""
    if not isinstance(raw, Mapping):
        raise MappingError(f"expected an order object, got {type(raw).__name__}")
    label = _label(raw)
    try:
        return _Parser(raw, label).order()
    except MappingError:
        raise
    except (KeyError, ValueError, TypeError, AttributeError, ArithmeticError, RecursionError) as exc:
        # A shape we did not foresee: still a MappingError, so the order is parked, not the sync crashed.
        raise MappingError(f"unexpected order shape: {shown(str(exc))}", order=label) from exc


def _label(raw: Mapping[str, Any]) -> str | None:
    """How errors name the order: its number, else its id (a hostile one is skipped)."""
    for key in ("orderNumber", "orderId"):
        value = key_text(raw.get(key))
        if value:
            return value
    return None


class _Parser(FieldReader):
    """One order's mapping; holds the order label so every error names it."""

    def flag(self, value: object, field: str) -> bool:
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self.fail(f"expected true or false, got {shown(value)}", field)
        return value

    def moment(self, value: object, field: str) -> datetime:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"expected a timestamp, got {shown(value)}", field)
        try:
            return parse_pacific(value)
        except ValueError:
            raise self.fail(f"expected a ShipStation timestamp (Pacific time), got {shown(value)}", field) from None

    def optional_moment(self, value: object, field: str) -> datetime | None:
        return None if value in (None, "") else self.moment(value, field)

    # -- the order --

    def order(self) -> Order:
        raw = self.raw
        order_id = self.ident(raw.get("orderId"), "orderId")
        number = order_id if raw.get("orderNumber") in (None, "") else self.ident(raw["orderNumber"], "orderNumber")
        created_at = self.moment(raw.get("orderDate"), "orderDate")
        modified_raw = raw.get("modifyDate")
        updated_at = created_at if modified_raw in (None, "") else self.moment(modified_raw, "modifyDate")
        options = self.optional_obj(raw.get("advancedOptions"), "advancedOptions")
        status = self.text(raw.get("orderStatus"), "orderStatus")
        if status not in ORDER_STATUSES:
            raise self.fail(f"unknown order status {shown(raw.get('orderStatus'))}", "orderStatus")

        products: list[tuple[int, Mapping[str, Any]]] = []
        order_discounts: list[Discount] = []
        fees: list[Fee] = []
        for index, item in enumerate(self.items(raw.get("items"), "items")):
            where = f"items[{index}]"
            if not self.flag(item.get("adjustment"), f"{where}.adjustment"):
                products.append((index, item))
                continue
            amount = self.adjustment(item, where)
            name = self.text(item.get("name"), f"{where}.name")
            sku = self.text(item.get("sku"), f"{where}.sku")
            if amount < 0:
                # A negative adjustment is how marketplaces and codes hand ShipStation an order discount.
                order_discounts.append(Discount(amount=-amount, code=sku, description=name or "Discount"))
            elif amount > 0:
                fees.append(Fee(name=name or sku or "Adjustment", amount=amount))

        shipping_amount = self.money(raw.get("shippingAmount"), "shippingAmount")
        if shipping_amount < 0:
            raise self.fail("shipping cannot be negative", "shippingAmount")
        tax = self.money(raw.get("taxAmount"), "taxAmount")
        if tax < 0:
            raise self.fail("tax cannot be negative", "taxAmount")
        lines = self.lines(products, tax)
        shipping: tuple[ShippingLine, ...] = ()
        carried = total(line.tax_total for line in lines)
        if shipping_amount > 0 or carried != tax:
            shipping = (
                ShippingLine(
                    title=self.text(raw.get("requestedShippingService"), "requestedShippingService") or "Shipping",
                    code=self.text(raw.get("serviceCode"), "serviceCode"),
                    price=shipping_amount,
                    # Only when no product line can carry the tax (e.g. a shipping-only order).
                    tax_lines=(TaxLine(title=TAX_TITLE, amount=tax - carried),) if carried != tax else (),
                ),
            )

        subtotal = total(line.gross for line in lines)
        discounts = total(d.amount for d in order_discounts)
        computed = total([subtotal - discounts, shipping_amount, tax, *(f.amount for f in fees)])
        stated = raw.get("orderTotal")
        order_total = computed if stated in (None, "") else self.money(stated, "orderTotal")
        if order_total != computed:
            # Never book the difference as a discount or fee behind the merchant's back.
            raise self.fail(
                f"orderTotal {order_total} is not items {subtotal - discounts} (after discounts) + shipping "
                f"{shipping_amount} + tax {tax} = {computed}",
                "orderTotal",
            )

        paid = self.money(raw.get("amountPaid"), "amountPaid")
        if paid < 0:
            raise self.fail("amount paid cannot be negative", "amountPaid")
        if paid >= order_total:
            financial = "paid"
        elif paid == 0:
            financial = "pending"
        else:
            financial = "partially_paid"
        payments: tuple[Payment, ...] = ()
        if paid > 0:
            payments = (
                Payment(
                    payment_id=f"{order_id}-paid",
                    amount=min(paid, order_total),
                    method=self.text(raw.get("paymentMethod"), "paymentMethod"),
                    processed_at=self.optional_moment(raw.get("paymentDate"), "paymentDate"),
                ),
            )

        billing = self.address(raw.get("billTo"), "billTo")
        store_name = self.text(raw.get("storeName"), "storeName")
        marketplace = self.text(raw.get("marketplaceName"), "marketplaceName")
        store_id = options.get("storeId")
        source = store_name or (
            f"store {self.ident(store_id, 'advancedOptions.storeId')}"
            if store_id is not None
            else self.text(options.get("source"), "advancedOptions.source")
        )
        notes = self.text(raw.get("customerNotes"), "customerNotes")
        return Order(
            channel="shipstation",
            channel_order_id=order_id,
            number=number,
            created_at=created_at,
            updated_at=updated_at,
            cancelled_at=updated_at if status == "cancelled" else None,
            currency=self.currency(options),
            financial_status=financial,
            fulfillment_status="fulfilled" if status == "shipped" else "",
            customer=self.customer(billing),
            billing_address=billing,
            shipping_address=self.address(raw.get("shipTo"), "shipTo"),
            lines=lines,
            shipping_lines=shipping,
            order_discounts=tuple(order_discounts),
            fees=tuple(fees),
            payments=payments,
            totals=Totals(
                subtotal=subtotal,
                shipping=shipping_amount,
                discounts=discounts,
                tax=tax,
                total=order_total,
            ),
            note=notes,
            # The marketplace (Amazon, eBay …) is what the "Marketplace" filter of the settings matches.
            tags=(marketplace,) if marketplace else (),
            source=source,
        )

    def adjustment(self, item: Mapping[str, Any], where: str) -> Decimal:
        """An adjustment item's signed amount (unit price × quantity)."""
        quantity = parse_quantity(
            1 if item.get("quantity") is None else item.get("quantity"), order=self.label, field=f"{where}.quantity"
        )
        if "unitPrice" not in item:
            raise self.fail("missing unitPrice", f"{where}.unitPrice")
        return cents(self.money(item.get("unitPrice"), f"{where}.unitPrice") * quantity)

    def lines(self, products: Sequence[tuple[int, Mapping[str, Any]]], tax: Decimal) -> tuple[OrderLine, ...]:
        """Product lines, with the order's tax on them: as itemised when the items add up to it, else spread."""
        drafts: list[tuple[int, Mapping[str, Any], Decimal, Decimal, Decimal | None]] = []
        for index, item in products:
            where = f"items[{index}]"
            quantity = parse_quantity(item.get("quantity"), order=self.label, field=f"{where}.quantity")
            if "unitPrice" not in item:
                raise self.fail("missing unitPrice", f"{where}.unitPrice")
            price = self.money(item.get("unitPrice"), f"{where}.unitPrice")
            if price < 0:
                raise self.fail(
                    "a product's price cannot be negative (discounts are adjustment items)", f"{where}.unitPrice"
                )
            item_tax = None if item.get("taxAmount") is None else self.money(item["taxAmount"], f"{where}.taxAmount")
            drafts.append((index, item, quantity, price, item_tax))
        itemised = [d[4] for d in drafts]
        given = [t for t in itemised if t is not None]
        if drafts and len(given) == len(drafts) and all(t >= 0 for t in given) and total(given) == tax:
            taxes = given
        else:
            # ShipStation has no per-line tax (nor a "tax included" flag): spread the order's tax over the
            # lines in proportion to their price, to the cent, the last taxable line taking the remainder.
            taxes = _allocate(tax, [cents(quantity * price) for _, _, quantity, price, _ in drafts])
        lines = []
        for (index, item, quantity, price, _), line_tax in zip(drafts, taxes, strict=True):
            where = f"items[{index}]"
            key = "orderItemId" if item.get("orderItemId") is not None else "lineItemKey"
            line_id = item.get(key)
            lines.append(
                OrderLine(
                    line_id=self.ident(line_id, f"{where}.{key}") if line_id not in (None, "") else str(index),
                    sku=self.text(item.get("sku"), f"{where}.sku"),
                    name=self.text(item.get("name"), f"{where}.name")
                    or self.text(item.get("sku"), f"{where}.sku")
                    or "Item",
                    quantity=quantity,
                    unit_price=price,
                    taxable=line_tax > 0,
                    tax_lines=(TaxLine(title=TAX_TITLE, amount=line_tax),) if line_tax > 0 else (),
                    product_id=self.text(item.get("productId"), f"{where}.productId"),
                )
            )
        return tuple(lines)

    def currency(self, options: Mapping[str, Any]) -> str:
        """USD unless the order says otherwise (v1 orders carry no currency; some integrations add one)."""
        raw = options.get("currency")
        if raw in (None, ""):
            return "USD"
        code = self.text(raw, "advancedOptions.currency").upper()
        if len(code) != 3 or not code.isalpha():
            raise self.fail(f"expected a 3-letter currency code, got {shown(raw)}", "advancedOptions.currency")
        return code

    def customer(self, billing: Address) -> Customer:
        raw = self.raw
        customer_id = raw.get("customerId")
        first, _, last = billing.name.partition(" ")
        if " " not in billing.name and any("\u4e00" <= ch <= "\u9fff" for ch in billing.name):
            # CJK names come family name first without a space: keep the whole name as one part.
            first, last = billing.name, ""
        return Customer(
            channel_id="" if customer_id is None else self.ident(customer_id, "customerId"),
            email=self.text(raw.get("customerEmail"), "customerEmail")
            or self.text(raw.get("customerUsername"), "customerUsername"),
            first_name=first.strip(),
            last_name=last.strip(),
            company=billing.company,
            phone=billing.phone,
        )

    def address(self, value: object, field: str) -> Address:
        raw = self.optional_obj(value, field)
        if not raw:
            return Address()
        street2 = ", ".join(
            part
            for part in (
                self.text(raw.get("street2"), f"{field}.street2"),
                self.text(raw.get("street3"), f"{field}.street3"),
            )
            if part
        )
        return Address(
            name=self.text(raw.get("name"), f"{field}.name"),
            company=self.text(raw.get("company"), f"{field}.company"),
            line1=self.text(raw.get("street1"), f"{field}.street1"),
            line2=street2,
            city=self.text(raw.get("city"), f"{field}.city"),
            region=self.text(raw.get("state"), f"{field}.state"),
            postal_code=self.text(raw.get("postalCode"), f"{field}.postalCode"),
            country=self.text(raw.get("country"), f"{field}.country"),
            phone=self.text(raw.get("phone"), f"{field}.phone"),
        )


def _allocate(amount: Decimal, bases: Sequence[Decimal]) -> list[Decimal]:
    """Spread `amount` over `bases` in proportion, to the cent; the last positive base takes the remainder."""
    whole = sum((b for b in bases if b > 0), ZERO)
    shares = [ZERO for _ in bases]
    if whole <= 0:
        return shares
    last = max(i for i, b in enumerate(bases) if b > 0)
    left = amount
    for index, base in enumerate(bases):
        if base <= 0:
            continue
        share = left if index == last else min(left, cents(amount * base / whole))
        shares[index] = share
        left -= share
    return shares
