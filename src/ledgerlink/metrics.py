"""Prometheus metrics: what the engine did (counters, per company), and what is waiting (read at scrape time).

Counters live in the process that does the work (a worker, or `serve` with the embedded runner). A worker
exposes its own with `ledgerlink worker --metrics-port`; with prefork workers set `PROMETHEUS_MULTIPROC_DIR`
so the children's counters are summed. The queue gauges are read from the database when scraped, so any
process with the database (the web app's `/metrics`) shows them for the whole deployment.

Labels: `company` is the ledgerlink company id, `realm` the QuickBooks company id (its limits are per realm).
"""

from __future__ import annotations

import os
from collections import Counter as Tally
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from fastapi import APIRouter

    from ledgerlink.store.db import Database

ORDERS_PULLED = Counter("ledgerlink_orders_pulled", "Orders read from a selling channel", ["company"])
DOCUMENTS_POSTED = Counter(
    "ledgerlink_documents_posted", "Documents posted to (or found already in) QuickBooks", ["company", "kind"]
)
FAILURES = Counter("ledgerlink_failures", "Orders or postings that failed, and runs that stopped", ["company", "stage"])
API_CALLS = Counter("ledgerlink_qbo_requests", "HTTP requests sent to QuickBooks Online", ["realm"])
THROTTLED = Counter("ledgerlink_qbo_throttled", "429 answers from QuickBooks Online", ["realm"])
RUNS = Counter("ledgerlink_sync_runs", "Sync passes finished", ["state"])
LAG = Histogram(
    "ledgerlink_order_to_posting_seconds",
    "From the order's last change in the channel to its document being posted",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600),
)

# The run counts that are failures, and the stage each one is reported under.
_FAILURE_COUNTS = {"orders_failed": "plan", "postings_failed": "push"}


def observe_run(company_id: int, counts: Mapping[str, int], error: str) -> None:
    """Count one finished sync pass: orders pulled, failures, and how it ended."""
    company = str(company_id)
    pulled = counts.get("pulled", 0)
    if pulled:
        ORDERS_PULLED.labels(company).inc(pulled)
    for key, stage in _FAILURE_COUNTS.items():
        if counts.get(key, 0):
            FAILURES.labels(company, stage).inc(counts[key])
    if error:
        FAILURES.labels(company, "run").inc()
    failed = any(counts.get(key, 0) for key in _FAILURE_COUNTS)
    RUNS.labels("failed" if error else ("partial" if failed else "succeeded")).inc()


def observe_posted(company_id: int, kind: str, changed_at: datetime | None, posted_at: datetime) -> None:
    """Count one posted document and the lag from its order's last change in the channel."""
    DOCUMENTS_POSTED.labels(str(company_id), kind).inc()
    if changed_at is not None:
        when = changed_at if changed_at.tzinfo is not None else changed_at.replace(tzinfo=UTC)
        LAG.observe(max(0.0, (posted_at - when).total_seconds()))


def observe_api(realm_id: str, stats: Mapping[str, int], before: Mapping[str, int] | None = None) -> None:
    """Count a QBO client's requests and 429s since `before` (its stats at the start)."""
    before = before or {}
    requests = stats.get("requests", 0) - before.get("requests", 0)
    throttled = stats.get("throttled", 0) - before.get("throttled", 0)
    if requests > 0:
        API_CALLS.labels(realm_id).inc(requests)
    if throttled > 0:
        THROTTLED.labels(realm_id).inc(throttled)


class QueueCollector(Collector):
    """Gauges read from the database at scrape time: queued/running sync jobs and postings waiting to post."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterable[Metric]:
        """Query the queue depths (a handful of GROUP BY queries)."""
        from sqlalchemy import func, select

        from ledgerlink.store.models import Posting, PostingState, SyncJob

        jobs = GaugeMetricFamily("ledgerlink_sync_jobs", "Sync jobs by state (queued, running)", labels=["state"])
        postings = GaugeMetricFamily(
            "ledgerlink_postings_waiting", "Postings not posted yet, by company and state", labels=["company", "state"]
        )
        oldest = GaugeMetricFamily(
            "ledgerlink_oldest_pending_posting_seconds", "Age of the oldest pending posting", labels=["company"]
        )
        waiting = (PostingState.PENDING, PostingState.SENDING, PostingState.FAILED)
        now = datetime.now(UTC)
        with self.db.session() as session:
            job_counts: Tally[str] = Tally({"queued": 0, "running": 0})
            for state, count in session.execute(
                select(SyncJob.state, func.count())
                .where(SyncJob.state.in_(["queued", "running"]))
                .group_by(SyncJob.state)
            ):
                job_counts[str(state)] = int(count)
            for state, count in job_counts.items():
                jobs.add_metric([state], count)
            for company, state, count in session.execute(
                select(Posting.company_id, Posting.state, func.count())
                .where(Posting.state.in_(waiting))
                .group_by(Posting.company_id, Posting.state)
            ):
                postings.add_metric([str(company), str(state)], int(count))
            for company, first in session.execute(
                select(Posting.company_id, func.min(Posting.created_at))
                .where(Posting.state == PostingState.PENDING)
                .group_by(Posting.company_id)
            ):
                if first is not None:
                    first = first if first.tzinfo is not None else first.replace(tzinfo=UTC)
                    oldest.add_metric([str(company)], max(0.0, (now - first).total_seconds()))
        yield from (jobs, postings, oldest)

    def describe(self) -> Iterator[Metric]:
        """Nothing up front: describing would query the database at registration."""
        return iter(())


def metrics_response(db: Database | None = None) -> tuple[bytes, str]:
    """The metrics in Prometheus' text format and its content type; with `db`, the queue gauges too."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    if db is not None:
        queues = CollectorRegistry(auto_describe=False)
        queues.register(QueueCollector(db))
        body += generate_latest(queues)
    return body, CONTENT_TYPE_LATEST


def metrics_router(db: Database | None = None) -> APIRouter:
    """A FastAPI router serving `GET /metrics` (mount it with `app.include_router(metrics_router(app.db))`)."""
    from fastapi import APIRouter
    from fastapi.responses import Response

    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        body, content_type = metrics_response(db)
        return Response(content=body, media_type=content_type)

    return router


def metrics_asgi(db: Database | None = None) -> Any:
    """A bare ASGI app answering the metrics on any path (to mount without FastAPI)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body, content_type = metrics_response(db)
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type.encode())]}
        )
        await send({"type": "http.response.body", "body": body})

    return app
