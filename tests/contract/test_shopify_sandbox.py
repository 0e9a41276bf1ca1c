"""The Shopify sandbox speaks Shopify's wire format: auth, filters, Link pagination, the leaky bucket, faults."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from ledgerlink.sandbox.server import serve
from ledgerlink.sandbox.shopify import Fault, ShopifySandbox, generate_orders

pytestmark = pytest.mark.contract

ORDERS = generate_orders(150, seed=8)
API = "/admin/api/2025-01"


class Clock:
    """A clock the test moves by hand, so the bucket leaks exactly when we say."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Switchboard:
    """One real server for the module, forwarding to the sandbox of the current test."""

    def __init__(self) -> None:
        self.sandbox: ShopifySandbox | None = None
        self.server = serve(self)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert self.sandbox is not None
        await self.sandbox.app(scope, receive, send)


class Shop:
    """A sandbox on a hand-moved clock, served, with an HTTP client that carries its token."""

    def __init__(self, switchboard: Switchboard, **options: Any) -> None:
        self.clock = Clock()
        options.setdefault("clock", self.clock)
        self.sandbox = ShopifySandbox(**options)
        self.sandbox.add_orders(ORDERS)
        switchboard.sandbox = self.sandbox
        self.base_url = switchboard.server.base_url
        # A fresh connection per request: the local server does not set TCP_NODELAY (see the channel tests).
        self.http = httpx.Client(
            base_url=self.base_url,
            headers={"X-Shopify-Access-Token": self.sandbox.access_token, "Connection": "close"},
        )

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(path if path.startswith("http") else f"{API}{path}", params=params or None)

    def ids(self, **params: Any) -> list[int]:
        answer = self.get("/orders.json", **params)
        assert answer.status_code == 200, answer.text
        return [order["id"] for order in answer.json()["orders"]]

    def count(self, **params: Any) -> int:
        answer = self.get("/orders/count.json", **params)
        assert answer.status_code == 200, answer.text
        count: int = answer.json()["count"]
        return count


@pytest.fixture(scope="module")
def switchboard() -> Iterator[Switchboard]:
    board = Switchboard()
    try:
        yield board
    finally:
        board.server.stop()


@pytest.fixture
def make_shop(switchboard: Switchboard) -> Iterator[Callable[..., Shop]]:
    shops: list[Shop] = []

    def make(**options: Any) -> Shop:
        shops.append(Shop(switchboard, **options))
        return shops[-1]

    yield make
    for shop in shops:
        shop.http.close()


@pytest.fixture
def shop(make_shop: Callable[..., Shop]) -> Shop:
    return make_shop(bucket_size=10_000)


def _links(answer: httpx.Response) -> dict[str, str]:
    links = {}
    for part in answer.headers.get("Link", "").split(","):
        if part.strip():
            target, rel = part.split(";")
            links[rel.strip().removeprefix('rel="').removesuffix('"')] = target.strip()[1:-1]
    return links


def _walk(shop: Shop, between: Callable[[int], None] = lambda page: None, **params: Any) -> list[list[int]]:
    """Follow rel="next" from the first page, calling `between` after each page; the ids of every page."""
    answer = shop.get("/orders.json", **params)
    pages = []
    while True:
        assert answer.status_code == 200, answer.text
        pages.append([order["id"] for order in answer.json()["orders"]])
        between(len(pages))
        following = _links(answer).get("next")
        if following is None:
            return pages
        answer = shop.get(following)


# -- auth, versions, single orders ---------------------------------------------------------------------


def test_a_wrong_or_missing_token_is_refused_like_shopify(shop: Shop) -> None:
    for headers in ({"X-Shopify-Access-Token": "shpat_wrong"}, {}):
        answer = httpx.get(f"{shop.base_url}{API}/orders.json", headers={**headers, "Connection": "close"})
        assert answer.status_code == 401
        assert answer.json() == {
            "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
        }
    assert shop.sandbox.requests[-1].status == 401


def test_single_order_transactions_and_not_found(shop: Shop) -> None:
    partial = next(o for o in ORDERS if o["financial_status"] == "partially_paid")
    answer = shop.get(f"/orders/{partial['id']}.json")
    assert answer.json() == {"order": partial}
    assert shop.get(f"/orders/{partial['id']}.json", fields="id,name").json() == {
        "order": {"id": partial["id"], "name": partial["name"]}
    }
    kinds = [t["kind"] for t in shop.get(f"/orders/{partial['id']}/transactions.json").json()["transactions"]]
    assert kinds[:2] == ["authorization", "capture"]
    for path in ("/orders/1.json", "/orders/1/transactions.json", "/orders/abc.json", "/nothing.json"):
        answer = shop.get(path)
        assert (answer.status_code, answer.json()) == (404, {"errors": "Not Found"})
    assert shop.get("http://x/admin/api/2025-13x/orders.json".replace("http://x", shop.base_url)).status_code == 404


def test_given_transactions_are_served_as_given(shop: Shop) -> None:
    order = {**ORDERS[0], "id": 42, "transactions": [{"id": 1, "kind": "sale", "status": "success", "amount": "1.00"}]}
    shop.sandbox.add_orders([order])
    assert "transactions" not in shop.sandbox.orders[42]
    assert shop.get("/orders/42/transactions.json").json() == {"transactions": order["transactions"]}
    shop.sandbox.set_transactions(42, [])
    assert shop.get("/orders/42/transactions.json").json() == {"transactions": []}


# -- filters -------------------------------------------------------------------------------------------


def test_status_filters_and_counts(shop: Shop) -> None:
    cancelled = {o["id"] for o in ORDERS if o["cancelled_at"]}
    closed = {o["id"] for o in ORDERS if o["closed_at"]}
    assert cancelled
    assert closed - cancelled
    assert shop.count(status="any") == len(ORDERS)
    assert shop.count() == shop.count(status="open") == len(ORDERS) - len(cancelled | closed)
    assert shop.count(status="cancelled") == len(cancelled)
    assert shop.count(status="closed") == len(closed)
    assert set(shop.ids(status="cancelled", limit=250)) == cancelled
    assert shop.get("/orders.json", status="nope").status_code == 400


def test_default_listing_is_open_orders_newest_id_first_fifty_at_a_time(shop: Shop) -> None:
    open_ids = sorted((o["id"] for o in ORDERS if not o["cancelled_at"] and not o["closed_at"]), reverse=True)
    assert shop.ids() == open_ids[:50]


def test_limits(shop: Shop) -> None:
    assert len(shop.ids(status="any", limit=250)) == len(ORDERS)
    for bad in ("251", "0", "many"):
        answer = shop.get("/orders.json", limit=bad)
        assert answer.status_code == 400
        assert "limit" in answer.json()["errors"]


def test_field_filters(shop: Shop) -> None:
    paid = {o["id"] for o in ORDERS if o["financial_status"] == "paid"}
    assert set(shop.ids(status="any", financial_status="paid", limit=250)) == paid
    unpaid = {o["id"] for o in ORDERS if o["financial_status"] in {"pending", "authorized", "partially_paid"}}
    assert set(shop.ids(status="any", financial_status="unpaid", limit=250)) == unpaid
    shipped = {o["id"] for o in ORDERS if o["fulfillment_status"] == "fulfilled"}
    assert set(shop.ids(status="any", fulfillment_status="shipped", limit=250)) == shipped
    assert shop.ids(status="any", since_id=ORDERS[-3]["id"], order="id asc") == [o["id"] for o in ORDERS[-2:]]
    wanted = [ORDERS[4]["id"], ORDERS[9]["id"]]
    assert shop.ids(status="any", ids=",".join(map(str, wanted)), order="id asc") == wanted
    assert shop.ids(status="any", name="1010") == shop.ids(status="any", name="#1010") == [ORDERS[9]["id"]]
    slim = shop.get("/orders.json", status="any", limit=2, fields="id,total_price").json()["orders"]
    assert all(set(order) == {"id", "total_price"} for order in slim)


def test_time_ranges_are_inclusive_and_read_any_offset(shop: Shop) -> None:
    low = datetime.fromisoformat(ORDERS[10]["created_at"])
    high = datetime.fromisoformat(ORDERS[19]["created_at"])
    ids = shop.ids(
        status="any",
        created_at_min=low.astimezone(UTC).isoformat(),
        created_at_max=high.isoformat(),
        order="created_at asc",
    )
    assert ids == [o["id"] for o in ORDERS[10:20]]
    newest = max(ORDERS, key=lambda o: datetime.fromisoformat(o["updated_at"]))
    assert shop.ids(status="any", updated_at_min=newest["updated_at"]) == [newest["id"]]
    assert shop.get("/orders.json", updated_at_min="last tuesday").status_code == 400


def test_sort_orders(shop: Shop) -> None:
    def key(field: str) -> Callable[[dict[str, Any]], tuple[datetime, int]]:
        return lambda o: (datetime.fromisoformat(o[field]), o["id"])

    assert shop.ids(status="any", limit=250, order="updated_at asc") == [
        o["id"] for o in sorted(ORDERS, key=key("updated_at"))
    ]
    assert shop.ids(status="any", limit=250, order="created_at desc") == [
        o["id"] for o in sorted(ORDERS, key=key("created_at"), reverse=True)
    ]
    assert shop.get("/orders.json", order="total_price asc").status_code == 400


# -- pagination ----------------------------------------------------------------------------------------


def test_link_pagination_walks_every_order_once(shop: Shop) -> None:
    pages = _walk(shop, status="any", limit=40, order="updated_at asc")
    assert [len(page) for page in pages] == [40, 40, 40, 30]
    assert [i for page in pages for i in page] == shop.ids(status="any", limit=250, order="updated_at asc")


def test_links_use_the_requests_base_url_and_keep_limit_and_fields(shop: Shop) -> None:
    first = shop.get("/orders.json", status="any", limit=20, fields="id")
    links = _links(first)
    assert set(links) == {"next"}
    url = urlsplit(links["next"])
    assert f"{url.scheme}://{url.netloc}" == shop.base_url
    assert url.path == f"{API}/orders.json"
    query = parse_qs(url.query)
    assert set(query) == {"limit", "page_info", "fields"}
    assert query["limit"] == ["20"]
    second = shop.get(links["next"])
    assert set(_links(second)) == {"previous", "next"}
    assert all(set(order) == {"id"} for order in second.json()["orders"])
    back = shop.get(_links(second)["previous"])
    assert back.json() == first.json()


def test_page_info_accepts_only_limit_and_fields(shop: Shop) -> None:
    following = _links(shop.get("/orders.json", status="any", limit=10))["next"]
    for extra in ("status=any", "updated_at_min=2025-01-01T00:00:00Z", "order=id+asc"):
        answer = shop.http.get(f"{following}&{extra}")
        assert answer.status_code == 400
        assert set(answer.json()["errors"]) == {"page_info"}
    assert len(shop.http.get(following.replace("limit=10", "limit=5")).json()["orders"]) == 5
    broken = shop.get("/orders.json", page_info="not-a-token")
    assert broken.status_code == 400
    assert set(broken.json()["errors"]) == {"page_info"}


def test_pages_stay_stable_when_orders_change_in_between(shop: Shop) -> None:
    before = shop.ids(status="any", limit=250, order="updated_at asc")
    seen_on_first, unseen = before[3], before[100]

    def change(page: int) -> None:
        if page == 1:
            shop.sandbox.update_order(seen_on_first, {"note": "edited"})
            shop.sandbox.update_order(unseen, {"tags": "edited"})

    pages = _walk(shop, change, status="any", limit=40, order="updated_at asc")
    walked = [i for page in pages for i in page]
    # Nothing skipped, nothing repeated except the order that moved past the position after it was read.
    assert set(walked) == set(before)
    assert walked.count(seen_on_first) == 2
    assert walked.count(unseen) == 1
    assert walked[-2:] == [seen_on_first, unseen]


def test_update_order_moves_updated_at_past_every_other_order(shop: Shop) -> None:
    original = ORDERS[0]
    updated = shop.sandbox.update_order(original["id"], {"financial_status": "refunded"})
    latest = max(datetime.fromisoformat(o["updated_at"]) for o in ORDERS)
    moment = datetime.fromisoformat(updated["updated_at"])
    assert moment > latest
    assert moment.utcoffset() == datetime.fromisoformat(original["updated_at"]).utcoffset()
    assert shop.sandbox.orders[original["id"]]["financial_status"] == "refunded"
    assert ORDERS[0]["financial_status"] == original["financial_status"]
    with pytest.raises(KeyError):
        shop.sandbox.update_order(1, {})


# -- the leaky bucket and faults -------------------------------------------------------------------------


def test_the_call_limit_header_counts_and_leaks(make_shop: Callable[..., Shop]) -> None:
    shop = make_shop()
    levels = [shop.get("/orders/count.json").headers["X-Shopify-Shop-Api-Call-Limit"] for _ in range(3)]
    assert levels == ["1/40", "2/40", "3/40"]
    shop.clock.now += 1.0  # 2 calls a second leak out
    assert shop.get("/orders/count.json").headers["X-Shopify-Shop-Api-Call-Limit"] == "2/40"


def test_a_full_bucket_answers_429_with_retry_after(make_shop: Callable[..., Shop]) -> None:
    shop = make_shop(bucket_size=4, time_scale=4.0)
    assert [shop.get("/orders/count.json").status_code for _ in range(5)] == [200, 200, 200, 200, 429]
    refused = shop.get("/orders/count.json")
    assert refused.status_code == 429
    assert refused.json() == {
        "errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."
    }
    assert refused.headers["Retry-After"] == "0.5"  # Shopify's 2.0 s at four times the speed
    assert refused.headers["X-Shopify-Shop-Api-Call-Limit"] == "4/4"
    assert shop.sandbox.stats.throttled == 2
    shop.clock.now += 0.5  # 0.5 s × 2/s × 4 = 4 calls leak out
    assert shop.get("/orders/count.json").headers["X-Shopify-Shop-Api-Call-Limit"] == "1/4"


def test_the_bucket_leaks_in_real_scaled_time(make_shop: Callable[..., Shop]) -> None:
    shop = make_shop(bucket_size=2, time_scale=1000.0, clock=None)
    assert shop.sandbox.retry_after == 0.002
    statuses = [shop.get("/orders/count.json").status_code for _ in range(10)]
    assert statuses.count(200) >= 2


def test_injected_faults_answer_then_clear(shop: Shop) -> None:
    shop.sandbox.inject(Fault(kind="status", status=503, times=2, path="count.json"))
    shop.sandbox.inject({"kind": "throttle", "times": 1, "path": "orders.json"})
    assert [shop.get("/orders/count.json").status_code for _ in range(3)] == [503, 503, 200]
    assert shop.get("/orders.json").status_code == 429
    assert shop.get("/orders.json").status_code == 200
    assert shop.sandbox.stats.faults == 3
    with pytest.raises(ValueError, match="unknown fault kind"):
        shop.sandbox.inject({"kind": "flood"})


def test_faults_over_http(shop: Shop) -> None:
    plain = httpx.Client(base_url=shop.base_url, headers={"Connection": "close"})
    with plain:
        made = plain.post("/_sandbox/faults", json={"kind": "status", "status": 500, "times": 5})
        assert made.status_code == 201
        assert made.json() == {"fault": {"kind": "status", "status": 500, "times": 5, "path": "", "delay_ms": 0}}
        assert shop.get("/orders.json").status_code == 500
        assert plain.delete("/_sandbox/faults").status_code == 204
        assert shop.get("/orders.json").status_code == 200
        assert plain.post("/_sandbox/faults", json={"kind": "flood"}).status_code == 400
        assert plain.get("/_sandbox/stats").json()["faults"] == 1


def test_requests_are_logged(shop: Shop) -> None:
    shop.get("/orders.json", status="any", limit=3)
    logged = shop.sandbox.requests[-1]
    assert (logged.method, logged.path, logged.status) == ("GET", f"{API}/orders.json", 200)
    assert parse_qs(logged.query) == {"status": ["any"], "limit": ["3"]}
    assert shop.sandbox.stats.requests == len(shop.sandbox.requests)


def test_credentials_and_app_are_built_on_demand() -> None:
    sandbox = ShopifySandbox(shop="x.myshopify.com", access_token="shpat_t")
    assert sandbox.credentials("http://127.0.0.1:9") == {
        "base_url": "http://127.0.0.1:9",
        "shop": "x.myshopify.com",
        "access_token": "shpat_t",
        "api_version": "2025-01",
        "webhook_secret": "shpss_sandbox_fedcba9876543210",
    }
    assert sandbox.app is sandbox.app


def test_run_standalone_prints_credentials_then_serves() -> None:
    code = "from ledgerlink.sandbox.shopify import run_standalone; run_standalone('127.0.0.1', 0, orders=12, seed=3)"
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)  # noqa: S603
    try:
        assert process.stdout is not None
        credentials = json.loads(process.stdout.readline())
        assert set(credentials) == {"base_url", "shop", "access_token", "api_version", "webhook_secret"}
        answer = httpx.get(
            f"{credentials['base_url']}/admin/api/{credentials['api_version']}/orders/count.json",
            params={"status": "any"},
            headers={"X-Shopify-Access-Token": credentials["access_token"]},
        )
        assert answer.json() == {"count": 12}
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
