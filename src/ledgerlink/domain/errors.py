"""The typed errors every layer raises, grouped by how to recover from them."""

from __future__ import annotations


class LedgerlinkError(Exception):
    """Base of every error ledgerlink raises on purpose."""


class MappingError(LedgerlinkError):
    """An order cannot become documents as it is: names the order and the field, so a person can fix it."""

    def __init__(self, message: str, *, order: str | None = None, field: str | None = None) -> None:
        self.order = order
        self.field = field
        self.detail = message
        where = []
        if order:
            where.append(f"order {order}")
        if field:
            where.append(f"field {field}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class ConfigError(MappingError):
    """The settings are incomplete or contradictory for this order (a setting names the field)."""


class RetryableError(LedgerlinkError):
    """A passing fault (throttled, 5xx, timeout): try again after `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class UnknownOutcome(RetryableError):
    """A write was sent and its answer lost: it may or may not have been done, so look before sending it again."""


class PermanentError(LedgerlinkError):
    """The remote refused this one request for good (validation); other requests go on."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        self.code = code
        super().__init__(message)


class NeedsUserError(LedgerlinkError):
    """A person must act first: reconnect QuickBooks, map an item, fix a setting."""

    def __init__(self, message: str, *, action: str = "") -> None:
        self.action = action
        super().__init__(message)
