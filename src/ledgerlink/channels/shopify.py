"""Shopify (Admin REST API): pull changed orders page by page and parse them into `Order`.

Shopify's own sums are the truth we must reproduce: lines carry their discounts as `discount_allocations`
(pointing into `discount_applications`), taxes are itemised per line and per shipping line, and
`total_price` = Σ line (price × quantity − allocations) + Σ shipping discounted_price + tax (+ tip).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from ledgerlink.channels.base import ChannelPage, Cursor, Window, register_channel
from ledgerlink.channels.fields import MAX_KEY, FieldReader, key_text
from ledgerlink.domain.errors import MappingError, PermanentError, RetryableError
from ledgerlink.domain.money import ZERO, cents, parse_quantity, read_number, shown, total
from ledgerlink.domain.order import (
    Address,
    Customer,
    Discount,
    Fee,
    Fulfillment,
    Order,
    OrderLine,
    Payment,
    Refund,
    RefundLine,
    ShippingLine,
    TaxLine,
    Totals,
)
from ledgerlink.http import RetryPolicy, new_client, send_with_retries

PAGE_LIMIT = 250
INVENTORY_IDS_PER_REQUEST = 50
# The store keeps ids and order numbers in 64 characters; no Shopify id comes near that.
MAX_RATE = Decimal(100)
MAX_THROTTLED_TRIES = 8
MAX_FAILED_TRIES = 5
CALL_LIMIT_HEADER = "X-Shopify-Shop-Api-Call-Limit"
# Slow down once this share of the bucket is used, so that bursts of other apps on the shop still fit.
BUCKET_HEADROOM = 0.8
RECONNECT_MESSAGE = "Shopify refused the access token: reconnect the store"


class ShopifyConfig(BaseModel):
    """How to reach one Shopify store; the connection wizard renders these fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    shop: str = Field(
        description="The store's myshopify.com domain, e.g. my-store.myshopify.com",
        min_length=1,
    )
    access_token: SecretStr = Field(
        description="Admin API access token of the store's custom app (needs the read_orders scope)",
        json_schema_extra={"secret": True},
    )
    api_version: str = Field(
        default="2025-01",
        description="Shopify Admin API version, e.g. 2025-01",
        pattern=r"^(\d{4}-\d{2}|unstable)$",
    )
    base_url: str | None = Field(
        default=None,
        description="Where to send requests instead of https://<shop> (the local sandbox); leave empty",
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="The app's API secret key: Shopify signs its webhooks with it (X-Shopify-Hmac-Sha256)",
        json_schema_extra={"secret": True},
    )
    webhook_token: str = Field(
        default="",
        description="Set by ledgerlink when it registers webhooks: the unguessable part of their address",
    )

    @field_validator("shop")
    @classmethod
    def _bare_domain(cls, value: str) -> str:
        # People paste the admin URL; keep only the host.
        host = value.strip().lower().removeprefix("https://").removeprefix("http://")
        return host.split("/", 1)[0]

    @property
    def api_root(self) -> str:
        """`…/admin/api/<version>` on the store (or the sandbox)."""
        base = (self.base_url or f"https://{self.shop}").rstrip("/")
        return f"{base}/admin/api/{self.api_version}"


@register_channel
class ShopifyChannel:
    """The Shopify adapter: `pull` reads `orders.json` by `updated_at`; `parse` maps one order, purely."""

    kind: ClassVar[str] = "shopify"
    # Typed as the `Channel` protocol declares it; the adapter itself works with `ShopifyConfig`.
    Config: ClassVar[type[BaseModel]] = ShopifyConfig

    def __init__(
        self,
        config: BaseModel | Mapping[str, Any],
        *,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        leak_per_second: float = 2.0,
    ) -> None:
        if isinstance(config, ShopifyConfig):
            self.config = config
        elif isinstance(config, BaseModel):
            self.config = ShopifyConfig.model_validate(config.model_dump())
        else:
            self.config = ShopifyConfig.model_validate(config)
        self._owns_client = client is None
        self._client = client if client is not None else new_client()
        self._sleep = sleep
        # The shop plan's leak rate (2/s standard, 4 Advanced, 20 Plus); only used to pace before a 429.
        self._leak_per_second = leak_per_second

    # -- pull -------------------------------------------------------------------------------------------

    def pull(self, cursor: Cursor | None, window: Window) -> Iterator[ChannelPage]:
        """Orders updated since `cursor` (inclusive, so the boundary order comes again), oldest first.

        With `window.order_numbers`, fetches exactly those orders by name instead and leaves the cursor alone.
        """
        if window.order_numbers:
            for number in window.order_numbers:
                params = {"status": "any", "name": number.lstrip("#"), "limit": str(PAGE_LIMIT)}
                for orders in self._pages(params):
                    yield ChannelPage(orders=orders, next_cursor=None)
            return
        params = {"status": "any", "order": "updated_at asc", "limit": str(PAGE_LIMIT)}
        if cursor is not None:
            params["updated_at_min"] = _iso(cursor.updated_at)
        if window.created_from is not None:
            params["created_at_min"] = _iso(window.created_from)
        if window.created_to is not None:
            params["created_at_max"] = _iso(window.created_to)
        position = cursor
        for orders in self._pages(params):
            position = _last_position(orders) or position
            yield ChannelPage(orders=orders, next_cursor=position)

    def _pages(self, params: dict[str, str]) -> Iterator[list[dict[str, Any]]]:
        url: str | None = f"{self.config.api_root}/orders.json"
        query: dict[str, str] | None = params
        while url is not None:
            response = self._get(url, query)
            orders = _json_list(response, "orders")
            for order in orders:
                if order.get("financial_status") == "partially_paid" and "id" in order:
                    # Only here does the order alone not say how much was captured.
                    order["transactions"] = self._transactions(order["id"])
            yield orders
            url = _next_link(response)
            # The next link already carries page_info and limit; Shopify refuses any other filter with it.
            query = None

    def _transactions(self, order_id: object) -> list[dict[str, Any]]:
        response = self._get(f"{self.config.api_root}/orders/{order_id}/transactions.json", None)
        return _json_list(response, "transactions")

    # -- webhooks ----------------------------------------------------------------------------------------

    def register_webhooks(
        self, address: str, topics: Sequence[str], *, replaces: Callable[[str], bool] | None = None
    ) -> list[str]:
        """Subscribe `address` to `topics` (JSON format); returns the topics now subscribed there.

        Idempotent: topics already subscribed at the address are left alone (Shopify refuses a duplicate with
        422 "has already been taken", which counts as subscribed). Subscriptions at another address for which
        `replaces(address)` is true (an older address of the same receiver) are deleted.
        """
        root = self.config.api_root
        subscribed: list[str] = []
        for hook in self._webhooks():
            topic, at = str(hook.get("topic", "")), str(hook.get("address", ""))
            if at == address and topic in topics:
                subscribed.append(topic)
            elif replaces is not None and at != address and replaces(at) and "id" in hook:
                self._request("DELETE", f"{root}/webhooks/{hook['id']}.json", None, accept=frozenset({404}))
        for topic in topics:
            if topic in subscribed:
                continue
            body = {"webhook": {"topic": topic, "address": address, "format": "json"}}
            response = self._request("POST", f"{root}/webhooks.json", None, body=body, accept=frozenset({422}))
            if response.status_code == 422 and "taken" not in _error_text(response):
                raise PermanentError(f"Shopify refused the {topic} webhook: {_error_text(response)}", code="422")
            subscribed.append(topic)
        return [topic for topic in topics if topic in subscribed]

    def unregister_webhooks(self, address: str) -> int:
        """Delete every subscription at `address`; returns how many there were."""
        root = self.config.api_root
        gone = 0
        for hook in self._webhooks():
            if str(hook.get("address", "")) == address and "id" in hook:
                self._request("DELETE", f"{root}/webhooks/{hook['id']}.json", None, accept=frozenset({404}))
                gone += 1
        return gone

    # -- inventory (the stock push: sync/stock.py) ---------------------------------------------------------

    def locations(self) -> list[dict[str, Any]]:
        """The shop's locations (GET locations.json)."""
        return _json_list(self._request("GET", f"{self.config.api_root}/locations.json", None), "locations")

    def variants(self) -> Iterator[dict[str, Any]]:
        """Every product variant (sku, inventory_item_id), reading products.json page by page."""
        url: str | None = f"{self.config.api_root}/products.json"
        query: dict[str, str] | None = {"limit": str(PAGE_LIMIT), "fields": "id,variants"}
        while url is not None:
            response = self._get(url, query)
            for product in _json_list(response, "products"):
                variants = product.get("variants")
                yield from (v for v in variants or [] if isinstance(v, dict))
            url = _next_link(response)
            query = None

    def inventory_levels(self, item_ids: Sequence[str], location_id: str) -> dict[str, int]:
        """`available` by inventory item id at one location (GET inventory_levels.json, 50 ids a request)."""
        found: dict[str, int] = {}
        for start in range(0, len(item_ids), INVENTORY_IDS_PER_REQUEST):
            chunk = item_ids[start : start + INVENTORY_IDS_PER_REQUEST]
            params = {"inventory_item_ids": ",".join(chunk), "location_ids": location_id, "limit": str(PAGE_LIMIT)}
            response = self._get(f"{self.config.api_root}/inventory_levels.json", params)
            for level in _json_list(response, "inventory_levels"):
                quantity = level.get("available")
                if isinstance(quantity, int) and not isinstance(quantity, bool):
                    found[str(level.get("inventory_item_id"))] = quantity
        return found

    def set_inventory_level(self, item_id: str, location_id: str, available: int) -> None:
        """POST inventory_levels/set.json: an absolute quantity, so a retry cannot double anything."""
        body = {"location_id": int(location_id), "inventory_item_id": int(item_id), "available": available}
        response = self._request(
            "POST", f"{self.config.api_root}/inventory_levels/set.json", None, body=body, accept=frozenset({422})
        )
        if response.status_code == 422:
            raise PermanentError(f"Shopify refused the stock level: {_error_text(response)}", code="422")

    def _webhooks(self) -> list[dict[str, Any]]:
        response = self._request("GET", f"{self.config.api_root}/webhooks.json", {"limit": "250"})
        return _json_list(response, "webhooks")

    def _get(self, url: str, params: Mapping[str, str] | None) -> httpx.Response:
        """GET with Shopify's rate limit respected and passing faults retried a bounded number of times."""
        return self._request("GET", url, params)

    def _request(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        *,
        body: Mapping[str, Any] | None = None,
        accept: frozenset[int] = frozenset(),
        replayable: bool = True,
    ) -> httpx.Response:
        """One call with Shopify's rate limit respected and passing faults retried (`ledgerlink.http`'s loop).

        Every write of this adapter is replayable (a repeated webhook subscription is refused as taken, a stock
        level is absolute); one that is not would raise `UnknownOutcome` when its answer is lost.
        Statuses in `accept` are returned to the caller instead of raising."""
        headers = {"X-Shopify-Access-Token": self.config.access_token.get_secret_value()}
        attempts = SHOPIFY_RETRIES.attempts(method, url, replayable=replayable, accept=accept)
        response = send_with_retries(
            lambda: self._client.request(method, url, params=params, headers=headers, json=body),
            attempts,
            self._sleep,
        )
        self._pace(response)
        return response

    def _pace(self, response: httpx.Response) -> None:
        """Wait before the next call when the leaky bucket is nearly full, instead of running into 429s."""
        raw = response.headers.get(CALL_LIMIT_HEADER, "")
        used, _, size = raw.partition("/")
        try:
            level, capacity = int(used), int(size)
        except ValueError:
            return
        threshold = int(capacity * BUCKET_HEADROOM)
        if capacity > 0 and level >= threshold:
            self._sleep((level - threshold + 1) / self._leak_per_second)

    def close(self) -> None:
        """Release the HTTP client (only if this adapter made it)."""
        if self._owns_client:
            self._client.close()

    # -- parse ------------------------------------------------------------------------------------------

    def parse(self, raw: Mapping[str, Any]) -> Order:
        """Pure: one Shopify order (bare or wrapped in {"order": …}) to an `Order`."""
        return parse_order(raw)


def parse_order(raw: Mapping[str, Any]) -> Order:
    """Map a Shopify REST order to an `Order`; every bad field raises `MappingError` naming its JSON path."""
    if not isinstance(raw, Mapping):
        raise MappingError(f"expected an order object, got {type(raw).__name__}")
    if "order" in raw and isinstance(raw["order"], Mapping):
        raw = raw["order"]
    label = _label(raw)
    try:
        return _Parser(raw, label).order()
    except MappingError:
        raise
    except (KeyError, ValueError, TypeError, AttributeError, ArithmeticError, RecursionError) as exc:
        # A shape we did not foresee: still a MappingError, so the order is parked, not the sync crashed.
        raise MappingError(f"unexpected order shape: {shown(str(exc))}", order=label) from exc


_LABEL_KEYS = ("order_number", "name", "id")


def _label(raw: Mapping[str, Any]) -> str | None:
    """How errors name the order: the first usable of its number, name and id (a hostile one is skipped)."""
    for key in _LABEL_KEYS:
        value = key_text(raw.get(key))
        if value and value.lstrip("#"):
            return value.lstrip("#")
    return None


class _Parser(FieldReader):
    """One order's mapping; holds the order label so every error names it."""

    bools_as_text = True

    def rate(self, value: object, field: str) -> Decimal:
        if value is None or value == "":
            return ZERO
        rate = read_number(value)
        if rate is None or not rate.is_finite() or not 0 <= rate < MAX_RATE:
            raise self.fail(f"expected a tax rate, got {shown(value)}", field)
        return rate

    def flag(self, value: object, field: str, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(f"expected true or false, got {shown(value)}", field)
        return value

    def moment(self, value: object, field: str) -> datetime:
        if not isinstance(value, str) or not value:
            raise self.fail(f"expected a timestamp, got {shown(value)}", field)
        try:
            parsed = datetime.fromisoformat(value)
            # Shopify always sends an offset; an old export without one is read as UTC rather than refused.
            parsed = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
            parsed.astimezone(UTC)  # the store keeps UTC: year 9999 at -23:59 has none
        except (ValueError, OverflowError):
            raise self.fail(f"expected an ISO 8601 timestamp, got {shown(value)}", field) from None
        return parsed

    def optional_moment(self, value: object, field: str) -> datetime | None:
        return None if value in (None, "") else self.moment(value, field)

    # -- the order --

    def order(self) -> Order:
        raw = self.raw
        order_id = self.ident(raw.get("id"), "id")
        number = self.number() or order_id
        created_at = self.moment(raw.get("created_at"), "created_at")
        updated_raw = raw.get("updated_at")
        updated_at = created_at if updated_raw in (None, "") else self.moment(updated_raw, "updated_at")
        currency = self.text(raw.get("currency"), "currency").upper()
        if len(currency) != 3 or not (currency.isascii() and currency.isalpha()):
            raise self.fail(f"expected a 3-letter currency code, got {shown(raw.get('currency'))}", "currency")

        applications = self.items(raw.get("discount_applications"), "discount_applications")
        used: set[int] = set()
        lines = tuple(
            self.line(item, f"line_items[{index}]", applications, used)
            for index, item in enumerate(self.items(raw.get("line_items"), "line_items"))
        )
        shipping = tuple(
            self.shipping(item, f"shipping_lines[{index}]", applications, used)
            for index, item in enumerate(self.items(raw.get("shipping_lines"), "shipping_lines"))
        )
        # Orders from before allocations existed carry their discounts in `total_discount` per line;
        # their applications are then already counted and must not come back as order-level discounts.
        allocated = all("discount_allocations" in item for item in self.items(raw.get("line_items"), "line_items"))
        order_discounts = self.unallocated(applications, used, lines) if allocated else ()

        fees: list[Fee] = []
        tip = self.money(raw.get("total_tip_received"), "total_tip_received")
        if tip > 0:
            fees.append(Fee(name="Tip", amount=tip))

        billing = self.address(raw.get("billing_address"), "billing_address")
        return Order(
            channel="shopify",
            channel_order_id=order_id,
            number=number,
            created_at=created_at,
            updated_at=updated_at,
            cancelled_at=self.optional_moment(raw.get("cancelled_at"), "cancelled_at"),
            currency=currency,
            financial_status=self.text(raw.get("financial_status"), "financial_status"),
            fulfillment_status=self.text(raw.get("fulfillment_status"), "fulfillment_status"),
            taxes_included=self.flag(raw.get("taxes_included"), "taxes_included", False),
            customer=self.customer(billing),
            billing_address=billing,
            shipping_address=self.address(raw.get("shipping_address"), "shipping_address"),
            lines=lines,
            shipping_lines=shipping,
            order_discounts=order_discounts,
            fees=tuple(fees),
            payments=self.payments(),
            refunds=tuple(
                self.refund(item, f"refunds[{index}]")
                for index, item in enumerate(self.items(raw.get("refunds"), "refunds"))
            ),
            fulfillments=tuple(
                self.fulfillment(item, f"fulfillments[{index}]")
                for index, item in enumerate(self.items(raw.get("fulfillments"), "fulfillments"))
            ),
            totals=Totals(
                subtotal=self.money(raw.get("subtotal_price"), "subtotal_price"),
                shipping=total(s.net for s in shipping),
                discounts=self.money(raw.get("total_discounts"), "total_discounts"),
                tax=self.money(raw.get("total_tax"), "total_tax"),
                total=self.required_money(raw.get("total_price"), "total_price"),
            ),
            note=self.text(raw.get("note"), "note"),
            tags=tuple(tag.strip() for tag in self.text(raw.get("tags"), "tags").split(",") if tag.strip()),
            source=self.text(raw.get("source_name"), "source_name"),
        )

    def number(self) -> str | None:
        """The order number (the label errors use): a number or name Shopify sent that cannot be one is refused."""
        for key in _LABEL_KEYS[:2]:
            value = self.raw.get(key)
            if value in (None, ""):
                continue
            text = key_text(value)
            if text is None:
                raise self.fail(f"expected an order number of at most {MAX_KEY} characters, got {shown(value)}", key)
            if text.lstrip("#"):
                return text.lstrip("#")
        return None

    def required_money(self, value: object, field: str) -> Decimal:
        if value is None or value == "":
            raise self.fail("missing amount", field)
        return self.money(value, field)

    def customer(self, billing: Address) -> Customer:
        raw = self.raw
        buyer = self.optional_obj(raw.get("customer"), "customer")
        billing_raw = self.optional_obj(raw.get("billing_address"), "billing_address")
        channel_id = "" if buyer.get("id") is None else self.ident(buyer.get("id"), "customer.id")
        return Customer(
            channel_id=channel_id,
            email=self.text(buyer.get("email"), "customer.email")
            or self.text(raw.get("email"), "email")
            or self.text(raw.get("contact_email"), "contact_email"),
            first_name=self.text(buyer.get("first_name"), "customer.first_name")
            or self.text(billing_raw.get("first_name"), "billing_address.first_name"),
            last_name=self.text(buyer.get("last_name"), "customer.last_name")
            or self.text(billing_raw.get("last_name"), "billing_address.last_name"),
            company=billing.company,
            phone=self.text(buyer.get("phone"), "customer.phone") or billing.phone,
        )

    def address(self, value: object, field: str) -> Address:
        raw = self.optional_obj(value, field)
        if not raw:
            return Address()

        def part(key: str) -> str:
            return self.text(raw.get(key), f"{field}.{key}")

        name = part("name") or " ".join(p for p in (part("first_name"), part("last_name")) if p)
        return Address(
            name=name,
            company=part("company"),
            line1=part("address1"),
            line2=part("address2"),
            city=part("city"),
            region=part("province_code") or part("province"),
            postal_code=part("zip"),
            country=part("country_code") or part("country"),
            phone=part("phone"),
        )

    def tax_lines(self, value: object, field: str) -> tuple[TaxLine, ...]:
        return tuple(
            TaxLine(
                title=self.text(item.get("title"), f"{field}[{index}].title") or "Tax",
                rate=self.rate(item.get("rate"), f"{field}[{index}].rate"),
                amount=self.money(item.get("price"), f"{field}[{index}].price"),
            )
            for index, item in enumerate(self.items(value, field))
        )

    def allocations(
        self, value: object, field: str, applications: Sequence[Mapping[str, Any]], used: set[int]
    ) -> tuple[Discount, ...]:
        discounts: list[Discount] = []
        for index, item in enumerate(self.items(value, field)):
            where = f"{field}[{index}]"
            amount = self.money(item.get("amount"), f"{where}.amount")
            position = item.get("discount_application_index")
            if isinstance(position, bool) or not isinstance(position, int) or not 0 <= position < len(applications):
                raise self.fail(
                    f"points to no discount application (there are {len(applications)})",
                    f"{where}.discount_application_index",
                )
            used.add(position)
            code, description = self.describe(applications[position], f"discount_applications[{position}]")
            discounts.append(Discount(amount=amount, code=code, description=description))
        return tuple(discounts)

    def describe(self, application: Mapping[str, Any], field: str) -> tuple[str, str]:
        """(code, description) of a discount application: codes have a code, the others a title."""
        code = self.text(application.get("code"), f"{field}.code") if application.get("type") == "discount_code" else ""
        description = (
            self.text(application.get("title"), f"{field}.title")
            or self.text(application.get("description"), f"{field}.description")
            or code
        )
        return code, description

    def line(
        self, raw: Mapping[str, Any], field: str, applications: Sequence[Mapping[str, Any]], used: set[int]
    ) -> OrderLine:
        quantity = parse_quantity(raw.get("quantity"), order=self.label, field=f"{field}.quantity")
        if "price" not in raw:
            raise self.fail("missing price", f"{field}.price")
        if "discount_allocations" in raw:
            discounts = self.allocations(
                raw["discount_allocations"], f"{field}.discount_allocations", applications, used
            )
        else:
            # Orders from before allocations existed only say how much came off the line.
            old = self.money(raw.get("total_discount"), f"{field}.total_discount")
            discounts = (Discount(amount=old, description="Discount"),) if old > 0 else ()
        return OrderLine(
            line_id=self.ident(raw.get("id"), f"{field}.id"),
            sku=self.text(raw.get("sku"), f"{field}.sku"),
            name=self.text(raw.get("name"), f"{field}.name")
            or self.text(raw.get("title"), f"{field}.title")
            or self.text(raw.get("sku"), f"{field}.sku")
            or "Item",
            quantity=quantity,
            unit_price=self.money(raw.get("price"), f"{field}.price"),
            discounts=discounts,
            taxable=self.flag(raw.get("taxable"), f"{field}.taxable", True),
            tax_lines=self.tax_lines(raw.get("tax_lines"), f"{field}.tax_lines"),
            product_id=self.text(raw.get("product_id"), f"{field}.product_id"),
            variant_id=self.text(raw.get("variant_id"), f"{field}.variant_id"),
        )

    def shipping(
        self, raw: Mapping[str, Any], field: str, applications: Sequence[Mapping[str, Any]], used: set[int]
    ) -> ShippingLine:
        price = self.money(raw.get("price"), f"{field}.price")
        discounts = self.allocations(
            raw.get("discount_allocations"), f"{field}.discount_allocations", applications, used
        )
        discounted_raw = raw.get("discounted_price")
        if discounted_raw not in (None, "") and not discounts:
            # Older orders state only the discounted price; the difference is the shipping discount.
            gap = price - self.money(discounted_raw, f"{field}.discounted_price")
            if gap > 0:
                discounts = (Discount(amount=gap, description="Shipping discount"),)
        return ShippingLine(
            title=self.text(raw.get("title"), f"{field}.title")
            or self.text(raw.get("code"), f"{field}.code")
            or "Shipping",
            code=self.text(raw.get("code"), f"{field}.code"),
            price=price,
            discounts=discounts,
            tax_lines=self.tax_lines(raw.get("tax_lines"), f"{field}.tax_lines"),
        )

    def unallocated(
        self, applications: Sequence[Mapping[str, Any]], used: set[int], lines: Sequence[OrderLine]
    ) -> tuple[Discount, ...]:
        """Order-level discounts no line or shipping line took a share of (rare: Shopify usually allocates)."""
        left = total(line.gross - line.discount_total for line in lines)
        discounts: list[Discount] = []
        for index, application in enumerate(applications):
            if index in used:
                continue
            field = f"discount_applications[{index}].value"
            value = self.money(application.get("value"), field)
            if application.get("value_type") == "percentage":
                # `value` is a percentage (e.g. "10.0"), read at cent precision is exact for Shopify's values.
                value = cents(left * value / Decimal(100))
            if value <= 0:
                continue
            code, description = self.describe(application, f"discount_applications[{index}]")
            discounts.append(Discount(amount=value, code=code, description=description or "Order discount"))
        return tuple(discounts)

    def payments(self) -> tuple[Payment, ...]:
        """Captures from embedded transactions (only partially paid orders have them; see `pull`)."""
        payments: list[Payment] = []
        for index, item in enumerate(self.items(self.raw.get("transactions"), "transactions")):
            field = f"transactions[{index}]"
            if item.get("kind") not in {"sale", "capture"} or item.get("status") != "success":
                continue
            details = self.optional_obj(item.get("payment_details"), f"{field}.payment_details")
            when = item.get("processed_at") or item.get("created_at")
            payments.append(
                Payment(
                    payment_id=self.ident(item.get("id"), f"{field}.id"),
                    amount=self.money(item.get("amount"), f"{field}.amount"),
                    gateway=self.text(item.get("gateway"), f"{field}.gateway"),
                    method=self.text(
                        details.get("credit_card_company"), f"{field}.payment_details.credit_card_company"
                    ),
                    processed_at=self.optional_moment(when, f"{field}.processed_at"),
                )
            )
        return tuple(payments)

    def fulfillment(self, raw: Mapping[str, Any], field: str) -> Fulfillment:
        """A shipment: `tracking_numbers` (newer API versions) or the single `tracking_number` of older ones."""
        numbers = [
            self.text(value, f"{field}.tracking_numbers[{index}]")
            for index, value in enumerate(self.list_of(raw.get("tracking_numbers"), f"{field}.tracking_numbers"))
        ]
        single = self.text(raw.get("tracking_number"), f"{field}.tracking_number")
        if single and single not in numbers:
            numbers.insert(0, single)
        return Fulfillment(
            fulfillment_id=self.ident(raw.get("id"), f"{field}.id"),
            created_at=self.optional_moment(raw.get("created_at"), f"{field}.created_at"),
            status=self.text(raw.get("status"), f"{field}.status"),
            tracking_company=self.text(raw.get("tracking_company"), f"{field}.tracking_company"),
            tracking_numbers=tuple(number for number in numbers if number),
        )

    def list_of(self, value: object, field: str) -> list[object]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(f"expected a list, got {shown(value)}", field)
        return list(value)

    def refund(self, raw: Mapping[str, Any], field: str) -> Refund:
        lines = []
        for index, item in enumerate(self.items(raw.get("refund_line_items"), f"{field}.refund_line_items")):
            where = f"{field}.refund_line_items[{index}]"
            lines.append(
                RefundLine(
                    line_id=self.ident(item.get("line_item_id"), f"{where}.line_item_id"),
                    quantity=parse_quantity(item.get("quantity"), order=self.label, field=f"{where}.quantity"),
                    subtotal=self.money(item.get("subtotal"), f"{where}.subtotal"),
                    tax=self.money(item.get("total_tax"), f"{where}.total_tax"),
                    restock=item.get("restock_type") not in (None, "", "no_restock"),
                )
            )
        shipping = adjustments = ZERO
        for index, item in enumerate(self.items(raw.get("order_adjustments"), f"{field}.order_adjustments")):
            where = f"{field}.order_adjustments[{index}]"
            # Shopify books refunded amounts as negative adjustments of the order; we keep refunds positive.
            amount = -(
                self.money(item.get("amount"), f"{where}.amount")
                + self.money(item.get("tax_amount"), f"{where}.tax_amount")
            )
            if item.get("kind") == "shipping_refund":
                shipping += amount
            else:
                adjustments += amount
        refunded = ZERO
        for index, item in enumerate(self.items(raw.get("transactions"), f"{field}.transactions")):
            if item.get("kind") == "refund" and item.get("status") in (None, "success"):
                refunded += self.money(item.get("amount"), f"{field}.transactions[{index}].amount")
        return Refund(
            refund_id=self.ident(raw.get("id"), f"{field}.id"),
            created_at=self.optional_moment(raw.get("created_at"), f"{field}.created_at"),
            lines=tuple(lines),
            shipping=shipping,
            adjustments=adjustments,
            amount=refunded,
            note=self.text(raw.get("note"), f"{field}.note"),
        )


# -- HTTP helpers ---------------------------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    # Shopify reads a timestamp without an offset in the shop's zone; always send one.
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.isoformat()


def _json_list(response: httpx.Response, key: str) -> list[dict[str, Any]]:
    try:
        body = response.json(parse_constant=_not_json)
    except (ValueError, RecursionError) as exc:
        # Not UTF-8, not JSON, a number past Python's digit limit, or nested past the parser's depth.
        raise RetryableError(
            f"Shopify sent a body that is not JSON ({response.status_code}): {shown(str(exc))}"
        ) from exc
    items = body.get(key) if isinstance(body, dict) else None
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise PermanentError(f"Shopify's answer has no {key!r} list")
    return items


def _not_json(constant: str) -> None:
    """NaN and Infinity are not JSON (Python reads them; PostgreSQL refuses to store an order holding them)."""
    raise ValueError(f"{constant} is not a JSON value")


def _next_link(response: httpx.Response) -> str | None:
    """The URL of `rel="next"` in Shopify's `Link` header, if there is a next page."""
    for part in response.headers.get("Link", "").split(","):
        target, _, rest = part.partition(";")
        if 'rel="next"' in rest.replace(" ", ""):
            url = target.strip().removeprefix("<").removesuffix(">")
            return url if "page_info" in parse_qs(urlsplit(url).query) else None
    return None


def _error_text(response: httpx.Response) -> str:
    """Shopify's own words: `errors` is a string, a list or a field → messages object."""
    try:
        body = response.json()
    except (ValueError, RecursionError):
        return response.content[:200].decode("utf-8", "replace")
    errors = body.get("errors", body) if isinstance(body, dict) else body
    if isinstance(errors, dict):
        text = "; ".join(
            f"{_said(key)}: {', '.join(map(_said, value)) if isinstance(value, list) else _said(value)}"
            for key, value in errors.items()
        )
    elif isinstance(errors, list):
        text = "; ".join(map(_said, errors))
    else:
        text = _said(errors)
    return text[:500]


def _said(value: object) -> str:
    """A message of Shopify's as text: strings as they are (shortened), anything else shown safely."""
    return value[:200] if isinstance(value, str) else shown(value)


# Shopify's 429 says Retry-After (2 s, the bucket's leak), and says it again each time: no growing wait.
SHOPIFY_RETRIES = RetryPolicy(
    remote="Shopify",
    reconnect_message=RECONNECT_MESSAGE,
    describe=_error_text,
    throttle_default=2.0,
    max_failed=MAX_FAILED_TRIES,
    max_throttled=MAX_THROTTLED_TRIES,
)


def _last_position(orders: Sequence[Mapping[str, Any]]) -> Cursor | None:
    """Cursor at the latest-updated order of a page (pages come oldest first, so it is the last one)."""
    best: Cursor | None = None
    for order in orders:
        raw = order.get("updated_at")
        if not isinstance(raw, str):
            continue
        try:
            moment = datetime.fromisoformat(raw)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            moment.astimezone(UTC)
        except (ValueError, OverflowError):
            continue
        if best is None or moment >= best.updated_at:
            best = Cursor(updated_at=moment, tie_breaker=str(order.get("id", "")))
    return best
