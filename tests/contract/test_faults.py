"""Connection faults over real HTTP: each sandbox resets or holds a connection on demand, and each client copes.

The kinds (sandbox/faults.py): `reset` and `reset_after_write` drop the connection with no answer, before the
work or after it was committed; `timeout` and `timeout_after_write` hold the request past the client's read
timeout first. What a client must do: a read, or a write that cannot double, goes again; a write whose answer
was lost is an unknown outcome (QuickBooks Online: `UnknownOutcome`, and the engine looks the document up
before re-sending); a connection that could not even be opened is a plain retry.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledgerlink.books.base import Tokens
from ledgerlink.books.qbo import QboClient, QboConfig, UnknownOutcome
from ledgerlink.books.qbo.client import MAX_TRIES, NoPacer
from ledgerlink.channels.base import Window
from ledgerlink.channels.shipstation import MAX_FAILED_TRIES, ShipStationChannel
from ledgerlink.channels.shipstation_outbound import ShipStationOutbound
from ledgerlink.channels.shopify import ShopifyChannel
from ledgerlink.domain.errors import RetryableError
from ledgerlink.http import new_client
from ledgerlink.sandbox import shipstation, shopify
from ledgerlink.sandbox.faults import DROP_STATUS
from ledgerlink.sandbox.qbo import Fault, QboLimits, QboSandbox
from ledgerlink.sandbox.server import RunningServer, serve

pytestmark = pytest.mark.contract

# Short enough to keep the suite quick, long enough for any answer of a sandbox on loopback.
READ_TIMEOUT = httpx.Timeout(0.5, connect=5.0)
KINDS = ["reset", "reset_after_write", "timeout", "timeout_after_write"]
# What the client itself sees: a reset is read as one, a hold as its own read timeout.
# A reset reaches the client as a read error, or as "closed without an answer" when the close wins the race.
DROPPED = (httpx.ReadError, httpx.RemoteProtocolError)
SEEN: dict[str, type[httpx.TransportError] | tuple[type[httpx.TransportError], ...]] = {
    "reset": DROPPED,
    "reset_after_write": DROPPED,
    "timeout": httpx.ReadTimeout,
    "timeout_after_write": httpx.ReadTimeout,
}


def no_sleep(_seconds: float) -> None:
    """Backoffs cost nothing here: the tests count attempts, not seconds."""


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class MemoryTokens:
    """A TokenStore in memory."""

    def __init__(self, tokens: Tokens) -> None:
        self.tokens = tokens

    def load(self) -> Tokens:
        return self.tokens

    def refresh(self, stale_access_token: str, do_refresh: Callable[[Tokens], Tokens]) -> Tokens:
        if self.tokens.access_token == stale_access_token:
            self.tokens = do_refresh(self.tokens)
        return self.tokens


# -- QuickBooks Online -----------------------------------------------------------------------------------------


@dataclass
class Qbo:
    sandbox: QboSandbox
    server: RunningServer
    creds: dict[str, str]
    http: httpx.Client

    def client(self, *, api_base: str | None = None) -> QboClient:
        config = QboConfig(
            realm_id=self.creds["realm_id"],
            client_id=self.creds["client_id"],
            client_secret=self.creds["client_secret"],  # type: ignore[arg-type]
            api_base=api_base or self.creds["api_base"],
            token_url=self.creds["token_url"],
            retry_backoff=0.0,
            pace=False,
        )
        tokens = MemoryTokens(
            Tokens(self.creds["access_token"], self.creds["refresh_token"], datetime.now(UTC) + timedelta(minutes=30))
        )
        return QboClient(config, tokens, client=self.http, sleep=no_sleep, pacer=NoPacer())

    def customers(self, name: str) -> int:
        return sum(1 for row in self.sandbox.entities("Customer") if row["DisplayName"] == name)


@pytest.fixture
def qbo() -> Iterator[Qbo]:
    sandbox = QboSandbox(limits=QboLimits(enabled=False))
    server = serve(sandbox.app)
    http = new_client(timeout=READ_TIMEOUT)
    try:
        yield Qbo(sandbox, server, sandbox.credentials(server.base_url), http)
    finally:
        http.close()
        server.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_qbo_write_without_an_answer_is_an_unknown_outcome(qbo: Qbo, kind: str) -> None:
    client = qbo.client()
    name = f"Fault {kind}"
    qbo.sandbox.inject(Fault(kind=kind, path_contains="/customer"))  # type: ignore[arg-type]
    with pytest.raises(UnknownOutcome) as lost:
        client.post("Customer", {"DisplayName": name}, requestid=uuid.uuid4().hex)
    assert isinstance(lost.value.__cause__, SEEN[kind])
    # Done or not, as the kind says; never sent twice by the client.
    assert qbo.customers(name) == (1 if kind.endswith("after_write") else 0)
    posts = [r for r in qbo.sandbox.requests if r.path.endswith("/customer")]
    assert [r.status for r in posts] == [DROP_STATUS]
    # The connection is gone, not the service: the next request is answered.
    assert client.post("Customer", {"DisplayName": f"{name} again"})["DisplayName"] == f"{name} again"


def test_qbo_reads_go_again_through_resets_and_timeouts(qbo: Qbo) -> None:
    client = qbo.client()
    expected = client.query("SELECT * FROM PaymentMethod")
    qbo.sandbox.inject(Fault(kind="reset", path_contains="/query"))
    qbo.sandbox.inject(Fault(kind="timeout", path_contains="/query"))
    assert client.query("SELECT * FROM PaymentMethod") == expected
    assert client.stats["retries"] == 2
    assert not qbo.sandbox.faults


def test_qbo_connect_failure_is_retried_then_retryable_not_unknown(qbo: Qbo) -> None:
    client = qbo.client(api_base=f"http://127.0.0.1:{closed_port()}/v3")
    with pytest.raises(RetryableError) as failed:
        client.post("Customer", {"DisplayName": "Never sent"}, requestid=uuid.uuid4().hex)
    # The request never left, so even a write may go again: retried, and no look-up asked for.
    assert not isinstance(failed.value, UnknownOutcome)
    assert isinstance(failed.value.__cause__, httpx.ConnectError)
    assert client.stats["requests"] == MAX_TRIES


def test_qbo_hold_shorter_than_the_read_timeout_ends_in_a_dropped_connection(qbo: Qbo) -> None:
    # The soak test's workers wait 130 s for QuickBooks; a bounded hold still ends with no answer.
    client = qbo.client()
    client.http = new_client(timeout=httpx.Timeout(30.0, connect=5.0))
    qbo.sandbox.inject(Fault(kind="timeout_after_write", delay_ms=150, path_contains="/customer"))
    with pytest.raises(UnknownOutcome) as lost:
        client.post("Customer", {"DisplayName": "Held"})
    assert isinstance(lost.value.__cause__, httpx.TransportError)
    assert not isinstance(lost.value.__cause__, httpx.TimeoutException)
    assert qbo.customers("Held") == 1
    client.http.close()


def test_qbo_token_expiry_mid_run_is_refreshed_and_the_call_goes_through(qbo: Qbo) -> None:
    client = qbo.client()
    client.query("SELECT * FROM Account")
    qbo.sandbox.inject(Fault(kind="expire_tokens", path_contains="/batch"))
    answers = client.batch([{"bId": "1", "Query": "SELECT * FROM Customer"}], requestid="expiry-1")
    assert answers[0]["bId"] == "1"
    assert client.stats["refreshes"] == 1
    old = qbo.http.get(
        f"{qbo.creds['api_base']}/company/{qbo.creds['realm_id']}/companyinfo/{qbo.creds['realm_id']}",
        headers={"Authorization": f"Bearer {qbo.creds['access_token']}"},
    )
    assert old.status_code == 401


def test_qbo_control_surface_arms_connection_faults(qbo: Qbo) -> None:
    control = f"{qbo.server.base_url}/_sandbox/faults"
    armed = qbo.http.post(control, json={"kind": "reset_after_write", "path_contains": "/customer"})
    assert armed.status_code == 201, armed.text
    assert armed.json()["armed"]["kind"] == "reset_after_write"
    assert qbo.http.post(control, json={"kind": "unplug"}).status_code == 400
    with pytest.raises(UnknownOutcome):
        qbo.client().post("Customer", {"DisplayName": "Over HTTP"})
    assert qbo.customers("Over HTTP") == 1


# -- Shopify ---------------------------------------------------------------------------------------------------


@dataclass
class Shop:
    sandbox: shopify.ShopifySandbox
    server: RunningServer
    http: httpx.Client

    def channel(self) -> ShopifyChannel:
        return ShopifyChannel(self.sandbox.credentials(self.server.base_url), client=self.http, sleep=no_sleep)


@pytest.fixture
def shop() -> Iterator[Shop]:
    sandbox = shopify.ShopifySandbox(bucket_size=1000)
    sandbox.add_orders(shopify.generate_orders(120, seed=5))
    server = serve(sandbox.app)
    http = new_client(timeout=READ_TIMEOUT)
    try:
        yield Shop(sandbox, server, http)
    finally:
        http.close()
        server.stop()


def _shopify_ids(channel: ShopifyChannel) -> list[int]:
    return [int(order["id"]) for page in channel.pull(None, Window()) for order in page.orders]


@pytest.mark.parametrize("kind", KINDS)
def test_shopify_pull_goes_again_through_a_dropped_connection(shop: Shop, kind: str) -> None:
    channel = shop.channel()
    expected = _shopify_ids(channel)
    assert len(expected) == 120
    shop.sandbox.inject(shopify.Fault(kind=kind, path="orders.json"))  # type: ignore[arg-type]
    assert _shopify_ids(channel) == expected
    assert shop.sandbox.stats.faults == 1
    assert [r.status for r in shop.sandbox.requests].count(DROP_STATUS) == 1


def test_shopify_webhook_subscription_whose_answer_was_lost_is_not_doubled(shop: Shop) -> None:
    address = "https://ledgerlink.example/webhooks/shopify"

    def lose_the_first_post(request: httpx.Request) -> None:
        if request.method == "POST" and not shop.sandbox.stats.faults:
            shop.sandbox.inject(shopify.Fault(kind="reset_after_write", path="webhooks.json"))

    shop.http.event_hooks["request"].append(lose_the_first_post)
    assert shop.channel().register_webhooks(address, ["orders/create"]) == ["orders/create"]
    # The lost subscription was made; sent again, Shopify refuses it as taken, which counts as subscribed.
    assert len(shop.sandbox.webhooks.subscriptions("orders/create", address)) == 1
    assert [r.status for r in shop.sandbox.requests if r.method == "POST"] == [DROP_STATUS, 422]


def test_shopify_control_surface_arms_connection_faults(shop: Shop) -> None:
    control = f"{shop.server.base_url}/_sandbox/faults"
    armed = shop.http.post(control, json={"kind": "timeout", "delay_ms": 5000, "path": "orders.json"})
    assert armed.status_code == 201, armed.text
    assert armed.json()["fault"]["delay_ms"] == 5000
    assert shop.http.post(control, json={"kind": "unplug"}).status_code == 400
    with pytest.raises(httpx.ReadTimeout):
        shop.http.get(
            f"{shop.server.base_url}/admin/api/2025-01/orders.json",
            headers={"X-Shopify-Access-Token": shop.sandbox.access_token},
        )


# -- ShipStation -----------------------------------------------------------------------------------------------


def createorder_body() -> dict[str, Any]:
    shared = Path(__file__).resolve().parents[2].parent / "shared"
    body: dict[str, Any] = json.loads(
        (shared / "reference" / "fixtures" / "shipstation_v1_createorder_request.json").read_text(encoding="utf-8"),
        parse_float=Decimal,  # money goes out exact, never as a float
    )
    return body


@dataclass
class Account:
    sandbox: shipstation.ShipStationSandbox
    server: RunningServer
    http: httpx.Client
    sleeps: list[float]

    def channel(self, base_url: str | None = None) -> ShipStationChannel:
        config = {**self.sandbox.credentials(self.server.base_url), "order_statuses": ()}
        if base_url is not None:
            config["base_url"] = base_url
        return ShipStationChannel(config, client=self.http, sleep=self.sleeps.append)

    def posts(self, path: str) -> list[int]:
        return [r.status for r in self.sandbox.requests if r.method == "POST" and r.path == path]


@pytest.fixture
def account() -> Iterator[Account]:
    sandbox = shipstation.ShipStationSandbox(rate_limit=10_000)
    sandbox.add_orders(shipstation.generate_orders(150, seed=9))
    server = serve(sandbox.app)
    sandbox.base_url = server.base_url
    http = new_client(timeout=READ_TIMEOUT)
    try:
        yield Account(sandbox, server, http, [])
    finally:
        http.close()
        server.stop()


def _shipstation_ids(channel: ShipStationChannel) -> list[int]:
    return [int(order["orderId"]) for page in channel.pull(None, Window()) for order in page.orders]


@pytest.mark.parametrize("kind", KINDS)
def test_shipstation_pull_goes_again_through_a_dropped_connection(account: Account, kind: str) -> None:
    channel = account.channel()
    expected = _shipstation_ids(channel)
    assert len(expected) == 150
    account.sandbox.inject(shipstation.Fault(kind=kind, path="/orders"))  # type: ignore[arg-type]
    assert _shipstation_ids(channel) == expected
    assert account.sandbox.stats.faults == 1


@pytest.mark.parametrize("kind", ["reset_after_write", "timeout_after_write"])
def test_shipstation_upsert_whose_answer_was_lost_goes_again_without_a_second_order(
    account: Account, kind: str
) -> None:
    body = createorder_body()
    account.sandbox.inject(shipstation.Fault(kind=kind, path="/orders/createorders"))  # type: ignore[arg-type]
    (result,) = ShipStationOutbound(account.channel()).create_orders([body])
    assert result.success, result.error
    # createorders is an upsert by orderKey: sent again, it finds the order the lost attempt made.
    assert [o["orderId"] for o in account.sandbox.orders.values() if o["orderKey"] == body["orderKey"]] == [
        result.order_id
    ]
    assert account.posts("/orders/createorders") == [DROP_STATUS, 200]


@pytest.mark.parametrize("kind", KINDS)
def test_shipstation_mark_as_shipped_without_an_answer_is_raised_not_resent(account: Account, kind: str) -> None:
    waiting = next(o for o in account.sandbox.orders.values() if o["orderStatus"] == "awaiting_shipment")
    account.sandbox.inject(shipstation.Fault(kind=kind, path="/orders/markasshipped"))  # type: ignore[arg-type]
    with pytest.raises(RetryableError, match="was lost"):
        ShipStationOutbound(account.channel()).mark_as_shipped(waiting["orderId"], "ups")
    shipped = [s for s in account.sandbox.shipments if s["orderId"] == waiting["orderId"]]
    assert len(shipped) == (1 if kind.endswith("after_write") else 0)
    assert account.posts("/orders/markasshipped") == [DROP_STATUS]


def test_shipstation_connect_failure_on_a_write_is_retried(account: Account) -> None:
    channel = account.channel(base_url=f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(RetryableError, match="did not answer") as failed:
        ShipStationOutbound(channel).mark_as_shipped(1, "ups")
    assert isinstance(failed.value.__cause__, httpx.ConnectError)
    assert len(account.sleeps) == MAX_FAILED_TRIES - 1  # a backoff between each of the attempts


def test_shipstation_control_surface_arms_connection_faults(account: Account) -> None:
    control = f"{account.server.base_url}/_sandbox/faults"
    armed = account.http.post(control, json={"kind": "reset", "path": "/stores"})
    assert armed.status_code == 201, armed.text
    assert account.http.post(control, json={"kind": "unplug"}).status_code == 400
    with pytest.raises(httpx.ReadError):
        account.http.get(
            f"{account.server.base_url}/stores", auth=(account.sandbox.api_key, account.sandbox.api_secret)
        )
