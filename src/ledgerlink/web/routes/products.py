"""Unmatched products: channel SKUs no QuickBooks item matches, matched here to an item so their orders re-sync.

The item is typed with suggestions (a datalist of the QuickBooks company's active items, read live through the
books adapter's client) and checked against that same list on save: a datalist stays usable with thousands of
items, where a select would not, and the check keeps a typo from holding the orders up a second time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from ledgerlink.books.qbo import QboBooks
from ledgerlink.bootstrap import App
from ledgerlink.domain.catalog import fold
from ledgerlink.domain.errors import LedgerlinkError
from ledgerlink.store.models import Connection
from ledgerlink.sync.jobs import enqueue, map_product
from ledgerlink.web.deps import AppDep, SessionDep, Viewer, ViewerDep, csrf_protect
from ledgerlink.web.queries import company_connection, product_key, unmatched_products
from ledgerlink.web.templating import flash, render

router = APIRouter(dependencies=[Depends(csrf_protect)], include_in_schema=False)

# Item types a sales line can carry (a Category is only a folder of items).
SELLABLE_TYPES = {"Inventory", "NonInventory", "Service", "Group", "Bundle"}


@dataclass(frozen=True, slots=True)
class ItemChoice:
    """A QuickBooks item a product can be matched to."""

    name: str
    sku: str
    type: str


def end_transaction(session: Session) -> None:
    """End the request's transaction before an adapter call: the adapter's token store opens its own session,
    and on SQLite the request's open transaction holds the write lock it would wait for."""
    session.commit()


def books_items(app: App, books: Connection) -> tuple[list[ItemChoice], str]:
    """The active, sellable items of a QuickBooks company, or an explanation of why they could not be read."""
    try:
        adapter = app.adapters.books(books)
    except LedgerlinkError as exc:
        return [], f"QuickBooks could not be read: {exc}"
    try:
        if not isinstance(adapter, QboBooks):
            return [], "matching items is available for QuickBooks Online"
        rows = adapter.client.query("SELECT * FROM Item WHERE Active = true")
    except LedgerlinkError as exc:
        return [], f"QuickBooks could not be read just now ({exc}); try again in a minute"
    finally:
        adapter.close()
    items = [
        ItemChoice(name=str(row.get("Name") or ""), sku=str(row.get("Sku") or ""), type=str(row.get("Type") or ""))
        for row in rows
        if row.get("Name") and str(row.get("Type") or "NonInventory") in SELLABLE_TYPES
    ]
    return sorted(items, key=lambda i: fold(i.name)), ""


def find_item(items: list[ItemChoice], typed: str) -> ItemChoice | None:
    """The item a person typed: by name, else by SKU (both ignoring case and extra spaces)."""
    wanted = fold(typed)
    by_name = next((i for i in items if fold(i.name) == wanted), None)
    return by_name or next((i for i in items if i.sku and fold(i.sku) == wanted), None)


def _page(
    request: Request,
    session: Session,
    app: App,
    viewer: Viewer,
    *,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    typed: dict[str, str] | None = None,
) -> Response:
    products = unmatched_products(session, viewer.company.id)
    books_ids = sorted({p.connection.books_id for p in products if p.connection.books_id})
    books_rows = [b for b in (session.get(Connection, i) for i in books_ids) if b is not None]
    end_transaction(session)
    catalogs: dict[int, list[ItemChoice]] = {}
    problems: dict[int, str] = {}
    for books in books_rows:
        catalogs[books.id], problem = books_items(app, books)
        if problem:
            problems[books.id] = problem
    return render(
        request,
        "products/unmatched.html",
        status_code=status_code,
        viewer=viewer,
        products=products,
        catalogs=catalogs,
        problems=problems,
        errors=errors or {},
        typed=typed or {},
    )


@router.get("/products/unmatched")
def unmatched(request: Request, session: SessionDep, app: AppDep, viewer: ViewerDep) -> Response:
    """The products that hold orders up, with a form to match each to a QuickBooks item."""
    return _page(request, session, app, viewer)


@router.post("/products/unmatched/match")
def match(
    request: Request,
    session: SessionDep,
    app: AppDep,
    viewer: ViewerDep,
    connection: Annotated[str, Form()] = "",
    sku: Annotated[str, Form()] = "",
    item: Annotated[str, Form()] = "",
) -> Response:
    """Map a SKU to a QuickBooks item (a new settings revision), put its orders back in line and queue a sync."""
    conn_id = int(connection) if connection.strip().isdigit() else 0
    conn = company_connection(session, viewer.company.id, conn_id, role="channel") if conn_id else None
    if conn is None:
        return render(
            request,
            "error.html",
            status_code=404,
            viewer=viewer,
            title="No such channel",
            message="This selling channel does not exist, or belongs to another company.",
        )
    sku = sku.strip()
    key = product_key(conn.id, sku)
    error = ""
    chosen: ItemChoice | None = None
    books = session.get(Connection, conn.books_id) if conn.books_id else None
    if not sku:
        error = "the SKU to match is missing: reload the page and try again"
    elif not item.strip():
        error = "type or pick the QuickBooks item this product is sold as"
    elif books is None:
        error = "this channel is not linked to a QuickBooks company: connect QuickBooks first"
    else:
        end_transaction(session)
        items, problem = books_items(app, books)
        if problem:
            error = problem
        else:
            chosen = find_item(items, item)
            if chosen is None:
                error = f"QuickBooks has no active item named “{item.strip()}”: pick one from the list"
    if error or chosen is None:
        return _page(request, session, app, viewer, status_code=422, errors={key: error}, typed={key: item})
    count = map_product(session, conn, sku, chosen.name, changed_by=viewer.user.email)
    enqueue(session, conn, trigger="manual", options={}, requested_by=viewer.user.email)
    orders = f"{count} order{'s' if count != 1 else ''}"
    flash(request, f"SKU {sku} now posts as “{chosen.name}”. {orders} will re-sync: a sync is queued.")
    return RedirectResponse("/products/unmatched", status_code=303)
