"""Stock levels from QuickBooks Online to Shopify end to end: both sandboxes over real HTTP, a real database.

The push runs at the tail of a sync job (sync/jobs.py), sets only the levels that differ, explains per SKU what
it could not push, and a second run changes nothing; a later change of quantity in QuickBooks (read by CDC) is
pushed alone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from ledgerlink.store.models import Connection, Event, SyncJob
from ledgerlink.sync.engine import load_settings, save_settings
from ledgerlink.sync.jobs import claim_job, enqueue, run_job
from ledgerlink.sync.stock import StockPush

pytestmark = pytest.mark.integration

StackFactory = Callable[..., Any]


def sync_job(stack: Any) -> None:
    with stack.app.db.session() as session:
        conn = session.get(Connection, stack.channel_id)
        assert conn is not None
        job_id = enqueue(session, conn, trigger="manual").id
    claimed = claim_job(stack.app, job_id)
    assert claimed is not None
    run_job(stack.app, job_id)
    with stack.app.db.session() as session:
        job = session.get(SyncJob, job_id)
        assert job is not None
        assert job.state == "done", job.error


def account(company: Any, name: str) -> dict[str, str]:
    found = company.find("Account", Name=name)
    assert found is not None, name
    return {"value": found["Id"], "name": name}


def add_inventory_item(stack: Any, name: str, sku: str, quantity: int) -> dict[str, Any]:
    company = stack.qbo.company
    with stack.qbo.lock:
        return company.write(
            "Item",
            {
                "Name": name,
                "Sku": sku,
                "Type": "Inventory",
                "TrackQtyOnHand": True,
                "QtyOnHand": Decimal(quantity),
                "InvStartDate": date(2024, 1, 1).isoformat(),
                "IncomeAccountRef": account(company, "Sales of Product Income"),
                "ExpenseAccountRef": account(company, "Cost of Goods Sold"),
                "AssetAccountRef": account(company, "Inventory Asset"),
            },
        )


def set_on_hand(stack: Any, item_id: str, quantity: int) -> None:
    with stack.qbo.lock:
        current = stack.qbo.company.read("Item", item_id)
        body = {"Id": item_id, "SyncToken": current["SyncToken"], "sparse": True, "QtyOnHand": Decimal(quantity)}
        stack.qbo.company.write("Item", body, operation="update")


def events(stack: Any, kind: str) -> list[str]:
    with stack.app.db.session() as session:
        return list(session.scalars(select(Event.message).where(Event.kind == kind).order_by(Event.id)))


def test_stock_is_pushed_once_and_only_what_changed(stack_factory: StackFactory, tmp_path: Any) -> None:
    stack = stack_factory(f"sqlite:///{tmp_path / 'stock.db'}", orders=4)
    stock = stack.shop.inventory
    stock.add_product("T-Shirt M", "TSHIRT-M", available=5)  # the seeded QuickBooks item has 100 on hand
    stock.add_product("Mug", "MUG-9", available=1)
    stock.add_product("Gift card", "GIFT-9", tracked=False)
    stock.add_product("Sticker", "ONLY-IN-SHOPIFY", available=3)
    mug = add_inventory_item(stack, "Mug 9", "MUG-9", 7)
    add_inventory_item(stack, "Gift card 9", "GIFT-9", 50)
    add_inventory_item(stack, "Lamp", "LAMP-1", 4)  # no Shopify variant

    sync_job(stack)  # the setting is off: nothing is pushed
    assert stock.sets == 0
    with stack.app.db.session() as session:
        settings = load_settings(session, stack.channel_id)
        save_settings(
            session, stack.channel_id, settings.model_copy(update={"push_stock_levels": True, "stock_buffer": 2})
        )

    sync_job(stack)
    assert stock.available("TSHIRT-M") == 98
    assert stock.available("MUG-9") == 5
    assert stock.available("ONLY-IN-SHOPIFY") == 3
    assert stock.sets == 2
    (failed,) = events(stack, "stock_failed")
    assert "GIFT-9" in failed
    assert "inventory tracking" in failed
    assert any("TSHIRT-M → 98" in message for message in events(stack, "stock_pushed"))

    # Again: nothing differs, nothing is set.
    report = StockPush(stack.app.db, stack.app.adapters).run(stack.channel_id)
    assert stock.sets == 2
    assert report.pushed == {}
    assert "LAMP-1" in report.unmatched

    # The merchant counts the mugs in QuickBooks: CDC brings that one change, and only it is pushed.
    set_on_hand(stack, mug["Id"], 3)
    report = StockPush(stack.app.db, stack.app.adapters).run(stack.channel_id)
    assert report.pushed == {"MUG-9": 1}
    assert stock.available("MUG-9") == 1
    assert stock.available("TSHIRT-M") == 98
    assert stock.sets == 3
