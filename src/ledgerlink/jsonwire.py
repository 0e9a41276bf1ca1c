"""JSON on the wire with exact money: `Decimal` is written as a JSON number and read back as `Decimal`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

_encode_string = json.JSONEncoder(ensure_ascii=False).encode


def dumps(value: Any) -> str:
    """Serialise to compact JSON; Decimals become numbers with their exact digits (never via float)."""
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts)


def _write(value: Any, out: list[str]) -> None:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot send a non-finite amount: {value}")
        out.append(format(value, "f"))
    elif isinstance(value, Mapping):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if index:
                out.append(",")
            out.append(_encode_string(str(key)))
            out.append(":")
            _write(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out)
        out.append("]")
    elif isinstance(value, datetime | date):
        out.append(_encode_string(value.isoformat()))
    elif isinstance(value, float):
        raise TypeError("floats are not money: convert to Decimal before sending")
    else:
        out.append(_encode_string(value))


def loads(text: str | bytes) -> Any:
    """Parse JSON with every non-integer number as `Decimal`."""
    return json.loads(text, parse_float=Decimal)


def storable(value: Any) -> Any:
    """JSON from outside, made safe to store: lone surrogates (half an emoji) replaced in every string.

    Iterative, so a body `json.loads` accepted cannot exhaust the stack here."""

    def fix(text: str) -> str:
        return text if text.isascii() else text.encode("utf-8", "replace").decode("utf-8")

    root: list[Any] = [value]
    stack: list[tuple[Any, Any]] = [(root, 0)]
    while stack:
        container, key = stack.pop()
        item = container[key]
        if isinstance(item, str):
            container[key] = fix(item)
        elif isinstance(item, list):
            stack.extend((item, index) for index in range(len(item)))
        elif isinstance(item, dict):
            fixed = {fix(k) if isinstance(k, str) else k: v for k, v in item.items()}
            container[key] = fixed
            stack.extend((fixed, k) for k in fixed)
    return root[0]
