"""The dashboard: one card per selling channel, "Sync now", the live progress of a running sync, and where each
QuickBooks Desktop company file stands with its Web Connector."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.store.models import Connection, SyncJob
from ledgerlink.sync.engine import load_settings
from ledgerlink.sync.jobs import enqueue
from ledgerlink.sync.qbwc import DesktopStatus, desktop_status, run_every_minutes
from ledgerlink.web.deps import SessionDep, Viewer, ViewerDep, application, csrf_protect
from ledgerlink.web.history import recently_changed_after_posting
from ledgerlink.web.queries import (
    channel_cards,
    company_connection,
    has_connections,
    job_progress,
    parse_day,
    parse_order_numbers,
)
from ledgerlink.web.templating import flash, render

router = APIRouter(dependencies=[Depends(csrf_protect)], include_in_schema=False)

DASHBOARD_CSS = "/static/dashboard.css"


@dataclass(frozen=True, slots=True)
class DesktopPanel:
    """A QuickBooks Desktop company file on the dashboard: documents waiting, the Web Connector's last call."""

    connection: Connection
    status: DesktopStatus
    every_minutes: int

    @property
    def never_called(self) -> bool:
        return self.status.last_contact_at is None

    @property
    def overdue(self) -> bool:
        """Called before, and not since for longer than its schedule allows (two missed runs)."""
        return self.status.overdue and self.status.last_contact_at is not None


def desktop_panels(session: Session, company_id: int) -> list[DesktopPanel]:
    """One panel per QuickBooks Desktop connection of the company; the schedule is the connection's (the one its
    .qwc file carries)."""
    books = session.scalars(
        select(Connection).where(Connection.company_id == company_id, Connection.kind == "qbd").order_by(Connection.id)
    ).all()
    panels = []
    for conn in books:
        every = run_every_minutes(conn.config)
        panels.append(DesktopPanel(conn, desktop_status(session, conn.id, every_minutes=every), every))
    return panels


def _dashboard(
    request: Request,
    session: Session,
    viewer: Viewer,
    *,
    status_code: int = 200,
    sync_errors: dict[int, dict[str, str]] | None = None,
    sync_form: dict[int, dict[str, str]] | None = None,
) -> Response:
    cards = channel_cards(session, viewer.company.id, box=application(request).box)
    return render(
        request,
        "dashboard/index.html",
        status_code=status_code,
        viewer=viewer,
        cards=cards,
        desktops=desktop_panels(session, viewer.company.id),
        changed=recently_changed_after_posting(session, viewer.company.id) if cards else [],
        any_connection=bool(cards) or has_connections(session, viewer.company.id),
        sync_errors=sync_errors or {},
        sync_form=sync_form or {},
    )


@router.get("/")
def dashboard(request: Request, session: SessionDep, viewer: ViewerDep) -> Response:
    """Per channel: health, last and next run, orders synced, failures, and Sync now."""
    return _dashboard(request, session, viewer)


@router.post("/connections/{connection_id}/sync")
def sync_now(
    request: Request,
    connection_id: int,
    session: SessionDep,
    viewer: ViewerDep,
    since: Annotated[str, Form()] = "",
    until: Annotated[str, Form()] = "",
    orders: Annotated[str, Form()] = "",
) -> Response:
    """Queue a manual sync of one channel, optionally for a date range or some order numbers."""
    conn = company_connection(session, viewer.company.id, connection_id, role="channel")
    if conn is None:
        return render(
            request,
            "error.html",
            status_code=404,
            viewer=viewer,
            title="No such channel",
            message="This selling channel does not exist, or belongs to another company.",
        )
    errors: dict[str, str] = {}
    start, problem = parse_day(since)
    if problem:
        errors["since"] = problem
    end, problem = parse_day(until)
    if problem:
        errors["until"] = problem
    if start and end and start > end:
        errors["until"] = "the end date is before the start date"
    numbers, problem = parse_order_numbers(orders)
    if problem:
        errors["orders"] = problem
    elif numbers and (start or end):
        errors["orders"] = "sync either a date range or some order numbers, not both at once"
    if conn.books_id is None:
        errors["_"] = "Connect QuickBooks first: this channel has no QuickBooks company to post to."
    else:
        missing = load_settings(session, conn.id).missing()
        if missing:
            errors["_"] = (
                "Finish the settings first (the install wizard asks for them): "
                + ", ".join(m.replace("accounts.", "").replace("_", " ") for m in missing)
                + "."
            )
    if errors:
        form = {"since": since, "until": until, "orders": orders}
        return _dashboard(
            request, session, viewer, status_code=422, sync_errors={conn.id: errors}, sync_form={conn.id: form}
        )
    options: dict[str, Any] = {}
    if start:
        options["since"] = start.isoformat()
    if end:
        options["until"] = end.isoformat()
    if numbers:
        options["orders"] = numbers
    enqueue(session, conn, trigger="manual", options=options, requested_by=viewer.user.email)
    if numbers:
        what = f"order{'s' if len(numbers) > 1 else ''} {', '.join(numbers)}"
    elif start or end:
        what = f"orders created {'from ' + start.isoformat() if start else ''}{' to ' + end.isoformat() if end else ''}"
    else:
        what = "new and changed orders"
    flash(request, f"Sync of {conn.name} queued ({what}). The progress shows on its card.")
    return RedirectResponse("/", status_code=303)


@router.get("/jobs/{job_id}/progress")
def progress(job_id: int, session: SessionDep, viewer: ViewerDep) -> Response:
    """`{percent, text, finished}` of a sync job of the viewer's company (polled by the progress bar)."""
    job = session.get(SyncJob, job_id)
    if job is None or job.company_id != viewer.company.id:
        return JSONResponse({"detail": "no such sync"}, status_code=404)
    return JSONResponse(job_progress(session, job))
