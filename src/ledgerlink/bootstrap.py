"""The composition root: builds the database, the secret box and the engine from `Settings`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledgerlink.config import Settings
from ledgerlink.store.crypto import SecretBox
from ledgerlink.store.db import Database
from ledgerlink.sync.connections import AdapterFactory
from ledgerlink.sync.engine import Progress, SyncEngine
from ledgerlink.sync.ratelimit import adapter_factory


@dataclass(slots=True)
class App:
    settings: Settings
    db: Database
    box: SecretBox
    adapters: AdapterFactory

    def engine(self, progress: Progress | None = None) -> SyncEngine:
        return SyncEngine(
            self.db,
            channel_factory=self.adapters.channel,
            books_factory=self.adapters.books,
            progress=progress,
        )


def bootstrap(settings: Settings | None = None, *, upgrade: bool = True, **books_options: Any) -> App:
    """Everything a command needs, built once; migrations applied unless told otherwise."""
    settings = settings or Settings()
    db = Database(settings.effective_database_url)
    if upgrade:
        db.upgrade()
    box = SecretBox(settings.secret_key.get_secret_value())
    # With Redis configured, QuickBooks' per-company limits are paced across every worker (sync/ratelimit.py).
    adapters = adapter_factory(settings, db, box, **books_options)
    return App(settings=settings, db=db, box=box, adapters=adapters)
