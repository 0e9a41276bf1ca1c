"""Webhooks of the Shopify sandbox: subscriptions (the Admin API's `webhooks.json`) and signed delivery.

What it reproduces of Shopify's HTTPS delivery:
- the body is the resource as JSON (an order, or a refund carrying `order_id`), POSTed to each subscription of
  the topic with `X-Shopify-Topic`, `X-Shopify-Hmac-Sha256` (base64 HMAC-SHA256 of the raw body with the app's
  client secret), `X-Shopify-Shop-Domain`, `X-Shopify-Webhook-Id` (the same on every retry of a delivery),
  `X-Shopify-Event-Id`, `X-Shopify-API-Version` and `X-Shopify-Triggered-At`;
- any answer but 2xx (or no answer within the timeout) is retried with exponential backoff, 8 retries in
  all (about 4 hours at Shopify, scaled by the sandbox's `time_scale`); a subscription made through the API
  is removed after 8 failed deliveries in a row.

Delivery is synchronous in the calling thread (`deliver`), so a test sees its effect on return; retries
wait until `retry_due()` is called (or the background worker of `start_worker()` calls it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

TOPICS = frozenset(
    {
        "orders/create",
        "orders/updated",
        "orders/paid",
        "orders/cancelled",
        "orders/fulfilled",
        "orders/partially_fulfilled",
        "fulfillments/create",
        "orders/edited",
        "orders/delete",
        "refunds/create",
        "app/uninstalled",
    }
)
MAX_RETRIES = 8  # after the first attempt
MAX_CONSECUTIVE_FAILURES = 8
# Shopify spreads 8 retries over about 4 hours: 56 s × (1 + 2 + … + 128) ≈ 4 h.
BACKOFF_BASE_SECONDS = 56.0
DELIVERY_TIMEOUT = httpx.Timeout(5.0, connect=1.0)


class SubscriptionRefused(ValueError):
    """A subscription Shopify would refuse with 422 and `{"errors": {field: [message]}}`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def sign(body: bytes, secret: str) -> str:
    """Shopify's `X-Shopify-Hmac-Sha256`: base64 of the HMAC-SHA256 of the raw body."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


@dataclass(slots=True)
class Subscription:
    """One webhook subscription, as `webhooks.json` shows it."""

    id: int
    topic: str
    address: str
    format: str
    api_version: str
    created_at: str
    updated_at: str
    failures: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "address": self.address,
            "topic": self.topic,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "format": self.format,
            "fields": [],
            "metafield_namespaces": [],
            "api_version": self.api_version,
            "private_metafield_namespaces": [],
        }


@dataclass(frozen=True, slots=True)
class Attempt:
    """One POST of a delivery: `status` is None when the address did not answer."""

    webhook_id: str
    topic: str
    address: str
    attempt: int
    status: int | None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(slots=True)
class Delivery:
    """A message to one subscription; retried with the same webhook id until it succeeds or gives up."""

    webhook_id: str
    subscription_id: int
    topic: str
    address: str
    body: bytes
    headers: dict[str, str]
    attempts: int = 0
    next_at: float = 0.0
    done: bool = False
    history: list[Attempt] = field(default_factory=list)


class WebhookHub:
    """The subscriptions and deliveries of one sandbox shop."""

    def __init__(
        self,
        shop: str,
        secret: str,
        *,
        api_version: str,
        clock: Callable[[], float] = time.monotonic,
        time_scale: float = 1.0,
    ) -> None:
        self.shop = shop
        self.secret = secret
        self.api_version = api_version
        self.time_scale = time_scale
        self._clock = clock
        self._lock = threading.Lock()
        self._subscriptions: dict[int, Subscription] = {}
        self._next_id = 1_000_000_001
        self._pending: list[Delivery] = []
        self.attempts: list[Attempt] = []
        # How deliveries are POSTed: any httpx.Client (a Starlette TestClient reaches an in-process app).
        self.client: httpx.Client | None = None
        self._own_client: httpx.Client | None = None
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()

    # -- subscriptions ---------------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether any subscription exists (deliveries are skipped cheaply otherwise)."""
        return bool(self._subscriptions)

    def subscribe(self, topic: str, address: str, fmt: str = "json", api_version: str | None = None) -> Subscription:
        """Add a subscription; raises SubscriptionRefused as Shopify's 422 would."""
        if topic not in TOPICS:
            raise SubscriptionRefused("topic", f"Invalid topic specified: {topic}")
        if not address.startswith(("https://", "http://")):
            raise SubscriptionRefused("address", "must be an https address")
        if fmt != "json":
            raise SubscriptionRefused("format", "only json is supported by the sandbox")
        with self._lock:
            if any(s.topic == topic and s.address == address for s in self._subscriptions.values()):
                raise SubscriptionRefused("address", "for this topic has already been taken")
            now = datetime.now(UTC).isoformat(timespec="seconds")
            sub = Subscription(self._next_id, topic, address, fmt, api_version or self.api_version, now, now)
            self._next_id += 1
            self._subscriptions[sub.id] = sub
            return sub

    def subscriptions(self, topic: str | None = None, address: str | None = None) -> list[Subscription]:
        with self._lock:
            return [
                s
                for s in sorted(self._subscriptions.values(), key=lambda s: s.id)
                if (topic is None or s.topic == topic) and (address is None or s.address == address)
            ]

    def get(self, subscription_id: int) -> Subscription | None:
        with self._lock:
            return self._subscriptions.get(subscription_id)

    def unsubscribe(self, subscription_id: int) -> bool:
        with self._lock:
            return self._subscriptions.pop(subscription_id, None) is not None

    # -- delivery ----------------------------------------------------------------------------------------

    def deliver(self, topic: str, payload: Mapping[str, Any]) -> list[Attempt]:
        """POST `payload` to every subscription of `topic` now; failures are queued for retry."""
        with self._lock:
            targets = [s for s in self._subscriptions.values() if s.topic == topic]
        if not targets:
            return []
        body = json.dumps(payload, separators=(",", ":")).encode()
        event_id = str(uuid.uuid4())
        deliveries = []
        for sub in targets:
            webhook_id = str(uuid.uuid4())
            headers = {
                "Content-Type": "application/json",
                "X-Shopify-Topic": topic,
                "X-Shopify-Hmac-Sha256": sign(body, self.secret),
                "X-Shopify-Shop-Domain": self.shop,
                "X-Shopify-Webhook-Id": webhook_id,
                "X-Shopify-Event-Id": event_id,
                "X-Shopify-API-Version": sub.api_version,
                "X-Shopify-Triggered-At": datetime.now(UTC).isoformat(),
            }
            deliveries.append(Delivery(webhook_id, sub.id, topic, sub.address, body, headers))
        return [self._attempt(delivery) for delivery in deliveries]

    def retry_due(self, *, force: bool = False) -> list[Attempt]:
        """Attempt again the failed deliveries whose backoff has passed (all of them with `force`)."""
        now = self._clock()
        with self._lock:
            live = [d for d in self._pending if d.subscription_id in self._subscriptions]
            due = [d for d in live if force or d.next_at <= now]
            self._pending = [d for d in live if not (force or d.next_at <= now)]
        return [self._attempt(delivery) for delivery in due]

    @property
    def pending(self) -> list[Delivery]:
        """Deliveries waiting for a retry."""
        with self._lock:
            return list(self._pending)

    def backoff(self, attempts: int) -> float:
        """Seconds (scaled) before retry number `attempts`."""
        return float(BACKOFF_BASE_SECONDS * 2 ** (attempts - 1) / self.time_scale)

    def _attempt(self, delivery: Delivery) -> Attempt:
        delivery.attempts += 1
        status: int | None = None
        error = ""
        try:
            answer = self._http().post(delivery.address, content=delivery.body, headers=delivery.headers)
            status = answer.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        attempt = Attempt(delivery.webhook_id, delivery.topic, delivery.address, delivery.attempts, status, error)
        delivery.history.append(attempt)
        with self._lock:
            self.attempts.append(attempt)
            sub = self._subscriptions.get(delivery.subscription_id)
            if attempt.ok:
                delivery.done = True
                if sub is not None:
                    sub.failures = 0
                return attempt
            if sub is not None:
                sub.failures += 1
                if sub.failures >= MAX_CONSECUTIVE_FAILURES:
                    # Shopify removes an API-created subscription that keeps failing, and its retries with it.
                    del self._subscriptions[sub.id]
                    self._pending = [d for d in self._pending if d.subscription_id != sub.id]
                    sub = None
            if sub is not None and delivery.attempts <= MAX_RETRIES:
                delivery.next_at = self._clock() + self.backoff(delivery.attempts)
                self._pending.append(delivery)
        return attempt

    def _http(self) -> httpx.Client:
        if self.client is not None:
            return self.client
        if self._own_client is None:
            self._own_client = httpx.Client(timeout=DELIVERY_TIMEOUT)
        return self._own_client

    # -- background retries (standalone sandbox, demo) ---------------------------------------------------

    def start_worker(self, interval: float = 1.0) -> None:
        """Run `retry_due` every `interval` seconds in a daemon thread until `close()`."""
        if self._worker is not None:
            return

        def loop() -> None:
            while not self._stop.wait(interval):
                self.retry_due()

        self._worker = threading.Thread(target=loop, name="shopify-sandbox-webhooks", daemon=True)
        self._worker.start()

    def close(self) -> None:
        self._stop.set()
        if self._worker is not None:
            self._worker.join(5.0)
            self._worker = None
        if self._own_client is not None:
            self._own_client.close()
            self._own_client = None


def order_events(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The webhooks Shopify sends when an order goes from `before` (None: new) to `after`: (topic, payload)."""
    order: dict[str, Any] = json.loads(json.dumps(dict(after)))  # a snapshot: delivered after the lock is let go
    order.pop("transactions", None)
    events: list[tuple[str, dict[str, Any]]] = []
    was_paid = before is not None and before.get("financial_status") == "paid"
    if before is None:
        events.append(("orders/create", order))
    else:
        events.append(("orders/updated", order))
    if order.get("financial_status") == "paid" and not was_paid:
        events.append(("orders/paid", order))
    if order.get("cancelled_at") and (before is None or not before.get("cancelled_at")):
        events.append(("orders/cancelled", order))
    status = order.get("fulfillment_status")
    if status != (before or {}).get("fulfillment_status") and status in ("fulfilled", "partial"):
        events.append(("orders/fulfilled" if status == "fulfilled" else "orders/partially_fulfilled", order))
    shipped = {str(f.get("id")) for f in (before or {}).get("fulfillments") or [] if isinstance(f, Mapping)}
    for fulfillment in order.get("fulfillments") or []:
        if isinstance(fulfillment, Mapping) and str(fulfillment.get("id")) not in shipped:
            events.append(("fulfillments/create", {**fulfillment, "order_id": order.get("id")}))
    known = {str(r.get("id")) for r in (before or {}).get("refunds") or [] if isinstance(r, Mapping)}
    for refund in order.get("refunds") or []:
        if isinstance(refund, Mapping) and str(refund.get("id")) not in known:
            events.append(("refunds/create", {**refund, "order_id": order.get("id")}))
    return events
