"""QuickBooks Desktop → ShipStation end to end: the Web Connector (zeep, over real HTTP) reads the Desktop sales,
the sync job sends them to the ShipStation sandbox, and what ShipStation ships is written back onto the Desktop
sales order (closed, ship date, ship via, tracking) at the next Web Connector session — once."""

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

from ledgerlink.bootstrap import App, bootstrap
from ledgerlink.config import Settings
from ledgerlink.domain.reverse import FromBooksSettings, SaleType, desktop_order_key
from ledgerlink.domain.settings import ChannelSettings, SyncDirection
from ledgerlink.sandbox.demo_reverse import MANUAL_STORE_ID
from ledgerlink.sandbox.qbd import QbdCompany
from ledgerlink.sandbox.qbd.driver import WebConnector
from ledgerlink.sandbox.server import RunningServer, serve
from ledgerlink.sandbox.shipstation import ShipStationSandbox
from ledgerlink.store.models import Connection, ReverseOrder, ReverseShipment, ReverseState, SyncJob
from ledgerlink.sync.connections import add_connection, create_company
from ledgerlink.sync.engine import save_settings
from ledgerlink.sync.jobs import drain, enqueue
from ledgerlink.sync.reverse_desktop import DesktopReverseSync
from ledgerlink.web.app import create_app
from ledgerlink.web.security import hash_password

TEST_SECRET = "test-secret-key"
USER = "ledgerlink-desktop-reverse"
PASSWORD = "correct horse battery staple"
TRACKING = "1Z999AA10123456784"


class EditedCompany(QbdCompany):
    """A company file in which someone edits a sales order between our read and our Mod (once): the Mod meets 3200."""

    edit_before_mod: str = ""

    def process(self, text: str, *, crash_after: int | None = None) -> str:
        if self.edit_before_mod and "<SalesOrderModRq" in text:
            txn = self.txns[self.edit_before_mod]
            self.edit_before_mod = ""
            txn.memo = f"{txn.memo} (called the customer)"
            self._touch(txn)
        return super().process(text, crash_after=crash_after)


@dataclass
class DeskReverse:
    app: App
    qb: EditedCompany
    ss: ShipStationSandbox
    servers: list[RunningServer]
    wc: WebConnector
    books_id: int
    connection_id: int
    sync: DesktopReverseSync

    def session(self) -> None:
        log = self.wc.run()
        assert log.status == "", log
        assert not log.errors, log.errors

    def rows(self) -> dict[str, ReverseOrder]:
        with self.app.db.session(readonly=True) as session:
            return {r.order_key: r for r in session.scalars(select(ReverseOrder))}

    def orders(self) -> dict[str, dict[str, Any]]:
        return {str(o["orderKey"]): o for o in self.ss.orders.values()}

    def create_calls(self) -> int:
        return sum(1 for r in self.ss.requests if r.path == "/orders/createorders")

    def key(self, entity: str, txn_id: str) -> str:
        return desktop_order_key(self.books_id, entity, txn_id)

    def add(self, obj: str, ref: str, lines: list[tuple[str, int, str]]) -> str:
        """A sale entered in QuickBooks by hand; returns its TxnID."""
        line_xml = "".join(
            f"<{obj}LineAdd><ItemRef><FullName>{item}</FullName></ItemRef><Quantity>{qty}</Quantity>"
            f"<Rate>{rate}</Rate></{obj}LineAdd>"
            for item, qty, rate in lines
        )
        deposit = "<DepositToAccountRef><FullName>Undeposited Funds</FullName></DepositToAccountRef>"
        body = (
            f"<CustomerRef><FullName>Ada Lovelace</FullName></CustomerRef><TxnDate>2026-01-05</TxnDate>"
            f"<RefNumber>{ref}</RefNumber>" + (deposit if obj == "SalesReceipt" else "") + line_xml
        )
        answer = self.qb.process(_set(f'<{obj}AddRq requestID="1"><{obj}Add>{body}</{obj}Add></{obj}AddRq>'))
        assert 'statusCode="0"' in answer, answer
        return next(t.txn_id for t in self.qb.transactions(obj) if t.ref_number == ref)


def _set(requests: str) -> str:
    return (
        '<?xml version="1.0"?><?qbxml version="13.0"?><QBXML><QBXMLMsgsRq onError="stopOnError">'
        f"{requests}</QBXMLMsgsRq></QBXML>"
    )


@pytest.fixture
def desk_reverse(tmp_path: Path) -> Iterator[Any]:
    made: list[DeskReverse] = []

    def build(db_url: str) -> DeskReverse:
        settings = Settings(env="test", data_dir=tmp_path, database_url=db_url, secret_key=TEST_SECRET)  # type: ignore[arg-type,unused-ignore]
        app = bootstrap(settings, throttle_wait=0.2, retry_backoff=0.05)
        ss = ShipStationSandbox(time_scale=60.0)
        ss_server, web = serve(ss.app), serve(create_app(app))
        ss.base_url = ss_server.base_url
        qb = EditedCompany()
        qb.set_clock(datetime.now(UTC) - timedelta(hours=1))  # QuickBooks runs on the merchant's (real) clock
        qb.add_list_object(
            "Customer",
            "Ada Lovelace",
            BillAddress={"Addr1": "Ada Lovelace", "Addr2": "12 St James's Square", "City": "Portland",
                         "State": "OR", "PostalCode": "97201", "Country": "USA"},
        )  # fmt: skip
        qb.add_list_object("ItemNonInventory", "Red Hat", AccountRef=qb.find("Account", "Sales"))
        with app.db.session() as session:
            company = create_company(session, "Desktop Merchant (from QuickBooks)")
            books = add_connection(
                session,
                app.box,
                company,
                name="quickbooks-desktop",
                kind="qbd",
                role="books",
                config={"user_name": USER, "owner_id": "{57F3B9B1-86F1-4FCC-B1EE-566DE1813D20}",
                        "file_id": "{90A44FB5-33D9-4815-AC85-BC87A7E7D1EB}"},
                secrets={"password_hash": hash_password(PASSWORD)},
            )  # fmt: skip
            channel = add_connection(
                session,
                app.box,
                company,
                name="shipstation",
                kind="shipstation",
                role="channel",
                config={"base_url": ss_server.base_url},
                secrets={"api_key": ss.api_key, "api_secret": ss.api_secret},
                books_id=books.id,
            )
            chosen = FromBooksSettings(
                store_id=MANUAL_STORE_ID,
                transaction_types=[SaleType.SALES_ORDER, SaleType.SALES_RECEIPT, SaleType.INVOICE],
            )
            save_settings(session, channel.id, ChannelSettings(direction=SyncDirection.FROM_BOOKS, from_books=chosen))
            books_id, channel_id = books.id, channel.id
        wc = WebConnector(f"{web.base_url}/qbwc?wsdl", qb, user_name=USER, password=PASSWORD)
        stack = DeskReverse(
            app, qb, ss, [ss_server, web], wc, books_id, channel_id, DesktopReverseSync(app.db, app.adapters)
        )
        made.append(stack)
        return stack

    yield build
    for stack in made:
        stack.wc.close()
        stack.app.db.dispose()
        for server in stack.servers:
            server.stop()


def test_sales_order_to_shipstation_shipped_closed_and_tracked_once(desk_reverse: Any, db_url: str) -> None:
    desk: DeskReverse = desk_reverse(db_url)
    so = desk.add("SalesOrder", "SO-1", [("Red Hat", 2, "19.99"), ("Shipping", 1, "5.00")])
    receipt = desk.add("SalesReceipt", "R-2", [("Red Hat", 1, "19.99")])
    invoice = desk.add("Invoice", "I-3", [("Red Hat", 3, "19.99")])

    # The Web Connector's session reads the sales; the sync job sends them, once each.
    desk.session()
    assert Counter(r.state for r in desk.rows().values()) == {ReverseState.SENDING: 3}
    # The first send goes through a queued job: sync/jobs.py gives Desktop books to DesktopReverseSync.
    with desk.app.db.session() as session:
        job_id = enqueue(session, session.get_one(Connection, desk.connection_id)).id
    assert drain(desk.app) == 1
    with desk.app.db.session(readonly=True) as session:
        job = session.get_one(SyncJob, job_id)
        assert (job.state, job.error) == ("done", "")
    assert desk.create_calls() == 1
    assert Counter(r.state for r in desk.rows().values()) == {ReverseState.SENT: 3}
    orders = desk.orders()
    order = orders[desk.key("SalesOrder", so)]
    assert order["orderNumber"] == "SO-1"
    assert order["orderStatus"] == "awaiting_shipment"
    assert order["advancedOptions"]["source"] == "QuickBooks Desktop"
    assert order["orderKey"].startswith("qbd-")
    assert (order["shippingAmount"], order["orderTotal"], order["amountPaid"]) == (5.0, 44.98, 0.0)
    assert order["shipTo"]["street1"] == "12 St James's Square"
    assert orders[desk.key("Invoice", invoice)]["orderStatus"] == "awaiting_payment"

    # Nothing changed: another session and run send nothing.
    desk.session()
    again = desk.sync.run(desk.connection_id)
    assert again.ok
    assert desk.create_calls() == 1

    # ShipStation ships the sales order; in QuickBooks the receipt is voided and the invoice deleted.
    desk.ss.mark_as_shipped(
        {"orderId": order["orderId"], "carrierCode": "ups", "trackingNumber": TRACKING, "shipDate": "2026-01-07"}
    )
    void = '<TxnVoidRq requestID="1"><TxnVoidType>SalesReceipt</TxnVoidType><TxnID>{}</TxnID></TxnVoidRq>'
    assert 'statusCode="0"' in desk.qb.process(_set(void.format(receipt)))
    delete = '<TxnDelRq requestID="1"><TxnDelType>Invoice</TxnDelType><TxnID>{}</TxnID></TxnDelRq>'
    assert 'statusCode="0"' in desk.qb.process(_set(delete.format(invoice)))
    shipped = desk.sync.run(desk.connection_id)
    assert shipped.ok
    assert shipped.counts["shipments_recorded"] == 1
    desk.qb.edit_before_mod = so  # the first Mod meets a stale EditSequence (3200): read again, retried

    desk.session()
    txn = desk.qb.txns[so]
    assert txn.manually_closed
    assert txn.ship_date == "2026-01-07"
    assert txn.refs["ShipMethodRef"].name == "UPS"
    assert txn.other == TRACKING
    assert txn.memo.endswith("(called the customer)")  # the colleague's edit is kept
    assert desk.qb.stats["SalesOrderMod"] == 2
    with desk.app.db.session(readonly=True) as session:
        shipments = list(session.scalars(select(ReverseShipment)))
    assert [(s.state, s.qbo_sync_token) for s in shipments] == [("written", txn.edit_sequence)]
    rows = desk.rows()
    assert rows[desk.key("SalesReceipt", receipt)].state == ReverseState.CANCELLING
    assert rows[desk.key("Invoice", invoice)].state == ReverseState.CANCELLING
    cancels = desk.sync.run(desk.connection_id)
    assert cancels.ok
    assert cancels.counts["cancelled"] == 2
    after = desk.orders()
    assert after[desk.key("SalesReceipt", receipt)]["orderStatus"] == "cancelled"
    assert after[desk.key("Invoice", invoice)]["orderStatus"] == "cancelled"
    assert after[desk.key("SalesOrder", so)]["orderStatus"] == "shipped"

    # Re-run: nothing is sent or written again.
    calls, sequence = desk.create_calls(), txn.edit_sequence
    desk.session()
    rerun = desk.sync.run(desk.connection_id)
    assert rerun.ok, (rerun.error, rerun.failures)
    assert desk.create_calls() == calls
    assert desk.qb.stats["SalesOrderMod"] == 2
    assert desk.qb.txns[so].edit_sequence == sequence
    assert desk.rows()[desk.key("SalesOrder", so)].state == ReverseState.SHIPPED
    assert desk.orders() == after
    assert desk.qb.txns[so].total == Decimal("44.98")
