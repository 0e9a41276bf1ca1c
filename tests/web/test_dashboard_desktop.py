"""The dashboard's QuickBooks Desktop panel: waiting for the Web Connector, its last call, the documents waiting
for it, and the overdue alert when it has not called for longer than its schedule allows.

The Web Connector is the zeep driver calling the app's SOAP service on a real port; QuickBooks is the company
file stand-in; the orders come from the Shopify sandbox through the engine.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from lxml import html
from sqlalchemy import select
from webtools import Web, connect_shopify, csrf, signup

from ledgerlink.domain.catalog import CatalogQuery
from ledgerlink.domain.settings import TransactionType
from ledgerlink.sandbox.demo_desktop import desktop_settings
from ledgerlink.sandbox.qbd import QbdCompany
from ledgerlink.sandbox.qbd.driver import WebConnector
from ledgerlink.sandbox.server import serve
from ledgerlink.store.models import Connection, Posting, PostingState, QbdCompanyFile
from ledgerlink.sync.engine import save_settings
from ledgerlink.web.app import create_app
from ledgerlink.web.qwc import RUN_EVERY_MINUTES

pytestmark = pytest.mark.integration

USER = "wc-dashboard-shop"
PASSWORD = "a long Web Connector password"


def create_desktop(web: Web) -> int:
    """Connections → QuickBooks Desktop, as a person fills it in; returns the books connection's id."""
    token = csrf(web.client, "/connections/qbd")
    answer = web.client.post(
        "/connections/qbd",
        data={"user_name": USER, "password": PASSWORD, "confirm": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    with web.app.db.session() as session:
        conn = session.scalars(select(Connection).where(Connection.kind == "qbd")).one()
        return int(conn.id)


def panel(web: Web, books_id: int) -> html.HtmlElement:
    """The dashboard's panel of this Desktop connection."""
    page = web.client.get("/")
    assert page.status_code == 200
    found = html.fromstring(page.text).xpath(f'//section[@id="desktop-{books_id}"]')
    assert len(found) == 1, page.text
    return found[0]


def text(element: html.HtmlElement) -> str:
    return " ".join(element.text_content().split())


def with_class(section: html.HtmlElement, name: str) -> list[html.HtmlElement]:
    return list(section.xpath(f'.//*[contains(concat(" ", normalize-space(@class), " "), " {name} ")]'))


def stat(section: html.HtmlElement, label: str) -> str:
    """The figure above a stat label, as shown."""
    for box in section.xpath('./div[@class="stats"]/div'):
        if label in text(with_class(box, "stat-label")[0]):
            return text(with_class(box, "stat")[0])
    raise AssertionError(f"no stat {label!r} in {text(section)}")


def test_desktop_panel_waiting_called_pending_and_overdue(web: Web) -> None:
    signup(web.client, "desk@shop.test", "Desk Shop")
    books_id = create_desktop(web)

    # Before the Web Connector has ever called: waiting, no alert.
    first = panel(web, books_id)
    assert "Waiting for the Web Connector" in text(first)
    assert not with_class(first, "desktop-overdue")
    assert first.xpath(f'.//a[@href="/connections/{books_id}"]')
    assert stat(first, "last call from the Web Connector") == "never"
    assert stat(first, "documents waiting for the Web Connector") == "0"

    # The Web Connector's first session reads the company file's lists.
    qb = QbdCompany()
    with serve(create_app(web.app)) as server:
        wc = WebConnector(f"{server.base_url}/qbwc?wsdl", qb, user_name=USER, password=PASSWORD)
        try:
            lists = wc.run()
            assert lists.status == "", lists
            assert lists.finished, lists

            called = panel(web, books_id)
            assert "Web Connector calling" in text(called)
            assert "Waiting for the Web Connector" not in text(called)
            assert not with_class(called, "desktop-overdue")
            with web.app.db.session() as session:
                row = session.get(QbdCompanyFile, books_id)
                assert row is not None
                assert row.last_contact_at is not None
                contact = row.last_contact_at
            assert stat(called, "last call from the Web Connector") == contact.strftime("%Y-%m-%d %H:%M UTC")
            assert stat(called, "lists read from the company file") != "not yet"

            # A Shopify store posting to the Desktop company, synced: its documents wait for the Web Connector.
            connect_shopify(web, web.client)
            with web.app.db.session() as session:
                channel = session.scalars(select(Connection).where(Connection.kind == "shopify")).one()
                assert channel.books_id == books_id
                channel_id = int(channel.id)
                books = session.get(Connection, books_id)
                assert books is not None
            adapter = web.app.adapters.books(books)
            try:
                catalog = adapter.catalog(CatalogQuery())
            finally:
                adapter.close()
            with web.app.db.session() as session:
                save_settings(session, channel_id, desktop_settings(catalog, TransactionType.INVOICE))
            report = web.app.engine().run(channel_id)
            assert report.error == ""
            with web.app.db.session() as session:
                pending = len(
                    session.scalars(
                        select(Posting.id).where(Posting.books_id == books_id, Posting.state == PostingState.PENDING)
                    ).all()
                )
            assert pending > 0
            assert stat(panel(web, books_id), "documents waiting for the Web Connector") == str(pending)

            # The Web Connector collects them: nothing waits any more.
            for _ in range(5):
                if wc.run().status == "none":
                    break
            assert stat(panel(web, books_id), "documents waiting for the Web Connector") == "0"
        finally:
            wc.close()

    # Its last call was longer ago than two runs of its schedule: the overdue alert, with what to check.
    late = datetime.now(UTC) - timedelta(minutes=2 * RUN_EVERY_MINUTES + 1)
    with web.app.db.session() as session:
        row = session.get(QbdCompanyFile, books_id)
        assert row is not None
        row.last_contact_at = late
    overdue = panel(web, books_id)
    alerts = with_class(overdue, "desktop-overdue")
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.get("role") == "alert"
    assert late.strftime("%Y-%m-%d %H:%M UTC") in text(alert)
    assert f"every {RUN_EVERY_MINUTES} minutes" in text(alert)
    assert "Overdue" in text(with_class(overdue, "health")[0])

    # Within its schedule (one run missed is not yet overdue): no alert.
    with web.app.db.session() as session:
        row = session.get(QbdCompanyFile, books_id)
        assert row is not None
        row.last_contact_at = datetime.now(UTC) - timedelta(minutes=RUN_EVERY_MINUTES + 1)
    assert not with_class(panel(web, books_id), "desktop-overdue")


def test_another_company_does_not_see_the_desktop_panel(web: Web) -> None:
    signup(web.client, "desk@shop.test", "Desk Shop")
    books_id = create_desktop(web)
    other = web.new_client()
    signup(other, "other@shop.test", "Other Shop")
    page = other.get("/")
    assert page.status_code == 200
    assert f'id="desktop-{books_id}"' not in page.text
    assert "Waiting for the Web Connector" not in page.text
