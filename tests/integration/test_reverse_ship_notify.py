"""SHIP_NOTIFY end to end over real HTTP: ShipStation's sandbox subscribes our address, buys a label and POSTs the
webhook to the running web app; the queued job writes tracking and the label cost onto the QuickBooks sale."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from ledgerlink.bootstrap import App, bootstrap
from ledgerlink.config import Settings
from ledgerlink.domain.reverse import FromBooksSettings, order_key
from ledgerlink.sandbox.demo_reverse import MANUAL_STORE_ID, SaleLine, create_sale, setup_reverse_company
from ledgerlink.sandbox.qbo import QboLimits, QboSandbox
from ledgerlink.sandbox.server import RunningServer, serve
from ledgerlink.sandbox.shipstation import ShipStationSandbox
from ledgerlink.store.models import Connection, ReverseShipment, SyncJob
from ledgerlink.sync.jobs import drain
from ledgerlink.sync.reverse import ReverseSync
from ledgerlink.sync.shipstation_webhooks import ensure_registered

pytestmark = pytest.mark.integration

HAT = SaleLine("Red Hat", 3, Decimal("19.99"))


@dataclass
class Stack:
    app: App
    qbo: QboSandbox
    ss: ShipStationSandbox
    connection_id: int
    servers: list[RunningServer]

    def order(self, entity: str, sale: dict[str, Any]) -> dict[str, Any]:
        key = order_key(self.qbo.realm_id, entity, str(sale["Id"]))
        return next(o for o in self.ss.orders.values() if o["orderKey"] == key)

    def jobs(self) -> list[SyncJob]:
        with self.app.db.session(readonly=True) as session:
            return list(session.scalars(select(SyncJob).order_by(SyncJob.id)))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def stack_factory(tmp_path: Path) -> Iterator[Any]:
    made: list[Stack] = []

    def build(db_url: str, from_books: FromBooksSettings) -> Stack:
        qbo = QboSandbox(limits=QboLimits(time_scale=60.0))
        ss = ShipStationSandbox(time_scale=60.0)
        qbo_server, ss_server = serve(qbo.app), serve(ss.app)
        ss.base_url = ss_server.base_url
        port = _free_port()
        settings = Settings(
            env="test",
            data_dir=tmp_path,
            database_url=db_url,  # type: ignore[arg-type,unused-ignore]
            secret_key="ship-notify-secret",  # type: ignore[arg-type,unused-ignore]
            public_url=f"http://127.0.0.1:{port}",  # type: ignore[arg-type,unused-ignore]
        )
        app = bootstrap(settings, throttle_wait=0.2, retry_backoff=0.05)
        from ledgerlink.web.app import create_app

        web_server = serve(create_app(app), port=port)
        conn_id = setup_reverse_company(app, qbo, qbo_server.base_url, ss, ss_server.base_url, from_books)
        stack = Stack(app, qbo, ss, conn_id, [web_server, qbo_server, ss_server])
        made.append(stack)
        return stack

    yield build
    for stack in made:
        for server in stack.servers:
            server.stop()
        stack.app.db.dispose()


def test_ship_notify_over_http_writes_tracking_and_cost_once(stack_factory: Any, db_url: str) -> None:
    stack: Stack = stack_factory(db_url, FromBooksSettings(store_id=MANUAL_STORE_ID, write_shipping_cost=True))
    assert ensure_registered(stack.app, stack.connection_id) == ""
    with stack.app.db.session(readonly=True) as session:
        token = session.get_one(Connection, stack.connection_id).config["ship_notify_token"]
    [hook] = stack.ss.webhooks
    assert (hook["event"], hook["store_id"]) == ("SHIP_NOTIFY", MANUAL_STORE_ID)
    assert hook["target_url"].endswith(f"/webhooks/shipstation/{token}")
    assert ensure_registered(stack.app, stack.connection_id) == ""  # registered once
    assert len(stack.ss.webhooks) == 1

    sale = create_sale(stack.qbo, "SalesReceipt", "R-77", [HAT], shipping=Decimal("6.00"))
    sync = ReverseSync(stack.app.db, stack.app.adapters)
    assert sync.push(stack.connection_id).counts["created"] == 1  # only the send: no shipments poll
    order = stack.order("SalesReceipt", sale)
    label = stack.ss.create_label_for_order(
        {"orderId": order["orderId"], "carrierCode": "ups", "serviceCode": "ups_ground"}
    )
    assert Decimal(str(label["shipmentCost"])) == Decimal("10.60")  # the sandbox's 8.95 + 3 × 0.55

    [delivery] = stack.ss.deliver("SHIP_NOTIFY", [order["orderId"]])
    assert delivery.status == 200
    [job] = stack.jobs()
    assert (job.trigger, job.state) == ("webhook", "queued")
    assert drain(stack.app) == 1
    assert stack.jobs()[0].state == "done", stack.jobs()[0].error

    doc = stack.qbo.entity("SalesReceipt", str(sale["Id"]))
    assert doc["TrackingNum"] == label["trackingNumber"]
    assert doc["ShipMethodRef"]["value"] == "ups ups_ground"
    line = f"ShipStation shipment {label['shipmentId']}: shipping cost 10.60 (ups ups_ground, {label['shipDate']})"
    assert doc["PrivateNote"].endswith(line)
    assert Decimal(str(doc["TotalAmt"])) == Decimal(str(sale["TotalAmt"]))  # the cost is not added to the sale
    token_after = doc["SyncToken"]

    # ShipStation retries the same delivery: recorded once, nothing queued.
    again = httpx.post(delivery.target_url, json=delivery.body, timeout=10)
    assert again.json() == {"status": "duplicate"}
    # A new delivery about the same shipment, then the scheduled poll: the shipment is known, nothing written.
    stack.ss.deliver("SHIP_NOTIFY", [order["orderId"]])
    assert drain(stack.app) == 1
    assert sync.run(stack.connection_id).counts["shipments_written"] == 0
    doc = stack.qbo.entity("SalesReceipt", str(sale["Id"]))
    assert doc["SyncToken"] == token_after
    assert doc["PrivateNote"].count(f"ShipStation shipment {label['shipmentId']}:") == 1
    with stack.app.db.session(readonly=True) as session:
        assert [s.state for s in session.scalars(select(ReverseShipment))] == ["written"]


def test_cost_only_write_back_and_a_shipment_without_a_label(stack_factory: Any, db_url: str) -> None:
    settings = FromBooksSettings(store_id=MANUAL_STORE_ID, write_tracking=False, write_shipping_cost=True)
    stack: Stack = stack_factory(db_url, settings)
    labelled = create_sale(stack.qbo, "Invoice", "I-81", [HAT])
    marked = create_sale(stack.qbo, "Invoice", "I-82", [HAT])
    sync = ReverseSync(stack.app.db, stack.app.adapters)
    assert sync.push(stack.connection_id).counts["created"] == 2
    stack.ss.create_label_for_order(
        {"orderId": stack.order("Invoice", labelled)["orderId"], "carrierCode": "usps", "serviceCode": "usps_priority"}
    )
    # Marked shipped outside ShipStation: no label, no cost; with tracking off there is nothing to write.
    stack.ss.mark_as_shipped({"orderId": stack.order("Invoice", marked)["orderId"], "carrierCode": "ups"})
    report = sync.poll_shipments(stack.connection_id)
    assert report.ok, (report.error, report.failures)
    assert (report.counts["shipments_written"], report.counts["shipments_not_written"]) == (1, 1)
    doc = stack.qbo.entity("Invoice", str(labelled["Id"]))
    assert "TrackingNum" not in doc or not doc["TrackingNum"]
    assert "shipping cost 6.00 (usps usps_priority" in doc["PrivateNote"]
    untouched = stack.qbo.entity("Invoice", str(marked["Id"]))
    assert untouched["SyncToken"] == marked["SyncToken"]
