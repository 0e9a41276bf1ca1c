"""A channel's shipment in qbXML: ShipDate, ShipMethodRef (only a ship method the company file has), the tracking
number in `Other` (≤ 29) or under the memo, in the SDK's element order, on adds, whole Mods and shipment-only Mods."""

from __future__ import annotations

from datetime import date

import pytest
from lxml import etree
from test_qbxml import sale

from ledgerlink.books.qbd.qbxml import desktop_shipment, document_add, document_mod, shipment_mod
from ledgerlink.domain.documents import DocumentKind, Shipment, UpdateScope
from ledgerlink.domain.errors import MappingError
from ledgerlink.sandbox.qbd.schema import check_request

METHODS = ("UPS", "FedEx", "US Mail")
UPS = Shipment(tracking_number="1Z999AA10123456784", ship_date=date(2025, 1, 8), carrier="UPS")


def body(element: etree._Element) -> etree._Element:
    check_request(element)  # the SDK's content model: a wrong order is a schema error in QuickBooks
    return element[0]


def test_desktop_shipment_uses_a_known_ship_method_and_other() -> None:
    found = desktop_shipment(UPS.model_copy(update={"carrier": "ups"}), METHODS)
    assert (found.ship_method, found.other, found.memo_line) == ("UPS", UPS.tracking_number, "")
    unknown = desktop_shipment(UPS.model_copy(update={"carrier": "DHL Express"}), METHODS)
    assert (unknown.ship_method, unknown.memo_line) == ("", "Shipped via DHL Express")
    two = desktop_shipment(UPS.model_copy(update={"carrier": "DHL, FedEx"}), METHODS)
    assert (two.ship_method, two.memo_line) == ("FedEx", "Shipped via DHL, FedEx")
    long = desktop_shipment(UPS.model_copy(update={"tracking_number": "9" * 30}), METHODS)
    assert (long.other, long.memo_line) == ("", f"Tracking {'9' * 30}")


@pytest.mark.parametrize("kind", [DocumentKind.SALES_RECEIPT, DocumentKind.INVOICE, DocumentKind.SALES_ORDER])
def test_add_and_mod_carry_the_shipment_in_the_sdk_order(kind: DocumentKind) -> None:
    doc = sale(kind, shipment=UPS)
    for element in (
        document_add(doc, "1", tax_item="Tax", ship_methods=METHODS),
        document_mod(doc, "1", txn_id="1-1", edit_sequence="7", tax_item="Tax", ship_methods=METHODS),
    ):
        found = body(element)
        assert found.findtext("ShipDate") == "2025-01-08"
        assert found.findtext("ShipMethodRef/FullName") == "UPS"
        assert found.findtext("Other") == UPS.tracking_number
        assert "Shipped via" not in (found.findtext("Memo") or "")
    plain = body(document_add(sale(kind), "1", tax_item="Tax", ship_methods=METHODS))
    assert plain.find("ShipDate") is None
    assert plain.find("Other") is None


def test_shipment_only_mod_names_nothing_else() -> None:
    doc = sale(DocumentKind.INVOICE, shipment=UPS, scope=UpdateScope.SHIPMENT)
    found = body(shipment_mod(doc, "1", txn_id="1-1", edit_sequence="7", ship_methods=METHODS))
    assert [child.tag for child in found] == ["TxnID", "EditSequence", "ShipDate", "ShipMethodRef", "Other"]
    unknown = doc.model_copy(update={"shipment": UPS.model_copy(update={"carrier": "DHL"})})
    found = body(shipment_mod(unknown, "1", txn_id="1-1", edit_sequence="7", ship_methods=METHODS))
    assert found.find("ShipMethodRef") is None
    assert (found.findtext("Memo") or "").endswith("]\nShipped via DHL")
    with pytest.raises(MappingError, match="no shipment"):
        shipment_mod(sale(DocumentKind.CREDIT_MEMO, shipment=UPS), "1", txn_id="1-1", edit_sequence="7")
