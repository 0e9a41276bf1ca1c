"""ledgerlink: selling channels and QuickBooks in sync, every order posted exactly once."""

from __future__ import annotations

__version__ = "0.1.0"
