"""`ledgerlink demo`: a whole sync against the local sandboxes, on SQLite, run twice.

It creates a company with a Shopify connection and a QuickBooks Online connection using the wizard's
defaults, syncs the demo orders, prints what was posted and what failed (with why), compares the totals in
the channel with the totals QuickBooks shows, then syncs again to show nothing is posted twice.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ledgerlink.bootstrap import App, bootstrap
from ledgerlink.config import Settings
from ledgerlink.domain.catalog import CatalogQuery
from ledgerlink.domain.defaults import suggest_accounts
from ledgerlink.domain.settings import ChannelSettings
from ledgerlink.reporting import print_report
from ledgerlink.sandbox.qbo import QboSandbox
from ledgerlink.sandbox.server import serve
from ledgerlink.sandbox.shopify import ShopifySandbox, generate_orders
from ledgerlink.store.models import Company, Connection, OrderState, Posting, PostingState, StoredOrder
from ledgerlink.sync.connections import add_connection, create_company
from ledgerlink.sync.engine import RunReport, save_settings

SALE_KINDS = ("SalesReceipt", "Invoice", "Estimate")


def add_sandbox_books(session: Session, application: App, company: Company, creds: dict[str, str]) -> Connection:
    """The QuickBooks Online connection of a demo company, with the sandbox's ready tokens."""
    now = datetime.now(UTC)
    return add_connection(
        session,
        application.box,
        company,
        name="quickbooks",
        kind="qbo",
        role="books",
        config={
            "realm_id": creds["realm_id"],
            "client_id": creds["client_id"],
            "api_base": creds["api_base"],
            "token_url": creds["token_url"],
            "authorize_url": creds["authorize_url"],
            "redirect_uri": creds["redirect_uri"],
        },
        secrets={
            "client_secret": creds["client_secret"],
            "access_token": creds["access_token"],
            "refresh_token": creds["refresh_token"],
            "access_expires_at": (now + timedelta(minutes=55)).isoformat(),
            "refresh_expires_at": (now + timedelta(days=100)).isoformat(),
        },
    )


def setup_demo_company(application: App, qbo: QboSandbox, qbo_url: str, shop: ShopifySandbox, shop_url: str) -> int:
    """Company + QuickBooks Online + Shopify connections with the wizard's defaults; returns the channel id."""
    creds = qbo.credentials(qbo_url)
    shop_creds = shop.credentials(shop_url)
    with application.db.session() as session:
        company = create_company(session, "Demo Merchant")
        books = add_sandbox_books(session, application, company, creds)
        channel = add_connection(
            session,
            application.box,
            company,
            name="shopify",
            kind="shopify",
            role="channel",
            config={
                "shop": shop_creds["shop"],
                "base_url": shop_creds["base_url"],
                "api_version": shop_creds["api_version"],
            },
            secrets={"access_token": shop_creds["access_token"]},
            books_id=books.id,
        )
    adapter = application.adapters.books(books)
    try:
        catalog = adapter.catalog(CatalogQuery())
    finally:
        adapter.close()
    settings = ChannelSettings(accounts=suggest_accounts(catalog))
    with application.db.session() as session:
        save_settings(session, channel.id, settings)
    return channel.id


def run_demo(console: Console, *, orders: int, seed: int, data_dir: Path) -> int:
    """Run the demo; returns the exit code (0 when only the seeded failures failed and pass two posted nothing)."""
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(data_dir=data_dir, database_url=f"sqlite:///{data_dir / 'ledgerlink.db'}")
    generated = generate_orders(orders, seed=seed, broken=True)
    seeded = {
        str(o["order_number"]): str(o.get("note") or "")
        for o in generated
        if str(o.get("note") or "").startswith("Broken on purpose")
    }
    qbo = QboSandbox()
    shop = ShopifySandbox()
    shop.add_orders(generated)
    with serve(qbo.app) as qbo_server, serve(shop.app) as shop_server:
        application = bootstrap(settings)
        channel_id = setup_demo_company(application, qbo, qbo_server.base_url, shop, shop_server.base_url)
        console.print(
            f"[bold]ledgerlink demo[/bold]: {len(generated)} Shopify orders → QuickBooks Online sandbox "
            f"(database {data_dir / 'ledgerlink.db'})"
        )
        first = _run_with_progress(application, channel_id, console, "first pass")
        print_report(console, "shopify", first)
        _explain_seeded(console, first, seeded)
        totals_match = _print_totals(console, application, qbo)
        second = _run_with_progress(application, channel_id, console, "second pass")
        posted_again = second.counts.get("posted", 0) + second.counts.get("postings_planned", 0)
        console.print(
            f"[bold]Second pass[/bold]: pulled {second.counts.get('pulled', 0)} orders, "
            f"{second.counts.get('orders_changed', 0)} changed, posted {second.counts.get('posted', 0)} documents"
            + (" — nothing posted twice." if posted_again == 0 else " — UNEXPECTED: documents posted again!")
        )
        application.db.dispose()
    unexpected = [f for f in first.failures if f[0] not in seeded]
    ok = not first.error and not second.error and not unexpected and posted_again == 0 and totals_match
    if not ok:
        console.print("[bold red]demo: something went wrong (see above)[/bold red]")
    return 0 if ok else 1


def _run_with_progress(application: App, channel_id: int, console: Console, label: str) -> RunReport:
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=True
    ) as progress:
        task = progress.add_task(f"{label}: starting")

        def show(stage: str, done: int, _total: int | None) -> None:
            verb = {"pull": "pulled", "plan": "planned", "push": "posted"}.get(stage, stage)
            progress.update(task, description=f"{label}: {verb} {done}")

        return application.engine(progress=show).run(channel_id)


def _explain_seeded(console: Console, report: RunReport, seeded: dict[str, str]) -> None:
    if not seeded:
        return
    console.print("[bold]Failures the demo seeds on purpose[/bold] (a bookkeeper would fix these in Shopify):")
    for number, note in seeded.items():
        failed = next((f for f in report.failures if f[0] == number), None)
        status = f"failed as expected on {failed[1]}" if failed else "DID NOT FAIL"
        console.print(f"  order {number}: {note} → {status}", markup=False)


def _print_totals(console: Console, application: App, qbo: QboSandbox) -> bool:
    """The channel's totals of the posted orders against what QuickBooks itself shows."""
    with application.db.session() as session:
        channel_total = session.scalar(
            select(func.coalesce(func.sum(StoredOrder.total), 0)).where(StoredOrder.state == OrderState.POSTED)
        )
        ledger_total = session.scalar(
            select(func.coalesce(func.sum(Posting.posted_total), 0)).where(
                Posting.state == PostingState.POSTED, Posting.kind.in_(SALE_KINDS)
            )
        )
        posted_orders = session.scalar(select(func.count()).where(StoredOrder.state == OrderState.POSTED))
    books_total = sum(
        (Decimal(str(e.get("TotalAmt", 0))) for kind in SALE_KINDS for e in qbo.entities(kind)), Decimal(0)
    )
    table = Table(title=f"Totals of the {posted_orders} posted orders")
    table.add_column("where")
    table.add_column("total", justify="right")
    channel_total = Decimal(channel_total or 0)
    ledger_total = Decimal(ledger_total or 0)
    table.add_row("Shopify (order totals)", f"{channel_total:.2f}")
    table.add_row("ledger (QuickBooks' answers)", f"{ledger_total:.2f}")
    table.add_row("QuickBooks Online (documents in the company)", f"{books_total:.2f}")
    console.print(table)
    return channel_total == ledger_total == books_total


DEMO_EMAIL = "demo@ledgerlink.test"
DEMO_PASSWORD = "ledgerlink-demo"


def demo_environment(
    data_dir: Path, public_url: str, *, orders: int = 120, seed: int = 7
) -> tuple[Settings, list[Any]]:
    """Sandboxes on local ports and settings pointing the web app at them (`ledgerlink serve --demo`).

    Returns the settings and the running servers (stop them on exit). The database starts empty but for a
    demo login, so a newcomer walks the connections and the wizard themselves.
    """
    from ledgerlink.sandbox.server import RunningServer

    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    qbo = QboSandbox(redirect_uri=f"{public_url.rstrip('/')}/connections/qbo/callback")
    shop = ShopifySandbox()
    shop.add_orders(generate_orders(orders, seed=seed, broken=True))
    qbo_server: RunningServer = serve(qbo.app)
    shop_server: RunningServer = serve(shop.app)
    settings = sandbox_settings(
        qbo.credentials(qbo_server.base_url),
        shop.credentials(shop_server.base_url),
        data_dir=data_dir,
        database_url=f"sqlite:///{data_dir / 'ledgerlink.db'}",
        public_url=public_url,
    )
    return settings, [qbo_server, shop_server, qbo, shop]


def sandbox_settings(
    qbo_creds: dict[str, str],
    shop_creds: dict[str, str],
    *,
    data_dir: Path,
    database_url: str,
    public_url: str,
    **extra: Any,
) -> Settings:
    """Settings that point the web app's "Connect to QuickBooks" and Shopify forms at running sandboxes."""
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        public_url=public_url,
        qbo_client_id=qbo_creds["client_id"],
        qbo_client_secret=qbo_creds["client_secret"],
        qbo_environment="sandbox",
        qbo_api_base=qbo_creds["api_base"],
        qbo_authorize_url=qbo_creds["authorize_url"],
        qbo_token_url=qbo_creds["token_url"],
        demo_shopify_url=shop_creds["base_url"],
        demo_shopify_shop=shop_creds["shop"],
        demo_shopify_token=shop_creds["access_token"],
        demo_shopify_webhook_secret=shop_creds.get("webhook_secret", ""),
        **extra,
    )


def create_demo_login(application: App) -> None:
    """The demo user and company (no connections yet)."""
    from ledgerlink.store.models import Company, Membership, User
    from ledgerlink.web.security import hash_password

    with application.db.session() as session:
        user = User(email=DEMO_EMAIL, name="Demo Bookkeeper", password_hash=hash_password(DEMO_PASSWORD))
        company = Company(name="Demo Merchant", notify_email=DEMO_EMAIL, notify_events=["sync_failed"])
        session.add_all([user, company])
        session.flush()
        session.add(Membership(user_id=user.id, company_id=company.id, role="owner"))
