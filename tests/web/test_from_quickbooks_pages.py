"""Orders from QuickBooks to ShipStation in the web app: the wizard steps and the Settings page as real forms,
"Test with one sale", and the SHIP_NOTIFY webhook route (against the QuickBooks and ShipStation sandboxes)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from webtools import Web, connect_qbo, connect_shopify, csrf, signup

from ledgerlink.domain.reverse import FromBooksSettings, SaleType, order_key
from ledgerlink.domain.settings import SyncDirection
from ledgerlink.sandbox.demo_reverse import MANUAL_STORE_ID, SaleLine, create_sale
from ledgerlink.sandbox.server import RunningServer, serve
from ledgerlink.sandbox.shipstation import ShipStationSandbox
from ledgerlink.store.models import Connection, SyncJob, WebhookReceipt
from ledgerlink.sync.engine import load_settings
from ledgerlink.sync.jobs import drain

pytestmark = pytest.mark.integration

MUG = SaleLine("Coffee Mug", 1, Decimal("10.99"))


@dataclass
class Reverse:
    web: Web
    ss: ShipStationSandbox
    ss_server: RunningServer
    channel: int

    @property
    def client(self) -> TestClient:
        return self.web.client

    def post(self, path: str, data: dict[str, Any]) -> Any:
        token = csrf(self.client, "/signin")
        return self.client.post(path, data={**data, "csrf_token": token}, follow_redirects=False)

    def settings(self) -> FromBooksSettings:
        with self.web.app.db.session(readonly=True) as session:
            return load_settings(session, self.channel).from_books

    def connection(self) -> Connection:
        with self.web.app.db.session(readonly=True) as session:
            return session.get_one(Connection, self.channel)

    def class_id(self, name: str) -> str:
        return next(str(c["Id"]) for c in self.web.qbo.entities("Class") if c["Name"] == name)


@pytest.fixture
def reverse(web: Web) -> Iterator[Reverse]:
    ss = ShipStationSandbox(time_scale=60.0)
    server = serve(ss.app)
    ss.base_url = server.base_url
    try:
        signup(web.client, "ship@shop.test", "Reverse Shop")
        connect_qbo(web, web.client)
        answer = web.client.post(
            "/connections/shipstation",
            data={
                "api_key": ss.api_key,
                "api_secret": ss.api_secret,
                "base_url": server.base_url,
                "csrf_token": csrf(web.client, "/connections"),
            },
            follow_redirects=False,
        )
        assert answer.status_code == 303, answer.text
        channel = int(answer.headers["location"].rsplit("/", 1)[1])
        yield Reverse(web, ss, server, channel)
    finally:
        server.stop()


FULL_FORM: dict[str, Any] = {
    "direction": "from_quickbooks",
    "from_books.store_id": str(MANUAL_STORE_ID),
    "from_books.transaction_types": ["Invoice", "Estimate"],
    "from_books.write_shipping_cost": "on",
}


def options_of(html: str, name: str) -> dict[str, str]:
    select_html = re.search(rf'<select name="{re.escape(name)}"[^>]*>(.*?)</select>', html, re.S)
    assert select_html, f"no select {name}"
    return dict(re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select_html[1]))


def test_settings_page_saves_every_choice_and_registers_the_ship_notify_webhook(reverse: Reverse) -> None:
    page = reverse.client.get(f"/settings/{reverse.channel}/from-quickbooks")
    assert page.status_code == 200
    stores = options_of(page.text, "from_books.store_id")
    assert stores[str(MANUAL_STORE_ID)] == "Manual Orders (ShipStation)"
    assert "Amazon US (Amazon)" in stores.values()
    classes = options_of(page.text, "from_books.class_ids")
    online = reverse.class_id("Online Store")
    assert classes[online] == "Online Store"
    sales_order = re.search(
        r'<input type="checkbox" name="from_books.transaction_types" value="SalesOrder"[^>]*>', page.text
    )
    assert sales_order
    assert "disabled" in sales_order[0]

    saved = reverse.post(
        f"/settings/{reverse.channel}/from-quickbooks", {**FULL_FORM, "from_books.class_ids": [online]}
    )
    assert saved.status_code == 303, saved.text
    fb = reverse.settings()
    assert fb.store_id == MANUAL_STORE_ID
    assert fb.transaction_types == [SaleType.INVOICE, SaleType.ESTIMATE]
    assert fb.class_ids == [online]
    assert (fb.write_tracking, fb.write_shipping_cost) == (False, True)

    conn = reverse.connection()
    token = conn.config["ship_notify_token"]
    assert [(h["event"], h["store_id"], h["target_url"]) for h in reverse.ss.webhooks] == [
        ("SHIP_NOTIFY", MANUAL_STORE_ID, f"http://testserver/webhooks/shipstation/{token}")
    ]
    assert conn.config["ship_notify_hook"] == reverse.ss.webhooks[0]["id"]
    shown = reverse.client.get(f"/settings/{reverse.channel}/from-quickbooks").text
    assert f"subscription {conn.config['ship_notify_hook']}" in shown
    assert "data-test-result" not in shown
    assert "Test with one sale" in shown

    # Another store moves the subscription; saving again changes nothing at ShipStation.
    other = {**FULL_FORM, "from_books.store_id": "310201"}
    assert reverse.post(f"/settings/{reverse.channel}/from-quickbooks", other).status_code == 303
    assert reverse.post(f"/settings/{reverse.channel}/from-quickbooks", other).status_code == 303
    assert [(h["store_id"], h["target_url"].endswith(token)) for h in reverse.ss.webhooks] == [(310201, True)]


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"from_books.transaction_types": []}, "from_books.transaction_types", "at least one"),
        (
            {"from_books.transaction_types": ["SalesOrder"]},
            "from_books.transaction_types",
            "only in QuickBooks Desktop",
        ),
        ({"from_books.class_ids": ["999"]}, "from_books.class_ids", "no class with id 999"),
        ({"from_books.store_id": "123"}, "from_books.store_id", "no store 123"),
        ({"from_books.store_id": "Amazon"}, "from_books.store_id", "Choose a ShipStation store"),
    ],
)
def test_bad_choices_are_named_next_to_their_field_and_nothing_is_saved(
    reverse: Reverse, change: dict[str, Any], field: str, words: str
) -> None:
    before = reverse.settings()
    answer = reverse.post(f"/settings/{reverse.channel}/from-quickbooks", {**FULL_FORM, **change})
    assert answer.status_code == 422
    message = re.search(rf'<p class="field-error" data-field="{re.escape(field)}">([^<]*)</p>', answer.text)
    assert message, answer.text[-2000:]
    assert words in message[1]
    assert reverse.settings() == before
    assert reverse.ss.webhooks == []


def test_the_wizard_steps_are_forms_and_finishing_queues_the_first_pass(reverse: Reverse) -> None:
    q = f"?connection={reverse.channel}"
    assert reverse.post(f"/wizard/direction{q}", {"direction": "from_quickbooks"}).headers["location"] == (
        f"/wizard/pair{q}"
    )
    assert [h["store_id"] for h in reverse.ss.webhooks] == [None]  # every store, until one is chosen
    pair = reverse.client.get(f"/wizard/pair{q}")
    assert "Etsy: Céramique Studio (Etsy)" in options_of(pair.text, "from_books.store_id").values()
    assert reverse.post(f"/wizard/pair{q}", {"from_books.store_id": "310203"}).status_code == 303
    assert [h["store_id"] for h in reverse.ss.webhooks] == [310203]
    retail = reverse.class_id("Retail")
    sales = {"from_books.transaction_types": ["SalesReceipt"], "from_books.class_ids": [retail]}
    assert reverse.post(f"/wizard/sales{q}", sales).headers["location"] == f"/wizard/tracking{q}"
    assert reverse.post(f"/wizard/sales{q}", {"from_books.transaction_types": []}).status_code == 422
    tracking = {"from_books.write_tracking": "on", "from_books.write_shipping_cost": "on"}
    assert reverse.post(f"/wizard/tracking{q}", tracking).headers["location"] == f"/wizard/test{q}"
    fb = reverse.settings()
    assert (fb.store_id, fb.transaction_types, fb.class_ids) == (310203, [SaleType.SALES_RECEIPT], [retail])
    assert fb.write_tracking
    assert fb.write_shipping_cost

    summary = reverse.client.get(f"/wizard/account{q}").text
    assert "Sales Receipts of the classes Retail are sent" in summary
    assert "tracking numbers and the label cost are written on the QuickBooks sale" in summary
    done = reverse.post(f"/wizard/account{q}", {"notify_email": ""})
    assert done.status_code == 303
    with reverse.web.app.db.session(readonly=True) as session:
        job = session.scalars(select(SyncJob).where(SyncJob.connection_id == reverse.channel)).one()
        assert (job.trigger, job.state) == ("wizard", "queued")


def test_test_with_one_sale_sends_it_and_says_what_happened(reverse: Reverse) -> None:
    q = f"?connection={reverse.channel}"
    reverse.post(f"/wizard/direction{q}", {"direction": "from_quickbooks"})
    qbo = reverse.web.qbo
    sale = create_sale(qbo, "Invoice", "T-100", [MUG], class_name="Online Store")
    retail_only = create_sale(qbo, "SalesReceipt", "T-101", [MUG], class_name="Retail")
    reverse.post(
        f"/settings/{reverse.channel}/from-quickbooks",
        {
            **FULL_FORM,
            "from_books.transaction_types": ["Invoice", "SalesReceipt"],
            "from_books.class_ids": [reverse.class_id("Online Store")],
        },
    )

    sent = reverse.post(f"/wizard/test/send{q}", {"test_entity": "Invoice", "test_number": "T-100"})
    assert sent.status_code == 200
    assert 'data-test-result="ok"' in sent.text
    assert "Invoice T-100 was created in ShipStation as awaiting payment." in sent.text
    [order] = reverse.ss.orders.values()
    assert order["orderKey"] == order_key(qbo.realm_id, "Invoice", str(sale["Id"]))
    assert order["advancedOptions"]["storeId"] == MANUAL_STORE_ID
    assert f"ShipStation order {order['orderId']}" in sent.text

    again = reverse.post(
        f"/settings/{reverse.channel}/from-quickbooks/test", {"test_entity": "Invoice", "test_number": "T-100"}
    )
    assert "Invoice T-100 is already in ShipStation (awaiting payment), unchanged since it was sent." in again.text
    assert len(reverse.ss.orders) == 1

    filtered = reverse.post(f"/wizard/test/send{q}", {"test_entity": "SalesReceipt", "test_number": "T-101"})
    assert 'data-test-result="failed"' in filtered.text
    assert "Sales receipt T-101 was not sent: its type or QuickBooks class is not one of those chosen." in filtered.text
    missing = reverse.post(f"/wizard/test/send{q}", {"test_entity": "Estimate", "test_number": "NOPE-1"})
    assert "QuickBooks has no estimate numbered NOPE-1." in missing.text
    assert len(reverse.ss.orders) == 1
    assert retail_only["DocNumber"] == "T-101"


def test_ship_notify_route_checks_dedupes_and_queues_the_write_back(reverse: Reverse) -> None:
    q = f"?connection={reverse.channel}"
    reverse.post(f"/wizard/direction{q}", {"direction": "from_quickbooks"})
    token = reverse.connection().config["ship_notify_token"]
    url = f"/webhooks/shipstation/{token}"
    base = reverse.ss_server.base_url
    body = {"resource_url": f"{base}/shipments?batchId=abc&includeShipmentItems=False", "resource_type": "SHIP_NOTIFY"}
    client = reverse.web.new_client()  # no session, no CSRF: the address token is the credential

    assert client.post("/webhooks/shipstation/not-a-token", json=body).status_code == 401
    assert client.post(url, content=b"{not json").status_code == 400
    assert client.post(url, json={"resource_type": "SHIP_NOTIFY"}).status_code == 400
    elsewhere = {**body, "resource_url": "https://attacker.example/shipments?batchId=1"}
    assert client.post(url, json=elsewhere).status_code == 400
    assert client.post(url, json={**body, "resource_type": "ORDER_NOTIFY"}).json()["status"] == "ignored"

    first = client.post(url, json=body)
    assert first.status_code == 200
    assert first.json()["status"] == "queued"
    assert client.post(url, content=json.dumps(body).encode()).json() == {"status": "duplicate"}
    with reverse.web.app.db.session(readonly=True) as session:
        jobs = session.scalars(select(SyncJob).where(SyncJob.connection_id == reverse.channel)).all()
        assert [(j.trigger, j.options) for j in jobs] == [("webhook", {"ship_notify": body["resource_url"]})]
        receipts = session.scalars(select(WebhookReceipt)).all()
        assert [(r.topic, r.job_id) for r in receipts] == [("SHIP_NOTIFY", jobs[0].id)]
    # The job runs the webhook's read (an unknown batch lists no shipments): done, nothing written.
    assert drain(reverse.web.app) == 1
    with reverse.web.app.db.session(readonly=True) as session:
        assert session.get_one(SyncJob, jobs[0].id).state == "done"

    # Turned back to orders into QuickBooks: deliveries are recorded and ignored.
    reverse.post(f"/settings/{reverse.channel}/from-quickbooks", {**FULL_FORM, "direction": "to_quickbooks"})
    assert load_direction(reverse) is SyncDirection.TO_BOOKS
    later = {**body, "resource_url": f"{base}/shipments?batchId=def"}
    assert client.post(url, json=later).json()["status"] == "ignored"


def load_direction(reverse: Reverse) -> SyncDirection:
    with reverse.web.app.db.session(readonly=True) as session:
        return load_settings(session, reverse.channel).direction


def test_a_shopify_channel_keeps_only_the_direction_on_that_page(reverse: Reverse) -> None:
    connect_shopify(reverse.web, reverse.client)
    with reverse.web.app.db.session(readonly=True) as session:
        shop = session.scalars(select(Connection).where(Connection.kind == "shopify")).one().id
    page = reverse.client.get(f"/settings/{shop}/from-quickbooks")
    assert "from_books.store_id" not in page.text
    assert "Only ShipStation takes sales from QuickBooks" in page.text
    kept = reverse.post(f"/settings/{shop}/from-quickbooks", {"direction": "to_quickbooks", "push_stock_levels": "on"})
    assert kept.status_code == 303
    with reverse.web.app.db.session(readonly=True) as session:
        assert load_settings(session, shop).push_stock_levels is True
    refused = reverse.post(f"/settings/{shop}/from-quickbooks", {"direction": "from_quickbooks"})
    assert refused.status_code == 422
    assert 'data-field="direction"' in refused.text


def test_statuses_ship_via_shipping_items_and_first_sync_days_are_edited_on_the_pages(reverse: Reverse) -> None:
    path = f"/settings/{reverse.channel}/from-quickbooks"
    page = reverse.client.get(path).text
    assert options_of(page, "from_books.paid_status") == {
        "awaiting_payment": "Awaiting Payment",
        "awaiting_shipment": "Awaiting Shipment",
        "on_hold": "On Hold",
    }
    assert re.search(r'name="from_books.first_sync_days"[^>]*value="7"', page)
    form = {
        **FULL_FORM,
        "from_books.paid_status": "on_hold",
        "from_books.balance_due_status": "awaiting_shipment",
        "from_books.ship_via.0.ship_via": "UPS Ground",
        "from_books.ship_via.0.service": "UPS® Ground",
        "from_books.ship_via.1.ship_via": "",
        "from_books.ship_via.1.service": "",
        "from_books.ship_via.2.ship_via": "Fed Ex",
        "from_books.ship_via.2.service": "FedEx Home Delivery®",
        "from_books.default_service": "Standard",
        "from_books.shipping_item_names": "Shipping\r\nFreight & Handling\r\n\r\nshipping",
        "from_books.first_sync_days": "30",
    }
    assert reverse.post(path, form).status_code == 303
    fb = reverse.settings()
    assert (fb.paid_status.value, fb.balance_due_status.value) == ("on_hold", "awaiting_shipment")
    assert fb.ship_via_services == {"UPS Ground": "UPS® Ground", "Fed Ex": "FedEx Home Delivery®"}
    assert fb.default_service == "Standard"
    assert fb.shipping_item_names == ["Shipping", "Freight & Handling"]
    assert fb.first_sync_days == 30
    shown = reverse.client.get(path).text
    assert 'value="FedEx Home Delivery®"' in shown
    assert "Freight &amp; Handling</textarea>" in shown

    # Removing a row drops its mapping; the wizard's Pair step, posting only the store, keeps the rest.
    removed = {**form, "from_books.ship_via.0.remove": "1"}
    assert reverse.post(path, removed).status_code == 303
    assert reverse.settings().ship_via_services == {"Fed Ex": "FedEx Home Delivery®"}
    q = f"?connection={reverse.channel}"
    assert reverse.post(f"/wizard/pair{q}", {"from_books.store_id": "310203"}).status_code == 303
    kept = reverse.settings()
    assert (kept.store_id, kept.paid_status.value, kept.ship_via_services) == (
        310203,
        "on_hold",
        {"Fed Ex": "FedEx Home Delivery®"},
    )
    wizard_sales = reverse.client.get(f"/wizard/sales{q}").text
    assert re.search(r'name="from_books.first_sync_days"[^>]*value="30"', wizard_sales)
    summary = reverse.client.get(f"/wizard/account{q}").text
    assert "as On Hold (Awaiting Shipment while an invoice has a balance due). Mapped ship via: Fed Ex." in summary


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"from_books.paid_status": "shipped"}, "from_books.paid_status", "Awaiting Shipment"),
        ({"from_books.balance_due_status": ""}, "from_books.balance_due_status", "statuses ShipStation creates"),
        (
            {"from_books.ship_via.0.ship_via": "UPS", "from_books.ship_via.0.service": ""},
            "from_books.ship_via.0.service",
            "Enter the ShipStation service",
        ),
        (
            {"from_books.ship_via.0.ship_via": "", "from_books.ship_via.0.service": "Ground"},
            "from_books.ship_via.0.ship_via",
            "Enter the QuickBooks ship via",
        ),
        (
            {
                "from_books.ship_via.0.ship_via": "UPS",
                "from_books.ship_via.0.service": "Ground",
                "from_books.ship_via.1.ship_via": "ups",
                "from_books.ship_via.1.service": "Air",
            },
            "from_books.ship_via.1.ship_via",
            "already mapped in row 1",
        ),
        ({"from_books.default_service": "x" * 101}, "from_books.default_service", "At most 100"),
        ({"from_books.shipping_item_names": "Shipping\n" + "y" * 101}, "from_books.shipping_item_names", "Line 2"),
        ({"from_books.first_sync_days": "31"}, "from_books.first_sync_days", "from 0 to 30"),
        ({"from_books.first_sync_days": "a week"}, "from_books.first_sync_days", "whole number of days"),
    ],
)
def test_bad_options_are_named_next_to_their_field(
    reverse: Reverse, change: dict[str, Any], field: str, words: str
) -> None:
    before = reverse.settings()
    answer = reverse.post(f"/settings/{reverse.channel}/from-quickbooks", {**FULL_FORM, **change})
    assert answer.status_code == 422
    message = re.search(rf'<p class="field-error" data-field="{re.escape(field)}">([^<]*)</p>', answer.text)
    assert message, answer.text[-2000:]
    assert words in message[1]
    assert reverse.settings() == before
