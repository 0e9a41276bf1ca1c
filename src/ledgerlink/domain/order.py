"""The canonical, channel-neutral order. Pure data; money is `Decimal`.

Every channel adapter parses its native JSON into an `Order`; everything after that (rules, plan, posting)
works on this shape only.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from ledgerlink.domain.money import ZERO, total


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Address(_Value):
    """A postal address as the channel gave it."""

    name: str = ""
    company: str = ""
    line1: str = ""
    line2: str = ""
    city: str = ""
    region: str = ""
    postal_code: str = ""
    country: str = ""
    phone: str = ""

    def is_empty(self) -> bool:
        return not any((self.line1, self.line2, self.city, self.region, self.postal_code, self.country))


class Customer(_Value):
    """The buyer. `display_name` is what a person would call them in the books."""

    channel_id: str = ""
    email: str = ""
    first_name: str = ""
    last_name: str = ""
    company: str = ""
    phone: str = ""

    @property
    def display_name(self) -> str:
        full = " ".join(part for part in (self.first_name.strip(), self.last_name.strip()) if part)
        return full or self.company.strip() or self.email.strip()


class TaxLine(_Value):
    """One tax charged on a line or on shipping (e.g. "CA State Tax" at 6 %)."""

    title: str
    rate: Decimal = ZERO
    amount: Decimal


class Discount(_Value):
    """A discount allocated to a line or a shipping line, or one left at order level."""

    amount: Decimal
    code: str = ""
    description: str = ""


class OrderLine(_Value):
    """A product line: `quantity` × `unit_price`, less its `discounts`, taxed by `tax_lines`."""

    line_id: str
    sku: str = ""
    name: str
    quantity: Decimal
    unit_price: Decimal
    discounts: tuple[Discount, ...] = ()
    taxable: bool = True
    tax_lines: tuple[TaxLine, ...] = ()
    product_id: str = ""
    variant_id: str = ""

    @property
    def gross(self) -> Decimal:
        """Quantity × unit price before discounts, to the cent."""
        return total([self.quantity * self.unit_price])

    @property
    def discount_total(self) -> Decimal:
        return total(d.amount for d in self.discounts)

    @property
    def tax_total(self) -> Decimal:
        return total(t.amount for t in self.tax_lines)


class ShippingLine(_Value):
    """A shipping charge, its discounts and taxes."""

    title: str
    code: str = ""
    price: Decimal
    discounts: tuple[Discount, ...] = ()
    tax_lines: tuple[TaxLine, ...] = ()

    @property
    def discount_total(self) -> Decimal:
        return total(d.amount for d in self.discounts)

    @property
    def net(self) -> Decimal:
        return total([self.price - self.discount_total])

    @property
    def tax_total(self) -> Decimal:
        return total(t.amount for t in self.tax_lines)


class Fee(_Value):
    """An extra charge the buyer paid that is neither a product nor shipping (tip, duty, handling)."""

    name: str
    amount: Decimal
    taxable: bool = False


class Payment(_Value):
    """Money the channel captured for the order."""

    payment_id: str
    amount: Decimal
    gateway: str = ""
    method: str = ""
    processed_at: datetime | None = None


class RefundLine(_Value):
    """Part of a refund that returns a line."""

    line_id: str
    quantity: Decimal
    subtotal: Decimal
    tax: Decimal = ZERO
    restock: bool = False


class Refund(_Value):
    """One refund of the order (there may be several)."""

    refund_id: str
    created_at: datetime | None = None
    lines: tuple[RefundLine, ...] = ()
    shipping: Decimal = ZERO
    adjustments: Decimal = ZERO
    amount: Decimal
    note: str = ""

    @property
    def value(self) -> Decimal:
        """What was given back: refunded lines with their tax, refunded shipping and adjustments, to the cent."""
        return total([*(line.subtotal + line.tax for line in self.lines), self.shipping, self.adjustments])


class Fulfillment(_Value):
    """One shipment of the order's goods as the channel reports it (carrier and tracking numbers)."""

    fulfillment_id: str
    created_at: datetime | None = None
    status: str = ""
    tracking_company: str = ""
    tracking_numbers: tuple[str, ...] = ()

    @property
    def shipped(self) -> bool:
        """The goods went out: not cancelled, failed or in error."""
        return self.status not in {"cancelled", "error", "failure"}


class Totals(_Value):
    """The totals as the channel reported them; the plan must reproduce `total` to the cent."""

    subtotal: Decimal
    shipping: Decimal = ZERO
    discounts: Decimal = ZERO
    tax: Decimal = ZERO
    total: Decimal


class Order(_Value):
    """One order of one channel connection, channel-neutral."""

    channel: str
    channel_order_id: str
    number: str
    created_at: datetime
    updated_at: datetime
    currency: str
    financial_status: str = ""
    fulfillment_status: str = ""
    cancelled_at: datetime | None = None
    taxes_included: bool = False
    customer: Customer = Field(default_factory=Customer)
    billing_address: Address = Field(default_factory=Address)
    shipping_address: Address = Field(default_factory=Address)
    lines: tuple[OrderLine, ...] = ()
    shipping_lines: tuple[ShippingLine, ...] = ()
    order_discounts: tuple[Discount, ...] = ()
    fees: tuple[Fee, ...] = ()
    payments: tuple[Payment, ...] = ()
    refunds: tuple[Refund, ...] = ()
    fulfillments: tuple[Fulfillment, ...] = ()
    totals: Totals
    note: str = ""
    tags: tuple[str, ...] = ()
    source: str = ""

    @property
    def label(self) -> str:
        """How errors and the dashboard name the order: its channel number."""
        return self.number

    @property
    def tax_total(self) -> Decimal:
        """Tax charged on lines and shipping, as itemised by the channel."""
        return total([*(line.tax_total for line in self.lines), *(s.tax_total for s in self.shipping_lines)])

    @property
    def paid_amount(self) -> Decimal:
        """What the buyer has paid: the whole total once the channel calls it paid, else the captures."""
        if self.financial_status in {"paid", "partially_refunded", "refunded"}:
            return self.totals.total
        return min(total(p.amount for p in self.payments), self.totals.total)

    @property
    def refunded_total(self) -> Decimal:
        """Everything the refunds gave back (their value, whether or not money moved)."""
        return total(refund.value for refund in self.refunds)

    @property
    def fully_refunded(self) -> bool:
        """Nothing of the sale is left: the channel says so, or the refunds add up to the total."""
        return self.financial_status == "refunded" or (bool(self.refunds) and self.refunded_total >= self.totals.total)

    def content_hash(self) -> str:
        """A stable hash of the canonical content; a changed hash is a new revision."""
        # Left out while empty, so orders stored before fulfilments were read keep their hash (no new revision).
        exclude = {"updated_at"} | (set() if self.fulfillments else {"fulfillments"})
        body = self.model_dump(mode="json", exclude=exclude)
        return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
