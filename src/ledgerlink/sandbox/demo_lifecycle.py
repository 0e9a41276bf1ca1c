"""`ledgerlink demo --scenario lifecycle`: one order's whole life, step by step, against the local sandboxes.

An unpaid order is placed in the Shopify sandbox and posted as an invoice; then it is edited, paid in two
captures, shipped through the sandbox's REST fulfillment-orders API (the tracking number goes onto the
invoice), partly refunded through its REST refunds endpoint, and cancelled. After each step the engine syncs,
and the demo prints what QuickBooks Online shows for the order next to what the channel says: the totals must
match at every step, and a last sync must post nothing.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ledgerlink.bootstrap import App, bootstrap
from ledgerlink.config import Settings
from ledgerlink.domain.settings import TransactionType
from ledgerlink.sandbox.demo import setup_demo_company
from ledgerlink.sandbox.qbo import QboSandbox
from ledgerlink.sandbox.server import serve
from ledgerlink.sandbox.shopify import ShopifySandbox, generate_orders
from ledgerlink.sandbox.shopify import lifecycle as shopify
from ledgerlink.sandbox.shopify.fulfilments import FulfilmentsClient
from ledgerlink.sandbox.shopify.refunds import RefundsClient
from ledgerlink.sync.engine import RunReport, load_settings, save_settings

ORDER_ID = 7_700_000_000_001
NUMBER = 9001
TRACKING = "1Z999AA10123456784"
SALES = ("Invoice", "CreditMemo")
KINDS = ("Invoice", "Payment", "CreditMemo")
ZERO = Decimal(0)
Step = tuple[str, Callable[[], object] | None]


def run_lifecycle_demo(console: Console, *, seed: int, data_dir: Path) -> int:
    """Run the scenario; returns 0 when every step's totals matched and nothing was posted twice."""
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(data_dir=data_dir, database_url=f"sqlite:///{data_dir / 'ledgerlink.db'}")
    qbo, shop = QboSandbox(), ShopifySandbox()
    template = next(o for o in generate_orders(12, seed=seed) if len(o["line_items"]) >= 2)
    order = shopify.unpaid_order(template)
    order.update(id=ORDER_ID, order_number=NUMBER, name=f"#{NUMBER}")
    shop.add_orders([order])
    shopify.edit_quantity(shop, ORDER_ID, 0, 2)
    ok = True
    with serve(qbo.app) as qbo_server, serve(shop.app) as shop_server:
        application = bootstrap(settings)
        channel_id = setup_demo_company(application, qbo, qbo_server.base_url, shop, shop_server.base_url)
        _use_invoices(application, channel_id)
        # Shipments and refunds go through the sandbox's REST API, as a Shopify app (or the admin) makes them.
        refunds = RefundsClient.for_sandbox(shop, shop_server.base_url)
        shipping = FulfilmentsClient.for_sandbox(shop, shop_server.base_url)
        console.print(
            f"[bold]ledgerlink demo — lifecycle[/bold]: Shopify order #{NUMBER} → QuickBooks Online invoices "
            f"(database {data_dir / 'ledgerlink.db'})"
        )
        steps: list[Step] = [
            ("placed, not paid yet", None),
            ("edited: the first line's quantity 2 → 3", lambda: shopify.edit_quantity(shop, ORDER_ID, 0, 3)),
            ("a first capture of a third", lambda: shopify.capture(shop, ORDER_ID, _third(shop))),
            ("the rest captured", lambda: shopify.capture(shop, ORDER_ID)),
            (
                f"shipped: UPS {TRACKING} (POST fulfillments.json)",
                lambda: shipping.fulfil(ORDER_ID, TRACKING, company="UPS"),
            ),
            (
                "one unit of the first line refunded (POST refunds.json)",
                lambda: refunds.refund(ORDER_ID, [(0, 1)]),
            ),
            ("cancelled (Shopify refunds the rest)", lambda: shopify.cancel(shop, ORDER_ID)),
        ]
        for number, (label, action) in enumerate(steps, start=1):
            if action is not None:
                action()
            report = application.engine().run(channel_id)
            ok &= _show_step(console, number, label, report, qbo, shop)
        refunds.close()
        shipping.close()
        tracked = [e.get("TrackingNum") for e in qbo.entities("Invoice") if _ours(e)]
        console.print(f"[bold]Tracking on the invoice[/bold]: {', '.join(map(str, tracked))}")
        ok &= tracked == [TRACKING]
        last = application.engine().run(channel_id)
        again = last.counts.get("posted", 0) + last.counts.get("postings_planned", 0)
        duplicates = _duplicates(qbo)
        console.print(
            f"[bold]A last sync[/bold]: posted {last.counts.get('posted', 0)} documents"
            + (" — nothing posted twice." if again == 0 and not duplicates else f" — UNEXPECTED {duplicates}")
        )
        ok &= again == 0 and not duplicates and not last.error
        application.db.dispose()
    console.print("[bold green]lifecycle demo: every step matched[/bold green]" if ok else "[bold red]mismatch[/]")
    return 0 if ok else 1


def _use_invoices(application: App, channel_id: int) -> None:
    """Invoices, and unpaid orders synced too (an unpaid order is an open invoice until it is paid)."""
    with application.db.session() as session:
        current = load_settings(session, channel_id)
        statuses = ["pending", "partially_paid", "paid", "partially_refunded", "refunded", "voided"]
        orders = current.orders.model_copy(update={"financial_statuses": statuses})
        save_settings(
            session,
            channel_id,
            current.model_copy(update={"transaction_type": TransactionType.INVOICE, "orders": orders}),
            changed_by="demo",
        )


def _third(shop: ShopifySandbox) -> Decimal:
    return (Decimal(shop.orders[ORDER_ID]["total_price"]) / 3).quantize(Decimal("0.01"))


def _ours(entity: dict[str, Any]) -> bool:
    number = str(entity.get("DocNumber") or entity.get("PaymentRefNum") or "")
    return number == str(NUMBER) or number.startswith(f"{NUMBER}-")


def _voided(entity: dict[str, Any]) -> bool:
    return str(entity.get("PrivateNote") or "").startswith("Voided")


def _live(qbo: QboSandbox, kind: str) -> Decimal:
    return sum((Decimal(str(e["TotalAmt"])) for e in qbo.entities(kind) if _ours(e) and not _voided(e)), ZERO)


def _channel(shop: ShopifySandbox) -> dict[str, Decimal]:
    """What the channel says: the order total, what was captured, the value refunded (zero once cancelled)."""
    order = shop.orders[ORDER_ID]
    refunded = ZERO
    for refund in order.get("refunds") or []:
        for item in refund.get("refund_line_items") or []:
            refunded += Decimal(item["subtotal"]) + Decimal(item["total_tax"])
        for adjustment in refund.get("order_adjustments") or []:
            refunded -= Decimal(adjustment["amount"]) + Decimal(adjustment["tax_amount"])
    if order.get("cancelled_at"):
        # Cancelled: the books void the sale, its payments and credits.
        return {"Invoice": ZERO, "Payment": ZERO, "CreditMemo": ZERO}
    return {
        "Invoice": Decimal(order["total_price"]),
        "Payment": shopify.captured(shop, ORDER_ID),
        "CreditMemo": refunded,
    }


def _show_step(
    console: Console, number: int, label: str, report: RunReport, qbo: QboSandbox, shop: ShopifySandbox
) -> bool:
    table = Table(title=f"Step {number}: {label}", title_justify="left")
    for column in ("QuickBooks document", "number", "total", "balance", "status"):
        table.add_column(column, justify="right" if column in ("total", "balance") else "left")
    for kind in KINDS:
        for entity in qbo.entities(kind):
            if not _ours(entity):
                continue
            balance = entity.get("Balance", entity.get("UnappliedAmt", ""))
            table.add_row(
                kind,
                str(entity.get("DocNumber") or entity.get("PaymentRefNum") or ""),
                f"{Decimal(str(entity['TotalAmt'])):.2f}",
                f"{Decimal(str(balance)):.2f}" if balance != "" else "",
                "voided" if _voided(entity) else f"SyncToken {entity['SyncToken']}",
            )
    console.print(table)
    expected = _channel(shop)
    matches = True
    for kind in KINDS:
        books = _live(qbo, kind)
        same = books == expected[kind]
        matches &= same
        mark = "[green]✓[/green]" if same else "[red]✗[/red]"
        console.print(f"  {mark} {kind}s in QuickBooks {books:.2f} — channel {expected[kind]:.2f}")
    counts = report.counts
    console.print(
        f"  sync: created {counts.get('posted', 0) - counts.get('updated', 0) - counts.get('voided', 0)}, "
        f"updated {counts.get('updated', 0)}, voided {counts.get('voided', 0)}"
        + (f", error: {report.error}" if report.error else "")
        + (f", failures: {report.failures}" if report.failures else "")
    )
    return matches and not report.error and not report.failures


def _duplicates(qbo: QboSandbox) -> list[str]:
    numbers = Counter(str(e["DocNumber"]) for kind in SALES for e in qbo.entities(kind) if e.get("DocNumber"))
    return [number for number, count in numbers.items() if count > 1]
