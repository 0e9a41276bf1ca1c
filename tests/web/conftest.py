"""The web tests' fixtures live in webtools.py (a module name of its own, so test files can import it)."""

from __future__ import annotations

from webtools import web

__all__ = ["web"]
