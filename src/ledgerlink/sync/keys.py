"""Deterministic identities: a posting's idempotency key and the marker we leave in QuickBooks."""

from __future__ import annotations

import hashlib


def posting_key(
    connection_id: int, channel_order_id: str, role: str, revision: int, operation: str = "create", attempt: int = 0
) -> str:
    """36 hex characters (QuickBooks' batch `requestid` limit); the same inputs always give the same key.

    `attempt` counts earlier postings of the same document that were refused and replaced (after a retry).
    """
    raw = f"{connection_id}:{channel_order_id}:{role}:{revision}:{operation}"
    if attempt:
        raw += f":{attempt}"
    return hashlib.sha256(raw.encode()).hexdigest()[:36]


def order_marker(connection_id: int, channel_order_id: str, role: str) -> str:
    """Written into the document's private note, so a document we posted can be recognised as ours."""
    digest = hashlib.sha256(f"{connection_id}:{channel_order_id}".encode()).hexdigest()[:16]
    return f"ll-{digest}-{role}"
