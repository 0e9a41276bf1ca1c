"""What changed between two revisions of an order, field by field, in words a bookkeeper can read.

Pure: two canonical `Order`s in, a list of `Change`s out. The order page shows it for each revision, so the
merchant can see why the books were updated, voided or credited.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

from ledgerlink.domain.money import total
from ledgerlink.domain.order import Address, Fee, Fulfillment, Order, OrderLine, Payment, Refund, ShippingLine

_T = TypeVar("_T")
NOTHING = "—"


class ChangeKind(enum.StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


@dataclass(frozen=True, slots=True)
class Change:
    """One difference: `field` is a stable path (e.g. ``lines[SKU-1].quantity``), `label` says it in words."""

    field: str
    label: str
    before: str
    after: str
    kind: ChangeKind = ChangeKind.CHANGED

    def __str__(self) -> str:
        if self.kind is ChangeKind.ADDED:
            return f"{self.label} added: {self.after}"
        if self.kind is ChangeKind.REMOVED:
            return f"{self.label} removed (was {self.before})"
        return f"{self.label}: {self.before} → {self.after}"


def money_text(value: Decimal) -> str:
    """An amount as the books show it: two decimals, thousands separated."""
    return f"{total([value]):,.2f}"


def quantity_text(value: Decimal) -> str:
    """A quantity without trailing zeros: 2, 1.5."""
    text = f"{value.normalize():f}"
    return text or "0"


def address_text(address: Address) -> str:
    """An address on one line; an empty address is a dash."""
    parts = (
        address.name,
        address.company,
        address.line1,
        address.line2,
        address.city,
        " ".join(p for p in (address.region, address.postal_code) if p),
        address.country,
    )
    return ", ".join(p.strip() for p in parts if p and p.strip()) or NOTHING


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else NOTHING


def _plain(value: str) -> str:
    return value.strip() or NOTHING


def diff_orders(before: Order, after: Order) -> list[Change]:
    """Every difference between two revisions of one order that matters to the books, in a stable order:
    status, customer, addresses, lines, shipping, discounts, fees, totals, payments, refunds, fulfilments, note."""
    changes: list[Change] = []

    def scalar(field: str, label: str, old: str, new: str) -> None:
        if old != new:
            changes.append(Change(field, label, old, new))

    def amount(field: str, label: str, old: Decimal, new: Decimal) -> None:
        if old != new:
            changes.append(Change(field, label, money_text(old), money_text(new)))

    scalar("financial_status", "Payment status", _plain(before.financial_status), _plain(after.financial_status))
    scalar(
        "fulfillment_status",
        "Fulfilment status",
        _plain(before.fulfillment_status),
        _plain(after.fulfillment_status),
    )
    if before.cancelled_at != after.cancelled_at:
        kind = ChangeKind.ADDED if before.cancelled_at is None else ChangeKind.CHANGED
        if after.cancelled_at is None:
            kind = ChangeKind.REMOVED
        changes.append(
            Change("cancelled_at", "Cancellation", _when(before.cancelled_at), _when(after.cancelled_at), kind)
        )
    scalar("currency", "Currency", before.currency, after.currency)
    scalar(
        "customer.name",
        "Customer",
        _plain(before.customer.display_name),
        _plain(after.customer.display_name),
    )
    scalar("customer.email", "Customer email", _plain(before.customer.email), _plain(after.customer.email))
    scalar(
        "billing_address",
        "Billing address",
        address_text(before.billing_address),
        address_text(after.billing_address),
    )
    scalar(
        "shipping_address",
        "Shipping address",
        address_text(before.shipping_address),
        address_text(after.shipping_address),
    )
    changes.extend(_lines(before.lines, after.lines))
    changes.extend(_shipping(before.shipping_lines, after.shipping_lines))
    amount(
        "order_discounts",
        "Order discount",
        total(d.amount for d in before.order_discounts),
        total(d.amount for d in after.order_discounts),
    )
    changes.extend(
        _keyed(
            before.fees,
            after.fees,
            key=lambda f: f.name,
            field="fees",
            label=lambda f: f"Fee “{f.name}”",
            show=lambda f: money_text(f.amount),
            compare=_fee_changes,
        )
    )
    for name, label in (
        ("subtotal", "Subtotal"),
        ("shipping", "Shipping total"),
        ("discounts", "Discounts total"),
        ("tax", "Tax total"),
        ("total", "Order total"),
    ):
        amount(f"totals.{name}", label, getattr(before.totals, name), getattr(after.totals, name))
    changes.extend(
        _keyed(
            before.payments,
            after.payments,
            key=lambda p: p.payment_id,
            field="payments",
            label=lambda p: f"Payment {p.payment_id}",
            show=_payment_text,
            compare=_payment_changes,
        )
    )
    changes.extend(
        _keyed(
            before.refunds,
            after.refunds,
            key=lambda r: r.refund_id,
            field="refunds",
            label=lambda r: f"Refund {r.refund_id}",
            show=_refund_text,
            compare=_refund_changes,
        )
    )
    changes.extend(
        _keyed(
            before.fulfillments,
            after.fulfillments,
            key=lambda f: f.fulfillment_id,
            field="fulfillments",
            label=lambda f: f"Fulfilment {f.fulfillment_id}",
            show=_fulfillment_text,
            compare=_fulfillment_changes,
        )
    )
    scalar("note", "Note", _plain(before.note), _plain(after.note))
    scalar("tags", "Tags", ", ".join(before.tags) or NOTHING, ", ".join(after.tags) or NOTHING)
    return changes


def _keyed(
    old: Sequence[_T],
    new: Sequence[_T],
    *,
    key: Callable[[_T], str],
    field: str,
    label: Callable[[_T], str],
    show: Callable[[_T], str],
    compare: Callable[[str, str, _T, _T], Iterable[Change]],
) -> list[Change]:
    """Records matched by key: the ones removed, the ones changed (by `compare`), the ones added."""
    before = {key(item): item for item in old}
    after = {key(item): item for item in new}
    found: list[Change] = []
    for name, item in before.items():
        path = f"{field}[{name}]"
        if name not in after:
            found.append(Change(path, label(item), show(item), NOTHING, ChangeKind.REMOVED))
        else:
            found.extend(compare(path, label(after[name]), item, after[name]))
    found.extend(
        Change(f"{field}[{name}]", label(item), NOTHING, show(item), ChangeKind.ADDED)
        for name, item in after.items()
        if name not in before
    )
    return found


def _line_label(line: OrderLine) -> str:
    return f"“{line.name}” ({line.sku})" if line.sku else f"“{line.name}”"


def _line_text(line: OrderLine) -> str:
    return f"{quantity_text(line.quantity)} × {money_text(line.unit_price)}"


def _lines(old: Sequence[OrderLine], new: Sequence[OrderLine]) -> list[Change]:
    def compare(path: str, label: str, a: OrderLine, b: OrderLine) -> list[Change]:
        found: list[Change] = []
        if a.quantity != b.quantity:
            found.append(
                Change(f"{path}.quantity", f"Quantity of {label}", quantity_text(a.quantity), quantity_text(b.quantity))
            )
        if a.unit_price != b.unit_price:
            found.append(
                Change(f"{path}.unit_price", f"Price of {label}", money_text(a.unit_price), money_text(b.unit_price))
            )
        if a.discount_total != b.discount_total:
            found.append(
                Change(
                    f"{path}.discounts",
                    f"Discount on {label}",
                    money_text(a.discount_total),
                    money_text(b.discount_total),
                )
            )
        if a.tax_total != b.tax_total:
            found.append(Change(f"{path}.tax", f"Tax on {label}", money_text(a.tax_total), money_text(b.tax_total)))
        if a.sku != b.sku:
            found.append(Change(f"{path}.sku", f"SKU of “{b.name}”", _plain(a.sku), _plain(b.sku)))
        if a.name != b.name:
            found.append(Change(f"{path}.name", "Product name", a.name, b.name))
        return found

    return _keyed(
        old,
        new,
        key=lambda line: line.line_id,
        field="lines",
        label=lambda line: f"Line {_line_label(line)}",
        show=_line_text,
        compare=lambda path, label, a, b: compare(path, _line_label(b), a, b),
    )


def _shipping(old: Sequence[ShippingLine], new: Sequence[ShippingLine]) -> list[Change]:
    def compare(path: str, label: str, a: ShippingLine, b: ShippingLine) -> list[Change]:
        found: list[Change] = []
        if a.net != b.net:
            found.append(Change(f"{path}.price", f"Price of {label}", money_text(a.net), money_text(b.net)))
        if a.tax_total != b.tax_total:
            found.append(Change(f"{path}.tax", f"Tax on {label}", money_text(a.tax_total), money_text(b.tax_total)))
        return found

    return _keyed(
        old,
        new,
        key=lambda s: s.code or s.title,
        field="shipping_lines",
        label=lambda s: f"Shipping “{s.title}”",
        show=lambda s: money_text(s.net),
        compare=compare,
    )


def _fee_changes(path: str, label: str, a: Fee, b: Fee) -> list[Change]:
    if a.amount == b.amount:
        return []
    return [Change(f"{path}.amount", label, money_text(a.amount), money_text(b.amount))]


def _payment_text(payment: Payment) -> str:
    via = payment.method or payment.gateway
    return f"{money_text(payment.amount)}{f' ({via})' if via else ''}"


def _payment_changes(path: str, label: str, a: Payment, b: Payment) -> list[Change]:
    if a.amount == b.amount:
        return []
    return [Change(f"{path}.amount", label, money_text(a.amount), money_text(b.amount))]


def _refund_text(refund: Refund) -> str:
    parts = [money_text(refund.value)]
    items = sum((line.quantity for line in refund.lines), Decimal(0))
    if items:
        parts.append(f"{quantity_text(items)} item{'s' if items != 1 else ''}")
    if refund.shipping:
        parts.append(f"shipping {money_text(refund.shipping)}")
    if refund.note.strip():
        parts.append(f"“{refund.note.strip()}”")
    return ", ".join(parts)


def _refund_changes(path: str, label: str, a: Refund, b: Refund) -> list[Change]:
    if a.value == b.value and a.lines == b.lines:
        return []
    return [Change(f"{path}.amount", label, _refund_text(a), _refund_text(b))]


def _fulfillment_text(fulfillment: Fulfillment) -> str:
    parts = [fulfillment.status or "shipped"]
    if fulfillment.tracking_company:
        parts.append(fulfillment.tracking_company)
    if fulfillment.tracking_numbers:
        parts.append("tracking " + " ".join(fulfillment.tracking_numbers))
    return ", ".join(parts)


def _fulfillment_changes(path: str, label: str, a: Fulfillment, b: Fulfillment) -> list[Change]:
    found: list[Change] = []
    if a.status != b.status:
        found.append(Change(f"{path}.status", f"{label} status", _plain(a.status), _plain(b.status)))
    if a.tracking_numbers != b.tracking_numbers or a.tracking_company != b.tracking_company:
        found.append(Change(f"{path}.tracking", f"{label} tracking", _fulfillment_text(a), _fulfillment_text(b)))
    return found
