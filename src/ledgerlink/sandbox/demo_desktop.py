"""`ledgerlink demo --scenario desktop`: Shopify orders into QuickBooks Desktop through the Web Connector.

Against local stand-ins, on a throw-away SQLite database: the Shopify sandbox, the web app serving the Web
Connector's SOAP service at `/qbwc` on a real port, the QuickBooks Desktop company file stand-in, and a Web
Connector (zeep, reading our WSDL) that polls the service the way the real one does. It:

1. creates a company with a Shopify connection and a QuickBooks Desktop connection (user name, hashed
   password), lets the Web Connector read the company file's lists, and chooses the wizard's accounts from them;
2. syncs: pulls and plans the orders as Sales Orders + Invoices + Payments (credit memos for refunds); the
   postings wait for the Web Connector, which collects them in qbXML message sets;
3. prints the message sets, the postings by type, and the totals: Shopify = ledger = company file;
4. syncs again and runs the Web Connector again: nothing is planned, nothing is posted twice.
"""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from ledgerlink.bootstrap import App, bootstrap
from ledgerlink.config import Settings
from ledgerlink.domain.catalog import Catalog, CatalogQuery
from ledgerlink.domain.defaults import suggest_accounts
from ledgerlink.domain.settings import ChannelSettings, TransactionType
from ledgerlink.reporting import print_report
from ledgerlink.sandbox.qbd import QbdCompany
from ledgerlink.sandbox.qbd.driver import SessionLog, WebConnector
from ledgerlink.sandbox.server import serve
from ledgerlink.sandbox.shopify import ShopifySandbox, generate_orders
from ledgerlink.store.models import Company, Connection, OrderState, Posting, PostingState, QbdMessageSet, StoredOrder
from ledgerlink.sync.connections import add_connection, create_company
from ledgerlink.sync.engine import RunReport, save_settings
from ledgerlink.web.app import create_app
from ledgerlink.web.security import hash_password

DESKTOP_USER = "ledgerlink-demo-desktop"
DESKTOP_PASSWORD = "the demo Web Connector password"  # the stand-in's, never a real secret
# The documents the merchant's sale amounts to: one invoice per order (its sales order carries the same total).
SALE_KIND = "Invoice"
# Posting kind → the QuickBooks Desktop transaction it becomes.
DESKTOP_KIND = {
    "SalesReceipt": "SalesReceipt",
    "Invoice": "Invoice",
    "SalesOrder": "SalesOrder",
    "Payment": "ReceivePayment",
    "CreditMemo": "CreditMemo",
}
MAX_SESSIONS = 50
SHOWN_SETS = 20


@dataclass
class DesktopSetup:
    """The demo company: its Shopify channel and QuickBooks Desktop books, and the Web Connector to run."""

    channel_id: int
    books_id: int
    connector: WebConnector
    sessions: list[SessionLog] = field(default_factory=list)

    def drain(self) -> list[SessionLog]:
        """Web Connector sessions until the service says there is nothing to do (or one fails)."""
        ran: list[SessionLog] = []
        for _ in range(MAX_SESSIONS):
            log = self.connector.run()
            ran.append(log)
            if log.status in ("none", "nvu") or log.errors or log.lost:
                break
        self.sessions.extend(ran)
        return ran


def add_desktop_books(application: App, company_name: str, *, user_name: str, password: str) -> tuple[int, int]:
    """A company with a QuickBooks Desktop connection (as the Connections page makes one); returns
    (company id, books connection id)."""
    with application.db.session() as session:
        company = create_company(session, company_name)
        books = add_connection(
            session,
            application.box,
            company,
            name="quickbooks-desktop",
            kind="qbd",
            role="books",
            config={
                "user_name": user_name,
                "owner_id": "{6D1B0C4E-2F4A-4C59-9B7A-0D5E6C1A2B3C}",
                "file_id": "{A3E9F1D2-7B6C-4E8A-9F0B-1C2D3E4F5A6B}",
            },
            secrets={"password_hash": hash_password(password)},
        )
        return int(company.id), int(books.id)


def add_shopify_channel(application: App, company_id: int, books_id: int, creds: dict[str, str]) -> int:
    """The Shopify store, posting to the Desktop books; returns the channel connection id."""
    with application.db.session() as session:
        company = session.get(Company, company_id)
        if company is None:
            raise LookupError(f"no company {company_id}")
        channel = add_connection(
            session,
            application.box,
            company,
            name="shopify",
            kind="shopify",
            role="channel",
            config={"shop": creds["shop"], "base_url": creds["base_url"], "api_version": creds["api_version"]},
            secrets={"access_token": creds["access_token"]},
            books_id=books_id,
        )
        return int(channel.id)


def desktop_settings(catalog: Catalog, transaction_type: TransactionType) -> ChannelSettings:
    """The wizard's defaults on Desktop: accounts suggested from the company file's chart of accounts, a
    discount account when the suggestions left it open, refunds as credit memos (Desktop has no refund
    receipt), and the transaction type chosen."""
    accounts = suggest_accounts(catalog)
    if not accounts.item_discount:
        discount = next((a.id for a in catalog.accounts.values() if "discount" in a.name.lower()), None)
        if discount:
            accounts = accounts.model_copy(update={"item_discount": discount})
    return ChannelSettings.model_validate(
        {"accounts": accounts.model_dump(), "transaction_type": transaction_type, "refunds": {"mode": "credit_memo"}}
    )


def _books(application: App, books_id: int) -> Connection:
    with application.db.session() as session:
        conn = session.get(Connection, books_id)
        if conn is None:
            raise LookupError(f"no books connection {books_id}")
        return conn


def connect_desktop(
    application: App,
    qb: QbdCompany,
    wsdl_url: str,
    creds: dict[str, str],
    *,
    transaction_type: TransactionType = TransactionType.SALES_ORDER_INVOICE_PAYMENT,
    company_name: str = "Demo Merchant (Desktop)",
) -> DesktopSetup:
    """Company + Desktop books + Shopify channel; the Web Connector's first session reads the lists, and the
    settings are chosen from them. Raises RuntimeError when that first session does not finish."""
    company_id, books_id = add_desktop_books(
        application, company_name, user_name=DESKTOP_USER, password=DESKTOP_PASSWORD
    )
    channel_id = add_shopify_channel(application, company_id, books_id, creds)
    connector = WebConnector(wsdl_url, qb, user_name=DESKTOP_USER, password=DESKTOP_PASSWORD)
    setup = DesktopSetup(channel_id, books_id, connector)
    first = connector.run()
    setup.sessions.append(first)
    if first.status != "" or not first.finished or first.errors:
        connector.close()
        raise RuntimeError(f"the Web Connector's first session did not read the lists: {first}")
    adapter = application.adapters.books(_books(application, books_id))
    try:
        catalog = adapter.catalog(CatalogQuery())
    finally:
        adapter.close()
    with application.db.session() as session:
        save_settings(session, channel_id, desktop_settings(catalog, transaction_type), changed_by="demo")
    return setup


# -- the demo ---------------------------------------------------------------------------------------------------


def run_desktop_demo(console: Console, *, orders: int, seed: int, data_dir: Path) -> int:
    """Run the scenario; returns 0 when only the seeded orders failed, the totals match and the second pass
    posted nothing, else 1."""
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(data_dir=data_dir, database_url=f"sqlite:///{data_dir / 'ledgerlink.db'}")
    generated = generate_orders(orders, seed=seed, broken=True)
    seeded = {
        str(o["order_number"]): str(o.get("note") or "")
        for o in generated
        if str(o.get("note") or "").startswith("Broken on purpose")
    }
    shop = ShopifySandbox()
    shop.add_orders(generated)
    qb = QbdCompany()
    application = bootstrap(settings)
    problems: list[str] = []
    try:
        with serve(shop.app) as shop_server, serve(create_app(application)) as web:
            console.print(
                f"[bold]ledgerlink demo — QuickBooks Desktop[/bold]: {len(generated)} Shopify orders → the Web "
                f"Connector at {web.base_url}/qbwc → the company file stand-in (database {data_dir / 'ledgerlink.db'})"
            )
            setup = connect_desktop(
                application, qb, f"{web.base_url}/qbwc?wsdl", shop.credentials(shop_server.base_url)
            )
            try:
                problems = _scenario(console, application, qb, setup, seeded)
            finally:
                setup.connector.close()
    finally:
        application.db.dispose()
    if problems:
        for problem in problems:
            console.print(f"[bold red]✗[/bold red] {problem}", markup=True, highlight=False)
        console.print("[bold red]demo (QuickBooks Desktop): something went wrong (see above)[/bold red]")
        return 1
    console.print("[bold green]demo (QuickBooks Desktop): every order posted once, the totals match[/bold green]")
    return 0


def _scenario(
    console: Console, application: App, qb: QbdCompany, setup: DesktopSetup, seeded: dict[str, str]
) -> list[str]:
    problems: list[str] = []
    lists = setup.sessions[0]
    console.print(
        f"[bold]1. The Web Connector's first call[/bold]: read the company file's lists in {lists.sets} message "
        f"sets; accounts chosen from them (Sales Orders + Invoices + Payments, refunds as credit memos)"
    )
    first = application.engine().run(setup.channel_id)
    console.print("[bold]2. Sync[/bold]: pulled and planned; the postings wait for the Web Connector")
    print_report(console, "shopify", first, desktop=True)
    problems += _check_run("first sync", first, seeded)
    _explain_seeded(console, first, seeded)
    waiting = _waiting(application, setup.books_id)
    console.print(f"   {waiting} documents waiting for the Web Connector")
    if waiting == 0:
        problems.append("the sync left no documents for the Web Connector")

    marks = len(setup.sessions)
    work = setup.drain()
    console.print(f"[bold]3. The Web Connector[/bold]: {len(work)} sessions")
    problems += _session_problems(work)
    console.print(_message_sets_table(application, setup.books_id, setup.sessions[marks:]))
    console.print(_postings_table(application, qb))
    problems += _posting_problems(application, qb)
    problems += _totals(console, application, qb)

    before = len(qb.transactions())
    second = application.engine().run(setup.channel_id)
    again = setup.drain()
    planned = second.counts.get("postings_planned", 0) + second.counts.get("posted", 0)
    posted_again = len(qb.transactions()) - before
    statuses = ", ".join(repr(log.status) for log in again)
    clean = planned == 0 and posted_again == 0 and [log.status for log in again] == ["none"]
    console.print(
        f"[bold]4. Second pass[/bold]: pulled {second.counts.get('pulled', 0)} orders, planned {planned} "
        f"documents; the Web Connector was told {statuses}, QuickBooks got {posted_again} new transactions"
        + (" — nothing posted twice." if clean else " — UNEXPECTED.")
    )
    problems += _check_run("second sync", second, seeded)
    if not clean:
        problems.append(f"the second pass planned {planned} documents and posted {posted_again} transactions")
    return problems


def _check_run(label: str, report: RunReport, seeded: dict[str, str]) -> list[str]:
    problems = [f"{label} stopped: {report.error}"] if report.error else []
    problems += [
        f"{label}: order {number} failed on {field_name}: {detail}"
        for number, field_name, detail in report.failures
        if number not in seeded
    ]
    return problems


def _explain_seeded(console: Console, report: RunReport, seeded: dict[str, str]) -> None:
    if not seeded:
        return
    console.print("   [bold]Failures seeded on purpose[/bold] (a bookkeeper would fix these in Shopify):")
    for number, note in seeded.items():
        failed = next((f for f in report.failures if f[0] == number), None)
        status = f"failed as expected on {failed[1]}" if failed else "DID NOT FAIL"
        console.print(f"     order {number}: {note} → {status}", markup=False, highlight=False)


def _waiting(application: App, books_id: int) -> int:
    with application.db.session(readonly=True) as session:
        found = session.scalar(
            select(func.count(Posting.id)).where(Posting.books_id == books_id, Posting.state == PostingState.PENDING)
        )
    return int(found or 0)


def _session_problems(sessions: list[SessionLog]) -> list[str]:
    problems = [f"Web Connector session {log.ticket[:8]}: {error}" for log in sessions for error in log.errors]
    problems += [f"Web Connector session {log.ticket[:8]} lost an answer" for log in sessions if log.lost]
    if not sessions or sessions[-1].status != "none":
        problems.append("the Web Connector still had work after the last session")
    return problems


def _message_sets_table(application: App, books_id: int, sessions: list[SessionLog]) -> Table:
    """One row per qbXML message set: its newMessageSetID, what it carried, where the round trip's time went."""
    tickets = [log.ticket for log in sessions if log.round_trips]
    with application.db.session(readonly=True) as session:
        sets = session.scalars(
            select(QbdMessageSet)
            .where(QbdMessageSet.books_id == books_id, QbdMessageSet.ticket.in_(tickets))
            .order_by(QbdMessageSet.id)
        ).all()
        rows = [(m.ticket, m.set_id, Counter(str(e.get("what", "")) for e in m.requests)) for m in sets]
    trips = {log.ticket: log.round_trips for log in sessions}
    table = Table(title="qbXML message sets the Web Connector ran", title_justify="left")
    for column in ("run", "message set", "customers", "items", "documents", "server ms", "QB ms", "done"):
        table.add_column(column, justify="left" if column in ("run", "message set") else "right")
    seen: Counter[str] = Counter()
    for number, (ticket, set_id, what) in enumerate(rows, start=1):
        index = seen[ticket]
        seen[ticket] += 1
        if number > SHOWN_SETS:
            continue
        trip = trips[ticket][index] if index < len(trips.get(ticket, [])) else None
        table.add_row(
            str(tickets.index(ticket) + 1),
            f"{set_id[:10]}…",
            str(what["customer"]),
            str(what["item"]),
            str(what["posting"]),
            f"{trip.server_seconds * 1000:.0f}" if trip else "",
            f"{trip.quickbooks_seconds * 1000:.0f}" if trip else "",
            f"{trip.progress}%" if trip else "",
        )
    if len(rows) > SHOWN_SETS:
        table.add_row("…", f"{len(rows) - SHOWN_SETS} more", "", "", "", "", "", "")
    return table


def _postings_table(application: App, qb: QbdCompany) -> Table:
    with application.db.session(readonly=True) as session:
        by_kind = Counter((kind, state) for kind, state in session.execute(select(Posting.kind, Posting.state)))
    in_file = Counter(t.kind for t in qb.transactions())
    table = Table(title="Postings by type", title_justify="left")
    for column in ("document", "posted", "pending", "failed", "in the company file"):
        table.add_column(column, justify="left" if column == "document" else "right")
    for kind in sorted({k for k, _s in by_kind}):
        table.add_row(
            kind,
            str(by_kind[(kind, PostingState.POSTED)]),
            str(by_kind[(kind, PostingState.PENDING)] + by_kind[(kind, PostingState.SENDING)]),
            str(by_kind[(kind, PostingState.FAILED)]),
            str(in_file[DESKTOP_KIND.get(kind, kind)]),
        )
    return table


def _posting_problems(application: App, qb: QbdCompany) -> list[str]:
    """Every posting posted, once: one transaction per marker in the company file, its TxnID and total ours."""
    problems: list[str] = []
    markers: Counter[str] = Counter()
    for txn in qb.transactions():
        for part in txn.memo.split("[ledgerlink ")[1:]:
            markers[part.split("]")[0]] += 1
    twice = sorted(m for m, n in markers.items() if n > 1)
    if twice:
        problems.append(f"documents in the company file twice: {', '.join(twice[:5])}")
    by_id = {t.txn_id: t for t in qb.transactions()}
    with application.db.session(readonly=True) as session:
        for posting in session.scalars(select(Posting).order_by(Posting.id)):
            where = f"order {posting.doc_number} {posting.kind}"
            if posting.state != PostingState.POSTED:
                problems.append(f"{where} is {posting.state}: {posting.error}")
                continue
            found = by_id.get(posting.remote_id or "")
            if found is None or found.kind != DESKTOP_KIND.get(posting.kind, posting.kind):
                problems.append(f"{where}: no {posting.kind} {posting.remote_id} in the company file")
            elif found.total != posting.posted_total:
                problems.append(f"{where}: the company file says {found.total}, the ledger {posting.posted_total}")
    return problems


def _totals(console: Console, application: App, qb: QbdCompany) -> list[str]:
    """The posted orders' totals in Shopify, in the ledger and in the company file itself."""
    with application.db.session(readonly=True) as session:
        shopify = Decimal(
            str(
                session.scalar(
                    select(func.coalesce(func.sum(StoredOrder.total), 0)).where(StoredOrder.state == OrderState.POSTED)
                )
            )
        )
        ledger = Decimal(
            str(
                session.scalar(
                    select(func.coalesce(func.sum(Posting.posted_total), 0)).where(
                        Posting.state == PostingState.POSTED, Posting.kind == SALE_KIND
                    )
                )
            )
        )
        posted_orders = session.scalar(select(func.count()).where(StoredOrder.state == OrderState.POSTED))
    company_file = sum((t.total for t in qb.transactions(DESKTOP_KIND[SALE_KIND]) if not t.voided), Decimal(0))
    table = Table(title=f"Totals of the {posted_orders} posted orders", title_justify="left")
    table.add_column("where")
    table.add_column("total", justify="right")
    table.add_row("Shopify (order totals)", f"{shopify:.2f}")
    table.add_row("ledger (QuickBooks' answers, invoices)", f"{ledger:.2f}")
    table.add_row("QuickBooks Desktop (invoices in the company file)", f"{company_file:.2f}")
    console.print(table)
    if shopify == ledger == company_file and posted_orders:
        return []
    return [f"totals differ: Shopify {shopify:.2f}, ledger {ledger:.2f}, company file {company_file:.2f}"]
