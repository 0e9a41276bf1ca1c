"""A QuickBooks Desktop connection as the merchant sees it: a health badge that follows what the Web Connector
really did, its schedule (Connections page → .qwc file → the dashboard's overdue alert), the sync summary that
says documents are queued (not posted) for the Web Connector, the products settings offering the company file's
items, and an edited order that changes nothing in QuickBooks planning no update.

The Web Connector is the zeep driver calling the app's SOAP service on a real port; QuickBooks is the company
file stand-in; the orders come from the Shopify sandbox through the engine.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree as ET

import pytest
from lxml import html
from sqlalchemy import func, select
from webtools import Web, connect_shopify, csrf, signup

from ledgerlink.domain.catalog import CatalogQuery
from ledgerlink.domain.settings import TransactionType
from ledgerlink.sandbox.demo_desktop import desktop_settings
from ledgerlink.sandbox.qbd import QbdCompany
from ledgerlink.sandbox.qbd.driver import WebConnector
from ledgerlink.sandbox.server import serve
from ledgerlink.store.models import Connection, Posting, QbdCompanyFile, QbdListEntry
from ledgerlink.sync.engine import save_settings
from ledgerlink.sync.qbwc import SIGN_IN_REFUSED
from ledgerlink.web.app import create_app

pytestmark = pytest.mark.integration

USER = "wc-health-shop"
PASSWORD = "a long Web Connector password"
QUEUED = "queued for QuickBooks Desktop (sent at the next Web Connector session)"


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
        return int(session.scalars(select(Connection.id).where(Connection.kind == "qbd")).one())


def text(element: html.HtmlElement) -> str:
    return " ".join(element.text_content().split())


def badge(web: Web, books_id: int) -> tuple[str, str, str]:
    """The Desktop card on the Connections page: (badge class, badge text, the detail shown under it)."""
    page = html.fromstring(web.client.get("/connections").text)
    [card] = page.xpath(f'//article[.//a[@href="/connections/{books_id}"]]')
    [mark] = card.xpath('.//span[contains(concat(" ", @class, " "), " badge ")]')
    detail = card.xpath('.//p[@class="detail"]')
    return mark.get("class").split()[-1], text(mark), text(detail[0]) if detail else ""


def sync_channel(web: Web, books_id: int) -> int:
    """A Shopify store posting to the Desktop company, with the wizard's Desktop defaults, synced once."""
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
    assert report.counts["postings_planned"] > 0
    return channel_id


def drain(wc: WebConnector) -> None:
    """Web Connector sessions until it finds nothing to do."""
    for _ in range(6):
        log = wc.run()
        assert not log.errors, log.errors
        if log.status == "none":
            return
    raise AssertionError("the Web Connector still found work after six sessions")


def test_health_badge_follows_the_web_connector(web: Web) -> None:
    signup(web.client, "health@shop.test", "Health Shop")
    books_id = create_desktop(web)
    assert badge(web, books_id)[:2] == ("waiting", "waiting for the Web Connector")

    qb = QbdCompany()
    with serve(create_app(web.app)) as server:
        wc = WebConnector(f"{server.base_url}/qbwc?wsdl", qb, user_name=USER, password=PASSWORD)
        try:
            # A wrong password in the Web Connector: an error that says what to type where.
            assert wc.run(password="not the password").status == "nvu"
            kind, label, detail = badge(web, books_id)
            assert (kind, label) == ("error", "error")
            assert detail == SIGN_IN_REFUSED

            # The first real session reads the lists: connected, the error gone.
            first = wc.run()
            assert first.finished, first
            assert badge(web, books_id) == ("ok", "connected", "")

            # Documents wait; QuickBooks cannot open the company file: the Web Connector's reason is shown.
            channel_id = sync_channel(web, books_id)
            assert wc.run(drop_request=1).lost == 1
            kind, label, detail = badge(web, books_id)
            assert (kind, label) == ("error", "error")
            assert "0x80040408" in detail
            assert "Could not start QuickBooks" in detail
            dashboard = html.fromstring(web.client.get("/").text)
            [card] = dashboard.xpath(f'//section[@id="channel-{channel_id}"]')
            assert "Could not start QuickBooks" in text(card)

            # The next sessions deliver the documents: connected again.
            drain(wc)
            assert badge(web, books_id) == ("ok", "connected", "")

            # QuickBooks refuses a whole message set: an error again, with QuickBooks' words.
            with web.app.db.session() as session:
                row = session.get(QbdCompanyFile, books_id)
                assert row is not None
                row.refresh_requested_at = datetime.now(UTC)
            old = WebConnector(
                f"{server.base_url}/qbwc?wsdl", qb, user_name=USER, password=PASSWORD, qbxml_version=(12, 0)
            )
            try:
                refused = old.run()
            finally:
                old.close()
            assert refused.errors
            assert "qbXML 12.0" in refused.errors[0]
            kind, _label, detail = badge(web, books_id)
            assert kind == "error"
            assert "qbXML 12.0" in detail
            drain(wc)
            assert badge(web, books_id)[0] == "ok"
        finally:
            wc.close()


def test_sync_summary_says_queued_and_edited_order_plans_no_update(web: Web) -> None:
    signup(web.client, "queue@shop.test", "Queue Shop")
    books_id = create_desktop(web)
    qb = QbdCompany()
    with serve(create_app(web.app)) as server:
        wc = WebConnector(f"{server.base_url}/qbwc?wsdl", qb, user_name=USER, password=PASSWORD)
        try:
            assert wc.run().finished
            channel_id = sync_channel(web, books_id)

            # The dashboard's last run: documents queued for the Web Connector, not "0 posted".
            dashboard = html.fromstring(web.client.get("/").text)
            [card] = dashboard.xpath(f'//section[@id="channel-{channel_id}"]')
            [summary] = card.xpath('.//*[contains(@class, "last-run-desktop")]')
            with web.app.db.session() as session:
                planned = session.scalar(select(func.count(Posting.id)).where(Posting.books_id == books_id))
            assert f"{planned} documents {QUEUED}" in text(summary)
            assert " posted ·" not in text(card)

            # The Web Connector creates the customers and items we queued, then the documents.
            drain(wc)
            with web.app.db.session() as session:
                created = session.scalar(
                    select(func.count(QbdListEntry.id)).where(
                        QbdListEntry.books_id == books_id, QbdListEntry.list.in_(("customer", "item"))
                    )
                )
                before = session.scalar(select(func.count(Posting.id)).where(Posting.books_id == books_id))
            assert created

            # Every order edited in Shopify in a way QuickBooks does not show: new revisions, no update.
            for order_id in list(web.shop.orders)[:15]:
                web.shop.update_order(order_id, {"note": "gift wrap, please"})
            again = web.app.engine().run(channel_id)
            assert again.error == ""
            assert again.counts["orders_changed"] >= 10
            with web.app.db.session() as session:
                updates = session.scalars(
                    select(Posting).where(Posting.books_id == books_id, Posting.operation != "create")
                ).all()
                after = session.scalar(select(func.count(Posting.id)).where(Posting.books_id == books_id))
            assert [(p.order_id, p.kind, p.operation) for p in updates] == []
            assert after == before
        finally:
            wc.close()


def test_schedule_goes_into_the_qwc_file_and_the_overdue_alert(web: Web) -> None:
    signup(web.client, "sched@shop.test", "Sched Shop")
    books_id = create_desktop(web)
    token = csrf(web.client, f"/connections/{books_id}")

    detail = html.fromstring(web.client.get(f"/connections/{books_id}").text)
    [field] = detail.xpath('//input[@name="run_every_minutes"]')
    assert (field.get("value"), field.get("min"), field.get("max")) == ("15", "1", "1440")

    for bad in ("0", "1441", "ten", "", "-5", "2.5"):
        refused = web.client.post(
            f"/connections/{books_id}/schedule", data={"run_every_minutes": bad, "csrf_token": token}
        )
        assert refused.status_code == 422, bad
        assert "a whole number of minutes from 1 to 1440" in refused.text

    saved = web.client.post(
        f"/connections/{books_id}/schedule",
        data={"run_every_minutes": "60", "csrf_token": token},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    page = web.client.get(saved.headers["location"])
    assert "now runs every 60 minutes" in page.text
    assert "60 minutes" in text(html.fromstring(page.text).xpath('//dd[@class="run-every"]')[0])

    qwc = ET.fromstring(web.client.get(f"/connections/{books_id}/qwc").text)  # noqa: S314 - our own app's output
    assert qwc.findtext("Scheduler/RunEveryNMinutes") == "60"

    # Another company cannot change it.
    other = web.new_client()
    signup(other, "other@shop.test", "Other Shop")
    foreign = other.post(
        f"/connections/{books_id}/schedule",
        data={"run_every_minutes": "5", "csrf_token": csrf(other, "/connections")},
    )
    assert foreign.status_code == 404

    # The dashboard measures "overdue" against this schedule: 61 minutes late is one missed run, not two.
    def alert_after(minutes: int) -> list[html.HtmlElement]:
        with web.app.db.session() as session:
            row = session.get(QbdCompanyFile, books_id) or QbdCompanyFile(books_id=books_id, last_error="")
            row.last_contact_at = datetime.now(UTC) - timedelta(minutes=minutes)
            session.add(row)
        page = html.fromstring(web.client.get("/").text)
        [panel] = page.xpath(f'//section[@id="desktop-{books_id}"]')
        assert "every 60 minutes" in text(panel)
        return list(panel.xpath('.//*[contains(@class, "desktop-overdue")]'))

    assert alert_after(61) == []
    assert alert_after(2 * 15 + 1) == []
    [alert] = alert_after(2 * 60 + 1)
    assert "every 60 minutes" in text(alert)


def test_products_settings_offer_the_desktop_items(web: Web) -> None:
    signup(web.client, "items@shop.test", "Items Shop")
    books_id = create_desktop(web)
    qb = QbdCompany()
    with serve(create_app(web.app)) as server:
        wc = WebConnector(f"{server.base_url}/qbwc?wsdl", qb, user_name=USER, password=PASSWORD)
        try:
            assert wc.run().finished
        finally:
            wc.close()
    connect_shopify(web, web.client)
    with web.app.db.session() as session:
        channel_id = session.scalars(select(Connection.id).where(Connection.kind == "shopify")).one()
        items = sorted(
            session.scalars(
                select(QbdListEntry.full_name).where(
                    QbdListEntry.books_id == books_id, QbdListEntry.list == "item", QbdListEntry.is_active.is_(True)
                )
            )
        )
    assert items

    for path in (f"/settings/{channel_id}/products", f"/wizard/products?connection={channel_id}"):
        answer = web.client.get(path)
        assert answer.status_code == 200, path
        page = html.fromstring(answer.text)
        [names] = page.xpath('//datalist[@id="item-names"]')
        assert sorted(o.get("value") for o in names.xpath("./option")) == items, path
        for field in ("shipping_item_name", "discount_item_name", "adjust_item_name", "items.sku_map.0.item"):
            [box] = page.xpath(f'//input[@name="{field}"]')
            assert box.get("list") == "item-names", (path, field)
