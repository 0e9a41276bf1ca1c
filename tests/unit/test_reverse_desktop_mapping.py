"""QuickBooks Desktop → ShipStation, purely: the qbXML builders and reader, the mapping, and the write-back rules.

The builders are checked against the stand-in's schema (the SDK's element orders, `sandbox/qbd/schema.py`) and
run against the stand-in company file, which answers them as QuickBooks does."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from lxml import etree

from ledgerlink.books.qbd.qbxml import (
    message_set,
    parse_response,
    read_sale,
    ship_mod,
    txn_changes_query,
    txn_deleted_query,
)
from ledgerlink.domain.errors import MappingError
from ledgerlink.domain.reverse import (
    FromBooksSettings,
    ItemInfo,
    SaleType,
    ShipmentFacts,
    desktop_is_voided,
    desktop_ship_method,
    desktop_to_shipstation,
    desktop_wanted,
    desktop_write_back,
)
from ledgerlink.sandbox.qbd import QbdCompany
from ledgerlink.sandbox.qbd.schema import check_request

SETTINGS = FromBooksSettings(transaction_types=[SaleType.SALES_ORDER, SaleType.INVOICE], store_id=7)
ADDRESS = {"Addr1": "Ada Lovelace", "Addr2": "12 Main St", "Addr3": "Suite 4", "City": "Portland", "State": "OR",
           "PostalCode": "97201", "Country": "USA"}  # fmt: skip


def _ref(name: str, list_id: str = "") -> dict[str, str]:
    return {"ListID": list_id, "FullName": name}


def sales_order(**changes: Any) -> dict[str, Any]:
    sale: dict[str, Any] = {
        "TxnID": "1A-1736154000",
        "EditSequence": "1736154007",
        "TxnNumber": "4",
        "RefNumber": "SO-100",
        "TxnDate": "2026-01-05",
        "CustomerRef": _ref("Ada Lovelace"),
        "ClassRef": _ref("Online", "80000011-1736154000"),
        "BillAddress": dict(ADDRESS),
        "ShipAddress": None,
        "ShipMethodRef": _ref("UPS"),
        "Subtotal": "44.98",
        "SalesTaxTotal": "2.50",
        "TotalAmount": "47.48",
        "Memo": "phone order",
        "Other": "",
        "IsManuallyClosed": "false",
        "LinkedTxn": [],
        "lines": [
            {"TxnLineID": "L1", "ItemRef": _ref("Red Hat", "I1"), "Desc": "", "Quantity": "2", "Rate": "19.99",
             "Amount": "39.98"},
            {"TxnLineID": "L2", "ItemRef": _ref("Shipping", "I2"), "Desc": "", "Quantity": "", "Rate": "",
             "Amount": "5.00"},
            {"TxnLineID": "L3", "ItemRef": None, "Desc": "Thank you!", "Quantity": "", "Rate": "", "Amount": ""},
        ],
    }  # fmt: skip
    sale.update(changes)
    return sale


def shipment(**changes: Any) -> ShipmentFacts:
    values: dict[str, Any] = {
        "shipment_id": 501,
        "order_key": "qbd-3-SalesOrder-1A-1736154000",
        "tracking_number": "1Z999AA10123456784",
        "carrier_code": "ups",
        "service_code": "ups_ground",
        "ship_date": date(2026, 1, 7),
    }
    values.update(changes)
    return ShipmentFacts(**values)


# -- the mapping -----------------------------------------------------------------------------------------------


def test_sales_order_maps_to_one_order_that_adds_up() -> None:
    body = desktop_to_shipstation(sales_order(), "SalesOrder", 3, SETTINGS, items={"I1": ItemInfo("Red Hat", "RH-1")})
    assert body["orderKey"] == "qbd-3-SalesOrder-1A-1736154000"
    assert body["orderNumber"] == "SO-100"
    assert body["advancedOptions"] == {
        "customField1": "SO-100",
        "customField2": "QuickBooks Desktop SalesOrder 1A-1736154000",
        "source": "QuickBooks Desktop",
        "storeId": 7,
    }
    assert body["orderStatus"] == "awaiting_shipment"
    assert body["amountPaid"] == Decimal(0)
    assert "paymentDate" not in body
    assert (body["shippingAmount"], body["taxAmount"]) == (Decimal("5.00"), Decimal("2.50"))
    assert [(i["sku"], i["quantity"], i["unitPrice"]) for i in body["items"]] == [("RH-1", 2, Decimal("19.99"))]
    total = sum(i["quantity"] * i["unitPrice"] for i in body["items"]) + body["shippingAmount"] + body["taxAmount"]
    assert total == Decimal("47.48")
    # No ship-to on the sale: the bill-to ships; the addressee line (Addr1 = the customer) is not a street.
    assert body["shipTo"]["street1"] == "12 Main St"
    assert body["shipTo"]["street2"] == "Suite 4"
    assert (body["shipTo"]["name"], body["shipTo"]["country"]) == ("Ada Lovelace", "US")
    assert body["requestedShippingService"] == "UPS"


def test_invoice_with_balance_awaits_payment_and_rounding_becomes_an_adjustment() -> None:
    invoice = sales_order(TotalAmount="", Subtotal="45.00", SalesTaxTotal="0.00", BalanceRemaining="45.00")
    body = desktop_to_shipstation(invoice, "Invoice", 3, SETTINGS, items={})
    assert body["orderStatus"] == "awaiting_payment"
    assert body["amountPaid"] == Decimal("0.00")
    assert body["items"][-1]["adjustment"] is True
    assert body["items"][-1]["unitPrice"] == Decimal("0.02")


def test_discount_lines_become_negative_adjustments_and_subtotals_are_left_out() -> None:
    sale = sales_order(TotalAmount="37.48")
    sale["lines"] += [
        {"TxnLineID": "L4", "ItemRef": _ref("Subtotal", "S1"), "Amount": "44.98"},
        {"TxnLineID": "L5", "ItemRef": _ref("10% off", "D1"), "Amount": "-10.00"},
    ]
    body = desktop_to_shipstation(sale, "SalesOrder", 3, SETTINGS, items={}, subtotal_items=frozenset({"S1"}))
    assert [(i["name"], i["unitPrice"], i["adjustment"]) for i in body["items"]] == [
        ("Red Hat", Decimal("19.99"), False),
        ("10% off", Decimal("-10.00"), True),
    ]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"BillAddress": None}, "ShipAddress"),
        ({"TxnDate": "05/01/2026"}, "TxnDate"),
        ({"RefNumber": "X" * 51}, "RefNumber"),
    ],
)
def test_bad_sales_fail_naming_the_order_and_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(MappingError) as caught:
        desktop_to_shipstation(sales_order(**changes), "SalesOrder", 3, SETTINGS, items={})
    assert caught.value.field == field
    assert caught.value.order


def test_bad_quantity_names_the_line() -> None:
    sale = sales_order()
    sale["lines"][0]["Quantity"] = "two"
    with pytest.raises(MappingError) as caught:
        desktop_to_shipstation(sale, "SalesOrder", 3, SETTINGS, items={})
    assert (caught.value.order, caught.value.field) == ("SO-100", "lines[0].Quantity")


def test_which_sales_go() -> None:
    assert desktop_wanted(sales_order(), "SalesOrder", SETTINGS) is None
    assert desktop_wanted(sales_order(), "SalesReceipt", SETTINGS) == "SalesReceipt is not a chosen transaction type"
    classed = SETTINGS.model_copy(update={"class_ids": ["Retail"]})
    assert desktop_wanted(sales_order(), "SalesOrder", classed) is not None
    by_id = SETTINGS.model_copy(update={"class_ids": ["80000011-1736154000"]})
    assert desktop_wanted(sales_order(), "SalesOrder", by_id) is None
    # An invoice made from a sales order that is sent itself would ship twice.
    invoiced = sales_order(LinkedTxn=[{"TxnID": "9-1", "TxnType": "SalesOrder"}])
    assert desktop_wanted(invoiced, "Invoice", SETTINGS) is not None
    assert desktop_is_voided(sales_order(Memo="VOID: phone order", TotalAmount="0.00"))
    assert not desktop_is_voided(sales_order(Memo="VOID: phone order"))


# -- the write-back --------------------------------------------------------------------------------------------


def test_write_back_closes_the_order_and_writes_date_method_and_tracking_in_other() -> None:
    change = desktop_write_back(sales_order(), "SalesOrder", shipment(), SETTINGS, ["UPS", "FedEx"])
    assert change is not None
    assert (change.close, change.ship_date, change.ship_method) == (True, date(2026, 1, 7), "")  # already UPS
    assert (change.other, change.memo) == ("1Z999AA10123456784", None)
    done = sales_order(IsManuallyClosed="true", ShipDate="2026-01-07", Other="1Z999AA10123456784")
    assert desktop_write_back(done, "SalesOrder", shipment(), SETTINGS, ["UPS"]) is None


def test_long_tracking_or_a_second_shipment_goes_to_the_memo_once() -> None:
    long_one = shipment(tracking_number="9400 1000 0000 0000 0000 0000 00")  # 32 characters
    change = desktop_write_back(sales_order(), "Invoice", long_one, SETTINGS, [])
    assert change is not None
    assert change.other is None
    assert not change.close
    assert change.memo == "phone order\nTracking 9400 1000 0000 0000 0000 0000 00 (ShipStation shipment 501)"
    written = sales_order(Memo=change.memo, ShipDate="2026-01-07")
    assert desktop_write_back(written, "Invoice", long_one, SETTINGS, []) is None
    second = desktop_write_back(sales_order(Other="1ZFIRST"), "Invoice", shipment(shipment_id=502), SETTINGS, [])
    assert second is not None
    assert second.other is None
    assert "ShipStation shipment 502" in (second.memo or "")


def test_ship_method_only_when_the_company_file_has_one() -> None:
    mapped = SETTINGS.model_copy(update={"ship_via_services": {"Ground": "usps_priority_mail"}})
    usps = shipment(carrier_code="stamps_com", service_code="usps_priority_mail")
    assert desktop_ship_method(usps, mapped, ["Ground", "US Mail"]) == "Ground"
    assert desktop_ship_method(usps, SETTINGS, ["us mail"]) == "us mail"
    assert desktop_ship_method(shipment(carrier_code="fedex"), SETTINGS, ["UPS"]) == ""


def test_tracking_off_still_closes_the_sales_order() -> None:
    quiet = SETTINGS.model_copy(update={"write_tracking": False})
    change = desktop_write_back(sales_order(), "SalesOrder", shipment(), quiet, ["UPS"])
    assert change is not None
    assert change.close
    assert change.other is None
    assert change.ship_date is None


# -- qbXML builders against the schema and the stand-in ----------------------------------------------------------


def _run(company: QbdCompany, *requests: Any) -> dict[str, Any]:
    for rq in requests:
        check_request(rq)
    return parse_response(company.process(message_set(list(requests)))).answers


def test_builders_follow_the_schema_and_read_back_what_they_wrote() -> None:
    company = QbdCompany()
    company.set_clock(datetime(2026, 1, 5, 12, 0, tzinfo=UTC))
    company.add_list_object("Customer", "Ada Lovelace", BillAddress=dict(ADDRESS))
    company.process(message_set([_sales_order_add()]))
    txn = company.transactions("SalesOrder")[0]
    assert txn.bill_address == ADDRESS  # taken from the customer, as QuickBooks does
    since = datetime(2026, 1, 5, 11, 0, tzinfo=UTC)
    answers = _run(company, txn_changes_query("SalesOrder", "1", modified_from=since, max_returned=10))
    sale = read_sale(answers["1"].rets[0].element)
    assert (sale["TxnID"], sale["RefNumber"], sale["IsManuallyClosed"]) == (txn.txn_id, "SO-1", "false")
    assert sale["BillAddress"]["Addr2"] == "12 Main St"
    assert sale["lines"][0]["ItemRef"]["FullName"] == "Consulting"

    mod = ship_mod(
        "SalesOrder",
        "1",
        txn_id=txn.txn_id,
        edit_sequence=sale["EditSequence"],
        ship_date=date(2026, 1, 7),
        ship_method="UPS",
        close=True,
        other="1Z999AA10123456784",
    )
    assert _run(company, mod)["1"].code == 0
    assert (txn.manually_closed, txn.ship_date, txn.other) == (True, "2026-01-07", "1Z999AA10123456784")
    assert txn.refs["ShipMethodRef"].name == "UPS"
    assert len(txn.lines) == 1
    stale = _run(company, mod)["1"]
    assert stale.code == 3200
    later = datetime(2026, 1, 6, tzinfo=UTC)
    assert _run(company, txn_changes_query("SalesOrder", "1", modified_from=later))["1"].code == 1
    too_long = ship_mod("Invoice", "1", txn_id=txn.txn_id, edit_sequence="1", other="x" * 29)
    check_request(too_long)
    with pytest.raises(MappingError):
        ship_mod("Invoice", "1", txn_id=txn.txn_id, edit_sequence="1", other="x" * 30)
    with pytest.raises(MappingError):
        ship_mod("Invoice", "1", txn_id=txn.txn_id, edit_sequence="1", close=True)


def test_deleted_query_reports_deletions_since() -> None:
    company = QbdCompany()
    company.set_clock(datetime(2026, 1, 5, 12, 0, tzinfo=UTC))
    company.add_list_object("Customer", "Ada Lovelace", BillAddress=dict(ADDRESS))
    company.process(message_set([_sales_order_add()]))
    txn = company.transactions("SalesOrder")[0]
    delete = f'<TxnDelRq requestID="1"><TxnDelType>SalesOrder</TxnDelType><TxnID>{txn.txn_id}</TxnID></TxnDelRq>'
    company.process(message_set([_xml(delete)]))
    query = txn_deleted_query(["SalesOrder", "Invoice"], "1", deleted_from=datetime(2026, 1, 5, tzinfo=UTC))
    ret = _run(company, query)["1"].rets[0]
    assert read_sale(ret.element)["type"] == "SalesOrder"
    assert ret.txn_id == txn.txn_id
    later = txn_deleted_query(["SalesOrder"], "1", deleted_from=datetime(2026, 1, 6, tzinfo=UTC))
    assert _run(company, later)["1"].code == 1


def _xml(text: str) -> Any:
    return etree.fromstring(text)


def _sales_order_add() -> Any:
    return _xml(
        '<SalesOrderAddRq requestID="1"><SalesOrderAdd><CustomerRef><FullName>Ada Lovelace</FullName></CustomerRef>'
        "<TxnDate>2026-01-05</TxnDate><RefNumber>SO-1</RefNumber><SalesOrderLineAdd><ItemRef><FullName>Consulting"
        "</FullName></ItemRef><Quantity>1</Quantity></SalesOrderLineAdd></SalesOrderAdd></SalesOrderAddRq>"
    )
