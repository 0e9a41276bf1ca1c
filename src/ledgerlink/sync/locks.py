"""One pusher per QuickBooks company at a time, across processes and machines, on SQLite and PostgreSQL.

A lease row per books connection; a holder that died is detected by its lease expiring, or at once when it
ran on this host and its process is gone (so a sync re-run right after a crash does not wait).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from ledgerlink.store.db import Database
from ledgerlink.store.models import BooksLock

HOST = socket.gethostname()


class LockTimeout(RuntimeError):
    """Another worker held the company's lock for longer than we were willing to wait."""


def _holder_alive(holder: str) -> bool:
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != HOST or not pid_text.isdigit():
        return True  # another machine: trust its lease
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PushLease:
    """Hold the push lease of one books connection (`with PushLease(db, books_id): ...`)."""

    def __init__(
        self,
        db: Database,
        books_id: int,
        *,
        ttl: float = 120.0,
        wait: float = 600.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.db = db
        self.books_id = books_id
        self.ttl = ttl
        self.wait = wait
        self.sleep = sleep
        self.holder = f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def _try(self) -> bool:
        now = datetime.now(UTC)
        until = now + timedelta(seconds=self.ttl)
        try:
            with self.db.session() as session:
                row = session.scalars(
                    select(BooksLock).where(BooksLock.books_id == self.books_id).with_for_update()
                ).first()
                if row is None:
                    session.add(BooksLock(books_id=self.books_id, holder=self.holder, expires_at=until))
                    return True
                if row.holder == self.holder or row.expires_at < now or not _holder_alive(row.holder):
                    row.holder, row.expires_at = self.holder, until
                    return True
                return False
        except IntegrityError:
            return False  # another process inserted the row first

    def renew(self) -> None:
        """Extend the lease; call between batches."""
        with self.db.session() as session:
            row = session.get(BooksLock, self.books_id, with_for_update=True)
            if row is None or row.holder != self.holder:
                raise LockTimeout("lost the push lease of this QuickBooks company to another worker")
            row.expires_at = datetime.now(UTC) + timedelta(seconds=self.ttl)

    def __enter__(self) -> PushLease:
        deadline = time.monotonic() + self.wait
        delay = 0.05
        while not self._try():
            if time.monotonic() > deadline:
                raise LockTimeout(f"another worker is posting to QuickBooks company {self.books_id}")
            self.sleep(delay)
            delay = min(delay * 2, 1.0)
        return self

    def __exit__(self, *_exc: object) -> None:
        with self.db.session() as session:
            session.execute(
                delete(BooksLock).where(BooksLock.books_id == self.books_id, BooksLock.holder == self.holder)
            )
