"""Steady state: orders arriving at a fixed rate, a sync triggered every (real) second, the lag to posting.

The webhook path comes later; until then a sync pass is triggered every second of real-limit time (a pass
that runs longer is followed by the next at once). The lag of an order is from the moment it was created in
the Shopify sandbox to `Posting.posted_at` in the ledger, both on this machine's clock, times the time scale.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from ledgerlink.bootstrap import bootstrap
from ledgerlink.config import Settings
from ledgerlink.sandbox.bench_backfill import Probe, instrument
from ledgerlink.sandbox.bench_common import percentile, setup_company
from ledgerlink.sandbox.bench_host import HostSpec, SandboxHost
from ledgerlink.store.models import Posting, PostingState, StoredOrder

DRAIN_REAL_SECONDS = 120.0


def bench_steady(
    per_minute: float, minutes: float, time_scale: float, *, sync_every: float = 1.0, latency_ms: float = 0.0
) -> dict[str, Any]:
    """`per_minute` paid orders a (real) minute for `minutes`; lag percentiles in real milliseconds."""
    count = max(1, round(per_minute * minutes))
    spec = HostSpec(companies=1, time_scale=time_scale, shop_time_scale=time_scale, latency_ms=latency_ms)
    probe = Probe()
    with SandboxHost(spec) as host, tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), database_url=f"sqlite:///{tmp}/steady.db")
        app = bootstrap(settings, throttle_wait=60.0 / time_scale, requests_per_minute=500, batches_per_minute=40)
        channel_id = setup_company(app, host.endpoints[0], "Steady Merchant")
        instrument(app, time_scale, probe)
        engine = app.engine()
        before = host.stats()
        host.call("arrive", per_minute / 60.0 * time_scale, count, 17)
        tick = sync_every / time_scale
        passes = 0
        pass_seconds: list[float] = []
        deadline = time.monotonic() + (minutes * 60.0 + DRAIN_REAL_SECONDS) / time_scale
        while time.monotonic() < deadline:
            started = time.monotonic()
            engine.run(channel_id, on_start=None)
            passes += 1
            pass_seconds.append(time.monotonic() - started)
            if not host.call("arriving") and _posted(app.db) >= count:
                break
            time.sleep(max(0.0, tick - (time.monotonic() - started)))
        arrivals = dict(host.call("arrivals"))
        after = host.stats()
        with app.db.session() as session:
            rows = session.execute(
                select(StoredOrder.channel_order_id, func.min(Posting.posted_at))
                .join(Posting, Posting.order_id == StoredOrder.id)
                .where(Posting.state == PostingState.POSTED)
                .group_by(StoredOrder.channel_order_id)
            ).all()
        app.db.dispose()
    lags = [
        (posted.timestamp() - arrivals[order_id]) * time_scale * 1000.0
        for order_id, posted in rows
        if order_id in arrivals and posted is not None
    ]
    stats = {k: after.get(k, 0) - before.get(k, 0) for k in after if not k.startswith("max")}
    return {
        "arrivals_per_minute": per_minute,
        "minutes": minutes,
        "orders_arrived": len(arrivals),
        "orders_posted": len(lags),
        "time_scale": time_scale,
        "sync_every_seconds": sync_every,
        "passes": passes,
        "pass_seconds_median": round(percentile(pass_seconds, 0.5) * time_scale, 2),
        "batches_per_pass": round(stats.get("batches", 0) / max(passes, 1), 2),
        "requests_per_pass": round(stats.get("requests", 0) / max(passes, 1), 2),
        "throttled_429": stats.get("throttled", 0),
        "p50": round(percentile(lags, 0.50)),
        "p95": round(percentile(lags, 0.95)),
        "p99": round(percentile(lags, 0.99)),
        "max": round(max(lags)) if lags else 0,
    }


def _posted(db: Any) -> int:
    with db.session() as session:
        return int(
            session.scalar(select(func.count()).select_from(Posting).where(Posting.state == PostingState.POSTED)) or 0
        )
