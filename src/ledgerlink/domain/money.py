"""Money is `Decimal`, rounded half-up to the cent; never float."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from ledgerlink.domain.errors import MappingError

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def cents(value: Decimal | int | str) -> Decimal:
    """Round to the cent, half up, as accounting does."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def total(values: Iterable[Decimal]) -> Decimal:
    """Sum of money values, rounded to the cent."""
    return cents(sum(values, ZERO))


def parse_money(raw: object, *, order: str | None = None, field: str) -> Decimal:
    """Read an amount a channel sent (string or number) into cents, or raise a MappingError naming the field."""
    if raw is None or raw == "":
        return ZERO
    if isinstance(raw, bool) or not isinstance(raw, str | int | Decimal | float):
        raise MappingError(f"expected an amount, got {raw!r}", order=order, field=field)
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise MappingError(f"expected an amount, got {raw!r}", order=order, field=field) from None
    if not value.is_finite():
        raise MappingError(f"expected a finite amount, got {raw!r}", order=order, field=field)
    try:
        return cents(value)
    except InvalidOperation:  # too many digits to hold to the cent (e.g. "1e30")
        raise MappingError(f"amount out of range: {raw!r}", order=order, field=field) from None


def parse_quantity(raw: object, *, order: str | None = None, field: str) -> Decimal:
    """Read a quantity (may be fractional for weighed goods); must be positive."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | Decimal | float):
        raise MappingError(f"expected a quantity, got {raw!r}", order=order, field=field)
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise MappingError(f"expected a quantity, got {raw!r}", order=order, field=field) from None
    if not value.is_finite() or value <= 0:
        raise MappingError(f"quantity must be positive, got {raw!r}", order=order, field=field)
    return value
