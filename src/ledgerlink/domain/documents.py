"""Books-neutral accounting documents. Each Books adapter maps them to its own wire format."""

from __future__ import annotations

import enum
from datetime import date
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from ledgerlink.domain.money import total
from ledgerlink.domain.order import Address, Order

SHIPPING_ITEM_ID = "SHIPPING_ITEM_ID"
# QuickBooks Online's TrackingNum and ShipMethodRef hold at most 31 characters.
MAX_TRACKING_NUM = 31
MAX_SHIP_METHOD = 31


class DocumentKind(enum.StrEnum):
    SALES_RECEIPT = "SalesReceipt"
    INVOICE = "Invoice"
    ESTIMATE = "Estimate"
    SALES_ORDER = "SalesOrder"
    PAYMENT = "Payment"
    CREDIT_MEMO = "CreditMemo"
    REFUND_RECEIPT = "RefundReceipt"


class LineKind(enum.StrEnum):
    ITEM = "item"
    SHIPPING = "shipping"
    DISCOUNT = "discount"
    TAX = "tax"
    FEE = "fee"
    ADJUSTMENT = "adjustment"


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Ref(_Value):
    """A reference to a record in the books: by id once known; `key` says how it was matched or will be made."""

    key: str
    name: str = ""
    id: str | None = None

    @property
    def resolved(self) -> bool:
        return self.id is not None


class DocLine(_Value):
    """One line of a sales document. For item lines `amount` == quantity × unit_price to the cent."""

    kind: LineKind
    amount: Decimal
    description: str = ""
    item: Ref | None = None
    quantity: Decimal | None = None
    unit_price: Decimal | None = None
    taxable: bool = False
    account: Ref | None = None

    @property
    def signed_amount(self) -> Decimal:
        return -self.amount if self.kind is LineKind.DISCOUNT else self.amount


class UpdateScope(enum.StrEnum):
    """What an update of a document in the books writes."""

    WHOLE = "whole"  # every field the document carries (a sparse update of all of them)
    SHIPMENT = "shipment"  # only the shipment: a fulfilment is not a financial change


class Shipment(_Value):
    """How the goods went out, written onto the sale once the channel fulfils the order."""

    tracking_number: str
    ship_date: date | None = None
    carrier: str = ""


def shipment_of(order: Order) -> Shipment | None:
    """The order's shipment as the books show it, or None before anything with a tracking number shipped.

    The books have one tracking field: every tracking number when they fit in it, else the first one and how
    many more; the ship date is when the first parcel went; the carriers, in the order they shipped.
    """
    shipped = sorted(
        (f for f in order.fulfillments if f.shipped and any(n.strip() for n in f.tracking_numbers)),
        key=lambda f: (f.created_at is None, f.created_at or order.created_at, f.fulfillment_id),
    )
    if not shipped:
        return None
    numbers = list(dict.fromkeys(n.strip() for f in shipped for n in f.tracking_numbers if n.strip()))
    tracking = " ".join(numbers)
    if len(tracking) > MAX_TRACKING_NUM:
        more = f" +{len(numbers) - 1}" if len(numbers) > 1 else ""
        tracking = numbers[0][: MAX_TRACKING_NUM - len(more)] + more
    carriers = list(dict.fromkeys(f.tracking_company.strip() for f in shipped if f.tracking_company.strip()))
    first = shipped[0].created_at
    return Shipment(
        tracking_number=tracking,
        ship_date=first.date() if first is not None else None,
        carrier=", ".join(carriers)[:MAX_SHIP_METHOD].strip(),
    )


# The documents that carry a location in QuickBooks Online (a Payment has no DepartmentRef).
DEPARTMENT_KINDS = frozenset(
    {
        DocumentKind.SALES_RECEIPT,
        DocumentKind.INVOICE,
        DocumentKind.ESTIMATE,
        DocumentKind.CREDIT_MEMO,
        DocumentKind.REFUND_RECEIPT,
    }
)


class Link(_Value):
    """This document applies to (or follows from) another document of the same order, by role."""

    role: str
    kind: DocumentKind
    amount: Decimal | None = None


class Document(_Value):
    """One document to post for one order.

    `role` is unique within an order's plan ("receipt", "estimate", "invoice", "payment"); it is part of the
    idempotency key. `total` is what the books must show; the plan checks it against the order.
    """

    role: str
    kind: DocumentKind
    order_number: str
    doc_number: str
    txn_date: date
    customer: Ref | None = None
    lines: tuple[DocLine, ...] = ()
    tax_total: Decimal | None = None
    total: Decimal
    currency: str = "USD"
    memo: str = ""
    marker: str = ""
    billing_address: Address | None = None
    shipping_address: Address | None = None
    deposit_account: Ref | None = None
    ar_account: Ref | None = None
    payment_method: Ref | None = None
    class_ref: Ref | None = None
    # QuickBooks Online's location (DepartmentRef); set by a rule, never on a Payment (QBO has no field for it).
    department: Ref | None = None
    tax_code: Ref | None = None
    links: tuple[Link, ...] = ()
    shipment: Shipment | None = None
    scope: UpdateScope = UpdateScope.WHOLE

    def lines_total(self) -> Decimal:
        """Σ lines (discounts subtract) + pinned tax: what the books will compute as the total."""
        return total([*(line.signed_amount for line in self.lines), self.tax_total or Decimal(0)])

    def refs(self) -> list[Ref]:
        """Every books reference this document carries."""
        found: list[Ref] = []
        for ref in (
            self.customer,
            self.deposit_account,
            self.ar_account,
            self.payment_method,
            self.class_ref,
            self.department,
        ):
            if ref is not None:
                found.append(ref)
        for line in self.lines:
            found.extend(r for r in (line.item, line.account) if r is not None)
        return found

    def unresolved(self) -> list[Ref]:
        return [ref for ref in self.refs() if not ref.resolved]
