"""Item matching modes, the SKU mapping table and the tax jurisdiction table."""

from __future__ import annotations

import pytest
from orderbook import ADDRESS, full_catalog, make_settings, product, simple_order

from ledgerlink.domain.documents import LineKind
from ledgerlink.domain.errors import MappingError
from ledgerlink.domain.plan import catalog_query, plan
from ledgerlink.domain.settings import ItemMatch, ItemSettings, TaxJurisdiction, TaxSettings

pytestmark = pytest.mark.unit


def item_ids(settings_items: ItemSettings, *lines: object) -> list[str | None]:
    order = simple_order(*lines)  # type: ignore[arg-type]
    result = plan(order, make_settings(items=settings_items), full_catalog())
    return [line.item.id if line.item else None for line in result.documents[0].lines if line.kind is LineKind.ITEM]


def test_sku_map_sends_several_skus_to_one_item() -> None:
    items = ItemSettings(sku_map={"mug-red": "MUG-01", "MUG-BLUE": "MUG-01"})
    assert item_ids(items, product("a", sku="MUG-RED"), product("b", sku="mug-blue")) == ["12", "12"]


def test_sku_map_to_an_item_quickbooks_lacks_names_the_line() -> None:
    items = ItemSettings(sku_map={"X-1": "No such item"})
    with pytest.raises(MappingError) as caught:
        item_ids(items, product("a", sku="X-1"))
    assert caught.value.field == "lines[0].sku"
    assert "No such item" in str(caught.value)


def test_catalog_query_asks_for_mapped_items() -> None:
    settings = make_settings(items=ItemSettings(sku_map={"X-1": "Blue widget"}))
    assert "Blue widget" in catalog_query(simple_order(product("a", sku="X-1")), settings).item_names


@pytest.mark.parametrize(
    ("match_on", "expected"),
    [(ItemMatch.SKU_THEN_NAME, "11"), (ItemMatch.NAME, "11"), (ItemMatch.SKU, None)],
)
def test_match_on(match_on: ItemMatch, expected: str | None) -> None:
    # An unknown SKU; the line's name is a QuickBooks item's name.
    ids = item_ids(ItemSettings(match_on=match_on), product("a", sku="TEE-NEW", name="T-shirt blue M"))
    assert ids == [expected]


def test_tax_code_from_the_jurisdiction_table_most_specific_wins() -> None:
    tax = TaxSettings(
        jurisdictions=[
            TaxJurisdiction(region="IL", tax_code="IL"),
            TaxJurisdiction(region="IL", city="Springfield", tax_code="IL-SPRINGFIELD"),
            TaxJurisdiction(region="CA", tax_code="CA"),
        ]
    )
    order = simple_order(product("a", sku="MUG-01"), shipping_address=ADDRESS)
    doc = plan(order, make_settings(tax=tax), full_catalog()).documents[0]
    assert doc.tax_code is not None
    assert doc.tax_code.name == "IL-SPRINGFIELD"
    elsewhere = order.model_copy(update={"shipping_address": ADDRESS.model_copy(update={"region": "NY"})})
    assert plan(elsewhere, make_settings(tax=tax), full_catalog()).documents[0].tax_code is None
