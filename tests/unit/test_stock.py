"""Stock levels from the books to a channel, purely: matching by SKU, the buffer, only what differs."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledgerlink.domain.stock import BooksStock, ChannelVariant, LevelChange, available, compare, match

pytestmark = pytest.mark.unit

D = Decimal


def item(name: str, sku: str, quantity: str, item_id: str = "") -> BooksStock:
    return BooksStock(item_id=item_id or name, name=name, sku=sku, quantity=D(quantity))


VARIANTS = [
    ChannelVariant(sku="TEE-M", inventory_item_id="901", variant_id="11"),
    ChannelVariant(sku="mug-01", inventory_item_id="902", variant_id="12"),
    ChannelVariant(sku="DUP", inventory_item_id="903", variant_id="13"),
    ChannelVariant(sku="dup", inventory_item_id="904", variant_id="14"),
]


def test_on_hand_less_buffer_whole_units_never_negative() -> None:
    assert available(D("10"), 2) == 8
    assert available(D("2.9"), 0) == 2
    assert available(D("1"), 3) == 0
    assert available(D("-4"), 0) == 0
    assert available(D("NaN"), 0) == 0


@given(st.decimals(min_value=-1000, max_value=1000, places=2), st.integers(min_value=0, max_value=50))
def test_available_is_never_more_than_on_hand_nor_negative(quantity: Decimal, buffer: int) -> None:
    result = available(quantity, buffer)
    assert result >= 0
    assert result <= max(0, quantity)


def test_match_by_sku_case_insensitively_with_the_buffer() -> None:
    plan = match([item("T-shirt M", "TEE-M", "12"), item("Mug", "MUG-01", "3")], VARIANTS, buffer=1, sku_map={})
    assert plan.changes == [
        LevelChange(sku="MUG-01", inventory_item_id="902", available=2, was=None, item_name="Mug"),
        LevelChange(sku="TEE-M", inventory_item_id="901", available=11, was=None, item_name="T-shirt M"),
    ]
    assert plan.wanted == ["901", "902"]


def test_item_without_sku_matches_by_name_and_the_sku_map_wins() -> None:
    plan = match([item("TEE-M", "", "4")], VARIANTS, buffer=0, sku_map={})
    assert [c.sku for c in plan.changes] == ["TEE-M"]
    mapped = match([item("Coffee mug", "OLD-SKU", "4")], VARIANTS, buffer=0, sku_map={"mug-01": "coffee MUG"})
    assert [(c.sku, c.inventory_item_id) for c in mapped.changes] == [("mug-01", "902")]


def test_unmatched_and_ambiguous_skus_are_explained_not_guessed() -> None:
    plan = match(
        [item("Hat", "HAT", "1"), item("Dup", "DUP", "5"), item("A", "TEE-M", "1", "a"), item("B", "tee-m", "2", "b")],
        VARIANTS,
        buffer=0,
        sku_map={},
    )
    assert plan.changes == []
    assert "no Shopify variant has SKU 'HAT'" in plan.unmatched["HAT"]
    assert "2 Shopify variants" in plan.problems["DUP"]
    assert "two QuickBooks items stock SKU" in plan.problems["tee-m"]


def test_only_levels_that_differ_are_sent() -> None:
    plan = match([item("T", "TEE-M", "12"), item("M", "MUG-01", "3")], VARIANTS, buffer=0, sku_map={})
    left = compare(plan, {"901": 12, "902": 7})
    assert [(c.sku, c.available, c.was) for c in left.changes] == [("MUG-01", 3, 7)]
    assert left.unchanged == ["TEE-M"]
    assert compare(left, {"902": 3}).changes == []
    # A variant with no level at the location yet gets one.
    assert [c.was for c in compare(plan, {}).changes] == [None, None]
