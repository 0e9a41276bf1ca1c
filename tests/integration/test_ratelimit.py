"""The shared rate limiter: workers pacing one QuickBooks company through Redis never get a 429.

Each worker here is a thread with its own Redis connection, its own `RedisPacer` and its own QBO client, so
they share nothing but Redis, exactly as worker processes do. The QBO sandbox enforces small limits in
compressed time, and every request is slowed so that the concurrency limit matters too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from test_celery import free_port, redis_database

from ledgerlink.books.base import Tokens
from ledgerlink.books.qbo import QboClient, QboConfig
from ledgerlink.books.qbo.client import QBO_TIMEOUT
from ledgerlink.http import new_client
from ledgerlink.sandbox.qbo import Fault, QboLimits, QboSandbox
from ledgerlink.sandbox.server import serve
from ledgerlink.sync.ratelimit import PacedTransport, RedisPacer, redis_client

TIME_SCALE = 20.0  # a QuickBooks "minute" lasts 3 s
MINUTE = 60.0 / TIME_SCALE
LIMITS = QboLimits(requests_per_minute=120, requests_per_second=10, batch_per_minute=12, concurrent=3, time_scale=20)


@pytest.fixture
def redis_db() -> Iterator[str]:
    with redis_database() as url:
        yield url


class FixedTokens:
    """A token store holding the sandbox's first tokens (nothing refreshes in these few seconds)."""

    def __init__(self, access: str, refresh: str) -> None:
        self.tokens = Tokens(access, refresh, datetime.now(UTC) + timedelta(hours=1))

    def load(self) -> Tokens:
        return self.tokens

    def refresh(self, stale_access_token: str, do_refresh: Any) -> Tokens:
        return self.tokens


def _worker(url: str, creds: dict[str, str], stop: threading.Event, counts: dict[str, int], lock: Any) -> None:
    client = redis.Redis.from_url(url)
    pacer = RedisPacer(
        client,
        creds["realm_id"],
        requests_per_minute=LIMITS.requests_per_minute,
        requests_per_second=LIMITS.requests_per_second,
        batches_per_minute=LIMITS.batch_per_minute,
        concurrent=LIMITS.concurrent,
        minute=MINUTE,
    )
    config = QboConfig(
        realm_id=creds["realm_id"],
        client_id=creds["client_id"],
        client_secret=creds["client_secret"],  # type: ignore[arg-type]
        api_base=creds["api_base"],
        token_url=creds["token_url"],
        throttle_wait=MINUTE,
    )
    http = new_client(timeout=QBO_TIMEOUT, transport=PacedTransport(pacer))
    qbo = QboClient(config, FixedTokens(creds["access_token"], creds["refresh_token"]), client=http, pacer=pacer)
    sent = 0
    try:
        while not stop.is_set():
            if sent % 12 == 11:
                qbo.batch([{"bId": "1", "Query": "SELECT * FROM TaxCode"}], requestid=f"b{threading.get_ident()}{sent}")
            else:
                qbo.query("SELECT * FROM TaxCode")
            sent += 1
    finally:
        with lock:
            counts["sent"] += sent
            counts["throttled_seen"] += qbo.stats["throttled"]
        http.close()
        client.close()


def test_workers_sharing_a_realm_stay_under_every_limit_at_full_speed(redis_db: str) -> None:
    qbo = QboSandbox(limits=LIMITS)
    # Every request takes 40 ms: three slots then allow 75 requests a second, above the minute limit's 40.
    qbo.inject(Fault(kind="latency", delay_ms=40, count=10_000_000, path_contains="/v3/company"))
    counts = {"sent": 0, "throttled_seen": 0}
    lock = threading.Lock()
    stop = threading.Event()
    with serve(qbo.app) as server:
        creds = qbo.credentials(server.base_url)
        workers = [
            threading.Thread(target=_worker, args=(redis_db, creds, stop, counts, lock), daemon=True) for _ in range(6)
        ]
        started = time.monotonic()
        for worker in workers:
            worker.start()
        time.sleep(3 * MINUTE)
        stop.set()
        for worker in workers:
            worker.join(30)
        elapsed = time.monotonic() - started
    stats = qbo.stats
    per_minute = stats.requests / (elapsed / MINUTE)
    print(  # the figures, for the log (`pytest -s`)
        f"\nshared pacer: {stats.requests} requests in {elapsed / MINUTE:.1f} QBO minutes = {per_minute:.0f}/min "
        f"(limit {LIMITS.requests_per_minute}), batches {stats.batches}, 429s {stats.throttled}, "
        f"max concurrent {stats.max_concurrent_seen} (limit {LIMITS.concurrent})"
    )
    assert stats.throttled == 0
    assert counts["throttled_seen"] == 0
    assert stats.max_concurrent_seen <= LIMITS.concurrent
    assert stats.max_concurrent_seen == LIMITS.concurrent, "the slots were never all in use: the test is too easy"
    # Close to the ceiling: the windows are 5% longer than QuickBooks' and the first minute starts full.
    # Throughput is a figure printed above, not a pass/fail (the machine may be loaded): `make bench` measures it.
    assert stats.requests <= LIMITS.requests_per_minute * (elapsed / MINUTE + 1)
    assert stats.batches > 0


def test_pacer_keeps_pacing_in_process_when_redis_is_gone() -> None:
    gone = redis_client(f"redis://127.0.0.1:{free_port()}/0")
    pacer = RedisPacer(gone, "realm-1", requests_per_minute=5, requests_per_second=5, minute=0.5, margin=0.0)
    started = time.monotonic()
    for _ in range(10):
        pacer.acquire(False)
        pacer.release()
    # The in-process windows still hold: ten requests at five per "minute" take a whole minute.
    assert time.monotonic() - started >= 0.5
    assert pacer.degraded
