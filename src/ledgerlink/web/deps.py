"""Request dependencies: the database session, the signed-in user and company, CSRF, API tokens."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.bootstrap import App
from ledgerlink.store.models import ApiToken, Company, Membership, User
from ledgerlink.web.security import new_csrf_token, same_token, token_digest


class NotSignedIn(Exception):
    """The page needs a signed-in user."""


class CsrfRefused(Exception):
    """A form arrived without the session's CSRF token."""


class ApiUnauthorized(Exception):
    """The JSON API needs a valid bearer token."""


def application(request: Request) -> App:
    app: App = request.app.state.ledger
    return app


def db_session(request: Request) -> Iterator[Session]:
    # Pages that only read must not queue behind a running sync for SQLite's write lock.
    # Ends (commits) before the response is sent (scope="function" below): a browser following a redirect
    # must find what the request wrote, e.g. the account a sign-up just made.
    readonly = request.method in {"GET", "HEAD"}
    with application(request).db.session(readonly=readonly) as session:
        yield session


SessionDep = Annotated[Session, Depends(db_session, scope="function")]
AppDep = Annotated[App, Depends(application)]


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use; every form carries it."""
    token = request.session.get("csrf")
    if not token:
        token = new_csrf_token()
        request.session["csrf"] = token
    return str(token)


async def csrf_protect(request: Request) -> None:
    """Refuse any state-changing request whose form (or X-CSRF-Token header) lacks the session's token."""
    if request.method in {"GET", "HEAD", "OPTIONS"}:
        return
    given = request.headers.get("x-csrf-token")
    if not given:
        content_type = request.headers.get("content-type", "")
        if "form" in content_type:
            form = await request.form()
            value = form.get("csrf_token")
            given = value if isinstance(value, str) else None
    if not same_token(request.session.get("csrf"), given):
        raise CsrfRefused


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking: the user and the company whose data they see."""

    user: User
    company: Company
    role: str


def current_viewer(request: Request, session: SessionDep) -> Viewer:
    user_id = request.session.get("user_id")
    company_id = request.session.get("company_id")
    if not user_id or not company_id:
        raise NotSignedIn
    row = session.execute(
        select(User, Company, Membership.role)
        .join(Membership, Membership.user_id == User.id)
        .join(Company, Company.id == Membership.company_id)
        .where(User.id == user_id, Company.id == company_id)
    ).first()
    if row is None:
        request.session.clear()
        raise NotSignedIn
    return Viewer(user=row[0], company=row[1], role=row[2])


ViewerDep = Annotated[Viewer, Depends(current_viewer)]


def api_company(request: Request, session: SessionDep) -> Company:
    """The company of the bearer token (`Authorization: Bearer llk_…`)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiUnauthorized
    row = session.scalars(
        select(ApiToken).where(ApiToken.token_hash == token_digest(token.strip()), ApiToken.revoked_at.is_(None))
    ).first()
    if row is None:
        raise ApiUnauthorized
    if request.method not in {"GET", "HEAD"}:
        row.last_used_at = datetime.now(UTC)  # reads stay read-only; a write shows the token in use
    company = session.get(Company, row.company_id)
    if company is None:
        raise ApiUnauthorized
    return company


ApiCompanyDep = Annotated[Company, Depends(api_company)]
