"""The company-file stand-in changes transactions the way QuickBooks Desktop does: Mods by TxnID and
EditSequence (lines by TxnLineID), stale edit sequences, TxnVoid and TxnDel, payments undone with them."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from lxml import etree

from ledgerlink.books.qbd import qbxml
from ledgerlink.books.qbd.qbxml import Answer, Ret, parse_response
from ledgerlink.domain.catalog import NewCustomer
from ledgerlink.domain.documents import DocLine, Document, DocumentKind, LineKind, Link, Ref
from ledgerlink.sandbox.qbd import QbdCompany, QbdParseError

pytestmark = pytest.mark.contract
D = Decimal


def run(company: QbdCompany, *requests: etree._Element) -> list[Answer]:
    for number, rq in enumerate(requests, start=1):
        rq.set("requestID", str(number))
    answers = parse_response(company.process(qbxml.message_set(list(requests)))).answers
    return [answers[str(n)] for n in range(1, len(requests) + 1)]


def ret(answer: Answer) -> Ret:
    assert answer.code == 0, answer.describe()
    assert answer.ret is not None
    return answer.ret


def account(company: QbdCompany, name: str) -> str:
    found = company.find("Account", name)
    assert found is not None
    return found.list_id


def invoice(company: QbdCompany, *amounts: str) -> Document:
    lines = tuple(
        DocLine(kind=LineKind.ITEM, amount=D(a), description=f"line {n}", item=Ref(key="i", id="Consulting"))
        for n, a in enumerate(amounts)
    )
    total = sum((D(a) for a in amounts), D(0))
    return Document(
        role="invoice",
        kind=DocumentKind.INVOICE,
        order_number="1001",
        doc_number="1001",
        txn_date=date(2025, 1, 6),
        customer=Ref(key="c", id="Ann"),
        lines=lines,
        total=total,
        memo="Shopify order #1001",
        marker="ll-test-invoice",
        ar_account=Ref(key="a", id=account(company, "Accounts Receivable")),
    )


def payment(company: QbdCompany, amount: str) -> Document:
    return invoice(company, amount).model_copy(
        update={
            "kind": DocumentKind.PAYMENT,
            "role": "payment",
            "lines": (),
            "marker": "ll-test-payment",
            "links": (Link(role="invoice", kind=DocumentKind.INVOICE, amount=D(amount)),),
            "deposit_account": Ref(key="d", id=account(company, "Undeposited Funds")),
        }
    )


@pytest.fixture
def company() -> QbdCompany:
    made = QbdCompany()
    run(made, qbxml.customer_add(NewCustomer(key="k", display_name="Ann"), "Ann", "0"))
    return made


def test_a_mod_keeps_named_lines_adds_new_ones_and_drops_the_rest(company: QbdCompany) -> None:
    added = ret(run(company, qbxml.document_add(invoice(company, "10.00", "20.00", "30.00"), "0"))[0])
    txn = company.txns[added.txn_id]
    first, second, _third = (line.txn_line_id for line in txn.lines)
    mod = etree.fromstring(
        f"""<InvoiceModRq><InvoiceMod><TxnID>{added.txn_id}</TxnID><EditSequence>{added.edit_sequence}</EditSequence>
        <InvoiceLineMod><TxnLineID>{second}</TxnLineID><Amount>25.00</Amount></InvoiceLineMod>
        <InvoiceLineMod><TxnLineID>{first}</TxnLineID><Desc>renamed</Desc></InvoiceLineMod>
        <InvoiceLineMod><TxnLineID>-1</TxnLineID><ItemRef><FullName>Shipping</FullName></ItemRef><Amount>5.00</Amount>
        </InvoiceLineMod></InvoiceMod></InvoiceModRq>"""
    )
    changed = ret(run(company, mod)[0])
    assert changed.total == D("40.00")
    assert changed.edit_sequence != added.edit_sequence
    assert [(line.txn_line_id, line.desc, line.amount) for line in txn.lines[:2]] == [
        (second, "line 1", D("25.00")),
        (first, "renamed", D("10.00")),
    ]
    assert txn.lines[2].item.name == "Shipping"
    assert txn.lines[2].txn_line_id not in (first, second)
    assert len(txn.lines) == 3


def test_a_refused_mod_changes_nothing(company: QbdCompany) -> None:
    added = ret(run(company, qbxml.document_add(invoice(company, "10.00"), "0"))[0])
    txn = company.txns[added.txn_id]
    before = (list(txn.lines), txn.total, txn.memo, txn.edit_sequence)
    mod = etree.fromstring(
        f"""<InvoiceModRq><InvoiceMod><TxnID>{added.txn_id}</TxnID><EditSequence>{added.edit_sequence}</EditSequence>
        <Memo>changed</Memo><InvoiceLineMod><TxnLineID>99-1736154000</TxnLineID><Amount>1.00</Amount></InvoiceLineMod>
        </InvoiceMod></InvoiceModRq>"""
    )
    [answer] = run(company, mod)
    assert answer.code == 3120
    assert (list(txn.lines), txn.total, txn.memo, txn.edit_sequence) == before


def test_a_payment_changes_the_invoices_edit_sequence_and_the_invoice_never_falls_below_it(
    company: QbdCompany,
) -> None:
    added = ret(run(company, qbxml.document_add(invoice(company, "40.00"), "0"))[0])
    ret(run(company, qbxml.document_add(payment(company, "30.00"), "0", linked={"invoice": added.txn_id}))[0])
    # The invoice was changed by the payment: the EditSequence read when it was added is stale.
    [stale] = run(company, qbxml.document_mod(invoice(company, "50.00"), "0", txn_id=added.txn_id,
                                              edit_sequence=added.edit_sequence))  # fmt: skip
    assert stale.code == 3200
    current = ret(run(company, qbxml.txn_query("Invoice", "0", txn_ids=[added.txn_id]))[0])
    assert current.edit_sequence != added.edit_sequence
    assert current.find("BalanceRemaining") == "10.00"
    [below] = run(company, qbxml.document_mod(invoice(company, "20.00"), "0", txn_id=added.txn_id,
                                              edit_sequence=current.edit_sequence))  # fmt: skip
    assert below.code == 3180
    assert company.txns[added.txn_id].total == D("40.00")
    grown = ret(run(company, qbxml.document_mod(invoice(company, "50.00"), "0", txn_id=added.txn_id,
                                                edit_sequence=current.edit_sequence))[0])  # fmt: skip
    assert grown.total == D("50.00")
    assert grown.find("BalanceRemaining") == "20.00"


def test_a_payment_mod_moves_its_amount_on_the_invoice(company: QbdCompany) -> None:
    added = ret(run(company, qbxml.document_add(invoice(company, "40.00"), "0"))[0])
    paid = ret(run(company, qbxml.document_add(payment(company, "40.00"), "0", linked={"invoice": added.txn_id}))[0])
    smaller = ret(run(company, qbxml.document_mod(payment(company, "15.00"), "0", txn_id=paid.txn_id,
                                                  edit_sequence=paid.edit_sequence,
                                                  linked={"invoice": added.txn_id}))[0])  # fmt: skip
    assert smaller.total == D("15.00")
    assert company.txns[added.txn_id].balance == D("25.00")
    # Above the open balance: refused, and the payment stays applied as it was.
    [over] = run(company, qbxml.document_mod(payment(company, "45.00"), "0", txn_id=paid.txn_id,
                                             edit_sequence=smaller.edit_sequence,
                                             linked={"invoice": added.txn_id}))  # fmt: skip
    assert over.code == 3180
    assert company.txns[added.txn_id].balance == D("25.00")
    assert company.txns[paid.txn_id].total == D("15.00")


def test_void_zeroes_an_invoice_keeps_it_and_leaves_its_payment_unapplied(company: QbdCompany) -> None:
    added = ret(run(company, qbxml.document_add(invoice(company, "40.00"), "0"))[0])
    paid = ret(run(company, qbxml.document_add(payment(company, "40.00"), "0", linked={"invoice": added.txn_id}))[0])
    [wrong_type] = run(company, qbxml.txn_void("SalesReceipt", added.txn_id, "0"))
    assert wrong_type.code == 3120
    [voided] = run(company, qbxml.txn_void("Invoice", added.txn_id, "0"))
    assert voided.code == 0
    assert voided.rets == ()  # TxnVoidRs carries TxnVoidType and TxnID, no …Ret
    txn = company.txns[added.txn_id]
    assert (txn.voided, txn.total, txn.memo) == (
        True,
        D("0.00"),
        "VOID: Shopify order #1001 [ledgerlink ll-test-invoice]",
    )
    assert company.txns[paid.txn_id].applied_to == []  # the money stays as the customer's credit
    edit_sequence = txn.edit_sequence
    [again] = run(company, qbxml.txn_void("Invoice", added.txn_id, "0"))
    assert again.code == 0
    assert txn.edit_sequence == edit_sequence  # voiding a void changes nothing


def test_delete_removes_sales_orders_and_payments_once(company: QbdCompany) -> None:
    order_doc = invoice(company, "40.00").model_copy(
        update={"kind": DocumentKind.SALES_ORDER, "role": "sales_order", "ar_account": None}
    )
    order = ret(run(company, qbxml.document_add(order_doc, "0"))[0])
    linked = invoice(company, "40.00").model_copy(
        update={"links": (Link(role="sales_order", kind=DocumentKind.SALES_ORDER),)}
    )
    added = ret(run(company, qbxml.document_add(linked, "0", linked={"sales_order": order.txn_id}))[0])
    paid = ret(run(company, qbxml.document_add(payment(company, "40.00"), "0", linked={"invoice": added.txn_id}))[0])
    # qbXML has no SalesOrder among the void types: QuickBooks refuses the whole set unread.
    not_voidable = qbxml.request("TxnVoid", "0")
    etree.SubElement(not_voidable, "TxnVoidType").text = "SalesOrder"
    etree.SubElement(not_voidable, "TxnID").text = order.txn_id
    with pytest.raises(QbdParseError, match="SalesOrder"):
        run(company, not_voidable)
    deleted, gone = run(
        company, qbxml.txn_del("ReceivePayment", paid.txn_id, "0"), qbxml.txn_del("SalesOrder", order.txn_id, "0")
    )
    assert (deleted.code, gone.code) == (0, 0)
    assert paid.txn_id not in company.txns
    assert order.txn_id not in company.txns
    assert company.txns[added.txn_id].balance == D("40.00")
    assert company.txns[added.txn_id].linked == []
    [twice] = run(company, qbxml.txn_del("ReceivePayment", paid.txn_id, "0"))
    assert twice.code == 3120
    [query] = run(company, qbxml.txn_query("ReceivePayment", "0", ref_numbers=["1001"]))
    assert query.code == 1
