"""The rules action "set location" (QuickBooks Online's DepartmentRef): through `plan` onto the documents, into
the QBO JSON, and refused with an error naming the order and the field when the location is unknown or the
books are QuickBooks Desktop."""

from __future__ import annotations

from dataclasses import replace

import pytest
from orderbook import full_catalog, make_order, make_settings
from pydantic import ValidationError

from ledgerlink.books.qbo.mapping import to_qbo
from ledgerlink.domain.catalog import Catalog
from ledgerlink.domain.documents import DocumentKind
from ledgerlink.domain.errors import ConfigError, MappingError
from ledgerlink.domain.plan import plan
from ledgerlink.domain.rules import Action, ActionKind, Condition, Operator, Rule, RuleField, books_problems, evaluate
from ledgerlink.domain.settings import TransactionType

pytestmark = pytest.mark.unit


def located(value: str, *, tag: str = "") -> Rule:
    conditions = (Condition(field=RuleField.TAG, operator=Operator.EQUALS, value=tag),) if tag else ()
    return Rule(
        name="East coast",
        conditions=conditions,
        actions=(Action(kind=ActionKind.SET_DEPARTMENT, value=value),),
    )


def with_locations(catalog: Catalog) -> Catalog:
    return replace(catalog, departments={"east": "3", "east:boston": "4", "west": "5"})


def test_the_rule_puts_the_location_on_the_sale_and_qbo_gets_department_ref() -> None:
    settings = make_settings(rules=[located("East:Boston", tag="wholesale")])
    catalog = with_locations(full_catalog())
    result = plan(make_order(tags=("wholesale",)), settings, catalog)
    (receipt,) = result.documents
    assert receipt.department is not None
    assert (receipt.department.id, receipt.department.name) == ("4", "East:Boston")
    body = to_qbo(receipt, company=catalog.company)
    assert body["DepartmentRef"] == {"value": "4", "name": "East:Boston"}
    assert result.rules is not None
    assert result.rules.explain() == [
        "rule 1 'East coast' matched (tag equals 'wholesale': yes (tag is 'wholesale')): location = 'East:Boston'"
    ]
    # An order the rule does not match keeps no location.
    (plain,) = plan(make_order(tags=("retail",)), settings, catalog).documents
    assert plain.department is None
    assert "DepartmentRef" not in to_qbo(plain, company=catalog.company)


def test_a_location_is_found_by_id_and_any_case_and_never_put_on_a_payment() -> None:
    settings = make_settings(rules=[located("3")], transaction_type=TransactionType.INVOICE)
    catalog = with_locations(full_catalog())
    documents = plan(make_order(), settings, catalog).documents
    kinds = {doc.kind: doc for doc in documents}
    assert set(kinds) == {DocumentKind.INVOICE, DocumentKind.PAYMENT}
    invoice, payment = kinds[DocumentKind.INVOICE], kinds[DocumentKind.PAYMENT]
    assert invoice.department is not None
    assert invoice.department.id == "3"
    assert payment.department is None
    assert "DepartmentRef" not in to_qbo(payment, company=catalog.company, linked={"invoice": "9"})
    upper = plan(make_order(), make_settings(rules=[located("  WEST ")]), catalog).documents[0]
    assert upper.department is not None
    assert upper.department.id == "5"


def test_an_unknown_location_fails_the_order_naming_it_and_the_field() -> None:
    settings = make_settings(rules=[located("North")])
    with pytest.raises(MappingError) as failed:
        plan(make_order(), settings, with_locations(full_catalog()))
    assert failed.value.order == "1001"
    assert failed.value.field == "location"
    assert str(failed.value).startswith("order 1001, field location: rule 'East coast' sets the location 'North'")
    assert "QuickBooks Online does not have" in str(failed.value)


def test_desktop_refuses_the_rule_with_a_clear_message() -> None:
    rules = [located("East")]
    with pytest.raises(ConfigError) as failed:
        plan(make_order(), make_settings(rules=rules), full_catalog("qbd"))
    assert failed.value.order == "1001"
    assert failed.value.field == "location"
    assert "QuickBooks Desktop has no locations" in str(failed.value)
    assert books_problems(rules, "qbo") == []
    (problem,) = books_problems(rules, "qbd")
    assert problem.startswith("rule 1 'East coast': actions[0].kind: QuickBooks Desktop has no locations")


def test_a_skipped_order_needs_no_location_and_a_later_rule_replaces_it() -> None:
    skip = Rule(name="Skip all", actions=(Action(kind=ActionKind.SKIP, value="test orders"),))
    result = plan(make_order(), make_settings(rules=[skip, located("Nowhere")]), full_catalog("qbd"))
    assert result.documents == []
    decision = evaluate([located("East"), located("West").model_copy(update={"name": "West wins"})], make_order())
    assert decision.department == ("West", "West wins")


def test_the_action_needs_a_name_that_fits() -> None:
    with pytest.raises(ValidationError, match="set_department needs the name of a QuickBooks location"):
        Action(kind=ActionKind.SET_DEPARTMENT, value=" ")
    with pytest.raises(ValidationError, match="at most 100 characters"):
        Action(kind=ActionKind.SET_DEPARTMENT, value="x" * 101)
