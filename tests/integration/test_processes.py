"""Real processes: a sync killed at arbitrary points and run again, and two syncs racing on one database.

The QuickBooks sandbox has custom transaction numbers turned off here, so QuickBooks itself would accept a
second document with the same number: any document sent twice would show up as a duplicate.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from ledgerlink.sandbox.qbo import Fault
from ledgerlink.store.models import OrderState, StoredOrder

StackFactory = Callable[..., Any]


def _slow_books(stack: Any) -> None:
    stack.qbo.set_preference("SalesFormsPrefs", "CustomTxnNumbers", False)
    stack.qbo.inject(Fault(kind="latency", delay_ms=120, count=100_000, path_contains="batch"))


def _sync(stack: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ledgerlink", "sync"],
        env=stack.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _documents(stack: Any) -> Counter[str]:
    return Counter(str(e.get("DocNumber")) for e in stack.qbo.entities("SalesReceipt"))


def _eligible(stack: Any) -> set[str]:
    with stack.app.db.session() as session:
        rows = session.execute(select(StoredOrder.number, StoredOrder.state)).all()
    assert all(state in (OrderState.POSTED, OrderState.SKIPPED) for _n, state in rows), rows
    return {number for number, state in rows if state == OrderState.POSTED}


def test_killed_sync_rerun_posts_every_order_exactly_once(stack_factory: StackFactory, db_url: str) -> None:
    stack = stack_factory(db_url, orders=150, seed=23)
    _slow_books(stack)
    kills = 0
    for delay in (1.6, 2.3, 2.9, 3.4):
        proc = _sync(stack)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=60)
    final = _sync(stack)
    _out, err = final.communicate(timeout=300)
    assert final.returncode == 0, err.decode()[-3000:]
    assert kills >= 2, "the sync finished before it could be killed: slow the sandbox down"
    documents = _documents(stack)
    assert max(documents.values()) == 1, [n for n, c in documents.items() if c > 1]
    assert set(documents) == _eligible(stack)
    assert len(documents) > 100


def test_two_syncs_racing_never_post_a_document_twice(stack_factory: StackFactory, db_url: str) -> None:
    stack = stack_factory(db_url, orders=120, seed=29)
    _slow_books(stack)
    first, second = _sync(stack), _sync(stack)
    results = [p.communicate(timeout=300) for p in (first, second)]
    assert first.returncode == 0, results[0][1].decode()[-3000:]
    assert second.returncode == 0, results[1][1].decode()[-3000:]
    documents = _documents(stack)
    assert max(documents.values()) == 1, [n for n, c in documents.items() if c > 1]
    assert set(documents) == _eligible(stack)
    assert len(documents) > 80
