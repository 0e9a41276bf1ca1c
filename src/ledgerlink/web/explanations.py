"""Why an order failed, in words a bookkeeper understands, and how to fix it.

The engine records a failed order's `error_field` (which part of the order or the settings is wrong) and a
technical `detail`. `explain` turns the pair into a sentence, the fix, and a link to the page where the fix is made.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ledgerlink.web.queries import settings_url

_LINE_FIELD = re.compile(r"^(?:lines|line_items)\[(\d+)\]\.(\w+)")

ACCOUNT_TITLES = {
    "deposit": "Deposit Account",
    "item_income": "Item Income",
    "item_discount": "Item Discount",
    "accounts_receivable": "Accounts Receivable",
    "item_asset": "Item Asset",
    "item_cogs": "Item COGS",
}


@dataclass(frozen=True, slots=True)
class Explanation:
    """What went wrong, the fix, and where to make it."""

    what: str
    fix: str
    link: str = ""
    link_text: str = ""
    quickbooks_says: str = ""


def _line_label(line: dict[str, Any] | None, index: int) -> str:
    """The product of an order line as a sentence names it: “Tea Sampler” (SKU TEA), or product line 2."""
    name = str((line or {}).get("name") or "").strip()
    sku = str((line or {}).get("sku") or "").strip()
    if name and sku:
        return f"the product “{name}” (SKU {sku})"
    if name or sku:
        return f"the product “{name or sku}”"
    return f"product line {index + 1}"


def explain(
    error_field: str,
    detail: str,
    *,
    connection_id: int,
    lines: list[dict[str, Any]] | None = None,
    channel: str = "Shopify",
) -> Explanation:
    """The plain explanation of one failed order (`lines` are its canonical lines, to name the product)."""
    field = (error_field or "").strip()
    lines = lines or []
    if field == "totals.total":
        return Explanation(
            what=f"The order's lines, shipping, discounts and tax don't add up to its total in {channel}.",
            fix=(
                f"Correct the order in {channel}, or turn on 'adjust the QuickBooks total' in Settings → Products "
                "(a small adjustment line makes QuickBooks match), then Retry."
            ),
            link=settings_url(connection_id, "products"),
            link_text="Settings → Products",
        )
    if line_match := _LINE_FIELD.match(field):
        index, part = int(line_match.group(1)), line_match.group(2)
        line = lines[index] if index < len(lines) else None
        label = _line_label(line, index)
        subject = label[0].upper() + label[1:]
        if part == "sku":
            if "is mapped to" in detail:
                return Explanation(
                    what=f"{subject} is mapped to a QuickBooks item that QuickBooks doesn't have.",
                    fix="Create that item in QuickBooks, or match the product to another item, then Retry.",
                    link="/products/unmatched",
                    link_text="Unmatched products",
                )
            if "neither a SKU nor a name" in detail:
                return Explanation(
                    what=f"Product line {index + 1} has neither a SKU nor a name, so no QuickBooks item can match it.",
                    fix=f"Give the product a SKU in {channel}, then Retry.",
                )
            return Explanation(
                what=f"{subject} has no matching item in QuickBooks, and the settings say to "
                "hold the order rather than create the item.",
                fix="Match it to a QuickBooks item in Unmatched products; its orders then re-sync on their own.",
                link="/products/unmatched",
                link_text="Unmatched products",
            )
        if part == "quantity":
            return Explanation(
                what=f"{subject} has a quantity QuickBooks cannot take (zero, negative or not "
                "a number) while it is still charged.",
                fix=f"Correct the line in {channel} (edit the quantity, or remove or refund the line), then Retry.",
            )
        return Explanation(
            what=f"{channel} sent product line {index + 1} with a value we cannot read ({part}).",
            fix=f"Check the line in {channel}; if it looks right there, send us the order number.",
        )
    if field.startswith("accounts."):
        names = [ACCOUNT_TITLES.get(f.strip().removeprefix("accounts."), f) for f in field.split(",")]
        return Explanation(
            what=f"The settings don't say which account to use for {', '.join(names)}.",
            fix="Choose it in Settings → Accounts, then Retry.",
            link=settings_url(connection_id, "accounts"),
            link_text="Settings → Accounts",
        )
    if field == "currency":
        return Explanation(
            what="The order is in a currency your QuickBooks company doesn't use, and multicurrency is off there.",
            fix="Turn on multicurrency in QuickBooks (Account and settings → Advanced → Currency), then Retry.",
        )
    if field == "customer":
        return Explanation(
            what="The buyer isn't a customer in QuickBooks, and the settings say not to create customers.",
            fix="Add the customer in QuickBooks, or let the sync create customers in Settings → Customers, then Retry.",
            link=settings_url(connection_id, "customers"),
            link_text="Settings → Customers",
        )
    if field == "master_data":
        return Explanation(
            what="QuickBooks refused to create a customer or product this order needs.",
            fix="Read QuickBooks' message below, fix the name or record in QuickBooks or the channel, then Retry.",
            quickbooks_says=detail,
        )
    if field == "posting":
        return _posting(detail, connection_id)
    if field == "revision":
        return Explanation(
            what=f"The order changed in {channel} after part of it was already posted to QuickBooks.",
            fix="Complete the order in QuickBooks by hand (Retry would post the first part twice).",
        )
    if field == "transaction_type":
        return Explanation(
            what="QuickBooks Online has no sales orders, so this transaction type cannot be posted.",
            fix="Choose Estimates, Sales Receipts or Invoices in Settings → Orders, then Retry.",
            link=settings_url(connection_id, "orders"),
            link_text="Settings → Orders",
        )
    if field == "taxes_included":
        return Explanation(
            what="The order's prices include tax, which the sync cannot post yet.",
            fix=f"Post this order by hand in QuickBooks, or switch {channel} to prices without tax.",
        )
    if field == "lines":
        return Explanation(
            what="The order has no product lines, so there is nothing to post.",
            fix=f"Check the order in {channel}; an order with only fees or shipping must be posted by hand.",
        )
    if field:
        return Explanation(
            what=f"{channel} sent this order with a value we cannot read ({field}).",
            fix=f"Check the order in {channel}; if it looks right there, send us the order number.",
        )
    return Explanation(what="The order could not be synced.", fix="Read the details below, fix the cause, then Retry.")


def _posting(detail: str, connection_id: int) -> Explanation:
    text = detail.casefold()
    if "duplicate" in text and "number" in text:
        return Explanation(
            what="QuickBooks already has a document with this number.",
            fix="If it is this order, nothing is missing. Otherwise set a document-number prefix in "
            "Settings → Orders so the numbers differ, then Retry.",
            link=settings_url(connection_id, "orders"),
            link_text="Settings → Orders",
            quickbooks_says=detail,
        )
    if "token" in text or "reconnect" in text or "authoriz" in text:
        return Explanation(
            what="QuickBooks no longer accepts our connection.",
            fix="Reconnect QuickBooks under Connections, then Retry.",
            link="/connections",
            link_text="Connections",
            quickbooks_says=detail,
        )
    return Explanation(
        what="QuickBooks refused the document.",
        fix="Read QuickBooks' message below and fix the cause in QuickBooks or the settings, then Retry.",
        quickbooks_says=detail,
    )
