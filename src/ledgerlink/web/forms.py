"""`ChannelSettings` ⇄ HTML form fields, shared by the install wizard and the Settings pages.

Form fields are named by the dotted path of the setting they edit (`accounts.deposit`, `orders.created_from`),
so a pydantic error location maps straight to the field it belongs to; `field_for_loc` holds the exceptions.
A section is one page's worth of fields: `read_form` turns a posted form into flat values, `apply_values`
validates them into new settings (or raises `FormErrors` keyed by field name), `form_values` is the reverse.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import time
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData

from ledgerlink.domain.settings import (
    ChannelSettings,
    MissingItem,
    ScheduleKind,
    SyncDirection,
    TaxJurisdiction,
    TransactionType,
)

SECTIONS = ("direction", "orders", "customers", "accounts", "tax", "products")

FINANCIAL_STATUSES: tuple[tuple[str, str], ...] = (
    ("paid", "Paid"),
    ("partially_paid", "Partially paid"),
    ("partially_refunded", "Partially refunded"),
    ("refunded", "Refunded"),
    ("pending", "Pending (not paid yet)"),
    ("authorized", "Authorized (card not captured yet)"),
    ("voided", "Voided"),
)
FULFILLMENT_STATUSES: tuple[tuple[str, str], ...] = (
    ("fulfilled", "Fulfilled"),
    ("partial", "Partially fulfilled"),
    ("unfulfilled", "Unfulfilled"),
    ("restocked", "Restocked"),
)
NOTIFY_EVENTS: tuple[tuple[str, str], ...] = (
    ("sync_failed", "A sync failed"),
    ("order_failed", "An order could not be posted"),
    ("needs_reconnect", "QuickBooks needs reconnecting"),
)
ACCOUNT_FIELDS = ("item_asset", "item_cogs", "item_income", "item_discount", "accounts_receivable", "deposit")

MAX_DOC_NUMBER = 21  # QuickBooks Online's DocNumber holds 21 characters
EXAMPLE_ORDER_NUMBER = "1001"
BLANK_ROWS = 3

# What each field is called on the page, for messages that name a field ("Deposit Account is required").
FIELD_LABELS: dict[str, str] = {
    "direction": "Sync direction",
    "transaction_type": "What each order becomes",
    "accounts.deposit": "Deposit Account",
    "accounts.item_income": "Item Income Account",
    "accounts.item_discount": "Item Discount Account",
    "accounts.accounts_receivable": "Accounts Receivable Account",
    "accounts.item_asset": "Item Asset Account",
    "accounts.item_cogs": "Item COGS Account",
    "doc_number_prefix": "Document number prefix",
    "class_id": "Class",
    "schedule.choice": "How often",
    "schedule.daily_at": "Time of day",
}

# Which wizard step (and Settings page) fixes a setting named by `ChannelSettings.missing()`.
MISSING_STEP: dict[str, str] = {
    "accounts.deposit": "accounts",
    "accounts.item_income": "accounts",
    "accounts.accounts_receivable": "accounts",
    "accounts.item_asset": "accounts",
    "accounts.item_cogs": "accounts",
}

REQUIRED_MESSAGES: dict[str, str] = {
    "accounts.deposit": "Choose the account sales receipts and payments are deposited to: it is required.",
    "accounts.item_income": "Choose the income account new items post their sales to: it is required.",
    "accounts.accounts_receivable": "Invoices need an Accounts Receivable account: choose one.",
    "accounts.item_asset": "New inventory items need an asset account: choose one.",
    "accounts.item_cogs": "New inventory items need a cost of goods sold account: choose one.",
}


class FormErrors(Exception):
    """Messages by form field name; "_form" holds what belongs to no single field."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


# -- settings → form values ------------------------------------------------------------------------------


def schedule_choice(settings: ChannelSettings) -> str:
    """The "how often" radio: "15", "60" (or any minutes), "daily" or "manual"."""
    if settings.schedule.kind is ScheduleKind.DAILY:
        return "daily"
    if settings.schedule.kind is ScheduleKind.MANUAL:
        return "manual"
    return str(settings.schedule.every_minutes)


def form_values(settings: ChannelSettings) -> dict[str, Any]:
    """Every field of every section, as the form shows it (strings, booleans, lists, row dicts)."""
    s = settings
    return {
        "direction": s.direction.value,
        "push_stock_levels": s.push_stock_levels,
        "stock_buffer": str(s.stock_buffer),
        "transaction_type": s.transaction_type.value,
        "orders.financial_statuses": list(s.orders.financial_statuses),
        "orders.fulfillment_statuses": list(s.orders.fulfillment_statuses),
        "orders.created_from": s.orders.created_from.isoformat() if s.orders.created_from else "",
        "orders.created_to": s.orders.created_to.isoformat() if s.orders.created_to else "",
        "orders.order_numbers": ", ".join(s.orders.order_numbers),
        "orders.include_cancelled": s.orders.include_cancelled,
        "schedule.choice": schedule_choice(s),
        "schedule.daily_at": s.schedule.daily_at.strftime("%H:%M") if s.schedule.daily_at else "05:45",
        "update_policy": s.update_policy.value,
        "doc_number_prefix": s.doc_number_prefix,
        "class_id": s.class_id or "",
        "customers.mode": s.customers.mode.value,
        "customers.single_name": s.customers.single_name,
        "customers.when_missing": s.customers.when_missing.value,
        **{f"accounts.{name}": getattr(s.accounts, name) or "" for name in ACCOUNT_FIELDS},
        "inventory": s.create_inventory_items or s.items.when_missing is MissingItem.CREATE_INVENTORY,
        "tax.mode": s.tax.mode.value,
        "tax.tax_item_name": s.tax.tax_item_name,
        "tax.rows": [row.model_dump() for row in s.tax.jurisdictions],
        "items.match_on": s.items.match_on.value,
        "items.when_missing": s.items.when_missing.value,
        "items.rows": [{"sku": sku, "item": item} for sku, item in s.items.sku_map.items()],
        "shipping_item_name": s.shipping_item_name,
        "use_books_shipping_line": s.use_books_shipping_line,
        "discount_item_name": s.discount_item_name,
        "adjust_total": s.adjust_total,
        "adjust_item_name": s.adjust_item_name,
    }


def doc_number_example(prefix: str) -> tuple[str, int]:
    """What a document number looks like with this prefix, and its length (QuickBooks keeps 21)."""
    number = f"{prefix}{EXAMPLE_ORDER_NUMBER}"
    return number, len(number)


# -- form → values ---------------------------------------------------------------------------------------

_ROW = re.compile(r"^(?P<table>tax\.jurisdictions|items\.sku_map)\.(?P<index>\d+)\.(?P<field>\w+)$")


def _text(form: FormData, key: str) -> str:
    value = form.get(key)
    return value.strip() if isinstance(value, str) else ""


def _rows(form: FormData, table: str, fields: Sequence[str]) -> list[dict[str, str]]:
    """Indexed row fields (`table.<i>.<field>`) in index order; removed and blank rows are dropped."""
    indexes: set[int] = set()
    for key in form:
        found = _ROW.match(str(key))
        if found and found["table"] == table:
            indexes.add(int(found["index"]))
    rows: list[dict[str, str]] = []
    for index in sorted(indexes):
        if form.get(f"{table}.{index}.remove"):
            continue
        row = {name: _text(form, f"{table}.{index}.{name}") for name in fields}
        if any(row.values()):
            rows.append(row)
    return rows


def read_form(section: str, form: FormData) -> dict[str, Any]:
    """The fields of one section as posted (absent checkboxes are False, absent lists empty)."""
    if section == "direction":
        return {"direction": _text(form, "direction"), "push_stock_levels": bool(form.get("push_stock_levels"))}
    if section == "orders":
        return {
            "transaction_type": _text(form, "transaction_type"),
            "orders.financial_statuses": [str(v) for v in form.getlist("orders.financial_statuses")],
            "orders.fulfillment_statuses": [str(v) for v in form.getlist("orders.fulfillment_statuses")],
            "orders.created_from": _text(form, "orders.created_from"),
            "orders.created_to": _text(form, "orders.created_to"),
            "orders.order_numbers": _text(form, "orders.order_numbers"),
            "orders.include_cancelled": bool(form.get("orders.include_cancelled")),
            "schedule.choice": _text(form, "schedule.choice"),
            "schedule.daily_at": _text(form, "schedule.daily_at"),
            "update_policy": _text(form, "update_policy"),
            "doc_number_prefix": _text(form, "doc_number_prefix"),
            "class_id": _text(form, "class_id"),
        }
    if section == "customers":
        return {
            "customers.mode": _text(form, "customers.mode"),
            "customers.single_name": _text(form, "customers.single_name"),
            "customers.when_missing": _text(form, "customers.when_missing"),
        }
    if section == "accounts":
        values: dict[str, Any] = {f"accounts.{name}": _text(form, f"accounts.{name}") for name in ACCOUNT_FIELDS}
        values["inventory"] = bool(form.get("inventory"))
        return values
    if section == "tax":
        return {
            "tax.mode": _text(form, "tax.mode"),
            "tax.tax_item_name": _text(form, "tax.tax_item_name"),
            "tax.rows": _rows(form, "tax.jurisdictions", ("country", "region", "city", "tax_code")),
        }
    if section == "products":
        return {
            "items.match_on": _text(form, "items.match_on"),
            "items.when_missing": _text(form, "items.when_missing"),
            "items.rows": _rows(form, "items.sku_map", ("sku", "item")),
            "shipping_item_name": _text(form, "shipping_item_name"),
            "use_books_shipping_line": bool(form.get("use_books_shipping_line")),
            "discount_item_name": _text(form, "discount_item_name"),
            "adjust_total": bool(form.get("adjust_total")),
            "adjust_item_name": _text(form, "adjust_item_name"),
            # Only channels that take stock levels (Shopify) show these; absent, the saved values stay.
            **(
                {"push_stock_levels": bool(form.get("push_stock_levels")), "stock_buffer": _text(form, "stock_buffer")}
                if "stock_buffer" in form
                else {}
            ),
        }
    raise KeyError(f"no settings section {section!r}")


# -- values → settings -----------------------------------------------------------------------------------


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    target = data
    for part in parents:
        target = target.setdefault(part, {})
    target[last] = value


def _apply_schedule(data: dict[str, Any], values: Mapping[str, Any], errors: dict[str, str]) -> None:
    choice = str(values.get("schedule.choice") or "")
    daily_at = str(values.get("schedule.daily_at") or "")
    schedule = dict(data.get("schedule") or {})
    if choice == "manual":
        schedule["kind"] = ScheduleKind.MANUAL.value
    elif choice == "daily":
        schedule["kind"] = ScheduleKind.DAILY.value
        if not daily_at:
            errors["schedule.daily_at"] = "Enter the time of day the sync runs, like 05:45."
    elif choice.isdigit():
        schedule["kind"] = ScheduleKind.INTERVAL.value
        schedule["every_minutes"] = int(choice)
    else:
        errors["schedule.choice"] = "Choose how often the sync runs."
    if choice == "daily":
        schedule["daily_at"] = daily_at or None
    # Otherwise the stored time stays as it was: the field shows a default, which is no choice of the user's.
    data["schedule"] = schedule


def _apply_tax_rows(rows: Sequence[Mapping[str, str]], errors: dict[str, str]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    seen: dict[tuple[str, str, str], int] = {}
    for index, row in enumerate(rows):
        clean = {
            "country": (row.get("country") or "US").strip().upper(),
            "region": (row.get("region") or "").strip(),
            "city": (row.get("city") or "").strip(),
            "tax_code": (row.get("tax_code") or "").strip(),
        }
        try:
            TaxJurisdiction.model_validate(clean)
        except ValidationError as exc:
            for err in exc.errors():
                name = str(err["loc"][0]) if err["loc"] else "region"
                errors.setdefault(f"tax.jurisdictions.{index}.{name}", friendly(err))
        key = (clean["country"].casefold(), clean["region"].casefold(), clean["city"].casefold())
        if key in seen:
            errors.setdefault(f"tax.jurisdictions.{index}.region", f"The same place is already in row {seen[key] + 1}.")
        seen.setdefault(key, index)
        out.append(clean)
    return out


def _apply_sku_rows(rows: Sequence[Mapping[str, str]], errors: dict[str, str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    seen: dict[str, int] = {}
    for index, row in enumerate(rows):
        sku, item = (row.get("sku") or "").strip(), (row.get("item") or "").strip()
        if not sku:
            errors[f"items.sku_map.{index}.sku"] = "Enter the SKU the store uses."
            continue
        if not item:
            errors[f"items.sku_map.{index}.item"] = "Enter the QuickBooks item this SKU posts as."
            continue
        if len(item) > 100:
            errors[f"items.sku_map.{index}.item"] = "QuickBooks item names have at most 100 characters."
            continue
        folded = sku.casefold()
        if folded in seen:
            errors[f"items.sku_map.{index}.sku"] = f"This SKU is already mapped in row {seen[folded] + 1}."
            continue
        seen[folded] = index
        mapping[sku] = item
    return mapping


def apply_values(
    settings: ChannelSettings, section: str, values: Mapping[str, Any], *, channel_kind: str = ""
) -> ChannelSettings:
    """New settings with one section's values applied; `FormErrors` names each bad field.

    The accounts section also insists on the accounts a sync cannot run without (`ChannelSettings.missing`).
    """
    data = settings.model_dump(mode="json")
    errors: dict[str, str] = {}
    if section == "direction":
        direction = str(values.get("direction") or "")
        if direction == SyncDirection.FROM_BOOKS.value and not receives_from_books(channel_kind):
            errors["direction"] = receive_refusal(channel_kind)
        data["direction"] = direction
        data["push_stock_levels"] = bool(values.get("push_stock_levels"))
    elif section == "orders":
        data["transaction_type"] = values.get("transaction_type") or ""
        _set(data, "orders.financial_statuses", list(values.get("orders.financial_statuses") or []))
        _set(data, "orders.fulfillment_statuses", list(values.get("orders.fulfillment_statuses") or []))
        _set(data, "orders.created_from", values.get("orders.created_from") or None)
        _set(data, "orders.created_to", values.get("orders.created_to") or None)
        numbers = re.split(r"[\s,;]+", str(values.get("orders.order_numbers") or ""))
        _set(data, "orders.order_numbers", [n.lstrip("#") for n in numbers if n.lstrip("#")])
        _set(data, "orders.include_cancelled", bool(values.get("orders.include_cancelled")))
        _apply_schedule(data, values, errors)
        data["update_policy"] = values.get("update_policy") or ""
        data["doc_number_prefix"] = str(values.get("doc_number_prefix") or "")
        data["class_id"] = values.get("class_id") or None
        created_from, created_to = data["orders"]["created_from"], data["orders"]["created_to"]
        if created_from and created_to and str(created_from) > str(created_to):
            errors["orders.created_to"] = "The end date is before the start date."
    elif section == "customers":
        for name in ("mode", "single_name", "when_missing"):
            _set(data, f"customers.{name}", values.get(f"customers.{name}") or "")
    elif section == "accounts":
        inventory = bool(values.get("inventory"))
        for name in ACCOUNT_FIELDS:
            if name in ("item_asset", "item_cogs") and not inventory:
                continue  # hidden fields (prefilled with suggestions) are no choice: keep what was saved
            _set(data, f"accounts.{name}", values.get(f"accounts.{name}") or None)
        data["create_inventory_items"] = inventory
        when_missing = data["items"]["when_missing"]
        if inventory and when_missing != MissingItem.FAIL.value:
            data["items"]["when_missing"] = MissingItem.CREATE_INVENTORY.value
        elif not inventory and when_missing == MissingItem.CREATE_INVENTORY.value:
            data["items"]["when_missing"] = MissingItem.CREATE_NON_INVENTORY.value
    elif section == "tax":
        _set(data, "tax.mode", values.get("tax.mode") or "")
        _set(data, "tax.tax_item_name", values.get("tax.tax_item_name") or "")
        _set(data, "tax.jurisdictions", _apply_tax_rows(values.get("tax.rows") or [], errors))
    elif section == "products":
        _set(data, "items.match_on", values.get("items.match_on") or "")
        _set(data, "items.when_missing", values.get("items.when_missing") or "")
        _set(data, "items.sku_map", _apply_sku_rows(values.get("items.rows") or [], errors))
        when_missing = data["items"]["when_missing"]
        data["create_inventory_items"] = when_missing == MissingItem.CREATE_INVENTORY.value
        for name in ("shipping_item_name", "discount_item_name", "adjust_item_name"):
            data[name] = values.get(name) or ""
        data["use_books_shipping_line"] = bool(values.get("use_books_shipping_line"))
        data["adjust_total"] = bool(values.get("adjust_total"))
        if "stock_buffer" in values:
            data["push_stock_levels"] = bool(values.get("push_stock_levels"))
            buffer = str(values.get("stock_buffer") or "0").strip()
            if buffer.isascii() and buffer.isdigit():
                data["stock_buffer"] = int(buffer)
            else:
                errors["stock_buffer"] = "Enter a whole number of units to keep back, like 0 or 2."
    else:
        raise KeyError(f"no settings section {section!r}")

    new: ChannelSettings | None = None
    try:
        new = ChannelSettings.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            errors.setdefault(field_for_loc(err["loc"]), friendly(err))
    if new is not None and section == "accounts":
        for needed in new.missing():
            errors.setdefault(needed, REQUIRED_MESSAGES.get(needed, "This is required."))
    if new is not None and section == "orders":
        number, length = doc_number_example(new.doc_number_prefix)
        if length > MAX_DOC_NUMBER:
            errors.setdefault("doc_number_prefix", f"{number} is longer than QuickBooks' {MAX_DOC_NUMBER} characters.")
    if errors or new is None:
        raise FormErrors(errors or {"_form": "These settings could not be saved."})
    return new


def field_for_loc(loc: Sequence[int | str]) -> str:
    """The form field a pydantic error location belongs to (the dotted path, with a few exceptions)."""
    parts = [str(p) for p in loc]
    if parts[:1] == ["schedule"]:
        # The model-level check ("daily needs a time") has no field of its own; kind and minutes are one radio.
        if len(parts) == 1 or parts[1] == "daily_at":
            return "schedule.daily_at"
        return "schedule.choice"
    if parts[:2] == ["items", "sku_map"]:
        return "items.sku_map"
    if parts == ["create_inventory_items"]:
        return "inventory"
    if not parts:
        return "_form"
    return ".".join(parts)


_FRIENDLY_TYPES: dict[str, str] = {
    "enum": "Choose one of the options.",
    "literal_error": "Choose one of the options.",
    "date_from_datetime_parsing": "Enter a date like 2024-01-31.",
    "date_parsing": "Enter a date like 2024-01-31.",
    "date_type": "Enter a date like 2024-01-31.",
    "time_parsing": "Enter a time like 05:45.",
    "time_type": "Enter a time like 05:45.",
    "int_parsing": "Enter a whole number.",
}


def friendly(err: Mapping[str, Any]) -> str:
    """A pydantic error in words for the page."""
    kind = str(err.get("type", ""))
    if kind in _FRIENDLY_TYPES:
        return _FRIENDLY_TYPES[kind]
    ctx = err.get("ctx") or {}
    if kind == "string_too_short":
        return "This is required." if ctx.get("min_length") == 1 else f"At least {ctx.get('min_length')} characters."
    if kind == "string_too_long":
        return f"At most {ctx.get('max_length')} characters."
    msg = str(err.get("msg", "This value is not valid."))
    msg = msg.removeprefix("Value error, ")
    return msg[:1].upper() + msg[1:] + ("" if msg.endswith(".") else ".")


# -- channels --------------------------------------------------------------------------------------------

CHANNEL_TITLES = {"shopify": "Shopify", "shipstation": "ShipStation", "woocommerce": "WooCommerce"}


def channel_title(kind: str) -> str:
    """The channel's product name, as a bookkeeper knows it."""
    return CHANNEL_TITLES.get(kind, kind.title())


def receives_from_books(kind: str) -> bool:
    """Whether a channel can take orders from QuickBooks (only shipping tools can: ShipStation)."""
    return kind == "shipstation"


def receive_refusal(kind: str) -> str:
    """Why "orders from QuickBooks" is not offered for this channel."""
    return f"{channel_title(kind)} cannot receive orders from QuickBooks; use ShipStation for that."


# -- tax CSV ---------------------------------------------------------------------------------------------

CSV_COLUMNS = ("country", "region", "city", "tax_code")


def jurisdictions_csv(rows: Sequence[TaxJurisdiction]) -> str:
    """The jurisdiction table as CSV (header country,region,city,tax_code)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([row.country, row.region, row.city, row.tax_code])
    return out.getvalue()


def parse_jurisdictions_csv(text: str) -> tuple[list[TaxJurisdiction], list[str]]:
    """Rows of an uploaded CSV, and one message per bad line ("line 4: …"); a header row is optional."""
    rows: list[TaxJurisdiction] = []
    problems: list[str] = []
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    for number, cells in enumerate(reader, start=1):
        if not any(c.strip() for c in cells):
            continue
        if number == 1 and [c.strip().casefold() for c in cells][:4] == list(CSV_COLUMNS):
            continue
        if len(cells) != len(CSV_COLUMNS):
            problems.append(f"line {number}: expected 4 columns (country,region,city,tax_code), found {len(cells)}")
            continue
        country, region, city, code = (c.strip() for c in cells)
        try:
            rows.append(TaxJurisdiction(country=(country or "US").upper(), region=region, city=city, tax_code=code))
        except ValidationError as exc:
            details = "; ".join(f"{'.'.join(map(str, e['loc']))}: {friendly(e).rstrip('.')}" for e in exc.errors())
            problems.append(f"line {number}: {details}")
    if not rows and not problems:
        problems.append("the file has no rows")
    return rows, problems


def merge_jurisdictions(
    current: Sequence[TaxJurisdiction], incoming: Sequence[TaxJurisdiction], *, replace: bool
) -> list[TaxJurisdiction]:
    """Imported rows replace the table, or update the same places and add the new ones."""
    if replace:
        return list(incoming)

    def key(row: TaxJurisdiction) -> tuple[str, str, str]:
        return (row.country.casefold(), row.region.casefold(), row.city.casefold())

    merged = {key(row): row for row in current}
    for row in incoming:
        merged[key(row)] = row
    return list(merged.values())


# -- history ---------------------------------------------------------------------------------------------


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    else:
        out[prefix] = value


def show_value(value: Any) -> str:
    """A setting's value in a history row."""
    if value is None or value == "" or value == [] or value == {}:
        return "—"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        if all(isinstance(v, str) for v in value):
            return ", ".join(value)
        return json.dumps(value)
    return str(value)


def diff_settings(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """What changed between two saved revisions: (dotted field, old value, new value)."""
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    _flatten(dict(old or {}), "", before)
    _flatten(dict(new), "", after)
    changes = []
    for name in sorted(set(before) | set(after)):
        if before.get(name) != after.get(name):
            changes.append((name, show_value(before.get(name)), show_value(after.get(name))))
    return changes


# -- summary ---------------------------------------------------------------------------------------------

TRANSACTION_WORDS = {
    TransactionType.SALES_RECEIPT: "a Sales Receipt",
    TransactionType.INVOICE: "an Invoice (with a payment applied when it is already paid)",
    TransactionType.SALES_ORDER: "a Sales Order",
    TransactionType.SALES_ORDER_INVOICE_PAYMENT: "a Sales Order, then an Invoice and a Payment if paid",
}


def transaction_words(kind: TransactionType, books_kind: str) -> str:
    """What an order becomes, in words; QuickBooks Online has no sales orders, so an Estimate stands in."""
    if books_kind == "qbo" and kind is TransactionType.SALES_ORDER:
        return "an Estimate (QuickBooks Online has no sales orders)"
    if books_kind == "qbo" and kind is TransactionType.SALES_ORDER_INVOICE_PAYMENT:
        return "an Estimate, then an Invoice and a Payment if paid (QuickBooks Online has no sales orders)"
    return TRANSACTION_WORDS[kind]


def _statuses(values: Sequence[str], labels: Sequence[tuple[str, str]]) -> str:
    names = dict(labels)
    words = [names.get(v, v).split(" (")[0].lower() for v in values]
    if len(words) > 1:
        return ", ".join(words[:-1]) + " or " + words[-1]
    return words[0] if words else ""


def summary(
    settings: ChannelSettings, channel_kind: str, books_kind: str, account_name: Callable[[str | None], str]
) -> list[tuple[str, str, str]]:
    """Every choice in plain words: (wizard step, heading, sentence)."""
    s, store = settings, channel_title(channel_kind)
    if s.direction is SyncDirection.FROM_BOOKS:
        return [
            (
                "direction",
                "Direction",
                f"Sales entered in QuickBooks go to {store} to be shipped; tracking numbers come back to QuickBooks. "
                "Which sales, the store and what comes back are set under Settings → Orders from QuickBooks.",
            )
        ]
    rows: list[tuple[str, str, str]] = []
    stock = (
        f" Stock levels are pushed from QuickBooks to {store}."
        if s.push_stock_levels
        else " Stock levels are not pushed."
    )
    rows.append(("direction", "Direction", f"Orders go from {store} into QuickBooks.{stock}"))
    which = _statuses(s.orders.financial_statuses, FINANCIAL_STATUSES) or "any"
    doc = transaction_words(s.transaction_type, books_kind)
    sentence = f"Each {which} {store} order becomes {doc} in QuickBooks"
    if s.transaction_type.uses_receivables:
        sentence += f", kept in {account_name(s.accounts.accounts_receivable) or 'an A/R account (not chosen yet)'}"
    if s.transaction_type is not TransactionType.SALES_ORDER:
        sentence += f", deposited to {account_name(s.accounts.deposit) or 'a deposit account (not chosen yet)'}"
    rows.append(("orders", "Orders", sentence + "."))
    limits = []
    if s.orders.fulfillment_statuses:
        limits.append(f"only {_statuses(s.orders.fulfillment_statuses, FULFILLMENT_STATUSES)} orders")
    if s.orders.created_from:
        limits.append(f"created on or after {s.orders.created_from}")
    if s.orders.created_to:
        limits.append(f"created on or before {s.orders.created_to}")
    if s.orders.order_numbers:
        limits.append("only order numbers " + ", ".join(s.orders.order_numbers))
    limits.append("cancelled orders included" if s.orders.include_cancelled else "cancelled orders left out")
    rows.append(("orders", "Which orders", "; ".join(limits).capitalize() + "."))
    if s.schedule.kind is ScheduleKind.MANUAL:
        often = "The sync runs only when you press Sync now."
    elif s.schedule.kind is ScheduleKind.DAILY:
        often = f"The sync runs every day at {with_time(s.schedule.daily_at)} UTC (and whenever you press Sync now)."
    else:
        minutes = s.schedule.every_minutes
        every = "hour" if minutes == 60 else f"{minutes} minutes"
        often = f"The sync runs every {every} (and whenever you press Sync now)."
    rows.append(("orders", "How often", often))
    updates = {
        "ignore": "Changes made to an order after it was posted are ignored.",
        "update": "When an order changes after it was posted, the QuickBooks transaction is updated.",
        "void_and_repost": "When an order changes after it was posted, the transaction is voided and posted again.",
    }
    rows.append(("orders", "Order updates", updates[s.update_policy.value]))
    number, _ = doc_number_example(s.doc_number_prefix)
    rows.append(("orders", "Numbers", f"Order #{EXAMPLE_ORDER_NUMBER} gets document number {number}."))
    if s.customers.mode.value == "single":
        who = f'Every order is posted to one customer named "{s.customers.single_name}".'
    else:
        missing = {
            "create": "a customer QuickBooks does not have is created",
            "fail": "an order whose customer QuickBooks does not have fails until you add the customer",
            "use_single": f'an unknown buyer is posted to "{s.customers.single_name}"',
        }[s.customers.when_missing.value]
        who = f"Each buyer is matched to a QuickBooks customer by e-mail, then by name; {missing}."
    rows.append(("customers", "Customers", who))
    accounts = f"Sales of new items post to {account_name(s.accounts.item_income) or '(not chosen yet)'}"
    if s.accounts.item_discount:
        accounts += f", discounts to {account_name(s.accounts.item_discount)}"
    if s.create_inventory_items:
        accounts += (
            f"; new inventory items keep their value in {account_name(s.accounts.item_asset) or '(not chosen yet)'}"
            f" and their cost in {account_name(s.accounts.item_cogs) or '(not chosen yet)'}"
        )
    rows.append(("accounts", "Accounts", accounts + "."))
    if s.tax.mode.value == "pinned_total":
        tax = f"{store}'s tax total is set on each transaction, so QuickBooks' automated sales tax agrees to the cent."
    else:
        tax = f'Tax is posted as a line with the item "{s.tax.tax_item_name}".'
    if s.tax.jurisdictions:
        tax += f" {len(s.tax.jurisdictions)} places have their own tax code."
    rows.append(("tax", "Sales tax", tax))
    match = {"sku_then_name": "by SKU, then by name", "sku": "by SKU", "name": "by name"}[s.items.match_on.value]
    missing_item = {
        "create_non_inventory": "a product QuickBooks does not have is created as a non-inventory item",
        "create_inventory": "a product QuickBooks does not have is created as an inventory item",
        "fail": "an order with a product QuickBooks does not have waits under Unmatched products",
    }[s.items.when_missing.value]
    products = f"Products are matched {match}; {missing_item}."
    if s.items.sku_map:
        products += f" {len(s.items.sku_map)} SKUs are mapped to named items."
    rows.append(("products", "Products", products))
    return rows


def with_time(value: time | None) -> str:
    """A time of day as HH:MM, or a dash."""
    return value.strftime("%H:%M") if value else "—"
