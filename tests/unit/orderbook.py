"""Builders for the domain's unit tests: a golden order, a catalog that knows it, settings that sync it.

Imported as `from orderbook import ...` (the test directories have no `__init__.py`, so pytest puts this
directory on `sys.path`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ledgerlink.domain.catalog import Account, Catalog, CompanyFacts, CustomerRecord, ItemRecord, MasterData
from ledgerlink.domain.order import (
    Address,
    Customer,
    Discount,
    Fee,
    Order,
    OrderLine,
    Payment,
    ShippingLine,
    TaxLine,
    Totals,
)
from ledgerlink.domain.settings import AccountMapping, ChannelSettings

D = Decimal

# Account ids in the books (QuickBooks Online style numeric ids).
DEPOSIT, RECEIVABLE, INCOME, DISCOUNT, ASSET, COGS = "35", "84", "79", "86", "81", "80"

BUYER = Customer(channel_id="c-9", email="jane@example.com", first_name="Jane", last_name="Doe", phone="555-0100")
ADDRESS = Address(
    name="Jane Doe", line1="1 Main St", city="Springfield", region="IL", postal_code="62701", country="US"
)


def tax(amount: str, title: str = "IL State Tax", rate: str = "0.0625") -> TaxLine:
    return TaxLine(title=title, rate=D(rate), amount=D(amount))


def golden_lines() -> tuple[OrderLine, ...]:
    """Two product lines: 2 × 19.99 less 4.00 (code SPRING) taxed 2.25; 1 × 12.50 taxed 0.78."""
    return (
        OrderLine(
            line_id="l1",
            sku="TEE-BLU-M",
            name="T-shirt blue M",
            quantity=D("2"),
            unit_price=D("19.99"),
            discounts=(Discount(amount=D("4.00"), code="SPRING"),),
            tax_lines=(tax("2.25"),),
        ),
        OrderLine(
            line_id="l2", sku="MUG-01", name="Mug", quantity=D("1"), unit_price=D("12.50"), tax_lines=(tax("0.78"),)
        ),
    )


# 39.98 + 12.50 − (4.00 + 5.00) + (10.00 − 2.00) + 3.00 + (2.25 + 0.78 + 0.50) = 58.01
GOLDEN_TOTAL = D("58.01")


def make_order(**changes: Any) -> Order:
    """The golden order: discounted lines, a discounted and taxed shipping line, an order discount, a fee, paid."""
    fields: dict[str, Any] = {
        "channel": "shopify",
        "channel_order_id": "450789469",
        "number": "1001",
        "created_at": datetime(2024, 3, 5, 14, 30, tzinfo=UTC),
        "updated_at": datetime(2024, 3, 5, 15, 0, tzinfo=UTC),
        "currency": "USD",
        "financial_status": "paid",
        "customer": BUYER,
        "billing_address": ADDRESS,
        "shipping_address": ADDRESS,
        "lines": golden_lines(),
        "shipping_lines": (
            ShippingLine(
                title="UPS Ground",
                code="ups_ground",
                price=D("10.00"),
                discounts=(Discount(amount=D("2.00"), code="SHIPLESS"),),
                tax_lines=(tax("0.50"),),
            ),
        ),
        "order_discounts": (Discount(amount=D("5.00"), code="WELCOME"),),
        "fees": (Fee(name="Tip", amount=D("3.00")),),
        "payments": (Payment(payment_id="p1", amount=GOLDEN_TOTAL, gateway="shopify_payments", method="card"),),
        "totals": Totals(
            subtotal=D("52.48"), shipping=D("8.00"), discounts=D("9.00"), tax=D("3.53"), total=GOLDEN_TOTAL
        ),
    }
    fields.update(changes)
    return Order(**fields)


def simple_order(*lines: OrderLine, **changes: Any) -> Order:
    """An untaxed order of just these lines, its totals computed from them."""
    gross = sum((line.gross - line.discount_total for line in lines), D("0.00"))
    fields: dict[str, Any] = {
        "lines": lines,
        "shipping_lines": (),
        "order_discounts": (),
        "fees": (),
        "payments": (),
        "totals": Totals(subtotal=gross, total=gross),
    }
    fields.update(changes)
    return make_order(**fields)


def product(
    line_id: str = "x1", sku: str = "", name: str = "Widget", price: str = "10.00", qty: str = "1"
) -> OrderLine:
    return OrderLine(line_id=line_id, sku=sku, name=name, quantity=D(qty), unit_price=D(price))


def make_settings(**changes: Any) -> ChannelSettings:
    """Settings with every account chosen; `changes` override top-level fields."""
    fields: dict[str, Any] = {
        "accounts": AccountMapping(
            deposit=DEPOSIT,
            accounts_receivable=RECEIVABLE,
            item_income=INCOME,
            item_discount=DISCOUNT,
            item_asset=ASSET,
            item_cogs=COGS,
        ),
    }
    fields.update(changes)
    return ChannelSettings(**fields)


def full_catalog(books: str = "qbo", **facts: Any) -> Catalog:
    """A catalog holding every record the golden order needs."""
    company = CompanyFacts(books=books, **facts)
    known = Catalog(company=company, payment_methods={"card": "5"}).with_records(
        items=[
            ItemRecord(id="11", name="T-shirt blue M", sku="TEE-BLU-M"),
            ItemRecord(id="12", name="MUG-01", sku="MUG-01"),
            ItemRecord(id="21", name="Shipping", type="Service"),
            ItemRecord(id="22", name="Other charges", type="Service"),
            ItemRecord(id="23", name="Sales Tax", type="Service"),
            ItemRecord(id="24", name="Discount", type="Service"),
            ItemRecord(id="25", name="Rounding adjustment", type="Service"),
        ],
        customers=[CustomerRecord(id="77", display_name="Jane Doe", email="jane@example.com")],
        accounts=[
            Account(id=DEPOSIT, name="Undeposited Funds", type="Other Current Asset"),
            Account(id=RECEIVABLE, name="Accounts Receivable (A/R)", type="Accounts Receivable"),
            Account(id=INCOME, name="Sales of Product Income", type="Income"),
            Account(id=DISCOUNT, name="Discounts given", type="Income"),
        ],
    )
    return known


def empty_catalog(books: str = "qbo", **facts: Any) -> Catalog:
    return Catalog(company=CompanyFacts(books=books, **facts))


def ensure(catalog: Catalog, needs: MasterData) -> Catalog:
    """What a Books adapter's `ensure` does: create the needed records and return the catalog with them."""
    return catalog.with_records(
        items=[
            ItemRecord(id=f"new-item-{i}", name=item.name, sku=item.sku, type=item.type)
            for i, item in enumerate(needs.items.values())
        ],
        customers=[
            CustomerRecord(id=f"new-customer-{i}", display_name=c.display_name, email=c.email)
            for i, c in enumerate(needs.customers.values())
        ],
    )
