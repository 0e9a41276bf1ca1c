"""The engine through dropped connections: resets and read timeouts on QuickBooks Online's document batches.

Each of the first document batches loses its answer in one of the four ways of sandbox/faults.py — reset before
or after QuickBooks did the work, held past the client's read timeout before or after it. The client calls
each an unknown outcome; the engine looks every document up before sending it again, so a run still ends with
every order in QuickBooks exactly once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from test_engine import doc_numbers, order_states

from ledgerlink.books.qbo.client import NoPacer
from ledgerlink.sandbox.faults import DROP_STATUS
from ledgerlink.sandbox.qbo import Fault
from ledgerlink.store.models import OrderState
from ledgerlink.sync.engine import SyncEngine

pytestmark = pytest.mark.integration

StackFactory = Callable[..., Any]
KINDS = ("reset", "reset_after_write", "timeout", "timeout_after_write")
FAULTED_BATCHES = 8  # each kind twice
# The client waits this long for an answer (130 s in production): short, so a held answer costs little here.
READ_TIMEOUT = httpx.Timeout(0.3, connect=5.0)


def test_resets_and_timeouts_on_document_batches_post_every_order_exactly_once(
    stack_factory: StackFactory, db_url: str
) -> None:
    stack = stack_factory(db_url, orders=96)
    armed: Counter[str] = Counter()
    faulted: set[str] = set()

    def fault_document_batches(request: httpx.Request) -> None:
        # Armed just before a batch that creates documents leaves, so exactly that request is hit; a batch
        # sent again after a look-up (same requestid) goes through.
        if not request.url.path.endswith("/batch") or b'"SalesReceipt":' not in request.content:
            return
        requestid = request.url.params.get("requestid", "")
        if len(faulted) >= FAULTED_BATCHES or requestid in faulted:
            return
        faulted.add(requestid)
        kind = KINDS[len(faulted) % len(KINDS)]
        stack.qbo.inject(Fault(kind=kind, path_contains="/batch", delay_ms=5_000))  # type: ignore[arg-type]
        armed[kind] += 1

    def books_with_a_short_read_timeout(conn: Any) -> Any:
        books = stack.app.adapters.books(conn)
        # Small batches, so that more of them (and so more faults) go out in one run.
        books.config = books.config.model_copy(update={"batch_size": 6})
        books.client.http.timeout = READ_TIMEOUT
        # The look-ups come one query per document; pacing them at Intuit's 10 a second is not under test here.
        books.client.pacer = NoPacer()
        books.client.http.event_hooks["request"].append(fault_document_batches)
        return books

    engine = SyncEngine(
        stack.app.db, channel_factory=stack.app.adapters.channel, books_factory=books_with_a_short_read_timeout
    )
    report = engine.run(stack.channel_id)

    assert report.error == ""
    assert armed == dict.fromkeys(KINDS, FAULTED_BATCHES // len(KINDS))
    assert not stack.qbo.faults  # every armed fault fired
    assert sum(1 for r in stack.qbo.requests if r.status == DROP_STATUS) == FAULTED_BATCHES
    # Every answer lost after the work was done was bound by a look-up, never posted again.
    assert report.counts["unknown_outcome"] > 0
    assert report.counts["recovered_bound"] > 0
    states = order_states(stack)
    numbers = doc_numbers(stack)
    assert states[OrderState.FAILED] == 0
    assert max(numbers.values()) == 1
    assert sum(numbers.values()) == states[OrderState.POSTED] == report.counts["posted_SalesReceipt"] > 30
