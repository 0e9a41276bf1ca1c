"""What the benchmark's parts share: a memory sampler, company setup against the sandbox host, scaled pacing."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from ledgerlink.bootstrap import App
from ledgerlink.domain.catalog import CatalogQuery
from ledgerlink.domain.defaults import suggest_accounts
from ledgerlink.domain.settings import ChannelSettings
from ledgerlink.sandbox.bench_host import Endpoints
from ledgerlink.sync.connections import add_connection, create_company
from ledgerlink.sync.engine import save_settings

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb(pid: int | None = None) -> float:
    """Resident memory of a process (this one by default) in MB, from /proc."""
    try:
        with open(f"/proc/{pid or 'self'}/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE / 1_048_576
    except (OSError, IndexError, ValueError):
        return 0.0


class RssSampler:
    """Samples resident memory every `every` seconds in a thread while the block runs.

    With `pids`, the figure is the sum over those processes (e.g. the Celery workers); else this process.
    """

    def __init__(self, every: float = 0.1, pids: list[int] | None = None) -> None:
        self.every = every
        self.pids = pids
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)
        self._started = 0.0

    def _now_mb(self) -> float:
        if self.pids:
            return sum(rss_mb(pid) for pid in self.pids)
        return rss_mb()

    def _run(self) -> None:
        while True:
            self.samples.append((time.perf_counter() - self._started, self._now_mb()))
            if self._stop.wait(self.every):
                return

    def __enter__(self) -> RssSampler:
        self._started = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.samples.append((time.perf_counter() - self._started, self._now_mb()))

    def summary(self, points: int = 8) -> dict[str, Any]:
        """Start, peak and end (MB), growth from start to end, and `points` evenly spaced samples (the curve)."""
        if not self.samples:
            return {"start_mb": 0.0, "peak_mb": 0.0, "end_mb": 0.0, "growth_mb": 0.0, "curve_mb": []}
        values = [mb for _t, mb in self.samples]
        step = max(1, len(values) // points)
        curve = [*(round(v, 1) for v in values[::step][:points]), round(values[-1], 1)]
        return {
            "start_mb": round(values[0], 1),
            "peak_mb": round(max(values), 1),
            "end_mb": round(values[-1], 1),
            "growth_mb": round(values[-1] - values[0], 1),
            "curve_mb": curve,
        }


def setup_company(app: App, endpoints: Endpoints, name: str, settings: ChannelSettings | None = None) -> int:
    """A company with QuickBooks Online and Shopify connections to the sandbox host; returns the channel id.

    As `sandbox.demo.setup_demo_company`, from credentials: the wizard's default settings, accounts suggested
    from the company's chart of accounts.
    """
    creds, shop = endpoints.qbo, endpoints.shop
    now = datetime.now(UTC)
    with app.db.session() as session:
        company = create_company(session, name)
        books = add_connection(
            session,
            app.box,
            company,
            name="quickbooks",
            kind="qbo",
            role="books",
            config={
                key: creds[key]
                for key in ("realm_id", "client_id", "api_base", "token_url", "authorize_url", "redirect_uri")
            },
            secrets={
                "client_secret": creds["client_secret"],
                "access_token": creds["access_token"],
                "refresh_token": creds["refresh_token"],
                "access_expires_at": (now + timedelta(minutes=55)).isoformat(),
                "refresh_expires_at": (now + timedelta(days=100)).isoformat(),
            },
        )
        channel = add_connection(
            session,
            app.box,
            company,
            name="shopify",
            kind="shopify",
            role="channel",
            config={"shop": shop["shop"], "base_url": shop["base_url"], "api_version": shop["api_version"]},
            secrets={"access_token": shop["access_token"]},
            books_id=books.id,
        )
    if settings is None:
        adapter = app.adapters.books(books)
        try:
            catalog = adapter.catalog(CatalogQuery())
        finally:
            adapter.close()
        settings = ChannelSettings(accounts=suggest_accounts(catalog))
    with app.db.session() as session:
        save_settings(session, channel.id, settings)
    return channel.id


def real_minutes(wall_seconds: float, time_scale: float) -> float:
    """Wall seconds of a run at `time_scale` as minutes under the real limits."""
    return wall_seconds * time_scale / 60.0


def percentile(values: list[float], share: float) -> float:
    """The `share` percentile (0..1) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))
    return ordered[rank]


def jain_index(values: list[float]) -> float:
    """Jain's fairness index: 1 when every share is equal, 1/n when one takes everything."""
    if not values or not any(values):
        return 0.0
    return sum(values) ** 2 / (len(values) * sum(v * v for v in values))
