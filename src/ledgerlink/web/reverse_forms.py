"""The "orders from QuickBooks to ShipStation" forms: `FromBooksSettings` as the wizard and Settings edit it.

Sections: `from_books.store` (the wizard's Pair step: the ShipStation store the sales go to, the statuses they
are created in, the ship-via → requested service mapping), `from_books.sales` (transaction types, QuickBooks
classes, the items that are shipping charges, how far back the first sync reads), `from_books.tracking`
(tracking and shipping cost write-back), and `from_books` (the Settings page: the direction and all of the
above at once). A field absent from a post keeps its saved value (a page that does not show it).
The store drop-down is read from ShipStation, the classes from the books' cached lists; "Test with one sale"
sends one sale through `ReverseSync.send_one`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.requests import Request

from ledgerlink.bootstrap import App
from ledgerlink.channels.shipstation_outbound import ShipStationOutbound, Store
from ledgerlink.domain.errors import LedgerlinkError
from ledgerlink.domain.reverse import MAX_SHIP_METHOD, SaleType, ShipStationStatus
from ledgerlink.domain.settings import ChannelSettings, SyncDirection
from ledgerlink.store.models import Connection
from ledgerlink.sync.shipstation_webhooks import quick_channel, register_ship_notify
from ledgerlink.web import forms
from ledgerlink.web.catalog_cache import BooksLists
from ledgerlink.web.templating import flash

SECTIONS = ("from_books.store", "from_books.sales", "from_books.tracking", "from_books")
_FIELDS = {
    "from_books.store": (
        "from_books.store_id",
        "from_books.paid_status",
        "from_books.balance_due_status",
        "from_books.ship_via",
        "from_books.default_service",
    ),
    "from_books.sales": (
        "from_books.transaction_types",
        "from_books.class_ids",
        "from_books.shipping_item_names",
        "from_books.first_sync_days",
    ),
    "from_books.tracking": ("from_books.write_tracking", "from_books.write_shipping_cost"),
}
_FIELDS["from_books"] = tuple(f for part in _FIELDS.values() for f in part)
_LISTS = ("from_books.transaction_types", "from_books.class_ids")
_FLAGS = ("from_books.write_tracking", "from_books.write_shipping_cost")
_STATUSES = ("from_books.paid_status", "from_books.balance_due_status")
# Fields kept as saved when a post does not carry them (the wizard's Pair and Sales steps predate them).
_OPTIONAL = (*_STATUSES, "from_books.default_service", "from_books.shipping_item_names", "from_books.first_sync_days")
_SHIP_VIA_ROW = re.compile(r"^from_books\.ship_via\.(?P<index>\d+)\.(?P<field>ship_via|service|remove)$")
BLANK_ROWS = 2
MAX_SERVICE = 100  # what the form accepts for ShipStation's requestedShippingService
MAX_ITEM_NAME = 100  # QuickBooks Online item names
MAX_SHIPPING_ITEMS = 20
MAX_FIRST_SYNC_DAYS = 30  # QuickBooks Online's change data capture looks back 30 days
STATUS_LABELS = {
    ShipStationStatus.AWAITING_SHIPMENT: "Awaiting Shipment",
    ShipStationStatus.AWAITING_PAYMENT: "Awaiting Payment",
    ShipStationStatus.ON_HOLD: "On Hold",
}
TYPE_LABELS = {
    SaleType.SALES_RECEIPT: ("Sales Receipts", "Paid at the sale: sent as Awaiting Shipment."),
    SaleType.INVOICE: ("Invoices", "Sent as Awaiting Payment while a balance is due, else Awaiting Shipment."),
    SaleType.ESTIMATE: (
        "Estimates",
        "QuickBooks Online's stand-in for a sales order: sent as Awaiting Shipment, nothing paid. "
        "A rejected estimate cancels the order. Choose Estimates or the Invoices made from them, not both.",
    ),
    SaleType.SALES_ORDER: ("Sales Orders", "QuickBooks Desktop only: sent as Awaiting Shipment, nothing paid."),
}
DESKTOP_ONLY = "Sales Orders exist only in QuickBooks Desktop; on QuickBooks Online choose Estimates."


@dataclass(frozen=True, slots=True)
class TypeChoice:
    """One transaction-type check box."""

    value: str
    title: str
    hint: str
    disabled: bool
    reason: str


def type_choices(books_kind: str) -> list[TypeChoice]:
    """The transaction types a bookkeeper may tick (Sales Orders only with QuickBooks Desktop)."""
    return [
        TypeChoice(
            t.value,
            TYPE_LABELS[t][0],
            TYPE_LABELS[t][1],
            t.desktop_only and books_kind != "qbd",
            DESKTOP_ONLY if t.desktop_only and books_kind != "qbd" else "",
        )
        for t in SaleType
    ]


def form_values(settings: ChannelSettings) -> dict[str, Any]:
    """The from-QuickBooks fields as the forms show them."""
    fb = settings.from_books
    return {
        "from_books.store_id": "" if fb.store_id is None else str(fb.store_id),
        "from_books.transaction_types": [t.value for t in fb.transaction_types],
        "from_books.class_ids": list(fb.class_ids),
        "from_books.write_tracking": fb.write_tracking,
        "from_books.write_shipping_cost": fb.write_shipping_cost,
        "from_books.paid_status": fb.paid_status.value,
        "from_books.balance_due_status": fb.balance_due_status.value,
        "from_books.ship_via": [{"ship_via": k, "service": v} for k, v in fb.ship_via_services.items()],
        "from_books.default_service": fb.default_service,
        "from_books.shipping_item_names": "\n".join(fb.shipping_item_names),
        "from_books.first_sync_days": str(fb.first_sync_days),
    }


def _ship_via_rows(form: FormData) -> list[dict[str, str]] | None:
    """The ship-via table's rows in order (removed and blank rows dropped); None when the post has no table."""
    indexes: set[int] = set()
    for key in form:
        found = _SHIP_VIA_ROW.match(str(key))
        if found:
            indexes.add(int(found["index"]))
    if not indexes:
        return None
    rows: list[dict[str, str]] = []
    for index in sorted(indexes):
        prefix = f"from_books.ship_via.{index}"
        if form.get(f"{prefix}.remove"):
            continue
        row = {name: str(form.get(f"{prefix}.{name}") or "").strip() for name in ("ship_via", "service")}
        if any(row.values()):
            rows.append(row)
    return rows


def read_form(section: str, form: FormData) -> dict[str, Any]:
    """One section's posted values (check boxes absent from the post are off)."""
    values: dict[str, Any] = {}
    if section == "from_books":
        values.update(forms.read_form("direction", form))
    for name in _FIELDS[section]:
        if name == "from_books.ship_via":
            rows = _ship_via_rows(form)
            if rows is not None:
                values[name] = rows
        elif name in _OPTIONAL and name not in form:
            continue
        elif name == "from_books.shipping_item_names":
            values[name] = str(form.get(name) or "")
        elif name in _LISTS:
            values[name] = [str(v).strip() for v in form.getlist(name) if str(v).strip()]
        elif name in _FLAGS:
            values[name] = bool(form.get(name))
        else:
            values[name] = str(form.get(name) or "").strip()
    return values


def apply_values(
    settings: ChannelSettings,
    section: str,
    values: Mapping[str, Any],
    *,
    channel_kind: str,
    books_kind: str,
    class_ids: Collection[str] | None = None,
    store_ids: Collection[int] | None = None,
) -> ChannelSettings:
    """New settings with the section's values; `forms.FormErrors` names each bad field.

    `class_ids` and `store_ids` are what the drop-downs offered (None when the list could not be read: then
    any well-formed value is kept, and the next sync says if it is wrong).
    """
    errors: dict[str, str] = {}
    if section == "from_books":
        try:
            settings = forms.apply_values(settings, "direction", values, channel_kind=channel_kind)
        except forms.FormErrors as exc:
            errors.update(exc.errors)
        if not forms.receives_from_books(channel_kind):
            # The page shows only the direction for channels that cannot take sales from QuickBooks.
            if errors:
                raise forms.FormErrors(errors)
            return settings
    data = settings.from_books.model_dump(mode="json")
    names = _FIELDS[section]
    if "from_books.store_id" in names:
        raw = str(values.get("from_books.store_id") or "")
        if not raw:
            data["store_id"] = None
        elif not raw.isdigit():
            errors["from_books.store_id"] = "Choose a ShipStation store from the list."
        elif store_ids is not None and int(raw) not in store_ids:
            errors["from_books.store_id"] = f"ShipStation has no store {raw} in this account: choose one from the list."
        else:
            data["store_id"] = int(raw)
    if "from_books.transaction_types" in names:
        chosen = list(values.get("from_books.transaction_types") or [])
        known = {t.value for t in SaleType}
        if not chosen:
            errors["from_books.transaction_types"] = "Choose at least one kind of QuickBooks sale to send."
        elif unknown := [c for c in chosen if c not in known]:
            errors["from_books.transaction_types"] = f"Not a QuickBooks transaction type: {', '.join(unknown)}."
        elif SaleType.SALES_ORDER.value in chosen and books_kind != "qbd":
            errors["from_books.transaction_types"] = DESKTOP_ONLY
        data["transaction_types"] = chosen
        picked = list(values.get("from_books.class_ids") or [])
        if class_ids is not None and (strangers := [c for c in picked if c not in class_ids]):
            errors["from_books.class_ids"] = (
                f"QuickBooks has no class with id {', '.join(strangers)}: refresh the lists and choose again."
            )
        data["class_ids"] = picked
    for status in _STATUSES:
        if status in names and status in values:
            raw = str(values.get(status) or "")
            if raw not in {s.value for s in ShipStationStatus}:
                choices = ", ".join(STATUS_LABELS.values())
                errors[status] = f"Choose one of the statuses ShipStation creates orders in: {choices}."
            else:
                data[status.removeprefix("from_books.")] = raw
    if "from_books.ship_via" in names and "from_books.ship_via" in values:
        data["ship_via_services"] = _apply_ship_via(values["from_books.ship_via"], errors)
    if "from_books.default_service" in names and "from_books.default_service" in values:
        service = str(values.get("from_books.default_service") or "")
        if len(service) > MAX_SERVICE:
            errors["from_books.default_service"] = f"At most {MAX_SERVICE} characters (this has {len(service)})."
        data["default_service"] = service
    if "from_books.shipping_item_names" in names and "from_books.shipping_item_names" in values:
        data["shipping_item_names"] = _apply_item_names(str(values["from_books.shipping_item_names"]), errors)
    if "from_books.first_sync_days" in names and "from_books.first_sync_days" in values:
        raw = str(values.get("from_books.first_sync_days") or "").strip()
        if not raw.isdigit() or int(raw) > MAX_FIRST_SYNC_DAYS:
            errors["from_books.first_sync_days"] = (
                f"Enter a whole number of days from 0 to {MAX_FIRST_SYNC_DAYS} "
                "(QuickBooks Online keeps 30 days of changes)."
            )
        else:
            data["first_sync_days"] = int(raw)
    for flag in _FLAGS:
        if flag in names:
            data[flag.removeprefix("from_books.")] = bool(values.get(flag))
    if errors:
        raise forms.FormErrors(errors)
    try:
        new = ChannelSettings.model_validate({**settings.model_dump(mode="json"), "from_books": data})
    except ValidationError as exc:
        raise forms.FormErrors({"_form": "; ".join(forms.friendly(e) for e in exc.errors(include_url=False))}) from exc
    return new


def _apply_ship_via(rows: Sequence[Mapping[str, str]], errors: dict[str, str]) -> dict[str, str]:
    """The ship-via table as a mapping; each bad cell gets its own error (`from_books.ship_via.<row>.<cell>`)."""
    mapping: dict[str, str] = {}
    seen: dict[str, int] = {}
    for index, row in enumerate(rows):
        ship_via, service = (row.get("ship_via") or "").strip(), (row.get("service") or "").strip()
        where = f"from_books.ship_via.{index}"
        if not ship_via:
            errors[f"{where}.ship_via"] = "Enter the QuickBooks ship via (as on the sale's Ship Via)."
        elif len(ship_via) > MAX_SHIP_METHOD:
            errors[f"{where}.ship_via"] = f"QuickBooks ship via names have at most {MAX_SHIP_METHOD} characters."
        elif ship_via.casefold() in seen:
            errors[f"{where}.ship_via"] = f"This ship via is already mapped in row {seen[ship_via.casefold()] + 1}."
        elif not service:
            errors[f"{where}.service"] = "Enter the ShipStation service orders with this ship via ask for."
        elif len(service) > MAX_SERVICE:
            errors[f"{where}.service"] = f"At most {MAX_SERVICE} characters (this has {len(service)})."
        else:
            seen[ship_via.casefold()] = index
            mapping[ship_via] = service
    return mapping


def _apply_item_names(text: str, errors: dict[str, str]) -> list[str]:
    """The shipping items, one name a line; blank lines and repeats dropped."""
    names: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        name = raw.strip()
        if not name or name.casefold() in {n.casefold() for n in names}:
            continue
        if len(name) > MAX_ITEM_NAME:
            errors["from_books.shipping_item_names"] = (
                f"Line {number} has {len(name)} characters: QuickBooks item names have at most {MAX_ITEM_NAME}."
            )
        names.append(name)
    if len(names) > MAX_SHIPPING_ITEMS:
        errors["from_books.shipping_item_names"] = f"At most {MAX_SHIPPING_ITEMS} shipping items ({len(names)} given)."
    return names


def status_choices() -> list[tuple[str, str]]:
    """The statuses a new ShipStation order may be created in, as (value, label)."""
    return [(s.value, STATUS_LABELS[s]) for s in ShipStationStatus]


# -- what the pages read -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stores:
    """The store drop-down: the account's stores, or why they could not be read."""

    stores: list[Store]
    error: str = ""

    @property
    def ids(self) -> set[int] | None:
        return {s.store_id for s in self.stores} if not self.error else None


def read_stores(app: App, session: Session, channel: Connection) -> Stores:
    """The ShipStation account's stores (one request; the page waits a couple of seconds at most)."""
    if channel.kind != "shipstation":
        return Stores([], "not a ShipStation connection")
    session.commit()  # SQLite: never hold the write lock while waiting for ShipStation
    try:
        adapter = quick_channel(app, channel)
    except (LedgerlinkError, ValueError) as exc:
        return Stores([], f"The connection's settings cannot reach ShipStation: {exc}")
    try:
        return Stores(ShipStationOutbound(adapter).stores())
    except LedgerlinkError as exc:
        return Stores([], f"ShipStation's stores could not be read: {exc}")
    finally:
        adapter.close()


def class_ids(lists: BooksLists) -> set[str] | None:
    """The class ids the drop-down offered (None when the books could not be read)."""
    return {cid for cid, _name in lists.classes()} if lists.catalog is not None else None


def register_and_say(request: Request, app: App, session: Session, channel: Connection) -> bool:
    """Register the SHIP_NOTIFY webhook for a from-QuickBooks ShipStation connection; flash what happened."""
    if channel.kind != "shipstation":
        return False
    session.commit()  # the settings are saved: the webhook address must not wait on ShipStation
    try:
        register_ship_notify(app, channel)
    except LedgerlinkError as exc:
        flash(
            request,
            f"Saved. The ShipStation shipping webhook could not be set up ({exc}); tracking still comes back "
            "with each scheduled sync, and the webhook is tried again then.",
            "warn",
        )
        return False
    return True


def summary(settings: ChannelSettings, store: str, lists: BooksLists) -> list[tuple[str, str, str]]:
    """The My Account step's sentences for the from-QuickBooks direction: (wizard step, heading, sentence)."""
    fb = settings.from_books
    labels = [TYPE_LABELS[t][0] for t in fb.transaction_types]
    names = dict(lists.classes())
    classes = ", ".join(names.get(c, f"class {c}") for c in fb.class_ids)
    where = f"store {fb.store_id}" if fb.store_id is not None else "its Manual Orders store"
    back = [w for w, on in (("tracking numbers", fb.write_tracking), ("the label cost", fb.write_shipping_cost)) if on]
    verb = "are" if len(back) > 1 else "is"
    return [
        ("direction", "Direction", f"Sales entered in QuickBooks go to {store} to be shipped."),
        (
            "pair",
            "Store",
            f"They arrive in {store}'s {where} as {STATUS_LABELS[fb.paid_status]}"
            + (
                f" ({STATUS_LABELS[fb.balance_due_status]} while an invoice has a balance due)."
                if fb.balance_due_status != fb.paid_status
                else "."
            )
            + (f" Mapped ship via: {forms_join(list(fb.ship_via_services))}." if fb.ship_via_services else ""),
        ),
        (
            "sales",
            "Which sales",
            f"{forms_join(labels)}"
            + (f" of the classes {classes}" if classes else " of every class")
            + " are sent; edits before shipping update the order, a void or delete cancels it.",
        ),
        (
            "tracking",
            "Written back",
            (
                f"When {store} ships, {forms_join(back)} {verb} written on the QuickBooks sale"
                + (" (the label cost as a line of its memo)." if fb.write_shipping_cost else ".")
            )
            if back
            else "Nothing is written back to QuickBooks.",
        ),
    ]


def forms_join(words: list[str]) -> str:
    if len(words) > 1:
        return ", ".join(words[:-1]) + " and " + words[-1]
    return words[0] if words else ""


def is_from_books(settings: ChannelSettings) -> bool:
    return settings.direction is SyncDirection.FROM_BOOKS
