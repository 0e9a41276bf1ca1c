"""The command line as a user runs it: real processes, real exit codes, stdout and stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ledgerlink.sandbox.shopify import generate_orders

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO.parent / "shared" / "reference" / "fixtures"


def ledgerlink(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own command line, fixed arguments
        [sys.executable, "-m", "ledgerlink", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        check=False,
    )


def paid_order(tmp_path: Path, **changes: Any) -> Path:
    order = next(o for o in generate_orders(40, seed=5) if o["financial_status"] == "paid" and o["discount_codes"])
    order.update(changes)
    path = tmp_path / "order.json"
    path.write_text(json.dumps({"order": order}))
    return path


@pytest.mark.parametrize(
    ("transaction_type", "kinds"),
    [
        ("sales_receipt", ["SalesReceipt"]),
        ("invoice", ["Invoice", "Payment"]),
        ("sales_order", ["Estimate"]),
        ("sales_order_invoice_payment", ["Estimate", "Invoice", "Payment"]),
    ],
)
def test_preview_prints_the_documents_as_quickbooks_json(
    tmp_path: Path, transaction_type: str, kinds: list[str]
) -> None:
    result = ledgerlink(
        "preview", "--channel", "shopify", "--order", str(paid_order(tmp_path)), "--transaction-type", transaction_type
    )
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout, parse_float=Decimal)
    assert [d["kind"] for d in body["documents"]] == kinds
    assert all(d["books"] == "qbo" for d in body["documents"])
    sale = body["documents"][-2 if kinds[-1] == "Payment" else -1]["payload"]
    lines = sale["Line"]
    items = sum(line["Amount"] for line in lines if line["DetailType"] == "SalesItemLineDetail")
    discounts = sum(line["Amount"] for line in lines if line["DetailType"] == "DiscountLineDetail")
    tax = sale.get("TxnTaxDetail", {}).get("TotalTax", 0)
    assert items - discounts + tax == Decimal(body["order"]["total"])
    assert sale["DocNumber"] == body["order"]["number"]
    assert body["needs"]["customers"]
    if "Payment" in kinds:
        payment = body["documents"][-1]["payload"]
        assert payment["TotalAmt"] == Decimal(body["order"]["total"])


def test_preview_with_settings_file(tmp_path: Path) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"doc_number_prefix": "SH-", "customers": {"mode": "single"}}))
    result = ledgerlink("preview", "--order", str(paid_order(tmp_path)), "--settings", str(settings))
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    payload = body["documents"][0]["payload"]
    assert payload["DocNumber"].startswith("SH-")
    assert payload["CustomerRef"] == {"name": "Web Store"}


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_preview_of_an_order_that_does_not_add_up_names_order_and_field() -> None:
    # Shopify's own client-library fixture: three lines of 199.00 against a total of 409.94.
    line = one_line_error(ledgerlink("preview", "--order", str(FIXTURES / "shopify_order_rest.json")))
    assert "order 1001" in line
    assert "totals.total" in line


def test_preview_bad_field_names_order_and_field(tmp_path: Path) -> None:
    order = json.loads(paid_order(tmp_path).read_text())["order"]
    order["line_items"][0]["price"] = "twelve"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(order))
    line = one_line_error(ledgerlink("preview", "--order", str(path)))
    assert f"order {order['order_number']}" in line
    assert "line_items[0].price" in line


@pytest.mark.parametrize(
    ("content", "expected"),
    [("{not json", "is not JSON"), ("[1, 2]", "must hold a JSON object")],
)
def test_preview_bad_file(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "order.json"
    path.write_text(content)
    assert expected in one_line_error(ledgerlink("preview", "--order", str(path)))


def test_preview_missing_file_and_bad_option(tmp_path: Path) -> None:
    assert "cannot read order file" in one_line_error(ledgerlink("preview", "--order", str(tmp_path / "none.json")))
    line = one_line_error(ledgerlink("preview", "--order", str(paid_order(tmp_path)), "--transaction-type", "barter"))
    assert "--transaction-type" in line


def test_demo_syncs_and_second_pass_posts_nothing(tmp_path: Path) -> None:
    result = ledgerlink("demo", "--orders", "40", "--data-dir", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    out = " ".join(result.stdout.split())
    assert "nothing posted twice" in out
    assert "failed as expected on totals.total" in out
    assert "failed as expected on line_items" in out
    assert "DID NOT FAIL" not in out


def test_demo_lifecycle_scenario(tmp_path: Path) -> None:
    result = ledgerlink("demo", "--scenario", "lifecycle", "--data-dir", str(tmp_path / "lifecycle"))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    out = " ".join(result.stdout.split())
    assert "nothing posted twice" in out
    assert "every step matched" in out


def test_demo_from_quickbooks_scenario() -> None:
    result = ledgerlink("demo", "--scenario", "from-quickbooks")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "every step did what it should" in " ".join(result.stdout.split())


def test_demo_desktop_scenario(tmp_path: Path) -> None:
    result = ledgerlink("demo", "--scenario", "desktop", "--orders", "20", "--data-dir", str(tmp_path / "desktop"))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    out = " ".join(result.stdout.split())
    assert "message sets the Web Connector ran" in out
    assert "failed as expected on totals.total" in out
    assert "DID NOT FAIL" not in out
    assert "nothing posted twice" in out
    assert "every order posted once, the totals match" in out
    assert (tmp_path / "desktop" / "ledgerlink.db").exists()
