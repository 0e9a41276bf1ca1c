"""qbXML for changing what is already in QuickBooks Desktop: …Mod with TxnID and EditSequence, TxnVoid, TxnDel.

Checked against the stand-in's copy of the qbXML 13.0 content models and enumerations (`sandbox/qbd/schema.py`).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from lxml import etree

from ledgerlink.books.qbd import qbxml
from ledgerlink.domain.documents import DocLine, Document, DocumentKind, LineKind, Link, Ref
from ledgerlink.domain.errors import MappingError
from ledgerlink.sandbox.qbd.schema import SchemaError, check_request

pytestmark = pytest.mark.unit
D = Decimal
TXN = "2B-1736154000"


def payment() -> Document:
    return Document(
        role="payment",
        kind=DocumentKind.PAYMENT,
        order_number="1001",
        doc_number="1001",
        txn_date=date(2025, 1, 6),
        customer=Ref(key="c", name="Jane Doe", id="80000030-1736154000"),
        total=D("40.00"),
        memo="Shopify order #1001",
        marker="ll-0123456789abcdef-payment",
        deposit_account=Ref(key="d", id="80000002-1736154000"),
        links=(Link(role="invoice", kind=DocumentKind.INVOICE, amount=D("40.00")),),
    )


def sales_order() -> Document:
    return Document(
        role="sales_order",
        kind=DocumentKind.SALES_ORDER,
        order_number="1001",
        doc_number="1001",
        txn_date=date(2025, 1, 6),
        customer=Ref(key="c", name="Jane Doe", id="Jane Doe"),
        lines=(
            DocLine(
                kind=LineKind.ITEM,
                amount=D("40.00"),
                description="T-shirt",
                item=Ref(key="i", name="TEE", id="TEE"),
                quantity=D(2),
                unit_price=D("20.00"),
            ),
        ),
        total=D("40.00"),
        memo="Shopify order #1001",
        marker="ll-0123456789abcdef-sales_order",
    )


def texts(rq: etree._Element) -> list[tuple[str, str]]:
    return [(str(child.tag), child.text or "") for child in rq]


@pytest.mark.parametrize("txn_type", ["SalesReceipt", "Invoice", "CreditMemo"])
def test_sales_that_qbxml_can_void_are_voided_by_type_and_id(txn_type: str) -> None:
    rq = qbxml.removal(txn_type, TXN, "7")
    check_request(rq)
    assert rq.tag == "TxnVoidRq"
    assert rq.get("requestID") == "7"
    assert texts(rq) == [("TxnVoidType", txn_type), ("TxnID", TXN)]  # no EditSequence on a void


@pytest.mark.parametrize("txn_type", ["SalesOrder", "Estimate", "ReceivePayment"])
def test_sales_orders_estimates_and_payments_can_only_be_deleted(txn_type: str) -> None:
    rq = qbxml.removal(txn_type, TXN, "3")
    check_request(rq)
    assert rq.tag == "TxnDelRq"
    assert texts(rq) == [("TxnDelType", txn_type), ("TxnID", TXN)]
    with pytest.raises(MappingError, match="cannot void"):
        qbxml.txn_void(txn_type, TXN, "3")


def test_delete_is_used_for_every_type_when_the_connection_says_so() -> None:
    rq = qbxml.removal("Invoice", TXN, "1", delete=True)
    check_request(rq)
    assert texts(rq) == [("TxnDelType", "Invoice"), ("TxnID", TXN)]
    with pytest.raises(MappingError, match="cannot delete"):
        qbxml.txn_del("Check", TXN, "1")


def test_the_schema_refuses_void_types_qbxml_does_not_have_and_elements_out_of_order() -> None:
    not_voidable = etree.fromstring(f"<TxnVoidRq><TxnVoidType>SalesOrder</TxnVoidType><TxnID>{TXN}</TxnID></TxnVoidRq>")
    with pytest.raises(SchemaError, match="SalesOrder"):
        check_request(not_voidable)
    swapped = etree.fromstring(f"<TxnDelRq><TxnID>{TXN}</TxnID><TxnDelType>Invoice</TxnDelType></TxnDelRq>")
    with pytest.raises(SchemaError, match="out of order"):
        check_request(swapped)


def test_a_payment_mod_reapplies_to_the_invoice_with_applied_to_txn_mod() -> None:
    rq = qbxml.document_mod(payment(), "2", txn_id="2C-1736154000", edit_sequence="1736154050", linked={"invoice": TXN})
    check_request(rq)
    mod = rq[0]
    assert rq.tag == "ReceivePaymentModRq"
    assert [str(c.tag) for c in mod][:3] == ["TxnID", "EditSequence", "CustomerRef"]
    assert mod.findtext("EditSequence") == "1736154050"
    assert mod.find("AppliedToTxnAdd") is None
    assert mod.findtext("AppliedToTxnMod/TxnID") == TXN
    assert mod.findtext("AppliedToTxnMod/PaymentAmount") == "40.00"
    with pytest.raises(MappingError, match="not posted yet"):
        qbxml.document_mod(payment(), "2", txn_id="2C-1", edit_sequence="1", linked={})


def test_a_sales_order_mod_replaces_its_lines_and_keeps_number_and_marker() -> None:
    rq = qbxml.document_mod(sales_order(), "1", txn_id=TXN, edit_sequence="9")
    check_request(rq)
    mod = rq[0]
    assert rq.tag == "SalesOrderModRq"
    assert mod.findtext("RefNumber") == "1001"
    assert "[ledgerlink ll-0123456789abcdef-sales_order]" in (mod.findtext("Memo") or "")
    lines = mod.findall("SalesOrderLineMod")
    assert [line.findtext("TxnLineID") for line in lines] == ["-1"]
    assert lines[0].findtext("Quantity") == "2"
    assert lines[0].findtext("Rate") == "20.00"
