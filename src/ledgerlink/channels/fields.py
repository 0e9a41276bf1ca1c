"""Readers every channel parser shares: hostile input becomes a MappingError naming the order and the field."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

from ledgerlink.domain.errors import MappingError
from ledgerlink.domain.money import parse_money, shown

MAX_KEY = 64  # ids and order numbers are stored in 64-character columns


def key_text(value: object) -> str | None:
    """An id or order number as text, if it is one the store can keep: a short string or integer."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() <= 200:
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        return None
    if not 0 < len(text) <= MAX_KEY or not text.isprintable():
        return None
    return text if encodable(text) else None


def encodable(text: str) -> bool:
    """False for text that cannot be stored (a lone surrogate: half of an emoji cut in two)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class FieldReader:
    """One order's mapping; holds the order label so every error names it."""

    # Whether true/false arriving where text is expected is taken as text ("True") or refused.
    bools_as_text: ClassVar[bool] = False

    def __init__(self, raw: Mapping[str, Any], label: str | None) -> None:
        self.raw = raw
        self.label = label

    def fail(self, message: str, field: str) -> MappingError:
        return MappingError(message, order=self.label, field=field)

    def obj(self, value: object, field: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(f"expected an object, got {shown(value)}", field)
        return value

    def optional_obj(self, value: object, field: str) -> Mapping[str, Any]:
        return {} if value is None else self.obj(value, field)

    def items(self, value: object, field: str) -> list[Mapping[str, Any]]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(f"expected a list, got {shown(value)}", field)
        return [self.obj(item, f"{field}[{index}]") for index, item in enumerate(value)]

    def ident(self, value: object, field: str) -> str:
        text = key_text(value)
        if text is None:
            raise self.fail(
                f"expected an id (text or a number, at most {MAX_KEY} characters), got {shown(value)}", field
            )
        return text

    def text(self, value: object, field: str) -> str:
        if value is None:
            return ""
        if isinstance(value, str):
            if not encodable(value):
                raise self.fail(f"text is not valid Unicode (half of an emoji?): {shown(value)}", field)
            return value.strip()
        if isinstance(value, bool):
            if self.bools_as_text:
                return str(value)
            raise self.fail(f"expected text, got {shown(value)}", field)
        if isinstance(value, float | Decimal) or (isinstance(value, int) and value.bit_length() <= 200):
            return str(value).strip()
        raise self.fail(f"expected text, got {shown(value)}", field)

    def money(self, value: object, field: str) -> Decimal:
        return parse_money(value, order=self.label, field=field)
