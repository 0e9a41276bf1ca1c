"""The Shopify sandbox's inventory API over real HTTP, and `ShopifyChannel`'s inventory calls against it:
products with variants (paged by Link), locations, levels, set.json with its refusals, and the leaky bucket."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from typing import Any

import httpx
import pytest

from ledgerlink.channels.shopify import ShopifyChannel
from ledgerlink.domain.errors import PermanentError
from ledgerlink.sandbox.server import serve
from ledgerlink.sandbox.shopify import Fault, ShopifySandbox
from ledgerlink.sandbox.shopify.inventory import PRIMARY_LOCATION

pytestmark = pytest.mark.contract

API = "/admin/api/2025-01"


@pytest.fixture
def shop() -> Iterator[tuple[ShopifySandbox, str]]:
    sandbox = ShopifySandbox(time_scale=60.0)
    for number in range(7):
        sandbox.inventory.add_product(f"Tee {number}", f"TEE-{number}", available=number)
    sandbox.inventory.add_product("Gift card", "GIFT", tracked=False)
    with serve(sandbox.app) as server:
        yield sandbox, server.base_url


def channel(sandbox: ShopifySandbox, base_url: str, sleeps: list[float] | None = None) -> ShopifyChannel:
    waits = sleeps if sleeps is not None else []
    return ShopifyChannel(sandbox.credentials(base_url), sleep=waits.append)


def get(sandbox: ShopifySandbox, base_url: str, path: str, **params: Any) -> httpx.Response:
    headers = {"X-Shopify-Access-Token": sandbox.access_token}
    return httpx.get(f"{base_url}{API}/{path}", params=params, headers=headers)


def test_products_are_paged_by_link_and_carry_inventory_items(shop: tuple[ShopifySandbox, str]) -> None:
    sandbox, base_url = shop
    first = get(sandbox, base_url, "products.json", limit=3)
    assert first.status_code == 200
    assert len(first.json()["products"]) == 3
    assert 'rel="next"' in first.headers["Link"]
    variant = first.json()["products"][0]["variants"][0]
    assert {"sku", "inventory_item_id", "inventory_quantity"} <= set(variant)
    with closing(channel(sandbox, base_url)) as shopify:
        skus = [v["sku"] for v in shopify.variants()]
    assert skus == [*(f"TEE-{n}" for n in range(7)), "GIFT"]


def test_levels_read_and_set_through_the_channel(shop: tuple[ShopifySandbox, str]) -> None:
    sandbox, base_url = shop
    tee = sandbox.inventory.by_sku("TEE-3")
    with closing(channel(sandbox, base_url)) as shopify:
        (location,) = shopify.locations()
        assert location["id"] == PRIMARY_LOCATION
        ids = [str(sandbox.inventory.by_sku(f"TEE-{n}").inventory_item_id) for n in range(7)]
        assert shopify.inventory_levels(ids, str(PRIMARY_LOCATION)) == {i: n for n, i in enumerate(ids)}
        shopify.set_inventory_level(str(tee.inventory_item_id), str(PRIMARY_LOCATION), 42)
        shopify.set_inventory_level(str(tee.inventory_item_id), str(PRIMARY_LOCATION), 42)  # absolute: no doubling
        assert sandbox.inventory.available("TEE-3") == 42
        gift = sandbox.inventory.by_sku("GIFT")
        with pytest.raises(PermanentError, match="does not have inventory tracking enabled"):
            shopify.set_inventory_level(str(gift.inventory_item_id), str(PRIMARY_LOCATION), 5)
        with pytest.raises(PermanentError, match="Inventory item not found"):
            shopify.set_inventory_level("1", str(PRIMARY_LOCATION), 5)
    level = get(sandbox, base_url, "inventory_levels.json", inventory_item_ids=str(tee.inventory_item_id))
    assert level.json()["inventory_levels"][0]["available"] == 42
    assert get(sandbox, base_url, "inventory_levels.json").status_code == 422


def test_a_throttled_set_is_waited_out_and_sent_once(shop: tuple[ShopifySandbox, str]) -> None:
    sandbox, base_url = shop
    sandbox.inject(Fault(kind="throttle", times=2, path="inventory_levels/set.json"))
    tee = sandbox.inventory.by_sku("TEE-1")
    sleeps: list[float] = []
    with closing(channel(sandbox, base_url, sleeps)) as shopify:
        shopify.set_inventory_level(str(tee.inventory_item_id), str(PRIMARY_LOCATION), 9)
    assert sandbox.inventory.available("TEE-1") == 9
    assert sandbox.inventory.sets == 1
    assert len(sleeps) >= 2  # Retry-After honoured twice
    assert sandbox.stats.throttled == 2


def test_set_needs_a_token(shop: tuple[ShopifySandbox, str]) -> None:
    sandbox, base_url = shop
    body = {"location_id": PRIMARY_LOCATION, "inventory_item_id": 1, "available": 1}
    assert httpx.post(f"{base_url}{API}/inventory_levels/set.json", json=body).status_code == 401
    assert sandbox.inventory.sets == 0
