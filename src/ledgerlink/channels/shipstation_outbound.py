"""ShipStation in the reverse direction: create and update orders, mark them shipped, read shipments.

Everything goes through `ShipStationChannel.request`, so the key pair's 40-a-minute budget, the waits on
`X-Rate-Limit-*`, the 429 retries and the reconnect error are those of the channel, not a second copy.

- `create_orders` sends ≤ 100 orders per `POST /orders/createorders` (ShipStation's bulk upsert by orderKey)
  and answers per order: created/updated, or refused with ShipStation's words. Repeating a call is safe
  (upserts), so a lost answer is retried like a read.
- `shipments_since` pages `GET /shipments` by create date (Pacific wall time, like every ShipStation filter).
- `shipments_at(resource_url)` reads what a `SHIP_NOTIFY` webhook points at; only URLs on the account's own
  API host are followed, since a webhook carries no signature and the request carries our credentials.
- `stores()` lists the account's stores (the settings' drop-down); `webhooks()`, `subscribe()` and
  `unsubscribe()` manage the account's webhook subscriptions (`GET /webhooks`, `POST /webhooks/subscribe`,
  `DELETE /webhooks/{id}`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ledgerlink.channels.base import Cursor
from ledgerlink.channels.shipstation import PAGE_SIZE, ShipStationChannel, modify_date_start
from ledgerlink.domain.errors import PermanentError, RetryableError

MAX_BULK_ORDERS = 100
# ShipStation's words for an order it will not change any more.
_FROZEN_WORDS = ("can no longer be updated", "is shipped", "is cancelled", "has been shipped", "has been cancelled")


@dataclass(frozen=True, slots=True)
class Store:
    """One ShipStation store (a marketplace connection, or the "Manual Orders" store)."""

    store_id: int
    name: str
    marketplace: str
    active: bool


@dataclass(frozen=True, slots=True)
class Subscription:
    """One webhook subscription of the account."""

    hook_id: int
    event: str
    url: str
    store_id: int | None


@dataclass(frozen=True, slots=True)
class CreateResult:
    """ShipStation's answer for one order of a createorders call."""

    order_key: str
    success: bool
    order_id: int | None = None
    error: str = ""

    @property
    def frozen(self) -> bool:
        """The order is shipped or cancelled in ShipStation and cannot be changed any more."""
        text = self.error.casefold()
        return not self.success and any(word in text for word in _FROZEN_WORDS)


class ShipStationOutbound:
    """The reverse-direction calls of one ShipStation account, on a `ShipStationChannel`'s paced client."""

    def __init__(self, channel: ShipStationChannel) -> None:
        self.channel = channel
        self.calls: dict[str, int] = {}

    def create_orders(self, orders: Sequence[Mapping[str, Any]]) -> list[CreateResult]:
        """Upsert the orders, ≤ 100 per call, in the order given; one result per order."""
        results: list[CreateResult] = []
        for start in range(0, len(orders), MAX_BULK_ORDERS):
            chunk = list(orders[start : start + MAX_BULK_ORDERS])
            results.extend(self._create_chunk(chunk))
        return results

    def _create_chunk(self, chunk: list[Mapping[str, Any]]) -> list[CreateResult]:
        body = self._json("POST", "/orders/createorders", body=chunk)
        answers = body.get("results") if isinstance(body, Mapping) else None
        if not isinstance(answers, list):
            raise RetryableError("ShipStation answered createorders without results", retry_after=30.0)
        by_key: dict[str, Mapping[str, Any]] = {}
        for answer in answers:
            if isinstance(answer, Mapping) and answer.get("orderKey"):
                by_key[str(answer["orderKey"])] = answer
        results = []
        for index, order in enumerate(chunk):
            key = str(order.get("orderKey") or "")
            answer = by_key.get(key) or (answers[index] if index < len(answers) else None)
            if not isinstance(answer, Mapping):
                results.append(CreateResult(key, False, error="ShipStation did not answer for this order"))
                continue
            order_id = answer.get("orderId")
            results.append(
                CreateResult(
                    order_key=key,
                    success=answer.get("success") is True,
                    order_id=order_id if isinstance(order_id, int) and not isinstance(order_id, bool) else None,
                    error=str(answer.get("errorMessage") or ""),
                )
            )
        return results

    def mark_as_shipped(
        self,
        order_id: int,
        carrier_code: str,
        *,
        ship_date: date | None = None,
        tracking_number: str = "",
        notify_customer: bool = False,
    ) -> dict[str, Any]:
        """`POST /orders/markasshipped` (not repeatable: a lost answer is raised, never re-sent blindly)."""
        body: dict[str, Any] = {
            "orderId": order_id,
            "carrierCode": carrier_code,
            "trackingNumber": tracking_number,
            "notifyCustomer": notify_customer,
            "notifySalesChannel": False,
        }
        if ship_date is not None:
            body["shipDate"] = ship_date.isoformat()
        answer = self._json("POST", "/orders/markasshipped", body=body, replayable=False)
        return dict(answer) if isinstance(answer, Mapping) else {}

    def shipments_since(self, since: datetime | None) -> Iterator[list[dict[str, Any]]]:
        """Pages of shipments created at or after `since` (all of them without), oldest first."""
        params: dict[str, str] = {"sortBy": "CreateDate", "sortDir": "ASC", "pageSize": str(PAGE_SIZE)}
        if since is not None:
            # The same Pacific wall-clock filter (and repeated-hour step back) as the order cursor.
            params["createDateStart"] = modify_date_start(Cursor(updated_at=since))
        page = 1
        while True:
            body = self._json("GET", "/shipments", params={**params, "page": str(page)})
            yield _shipments_of(body)
            pages = body.get("pages") if isinstance(body, Mapping) else None
            if not isinstance(pages, int) or page >= pages:
                return
            page += 1

    def shipments_at(self, resource_url: str) -> list[dict[str, Any]]:
        """The shipments a `SHIP_NOTIFY` webhook's `resource_url` lists (every page of it)."""
        parts = urlsplit(resource_url)
        base = urlsplit(self.channel.config.base_url)
        if not self.is_own_shipments_url(resource_url):
            raise PermanentError(f"not a ShipStation shipments URL of this account: {resource_url}")
        path = parts.path[len(base.path.rstrip("/")) :]
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        found: list[dict[str, Any]] = []
        page = int(params.get("page") or 1)
        while True:
            body = self._json("GET", path, params={**params, "page": str(page)})
            found.extend(_shipments_of(body))
            pages = body.get("pages") if isinstance(body, Mapping) else None
            if not isinstance(pages, int) or page >= pages:
                return found
            page += 1

    def shipments_of_order(self, order_id: int) -> list[dict[str, Any]]:
        """Every shipment of one ShipStation order."""
        return _shipments_of(self._json("GET", "/shipments", params={"orderId": str(order_id)}))

    def is_own_shipments_url(self, url: str) -> bool:
        """Whether `url` is a shipments URL on this account's API host (what a SHIP_NOTIFY may point at)."""
        return is_shipments_url(url, self.channel.config.base_url)

    def stores(self) -> list[Store]:
        """The account's stores, active ones first, by name."""
        body = self._json("GET", "/stores", params={"showInactive": "true"})
        found: list[Store] = []
        for row in body if isinstance(body, list) else []:
            store_id = row.get("storeId") if isinstance(row, Mapping) else None
            if isinstance(store_id, int) and not isinstance(store_id, bool):
                found.append(
                    Store(
                        store_id,
                        str(row.get("storeName") or f"Store {store_id}"),
                        str(row.get("marketplaceName") or ""),
                        row.get("active") is not False,
                    )
                )
        return sorted(found, key=lambda s: (not s.active, s.name.casefold(), s.store_id))

    def webhooks(self) -> list[Subscription]:
        """The account's webhook subscriptions (ShipStation answers these in PascalCase)."""
        body = self._json("GET", "/webhooks")
        rows = body.get("webhooks") if isinstance(body, Mapping) else None
        found: list[Subscription] = []
        for row in rows if isinstance(rows, list) else []:
            if not isinstance(row, Mapping) or not isinstance(row.get("WebHookID"), int):
                continue
            store = row.get("StoreID")
            found.append(
                Subscription(
                    hook_id=row["WebHookID"],
                    event=str(row.get("HookType") or ""),
                    url=str(row.get("Url") or ""),
                    store_id=store if isinstance(store, int) and not isinstance(store, bool) else None,
                )
            )
        return found

    def subscribe(self, target_url: str, event: str, *, store_id: int | None, friendly_name: str) -> int:
        """`POST /webhooks/subscribe`; returns the new subscription's id. Not repeated blindly after a lost answer
        (it would subscribe twice): the caller lists the subscriptions first."""
        body = {"target_url": target_url, "event": event, "store_id": store_id, "friendly_name": friendly_name}
        answer = self._json("POST", "/webhooks/subscribe", body=body, replayable=False)
        hook_id = answer.get("id") if isinstance(answer, Mapping) else None
        if not isinstance(hook_id, int) or isinstance(hook_id, bool):
            raise PermanentError("ShipStation answered the webhook subscription without an id")
        return hook_id

    def unsubscribe(self, hook_id: int) -> None:
        """`DELETE /webhooks/{id}`."""
        self.calls["DELETE /webhooks"] = self.calls.get("DELETE /webhooks", 0) + 1
        self.channel.request("DELETE", f"/webhooks/{hook_id}")

    def _json(self, method: str, path: str, *, replayable: bool = True, **kwargs: Any) -> Any:
        name = f"{method} {path}"
        self.calls[name] = self.calls.get(name, 0) + 1
        response = self.channel.request(method, path, replayable=replayable, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise RetryableError(f"ShipStation sent a body that is not JSON ({response.status_code})") from exc


def is_shipments_url(url: str, base_url: str) -> bool:
    """Whether `url` is a `/shipments` URL on the API host `base_url` (same scheme, host and port, under its path)."""
    parts, base = urlsplit(url), urlsplit(base_url)
    return (
        bool(base.netloc)
        and (parts.scheme, parts.netloc) == (base.scheme, base.netloc)
        and parts.path.startswith(base.path.rstrip("/") + "/shipments")
    )


def _shipments_of(body: Any) -> list[dict[str, Any]]:
    rows = body.get("shipments") if isinstance(body, Mapping) else None
    if not isinstance(rows, list):
        raise PermanentError("ShipStation's answer has no 'shipments' list")
    return [row for row in rows if isinstance(row, dict)]
