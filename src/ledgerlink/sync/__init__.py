"""The engine: pull orders, plan documents, push postings; the ledger, cursors, locks and tokens."""
