"""qbXML builders and the answer parser: golden documents, the SDK's element order, Desktop's limits.

Every request is checked against the qbXML 13.0 content models the QuickBooks Desktop stand-in enforces
(`ledgerlink.sandbox.qbd.schema`), which were written down separately from the builders.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from lxml import etree

from ledgerlink.books.qbd import qbxml
from ledgerlink.books.qbd.qbxml import (
    MAX_CUSTOMER_NAME,
    MAX_ITEM_NAME,
    QbXmlError,
    desktop_name,
    parse_response,
    parse_xml,
    ref_number,
)
from ledgerlink.domain.catalog import NewCustomer, NewItem
from ledgerlink.domain.documents import DocLine, Document, DocumentKind, LineKind, Link, Ref
from ledgerlink.domain.errors import MappingError
from ledgerlink.domain.order import Address
from ledgerlink.sandbox.qbd.schema import SchemaError, check_request

D = Decimal
INCOME, DEPOSIT, AR, DISCOUNTS = (
    "80000006-1736154000",
    "80000002-1736154000",
    "80000003-1736154000",
    "8000000A-1736154000",
)
ADDRESS = Address(name="Jane Doe", line1="1 Main St", line2="Unit 2", city="Springfield", region="IL",
                  postal_code="62701", country="US")  # fmt: skip


def sale(kind: DocumentKind = DocumentKind.SALES_RECEIPT, **changes: object) -> Document:
    """2 × 19.99 T-shirt, a 4.00 discount, 5.00 shipping, 2.50 pinned tax: 43.48."""
    fields: dict[str, object] = {
        "role": "receipt",
        "kind": kind,
        "order_number": "SH-100000123",
        "doc_number": "SH-100000123",
        "txn_date": date(2025, 1, 6),
        "customer": Ref(key="email:jane@example.com", name="Jane Doe", id="Jane Doe"),
        "lines": (
            DocLine(
                kind=LineKind.ITEM,
                amount=D("39.98"),
                description="T-shirt blue M",
                item=Ref(key="item:1", name="TEE-BLU-M", id="80000020-1736154000"),
                quantity=D(2),
                unit_price=D("19.99"),
            ),
            DocLine(
                kind=LineKind.DISCOUNT,
                amount=D("4.00"),
                description="Discount (SPRING)",
                item=Ref(key="name:discount", name="Discount", id="Discount"),
            ),
            DocLine(
                kind=LineKind.SHIPPING,
                amount=D("5.00"),
                description="Ground",
                item=Ref(key="item:2", name="Shipping", id="Shipping"),
                quantity=D(1),
                unit_price=D("5.00"),
            ),
        ),
        "tax_total": D("2.50"),
        "total": D("43.48"),
        "memo": "Shopify order #SH-100000123",
        "marker": "ll-0123456789abcdef-receipt",
        "billing_address": ADDRESS,
        "shipping_address": ADDRESS,
        "deposit_account": Ref(key="account:2", id=DEPOSIT),
        "ar_account": Ref(key="account:3", id=AR),
        "payment_method": Ref(key="payment_method:7", name="visa", id="80000011-1736154000"),
    }
    fields.update(changes)
    return Document.model_validate(fields)


def children(element: etree._Element) -> list[str]:
    return [str(child.tag) for child in element]


def body(rq: etree._Element) -> etree._Element:
    return rq[0]


# -- documents --------------------------------------------------------------------------------------------------


def test_sales_receipt_is_golden_and_in_the_sdk_order() -> None:
    rq = qbxml.document_add(sale(), "7", tax_item="Channel Sales Tax")
    check_request(rq)
    assert rq.tag == "SalesReceiptAddRq"
    assert rq.get("requestID") == "7"
    add = body(rq)
    assert children(add) == [
        "CustomerRef", "TxnDate", "RefNumber", "BillAddress", "ShipAddress", "PaymentMethodRef", "Memo",
        "DepositToAccountRef", "SalesReceiptLineAdd", "SalesReceiptLineAdd", "SalesReceiptLineAdd",
        "SalesReceiptLineAdd",
    ]  # fmt: skip
    assert add.findtext("CustomerRef/FullName") == "Jane Doe"  # queued this session: by name
    assert add.findtext("DepositToAccountRef/ListID") == DEPOSIT  # known: by id
    assert add.findtext("RefNumber") == "H-100000123"  # the last 11 characters
    assert add.findtext("Memo") == "Shopify order #SH-100000123 [ledgerlink ll-0123456789abcdef-receipt]"
    assert children(add.find("BillAddress")) == ["Addr1", "Addr2", "Addr3", "City", "State", "PostalCode", "Country"]
    item, discount, shipping, tax = add.findall("SalesReceiptLineAdd")
    assert children(item) == ["ItemRef", "Desc", "Quantity", "Rate", "Amount", "SalesTaxCodeRef"]
    assert (item.findtext("Quantity"), item.findtext("Rate"), item.findtext("Amount")) == ("2", "19.99", "39.98")
    assert children(discount) == ["ItemRef", "Desc", "Amount", "SalesTaxCodeRef"]
    assert discount.findtext("Amount") == "-4.00"
    assert shipping.findtext("ItemRef/FullName") == "Shipping"
    assert (tax.findtext("ItemRef/FullName"), tax.findtext("Amount")) == ("Channel Sales Tax", "2.50")
    # The channel's tax is its own line: QuickBooks must add none of its own.
    assert {line.findtext("SalesTaxCodeRef/FullName") for line in (item, discount, shipping, tax)} == {"Non"}
    total = sum(D(line.findtext("Amount") or "0") for line in (item, discount, shipping, tax))
    assert total == D("43.48")


def test_invoice_links_to_its_sales_order_after_the_header_and_before_the_lines() -> None:
    doc = sale(DocumentKind.INVOICE, role="invoice", links=(Link(role="sales_order", kind=DocumentKind.SALES_ORDER),))
    rq = qbxml.document_add(doc, "1", linked={"sales_order": "1A-1736154000"}, tax_item="Channel Sales Tax")
    check_request(rq)
    add = body(rq)
    names = children(add)
    assert names[:3] == ["CustomerRef", "ARAccountRef", "TxnDate"]
    assert names.index("Memo") < names.index("LinkToTxnID") < names.index("InvoiceLineAdd")
    assert add.findtext("LinkToTxnID") == "1A-1736154000"
    assert add.find("DepositToAccountRef") is None
    assert add.find("PaymentMethodRef") is None
    with pytest.raises(MappingError, match="not posted yet"):
        qbxml.document_add(doc, "1", tax_item="Channel Sales Tax")


def test_sales_order_and_credit_memo_follow_their_own_models() -> None:
    order = qbxml.document_add(sale(DocumentKind.SALES_ORDER, role="sales_order"), "1", tax_item="T")
    check_request(order)
    assert order.tag == "SalesOrderAddRq"
    assert "ARAccountRef" not in children(body(order))
    assert children(body(order))[-1] == "SalesOrderLineAdd"
    memo = qbxml.document_add(sale(DocumentKind.CREDIT_MEMO, role="credit"), "2", tax_item="T")
    check_request(memo)
    assert children(body(memo))[:3] == ["CustomerRef", "ARAccountRef", "TxnDate"]


def test_payment_applies_to_the_invoice_by_txn_id() -> None:
    doc = sale(
        DocumentKind.PAYMENT,
        role="payment",
        lines=(),
        tax_total=None,
        total=D("43.48"),
        links=(Link(role="invoice", kind=DocumentKind.INVOICE, amount=D("43.48")),),
    )
    rq = qbxml.document_add(doc, "3", linked={"invoice": "2B-1736154000"})
    check_request(rq)
    add = body(rq)
    assert children(add) == [
        "CustomerRef", "ARAccountRef", "TxnDate", "RefNumber", "TotalAmount", "PaymentMethodRef", "Memo",
        "DepositToAccountRef", "AppliedToTxnAdd",
    ]  # fmt: skip
    applied = add.find("AppliedToTxnAdd")
    assert applied is not None
    assert children(applied) == ["TxnID", "PaymentAmount"]
    assert (applied.findtext("TxnID"), applied.findtext("PaymentAmount")) == ("2B-1736154000", "43.48")
    with pytest.raises(MappingError, match="invoice"):
        qbxml.document_add(doc, "3")


def test_mod_requests_lead_with_txn_id_and_edit_sequence_and_replace_the_lines() -> None:
    rq = qbxml.document_mod(sale(), "4", txn_id="1B-1736154000", edit_sequence="1736154077", tax_item="T")
    check_request(rq)
    mod = body(rq)
    assert rq.tag == "SalesReceiptModRq"
    assert children(mod)[:3] == ["TxnID", "EditSequence", "CustomerRef"]
    lines = mod.findall("SalesReceiptLineMod")
    assert lines
    assert all(line.findtext("TxnLineID") == "-1" for line in lines)
    invoice = sale(DocumentKind.INVOICE, links=(Link(role="sales_order", kind=DocumentKind.SALES_ORDER),))
    invoice_mod = qbxml.document_mod(invoice, "5", txn_id="1C-1", edit_sequence="9", tax_item="T")
    check_request(invoice_mod)
    assert body(invoice_mod).find("LinkToTxnID") is None  # a link is made when the invoice is added
    customer = NewCustomer(key="k", display_name="Jane Doe", email="jane@example.com")
    customer_mod = qbxml.customer_mod("80000030-1736154000", "1736154090", customer, "Jane Doe", "6")
    check_request(customer_mod)
    assert children(body(customer_mod))[:3] == ["ListID", "EditSequence", "Name"]


def test_a_document_desktop_cannot_hold_is_refused() -> None:
    with pytest.raises(MappingError):
        qbxml.document_add(sale(DocumentKind.REFUND_RECEIPT), "1", tax_item="T")
    no_item = sale(lines=(DocLine(kind=LineKind.FEE, amount=D("1.00"), description="Tip"),))
    with pytest.raises(MappingError, match="no item"):
        qbxml.document_add(no_item, "1", tax_item="T")
    with pytest.raises(MappingError, match="tax item"):
        qbxml.document_add(sale(), "1")


# -- master data ------------------------------------------------------------------------------------------------


def test_customer_add_respects_desktop_limits() -> None:
    long_name = "Maximilian Alexander Montgomery-Worthington the Third"
    name = desktop_name(long_name, MAX_CUSTOMER_NAME)
    assert len(name) == MAX_CUSTOMER_NAME
    assert name.startswith("Maximilian Alexander")
    assert desktop_name(long_name, MAX_CUSTOMER_NAME) == name  # deterministic
    assert desktop_name(long_name + "!", MAX_CUSTOMER_NAME) != name  # distinct long names stay distinct
    customer = NewCustomer(
        key="email:max@example.com",
        display_name=long_name,
        email="max@example.com",
        given_name="Maximilian Alexander Montgomery",
        family_name="Worthington",
        phone="+1 555 0100 extension 4242",
        billing_address=ADDRESS.model_copy(update={"line1": "x" * 60}),
    )
    rq = qbxml.customer_add(customer, name, "1")
    check_request(rq)
    add = body(rq)
    assert children(add) == ["Name", "FirstName", "LastName", "BillAddress", "Phone", "Email"]
    assert len(add.findtext("FirstName") or "") == 25
    assert len(add.findtext("Phone") or "") == 21
    assert len(add.findtext("BillAddress/Addr2") or "") == 41


def test_item_adds_carry_their_accounts_in_the_sdk_order() -> None:
    product = NewItem(key="sku:tee", name="TEE-BLU-M", sku="TEE-BLU-M", description="T-shirt", unit_price="19.99",
                      income_account=INCOME)  # fmt: skip
    non_inventory = qbxml.item_add(product, "TEE-BLU-M", "1")
    check_request(non_inventory)
    assert children(body(non_inventory)) == ["Name", "ManufacturerPartNumber", "SalesOrPurchase"]
    sale_part = body(non_inventory).find("SalesOrPurchase")
    assert sale_part is not None
    assert children(sale_part) == ["Desc", "Price", "AccountRef"]
    assert sale_part.findtext("AccountRef/ListID") == INCOME

    stocked = product.model_copy(
        update={"type": "Inventory", "asset_account": "80000004-1", "cogs_account": "80000009-1"}
    )
    inventory = qbxml.item_add(stocked, "TEE-BLU-M", "2")
    check_request(inventory)
    assert children(body(inventory)) == [
        "Name", "ManufacturerPartNumber", "SalesDesc", "SalesPrice", "IncomeAccountRef", "COGSAccountRef",
        "AssetAccountRef",
    ]  # fmt: skip
    with pytest.raises(MappingError):
        qbxml.item_add(product.model_copy(update={"type": "Inventory"}), "TEE", "2")

    charge = NewItem(key="name:shipping", name="Shipping", type="Service", income_account=INCOME)
    other = qbxml.item_add(charge, "Shipping", "3")
    check_request(other)
    assert other.tag == "ItemOtherChargeAddRq"
    service = qbxml.item_service_add(charge, "Shipping", "4")
    check_request(service)
    discount = qbxml.item_add(charge, "Discount", "5", discount_account=DISCOUNTS)
    check_request(discount)
    assert discount.tag == "ItemDiscountAddRq"
    assert body(discount).findtext("AccountRef/ListID") == DISCOUNTS


def test_item_names_fit_31_characters_and_refs_choose_id_or_name() -> None:
    name = desktop_name("Organic Fair-Trade Coffee Beans 1 lb - Whole Bean", MAX_ITEM_NAME)
    assert len(name) == MAX_ITEM_NAME
    assert desktop_name("Parent:Child", MAX_ITEM_NAME) == "Parent-Child"  # ':' separates parent and child
    assert qbxml.is_list_id("80000001-1197759802")
    assert qbxml.is_list_id("1A2-1197759802")
    assert not qbxml.is_list_id("Jane Doe")
    assert not qbxml.is_list_id("TEE-123")
    assert qbxml.ship_via("Priority Overnight Express") == "Priority Overni"


def test_ref_numbers_keep_desktops_eleven_characters() -> None:
    assert ref_number("1001") == "1001"
    assert ref_number("SH-1001") == "SH-1001"
    assert ref_number("SHOP-100000123") == "P-100000123"
    assert len(ref_number("x" * 21)) == 11
    doc = sale(doc_number="WEB-2025-000123", memo="Shopify order #2025-000123")
    assert qbxml.memo_for(doc) == (
        "Shopify order #2025-000123 no. WEB-2025-000123 [ledgerlink ll-0123456789abcdef-receipt]"
    )


# -- queries and message sets ---------------------------------------------------------------------------------


def test_list_queries_use_iterators_for_long_lists() -> None:
    start = qbxml.list_query("Customer", "1", max_returned=500, iterator="Start")
    check_request(start)
    assert (start.get("iterator"), start.findtext("MaxReturned")) == ("Start", "500")
    more = qbxml.list_query("Item", "2", max_returned=500, iterator="Continue", iterator_id="{abc}")
    check_request(more)
    assert (more.get("iterator"), more.get("iteratorID")) == ("Continue", "{abc}")
    for name in ("Account", "Class", "SalesTaxCode", "ItemSalesTax", "PaymentMethod"):
        check_request(qbxml.list_query(name, "3", active_only=True))
    by_name = qbxml.list_query("Customer", "4", full_names=["Jane Doe"])
    assert children(by_name) == ["FullName"]
    by_number = qbxml.txn_query("Invoice", "5", ref_numbers=["1001"], include_line_items=True)
    check_request(by_number)
    assert children(by_number) == ["RefNumber", "IncludeLineItems"]
    check_request(qbxml.txn_query("ReceivePayment", "6", ref_numbers=["1001"], include_line_items=True))


def test_message_set_header_and_ids() -> None:
    text = qbxml.message_set([qbxml.list_query("Account", "1")], new_id="0123456789abcdef01234567")
    assert text.startswith('<?xml version="1.0" encoding="utf-8"?>\n<?qbxml version="13.0"?>\n<QBXML>')
    root = parse_xml(text)
    msgs = root.find("QBXMLMsgsRq")
    assert msgs is not None
    assert (msgs.get("onError"), msgs.get("newMessageSetID")) == ("continueOnError", "0123456789abcdef01234567")
    recovery = parse_xml(qbxml.message_set([], new_id="abc", old_id="abc")).find("QBXMLMsgsRq")
    assert recovery is not None
    assert recovery.get("oldMessageSetID") == "abc"
    assert len(recovery) == 0
    with pytest.raises(ValueError, match="24"):
        qbxml.message_set([], new_id="x" * 25)


def test_the_stand_in_schema_refuses_what_quickbooks_refuses() -> None:
    rq = qbxml.document_add(sale(), "1", tax_item="T")
    add = body(rq)
    memo = add.find("Memo")
    assert memo is not None
    add.remove(memo)
    add.insert(0, memo)  # Memo before CustomerRef
    with pytest.raises(SchemaError, match="out of order"):
        check_request(rq)
    unknown = etree.fromstring("<CustomerAddRq><CustomerAdd><Nickname>J</Nickname></CustomerAdd></CustomerAddRq>")
    with pytest.raises(SchemaError, match="not allowed"):
        check_request(unknown)


# -- answers ----------------------------------------------------------------------------------------------------

ANSWER = """<?xml version="1.0" ?>
<QBXML><QBXMLMsgsRs newMessageSetID="abc" messageSetStatusCode="0">
<InvoiceAddRs requestID="1" statusCode="0" statusSeverity="Info" statusMessage="Status OK"><InvoiceRet>
<TxnID>2B-1736154000</TxnID><EditSequence>1736154099</EditSequence><CustomerRef><ListID>80000030-1736154000</ListID>
<FullName>Jane Doe</FullName></CustomerRef><RefNumber>1001</RefNumber><Subtotal>40.98</Subtotal>
<SalesTaxTotal>2.50</SalesTaxTotal><BalanceRemaining>43.48</BalanceRemaining>
<Memo>Shopify order #1001 [ledgerlink ll-x-invoice]</Memo></InvoiceRet></InvoiceAddRs>
<CustomerAddRs requestID="2" statusCode="3100" statusSeverity="Error"
 statusMessage="The name &quot;Jane Doe&quot; of the list element is already in use."/>
<CustomerQueryRs requestID="3" statusCode="0" statusSeverity="Info" statusMessage="Status OK"
 iteratorRemainingCount="12" iteratorID="{it-1}"><CustomerRet><ListID>80000031-1</ListID><FullName>A</FullName>
<IsActive>false</IsActive></CustomerRet><CustomerRet><ListID>80000032-1</ListID><FullName>B</FullName></CustomerRet>
</CustomerQueryRs>
<InvoiceQueryRs requestID="4" statusCode="1" statusSeverity="Info"
 statusMessage="A query request did not find a matching object in QuickBooks"/>
<SalesReceiptAddRs requestID="5" statusCode="530" statusSeverity="Warn" statusMessage="warned"><SalesReceiptRet>
<TxnID>2C-1</TxnID><EditSequence>1</EditSequence><TotalAmount>10.00</TotalAmount></SalesReceiptRet>
</SalesReceiptAddRs>
</QBXMLMsgsRs></QBXML>"""


def test_answers_by_request_id_with_status_ret_and_iterator() -> None:
    answers = parse_response(ANSWER)
    assert (answers.new_message_set_id, answers.message_set_status) == ("abc", "0")
    invoice = answers.answers["1"]
    assert invoice.ok
    assert invoice.ret is not None
    assert (invoice.ret.txn_id, invoice.ret.edit_sequence, invoice.ret.ref_number) == (
        "2B-1736154000",
        "1736154099",
        "1001",
    )
    assert invoice.ret.total == D("43.48")  # an InvoiceRet has no TotalAmount: Subtotal + SalesTaxTotal
    assert invoice.ret.customer == "Jane Doe"
    assert "ll-x-invoice" in invoice.ret.memo
    taken = answers.answers["2"]
    assert not taken.ok
    assert taken.code == 3100
    assert "already in use" in taken.describe()
    page = answers.answers["3"]
    assert (page.iterator_id, page.remaining, [r.list_id for r in page.rets]) == (
        "{it-1}",
        12,
        ["80000031-1", "80000032-1"],
    )
    assert page.rets[0].is_active is False
    assert page.rets[1].is_active is True
    assert answers.answers["4"].ok
    assert not answers.answers["4"].rets
    warned = answers.answers["5"]
    assert warned.ok
    assert warned.ret is not None
    assert warned.ret.total == D("10.00")


def test_untrusted_xml_is_parsed_without_entities_or_doctype() -> None:
    xxe = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><QBXML>&x;</QBXML>'
    with pytest.raises(QbXmlError):
        parse_xml(xxe)
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b"<QBXML><QBXMLMsgsRs>&b;</QBXMLMsgsRs></QBXML>"
    )
    with pytest.raises(QbXmlError):
        parse_response(laughs)
    with pytest.raises(QbXmlError):
        parse_response("<QBXML><QBXMLMsgsRs>")
    with pytest.raises(QbXmlError):
        parse_response("")


def test_a_credit_application_is_a_zero_payment_setting_the_credit_memo_against_the_invoice() -> None:
    doc = sale(
        DocumentKind.PAYMENT,
        role="apply:r1",
        lines=(),
        tax_total=None,
        total=D("0.00"),
        links=(
            Link(role="invoice", kind=DocumentKind.INVOICE, amount=D("10.00")),
            Link(role="refund:r1", kind=DocumentKind.CREDIT_MEMO, amount=D("10.00")),
        ),
    )
    rq = qbxml.document_add(doc, "1", linked={"invoice": "2B-1736154000", "refund:r1": "3C-1736154000"})
    check_request(rq)
    add = body(rq)
    assert add.findtext("TotalAmount") == "0.00"
    applied = add.findall("AppliedToTxnAdd")
    assert len(applied) == 1
    assert children(applied[0]) == ["TxnID", "PaymentAmount", "SetCredit"]
    assert applied[0].findtext("PaymentAmount") == "0.00"
    assert applied[0].findtext("SetCredit/CreditTxnID") == "3C-1736154000"
    assert applied[0].findtext("SetCredit/AppliedAmount") == "10.00"
    with pytest.raises(MappingError, match="refund:r1"):
        qbxml.document_add(doc, "1", linked={"invoice": "2B-1736154000"})
