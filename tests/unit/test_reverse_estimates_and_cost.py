"""The reverse direction's estimates, sales orders and shipping-cost write-back, purely."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from test_reverse_mapping import AMY, ITEMS, REALM, order_total, sale

from ledgerlink.domain.reverse import (
    MAX_PRIVATE_NOTE,
    FromBooksSettings,
    SaleType,
    ShipmentFacts,
    amount_paid,
    is_voided,
    note_with_cost,
    shipment_facts,
    to_shipstation,
    tracking_update,
)

LABEL = ShipmentFacts(70000012, "k", "1Z999", "ups", "ups_ground", date(2026, 11, 25), shipment_cost=Decimal("10.6"))


def test_an_estimate_is_an_order_to_ship_with_nothing_paid() -> None:
    estimate = sale(TxnStatus="Accepted")
    estimate.pop("Balance")
    estimate.pop("PaymentMethodRef")
    body = to_shipstation(estimate, "Estimate", REALM, FromBooksSettings(), items=ITEMS, customer=AMY)
    assert body["orderStatus"] == "awaiting_shipment"
    assert body["amountPaid"] == Decimal(0)
    assert "paymentDate" not in body
    assert order_total(body) == Decimal("60.05")
    assert body["orderKey"] == f"qbo-{REALM}-Estimate-41"
    assert amount_paid(sale(Balance=Decimal("20.05")), "Invoice", Decimal("60.05")) == Decimal("40.00")
    assert amount_paid(sale(), "SalesReceipt", Decimal("60.05")) == Decimal("60.05")


def test_a_rejected_estimate_is_off_like_a_voided_sale() -> None:
    assert is_voided(sale(TxnStatus="Rejected"))
    assert not is_voided(sale(TxnStatus="Pending"))
    assert not is_voided(sale(TxnStatus="Closed"))


def test_sales_orders_are_desktop_only_and_never_asked_of_quickbooks_online() -> None:
    settings = FromBooksSettings(transaction_types=[SaleType.SALES_ORDER, SaleType.ESTIMATE, SaleType.INVOICE])
    assert settings.entities == ["SalesOrder", "Estimate", "Invoice"]
    assert settings.online_entities == ["Estimate", "Invoice"]
    assert SaleType.SALES_ORDER.desktop_only
    assert not SaleType.ESTIMATE.desktop_only
    assert FromBooksSettings().write_shipping_cost is False


def test_the_label_cost_is_one_memo_line_added_once() -> None:
    line = "ShipStation shipment 70000012: shipping cost 10.60 (ups ups_ground, 2026-11-25)"
    assert note_with_cost("", LABEL) == line
    noted = note_with_cost("Gift wrap, please", LABEL)
    assert noted == f"Gift wrap, please\n{line}"
    assert note_with_cost(noted, LABEL) is None  # already there: a retry or a second delivery adds nothing
    second = ShipmentFacts(70000013, "k", "1Z1000", "usps", "", None, shipment_cost=Decimal("4.35"))
    assert note_with_cost(noted, second) == f"{noted}\nShipStation shipment 70000013: shipping cost 4.35 (usps)"


@pytest.mark.parametrize("cost", [None, Decimal(0), Decimal("-1")])
def test_no_cost_no_line(cost: Decimal | None) -> None:
    marked = ShipmentFacts(70000014, "k", "1Z", "ups", "", None, shipment_cost=cost)
    assert note_with_cost("memo", marked) is None


def test_a_full_memo_gives_way_from_its_oldest_text_never_ours() -> None:
    long_note = "x" * MAX_PRIVATE_NOTE
    noted = note_with_cost(long_note, LABEL)
    assert noted is not None
    assert len(noted) == MAX_PRIVATE_NOTE
    assert noted.endswith("shipping cost 10.60 (ups ups_ground, 2026-11-25)")


def test_the_write_back_carries_the_memo_only_when_asked() -> None:
    assert "PrivateNote" not in tracking_update("41", "3", LABEL)
    body = tracking_update("41", "3", LABEL, private_note="memo")
    assert body["PrivateNote"] == "memo"
    assert body["TrackingNum"] == "1Z999"


def test_shipment_cost_is_read_exactly() -> None:
    raw = {"shipmentId": 7, "orderKey": "k", "shipmentCost": 10.6, "shipDate": "2026-11-25"}
    facts = shipment_facts(raw)
    assert facts is not None
    assert facts.shipment_cost == Decimal("10.6")
    bare = shipment_facts({**raw, "shipmentCost": None})
    assert bare is not None
    assert bare.shipment_cost is None
