"""Deterministic, realistic Shopify REST orders whose money adds up the way Shopify computes it.

Shopify (with `taxes_included: false`) computes, per order:

- each line's discounts: line-level ("one") applications first, then order-level ("across") applications
  spread over the lines in proportion to what is left of them, the last line taking the rounding remainder;
- each line's tax: every tax rate applied to (price × quantity − the line's discounts), rounded per line;
- shipping: `discounted_price` = `price` − its allocations; taxed per line where the state taxes shipping;
- `subtotal_price` = Σ price × quantity − Σ line discounts; `total_discounts` = every allocation incl. shipping;
- `total_price` = subtotal + Σ shipping discounted_price + total_tax (+ tip).

The generator is pure: the same arguments give the same orders, byte for byte.
"""

from __future__ import annotations

import gc
import random
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeVar

_T = TypeVar("_T")

DEFAULT_START = datetime(2025, 1, 6, 14, 0, tzinfo=UTC)
# Shopify renders times in the shop's time zone; the demo shop is on US Eastern (standard time).
SHOP_TZ = timezone(timedelta(hours=-5))
CURRENCY = "USD"

_CENT = Decimal("0.01")
_ZERO = Decimal("0.00")
_HUNDRED = Decimal(100)
_ORDER_ID_BASE = 5_512_000_000_000
_LINE_ID_BASE = 13_400_000_000_000
_CUSTOMER_ID_BASE = 7_200_000_000_000


def _randint(rng: random.Random, low: int, high: int) -> int:
    # random() is several times faster than randint(); plenty for test data.
    return low + int(rng.random() * (high - low + 1))


def _choice(rng: random.Random, options: Sequence[_T]) -> _T:
    return options[int(rng.random() * len(options))]


def _cents(value: Decimal) -> Decimal:
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


def _money(value: Decimal) -> str:
    return str(_cents(value))


def _money_set(value: Decimal) -> dict[str, Any]:
    amount = {"amount": _money(value), "currency_code": CURRENCY}
    return {"shop_money": amount, "presentment_money": dict(amount)}


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(SHOP_TZ).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class _Place:
    city: str
    province: str
    province_code: str
    zip: str
    taxes: tuple[tuple[str, Decimal], ...]
    taxes_shipping: bool


# Real US state (and some local) sales-tax rates; whether shipping is taxed follows the state's rule.
_PLACES = (
    _Place("Boston", "Massachusetts", "MA", "02108", (("MA State Tax", Decimal("0.0625")),), False),
    _Place("Los Angeles", "California", "CA", "90012", (("CA State Tax", Decimal("0.0725")),), False),
    _Place("Louisville", "Kentucky", "KY", "40202", (("KY State Tax", Decimal("0.06")),), True),
    _Place(
        "Brooklyn",
        "New York",
        "NY",
        "11201",
        (("NY State Tax", Decimal("0.04")), ("New York City Tax", Decimal("0.04875"))),
        True,
    ),
    _Place(
        "Austin",
        "Texas",
        "TX",
        "78701",
        (("TX State Tax", Decimal("0.0625")), ("Austin City Tax", Decimal("0.02"))),
        True,
    ),
    _Place("Portland", "Oregon", "OR", "97204", (), False),
    _Place(
        "Philadelphia",
        "Pennsylvania",
        "PA",
        "19107",
        (("PA State Tax", Decimal("0.06")), ("Philadelphia County Tax", Decimal("0.02"))),
        False,
    ),
    _Place("Chicago", "Illinois", "IL", "60601", (("IL State Tax", Decimal("0.0625")),), False),
)

_STREETS = ("Main Street", "Elm Avenue", "Chestnut Street 92", "Harbor Road", "Rue Sainte-Catherine", "Oak Lane")


@dataclass(frozen=True, slots=True)
class _Product:
    product_id: int
    title: str
    sku: str
    variants: tuple[tuple[str | None, Decimal], ...]
    taxable: bool = True
    grams: int = 300


_PRODUCTS = (
    _Product(
        8_100_000_001, "Merino Wool Beanie", "BEANIE", (("Charcoal", Decimal("28.00")), ("Oatmeal", Decimal("28.00")))
    ),
    _Product(8_100_000_002, "Ceramic Pour-Over Set", "POUR", ((None, Decimal("64.50")),), grams=900),
    _Product(
        8_100_000_003,
        "Organic Coffee Beans 1 lb",
        "BEANS",
        (("Whole Bean", Decimal("18.95")), ("Ground", Decimal("18.95"))),
        grams=454,
    ),
    _Product(8_100_000_004, "Linen Apron", "APRON", (("Natural", Decimal("42.00")), ("Indigo", Decimal("44.00")))),
    _Product(8_100_000_005, "Gift Card", "GIFT", (("$25", Decimal("25.00")), ("$50", Decimal("50.00"))), taxable=False),
    _Product(8_100_000_006, "Canvas Tote", "TOTE", ((None, Decimal("19.99")),)),
    _Product(8_100_000_007, "Stoneware Mug", "MUG", (("12 oz", Decimal("22.00")), ("16 oz", Decimal("24.00")))),
    _Product(8_100_000_008, "Espresso Tamper", "TAMP", ((None, Decimal("39.99")),)),
    _Product(8_100_000_009, "Tea Sampler", "TEA", ((None, Decimal("15.49")),)),
    _Product(8_100_000_010, "Hand-thrown Vase — Large", "VASE-L", ((None, Decimal("129.00")),), grams=1800),
    _Product(8_100_000_011, "Café Blend Espresso 250 g", "CAFE", ((None, Decimal("14.25")),), grams=250),
    _Product(8_100_000_012, "Replacement Filter Pack (100)", "FILTER", ((None, Decimal("7.99")),), grams=120),
)


@dataclass(frozen=True, slots=True)
class _Code:
    code: str
    value_type: str  # "percentage" | "fixed_amount"
    value: Decimal
    shipping: bool = False


# WELCOME10 is the shared code most discounted orders use.
_CODES = (
    _Code("WELCOME10", "percentage", Decimal("10.0")),
    _Code("SPRING15", "percentage", Decimal("15.0")),
    _Code("TAKE5", "fixed_amount", Decimal("5.00")),
    _Code("FREESHIP", "percentage", Decimal("100.0"), shipping=True),
)
_CODE_WEIGHTS = (5, 2, 2, 2)

_SHIPPING = (
    ("Standard Shipping", "standard", Decimal("5.99")),
    ("Expedited Shipping", "expedited", Decimal("12.50")),
    ("Free Shipping", "free", Decimal("0.00")),
    ("Local Pickup", "pickup", Decimal("0.00")),
)
_SHIPPING_WEIGHTS = (6, 2, 2, 1)

_FIRST = ("Ava", "Liam", "Noah", "Mia", "Søren", "Amélie", "Ethan", "Chloé", "Olivia", "Lucas", "Grace", "Mateo")
_LAST = ("Smith", "García", "O'Brien", "Nguyen", "Johnson", "Kowalski", "Dubois", "Rossi", "Okafor", "Lindqvist")
# People whose names exercise unicode end to end (accents, ring, CJK without a space).
_SPECIAL_PEOPLE = (("Zoë", "Ångström"), ("José", "Müller"), ("小明", "王"))

_FINANCIAL = ("paid", "pending", "authorized", "partially_paid", "partially_refunded", "refunded", "voided")
_FINANCIAL_WEIGHTS = (70, 5, 6, 5, 6, 5, 1)
_CANCEL_REASONS = ("customer", "inventory", "fraud", "declined", "other")


@dataclass(slots=True)
class _Person:
    customer_id: int
    first: str
    last: str
    email: str
    phone: str
    place: _Place
    street: str
    company: str


def _ascii_slug(text: str) -> str:
    # "Zoë Ångström" → "zoe", "angstrom": decompose accents, keep the ASCII letters.
    decomposed = unicodedata.normalize("NFKD", text.lower())
    slug = "".join(ch for ch in decomposed if ch.isascii() and ch.isalnum())
    return slug or "buyer"


def _people(rng: random.Random, count: int) -> list[_Person]:
    people: list[_Person] = []
    for index in range(count):
        if index < len(_SPECIAL_PEOPLE):
            first, last = _SPECIAL_PEOPLE[index]
        else:
            first, last = _choice(rng, _FIRST), _choice(rng, _LAST)
        customer_id = _CUSTOMER_ID_BASE + index * 37
        people.append(
            _Person(
                customer_id=customer_id,
                first=first,
                last=last,
                email=f"{_ascii_slug(first)}.{_ascii_slug(last)}{index}@example.com",
                phone=f"+1 555-01{index % 100:02d}",
                place=_choice(rng, _PLACES),
                street=f"{_randint(rng, 1, 9999)} {_choice(rng, _STREETS)}",
                company="Acme Café LLC" if rng.random() < 0.08 else "",
            )
        )
    return people


def _full_name(first: str, last: str) -> str:
    # CJK names are written family name first, without a space.
    if any("\u4e00" <= ch <= "\u9fff" for ch in first):
        return f"{last}{first}"
    return f"{first} {last}"


def _captured_later(order_id: int) -> bool:
    """Whether a paid order was authorized then captured (else a single sale); decides transaction ids."""
    return order_id % 10 < 3


def _address(person: _Person) -> dict[str, Any]:
    place = person.place
    return {
        "first_name": person.first,
        "last_name": person.last,
        "name": _full_name(person.first, person.last),
        "company": person.company or None,
        "address1": person.street,
        "address2": "Apt 4B" if person.customer_id % 5 == 0 else "",
        "city": place.city,
        "province": place.province,
        "province_code": place.province_code,
        "zip": place.zip,
        "country": "United States",
        "country_code": "US",
        "phone": person.phone,
        "latitude": None,
        "longitude": None,
    }


def _allocate(total_amount: Decimal, bases: list[Decimal]) -> list[Decimal]:
    """Spread `total_amount` over `bases` in proportion, the last base taking the rounding remainder."""
    whole = sum(bases, _ZERO)
    if whole <= 0:
        return [_ZERO for _ in bases]
    shares: list[Decimal] = []
    left = total_amount
    for index, base in enumerate(bases):
        share = left if index == len(bases) - 1 else min(left, _cents(total_amount * base / whole))
        shares.append(share)
        left -= share
    return shares


def _tax_lines(taxes: tuple[tuple[str, Decimal], ...], base: Decimal) -> list[dict[str, Any]]:
    return [{"title": title, "rate": float(rate), "price": _money(base * rate)} for title, rate in taxes]


class _Builder:
    """Builds one order at a time from a shared random stream (so the whole batch is one seed)."""

    def __init__(self, rng: random.Random, people: list[_Person], start: datetime) -> None:
        self.rng = rng
        self.people = people
        self.moment = start
        # Set by `_lines` when the order's code is a shipping code, for `_shipping` to apply.
        self.shipping_code: _Code | None = None

    def order(self, index: int) -> dict[str, Any]:
        rng = self.rng
        order_id = _ORDER_ID_BASE + index * 1_009
        order_number = 1001 + index
        self.moment += timedelta(minutes=_randint(rng, 1, 90), seconds=_randint(rng, 0, 59))
        created = self.moment

        # A repeat customer: the first person comes back every seventh order.
        # and the people with unicode names buy the first orders, so even a small batch has them.
        if index % 7 == 0 or index < len(_SPECIAL_PEOPLE):
            person = self.people[0 if index % 7 == 0 else index]
        else:
            person = _choice(rng, self.people)
        guest = rng.random() < 0.02
        place = person.place

        cancelled = rng.random() < 0.03
        financial = rng.choices(_FINANCIAL, _FINANCIAL_WEIGHTS)[0]
        if cancelled:
            financial = "voided" if financial in {"authorized", "pending", "voided"} else "refunded"

        lines, applications, codes = self._lines(index, place)
        shipping_lines = self._shipping(index, place, lines, applications, codes)

        line_gross = sum((Decimal(line["price"]) * line["quantity"] for line in lines), _ZERO)
        line_discounts = sum((Decimal(line["total_discount"]) for line in lines), _ZERO)
        shipping_discounts = sum(
            (Decimal(a["amount"]) for s in shipping_lines for a in s["discount_allocations"]), _ZERO
        )
        subtotal = line_gross - line_discounts
        shipping_total = sum((Decimal(s["discounted_price"]) for s in shipping_lines), _ZERO)
        all_tax_lines = [t for line in lines for t in line["tax_lines"]] + [
            t for s in shipping_lines for t in s["tax_lines"]
        ]
        total_tax = sum((Decimal(t["price"]) for t in all_tax_lines), _ZERO)
        tip = Decimal(_choice(rng, ("2.00", "5.00"))) if financial == "paid" and rng.random() < 0.04 else _ZERO
        total_price = subtotal + shipping_total + total_tax + tip

        fulfillment: str | None = None
        if financial in {"paid", "partially_refunded"}:
            fulfillment = rng.choices(("fulfilled", None, "partial"), (6, 3, 1))[0]
        elif financial == "refunded" and not cancelled and rng.random() < 0.5:
            fulfillment = "fulfilled"

        updated = created + timedelta(minutes=_randint(rng, 0, 4320))
        refunds = self._refunds(order_id, financial, lines, shipping_lines, created, cancelled)
        for refund in refunds:
            updated = max(updated, datetime.fromisoformat(refund["created_at"]) + timedelta(seconds=1))
        cancelled_at = created + timedelta(hours=_randint(rng, 1, 30)) if cancelled else None
        if cancelled_at is not None:
            updated = max(updated, cancelled_at)
        closed_at: datetime | None = None
        if cancelled_at is not None or (fulfillment == "fulfilled" and financial == "paid" and rng.random() < 0.5):
            closed_at = updated

        order_tax_lines: dict[tuple[str, float], Decimal] = {}
        for tax in all_tax_lines:
            key = (tax["title"], tax["rate"])
            order_tax_lines[key] = order_tax_lines.get(key, _ZERO) + Decimal(tax["price"])

        customer = None
        if not guest:
            customer = {
                "id": person.customer_id,
                "email": person.email,
                "first_name": person.first,
                "last_name": person.last,
                "phone": person.phone,
                "tags": "",
                "currency": CURRENCY,
            }
        address = _address(person)
        gateway = "manual" if financial == "pending" else "shopify_payments"
        source = rng.choices(("web", "pos", "shopify_draft_order"), (20, 2, 1))[0]
        tags = _choice(rng, ("", "", "", "wholesale", "gift, vip", "vip"))
        return {
            "id": order_id,
            "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
            "name": f"#{order_number}",
            "order_number": order_number,
            "number": order_number - 1000,
            "token": f"{order_id:x}{index:08x}",
            "email": person.email,
            "contact_email": person.email,
            "phone": None,
            "created_at": _timestamp(created),
            "processed_at": _timestamp(created),
            "updated_at": _timestamp(updated),
            "closed_at": _timestamp(closed_at) if closed_at else None,
            "cancelled_at": _timestamp(cancelled_at) if cancelled_at else None,
            "cancel_reason": _choice(rng, _CANCEL_REASONS) if cancelled else None,
            "currency": CURRENCY,
            "presentment_currency": CURRENCY,
            "financial_status": financial,
            "fulfillment_status": fulfillment,
            "confirmed": True,
            "test": False,
            "taxes_included": False,
            "tax_lines": [
                {"title": title, "rate": rate, "price": _money(amount)}
                for (title, rate), amount in order_tax_lines.items()
            ],
            "total_line_items_price": _money(line_gross),
            "total_line_items_price_set": _money_set(line_gross),
            "subtotal_price": _money(subtotal),
            "subtotal_price_set": _money_set(subtotal),
            "total_discounts": _money(line_discounts + shipping_discounts),
            "total_discounts_set": _money_set(line_discounts + shipping_discounts),
            "total_shipping_price_set": _money_set(shipping_total),
            "total_tax": _money(total_tax),
            "total_tax_set": _money_set(total_tax),
            "total_tip_received": _money(tip),
            "total_price": _money(total_price),
            "total_price_set": _money_set(total_price),
            "total_weight": sum(line["grams"] * line["quantity"] for line in lines),
            "discount_codes": codes,
            "discount_applications": applications,
            "line_items": lines,
            "shipping_lines": shipping_lines,
            "billing_address": address,
            "shipping_address": dict(address) if shipping_lines else None,
            "customer": customer,
            "refunds": refunds,
            "note": None,
            "note_attributes": [],
            "tags": tags,
            "source_name": source,
            "gateway": gateway,
            "payment_gateway_names": [gateway],
            "buyer_accepts_marketing": rng.random() < 0.3,
        }

    def _lines(
        self, index: int, place: _Place
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        rng = self.rng
        count = rng.choices((1, 2, 3, 4, 5), (35, 30, 18, 10, 7))[0]
        products = rng.sample(_PRODUCTS, count)
        lines: list[dict[str, Any]] = []
        gross: list[Decimal] = []
        for position, product in enumerate(products):
            variant_index = _randint(rng, 0, len(product.variants) - 1)
            variant_title, price = product.variants[variant_index]
            quantity = rng.choices((1, 2, 3, 6), (70, 20, 7, 3))[0]
            name = f"{product.title} - {variant_title}" if variant_title else product.title
            sku: str | None = f"{product.sku}-{variant_index + 1}" if len(product.variants) > 1 else product.sku
            line: dict[str, Any] = {
                "id": _LINE_ID_BASE + index * 16 + position,
                "admin_graphql_api_id": f"gid://shopify/LineItem/{_LINE_ID_BASE + index * 16 + position}",
                "product_id": product.product_id,
                "variant_id": product.product_id * 10 + variant_index,
                "title": product.title,
                "variant_title": variant_title,
                "name": name,
                "sku": sku,
                "vendor": "Ledgerlink Demo Goods",
                "quantity": quantity,
                "fulfillable_quantity": quantity,
                "price": _money(price),
                "price_set": _money_set(price),
                "taxable": product.taxable and rng.random() > 0.03,
                "gift_card": product.sku == "GIFT",
                "requires_shipping": product.sku != "GIFT",
                "grams": product.grams,
                "properties": [],
                "fulfillment_status": None,
            }
            # Some stores leave SKUs blank; the API then sends "", null, or (old imports) no key at all.
            roll = rng.random()
            if roll < 0.02:
                line["sku"] = ""
            elif roll < 0.035:
                line["sku"] = None
            elif roll < 0.045:
                del line["sku"]
            lines.append(line)
            gross.append(price * quantity)

        applications: list[dict[str, Any]] = []
        codes: list[dict[str, Any]] = []
        allocations: list[list[tuple[Decimal, int]]] = [[] for _ in lines]

        # A line-level manual discount ("one"): a staff member took money off one line.
        if rng.random() < 0.08:
            target = _randint(rng, 0, len(lines) - 1)
            if rng.random() < 0.5:
                value_type, value = "fixed_amount", min(Decimal("3.00"), gross[target])
                amount = value
            else:
                value_type, value = "percentage", Decimal("20.0")
                amount = _cents(gross[target] * value / _HUNDRED)
            allocations[target].append((amount, len(applications)))
            applications.append(
                {
                    "type": "manual",
                    "title": "Damaged box" if value_type == "fixed_amount" else "Staff discount",
                    "description": "Taken off at the counter",
                    "value": str(value),
                    "value_type": value_type,
                    "allocation_method": "one",
                    "target_selection": "explicit",
                    "target_type": "line_item",
                }
            )

        # An order-level code, spread "across" the lines after their own discounts. The first orders
        # always use WELCOME10 so that even small batches share a code.
        code: _Code | None = None
        if index in (0, 2):
            code = _CODES[0]
        elif rng.random() < 0.3:
            code = rng.choices(_CODES, _CODE_WEIGHTS)[0]
        self.shipping_code = code if code is not None and code.shipping else None
        if code is not None and not code.shipping:
            nets = [g - sum((a for a, _ in allocs), _ZERO) for g, allocs in zip(gross, allocations, strict=True)]
            base = sum(nets, _ZERO)
            percentage = code.value_type == "percentage"
            amount = _cents(base * code.value / _HUNDRED) if percentage else min(code.value, base)
            if amount > 0:
                application_index = len(applications)
                for target, share in enumerate(_allocate(amount, nets)):
                    if share > 0:
                        allocations[target].append((share, application_index))
                applications.append(
                    {
                        "type": "discount_code",
                        "code": code.code,
                        "value": str(code.value),
                        "value_type": code.value_type,
                        "allocation_method": "across",
                        "target_selection": "all",
                        "target_type": "line_item",
                    }
                )
                codes.append({"code": code.code, "amount": _money(amount), "type": code.value_type})

        for line, line_gross, allocs in zip(lines, gross, allocations, strict=True):
            discount = sum((a for a, _ in allocs), _ZERO)
            line["discount_allocations"] = [
                {"amount": _money(a), "amount_set": _money_set(a), "discount_application_index": i} for a, i in allocs
            ]
            line["total_discount"] = _money(discount)
            line["total_discount_set"] = _money_set(discount)
            line["tax_lines"] = _tax_lines(place.taxes, line_gross - discount) if line["taxable"] else []
        return lines, applications, codes

    def _shipping(
        self,
        index: int,
        place: _Place,
        lines: list[dict[str, Any]],
        applications: list[dict[str, Any]],
        codes: list[dict[str, Any]],
    ) -> list[dict[str, Any]]:
        rng = self.rng
        if not any(line["requires_shipping"] for line in lines):
            return []
        title, code, price = rng.choices(_SHIPPING, _SHIPPING_WEIGHTS)[0]
        allocations: list[dict[str, Any]] = []
        shipping_code = self.shipping_code
        if shipping_code is not None and price > 0:
            amount = _cents(price * shipping_code.value / _HUNDRED)
            allocations.append(
                {
                    "amount": _money(amount),
                    "amount_set": _money_set(amount),
                    "discount_application_index": len(applications),
                }
            )
            applications.append(
                {
                    "type": "discount_code",
                    "code": shipping_code.code,
                    "value": str(shipping_code.value),
                    "value_type": shipping_code.value_type,
                    "allocation_method": "each",
                    "target_selection": "all",
                    "target_type": "shipping_line",
                }
            )
            codes.append({"code": shipping_code.code, "amount": _money(amount), "type": "shipping"})
        discounted = price - sum((Decimal(a["amount"]) for a in allocations), _ZERO)
        return [
            {
                "id": 4_400_000_000_000 + index * 3,
                "title": title,
                "code": code,
                "source": "shopify",
                "price": _money(price),
                "price_set": _money_set(price),
                "discounted_price": _money(discounted),
                "discounted_price_set": _money_set(discounted),
                "tax_lines": _tax_lines(place.taxes, discounted) if place.taxes_shipping and discounted > 0 else [],
                "discount_allocations": allocations,
            }
        ]

    def _refunds(
        self,
        order_id: int,
        financial: str,
        lines: list[dict[str, Any]],
        shipping_lines: list[dict[str, Any]],
        created: datetime,
        cancelled: bool,
    ) -> list[dict[str, Any]]:
        if financial not in {"refunded", "partially_refunded"}:
            return []
        rng = self.rng
        refund_id = 9_900_000_000_000 + (order_id - _ORDER_ID_BASE)
        when = created + timedelta(days=_randint(rng, 1, 20), minutes=_randint(rng, 0, 600))
        refund_lines: list[dict[str, Any]] = []
        adjustments: list[dict[str, Any]] = []
        if financial == "refunded":
            chosen = [(line, line["quantity"]) for line in lines]
        else:
            line = _choice(rng, lines)
            chosen = [(line, 1)]
        amount = _ZERO
        for position, (line, quantity) in enumerate(chosen):
            net = Decimal(line["price"]) * line["quantity"] - Decimal(line["total_discount"])
            tax = sum((Decimal(t["price"]) for t in line["tax_lines"]), _ZERO)
            if quantity != line["quantity"]:
                net = _cents(net * quantity / line["quantity"])
                tax = _cents(tax * quantity / line["quantity"])
            amount += net + tax
            refund_lines.append(
                {
                    "id": refund_id * 10 + position,
                    "line_item_id": line["id"],
                    "quantity": quantity,
                    "restock_type": "cancel" if cancelled else _choice(rng, ("return", "no_restock")),
                    "subtotal": _money(net),
                    "subtotal_set": _money_set(net),
                    "total_tax": _money(tax),
                    "total_tax_set": _money_set(tax),
                }
            )
        if financial == "refunded":
            for shipping in shipping_lines:
                net = Decimal(shipping["discounted_price"])
                tax = sum((Decimal(t["price"]) for t in shipping["tax_lines"]), _ZERO)
                if net <= 0 and tax <= 0:
                    continue
                amount += net + tax
                # Shopify reports refunded shipping as a negative adjustment of the order.
                adjustments.append(
                    {
                        "id": refund_id * 10 + 9,
                        "order_id": order_id,
                        "refund_id": refund_id,
                        "kind": "shipping_refund",
                        "reason": "Shipping refund",
                        "amount": _money(-net),
                        "tax_amount": _money(-tax),
                    }
                )
        transaction = {
            "id": refund_id * 10 + 5,
            "order_id": order_id,
            "kind": "refund",
            "gateway": "shopify_payments",
            "status": "success",
            "message": "Refunded",
            "created_at": _timestamp(when),
            "processed_at": _timestamp(when),
            "amount": _money(amount),
            "currency": CURRENCY,
            "parent_id": order_id * 10 + (2 if _captured_later(order_id) else 0),
            "test": False,
        }
        return [
            {
                "id": refund_id,
                "order_id": order_id,
                "created_at": _timestamp(when),
                "processed_at": _timestamp(when),
                "note": "Order cancelled" if cancelled else _choice(rng, ("Customer return", "Damaged in transit", "")),
                "restock": any(r["restock_type"] != "no_restock" for r in refund_lines),
                "refund_line_items": refund_lines,
                "order_adjustments": adjustments,
                "transactions": [transaction],
            }
        ]


def _as_paid(order: dict[str, Any]) -> dict[str, Any]:
    """A plain paid, open order: broken orders must pass the default order filter to show their error."""
    order.update(financial_status="paid", cancelled_at=None, cancel_reason=None, closed_at=None, refunds=[])
    return order


def _break(orders: list[dict[str, Any]], builder: _Builder, count: int) -> None:
    """Append the two orders a bookkeeper has to fix by hand."""
    mismatched = _as_paid(builder.order(count))
    wrong = Decimal(mismatched["total_price"]) + Decimal("1.00")
    mismatched["total_price"] = _money(wrong)
    mismatched["total_price_set"] = _money_set(wrong)
    mismatched["note"] = (
        "Broken on purpose: total_price is 1.00 more than lines + shipping + tax; the channel data does not add up."
    )
    zero = _as_paid(builder.order(count + 1))
    position = len(zero["line_items"]) - 1
    zero["line_items"][position]["quantity"] = 0
    zero["line_items"][position]["fulfillable_quantity"] = 0
    zero["note"] = f"Broken on purpose: line_items[{position}] has quantity 0 but is still charged."
    orders.extend((mismatched, zero))


def generate_orders(
    count: int, *, seed: int = 7, start: datetime = DEFAULT_START, broken: bool = False
) -> list[dict[str, Any]]:
    """`count` realistic Shopify REST orders (oldest first), plus two broken ones when `broken`."""
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    rng = random.Random(seed)
    # Orders are acyclic trees of fresh dicts: the cyclic collector finds nothing in them but, run every
    # few thousand allocations, it doubles the time of a large batch. Pause it while building.
    collecting = gc.isenabled()
    gc.disable()
    try:
        people = _people(rng, max(len(_SPECIAL_PEOPLE), count // 3 + 1))
        builder = _Builder(rng, people, start)
        orders = [builder.order(index) for index in range(count)]
        if broken:
            _break(orders, builder, count)
    finally:
        if collecting:
            gc.enable()
    return orders


def generate_transactions(order: dict[str, Any]) -> list[dict[str, Any]]:
    """The transactions Shopify would list for `order`, derived from its status and totals (deterministic)."""
    order_id = int(order["id"])
    financial = order.get("financial_status")
    total_price = Decimal(str(order.get("total_price") or "0"))
    created = str(order.get("processed_at") or order.get("created_at") or "")
    rng = random.Random(order_id)
    gateway = "manual" if financial == "pending" else "shopify_payments"
    card = {"credit_card_company": "Visa", "credit_card_number": "•••• •••• •••• 4242", "credit_card_bin": "424242"}

    def transaction(
        offset: int, kind: str, amount: Decimal, status: str = "success", parent: int | None = None
    ) -> dict[str, Any]:
        return {
            "id": order_id * 10 + offset,
            "order_id": order_id,
            "kind": kind,
            "gateway": gateway,
            "status": status,
            "message": None,
            "created_at": created,
            "processed_at": created,
            "test": False,
            "authorization": f"ch_{order_id:x}{offset}" if gateway != "manual" else None,
            "parent_id": parent,
            "amount": _money(amount),
            "currency": CURRENCY,
            "source_name": "web",
            "payment_details": card if gateway != "manual" else None,
        }

    result: list[dict[str, Any]] = []
    authorization = order_id * 10 + 1
    if financial == "pending":
        result.append(transaction(0, "sale", total_price, status="pending"))
    elif financial == "authorized":
        result.append(transaction(1, "authorization", total_price))
    elif financial == "voided":
        result.append(transaction(1, "authorization", total_price))
        result.append(transaction(2, "void", total_price, parent=authorization))
    elif financial == "partially_paid":
        result.append(transaction(1, "authorization", total_price))
        first = _cents(total_price * Decimal(_randint(rng, 30, 60)) / _HUNDRED)
        result.append(transaction(2, "capture", first, parent=authorization))
        if rng.random() < 0.3:
            second = _cents((total_price - first) * Decimal(_randint(rng, 20, 60)) / _HUNDRED)
            result.append(transaction(3, "capture", second, parent=authorization))
    elif financial in {"paid", "partially_refunded", "refunded"}:
        if _captured_later(order_id):
            result.append(transaction(1, "authorization", total_price))
            result.append(transaction(2, "capture", total_price, parent=authorization))
        else:
            result.append(transaction(0, "sale", total_price))
    for refund in order.get("refunds") or []:
        result.extend(dict(t) for t in refund.get("transactions") or [])
    return result
