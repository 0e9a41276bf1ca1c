"""Sign-up, sign-in, sign-out and password change."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select

from ledgerlink.store.models import Company, Membership, User
from ledgerlink.web.deps import SessionDep, ViewerDep, csrf_protect
from ledgerlink.web.security import hash_password, password_problem, verify_password
from ledgerlink.web.templating import flash, render

router = APIRouter(dependencies=[Depends(csrf_protect)], include_in_schema=False)


def _safe_next(target: str | None) -> str:
    # Only paths on this site: never an open redirect.
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return "/"


def _sign_in(request: Request, user: User, company_id: int) -> None:
    csrf = request.session.get("csrf")
    request.session.clear()  # a fresh session on sign-in (no fixation)
    if csrf:
        request.session["csrf"] = csrf
    request.session["user_id"] = user.id
    request.session["company_id"] = company_id


@router.get("/signup")
def signup_page(request: Request) -> Response:
    return render(request, "auth/signup.html", form={}, errors={})


@router.post("/signup")
def signup(
    request: Request,
    session: SessionDep,
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    company: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
) -> Response:
    email = email.strip().lower()
    errors: dict[str, str] = {}
    if "@" not in email or len(email) > 320:
        errors["email"] = "enter your e-mail address"
    elif session.scalar(select(func.count()).select_from(User).where(User.email == email)):
        errors["email"] = "an account with this e-mail exists: sign in instead"
    if problem := password_problem(password):
        errors["password"] = problem
    if not company.strip():
        errors["company"] = "the name of your business"
    if errors:
        form = {"email": email, "company": company, "name": name}
        return render(request, "auth/signup.html", status_code=422, form=form, errors=errors)
    user = User(email=email, name=name.strip(), password_hash=hash_password(password))
    owner = Company(name=company.strip(), notify_email=email, notify_events=["sync_failed", "needs_reconnect"])
    session.add_all([user, owner])
    session.flush()
    session.add(Membership(user_id=user.id, company_id=owner.id, role="owner"))
    user.last_login_at = datetime.now(UTC)
    _sign_in(request, user, owner.id)
    flash(request, f"Welcome, {company.strip()}! Connect QuickBooks and a selling channel to start.")
    return RedirectResponse("/connections", status_code=303)


@router.get("/signin")
def signin_page(request: Request, next: str = "/") -> Response:
    return render(request, "auth/signin.html", next=_safe_next(next), form={}, error="")


@router.post("/signin")
def signin(
    request: Request,
    session: SessionDep,
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    email = email.strip().lower()
    user = session.scalars(select(User).where(User.email == email)).first()
    if user is None or not verify_password(user.password_hash, password):
        return render(
            request,
            "auth/signin.html",
            status_code=401,
            next=_safe_next(next),
            form={"email": email},
            error="That e-mail and password do not match an account.",
        )
    membership = session.scalars(
        select(Membership).where(Membership.user_id == user.id).order_by(Membership.id)
    ).first()
    if membership is None:
        return render(
            request,
            "auth/signin.html",
            status_code=403,
            next="/",
            form={"email": email},
            error="This account belongs to no company any more.",
        )
    user.last_login_at = datetime.now(UTC)
    _sign_in(request, user, membership.company_id)
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/signout")
def signout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/signin", status_code=303)


@router.get("/account/password")
def password_page(request: Request, viewer: ViewerDep) -> Response:
    return render(request, "auth/password.html", viewer=viewer, errors={})


@router.post("/account/password")
def change_password(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    current: Annotated[str, Form()] = "",
    new: Annotated[str, Form()] = "",
) -> Response:
    errors: dict[str, str] = {}
    user = session.get(User, viewer.user.id)
    if user is None or not verify_password(user.password_hash, current):
        errors["current"] = "this is not your current password"
    elif problem := password_problem(new):
        errors["new"] = problem
    if errors or user is None:
        return render(request, "auth/password.html", status_code=422, viewer=viewer, errors=errors)
    user.password_hash = hash_password(new)
    flash(request, "Your password was changed.")
    return RedirectResponse("/account", status_code=303)
