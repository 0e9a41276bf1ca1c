"""Fulfilment end to end: both sandboxes over real HTTP, a real database, the engine as it runs.

A posted Shopify order is fulfilled (a shipping app calls the sandbox's REST fulfillment-orders API): its
QuickBooks Online sale gets the tracking number, ship date and carrier by one shipment-only sparse update — under
the update policy "ignore" too — and syncing again writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from ledgerlink.domain.settings import UpdatePolicy
from ledgerlink.sandbox.demo_reverse import edit_sale
from ledgerlink.sandbox.shopify import lifecycle as shopify
from ledgerlink.sandbox.shopify.fulfilments import FulfilmentsClient
from ledgerlink.sync.engine import load_settings, save_settings

pytestmark = pytest.mark.integration

StackFactory = Callable[..., Any]


def sync(stack: Any) -> Any:
    report = stack.app.engine().run(stack.channel_id)
    assert report.error == ""
    return report


def receipt(stack: Any, number: str) -> dict[str, Any]:
    (found,) = [r for r in stack.qbo.entities("SalesReceipt") if r.get("DocNumber") == number]
    return found


def test_fulfilment_writes_tracking_once_even_when_updates_are_ignored(
    stack_factory: StackFactory, tmp_path: Any
) -> None:
    stack = stack_factory(f"sqlite:///{tmp_path / 'fulfil.db'}", orders=12)
    with stack.app.db.session() as session:
        settings = load_settings(session, stack.channel_id)
        save_settings(session, stack.channel_id, settings.model_copy(update={"update_policy": UpdatePolicy.IGNORE}))
    sync(stack)
    posted = {str(r["DocNumber"]) for r in stack.qbo.entities("SalesReceipt")}
    order_id, order = next(
        (oid, o)
        for oid, o in sorted(stack.shop.orders.items())
        if str(o["order_number"]) in posted and len(o["line_items"]) >= 2 and not o.get("cancelled_at")
    )
    number = str(order["order_number"])
    before = receipt(stack, number)
    assert "TrackingNum" not in before
    # The bookkeeper edits the sale in QuickBooks meanwhile: the tracking update must leave that alone.
    edit_sale(stack.qbo, "SalesReceipt", before["Id"], {"CustomerMemo": {"value": "Thanks!"}})
    # In the channel the order is edited (ignored by policy) and shipped in two parcels.
    shopify.edit_quantity(stack.shop, order_id, 0, int(order["line_items"][0]["quantity"]) + 1)
    shipping = FulfilmentsClient.for_sandbox(stack.shop, stack.shop_server.base_url)
    shipping.fulfil(order_id, "1Z999AA10123456784", company="UPS", lines=[(0, 1)])

    report = sync(stack)
    assert report.counts["updated"] == 1
    sale = receipt(stack, number)
    assert sale["TrackingNum"] == "1Z999AA10123456784"
    assert sale["ShipMethodRef"] == {"value": "UPS", "name": "UPS"}
    shipped_on = str(stack.shop.orders[order_id]["fulfillments"][0]["created_at"])[:10]
    assert sale["ShipDate"] == shipped_on
    assert sale["CustomerMemo"] == {"value": "Thanks!"}
    assert Decimal(str(sale["TotalAmt"])) == Decimal(str(before["TotalAmt"]))  # "ignore": the edit is not posted
    assert sale["Line"] == before["Line"]

    again = sync(stack)
    assert again.counts.get("postings_planned", 0) == again.counts.get("posted", 0) == 0
    assert receipt(stack, number)["SyncToken"] == sale["SyncToken"]

    # A second parcel with another carrier: the tracking is written again, once.
    shipping.fulfil(order_id, "9400100000000000000001", company="USPS")
    shipping.close()
    assert sync(stack).counts["updated"] == 1
    sale = receipt(stack, number)
    assert sale["TrackingNum"] == "1Z999AA10123456784 +1"
    assert sale["ShipMethodRef"]["value"] == "UPS, USPS"
    assert sync(stack).counts.get("posted", 0) == 0
    assert len([r for r in stack.qbo.entities("SalesReceipt") if r.get("DocNumber") == number]) == 1
