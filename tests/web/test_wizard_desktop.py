"""The install wizard on a QuickBooks Desktop company: its drop-downs come from the lists the last Web Connector
session brought back, and "Refresh lists" queues the list queries for the next session (Desktop cannot be
asked in between)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from webtools import Web, csrf, signup

from ledgerlink.sandbox.qbd import QbdCompany
from ledgerlink.store.models import Company, QbdCompanyFile
from ledgerlink.sync.connections import add_connection
from ledgerlink.sync.qbwc import WebConnectorService
from ledgerlink.web.security import hash_password, verify_password

pytestmark = pytest.mark.integration
USER = "wizard-desktop"
PASSWORD = "a long desktop password"


def desktop_company(web: Web, client: TestClient) -> tuple[int, int]:
    """Sign up; a QuickBooks Desktop books connection and a Shopify channel posting to it (ids)."""
    signup(client, "desk@example.com", "Desk Shop")
    creds = web.shop.credentials(web.shop_server.base_url)
    with web.app.db.session() as session:
        company = session.scalars(select(Company).where(Company.name == "Desk Shop")).one()
        books = add_connection(
            session,
            web.app.box,
            company,
            name="quickbooks-desktop",
            kind="qbd",
            role="books",
            config={"user_name": USER},
            secrets={"password_hash": hash_password(PASSWORD)},
        )
        channel = add_connection(
            session,
            web.app.box,
            company,
            name="shopify",
            kind="shopify",
            role="channel",
            config={"shop": creds["shop"], "base_url": creds["base_url"], "api_version": creds["api_version"]},
            secrets={"access_token": creds["access_token"]},
            books_id=books.id,
        )
        return books.id, channel.id


def web_connector_session(web: Web, qb: QbdCompany) -> str:
    """One Web Connector session against the service behind /qbwc (the SOAP layer has its own tests)."""
    service = WebConnectorService(web.app.db, web.app.box, verify=verify_password)
    ticket, status = service.authenticate(USER, PASSWORD)
    if status:
        return status
    for _ in range(20):
        request = service.send_request_xml(ticket, "", r"C:\Desk.qbw", "US", 13, 0)
        if not request:
            break
        done = service.receive_response_xml(ticket, qb.process(request), "", "")
        assert done >= 0, service.get_last_error(ticket)
        if done >= 100:
            break
    service.close_connection(ticket)
    return status


def options(html: str, name: str) -> list[str]:
    found = re.search(rf'<select name="{re.escape(name)}"[^>]*>(.*?)</select>', html, re.S)
    assert found, f"no select {name}"
    return [label.strip() for label in re.findall(r"<option [^>]*>([^<]*)</option>", found[1])]


def listed(html: str, key: str) -> str:
    found = re.search(rf'<p class="desktop-list" data-list="{key}"><strong>[^<]*</strong>([^<]*)</p>', html)
    assert found, f"no list {key}"
    return found[1]


def refresh(client: TestClient, channel_id: int, back: str) -> Any:
    token = csrf(client, f"/wizard/{back}?connection={channel_id}")
    return client.post(
        f"/wizard/accounts/refresh?connection={channel_id}&back={back}",
        data={"csrf_token": token},
        follow_redirects=False,
    )


def test_desktop_drop_downs_come_from_the_last_web_connector_session(web: Web) -> None:
    client = web.client
    books_id, channel_id = desktop_company(web, client)
    qb = QbdCompany()

    # Before the Web Connector ever ran: nothing to choose from, and the page says why.
    page = client.get(f"/wizard/accounts?connection={channel_id}")
    assert page.status_code == 200
    assert "they arrive the first time the QuickBooks Web Connector runs" in page.text
    assert options(page.text, "accounts.deposit") == ["— choose an account —"]

    assert web_connector_session(web, qb) == ""
    accounts = client.get(f"/wizard/accounts?connection={channel_id}").text
    assert "Undeposited Funds" in options(accounts, "accounts.deposit")
    assert "Checking" in options(accounts, "accounts.deposit")
    assert "Sales" in options(accounts, "accounts.item_income")
    assert "Accounts Receivable" in options(accounts, "accounts.accounts_receivable")
    assert 'class="lists-arrived"' in accounts
    assert listed(accounts, "item").strip() == "Consulting, Gift Card, Shipping, State Tax"
    assert listed(accounts, "payment_method").strip() == "Cash, Check, MasterCard, Visa"
    assert listed(accounts, "class").strip() == "Online, Retail"
    assert listed(accounts, "sales_tax_code").strip() == "Non, Tax"
    assert '<option value="Gift Card">' in accounts  # the items' datalist
    orders = client.get(f"/wizard/orders?connection={channel_id}").text
    assert "Online" in orders
    assert "Retail" in orders
    tax = client.get(f"/wizard/tax?connection={channel_id}").text
    assert '<option value="tax">' in tax  # the sales tax codes' datalist

    # An account added in QuickBooks: "Refresh lists" queues the queries; the page says when they come.
    qb.add_list_object("Account", "Payouts Clearing", AccountType="Bank")
    answer = refresh(client, channel_id, "tax")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/wizard/tax?connection={channel_id}"
    page = client.get(answer.headers["location"]).text
    assert "QuickBooks lists will refresh the next time the Web Connector runs (they last arrived" in page
    assert 'class="refresh-queued"' in page
    with web.app.db.session() as session:
        row = session.get(QbdCompanyFile, books_id)
        assert row is not None
        assert row.refresh_requested_at is not None
    assert "Payouts Clearing" not in client.get(f"/wizard/accounts?connection={channel_id}").text

    # The next Web Connector session reads the lists again: the new account is offered, the request is done.
    assert web_connector_session(web, qb) == ""
    accounts = client.get(f"/wizard/accounts?connection={channel_id}").text
    assert "Payouts Clearing" in options(accounts, "accounts.deposit")
    assert 'class="refresh-queued"' not in accounts
    with web.app.db.session() as session:
        row = session.get(QbdCompanyFile, books_id)
        assert row is not None
        assert row.refresh_requested_at is None
    # With nothing queued and the lists fresh, the Web Connector has nothing to do.
    assert web_connector_session(web, qb) == "none"


def test_refresh_before_any_session_says_the_lists_have_not_arrived(web: Web) -> None:
    client = web.client
    _books_id, channel_id = desktop_company(web, client)
    answer = refresh(client, channel_id, "nowhere")
    assert answer.headers["location"] == f"/wizard/accounts?connection={channel_id}"
    page = client.get(answer.headers["location"]).text
    assert "QuickBooks lists will refresh the next time the Web Connector runs (they have not arrived yet)" in page
