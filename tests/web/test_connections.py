"""Connections: QuickBooks Online OAuth, Shopify and ShipStation live checks, QuickBooks Desktop pairing."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse
from xml.etree import ElementTree as ET

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import func, select
from webtools import Web, connect_qbo, connect_shopify, csrf, signup

from ledgerlink.sandbox.server import RunningServer, serve
from ledgerlink.store.models import Connection, Posting, SettingsRevision, StoredOrder
from ledgerlink.web.security import verify_password

pytestmark = pytest.mark.integration

SS_KEY, SS_SECRET = "ss-key", "ss-secret"


def _shipstation_stub() -> FastAPI:
    """A stand-in for ShipStation's /stores, with HTTP Basic auth."""
    stub = FastAPI()

    @stub.get("/stores")
    def stores(request: Request) -> JSONResponse:
        expected = "Basic " + base64.b64encode(f"{SS_KEY}:{SS_SECRET}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return JSONResponse({"message": "Unauthorized"}, status_code=401)
        return JSONResponse([{"storeId": 1, "storeName": "Main"}, {"storeId": 2, "storeName": "Etsy"}])

    return stub


@pytest.fixture
def shipstation() -> Iterator[RunningServer]:
    server = serve(_shipstation_stub())
    try:
        yield server
    finally:
        server.stop()


def _xml(text: str) -> ET.Element:
    return ET.fromstring(text)  # noqa: S314 - our own app's output


def _connections(web: Web) -> list[Connection]:
    with web.app.db.session() as session:
        return list(session.scalars(select(Connection).order_by(Connection.id)))


def test_empty_page_guides_a_newcomer(web: Web) -> None:
    signup(web.client, "new@shop.test", "New Shop")
    page = web.client.get("/connections")
    assert page.status_code == 200
    assert "Connect QuickBooks" in page.text
    assert "Connect a selling channel" in page.text
    assert 'href="/wizard"' in page.text


def test_qbo_oauth_flow_stores_the_connection(web: Web) -> None:
    signup(web.client, "q@shop.test", "Q Shop")
    connect_qbo(web, web.client)
    [conn] = _connections(web)
    assert (conn.kind, conn.role, conn.status) == ("qbo", "books", "ok")
    assert conn.config["realm_id"] == web.qbo.realm_id
    assert conn.config["api_base"] == web.settings.qbo_api_base
    assert conn.config["environment"] == "sandbox"
    secrets = web.app.box.open(conn.secrets)
    assert {"client_secret", "access_token", "refresh_token"} <= set(secrets)
    page = web.client.get("/connections")
    assert f"Connected to QuickBooks company {web.qbo.company.company_info['CompanyName']}" in page.text
    assert "QuickBooks Online" in page.text
    # Connecting again updates the same connection rather than adding a second.
    connect_qbo(web, web.client)
    assert len(_connections(web)) == 1
    assert "Reconnected to QuickBooks company" in web.client.get("/connections").text


def test_qbo_authorize_redirect_has_the_oauth_parameters(web: Web) -> None:
    signup(web.client, "p@shop.test", "P Shop")
    token = csrf(web.client, "/connections")
    start = web.client.post("/connections/qbo/connect", data={"csrf_token": token}, follow_redirects=False)
    assert start.status_code == 303
    target = urlparse(start.headers["location"])
    query = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert start.headers["location"].startswith(web.settings.qbo_authorize_url)
    assert query["client_id"] == web.settings.qbo_client_id
    assert query["response_type"] == "code"
    assert query["scope"] == "com.intuit.quickbooks.accounting"
    assert query["redirect_uri"] == "http://testserver/connections/qbo/callback"
    assert len(query["state"]) >= 20


def test_tampered_oauth_state_is_refused(web: Web) -> None:
    signup(web.client, "t@shop.test", "T Shop")
    token = csrf(web.client, "/connections")
    web.client.post("/connections/qbo/connect", data={"csrf_token": token}, follow_redirects=False)
    answer = web.client.get(
        "/connections/qbo/callback", params={"code": "x", "state": "forged", "realmId": "1"}, follow_redirects=False
    )
    assert answer.status_code == 400
    assert "did not match" in answer.text
    assert _connections(web) == []
    # Without any started flow, a callback is refused too.
    again = web.client.get("/connections/qbo/callback", params={"code": "x", "state": "", "realmId": "1"})
    assert again.status_code == 400


def test_cancelled_consent_stores_nothing(web: Web) -> None:
    signup(web.client, "c@shop.test", "C Shop")
    token = csrf(web.client, "/connections")
    start = web.client.post("/connections/qbo/connect", data={"csrf_token": token}, follow_redirects=False)
    state = parse_qs(urlparse(start.headers["location"]).query)["state"][0]
    answer = web.client.get("/connections/qbo/callback", params={"error": "access_denied", "state": state})
    assert answer.status_code == 200
    assert "you cancelled" in answer.text
    assert _connections(web) == []


def test_needs_reconnect_banner(web: Web) -> None:
    signup(web.client, "r@shop.test", "R Shop")
    connect_qbo(web, web.client)
    with web.app.db.session() as session:
        conn = session.scalars(select(Connection)).one()
        conn.status, conn.status_detail = "needs_reconnect", "QuickBooks Online refused the refresh token"
    page = web.client.get("/connections")
    assert "QuickBooks needs reconnecting" in page.text
    assert 'action="/connections/qbo/connect"' in page.text
    connect_qbo(web, web.client)
    assert _connections(web)[0].status == "ok"
    assert "QuickBooks needs reconnecting" not in web.client.get("/connections").text


def test_qbo_disconnect_forgets_tokens(web: Web) -> None:
    signup(web.client, "d@shop.test", "D Shop")
    connect_qbo(web, web.client)
    [conn] = _connections(web)
    token = csrf(web.client, "/connections")
    answer = web.client.post(f"/connections/{conn.id}/disconnect", data={"csrf_token": token}, follow_redirects=False)
    assert answer.status_code == 303
    [after] = _connections(web)
    assert after.status == "disconnected"
    assert "access_token" not in web.app.box.open(after.secrets)


def test_page_explains_missing_qbo_app(web: Web) -> None:
    web.app.settings.qbo_client_id = ""
    signup(web.client, "n@shop.test", "N Shop")
    page = web.client.get("/connections")
    assert "LEDGERLINK_QBO_CLIENT_ID" in page.text
    token = csrf(web.client, "/connections")
    answer = web.client.post("/connections/qbo/connect", data={"csrf_token": token})
    assert "LEDGERLINK_QBO_CLIENT_SECRET" in answer.text


def test_shopify_connect_checks_and_saves_defaults(web: Web) -> None:
    signup(web.client, "s@shop.test", "S Shop")
    form = web.client.get("/connections/shopify")
    # Demo mode prefills the sandbox store so a newcomer only presses Connect.
    assert web.settings.demo_shopify_shop in form.text
    assert "API base URL" in form.text
    connect_qbo(web, web.client)
    connect_shopify(web, web.client)
    books, shop = _connections(web)
    assert (shop.kind, shop.role, shop.name, shop.books_id) == ("shopify", "channel", "shopify", books.id)
    assert web.app.box.open(shop.secrets) == {
        "access_token": web.settings.demo_shopify_token,
        "webhook_secret": web.settings.demo_shopify_webhook_secret,
    }
    assert shop.config["webhook_token"]  # real-time updates registered with the store
    assert len(web.shop.webhooks.subscriptions()) == 5
    with web.app.db.session() as session:
        revision = session.scalars(select(SettingsRevision).where(SettingsRevision.connection_id == shop.id)).one()
        assert revision.changed_by == "s@shop.test"


def test_shopify_redirects_to_the_wizard(web: Web) -> None:
    signup(web.client, "w@shop.test", "W Shop")
    creds = web.shop.credentials(web.shop_server.base_url)
    token = csrf(web.client, "/connections")
    answer = web.client.post(
        "/connections/shopify",
        data={**creds, "csrf_token": token},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    [conn] = _connections(web)
    assert answer.headers["location"] == f"/wizard?connection={conn.id}"
    assert conn.books_id is None
    # QuickBooks connected afterwards: the store posts to it.
    connect_qbo(web, web.client)
    shop = next(c for c in _connections(web) if c.kind == "shopify")
    assert shop.books_id is not None


def test_shopify_wrong_token_is_refused_next_to_the_field(web: Web) -> None:
    signup(web.client, "x@shop.test", "X Shop")
    creds = web.shop.credentials(web.shop_server.base_url)
    token = csrf(web.client, "/connections")
    answer = web.client.post(
        "/connections/shopify",
        data={"shop": creds["shop"], "access_token": "shpat_wrong", "base_url": creds["base_url"], "csrf_token": token},
    )
    assert answer.status_code == 422
    text = answer.text
    message = text.index('<p class="field-error">Shopify refused the token')
    assert text.index('name="access_token"') < message < text.index('name="base_url"')
    assert _connections(web) == []


def test_shopify_validation_and_unreachable_store(web: Web) -> None:
    signup(web.client, "v@shop.test", "V Shop")
    token = csrf(web.client, "/connections")
    bad = web.client.post("/connections/shopify", data={"shop": "example.com", "access_token": "", "csrf_token": token})
    assert bad.status_code == 422
    assert "myshopify.com address" in bad.text
    assert "paste the Admin API access token" in bad.text
    creds = web.shop.credentials(web.shop_server.base_url)
    down = web.client.post(
        "/connections/shopify",
        data={"shop": creds["shop"], "access_token": "t", "base_url": "http://127.0.0.1:9", "csrf_token": token},
    )
    assert down.status_code == 422
    assert "could not reach" in down.text
    assert _connections(web) == []


def test_second_store_gets_a_numbered_name(web: Web) -> None:
    signup(web.client, "m@shop.test", "M Shop")
    connect_shopify(web, web.client)
    creds = web.shop.credentials(web.shop_server.base_url)
    token = csrf(web.client, "/connections")
    twice = web.client.post("/connections/shopify", data={**creds, "csrf_token": token})
    assert twice.status_code == 422
    assert "already connected" in twice.text
    with web.app.db.session() as session:
        shop = session.scalars(select(Connection)).one()
        shop.config = {**shop.config, "shop": "other.myshopify.com"}
    connect_shopify(web, web.client)
    assert [c.name for c in _connections(web)] == ["shopify", "shopify-2"]


def test_shipstation_connect_with_a_live_check(web: Web, shipstation: RunningServer) -> None:
    signup(web.client, "ss@shop.test", "SS Shop")
    page = web.client.get("/connections/shipstation")
    assert "sales entered in QuickBooks Online go to ShipStation" in page.text
    assert "coming release" not in page.text
    token = csrf(web.client, "/connections")
    wrong = web.client.post(
        "/connections/shipstation",
        data={"api_key": SS_KEY, "api_secret": "nope", "base_url": shipstation.base_url, "csrf_token": token},
    )
    assert wrong.status_code == 422
    assert "ShipStation refused" in wrong.text
    assert _connections(web) == []
    ok = web.client.post(
        "/connections/shipstation",
        data={"api_key": SS_KEY, "api_secret": SS_SECRET, "base_url": shipstation.base_url, "csrf_token": token},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    [conn] = _connections(web)
    assert (conn.kind, conn.role) == ("shipstation", "channel")
    assert web.app.box.open(conn.secrets) == {"api_key": SS_KEY, "api_secret": SS_SECRET}
    detail = web.client.get(ok.headers["location"]).text
    assert "2 stores" in detail
    assert "Run the setup wizard to choose the direction" in detail
    assert "coming release" not in detail


def test_channel_disconnect_removes_it(web: Web) -> None:
    signup(web.client, "rm@shop.test", "RM Shop")
    connect_shopify(web, web.client)
    [conn] = _connections(web)
    page = web.client.get(f"/connections/{conn.id}")
    assert "data-confirm" in page.text
    token = csrf(web.client, "/connections")
    web.client.post(f"/connections/{conn.id}/disconnect", data={"csrf_token": token})
    assert _connections(web) == []
    with web.app.db.session() as session:
        assert session.scalar(select(func.count()).select_from(SettingsRevision)) == 0


def test_qbd_pairing_and_qwc_file(web: Web) -> None:
    signup(web.client, "dt@shop.test", "Desk Top")
    page = web.client.get("/connections/qbd")
    assert "ledgerlink-desk-top" in page.text
    token = csrf(web.client, "/connections")
    short = web.client.post(
        "/connections/qbd", data={"user_name": "wc-user", "password": "short", "confirm": "short", "csrf_token": token}
    )
    assert short.status_code == 422
    assert "at least 10 characters" in short.text
    differ = web.client.post(
        "/connections/qbd",
        data={"user_name": "wc-user", "password": "long enough 1", "confirm": "long enough 2", "csrf_token": token},
    )
    assert "the two passwords differ" in differ.text
    made = web.client.post(
        "/connections/qbd",
        data={"user_name": "wc-user", "password": "long enough 1", "confirm": "long enough 1", "csrf_token": token},
        follow_redirects=False,
    )
    assert made.status_code == 303
    [conn] = _connections(web)
    assert (conn.kind, conn.role) == ("qbd", "books")
    stored = web.app.box.open(conn.secrets)
    assert "long enough 1" not in str(stored)
    assert verify_password(stored["password_hash"], "long enough 1")
    detail = web.client.get(made.headers["location"])
    assert "Add an application" in detail.text
    qwc = web.client.get(f"/connections/{conn.id}/qwc")
    assert qwc.status_code == 200
    assert qwc.headers["content-type"].startswith("application/xml")
    assert 'filename="ledgerlink-quickbooks-desktop.qwc"' in qwc.headers["content-disposition"]
    root = _xml(qwc.text)
    assert root.tag == "QBWCXML"
    assert root.findtext("AppName") == "ledgerlink"
    assert root.findtext("AppURL") == "http://testserver/qbwc"
    assert root.findtext("AppSupport") == "http://testserver/support"
    assert root.findtext("UserName") == "wc-user"
    assert root.findtext("QBType") == "QBFS"
    assert root.findtext("Scheduler/RunEveryNMinutes") == "15"
    assert root.findtext("IsReadOnly") == "false"
    owner = root.findtext("OwnerID") or ""
    assert re.fullmatch(r"\{[0-9A-F-]{36}\}", owner)
    # The same GUIDs every time: the Web Connector must not see a new application.
    again = _xml(web.client.get(f"/connections/{conn.id}/qwc").text)
    assert (again.findtext("OwnerID"), again.findtext("FileID")) == (owner, root.findtext("FileID"))
    # One QuickBooks per company.
    second = web.client.post(
        "/connections/qbd",
        data={"user_name": "wc-user-2", "password": "long enough 1", "confirm": "long enough 1", "csrf_token": token},
    )
    assert second.status_code == 422
    assert "one per company" in second.text


def test_qbd_password_change(web: Web) -> None:
    signup(web.client, "pw@shop.test", "PW Shop")
    token = csrf(web.client, "/connections")
    web.client.post(
        "/connections/qbd",
        data={"user_name": "pw-user", "password": "long enough 1", "confirm": "long enough 1", "csrf_token": token},
    )
    [conn] = _connections(web)
    answer = web.client.post(
        f"/connections/{conn.id}/password",
        data={"password": "another one 2", "confirm": "another one 2", "csrf_token": token},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    [after] = _connections(web)
    assert verify_password(web.app.box.open(after.secrets)["password_hash"], "another one 2")


def test_qwc_only_for_desktop(web: Web) -> None:
    signup(web.client, "o@shop.test", "O Shop")
    connect_shopify(web, web.client)
    [conn] = _connections(web)
    assert web.client.get(f"/connections/{conn.id}/qwc").status_code == 404
    assert web.client.get("/connections/999999").status_code == 404


def test_reconnect_to_another_company_is_refused_once_posted(web: Web) -> None:
    signup(web.client, "realm@shop.test", "Realm Shop")
    connect_qbo(web, web.client)
    connect_shopify(web, web.client)
    with web.app.db.session() as session:
        books = session.scalars(select(Connection).where(Connection.role == "books")).one()
        channel = session.scalars(select(Connection).where(Connection.role == "channel")).one()
        books.config = {**books.config, "realm_id": "999"}  # as if first connected to another company
        order = StoredOrder(
            company_id=books.company_id,
            connection_id=channel.id,
            channel_order_id="1",
            number="1001",
            content_hash="x",
            raw={},
        )
        session.add(order)
        session.flush()
        session.add(
            Posting(
                key="realm-1",
                company_id=books.company_id,
                books_id=books.id,
                order_id=order.id,
                revision=1,
                role="sale",
                kind="SalesReceipt",
                document={},
                total=1,
                state="posted",
            )
        )
    connect_qbo(web, web.client)
    assert "different QuickBooks company" in web.client.get("/connections").text
    [books_after] = [c for c in _connections(web) if c.role == "books"]
    assert books_after.config["realm_id"] == "999"
