"""Unmatched products: orders held for a product no QuickBooks item matches, matched here, then posted."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select
from test_dashboard import signed_up_with_channel, sync_now
from webtools import Web, csrf, signup

from ledgerlink.domain.settings import ChannelSettings, ItemSettings, MissingItem
from ledgerlink.store.models import Posting, StoredOrder, SyncJob
from ledgerlink.sync.engine import load_settings
from ledgerlink.sync.jobs import drain

pytestmark = pytest.mark.integration

HOLD = ChannelSettings(items=ItemSettings(when_missing=MissingItem.FAIL))


def held_by(web: Web) -> dict[str, list[int]]:
    """SKU → ids of the orders it holds up (the line named by the error)."""
    held: dict[str, list[int]] = {}
    with web.app.db.session() as session:
        for order in session.scalars(select(StoredOrder).where(StoredOrder.error_field.like("lines[%].sku"))):
            index = int(re.findall(r"\d+", order.error_field)[0])
            held.setdefault(order.canonical["lines"][index]["sku"], []).append(order.id)  # type: ignore[index]
    return held


def test_match_an_unmatched_product_and_its_orders_post(web: Web) -> None:
    channel_id = signed_up_with_channel(web, settings=HOLD)
    sync_now(web.client, channel_id)
    drain(web.app)
    held = held_by(web)
    assert held, "with items.when_missing = fail every order with an unknown SKU is held"
    # The product held up by the most orders whose every line carries that one SKU (they post once it matches).
    with web.app.db.session() as session:

        def single(order_id: int, sku: str) -> bool:
            order = session.get(StoredOrder, order_id)
            return order is not None and all(line["sku"] == sku for line in order.canonical["lines"])  # type: ignore[index]

        candidates = {sku: [o for o in ids if single(o, sku)] for sku, ids in held.items()}
    sku = max(candidates, key=lambda s: len(candidates[s]))
    will_post = candidates[sku]
    assert will_post
    page = web.client.get("/products/unmatched")
    assert page.status_code == 200
    assert f"SKU {sku}" in page.text
    assert '<option value="Coffee Mug">' in page.text  # the sandbox company's items, read live
    assert f"<strong>{len(held[sku])}</strong> order" in page.text

    token = csrf(web.client, "/products/unmatched")
    wrong = web.client.post(
        "/products/unmatched/match",
        data={"csrf_token": token, "connection": str(channel_id), "sku": sku, "item": "Cofee Mugg"},
    )
    assert wrong.status_code == 422
    assert "QuickBooks has no active item named “Cofee Mugg”" in wrong.text
    assert 'value="Cofee Mugg"' in wrong.text

    answer = web.client.post(
        "/products/unmatched/match",
        data={"csrf_token": token, "connection": str(channel_id), "sku": sku, "item": "MUG-01"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    done = web.client.get("/products/unmatched")
    flashed = re.search(rf"SKU {sku} now posts as “Coffee Mug”\. (\d+) orders? will re-sync", done.text)
    assert flashed, done.text
    # Every held order with a line of this SKU goes back in line, also those listed under another product.
    assert int(flashed.group(1)) >= len(held[sku])
    with web.app.db.session() as session:
        settings = load_settings(session, channel_id)
        assert settings.items.sku_map == {sku: "Coffee Mug"}
        assert session.scalars(select(SyncJob).where(SyncJob.state == "queued")).one().options == {}
    drain(web.app)
    with web.app.db.session() as session:
        for order_id in will_post:
            order = session.get(StoredOrder, order_id)
            assert order is not None
            assert order.state == "posted", order.number
            posting = session.scalars(select(Posting).where(Posting.order_id == order_id)).one()
            assert posting.state == "posted"
            assert all(
                line["item"]["name"] == "Coffee Mug" for line in posting.document["lines"] if line["kind"] == "item"
            )
    assert sku not in held_by(web)
    assert f"SKU {sku}</div>" not in web.client.get("/products/unmatched").text


def test_nothing_to_match(web: Web) -> None:
    signed_up_with_channel(web)
    page = web.client.get("/products/unmatched")
    assert page.status_code == 200
    assert "Nothing to match" in page.text


def test_another_company_cannot_match(web: Web) -> None:
    channel_id = signed_up_with_channel(web, settings=HOLD)
    other = web.new_client()
    signup(other, "other@shop.test", "Shop Two")
    token = csrf(other, "/products/unmatched")
    answer = other.post(
        "/products/unmatched/match",
        data={"csrf_token": token, "connection": str(channel_id), "sku": "POUR", "item": "Coffee Mug"},
    )
    assert answer.status_code == 404
    with web.app.db.session() as session:
        assert load_settings(session, channel_id).items.sku_map == {}
