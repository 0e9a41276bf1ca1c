"""Celery workers as real processes (`python -m ledgerlink worker`) on PostgreSQL, with Redis or RabbitMQ.

Each test gets its own Redis database number (flushed before and after) or its own RabbitMQ queue, and its
own companies, each with a QuickBooks Online sandbox (custom transaction numbers off, so a document sent
twice would show up as a duplicate) and a Shopify sandbox. The helpers here are shared with test_soak.py.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import func, select

from ledgerlink.bootstrap import App, bootstrap
from ledgerlink.channels.base import Cursor
from ledgerlink.config import Settings
from ledgerlink.metrics import metrics_response
from ledgerlink.sandbox.demo import setup_demo_company
from ledgerlink.sandbox.qbo import Fault, QboLimits, QboSandbox
from ledgerlink.sandbox.server import RunningServer, serve
from ledgerlink.sandbox.shopify import ShopifySandbox, generate_orders
from ledgerlink.store.models import Connection, CursorRow, OrderState, Posting, PostingState, StoredOrder, SyncJob
from ledgerlink.sync.celery_app import Runtime, create_celery, runtime_of
from ledgerlink.sync.jobs import enqueue
from ledgerlink.sync.ratelimit import ScaleOutSettings

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
AMQP_HOST, AMQP_PORT = "127.0.0.1", 5672
AMQP_URL = f"amqp://guest:guest@{AMQP_HOST}:{AMQP_PORT}//"
TEST_SECRET = "test-secret-key"  # the same key as tests/conftest.py: the fixtures' stacks are sealed with it
TIME_SCALE = 60.0
DOCUMENT_KINDS = ("SalesReceipt", "Invoice", "Estimate", "Payment", "CreditMemo", "RefundReceipt")
SALE_KINDS = ("SalesReceipt", "Invoice", "Estimate")


def up(host: str, port: int) -> bool:
    """True when something listens on host:port."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def redis_database() -> Iterator[str]:
    """A Redis database number of the running Redis for one test alone, flushed before and after."""
    if not up(REDIS_HOST, REDIS_PORT):
        pytest.fail(
            f"Redis is not running on {REDIS_HOST}:{REDIS_PORT}: start it (`make services`, or "
            "redis-server --daemonize yes --port 6379 --save '')"
        )
    admin = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=0)
    # Parallel test processes share the server: claim a database number (1-15) with a lease in db 0.
    for number in range(1, 16):
        claim = f"ledgerlink-test:db:{number}"
        if admin.set(claim, f"{socket.gethostname()}:{os.getpid()}", nx=True, ex=1800):
            break
    else:
        admin.close()
        pytest.fail("Redis: every database number 1-15 is taken by other tests")
    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{number}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()
        admin.delete(claim)
        admin.close()


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The URL of a Redis database for this test alone."""
    with redis_database() as url:
        yield url


@pytest.fixture
def amqp_url() -> str:
    """The running RabbitMQ (each test consumes its own queue)."""
    if not up(AMQP_HOST, AMQP_PORT):
        pytest.fail(f"RabbitMQ is not running on {AMQP_HOST}:{AMQP_PORT}: start it (`make services`)")
    return AMQP_URL


@dataclass
class Tenant:
    """One company: its Shopify store and QuickBooks Online company, each a sandbox on a real port."""

    name: str
    channel_id: int
    books_id: int
    company_id: int
    qbo: QboSandbox
    shop: ShopifySandbox
    servers: list[RunningServer]


@dataclass
class Deployment:
    """The database, the broker, the tenants and the worker processes of one test."""

    app: App
    db_url: str
    data_dir: Path
    broker_url: str
    redis_url: str
    queue: str
    tenants: list[Tenant] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    runtime: Runtime | None = None

    def env(self) -> dict[str, str]:
        """Environment of a `ledgerlink worker`/`beat` process of this deployment."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERLINK_")}
        env.update(
            LEDGERLINK_DATABASE_URL=self.db_url,
            LEDGERLINK_SECRET_KEY=TEST_SECRET,
            LEDGERLINK_DATA_DIR=str(self.data_dir),
            LEDGERLINK_ENV="test",
            LEDGERLINK_BROKER_URL=self.broker_url,
            LEDGERLINK_REDIS_URL=self.redis_url,
            LEDGERLINK_QUEUE=self.queue,
            LEDGERLINK_QBO_TIME_SCALE=str(TIME_SCALE),
            LEDGERLINK_JOB_HEARTBEAT_TTL="2",
            LEDGERLINK_TASK_IDENTITY_TTL="20",
            LEDGERLINK_TICK_SECONDS="1",
            LEDGERLINK_VISIBILITY_TIMEOUT="30",
            **self.extra_env,
        )
        return env

    def settings(self) -> Settings:
        return Settings(
            env="test",
            data_dir=self.data_dir,
            database_url=self.db_url,
            secret_key=TEST_SECRET,  # type: ignore[arg-type]
            broker_url=self.broker_url,
        )

    def start(self, command: str = "worker", *args: str) -> subprocess.Popen[bytes]:
        """Start `ledgerlink worker` (or `beat`) as a process; its output goes to a log file."""
        log = self.data_dir / f"{command}-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("wb") as sink:
            proc = subprocess.Popen(  # noqa: S603 - our own command line
                [sys.executable, "-m", "ledgerlink", command, "--loglevel", "WARNING", *args],
                env=self.env(),
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        self.workers.append(proc)
        return proc

    def sender(self) -> Runtime:
        """A `Runtime` in this process to queue jobs with (what `ledgerlink serve` does for "Sync now")."""
        if self.runtime is None:
            scale = ScaleOutSettings(
                broker_url=self.broker_url, redis_url=self.redis_url, queue=self.queue, task_identity_ttl=20
            )
            self.runtime = runtime_of(create_celery(self.settings(), scale))
        return self.runtime

    def queue_sync(self, tenant: Tenant, options: dict[str, Any] | None = None) -> int:
        """Queue a sync job of a tenant's channel and send it to the workers; returns the job id."""
        with self.app.db.session() as session:
            conn = session.get(Connection, tenant.channel_id)
            assert conn is not None
            job_id = enqueue(session, conn, trigger="manual", options=options or {}, requested_by="test").id
        self.sender().send_job(job_id)
        return job_id

    def stop(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        if self.runtime is not None:
            self.runtime.app().db.dispose()
            if self.runtime.celery is not None:
                self.runtime.celery.close()
        for tenant in self.tenants:
            for server in tenant.servers:
                server.stop()
        self.app.db.dispose()

    def log_tail(self, chars: int = 4000) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-chars:]}" for log in self.logs)


def deployment(db_url: str, data_dir: Path, broker_url: str, redis_url: str = "") -> Deployment:
    """An empty deployment (migrated database, no tenants, no workers yet)."""
    settings = Settings(env="test", data_dir=data_dir, database_url=db_url, secret_key=TEST_SECRET)  # type: ignore[arg-type]
    app = bootstrap(settings, throttle_wait=0.2, retry_backoff=0.05)
    return Deployment(app, db_url, data_dir, broker_url, redis_url, queue=f"ll-test-{uuid.uuid4().hex[:10]}")


def add_tenants(
    dep: Deployment, count: int, orders: int, *, seed: int = 31, limits: QboLimits | None = None
) -> list[Tenant]:
    """`count` companies with `orders` Shopify orders each, every one with its own QuickBooks realm."""
    added = []
    for index in range(len(dep.tenants), len(dep.tenants) + count):
        qbo = QboSandbox(limits=limits or QboLimits(time_scale=TIME_SCALE), realm_id=f"91{seed:04d}{index:06d}")
        qbo.set_preference("SalesFormsPrefs", "CustomTxnNumbers", False)
        shop = ShopifySandbox(time_scale=TIME_SCALE)
        shop.add_orders(generate_orders(orders, seed=seed + index))
        servers = [serve(qbo.app), serve(shop.app)]
        channel_id = setup_demo_company(dep.app, qbo, servers[0].base_url, shop, servers[1].base_url)
        with dep.app.db.session() as session:
            conn = session.get(Connection, channel_id)
            assert conn is not None
            assert conn.books_id is not None
            books_id, company_id = conn.books_id, conn.company_id
        tenant = Tenant(f"tenant-{index}", channel_id, books_id, company_id, qbo, shop, servers)
        dep.tenants.append(tenant)
        added.append(tenant)
    return added


def settled(dep: Deployment) -> bool:
    """True when every order of every tenant is stored and finished and nothing waits or runs."""
    with dep.app.db.session() as session:
        busy = session.scalar(select(func.count()).where(SyncJob.state.in_(["queued", "running"])))
        waiting = session.scalar(
            select(func.count()).where(Posting.state.in_([PostingState.PENDING, PostingState.SENDING]))
        )
        unfinished = session.scalar(
            select(func.count()).where(StoredOrder.state.in_([OrderState.PENDING, OrderState.PLANNED]))
        )
        stored = session.scalar(select(func.count()).select_from(StoredOrder))
    expected = sum(len(t.shop.orders) for t in dep.tenants)
    return busy == 0 and waiting == 0 and unfinished == 0 and stored == expected


def wait_until(check: Callable[[], bool], timeout: float, dep: Deployment, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout:.0f} s\n{dep.log_tail()}")
        time.sleep(0.3)


@dataclass
class Audit:
    """What the books hold against what the ledger says, over every tenant."""

    orders: int = 0
    posted_orders: int = 0
    documents: int = 0
    duplicates: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)

    def assert_exactly_once(self) -> None:
        assert not self.duplicates, f"documents posted more than once: {self.duplicates[:20]}"
        assert not self.lost, f"orders not in QuickBooks: {self.lost[:20]}"
        assert not self.mismatches, f"the ledger and QuickBooks disagree: {self.mismatches[:20]}"


def audit(dep: Deployment) -> Audit:
    """Every eligible order in QuickBooks exactly once, totals equal, ledger ↔ books by Id, cursor complete."""
    result = Audit()
    with dep.app.db.session() as session:
        for tenant in dep.tenants:
            orders = session.scalars(select(StoredOrder).where(StoredOrder.connection_id == tenant.channel_id)).all()
            postings = session.scalars(
                select(Posting).where(Posting.books_id == tenant.books_id, Posting.state == PostingState.POSTED)
            ).all()
            cursor_row = session.get(CursorRow, tenant.channel_id)
            _audit_tenant(tenant, list(orders), list(postings), cursor_row, result)
    return result


def _audit_tenant(
    tenant: Tenant, orders: list[StoredOrder], postings: list[Posting], cursor_row: CursorRow | None, out: Audit
) -> None:
    where = tenant.name
    out.orders += len(orders)
    for order in orders:
        if order.state not in (OrderState.POSTED, OrderState.SKIPPED):
            out.lost.append(f"{where} order {order.number}: {order.state} {order.detail[:200]}")
    out.posted_orders += sum(1 for o in orders if o.state == OrderState.POSTED)
    in_books: dict[tuple[str, str], dict[str, Any]] = {}
    for kind in DOCUMENT_KINDS:
        entities = tenant.qbo.entities(kind)
        numbers = Counter(str(e.get("DocNumber")) for e in entities if e.get("DocNumber"))
        out.duplicates += [f"{where} {kind} {n} ×{c}" for n, c in numbers.items() if c > 1]
        in_books.update({(kind, str(e["Id"])): e for e in entities})
    out.documents += len(in_books)
    bound: set[tuple[str, str]] = set()
    for posting in postings:
        ident = (posting.kind, str(posting.remote_id))
        entity = in_books.get(ident)
        if entity is None:
            out.mismatches.append(f"{where} posting {posting.key}: {ident} is not in QuickBooks")
            continue
        if ident in bound:
            out.mismatches.append(f"{where} {ident} is bound to two postings")
        bound.add(ident)
        if "TotalAmt" in entity and Decimal(str(entity["TotalAmt"])) != posting.total:
            out.mismatches.append(f"{where} {ident}: QuickBooks total {entity['TotalAmt']} ≠ ledger {posting.total}")
    for ident in set(in_books) - bound:
        out.duplicates.append(f"{where} {ident} is in QuickBooks but in no posting (sent twice?)")
    by_order: dict[int, Decimal] = {}
    for posting in postings:
        if posting.kind in SALE_KINDS:
            by_order[posting.order_id] = by_order.get(posting.order_id, Decimal(0)) + posting.total
    for order in orders:
        if order.state == OrderState.POSTED and order.total is not None and by_order.get(order.id) != order.total:
            out.mismatches.append(
                f"{where} order {order.number}: total {order.total} ≠ posted {by_order.get(order.id)}"
            )
    newest = max(
        (datetime.fromisoformat(str(o["updated_at"])) for o in tenant.shop.orders.values()),
        default=None,
    )
    cursor = Cursor.from_json(cursor_row.value) if cursor_row is not None else None
    if newest is not None and (cursor is None or cursor.updated_at < newest):
        out.mismatches.append(f"{where}: the cursor stopped at {cursor} before the newest order ({newest})")


def overlapping_runs(dep: Deployment) -> int:
    """How many pairs of sync runs of different companies ran at the same time."""
    from ledgerlink.store.models import SyncRun

    with dep.app.db.session() as session:
        runs = session.execute(select(SyncRun.company_id, SyncRun.started_at, SyncRun.finished_at)).all()
    pairs = 0
    for i, (company_a, start_a, end_a) in enumerate(runs):
        for company_b, start_b, end_b in runs[i + 1 :]:
            if company_a != company_b and end_a and end_b and start_a < end_b and start_b < end_a:
                pairs += 1
    return pairs


# -- the tests ------------------------------------------------------------------------------------------------


def test_workers_on_redis_post_every_order_of_three_companies_once(pg_url: str, redis_url: str, tmp_path: Path) -> None:
    dep = deployment(pg_url, tmp_path, broker_url=redis_url, redis_url=redis_url)
    try:
        tenants = add_tenants(dep, 3, 60, seed=41)
        for tenant in tenants:
            # Slow enough that three passes overlap, so the test sees the companies run side by side.
            tenant.qbo.inject(Fault(kind="latency", delay_ms=150, count=100_000, path_contains="batch"))
        jobs = [dep.queue_sync(t) for t in tenants]
        # The same sync asked for again while it waits is the same job, and is not sent twice.
        assert dep.queue_sync(tenants[0]) == jobs[0]
        assert not dep.sender().send_job(jobs[0])
        dep.start("worker", "--concurrency", "2")
        dep.start("worker")
        wait_until(lambda: settled(dep), 120, dep, "every order posted")
        result = audit(dep)
        result.assert_exactly_once()
        assert result.orders == 180
        assert result.posted_orders > 0.75 * result.orders
        assert overlapping_runs(dep) >= 1, "two companies never synced at the same time"
        with dep.app.db.session() as session:
            states = Counter(session.scalars(select(SyncJob.state)))
        assert states == {"done": 3}, states
    finally:
        dep.stop()


def test_workers_on_rabbitmq_post_every_order_once(pg_url: str, amqp_url: str, tmp_path: Path) -> None:
    # No Redis at all: no identity or liveness keys, pacing per process; the ledger still holds.
    dep = deployment(pg_url, tmp_path, broker_url=amqp_url)
    ports = [free_port()]
    while len(ports) < 2:
        ports += [port for port in [free_port()] if port not in ports]
    try:
        tenants = add_tenants(dep, 2, 50, seed=43)
        for port in ports:
            dep.start("worker", "--metrics-port", str(port))
        # "Sync now" from the command line: one job per channel connection, sent to the workers.
        queued = subprocess.run(
            [sys.executable, "-m", "ledgerlink", "sync", "--celery"], env=dep.env(), capture_output=True, check=False
        )
        assert queued.returncode == 0, queued.stderr.decode()[-2000:]
        assert queued.stdout.decode().count("queued sync job") == len(tenants)
        wait_until(lambda: settled(dep), 120, dep, "every order posted")
        result = audit(dep)
        result.assert_exactly_once()
        assert result.orders == 100
        assert result.posted_orders > 0.75 * result.orders
        # The workers counted what they did; the web app's /metrics adds the queue gauges from the database.
        scraped = [_samples(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text) for port in ports]
        posted = sum(
            v for found in scraped for (name, _l), v in found.items() if name == "ledgerlink_documents_posted_total"
        )
        pulled = sum(
            v for found in scraped for (name, _l), v in found.items() if name == "ledgerlink_orders_pulled_total"
        )
        requests = sum(
            v for found in scraped for (name, _l), v in found.items() if name == "ledgerlink_qbo_requests_total"
        )
        assert posted == result.documents
        assert pulled >= result.orders
        assert requests > 0
        body, content_type = metrics_response(dep.app.db)
        assert content_type.startswith("text/plain")
        queues = _samples(body.decode())
        assert queues[("ledgerlink_sync_jobs", (("state", "queued"),))] == 0
        assert queues[("ledgerlink_sync_jobs", (("state", "running"),))] == 0
    finally:
        dep.stop()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text → {(sample name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
