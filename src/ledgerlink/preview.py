"""`ledgerlink preview`: what one order would become, as the JSON that would be sent. No connection needed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ledgerlink.channels.base import channel_parser
from ledgerlink.domain.catalog import Account, Catalog, CompanyFacts
from ledgerlink.domain.documents import DocumentKind
from ledgerlink.domain.errors import LedgerlinkError
from ledgerlink.domain.plan import plan
from ledgerlink.domain.settings import AccountMapping, ChannelSettings, TransactionType
from ledgerlink.jsonwire import dumps, loads

# Stand-ins for the accounts a merchant picks in the wizard, so a preview needs no QuickBooks company.
PREVIEW_ACCOUNTS = {
    "item_asset": Account(id="ASSET", name="Inventory Asset", type="Other Current Asset", subtype="Inventory"),
    "item_cogs": Account(id="COGS", name="Cost of Goods Sold", type="Cost of Goods Sold"),
    "item_income": Account(id="INCOME", name="Sales of Product Income", type="Income"),
    "item_discount": Account(id="DISCOUNT", name="Discounts given", type="Income"),
    "accounts_receivable": Account(id="AR", name="Accounts Receivable (A/R)", type="Accounts Receivable"),
    "deposit": Account(id="DEPOSIT", name="Undeposited Funds", type="Other Current Asset"),
    "refund_from": Account(id="REFUNDS", name="Checking", type="Bank"),
}


class PreviewError(LedgerlinkError):
    """The preview's own input is unusable (file, JSON, settings); the message names it."""


def _read_json(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PreviewError(f"cannot read {what} file {path}: {exc.strerror}") from None
    try:
        return loads(text)
    except json.JSONDecodeError as exc:
        raise PreviewError(f"{what} file {path} is not JSON: {exc.msg} at line {exc.lineno}") from None


def preview_order(
    *,
    order_path: Path,
    channel: str = "shopify",
    books: str = "qbo",
    transaction_type: str | None = None,
    settings_path: Path | None = None,
) -> str:
    """The preview JSON for one order file; raises PreviewError or MappingError naming what is wrong."""
    raw = _read_json(order_path, "order")
    if not isinstance(raw, dict):
        raise PreviewError(f"order file {order_path} must hold a JSON object")
    settings, _missing = with_stand_in_accounts(_settings(settings_path, transaction_type))
    return dumps(preview_body(raw, channel=channel, books=books, settings=settings))


def stand_in_catalog(books: str = "qbo") -> Catalog:
    """A catalog with only the stand-in accounts: a preview with no QuickBooks company behind it."""
    return Catalog(company=CompanyFacts(books=books), accounts={a.id: a for a in PREVIEW_ACCOUNTS.values()})


def with_stand_in_accounts(
    settings: ChannelSettings, known: set[str] | None = None
) -> tuple[ChannelSettings, list[str]]:
    """Accounts the merchant has not chosen (or, given `known`, that the books do not have) replaced by
    stand-ins, so the preview still shows the documents; also the names of the accounts replaced."""
    chosen = settings.accounts.model_dump()
    filled: dict[str, Any] = {}
    replaced: list[str] = []
    for key, value in chosen.items():
        usable = value and (known is None or value in known)
        if usable or key not in PREVIEW_ACCOUNTS:
            filled[key] = value
        else:
            filled[key] = PREVIEW_ACCOUNTS[key].id
            replaced.append(PREVIEW_ACCOUNTS[key].name)
    return settings.model_copy(update={"accounts": AccountMapping(**filled)}), replaced


def unfiltered(settings: ChannelSettings) -> ChannelSettings:
    """The same settings with the order filter open: a preview answers "what would it become", filters aside."""
    orders = settings.orders.model_copy(
        update={
            "financial_statuses": [],
            "fulfillment_statuses": [],
            "order_numbers": [],
            "created_from": None,
            "created_to": None,
            "include_cancelled": True,
        }
    )
    return settings.model_copy(update={"orders": orders})


def preview_body(
    raw: dict[str, Any],
    *,
    channel: str,
    settings: ChannelSettings,
    books: str = "qbo",
    catalog: Catalog | None = None,
) -> dict[str, Any]:
    """What one channel order becomes, as the QuickBooks JSON that would be sent (CLI, JSON API and page)."""
    if books != "qbo":
        raise PreviewError(f"--books {books!r} is not supported yet; use qbo")
    try:
        parse = channel_parser(channel)
    except KeyError:
        raise PreviewError(f"unknown channel {channel!r}") from None
    order = parse(raw)
    catalog = catalog or stand_in_catalog(books)
    result = plan(order, settings, catalog)
    skipped, decision = result.skipped, result.rules
    if skipped is not None:
        result = plan(order, unfiltered(settings), catalog)

    from ledgerlink.books.qbo.mapping import to_qbo

    placeholders = {role: f"<id of the {role.replace('_', ' ')}>" for role in ("sales_order", "invoice")}
    documents = [
        {
            "kind": doc.kind.value,
            "role": doc.role,
            "books": books,
            "payload": to_qbo(doc, linked=placeholders, company=catalog.company),
        }
        for doc in result.documents
    ]
    body: dict[str, Any] = {
        "order": {"number": order.number, "total": str(order.totals.total), "currency": order.currency},
        "documents": documents,
        "needs": {
            "customers": [c.model_dump(mode="json", exclude_none=True) for c in result.needs.customers.values()],
            "items": [i.model_dump(mode="json", exclude_none=True) for i in result.needs.items.values()],
        },
    }
    if skipped:
        body["skipped"] = f"with these settings the sync leaves this order out: {skipped}"
    if settings.rules and decision is not None:
        body["rules"] = decision.as_json()  # which rules fired and why: "why was this order booked like this"
    if settings.transaction_type is TransactionType.SALES_ORDER and books == "qbo":
        body["note"] = "QuickBooks Online has no sales orders: an Estimate is posted instead"
    elif any(d.kind is DocumentKind.ESTIMATE for d in result.documents):
        body["note"] = "QuickBooks Online has no sales orders: the sales order is posted as an Estimate"
    return body


def _settings(path: Path | None, transaction_type: str | None) -> ChannelSettings:
    data: dict[str, Any] = {}
    if path is not None:
        loaded = _read_json(path, "settings")
        if not isinstance(loaded, dict):
            raise PreviewError(f"settings file {path} must hold a JSON object")
        data = loaded
    try:
        settings = ChannelSettings.model_validate(data)
        if transaction_type is not None:
            settings = settings.model_copy(update={"transaction_type": TransactionType(transaction_type)})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise PreviewError(f"settings: field {'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
    except ValueError:
        choices = ", ".join(t.value for t in TransactionType)
        raise PreviewError(f"--transaction-type must be one of {choices}, got {transaction_type!r}") from None
    return settings
