"""QuickBooks sale → ShipStation order, purely: keys, filters, status rules, sums, addresses, the write-back."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from ledgerlink.domain.errors import MappingError
from ledgerlink.domain.reverse import (
    CustomerInfo,
    FromBooksSettings,
    ItemInfo,
    SaleType,
    ShipmentFacts,
    cancelled,
    class_ids,
    is_deleted,
    is_voided,
    order_key,
    shipment_facts,
    status_for,
    to_shipstation,
    tracking_update,
    wanted,
)
from ledgerlink.domain.settings import ChannelSettings, SyncDirection

REALM = "9130357960435720"
ITEMS = {
    "5": ItemInfo(name="Red Hat", sku="HAT-RED"),
    "6": ItemInfo(name="Coffee Mug", sku=""),
    "2": ItemInfo("Shipping"),
}
AMY = CustomerInfo(
    display_name="Amy's Bird Sanctuary", company="Amy's Bird Sanctuary", email="birds@intuit.com", phone="555-0100"
)


def line(item_id: str, qty: Any, price: str, amount: str, *, line_id: str = "1", **detail: Any) -> dict[str, Any]:
    return {
        "Id": line_id,
        "DetailType": "SalesItemLineDetail",
        "Amount": Decimal(amount),
        "SalesItemLineDetail": {
            "ItemRef": {"value": item_id, "name": "?"},
            "Qty": qty,
            "UnitPrice": Decimal(price),
            **detail,
        },
    }


def sale(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "Id": "41",
        "SyncToken": "0",
        "DocNumber": "1041",
        "TxnDate": "2026-11-20",
        "CustomerRef": {"value": "58", "name": "Amy's Bird Sanctuary"},
        "ClassRef": {"value": "30", "name": "Online Store"},
        "Line": [
            line("5", Decimal(2), "19.99", "39.98"),
            line("6", Decimal(1), "10.99", "10.99", line_id="2"),
            {
                "Id": "3",
                "DetailType": "SalesItemLineDetail",
                "Amount": Decimal("5.00"),
                "SalesItemLineDetail": {"ItemRef": {"value": "SHIPPING_ITEM_ID"}},
            },
            {"DetailType": "SubTotalLineDetail", "Amount": Decimal("50.97"), "SubTotalLineDetail": {}},
        ],
        "TxnTaxDetail": {"TotalTax": Decimal("4.08")},
        "TotalAmt": Decimal("60.05"),
        "Balance": Decimal("0"),
        "BillAddr": {
            "Line1": "4581 Finch St.",
            "City": "Bayshore",
            "CountrySubDivisionCode": "CA",
            "PostalCode": "94326",
        },
        "ShipAddr": {
            "Line1": "Amy's Bird Sanctuary",
            "Line2": "12 Harbor Way",
            "City": "San Pablo",
            "CountrySubDivisionCode": "CA",
            "PostalCode": "87999",
            "Country": "USA",
        },
        "ShipMethodRef": {"value": "UPS", "name": "UPS"},
        "PaymentMethodRef": {"value": "3", "name": "Visa"},
        "CustomerMemo": {"value": "Leave at the back door"},
    }
    base.update(overrides)
    return base


def order_total(order: dict[str, Any]) -> Decimal:
    items = sum((Decimal(i["quantity"]) * i["unitPrice"] for i in order["items"]), Decimal(0))
    return Decimal(items + order["shippingAmount"] + order["taxAmount"])


def test_order_key_is_stable_per_document_and_distinguishes_types() -> None:
    assert order_key(REALM, "SalesReceipt", "41") == order_key(REALM, "SalesReceipt", "41")
    assert order_key(REALM, "SalesReceipt", "41") != order_key(REALM, "Invoice", "41")
    assert order_key(REALM, "SalesReceipt", "41") != order_key("123", "SalesReceipt", "41")


def test_sales_receipt_maps_items_shipping_tax_and_adds_up() -> None:
    settings = FromBooksSettings(store_id=310204, ship_via_services={"ups": "UPS® Ground"})
    order = to_shipstation(sale(), "SalesReceipt", REALM, settings, items=ITEMS, customer=AMY)
    assert order["orderKey"] == f"qbo-{REALM}-SalesReceipt-41"
    assert order["orderNumber"] == "1041"
    assert order["orderStatus"] == "awaiting_shipment"
    assert order["orderDate"] == "2026-11-20T00:00:00.0000000"
    # sku from the item's Sku, else its name; quantity and unit price from the line
    assert [(i["sku"], i["quantity"], i["unitPrice"]) for i in order["items"]] == [
        ("HAT-RED", 2, Decimal("19.99")),
        ("Coffee Mug", 1, Decimal("10.99")),
    ]
    assert order["shippingAmount"] == Decimal("5.00")
    assert order["taxAmount"] == Decimal("4.08")
    assert order_total(order) == Decimal("60.05")
    assert order["amountPaid"] == Decimal("60.05")
    assert order["paymentDate"] == order["orderDate"]
    assert order["advancedOptions"]["storeId"] == 310204
    assert order["advancedOptions"]["customField1"] == "1041"
    assert order["requestedShippingService"] == "UPS® Ground"
    assert order["customerEmail"] == "birds@intuit.com"
    assert order["customerNotes"] == "Leave at the back door"
    assert order["paymentMethod"] == "Visa"
    # the addressee on Line1 is not a street; countries become ISO codes
    assert order["shipTo"]["street1"] == "12 Harbor Way"
    assert order["shipTo"]["country"] == "US"
    assert order["shipTo"]["name"] == "Amy's Bird Sanctuary"
    assert order["billTo"]["street1"] == "4581 Finch St."
    assert order["billTo"]["phone"] == "555-0100"


def test_shipping_by_named_item_and_unmapped_ship_via() -> None:
    lines = [line("5", Decimal(1), "19.99", "19.99"), line("2", Decimal(1), "7.50", "7.50", line_id="2")]
    doc = sale(
        Line=lines, TxnTaxDetail={}, TotalAmt=Decimal("27.49"), ShipMethodRef={"value": "FedEx", "name": "FedEx"}
    )
    order = to_shipstation(doc, "SalesReceipt", REALM, FromBooksSettings(), items=ITEMS, customer=AMY)
    assert order["shippingAmount"] == Decimal("7.50")
    assert [i["sku"] for i in order["items"]] == ["HAT-RED"]
    assert order["requestedShippingService"] == "FedEx"
    assert "storeId" not in order["advancedOptions"]
    defaulted = to_shipstation(
        doc, "SalesReceipt", REALM, FromBooksSettings(default_service="Standard"), items=ITEMS, customer=AMY
    )
    assert defaulted["requestedShippingService"] == "Standard"


def test_invoice_with_a_balance_awaits_payment() -> None:
    doc = sale(Balance=Decimal("20.05"))
    settings = FromBooksSettings()
    order = to_shipstation(doc, "Invoice", REALM, settings, items=ITEMS, customer=AMY)
    assert order["orderStatus"] == "awaiting_payment"
    assert order["amountPaid"] == Decimal("40.00")
    assert status_for(sale(Balance=Decimal(0)), "Invoice", settings) == "awaiting_shipment"
    # A sales receipt is paid whatever it says about a balance.
    assert status_for(doc, "SalesReceipt", settings) == "awaiting_shipment"
    unpaid = to_shipstation(sale(Balance=Decimal("60.05")), "Invoice", REALM, settings, items=ITEMS, customer=AMY)
    assert unpaid["amountPaid"] == Decimal(0)
    assert "paymentDate" not in unpaid


def test_status_rules_are_settings() -> None:
    settings = FromBooksSettings(paid_status="on_hold", balance_due_status="awaiting_shipment")
    assert status_for(sale(), "SalesReceipt", settings) == "on_hold"
    assert status_for(sale(Balance=Decimal(1)), "Invoice", settings) == "awaiting_shipment"


def test_discount_becomes_a_negative_adjustment_item() -> None:
    lines = [
        line("5", Decimal(2), "19.99", "39.98"),
        {
            "Id": "2",
            "DetailType": "DiscountLineDetail",
            "Amount": Decimal("4.00"),
            "DiscountLineDetail": {"PercentBased": False},
        },
    ]
    doc = sale(Line=lines, TxnTaxDetail={"TotalTax": Decimal(0)}, TotalAmt=Decimal("35.98"))
    order = to_shipstation(doc, "SalesReceipt", REALM, FromBooksSettings(), items=ITEMS, customer=AMY)
    adjustment = [i for i in order["items"] if i["adjustment"]]
    assert [(i["name"], i["unitPrice"]) for i in adjustment] == [("Discount", Decimal("-4.00"))]
    assert order_total(order) == Decimal("35.98")


def test_fractional_quantity_ships_as_one_line_and_rounding_is_an_adjustment() -> None:
    lines = [line("5", Decimal("1.5"), "3.33", "5.00"), line("6", Decimal(3), "3.333", "10.00", line_id="2")]
    doc = sale(Line=lines, TxnTaxDetail={}, TotalAmt=Decimal("15.00"))
    order = to_shipstation(doc, "SalesReceipt", REALM, FromBooksSettings(), items=ITEMS, customer=AMY)
    first = order["items"][0]
    assert (first["quantity"], first["unitPrice"], first["name"]) == (1, Decimal("5.00"), "Red Hat (1.5)")
    assert order["items"][1]["quantity"] == 3
    assert all(isinstance(i["quantity"], int) for i in order["items"])
    assert order_total(order) == Decimal("15.00")


def test_group_lines_are_their_components() -> None:
    group = {
        "Id": "1",
        "DetailType": "GroupLineDetail",
        "GroupLineDetail": {"GroupItemRef": {"value": "9"}, "Line": [line("5", Decimal(1), "19.99", "19.99")]},
    }
    doc = sale(Line=[group], TxnTaxDetail={}, TotalAmt=Decimal("19.99"))
    order = to_shipstation(doc, "SalesReceipt", REALM, FromBooksSettings(), items=ITEMS, customer=AMY)
    assert [i["sku"] for i in order["items"]] == ["HAT-RED"]


def test_addresses_fall_back_to_the_customer_and_are_required() -> None:
    customer = CustomerInfo(display_name="Cool Cars", ship_addr={"Line1": "1 Main St", "City": "Reno", "Country": ""})
    order = to_shipstation(
        sale(BillAddr=None, ShipAddr=None), "SalesReceipt", REALM, FromBooksSettings(), items=ITEMS, customer=customer
    )
    assert order["shipTo"]["street1"] == order["billTo"]["street1"] == "1 Main St"
    assert order["shipTo"]["country"] == "US"
    with pytest.raises(MappingError) as caught:
        to_shipstation(
            sale(BillAddr=None, ShipAddr=None), "SalesReceipt", REALM, FromBooksSettings(), items=ITEMS, customer=None
        )
    assert caught.value.field == "ShipAddr"
    assert caught.value.order == "1041"


def test_bad_amount_names_the_field() -> None:
    doc = sale(TotalAmt="lots")
    with pytest.raises(MappingError) as caught:
        to_shipstation(doc, "SalesReceipt", REALM, FromBooksSettings(), items=ITEMS, customer=AMY)
    assert caught.value.field == "TotalAmt"


def test_document_without_number_uses_type_and_id() -> None:
    order = to_shipstation(sale(DocNumber=None), "Invoice", REALM, FromBooksSettings(), items=ITEMS, customer=AMY)
    assert order["orderNumber"] == "Invoice-41"


def test_filters_by_transaction_type_and_class() -> None:
    settings = FromBooksSettings(transaction_types=[SaleType.INVOICE], class_ids=["30"])
    assert wanted(sale(), "SalesReceipt", settings) is not None
    assert wanted(sale(), "Invoice", settings) is None
    other_class = sale(ClassRef={"value": "31"})
    assert wanted(other_class, "Invoice", settings) is not None
    # A class on a line counts as much as the document's.
    lines = [line("5", Decimal(1), "19.99", "19.99", ClassRef={"value": "30"})]
    assert class_ids(sale(ClassRef=None, Line=lines)) == {"30"}
    assert wanted(sale(ClassRef=None, Line=lines), "Invoice", settings) is None
    assert wanted(other_class, "Invoice", FromBooksSettings()) is None


def test_voided_and_deleted_are_recognised_and_cancel_keeps_the_whole_order() -> None:
    assert is_voided(sale(TotalAmt=Decimal(0), PrivateNote="Voided"))
    assert is_voided(sale(TotalAmt=Decimal(0), PrivateNote="Voided - was 1041"))
    assert not is_voided(sale(TotalAmt=Decimal(0), PrivateNote="free sample"))
    assert not is_voided(sale(PrivateNote="Voided"))
    assert is_deleted({"Id": "41", "status": "Deleted"})
    assert not is_deleted(sale())
    body = to_shipstation(sale(), "SalesReceipt", REALM, FromBooksSettings(), items=ITEMS, customer=AMY)
    cancel = cancelled(body)
    assert cancel["orderStatus"] == "cancelled"
    assert {k: v for k, v in cancel.items() if k != "orderStatus"} == {
        k: v for k, v in body.items() if k != "orderStatus"
    }


def test_tracking_update_is_sparse_and_within_quickbooks_lengths() -> None:
    facts = ShipmentFacts(
        70000001, "k", "9400111899223344556677889900112233", "stamps_com", "usps_priority_mail", date(2026, 11, 21)
    )
    body = tracking_update("41", "3", facts)
    assert body["sparse"] is True
    assert (body["Id"], body["SyncToken"]) == ("41", "3")
    assert len(body["TrackingNum"]) == 31
    assert body["ShipDate"] == "2026-11-21"
    assert len(body["ShipMethodRef"]["value"]) <= 31
    assert set(body) == {"Id", "SyncToken", "sparse", "TrackingNum", "ShipDate", "ShipMethodRef"}


def test_shipment_facts_reads_shipstation_rows() -> None:
    raw = {
        "shipmentId": 70000001,
        "orderKey": "qbo-1-SalesReceipt-4",
        "trackingNumber": "1Z",
        "carrierCode": "ups",
        "serviceCode": None,
        "shipDate": "2026-11-21",
        "voided": False,
    }
    facts = shipment_facts(raw)
    assert facts is not None
    assert (facts.shipment_id, facts.tracking_number, facts.ship_date) == (70000001, "1Z", date(2026, 11, 21))
    assert shipment_facts({**raw, "orderKey": None}) is None
    assert shipment_facts({**raw, "shipmentId": "x"}) is None
    voided = shipment_facts({**raw, "voided": True})
    assert voided is not None
    assert voided.voided


def test_settings_field_round_trips_and_validates() -> None:
    settings = ChannelSettings(
        direction=SyncDirection.FROM_BOOKS,
        from_books=FromBooksSettings(class_ids=[" 30 ", ""], store_id=7, ship_via_services={"UPS": "UPS Ground"}),
    )
    again = ChannelSettings.model_validate(settings.model_dump(mode="json"))
    assert again.from_books == settings.from_books
    assert again.from_books.class_ids == ["30"]
    assert ChannelSettings().from_books.entities == ["SalesReceipt", "Invoice"]
    assert ChannelSettings.model_validate({"version": 3}).from_books == FromBooksSettings()
    with pytest.raises(ValidationError):
        FromBooksSettings(transaction_types=[])
    with pytest.raises(ValidationError):
        FromBooksSettings.model_validate({"unknown": 1})
    with pytest.raises(ValidationError):
        FromBooksSettings.model_validate({"paid_status": "shipped"})
