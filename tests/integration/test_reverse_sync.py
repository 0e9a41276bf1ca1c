"""QuickBooks Online → ShipStation end to end, against both sandboxes over real HTTP, on a real database."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ledgerlink.books.qbo import QboBooks
from ledgerlink.books.qbo.cdc import CdcReader
from ledgerlink.bootstrap import App, bootstrap
from ledgerlink.channels.shipstation_outbound import ShipStationOutbound
from ledgerlink.config import Settings
from ledgerlink.domain.errors import RetryableError
from ledgerlink.domain.reverse import FromBooksSettings, order_key
from ledgerlink.sandbox.demo_reverse import (
    MANUAL_STORE_ID,
    SaleLine,
    create_sale,
    delete_sale,
    edit_sale,
    lines_of,
    run_reverse_demo,
    setup_reverse_company,
    void_sale,
)
from ledgerlink.sandbox.qbo import QboLimits, QboSandbox
from ledgerlink.sandbox.server import RunningServer, serve
from ledgerlink.sandbox.shipstation import Fault, ShipStationSandbox
from ledgerlink.store.models import Connection, ReverseOrder, ReverseShipment, ReverseState
from ledgerlink.sync.reverse import ReverseSync

TEST_SECRET = "test-secret-key"
HAT = SaleLine("Red Hat", 2, Decimal("19.99"))
MUG = SaleLine("Coffee Mug", 1, Decimal("10.99"))


@dataclass
class ReverseStack:
    app: App
    qbo: QboSandbox
    ss: ShipStationSandbox
    servers: list[RunningServer]
    connection_id: int
    sync: ReverseSync

    def key(self, entity: str, sale: dict[str, Any]) -> str:
        return order_key(self.qbo.realm_id, entity, str(sale["Id"]))

    def orders(self) -> dict[str, dict[str, Any]]:
        return {str(o["orderKey"]): o for o in self.ss.orders.values()}

    def create_calls(self) -> list[int]:
        """Statuses of the createorders requests ShipStation answered."""
        return [r.status for r in self.ss.requests if r.path == "/orders/createorders"]

    def rows(self) -> dict[str, ReverseOrder]:
        with self.app.db.session(readonly=True) as session:
            return {r.order_key: r for r in session.scalars(select(ReverseOrder))}

    def ship(self, key: str, tracking: str, carrier: str = "ups") -> None:
        order = self.orders()[key]
        self.ss.mark_as_shipped({"orderId": order["orderId"], "carrierCode": carrier, "trackingNumber": tracking})

    def doc(self, entity: str, sale: dict[str, Any]) -> dict[str, Any]:
        return self.qbo.entity(entity, str(sale["Id"]))


@pytest.fixture
def reverse_factory(tmp_path: Path) -> Iterator[Any]:
    made: list[ReverseStack] = []

    def build(db_url: str, *, rate_limit: int = 40, from_books: FromBooksSettings | None = None) -> ReverseStack:
        qbo = QboSandbox(limits=QboLimits(time_scale=60.0))
        ss = ShipStationSandbox(rate_limit=rate_limit, time_scale=60.0)
        qbo_server, ss_server = serve(qbo.app), serve(ss.app)
        ss.base_url = ss_server.base_url
        settings = Settings(env="test", data_dir=tmp_path, database_url=db_url, secret_key=TEST_SECRET)  # type: ignore[arg-type,unused-ignore]
        app = bootstrap(settings, throttle_wait=0.2, retry_backoff=0.05)
        connection_id = setup_reverse_company(
            app,
            qbo,
            qbo_server.base_url,
            ss,
            ss_server.base_url,
            from_books or FromBooksSettings(store_id=MANUAL_STORE_ID),
        )
        stack = ReverseStack(app, qbo, ss, [qbo_server, ss_server], connection_id, ReverseSync(app.db, app.adapters))
        made.append(stack)
        return stack

    yield build
    for stack in made:
        stack.app.db.dispose()
        for server in stack.servers:
            server.stop()


def test_create_edit_ship_track_void_delete_and_rerun(reverse_factory: Any, db_url: str) -> None:
    stack: ReverseStack = reverse_factory(db_url)
    qbo = stack.qbo
    receipt = create_sale(qbo, "SalesReceipt", "R-1", [HAT, MUG], shipping=Decimal("5.00"), tax=Decimal("2.00"))
    edited = create_sale(qbo, "SalesReceipt", "R-2", [MUG])
    invoice = create_sale(qbo, "Invoice", "I-3", [HAT], customer="Cool Cars")
    voided = create_sale(qbo, "SalesReceipt", "R-4", [MUG])
    deleted = create_sale(qbo, "Invoice", "I-5", [MUG])

    first = stack.sync.run(stack.connection_id)
    assert first.ok, (first.error, first.failures)
    assert first.counts["created"] == 5
    assert stack.create_calls() == [200]
    orders = stack.orders()
    assert len(orders) == 5
    r1 = orders[stack.key("SalesReceipt", receipt)]
    assert (r1["orderNumber"], r1["orderStatus"], r1["orderTotal"]) == ("R-1", "awaiting_shipment", 57.97)
    assert r1["advancedOptions"]["storeId"] == MANUAL_STORE_ID
    assert r1["advancedOptions"]["customField1"] == "R-1"
    assert r1["shippingAmount"] == 5.0
    assert orders[stack.key("Invoice", invoice)]["orderStatus"] == "awaiting_payment"

    # Edit before shipping: the order is updated in place (upsert by orderKey), not duplicated.
    lines = lines_of(qbo, "SalesReceipt", str(edited["Id"]))
    lines[0]["SalesItemLineDetail"]["Qty"] = 4
    lines[0]["Amount"] = Decimal("43.96")
    edit_sale(qbo, "SalesReceipt", str(edited["Id"]), {"Line": lines})
    second = stack.sync.run(stack.connection_id)
    assert second.ok
    assert (second.counts["updated"], second.counts["created"]) == (1, 0)
    after_edit = stack.orders()
    assert len(after_edit) == 5
    assert after_edit[stack.key("SalesReceipt", edited)]["items"][0]["quantity"] == 4
    assert (
        after_edit[stack.key("SalesReceipt", edited)]["orderId"] == orders[stack.key("SalesReceipt", edited)]["orderId"]
    )

    # Ship two in ShipStation, void one and delete one in QuickBooks.
    stack.ship(stack.key("SalesReceipt", receipt), "1Z999AA10123456784")
    stack.ship(stack.key("Invoice", invoice), "9400111899223344556677", carrier="usps")
    void_sale(qbo, "SalesReceipt", str(voided["Id"]))
    delete_sale(qbo, "Invoice", str(deleted["Id"]))
    third = stack.sync.run(stack.connection_id)
    assert third.ok, (third.error, third.failures)
    assert third.counts["cancelled"] == 2
    assert third.counts["shipments_written"] == 2
    final = stack.orders()
    assert final[stack.key("SalesReceipt", voided)]["orderStatus"] == "cancelled"
    assert final[stack.key("Invoice", deleted)]["orderStatus"] == "cancelled"
    for entity, sale, tracking, carrier in (
        ("SalesReceipt", receipt, "1Z999AA10123456784", "ups"),
        ("Invoice", invoice, "9400111899223344556677", "usps"),
    ):
        doc = stack.doc(entity, sale)
        assert doc["TrackingNum"] == tracking
        assert doc["ShipDate"]
        assert doc["ShipMethodRef"]["value"] == carrier
        # The sale itself is untouched by the sparse update.
        assert Decimal(str(doc["TotalAmt"])) == Decimal(str(sale["TotalAmt"]))

    # Our own write-back is not a change to send; an edit after shipping is recorded, not sent.
    calls_before = len(stack.create_calls())
    edit_sale(qbo, "SalesReceipt", str(receipt["Id"]), {"PrivateNote": "gift wrap"})
    fourth = stack.sync.run(stack.connection_id)
    assert len(stack.create_calls()) == calls_before
    assert [number for number, _ in fourth.refusals] == ["R-1"]
    assert stack.rows()[stack.key("SalesReceipt", receipt)].state == ReverseState.SHIPPED

    # Nothing changed: nothing is sent, nothing written, nothing refused again.
    tokens = {
        k: stack.doc(e, s)["SyncToken"]
        for k, (e, s) in {"r": ("SalesReceipt", receipt), "i": ("Invoice", invoice)}.items()
    }
    fifth = stack.sync.run(stack.connection_id)
    assert fifth.ok
    assert len(stack.create_calls()) == calls_before
    assert fifth.counts["shipments_written"] == fifth.counts["refused"] == 0
    assert {
        k: stack.doc(e, s)["SyncToken"]
        for k, (e, s) in {"r": ("SalesReceipt", receipt), "i": ("Invoice", invoice)}.items()
    } == tokens
    with stack.app.db.session(readonly=True) as session:
        assert Counter(s.state for s in session.scalars(select(ReverseShipment))) == {"written": 2}


def test_void_after_shipping_is_recorded_and_the_order_stays_shipped(reverse_factory: Any, db_url: str) -> None:
    stack: ReverseStack = reverse_factory(db_url)
    sale = create_sale(stack.qbo, "SalesReceipt", "R-9", [HAT])
    stack.sync.run(stack.connection_id)
    key = stack.key("SalesReceipt", sale)
    # Shipped in ShipStation but not polled yet: ShipStation itself refuses the cancel, and that is recorded.
    stack.ship(key, "1Z1")
    void_sale(stack.qbo, "SalesReceipt", str(sale["Id"]))
    report = stack.sync.push(stack.connection_id)
    assert report.error == ""
    assert [number for number, _ in report.refusals] == ["R-9"]
    assert stack.orders()[key]["orderStatus"] == "shipped"
    row = stack.rows()[key]
    assert row.state == ReverseState.REFUSED
    assert "shipped" in row.detail
    # The shipment is still written back, once.
    polled = stack.sync.poll_shipments(stack.connection_id)
    assert polled.counts["shipments_written"] == 1
    assert stack.sync.run(stack.connection_id).counts["refused"] == 0


def test_ship_notify_webhook_writes_tracking_once(reverse_factory: Any, db_url: str) -> None:
    stack: ReverseStack = reverse_factory(db_url)
    sale = create_sale(stack.qbo, "Invoice", "I-7", [MUG])
    stack.sync.run(stack.connection_id)
    key = stack.key("Invoice", sale)
    stack.ship(key, "TRACK-7", carrier="fedex")
    order_id = stack.orders()[key]["orderId"]
    url = f"{stack.ss.base_url}/shipments?orderId={order_id}"
    notified = stack.sync.on_ship_notify(stack.connection_id, url)
    assert notified.ok
    assert notified.counts["shipments_written"] == 1
    doc = stack.doc("Invoice", sale)
    assert doc["TrackingNum"] == "TRACK-7"
    token = doc["SyncToken"]
    # The delivery again, then the poll: the shipment is known, QuickBooks is not written again.
    assert stack.sync.on_ship_notify(stack.connection_id, url).counts["shipments_written"] == 0
    assert stack.sync.run(stack.connection_id).counts["shipments_written"] == 0
    assert stack.doc("Invoice", sale)["SyncToken"] == token
    # A resource URL on another host is never followed with our credentials.
    elsewhere = stack.sync.on_ship_notify(stack.connection_id, "https://attacker.example/shipments?x=1")
    assert "not a ShipStation shipments URL" in elsewhere.error


def test_a_crash_between_recording_and_sending_resends_once(
    reverse_factory: Any, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack: ReverseStack = reverse_factory(db_url)
    sales = [create_sale(stack.qbo, "SalesReceipt", f"C-{n}", [MUG]) for n in range(3)]
    real = ShipStationOutbound.create_orders

    def lost(self: ShipStationOutbound, orders: Any) -> Any:
        real(self, orders)  # ShipStation did the work, but the answer never came back
        raise RetryableError("connection reset", retry_after=1.0)

    monkeypatch.setattr(ShipStationOutbound, "create_orders", lost)
    crashed = stack.sync.run(stack.connection_id)
    assert "connection reset" in crashed.error
    assert {r.state for r in stack.rows().values()} == {ReverseState.SENDING}
    monkeypatch.setattr(ShipStationOutbound, "create_orders", real)
    resumed = stack.sync.run(stack.connection_id)
    assert resumed.ok
    assert resumed.counts["resumed"] == 3
    assert {r.state for r in stack.rows().values()} == {ReverseState.SENT}
    assert len(stack.orders()) == 3  # upserts: nothing duplicated
    assert sorted(stack.orders()) == sorted(stack.key("SalesReceipt", s) for s in sales)
    calls = len(stack.create_calls())
    assert stack.sync.run(stack.connection_id).counts["created"] == 0
    assert len(stack.create_calls()) == calls


def test_stale_sync_token_on_write_back_is_reread_and_retried(
    reverse_factory: Any, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack: ReverseStack = reverse_factory(db_url)
    sale = create_sale(stack.qbo, "SalesReceipt", "S-1", [HAT])
    stack.sync.run(stack.connection_id)
    stack.ship(stack.key("SalesReceipt", sale), "1ZSTALE")
    from ledgerlink.books.qbo.client import QboClient

    real_post = QboClient.post
    edits: list[dict[str, Any]] = []

    def racing(self: QboClient, entity: str, body: Any, **kwargs: Any) -> Any:
        if body.get("TrackingNum") and not edits:
            # Someone saves the sale in QuickBooks between our read and our update: 5010.
            edits.append(edit_sale(stack.qbo, entity, str(body["Id"]), {"PrivateNote": "edited meanwhile"}))
        return real_post(self, entity, body, **kwargs)

    monkeypatch.setattr(QboClient, "post", racing)
    report = stack.sync.run(stack.connection_id)
    assert report.ok, (report.error, report.failures)
    doc = stack.doc("SalesReceipt", sale)
    assert doc["TrackingNum"] == "1ZSTALE"
    assert doc["PrivateNote"] == "edited meanwhile"


def test_a_failed_write_back_is_retried_on_the_next_poll(reverse_factory: Any, db_url: str) -> None:
    from ledgerlink.sandbox.qbo import Fault as QboFault

    stack: ReverseStack = reverse_factory(db_url)
    sale = create_sale(stack.qbo, "SalesReceipt", "W-1", [MUG])
    stack.sync.run(stack.connection_id)
    stack.ship(stack.key("SalesReceipt", sale), "1ZRETRY")
    # QuickBooks refuses the update once (a validation fault): the shipment is recorded as failed.
    stack.qbo.inject(QboFault(kind="status", status=400, count=1, path_contains="/salesreceipt", code="6000"))
    failed = stack.sync.run(stack.connection_id)
    assert failed.counts["shipments_failed"] == 1
    assert "TrackingNum" not in stack.doc("SalesReceipt", sale)
    # The shipments cursor is past it now; the next run retries it from the ledger.
    retried = stack.sync.run(stack.connection_id)
    assert retried.ok, retried.failures
    assert retried.counts["shipments_retried"] == 1
    assert retried.counts["shipments_written"] == 1
    assert stack.doc("SalesReceipt", sale)["TrackingNum"] == "1ZRETRY"
    assert stack.sync.run(stack.connection_id).counts["shipments_retried"] == 0


def test_class_and_type_filters(reverse_factory: Any, db_url: str) -> None:
    qbo_probe = QboSandbox()
    with qbo_probe.lock:
        online = qbo_probe.company.find("Class", Name="Online Store")
    assert online is not None
    stack: ReverseStack = reverse_factory(
        db_url, from_books=FromBooksSettings(transaction_types=["Invoice"], class_ids=[str(online["Id"])])
    )
    keep = create_sale(stack.qbo, "Invoice", "F-1", [MUG])
    create_sale(stack.qbo, "Invoice", "F-2", [MUG], class_name="Retail")
    create_sale(stack.qbo, "SalesReceipt", "F-3", [MUG])
    report = stack.sync.run(stack.connection_id)
    assert report.ok
    assert list(stack.orders()) == [stack.key("Invoice", keep)]
    assert report.counts["filtered"] == 1  # F-3's type is not even read


@pytest.mark.slow
def test_a_backlog_of_1000_sales_goes_out_in_ten_calls_without_a_429_failure(
    reverse_factory: Any, tmp_path: Path
) -> None:
    # Four requests per (scaled) minute: ten createorders calls must wait for the window three times.
    stack: ReverseStack = reverse_factory(f"sqlite:///{tmp_path / 'backlog.db'}", rate_limit=4)
    company = stack.qbo.company
    with stack.qbo.lock:
        hat = company.find("Item", Name="Red Hat")
        amy = company.find("Customer", DisplayName="Amy's Bird Sanctuary")
    assert hat is not None
    assert amy is not None
    address = {"Line1": "1 Main St", "City": "Reno", "CountrySubDivisionCode": "NV", "PostalCode": "89501"}
    with stack.qbo.lock:
        for n in range(1000):
            company.write(
                "SalesReceipt",
                {
                    "DocNumber": f"B-{n}",
                    "CustomerRef": {"value": amy["Id"]},
                    "ShipAddr": address,
                    "Line": [
                        {
                            "DetailType": "SalesItemLineDetail",
                            "Amount": Decimal("19.99"),
                            "SalesItemLineDetail": {
                                "ItemRef": {"value": hat["Id"]},
                                "Qty": 1,
                                "UnitPrice": Decimal("19.99"),
                            },
                        }
                    ],
                },
            )
    # One throttle on top (another app on the same key pair): retried after the reset, never a failure.
    stack.ss.inject(Fault(kind="throttle", times=1, path="/orders/createorders"))
    report = stack.sync.run(stack.connection_id)
    assert report.ok, (report.error, report.failures[:3])
    assert report.counts["created"] == 1000
    assert len(stack.orders()) == 1000
    assert Counter(stack.create_calls()) == {200: 10, 429: 1}
    # Pacing kept every other request under the limit: the only 429 is the injected one.
    assert stack.ss.stats.throttled == 1
    # The 1,000 changes were more than one CDC answer holds: read in windows, each under the cap.
    assert report.counts["cdc_windows"] >= 2

    again = stack.sync.run(stack.connection_id)
    assert again.ok
    assert again.counts["created"] == again.counts["updated"] == 0
    assert Counter(stack.create_calls()) == {200: 10, 429: 1}


def test_cdc_reader_keeps_every_window_under_the_cap_and_sees_deletions(reverse_factory: Any, tmp_path: Path) -> None:
    stack: ReverseStack = reverse_factory(f"sqlite:///{tmp_path / 'cdc.db'}")
    qbo = stack.qbo
    company = qbo.company
    start = datetime.now(UTC) - timedelta(hours=1)
    moment = [start]
    company.clock = lambda: moment[0]
    with qbo.lock:
        mug = company.find("Item", Name="Coffee Mug")
    assert mug is not None
    body = {
        "Line": [
            {
                "DetailType": "SalesItemLineDetail",
                "Amount": Decimal("10.99"),
                "SalesItemLineDetail": {"ItemRef": {"value": mug["Id"]}, "Qty": 1, "UnitPrice": Decimal("10.99")},
            }
        ]
    }
    made: list[dict[str, Any]] = []
    with qbo.lock:
        for minute, count in ((0, 700), (5, 1200), (10, 300)):
            moment[0] = start + timedelta(minutes=minute)
            made += [company.write("SalesReceipt", dict(body)) for _ in range(count)]
        moment[0] = start + timedelta(minutes=12)
        gone = made[:5]
        for doc in gone:
            company.write("SalesReceipt", {"Id": doc["Id"], "SyncToken": doc["SyncToken"]}, operation="delete")
        moment[0] = start + timedelta(minutes=15)
    with stack.app.db.session(readonly=True) as session:
        books_conn = session.scalars(select(Connection).where(Connection.kind == "qbo")).one()
    books = stack.app.adapters.books(books_conn)
    assert isinstance(books, QboBooks)
    reader = CdcReader(books.client, overlap=timedelta(0), clock=lambda: moment[0])
    since = start - timedelta(minutes=1)
    live: set[str] = set()
    deleted: set[str] = set()
    windows = 0
    incomplete = 0
    while True:
        batch = reader.read(["SalesReceipt", "Invoice"], since)
        windows += 1
        assert len(batch.changes) <= 1200  # one second of the 1,200 is the largest window possible
        assert batch.next_since >= since
        incomplete += not batch.deletions_complete
        for change in batch.changes:
            (deleted if change.deleted else live).add(change.id)
        since = batch.next_since
        if batch.caught_up:
            break
        assert windows < 20
    assert windows >= 3
    assert incomplete >= 1
    assert live >= {d["Id"] for d in made[5:]}
    assert deleted == {d["Id"] for d in gone}
    # What a saturated answer may have cut, the caller can check.
    assert reader.existing_ids("SalesReceipt", [d["Id"] for d in made[:10]]) == {d["Id"] for d in made[5:10]}
    books.close()


def test_reverse_demo_runs_and_succeeds(tmp_path: Path) -> None:
    from rich.console import Console

    console = Console(record=True, width=160)
    assert run_reverse_demo(console, data_dir=tmp_path) == 0
    text = console.export_text()
    assert "1Z999AA10123456784" in text
    assert "cancelled" in text
