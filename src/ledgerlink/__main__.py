"""`python -m ledgerlink …` runs the command line."""

from __future__ import annotations

from ledgerlink.cli import main

main()
