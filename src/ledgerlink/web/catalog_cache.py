"""The books' lists for the drop-downs (accounts, classes, tax codes), read once and kept a few minutes.

QuickBooks is slow to ask and its lists rarely change, so the wizard and the Settings pages share one
in-memory copy per books connection; "Refresh lists" throws it away (Connex calls it "refresh drop downs").
The cache lives on the web app's state, so two apps in one process (tests) never share it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ledgerlink.bootstrap import App
from ledgerlink.domain.catalog import Account, Catalog, CatalogQuery, fold
from ledgerlink.store.models import Connection

TTL_SECONDS = 300.0

# Which QuickBooks account types each mapping field may use (DESIGN.md "Account mapping").
ACCOUNT_TYPES: dict[str, tuple[str, ...]] = {
    "deposit": ("Bank", "Other Current Asset"),
    "accounts_receivable": ("Accounts Receivable",),
    "item_income": ("Income",),
    "item_discount": ("Income", "Expense"),
    "item_asset": ("Other Current Asset",),
    "item_cogs": ("Cost of Goods Sold",),
}


@dataclass(frozen=True, slots=True)
class BooksLists:
    """What the drop-downs offer: the catalog when it could be read, or why it could not."""

    catalog: Catalog | None
    error: str = ""
    read_at: float = field(default_factory=time.time)

    def accounts_for(self, mapping_field: str) -> list[Account]:
        """The accounts a mapping field may point at, by name."""
        if self.catalog is None:
            return []
        wanted = {fold(t) for t in ACCOUNT_TYPES.get(mapping_field, ())}
        found = [a for a in self.catalog.accounts.values() if not wanted or fold(a.type) in wanted]
        return sorted(found, key=lambda a: (a.name.casefold(), a.id))

    def account_name(self, account_id: str | None) -> str:
        """An account's name, or its id when the list does not have it."""
        if not account_id:
            return ""
        if self.catalog is not None and (account := self.catalog.accounts.get(account_id)):
            return account.name
        return f"account {account_id}"

    def classes(self) -> list[tuple[str, str]]:
        """(id, name) of the QuickBooks classes; the catalog keeps names folded, so they are title-cased back."""
        if self.catalog is None:
            return []
        return sorted(((cid, name.title()) for name, cid in self.catalog.classes.items()), key=lambda c: c[1])

    def tax_codes(self) -> list[str]:
        """The tax code names QuickBooks has (folded; matching is case-insensitive)."""
        if self.catalog is None:
            return []
        return sorted(self.catalog.tax_codes)

    @property
    def books_kind(self) -> str:
        return self.catalog.company.books if self.catalog is not None else "qbo"


class CatalogCache:
    """Catalog snapshots by books connection id, each kept `ttl` seconds."""

    def __init__(self, ttl: float = TTL_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: dict[int, tuple[float, BooksLists]] = {}

    def cached(self, books_id: int) -> BooksLists | None:
        """The kept lists of a books connection, unless they are too old."""
        with self._lock:
            entry = self._entries.get(books_id)
            if entry is not None and self.clock() - entry[0] < self.ttl:
                return entry[1]
        return None

    def lists(
        self,
        app: App,
        books: Connection | None,
        *,
        refresh: bool = False,
        before_read: Callable[[], None] | None = None,
    ) -> BooksLists:
        """The lists of a books connection: from the cache, or read from the books now.

        `before_read` runs only when the books are really asked (the web pages end their database
        transaction there: reading may refresh the OAuth tokens, which writes through another session).
        """
        if books is None:
            return BooksLists(None, "No QuickBooks company is connected yet.")
        if not refresh and (kept := self.cached(books.id)) is not None:
            return kept
        if before_read is not None:
            before_read()
        now = self.clock()
        lists = read_lists(app, books)
        if lists.catalog is not None:
            with self._lock:
                self._entries[books.id] = (now, lists)
        return lists

    def forget(self, books_id: int) -> None:
        """Drop a connection's lists (after "Refresh lists" or a reconnect)."""
        with self._lock:
            self._entries.pop(books_id, None)


def read_lists(app: App, books: Connection) -> BooksLists:
    """Read the catalog from the books; a failure becomes a message, never an error page."""
    try:
        adapter = app.adapters.books(books)
    except Exception as exc:  # a broken connection row must not break the settings pages
        return BooksLists(None, f"Could not open the QuickBooks connection: {exc}")
    try:
        return BooksLists(adapter.catalog(CatalogQuery()))
    except Exception as exc:  # network, refused tokens, throttling: say so and let the page offer "Refresh lists"
        return BooksLists(None, f"Could not read the lists from QuickBooks: {exc}")
    finally:
        adapter.close()


def cache_of(state: Any) -> CatalogCache:
    """The cache kept on a web app's `state` (made on first use)."""
    cache = getattr(state, "catalog_cache", None)
    if not isinstance(cache, CatalogCache):
        cache = CatalogCache()
        state.catalog_cache = cache
    return cache
