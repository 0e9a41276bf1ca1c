"""Money: `Decimal` to the cent, half up; never a float."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ledgerlink.domain.errors import MappingError
from ledgerlink.domain.money import ZERO, cents, parse_money, parse_quantity, total

pytestmark = pytest.mark.unit

D = Decimal


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (D("2.675"), "2.68"),
        (D("2.665"), "2.67"),
        (D("2.6749"), "2.67"),
        (D("0.005"), "0.01"),
        (D("0.0049"), "0.00"),
        (D("-2.675"), "-2.68"),  # half away from zero, as accounting rounds
        (D("-0.004"), "0.00"),
        ("19.999", "20.00"),
        (3, "3.00"),
        (D("1E+2"), "100.00"),
    ],
)
def test_cents_rounds_half_up(raw: Decimal | int | str, expected: str) -> None:
    result = cents(raw)

    assert result == D(expected)
    assert result.as_tuple().exponent == -2


def test_total_sums_then_rounds_once() -> None:
    assert total([D("0.005"), D("0.005")]) == D("0.01")
    assert total([D("1.10"), D("2.20"), D("-0.30")]) == D("3.00")
    assert total([]) == ZERO
    assert str(total([])) == "0.00"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("12.5", "12.50"),
        (" 12.50 ", "12.50"),
        ("-3.10", "-3.10"),
        ("1.005", "1.01"),
        (12, "12.00"),
        (D("7.125"), "7.13"),
        (0.1, "0.10"),
        (1.005, "1.01"),  # read through str(): the binary 1.00499999… does not round down
        (19.99, "19.99"),
        (None, "0.00"),
        ("", "0.00"),
    ],
)
def test_parse_money_reads_strings_and_numbers_into_cents(raw: object, expected: str) -> None:
    result = parse_money(raw, order="1001", field="totals.total")

    assert type(result) is Decimal
    assert result == D(expected)
    assert str(result) == expected


@pytest.mark.parametrize(
    "raw",
    ["abc", "1,000.00", "$5", "NaN", "sNaN", "Infinity", "-inf", "1e30", True, False, [1], {"amount": 1}, b"1"],
)
def test_parse_money_refuses_what_is_not_an_amount(raw: object) -> None:
    with pytest.raises(MappingError) as caught:
        parse_money(raw, order="1001", field="lines[0].price")

    assert (caught.value.order, caught.value.field) == ("1001", "lines[0].price")
    assert "order 1001, field lines[0].price" in str(caught.value)


@pytest.mark.parametrize(("raw", "expected"), [("2", D("2")), (3, D("3")), (1.5, D("1.5")), ("0.125", D("0.125"))])
def test_parse_quantity_keeps_fractions(raw: object, expected: Decimal) -> None:
    result = parse_quantity(raw, field="lines[0].quantity")

    assert type(result) is Decimal
    assert result == expected


@pytest.mark.parametrize("raw", [0, "0", -1, "-0.5", "x", "NaN", None, True, "inf"])
def test_parse_quantity_refuses_zero_negative_and_garbage(raw: object) -> None:
    with pytest.raises(MappingError) as caught:
        parse_quantity(raw, order="1001", field="lines[2].quantity")

    assert caught.value.field == "lines[2].quantity"
