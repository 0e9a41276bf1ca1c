"""`demo --scenario desktop` in process: it exits non-zero when the company file does not hold what the ledger
says was posted (a demo that always says "the totals match" would prove nothing)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from ledgerlink.sandbox import demo_desktop
from ledgerlink.sandbox.qbd import QbdCompany

pytestmark = pytest.mark.integration


class ForgetfulCompany(QbdCompany):
    """A company file that loses the first invoice it recorded, after answering that it was added."""

    def process(self, text: str, *, crash_after: int | None = None) -> str:
        answer = super().process(text, crash_after=crash_after)
        if not self.stats["forgot"]:
            invoice = next((t for t in self.transactions("Invoice")), None)
            if invoice is not None:
                del self.txns[invoice.txn_id]
                self.stats["forgot"] += 1
        return answer


def test_desktop_demo_fails_when_the_company_file_lost_a_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo_desktop, "QbdCompany", ForgetfulCompany)
    console = Console(record=True, width=160)
    code = demo_desktop.run_desktop_demo(console, orders=20, seed=7, data_dir=tmp_path / "desktop")
    out = " ".join(console.export_text().split())
    assert code == 1, out
    assert "in the company file" in out
    assert "totals differ" in out
    assert "something went wrong" in out
