"""`make bench`: figures, never assertions.

Against the sandboxes with QuickBooks Online's documented limits enforced in scaled time (and Shopify's, on
the same clock), reported in real-limit terms (wall time × scale). The sandboxes run in a child process
(`bench_host`), so the engine's CPU and memory are its own. Parts:

  * plan(): orders planned per second on one core;
  * backfill of 10,000 orders into one company, with the ceiling the limits allow and a profile
    (`bench_backfill`);
  * the naive python-quickbooks client on a smaller sample (`bench_naive`) and the speed-up;
  * many companies through Celery workers on PostgreSQL and Redis (`bench_fleet`);
  * steady state: orders arriving at a fixed rate, lag to posting (`bench_steady`);
  * CPU: the engine's pull and plan stages over many stored orders, memory sampled (`bench_cpu`);
  * QuickBooks Desktop: a backlog through the Web Connector, orders per session and our server time per
    round trip (`bench_desktop`).

Caveat of time scaling: the limits run S times faster, the CPU does not, so each CPU second on the critical
path counts as S seconds in the real-limit figures (they are conservative; see docs/performance.md).
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ledgerlink.sandbox.bench_backfill import bench_backfill
from ledgerlink.sandbox.bench_cpu import bench_pass, bench_plan
from ledgerlink.sandbox.bench_desktop import bench_desktop
from ledgerlink.sandbox.bench_fleet import bench_fleet
from ledgerlink.sandbox.bench_naive import bench_naive
from ledgerlink.sandbox.bench_steady import bench_steady

LATENCY_MS = 200.0  # real QBO answers in hundreds of milliseconds; see bench_host.HostSpec.latency_ms


@dataclass(frozen=True, slots=True)
class Sizes:
    """How big each part runs, and at which time scale."""

    plan_orders: int = 5000
    backfill_orders: int = 10_000
    backfill_scale: float = 5.0
    naive_orders: int = 300
    naive_scale: float = 10.0
    fleet_companies: int = 100
    fleet_orders: int = 200
    fleet_workers: int = 4
    fleet_scale: float = 10.0
    steady_per_minute: float = 60.0
    steady_minutes: float = 3.0
    steady_scale: float = 10.0
    pass_orders: int = 100_000
    desktop_orders: int = 5000


FULL = Sizes()
QUICK = Sizes(
    plan_orders=200,
    backfill_orders=150,
    backfill_scale=30.0,
    naive_orders=20,
    naive_scale=30.0,
    fleet_companies=2,
    fleet_orders=5,
    fleet_workers=2,
    fleet_scale=30.0,
    steady_per_minute=60.0,
    steady_minutes=0.25,
    steady_scale=30.0,
    pass_orders=300,
    desktop_orders=60,
)


def machine() -> dict[str, Any]:
    """Where the figures came from: cores, memory, Python, and the load when the run started."""
    try:
        with open("/proc/loadavg") as load:
            loadavg = " ".join(load.read().split()[:3])
    except OSError:
        loadavg = ""
    try:
        with open("/proc/meminfo") as meminfo:
            total_kb = int(meminfo.readline().split()[1])
    except (OSError, IndexError, ValueError):
        total_kb = 0
    return {
        "nproc": os.cpu_count(),
        "memory_gb": round(total_kb / 1_048_576, 1),
        "python": platform.python_version(),
        "loadavg_at_start": loadavg,
    }


def run_bench(console: Console, out: Path = Path("build/bench.json"), *, quick: bool = False) -> None:
    """Run the benchmarks, print a table and write build/bench.json (`quick`: toy sizes, for the smoke test)."""
    sizes = QUICK if quick else FULL
    results: dict[str, Any] = {"quick": quick, "machine": machine()}
    started = time.perf_counter()

    def step(label: str, action: Callable[[], Any]) -> Any:
        console.print(f"{label} …")
        mark = time.perf_counter()
        found = action()
        console.print(f"  done in {time.perf_counter() - mark:.1f} s")
        return found

    results["plan"] = step(f"plan(): {sizes.plan_orders} orders on one core", lambda: bench_plan(sizes.plan_orders))
    results["backfill"] = step(
        f"backfill: {sizes.backfill_orders} orders into one company, limits ×{sizes.backfill_scale:g}",
        lambda: bench_backfill(sizes.backfill_orders, sizes.backfill_scale, latency_ms=LATENCY_MS),
    )
    results["naive"] = step(
        f"naive python-quickbooks client: {sizes.naive_orders} orders, limits ×{sizes.naive_scale:g}",
        lambda: bench_naive(sizes.naive_orders, sizes.naive_scale, latency_ms=LATENCY_MS),
    )
    naive_rate = results["naive"]["orders_per_minute"]
    results["speedup_vs_naive"] = (
        round(results["backfill"]["orders_per_minute"] / naive_rate, 1) if naive_rate else None
    )
    results["fleet"] = step(
        f"fleet: {sizes.fleet_companies} companies × {sizes.fleet_orders} orders, {sizes.fleet_workers} Celery workers",
        lambda: bench_fleet(sizes.fleet_companies, sizes.fleet_orders, sizes.fleet_workers, sizes.fleet_scale),
    )
    results["lag_ms"] = step(
        f"steady state: {sizes.steady_per_minute:g} orders a minute for {sizes.steady_minutes:g} minutes",
        lambda: bench_steady(sizes.steady_per_minute, sizes.steady_minutes, sizes.steady_scale, latency_ms=LATENCY_MS),
    )
    results["cpu_pass"] = step(
        f"CPU: pull + plan stages over {sizes.pass_orders} orders in SQLite", lambda: bench_pass(sizes.pass_orders)
    )
    results["desktop"] = step(
        f"QuickBooks Desktop: {sizes.desktop_orders} orders through the Web Connector",
        lambda: bench_desktop(sizes.desktop_orders),
    )
    results["machine"]["loadavg_at_end"] = machine()["loadavg_at_start"]
    results["bench_seconds"] = round(time.perf_counter() - started, 1)
    console.print(summary_table(results))
    for part in ("backfill", "desktop"):
        error = results.get(part, {}).get("error")
        if error:
            console.print(f"[red]{part} stopped: {error}[/red]")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"written to {out}")


def summary_table(results: dict[str, Any]) -> Table:
    """The short table `make bench` prints."""
    table = Table(title="ledgerlink benchmark (figures in real-limit terms)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    backfill = results["backfill"]
    rows: list[tuple[str, Any]] = [
        ("plan(): orders per second, one core", results["plan"]["orders_per_second"]),
        ("backfill: orders (posted)", f"{backfill['orders']} ({backfill['orders_posted']})"),
        ("backfill: real minutes", backfill["real_minutes"]),
        ("backfill: orders per minute", backfill["orders_per_minute"]),
        ("backfill: ceiling, orders per minute", backfill["ceiling_orders_per_minute"]),
        ("backfill: ratio to ceiling", backfill["ratio_to_ceiling"]),
        (
            "backfill: HTTP requests / QBO operations per order",
            f"{backfill['requests_per_order']} / {backfill['operations_per_order']}",
        ),
        ("backfill: 429s", backfill["throttled_429"]),
        ("backfill: RSS start / peak / end MB", _rss(backfill["memory"])),
    ]
    naive, fleet, lag, cpu = results["naive"], results["fleet"], results["lag_ms"], results["cpu_pass"]
    rows += [
        ("naive client: orders per minute", naive["orders_per_minute"]),
        ("speed-up vs naive", results["speedup_vs_naive"]),
        (f"fleet: {fleet['companies']} companies, orders per minute", fleet["orders_per_minute"]),
        (
            "fleet: completion min / median / max (min)",
            "{min} / {median} / {max}".format(**fleet["completion_minutes"]),
        ),
        ("fleet: Jain's index (throughput)", fleet["jain_index_throughput"]),
        ("lag p50 / p95 / p99 (ms)", f"{lag['p50']} / {lag['p95']} / {lag['p99']}"),
        (
            f"CPU: pull, plan orders per second ({cpu['orders']} orders)",
            f"{cpu['pull_orders_per_second']}, {cpu['plan_orders_per_second']}",
        ),
        ("CPU: RSS start / peak / end MB", _rss(cpu["memory"])),
    ]
    desktop = results.get("desktop")
    if desktop:
        rows += [
            (
                f"Desktop: {desktop['orders']} orders, posted in {desktop['sessions']} Web Connector sessions",
                f"{desktop['orders_posted']} ({desktop['documents_posted']} documents)",
            ),
            ("Desktop: orders per Web Connector session", desktop["orders_per_session"]),
            (
                "Desktop: message sets, requests per set (mean)",
                f"{desktop['message_sets']}, {desktop['requests_per_set_mean']}",
            ),
            (
                "Desktop: server ms per round trip p50 / p95 / max",
                f"{desktop['server_ms_per_round_trip_p50']} / {desktop['server_ms_per_round_trip_p95']} / "
                f"{desktop['server_ms_per_round_trip_max']}",
            ),
        ]
    for name, value in rows:
        table.add_row(name, str(value))
    return table


def _rss(memory: dict[str, Any]) -> str:
    return f"{memory['start_mb']} / {memory['peak_mb']} / {memory['end_mb']}"
