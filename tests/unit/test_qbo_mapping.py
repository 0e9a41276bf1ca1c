"""Document → QuickBooks Online JSON: the golden shapes, exact money, and the edge cases that QBO refuses."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from ledgerlink.books.qbo import customer_body, item_body, to_qbo
from ledgerlink.books.qbo.mapping import missing_links, private_note, remote_doc
from ledgerlink.domain.catalog import CompanyFacts, NewCustomer, NewItem
from ledgerlink.domain.documents import SHIPPING_ITEM_ID, DocLine, Document, DocumentKind, LineKind, Link, Ref
from ledgerlink.domain.errors import MappingError
from ledgerlink.domain.order import Address
from ledgerlink.jsonwire import dumps, loads

pytestmark = pytest.mark.unit

US = CompanyFacts()
CA = CompanyFacts(country="CA", home_currency="CAD", automated_sales_tax=False)
D = Decimal


def receipt(**changes: object) -> Document:
    base: dict[str, object] = {
        "role": "receipt",
        "kind": DocumentKind.SALES_RECEIPT,
        "order_number": "1001",
        "doc_number": "SH1001",
        "txn_date": date(2025, 3, 4),
        "customer": Ref(key="customer:7", name="Ann Lee", id="7"),
        "lines": (
            DocLine(
                kind=LineKind.ITEM,
                item=Ref(key="item:3", name="WIDGET", id="3"),
                description="Widget, red",
                quantity=D(3),
                unit_price=D("9.99"),
                amount=D("29.97"),
                taxable=True,
            ),
            DocLine(
                kind=LineKind.DISCOUNT,
                amount=D("5.00"),
                description="Discount (SAVE5)",
                account=Ref(key="account:86", name="Discounts given", id="86"),
            ),
            DocLine(
                kind=LineKind.SHIPPING,
                item=Ref(key="shipping", name="Shipping", id=SHIPPING_ITEM_ID),
                description="Ground",
                quantity=D(1),
                unit_price=D("4.50"),
                amount=D("4.50"),
            ),
        ),
        "tax_total": D("2.06"),
        "total": D("31.53"),
        "memo": "Shopify order #1001",
        "marker": "k-1001-receipt",
        "billing_address": Address(name="Ann Lee", line1="1 Main St", city="Springfield", region="IL", country="US"),
        "shipping_address": Address(
            name="Ann Lee", company="Lee Co", line1="2 Side St", line2="Unit 4", postal_code="62701", country="US"
        ),
        "deposit_account": Ref(key="account:4", name="Undeposited Funds", id="4"),
        "payment_method": Ref(key="payment_method:2", name="Visa", id="2"),
    }
    base.update(changes)
    return Document.model_validate(base)


def test_sales_receipt_golden_shape() -> None:
    body = to_qbo(receipt(), company=US)
    assert body == {
        "DocNumber": "SH1001",
        "TxnDate": "2025-03-04",
        "CustomerRef": {"value": "7", "name": "Ann Lee"},
        "PrivateNote": "Shopify order #1001 [ledgerlink k-1001-receipt]",
        "BillAddr": {
            "Line1": "Ann Lee",
            "Line2": "1 Main St",
            "City": "Springfield",
            "CountrySubDivisionCode": "IL",
            "Country": "US",
        },
        "ShipAddr": {
            "Line1": "Ann Lee",
            "Line2": "Lee Co",
            "Line3": "2 Side St",
            "Line4": "Unit 4",
            "PostalCode": "62701",
            "Country": "US",
        },
        "DepositToAccountRef": {"value": "4", "name": "Undeposited Funds"},
        "PaymentMethodRef": {"value": "2", "name": "Visa"},
        "Line": [
            {
                "DetailType": "SalesItemLineDetail",
                "Amount": D("29.97"),
                "Description": "Widget, red",
                "SalesItemLineDetail": {
                    "ItemRef": {"value": "3", "name": "WIDGET"},
                    "Qty": D(3),
                    "UnitPrice": D("9.99"),
                    "TaxCodeRef": {"value": "TAX"},
                },
            },
            {
                "DetailType": "DiscountLineDetail",
                "Amount": D("5.00"),
                "Description": "Discount (SAVE5)",
                "DiscountLineDetail": {
                    "PercentBased": False,
                    "DiscountAccountRef": {"value": "86", "name": "Discounts given"},
                },
            },
            {
                "DetailType": "SalesItemLineDetail",
                "Amount": D("4.50"),
                "Description": "Ground",
                "SalesItemLineDetail": {
                    "ItemRef": {"value": SHIPPING_ITEM_ID, "name": "Shipping"},
                    "Qty": D(1),
                    "UnitPrice": D("4.50"),
                    "TaxCodeRef": {"value": "NON"},
                },
            },
        ],
        "TxnTaxDetail": {"TotalTax": D("2.06")},
        "ApplyTaxAfterDiscount": True,
    }


def test_money_stays_exact_on_the_wire() -> None:
    wire = dumps(to_qbo(receipt(), company=US))
    assert '"Amount":29.97' in wire
    assert '"TotalTax":2.06' in wire
    back = loads(wire)
    lines_sum = sum(
        (line["Amount"] if line["DetailType"] != "DiscountLineDetail" else -line["Amount"] for line in back["Line"]),
        D(0),
    )
    assert lines_sum + back["TxnTaxDetail"]["TotalTax"] == D("31.53")


def test_amounts_are_quantized_to_cents() -> None:
    line = DocLine(
        kind=LineKind.FEE, item=Ref(key="i", name="Fee", id="9"), quantity=D(1), unit_price=D(2), amount=D(2)
    )
    body = to_qbo(receipt(lines=(line,), tax_total=None, total=D(2)), company=US)
    assert str(body["Line"][0]["Amount"]) == "2.00"
    assert "TaxCodeRef" not in body["Line"][0]["SalesItemLineDetail"]  # tax as a line item: nothing pinned
    assert "TxnTaxDetail" not in body
    assert "ApplyTaxAfterDiscount" not in body


def test_zero_tax_pins_codes_but_no_total_tax() -> None:
    body = to_qbo(receipt(tax_total=D("0.00"), total=D("29.47")), company=US)
    assert "TxnTaxDetail" not in body
    assert body["Line"][0]["SalesItemLineDetail"]["TaxCodeRef"] == {"value": "TAX"}


def test_no_tax_codes_without_automated_sales_tax_and_non_us_calculation() -> None:
    body = to_qbo(receipt(tax_total=None, total=D("29.47")), company=CA)
    assert all("TaxCodeRef" not in line.get("SalesItemLineDetail", {}) for line in body["Line"])
    assert body["GlobalTaxCalculation"] == "NotApplicable"
    assert "GlobalTaxCalculation" not in to_qbo(receipt(), company=US)


def test_class_and_currency() -> None:
    doc = receipt(class_ref=Ref(key="class:5", id="5"), currency="cad")
    body = to_qbo(doc, company=CompanyFacts(multicurrency=True))
    assert body["ClassRef"] == {"value": "5"}
    assert body["Line"][0]["SalesItemLineDetail"]["ClassRef"] == {"value": "5"}
    assert body["CurrencyRef"] == {"value": "CAD"}
    assert "CurrencyRef" not in to_qbo(doc, company=US)


def test_unresolved_refs_render_by_name_only() -> None:
    doc = receipt(customer=Ref(key="email:ann@example.com", name="Ann Lee"))
    assert to_qbo(doc, company=US)["CustomerRef"] == {"name": "Ann Lee"}


def test_private_note_keeps_the_marker_within_4000() -> None:
    doc = receipt(memo="x" * 5000)
    note = private_note(doc)
    assert len(note) == 4000
    assert note.endswith("[ledgerlink k-1001-receipt]")
    assert private_note(receipt(marker="")) == "Shopify order #1001"


def test_invoice_links_the_estimate_and_uses_receivables() -> None:
    doc = receipt(
        role="invoice",
        kind=DocumentKind.INVOICE,
        ar_account=Ref(key="account:84", name="Accounts Receivable", id="84"),
        links=(Link(role="sales_order", kind=DocumentKind.ESTIMATE),),
    )
    body = to_qbo(doc, linked={"sales_order": "55"}, company=US)
    assert body["LinkedTxn"] == [{"TxnId": "55", "TxnType": "Estimate"}]
    assert body["ARAccountRef"] == {"value": "84", "name": "Accounts Receivable"}
    assert "DepositToAccountRef" not in body
    assert "PaymentMethodRef" not in body
    assert missing_links(doc, {}) == ["sales_order"]
    assert missing_links(doc, {"sales_order": "55"}) == []
    assert to_qbo(doc, company=US)["LinkedTxn"] == [{"TxnType": "Estimate"}]


def test_estimate_has_neither_deposit_nor_receivables() -> None:
    body = to_qbo(receipt(kind=DocumentKind.ESTIMATE, role="sales_order"), company=US)
    assert "DepositToAccountRef" not in body
    assert "ARAccountRef" not in body
    assert body["DocNumber"] == "SH1001"


def test_payment_applies_to_the_invoice() -> None:
    doc = receipt(
        role="payment",
        kind=DocumentKind.PAYMENT,
        lines=(),
        tax_total=None,
        total=D("31.53"),
        ar_account=Ref(key="account:84", id="84"),
        links=(Link(role="invoice", kind=DocumentKind.INVOICE, amount=D("31.53")),),
    )
    body = to_qbo(doc, linked={"invoice": "123"}, company=US)
    assert body == {
        "TotalAmt": D("31.53"),
        "CustomerRef": {"value": "7", "name": "Ann Lee"},
        "PaymentRefNum": "SH1001",
        "TxnDate": "2025-03-04",
        "DepositToAccountRef": {"value": "4", "name": "Undeposited Funds"},
        "ARAccountRef": {"value": "84"},
        "PaymentMethodRef": {"value": "2", "name": "Visa"},
        "PrivateNote": "Shopify order #1001 [ledgerlink k-1001-receipt]",
        "Line": [{"Amount": D("31.53"), "LinkedTxn": [{"TxnId": "123", "TxnType": "Invoice"}]}],
    }
    assert missing_links(doc, {}) == ["invoice"]


def test_sales_order_is_refused_on_online() -> None:
    with pytest.raises(MappingError, match="no sales orders"):
        to_qbo(receipt(kind=DocumentKind.SALES_ORDER), company=US)


def test_refund_receipt_deposits_and_credit_memo_does_not() -> None:
    refund = to_qbo(receipt(kind=DocumentKind.REFUND_RECEIPT), company=US)
    assert refund["DepositToAccountRef"]["value"] == "4"
    memo = to_qbo(receipt(kind=DocumentKind.CREDIT_MEMO), company=US)
    assert "DepositToAccountRef" not in memo


def test_customer_body() -> None:
    customer = NewCustomer(
        key="email:ann@example.com",
        display_name="Ann: Lee",
        email="ann@example.com",
        given_name="Ann",
        family_name="Lee",
        company="Lee Co",
        phone="555-0100",
        billing_address=Address(name="Ann Lee", line1="1 Main St", city="Springfield"),
    )
    assert customer_body(customer) == {
        "DisplayName": "Ann- Lee",
        "GivenName": "Ann",
        "FamilyName": "Lee",
        "CompanyName": "Lee Co",
        "PrimaryEmailAddr": {"Address": "ann@example.com"},
        "PrimaryPhone": {"FreeFormNumber": "555-0100"},
        "BillAddr": {"Line1": "1 Main St", "City": "Springfield"},
    }
    long = customer_body(NewCustomer(key="k", display_name="n" * 600))
    assert len(long["DisplayName"]) == 500


def test_item_bodies() -> None:
    plain = NewItem(key="sku:w", name="W" * 120, sku="W-1", unit_price="9.99", income_account="79")
    body = item_body(plain, date(2025, 3, 4))
    assert body == {
        "Name": "W" * 100,
        "Type": "NonInventory",
        "Sku": "W-1",
        "UnitPrice": D("9.99"),
        "IncomeAccountRef": {"value": "79"},
    }
    stock = NewItem(
        key="sku:w",
        name="WIDGET",
        sku="W-1",
        type="Inventory",
        income_account="79",
        asset_account="81",
        cogs_account="80",
    )
    assert item_body(stock, date(2025, 3, 4)) == {
        "Name": "WIDGET",
        "Type": "Inventory",
        "Sku": "W-1",
        "IncomeAccountRef": {"value": "79"},
        "TrackQtyOnHand": True,
        "QtyOnHand": D(0),
        "InvStartDate": "2025-03-04",
        "AssetAccountRef": {"value": "81"},
        "ExpenseAccountRef": {"value": "80"},
    }
    assert "UnitPrice" not in item_body(plain.model_copy(update={"unit_price": "n/a"}), date(2025, 3, 4))


def test_remote_doc_reads_decimal_and_int_ids() -> None:
    found = remote_doc(
        "Invoice",
        {"Id": 12, "SyncToken": "0", "DocNumber": "SH1", "TotalAmt": D("31.5"), "CustomerRef": {"value": "7"}},
    )
    assert (found.remote_id, found.total, found.customer_id) == ("12", D("31.50"), "7")
