"""My Account: the company's name, its users, usage, notifications, API tokens, and deleting the company."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from ledgerlink.store.models import (
    ApiToken,
    Company,
    Connection,
    Membership,
    OrderState,
    Posting,
    PostingState,
    StoredOrder,
    User,
)
from ledgerlink.web.deps import SessionDep, Viewer, ViewerDep, csrf_protect
from ledgerlink.web.security import hash_password, new_api_token, password_problem
from ledgerlink.web.templating import flash, render

router = APIRouter(dependencies=[Depends(csrf_protect)], include_in_schema=False)

NOTIFY_EVENTS = {
    "sync_failed": "A sync run failed",
    "order_failed": "An order could not be posted",
    "needs_reconnect": "QuickBooks needs reconnecting",
}


@dataclass(frozen=True, slots=True)
class ChannelUsage:
    """Orders one channel connection synced (posted) today and this month."""

    name: str
    kind: str
    today: int
    month: int


def _now() -> datetime:
    return datetime.now(UTC)


def usage(session: Session, company_id: int, now: datetime | None = None) -> tuple[list[ChannelUsage], int]:
    """Per channel: orders posted today / this month (by when they reached "posted"); and documents posted
    this month. No plans or limits: the figures are for the merchant's own overview."""
    now = now or _now()
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)

    def counted(since: datetime) -> dict[int, int]:
        rows = session.execute(
            select(StoredOrder.connection_id, func.count())
            .where(
                StoredOrder.company_id == company_id,
                StoredOrder.state == OrderState.POSTED,
                StoredOrder.updated_at >= since,
            )
            .group_by(StoredOrder.connection_id)
        ).all()
        return {int(conn_id): int(count) for conn_id, count in rows}

    today, this_month = counted(day), counted(month)
    channels = session.scalars(
        select(Connection)
        .where(Connection.company_id == company_id, Connection.role == "channel")
        .order_by(Connection.id)
    ).all()
    per_channel = [ChannelUsage(c.name, c.kind, today.get(c.id, 0), this_month.get(c.id, 0)) for c in channels]
    documents = session.scalar(
        select(func.count())
        .select_from(Posting)
        .where(Posting.company_id == company_id, Posting.state == PostingState.POSTED, Posting.posted_at >= month)
    )
    return per_channel, int(documents or 0)


def _members(session: Session, company_id: int) -> list[tuple[User, str]]:
    rows = session.execute(
        select(User, Membership.role)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.company_id == company_id)
        .order_by(Membership.id)
    ).all()
    return [(user, role) for user, role in rows]


def _tokens(session: Session, company_id: int) -> list[ApiToken]:
    return list(
        session.scalars(
            select(ApiToken)
            .where(ApiToken.company_id == company_id)
            .order_by(ApiToken.revoked_at.is_not(None), ApiToken.id.desc())
        )
    )


def _page(
    request: Request,
    session: Session,
    viewer: Viewer,
    *,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    form: dict[str, Any] | None = None,
    new_token: str = "",
) -> Response:
    company = session.get(Company, viewer.company.id)
    if company is None:
        raise HTTPException(status_code=404)
    per_channel, documents = usage(session, company.id)
    return render(
        request,
        "account/index.html",
        status_code=status_code,
        viewer=viewer,
        company=company,
        members=_members(session, company.id),
        usage=per_channel,
        documents_month=documents,
        month_name=_now().strftime("%B %Y"),
        tokens=_tokens(session, company.id),
        events=NOTIFY_EVENTS,
        errors=errors or {},
        form=form or {},
        new_token=new_token,
        is_owner=viewer.role == "owner",
    )


def _owner_only(viewer: Viewer) -> None:
    if viewer.role != "owner":
        raise HTTPException(status_code=403, detail="only the company's owner can do this")


@router.get("/account")
def account_page(request: Request, session: SessionDep, viewer: ViewerDep) -> Response:
    return _page(request, session, viewer)


@router.post("/account/company")
def rename_company(
    request: Request, session: SessionDep, viewer: ViewerDep, name: Annotated[str, Form()] = ""
) -> Response:
    name = name.strip()
    if not name or len(name) > 200:
        return _page(request, session, viewer, status_code=422, errors={"name": "the name of your business"})
    company = session.get(Company, viewer.company.id)
    if company is None:
        raise HTTPException(status_code=404)
    company.name = name
    flash(request, "Company name saved.")
    return RedirectResponse("/account", status_code=303)


@router.post("/account/users")
def add_user(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
) -> Response:
    """Add a person to the company with an initial password they change after signing in."""
    _owner_only(viewer)
    email = email.strip().lower()
    errors: dict[str, str] = {}
    if "@" not in email or len(email) > 320:
        errors["user_email"] = "enter their e-mail address"
    else:
        existing = session.scalars(select(User).where(User.email == email)).first()
        if existing is not None:
            member = session.scalars(
                select(Membership).where(Membership.user_id == existing.id, Membership.company_id == viewer.company.id)
            ).first()
            errors["user_email"] = (
                "already a user of this company"
                if member is not None
                else "this e-mail already has a ledgerlink account with another company; "
                "we do not add it here without them: ask them to use another address"
            )
    if problem := password_problem(password):
        errors["user_password"] = problem
    if errors:
        form = {"user_email": email, "user_name": name}
        return _page(request, session, viewer, status_code=422, errors=errors, form=form)
    user = User(email=email, name=name.strip(), password_hash=hash_password(password))
    session.add(user)
    session.flush()
    session.add(Membership(user_id=user.id, company_id=viewer.company.id, role="member"))
    flash(request, f"{email} can now sign in with the password you gave; ask them to change it under My Account.")
    return RedirectResponse("/account", status_code=303)


@router.post("/account/notifications")
async def save_notifications(request: Request, session: SessionDep, viewer: ViewerDep) -> Response:
    form = await request.form()
    notify_email = str(form.get("notify_email") or "").strip().lower()
    chosen = [str(v) for v in form.getlist("events") if str(v) in NOTIFY_EVENTS]
    if notify_email and ("@" not in notify_email or len(notify_email) > 320):
        errors = {"notify_email": "an e-mail address, or leave it empty to get no e-mails"}
        return _page(request, session, viewer, status_code=422, errors=errors, form={"notify_email": notify_email})
    company = session.get(Company, viewer.company.id)
    if company is None:
        raise HTTPException(status_code=404)
    company.notify_email = notify_email
    company.notify_events = chosen
    flash(request, "Notification settings saved.")
    return RedirectResponse("/account", status_code=303)


@router.post("/account/tokens")
def create_token(
    request: Request, session: SessionDep, viewer: ViewerDep, name: Annotated[str, Form()] = ""
) -> Response:
    """A new API token. The page is rendered right here, not after a redirect: the token is shown this one
    time and must never travel in the (signed, not encrypted) session cookie."""
    name = name.strip()
    if not name or len(name) > 100:
        errors = {"token_name": "a name that says where the token is used, e.g. 'reporting script'"}
        return _page(request, session, viewer, status_code=422, errors=errors)
    token, prefix, digest = new_api_token()
    session.add(
        ApiToken(company_id=viewer.company.id, user_id=viewer.user.id, name=name, prefix=prefix, token_hash=digest)
    )
    session.flush()
    return _page(request, session, viewer, new_token=token)


@router.post("/account/tokens/{token_id:int}/revoke")
def revoke_token(request: Request, token_id: int, session: SessionDep, viewer: ViewerDep) -> Response:
    row = session.get(ApiToken, token_id)
    if row is None or row.company_id != viewer.company.id:
        raise HTTPException(status_code=404)
    if row.revoked_at is None:
        row.revoked_at = _now()
    flash(request, f"Token {row.name} revoked: programs using it are refused from now on.")
    return RedirectResponse("/account", status_code=303)


@router.post("/account/delete")
def delete_company(
    request: Request, session: SessionDep, viewer: ViewerDep, confirm: Annotated[str, Form()] = ""
) -> Response:
    """Delete the company and everything it owns (the database cascades), then sign out.

    People who belonged to no other company are deleted too; nothing in QuickBooks or the stores changes.
    """
    _owner_only(viewer)
    company = session.get(Company, viewer.company.id)
    if company is None:
        raise HTTPException(status_code=404)
    if confirm.strip() != company.name:
        errors = {"confirm": f"type the company name exactly: {company.name}"}
        return _page(request, session, viewer, status_code=422, errors=errors)
    members = list(session.scalars(select(Membership.user_id).where(Membership.company_id == company.id)))
    elsewhere = set(
        session.scalars(
            select(Membership.user_id).where(Membership.user_id.in_(members), Membership.company_id != company.id)
        )
    )
    name = company.name
    # Connections point at their books connection: unlink first so the order of the cascade cannot matter.
    session.execute(update(Connection).where(Connection.company_id == company.id).values(books_id=None))
    session.delete(company)
    session.flush()
    alone = [user_id for user_id in members if user_id not in elsewhere]
    if alone:
        session.execute(delete(User).where(User.id.in_(alone)))
    request.session.clear()
    flash(request, f"{name} and all its data were deleted.")
    return RedirectResponse("/signin", status_code=303)
