"""Orders from QuickBooks to ShipStation in Chromium: connect ShipStation, set the reverse settings, test one sale."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from livetools import Live
from playwright.sync_api import Page, expect
from test_flow import connect_quickbooks, sign_up

from ledgerlink.domain.reverse import SaleType
from ledgerlink.sandbox.demo_reverse import MANUAL_STORE_ID, SaleLine, create_sale
from ledgerlink.sandbox.server import serve
from ledgerlink.sandbox.shipstation import ShipStationSandbox
from ledgerlink.sync.engine import load_settings

pytestmark = pytest.mark.browser


def test_reverse_settings_are_set_and_one_sale_is_sent(live: Live, page: Page) -> None:
    ss = ShipStationSandbox(time_scale=60.0)
    server = serve(ss.app)
    ss.base_url = server.base_url
    try:
        sign_up(live, page, "Ship From Books")
        connect_quickbooks(live, page)
        page.goto(f"{live.url}/connections/shipstation")
        page.get_by_label("API key").fill(ss.api_key)
        page.get_by_label("API secret").fill(ss.api_secret)
        page.get_by_label("API address").fill(server.base_url)
        page.get_by_role("button", name="Connect", exact=True).click()
        expect(page.locator(".flash")).to_contain_text("Connected to ShipStation (4 stores)")
        channel = int(re.findall(r"/connections/(\d+)", page.url)[0])

        page.goto(f"{live.url}/settings/{channel}/from-quickbooks")
        page.get_by_role("radio", name=re.compile("^Sales from QuickBooks to ShipStation")).check()
        page.get_by_label("ShipStation store").select_option(str(MANUAL_STORE_ID))
        page.get_by_role("checkbox", name=re.compile("^Invoices")).check()
        page.get_by_role("checkbox", name=re.compile("^Sales Receipts")).uncheck()
        expect(page.get_by_role("checkbox", name=re.compile("^Sales Orders"))).to_be_disabled()
        page.get_by_label("Only sales of these QuickBooks classes").select_option(label="Online Store")
        page.get_by_role("checkbox", name=re.compile("^Write the shipping cost back")).check()
        page.get_by_role("button", name="Save").click()
        expect(page.locator(".flash")).to_contain_text("Saved as revision")
        expect(page.locator("[data-webhook]")).to_contain_text("registered with ShipStation")
        live.shot(page, "reverse-settings")

        with live.app.db.session(readonly=True) as session:
            fb = load_settings(session, channel).from_books
        assert (fb.store_id, fb.transaction_types, fb.write_shipping_cost) == (
            MANUAL_STORE_ID,
            [SaleType.INVOICE],
            True,
        )
        assert [h["target_url"].startswith(f"{live.url}/webhooks/shipstation/") for h in ss.webhooks] == [True]

        create_sale(live.qbo, "Invoice", "B-1", [SaleLine("Red Hat", 2, Decimal("19.99"))])
        page.get_by_label("Type").select_option("Invoice")
        page.get_by_label("QuickBooks number").fill("B-1")
        page.get_by_role("button", name="Send this sale").click()
        result = page.locator("[data-test-result]")
        expect(result).to_have_attribute("data-test-result", "ok")
        expect(result).to_contain_text("Invoice B-1 was created in ShipStation as awaiting payment.")
        live.shot(page, "reverse-test-one-sale")
        [order] = ss.orders.values()
        assert order["orderNumber"] == "B-1"
        assert order["advancedOptions"]["storeId"] == MANUAL_STORE_ID
    finally:
        server.stop()
