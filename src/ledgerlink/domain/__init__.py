"""The pure centre of ledgerlink: orders, settings, the plan and the documents. No I/O, no clock."""
