"""The Order previewer: pick an order or paste its JSON, and see the documents that would be posted. Nothing is posted.

The settings of the chosen channel are used, and the catalog of its QuickBooks company when it has one (so the
preview matches items and customers as the sync would); without one, the stand-in accounts of `ledgerlink.preview`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from ledgerlink.books.qbo.mapping import to_qbo
from ledgerlink.bootstrap import App
from ledgerlink.channels.base import channel_parser
from ledgerlink.domain.documents import Document, DocumentKind, LineKind
from ledgerlink.domain.errors import LedgerlinkError, MappingError
from ledgerlink.domain.order import Order
from ledgerlink.domain.plan import catalog_query, plan
from ledgerlink.domain.settings import ChannelSettings, TransactionType
from ledgerlink.jsonwire import loads
from ledgerlink.preview import PREVIEW_ACCOUNTS, stand_in_catalog, unfiltered, with_stand_in_accounts
from ledgerlink.store.models import Connection
from ledgerlink.sync.engine import load_settings
from ledgerlink.web.deps import AppDep, SessionDep, Viewer, ViewerDep, csrf_protect
from ledgerlink.web.queries import (
    books_label,
    channel_connections,
    channel_title,
    company_connection,
    company_order,
    kind_title,
    recent_orders,
)
from ledgerlink.web.templating import render

router = APIRouter(dependencies=[Depends(csrf_protect)], include_in_schema=False)

TRANSACTION_TYPES = {
    TransactionType.SALES_RECEIPT.value: "Sales Receipts",
    TransactionType.INVOICE.value: "Invoices",
    TransactionType.SALES_ORDER.value: "Sales Orders (Estimates on QuickBooks Online)",
    TransactionType.SALES_ORDER_INVOICE_PAYMENT.value: "Sales Orders, Invoices, and Payments if Paid",
}


@dataclass(frozen=True, slots=True)
class PreviewLine:
    kind: str
    item: str
    description: str
    quantity: Decimal | None
    unit_price: Decimal | None
    amount: Decimal


@dataclass(frozen=True, slots=True)
class PreviewDocument:
    """One document as the previewer shows it, with the JSON QuickBooks Online would receive."""

    kind: str
    title: str
    number: str
    customer: str
    lines: list[PreviewLine]
    tax: Decimal | None
    total: Decimal
    payload: str


@dataclass(slots=True)
class PreviewResult:
    order_number: str
    order_total: Decimal
    currency: str
    documents: list[PreviewDocument] = field(default_factory=list)
    customers: list[str] = field(default_factory=list)
    items: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class PreviewProblem(Exception):
    """The order cannot be previewed; the message names the order and the field."""


def pretty_json(value: Any, indent: int = 0) -> str:
    """JSON with two-space indents and money written with its exact digits (as `ledgerlink.jsonwire` sends it)."""
    pad, inner = "  " * indent, "  " * (indent + 1)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [
            f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {pretty_json(v, indent + 1)}" for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        return "[\n" + ",\n".join(f"{inner}{pretty_json(v, indent + 1)}" for v in value) + f"\n{pad}]"
    return json.dumps(value, ensure_ascii=False, default=str)


def _problem(exc: MappingError, fallback_order: str) -> PreviewProblem:
    order = exc.order or fallback_order or "(no number)"
    where = f"field {exc.field}: " if exc.field else ""
    return PreviewProblem(f"Order {order}: {where}{exc.detail}")


def build_preview(
    app: App,
    raw: dict[str, Any],
    channel_kind: str,
    settings: ChannelSettings,
    books: Connection | None,
    label: str = "",
) -> PreviewResult:
    """Parse, plan and map one order; raises PreviewProblem naming the order and the field."""
    try:
        order: Order = channel_parser(channel_kind)(raw)
    except MappingError as exc:
        raise _problem(exc, label) from None
    notes: list[str] = []
    settings, stand_ins = with_stand_in_accounts(settings)
    if stand_ins:
        notes.append("Accounts not chosen in the settings yet are shown as stand-ins: " + ", ".join(stand_ins) + ".")
    catalog = stand_in_catalog()
    if books is not None:
        try:
            adapter = app.adapters.books(books)
            try:
                catalog = adapter.catalog(catalog_query(order, settings)).with_records(
                    accounts=[a for a in PREVIEW_ACCOUNTS.values() if a.name in stand_ins]
                )
            finally:
                adapter.close()
            name = books_label(app.box, books)
            notes.append(f"Items and customers are matched against your QuickBooks company ({name}).")
        except LedgerlinkError as exc:
            notes.append(f"QuickBooks could not be read ({exc}), so no item or customer is matched: all are new.")
    else:
        notes.append("No QuickBooks company is connected: every customer and item shows as one to create.")
    try:
        result = plan(order, settings, catalog)
        if result.skipped is not None:
            notes.insert(0, f"With these settings the sync leaves this order out: {result.skipped}. Shown anyway:")
            result = plan(order, unfiltered(settings), catalog)
        placeholders = {role: f"<id of the {role.replace('_', ' ')}>" for role in ("sales_order", "invoice")}
        documents = [
            _document(doc, to_qbo(doc, linked=placeholders, company=catalog.company)) for doc in result.documents
        ]
    except MappingError as exc:
        raise _problem(exc, order.number) from None
    if any(d.kind is DocumentKind.ESTIMATE for d in result.documents):
        notes.append("QuickBooks Online has no sales orders: the sales order is posted as an Estimate.")
    return PreviewResult(
        order_number=order.number,
        order_total=order.totals.total,
        currency=order.currency,
        documents=documents,
        customers=[c.display_name + (f" ({c.email})" if c.email else "") for c in result.needs.customers.values()],
        items=[(i.name, i.type) for i in result.needs.items.values()],
        notes=notes,
    )


def _document(doc: Document, payload: dict[str, Any]) -> PreviewDocument:
    return PreviewDocument(
        kind=doc.kind.value,
        title=kind_title(doc.kind.value),
        number=doc.doc_number,
        customer=doc.customer.name if doc.customer else "",
        lines=[
            PreviewLine(
                kind=line.kind.value,
                item=line.item.name if line.item else (line.account.name if line.account else ""),
                description=line.description,
                quantity=line.quantity,
                unit_price=line.unit_price,
                amount=-line.amount if line.kind is LineKind.DISCOUNT else line.amount,
            )
            for line in doc.lines
        ],
        tax=doc.tax_total,
        total=doc.total,
        payload=pretty_json({doc.kind.value: payload}),
    )


def _page(
    request: Request,
    session: Session,
    viewer: Viewer,
    *,
    form: dict[str, str],
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    problem: str = "",
    result: PreviewResult | None = None,
) -> Response:
    return render(
        request,
        "preview/index.html",
        status_code=status_code,
        viewer=viewer,
        form=form,
        errors=errors or {},
        problem=problem,
        result=result,
        orders=recent_orders(session, viewer.company.id),
        channels=channel_connections(session, viewer.company.id),
        transaction_types=TRANSACTION_TYPES,
        channel_title=channel_title,
    )


@router.get("/preview")
def preview_page(request: Request, session: SessionDep, app: AppDep, viewer: ViewerDep, order: str = "") -> Response:
    """The previewer's form; `?order=ID` previews that stored order straight away (nothing is posted)."""
    if order.strip():
        if not order.strip().isdigit() or company_order(session, viewer.company.id, int(order)) is None:
            return render(
                request,
                "error.html",
                status_code=404,
                viewer=viewer,
                title="No such order",
                message="This order does not exist, or belongs to another company.",
            )
        return _preview(
            request, session, app, viewer, order_id=order.strip(), order_json="", connection="", transaction_type=""
        )
    return _page(request, session, viewer, form={})


@router.post("/preview")
def preview(
    request: Request,
    session: SessionDep,
    app: AppDep,
    viewer: ViewerDep,
    order_id: Annotated[str, Form()] = "",
    order_json: Annotated[str, Form()] = "",
    connection: Annotated[str, Form()] = "",
    transaction_type: Annotated[str, Form()] = "",
) -> Response:
    """The documents an order would become with a channel's settings, without posting anything."""
    return _preview(
        request,
        session,
        app,
        viewer,
        order_id=order_id,
        order_json=order_json,
        connection=connection,
        transaction_type=transaction_type,
    )


def _preview(
    request: Request,
    session: Session,
    app: App,
    viewer: Viewer,
    *,
    order_id: str,
    order_json: str,
    connection: str,
    transaction_type: str,
) -> Response:
    form = {
        "order_id": order_id,
        "order_json": order_json,
        "connection": connection,
        "transaction_type": transaction_type,
    }
    errors: dict[str, str] = {}
    conn: Connection | None = None
    if connection.strip():
        conn_id = int(connection) if connection.strip().isdigit() else 0
        conn = company_connection(session, viewer.company.id, conn_id, role="channel") if conn_id else None
        if conn is None:
            errors["connection"] = "pick one of your selling channels"
    raw: Any = None
    label = ""
    if order_json.strip():
        try:
            raw = loads(order_json)
        except json.JSONDecodeError as exc:
            errors["order_json"] = f"this is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        else:
            if isinstance(raw, dict) and isinstance(raw.get("order"), dict):
                raw = raw["order"]  # a webhook body or a REST answer: {"order": {...}}
            if not isinstance(raw, dict):
                errors["order_json"] = "paste one order: a JSON object that starts with {"
    elif order_id.strip():
        stored = company_order(session, viewer.company.id, int(order_id)) if order_id.strip().isdigit() else None
        if stored is None:
            errors["order_id"] = "pick one of your orders"
        else:
            raw, label = stored.raw, stored.number
            if conn is None and "connection" not in errors:
                conn = session.get(Connection, stored.connection_id)
    else:
        errors["order_id"] = "pick an order, or paste an order's JSON below"
    if transaction_type and transaction_type not in TRANSACTION_TYPES:
        errors["transaction_type"] = "pick one of the transaction types"
    if errors or not isinstance(raw, dict):
        return _page(request, session, viewer, form=form, status_code=422, errors=errors)
    settings = load_settings(session, conn.id) if conn is not None else ChannelSettings()
    if transaction_type:
        settings = settings.model_copy(update={"transaction_type": TransactionType(transaction_type)})
    books = session.get(Connection, conn.books_id) if conn is not None and conn.books_id else None
    # The books adapter opens its own sessions: end the request's transaction first (on SQLite it holds the lock).
    session.commit()
    try:
        result = build_preview(app, raw, conn.kind if conn is not None else "shopify", settings, books, label)
    except PreviewProblem as exc:
        return _page(request, session, viewer, form=form, status_code=422, problem=str(exc))
    return _page(request, session, viewer, form=form, result=result)
