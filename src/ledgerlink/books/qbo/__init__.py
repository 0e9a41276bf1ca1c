"""QuickBooks Online: the `Books` adapter (`QboBooks`), its config, and the Document → QBO JSON mapping."""

from __future__ import annotations

from ledgerlink.books.qbo.adapter import QboBooks, QboConfig, connect
from ledgerlink.books.qbo.client import Pacer, QboClient, UnknownOutcome, WindowPacer, classify
from ledgerlink.books.qbo.mapping import customer_body, item_body, to_qbo

__all__ = [
    "Pacer",
    "QboBooks",
    "QboClient",
    "QboConfig",
    "UnknownOutcome",
    "WindowPacer",
    "classify",
    "connect",
    "customer_body",
    "item_body",
    "to_qbo",
]
