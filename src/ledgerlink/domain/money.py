"""Money is `Decimal`, rounded half-up to the cent; never float."""

from __future__ import annotations

import re
import reprlib
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from ledgerlink.domain.errors import MappingError

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
# Far beyond any order, and small enough that quantity × price and the sums of an order stay exact at
# Decimal's 28 digits (what no channel sends is refused, not rounded or overflowed later).
MAX_AMOUNT = Decimal("1e12")
MAX_QUANTITY = Decimal("1e9")
# A number as channels write one: ASCII digits, an optional sign, point and exponent. `Decimal` alone would
# also take "٣" (Arabic-Indic digits), "1_000" and "Infinity".
_NUMBER = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*", re.ASCII)
_MAX_NUMBER_TEXT = 64


class _Short(reprlib.Repr):
    """`repr` for error messages: bounded in depth and length, and safe on any JSON value."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxstring, self.maxother, self.maxlist, self.maxdict = 3, 60, 60, 4, 4

    def repr_int(self, x: int, level: int) -> str:
        # `repr` refuses integers past 4,300 digits (and reprlib would build the whole text first).
        if x.bit_length() > 200:
            return f"<an integer of about {int(x.bit_length() * 0.30103) + 1} digits>"
        return super().repr_int(x, level)


_short = _Short()


def shown(value: object) -> str:
    """A bad value as an error message shows it: short, whatever its size, depth or type."""
    try:
        return _short.repr(value)
    except (ValueError, RecursionError):
        return f"<a {type(value).__name__}>"


def cents(value: Decimal | int | str) -> Decimal:
    """Round to the cent, half up, as accounting does."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def total(values: Iterable[Decimal]) -> Decimal:
    """Sum of money values, rounded to the cent."""
    return cents(sum(values, ZERO))


def read_number(raw: object) -> Decimal | None:
    """A number a channel sent (JSON number, or a string holding one) as `Decimal`; None if it is none.

    May be non-finite (a float inf or nan, a Decimal NaN); callers say what they refuse."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | Decimal | float):
        return None
    if isinstance(raw, int):
        return Decimal(raw) if raw.bit_length() <= 200 else None
    if isinstance(raw, str) and (len(raw) > _MAX_NUMBER_TEXT or not _NUMBER.fullmatch(raw)):
        return None
    try:
        return Decimal(str(raw).strip())
    except (InvalidOperation, ValueError):
        return None


def parse_money(raw: object, *, order: str | None = None, field: str) -> Decimal:
    """Read an amount a channel sent (string or number) into cents, or raise a MappingError naming the field."""
    if raw is None or raw == "":
        return ZERO
    value = read_number(raw)
    if value is None:
        raise MappingError(f"expected an amount, got {shown(raw)}", order=order, field=field)
    if not value.is_finite():
        raise MappingError(f"expected a finite amount, got {shown(raw)}", order=order, field=field)
    if abs(value) >= MAX_AMOUNT:
        raise MappingError(f"amount out of range: {shown(raw)}", order=order, field=field)
    return cents(value)


def parse_quantity(raw: object, *, order: str | None = None, field: str) -> Decimal:
    """Read a quantity (may be fractional for weighed goods); must be positive."""
    value = read_number(raw)
    if value is None:
        raise MappingError(f"expected a quantity, got {shown(raw)}", order=order, field=field)
    if not value.is_finite() or value <= 0:
        raise MappingError(f"quantity must be positive, got {shown(raw)}", order=order, field=field)
    if value >= MAX_QUANTITY:
        raise MappingError(f"quantity out of range: {shown(raw)}", order=order, field=field)
    return value
