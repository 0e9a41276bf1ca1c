"""Stock levels from the books to a channel, purely: which quantities to send, and why a SKU is left out.

QuickBooks is the master. An inventory item's quantity on hand, less the channel's buffer (kept back for
orders not synced yet), whole units and never below zero, is what the channel should show as available for the
variant with the same SKU. Only levels that differ from what the channel shows now are sent, so pushing twice
sends nothing the second time. A SKU that cannot be matched one-to-one is explained, never guessed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from ledgerlink.domain.catalog import fold


@dataclass(frozen=True, slots=True)
class BooksStock:
    """An inventory item of the books and its quantity on hand."""

    item_id: str
    name: str
    sku: str
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class ChannelVariant:
    """A channel's variant (a sellable SKU) and the id its stock is kept under."""

    sku: str
    inventory_item_id: str
    variant_id: str = ""


@dataclass(frozen=True, slots=True)
class LevelChange:
    """Set the stock of one SKU in the channel to `available` (it shows `was` now; None when it has no level)."""

    sku: str
    inventory_item_id: str
    available: int
    was: int | None
    item_name: str = ""


@dataclass(slots=True)
class StockPlan:
    """What to send, what is already right, and what is left out with the reason, per SKU."""

    changes: list[LevelChange] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    unmatched: dict[str, str] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)

    @property
    def wanted(self) -> list[str]:
        """The channel's inventory item ids the plan needs the current levels of."""
        return sorted({c.inventory_item_id for c in self.changes})


def available(quantity: Decimal, buffer: int) -> int:
    """What the channel may sell: whole units on hand, less the buffer, never below zero."""
    if not quantity.is_finite():
        return 0
    return max(0, math.floor(quantity) - max(0, buffer))


def channel_skus(item: BooksStock, sku_map: Mapping[str, str]) -> list[str]:
    """The channel SKUs an item stocks: those mapped to it by name (Settings → Items), else its own SKU, else its
    name (ledgerlink creates items named after the SKU)."""
    mapped = [sku for sku, name in sku_map.items() if fold(name) == fold(item.name) and sku.strip()]
    if mapped:
        return sorted(s.strip() for s in mapped)
    own = item.sku.strip() or item.name.strip()
    return [own] if own else []


def match(
    items: Iterable[BooksStock], variants: Iterable[ChannelVariant], *, buffer: int, sku_map: Mapping[str, str]
) -> StockPlan:
    """Match items to variants by SKU (case-insensitive) and compute the level each should have.

    The result's `changes` carry `was=None`; `compare` then drops those the channel already shows."""
    plan = StockPlan()
    by_sku: dict[str, list[ChannelVariant]] = {}
    for variant in variants:
        if variant.sku.strip():
            by_sku.setdefault(fold(variant.sku.strip()), []).append(variant)
    claimed: dict[str, BooksStock] = {}
    conflicted: set[str] = set()
    for item in items:
        for sku in channel_skus(item, sku_map):
            key = fold(sku)
            other = claimed.get(key)
            if other is not None and other.item_id != item.item_id:
                conflicted.add(key)
                plan.problems[sku] = (
                    f"two QuickBooks items stock SKU {sku!r} ({other.name!r} and {item.name!r}); map the SKU to one "
                    "of them in Settings → Items"
                )
                continue
            claimed[key] = item
    for key, item in claimed.items():
        if key in conflicted:
            continue
        sku = next(s for s in channel_skus(item, sku_map) if fold(s) == key)
        found = by_sku.get(key, [])
        if not found:
            plan.unmatched[sku] = f"no Shopify variant has SKU {sku!r} (QuickBooks item {item.name!r})"
            continue
        if len({v.inventory_item_id for v in found}) > 1:
            ids = ", ".join(sorted(v.variant_id or v.inventory_item_id for v in found))
            plan.problems[sku] = f"SKU {sku!r} is on {len(found)} Shopify variants ({ids}); give each its own SKU"
            continue
        plan.changes.append(
            LevelChange(
                sku=sku,
                inventory_item_id=found[0].inventory_item_id,
                available=available(item.quantity, buffer),
                was=None,
                item_name=item.name,
            )
        )
    plan.changes.sort(key=lambda c: fold(c.sku))
    return plan


def compare(plan: StockPlan, current: Mapping[str, int]) -> StockPlan:
    """Keep only the changes whose level differs from what the channel shows (`current` by inventory item id)."""
    kept: list[LevelChange] = []
    unchanged = list(plan.unchanged)
    for change in plan.changes:
        was = current.get(change.inventory_item_id)
        if was == change.available:
            unchanged.append(change.sku)
        else:
            kept.append(LevelChange(change.sku, change.inventory_item_id, change.available, was, change.item_name))
    return StockPlan(changes=kept, unchanged=unchanged, unmatched=dict(plan.unmatched), problems=dict(plan.problems))
