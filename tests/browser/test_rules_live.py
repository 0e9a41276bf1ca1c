"""Settings → Rules in Chromium: add a rule with the editor, then test it on a stored order and see it fire."""

from __future__ import annotations

import re

import pytest
from livetools import Live
from playwright.sync_api import Page, expect
from sqlalchemy import select
from test_flow import sign_up

from ledgerlink.channels.base import channel_parser
from ledgerlink.sandbox.shopify import generate_orders
from ledgerlink.store.models import Connection, StoredOrder
from ledgerlink.sync.engine import load_settings

pytestmark = pytest.mark.browser


def connect_the_store(live: Live, page: Page) -> int:
    """Connect the Shopify sandbox (the form comes filled in) and return the channel's id."""
    page.goto(f"{live.url}/connections/shopify")
    page.get_by_role("button", name="Connect", exact=True).click()
    expect(page.locator(".flash")).to_contain_text("Connected to Shopify store")
    with live.app.db.session() as session:
        return int(session.scalars(select(Connection.id).where(Connection.role == "channel")).one())


def store_orders(live: Live, channel_id: int) -> None:
    """Six sandbox orders stored for the channel, as a pull stores them (#1002 is tagged "wholesale")."""
    parse = channel_parser("shopify")
    with live.app.db.session() as session:
        channel = session.get(Connection, channel_id)
        assert channel is not None
        for raw in generate_orders(6, seed=13):
            order = parse(raw)
            session.add(
                StoredOrder(
                    company_id=channel.company_id,
                    connection_id=channel.id,
                    channel_order_id=order.channel_order_id,
                    number=order.number,
                    content_hash=order.content_hash(),
                    raw=raw,
                    canonical=order.model_dump(mode="json"),
                    total=order.totals.total,
                    currency=order.currency,
                )
            )


def test_add_a_rule_and_test_it_on_an_order(live: Live, page: Page) -> None:
    sign_up(live, page, company="Rule Roasters")
    channel_id = connect_the_store(live, page)
    store_orders(live, channel_id)

    page.goto(f"{live.url}/settings/{channel_id}/orders")
    page.get_by_role("link", name="Rules", exact=True).click()
    expect(page).to_have_url(f"{live.url}/settings/{channel_id}/rules")
    expect(page.locator("body")).to_contain_text("No rules yet")

    page.get_by_role("link", name="Add a rule").click()
    page.get_by_label("Name").fill("Wholesale class")
    page.get_by_label("Condition 1 field").select_option("tag")
    page.get_by_label("Condition 1 comparison").select_option("equals")
    page.get_by_label("Condition 1 value").fill("wholesale")
    page.get_by_label("Action 1", exact=True).select_option("set_class")
    page.get_by_label("Action 1 value").fill("CL-7")
    page.get_by_label("Action 2", exact=True).select_option("add_memo")
    page.get_by_label("Action 2 value").fill("#wholesale")
    page.get_by_role("button", name="Save rule").click()

    expect(page).to_have_url(f"{live.url}/settings/{channel_id}/rules")
    expect(page.locator(".flash-ok")).to_contain_text("Rule 'Wholesale class' added. Saved as revision")
    row = page.locator("tr.rule-row", has_text="Wholesale class")
    expect(row).to_contain_text("tag equals 'wholesale'")
    expect(row).to_contain_text("class = 'CL-7'")
    with live.app.db.session() as session:
        assert [rule.name for rule in load_settings(session, channel_id).rules] == ["Wholesale class"]

    page.get_by_label("Order number").fill("1002")
    page.get_by_role("button", name="Test", exact=True).click()
    result = page.locator(".rule-test")
    expect(result.get_by_role("heading", name="Order #1002: 1 rule fired")).to_be_visible()
    expect(result.locator("li.fired", has_text="Wholesale class")).to_contain_text("tag equals 'wholesale': yes")
    document = result.locator("article.tested-doc").first
    expect(document).to_contain_text("SalesReceipt 1002")
    expect(document.locator("dd").filter(has_text=re.compile(r"^CL-7$"))).to_be_visible()
    expect(document).to_contain_text("Shopify order #1002 #wholesale")
    live.shot(page, "rules-test-on-order")

    # An order the rule does not match: it is shown as passed over, and the document has no class.
    page.get_by_label("Order number").fill("1001")
    page.get_by_role("button", name="Test", exact=True).click()
    expect(page.locator(".rule-test").get_by_role("heading", name="Order #1001: 0 rules fired")).to_be_visible()
    expect(page.locator("li.passed", has_text="Wholesale class")).to_contain_text("no (tag is 'vip')")
    with live.app.db.session() as session:
        assert session.scalars(select(StoredOrder.state).where(StoredOrder.number == "1001")).one() == "pending"
