"""The one place a `Document` (and new master data) becomes QuickBooks Online JSON. Pure: no I/O.

Money stays `Decimal` all the way: bodies are written with `ledgerlink.jsonwire.dumps`, never through float.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

from ledgerlink.books.base import RemoteDoc
from ledgerlink.domain.catalog import CompanyFacts, NewCustomer, NewItem
from ledgerlink.domain.documents import (
    DEPARTMENT_KINDS,
    MAX_SHIP_METHOD,
    MAX_TRACKING_NUM,
    DocLine,
    Document,
    DocumentKind,
    LineKind,
    Ref,
    Shipment,
)
from ledgerlink.domain.errors import MappingError
from ledgerlink.domain.money import cents
from ledgerlink.domain.order import Address

MAX_PRIVATE_NOTE = 4000
MAX_DISPLAY_NAME = 500
MAX_ITEM_NAME = 100
MAX_PERSON_NAME = 100
MAX_SKU = 100

# Kinds whose number is the QBO DocNumber; a Payment has none (PaymentRefNum is free text, not unique).
NUMBERED_KINDS = frozenset(
    {
        DocumentKind.SALES_RECEIPT,
        DocumentKind.INVOICE,
        DocumentKind.ESTIMATE,
        DocumentKind.CREDIT_MEMO,
        DocumentKind.REFUND_RECEIPT,
    }
)
_DEPOSITS = frozenset({DocumentKind.SALES_RECEIPT, DocumentKind.PAYMENT, DocumentKind.REFUND_RECEIPT})
_RECEIVABLES = frozenset({DocumentKind.INVOICE, DocumentKind.PAYMENT, DocumentKind.CREDIT_MEMO})
_PAID_WITH = frozenset({DocumentKind.SALES_RECEIPT, DocumentKind.PAYMENT, DocumentKind.REFUND_RECEIPT})
# The documents that carry TrackingNum, ShipDate and ShipMethodRef (the sale the goods went out on).
SHIPPED_KINDS = frozenset({DocumentKind.SALES_RECEIPT, DocumentKind.INVOICE})
_SALE_LINE_KINDS = frozenset({LineKind.ITEM, LineKind.SHIPPING, LineKind.FEE, LineKind.TAX, LineKind.ADJUSTMENT})
_NO_LINKS: Mapping[str, str] = MappingProxyType({})


def to_qbo(doc: Document, *, linked: Mapping[str, str] = _NO_LINKS, company: CompanyFacts) -> dict[str, Any]:
    """The QBO entity body for `doc` (without its entity wrapper: the caller names the entity by `doc.kind`).

    `linked` maps a link's role ("invoice", "sales_order") to the remote id of that document; a link whose id
    is not known yet is rendered without a `TxnId` (a preview), and the adapter refuses to send it.
    """
    if doc.kind is DocumentKind.SALES_ORDER:
        raise MappingError(
            "QuickBooks Online has no sales orders; choose Estimates (the nearest document) in the settings",
            order=doc.order_number,
            field="transaction_type",
        )
    if doc.kind is DocumentKind.PAYMENT:
        return _payment(doc, linked, company)
    body: dict[str, Any] = {}
    if doc.doc_number:
        body["DocNumber"] = doc.doc_number
    body["TxnDate"] = doc.txn_date.isoformat()
    if doc.customer is not None:
        body["CustomerRef"] = ref(doc.customer)
    body["PrivateNote"] = private_note(doc)
    if doc.billing_address is not None and not doc.billing_address.is_empty():
        body["BillAddr"] = address(doc.billing_address, with_name=True)
    if doc.shipping_address is not None and not doc.shipping_address.is_empty():
        body["ShipAddr"] = address(doc.shipping_address, with_name=True)
    if doc.kind in _DEPOSITS and doc.deposit_account is not None:
        body["DepositToAccountRef"] = ref(doc.deposit_account)
    if doc.kind in _RECEIVABLES and doc.ar_account is not None:
        body["ARAccountRef"] = ref(doc.ar_account)
    if doc.kind in _PAID_WITH and doc.payment_method is not None:
        body["PaymentMethodRef"] = ref(doc.payment_method)
    if doc.class_ref is not None:
        body["ClassRef"] = ref(doc.class_ref)
    if doc.kind in DEPARTMENT_KINDS and doc.department is not None:
        body["DepartmentRef"] = ref(doc.department)  # QuickBooks Online calls it the location
    if company.multicurrency:
        body["CurrencyRef"] = {"value": doc.currency.upper()}
    pin_tax = _pins_tax(doc, company)
    body["Line"] = [_line(line, doc, pin_tax) for line in doc.lines]
    if doc.tax_total is not None and doc.tax_total > 0:
        # Under US automated sales tax an explicit TotalTax is honoured: QuickBooks keeps the channel's tax.
        body["TxnTaxDetail"] = {"TotalTax": cents(doc.tax_total)}
        if doc.tax_code is not None:
            # The jurisdiction's code from the merchant's tax table (settings); the total stays the channel's.
            body["TxnTaxDetail"]["TxnTaxCodeRef"] = ref(doc.tax_code)
    if company.country.upper() != "US":
        # Required outside the US; the plan only lets untaxed (or tax-as-a-line) documents through there.
        body["GlobalTaxCalculation"] = "NotApplicable"
    if any(line.kind is LineKind.DISCOUNT for line in doc.lines):
        body["ApplyTaxAfterDiscount"] = True
    if doc.kind is DocumentKind.INVOICE:
        links = [link for link in doc.links if link.role == "sales_order"]
        if links:
            body["LinkedTxn"] = [_linked_txn(linked.get("sales_order"), "Estimate")]
    if doc.kind in SHIPPED_KINDS and doc.shipment is not None:
        body.update(shipment_fields(doc.shipment))
    return body


def shipment_fields(shipment: Shipment) -> dict[str, Any]:
    """TrackingNum, ShipDate and ShipMethodRef of a sale. QuickBooks has no list of ship methods: the
    reference is the carrier's name as text."""
    body: dict[str, Any] = {"TrackingNum": shipment.tracking_number[:MAX_TRACKING_NUM]}
    if shipment.ship_date is not None:
        body["ShipDate"] = shipment.ship_date.isoformat()
    carrier = shipment.carrier.strip()[:MAX_SHIP_METHOD]
    if carrier:
        body["ShipMethodRef"] = {"value": carrier, "name": carrier}
    return body


def shipment_update(doc: Document) -> dict[str, Any]:
    """The body of a shipment-only sparse update (without Id, SyncToken and `sparse`, which the adapter adds):
    only the tracking fields, so nothing else of the document in QuickBooks is touched."""
    if doc.kind not in SHIPPED_KINDS or doc.shipment is None:
        raise MappingError(
            f"{doc.kind} {doc.doc_number} carries no shipment to write",
            order=doc.order_number,
            field="shipment",
        )
    return shipment_fields(doc.shipment)


def _payment(doc: Document, linked: Mapping[str, str], company: CompanyFacts) -> dict[str, Any]:
    body: dict[str, Any] = {"TotalAmt": cents(doc.total)}
    if doc.customer is not None:
        body["CustomerRef"] = ref(doc.customer)
    if doc.doc_number:
        body["PaymentRefNum"] = doc.doc_number
    body["TxnDate"] = doc.txn_date.isoformat()
    if doc.deposit_account is not None:
        body["DepositToAccountRef"] = ref(doc.deposit_account)
    if doc.ar_account is not None:
        body["ARAccountRef"] = ref(doc.ar_account)
    if doc.payment_method is not None:
        body["PaymentMethodRef"] = ref(doc.payment_method)
    body["PrivateNote"] = private_note(doc)
    if company.multicurrency:
        body["CurrencyRef"] = {"value": doc.currency.upper()}
    body["Line"] = [
        {
            "Amount": cents(link.amount if link.amount is not None else doc.total),
            "LinkedTxn": [_linked_txn(linked.get(link.role), _txn_type(link.kind))],
        }
        for link in doc.links
    ]
    return body


def _txn_type(kind: DocumentKind) -> str:
    return "Estimate" if kind is DocumentKind.SALES_ORDER else str(kind)


def _linked_txn(txn_id: str | None, txn_type: str) -> dict[str, str]:
    return {"TxnId": txn_id, "TxnType": txn_type} if txn_id else {"TxnType": txn_type}


def missing_links(doc: Document, linked: Mapping[str, str]) -> list[str]:
    """Roles this document links to whose remote id is not known: it cannot be sent yet."""
    wanted = {link.role for link in doc.links}
    if doc.kind is DocumentKind.INVOICE:
        wanted &= {"sales_order"}
    return sorted(role for role in wanted if not linked.get(role))


def _pins_tax(doc: Document, company: CompanyFacts) -> bool:
    return doc.tax_total is not None and company.country.upper() == "US" and company.automated_sales_tax


def _line(line: DocLine, doc: Document, pin_tax: bool) -> dict[str, Any]:
    if line.kind is LineKind.DISCOUNT:
        detail: dict[str, Any] = {"PercentBased": False}
        # No DiscountPercent: QBO refuses an amount together with a (default 0) percentage.
        if line.account is not None:
            detail["DiscountAccountRef"] = ref(line.account)
        out: dict[str, Any] = {"DetailType": "DiscountLineDetail", "Amount": cents(line.amount)}
        if line.description:
            out["Description"] = line.description
        out["DiscountLineDetail"] = detail
        return out
    if line.kind not in _SALE_LINE_KINDS:  # pragma: no cover - every LineKind is handled above
        raise MappingError(f"unknown line kind {line.kind}", order=doc.order_number, field="lines")
    sale: dict[str, Any] = {}
    if line.item is not None:
        sale["ItemRef"] = ref(line.item)
    if line.quantity is not None:
        sale["Qty"] = line.quantity
    if line.unit_price is not None:
        sale["UnitPrice"] = line.unit_price
    if pin_tax:
        sale["TaxCodeRef"] = {"value": "TAX" if line.taxable else "NON"}
    if doc.class_ref is not None:
        sale["ClassRef"] = ref(doc.class_ref)
    out = {"DetailType": "SalesItemLineDetail", "Amount": cents(line.amount)}
    if line.description:
        out["Description"] = line.description
    out["SalesItemLineDetail"] = sale
    return out


def ref(value: Ref) -> dict[str, str]:
    """A QBO reference; an unresolved one (a preview without a connection) carries only its name."""
    if value.id is None:
        return {"name": value.name}
    return {"value": value.id, "name": value.name} if value.name else {"value": value.id}


def private_note(doc: Document) -> str:
    """The memo plus our marker, within QBO's 4000 characters; the marker is what `find` looks for, so it stays."""
    tag = f" [ledgerlink {doc.marker}]" if doc.marker else ""
    return doc.memo[: MAX_PRIVATE_NOTE - len(tag)] + tag


def address(value: Address, *, with_name: bool = False) -> dict[str, str]:
    """A QBO PhysicalAddress; on documents the addressee's name and company lead, as on a label."""
    lines = [value.name, value.company] if with_name else []
    lines += [value.line1, value.line2]
    out: dict[str, str] = {}
    for index, text in enumerate((t.strip() for t in lines if t and t.strip()), start=1):
        if index > 5:
            break
        out[f"Line{index}"] = text
    for key, text in (
        ("City", value.city),
        ("CountrySubDivisionCode", value.region),
        ("PostalCode", value.postal_code),
        ("Country", value.country),
    ):
        if text.strip():
            out[key] = text.strip()
    return out


def clean_name(name: str, limit: int) -> str:
    """QuickBooks refuses ':' in names (it separates parent from child) and caps their length."""
    return " ".join(name.replace(":", "-").split())[:limit]


def customer_body(customer: NewCustomer) -> dict[str, Any]:
    """The QBO Customer body for a customer to create."""
    body: dict[str, Any] = {"DisplayName": clean_name(customer.display_name, MAX_DISPLAY_NAME)}
    if customer.given_name.strip():
        body["GivenName"] = customer.given_name.strip()[:MAX_PERSON_NAME]
    if customer.family_name.strip():
        body["FamilyName"] = customer.family_name.strip()[:MAX_PERSON_NAME]
    if customer.company.strip():
        body["CompanyName"] = customer.company.strip()[:MAX_PERSON_NAME]
    if customer.email.strip():
        body["PrimaryEmailAddr"] = {"Address": customer.email.strip()}
    if customer.phone.strip():
        body["PrimaryPhone"] = {"FreeFormNumber": customer.phone.strip()}
    if customer.billing_address is not None and not customer.billing_address.is_empty():
        body["BillAddr"] = address(customer.billing_address)
    if customer.shipping_address is not None and not customer.shipping_address.is_empty():
        body["ShipAddr"] = address(customer.shipping_address)
    return body


def item_body(item: NewItem, inv_start_date: date) -> dict[str, Any]:
    """The QBO Item body for an item to create; inventory items start with nothing on hand."""
    body: dict[str, Any] = {"Name": clean_name(item.name, MAX_ITEM_NAME), "Type": item.type}
    if item.sku.strip():
        body["Sku"] = item.sku.strip()[:MAX_SKU]
    if item.description.strip():
        body["Description"] = item.description.strip()
    # The price is only the item's default; a bad one is not worth failing the item for.
    with contextlib.suppress(InvalidOperation):
        if item.unit_price:
            body["UnitPrice"] = Decimal(item.unit_price)
    body["IncomeAccountRef"] = {"value": item.income_account}
    if item.type == "Inventory":
        body["TrackQtyOnHand"] = True
        body["QtyOnHand"] = Decimal(0)
        body["InvStartDate"] = inv_start_date.isoformat()
        if item.asset_account:
            body["AssetAccountRef"] = {"value": item.asset_account}
        if item.cogs_account:
            body["ExpenseAccountRef"] = {"value": item.cogs_account}
    return body


def amount(raw: object) -> Decimal | None:
    """A QBO money field read back (Decimal, int or string), or None when absent."""
    if raw is None or isinstance(raw, bool):
        return None
    try:
        return cents(Decimal(str(raw)))
    except (InvalidOperation, ValueError):
        return None


def ref_id(entity: Mapping[str, Any], field: str) -> str:
    """The id inside a reference field of a QBO entity, or ''."""
    value = entity.get(field)
    if isinstance(value, Mapping):
        return str(value.get("value") or "")
    return ""


def remote_doc(kind: str, entity: Mapping[str, Any]) -> RemoteDoc:
    """A QBO transaction read back, as the port's `RemoteDoc`."""
    number = entity.get("DocNumber") or entity.get("PaymentRefNum") or ""
    return RemoteDoc(
        kind=kind,
        remote_id=str(entity.get("Id", "")),
        sync_token=str(entity.get("SyncToken", "")),
        doc_number=str(number),
        total=amount(entity.get("TotalAmt")) or cents(0),
        customer_id=ref_id(entity, "CustomerRef"),
        private_note=str(entity.get("PrivateNote") or ""),
        raw=dict(entity),
    )
