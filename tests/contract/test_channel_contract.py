"""The one contract every channel adapter and its sandbox must pass, run for each channel kind over real HTTP.

Paging, resuming from the cursor, rate limits (injected 429s and a really tight limit), 5xx retries,
refused credentials, every pulled order parsing and balancing to the cent, and bad fields named in the
`MappingError`. A new channel adds a `Harness` below and inherits the suite.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar, Protocol

import httpx
import pytest

from ledgerlink.channels.base import ChannelPage, Cursor, Window, channel_class, channel_parser
from ledgerlink.channels.shipstation import ShipStationChannel
from ledgerlink.channels.shopify import ShopifyChannel
from ledgerlink.domain.errors import MappingError, NeedsUserError, RetryableError
from ledgerlink.domain.money import total
from ledgerlink.domain.order import Order
from ledgerlink.http import new_client
from ledgerlink.sandbox import shipstation, shopify
from ledgerlink.sandbox.server import serve

pytestmark = pytest.mark.contract

SHOPIFY_ORDERS = shopify.generate_orders(300, seed=21)
SHIPSTATION_ORDERS = shipstation.generate_orders(300, seed=21)
EDITED_FROM = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class VirtualClock:
    """Time that passes only when the channel sleeps: sandbox limits recover exactly as much as waited."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Switchboard:
    """One real server for the module, forwarding to the sandbox of the current test (uvicorn is slow to start)."""

    def __init__(self) -> None:
        self.app: Any = None
        self.server = serve(self)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert self.app is not None
        await self.app(scope, receive, send)


class Harness(Protocol):
    """What the suite needs from a channel kind: its sandbox, a channel on it, faults and order shapes."""

    kind: ClassVar[str]
    orders: list[dict[str, Any]]
    clock: VirtualClock

    def channel(self, **overrides: Any) -> Any: ...
    def refused_credentials(self) -> dict[str, str]: ...
    def inject_status(self, status: int, times: int) -> None: ...
    def inject_throttle(self, times: int) -> None: ...
    def throttled(self) -> int: ...
    def order_id(self, raw: dict[str, Any]) -> str: ...
    def label(self, raw: dict[str, Any]) -> str: ...
    def touch(self, order_ids: list[str]) -> None: ...
    def tight(self) -> Any: ...


def _client(made: list[httpx.Client]) -> httpx.Client:
    # A fresh connection per request: keep-alive on loopback waits on delayed ACKs (see the Shopify tests).
    client = new_client(headers={"Connection": "close"})
    made.append(client)
    return client


class ShopifyHarness:
    kind: ClassVar[str] = "shopify"
    # A bad value per field path, each of which the parser must refuse naming exactly that path.
    corruptions: ClassVar[list[tuple[str, object]]] = [
        ("total_price", "lots"),
        ("created_at", "yesterday"),
        ("line_items[0].quantity", 0),
        ("line_items[0].price", "twelve"),
        ("currency", "dollars"),
    ]

    def __init__(self, board: Switchboard, clients: list[httpx.Client], **options: Any) -> None:
        self.clock = VirtualClock()
        options.setdefault("bucket_size", 1000)
        self.sandbox = shopify.ShopifySandbox(clock=self.clock, **options)
        self.sandbox.add_orders(SHOPIFY_ORDERS)
        self.orders = SHOPIFY_ORDERS
        self.board, self.clients = board, clients
        board.app = self.sandbox.app

    def channel(self, **overrides: Any) -> ShopifyChannel:
        config = {**self.sandbox.credentials(self.board.server.base_url), **overrides}
        return ShopifyChannel(config, client=_client(self.clients), sleep=self.clock.sleep)

    def refused_credentials(self) -> dict[str, str]:
        return {"access_token": "shpat_wrong"}

    def inject_status(self, status: int, times: int) -> None:
        self.sandbox.inject(shopify.Fault(kind="status", status=status, times=times))

    def inject_throttle(self, times: int) -> None:
        self.sandbox.inject(shopify.Fault(kind="throttle", times=times))

    def throttled(self) -> int:
        return self.sandbox.stats.throttled

    def order_id(self, raw: dict[str, Any]) -> str:
        return str(raw["id"])

    @staticmethod
    def label(raw: dict[str, Any]) -> str:
        return str(raw["order_number"])

    def touch(self, order_ids: list[str]) -> None:
        for order_id in order_ids:
            self.sandbox.update_order(int(order_id), {"note": "changed after the first pull"})

    def tight(self) -> ShopifyChannel:
        # A 3-call bucket and a channel that believes it leaks fast: it runs into 429s and must wait them out.
        tight = ShopifyHarness(self.board, self.clients, bucket_size=3)
        return ShopifyChannel(
            tight.sandbox.credentials(self.board.server.base_url),
            client=_client(self.clients),
            sleep=tight.clock.sleep,
            leak_per_second=1e6,
        )


class ShipStationHarness:
    kind: ClassVar[str] = "shipstation"
    corruptions: ClassVar[list[tuple[str, object]]] = [
        ("orderTotal", "lots"),
        ("orderTotal", 1.23),  # a total the items, shipping and tax do not explain
        ("orderDate", "yesterday"),
        ("modifyDate", "2026-13-45T99:00:00.0000000"),
        ("items[0].quantity", 0),
        ("items[0].unitPrice", "twelve"),
        ("billTo", "nowhere"),
        ("orderStatus", "lost_in_transit"),
        ("amountPaid", [1]),
    ]

    def __init__(self, board: Switchboard, clients: list[httpx.Client], **options: Any) -> None:
        self.clock = VirtualClock()
        options.setdefault("rate_limit", 1000)
        # Edits are stamped after every generated order, one second apart.
        stamps = itertools.count()
        self.sandbox = shipstation.ShipStationSandbox(
            clock=self.clock, now=lambda: EDITED_FROM + timedelta(seconds=next(stamps)), **options
        )
        self.sandbox.add_orders(SHIPSTATION_ORDERS)
        self.orders = SHIPSTATION_ORDERS
        self.board, self.clients = board, clients
        board.app = self.sandbox.app

    def channel(self, **overrides: Any) -> ShipStationChannel:
        # Every status, so the suite sees the whole account (the default syncs shipped orders only).
        config = {**self.sandbox.credentials(self.board.server.base_url), "order_statuses": [], **overrides}
        # Pages of 200 (ShipStation allows 500) keep the account small while still paging.
        return ShipStationChannel(
            config, client=_client(self.clients), sleep=self.clock.sleep, clock=self.clock, page_size=200
        )

    def refused_credentials(self) -> dict[str, str]:
        return {"api_secret": "not-the-secret"}

    def inject_status(self, status: int, times: int) -> None:
        self.sandbox.inject(shipstation.Fault(kind="status", status=status, times=times))

    def inject_throttle(self, times: int) -> None:
        self.sandbox.inject(shipstation.Fault(kind="throttle", times=times))

    def throttled(self) -> int:
        return self.sandbox.stats.throttled

    def order_id(self, raw: dict[str, Any]) -> str:
        return str(raw["orderId"])

    @staticmethod
    def label(raw: dict[str, Any]) -> str:
        return str(raw["orderNumber"])

    def touch(self, order_ids: list[str]) -> None:
        for order_id in order_ids:
            self.sandbox.modify(int(order_id), {"internalNotes": "changed after the first pull"})

    def tight(self) -> ShipStationChannel:
        # Two requests a minute and small pages: the channel must wait for each window, never fail.
        tight = ShipStationHarness(self.board, self.clients, rate_limit=2)
        config = {**tight.sandbox.credentials(self.board.server.base_url), "order_statuses": []}
        return ShipStationChannel(
            config, client=_client(self.clients), sleep=tight.clock.sleep, clock=tight.clock, page_size=50
        )


HARNESSES: dict[str, type[ShopifyHarness | ShipStationHarness]] = {
    "shopify": ShopifyHarness,
    "shipstation": ShipStationHarness,
}


@pytest.fixture(scope="module")
def board() -> Iterator[Switchboard]:
    switchboard = Switchboard()
    try:
        yield switchboard
    finally:
        switchboard.server.stop()


@pytest.fixture(params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest, board: Switchboard) -> Iterator[Harness]:
    clients: list[httpx.Client] = []
    yield HARNESSES[request.param](board, clients)
    for client in clients:
        client.close()


def _pull(channel: Any, cursor: Cursor | None = None, window: Window | None = None) -> list[ChannelPage]:
    return list(channel.pull(cursor, window or Window()))


def _ids(harness: Harness, pages: list[ChannelPage]) -> list[str]:
    return [harness.order_id(order) for page in pages for order in page.orders]


def balance(order: Order) -> Decimal:
    """Σ lines − line discounts − order discounts + shipping + tax + fees: must be the channel's total."""
    return total(
        [
            *(line.gross - line.discount_total for line in order.lines),
            *(shipping.net for shipping in order.shipping_lines),
            order.tax_total,
            *(fee.amount for fee in order.fees),
        ]
    ) - total(discount.amount for discount in order.order_discounts)


def test_the_kind_is_registered(harness: Harness) -> None:
    assert channel_class(harness.kind) is type(harness.channel())


def test_pulls_every_order_across_pages(harness: Harness) -> None:
    pages = _pull(harness.channel())

    assert len(pages) >= 2
    ids = _ids(harness, pages)
    assert set(ids) == {harness.order_id(o) for o in harness.orders}
    cursors = [page.next_cursor for page in pages]
    assert all(cursor is not None for cursor in cursors)
    moments = [cursor.updated_at for cursor in cursors if cursor is not None]
    assert moments == sorted(moments)
    assert all(moment.utcoffset() is not None for moment in moments)
    # Each page's cursor stands on an order of that page.
    assert all(page.next_cursor is not None and page.next_cursor.tie_breaker in _ids(harness, [page]) for page in pages)


def test_resumes_from_the_cursor_with_what_changed(harness: Harness) -> None:
    channel = harness.channel()
    first = _pull(channel)
    cursor = first[-1].next_cursor
    assert cursor is not None
    everything = _ids(harness, first)
    changed = [everything[3], everything[len(everything) // 2], everything[-1]]
    harness.touch(changed)

    again = _pull(channel, cursor)

    ids = _ids(harness, again)
    assert set(changed) <= set(ids)
    # Only the changes and the boundary come back, not the whole account.
    assert len(set(ids)) <= len(changed) + 3
    last = again[-1].next_cursor
    assert last is not None
    assert last.updated_at > cursor.updated_at
    assert last.tie_breaker in changed


def test_an_empty_pull_keeps_the_cursor(harness: Harness) -> None:
    cursor = _pull(harness.channel())[-1].next_cursor
    assert cursor is not None
    later = Cursor(updated_at=cursor.updated_at.replace(year=2031), tie_breaker="1")
    assert [(page.orders, page.next_cursor) for page in _pull(harness.channel(), later)] == [([], later)]


def test_injected_429s_are_waited_out(harness: Harness) -> None:
    harness.inject_throttle(3)
    pages = _pull(harness.channel())
    assert len(set(_ids(harness, pages))) == len(harness.orders)
    assert harness.throttled() == 3
    assert len(harness.clock.sleeps) >= 3


def test_a_tight_rate_limit_never_surfaces_as_an_error(harness: Harness) -> None:
    pages = _pull(harness.tight())
    assert len(set(_ids(harness, pages))) == len(harness.orders)


def test_endless_429s_give_up_with_a_retryable_error(harness: Harness) -> None:
    harness.inject_throttle(100)
    with pytest.raises(RetryableError):
        _pull(harness.channel())


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retried(harness: Harness, status: int) -> None:
    harness.inject_status(status, 2)
    pages = _pull(harness.channel())
    assert len(set(_ids(harness, pages))) == len(harness.orders)
    assert harness.clock.sleeps[:2] == [0.5, 1.0]


def test_lasting_server_errors_end_in_a_retryable_error(harness: Harness) -> None:
    harness.inject_status(500, 50)
    with pytest.raises(RetryableError, match="500"):
        _pull(harness.channel())


def test_refused_credentials_need_the_user(harness: Harness) -> None:
    with pytest.raises(NeedsUserError) as caught:
        _pull(harness.channel(**harness.refused_credentials()))
    assert caught.value.action == "reconnect"
    assert harness.clock.sleeps == []


def test_every_pulled_order_parses_and_balances(harness: Harness) -> None:
    channel = harness.channel()
    parsed = [channel.parse(raw) for page in _pull(channel) for raw in page.orders]
    assert len(parsed) >= len(harness.orders)
    for order in parsed:
        assert order.channel == harness.kind
        assert balance(order) == order.totals.total, order.number
        assert order.created_at.utcoffset() is not None
    # The generators exercise what matters: discounts, tax, shipping, more than one status.
    assert any(o.order_discounts or any(line.discounts for line in o.lines) for o in parsed)
    assert any(o.tax_total > 0 for o in parsed)
    assert len({o.financial_status for o in parsed}) >= 3


def _set(raw: dict[str, Any], path: str, value: object) -> None:
    """Put `value` at a JSON path like `items[0].quantity`."""
    steps: list[str | int] = []
    for part in path.split("."):
        name, *indexes = re.findall(r"[^\[\]]+", part)
        steps.append(name)
        steps.extend(int(index) for index in indexes)
    target: Any = raw
    for step in steps[:-1]:
        target = target[step]
    target[steps[-1]] = value


CORRUPTIONS = [
    pytest.param(kind, path, value, id=f"{kind}:{path}={value!r}")
    for kind, harness_class in sorted(HARNESSES.items())
    for path, value in harness_class.corruptions
]


@pytest.fixture(scope="module")
def pulled(board: Switchboard) -> Iterator[Callable[[str], list[dict[str, Any]]]]:
    """Each kind's orders as its channel pulls them, pulled once for the module's corruption tests."""
    clients: list[httpx.Client] = []
    cache: dict[str, list[dict[str, Any]]] = {}

    def pull(kind: str) -> list[dict[str, Any]]:
        if kind not in cache:
            harness = HARNESSES[kind](board, clients)
            cache[kind] = [raw for page in _pull(harness.channel()) for raw in page.orders]
        return copy.deepcopy(cache[kind][:1])

    yield pull
    for client in clients:
        client.close()


@pytest.mark.parametrize(("kind", "path", "value"), CORRUPTIONS)
def test_a_bad_field_is_named_in_the_mapping_error(
    pulled: Callable[[str], list[dict[str, Any]]], kind: str, path: str, value: object
) -> None:
    (raw,) = pulled(kind)
    parse = channel_parser(kind)
    assert balance(parse(raw)) > 0
    _set(raw, path, value)

    with pytest.raises(MappingError) as caught:
        parse(raw)

    assert caught.value.field == path
    assert caught.value.order == HARNESSES[kind].label(raw)
    assert caught.value.order is not None
    assert caught.value.order in str(caught.value)
