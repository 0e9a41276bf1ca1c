"""Sync jobs: "Sync now", the schedule and webhooks queue a job; a worker runs it. Embedded in `serve`.

A job has an identity (connection + options): the same sync is never queued twice while one is waiting.
The scale-out deployment runs the same `run_job` from Celery workers (sync/celery_app.py): the SyncJob row
stays the record of the work, and a Celery message only says "run job N"; `set_dispatcher` installs what
sends that message once the row is committed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from ledgerlink.bootstrap import App
from ledgerlink.channels.base import channel_class
from ledgerlink.domain.settings import ScheduleKind, SyncDirection
from ledgerlink.store.models import Connection, OrderState, StoredOrder, SyncJob, SyncRun
from ledgerlink.sync.engine import RunOptions, load_settings, retry_order, save_settings

log = logging.getLogger(__name__)

Dispatcher = Callable[[int], object]
_dispatcher: Dispatcher | None = None


def set_dispatcher(dispatch: Dispatcher | None) -> None:
    """Send queued jobs to a broker as they are committed (`None`: the embedded runner polls for them)."""
    global _dispatcher  # set once, by the composition root of a process
    _dispatcher = dispatch


def _dispatch_after_commit(session: Session, job_id: int) -> None:
    dispatch = _dispatcher
    if dispatch is None:
        return

    def send(_session: Session) -> None:
        try:
            dispatch(job_id)
        except Exception:  # the job is committed; the scheduler's next tick sends it instead
            log.exception("could not send sync job %s to the broker", job_id)

    event.listen(session, "after_commit", send, once=True)


def _now() -> datetime:
    return datetime.now(UTC)


def enqueue(
    session: Session,
    connection: Connection,
    *,
    trigger: str = "manual",
    options: dict[str, Any] | None = None,
    requested_by: str = "",
) -> SyncJob:
    """Queue a sync of one channel connection, unless the same one is already waiting."""
    options = options or {}
    waiting = session.scalars(
        select(SyncJob).where(SyncJob.connection_id == connection.id, SyncJob.state == "queued")
    ).all()
    for job in waiting:
        if job.options == options:
            _dispatch_after_commit(session, job.id)
            return job
    job = SyncJob(
        company_id=connection.company_id,
        connection_id=connection.id,
        trigger=trigger,
        options=options,
        requested_by=requested_by,
    )
    session.add(job)
    session.flush()
    _dispatch_after_commit(session, job.id)
    return job


def run_options(options: dict[str, Any], trigger: str, *, defer_push: bool = False) -> RunOptions:
    """A job's stored options as the engine's RunOptions."""
    return RunOptions(
        created_from=date.fromisoformat(options["since"]) if options.get("since") else None,
        created_to=date.fromisoformat(options["until"]) if options.get("until") else None,
        order_numbers=tuple(options.get("orders") or ()),
        retry_failed=bool(options.get("retry_failed")),
        trigger=trigger,
        defer_push=defer_push,
    )


def claim_job(app: App, job_id: int | None = None) -> SyncJob | None:
    """Take the oldest queued job, or job `job_id` if it is still queued (a conditional update: two workers
    never take the same one)."""
    with app.db.session() as session:
        query = select(SyncJob.id).where(SyncJob.state == "queued")
        if job_id is not None:
            query = query.where(SyncJob.id == job_id)
        candidate = session.scalars(query.order_by(SyncJob.id).limit(1)).first()
        if candidate is None:
            return None
        taken = session.execute(
            update(SyncJob)
            .where(SyncJob.id == candidate, SyncJob.state == "queued")
            .values(state="running", started_at=_now())
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            return None
        job = session.get(SyncJob, candidate)
        return job


def run_job(app: App, job_id: int, *, defer_push: bool = False) -> None:
    """Run one claimed job to the end; its run's counts are written live for the dashboard.

    `defer_push`: one worker of many, which leaves pushing to whichever worker holds the company's lease.
    """
    with app.db.session() as session:
        job = session.get(SyncJob, job_id)
        if job is None:
            return
        connection_id, options, trigger = job.connection_id, dict(job.options), job.trigger

    def started(run_id: int) -> None:
        with app.db.session() as session:
            row = session.get(SyncJob, job_id)
            if row is not None:
                row.run_id = run_id

    error = ""
    try:
        if _from_books(app, connection_id):
            # Sales from QuickBooks to ShipStation, and tracking back (sync/reverse.py); a SHIP_NOTIFY webhook's
            # job reads just the shipments it names (sync/shipstation_webhooks.py).
            from ledgerlink.sync.reverse import ReverseSync
            from ledgerlink.sync.reverse_desktop import DesktopReverseSync
            from ledgerlink.sync.shipstation_webhooks import ensure_registered

            reverse_sync: ReverseSync | DesktopReverseSync = ReverseSync(app.db, app.adapters)
            if _books_kind(app, connection_id) == "qbd":
                # Desktop sales are read by the Web Connector sessions; this job sends and records shipments.
                reverse_sync = DesktopReverseSync(app.db, app.adapters)
            if options.get("ship_notify"):
                reverse = reverse_sync.on_ship_notify(connection_id, str(options["ship_notify"]))
            else:
                ensure_registered(app, connection_id)
                reverse = reverse_sync.run(connection_id)
            error = reverse.error or "; ".join(f"{doc}: {why}" for doc, why in reverse.failures[:5])
        else:
            report = app.engine().run(
                connection_id, run_options(options, trigger, defer_push=defer_push), on_start=started
            )
            error = report.error
            if trigger != "webhook" and not options.get("orders"):
                # The tail of a whole pass: stock levels from QuickBooks to the store, when the settings ask for
                # it (sync/stock.py); its failures go to the event log, not to this job.
                from ledgerlink.sync.stock import push_stock_after_sync

                push_stock_after_sync(app.db, app.adapters, connection_id)
    except Exception as exc:  # a worker must survive any one job; the job records why it failed
        log.exception("sync job %s failed", job_id)
        error = f"{type(exc).__name__}: {exc}"
    with app.db.session() as session:
        row = session.get(SyncJob, job_id)
        if row is not None:
            row.state = "failed" if error else "done"
            row.error = error
            row.finished_at = _now()


def _from_books(app: App, connection_id: int) -> bool:
    """A ShipStation connection whose settings send sales from QuickBooks to it (the reverse direction)."""
    with app.db.session(readonly=True) as session:
        conn = session.get(Connection, connection_id)
        if conn is None or conn.kind != "shipstation":
            return False
        return load_settings(session, connection_id).direction is SyncDirection.FROM_BOOKS


def _books_kind(app: App, connection_id: int) -> str:
    """The kind of books a channel connection is paired with ("qbo", "qbd"), or ""."""
    with app.db.session(readonly=True) as session:
        conn = session.get(Connection, connection_id)
        books = session.get(Connection, conn.books_id) if conn is not None and conn.books_id is not None else None
        return books.kind if books is not None else ""


def has_channel_adapter(kind: str) -> bool:
    """Whether orders can be pulled from this kind of channel yet."""
    try:
        channel_class(kind)
    except KeyError:
        return False
    return True


def due_connections(session: Session, now: datetime) -> list[Connection]:
    """Channel connections whose schedule says a sync is due now."""
    due: list[Connection] = []
    for conn in session.scalars(select(Connection).where(Connection.role == "channel")):
        if not has_channel_adapter(conn.kind):
            continue  # e.g. a ShipStation connection before its adapter exists: nothing to run yet
        settings = load_settings(session, conn.id)
        reverse = settings.direction is SyncDirection.FROM_BOOKS and conn.kind == "shipstation"
        if conn.books_id is None or (
            not reverse and (settings.direction is not SyncDirection.TO_BOOKS or settings.missing())
        ):
            continue
        schedule = settings.schedule
        if schedule.kind is ScheduleKind.MANUAL:
            continue
        last = session.scalars(
            select(SyncRun.started_at).where(SyncRun.connection_id == conn.id).order_by(SyncRun.id.desc()).limit(1)
        ).first()
        if schedule.kind is ScheduleKind.INTERVAL:
            if last is None or now - last >= timedelta(minutes=schedule.every_minutes):
                due.append(conn)
        elif schedule.daily_at is not None:
            today_at = datetime.combine(now.date(), schedule.daily_at, UTC)
            if now >= today_at and (last is None or last < today_at):
                due.append(conn)
    return due


def schedule_tick(app: App, now: datetime | None = None) -> int:
    """Queue the syncs that are due; returns how many were queued."""
    now = now or _now()
    queued = 0
    with app.db.session() as session:
        for conn in due_connections(session, now):
            # Webhook jobs sync single orders: they must not starve the poll, which is the truth.
            busy = session.scalars(
                select(SyncJob.id).where(
                    SyncJob.connection_id == conn.id,
                    SyncJob.state.in_(["queued", "running"]),
                    SyncJob.trigger != "webhook",
                )
            ).first()
            if busy is None:
                enqueue(session, conn, trigger="schedule")
                queued += 1
        from ledgerlink.sync.webhooks import prune_receipts

        prune_receipts(session, now)
    return queued


def requeue_lost(app: App, alive: Callable[[int], bool], *, grace: timedelta) -> list[int]:
    """Put back in line the running jobs whose worker is gone (`alive(job_id)` is false), started before
    `grace` ago (a job just taken has no liveness mark yet). Their unfinished runs are closed as failed.

    Running a job again is harmless: the ledger makes a second pass post nothing twice.
    """
    cutoff = _now() - grace
    requeued: list[int] = []
    with app.db.session() as session:
        running = session.scalars(
            select(SyncJob).where(SyncJob.state == "running", SyncJob.started_at < cutoff).order_by(SyncJob.id)
        ).all()
        for job in running:
            if alive(job.id):
                continue
            taken = session.execute(
                update(SyncJob)
                .where(SyncJob.id == job.id, SyncJob.state == "running", SyncJob.started_at == job.started_at)
                .values(state="queued", started_at=None, error="the worker running it stopped; queued again")
                .execution_options(synchronize_session=False)
            )
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                continue
            requeued.append(job.id)
            run = session.get(SyncRun, job.run_id) if job.run_id is not None else None
            if run is not None and run.finished_at is None:
                run.state, run.finished_at, run.error = "failed", _now(), "the worker running it stopped"
    return requeued


def queued_jobs(app: App) -> list[int]:
    """Ids of the jobs waiting for a worker, oldest first."""
    with app.db.session() as session:
        return list(session.scalars(select(SyncJob.id).where(SyncJob.state == "queued").order_by(SyncJob.id)))


def map_product(session: Session, connection: Connection, sku: str, item_name: str, changed_by: str = "") -> int:
    """Map a channel SKU to a QuickBooks item (the unmatched-products queue) and retry the orders it held up.

    Returns how many orders were put back in line.
    """
    settings = load_settings(session, connection.id)
    sku_map = dict(settings.items.sku_map)
    sku_map[sku] = item_name
    items = settings.items.model_copy(update={"sku_map": sku_map})
    save_settings(session, connection.id, settings.model_copy(update={"items": items}), changed_by=changed_by)
    held = session.scalars(
        select(StoredOrder).where(
            StoredOrder.connection_id == connection.id,
            StoredOrder.state == OrderState.FAILED,
            StoredOrder.error_field.like("lines[%].sku"),
        )
    ).all()
    count = 0
    for order in held:
        lines = (order.canonical or {}).get("lines", [])
        if any(str(line.get("sku", "")).strip().casefold() == sku.strip().casefold() for line in lines):
            retry_order(session, order)
            count += 1
    return count


class EmbeddedRunner:
    """The scheduler and one worker in a background thread of `ledgerlink serve` (no broker needed)."""

    def __init__(self, app: App, *, tick_seconds: float = 30.0, idle_seconds: float = 1.0) -> None:
        self.app = app
        self.tick_seconds = tick_seconds
        self.idle_seconds = idle_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ledgerlink-runner", daemon=True)

    def start(self) -> EmbeddedRunner:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        next_tick = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_tick:
                    schedule_tick(self.app)
                    next_tick = time.monotonic() + self.tick_seconds
                job = claim_job(self.app)
                if job is not None:
                    run_job(self.app, job.id)
                    continue
            except Exception:  # keep the loop alive; the next tick retries
                log.exception("embedded runner")
            self._stop.wait(self.idle_seconds)


def drain(app: App, *, until: Callable[[], bool] | None = None) -> int:
    """Run queued jobs in this thread until none is left (tests, `sync --queued`); returns how many ran."""
    ran = 0
    while until is None or not until():
        job = claim_job(app)
        if job is None:
            break
        run_job(app, job.id)
        ran += 1
    return ran
