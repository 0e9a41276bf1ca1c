"""Settings: each selling channel's settings outside the wizard, one page per section, versioned on every Save.

`/settings/{id}/orders` is laid out the way a Connex user finds it: Order Settings → Orders to QuickBooks →
Manual Sync and Marketplace Settings → Transaction Type → Save. The helpers at the top (the channel of the
signed-in company, its books connection, the cached lists, the posted form) are shared with the wizard.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile

from ledgerlink.bootstrap import App
from ledgerlink.domain.defaults import suggest_accounts
from ledgerlink.domain.settings import ChannelSettings
from ledgerlink.store.models import Connection, SettingsRevision
from ledgerlink.sync.engine import load_settings, save_settings
from ledgerlink.sync.qbwc import desktop_lists
from ledgerlink.sync.reverse import ReverseSync
from ledgerlink.web import forms, reverse_forms
from ledgerlink.web.catalog_cache import BooksLists, cache_of
from ledgerlink.web.deps import AppDep, SessionDep, Viewer, ViewerDep, csrf_protect
from ledgerlink.web.templating import flash, render

router = APIRouter(dependencies=[Depends(csrf_protect)], include_in_schema=False)


# -- shared with the wizard ------------------------------------------------------------------------------


async def posted_form(request: Request) -> FormData:
    """The posted form (Starlette keeps it, so reading it again after the CSRF check costs nothing)."""
    return await request.form()


FormDep = Annotated[FormData, Depends(posted_form)]


def channels_of(session: Session, company_id: int) -> list[Connection]:
    """The company's selling channels, oldest first."""
    return list(
        session.scalars(
            select(Connection)
            .where(Connection.company_id == company_id, Connection.role == "channel")
            .order_by(Connection.id)
        )
    )


def channel_connection(session: Session, viewer: Viewer, connection_id: int) -> Connection | None:
    """A channel connection of the viewer's company; None for anyone else's (the caller answers 404)."""
    conn = session.get(Connection, connection_id)
    if conn is None or conn.company_id != viewer.company.id or conn.role != "channel":
        return None
    return conn


def books_connection(session: Session, channel: Connection) -> Connection | None:
    """The QuickBooks connection a channel posts to: its own link, else the company's first books connection."""
    if channel.books_id is not None:
        books = session.get(Connection, channel.books_id)
        if books is not None and books.company_id == channel.company_id:
            return books
    return session.scalars(
        select(Connection)
        .where(Connection.company_id == channel.company_id, Connection.role == "books")
        .order_by(Connection.id)
    ).first()


def books_lists(
    request: Request, app: App, session: Session, books: Connection | None, *, refresh: bool = False
) -> BooksLists:
    """The books' lists for the drop-downs, from the app's cache.

    On SQLite every transaction holds the write lock (BEGIN IMMEDIATE), and reading the books may store
    refreshed tokens through another session: so the request's transaction is committed before asking.
    """
    return cache_of(request.app.state).lists(app, books, refresh=refresh, before_read=session.commit)


def not_found(request: Request, viewer: Viewer) -> Response:
    """The 404 page (also for another company's ids: we do not say they exist)."""
    return render(
        request,
        "error.html",
        status_code=404,
        viewer=viewer,
        title="Not found",
        message="There is no such channel in your company. Pick one under Settings.",
    )


def with_suggestions(values: dict[str, Any], lists: BooksLists) -> set[str]:
    """Fill empty account fields with what a bookkeeper would usually choose; returns the fields filled."""
    if lists.catalog is None:
        return set()
    suggested = suggest_accounts(lists.catalog)
    filled: set[str] = set()
    for name in forms.ACCOUNT_FIELDS:
        key = f"accounts.{name}"
        if not values.get(key) and (choice := getattr(suggested, name)):
            values[key] = choice
            filled.add(key)
    return filled


def save_if_changed(
    session: Session, channel: Connection, current: ChannelSettings, new: ChannelSettings, email: str
) -> int | None:
    """Save a new revision when something changed (or nothing was ever saved); returns its number."""
    saved_before = session.scalar(select(SettingsRevision.id).where(SettingsRevision.connection_id == channel.id))
    if saved_before is not None and new.model_dump(mode="json") == current.model_dump(mode="json"):
        return None
    return save_settings(session, channel.id, new, changed_by=email)


def missing_words(settings: ChannelSettings) -> list[tuple[str, str]]:
    """What a sync still needs: (field label, step slug that fixes it)."""
    return [
        (forms.FIELD_LABELS.get(name, name), forms.MISSING_STEP.get(name, "accounts")) for name in settings.missing()
    ]


# -- pages -----------------------------------------------------------------------------------------------

# slug → (tab label, settings section edited, template)
PAGES: dict[str, tuple[str, str, str]] = {
    "orders": ("Orders", "orders", "settings/orders.html"),
    "customers": ("Customers", "customers", "settings/customers.html"),
    "accounts": ("Accounts", "accounts", "settings/accounts.html"),
    "tax": ("Sales Tax", "tax", "settings/tax.html"),
    "products": ("Products", "products", "settings/products.html"),
    "from-quickbooks": ("Orders from QuickBooks", "from_books", "settings/from_quickbooks.html"),
}
TABS = [(slug, label) for slug, (label, _section, _template) in PAGES.items()] + [("history", "History")]
NEEDS_LISTS = {"orders", "accounts", "tax", "from-quickbooks"}


def _render_page(
    request: Request,
    app: App,
    session: Session,
    viewer: Viewer,
    channel: Connection,
    page: str,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    settings = load_settings(session, channel.id)
    books = books_connection(session, channel)
    lists = books_lists(request, app, session, books) if page in NEEDS_LISTS else BooksLists(None)
    shown = forms.form_values(settings)
    shown.update(reverse_forms.form_values(settings))
    if values:
        shown.update(values)
    suggested = with_suggestions(shown, lists) if page == "accounts" else set()
    _label, _section, template = PAGES[page]
    if page == "from-quickbooks" and channel.kind == "shipstation":
        extra.setdefault("stores", reverse_forms.read_stores(app, session, channel))
    return render(
        request,
        template,
        status_code=status_code,
        viewer=viewer,
        channels=channels_of(session, viewer.company.id),
        channel=channel,
        store=forms.channel_title(channel.kind),
        books=books,
        books_kind=books.kind if books else "qbo",
        lists=lists,
        page=page,
        tabs=TABS,
        v=shown,
        errors=errors or {},
        suggested=suggested,
        settings=settings,
        missing=missing_words(settings),
        forms=forms,
        action=f"/settings/{channel.id}/{page}",
        rf=reverse_forms,
        test_action=f"/settings/{channel.id}/from-quickbooks/test",
        desktop_items=_desktop_items(session, books) if page == "products" else [],
        **extra,
    )


def _desktop_items(session: Session, books: Connection | None) -> list[str]:
    """A QuickBooks Desktop company's item names (the last Web Connector lists), offered by the item inputs."""
    return desktop_lists(session, books.id)["item"] if books is not None and books.kind == "qbd" else []


@router.get("/settings")
def settings_index(request: Request, session: SessionDep, viewer: ViewerDep) -> Response:
    """The selling channels, each with what its sync still needs."""
    channels = channels_of(session, viewer.company.id)
    rows = []
    for channel in channels:
        settings = load_settings(session, channel.id)
        rows.append({"channel": channel, "settings": settings, "missing": missing_words(settings)})
    return render(
        request, "settings/index.html", viewer=viewer, channels=channels, rows=rows, forms=forms, channel=None
    )


@router.get("/settings/{connection_id}")
def channel_settings(request: Request, session: SessionDep, viewer: ViewerDep, connection_id: int) -> Response:
    if channel_connection(session, viewer, connection_id) is None:
        return not_found(request, viewer)
    return RedirectResponse(f"/settings/{connection_id}/orders", status_code=303)


@router.get("/settings/{connection_id}/history")
def history(request: Request, session: SessionDep, viewer: ViewerDep, connection_id: int) -> Response:
    """Every saved revision: when, who, and what changed (dotted field, old → new)."""
    channel = channel_connection(session, viewer, connection_id)
    if channel is None:
        return not_found(request, viewer)
    revisions = list(
        session.scalars(
            select(SettingsRevision)
            .where(SettingsRevision.connection_id == channel.id)
            .order_by(SettingsRevision.revision)
        )
    )
    # Account ids are shown with their names when the lists are at hand (never read from QuickBooks just for this).
    books = books_connection(session, channel)
    kept = cache_of(request.app.state).cached(books.id) if books is not None else None

    def named(field: str, value: str) -> str:
        if kept is None or not field.startswith("accounts.") or value == "—":
            return value
        return f"{kept.account_name(value)} ({value})"

    entries: list[dict[str, Any]] = []
    previous: dict[str, Any] = ChannelSettings().model_dump(mode="json")
    for rev in revisions:
        changes = [(f, named(f, old), named(f, new)) for f, old, new in forms.diff_settings(previous, rev.data)]
        entries.append({"rev": rev, "changes": changes, "first": not entries})
        previous = rev.data
    entries.reverse()
    return render(
        request,
        "settings/history.html",
        viewer=viewer,
        channels=channels_of(session, viewer.company.id),
        channel=channel,
        store=forms.channel_title(channel.kind),
        page="history",
        tabs=TABS,
        entries=entries,
        forms=forms,
    )


@router.get("/settings/{connection_id}/tax/export.csv")
def export_tax(request: Request, session: SessionDep, viewer: ViewerDep, connection_id: int) -> Response:
    """The jurisdiction → tax code table as a CSV download."""
    channel = channel_connection(session, viewer, connection_id)
    if channel is None:
        return not_found(request, viewer)
    settings = load_settings(session, channel.id)
    filename = f"tax-codes-{channel.name}.csv".replace('"', "")
    return Response(
        forms.jurisdictions_csv(settings.tax.jurisdictions),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def upload_text(form: FormData, name: str = "csv_file") -> str | None:
    """The text of an uploaded file (read from Starlette's spooled file, so a sync route can call it)."""
    upload = form.get(name)
    if not isinstance(upload, UploadFile):
        return None
    try:
        raw = upload.file.read()
    finally:
        upload.file.close()  # read through the form dependency, so nobody else closes it
    return raw.decode("utf-8-sig", errors="replace") if isinstance(raw, bytes) else str(raw)


def import_tax_rows(
    session: Session, channel: Connection, text: str | None, replace: bool, email: str
) -> tuple[int, list[str]]:
    """Import an uploaded CSV into the jurisdiction table (all or nothing); (rows imported, problems)."""
    if text is None or not text.strip():
        return 0, ["choose a CSV file to import (columns country,region,city,tax_code)"]
    rows, problems = forms.parse_jurisdictions_csv(text)
    if problems:
        return 0, problems
    current = load_settings(session, channel.id)
    merged = forms.merge_jurisdictions(current.tax.jurisdictions, rows, replace=replace)
    new = current.model_copy(update={"tax": current.tax.model_copy(update={"jurisdictions": merged})})
    new = ChannelSettings.model_validate(new.model_dump(mode="json"))
    save_if_changed(session, channel, current, new, email)
    return len(rows), []


@router.post("/settings/{connection_id}/tax/import")
def import_tax(
    request: Request, form: FormDep, app: AppDep, session: SessionDep, viewer: ViewerDep, connection_id: int
) -> Response:
    """Import jurisdiction rows from a CSV; bad lines are listed with their line numbers and nothing is saved."""
    channel = channel_connection(session, viewer, connection_id)
    if channel is None:
        return not_found(request, viewer)
    text = upload_text(form)
    count, problems = import_tax_rows(session, channel, text, bool(form.get("replace")), viewer.user.email)
    if problems:
        return _render_page(request, app, session, viewer, channel, "tax", status_code=422, import_errors=problems)
    flash(request, f"Imported {count} tax code rows.")
    return RedirectResponse(f"/settings/{channel.id}/tax", status_code=303)


@router.post("/settings/{connection_id}/refresh-lists")
def refresh_lists(
    request: Request, form: FormDep, app: AppDep, session: SessionDep, viewer: ViewerDep, connection_id: int
) -> Response:
    """Read the accounts, classes and tax codes from QuickBooks again ("refresh drop downs")."""
    channel = channel_connection(session, viewer, connection_id)
    if channel is None:
        return not_found(request, viewer)
    lists = books_lists(request, app, session, books_connection(session, channel), refresh=True)
    if lists.catalog is None:
        flash(request, lists.error, "error")
    else:
        flash(request, "The lists were read again from QuickBooks.")
    page = str(form.get("page") or "accounts")
    return RedirectResponse(f"/settings/{channel.id}/{page if page in PAGES else 'accounts'}", status_code=303)


@router.get("/settings/{connection_id}/{page}")
def settings_page(
    request: Request, app: AppDep, session: SessionDep, viewer: ViewerDep, connection_id: int, page: str
) -> Response:
    channel = channel_connection(session, viewer, connection_id)
    if channel is None or page not in PAGES:
        return not_found(request, viewer)
    return _render_page(request, app, session, viewer, channel, page)


@router.post("/settings/{connection_id}/{page}")
def save_page(
    request: Request,
    form: FormDep,
    app: AppDep,
    session: SessionDep,
    viewer: ViewerDep,
    connection_id: int,
    page: str,
) -> Response:
    """Validate one page's fields and save a new revision; 422 with the messages next to the fields."""
    channel = channel_connection(session, viewer, connection_id)
    if channel is None or page not in PAGES:
        return not_found(request, viewer)
    _label, section, _template = PAGES[page]
    reverse = section in reverse_forms.SECTIONS
    values = (reverse_forms.read_form if reverse else forms.read_form)(section, form)
    current = load_settings(session, channel.id)
    extra: dict[str, Any] = {}
    try:
        if reverse:
            new = _apply_reverse(request, app, session, channel, current, section, values, extra)
        else:
            new = forms.apply_values(current, section, values, channel_kind=channel.kind)
    except forms.FormErrors as exc:
        return _render_page(
            request, app, session, viewer, channel, page, values=values, errors=exc.errors, status_code=422, **extra
        )
    revision = save_if_changed(session, channel, current, new, viewer.user.email)
    # The shipping webhook follows the direction and the store (sync/shipstation_webhooks.py).
    webhook_moved = reverse_forms.is_from_books(new) and (
        not reverse_forms.is_from_books(current) or new.from_books.store_id != current.from_books.store_id
    )
    if webhook_moved and not reverse_forms.register_and_say(request, app, session, channel):
        return RedirectResponse(f"/settings/{channel.id}/{page}", status_code=303)
    if revision is None:
        flash(request, "Nothing changed.")
    elif needed := missing_words(new):
        names = ", ".join(label for label, _step in needed)
        flash(request, f"Saved as revision {revision}. Syncing still needs: {names} (under Accounts).", "warn")
    else:
        flash(request, f"Saved as revision {revision}.")
    return RedirectResponse(f"/settings/{channel.id}/{page}", status_code=303)


def _apply_reverse(
    request: Request,
    app: App,
    session: Session,
    channel: Connection,
    current: ChannelSettings,
    section: str,
    values: dict[str, Any],
    extra: dict[str, Any],
) -> ChannelSettings:
    """The Orders from QuickBooks page's values, checked against the stores and classes its drop-downs offered."""
    books = books_connection(session, channel)
    lists = books_lists(request, app, session, books)
    stores = reverse_forms.read_stores(app, session, channel) if channel.kind == "shipstation" else None
    extra["stores"] = stores
    return reverse_forms.apply_values(
        current,
        section,
        values,
        channel_kind=channel.kind,
        books_kind=books.kind if books else "qbo",
        class_ids=reverse_forms.class_ids(lists),
        store_ids=stores.ids if stores is not None else None,
    )


@router.post("/settings/{connection_id}/from-quickbooks/test")
def test_one_sale(
    request: Request, form: FormDep, app: AppDep, session: SessionDep, viewer: ViewerDep, connection_id: int
) -> Response:
    """Test with one sale: send the sale named in the form to ShipStation now and show the result."""
    channel = channel_connection(session, viewer, connection_id)
    if channel is None:
        return not_found(request, viewer)
    entity, number = str(form.get("test_entity") or ""), str(form.get("test_number") or "")
    session.commit()  # SQLite: the send reads QuickBooks and ShipStation; never hold the write lock meanwhile
    result = ReverseSync(app.db, app.adapters).send_one(channel.id, entity, number)
    return _render_page(
        request,
        app,
        session,
        viewer,
        channel,
        "from-quickbooks",
        test_result=result,
        test_entity=entity,
        test_number=number,
    )
