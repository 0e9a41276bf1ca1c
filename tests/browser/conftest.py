"""The browser tests' fixtures live in livetools.py (a module name of its own, so test files can import it)."""

from __future__ import annotations

from livetools import browser, live, page

__all__ = ["browser", "live", "page"]
