"""Celery on Redis (or RabbitMQ): the scaled-out runner of the same jobs the embedded runner runs.

The SyncJob row is the record of the work; a Celery message only says "run job N". So a message that is lost
(a broker restarted without persistence), delivered twice (`acks_late` after a killed worker) or sent twice is
harmless: taking a job is a conditional update, and the ledger makes a second pass post nothing twice.

Tasks
  * `sync_connection(connection_id, options, job_id)`: one pull/plan/push pass through `jobs.run_job`, with
    `defer_push`: a worker that finds the company's push lease taken leaves pushing to the holder, so workers
    spread over companies instead of queueing behind one (QuickBooks' limits are per company anyway).
  * `push_books(books_id)`: post a company's ready postings (the sweep for postings whose pusher died).
  * `schedule_tick()`, every `LEDGERLINK_TICK_SECONDS` (30) from Celery beat: queues the due schedules, puts
    back in line the running jobs whose worker died, and sends every queued job and every company with ready
    postings to the workers.

With Redis, identity keys (`SET NX` with expiry, cleared when the task starts) keep the same job from being
queued twice while it waits, and a liveness key renewed while a job runs tells a killed worker's job from a
slow one. Without a broker none of this is used: `ledgerlink serve` runs the embedded runner over the same
`jobs` functions.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis
from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import aliased

from ledgerlink import metrics
from ledgerlink.config import Settings
from ledgerlink.domain.errors import ConfigError
from ledgerlink.store.models import Connection, Posting, PostingState, SyncJob
from ledgerlink.sync import jobs
from ledgerlink.sync.ratelimit import ScaleOutSettings, redis_client

if TYPE_CHECKING:
    from celery import Celery

    from ledgerlink.bootstrap import App

log = logging.getLogger(__name__)

TASK_SYNC = "ledgerlink.sync_connection"
TASK_PUSH = "ledgerlink.push_books"
TASK_TICK = "ledgerlink.schedule_tick"
KEY_PREFIX = "ledgerlink:task"


class Marks:
    """The Redis keys beside the queue: "already queued" (identity) and "still running" (liveness).

    Without Redis (an AMQP broker and no `LEDGERLINK_REDIS_URL`) every mark is a no-op: duplicates in the
    queue are then only skipped when taken, and a killed worker's job waits for a person to queue it again.
    """

    def __init__(self, client: redis.Redis | None, *, identity_ttl: float, heartbeat_ttl: float) -> None:
        self.redis = client
        self.identity_ttl = identity_ttl
        self.heartbeat_ttl = heartbeat_ttl

    def claim_queued(self, name: str) -> bool:
        """Mark `name` as waiting in the queue; False when it already is (do not send it again)."""
        if self.redis is None:
            return True
        try:
            return bool(self.redis.set(f"{KEY_PREFIX}:queued:{name}", "1", nx=True, px=self._ms(self.identity_ttl)))
        except redis.RedisError:
            log.warning("Redis unreachable: sending %s without an identity key", name)
            return True

    def clear_queued(self, name: str) -> None:
        """The task started (or could not be sent): the same work may be queued again."""
        if self.redis is None:
            return
        try:
            self.redis.delete(f"{KEY_PREFIX}:queued:{name}")
        except redis.RedisError:
            log.warning("Redis unreachable: the identity key of %s lapses by itself", name)

    def running(self, job_id: int) -> bool:
        """True while a worker renews job `job_id`'s liveness key (also when that cannot be known)."""
        if self.redis is None:
            return True
        try:
            return bool(self.redis.exists(f"{KEY_PREFIX}:running:{job_id}"))
        except redis.RedisError:
            return True

    @contextmanager
    def alive(self, job_id: int) -> Iterator[None]:
        """Renew job `job_id`'s liveness key from a background thread while the block runs."""
        if self.redis is None:
            yield
            return
        client, key, ttl = self.redis, f"{KEY_PREFIX}:running:{job_id}", self._ms(self.heartbeat_ttl)
        stop = threading.Event()

        def beat() -> None:
            while True:
                # During a broker restart keep running; the key is renewed when Redis is back.
                with suppress(redis.RedisError):
                    client.set(key, str(os.getpid()), px=ttl)
                if stop.wait(self.heartbeat_ttl / 3):
                    return

        thread = threading.Thread(target=beat, name=f"ledgerlink-job-{job_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(5)
            with suppress(redis.RedisError):  # else it lapses by itself
                client.delete(key)

    @staticmethod
    def _ms(seconds: float) -> int:
        return max(1, round(seconds * 1000))


class Runtime:
    """What the tasks of one process share: the application (built lazily, after a prefork worker forked),
    the Redis marks, and the Celery app to send follow-up tasks with."""

    def __init__(self, settings: Settings, scale: ScaleOutSettings, app: App | None = None) -> None:
        self.settings = settings
        self.scale = scale
        self.celery: Celery | None = None
        self._app: App | None = app  # a web process passes its own; workers build theirs after the fork
        self._marks: Marks | None = None
        self._pid = os.getpid() if app is not None else 0
        self._lock = threading.Lock()

    def app(self) -> App:
        """The process's `App` (database pools are never shared across a fork)."""
        return self._ensure()[0]

    def marks(self) -> Marks:
        """The process's Redis marks."""
        return self._ensure()[1]

    def _ensure(self) -> tuple[App, Marks]:
        with self._lock:
            if self._pid != os.getpid() or self._app is None or self._marks is None:
                from ledgerlink.bootstrap import bootstrap

                url = self.scale.effective_redis_url
                if self._pid != os.getpid() or self._app is None:
                    self._app = bootstrap(self.settings, upgrade=False)
                self._marks = Marks(
                    redis_client(url) if url else None,
                    identity_ttl=self.scale.task_identity_ttl,
                    heartbeat_ttl=self.scale.job_heartbeat_ttl,
                )
                self._pid = os.getpid()
            return self._app, self._marks

    # -- sending ------------------------------------------------------------------------------------------

    def send_job(self, job_id: int) -> bool:
        """Send job `job_id` to the workers unless it is already waiting in the queue; True when sent."""
        marks = self.marks()
        name = f"job:{job_id}"
        if not marks.claim_queued(name):
            return False
        with self.app().db.session() as session:
            job = session.get(SyncJob, job_id)
            if job is None or job.state != "queued":
                marks.clear_queued(name)
                return False
            kwargs = {"connection_id": job.connection_id, "options": dict(job.options), "job_id": job.id}
        return self._send(TASK_SYNC, kwargs, name)

    def send_push(self, books_id: int) -> bool:
        """Send a push of books connection `books_id` unless one is already waiting; True when sent."""
        name = f"push:{books_id}"
        if not self.marks().claim_queued(name):
            return False
        return self._send(TASK_PUSH, {"books_id": books_id}, name)

    def _send(self, task: str, kwargs: dict[str, Any], name: str) -> bool:
        if self.celery is None:
            raise ConfigError("no Celery app to send tasks with")
        try:
            self.celery.send_task(task, kwargs=kwargs, queue=self.scale.queue)
        except Exception:
            self.marks().clear_queued(name)
            raise
        return True


# -- the task bodies (plain functions: the tests and the embedded runner call the same code) -------------------


def sync_connection(
    runtime: Runtime, connection_id: int, options: dict[str, Any] | None = None, job_id: int | None = None
) -> str:
    """Run one sync pass of a channel connection: job `job_id` if still queued, else a new job recorded now."""
    app = runtime.app()
    marks = runtime.marks()
    if job_id is not None:
        marks.clear_queued(f"job:{job_id}")
        if jobs.claim_job(app, job_id) is None:
            return "skipped"  # done already, or taken by a live worker
    else:
        job_id = _running_job(app, connection_id, options or {})
    with marks.alive(job_id):
        jobs.run_job(app, job_id, defer_push=True)
    return "done"


def push_books(runtime: Runtime, books_id: int) -> str:
    """Post the ready postings of one QuickBooks company, unless another worker is posting to it already."""
    from ledgerlink.sync.engine import RunReport

    runtime.marks().clear_queued(f"push:{books_id}")
    app = runtime.app()
    with app.db.session() as session:
        conn = session.get(Connection, books_id)
    if conn is None:
        return "gone"
    books = app.adapters.books(conn)
    report = RunReport()
    try:
        app.engine().push(conn, books, report, wait=False)
    finally:
        stats = getattr(getattr(books, "client", None), "stats", None)
        if isinstance(stats, dict):
            metrics.observe_api(str(conn.config.get("realm_id", books_id)), stats)
        books.close()
    return "deferred" if report.counts.get("push_deferred") else f"posted {report.counts.get('posted', 0)}"


def schedule_tick(runtime: Runtime, now: datetime | None = None) -> dict[str, int]:
    """Queue the due schedules, requeue the jobs of dead workers, send what waits; returns the counts."""
    app = runtime.app()
    marks = runtime.marks()
    due = jobs.schedule_tick(app, now)
    grace = timedelta(seconds=2 * marks.heartbeat_ttl)
    requeued = jobs.requeue_lost(app, lambda job_id: marks.running(job_id), grace=grace) if marks.redis else []
    sent = sum(runtime.send_job(job_id) for job_id in jobs.queued_jobs(app))
    pushes = sum(runtime.send_push(books_id) for books_id in books_with_ready_postings(app))
    return {"due": due, "requeued": len(requeued), "sent": sent, "pushes": pushes}


def books_with_ready_postings(app: App) -> list[int]:
    """Books connections with postings that wait only for a pusher (due, their dependency posted)."""
    dep = aliased(Posting)
    now = datetime.now(UTC)
    with app.db.session() as session:
        return list(
            session.scalars(
                select(Posting.books_id)
                .where(
                    Posting.state == PostingState.PENDING,
                    or_(Posting.not_before.is_(None), Posting.not_before <= now),
                    or_(
                        Posting.depends_on_id.is_(None),
                        exists().where(and_(dep.id == Posting.depends_on_id, dep.state == PostingState.POSTED)),
                    ),
                )
                .distinct()
            )
        )


def _running_job(app: App, connection_id: int, options: dict[str, Any]) -> int:
    """A SyncJob row for a sync sent without one (so the dashboard shows it), taken by this worker."""
    with app.db.session() as session:
        conn = session.get(Connection, connection_id)
        if conn is None:
            raise ConfigError(f"no connection with id {connection_id}")
        job = SyncJob(
            company_id=conn.company_id,
            connection_id=conn.id,
            trigger="celery",
            options=options,
            state="running",
            started_at=datetime.now(UTC),
        )
        session.add(job)
        session.flush()
        return job.id


# -- the Celery app ----------------------------------------------------------------------------------------------


def create_celery(
    settings: Settings | None = None, scale: ScaleOutSettings | None = None, *, app: App | None = None
) -> Celery:
    """The Celery app for `settings.broker_url`, with the tasks registered (built on demand, never at import).

    `app`: this process's application, when it has one already (a web process); workers build their own."""
    from celery import Celery

    settings = settings or Settings()
    if not settings.broker_url:
        raise ConfigError("set LEDGERLINK_BROKER_URL (redis://… or amqp://…) to run Celery workers")
    scale = scale or ScaleOutSettings(broker_url=settings.broker_url)
    celery = Celery("ledgerlink", broker=settings.broker_url, set_as_current=False)
    celery.conf.update(
        task_acks_late=True,  # a task is acknowledged when done: a killed worker's task is delivered again
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # a worker takes one task at a time; the others stay for idle workers
        task_default_queue=scale.queue,
        task_ignore_result=True,  # the database is the record; no result backend needed
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a broker restart: keep reconnecting
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_transport_options={"visibility_timeout": scale.visibility_timeout},
        worker_hijack_root_logger=False,
        beat_schedule={"schedule-tick": {"task": TASK_TICK, "schedule": scale.tick_seconds}},
        timezone="UTC",
    )
    runtime = Runtime(settings, scale, app)
    runtime.celery = celery

    @celery.task(name=TASK_SYNC)  # type: ignore[untyped-decorator]
    def sync_task(connection_id: int, options: dict[str, Any] | None = None, job_id: int | None = None) -> str:
        return sync_connection(runtime, connection_id, options, job_id)

    @celery.task(name=TASK_PUSH)  # type: ignore[untyped-decorator]
    def push_task(books_id: int) -> str:
        return push_books(runtime, books_id)

    @celery.task(name=TASK_TICK)  # type: ignore[untyped-decorator]
    def tick_task() -> dict[str, int]:
        return schedule_tick(runtime)

    celery.ledgerlink_runtime = runtime
    return celery


def runtime_of(celery: Celery) -> Runtime:
    """The `Runtime` that `create_celery` attached to its app."""
    runtime: Runtime = celery.ledgerlink_runtime
    return runtime


def install_dispatcher(app: App) -> Celery:
    """Send every job that `jobs.enqueue` commits in this process to the workers (web processes)."""
    celery = create_celery(app.settings, app=app)
    runtime = runtime_of(celery)
    jobs.set_dispatcher(runtime.send_job)
    return celery


def run_worker(celery: Celery, *, concurrency: int, queues: list[str], loglevel: str = "INFO") -> int:
    """Run a worker in this process until it is stopped (one process per task slot with `--concurrency`>1)."""
    argv = [
        "worker",
        f"--concurrency={concurrency}",
        f"--queues={','.join(queues)}",
        f"--loglevel={loglevel}",
        # Each worker its own node name: RabbitMQ refuses a second worker with the same one (`celery@host`).
        f"--hostname=ledgerlink-{os.getpid()}@%h",
        # One task slot runs in the worker's own process: nothing forked, and a SIGKILL stops exactly it.
        f"--pool={'solo' if concurrency == 1 else 'prefork'}",
        "--without-gossip",
        "--without-mingle",
    ]
    return int(celery.worker_main(argv) or 0)


def run_beat(celery: Celery, *, data_dir: Path, loglevel: str = "INFO") -> int:
    """Run Celery beat (the schedule tick) in this process; exactly one beat per deployment."""
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = ["beat", f"--schedule={data_dir / 'celerybeat-schedule'}", f"--loglevel={loglevel}"]
    return int(celery.start(argv) or 0)
