"""How a run is shown on the terminal: counts, documents by type, and failures with their reasons."""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.table import Table

from ledgerlink.sync.engine import RunReport
from ledgerlink.sync.qbwc import QUEUED_FOR_DESKTOP

LABELS = {
    "pulled": "orders pulled from the channel",
    "orders_new": "new orders",
    "orders_changed": "changed orders (new revision)",
    "orders_unchanged": "unchanged orders",
    "orders_planned": "orders planned",
    "orders_skipped": "orders left out by the order filter",
    "orders_failed": "orders failed",
    "customers_created": "customers created in QuickBooks",
    "items_created": "items created in QuickBooks",
    "posted": "documents posted",
    "bound_existing": "documents found already posted (bound, not re-sent)",
    "recovered_bound": "lost answers recovered by look-up",
    "unknown_outcome": "answers lost in transit",
    "retried": "postings retried later",
    "postings_failed": "documents refused by QuickBooks",
    "orders_retried": "failed orders put back in line (--retry-failed)",
    "refunds_not_posted": "orders with refunds not posted yet (see the event log)",
}
# QuickBooks Desktop is never called during a sync: what the run made waits for the Web Connector.
DESKTOP_QUEUED = QUEUED_FOR_DESKTOP
DESKTOP_LABELS = {
    "customers_created": f"customers {DESKTOP_QUEUED}",
    "items_created": f"items {DESKTOP_QUEUED}",
    "postings_planned": f"documents {DESKTOP_QUEUED}",
}


def labels(*, desktop: bool = False) -> dict[str, str]:
    """The count labels, in the order shown; on QuickBooks Desktop what is made is queued, not created."""
    if not desktop:
        return LABELS
    shown = {key: DESKTOP_LABELS.get(key, label) for key, label in LABELS.items()}
    shown["postings_planned"] = DESKTOP_LABELS["postings_planned"]
    return shown


def print_report(console: Console, name: str, report: RunReport, *, desktop: bool = False) -> None:
    """A summary table, the documents by type, and every failure with its order and field (`desktop`: the
    channel posts to QuickBooks Desktop, where the run only queues for the Web Connector)."""
    table = Table(title=f"Sync of {name!r}" + (f" (run {report.run_id})" if report.run_id else " (dry run)"))
    table.add_column("what")
    table.add_column("count", justify="right")
    for key, label in labels(desktop=desktop).items():
        if report.counts.get(key):
            table.add_row(label, str(report.counts[key]))
    for key, value in sorted(report.counts.items()):
        if key.startswith("posted_"):
            table.add_row(f"  {key.removeprefix('posted_')} posted", str(value))
    console.print(table)
    if report.skipped:
        reasons = Counter(reason for _number, reason in report.skipped)
        console.print("[bold]Left out by the order filter[/bold]")
        for reason, count in reasons.most_common():
            console.print(f"  {count} × {reason}", markup=False)
    if report.failures:
        failures = Table(title="Failed orders: what to fix")
        failures.add_column("order")
        failures.add_column("field")
        failures.add_column("reason")
        for number, field, message in report.failures:
            failures.add_row(number, field, message)
        console.print(failures)
    if report.previews:
        console.print(f"[bold]Dry run[/bold]: {len(report.previews)} orders would be posted:")
        for plan in report.previews[:50]:
            docs = ", ".join(f"{d.kind.value} {d.doc_number} {d.total}" for d in plan.documents)
            console.print(f"  order {plan.order.number}: {docs}", markup=False)
    if report.error:
        console.print(f"[bold red]The run stopped:[/bold red] {report.error}")
