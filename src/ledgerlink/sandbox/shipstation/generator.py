"""Deterministic, realistic ShipStation v1 orders whose money adds up the way ShipStation computes it.

ShipStation keeps a marketplace order as items plus order-level amounts:

- a product item is `unitPrice` × `quantity`; a discount is an item with `adjustment: true` and a negative
  `unitPrice` (Amazon promotions, eBay coupons, "10% OFF" codes);
- `taxAmount` and `shippingAmount` are the order's; items may repeat their share of the tax (`taxAmount` per
  item) or leave it null, depending on the marketplace;
- `orderTotal` = Σ item `unitPrice` × `quantity` (adjustments negative) + `shippingAmount` + `taxAmount`;
- every timestamp is US Pacific wall-clock time without an offset, e.g. `2026-03-08T01:30:00.0000000`.

The generator is pure: the same arguments give the same orders, byte for byte.
"""

from __future__ import annotations

import random
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

_T = TypeVar("_T")

PACIFIC = ZoneInfo("America/Los_Angeles")
DEFAULT_START = datetime(2026, 2, 2, 17, 0, tzinfo=UTC)

_CENT = Decimal("0.01")
_ZERO = Decimal("0.00")
_ORDER_ID_BASE = 187_400_000
_ITEM_ID_BASE = 301_500_000
_CUSTOMER_ID_BASE = 52_310_000

# The statuses ShipStation gives an order; most orders pulled into the books are shipped ones.
_STATUSES = ("shipped", "awaiting_shipment", "cancelled", "awaiting_payment", "on_hold", "pending_fulfillment")
_STATUS_WEIGHTS = (55, 18, 8, 8, 6, 5)

# Marketplaces connected to the demo account, as `GET /stores` lists them.
STORES: tuple[dict[str, Any], ...] = (
    {"storeId": 310201, "storeName": "Amazon US", "marketplaceId": 2, "marketplaceName": "Amazon"},
    {"storeId": 310202, "storeName": "eBay – Vintage Finds", "marketplaceId": 3, "marketplaceName": "eBay"},
    {"storeId": 310203, "storeName": "Etsy: Céramique Studio", "marketplaceId": 27, "marketplaceName": "Etsy"},
    {"storeId": 310204, "storeName": "Manual Orders", "marketplaceId": 0, "marketplaceName": "ShipStation"},
)
_STORE_WEIGHTS = (45, 25, 20, 10)


@dataclass(frozen=True, slots=True)
class _Place:
    city: str
    state: str
    postal_code: str
    tax_rate: Decimal


# Combined US sales-tax rates the marketplaces collect (facilitator states), and one state without.
_PLACES = (
    _Place("Los Angeles", "CA", "90012", Decimal("0.095")),
    _Place("Seattle", "WA", "98101", Decimal("0.1035")),
    _Place("Austin", "TX", "78701", Decimal("0.0825")),
    _Place("Brooklyn", "NY", "11201", Decimal("0.08875")),
    _Place("Portland", "OR", "97204", Decimal("0")),
    _Place("Chicago", "IL", "60601", Decimal("0.1025")),
    _Place("Boston", "MA", "02108", Decimal("0.0625")),
)

_PRODUCTS = (
    ("MUG-12-BLU", "Stoneware Mug 12 oz – Blue", Decimal("18.50"), 14),
    ("MUG-12-WHT", "Stoneware Mug 12 oz – White", Decimal("18.50"), 14),
    ("BWL-SRV-L", "Serving Bowl, large", Decimal("64.00"), 48),
    ("PLT-DIN-4", "Dinner Plates (set of 4)", Decimal("89.99"), 96),
    ("VAS-BUD-S", "Bud Vase – small", Decimal("24.95"), 9),
    ("TEA-PT-1L", "Teapot 1 L «Kyūsu»", Decimal("72.00"), 30),
    ("CST-SET-6", "Coasters (set of 6)", Decimal("21.99"), 12),
    ("GFT-CARD", "Gift wrap", Decimal("4.99"), 2),
)

_SHIPPING = (
    (Decimal("0.00"), "Free Shipping", "stamps_com", "usps_first_class_mail"),
    (Decimal("5.99"), "Standard Shipping", "stamps_com", "usps_priority_mail"),
    (Decimal("8.95"), "Priority Mail", "stamps_com", "usps_priority_mail"),
    (Decimal("24.50"), "FedEx 2Day", "fedex", "fedex_2day"),
)
_SHIPPING_WEIGHTS = (4, 4, 3, 1)

_FIRST = ("Ava", "Liam", "Noah", "Mia", "Søren", "Amélie", "Ethan", "Chloé", "Olivia", "Lucas", "Grace", "Mateo")
_LAST = ("Smith", "García", "O'Brien", "Nguyen", "Johnson", "Kowalski", "Dubois", "Rossi", "Okafor", "Lindqvist")
# People whose names exercise unicode end to end (accents, ring, CJK without a space).
_SPECIAL_PEOPLE = (("Zoë", "Ångström"), ("José", "Müller"), ("小明", "王"))
_STREETS = ("Main Street", "Elm Avenue", "Harbor Road", "Rue Sainte-Catherine", "Oak Lane", "Cañon Drive")


def _choice(rng: random.Random, options: Sequence[_T]) -> _T:
    return options[int(rng.random() * len(options))]


def _cents(value: Decimal) -> Decimal:
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


def _number(value: Decimal) -> float:
    # ShipStation sends money as JSON numbers; two-decimal floats print back exactly ("18.5" → 18.50).
    return float(_cents(value))


def pacific_wall(moment: datetime) -> str:
    """An aware moment as ShipStation writes it: Pacific wall-clock time, 7 fractional digits, no offset."""
    local = moment.astimezone(PACIFIC)
    return local.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0"


def _midnight(moment: datetime) -> datetime:
    """The start of the Pacific day of `moment` (ship-by dates are whole days)."""
    return moment.astimezone(PACIFIC).replace(hour=0, minute=0, second=0, microsecond=0)


def _ascii_slug(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if ch.isascii() and ch.isalnum()) or "buyer"


def _full_name(first: str, last: str) -> str:
    # CJK names are written family name first, without a space.
    if any("\u4e00" <= ch <= "\u9fff" for ch in first):
        return f"{last}{first}"
    return f"{first} {last}"


def _allocate(amount: Decimal, bases: list[Decimal]) -> list[Decimal]:
    """Spread `amount` over `bases` in proportion, the last base taking the rounding remainder."""
    whole = sum(bases, _ZERO)
    if whole <= 0:
        return [_ZERO for _ in bases]
    shares: list[Decimal] = []
    left = amount
    for index, base in enumerate(bases):
        share = left if index == len(bases) - 1 else min(left, _cents(amount * base / whole))
        shares.append(share)
        left -= share
    return shares


def store_record(store: dict[str, Any]) -> dict[str, Any]:
    """A store as `GET /stores` answers it."""
    return {
        **store,
        "accountName": None,
        "email": "orders@example.com",
        "integrationUrl": None,
        "active": True,
        "companyName": "Ledgerlink Demo Ceramics",
        "phone": "+1 555-0100",
        "publicEmail": "hello@example.com",
        "website": "https://example.com",
        "refreshDate": "2026-01-01T00:00:00.0000000",
        "lastRefreshAttempt": "2026-01-01T00:00:00.0000000",
        "createDate": "2025-06-01T09:00:00.0000000",
        "modifyDate": "2025-06-01T09:00:00.0000000",
        "autoRefresh": store["marketplaceId"] != 0,
        "statusMappings": None,
    }


def _order_number(rng: random.Random, store: dict[str, Any], index: int) -> str:
    marketplace = store["marketplaceName"]
    if marketplace == "Amazon":
        return f"113-{rng.randrange(10**7):07d}-{rng.randrange(10**7):07d}"
    if marketplace == "eBay":
        return f"{rng.randrange(10**2):02d}-{rng.randrange(10**5):05d}-{rng.randrange(10**5):05d}"
    if marketplace == "Etsy":
        return str(3_100_000_000 + index * 13 + rng.randrange(13))
    return f"M-{1001 + index}"


def _address(name: str, place: _Place, street: str, company: str | None, phone: str) -> dict[str, Any]:
    return {
        "name": name,
        "company": company,
        "street1": street,
        "street2": None,
        "street3": None,
        "city": place.city,
        "state": place.state,
        "postalCode": place.postal_code,
        "country": "US",
        "phone": phone,
        "residential": company is None,
        "addressVerified": "Address validated successfully",
    }


class _Builder:
    """Builds orders one by one from one random stream."""

    def __init__(self, rng: random.Random, start: datetime, spacing: timedelta) -> None:
        self.rng = rng
        self.start = start
        self.spacing = spacing

    def order(self, index: int) -> dict[str, Any]:
        rng = self.rng
        order_id = _ORDER_ID_BASE + index * 11
        store = rng.choices(STORES, _STORE_WEIGHTS)[0]
        status = rng.choices(_STATUSES, _STATUS_WEIGHTS)[0]
        if index < len(_SPECIAL_PEOPLE):
            first, last = _SPECIAL_PEOPLE[index]
        else:
            first, last = _choice(rng, _FIRST), _choice(rng, _LAST)
        name = _full_name(first, last)
        place = _choice(rng, _PLACES)
        street = f"{rng.randrange(1, 9999)} {_choice(rng, _STREETS)}"
        company = "Acme Café LLC" if rng.random() < 0.08 else None
        phone = f"+1 555-01{index % 100:02d}"
        email = f"{_ascii_slug(first)}.{_ascii_slug(last)}{index}@example.com"

        # Imported into ShipStation a little after the buyer ordered; modified later (paid, shipped, edited).
        created = self.start + self.spacing * index + timedelta(milliseconds=rng.randrange(60_000))
        ordered = created - timedelta(minutes=rng.randrange(1, 90), milliseconds=rng.randrange(1000))
        settled = timedelta(hours=rng.randrange(2, 72)) if status == "shipped" else timedelta(0)
        modified = created + settled + timedelta(minutes=rng.randrange(0, 50), milliseconds=rng.randrange(1000))

        items, tax, discounted = self.items(order_id, place, modified)
        price, service, carrier, service_code = rng.choices(_SHIPPING, _SHIPPING_WEIGHTS)[0]
        order_total = discounted + price + tax
        amount_paid = order_total
        if status == "awaiting_payment" or (status == "cancelled" and rng.random() < 0.5):
            amount_paid = _ZERO
        elif status == "on_hold" and rng.random() < 0.5:
            # Part paid: e.g. a marketplace that settles in instalments.
            amount_paid = _cents(order_total / 2)
        shipped = status == "shipped"
        order_weight = sum(item["weight"]["value"] * item["quantity"] for item in items if not item["adjustment"])
        return {
            "orderId": order_id,
            "orderNumber": _order_number(rng, store, index),
            "orderKey": uuid.UUID(int=rng.getrandbits(128)).hex,
            "orderDate": pacific_wall(ordered),
            "createDate": pacific_wall(created),
            "modifyDate": pacific_wall(modified),
            "paymentDate": pacific_wall(ordered) if amount_paid > 0 else None,
            "shipByDate": pacific_wall(_midnight(ordered + timedelta(days=3))),
            "orderStatus": status,
            "customerId": _CUSTOMER_ID_BASE + index * 7,
            "customerUsername": email,
            "customerEmail": email,
            "billTo": _address(name, place, street, company, phone),
            "shipTo": _address(name, place, street, company, phone),
            "items": items,
            "orderTotal": _number(order_total),
            "amountPaid": _number(amount_paid),
            "taxAmount": _number(tax),
            "shippingAmount": _number(price),
            "customerNotes": "Merci ! Please gift-wrap 🎁" if rng.random() < 0.05 else None,
            "internalNotes": None,
            "gift": False,
            "giftMessage": None,
            "paymentMethod": "Credit Card" if amount_paid > 0 else None,
            "requestedShippingService": service,
            "carrierCode": carrier if shipped else None,
            "serviceCode": service_code if shipped else None,
            "packageCode": "package" if shipped else None,
            "confirmation": "none",
            "shipDate": modified.astimezone(PACIFIC).date().isoformat() if shipped else None,
            "holdUntilDate": None,
            "weight": {"value": order_weight, "units": "ounces", "WeightUnits": 1},
            "dimensions": None,
            "insuranceOptions": {"provider": None, "insureShipment": False, "insuredValue": 0.0},
            "internationalOptions": {"contents": None, "customsItems": None, "nonDelivery": None},
            "advancedOptions": {
                "warehouseId": 77001,
                "nonMachinable": False,
                "saturdayDelivery": False,
                "containsAlcohol": False,
                "mergedOrSplit": False,
                "mergedIds": [],
                "parentId": None,
                "storeId": store["storeId"],
                "customField1": None,
                "customField2": None,
                "customField3": None,
                "source": store["marketplaceName"],
                "billToParty": None,
                "billToAccount": None,
                "billToPostalCode": None,
                "billToCountryCode": None,
            },
            "tagIds": None,
            "userId": None,
            "externallyFulfilled": False,
            "externallyFulfilledBy": None,
            "labelMessages": None,
        }

    def items(self, order_id: int, place: _Place, modified: datetime) -> tuple[list[dict[str, Any]], Decimal, Decimal]:
        """The items (products then adjustments), the order's tax, and Σ items (adjustments negative)."""
        rng = self.rng
        count = rng.choices((1, 2, 3, 4), (45, 30, 15, 10))[0]
        picks = rng.sample(range(len(_PRODUCTS)), count)
        products = []
        for position, pick in enumerate(picks):
            sku, name, price, ounces = _PRODUCTS[pick]
            quantity = rng.choices((1, 2, 3), (75, 20, 5))[0]
            products.append((position, pick, sku, name, price, ounces, quantity, _cents(price * quantity)))
        gross = sum((p[7] for p in products), _ZERO)

        adjustments: list[tuple[str, str, Decimal]] = []
        roll = rng.random()
        if roll < 0.18:
            adjustments.append(("DISCOUNT CODE", "10% OFF", _cents(gross / 10)))
        elif roll < 0.28:
            adjustments.append(("PROMO-SPRING5", "Promotion: $5 off", min(Decimal("5.00"), gross)))
        if rng.random() < 0.05:
            left = gross - sum((a[2] for a in adjustments), _ZERO)
            adjustments.append(("LOYALTY", "Loyalty credit", min(Decimal("2.50"), _cents(left / 4))))
        discount = sum((a[2] for a in adjustments), _ZERO)

        # The marketplace taxes each product on what is left of it after the discounts, rounding per item.
        shares = _allocate(discount, [p[7] for p in products])
        taxes = [_cents((p[7] - share) * place.tax_rate) for p, share in zip(products, shares, strict=True)]
        itemised = rng.random() < 0.6
        stamp = pacific_wall(modified)
        items: list[dict[str, Any]] = []
        for (position, pick, sku, name, price, ounces, quantity, _), tax in zip(products, taxes, strict=True):
            items.append(
                {
                    "orderItemId": _ITEM_ID_BASE + order_id % 1_000_000 * 8 + position,
                    "lineItemKey": f"{order_id}-{position + 1}",
                    "sku": sku,
                    "name": name,
                    "imageUrl": None,
                    "weight": {"value": ounces, "units": "ounces", "WeightUnits": 1},
                    "quantity": quantity,
                    "unitPrice": _number(price),
                    "taxAmount": _number(tax) if itemised else None,
                    "shippingAmount": None,
                    "warehouseLocation": None,
                    "options": [{"name": "Glaze", "value": "Matte"}] if rng.random() < 0.2 else [],
                    "productId": 4_100_000 + pick,
                    "fulfillmentSku": None,
                    "adjustment": False,
                    "upc": None,
                    "createDate": stamp,
                    "modifyDate": stamp,
                }
            )
        for position, (sku, name, amount) in enumerate(adjustments, start=len(products)):
            items.append(
                {
                    "orderItemId": _ITEM_ID_BASE + order_id % 1_000_000 * 8 + position,
                    "lineItemKey": None,
                    "sku": sku,
                    "name": name,
                    "imageUrl": None,
                    "weight": {"value": 0, "units": "ounces", "WeightUnits": 1},
                    "quantity": 1,
                    "unitPrice": _number(-amount),
                    "taxAmount": None,
                    "shippingAmount": None,
                    "warehouseLocation": None,
                    "options": [],
                    "productId": None,
                    "fulfillmentSku": None,
                    "adjustment": True,
                    "upc": None,
                    "createDate": stamp,
                    "modifyDate": stamp,
                }
            )
        return items, sum(taxes, _ZERO), gross - discount


def generate_orders(
    count: int, *, seed: int = 7, start: datetime = DEFAULT_START, spacing: timedelta = timedelta(minutes=41)
) -> list[dict[str, Any]]:
    """`count` realistic ShipStation orders as `GET /orders` returns them, oldest created first."""
    builder = _Builder(random.Random(seed), start, spacing)
    return [builder.order(index) for index in range(count)]
