"""The terminal summary of a sync run: on QuickBooks Desktop the customers, items and documents a run makes are
queued for the Web Connector, not created, and the summary says so."""

from __future__ import annotations

from collections import Counter

import pytest
from rich.console import Console

from ledgerlink.reporting import print_report
from ledgerlink.sync.engine import RunReport

pytestmark = pytest.mark.unit

QUEUED = "queued for QuickBooks Desktop (sent at the next Web Connector session)"


def printed(*, desktop: bool) -> str:
    console = Console(record=True, width=200)
    report = RunReport(counts=Counter(pulled=9, customers_created=2, items_created=3, postings_planned=7))
    print_report(console, "shopify", report, desktop=desktop)
    return console.export_text()


def rows(text: str) -> dict[str, str]:
    """The summary table's rows: label → count."""
    found = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("│┃ ").split("│")]
        if len(cells) == 2 and cells[1].isdigit():
            found[cells[0]] = cells[1]
    return found


def test_desktop_summary_says_queued_for_the_web_connector() -> None:
    shown = rows(printed(desktop=True))
    assert shown[f"customers {QUEUED}"] == "2"
    assert shown[f"items {QUEUED}"] == "3"
    assert shown[f"documents {QUEUED}"] == "7"
    assert not any("created in QuickBooks" in label for label in shown)


def test_online_summary_still_says_created() -> None:
    shown = rows(printed(desktop=False))
    assert shown["customers created in QuickBooks"] == "2"
    assert shown["items created in QuickBooks"] == "3"
    assert not any("Web Connector" in label for label in shown)
