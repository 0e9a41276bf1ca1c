"""QuickBooks Desktop references that change form, not meaning: a customer or item ledgerlink queued is referred
to by its FullName until a Web Connector session brings back its ListID, and by the ListID after that. An order
edited in the channel in a way the books do not show must then plan no update (no `…Mod` for nothing)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from orderbook import GOLDEN_TOTAL, full_catalog, make_order, make_settings

from ledgerlink.domain.catalog import Catalog, CompanyFacts, CustomerRecord, ItemRecord
from ledgerlink.domain.documents import Document, Ref
from ledgerlink.domain.plan import Plan, PostedDoc, reconcile, same_document

pytestmark = pytest.mark.unit

LATER = datetime(2024, 3, 9, 10, 0, tzinfo=UTC)
# The golden order's records that ledgerlink queued on Desktop: FullName → the ListID QuickBooks gave them.
LIST_IDS = {"Jane Doe": "80000001-1709971200", "T-shirt blue M": "80000002-1709971200", "MUG-01": "80000003-1709971200"}


def desktop_catalog(*, list_ids_known: bool, books: str = "qbd") -> Catalog:
    """The golden order's records on a Desktop company: the customer and the two products as queued (id =
    FullName, what `QbdBooks` offers before the ListID is known) or as read back (id = ListID)."""
    ref = (lambda name: LIST_IDS[name]) if list_ids_known else (lambda name: name)
    seeded = full_catalog(books)
    return Catalog(
        company=CompanyFacts(books=books),
        accounts=seeded.accounts,
        payment_methods=seeded.payment_methods,
    ).with_records(
        items=[
            ItemRecord(id=ref("T-shirt blue M"), name="T-shirt blue M", sku="TEE-BLU-M"),
            ItemRecord(id=ref("MUG-01"), name="MUG-01", sku="MUG-01"),
            *(item for item in seeded.items_by_name.values() if item.id in {"21", "22", "23", "24", "25"}),
        ],
        customers=[CustomerRecord(id=ref("Jane Doe"), display_name="Jane Doe", email="jane@example.com")],
    )


def in_books(result: Plan) -> tuple[PostedDoc, ...]:
    return tuple(PostedDoc(doc.role, doc.model_copy(update={"marker": f"ll-x-{doc.role}"})) for doc in result.documents)


def refs_of(doc: Document) -> set[str | None]:
    return {doc.customer.id if doc.customer else None} | {line.item.id for line in doc.lines if line.item}


def posted_while_queued() -> tuple[PostedDoc, ...]:
    first = reconcile(make_order(), make_settings(), desktop_catalog(list_ids_known=False))
    [receipt] = first.documents
    assert first.changes
    assert receipt.total == GOLDEN_TOTAL
    # Posted while the records were only queued: referred to by FullName.
    assert {"Jane Doe", "T-shirt blue M", "MUG-01"} <= refs_of(receipt)
    return in_books(first)


def test_an_edit_the_books_do_not_show_plans_no_mod_when_only_the_reference_form_changed() -> None:
    books = posted_while_queued()
    known = desktop_catalog(list_ids_known=True)
    again = reconcile(
        make_order(note="gift wrap", tags=("vip",), updated_at=LATER), make_settings(), known, books=books
    )
    assert again.changes == []
    [wanted] = again.documents
    # The plan now refers by ListID; the books hold the FullName form of the same records.
    assert set(LIST_IDS.values()) <= refs_of(wanted)
    assert not same_document(books[0].document, wanted)
    assert same_document(books[0].document, wanted, catalog=known)
    assert same_document(wanted, books[0].document, catalog=known)


def test_a_real_change_is_still_an_update_and_refers_by_list_id() -> None:
    books = posted_while_queued()
    known = desktop_catalog(list_ids_known=True)
    order = make_order(updated_at=LATER)
    moved = order.model_copy(update={"shipping_address": order.shipping_address.model_copy(update={"city": "Chicago"})})
    changed = reconcile(moved, make_settings(), known, books=books)
    [update] = changed.changes
    assert update.operation.value == "update"
    assert update.document.total == GOLDEN_TOTAL
    assert update.document.shipping_address is not None
    assert update.document.shipping_address.city == "Chicago"
    assert set(LIST_IDS.values()) <= refs_of(update.document)


def test_another_record_is_not_the_same_reference() -> None:
    books = posted_while_queued()
    known = desktop_catalog(list_ids_known=True)
    posted = books[0].document
    assert posted.customer is not None
    # A different customer by ListID (e.g. the order moved to another customer) is a change.
    moved = posted.model_copy(update={"customer": Ref(key="customer:other", name="John Roe", id="80000009-1")})
    assert not same_document(posted, moved, catalog=known)
    # A FullName QuickBooks does not know stays a name of its own.
    unknown = posted.model_copy(update={"customer": Ref(key="customer:x", name="Nobody", id="Nobody")})
    assert not same_document(posted, unknown, catalog=known)


def test_online_references_are_ids_never_names() -> None:
    # QuickBooks Online never refers by name: an id that looks like a name is not matched to the named record.
    online = full_catalog("qbo")
    first = reconcile(make_order(), make_settings(), online)
    [receipt] = first.documents
    assert receipt.customer is not None
    assert receipt.customer.id == "77"
    named = receipt.model_copy(update={"customer": Ref(key="customer:77", name="Jane Doe", id="Jane Doe")})
    assert not same_document(receipt, named, catalog=online)
    assert same_document(receipt, receipt.model_copy(update={"memo": receipt.memo}), catalog=online)
    assert Decimal(receipt.total) == GOLDEN_TOTAL
