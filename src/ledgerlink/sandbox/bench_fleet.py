"""Many companies through Celery workers: total throughput and per-company fairness.

A fresh PostgreSQL database (created and dropped here), Redis as the broker on a dedicated database number
(flushed before and after: it is the benchmark's alone), `companies` companies each with a shop of
`orders` generated orders and a QuickBooks company, one sync job queued per company, and `workers` Celery
worker processes (`ledgerlink worker`, one task slot each) pacing every company through Redis in the sandbox's
scaled time (`LEDGERLINK_QBO_TIME_SCALE`).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from ledgerlink.bootstrap import bootstrap
from ledgerlink.config import Settings
from ledgerlink.sandbox.bench_common import RssSampler, jain_index, real_minutes, setup_company
from ledgerlink.sandbox.bench_host import HostSpec, SandboxHost
from ledgerlink.store.db import Database
from ledgerlink.store.models import Connection, OrderState, Posting, PostingState, StoredOrder, SyncJob

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
REDIS_DB = 11
REDIS_BROKER = f"redis://127.0.0.1:6379/{REDIS_DB}"
TIMEOUT = 900.0


def bench_fleet(companies: int, orders: int, workers: int, time_scale: float, *, seed: int = 11) -> dict[str, Any]:
    """Queue one sync per company and let `workers` Celery workers post them all; figures in real-limit terms."""
    import redis
    from celery import Celery

    from ledgerlink.sync import jobs
    from ledgerlink.sync.celery_app import TASK_SYNC

    name = f"ledgerlink_bench_{os.getpid()}"
    admin = Database(PG_ADMIN)
    broker = redis.Redis.from_url(REDIS_BROKER)
    broker.flushdb()
    with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    procs: list[subprocess.Popen[bytes]] = []
    spec = HostSpec(companies=companies, orders=orders, seed=seed, time_scale=time_scale, shop_time_scale=time_scale)
    try:
        with SandboxHost(spec) as host, tempfile.TemporaryDirectory() as tmp:
            settings = Settings(data_dir=Path(tmp), database_url=url, broker_url=REDIS_BROKER)
            app = bootstrap(settings)
            channels = [setup_company(app, host.endpoints[i], f"Fleet {i:03d}") for i in range(companies)]
            env = {
                **os.environ,
                "LEDGERLINK_DATABASE_URL": url,
                "LEDGERLINK_BROKER_URL": REDIS_BROKER,
                "LEDGERLINK_DATA_DIR": tmp,
                "LEDGERLINK_SECRET_KEY": settings.secret_key.get_secret_value(),
                "LEDGERLINK_QBO_TIME_SCALE": str(time_scale),
                "LEDGERLINK_QUEUE": f"bench-{os.getpid()}",
            }
            for _ in range(workers):
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "ledgerlink", "worker", "--concurrency", "1", "--loglevel", "WARNING"],
                        env=env,
                        stdout=subprocess.DEVNULL,
                    )
                )
            # What `sync now` does with a broker: a SyncJob row per company, then "run job N" to the queue.
            sender = Celery("ledgerlink-bench", broker=REDIS_BROKER, set_as_current=False)
            ready_by = time.monotonic() + 120
            while len(sender.control.ping(timeout=1.0) or []) < workers and time.monotonic() < ready_by:
                time.sleep(0.5)  # the workers' start-up is not part of the figures
            before = host.stats()
            queued_at = datetime.now(UTC)
            started = time.perf_counter()
            with RssSampler(every=0.5, pids=[p.pid for p in procs]) as rss:
                with app.db.session() as session:
                    queued = []
                    for channel_id in channels:
                        channel = session.get(Connection, channel_id)
                        if channel is not None:
                            job = jobs.enqueue(session, channel, trigger="bench")
                            session.flush()
                            queued.append((job.id, channel.id, dict(job.options)))
                for job_id, connection_id, options in queued:
                    sender.send_task(
                        TASK_SYNC,
                        kwargs={"connection_id": connection_id, "options": options, "job_id": job_id},
                        queue=env["LEDGERLINK_QUEUE"],
                    )
                done = _wait(app.db, companies, started)
                wall = time.perf_counter() - started
            sender.close()
            after = host.stats()
            figures = _figures(app.db, companies, orders, workers, time_scale, wall, queued_at, before, after, rss)
            figures["completed"] = done
            app.db.dispose()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as sql:
            sql.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        broker.flushdb()
        broker.close()
    return figures


def _wait(db: Database, companies: int, started: float) -> bool:
    """Until every job finished and nothing waits to be posted (or the timeout)."""
    while time.perf_counter() - started < TIMEOUT:
        time.sleep(0.5)
        with db.session() as session:
            open_jobs = session.scalar(
                select(func.count()).select_from(SyncJob).where(SyncJob.state.in_(("queued", "running")))
            )
            finished = session.scalar(
                select(func.count()).select_from(SyncJob).where(SyncJob.state.in_(("done", "failed")))
            )
            unposted = session.scalar(
                select(func.count())
                .select_from(Posting)
                .where(Posting.state.in_((PostingState.PENDING, PostingState.SENDING)))
            )
        if not open_jobs and (finished or 0) >= companies and not unposted:
            return True
    return False


def _figures(
    db: Database,
    companies: int,
    orders: int,
    workers: int,
    time_scale: float,
    wall: float,
    queued_at: datetime,
    before: dict[str, int],
    after: dict[str, int],
    rss: RssSampler,
) -> dict[str, Any]:
    with db.session() as session:
        last = dict(
            session.execute(
                select(Posting.company_id, func.max(Posting.posted_at))
                .where(Posting.state == PostingState.POSTED)
                .group_by(Posting.company_id)
            ).all()
        )
        posted = dict(
            session.execute(
                select(StoredOrder.company_id, func.count())
                .where(StoredOrder.state == OrderState.POSTED)
                .group_by(StoredOrder.company_id)
            ).all()
        )
        failed_jobs = session.scalar(select(func.count()).select_from(SyncJob).where(SyncJob.state == "failed"))
    finish = {
        c: (moment.replace(tzinfo=moment.tzinfo or UTC) - queued_at).total_seconds()
        for c, moment in last.items()
        if moment is not None
    }
    real_finish = sorted(seconds * time_scale / 60.0 for seconds in finish.values())
    rates = [posted.get(c, 0) / (finish[c] * time_scale / 60.0) for c in finish if finish[c] > 0]
    total_posted = sum(posted.values())
    minutes = real_minutes(wall, time_scale)
    stats = {k: after.get(k, 0) - before.get(k, 0) for k in after if not k.startswith("max")}
    return {
        "runner": f"celery: {workers} `ledgerlink worker` processes (one task slot each), Redis broker and pacing",
        "companies": companies,
        "orders_per_company": orders,
        "orders_posted": total_posted,
        "companies_finished": len(finish),
        "failed_jobs": int(failed_jobs or 0),
        "time_scale": time_scale,
        "wall_seconds": round(wall, 2),
        "real_minutes": round(minutes, 2),
        "orders_per_minute": round(total_posted / minutes, 1) if minutes else 0.0,
        "completion_minutes": {
            "min": round(real_finish[0], 2) if real_finish else None,
            "median": round(statistics.median(real_finish), 2) if real_finish else None,
            "max": round(real_finish[-1], 2) if real_finish else None,
        },
        "jain_index_throughput": round(jain_index(rates), 3),
        "jain_index_completion": round(jain_index([1 / m for m in real_finish if m > 0]), 3),
        "requests": stats.get("requests", 0),
        "batches": stats.get("batches", 0),
        "throttled_429": stats.get("throttled", 0),
        "workers_rss_mb": rss.summary(),
    }
