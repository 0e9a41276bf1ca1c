"""The ShipStation sandbox speaks ShipStation v1 (auth, filters and paging in Pacific time, upserts, shipments,
stores, webhooks, the 40-a-minute limit, faults), and the ShipStation adapter's own behaviour against it."""

from __future__ import annotations

import copy
import itertools
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import httpx
import pytest

from ledgerlink.channels.base import Window
from ledgerlink.channels.shipstation import ShipStationChannel, parse_order
from ledgerlink.domain.errors import PermanentError
from ledgerlink.http import new_client
from ledgerlink.sandbox.server import serve
from ledgerlink.sandbox.shipstation import STORES, Fault, ShipStationSandbox, generate_orders

pytestmark = pytest.mark.contract

ORDERS = generate_orders(160, seed=8)
PACIFIC = ZoneInfo("America/Los_Angeles")
NOW = datetime(2026, 7, 1, 19, 0, tzinfo=UTC)  # noon PDT


def fixture(name: str) -> Any:
    shared = Path(__file__).resolve().parents[2].parent / "shared"
    return json.loads((shared / "reference" / "fixtures" / name).read_text(encoding="utf-8"))


class Clock:
    """A clock the test moves by hand, so rate-limit windows end exactly when we say."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Switchboard:
    """One real server for the module, forwarding to the sandbox of the current test."""

    def __init__(self) -> None:
        self.app: Any = None
        self.server = serve(self)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert self.app is not None
        await self.app(scope, receive, send)


class Account:
    """A sandbox on a hand-moved clock (edits stamped a second apart from NOW), served, with an authed client."""

    def __init__(self, board: Switchboard, **options: Any) -> None:
        self.clock = Clock()
        stamps = itertools.count()
        options.setdefault("clock", self.clock)
        options.setdefault("now", lambda: NOW + timedelta(seconds=next(stamps)))
        self.sandbox = ShipStationSandbox(**options)
        self.sandbox.add_orders(ORDERS)
        board.app = self.sandbox.app
        self.base_url = board.server.base_url
        self.sandbox.base_url = self.base_url
        self.http = httpx.Client(
            base_url=self.base_url,
            auth=(self.sandbox.api_key, self.sandbox.api_secret),
            headers={"Connection": "close"},
        )
        self.clients = [self.http]

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(path, params=params or None)

    def post(self, path: str, body: Any) -> httpx.Response:
        return self.http.post(path, json=body)

    def ids(self, **params: Any) -> list[int]:
        answer = self.get("/orders", **params)
        assert answer.status_code == 200, answer.text
        return [order["orderId"] for order in answer.json()["orders"]]

    def channel(self, *, page_size: int = 500, **overrides: Any) -> ShipStationChannel:
        client = new_client(headers={"Connection": "close"})
        self.clients.append(client)
        config = {**self.sandbox.credentials(self.base_url), **overrides}
        return ShipStationChannel(config, client=client, sleep=self.clock.sleep, clock=self.clock, page_size=page_size)


@pytest.fixture(scope="module")
def board() -> Iterator[Switchboard]:
    switchboard = Switchboard()
    try:
        yield switchboard
    finally:
        switchboard.server.stop()


@pytest.fixture
def make_account(board: Switchboard) -> Iterator[Callable[..., Account]]:
    made: list[Account] = []

    def make(**options: Any) -> Account:
        options.setdefault("rate_limit", 10_000)
        made.append(Account(board, **options))
        return made[-1]

    yield make
    for account in made:
        for client in account.clients:
            client.close()


@pytest.fixture
def account(make_account: Callable[..., Account]) -> Account:
    return make_account()


def _wall(raw: str) -> datetime:
    return datetime.fromisoformat(raw)


# -- auth and the rate limit ------------------------------------------------------------------------------


def test_wrong_or_missing_credentials_are_refused(account: Account) -> None:
    for auth in ((account.sandbox.api_key, "wrong"), ("wrong", account.sandbox.api_secret), None):
        answer = httpx.get(f"{account.base_url}/orders", auth=auth, headers={"Connection": "close"})
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"] == 'Basic realm="api"'
    assert account.sandbox.requests[-1].status == 401


def test_forty_requests_a_minute_then_429_until_the_window_resets(make_account: Callable[..., Account]) -> None:
    account = make_account(rate_limit=40)
    remaining = []
    for _ in range(40):
        answer = account.get("/stores")
        assert answer.status_code == 200
        assert answer.headers["X-Rate-Limit-Limit"] == "40"
        remaining.append(int(answer.headers["X-Rate-Limit-Remaining"]))
    assert remaining == list(range(39, -1, -1))
    account.clock.now += 15
    refused = account.get("/orders")
    assert refused.status_code == 429
    assert refused.headers["X-Rate-Limit-Remaining"] == "0"
    assert refused.headers["X-Rate-Limit-Reset"] == "45"
    account.clock.now += 45
    again = account.get("/orders/123")
    # A fresh window; errors count and carry the headers too.
    assert again.status_code == 404
    assert again.headers["X-Rate-Limit-Remaining"] == "39"
    assert again.headers["X-Rate-Limit-Reset"] == "60"
    assert account.sandbox.stats.throttled == 1


def test_each_key_pair_has_its_own_budget(make_account: Callable[..., Account]) -> None:
    account = make_account(rate_limit=2)
    account.sandbox.add_key_pair("other-key", "other-secret")
    assert [account.get("/stores").status_code for _ in range(3)] == [200, 200, 429]
    other = httpx.get(f"{account.base_url}/stores", auth=("other-key", "other-secret"))
    assert other.status_code == 200
    assert other.headers["X-Rate-Limit-Remaining"] == "1"


def test_scaled_time_shortens_the_window(make_account: Callable[..., Account]) -> None:
    account = make_account(rate_limit=1, time_scale=600.0)
    assert account.get("/stores").headers["X-Rate-Limit-Reset"] == "0.100"
    assert account.get("/stores").status_code == 429
    account.clock.now += 0.1
    assert account.get("/stores").status_code == 200


def test_injected_faults_over_http_and_in_process(account: Account) -> None:
    with httpx.Client(base_url=account.base_url) as client:
        assert client.post("/_sandbox/faults", json={"kind": "status", "status": 503, "times": 1}).status_code == 201
    account.sandbox.inject(Fault(kind="throttle", times=1, path="/orders"))
    first, second, third = (account.get("/orders") for _ in range(3))
    assert first.status_code == 503
    assert second.status_code == 429
    assert second.headers["X-Rate-Limit-Remaining"] == "0"
    assert third.status_code == 200
    assert account.sandbox.stats.faults == 2


# -- listing orders ----------------------------------------------------------------------------------------


def test_lists_by_order_id_with_page_numbers(account: Account) -> None:
    answer = account.get("/orders", pageSize=50, page=4)
    body = answer.json()
    assert (body["total"], body["page"], body["pages"]) == (160, 4, 4)
    assert [o["orderId"] for o in body["orders"]] == sorted(o["orderId"] for o in ORDERS)[150:]
    assert account.get("/orders", pageSize=50, page=5).json()["orders"] == []
    assert len(account.ids()) == 100  # the default page size


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"pageSize": 501}, "pageSize"),
        ({"page": 0}, "page"),
        ({"sortBy": "Total"}, "sortBy"),
        ({"orderStatus": "lost"}, "orderStatus"),
        ({"modifyDateStart": "last tuesday"}, "modifyDateStart"),
    ],
)
def test_bad_parameters_are_refused_with_asp_net_words(account: Account, params: dict[str, Any], field: str) -> None:
    answer = account.get("/orders", **params)
    assert answer.status_code == 400
    assert answer.json()["Message"] == "The request is invalid."
    assert field in answer.json()["ModelState"]


def test_filters_by_status_store_and_order_number_prefix(account: Account) -> None:
    shipped = {o["orderId"] for o in ORDERS if o["orderStatus"] == "shipped"}
    assert set(account.ids(orderStatus="shipped", pageSize=500)) == shipped
    amazon = STORES[0]["storeId"]
    expected = {o["orderId"] for o in ORDERS if o["advancedOptions"]["storeId"] == amazon}
    assert set(account.ids(storeId=amazon, pageSize=500)) == expected
    prefix = ORDERS[7]["orderNumber"][:6]
    expected = {o["orderId"] for o in ORDERS if o["orderNumber"].startswith(prefix)}
    assert set(account.ids(orderNumber=prefix, pageSize=500)) == expected
    assert ORDERS[7]["orderId"] in expected


def test_dates_are_pacific_wall_clock_time(account: Account) -> None:
    winter = account.sandbox.modify(ORDERS[0]["orderId"], at=datetime(2026, 1, 15, 20, 0, tzinfo=UTC))
    summer = account.sandbox.modify(ORDERS[1]["orderId"], at=datetime(2026, 7, 15, 20, 0, tzinfo=UTC))
    assert winter["modifyDate"] == "2026-01-15T12:00:00.0000000"  # PST, UTC−8
    assert summer["modifyDate"] == "2026-07-15T13:00:00.0000000"  # PDT, UTC−7
    for order in ORDERS:
        assert len(order["modifyDate"]) == 27
        assert datetime.fromisoformat(order["modifyDate"]).tzinfo is None


def test_modify_date_range_is_inclusive_and_in_pacific_time(account: Account) -> None:
    walls = sorted((_wall(o["modifyDate"]), o["orderId"]) for o in ORDERS)
    low, high = walls[40][0], walls[79][0]
    ids = account.ids(
        modifyDateStart=low.isoformat(sep=" "),
        modifyDateEnd=high.isoformat(sep=" "),
        sortBy="ModifyDate",
        pageSize=500,
    )
    assert ids == [order_id for _, order_id in walls[40:80]]
    # The same instant written with an offset means the same wall time.
    utc = low.replace(tzinfo=PACIFIC).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert account.ids(modifyDateStart=utc, sortBy="ModifyDate", pageSize=500)[0] == walls[40][1]
    created = sorted((_wall(o["createDate"]), o["orderId"]) for o in ORDERS)
    since = created[150][0].isoformat(sep=" ")
    assert account.ids(createDateStart=since, sortBy="CreateDate", sortDir="DESC") == [
        order_id for _, order_id in reversed(created[150:])
    ]


def test_the_repeated_november_hour_sorts_by_wall_clock_not_by_instant(account: Account) -> None:
    first, second = ORDERS[0]["orderId"], ORDERS[1]["orderId"]
    account.sandbox.modify(first, at=datetime(2026, 11, 1, 8, 40, tzinfo=UTC))  # 01:40 PDT
    account.sandbox.modify(second, at=datetime(2026, 11, 1, 9, 10, tzinfo=UTC))  # 01:10 PST, half an hour later
    ids = account.ids(modifyDateStart="2026-11-01 00:00:00", sortBy="ModifyDate")
    assert ids == [second, first]
    assert account.ids(modifyDateStart="2026-11-01 01:40:00", sortBy="ModifyDate") == [first]


def test_get_one_order(account: Account) -> None:
    order_id = ORDERS[3]["orderId"]
    assert account.get(f"/orders/{order_id}").json() == ORDERS[3]
    missing = account.get("/orders/1")
    assert missing.status_code == 404
    assert "Message" in missing.json()


# -- createorder(s) ----------------------------------------------------------------------------------------


def test_createorder_creates_from_shipstations_documented_body(account: Account) -> None:
    body = fixture("shipstation_v1_createorder_request.json")
    answer = account.post("/orders/createorder", body)
    assert answer.status_code == 200, answer.text
    order = answer.json()
    assert isinstance(order["orderId"], int)
    assert order["orderKey"] == body["orderKey"]
    # 2 × 99.99 − 20.55 + shipping 10 + tax 5
    assert order["orderTotal"] == 194.43
    assert order["createDate"] == order["modifyDate"] == "2026-07-01T12:00:00.0000000"
    assert order["orderDate"] == "2015-06-29T08:46:27.0000000"
    assert [item["adjustment"] for item in order["items"]] == [False, True]
    assert all(isinstance(item["orderItemId"], int) for item in order["items"])
    assert account.get(f"/orders/{order['orderId']}").json() == order
    parsed = parse_order(order)
    assert parsed.totals.total == parsed.totals.subtotal - parsed.totals.discounts + 15


def test_createorder_is_a_whole_order_upsert_by_order_key(account: Account) -> None:
    body = fixture("shipstation_v1_createorder_request.json")
    created = account.post("/orders/createorder", body).json()
    replacement = {k: v for k, v in body.items() if k not in {"customerNotes", "internalNotes"}}
    replacement["items"] = body["items"][:1]
    updated = account.post("/orders/createorder", replacement).json()

    assert updated["orderId"] == created["orderId"]
    assert updated["createDate"] == created["createDate"]
    assert updated["modifyDate"] > created["modifyDate"]
    # No partial update: what the body leaves out is gone.
    assert updated["customerNotes"] is None
    assert updated["internalNotes"] is None
    assert len(updated["items"]) == 1
    assert updated["orderTotal"] == 214.98
    matching = [o for o in account.sandbox.orders.values() if o["orderKey"] == body["orderKey"]]
    assert len(matching) == 1
    # Without an orderKey every call is a new order.
    keyless = {k: v for k, v in body.items() if k != "orderKey"}
    one, two = (account.post("/orders/createorder", keyless).json() for _ in range(2))
    assert one["orderId"] != two["orderId"]
    assert one["orderKey"] != two["orderKey"]


@pytest.mark.parametrize("status", ["shipped", "cancelled"])
def test_shipped_and_cancelled_orders_cannot_change(account: Account, status: str) -> None:
    existing = next(o for o in ORDERS if o["orderStatus"] == status)
    body = {**fixture("shipstation_v1_createorder_request.json"), "orderKey": existing["orderKey"]}
    answer = account.post("/orders/createorder", body)
    assert answer.status_code == 400
    assert status in answer.json()["Message"]
    assert account.sandbox.orders[existing["orderId"]] == existing


def test_createorder_requires_shipstations_fields(account: Account) -> None:
    answer = account.post("/orders/createorder", {"orderKey": "k1", "items": []})
    assert answer.status_code == 400
    assert set(answer.json()["ModelState"]) == {
        f"apiOrder.{name}" for name in ("orderNumber", "orderDate", "orderStatus", "billTo", "shipTo")
    }


def test_createorders_answers_each_order(account: Account) -> None:
    good = fixture("shipstation_v1_createorder_request.json")
    shipped = next(o for o in ORDERS if o["orderStatus"] == "shipped")
    bodies = [
        {**good, "orderKey": "qb-invoice-1001", "orderNumber": "INV-1001"},
        {**good, "orderKey": "qb-invoice-1002", "orderNumber": None},
        {**good, "orderKey": shipped["orderKey"], "orderNumber": shipped["orderNumber"]},
        {**good, "orderKey": "qb-invoice-1001", "orderNumber": "INV-1001", "orderStatus": "cancelled"},
    ]
    answer = account.post("/orders/createorders", bodies).json()
    assert answer["hasErrors"] is True
    results = answer["results"]
    assert [r["success"] for r in results] == [True, False, False, True]
    assert results[0]["orderId"] == results[3]["orderId"]
    assert results[1]["orderId"] is None
    assert "orderNumber" in results[1]["errorMessage"]
    assert "shipped" in results[2]["errorMessage"]
    assert account.sandbox.orders[results[0]["orderId"]]["orderStatus"] == "cancelled"
    assert account.post("/orders/createorders", [good] * 101).status_code == 400


# -- shipments, stores, webhooks ----------------------------------------------------------------------------


def test_markasshipped_ships_the_order_and_records_a_shipment(account: Account) -> None:
    waiting = next(o for o in ORDERS if o["orderStatus"] == "awaiting_shipment")
    answer = account.post(
        "/orders/markasshipped",
        {"orderId": waiting["orderId"], "carrierCode": "ups", "shipDate": "2026-07-01", "trackingNumber": "1Z999"},
    )
    assert answer.json() == {"orderId": waiting["orderId"], "orderNumber": waiting["orderNumber"]}
    order = account.get(f"/orders/{waiting['orderId']}").json()
    assert (order["orderStatus"], order["shipDate"], order["carrierCode"]) == ("shipped", "2026-07-01", "ups")
    shipments = account.get("/shipments", orderId=waiting["orderId"]).json()
    assert shipments["total"] == 1
    assert shipments["shipments"][0]["trackingNumber"] == "1Z999"
    assert shipments["shipments"][0]["shipmentItems"] is None
    with_items = account.get("/shipments", orderId=waiting["orderId"], includeShipmentItems="true").json()
    assert with_items["shipments"][0]["shipmentItems"]
    by_date = account.get("/shipments", shipDateStart="2026-07-01", shipDateEnd="2026-07-01").json()
    assert [s["orderId"] for s in by_date["shipments"]] == [waiting["orderId"]]
    # Generated shipped orders have their shipments too.
    assert account.get("/shipments", pageSize=500).json()["total"] == 1 + sum(
        o["orderStatus"] == "shipped" for o in ORDERS
    )
    cancelled = next(o for o in ORDERS if o["orderStatus"] == "cancelled")
    refused = account.post("/orders/markasshipped", {"orderId": cancelled["orderId"], "carrierCode": "ups"})
    assert refused.status_code == 400


def test_stores_list_the_marketplaces(account: Account) -> None:
    stores = account.get("/stores").json()
    assert [(s["storeId"], s["storeName"]) for s in stores] == [(s["storeId"], s["storeName"]) for s in STORES]
    assert [s["storeName"] for s in account.get("/stores", marketplaceId=3).json()] == ["eBay – Vintage Finds"]


class Receiver:
    """A webhook endpoint on a real port that keeps the JSON bodies posted to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.server = serve(self)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self.bodies.append(json.loads(body))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def test_webhooks_subscribe_deliver_and_unsubscribe(account: Account) -> None:
    receiver = Receiver()
    try:
        target = f"{receiver.server.base_url}/hooks/shipstation"
        ship_hook = account.post("/webhooks/subscribe", {"target_url": target, "event": "SHIP_NOTIFY"})
        order_hook = account.post(
            "/webhooks/subscribe", {"target_url": target, "event": "ORDER_NOTIFY", "friendly_name": "ledgerlink"}
        )
        assert ship_hook.status_code == order_hook.status_code == 201
        listed = account.get("/webhooks").json()["webhooks"]
        assert [(h["HookType"], h["Url"]) for h in listed] == [("SHIP_NOTIFY", target), ("ORDER_NOTIFY", target)]

        shipped = [o["orderId"] for o in ORDERS if o["orderStatus"] == "shipped"][:2]
        deliveries = account.sandbox.deliver("SHIP_NOTIFY", shipped)
        assert [d.status for d in deliveries] == [200]
        (body,) = receiver.bodies
        assert body["resource_type"] == "SHIP_NOTIFY"
        # The resource URL is an authenticated ShipStation call listing exactly what the event is about.
        shipments = account.http.get(body["resource_url"]).json()["shipments"]
        assert sorted(s["orderId"] for s in shipments) == sorted(shipped)

        account.sandbox.deliver("ORDER_NOTIFY", [ORDERS[5]["orderId"]])
        orders = account.http.get(receiver.bodies[-1]["resource_url"]).json()["orders"]
        assert [o["orderId"] for o in orders] == [ORDERS[5]["orderId"]]

        assert account.http.delete(f"/webhooks/{ship_hook.json()['id']}").status_code == 200
        assert account.http.delete(f"/webhooks/{ship_hook.json()['id']}").status_code == 404
        assert account.sandbox.deliver("SHIP_NOTIFY", shipped) == []
        bad = account.post("/webhooks/subscribe", {"target_url": target, "event": "EVERYTHING"})
        assert bad.status_code == 400
    finally:
        receiver.server.stop()


def test_run_standalone_prints_credentials_then_serves() -> None:
    code = (
        "from ledgerlink.sandbox.shipstation import run_standalone; run_standalone('127.0.0.1', 0, orders=12, seed=3)"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)  # noqa: S603
    try:
        assert process.stdout is not None
        credentials = json.loads(process.stdout.readline())
        assert set(credentials) == {"base_url", "api_key", "api_secret"}
        answer = httpx.get(
            f"{credentials['base_url']}/orders", auth=(credentials["api_key"], credentials["api_secret"])
        )
        assert answer.json()["total"] == 12
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


# -- the adapter against the sandbox -------------------------------------------------------------------------


def _queries(account: Account) -> list[dict[str, list[str]]]:
    return [parse_qs(r.query) for r in account.sandbox.requests if r.path == "/orders"]


def test_the_adapter_asks_for_shipped_orders_by_modify_date_in_pages_of_500(account: Account) -> None:
    pages = list(account.channel().pull(None, Window()))
    pulled = [o for page in pages for o in page.orders]
    assert {o["orderId"] for o in pulled} == {o["orderId"] for o in ORDERS if o["orderStatus"] == "shipped"}
    assert _queries(account)[0] == {
        "orderStatus": ["shipped"],
        "sortBy": ["ModifyDate"],
        "sortDir": ["ASC"],
        "page": ["1"],
        "pageSize": ["500"],
    }
    # The store's name travels with the order for `parse`, which has no other way to learn it.
    assert {o["storeName"] for o in pulled} <= {s["storeName"] for s in STORES}
    assert parse_order(pulled[0]).source == pulled[0]["storeName"]


def test_several_statuses_and_a_store_filter(account: Account) -> None:
    amazon = STORES[0]["storeId"]
    channel = account.channel(order_statuses=["shipped", "cancelled"], store_id=amazon)
    pulled = [o for page in channel.pull(None, Window()) for o in page.orders]
    assert {o["orderId"] for o in pulled} == {
        o["orderId"]
        for o in ORDERS
        if o["orderStatus"] in {"shipped", "cancelled"} and o["advancedOptions"]["storeId"] == amazon
    }
    assert "orderStatus" not in _queries(account)[0]
    assert _queries(account)[0]["storeId"] == [str(amazon)]


def test_a_window_of_order_numbers_fetches_exactly_those(account: Account) -> None:
    wanted = (ORDERS[10]["orderNumber"], ORDERS[20]["orderNumber"])
    pages = list(account.channel(order_statuses=[]).pull(None, Window(order_numbers=wanted)))
    assert [o["orderNumber"] for page in pages for o in page.orders] == list(wanted)
    assert all(page.next_cursor is None for page in pages)


def test_the_adapter_waits_for_the_window_instead_of_running_into_429(make_account: Callable[..., Account]) -> None:
    account = make_account(rate_limit=3)
    channel = account.channel(order_statuses=[], page_size=20)
    pulled = {o["orderId"] for page in channel.pull(None, Window()) for o in page.orders}
    assert pulled == {o["orderId"] for o in ORDERS}
    assert account.sandbox.stats.throttled == 0
    # It waited out each used-up window, exactly until it reset.
    assert len(account.clock.sleeps) >= 2
    assert all(0 < wait <= 60 for wait in account.clock.sleeps)


def test_other_client_errors_are_permanent_with_shipstations_words(account: Account) -> None:
    account.sandbox.inject(Fault(kind="status", status=404, times=1, path="/orders"))
    with pytest.raises(PermanentError) as caught:
        list(account.channel().pull(None, Window()))
    assert caught.value.code == "404"
    assert "An error has occurred." in str(caught.value)


def test_a_bulk_edit_larger_than_a_page_does_not_stall_the_pull(account: Account) -> None:
    # 60 orders edited in the same second (a bulk action), read 25 at a time.
    same = "2026-07-01T12:00:00.0000000"
    for order in ORDERS[:60]:
        account.sandbox.modify(order["orderId"], at=same)
    channel = account.channel(order_statuses=[], page_size=25)
    pulled = [o["orderId"] for page in channel.pull(None, Window()) for o in page.orders]
    assert sorted(pulled) == sorted(o["orderId"] for o in ORDERS)
    assert len(pulled) == len(set(pulled))


def test_an_order_edited_during_the_pull_is_not_skipped(account: Account) -> None:
    channel = account.channel(order_statuses=[], page_size=40)
    seen: list[int] = []
    for index, page in enumerate(channel.pull(None, Window())):
        seen.extend(o["orderId"] for o in page.orders)
        if index == 0:
            # An order of the first page changes: with page numbers, every later order would move up one
            # place and the first of the next page would be skipped.
            account.sandbox.modify(page.orders[0]["orderId"], {"internalNotes": "edited mid-pull"})
    assert set(seen) == {o["orderId"] for o in ORDERS}


def test_generated_orders_are_deterministic() -> None:
    assert generate_orders(5, seed=8) == copy.deepcopy(ORDERS[:5])
    assert generate_orders(5, seed=9) != ORDERS[:5]
