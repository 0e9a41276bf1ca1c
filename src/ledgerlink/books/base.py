"""The port every accounting adapter implements, and the values that cross it."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Protocol

from ledgerlink.domain.catalog import Catalog, CatalogQuery, MasterData
from ledgerlink.domain.documents import Document


class Operation(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    VOID = "void"


@dataclass(frozen=True, slots=True)
class PushRequest:
    """One posting to send: the document, its idempotency key, and for updates/voids the remote id and token.

    `linked` maps a linked document's role (e.g. "invoice") to its remote id, for payments and invoices that
    apply to or follow from another document of the same order.
    """

    key: str
    document: Document
    operation: Operation = Operation.CREATE
    remote_id: str | None = None
    sync_token: str | None = None
    linked: tuple[tuple[str, str], ...] = ()


class PushStatus(enum.StrEnum):
    POSTED = "posted"
    FAILED = "failed"
    RETRY = "retry"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class PushResult:
    """What became of one PushRequest. `UNKNOWN` means the answer was lost: look it up before resending."""

    key: str
    status: PushStatus
    remote_id: str | None = None
    sync_token: str | None = None
    total: Decimal | None = None
    error: str = ""
    code: str = ""
    retry_after: float = 0.0
    bound_existing: bool = False


@dataclass(frozen=True, slots=True)
class RemoteDoc:
    """A document found in the books."""

    kind: str
    remote_id: str
    sync_token: str
    doc_number: str
    total: Decimal
    customer_id: str = ""
    private_note: str = ""
    raw: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Tokens:
    """OAuth 2 tokens of one books connection."""

    access_token: str
    refresh_token: str
    access_expires_at: datetime
    refresh_expires_at: datetime | None = None


class TokenStore(Protocol):
    """Where a connection's tokens live; `refresh` serialises refreshes of one company across workers."""

    def load(self) -> Tokens: ...

    def refresh(self, stale_access_token: str, do_refresh: Callable[[Tokens], Tokens]) -> Tokens:
        """Under a per-company lock: if the stored access token is still `stale_access_token`, call
        `do_refresh(current)` and store its answer; otherwise another worker refreshed already, return that."""
        ...


class Books(Protocol):
    """An accounting system: reads master data, creates what is missing, posts and finds documents."""

    kind: ClassVar[str]

    def catalog(self, wanted: CatalogQuery, base: Catalog | None = None) -> Catalog:
        """Accounts, tax codes, payment methods, and the items and customers `wanted` names."""
        ...

    def ensure(self, needs: MasterData, catalog: Catalog) -> tuple[Catalog, dict[str, str]]:
        """Create missing customers and items in bulk; returns the grown catalog and errors by need key."""
        ...

    def push(self, requests: Sequence[PushRequest]) -> list[PushResult]:
        """Create/update/void documents; never raises for one bad request (its result says why)."""
        ...

    def find(self, request: PushRequest) -> RemoteDoc | None:
        """Look a document up after an unknown outcome: by doc number, or for a payment by our marker."""
        ...

    def close(self) -> None: ...
