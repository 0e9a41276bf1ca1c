"""QuickBooks Desktop end to end: Shopify orders → postings → the Web Connector (zeep) → the company file stand-in.

The web app runs on a real port; the Web Connector is a zeep client reading our WSDL; QuickBooks is the
`QbdCompany` stand-in. The engine plans Desktop postings and leaves them for the Web Connector (the
`DesktopEngine` below does what `SyncEngine.run` does once Desktop postings are left pending there).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from ledgerlink.books.base import Books
from ledgerlink.bootstrap import App, bootstrap
from ledgerlink.config import Settings
from ledgerlink.domain.catalog import CatalogQuery
from ledgerlink.domain.defaults import suggest_accounts
from ledgerlink.domain.settings import ChannelSettings, TransactionType
from ledgerlink.sandbox.qbd import QbdCompany
from ledgerlink.sandbox.qbd.driver import SessionLog, WebConnector
from ledgerlink.sandbox.server import RunningServer, serve
from ledgerlink.sandbox.shopify import ShopifySandbox, generate_orders
from ledgerlink.store.models import (
    Connection,
    OrderState,
    Posting,
    PostingState,
    QbdMessageSet,
    QbdQueuedRecord,
    QbwcSession,
    StoredOrder,
)
from ledgerlink.sync.connections import add_connection, create_company
from ledgerlink.sync.engine import RunReport, SyncEngine, save_settings
from ledgerlink.sync.qbwc import desktop_status
from ledgerlink.web.app import create_app
from ledgerlink.web.security import hash_password

TEST_SECRET = "test-secret-key"
USER = "ledgerlink-desktop-merchant"
PASSWORD = "correct horse battery staple"
KINDS = {
    TransactionType.SALES_RECEIPT: ("SalesReceipt",),
    TransactionType.INVOICE: ("Invoice", "ReceivePayment"),
    TransactionType.SALES_ORDER: ("SalesOrder",),
    TransactionType.SALES_ORDER_INVOICE_PAYMENT: ("SalesOrder", "Invoice", "ReceivePayment"),
}
POSTING_KIND = {
    "SalesReceipt": "SalesReceipt",
    "Invoice": "Invoice",
    "SalesOrder": "SalesOrder",
    "Payment": "ReceivePayment",
    "CreditMemo": "CreditMemo",
}


class DesktopEngine(SyncEngine):
    """The engine with the change Desktop needs: its postings stay pending for the Web Connector."""

    def push(self, books_conn: Connection, books: Books, report: RunReport, *, wait: bool = True) -> None:
        if books_conn.kind == "qbd":
            return
        super().push(books_conn, books, report, wait=wait)


@dataclass
class Desk:
    """A company with a Shopify channel and a QuickBooks Desktop books connection, served on a real port."""

    app: App
    web: RunningServer
    shop: ShopifySandbox
    shop_server: RunningServer
    qb: QbdCompany
    channel_id: int
    books_id: int
    connectors: list[WebConnector]

    def connector(self, **kwargs: Any) -> WebConnector:
        wc = WebConnector(f"{self.web.base_url}/qbwc?wsdl", self.qb, user_name=USER, password=PASSWORD, **kwargs)
        self.connectors.append(wc)
        return wc

    def engine(self) -> DesktopEngine:
        return DesktopEngine(
            self.app.db, channel_factory=self.app.adapters.channel, books_factory=self.app.adapters.books
        )

    def sync(self) -> RunReport:
        report = self.engine().run(self.channel_id)
        assert report.error == "", report.error
        return report

    def drain(self, wc: WebConnector | None = None, sessions: int = 10) -> list[SessionLog]:
        """Run Web Connector sessions until the service says there is nothing to do."""
        wc = wc or self.connector()
        logs = []
        for _ in range(sessions):
            log = wc.run()
            logs.append(log)
            if log.status == "none":
                return logs
            assert not log.errors, log.errors
        raise AssertionError(f"still work after {sessions} sessions: {logs[-1]}")

    def postings(self) -> list[Posting]:
        with self.app.db.session() as session:
            return list(session.scalars(select(Posting).order_by(Posting.id)))

    def order_states(self) -> Counter[str]:
        with self.app.db.session() as session:
            return Counter(s for (s,) in session.execute(select(StoredOrder.state)))


def make_desk(
    db_url: str,
    data_dir: Path,
    *,
    orders: int,
    transaction_type: TransactionType,
    seed: int = 5,
    requests_per_set: int = 200,
) -> Desk:
    settings = Settings(env="test", data_dir=data_dir, database_url=db_url, secret_key=TEST_SECRET)  # type: ignore[arg-type]
    app = bootstrap(settings)
    shop = ShopifySandbox(time_scale=60.0)
    shop.add_orders(generate_orders(orders, seed=seed))
    shop_server = serve(shop.app)
    web = serve(create_app(app))
    creds = shop.credentials(shop_server.base_url)
    with app.db.session() as session:
        company = create_company(session, "Desktop Merchant")
        books = add_connection(
            session,
            app.box,
            company,
            name="quickbooks-desktop",
            kind="qbd",
            role="books",
            config={
                "user_name": USER,
                "owner_id": "{57F3B9B1-86F1-4FCC-B1EE-566DE1813D20}",
                "file_id": "{90A44FB5-33D9-4815-AC85-BC87A7E7D1EB}",
                "requests_per_set": requests_per_set,
            },
            secrets={"password_hash": hash_password(PASSWORD)},
        )
        channel = add_connection(
            session,
            app.box,
            company,
            name="shopify",
            kind="shopify",
            role="channel",
            config={"shop": creds["shop"], "base_url": creds["base_url"], "api_version": creds["api_version"]},
            secrets={"access_token": creds["access_token"]},
            books_id=books.id,
        )
        books_id, channel_id = books.id, channel.id
    desk = Desk(app, web, shop, shop_server, QbdCompany(), channel_id, books_id, [])
    # The first Web Connector session reads the company's lists; the wizard maps accounts from them.
    first = desk.connector().run()
    assert first.status == "", first
    assert first.finished, first
    adapter = app.adapters.books(_books(app, books_id))
    catalog = adapter.catalog(CatalogQuery())
    accounts = suggest_accounts(catalog)
    discount = next(a.id for a in catalog.accounts.values() if a.name == "Sales Discounts")
    accounts = accounts.model_copy(update={"item_discount": discount})
    with app.db.session() as session:
        # Desktop has no refund receipt: refunds become credit memos (applied to the invoice when there is one).
        chosen = ChannelSettings.model_validate(
            {
                "accounts": accounts.model_dump(),
                "transaction_type": transaction_type,
                "refunds": {"mode": "credit_memo"},
            }
        )
        save_settings(session, channel_id, chosen)
    return desk


def _books(app: App, books_id: int) -> Connection:
    with app.db.session() as session:
        conn = session.get(Connection, books_id)
        assert conn is not None
        return conn


@pytest.fixture
def desks(tmp_path: Path) -> Iterator[Any]:
    made: list[Desk] = []

    def build(db_url: str, **kwargs: Any) -> Desk:
        desk = make_desk(db_url, tmp_path, **kwargs)
        made.append(desk)
        return desk

    yield build
    for desk in made:
        for wc in desk.connectors:
            wc.close()
        desk.web.stop()
        desk.shop_server.stop()
        desk.app.db.dispose()


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledgerlink.db'}"


def assert_posted_exactly_once(desk: Desk, kinds: tuple[str, ...]) -> None:
    """Every posting posted once: one transaction per marker in the company file, totals to the cent."""
    postings = desk.postings()
    assert postings
    assert {p.state for p in postings} == {PostingState.POSTED}, Counter(p.state for p in postings)
    markers = Counter()
    for txn in desk.qb.transactions():
        for posting_marker in _markers(txn.memo):
            markers[posting_marker] += 1
    assert max(markers.values()) == 1, [m for m, n in markers.items() if n > 1][:5]
    by_id = {t.txn_id: t for t in desk.qb.transactions()}
    for posting in postings:
        txn = by_id[posting.remote_id or ""]
        assert txn.kind == POSTING_KIND[posting.kind]
        assert f"[ledgerlink {posting.document['marker']}]" in txn.memo
        assert txn.total == posting.total == posting.posted_total, (posting.doc_number, txn.total, posting.total)
    assert Counter(t.kind for t in desk.qb.transactions()) == Counter(POSTING_KIND[p.kind] for p in postings)
    seen = set(Counter(t.kind for t in desk.qb.transactions()))
    # Refunded orders add credit memos (and, against an invoice, a payment applying the credit).
    assert set(kinds) <= seen <= {*kinds, "CreditMemo", "ReceivePayment"}, seen


def _markers(memo: str) -> list[str]:
    return [part.split("]")[0] for part in memo.split("[ledgerlink ")[1:]]


# -- the four Desktop transaction types ---------------------------------------------------------------------------


@pytest.mark.parametrize("transaction_type", list(TransactionType))
def test_each_transaction_type_reaches_desktop_exactly_once(
    desks: Any, tmp_path: Path, transaction_type: TransactionType
) -> None:
    desk = desks(sqlite_url(tmp_path), orders=40, transaction_type=transaction_type)
    report = desk.sync()
    assert report.counts["postings_planned"] > 0
    with desk.app.db.session() as session:
        queued = Counter(r.kind for r in session.scalars(select(QbdQueuedRecord)))
        assert queued["customer"] > 0
        assert queued["item"] > 0
        status = desktop_status(session, desk.books_id)
        assert status.waiting == report.counts["postings_planned"]
    logs = desk.drain()
    assert logs[-1].status == "none"
    assert_posted_exactly_once(desk, KINDS[transaction_type])
    states = desk.order_states()
    assert states[OrderState.POSTED] == report.counts["orders_planned"]
    assert states[OrderState.FAILED] == 0
    # Customers and items were added before the sales that needed them; every queued record is done.
    with desk.app.db.session() as session:
        assert {r.state for r in session.scalars(select(QbdQueuedRecord))} == {"done"}
    if transaction_type in (TransactionType.INVOICE, TransactionType.SALES_ORDER_INVOICE_PAYMENT):
        invoices = desk.qb.transactions("Invoice")
        paid = [i for i in invoices if i.applied]
        assert paid
        assert all(i.balance == 0 for i in paid)
    if transaction_type is TransactionType.SALES_ORDER_INVOICE_PAYMENT:
        orders = desk.qb.transactions("SalesOrder")
        assert all(o.fully_invoiced for o in orders)
        assert all(len(i.linked) == 1 for i in desk.qb.transactions("Invoice"))
    # A second sync and a second Web Connector run post nothing again.
    again = desk.sync()
    assert again.counts.get("postings_planned", 0) == 0
    count = len(desk.qb.transactions())
    assert desk.connector().run().status == "none"
    assert len(desk.qb.transactions()) == count


def test_sales_orders_invoices_and_payments_on_postgresql(desks: Any, pg_url: str) -> None:
    desk = desks(pg_url, orders=30, transaction_type=TransactionType.SALES_ORDER_INVOICE_PAYMENT)
    desk.sync()
    desk.drain()
    assert_posted_exactly_once(desk, ("SalesOrder", "Invoice", "ReceivePayment"))


# -- exactly once when an answer is lost -------------------------------------------------------------------------


def test_lost_response_is_recovered_with_old_message_set_id(desks: Any, db_url: str) -> None:
    desk = desks(db_url, orders=60, transaction_type=TransactionType.SALES_ORDER_INVOICE_PAYMENT, requests_per_set=40)
    desk.sync()
    wc = desk.connector()
    lost = wc.run(lose_response=2)
    assert lost.lost == 1
    assert lost.sets == 1
    # QuickBooks ran the second set; ledgerlink never heard back: its postings are still `sending`.
    with desk.app.db.session() as session:
        sent = session.scalars(select(QbdMessageSet).where(QbdMessageSet.state == "sent")).all()
        assert len(sent) == 1
        sending = session.scalar(select(func.count(Posting.id)).where(Posting.state == PostingState.SENDING))
        assert sending
        assert sending > 0
    before = desk.qb.stats["recovery_requests"]
    desk.drain(wc)
    assert desk.qb.stats["recovery_requests"] == before + 1
    assert_posted_exactly_once(desk, ("SalesOrder", "Invoice", "ReceivePayment"))
    with desk.app.db.session() as session:
        counts = Counter[str]()
        for sess in session.scalars(select(QbwcSession)):
            counts.update(sess.counts or {})
        assert counts["recovered_answered"] == 1


def test_set_that_never_reached_quickbooks_is_looked_up_then_sent_again(desks: Any, tmp_path: Path) -> None:
    desk = desks(sqlite_url(tmp_path), orders=30, transaction_type=TransactionType.INVOICE, requests_per_set=25)
    desk.sync()
    wc = desk.connector()
    assert wc.run(drop_request=2).lost == 1
    desk.drain(wc)
    assert_posted_exactly_once(desk, ("Invoice", "ReceivePayment"))
    with desk.app.db.session() as session:
        counts = Counter[str]()
        for sess in session.scalars(select(QbwcSession)):
            counts.update(sess.counts or {})
    assert counts["recovered_unknown"] == 1
    assert counts["recovered_resend"] > 0
    assert counts["recovered_bound"] == 0


def test_quickbooks_stopping_mid_set_binds_what_it_did_by_ref_number(desks: Any, tmp_path: Path) -> None:
    desk = desks(sqlite_url(tmp_path), orders=30, transaction_type=TransactionType.SALES_RECEIPT, requests_per_set=30)
    desk.sync()
    wc = desk.connector()
    # QuickBooks runs 12 requests of the second set, then stops without keeping an answer.
    assert wc.run(crash=(2, 12)).lost == 1
    done_before = len(desk.qb.transactions())
    assert done_before > 0
    desk.drain(wc)
    assert_posted_exactly_once(desk, ("SalesReceipt",))
    with desk.app.db.session() as session:
        counts = Counter[str]()
        for sess in session.scalars(select(QbwcSession)):
            counts.update(sess.counts or {})
    assert counts["recovered_bound"] > 0
    assert counts["recovered_resend"] > 0


# -- authentication and the empty queue -------------------------------------------------------------------------


def test_wrong_password_is_nvu_and_no_work_is_none(desks: Any, tmp_path: Path) -> None:
    desk = desks(sqlite_url(tmp_path), orders=5, transaction_type=TransactionType.SALES_RECEIPT)
    wc = desk.connector()
    assert wc.run(password="not the password").status == "nvu"
    stranger = WebConnector(f"{desk.web.base_url}/qbwc?wsdl", desk.qb, user_name="nobody", password=PASSWORD)
    try:
        assert stranger.run().status == "nvu"
    finally:
        stranger.close()
    # Lists were read when the desk was made and nothing is planned yet: nothing to do.
    assert wc.run().status == "none"
    with desk.app.db.session() as session:
        assert desktop_status(session, desk.books_id).last_contact_at is not None


# -- a large backlog ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_five_thousand_orders_in_message_sets_well_inside_the_time_limit(desks: Any, tmp_path: Path) -> None:
    """The issue's "done when": 5,000 Shopify orders reach the company file as Sales Orders + Invoices + Payments,
    each exactly once, in message sets of at most 200 requests (our server time per round trip is printed here and
    measured by `make bench`)."""
    desk = desks(sqlite_url(tmp_path), orders=5000, transaction_type=TransactionType.SALES_ORDER_INVOICE_PAYMENT)
    desk.sync()
    started = time.perf_counter()
    logs = desk.drain()
    elapsed = time.perf_counter() - started
    assert_posted_exactly_once(desk, ("SalesOrder", "Invoice", "ReceivePayment"))
    trips = [t for log in logs for t in log.round_trips]
    assert len(trips) >= 10
    assert max(t.requests for t in trips) <= 200 + 1  # plus, once, the tax item
    # Our side of each round trip must stay far inside the Web Connector's two minutes: printed, measured by
    # `make bench` (desktop.*), never asserted as a time.
    print(f"server time per round trip: max {max(t.server_seconds for t in trips):.2f} s (a figure; `make bench`)")
    posted = sum(1 for p in desk.postings() if p.state == PostingState.POSTED)
    assert posted >= 10_000
    print(f"{posted} postings collected in {elapsed:.0f} s")
