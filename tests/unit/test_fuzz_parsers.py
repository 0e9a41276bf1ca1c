"""Fuzzing the channel parsers with hostile orders: valid generated orders, corrupted at any depth.

Every corrupted order is either parsed into an `Order` that still balances (its plan reproduces the total, or
the plan refuses it with a `MappingError`) or refused with a `MappingError` naming the order and the JSON path
of the field; never a KeyError, TypeError, ValueError, RecursionError, OverflowError or decimal error. The
channels' HTTP answers are decoded the same way: a body that is not UTF-8, nested too deeply or full of
numbers JSON cannot hold fails the page with the channel's error, never a crash of the run.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from orderbook import empty_catalog, make_settings

from ledgerlink.channels import shipstation, shopify
from ledgerlink.channels.base import Window
from ledgerlink.domain.documents import DocumentKind
from ledgerlink.domain.errors import LedgerlinkError, MappingError
from ledgerlink.domain.order import Order
from ledgerlink.domain.plan import plan
from ledgerlink.domain.settings import OrderFilter
from ledgerlink.sandbox.shipstation import generate_orders as shipstation_orders
from ledgerlink.sandbox.shopify import generate_orders as shopify_orders

pytestmark = pytest.mark.unit

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
DEPTH = 10_000
# A JSON path as the parsers name fields: `line_items[0].tax_lines[1].price`.
FIELD_PATH = re.compile(r"^[A-Za-z_]\w*(\[\d+\])*(\.[A-Za-z_]\w*(\[\d+\])*)*$")
# What the store keeps of an order (`orders.channel_order_id`, `orders.number` are 64 characters).
MAX_KEY = 64
# An error a person reads on the dashboard: it shows the bad value, shortened.
MAX_MESSAGE = 1_000

Path = tuple[str | int, ...]
T = TypeVar("T")


def deep_list(depth: int = DEPTH) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def deep_dict(depth: int = DEPTH) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


# Built on demand (never printed by hypothesis: the names are what a failing example shows).
HOSTILE: dict[str, Callable[[], object]] = {
    "null": lambda: None,
    "empty list": list,
    "empty object": dict,
    "list": lambda: [1, "two", None],
    "object": lambda: {"amount": "1.00", "currency_code": "USD"},
    "true": lambda: True,
    "false": lambda: False,
    "0": lambda: 0,
    "-1": lambda: -1,
    "2**63": lambda: 2**63,
    "10**400": lambda: 10**400,
    "-10**400": lambda: -(10**400),
    "10**5000 (past int→str's limit)": lambda: 10**5000,
    "inf": lambda: math.inf,
    "-inf": lambda: -math.inf,
    "nan": lambda: math.nan,
    "-0.0": lambda: -0.0,
    "1e308": lambda: 1e308,
    "5e-324": lambda: 5e-324,
    "'1e999'": lambda: "1e999",
    "'-1e999'": lambda: "-1e999",
    "'1e999999999'": lambda: "1e999999999",
    "'1e-999999999'": lambda: "1e-999999999",
    "'1e20'": lambda: "1e20",
    "'99999999999999999999999999.99'": lambda: "99999999999999999999999999.99",
    "'NaN'": lambda: "NaN",
    "'sNaN'": lambda: "sNaN",
    "'Infinity'": lambda: "Infinity",
    "'-0'": lambda: "-0",
    "'٣' (Arabic-Indic three)": lambda: "٣",
    "'１２' (full-width digits)": lambda: "１２",
    "'1_000'": lambda: "1_000",
    "'0x10'": lambda: "0x10",
    "''": lambda: "",
    "'   '": lambda: "   ",
    "NUL": lambda: "\x00",
    "lone surrogate": lambda: "broken emoji \ud83d",
    "'9' * 5000": lambda: "9" * 5000,
    "'x' * 1 MB": lambda: "x" * 1_000_000,
    "'2024-13-45T99:99:99'": lambda: "2024-13-45T99:99:99",
    "'9999-12-31T23:59:59-23:59'": lambda: "9999-12-31T23:59:59-23:59",
    "'0001-01-01T00:00:00+23:59'": lambda: "0001-01-01T00:00:00+23:59",
    "'9999-12-31T23:30:00'": lambda: "9999-12-31T23:30:00",
    "deep list": deep_list,
    "deep object": deep_dict,
    "10,000 empty objects": lambda: [{} for _ in range(10_000)],
}
generated = st.one_of(
    st.text(max_size=40),
    st.integers(),
    st.floats(),
    st.decimals(allow_nan=False).map(str),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
DELETE = "<deleted>"


@functools.cache
def shopify_pool() -> tuple[dict[str, Any], ...]:
    return tuple(shopify_orders(30, seed=41))


@functools.cache
def shipstation_pool() -> tuple[dict[str, Any], ...]:
    return tuple(shipstation_orders(30, seed=41))


def pool(channel: str) -> tuple[dict[str, Any], ...]:
    return shopify_pool() if channel == "shopify" else shipstation_pool()


def paths(tree: object, prefix: Path = ()) -> Iterator[Path]:
    """Every place in a JSON tree (not the root), parents before children."""
    if isinstance(tree, Mapping):
        children: Iterator[tuple[str | int, object]] = iter(tree.items())
    elif isinstance(tree, list):
        children = enumerate(tree)
    else:
        return
    for key, child in children:
        yield (*prefix, key)
        yield from paths(child, (*prefix, key))


@functools.cache
def pool_paths(channel: str, index: int) -> tuple[Path, ...]:
    return tuple(paths(pool(channel)[index]))


class Reading(dict[str, Any]):
    """An order object that notes every key the parser reads (the fuzzer aims mostly at those)."""

    def __init__(self, raw: Mapping[str, Any], prefix: Path, read: set[Path]) -> None:
        super().__init__({key: recording(value, (*prefix, key), read) for key, value in raw.items()})
        self.prefix, self.read = prefix, read

    def __getitem__(self, key: str) -> Any:
        self.read.add((*self.prefix, key))
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add((*self.prefix, key))
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.read.add((*self.prefix, key))
        return super().__contains__(key)


def recording(value: object, prefix: Path, read: set[Path]) -> object:
    if isinstance(value, Mapping):
        return Reading(value, prefix, read)
    if isinstance(value, list):
        return [recording(item, (*prefix, index), read) for index, item in enumerate(value)]
    return value


@functools.cache
def read_paths(channel: str, index: int) -> tuple[Path, ...]:
    """The places of a generated order its parser reads, present or not (a key it looks for may be added)."""
    read: set[Path] = set()
    parse = shopify.parse_order if channel == "shopify" else shipstation.parse_order
    parse(recording(pool(channel)[index], (), read))
    return tuple(sorted(read, key=lambda path: [str(part) for part in path]))


@dataclass(frozen=True)
class Case:
    """Which generated order, and what to do to it: (place, hostile value's name or a generated value)."""

    channel: str
    index: int
    changes: tuple[tuple[Path, object], ...]

    def build(self) -> tuple[dict[str, Any], list[Path]]:
        """The corrupted order (built here, so that hypothesis never prints a 10,000-deep list) and the places."""
        raw = copy.deepcopy(pool(self.channel)[self.index])
        touched: list[Path] = []
        for path, change in self.changes:
            parent: Any = raw
            try:
                for key in path[:-1]:
                    parent = parent[key]
            except (KeyError, IndexError, TypeError):
                continue  # an earlier change replaced or removed a parent
            if not isinstance(parent, dict) and not (isinstance(parent, list) and path[-1] in range(len(parent))):
                continue
            touched.append(path)
            if change == DELETE:
                if isinstance(parent, dict):
                    parent.pop(path[-1], None)
            elif isinstance(change, Named):
                parent[path[-1]] = HOSTILE[change.name]()
            else:
                parent[path[-1]] = change
        return raw, touched


@dataclass(frozen=True)
class Named:
    name: str

    def __repr__(self) -> str:
        return self.name


@st.composite
def cases(draw: st.DrawFn, channel: str) -> Case:
    """A generated order with 1–4 places replaced by hostile values or deleted."""
    index = draw(st.integers(0, len(pool(channel)) - 1))
    # Mostly where the parser looks (a key it reads but the order lacks is added); sometimes anywhere.
    places = st.one_of(
        st.sampled_from(read_paths(channel, index)),
        st.sampled_from(read_paths(channel, index)),
        st.sampled_from(read_paths(channel, index)),
        st.sampled_from(pool_paths(channel, index)),
    )
    change = st.one_of(
        st.just(DELETE),
        st.sampled_from(sorted(HOSTILE)).map(Named),
        generated,
    )
    changes = draw(st.lists(st.tuples(places, change), min_size=1, max_size=4))
    return Case(channel, index, tuple(changes))


# -- the checks -------------------------------------------------------------------------------------


SETTINGS = make_settings(orders=OrderFilter(financial_statuses=[]))


def assert_balanced(order: Order) -> None:
    """A parsed order can be stored (hash, JSON, key lengths) and plans to its total or is refused by name."""
    assert len(order.channel_order_id) <= MAX_KEY
    assert len(order.number) <= MAX_KEY
    assert len(order.currency) == 3
    order.content_hash()
    json.dumps(order.model_dump(mode="json"), allow_nan=False)
    result = attempt(lambda: plan(order, SETTINGS, empty_catalog("qbo")))
    if isinstance(result, LedgerlinkError):
        assert isinstance(result, MappingError), result
        assert result.field, result
        return
    for doc in result.documents:
        if doc.kind is not DocumentKind.PAYMENT:
            assert doc.lines_total() == doc.total == order.totals.total


def assert_refused_by_name(exc: MappingError, label: str | None, touched: list[Path], label_keys: set[str]) -> None:
    message = str(exc)
    assert exc.field, f"no field named: {message[:300]}"
    assert FIELD_PATH.match(exc.field), exc.field
    assert f"field {exc.field}" in message
    assert len(message) <= MAX_MESSAGE, message[:300]
    if not any(path[0] in label_keys for path in touched):
        assert exc.order == label, message[:300]
    elif exc.order is not None:
        assert 0 < len(exc.order) <= MAX_KEY


def attempt(action: Callable[[], T]) -> T | LedgerlinkError:
    """What `action` returns, or the ledgerlink error it raises (any other exception fails the test)."""
    try:
        return action()
    except LedgerlinkError as exc:
        return exc


def check(parse: Callable[[Any], Order], raw: Any, label: str | None, touched: list[Path], keys: set[str]) -> None:
    result = attempt(lambda: parse(raw))
    if isinstance(result, Order):
        assert_balanced(result)
    else:
        assert isinstance(result, MappingError), result
        assert_refused_by_name(result, label, touched, keys)


SHOPIFY_LABEL_KEYS = {"order_number", "name", "id"}
SHIPSTATION_LABEL_KEYS = {"orderNumber", "orderId"}


def test_the_pools_parse_and_balance_as_generated() -> None:
    for raw in shopify_pool():
        assert_balanced(shopify.parse_order(copy.deepcopy(raw)))
    for raw in shipstation_pool():
        assert_balanced(shipstation.parse_order(copy.deepcopy(raw)))


@FUZZ
@given(case=cases("shopify"))
def test_shopify_parser_refuses_hostile_orders_by_name(case: Case) -> None:
    raw, touched = case.build()
    label = str(raw.get("order_number")) if "order_number" not in {p[0] for p in touched} else None
    check(shopify.parse_order, raw, label, touched, SHOPIFY_LABEL_KEYS)
    # Shopify's webhooks and single-order reads wrap the order: the same verdict.
    check(shopify.parse_order, {"order": raw}, label, touched, SHOPIFY_LABEL_KEYS)


@FUZZ
@given(case=cases("shipstation"))
def test_shipstation_parser_refuses_hostile_orders_by_name(case: Case) -> None:
    raw, touched = case.build()
    label = str(raw.get("orderNumber")) if "orderNumber" not in {p[0] for p in touched} else None
    check(shipstation.parse_order, raw, label, touched, SHIPSTATION_LABEL_KEYS)


@pytest.mark.parametrize("parse", [shopify.parse_order, shipstation.parse_order], ids=["shopify", "shipstation"])
@pytest.mark.parametrize(
    "raw", [None, [], "order", 42, deep_list(), b"{}"], ids=["null", "list", "text", "number", "deep list", "bytes"]
)
def test_a_body_that_is_not_an_order_object_is_refused(parse: Callable[[Any], Order], raw: object) -> None:
    with pytest.raises(MappingError) as caught:
        parse(raw)

    assert len(str(caught.value)) <= MAX_MESSAGE


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.parametrize(
    ("parse", "pool", "field", "keys"),
    [
        (shopify.parse_order, shopify_pool, "order_number", SHOPIFY_LABEL_KEYS),
        (shopify.parse_order, shopify_pool, "id", SHOPIFY_LABEL_KEYS),
        (shopify.parse_order, shopify_pool, "name", SHOPIFY_LABEL_KEYS),
        (shipstation.parse_order, shipstation_pool, "orderNumber", SHIPSTATION_LABEL_KEYS),
        (shipstation.parse_order, shipstation_pool, "orderId", SHIPSTATION_LABEL_KEYS),
    ],
    ids=["shopify.order_number", "shopify.id", "shopify.name", "shipstation.orderNumber", "shipstation.orderId"],
)
def test_hostile_order_numbers_and_ids(
    parse: Callable[[Any], Order], pool: Callable[[], tuple[dict[str, Any], ...]], field: str, keys: set[str], name: str
) -> None:
    """The label every error names is itself hostile: the errors stay short and never crash."""
    raw = copy.deepcopy(pool()[3])
    raw[field] = HOSTILE[name]()
    check(parse, raw, None, [(field,)], keys)


# -- invalid UTF-8 and other undecodable answers from the channels -----------------------------------


def with_bytes(raw: Mapping[str, Any], field: str, junk: bytes) -> bytes:
    """The order as JSON bytes with `junk` spliced into the string value of `field`."""
    marker = "\u2063MARK\u2063"
    body = dict(raw, **{field: marker})
    return json.dumps({"orders": [body]}, ensure_ascii=False).encode().replace(marker.encode(), junk)


INVALID_UTF8 = [
    b"\xff",  # never valid
    b"\xc3",  # a truncated two-byte sequence
    b"\xc0\xaf",  # overlong "/"
    b"\xed\xa0\x80",  # an encoded surrogate (json.loads lets it through with surrogatepass)
    b"\xf4\x90\x80\x80",  # past U+10FFFF
    b"caf\xe9",  # Latin-1, not UTF-8
]


def shopify_channel(handler: Callable[[httpx.Request], httpx.Response]) -> shopify.ShopifyChannel:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    config = {"shop": "fuzz.myshopify.com", "access_token": "shpat_x", "base_url": "http://shop.test"}
    return shopify.ShopifyChannel(config, client=client, sleep=lambda _s: None)


def shipstation_channel(handler: Callable[[httpx.Request], httpx.Response]) -> shipstation.ShipStationChannel:
    def route(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/stores":
            return httpx.Response(200, json=[])
        return handler(request)

    client = httpx.Client(transport=httpx.MockTransport(route))
    config = {"api_key": "k", "api_secret": "s", "base_url": "http://ss.test", "order_statuses": []}
    return shipstation.ShipStationChannel(config, client=client, sleep=lambda _s: None)


def pull_and_parse(channel: shopify.ShopifyChannel | shipstation.ShipStationChannel) -> list[Order | MappingError]:
    """What the engine does with a channel: pull every page and parse every order."""
    results: list[Order | MappingError] = []
    try:
        for page in channel.pull(None, Window()):
            for raw in page.orders:
                try:
                    results.append(channel.parse(raw))
                except MappingError as exc:
                    results.append(exc)
    finally:
        channel.close()
    return results


@pytest.mark.parametrize("junk", INVALID_UTF8, ids=repr)
@pytest.mark.parametrize("field", ["note", "currency", "created_at", "total_price"])
def test_shopify_answer_with_invalid_utf8_fails_cleanly(junk: bytes, field: str) -> None:
    body = with_bytes(shopify_pool()[0], field, junk)
    results = attempt(lambda: pull_and_parse(shopify_channel(lambda _r: httpx.Response(200, content=body))))
    if isinstance(results, LedgerlinkError):
        assert "not JSON" in str(results)
        assert "utf-8" in str(results)
        return
    # Only the encoded surrogate gets through the decoder; the parser must then refuse it by name.
    assert len(results) == 1
    assert isinstance(results[0], MappingError)
    assert results[0].field == field


@pytest.mark.parametrize("junk", INVALID_UTF8, ids=repr)
@pytest.mark.parametrize("field", ["customerNotes", "orderDate", "orderNumber"])
def test_shipstation_answer_with_invalid_utf8_fails_cleanly(junk: bytes, field: str) -> None:
    body = with_bytes(shipstation_pool()[0], field, junk)
    results = attempt(lambda: pull_and_parse(shipstation_channel(lambda _r: httpx.Response(200, content=body))))
    if isinstance(results, LedgerlinkError):
        assert "not JSON" in str(results)
        assert "utf-8" in str(results)
        return
    assert len(results) == 1
    assert isinstance(results[0], MappingError)
    assert results[0].field == field


HOSTILE_BODIES = {
    "deeply nested order": b'{"orders": [{"id": 1, "note": ' + b"[" * DEPTH + b"]" * DEPTH + b"}]}",
    "deeply nested body": b"[" * DEPTH + b"]" * DEPTH,
    "a number past int's digit limit": b'{"orders": [{"id": ' + b"9" * 5000 + b"}]}",
    "NaN literal": b'{"orders": [{"id": 1, "total_price": NaN}]}',
    "not JSON": b"<html>502 Bad Gateway</html>",
    "empty": b"",
    "orders is not a list": b'{"orders": {"id": 1}}',
    "an order is not an object": b'{"orders": [1, "two"]}',
    "UTF-16 with a BOM": '{"orders": []}'.encode("utf-16"),
}


@pytest.mark.parametrize("body", list(HOSTILE_BODIES.values()), ids=list(HOSTILE_BODIES))
@pytest.mark.parametrize("channel", ["shopify", "shipstation"])
def test_undecodable_answers_fail_with_the_channels_error(body: bytes, channel: str) -> None:
    if channel == "shipstation":
        body = body.replace(b'"id"', b'"orderId"')
    make = shopify_channel if channel == "shopify" else shipstation_channel
    results = attempt(lambda: pull_and_parse(make(lambda _r: httpx.Response(200, content=body))))
    if isinstance(results, LedgerlinkError):
        assert len(str(results)) <= MAX_MESSAGE
    else:
        assert all(isinstance(r, MappingError | Order) for r in results)


@pytest.mark.parametrize("status", [400, 422, 500])
@pytest.mark.parametrize("body", list(HOSTILE_BODIES.values()), ids=list(HOSTILE_BODIES))
@pytest.mark.parametrize("channel", ["shopify", "shipstation"])
def test_hostile_error_answers_are_reported_not_crashed_on(body: bytes, status: int, channel: str) -> None:
    make = shopify_channel if channel == "shopify" else shipstation_channel
    adapter = make(lambda _r: httpx.Response(status, content=body))
    with pytest.raises(LedgerlinkError) as caught:
        pull_and_parse(adapter)

    assert len(str(caught.value)) <= MAX_MESSAGE


def test_a_hostile_updated_at_does_not_break_the_cursor() -> None:
    orders = [dict(o) for o in shopify_pool()[:3]]
    orders[0]["updated_at"] = "9999-12-31T23:59:59-23:59"
    orders[1]["updated_at"] = "0001-01-01T00:00:00+23:59"
    orders[2]["updated_at"] = deep_list(50)
    channel = shopify_channel(lambda _r: httpx.Response(200, json={"orders": orders}))
    results = pull_and_parse(channel)

    assert len(results) == 3
    assert all(isinstance(r, MappingError) for r in results[:2])


@pytest.mark.parametrize("value", [Decimal("1e20"), "1e20", 10**400, "٣", "1_000", " 7 "])
def test_money_and_quantity_readers_refuse_what_no_channel_sends(value: object) -> None:
    from ledgerlink.domain.money import parse_money, parse_quantity

    for reader in (parse_money, parse_quantity):
        if value == " 7 ":
            assert reader(value, field="price") == Decimal("7")
            continue
        with pytest.raises(MappingError) as caught:
            reader(value, order="1001", field="price")
        assert caught.value.field == "price"
        assert len(str(caught.value)) <= MAX_MESSAGE


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
@pytest.mark.parametrize("channel", ["shopify", "shipstation"])
def test_nan_and_infinity_are_not_json(constant: bytes, channel: str) -> None:
    """Python's decoder takes them, but the raw order is stored as JSON (PostgreSQL refuses them there)."""
    body = b'{"orders": [{"id": 1, "orderId": 1, "note": ' + constant + b"}]}"
    make = shopify_channel if channel == "shopify" else shipstation_channel
    with pytest.raises(LedgerlinkError, match="not JSON"):
        pull_and_parse(make(lambda _r: httpx.Response(200, content=body)))
