"""The Shopify adapter against the Shopify sandbox over real HTTP: paging, cursors, limits, faults."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from ledgerlink.channels.base import ChannelPage, Cursor, Window
from ledgerlink.channels.shopify import RECONNECT_MESSAGE, ShopifyChannel
from ledgerlink.domain.errors import NeedsUserError, PermanentError, RetryableError
from ledgerlink.http import new_client
from ledgerlink.sandbox.server import serve
from ledgerlink.sandbox.shopify import Fault, ShopifySandbox, generate_orders

pytestmark = pytest.mark.contract

ORDERS = generate_orders(600, seed=21)


class VirtualClock:
    """Time that passes only when the channel sleeps: the sandbox's bucket leaks exactly as much as waited."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def fresh_connection_client() -> httpx.Client:
    # The local server does not set TCP_NODELAY, so a reused connection waits ~40 ms per request on delayed
    # ACKs; a fresh connection per request is much faster on loopback.
    return new_client(headers={"Connection": "close"})


class Switchboard:
    """One real server for the module that forwards to whichever sandbox the current test made.

    Starting and stopping uvicorn costs more than most of these tests; a fresh sandbox per test is cheap.
    """

    def __init__(self) -> None:
        self.sandbox: ShopifySandbox | None = None
        self.server = serve(self)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert self.sandbox is not None
        await self.sandbox.app(scope, receive, send)


class Shop:
    """A sandbox with 600 orders on a virtual clock, served, and a way to make channels that talk to it."""

    def __init__(self, switchboard: Switchboard, *, real_time: bool = False, **options: Any) -> None:
        self.clock = VirtualClock()
        # A roomy bucket unless a test is about the bucket, so that pacing does not blur the sleeps asserted.
        options.setdefault("bucket_size", 1000)
        self.sandbox = ShopifySandbox(clock=None if real_time else self.clock, **options)
        self.sandbox.add_orders(ORDERS)
        self.base_url = switchboard.server.base_url
        self.real_time = real_time
        self._switchboard = switchboard
        self._clients: list[httpx.Client] = []

    def __enter__(self) -> Shop:
        self._switchboard.sandbox = self.sandbox
        return self

    def __exit__(self, *exc: object) -> None:
        for client in self._clients:
            client.close()

    @property
    def sleeps(self) -> list[float]:
        return self.clock.sleeps

    def channel(self, *, leak_per_second: float = 2.0, **overrides: Any) -> ShopifyChannel:
        config = {**self.sandbox.credentials(self.base_url), **overrides}
        client = fresh_connection_client()
        self._clients.append(client)
        sleep = time.sleep if self.real_time else self.clock.sleep
        return ShopifyChannel(config, client=client, sleep=sleep, leak_per_second=leak_per_second)


@pytest.fixture(scope="module")
def switchboard() -> Iterator[Switchboard]:
    board = Switchboard()
    try:
        yield board
    finally:
        board.server.stop()


@pytest.fixture
def running(switchboard: Switchboard) -> Callable[..., Shop]:
    """Make a shop with options (bucket_size, time_scale, real_time=True …) and serve it for this test."""
    return functools.partial(Shop, switchboard)


@pytest.fixture
def shop(running: Callable[..., Shop]) -> Iterator[Shop]:
    with running() as served:
        yield served


def _ids(pages: list[ChannelPage]) -> list[int]:
    return [order["id"] for page in pages for order in page.orders]


def _updated(order: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(order["updated_at"])


def _order_queries(sandbox: ShopifySandbox) -> list[dict[str, list[str]]]:
    return [parse_qs(r.query) for r in sandbox.requests if r.path.endswith("/orders.json")]


def test_pulls_every_order_page_by_page_oldest_update_first(shop: Shop) -> None:
    pages = list(shop.channel().pull(None, Window()))

    assert [len(page.orders) for page in pages] == [250, 250, 100]
    ids = _ids(pages)
    assert sorted(ids) == sorted(o["id"] for o in ORDERS)
    keys = [(_updated(o), o["id"]) for page in pages for o in page.orders]
    assert keys == sorted(keys)
    for page in pages:
        last = page.orders[-1]
        assert page.next_cursor == Cursor(updated_at=_updated(last), tie_breaker=str(last["id"]))
    first, *rest = _order_queries(shop.sandbox)
    assert first == {"status": ["any"], "order": ["updated_at asc"], "limit": ["250"]}
    assert len(rest) == 2
    # Later pages send only what Shopify accepts next to page_info.
    assert all(set(query) == {"page_info", "limit"} and query["limit"] == ["250"] for query in rest)


def test_a_second_pull_from_the_cursor_gets_only_what_changed_and_the_boundary(shop: Shop) -> None:
    channel = shop.channel()
    cursor = list(channel.pull(None, Window()))[-1].next_cursor
    assert cursor is not None
    changed = [ORDERS[5]["id"], ORDERS[300]["id"], ORDERS[599]["id"]]
    for order_id in changed:
        shop.sandbox.update_order(order_id, {"note": "changed after the first pull"})

    pages = list(channel.pull(cursor, Window()))

    boundary = {o["id"] for o in ORDERS if _updated(o) == cursor.updated_at}
    assert cursor.tie_breaker in {str(i) for i in boundary}
    assert set(_ids(pages)) == boundary | set(changed)
    assert _ids(pages)[-len(changed) :] == changed
    assert pages[-1].next_cursor is not None
    assert pages[-1].next_cursor.updated_at > cursor.updated_at
    assert _order_queries(shop.sandbox)[-1]["updated_at_min"] == [cursor.updated_at.isoformat()]


def test_an_empty_pull_keeps_the_cursor(shop: Shop) -> None:
    cursor = list(shop.channel().pull(None, Window()))[-1].next_cursor
    assert cursor is not None
    later = Cursor(updated_at=cursor.updated_at.replace(year=2030), tie_breaker="1")
    pages = list(shop.channel().pull(later, Window()))
    assert [(page.orders, page.next_cursor) for page in pages] == [([], later)]


def test_partially_paid_orders_carry_their_transactions(shop: Shop) -> None:
    start = len(shop.sandbox.requests)
    pages = list(shop.channel().pull(None, Window()))
    orders = [o for page in pages for o in page.orders]
    partial = [o for o in orders if o["financial_status"] == "partially_paid"]

    assert partial
    assert all(o["transactions"] and o["transactions"][0]["order_id"] == o["id"] for o in partial)
    assert all("transactions" not in o for o in orders if o["financial_status"] != "partially_paid")
    fetched = [r.path for r in shop.sandbox.requests[start:] if r.path.endswith("/transactions.json")]
    assert sorted(fetched) == sorted(f"/admin/api/2025-01/orders/{o['id']}/transactions.json" for o in partial)
    parsed = [shop.channel().parse(o) for o in partial]
    assert all(0 < order.paid_amount < order.totals.total for order in parsed)


def test_every_pulled_order_parses_and_balances(shop: Shop) -> None:
    channel = shop.channel()
    for page in channel.pull(None, Window()):
        for raw in page.orders:
            order = channel.parse(raw)
            lines = sum((line.gross - line.discount_total for line in order.lines), start=order.tax_total)
            assert lines + sum(s.net for s in order.shipping_lines) + sum(f.amount for f in order.fees) == (
                order.totals.total
            )


def test_a_window_of_order_numbers_fetches_exactly_those(shop: Shop) -> None:
    window = Window(order_numbers=("1005", "#1010", "1599"))
    pages = list(shop.channel().pull(Cursor(updated_at=datetime.fromisoformat("2030-01-01T00:00:00+00:00")), window))

    assert [o["name"] for page in pages for o in page.orders] == ["#1005", "#1010", "#1599"]
    assert all(page.next_cursor is None for page in pages)


def test_a_created_at_window_limits_the_pull(shop: Shop) -> None:
    created_from = datetime.fromisoformat(ORDERS[100]["created_at"])
    created_to = datetime.fromisoformat(ORDERS[149]["created_at"])
    pages = list(shop.channel().pull(None, Window(created_from=created_from, created_to=created_to)))
    assert sorted(_ids(pages)) == sorted(o["id"] for o in ORDERS[100:150])


def test_a_full_bucket_is_waited_out_without_an_error(running: Callable[..., Shop]) -> None:
    # A tiny bucket, and a channel that believes the shop leaks fast: it runs into 429s and must wait.
    with running(bucket_size=3) as shop:
        pages = list(shop.channel(leak_per_second=1e6).pull(None, Window()))
        assert len(_ids(pages)) == 600
        assert shop.sandbox.stats.throttled > 0
        assert 2.0 in shop.sleeps


def test_a_full_bucket_in_scaled_real_time(running: Callable[..., Shop]) -> None:
    with running(real_time=True, bucket_size=2, time_scale=50.0) as shop:
        started = time.monotonic()
        pages = list(shop.channel(leak_per_second=1e6).pull(None, Window()))
        assert len(_ids(pages)) == 600
        print(f"600 orders through a full bucket in {time.monotonic() - started:.1f} s (a figure, not a pass/fail)")


def test_the_channel_paces_itself_when_the_bucket_is_nearly_full(running: Callable[..., Shop]) -> None:
    with running(bucket_size=10) as shop:
        pages = list(shop.channel(leak_per_second=2.0).pull(None, Window()))
        assert len(_ids(pages)) == 600
        # Knowing the leak rate, the channel waits before the bucket overflows and is never refused.
        assert shop.sleeps
        assert shop.sandbox.stats.throttled == 0


def test_injected_throttling_is_retried_after_retry_after(shop: Shop) -> None:
    shop.sandbox.inject(Fault(kind="throttle", times=3, path="orders.json"))
    pages = list(shop.channel().pull(None, Window()))
    assert len(_ids(pages)) == 600
    assert shop.sleeps[:3] == [2.0, 2.0, 2.0]


def test_endless_throttling_gives_up_with_a_retryable_error(shop: Shop) -> None:
    shop.sandbox.inject(Fault(kind="throttle", times=100))
    with pytest.raises(RetryableError) as caught:
        list(shop.channel().pull(None, Window()))
    assert caught.value.retry_after == 2.0
    assert shop.sandbox.stats.throttled == 8


def test_server_errors_are_retried_with_backoff(shop: Shop) -> None:
    shop.sandbox.inject(Fault(kind="status", status=503, times=2, path="orders.json"))
    shop.sandbox.inject(Fault(kind="status", status=500, times=1, path="transactions.json"))
    pages = list(shop.channel().pull(None, Window()))
    assert len(_ids(pages)) == 600
    assert shop.sleeps == [0.5, 1.0, 0.5]
    assert shop.sandbox.stats.faults == 3


def test_faults_injected_over_http_are_retried(shop: Shop) -> None:
    with httpx.Client(base_url=shop.base_url) as client:
        answer = client.post("/_sandbox/faults", json={"kind": "status", "status": 502, "times": 2})
        assert answer.status_code == 201
    pages = list(shop.channel().pull(None, Window()))
    assert len(_ids(pages)) == 600
    assert shop.sandbox.stats.faults == 2


def test_lasting_server_errors_end_in_a_retryable_error(shop: Shop) -> None:
    shop.sandbox.inject(Fault(kind="status", status=500, times=50))
    with pytest.raises(RetryableError, match="500"):
        list(shop.channel().pull(None, Window()))
    assert len(shop.sleeps) == 4


def test_a_refused_token_needs_the_user(shop: Shop) -> None:
    with pytest.raises(NeedsUserError) as caught:
        list(shop.channel(access_token="shpat_wrong").pull(None, Window()))
    assert str(caught.value) == RECONNECT_MESSAGE
    assert caught.value.action == "reconnect"


def test_other_client_errors_are_permanent_with_shopifys_words(shop: Shop) -> None:
    shop.sandbox.inject(Fault(kind="status", status=404, times=1))
    with pytest.raises(PermanentError, match="Not Found") as caught:
        list(shop.channel().pull(None, Window()))
    assert caught.value.code == "404"
    assert shop.sleeps == []


def test_an_unknown_api_version_is_permanent(shop: Shop) -> None:
    with pytest.raises(PermanentError, match="404"):
        list(shop.channel(api_version="unstable", base_url=f"{shop.base_url}/nowhere").pull(None, Window()))


def test_connection_failures_are_retried() -> None:
    calls: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) < 3:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json={"orders": []})

    sleeps: list[float] = []
    client = httpx.Client(transport=httpx.MockTransport(answer))
    channel = ShopifyChannel({"shop": "x.myshopify.com", "access_token": "t"}, client=client, sleep=sleeps.append)
    assert [page.orders for page in channel.pull(None, Window())] == [[]]
    assert sleeps == [0.5, 1.0]
    client.close()


def test_the_token_travels_in_shopifys_header() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"orders": []}, headers={"X-Shopify-Shop-Api-Call-Limit": "39/40"})

    sleeps: list[float] = []
    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        channel = ShopifyChannel(
            ShopifyChannel.Config(shop="x.myshopify.com", access_token="shpat_secret"),
            client=client,
            sleep=sleeps.append,
        )
        list(channel.pull(None, Window()))
    assert seen[0].headers["X-Shopify-Access-Token"] == "shpat_secret"
    assert str(seen[0].url).startswith("https://x.myshopify.com/admin/api/2025-01/orders.json?")
    # 39 of 40 used: wait for the bucket to drain below the headroom (at the standard 2 calls a second).
    assert sleeps == [4.0]
