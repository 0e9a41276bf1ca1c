"""Property tests for `plan`: any order a channel could send balances to the cent, or fails naming the total."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from orderbook import BUYER, empty_catalog, ensure, make_order, make_settings, product, simple_order

from ledgerlink.domain.catalog import fold
from ledgerlink.domain.documents import DocumentKind, LineKind
from ledgerlink.domain.errors import MappingError
from ledgerlink.domain.money import ZERO, cents
from ledgerlink.domain.order import Discount, Fee, Order, OrderLine, Payment, ShippingLine, TaxLine, Totals
from ledgerlink.domain.plan import plan
from ledgerlink.domain.settings import ChannelSettings, OrderFilter, TaxMode, TaxSettings, TransactionType

pytestmark = pytest.mark.unit

EXAMPLES = settings(max_examples=200, deadline=None, database=None)
COMBINATIONS = [(ttype, books, mode) for ttype in TransactionType for books in ("qbo", "qbd") for mode in TaxMode]


def money(low: int, high: int) -> st.SearchStrategy[Decimal]:
    """Amounts in whole cents between `low` and `high` cents."""
    return st.integers(low, high).map(lambda c: Decimal(c).scaleb(-2))


quantities = st.one_of(
    st.integers(1, 20).map(Decimal),
    st.integers(1, 5000).map(lambda n: Decimal(n).scaleb(-3)),  # weighed goods
)
unit_prices = st.one_of(money(0, 50_000), st.integers(0, 5_000_000).map(lambda n: Decimal(n).scaleb(-4)))
codes = st.sampled_from(["", "SALE", "VIP10", "FREESHIP"])


@st.composite
def discounts_upto(draw: st.DrawFn, cap: Decimal) -> tuple[Discount, ...]:
    """Up to three discounts that together never exceed `cap`."""
    left = int(cap * 100)
    found = []
    for _ in range(draw(st.integers(0, 3))):
        cents_off = draw(st.integers(0, max(left, 0)))
        left -= cents_off
        found.append(Discount(amount=Decimal(cents_off).scaleb(-2), code=draw(codes)))
    return tuple(found)


def taxes() -> st.SearchStrategy[tuple[TaxLine, ...]]:
    return st.lists(money(0, 5_000), max_size=2).map(
        lambda amounts: tuple(TaxLine(title=f"Tax {i}", amount=a) for i, a in enumerate(amounts))
    )


@st.composite
def channel_orders(draw: st.DrawFn) -> Order:
    """A valid order whose reported total is computed as a channel computes it (lines rounded one by one)."""
    lines = []
    for i in range(draw(st.integers(1, 4))):
        quantity, price = draw(quantities), draw(unit_prices)
        gross = cents(quantity * price)
        lines.append(
            OrderLine(
                line_id=f"l{i}",
                sku=draw(st.sampled_from(["", f"SKU-{i}"])),
                name=f"Product {i}",
                quantity=quantity,
                unit_price=price,
                discounts=draw(discounts_upto(gross)),
                taxable=draw(st.booleans()),
                tax_lines=draw(taxes()),
            )
        )
    net = sum((line.gross - line.discount_total for line in lines), ZERO)
    order_discounts = draw(discounts_upto(net))
    shipping = []
    for _ in range(draw(st.integers(0, 2))):
        price = draw(money(0, 5_000))
        shipping.append(
            ShippingLine(title="Ground", price=price, discounts=draw(discounts_upto(price)), tax_lines=draw(taxes()))
        )
    fees = tuple(Fee(name=f"Fee {i}", amount=a) for i, a in enumerate(draw(st.lists(money(0, 2_000), max_size=2))))
    subtotal = sum((line.gross for line in lines), ZERO)
    discounts = sum((line.discount_total for line in lines), ZERO) + sum((d.amount for d in order_discounts), ZERO)
    shipping_total = sum((s.net for s in shipping), ZERO)
    tax = sum((line.tax_total for line in lines), ZERO) + sum((s.tax_total for s in shipping), ZERO)
    grand_total = subtotal - discounts + shipping_total + tax + sum((f.amount for f in fees), ZERO)
    captured = draw(st.lists(money(0, int(grand_total * 200) + 1), max_size=3))
    return make_order(
        financial_status=draw(st.sampled_from(["paid", "partially_paid", "pending", "authorized", "refunded"])),
        customer=BUYER,
        lines=tuple(lines),
        shipping_lines=tuple(shipping),
        order_discounts=order_discounts,
        fees=fees,
        payments=tuple(Payment(payment_id=f"p{i}", amount=a) for i, a in enumerate(captured)),
        totals=Totals(subtotal=subtotal, shipping=shipping_total, discounts=discounts, tax=tax, total=grand_total),
    )


def sync_settings(ttype: TransactionType, mode: TaxMode, *, adjust: bool = False) -> ChannelSettings:
    return make_settings(
        transaction_type=ttype,
        tax=TaxSettings(mode=mode),
        orders=OrderFilter(financial_statuses=[]),
        adjust_total=adjust,
    )


@EXAMPLES
@given(order=channel_orders())
def test_every_plan_balances_to_the_channel_total(order: Order) -> None:
    for ttype, books, mode in COMBINATIONS:
        result = plan(order, sync_settings(ttype, mode), empty_catalog(books))

        sales = [doc for doc in result.documents if doc.kind is not DocumentKind.PAYMENT]
        payments = [doc for doc in result.documents if doc.kind is DocumentKind.PAYMENT]
        assert sales, (ttype, books, mode)
        for doc in sales:
            assert doc.lines_total() == doc.total == order.totals.total, (ttype, books, mode, doc.role)
            assert all(line.kind is not LineKind.ADJUSTMENT for line in doc.lines)
            for line in doc.lines:
                assert type(line.amount) is Decimal
                assert line.amount >= 0
                if line.kind is LineKind.ITEM:
                    assert line.quantity is not None
                    assert line.unit_price is not None
                    assert line.amount == cents(line.quantity * line.unit_price)
        for doc in payments:
            assert ZERO < doc.total <= order.totals.total
            assert doc.total == order.paid_amount
        paid_invoice = ttype.uses_receivables and order.paid_amount > 0
        assert len(payments) == (1 if paid_invoice else 0)


nonzero_cents = st.integers(-10_000, 10_000).filter(lambda c: c != 0).map(lambda c: Decimal(c).scaleb(-2))


@EXAMPLES
@given(order=channel_orders(), off=nonzero_cents)
def test_a_total_that_is_off_always_fails_naming_the_total(order: Order, off: Decimal) -> None:
    wrong = order.model_copy(update={"totals": order.totals.model_copy(update={"total": order.totals.total + off})})
    for ttype, books, mode in COMBINATIONS:
        with pytest.raises(MappingError) as caught:
            plan(wrong, sync_settings(ttype, mode), empty_catalog(books))
        assert (caught.value.order, caught.value.field) == (order.number, "totals.total")
        assert f"difference {off}" in str(caught.value)

        adjusted = plan(wrong, sync_settings(ttype, mode, adjust=True), empty_catalog(books))
        for doc in adjusted.documents:
            if doc.kind is DocumentKind.PAYMENT:
                continue
            assert doc.lines_total() == wrong.totals.total
            assert [line.amount for line in doc.lines if line.kind is LineKind.ADJUSTMENT] == [off]


names = st.text(alphabet=st.sampled_from("abAB :-_/ßé1"), max_size=120)


@EXAMPLES
@given(keys=st.lists(st.tuples(names, names), min_size=1, max_size=4), buyer=names)
def test_records_created_for_a_plan_are_found_by_the_next_plan(keys: list[tuple[str, str]], buyer: str) -> None:
    """Whatever the SKUs and names look like, ensuring the needs once makes the plan ready: nothing is created twice."""
    lines = [product(f"l{i}", sku=sku, name=name) for i, (sku, name) in enumerate(keys) if (sku + name).strip()]
    if not lines:
        return
    order = simple_order(*lines).model_copy(update={"customer": BUYER.model_copy(update={"first_name": buyer})})
    catalog = empty_catalog()
    first = plan(order, make_settings(), catalog)
    created = [item.name for item in first.needs.items.values()]
    assert all(0 < len(name) <= 100 and ":" not in name for name in created)
    assert len({fold(name) for name in created}) == len(created), "QuickBooks item names are unique"

    second = plan(order, make_settings(), ensure(catalog, first.needs))

    assert second.ready, second.needs
