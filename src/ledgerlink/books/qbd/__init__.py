"""QuickBooks Desktop: qbXML (`qbxml`) and the `Books` port over what the Web Connector reported (`adapter`)."""

from ledgerlink.books.qbd.adapter import (
    DesktopLedger,
    ListRecord,
    QbdBooks,
    QbdConfig,
    QueuedRecord,
    RecordedTxn,
)

__all__ = ["DesktopLedger", "ListRecord", "QbdBooks", "QbdConfig", "QueuedRecord", "RecordedTxn"]
