"""Soak: many orders through several Celery worker processes while workers die, calls fail and services restart.

Afterwards every eligible order is in QuickBooks exactly once (custom transaction numbers are off, so a document
sent twice would be a second document), every total matches, the ledger agrees with QuickBooks by Id, and every
channel's cursor reached its newest order. The figures are printed (`pytest -s` shows them).

A merchant who sees a sync stop presses "Sync now": the driver does the same for a company whose work is not
finished while no sync of it is queued or running (a pass that stopped on a fault, or lost to a restart).
"""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from test_celery import (
    Deployment,
    Tenant,
    add_tenants,
    audit,
    deployment,
    free_port,
    redis_database,
    settled,
    up,
)

from ledgerlink.books.qbo import QboBooks
from ledgerlink.sandbox.qbo import Fault
from ledgerlink.store.models import Connection, OrderState, Posting, PostingState, StoredOrder, SyncJob

TENANTS = 4
ORDERS_PER_TENANT = 500  # 2,000 orders
WORKERS = 4
MIN_KILLS = 10
FAULT_EVERY = 20  # one QuickBooks call in twenty is faulted: 5%
# The QuickBooks connections' `read_timeout`: well above any answer of a sandbox here (slow ones included), and
# well below a `timeout` fault's hold, so a held request ends in the worker's own read timeout.
READ_TIMEOUT = 1.0
HOLD_MS = 5_000


@pytest.fixture
def redis_db() -> Iterator[str]:
    with redis_database() as url:
        yield url


class FaultInjector:
    """Arms one random fault in a tenant's QuickBooks sandbox for every `every` requests it served."""

    # Connection faults (sandbox/faults.py) too: dropped before or after the work, or held past the workers' read
    # timeout (`READ_TIMEOUT`), before or after the work, so that the client gives up on the answer itself.
    KINDS = (
        "status500",
        "status503",
        "throttle",
        "lost_response",
        "latency",
        "reset",
        "reset_after_write",
        "timeout",
        "timeout_after_write",
        "expire_tokens",
    )

    def __init__(self, tenants: list[Tenant], every: int, rng: random.Random) -> None:
        self.tenants = tenants
        self.every = every
        self.rng = rng
        self.armed: Counter[str] = Counter()
        self._seen = {t.name: 0 for t in tenants}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fault-injector", daemon=True)

    def __enter__(self) -> FaultInjector:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for tenant in self.tenants:
            for fault in tenant.qbo.faults:
                self.armed[self._name(fault)] -= fault.count  # armed but never fired
            tenant.qbo.clear_faults()

    @staticmethod
    def _name(fault: Fault) -> str:
        return f"status{fault.status}" if fault.kind == "status" else fault.kind

    def _loop(self) -> None:
        while not self._stop.wait(0.02):
            for tenant in self.tenants:
                served = tenant.qbo.stats.requests
                while served - self._seen[tenant.name] >= self.every:
                    self._seen[tenant.name] += self.every
                    kind = self.rng.choice(self.KINDS)
                    hold = self.rng.randint(100, 600)
                    fault = {
                        "status500": Fault(kind="status", status=500, path_contains="/v3/company"),
                        "status503": Fault(kind="status", status=503, path_contains="/v3/company"),
                        "throttle": Fault(kind="throttle", path_contains="/v3/company"),
                        "lost_response": Fault(kind="lost_response", path_contains="/v3/company"),
                        "latency": Fault(kind="latency", delay_ms=hold, path_contains="/v3/"),
                        "reset": Fault(kind="reset", path_contains="/v3/company"),
                        "reset_after_write": Fault(kind="reset_after_write", path_contains="/v3/company"),
                        "timeout": Fault(kind="timeout", delay_ms=HOLD_MS, path_contains="/v3/company"),
                        "timeout_after_write": Fault(
                            kind="timeout_after_write", delay_ms=HOLD_MS, path_contains="/v3/company"
                        ),
                        # Every access token issued so far stops working: each worker gets a 401 and refreshes.
                        "expire_tokens": Fault(kind="expire_tokens", path_contains="/v3/company"),
                    }[kind]
                    tenant.qbo.inject(fault)
                    self.armed[kind] += 1


class Driver:
    """Presses "Sync now" for an unfinished company with no sync queued or running, at most once a second each."""

    def __init__(self, dep: Deployment) -> None:
        self.dep = dep
        self.pressed = 0
        self._last: dict[str, float] = {}

    def nudge(self) -> None:
        now = time.monotonic()
        with self.dep.app.db.session() as session:
            busy = set(session.scalars(select(SyncJob.connection_id).where(SyncJob.state.in_(["queued", "running"]))))
            unfinished = set(
                session.scalars(
                    select(StoredOrder.connection_id).where(
                        StoredOrder.state.in_([OrderState.PENDING, OrderState.PLANNED])
                    )
                )
            )
            counts = {
                cid: n
                for cid, n in session.execute(
                    select(StoredOrder.connection_id, func.count()).group_by(StoredOrder.connection_id)
                )
            }
            waiting = session.scalar(
                select(func.count()).where(Posting.state.in_([PostingState.PENDING, PostingState.SENDING]))
            )
        for tenant in self.dep.tenants:
            incomplete = tenant.channel_id in unfinished or counts.get(tenant.channel_id, 0) < len(tenant.shop.orders)
            if tenant.channel_id in busy or not (incomplete or waiting):
                continue
            if now - self._last.get(tenant.name, 0.0) < 1.0:
                continue
            self._last[tenant.name] = now
            # While the broker restarts sending fails; the job is stored and beat sends it once it is back.
            with contextlib.suppress(Exception):
                self.dep.queue_sync(tenant)
            self.pressed += 1

    def run_until_settled(self, timeout: float, *, during: Callable[[], None] | None = None) -> float:
        started = time.monotonic()
        while not settled(self.dep):
            if time.monotonic() - started > timeout:
                pytest.fail(f"the work did not settle within {timeout:.0f} s\n{self.dep.log_tail(2500)}")
            if during is not None:
                during()
            self.nudge()
            time.sleep(0.4)
        return time.monotonic() - started


def set_read_timeout(dep: Deployment, tenants: list[Tenant], seconds: float) -> None:
    """Set each QuickBooks connection's `read_timeout` in its stored config, where every worker reads it."""
    with dep.app.db.session() as session:
        for tenant in tenants:
            conn = session.get(Connection, tenant.books_id)
            assert conn is not None
            conn.config = {**conn.config, "read_timeout": seconds}
    with dep.app.db.session(readonly=True) as session:
        for tenant in tenants:
            conn = session.get(Connection, tenant.books_id)
            assert conn is not None
            books = dep.app.adapters.books(conn)
            assert isinstance(books, QboBooks)
            assert books.client.timeout.read == seconds
            books.close()


def _posted(dep: Deployment) -> int:
    with dep.app.db.session() as session:
        return int(session.scalar(select(func.count()).where(Posting.state == PostingState.POSTED)) or 0)


def test_soak_killed_workers_and_faulted_calls_post_every_order_exactly_once(
    pg_url: str, redis_db: str, tmp_path: Path
) -> None:
    rng = random.Random(2026)
    dep = deployment(pg_url, tmp_path, broker_url=redis_db, redis_url=redis_db)
    try:
        tenants = add_tenants(dep, TENANTS, ORDERS_PER_TENANT, seed=101)
        set_read_timeout(dep, tenants, READ_TIMEOUT)
        driver = Driver(dep)
        started = time.monotonic()
        workers = [dep.start("worker") for _ in range(WORKERS)]
        dep.start("beat")  # its first tick queues every company's scheduled sync (none has run yet)
        kills = 0
        with FaultInjector(tenants, FAULT_EVERY, rng) as faults:
            next_kill = time.monotonic() + rng.uniform(0.5, 1.5)

            def kill_some() -> None:
                nonlocal kills, next_kill
                if kills >= MIN_KILLS + 4 or time.monotonic() < next_kill:
                    return
                index = rng.randrange(len(workers))
                workers[index].send_signal(signal.SIGKILL)
                workers[index].wait(10)
                workers[index] = dep.start("worker")
                kills += 1
                next_kill = time.monotonic() + rng.uniform(0.4, 1.2)

            driver.run_until_settled(240, during=kill_some)
        elapsed = time.monotonic() - started
        result = audit(dep)
        fired = sum(faults.armed.values())
        requests = sum(t.qbo.stats.requests for t in tenants)
        print(
            f"\nsoak: {result.orders} orders, {TENANTS} companies, {WORKERS} workers in {elapsed:.0f} s; "
            f"kills {kills}; faults {fired} of {requests} QBO calls ({dict(faults.armed)}); "
            f"posted {result.documents} documents for {result.posted_orders} orders; "
            f"duplicates {len(result.duplicates)}; lost {len(result.lost)}; mismatches {len(result.mismatches)}; "
            f"sync-now presses {driver.pressed}"
        )
        result.assert_exactly_once()
        assert kills >= MIN_KILLS, f"the work finished after {kills} kills: make it bigger or kill sooner"
        assert fired >= 0.03 * requests, (fired, requests)
        assert result.orders == TENANTS * ORDERS_PER_TENANT
        assert result.posted_orders > 0.75 * result.orders
    finally:
        dep.stop()


class RedisServer:
    """A redis-server of this test alone, on a free port, that the test stops and starts again."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (apt-get install redis-server)")
        self.proc = subprocess.Popen(  # noqa: S603 - our own arguments
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.data_dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not up("127.0.0.1", self.port):
            if time.monotonic() > deadline:
                pytest.fail(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


def _when_posted(dep: Deployment, count: int, action: Callable[[], None]) -> Callable[[], None]:
    """Run `action` once, as soon as `count` documents are posted."""
    done = False

    def check() -> None:
        nonlocal done
        if not done and _posted(dep) >= count:
            done = True
            action()

    return check


def test_broker_restarted_mid_run_resumes_without_loss(pg_url: str, tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    server.start()
    dep = deployment(pg_url, tmp_path, broker_url=server.url, redis_url=server.url)
    restarts = 0
    try:
        tenants = add_tenants(dep, 2, 150, seed=211)
        for tenant in tenants:
            tenant.qbo.inject(Fault(kind="latency", delay_ms=120, count=1_000_000, path_contains="batch"))
        dep.start("worker")
        dep.start("worker")
        dep.start("beat")

        def restart() -> None:
            nonlocal restarts
            server.kill()  # everything in it is gone: the queue, the identity and liveness keys, the windows
            time.sleep(1.5)
            server.start()
            restarts += 1

        driver = Driver(dep)
        driver.run_until_settled(150, during=_when_posted(dep, 40, restart))
        result = audit(dep)
        print(f"\nbroker restart: {restarts} restart, {result.documents} documents, sync-now {driver.pressed}")
        assert restarts == 1, "the run finished before the broker could be restarted"
        result.assert_exactly_once()
        assert result.orders == 300
    finally:
        dep.stop()
        server.kill()


def test_database_connections_killed_mid_run_resume_without_loss(pg_url: str, redis_db: str, tmp_path: Path) -> None:
    dep = deployment(pg_url, tmp_path, broker_url=redis_db, redis_url=redis_db)
    database = make_url(pg_url).database
    admin_url = make_url(pg_url).set(drivername="postgresql", database="postgres").render_as_string(False)
    killed = 0
    try:
        tenants = add_tenants(dep, 2, 150, seed=223)
        for tenant in tenants:
            tenant.qbo.inject(Fault(kind="latency", delay_ms=120, count=1_000_000, path_contains="batch"))
        dep.start("worker")
        dep.start("worker")
        dep.start("beat")

        def terminate() -> None:
            nonlocal killed
            for _ in range(3):  # three volleys, a moment apart, to catch transactions in different steps
                with psycopg.connect(admin_url, autocommit=True) as conn:
                    rows = conn.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = %s AND pid <> pg_backend_pid()",
                        (database,),
                    ).fetchall()
                killed += len(rows)
                time.sleep(0.7)

        driver = Driver(dep)
        driver.run_until_settled(150, during=_when_posted(dep, 40, terminate))
        result = audit(dep)
        print(f"\ndatabase: {killed} connections terminated, {result.documents} documents, sync-now {driver.pressed}")
        assert killed > 0, "no connection was terminated"
        result.assert_exactly_once()
        assert result.orders == 300
    finally:
        dep.stop()
