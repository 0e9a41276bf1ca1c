"""The JSON API under /api/v1 (bearer tokens from My Account). Every object is scoped to the token's company:
another company's id answers 404, exactly like an id that does not exist."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ledgerlink.domain.errors import LedgerlinkError
from ledgerlink.domain.settings import ChannelSettings
from ledgerlink.preview import PREVIEW_ACCOUNTS, preview_body, with_stand_in_accounts
from ledgerlink.store.models import (
    ApiToken,
    Company,
    Connection,
    Event,
    OrderState,
    Posting,
    PostingState,
    SettingsRevision,
    StoredOrder,
    SyncJob,
    SyncRun,
)
from ledgerlink.sync.engine import load_settings, retry_order, save_settings
from ledgerlink.sync.jobs import enqueue
from ledgerlink.web.api_models import (
    CompanyOut,
    ConnectionOut,
    DocumentOut,
    EventOut,
    JobCreated,
    JobOut,
    OrderDetailOut,
    OrderOut,
    OrderPage,
    PreviewOut,
    PreviewRequest,
    RetryOut,
    RunOut,
    SettingsOut,
    SettingsRevisionOut,
    SyncRequest,
)
from ledgerlink.web.deps import ApiCompanyDep, SessionDep
from ledgerlink.web.security import token_digest

router = APIRouter(prefix="/api/v1", tags=["api"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such object in this company"}}
ORDER_STATES = tuple(s.value for s in OrderState)


def _token_name(request: Request, session: SessionDep, _company: ApiCompanyDep) -> str:
    """Who made a change through the API, for the settings history: "api:<token name>"."""
    token = request.headers.get("authorization", "").partition(" ")[2].strip()
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == token_digest(token))).first()
    return f"api:{row.name}" if row is not None else "api"


TokenNameDep = Annotated[str, Depends(_token_name)]


def _connection(session: Session, company: Company, connection_id: int, *, channel: bool = False) -> Connection:
    conn = session.get(Connection, connection_id)
    if conn is None or conn.company_id != company.id:
        raise HTTPException(status_code=404, detail="no such connection")
    if channel and conn.role != "channel":
        raise HTTPException(status_code=404, detail="not a channel connection (settings and syncs belong to channels)")
    return conn


def _order(session: Session, company: Company, order_id: int) -> StoredOrder:
    order = session.get(StoredOrder, order_id)
    if order is None or order.company_id != company.id:
        raise HTTPException(status_code=404, detail="no such order")
    return order


def _documents(session: Session, orders: list[StoredOrder]) -> dict[int, list[DocumentOut]]:
    """The documents of each order's current revision, in one query for the whole page."""
    if not orders:
        return {}
    revision = {o.id: o.revision for o in orders}
    rows = session.scalars(
        select(Posting)
        .where(Posting.order_id.in_(list(revision)), Posting.state != PostingState.SUPERSEDED)
        .order_by(Posting.id)
    )
    found: dict[int, list[DocumentOut]] = defaultdict(list)
    for p in rows:
        if p.revision != revision[p.order_id]:
            continue
        found[p.order_id].append(
            DocumentOut(
                kind=p.kind,
                role=p.role,
                state=p.state,
                doc_number=p.doc_number,
                remote_id=p.remote_id,
                total=p.posted_total if p.posted_total is not None else p.total,
                posted_at=p.posted_at,
                error=p.error,
            )
        )
    return found


def _order_out(order: StoredOrder, channel: str, documents: list[DocumentOut]) -> dict[str, Any]:
    return {
        "id": order.id,
        "number": order.number,
        "channel": channel,
        "connection_id": order.connection_id,
        "state": order.state,
        "detail": order.detail,
        "error_field": order.error_field,
        "total": order.total,
        "currency": order.currency,
        "channel_created_at": order.channel_created_at,
        "updated_at": order.updated_at,
        "documents": documents,
    }


# -- company and connections ---------------------------------------------------------------------------------


@router.get("/company", response_model=CompanyOut)
def get_company(company: ApiCompanyDep) -> CompanyOut:
    """The company the token belongs to."""
    return CompanyOut.model_validate(company)


@router.get("/connections", response_model=list[ConnectionOut])
def list_connections(session: SessionDep, company: ApiCompanyDep) -> list[ConnectionOut]:
    """The company's books and channel connections."""
    rows = session.scalars(select(Connection).where(Connection.company_id == company.id).order_by(Connection.id))
    return [ConnectionOut.model_validate(c) for c in rows]


@router.get("/connections/{connection_id}", response_model=ConnectionOut, responses=NOT_FOUND)
def get_connection(connection_id: int, session: SessionDep, company: ApiCompanyDep) -> ConnectionOut:
    return ConnectionOut.model_validate(_connection(session, company, connection_id))


def _settings_out(session: Session, conn: Connection) -> SettingsOut:
    settings = load_settings(session, conn.id)
    revision = session.scalar(
        select(func.max(SettingsRevision.revision)).where(SettingsRevision.connection_id == conn.id)
    )
    return SettingsOut(
        connection_id=conn.id, revision=int(revision or 0), missing=settings.missing(), settings=settings
    )


@router.get("/connections/{connection_id}/settings", response_model=SettingsOut, responses=NOT_FOUND)
def get_settings(connection_id: int, session: SessionDep, company: ApiCompanyDep) -> SettingsOut:
    """The settings in force for a channel connection."""
    return _settings_out(session, _connection(session, company, connection_id, channel=True))


@router.put("/connections/{connection_id}/settings", response_model=SettingsOut, responses=NOT_FOUND)
def put_settings(
    connection_id: int,
    body: ChannelSettings,
    session: SessionDep,
    company: ApiCompanyDep,
    changed_by: TokenNameDep,
) -> SettingsOut:
    """Replace the settings (validated like the Settings pages); saved as a new revision."""
    conn = _connection(session, company, connection_id, channel=True)
    save_settings(session, conn.id, body, changed_by=changed_by)
    session.flush()
    return _settings_out(session, conn)


@router.get(
    "/connections/{connection_id}/settings/history", response_model=list[SettingsRevisionOut], responses=NOT_FOUND
)
def settings_history(connection_id: int, session: SessionDep, company: ApiCompanyDep) -> list[SettingsRevisionOut]:
    """Every saved revision, newest first, with who saved it."""
    conn = _connection(session, company, connection_id, channel=True)
    rows = session.scalars(
        select(SettingsRevision)
        .where(SettingsRevision.connection_id == conn.id)
        .order_by(SettingsRevision.revision.desc())
    )
    return [
        SettingsRevisionOut(
            revision=r.revision,
            schema_version=r.schema_version,
            changed_by=r.changed_by,
            saved_at=r.saved_at,
            settings=r.data,
        )
        for r in rows
    ]


@router.post(
    "/connections/{connection_id}/sync",
    response_model=JobCreated,
    status_code=202,
    responses={**NOT_FOUND, 409: {"description": "the connection cannot sync yet (the message says why)"}},
)
def start_sync(
    connection_id: int,
    session: SessionDep,
    company: ApiCompanyDep,
    changed_by: TokenNameDep,
    body: SyncRequest | None = None,
) -> JobCreated:
    """Queue a sync ("Sync now"); poll GET /jobs/{job_id}. The same waiting sync is never queued twice."""
    conn = _connection(session, company, connection_id, channel=True)
    body = body or SyncRequest()
    if body.since and body.until and body.since > body.until:
        raise HTTPException(status_code=422, detail="since is after until")
    if conn.books_id is None:
        raise HTTPException(status_code=409, detail="connect QuickBooks first: this channel has nowhere to post")
    missing = load_settings(session, conn.id).missing()
    if missing:
        raise HTTPException(status_code=409, detail=f"finish the setup first; missing: {', '.join(missing)}")
    options: dict[str, Any] = {}
    if body.since:
        options["since"] = body.since.isoformat()
    if body.until:
        options["until"] = body.until.isoformat()
    if body.orders:
        options["orders"] = [o.strip() for o in body.orders if o.strip()]
    if body.retry_failed:
        options["retry_failed"] = True
    job = enqueue(session, conn, trigger="api", options=options, requested_by=changed_by)
    return JobCreated(job_id=job.id)


# -- orders --------------------------------------------------------------------------------------------------


@router.get("/orders", response_model=OrderPage)
def list_orders(
    session: SessionDep,
    company: ApiCompanyDep,
    state: Annotated[str | None, Query(description=f"one of {', '.join(ORDER_STATES)}")] = None,
    number: Annotated[str | None, Query(max_length=64, description="the channel's order number")] = None,
    connection_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> OrderPage:
    """Orders, newest change first."""
    if state is not None and state not in ORDER_STATES:
        raise HTTPException(status_code=422, detail=f"state must be one of {', '.join(ORDER_STATES)}")
    where = [StoredOrder.company_id == company.id]
    if state:
        where.append(StoredOrder.state == state)
    if number:
        where.append(StoredOrder.number == number.strip().lstrip("#"))
    if connection_id is not None:
        where.append(StoredOrder.connection_id == connection_id)
    total = session.scalar(select(func.count()).select_from(StoredOrder).where(*where)) or 0
    rows = session.execute(
        select(StoredOrder, Connection.name)
        .join(Connection, Connection.id == StoredOrder.connection_id)
        .where(*where)
        .order_by(StoredOrder.updated_at.desc(), StoredOrder.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    orders = [row[0] for row in rows]
    docs = _documents(session, orders)
    out = [OrderOut.model_validate(_order_out(o, name, docs.get(o.id, []))) for o, name in rows]
    return OrderPage(total=int(total), limit=limit, offset=offset, orders=out)


@router.get("/orders/{order_id}", response_model=OrderDetailOut, responses=NOT_FOUND)
def get_order(order_id: int, session: SessionDep, company: ApiCompanyDep) -> OrderDetailOut:
    """One order with its documents and what happened to it."""
    order = _order(session, company, order_id)
    conn = session.get(Connection, order.connection_id)
    events = session.scalars(select(Event).where(Event.order_id == order.id).order_by(Event.id))
    body = _order_out(order, conn.name if conn else "", _documents(session, [order]).get(order.id, []))
    body["revision"] = order.revision
    body["events"] = [EventOut(level=e.level, kind=e.kind, message=e.message, created_at=e.created_at) for e in events]
    return OrderDetailOut.model_validate(body)


@router.post("/orders/{order_id}/retry", response_model=RetryOut, responses=NOT_FOUND)
def retry(order_id: int, session: SessionDep, company: ApiCompanyDep) -> RetryOut:
    """Put a failed order back in line: the next sync posts it (fix its cause first)."""
    order = _order(session, company, order_id)
    retry_order(session, order)
    session.flush()
    return RetryOut(order_id=order.id, state=order.state)


# -- runs and jobs -------------------------------------------------------------------------------------------


@router.get("/runs", response_model=list[RunOut])
def list_runs(
    session: SessionDep,
    company: ApiCompanyDep,
    connection_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> list[RunOut]:
    """Sync runs, newest first."""
    query = select(SyncRun).where(SyncRun.company_id == company.id)
    if connection_id is not None:
        query = query.where(SyncRun.connection_id == connection_id)
    rows = session.scalars(query.order_by(SyncRun.id.desc()).limit(limit))
    return [RunOut.model_validate(r) for r in rows]


@router.get("/runs/{run_id}", response_model=RunOut, responses=NOT_FOUND)
def get_run(run_id: int, session: SessionDep, company: ApiCompanyDep) -> RunOut:
    run = session.get(SyncRun, run_id)
    if run is None or run.company_id != company.id:
        raise HTTPException(status_code=404, detail="no such run")
    return RunOut.model_validate(run)


@router.get("/jobs/{job_id}", response_model=JobOut, responses=NOT_FOUND)
def get_job(job_id: int, session: SessionDep, company: ApiCompanyDep) -> JobOut:
    """A queued sync; once `run_id` is set, GET /runs/{run_id} shows its live counts."""
    job = session.get(SyncJob, job_id)
    if job is None or job.company_id != company.id:
        raise HTTPException(status_code=404, detail="no such job")
    return JobOut.model_validate(job)


# -- preview -------------------------------------------------------------------------------------------------


@router.post("/preview", response_model=PreviewOut, responses={422: {"description": "the order cannot be mapped"}})
def preview(body: PreviewRequest, session: SessionDep, company: ApiCompanyDep) -> PreviewOut:
    """The QuickBooks documents one order would become, without posting anything."""
    if body.connection_id is not None:
        settings = load_settings(session, _connection(session, company, body.connection_id, channel=True).id)
    else:
        settings = ChannelSettings()
    try:
        if body.transaction_type is not None:
            settings = settings.model_copy(update={"transaction_type": body.transaction_type})
        known = {a.id for a in PREVIEW_ACCOUNTS.values()}
        settings, _replaced = with_stand_in_accounts(settings, known)
        return PreviewOut.model_validate(preview_body(body.order, channel=body.channel, settings=settings))
    except KeyError:
        raise HTTPException(status_code=422, detail=f"unknown channel {body.channel!r}") from None
    except LedgerlinkError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    except (ValidationError, ValueError, TypeError) as exc:
        raise HTTPException(status_code=422, detail=f"the order is not a {body.channel} order: {exc}") from None
