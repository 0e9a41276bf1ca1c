"""`ledgerlink bench --quick`: every part of the benchmark runs with toy sizes and writes its figures.

Figures are printed, never asserted: this only checks the code paths run and the JSON has the keys, as numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from ledgerlink.sandbox.bench import run_bench

REQUIRED = (
    "backfill.orders_per_minute",
    "backfill.ceiling_orders_per_minute",
    "backfill.ratio_to_ceiling",
    "backfill.requests_per_order",
    "backfill.operations_per_order",
    "backfill.throttled_429",
    "backfill.peak_rss_mb",
    "backfill.real_minutes",
    "naive.orders_per_minute",
    "speedup_vs_naive",
    "fleet.orders_per_minute",
    "fleet.jain_index_throughput",
    "fleet.completion_minutes.median",
    "lag_ms.p50",
    "lag_ms.p95",
    "lag_ms.p99",
    "plan.orders_per_second",
    "cpu_pass.plan_orders_per_second",
    "cpu_pass.memory.peak_mb",
    "desktop.orders_posted",
    "desktop.sessions",
    "desktop.orders_per_session",
    "desktop.message_sets",
    "desktop.server_ms_per_round_trip_p50",
    "desktop.server_ms_per_round_trip_p95",
    "desktop.server_ms_per_round_trip_max",
    "desktop.longest_round_trip_seconds",
)


def test_quick_bench_writes_every_figure(pg_server: str, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    console = Console(record=True, width=140)
    run_bench(console, out, quick=True)
    results = json.loads(out.read_text())
    for dotted in REQUIRED:
        value: object = results
        for part in dotted.split("."):
            assert isinstance(value, dict), dotted
            assert part in value, f"{dotted} missing from bench.json"
            value = value[part]
        assert isinstance(value, int | float), f"{dotted} is {value!r}"
        assert not isinstance(value, bool), f"{dotted} is {value!r}"
    assert results["backfill"]["error"] == ""
    assert results["fleet"]["completed"] is True
    assert results["desktop"]["error"] == ""
    assert "ratio to ceiling" in console.export_text()
