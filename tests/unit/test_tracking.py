"""Tracking: a fulfilled order's tracking number, ship date and carrier go onto the posted sale, once.

The shipment is not a financial change: it is written whatever the update policy, as a shipment-only update
of the document as the books hold it, and the QuickBooks Online body of that update holds nothing else.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from orderbook import full_catalog, make_order, make_settings

from ledgerlink.books.qbo.mapping import shipment_update, to_qbo
from ledgerlink.channels.shopify import parse_order
from ledgerlink.domain.catalog import CompanyFacts
from ledgerlink.domain.documents import Document, DocumentKind, Shipment, UpdateScope, shipment_of
from ledgerlink.domain.errors import MappingError
from ledgerlink.domain.order import Fulfillment, Order
from ledgerlink.domain.plan import ChangeKind, Plan, PostedDoc, reconcile
from ledgerlink.domain.settings import TransactionType, UpdatePolicy

pytestmark = pytest.mark.unit

D = Decimal
SHIPPED_AT = datetime(2024, 3, 10, 15, 30, tzinfo=UTC)
LATER = datetime(2024, 3, 11, 9, 0, tzinfo=UTC)
US = CompanyFacts(books="qbo", country="US", home_currency="USD", allow_shipping_line=True, automated_sales_tax=True)


def shipped(order: Order, *fulfillments: Fulfillment) -> Order:
    return order.model_copy(update={"fulfillments": fulfillments, "fulfillment_status": "fulfilled"})


def ups(number: str = "1Z999AA10123456784", when: datetime = SHIPPED_AT, **changes: Any) -> Fulfillment:
    fields: dict[str, Any] = {
        "fulfillment_id": f"f-{number}",
        "created_at": when,
        "status": "success",
        "tracking_company": "UPS",
        "tracking_numbers": (number,),
    }
    fields.update(changes)
    return Fulfillment(**fields)


def in_books(result: Plan) -> tuple[PostedDoc, ...]:
    return tuple(PostedDoc(doc.role, doc.model_copy(update={"marker": f"ll-x-{doc.role}"})) for doc in result.documents)


def after(result: Plan) -> tuple[PostedDoc, ...]:
    """What the books hold once `result`'s creates and updates went through."""
    return tuple(PostedDoc(c.role, c.document) for c in result.changes if c.operation is not ChangeKind.VOID)


# -- the shipment of an order ---------------------------------------------------------------------------------


def test_no_tracking_number_no_shipment() -> None:
    assert shipment_of(make_order()) is None
    assert shipment_of(shipped(make_order(), ups(tracking_numbers=()))) is None
    assert shipment_of(shipped(make_order(), ups(status="cancelled"))) is None


def test_shipment_is_first_date_all_numbers_and_carriers() -> None:
    order = shipped(
        make_order(),
        ups("1Z2", when=LATER, tracking_company="FedEx"),
        ups("1Z1"),
        ups("1Z3", status="cancelled", tracking_company="DHL"),
    )
    assert shipment_of(order) == Shipment(tracking_number="1Z1 1Z2", ship_date=date(2024, 3, 10), carrier="UPS, FedEx")


def test_too_many_numbers_keep_the_first_and_say_how_many_more() -> None:
    numbers = [f"1Z999AA1012345678{i}" for i in range(3)]
    order = shipped(make_order(), *(ups(n) for n in numbers))
    found = shipment_of(order)
    assert found is not None
    assert found.tracking_number == f"{numbers[0]} +2"
    assert len(found.tracking_number) <= 31


# -- reconcile: written once, whatever the policy -------------------------------------------------------------


@pytest.mark.parametrize("policy", list(UpdatePolicy))
def test_fulfilment_writes_the_tracking_once(policy: UpdatePolicy) -> None:
    settings = make_settings(update_policy=policy)
    first = reconcile(make_order(), settings, full_catalog())
    assert first.documents[0].shipment is None
    order = shipped(make_order(updated_at=LATER), ups())
    second = reconcile(order, settings, full_catalog(), books=in_books(first))
    assert [(c.operation, c.role) for c in second.changes] == [(ChangeKind.UPDATE, "receipt")]
    doc = second.changes[0].document
    assert doc.scope is UpdateScope.SHIPMENT
    assert doc.shipment == Shipment(tracking_number="1Z999AA10123456784", ship_date=date(2024, 3, 10), carrier="UPS")
    assert doc.marker == "ll-x-receipt"  # the document as the books hold it, plus the shipment
    third = reconcile(order, settings, full_catalog(), books=after(second))
    assert third.changes == []


def moved(order: Order) -> Order:
    """The order with the buyer's billing city changed: a change of the sale itself."""
    return order.model_copy(update={"billing_address": order.billing_address.model_copy(update={"city": "Reno"})})


def test_ignore_policy_writes_tracking_but_not_the_other_change() -> None:
    settings = make_settings(update_policy=UpdatePolicy.IGNORE)
    first = reconcile(make_order(), settings, full_catalog())
    posted = first.documents[0]
    second = reconcile(
        moved(shipped(make_order(updated_at=LATER), ups())), settings, full_catalog(), books=in_books(first)
    )
    (change,) = second.changes
    # The sale stays as posted: "ignore" holds for the order's changes, not for its tracking.
    assert change.document.billing_address == posted.billing_address
    assert change.document.lines == posted.lines
    assert change.document.total == posted.total
    assert change.document.scope is UpdateScope.SHIPMENT
    assert change.document.shipment is not None
    assert reconcile(moved(shipped(make_order(), ups())), settings, full_catalog(), books=after(second)).changes == []


def test_update_policy_sends_a_financial_change_whole_with_its_tracking() -> None:
    settings = make_settings(update_policy=UpdatePolicy.UPDATE)
    first = reconcile(make_order(), settings, full_catalog())
    second = reconcile(
        moved(shipped(make_order(updated_at=LATER), ups())), settings, full_catalog(), books=in_books(first)
    )
    (change,) = second.changes
    assert change.document.scope is UpdateScope.WHOLE
    assert change.document.shipment is not None
    assert change.document.billing_address is not None
    assert change.document.billing_address.city == "Reno"


def test_void_and_repost_does_not_repost_for_tracking() -> None:
    settings = make_settings(update_policy=UpdatePolicy.VOID_AND_REPOST)
    first = reconcile(make_order(), settings, full_catalog())
    second = reconcile(shipped(make_order(updated_at=LATER), ups()), settings, full_catalog(), books=in_books(first))
    assert [c.operation for c in second.changes] == [ChangeKind.UPDATE]


def test_a_new_parcel_writes_the_tracking_again() -> None:
    settings = make_settings()
    first = reconcile(shipped(make_order(), ups("1Z1")), settings, full_catalog())
    assert first.documents[0].shipment is not None
    second = reconcile(
        shipped(make_order(updated_at=LATER), ups("1Z1"), ups("1Z2", when=LATER)),
        settings,
        full_catalog(),
        books=in_books(first),
    )
    (change,) = second.changes
    assert change.document.shipment is not None
    assert change.document.shipment.tracking_number == "1Z1 1Z2"


def test_invoice_gets_the_tracking_not_its_payment() -> None:
    settings = make_settings(transaction_type=TransactionType.INVOICE)
    first = reconcile(make_order(), settings, full_catalog())
    second = reconcile(shipped(make_order(updated_at=LATER), ups()), settings, full_catalog(), books=in_books(first))
    assert [(c.operation, c.document.kind) for c in second.changes] == [(ChangeKind.UPDATE, DocumentKind.INVOICE)]


# -- QuickBooks Online bodies ---------------------------------------------------------------------------------


def shipped_receipt() -> Document:
    result = reconcile(shipped(make_order(), ups()), make_settings(), full_catalog())
    return result.documents[0]


def test_sale_body_carries_tracking_ship_date_and_ship_via() -> None:
    body = to_qbo(shipped_receipt(), company=US)
    assert body["TrackingNum"] == "1Z999AA10123456784"
    assert body["ShipDate"] == "2024-03-10"
    assert body["ShipMethodRef"] == {"value": "UPS", "name": "UPS"}


def test_shipment_update_body_holds_only_the_tracking() -> None:
    doc = shipped_receipt().model_copy(update={"scope": UpdateScope.SHIPMENT})
    assert shipment_update(doc) == {
        "TrackingNum": "1Z999AA10123456784",
        "ShipDate": "2024-03-10",
        "ShipMethodRef": {"value": "UPS", "name": "UPS"},
    }
    with pytest.raises(MappingError) as caught:
        shipment_update(doc.model_copy(update={"shipment": None}))
    assert caught.value.field == "shipment"


# -- the Shopify parser ---------------------------------------------------------------------------------------


def shopify_order(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": 450789469,
        "order_number": 1001,
        "created_at": "2024-03-08T10:00:00-05:00",
        "updated_at": "2024-03-10T10:00:00-05:00",
        "currency": "USD",
        "financial_status": "paid",
        "fulfillment_status": "fulfilled",
        "line_items": [{"id": 1, "sku": "TEE", "name": "Tee", "quantity": 1, "price": "10.00"}],
        "subtotal_price": "10.00",
        "total_tax": "0.00",
        "total_price": "10.00",
    }
    raw.update(changes)
    return raw


def test_parser_reads_fulfillments_old_and_new_shapes() -> None:
    order = parse_order(
        shopify_order(
            fulfillments=[
                {
                    "id": 255858046,
                    "status": "success",
                    "created_at": "2024-03-09T12:00:00-05:00",
                    "tracking_company": "USPS",
                    "tracking_number": "9400100000000000000000",
                },
                {"id": 255858047, "status": "success", "tracking_numbers": ["A1", "B2"], "tracking_company": None},
            ]
        )
    )
    first, second = order.fulfillments
    assert first.tracking_numbers == ("9400100000000000000000",)
    assert first.created_at is not None
    assert first.created_at.date() == date(2024, 3, 9)
    assert second.tracking_numbers == ("A1", "B2")
    assert second.tracking_company == ""


def test_parser_names_a_bad_fulfillment_field() -> None:
    with pytest.raises(MappingError) as caught:
        parse_order(shopify_order(fulfillments=[{"id": 1, "tracking_numbers": "1Z1"}]))
    assert caught.value.field == "fulfillments[0].tracking_numbers"
    assert caught.value.order == "1001"


def test_orders_without_fulfillments_keep_their_hash() -> None:
    order = make_order()
    body = order.model_dump(mode="json", exclude={"updated_at", "fulfillments"})
    expected = hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    assert order.content_hash() == expected
    assert shipped(order, ups()).content_hash() != order.content_hash()
