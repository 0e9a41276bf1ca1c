"""Accounting-system adapters: QuickBooks Online (`qbo`) and, later, QuickBooks Desktop (`qbd`)."""

from __future__ import annotations

from ledgerlink.books.base import Books, PushRequest, PushResult, PushStatus, RemoteDoc, Tokens, TokenStore

__all__ = ["Books", "PushRequest", "PushResult", "PushStatus", "RemoteDoc", "TokenStore", "Tokens"]
