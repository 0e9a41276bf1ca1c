"""The Desktop part of `make bench` on a small backlog: every figure is written, and the run it measures posted
every document exactly once (the figures themselves are never asserted: no timings here)."""

from __future__ import annotations

from ledgerlink.sandbox.bench_desktop import bench_desktop

FIGURES = (
    "orders_posted",
    "documents_posted",
    "sessions",
    "orders_per_session",
    "message_sets",
    "requests_per_set_mean",
    "requests_per_set_max",
    "server_ms_per_round_trip_mean",
    "server_ms_per_round_trip_p50",
    "server_ms_per_round_trip_p95",
    "server_ms_per_round_trip_max",
    "quickbooks_ms_per_round_trip_mean",
    "longest_round_trip_seconds",
    "longest_session_seconds",
    "sync_seconds",
    "peak_rss_mb",
)


def test_desktop_backlog_figures_from_a_run_that_posted_everything_once() -> None:
    figures = bench_desktop(30)
    assert figures["error"] == ""
    for name in FIGURES:
        value = figures[name]
        assert isinstance(value, int | float), f"{name} is {value!r}"
        assert not isinstance(value, bool), f"{name} is {value!r}"
    assert figures["orders"] == 30
    assert 0 < figures["orders_posted"] <= 30
    # Sales Orders + Invoices + Payments: at least three documents an order, each in the company file once.
    assert figures["documents_posted"] >= 3 * figures["orders_posted"]
    assert figures["documents_posted"] == figures["transactions_in_company_file"]
    assert figures["documents_failed"] == 0
    assert figures["documents_waiting"] == 0
    assert figures["sessions"] >= 1
    assert figures["orders_per_session"] == round(figures["orders_posted"] / figures["sessions"], 1)
    # A sales order, its invoice and its payment go out in three successive message sets (never LIFO).
    assert figures["message_sets"] >= 3
    assert figures["requests"] >= figures["documents_posted"]
