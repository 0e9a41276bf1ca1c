"""The install wizard: one page per step, each Next validated and saved as a new settings revision.

`/wizard?connection={id}` resumes where the company left off (`Company.wizard_step`); `/wizard/{step}` shows a
step with its FAQ panel. The steps after Sync Direction depend on the direction chosen: orders into QuickBooks
(Orders, Customers, Accounts, Sales Tax, Products) or sales from QuickBooks to ShipStation (store, sales and
classes, tracking, a test sale; web/reverse_forms.py). The last step, My Account, sums every choice up and starts
syncing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.bootstrap import App
from ledgerlink.domain.settings import ChannelSettings, SyncDirection
from ledgerlink.store.models import Connection
from ledgerlink.sync.engine import load_settings
from ledgerlink.sync.jobs import enqueue
from ledgerlink.sync.qbwc import desktop_lists, desktop_status, request_list_refresh
from ledgerlink.sync.reverse import ReverseSync
from ledgerlink.web import forms, reverse_forms
from ledgerlink.web.catalog_cache import BooksLists, cache_of
from ledgerlink.web.deps import AppDep, SessionDep, Viewer, ViewerDep, csrf_protect
from ledgerlink.web.routes.settings import (
    FormDep,
    books_connection,
    books_lists,
    channel_connection,
    channels_of,
    import_tax_rows,
    missing_words,
    not_found,
    save_if_changed,
    upload_text,
    with_suggestions,
)
from ledgerlink.web.templating import flash, render

router = APIRouter(dependencies=[Depends(csrf_protect)], include_in_schema=False)


@dataclass(frozen=True, slots=True)
class Step:
    """A wizard page: its URL slug, its title in the progress bar, and the settings section it edits."""

    slug: str
    title: str
    section: str | None = None


TO_BOOKS_STEPS = (
    Step("direction", "Sync Direction", "direction"),
    Step("orders", "Orders", "orders"),
    Step("customers", "Customers", "customers"),
    Step("accounts", "Accounts", "accounts"),
    Step("tax", "Sales Tax", "tax"),
    Step("products", "Products", "products"),
    Step("account", "My Account"),
)
FROM_BOOKS_STEPS = (
    Step("direction", "Sync Direction", "direction"),
    Step("pair", "Pair ShipStation", "from_books.store"),
    Step("sales", "Sales and classes", "from_books.sales"),
    Step("tracking", "Tracking", "from_books.tracking"),
    Step("test", "Test with one sale"),
    Step("account", "My Account"),
)
DESKTOP_LIST_STEPS = {"orders", "accounts", "tax", "products", "account"}
NEEDS_LISTS = {"orders", "accounts", "tax", "account", "sales"}
NOTIFY_EVENT_VALUES = {value for value, _label in forms.NOTIFY_EVENTS}


def steps_for(settings: ChannelSettings) -> tuple[Step, ...]:
    """The wizard's steps for the direction chosen."""
    return FROM_BOOKS_STEPS if settings.direction is SyncDirection.FROM_BOOKS else TO_BOOKS_STEPS


def _url(slug: str, channel: Connection) -> str:
    return f"/wizard/{slug}?connection={channel.id}"


def _pick_channel(session: Session, viewer: Viewer, connection: int | None) -> Connection | None:
    if connection is not None:
        return channel_connection(session, viewer, connection)
    found = channels_of(session, viewer.company.id)
    return found[0] if found else None


def _start_page(request: Request, session: Session, viewer: Viewer, channel: Connection | None) -> Response:
    """What to connect first, when there is no channel or no QuickBooks company yet."""
    if channel is not None:
        books = books_connection(session, channel)
    else:
        books = session.scalars(
            select(Connection).where(Connection.company_id == viewer.company.id, Connection.role == "books")
        ).first()
    return render(request, "wizard/start.html", viewer=viewer, channel=channel, books=books)


@router.get("/wizard")
def wizard_start(request: Request, session: SessionDep, viewer: ViewerDep, connection: int | None = None) -> Response:
    """Resume the wizard for a channel (the first one by default) where the company left off."""
    channel = _pick_channel(session, viewer, connection)
    if connection is not None and channel is None:
        return not_found(request, viewer)
    if channel is None or books_connection(session, channel) is None:
        return _start_page(request, session, viewer, channel)
    steps = steps_for(load_settings(session, channel.id))
    resume = viewer.company.wizard_step
    slug = resume if resume in {s.slug for s in steps} else steps[0].slug
    return RedirectResponse(_url(slug, channel), status_code=303)


def _render_step(
    request: Request,
    app: App,
    session: Session,
    viewer: Viewer,
    channel: Connection,
    slug: str,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    settings = load_settings(session, channel.id)
    steps = steps_for(settings)
    index = next(i for i, s in enumerate(steps) if s.slug == slug)
    books = books_connection(session, channel)
    # A Desktop company's lists are what the last Web Connector session stored: read afresh, they show at once.
    on_desktop = books is not None and books.kind == "qbd"
    lists = books_lists(request, app, session, books, refresh=on_desktop) if slug in NEEDS_LISTS else BooksLists(None)
    shown = forms.form_values(settings)
    shown["notify_email"] = viewer.company.notify_email
    shown["notify_events"] = list(viewer.company.notify_events or [])
    shown.update(reverse_forms.form_values(settings))
    if values:
        shown.update(values)
    suggested = with_suggestions(shown, lists) if slug == "accounts" else set()
    books_kind = books.kind if books else "qbo"
    return render(
        request,
        f"wizard/{slug}.html",
        status_code=status_code,
        viewer=viewer,
        channel=channel,
        store=forms.channel_title(channel.kind),
        books=books,
        books_kind=books_kind,
        lists=lists,
        steps=steps,
        index=index,
        step=steps[index],
        back_url=_url(steps[index - 1].slug, channel) if index else None,
        action=_url(slug, channel),
        v=shown,
        errors=errors or {},
        suggested=suggested,
        settings=settings,
        missing=missing_words(settings),
        summary=_summary(settings, channel, books_kind, lists) if slug == "account" else [],
        forms=forms,
        can_receive=forms.receives_from_books(channel.kind),
        desktop=_desktop(session, books, slug),
        rf=reverse_forms,
        stores=reverse_forms.read_stores(app, session, channel) if slug == "pair" else None,
        test_action=f"/wizard/test/send?connection={channel.id}",
        **extra,
    )


def _summary(settings: ChannelSettings, channel: Connection, books_kind: str, lists: BooksLists) -> Any:
    if settings.direction is SyncDirection.FROM_BOOKS:
        return reverse_forms.summary(settings, forms.channel_title(channel.kind), lists)
    return forms.summary(settings, channel.kind, books_kind, lists.account_name)


def _channel_and_step(
    session: Session, viewer: Viewer, connection: int | None, slug: str
) -> tuple[Connection | None, Step | None]:
    channel = _pick_channel(session, viewer, connection)
    if channel is None:
        return None, None
    steps = steps_for(load_settings(session, channel.id))
    return channel, next((s for s in steps if s.slug == slug), None)


@router.get("/wizard/{slug}")
def wizard_step(
    request: Request, app: AppDep, session: SessionDep, viewer: ViewerDep, slug: str, connection: int | None = None
) -> Response:
    channel, step = _channel_and_step(session, viewer, connection, slug)
    if channel is None and connection is None:
        return _start_page(request, session, viewer, None)
    if channel is None:
        return not_found(request, viewer)
    if books_connection(session, channel) is None:
        return _start_page(request, session, viewer, channel)
    if step is None:
        # A step of the other direction (or an old link): start the steps of this direction over.
        return RedirectResponse(_url("direction", channel), status_code=303)
    return _render_step(request, app, session, viewer, channel, slug)


@router.post("/wizard/{slug}")
def wizard_next(
    request: Request,
    form: FormDep,
    app: AppDep,
    session: SessionDep,
    viewer: ViewerDep,
    slug: str,
    connection: int | None = None,
) -> Response:
    """Validate and save this step's fields, then go to the next step (or, on the last, start syncing)."""
    channel, step = _channel_and_step(session, viewer, connection, slug)
    if channel is None or step is None or books_connection(session, channel) is None:
        return not_found(request, viewer)
    current = load_settings(session, channel.id)
    new = current
    if step.section is not None:
        reverse = step.section in reverse_forms.SECTIONS
        values = (reverse_forms.read_form if reverse else forms.read_form)(step.section, form)
        try:
            if reverse:
                new = _apply_reverse(request, app, session, channel, current, step.section, values)
            else:
                new = forms.apply_values(current, step.section, values, channel_kind=channel.kind)
        except forms.FormErrors as exc:
            return _render_step(
                request, app, session, viewer, channel, slug, values=values, errors=exc.errors, status_code=422
            )
        save_if_changed(session, channel, current, new, viewer.user.email)
        if reverse_forms.is_from_books(new) and (
            not reverse_forms.is_from_books(current) or new.from_books.store_id != current.from_books.store_id
        ):
            # The shipping webhook follows the direction and the store (sync/shipstation_webhooks.py).
            reverse_forms.register_and_say(request, app, session, channel)
    if slug == "account":
        return _finish(request, form, app, session, viewer, channel, new)
    steps = steps_for(new)
    index = next(i for i, s in enumerate(steps) if s.slug == slug)
    following = steps[min(index + 1, len(steps) - 1)]
    viewer.company.wizard_step = following.slug
    return RedirectResponse(_url(following.slug, channel), status_code=303)


def _finish(
    request: Request,
    form: Any,
    app: App,
    session: Session,
    viewer: Viewer,
    channel: Connection,
    settings: ChannelSettings,
) -> Response:
    """Save the notification choices; refuse while something is missing, else queue the first sync."""
    email = str(form.get("notify_email") or "").strip()
    events = [str(e) for e in form.getlist("notify_events") if str(e) in NOTIFY_EVENT_VALUES]
    values = {"notify_email": email, "notify_events": events}
    if email and ("@" not in email or len(email) > 320 or " " in email):
        errors = {"notify_email": "Enter an e-mail address like books@yourshop.com, or leave it empty."}
        return _render_step(
            request, app, session, viewer, channel, "account", values=values, errors=errors, status_code=422
        )
    viewer.company.notify_email = email
    viewer.company.notify_events = events
    if needed := missing_words(settings):
        errors = {"_form": "Syncing cannot start yet: " + ", ".join(label for label, _step in needed) + "."}
        return _render_step(
            request,
            app,
            session,
            viewer,
            channel,
            "account",
            values=values,
            errors=errors,
            status_code=422,
            refused=needed,
        )
    viewer.company.wizard_step = "done"
    store = forms.channel_title(channel.kind)
    if settings.direction is SyncDirection.FROM_BOOKS:
        enqueue(session, channel, trigger="wizard", requested_by=viewer.user.email)
        flash(request, f"Setup finished: the first pass of sales from QuickBooks to {store} is queued.")
        return RedirectResponse("/", status_code=303)
    enqueue(session, channel, trigger="wizard", requested_by=viewer.user.email)
    flash(request, f"Setup finished: the first sync of {channel.name} is queued. Its progress shows below.")
    return RedirectResponse("/", status_code=303)


def _apply_reverse(
    request: Request,
    app: App,
    session: Session,
    channel: Connection,
    current: ChannelSettings,
    section: str,
    values: dict[str, Any],
) -> ChannelSettings:
    """A from-QuickBooks step's values, checked against the stores and classes the drop-downs offered."""
    books = books_connection(session, channel)
    lists = books_lists(request, app, session, books) if section == "from_books.sales" else BooksLists(None)
    stores = reverse_forms.read_stores(app, session, channel) if section == "from_books.store" else None
    return reverse_forms.apply_values(
        current,
        section,
        values,
        channel_kind=channel.kind,
        books_kind=books.kind if books else "qbo",
        class_ids=reverse_forms.class_ids(lists),
        store_ids=stores.ids if stores is not None else None,
    )


@router.post("/wizard/test/send")
def wizard_test_send(
    request: Request, form: FormDep, app: AppDep, session: SessionDep, viewer: ViewerDep, connection: int | None = None
) -> Response:
    """Test with one sale: send the sale named in the form to ShipStation and show the result on the step."""
    channel, step = _channel_and_step(session, viewer, connection, "test")
    if channel is None or step is None:
        return not_found(request, viewer)
    entity, number = str(form.get("test_entity") or ""), str(form.get("test_number") or "")
    session.commit()  # SQLite: the send reads QuickBooks and ShipStation; never hold the write lock meanwhile
    result = ReverseSync(app.db, app.adapters).send_one(channel.id, entity, number)
    return _render_step(
        request, app, session, viewer, channel, "test", test_result=result, test_entity=entity, test_number=number
    )


@router.post("/wizard/tax/import")
def wizard_import_tax(
    request: Request, form: FormDep, app: AppDep, session: SessionDep, viewer: ViewerDep, connection: int | None = None
) -> Response:
    """The Sales Tax step's CSV import (the same as under Settings, back to the wizard)."""
    channel, step = _channel_and_step(session, viewer, connection, "tax")
    if channel is None or step is None:
        return not_found(request, viewer)
    count, problems = import_tax_rows(session, channel, upload_text(form), bool(form.get("replace")), viewer.user.email)
    if problems:
        return _render_step(request, app, session, viewer, channel, "tax", status_code=422, import_errors=problems)
    flash(request, f"Imported {count} tax code rows.")
    return RedirectResponse(_url("tax", channel), status_code=303)


def _desktop(session: Session, books: Connection | None, slug: str) -> dict[str, Any] | None:
    """On a QuickBooks Desktop company's list steps: when its lists last arrived, whether a refresh is queued,
    and the lists themselves (accounts, items, classes, payment methods, sales tax codes)."""
    if books is None or books.kind != "qbd" or slug not in DESKTOP_LIST_STEPS:
        return None
    return {"status": desktop_status(session, books.id), "lists": desktop_lists(session, books.id), "back": slug}


def _refresh_desktop_lists(
    request: Request, session: Session, channel: Connection, books: Connection, back: str | None
) -> Response:
    """Desktop cannot be asked now: queue the list queries for the Web Connector's next session."""
    last = desktop_status(session, books.id).lists_refreshed_at
    request_list_refresh(session, books.id)
    cache_of(request.app.state).forget(books.id)
    when = f"they last arrived {last:%Y-%m-%d %H:%M} UTC" if last else "they have not arrived yet"
    flash(request, f"QuickBooks lists will refresh the next time the Web Connector runs ({when}).")
    slugs = {s.slug for s in steps_for(load_settings(session, channel.id))}
    return RedirectResponse(_url(back if back in slugs else "accounts", channel), status_code=303)


@router.post("/wizard/accounts/refresh")
def wizard_refresh_lists(
    request: Request,
    app: AppDep,
    session: SessionDep,
    viewer: ViewerDep,
    connection: int | None = None,
    back: str | None = None,
) -> Response:
    """Read the QuickBooks lists again and come back to the Accounts step (Desktop: queue them for the Web
    Connector and come back to the step `back`)."""
    channel, step = _channel_and_step(session, viewer, connection, "accounts")
    if channel is None or step is None:
        return not_found(request, viewer)
    books = books_connection(session, channel)
    if books is not None and books.kind == "qbd":
        return _refresh_desktop_lists(request, session, channel, books, back)
    lists = books_lists(request, app, session, books_connection(session, channel), refresh=True)
    if lists.catalog is None:
        flash(request, lists.error, "error")
    else:
        flash(request, "The lists were read again from QuickBooks.")
    return RedirectResponse(_url("accounts", channel), status_code=303)
