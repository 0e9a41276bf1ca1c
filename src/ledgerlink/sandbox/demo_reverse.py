"""`ledgerlink demo --scenario from-quickbooks`: sales entered in QuickBooks go to ShipStation and come back shipped.

Against the two local sandboxes, on a throw-away SQLite database: sales are created in the QuickBooks Online
sandbox, the reverse sync sends them to the ShipStation sandbox, one is edited before it ships (the order is
updated), two are shipped in ShipStation (one marked shipped, one with a label bought there) and their
tracking numbers — and the label's cost, in the memo — are written back onto the QuickBooks documents, one
is voided (the order is cancelled), one is edited after it shipped (recorded, not sent), and a last pass sends
nothing.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from ledgerlink.bootstrap import App, bootstrap
from ledgerlink.config import Settings
from ledgerlink.domain.reverse import FromBooksSettings, order_key
from ledgerlink.domain.settings import ChannelSettings, SyncDirection
from ledgerlink.sandbox.demo import add_sandbox_books
from ledgerlink.sandbox.qbo import QboSandbox
from ledgerlink.sandbox.server import serve
from ledgerlink.sandbox.shipstation import ShipStationSandbox
from ledgerlink.store.models import ReverseOrder
from ledgerlink.sync.connections import add_connection, create_company
from ledgerlink.sync.engine import save_settings
from ledgerlink.sync.reverse import ReverseReport, ReverseSync

MANUAL_STORE_ID = 310204


def setup_reverse_company(
    application: App,
    qbo: QboSandbox,
    qbo_url: str,
    shipstation: ShipStationSandbox,
    shipstation_url: str,
    from_books: FromBooksSettings | None = None,
) -> int:
    """Company + QuickBooks Online + ShipStation (direction: from QuickBooks); returns the ShipStation connection id."""
    creds = qbo.credentials(qbo_url)
    with application.db.session() as session:
        company = create_company(session, "Demo Merchant (from QuickBooks)")
        books = add_sandbox_books(session, application, company, creds)
        channel = add_connection(
            session,
            application.box,
            company,
            name="shipstation",
            kind="shipstation",
            role="channel",
            config={"base_url": shipstation_url},
            secrets={"api_key": shipstation.api_key, "api_secret": shipstation.api_secret},
            books_id=books.id,
        )
        settings = ChannelSettings(
            direction=SyncDirection.FROM_BOOKS,
            from_books=from_books or FromBooksSettings(store_id=MANUAL_STORE_ID),
        )
        save_settings(session, channel.id, settings)
        return channel.id


# -- writing sales into the QuickBooks sandbox, as a bookkeeper would -----------------------------------------


@dataclass(frozen=True)
class SaleLine:
    item: str
    qty: int
    price: Decimal


def create_sale(
    qbo: QboSandbox,
    entity: str,
    number: str,
    lines: Sequence[SaleLine],
    *,
    customer: str = "Amy's Bird Sanctuary",
    shipping: Decimal = Decimal(0),
    tax: Decimal = Decimal(0),
    class_name: str | None = "Online Store",
    ship_via: str | None = None,
) -> dict[str, Any]:
    """Create a SalesReceipt or Invoice in the sandbox company (directly, not over HTTP); returns it."""
    company = qbo.company
    with qbo.lock:
        who = company.find("Customer", DisplayName=customer)
        if who is None:
            raise KeyError(customer)
        body: dict[str, Any] = {
            "DocNumber": number,
            "TxnDate": company.now().date().isoformat(),
            "CustomerRef": {"value": who["Id"]},
            "Line": [],
            "TxnTaxDetail": {"TotalTax": tax},
            "BillAddr": {
                "Line1": "4581 Finch St.",
                "City": "Bayshore",
                "CountrySubDivisionCode": "CA",
                "PostalCode": "94326",
                "Country": "USA",
            },
            "ShipAddr": {
                "Line1": "12 Harbor Way",
                "City": "San Pablo",
                "CountrySubDivisionCode": "CA",
                "PostalCode": "87999",
                "Country": "USA",
            },
            "BillEmail": {"Address": "buyer@example.com"},
        }
        for line in lines:
            item = company.find("Item", Name=line.item)
            if item is None:
                raise KeyError(line.item)
            body["Line"].append(
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": line.price * line.qty,
                    "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}, "Qty": line.qty, "UnitPrice": line.price},
                }
            )
        if shipping:
            body["Line"].append(
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": shipping,
                    "SalesItemLineDetail": {"ItemRef": {"value": "SHIPPING_ITEM_ID"}},
                }
            )
        if class_name:
            klass = company.find("Class", Name=class_name)
            if klass is None:
                raise KeyError(class_name)
            body["ClassRef"] = {"value": klass["Id"]}
        if ship_via:
            body["ShipMethodRef"] = {"value": ship_via, "name": ship_via}
        return company.write(entity, body)


def edit_sale(qbo: QboSandbox, entity: str, doc_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    """A sparse update of a sale, as the QuickBooks UI would save an edit."""
    with qbo.lock:
        current = qbo.company.read(entity, doc_id)
        body = {"Id": doc_id, "SyncToken": current["SyncToken"], "sparse": True, **changes}
        return qbo.company.write(entity, body, operation="update")


def void_sale(qbo: QboSandbox, entity: str, doc_id: str) -> dict[str, Any]:
    with qbo.lock:
        current = qbo.company.read(entity, doc_id)
        return qbo.company.write(entity, {"Id": doc_id, "SyncToken": current["SyncToken"]}, operation="void")


def delete_sale(qbo: QboSandbox, entity: str, doc_id: str) -> dict[str, Any]:
    with qbo.lock:
        current = qbo.company.read(entity, doc_id)
        return qbo.company.write(entity, {"Id": doc_id, "SyncToken": current["SyncToken"]}, operation="delete")


def lines_of(qbo: QboSandbox, entity: str, doc_id: str) -> list[dict[str, Any]]:
    """The sale's lines as an edit sends them back (QuickBooks' own subtotal line left out)."""
    with qbo.lock:
        current = qbo.company.read(entity, doc_id)
    return [line for line in current["Line"] if line.get("DetailType") != "SubTotalLineDetail"]


# -- the demo ---------------------------------------------------------------------------------------------------


def run_reverse_demo(console: Console, *, data_dir: Path | None = None) -> int:
    """Run the from-QuickBooks scenario; returns 0 when every step did what it should, else 1."""
    if data_dir is None:
        with tempfile.TemporaryDirectory(prefix="ledgerlink-reverse-demo-") as tmp:
            return _run(console, Path(tmp))
    data_dir.mkdir(parents=True, exist_ok=True)
    return _run(console, data_dir)


def _run(console: Console, data_dir: Path) -> int:
    settings = Settings(data_dir=data_dir, database_url=f"sqlite:///{data_dir / 'reverse-demo.db'}")
    qbo = QboSandbox()
    # ShipStation's 40 requests a minute, in scaled time (a minute lasts a second) so the demo does not wait.
    shipstation = ShipStationSandbox(time_scale=60.0)
    problems: list[str] = []
    with serve(qbo.app) as qbo_server, serve(shipstation.app) as ss_server:
        shipstation.base_url = ss_server.base_url
        application = bootstrap(settings)
        try:
            connection_id = setup_reverse_company(
                application,
                qbo,
                qbo_server.base_url,
                shipstation,
                ss_server.base_url,
                FromBooksSettings(
                    store_id=MANUAL_STORE_ID,
                    class_ids=[_class_id(qbo, "Online Store")],
                    ship_via_services={"UPS": "UPS® Ground"},
                    write_shipping_cost=True,
                ),
            )
            sync = ReverseSync(application.db, application.adapters)
            problems = _scenario(console, qbo, shipstation, sync, application, connection_id)
        finally:
            application.db.dispose()
    if problems:
        for problem in problems:
            console.print(f"[bold red]✗[/bold red] {problem}", markup=True)
        console.print("[bold red]demo (from QuickBooks): something went wrong (see above)[/bold red]")
        return 1
    console.print("[bold green]demo (from QuickBooks): every step did what it should[/bold green]")
    return 0


def _scenario(
    console: Console,
    qbo: QboSandbox,
    shipstation: ShipStationSandbox,
    sync: ReverseSync,
    application: App,
    connection_id: int,
) -> list[str]:
    problems: list[str] = []
    realm = qbo.realm_id
    hat, mug, shirt = "Red Hat", "Coffee Mug", "T-Shirt M"
    sales = {
        "QB-1001": create_sale(
            qbo,
            "SalesReceipt",
            "QB-1001",
            [SaleLine(hat, 2, Decimal("19.99"))],
            shipping=Decimal("5.00"),
            tax=Decimal("3.20"),
            ship_via="UPS",
        ),
        "QB-1002": create_sale(qbo, "SalesReceipt", "QB-1002", [SaleLine(mug, 2, Decimal("10.99"))]),
        "QB-1003": create_sale(
            qbo,
            "SalesReceipt",
            "QB-1003",
            [SaleLine(shirt, 1, Decimal("25.00")), SaleLine(mug, 1, Decimal("10.99"))],
            customer="Cool Cars",
        ),
        "QB-1004": create_sale(qbo, "Invoice", "QB-1004", [SaleLine(hat, 5, Decimal("19.99"))], customer="Cool Cars"),
        "QB-1005": create_sale(
            qbo, "SalesReceipt", "QB-1005", [SaleLine(mug, 1, Decimal("10.99"))], class_name="Retail"
        ),
        "QB-1006": create_sale(qbo, "SalesReceipt", "QB-1006", [SaleLine(hat, 1, Decimal("19.99"))]),
    }
    kinds = {number: ("Invoice" if number == "QB-1004" else "SalesReceipt") for number in sales}
    console.print(
        f"[bold]ledgerlink demo — orders from QuickBooks[/bold]: {len(sales)} sales entered in the QuickBooks Online "
        "sandbox (QB-1005 is class Retail, which the settings leave out)"
    )

    def key(number: str) -> str:
        return order_key(realm, kinds[number], str(sales[number]["Id"]))

    def orders() -> dict[str, dict[str, Any]]:
        return {str(o.get("orderKey")): o for o in shipstation.orders.values()}

    first = _pass(console, sync, connection_id, "1. first sync")
    seen = orders()
    if sorted(k for k in seen) != sorted(key(n) for n in sales if n != "QB-1005"):
        problems.append(f"first sync: ShipStation has {sorted(seen)}, not the five Online Store sales")
    if seen.get(key("QB-1004"), {}).get("orderStatus") != "awaiting_payment":
        problems.append("the invoice with a balance due is not awaiting_payment")
    if first.counts["createorders_calls"] != 1:
        problems.append(f"first sync made {first.counts['createorders_calls']} createorders calls, not 1")

    # 2. An edit in QuickBooks before shipping: two mugs become three.
    edited_lines = lines_of(qbo, "SalesReceipt", sales["QB-1002"]["Id"])
    edited_lines[0]["Amount"] = Decimal("32.97")
    edited_lines[0]["SalesItemLineDetail"]["Qty"] = 3
    edit_sale(qbo, "SalesReceipt", sales["QB-1002"]["Id"], {"Line": edited_lines})
    _pass(console, sync, connection_id, "2. QB-1002 edited before shipping (2 mugs → 3)")
    mugs = orders()[key("QB-1002")]["items"][0]["quantity"]
    if mugs != 3:
        problems.append(f"the edit did not reach ShipStation (quantity {mugs})")

    # 3. Two orders ship in ShipStation (one marked shipped, one with a label bought there, which has a cost);
    # one sale is voided in QuickBooks.
    shipstation.mark_as_shipped(
        {
            "orderId": orders()[key("QB-1001")]["orderId"],
            "carrierCode": "ups",
            "trackingNumber": "1Z999AA10123456784",
            "shipDate": datetime.now(UTC).date().isoformat(),
        }
    )
    label = shipstation.create_label_for_order(
        {"orderId": orders()[key("QB-1003")]["orderId"], "carrierCode": "usps", "serviceCode": "usps_priority_mail"}
    )
    void_sale(qbo, "SalesReceipt", sales["QB-1006"]["Id"])
    _pass(console, sync, connection_id, "3. QB-1001 and QB-1003 shipped in ShipStation; QB-1006 voided in QuickBooks")
    if orders()[key("QB-1006")]["orderStatus"] != "cancelled":
        problems.append("the voided sale's order is not cancelled in ShipStation")
    for number, tracking in (("QB-1001", "1Z999AA10123456784"), ("QB-1003", str(label["trackingNumber"]))):
        doc = qbo.entity("SalesReceipt", str(sales[number]["Id"]))
        if doc.get("TrackingNum") != tracking or not doc.get("ShipDate"):
            problems.append(f"{number}: tracking {doc.get('TrackingNum')!r} is not back on the QuickBooks sale")
    cost = f"{Decimal(str(label['shipmentCost'])):.2f}"
    memo = str(qbo.entity("SalesReceipt", str(sales["QB-1003"]["Id"])).get("PrivateNote") or "")
    if f"shipping cost {cost}" not in memo:
        problems.append(f"QB-1003: the label cost {cost} is not in the QuickBooks memo ({memo!r})")
    else:
        console.print(f"   QB-1003's memo in QuickBooks: {memo.splitlines()[-1]}")

    # 4. An edit after shipping is not sent (ShipStation cannot change a shipped order): it is recorded.
    edit_sale(qbo, "SalesReceipt", sales["QB-1001"]["Id"], {"PrivateNote": "gift wrap, please"})
    fourth = _pass(console, sync, connection_id, "4. QB-1001 edited in QuickBooks after it shipped")
    if not any(number == "QB-1001" for number, _ in fourth.refusals):
        problems.append("the edit after shipping was not recorded as refused")

    # 5. Nothing changed: nothing is sent.
    before = shipstation.stats.requests
    last = _pass(console, sync, connection_id, "5. again, with nothing changed")
    creates = sum(v for k, v in last.calls.items() if "createorder" in k)
    if creates or last.counts["shipments_written"]:
        problems.append(f"the last pass sent {creates} createorders calls and wrote {last.counts['shipments_written']}")
    console.print(f"   (ShipStation saw {shipstation.stats.requests - before} requests: the shipments poll only)")

    _table(console, qbo, shipstation, application, connection_id, sales, kinds, key)
    return problems


def _pass(console: Console, sync: ReverseSync, connection_id: int, label: str) -> ReverseReport:
    report = sync.run(connection_id)
    counts = report.counts
    parts = [
        f"{name.replace('_', ' ')} {counts[name]}"
        for name in ("read", "created", "updated", "cancelled", "unchanged", "filtered", "refused", "shipments_written")
        if counts[name]
    ]
    console.print(f"[bold]{label}[/bold]: " + (", ".join(parts) or "nothing to do"))
    for number, why in report.refusals:
        console.print(f"   recorded for {number}: {why}", markup=False)
    if report.error:
        console.print(f"   [red]error: {report.error}[/red]")
    return report


def _table(
    console: Console,
    qbo: QboSandbox,
    shipstation: ShipStationSandbox,
    application: App,
    connection_id: int,
    sales: dict[str, dict[str, Any]],
    kinds: dict[str, str],
    key: Any,
) -> None:
    by_key = {str(o.get("orderKey")): o for o in shipstation.orders.values()}
    with application.db.session(readonly=True) as session:
        rows = {
            r.order_key: r
            for r in session.scalars(select(ReverseOrder).where(ReverseOrder.connection_id == connection_id))
        }
    table = Table(title="QuickBooks sales and their ShipStation orders")
    for column in ("QuickBooks", "type", "total", "ShipStation", "tracking in QuickBooks", "ship via", "ledger"):
        table.add_column(column)
    for number, sale in sales.items():
        doc = qbo.entity(kinds[number], str(sale["Id"]))
        order = by_key.get(key(number))
        row = rows.get(key(number))
        method = doc.get("ShipMethodRef") or {}
        table.add_row(
            number,
            kinds[number],
            f"{Decimal(str(doc.get('TotalAmt', 0))):.2f}",
            str(order.get("orderStatus")) if order else "— (not sent)",
            str(doc.get("TrackingNum") or ""),
            str(method.get("value") or "") if isinstance(method, dict) else "",
            f"{row.state}" if row else "",
        )
    console.print(table)


def _class_id(qbo: QboSandbox, name: str) -> str:
    with qbo.lock:
        found = qbo.company.find("Class", Name=name)
    if found is None:
        raise KeyError(name)
    return str(found["Id"])
