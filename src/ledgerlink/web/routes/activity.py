"""Sync Activity: the Orders, Errors and Runs tabs, one order's story, and Retry."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.store.models import Connection, Event, OrderState, Posting, StoredOrder
from ledgerlink.sync.engine import retry_order
from ledgerlink.sync.jobs import enqueue
from ledgerlink.web.deps import SessionDep, Viewer, ViewerDep, csrf_protect
from ledgerlink.web.explanations import Explanation, explain
from ledgerlink.web.history import posting_action, revision_history
from ledgerlink.web.queries import (
    ORDER_STATES,
    channel_connections,
    channel_title,
    company_connection,
    company_order,
    kind_title,
    orders_page,
    runs_page,
)
from ledgerlink.web.templating import flash, render

router = APIRouter(dependencies=[Depends(csrf_protect)], include_in_schema=False)

TABS = ("orders", "errors", "runs")


def _not_found(request: Request, viewer: Viewer, what: str = "order") -> Response:
    return render(
        request,
        "error.html",
        status_code=404,
        viewer=viewer,
        title=f"No such {what}",
        message=f"This {what} does not exist, or belongs to another company.",
    )


def explain_order(order: StoredOrder, connection: Connection) -> Explanation:
    """The plain explanation of a failed order."""
    lines = (order.canonical or {}).get("lines") or []
    return explain(
        order.error_field,
        order.detail,
        connection_id=connection.id,
        lines=lines,
        channel=channel_title(connection.kind),
    )


def _int(value: str) -> int | None:
    value = value.strip()
    return int(value) if value.isdigit() else None


@router.get("/activity")
def activity(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    tab: str = "orders",
    q: str = "",
    state: str = "",
    connection: str = "",
    page: str = "1",
) -> Response:
    """Orders (search by number, filter by state and channel), Errors (with the fix and Retry), Runs."""
    tab = tab if tab in TABS else "orders"
    channels = channel_connections(session, viewer.company.id)
    connection_id = _int(connection)
    if connection_id is not None and connection_id not in {c.id for c in channels}:
        connection_id = None  # another company's id filters nothing: it is simply ignored
    context: dict[str, Any] = {
        "tab": tab,
        "q": q,
        "state": state if state in ORDER_STATES else "",
        "connection_id": connection_id,
        "channels": channels,
        "states": ORDER_STATES,
        "kind_title": kind_title,
    }
    if tab == "runs":
        context["runs"] = runs_page(session, viewer.company.id, connection_id=connection_id)
    else:
        result = orders_page(
            session,
            viewer.company.id,
            q=q,
            state=context["state"],
            connection_id=connection_id,
            page=_int(page) or 1,
            failed_only=tab == "errors",
        )
        context["result"] = result
        if tab == "errors":
            context["explanations"] = {row.order.id: explain_order(row.order, row.connection) for row in result.rows}
            context["failed_by_channel"] = _failed_by_channel(session, viewer.company.id)
    return render(request, "activity/index.html", viewer=viewer, **context)


def _failed_by_channel(session: Session, company_id: int) -> list[tuple[Connection, int]]:
    counts: list[tuple[Connection, int]] = []
    for conn in channel_connections(session, company_id):
        failed = len(
            session.scalars(
                select(StoredOrder.id).where(
                    StoredOrder.connection_id == conn.id, StoredOrder.state == OrderState.FAILED
                )
            ).all()
        )
        if failed:
            counts.append((conn, failed))
    return counts


@router.get("/activity/orders/{order_id}")
def order_detail(request: Request, order_id: int, session: SessionDep, viewer: ViewerDep) -> Response:
    """One order: its facts, why it failed or was skipped, its documents, its revision history (what changed
    and what the books did for each) and events."""
    order = company_order(session, viewer.company.id, order_id)
    if order is None:
        return _not_found(request, viewer)
    connection = session.get(Connection, order.connection_id)
    if connection is None:
        return _not_found(request, viewer)
    postings = list(session.scalars(select(Posting).where(Posting.order_id == order.id).order_by(Posting.id)))
    revisions = revision_history(session, order, connection, postings)
    events = list(
        session.scalars(
            select(Event)
            .where(Event.order_id == order.id, Event.company_id == viewer.company.id)
            .order_by(Event.id.desc())
            .limit(200)
        )
    )
    canonical = order.canonical or {}
    return render(
        request,
        "activity/order.html",
        viewer=viewer,
        order=order,
        connection=connection,
        channel=channel_title(connection.kind),
        explanation=explain_order(order, connection) if order.state == OrderState.FAILED else None,
        lines=canonical.get("lines") or [],
        customer=canonical.get("customer") or {},
        postings=postings,
        revisions=revisions,
        events=events,
        kind_title=kind_title,
        posting_action=posting_action,
        raw=json.dumps(order.raw, indent=2, ensure_ascii=False, default=str),
    )


def _retry(session: Session, order: StoredOrder) -> bool:
    """Put one failed order back in line; False when it can only be fetched again (unreadable revision)."""
    if order.canonical is None or order.error_field == "revision":
        return False
    retry_order(session, order)
    return True


@router.post("/activity/orders/{order_id}/retry")
def retry(
    request: Request,
    order_id: int,
    session: SessionDep,
    viewer: ViewerDep,
    back: Annotated[str, Form()] = "",
) -> Response:
    """Retry one failed order: its failed documents go again and the order is fetched again from the channel."""
    order = company_order(session, viewer.company.id, order_id)
    connection = session.get(Connection, order.connection_id) if order is not None else None
    if order is None or connection is None:
        return _not_found(request, viewer)
    if order.state != OrderState.FAILED:
        flash(request, f"Order {order.number} has not failed; there is nothing to retry.", "warn")
        return RedirectResponse(f"/activity/orders/{order.id}", status_code=303)
    if order.error_field == "revision":
        flash(request, f"Order {order.number} was partly posted before it changed: complete it in QuickBooks.", "warn")
        return RedirectResponse(f"/activity/orders/{order.id}", status_code=303)
    _retry(session, order)
    # Fetching the order again picks up a correction made in the channel since it failed.
    enqueue(session, connection, trigger="manual", options={"orders": [order.number]}, requested_by=viewer.user.email)
    flash(request, f"Order {order.number} will be retried: a sync of it is queued.")
    target = "/activity?tab=errors" if back == "errors" else f"/activity/orders/{order.id}"
    return RedirectResponse(target, status_code=303)


@router.post("/activity/retry-all")
def retry_all(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    connection: Annotated[str, Form()] = "",
) -> Response:
    """Retry every failed order of one channel."""
    conn_id = _int(connection)
    conn = company_connection(session, viewer.company.id, conn_id, role="channel") if conn_id else None
    if conn is None:
        return _not_found(request, viewer, "channel")
    failed = list(
        session.scalars(
            select(StoredOrder).where(StoredOrder.connection_id == conn.id, StoredOrder.state == OrderState.FAILED)
        )
    )
    unreadable = [o.number for o in failed if o.error_field != "revision" and not _retry(session, o)]
    retried = sum(1 for o in failed if o.error_field != "revision")
    enqueue(session, conn, trigger="manual", options={}, requested_by=viewer.user.email)
    if unreadable:
        # Orders the channel sent in a shape we could not read are fetched again by number.
        enqueue(session, conn, trigger="manual", options={"orders": unreadable}, requested_by=viewer.user.email)
    plural = "order" if retried == 1 else "orders"
    flash(request, f"{retried} {plural} of {conn.name} will be retried: a sync is queued.")
    return RedirectResponse(f"/activity?tab=errors&connection={conn.id}", status_code=303)
