"""The install wizard: each step validated and saved as you go, the account drop-downs, Start syncing."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from webtools import Web, connect_qbo, connect_shopify, csrf, signup

from ledgerlink.domain.settings import MissingItem, ScheduleKind, TransactionType
from ledgerlink.store.models import Company, Connection, SettingsRevision, SyncJob
from ledgerlink.sync.connections import add_connection
from ledgerlink.sync.engine import load_settings

pytestmark = pytest.mark.integration


# -- helpers shared with test_settings_pages ---------------------------------------------------------------


def company_id(web: Web, name: str) -> int:
    with web.app.db.session() as session:
        found = session.scalars(select(Company.id).where(Company.name == name)).first()
        assert found is not None
        return found


def _connections_pages_exist(client: TestClient) -> bool:
    return client.get("/connections/shopify", follow_redirects=False).status_code != 404


def setup_company(web: Web, client: TestClient, email: str, company: str) -> int:
    """Sign up, connect the QuickBooks and Shopify sandboxes; returns the Shopify channel's id."""
    signup(client, email, company)
    if _connections_pages_exist(client):
        connect_qbo(web, client)
        connect_shopify(web, client)
    else:  # the Connections pages are not there yet: store the connections as the demo does
        _connect_directly(web, company_id(web, company))
    cid = company_id(web, company)
    with web.app.db.session() as session:
        channel = session.scalars(
            select(Connection).where(Connection.company_id == cid, Connection.role == "channel")
        ).first()
        assert channel is not None
        return channel.id


def _connect_directly(web: Web, cid: int) -> None:
    creds = web.qbo.credentials(web.qbo_server.base_url)
    shop = web.shop.credentials(web.shop_server.base_url)
    now = datetime.now(UTC)
    with web.app.db.session() as session:
        company = session.get(Company, cid)
        assert company is not None
        books = add_connection(
            session,
            web.app.box,
            company,
            name="quickbooks",
            kind="qbo",
            role="books",
            config={
                k: creds[k] for k in ("realm_id", "client_id", "api_base", "token_url", "authorize_url", "redirect_uri")
            },
            secrets={
                "client_secret": creds["client_secret"],
                "access_token": creds["access_token"],
                "refresh_token": creds["refresh_token"],
                "access_expires_at": (now + timedelta(minutes=55)).isoformat(),
                "refresh_expires_at": (now + timedelta(days=100)).isoformat(),
            },
        )
        add_connection(
            session,
            web.app.box,
            company,
            name="shopify",
            kind="shopify",
            role="channel",
            config={"shop": shop["shop"], "base_url": shop["base_url"], "api_version": shop["api_version"]},
            secrets={"access_token": shop["access_token"]},
            books_id=books.id,
        )


def add_shipstation(web: Web, cid: int) -> int:
    """A ShipStation channel (stored directly: only its kind matters to the wizard)."""
    with web.app.db.session() as session:
        company = session.get(Company, cid)
        assert company is not None
        books = session.scalars(
            select(Connection).where(Connection.company_id == cid, Connection.role == "books")
        ).first()
        conn = add_connection(
            session,
            web.app.box,
            company,
            name="shipstation",
            kind="shipstation",
            role="channel",
            config={"base_url": "http://127.0.0.1:9"},
            secrets={"api_key": "k", "api_secret": "s"},
            books_id=books.id if books else None,
        )
        return conn.id


def revisions(web: Web, channel_id: int) -> list[SettingsRevision]:
    with web.app.db.session() as session:
        rows = list(
            session.scalars(
                select(SettingsRevision)
                .where(SettingsRevision.connection_id == channel_id)
                .order_by(SettingsRevision.revision)
            )
        )
        session.expunge_all()
        return rows


def options_of(html: str, name: str) -> dict[str, str]:
    """The options (value → label) of a <select name=…>."""
    found = re.search(rf'<select name="{re.escape(name)}"[^>]*>(.*?)</select>', html, re.S)
    assert found, f"no select {name}"
    return {v: label.strip() for v, label in re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', found[1])}


def selected_of(html: str, name: str) -> str:
    found = re.search(rf'<select name="{re.escape(name)}"[^>]*>(.*?)</select>', html, re.S)
    assert found
    chosen = re.search(r'<option value="([^"]*)" selected', found[1])
    return chosen[1] if chosen else ""


def post(client: TestClient, path: str, data: dict[str, Any], **kw: Any) -> Any:
    token = csrf(client, "/signin")  # one token per session: any page with a form gives it
    return client.post(path, data={**data, "csrf_token": token}, follow_redirects=False, **kw)


ORDERS_FORM: dict[str, Any] = {
    "transaction_type": "invoice",
    "orders.financial_statuses": ["paid", "pending"],
    "orders.fulfillment_statuses": [],
    "orders.created_from": "2024-01-01",
    "orders.created_to": "",
    "orders.order_numbers": "",
    "schedule.choice": "daily",
    "schedule.daily_at": "05:45",
    "update_policy": "update",
    "doc_number_prefix": "WEB-",
    "class_id": "",
}


# -- tests -------------------------------------------------------------------------------------------------


def test_wizard_asks_to_connect_first(web: Web) -> None:
    signup(web.client, "first@shop.test", "First Shop")
    page = web.client.get("/wizard")
    assert page.status_code == 200
    assert "connect both sides" in page.text
    assert 'href="/connections"' in page.text


def test_walk_the_wizard_end_to_end(web: Web) -> None:
    client = web.client
    channel = setup_company(web, client, "owner@walk.test", "Walk Shop")
    before = len(revisions(web, channel))
    q = f"?connection={channel}"

    start = client.get(f"/wizard{q}", follow_redirects=False)
    assert start.status_code == 303
    assert start.headers["location"] == f"/wizard/direction{q}"

    page = client.get(f"/wizard/direction{q}")
    assert page.status_code == 200
    assert 'class="steps"' in page.text
    assert 'class="faq"' in page.text
    answer = post(client, f"/wizard/direction{q}", {"direction": "to_quickbooks", "push_stock_levels": "on"})
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/wizard/orders{q}"
    assert len(revisions(web, channel)) == before + 1

    page = client.get(f"/wizard/orders{q}")
    assert "Sales Receipts" in page.text
    assert "an Estimate is created instead" in page.text
    assert "Online Store" in options_of(page.text, "class_id").values()
    class_id = next(k for k, v in options_of(page.text, "class_id").items() if v == "Online Store")
    answer = post(client, f"/wizard/orders{q}", {**ORDERS_FORM, "class_id": class_id})
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"/wizard/customers{q}"

    answer = post(
        client,
        f"/wizard/customers{q}",
        {"customers.mode": "per_buyer", "customers.single_name": "Web Store", "customers.when_missing": "fail"},
    )
    assert answer.headers["location"] == f"/wizard/accounts{q}"

    page = client.get(f"/wizard/accounts{q}")
    deposit, receivable = (
        selected_of(page.text, "accounts.deposit"),
        selected_of(page.text, "accounts.accounts_receivable"),
    )
    income = selected_of(page.text, "accounts.item_income")
    assert options_of(page.text, "accounts.deposit")[deposit] == "Undeposited Funds"  # suggested
    answer = post(
        client,
        f"/wizard/accounts{q}",
        {
            "accounts.deposit": deposit,
            "accounts.item_income": income,
            "accounts.accounts_receivable": receivable,
            "accounts.item_discount": "",
        },
    )
    assert answer.headers["location"] == f"/wizard/tax{q}", answer.text

    answer = post(
        client,
        f"/wizard/tax{q}",
        {
            "tax.mode": "pinned_total",
            "tax.tax_item_name": "Sales Tax",
            "tax.jurisdictions.0.country": "US",
            "tax.jurisdictions.0.region": "CA",
            "tax.jurisdictions.0.city": "",
            "tax.jurisdictions.0.tax_code": "TAX",
        },
    )
    assert answer.headers["location"] == f"/wizard/products{q}", answer.text

    answer = post(
        client,
        f"/wizard/products{q}",
        {
            "items.match_on": "sku",
            "items.when_missing": "create_non_inventory",
            "items.sku_map.0.sku": "TSHIRT-RED",
            "items.sku_map.0.item": "T-Shirt",
            "shipping_item_name": "Shipping",
            "discount_item_name": "Discount",
            "adjust_item_name": "Rounding adjustment",
            "use_books_shipping_line": "on",
        },
    )
    assert answer.headers["location"] == f"/wizard/account{q}", answer.text

    saved = revisions(web, channel)
    assert len(saved) == before + 6
    assert {r.changed_by for r in saved[before:]} == {"owner@walk.test"}
    settings = load_settings_of(web, channel)
    assert settings.transaction_type is TransactionType.INVOICE
    assert settings.schedule.kind is ScheduleKind.DAILY
    assert settings.schedule.daily_at is not None
    assert settings.orders.financial_statuses == ["paid", "pending"]
    assert settings.doc_number_prefix == "WEB-"
    assert settings.class_id == class_id
    assert settings.customers.when_missing.value == "fail"
    assert settings.accounts.deposit == deposit
    assert settings.accounts.accounts_receivable == receivable
    assert settings.tax.jurisdictions[0].region == "CA"
    assert settings.items.sku_map == {"TSHIRT-RED": "T-Shirt"}
    assert settings.push_stock_levels is True
    cid = company_id(web, "Walk Shop")
    with web.app.db.session() as session:
        assert session.get(Company, cid).wizard_step == "account"  # type: ignore[union-attr]

    summary = client.get(f"/wizard/account{q}")
    assert "Invoice" in summary.text
    assert "Undeposited Funds" in summary.text
    assert "WEB-1001" in summary.text
    finish = post(
        client,
        f"/wizard/account{q}",
        {"notify_email": "books@walk.test", "notify_events": ["sync_failed", "order_failed"]},
    )
    assert finish.status_code == 303, finish.text
    assert finish.headers["location"] == "/"
    cid = company_id(web, "Walk Shop")
    with web.app.db.session() as session:
        jobs = list(session.scalars(select(SyncJob).where(SyncJob.connection_id == channel)))
        assert [(j.trigger, j.requested_by) for j in jobs] == [("wizard", "owner@walk.test")]
        company = session.get(Company, cid)
        assert company is not None
        assert company.notify_email == "books@walk.test"
        assert company.notify_events == ["sync_failed", "order_failed"]
        assert company.wizard_step == "done"


def load_settings_of(web: Web, channel: int) -> Any:
    with web.app.db.session() as session:
        return load_settings(session, channel)


def test_from_quickbooks_is_disabled_for_shopify_and_refused(web: Web) -> None:
    channel = setup_company(web, web.client, "dir@shop.test", "Direction Shop")
    q = f"?connection={channel}"
    page = web.client.get(f"/wizard/direction{q}")
    radio = re.search(r'<input type="radio" name="direction" value="from_quickbooks"[^>]*>', page.text)
    assert radio
    assert "disabled" in radio[0]
    assert "Shopify cannot receive orders from QuickBooks; use ShipStation for that" in page.text
    refused = post(web.client, f"/wizard/direction{q}", {"direction": "from_quickbooks"})
    assert refused.status_code == 422
    assert 'data-field="direction"' in refused.text


def test_shipstation_may_go_from_quickbooks_with_its_own_steps(web: Web) -> None:
    setup_company(web, web.client, "ss@shop.test", "Ship Shop")
    ship = add_shipstation(web, company_id(web, "Ship Shop"))
    q = f"?connection={ship}"
    page = web.client.get(f"/wizard/direction{q}")
    radio = re.search(r'<input type="radio" name="direction" value="from_quickbooks"[^>]*>', page.text)
    assert radio
    assert "disabled" not in radio[0]
    answer = post(web.client, f"/wizard/direction{q}", {"direction": "from_quickbooks"})
    assert answer.headers["location"] == f"/wizard/pair{q}"
    # The steps' own forms are covered in test_from_quickbooks_pages.py; here only the way through them.
    sales = {"from_books.transaction_types": ["SalesReceipt"]}
    for slug, following, data in (
        ("pair", "sales", {}),
        ("sales", "tracking", sales),
        ("tracking", "test", {}),
        ("test", "account", {}),
    ):
        page = web.client.get(f"/wizard/{slug}{q}")
        assert page.status_code == 200
        assert post(web.client, f"/wizard/{slug}{q}", data).headers["location"] == f"/wizard/{following}{q}"
    done = post(web.client, f"/wizard/account{q}", {"notify_email": ""})
    assert done.status_code == 303
    with web.app.db.session() as session:
        assert session.scalars(select(SyncJob).where(SyncJob.connection_id == ship)).one().trigger == "wizard"


def test_account_drop_downs_list_the_company_accounts_by_type(web: Web) -> None:
    channel = setup_company(web, web.client, "acc@shop.test", "Accounts Shop")
    page = web.client.get(f"/wizard/accounts?connection={channel}")
    assert page.status_code == 200
    deposit = set(options_of(page.text, "accounts.deposit").values()) - {"— choose an account —"}
    assert {"Checking", "Undeposited Funds", "Inventory Asset"} <= deposit
    assert "Sales of Product Income" not in deposit
    assert "Accounts Receivable (A/R)" not in deposit
    assert set(options_of(page.text, "accounts.accounts_receivable").values()) - {"— choose an account —"} == {
        "Accounts Receivable (A/R)"
    }
    income = set(options_of(page.text, "accounts.item_income").values())
    assert {"Sales of Product Income", "Services", "Discounts given"} <= income
    assert "Checking" not in income
    discount = set(options_of(page.text, "accounts.item_discount").values())
    assert {"Discounts given", "Refunds"} <= discount  # income or expense
    assert set(options_of(page.text, "accounts.item_cogs").values()) - {"— choose an account —"} == {
        "Cost of Goods Sold"
    }
    assert "Cost of Goods Sold" not in options_of(page.text, "accounts.item_asset").values()
    refreshed = post(web.client, f"/wizard/accounts/refresh?connection={channel}", {})
    assert refreshed.status_code == 303


def test_validation_messages_next_to_the_fields(web: Web) -> None:
    channel = setup_company(web, web.client, "val@shop.test", "Validating Shop")
    q = f"?connection={channel}"
    before = len(revisions(web, channel))
    bad = post(
        web.client, f"/wizard/accounts{q}", {"accounts.deposit": "", "accounts.item_income": "", "inventory": "on"}
    )
    assert bad.status_code == 422
    deposit_field = bad.text.index('name="accounts.deposit"')
    message = bad.text.index('data-field="accounts.deposit"')
    assert 0 < message - deposit_field < 2500  # right after the Deposit drop-down
    assert "it is required" in bad.text
    assert 'data-field="accounts.item_asset"' in bad.text
    assert 'data-field="accounts.item_cogs"' in bad.text

    bad = post(
        web.client,
        f"/wizard/orders{q}",
        {
            **ORDERS_FORM,
            "doc_number_prefix": "TOO-LONG-PREFIX",
            "schedule.daily_at": "",
            "orders.created_from": "not a date",
            "transaction_type": "estimate",
        },
    )
    assert bad.status_code == 422
    for name in ("doc_number_prefix", "schedule.daily_at", "orders.created_from", "transaction_type"):
        assert f'data-field="{name}"' in bad.text, name
    assert "At most 10 characters" in bad.text
    assert 'value="TOO-LONG-PREFIX"' in bad.text  # what was typed is kept
    assert len(revisions(web, channel)) == before


def test_start_syncing_is_refused_while_something_is_missing(web: Web) -> None:
    channel = setup_company(web, web.client, "miss@shop.test", "Missing Shop")
    q = f"?connection={channel}"
    with web.app.db.session() as session:
        assert load_settings(session, channel).missing()  # nothing chosen yet
    refused = post(web.client, f"/wizard/account{q}", {"notify_email": "a@b.test"})
    assert refused.status_code == 422
    assert "Syncing cannot start yet" in refused.text
    assert f'href="/wizard/accounts{q}"' in refused.text
    with web.app.db.session() as session:
        assert session.scalars(select(SyncJob).where(SyncJob.connection_id == channel)).first() is None

    page = web.client.get(f"/wizard/accounts{q}")
    data = {
        f"accounts.{n}": selected_of(page.text, f"accounts.{n}")
        for n in ("deposit", "item_income", "item_discount", "accounts_receivable")
    }
    assert post(web.client, f"/wizard/accounts{q}", data).status_code == 303
    ok = post(web.client, f"/wizard/account{q}", {"notify_email": "a@b.test", "notify_events": ["sync_failed"]})
    assert ok.status_code == 303
    assert ok.headers["location"] == "/"
    with web.app.db.session() as session:
        assert session.scalars(select(SyncJob).where(SyncJob.connection_id == channel)).first() is not None


def test_inventory_items_need_their_accounts(web: Web) -> None:
    channel = setup_company(web, web.client, "inv@shop.test", "Inventory Shop")
    q = f"?connection={channel}"
    answer = post(
        web.client,
        f"/wizard/products{q}",
        {
            "items.match_on": "sku_then_name",
            "items.when_missing": "create_inventory",
            "shipping_item_name": "Shipping",
            "discount_item_name": "Discount",
            "adjust_item_name": "Rounding adjustment",
        },
    )
    assert answer.status_code == 303
    settings = load_settings_of(web, channel)
    assert settings.items.when_missing is MissingItem.CREATE_INVENTORY
    assert "accounts.item_asset" in settings.missing()
    page = web.client.get(f"/wizard/accounts{q}")
    assert re.search(r'name="inventory" value="on" checked', page.text)
    assert (
        options_of(page.text, "accounts.item_asset")[selected_of(page.text, "accounts.item_asset")] == "Inventory Asset"
    )


def test_another_companys_channel_is_not_found(web: Web) -> None:
    channel = setup_company(web, web.client, "a@one.test", "Company One")
    other = web.new_client()
    signup(other, "b@two.test", "Company Two")
    assert other.get(f"/wizard/orders?connection={channel}").status_code == 404
    assert other.get(f"/wizard?connection={channel}").status_code == 404
    assert post(other, f"/wizard/orders?connection={channel}", ORDERS_FORM).status_code == 404
