"""Connections: QuickBooks Online (OAuth 2), QuickBooks Desktop (Web Connector pairing), Shopify, ShipStation."""

from __future__ import annotations

import re
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ledgerlink.books.qbo import oauth
from ledgerlink.domain.errors import LedgerlinkError
from ledgerlink.domain.settings import ChannelSettings
from ledgerlink.store.models import Company, Connection
from ledgerlink.sync.connections import add_connection
from ledgerlink.sync.engine import save_settings
from ledgerlink.sync.qbwc import MAX_RUN_EVERY_MINUTES, MIN_RUN_EVERY_MINUTES
from ledgerlink.sync.qbwc import run_every_minutes as schedule_minutes
from ledgerlink.sync.webhooks import register_shopify_webhooks
from ledgerlink.web import connections_service as svc
from ledgerlink.web.deps import AppDep, SessionDep, ViewerDep, csrf_protect
from ledgerlink.web.qwc import QwcFile, build_qwc
from ledgerlink.web.security import hash_password, password_problem
from ledgerlink.web.templating import flash, render

router = APIRouter(dependencies=[Depends(csrf_protect)], include_in_schema=False)

OAUTH_STATE_KEY = "qbo_oauth_state"
_WC_USER = re.compile(r"^[A-Za-z0-9._@-]{3,60}$")


def _company(session: Session, company_id: int) -> Company:
    company = session.get(Company, company_id)
    if company is None:
        raise HTTPException(status_code=404)
    return company


def _release(session: Session) -> None:
    """End the request's transaction before a network call: SQLite takes its write lock when a transaction
    begins, and a slow store or token endpoint must not hold every other writer (the sync worker) up."""
    session.commit()


def _owned(session: Session, company_id: int, connection_id: int) -> Connection:
    conn = svc.owned_connection(session, company_id, connection_id)
    if conn is None:
        raise HTTPException(status_code=404, detail="no such connection")
    return conn


# -- the list ------------------------------------------------------------------------------------------------


@router.get("/connections")
def connections_page(request: Request, session: SessionDep, viewer: ViewerDep, app: AppDep) -> Response:
    views = svc.connection_views(session, viewer.company.id, app.box)
    books = next((v.conn for v in views if v.conn.role == "books"), None)
    channels = [v for v in views if v.conn.role == "channel"]
    books_ready = books is not None and books.status not in {"disconnected"}
    steps = [
        {"title": "Connect QuickBooks", "done": books_ready, "href": "#add-books"},
        {"title": "Connect a selling channel", "done": bool(channels), "href": "#add-channel"},
        {"title": "Run the setup wizard", "done": bool(viewer.company.wizard_step == "done"), "href": "/wizard"},
    ]
    return render(
        request,
        "connections/index.html",
        viewer=viewer,
        views=views,
        books=books,
        channels=channels,
        steps=steps,
        setup_done=all(s["done"] for s in steps),
        qbo_configured=bool(app.settings.qbo_client_id),
        redirect_uri=svc.qbo_redirect_uri(app.settings),
    )


# -- QuickBooks Online ---------------------------------------------------------------------------------------


@router.post("/connections/qbo/connect")
def qbo_connect(request: Request, session: SessionDep, viewer: ViewerDep, app: AppDep) -> Response:
    """Send the merchant to Intuit's consent page; the random `state` proves the callback is ours."""
    settings = app.settings
    if not settings.qbo_client_id:
        flash(
            request,
            "QuickBooks Online is not set up on this server: set LEDGERLINK_QBO_CLIENT_ID and "
            "LEDGERLINK_QBO_CLIENT_SECRET (from your Intuit developer app) and restart.",
            "error",
        )
        return RedirectResponse("/connections", status_code=303)
    books = svc.books_connection(session, viewer.company.id)
    if books is not None and books.kind != "qbo":
        flash(request, "This company is paired with QuickBooks Desktop: remove that connection first.", "error")
        return RedirectResponse("/connections", status_code=303)
    state = secrets.token_urlsafe(24)
    request.session[OAUTH_STATE_KEY] = state
    target = oauth.authorize_url(
        svc.qbo_authorize_endpoint(settings), settings.qbo_client_id, svc.qbo_redirect_uri(settings), state
    )
    return RedirectResponse(target, status_code=303)


@router.get("/connections/qbo/callback")
def qbo_callback(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    app: AppDep,
    code: str = "",
    state: str = "",
    realmId: str = "",  # Intuit's parameter name
    error: str = "",
) -> Response:
    """Intuit's redirect back: check the state, trade the code for tokens, store the connection."""
    expected = request.session.pop(OAUTH_STATE_KEY, None)
    if not expected or not secrets.compare_digest(str(expected), state):
        return render(
            request,
            "error.html",
            status_code=400,
            viewer=viewer,
            title="That QuickBooks answer was not for this browser",
            message="The link back from QuickBooks did not match the connection you started here (or it was used "
            "already). Go to Connections and press Connect to QuickBooks again.",
        )
    if error:
        reason = "you cancelled on Intuit's page" if error == "access_denied" else f"Intuit answered {error!r}"
        flash(request, f"QuickBooks was not connected: {reason}.", "warn")
        return RedirectResponse("/connections", status_code=303)
    if not code or not realmId:
        flash(request, "QuickBooks sent no authorization code back: try connecting again.", "error")
        return RedirectResponse("/connections", status_code=303)
    _release(session)
    try:
        tokens = svc.exchange_qbo_code(app.settings, code)
    except LedgerlinkError as exc:
        flash(request, f"QuickBooks refused the connection: {exc}", "error")
        return RedirectResponse("/connections", status_code=303)
    company = _company(session, viewer.company.id)
    try:
        conn, created = svc.store_qbo_connection(session, app.box, company, app.settings, realmId, tokens)
    except svc.CheckFailed as exc:
        flash(request, f"QuickBooks was not reconnected: {exc.message}.", "error")
        return RedirectResponse("/connections", status_code=303)
    # The adapter reads the tokens in its own database session: commit them first.
    _release(session)
    name = _read_qbo_company_name(app, conn) or f"realm {realmId}"
    # QboConfig forbids unknown config keys, so the display name rides in the sealed secrets (the token store
    # keeps keys it does not know when it rotates tokens).
    stored = app.box.open(conn.secrets)
    stored["company_name"] = name
    conn.secrets = app.box.seal(stored)
    verb = "Connected to" if created else "Reconnected to"
    flash(request, f"{verb} QuickBooks company {name}.")
    has_channel = session.scalars(
        select(Connection.id).where(Connection.company_id == company.id, Connection.role == "channel")
    ).first()
    # With a channel already waiting, the next thing to do is the wizard; otherwise connect a channel.
    return RedirectResponse("/wizard" if created and has_channel is not None else "/connections", status_code=303)


def _read_qbo_company_name(app: AppDep, conn: Connection) -> str:
    try:
        books = app.adapters.books(conn)
    except LedgerlinkError:
        return ""
    try:
        return svc.qbo_company_name(books)
    finally:
        books.close()


# -- Shopify -------------------------------------------------------------------------------------------------


def _shopify_form(app: AppDep) -> dict[str, str]:
    # In demo mode the form comes filled in with the local sandbox store, so a newcomer just presses Connect.
    demo = app.settings
    return {
        "shop": demo.demo_shopify_shop,
        "access_token": demo.demo_shopify_token,
        "base_url": demo.demo_shopify_url,
        "webhook_secret": demo.demo_shopify_webhook_secret,
    }


@router.get("/connections/shopify")
def shopify_page(request: Request, session: SessionDep, viewer: ViewerDep, app: AppDep) -> Response:
    return render(
        request,
        "connections/shopify.html",
        viewer=viewer,
        form=_shopify_form(app),
        errors={},
        demo=bool(app.settings.demo_shopify_url),
        has_books=svc.books_connection(session, viewer.company.id) is not None,
    )


@router.post("/connections/shopify")
def shopify_connect(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    app: AppDep,
    shop: Annotated[str, Form()] = "",
    access_token: Annotated[str, Form()] = "",
    base_url: Annotated[str, Form()] = "",
    webhook_secret: Annotated[str, Form()] = "",
) -> Response:
    """Check the store with a live call, then store the connection and its default settings."""
    demo = bool(app.settings.demo_shopify_url)
    # Another address than the store's own is only for the local sandbox: never let a form aim our server elsewhere.
    base_url = base_url.strip() if demo else ""
    shop = svc.clean_shop_domain(shop)
    access_token = access_token.strip()
    webhook_secret = webhook_secret.strip()
    errors: dict[str, str] = {}
    if problem := svc.shop_domain_problem(shop):
        errors["shop"] = problem
    if not access_token:
        errors["access_token"] = "paste the Admin API access token of your store's custom app"  # noqa: S105
    if base_url and not base_url.startswith(("http://", "https://")):
        errors["base_url"] = "an http(s) address, or leave it empty"
    existing = session.scalars(
        select(Connection).where(Connection.company_id == viewer.company.id, Connection.kind == "shopify")
    ).all()
    if not errors and any(c.config.get("shop") == shop for c in existing):
        errors["shop"] = "this store is already connected"
    count = 0
    if not errors:
        _release(session)
        try:
            count = svc.check_shopify(shop, access_token, base_url)
        except svc.CheckFailed as exc:
            errors[exc.field] = exc.message
    if errors:
        form = {"shop": shop, "access_token": "", "base_url": base_url}
        return render(
            request,
            "connections/shopify.html",
            status_code=422,
            viewer=viewer,
            form=form,
            errors=errors,
            demo=demo,
            has_books=svc.books_connection(session, viewer.company.id) is not None,
        )
    company = _company(session, viewer.company.id)
    books = svc.books_connection(session, company.id)
    config: dict[str, str] = {"shop": shop, "api_version": svc.SHOPIFY_API_VERSION}
    if base_url:
        config["base_url"] = base_url
    conn = add_connection(
        session,
        app.box,
        company,
        name=svc.unique_name(session, company.id, "shopify"),
        kind="shopify",
        role="channel",
        config=config,
        secrets={"access_token": access_token, **({"webhook_secret": webhook_secret} if webhook_secret else {})},
        books_id=books.id if books is not None else None,
    )
    save_settings(session, conn.id, ChannelSettings(), changed_by=viewer.user.email)
    if webhook_secret:
        # Real-time updates: Shopify calls us on order changes; polling stays the truth if this fails.
        _release(session)
        try:
            register_shopify_webhooks(app, conn)
        except LedgerlinkError as exc:
            flash(request, f"Real-time updates are off ({exc}); orders still sync on the schedule.", "warn")
    later = "" if books is not None else " Connect QuickBooks too before the first sync."
    flash(request, f"Connected to Shopify store {shop} ({count} orders). Now choose how orders are posted.{later}")
    return RedirectResponse(f"/wizard?connection={conn.id}", status_code=303)


# -- ShipStation ---------------------------------------------------------------------------------------------


@router.get("/connections/shipstation")
def shipstation_page(request: Request, viewer: ViewerDep) -> Response:
    return render(request, "connections/shipstation.html", viewer=viewer, form={}, errors={})


@router.post("/connections/shipstation")
def shipstation_connect(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    app: AppDep,
    api_key: Annotated[str, Form()] = "",
    api_secret: Annotated[str, Form()] = "",
    base_url: Annotated[str, Form()] = "",
) -> Response:
    api_key, api_secret, base_url = api_key.strip(), api_secret.strip(), base_url.strip()
    errors: dict[str, str] = {}
    if not api_key:
        errors["api_key"] = "paste the API key from ShipStation → Settings → Account → API Settings"
    if not api_secret:
        errors["api_secret"] = "paste the API secret shown next to the key"  # noqa: S105
    if base_url and not base_url.startswith(("http://", "https://")):
        errors["base_url"] = "an http(s) address, or leave it empty for ShipStation's own"
    stores = 0
    if not errors:
        _release(session)
        try:
            stores = svc.check_shipstation(api_key, api_secret, base_url)
        except svc.CheckFailed as exc:
            errors[exc.field] = exc.message
    if errors:
        form = {"api_key": api_key, "base_url": base_url}
        return render(request, "connections/shipstation.html", status_code=422, viewer=viewer, form=form, errors=errors)
    company = _company(session, viewer.company.id)
    books = svc.books_connection(session, company.id)
    config = {"base_url": (base_url or svc.SHIPSTATION_BASE).rstrip("/")}
    conn = add_connection(
        session,
        app.box,
        company,
        name=svc.unique_name(session, company.id, "shipstation"),
        kind="shipstation",
        role="channel",
        config=config,
        secrets={"api_key": api_key, "api_secret": api_secret},
        books_id=books.id if books is not None else None,
    )
    save_settings(session, conn.id, ChannelSettings(), changed_by=viewer.user.email)
    flash(
        request,
        f"Connected to ShipStation ({stores} stores). Run the setup wizard to choose the direction: ShipStation's "
        "orders into QuickBooks, or sales from QuickBooks to ShipStation with tracking written back.",
    )
    return RedirectResponse(f"/connections/{conn.id}", status_code=303)


# -- QuickBooks Desktop --------------------------------------------------------------------------------------


@router.get("/connections/qbd")
def qbd_page(request: Request, session: SessionDep, viewer: ViewerDep) -> Response:
    slug = re.sub(r"[^a-z0-9]+", "-", viewer.company.name.lower()).strip("-")[:40] or "company"
    return render(
        request,
        "connections/qbd.html",
        viewer=viewer,
        form={"user_name": f"ledgerlink-{slug}"},
        errors={},
        books=svc.books_connection(session, viewer.company.id),
    )


@router.post("/connections/qbd")
def qbd_create(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    app: AppDep,
    user_name: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
) -> Response:
    """A QuickBooks Desktop books connection: the Web Connector signs in with this user name and password."""
    user_name = user_name.strip()
    errors: dict[str, str] = {}
    books = svc.books_connection(session, viewer.company.id)
    if books is not None:
        errors["user_name"] = f"this company already has a QuickBooks connection ({books.name}): one per company"
    if not _WC_USER.match(user_name):
        errors["user_name"] = "3 to 60 letters, digits, dots, dashes, @ or _"
    elif any(
        (config or {}).get("user_name") == user_name
        for config in session.scalars(select(Connection.config).where(Connection.kind == "qbd"))
    ):
        # The Web Connector signs in by user name alone: it must be unique on this server.
        errors["user_name"] = "this user name is taken: pick another"
    if problem := password_problem(password):
        errors["password"] = problem
    elif password != confirm:
        errors["confirm"] = "the two passwords differ"
    if errors:
        return render(
            request,
            "connections/qbd.html",
            status_code=422,
            viewer=viewer,
            form={"user_name": user_name},
            errors=errors,
            books=books,
        )
    company = _company(session, viewer.company.id)
    conn = add_connection(
        session,
        app.box,
        company,
        name=svc.unique_name(session, company.id, "quickbooks-desktop"),
        kind="qbd",
        role="books",
        config={"user_name": user_name, "owner_id": svc.new_guid(), "file_id": svc.new_guid()},
        secrets={"password_hash": hash_password(password)},
    )
    conn.status = "waiting"
    svc.link_orphan_channels(session, company.id, conn.id)
    flash(request, "QuickBooks Desktop connection created: download the .qwc file and add it to the Web Connector.")
    return RedirectResponse(f"/connections/{conn.id}", status_code=303)


@router.get("/connections/{connection_id:int}/qwc")
def qwc_download(connection_id: int, session: SessionDep, viewer: ViewerDep, app: AppDep) -> Response:
    """The .qwc file; OwnerID and FileID were made once when the connection was created."""
    conn = _owned(session, viewer.company.id, connection_id)
    if conn.kind != "qbd":
        raise HTTPException(status_code=404, detail="only QuickBooks Desktop connections have a .qwc file")
    config = dict(conn.config)
    if not config.get("owner_id") or not config.get("file_id"):
        config.setdefault("owner_id", svc.new_guid())
        config.setdefault("file_id", svc.new_guid())
        conn.config = config
    text = build_qwc(
        QwcFile(
            public_url=app.settings.public_url,
            user_name=str(config["user_name"]),
            owner_id=str(config["owner_id"]),
            file_id=str(config["file_id"]),
            run_every_minutes=schedule_minutes(config),
        )
    )
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", conn.name)
    return Response(
        text,
        media_type="application/xml",
        headers={"Content-Disposition": f'attachment; filename="ledgerlink-{safe}.qwc"'},
    )


@router.post("/connections/{connection_id:int}/schedule")
def qbd_schedule(
    request: Request,
    connection_id: int,
    session: SessionDep,
    viewer: ViewerDep,
    app: AppDep,
    run_every_minutes: Annotated[str, Form()] = "",
) -> Response:
    """How often the Web Connector runs: kept on the connection, written into the .qwc file, and the measure of
    the dashboard's overdue alert."""
    conn = _owned(session, viewer.company.id, connection_id)
    if conn.kind != "qbd":
        raise HTTPException(status_code=404)
    text = run_every_minutes.strip()
    minutes = int(text) if text.isdigit() else 0
    if not MIN_RUN_EVERY_MINUTES <= minutes <= MAX_RUN_EVERY_MINUTES:
        problem = f"a whole number of minutes from {MIN_RUN_EVERY_MINUTES} to {MAX_RUN_EVERY_MINUTES} (once a day)"
        return _detail(request, session, viewer, app, conn, errors={"run_every_minutes": problem}, status_code=422)
    conn.config = {**dict(conn.config or {}), "run_every_minutes": minutes}
    flash(
        request,
        f"The Web Connector now runs every {minutes} minutes: download the .qwc file again and add it to the Web "
        "Connector (or type the same number in its Every_Min column).",
    )
    return RedirectResponse(f"/connections/{conn.id}", status_code=303)


@router.post("/connections/{connection_id:int}/password")
def qbd_password(
    request: Request,
    connection_id: int,
    session: SessionDep,
    viewer: ViewerDep,
    app: AppDep,
    password: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
) -> Response:
    """A new Web Connector password (type the same one in the Web Connector afterwards)."""
    conn = _owned(session, viewer.company.id, connection_id)
    if conn.kind != "qbd":
        raise HTTPException(status_code=404)
    errors: dict[str, str] = {}
    if problem := password_problem(password):
        errors["password"] = problem
    elif password != confirm:
        errors["confirm"] = "the two passwords differ"
    if errors:
        return _detail(request, session, viewer, app, conn, errors=errors, status_code=422)
    stored = app.box.open(conn.secrets)
    stored["password_hash"] = hash_password(password)
    conn.secrets = app.box.seal(stored)
    conn.secrets_version += 1
    flash(request, "Web Connector password changed: enter the new one in the Web Connector too.")
    return RedirectResponse(f"/connections/{conn.id}", status_code=303)


# -- one connection ------------------------------------------------------------------------------------------


@router.get("/connections/{connection_id:int}")
def connection_page(
    request: Request, connection_id: int, session: SessionDep, viewer: ViewerDep, app: AppDep
) -> Response:
    conn = _owned(session, viewer.company.id, connection_id)
    return _detail(request, session, viewer, app, conn)


def _detail(
    request: Request,
    session: Session,
    viewer: ViewerDep,
    app: AppDep,
    conn: Connection,
    *,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    view = next(v for v in svc.connection_views(session, viewer.company.id, app.box) if v.conn.id == conn.id)
    return render(
        request,
        "connections/detail.html",
        status_code=status_code,
        viewer=viewer,
        view=view,
        conn=conn,
        errors=errors or {},
        public_url=app.settings.public_url.rstrip("/"),
        schedule=schedule_minutes(conn.config) if conn.kind == "qbd" else None,
    )


@router.post("/connections/{connection_id:int}/disconnect")
def disconnect(request: Request, connection_id: int, session: SessionDep, viewer: ViewerDep, app: AppDep) -> Response:
    """QuickBooks Online: forget the tokens (the ledger stays, so a reconnect never posts twice).
    QuickBooks Desktop and channels: remove the connection."""
    conn = _owned(session, viewer.company.id, connection_id)
    if conn.kind == "qbo":
        stored = app.box.open(conn.secrets)
        kept = {"client_secret": stored["client_secret"]} if "client_secret" in stored else {}
        conn.secrets = app.box.seal(kept)
        conn.secrets_version += 1
        conn.status, conn.status_detail = "disconnected", "disconnected by " + viewer.user.email
        flash(request, "QuickBooks Online disconnected. Connect it again at any time: nothing will be posted twice.")
        return RedirectResponse("/connections", status_code=303)
    name = conn.name
    if conn.role == "books":
        session.execute(update(Connection).where(Connection.books_id == conn.id).values(books_id=None))
    session.delete(conn)
    flash(request, f"Connection {name} removed.")
    return RedirectResponse("/connections", status_code=303)
