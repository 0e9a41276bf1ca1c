"""The port every selling channel implements, and the registry that picks one by kind."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel

from ledgerlink.domain.order import Order


@dataclass(frozen=True, slots=True)
class Cursor:
    """How far a connection has been read: the last `updated_at` stored, plus a tie-breaker id."""

    updated_at: datetime
    tie_breaker: str = ""

    def to_json(self) -> dict[str, str]:
        return {"updated_at": self.updated_at.isoformat(), "tie_breaker": self.tie_breaker}

    @classmethod
    def from_json(cls, raw: Mapping[str, str]) -> Cursor:
        return cls(updated_at=datetime.fromisoformat(raw["updated_at"]), tie_breaker=raw.get("tie_breaker", ""))


@dataclass(frozen=True, slots=True)
class Window:
    """Which orders to read on top of the cursor: a created-at range and/or explicit order numbers."""

    created_from: datetime | None = None
    created_to: datetime | None = None
    order_numbers: tuple[str, ...] = ()


@dataclass(slots=True)
class ChannelPage:
    """One page of raw orders, and the cursor that is safe to store once they are stored."""

    orders: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: Cursor | None = None


class Channel(Protocol):
    """A selling channel: lists changed orders and parses its own JSON into `Order`."""

    kind: ClassVar[str]
    Config: ClassVar[type[BaseModel]]

    def pull(self, cursor: Cursor | None, window: Window) -> Iterator[ChannelPage]:
        """Raw orders changed since `cursor` (oldest first), page by page."""
        ...

    def parse(self, raw: Mapping[str, Any]) -> Order:
        """Pure: the channel's JSON to an `Order`; raises `MappingError` naming the order and field."""
        ...

    def close(self) -> None:
        """Release the HTTP client."""
        ...


_REGISTRY: dict[str, type[Any]] = {}


def register_channel(cls: type[Any]) -> type[Any]:
    """Class decorator: make a channel adapter available under its `kind`."""
    _REGISTRY[cls.kind] = cls
    return cls


def channel_parser(kind: str) -> Callable[[Mapping[str, Any]], Order]:
    """The pure parser of a channel (its module's `parse_order`), for previews with no connection."""
    module = importlib.import_module(channel_class(kind).__module__)
    parser: Callable[[Mapping[str, Any]], Order] = module.parse_order
    return parser


def channel_class(kind: str) -> type[Any]:
    """The adapter class for a connection kind (e.g. "shopify")."""
    if kind not in _REGISTRY:
        # Adapters register on import; import the known ones lazily so the registry is complete.
        import ledgerlink.channels.shipstation
        import ledgerlink.channels.shopify  # noqa: F401
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise KeyError(f"no channel adapter for kind {kind!r}; known: {sorted(_REGISTRY)}") from None
