"""The rules engine: conditions, all/any, first-match and all-match, every action through `plan`, validation
errors that name the rule and the field, the settings migration, the preview's explanation, and a property:
valid rules never make the evaluator raise, whatever the order."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from orderbook import ADDRESS, BUYER, D, full_catalog, make_order, make_settings, product, simple_order
from pydantic import ValidationError

from ledgerlink.domain.documents import DocumentKind, LineKind
from ledgerlink.domain.order import Address, Customer, Discount, Order, Payment, ShippingLine, Totals
from ledgerlink.domain.plan import catalog_query, plan
from ledgerlink.domain.rules import (
    TRANSACTION_TYPES,
    Action,
    ActionKind,
    Combine,
    Condition,
    Operator,
    Rule,
    RuleField,
    RulesError,
    evaluate,
    parse_rules,
)
from ledgerlink.domain.settings import SETTINGS_VERSION, ChannelSettings, PaymentSettings, TransactionType
from ledgerlink.preview import preview_body, with_stand_in_accounts

pytestmark = pytest.mark.unit


def when(name: str, *conditions: tuple[str, str, str], match: str = "all", stop: bool = False, **act: str) -> Rule:
    """A rule from compact parts: conditions as (field, operator, value), actions as kind=value."""
    return Rule(
        name=name,
        match=Combine(match),
        stop_if_matched=stop,
        conditions=tuple(Condition(field=RuleField(f), operator=Operator(o), value=v) for f, o, v in conditions),
        actions=tuple(Action(kind=ActionKind(kind), value=value) for kind, value in act.items()),
    )


def holds(order: Order, field: str, operator: str, value: str = "") -> bool:
    decision = evaluate([when("r", (field, operator, value), add_memo="hit")], order)
    return bool(decision.fired)


# -- conditions --------------------------------------------------------------------------------------------


def test_text_conditions_read_the_order_fields_case_insensitively() -> None:
    order = make_order(
        tags=("Wholesale", "VIP"),
        source="web",
        shipping_address=ADDRESS.model_copy(update={"country": "CA", "region": "ON"}),
    )
    assert holds(order, "tag", "equals", "wholesale")
    assert holds(order, "tag", "contains", "sale")
    assert not holds(order, "tag", "equals", "retail")
    assert holds(order, "tag", "not_equals", "retail")
    assert not holds(order, "tag", "not_contains", "VIP")
    assert holds(order, "payment_gateway", "equals", "Shopify_Payments")
    assert holds(order, "payment_method", "one_of", "cash, card")
    assert holds(order, "shipping_country", "equals", "ca")
    assert holds(order, "shipping_region", "one_of", "QC,ON,BC")
    assert holds(order, "sku", "starts_with", "tee-")
    assert holds(order, "sku", "ends_with", "-01")
    assert holds(order, "customer_email", "ends_with", "@example.com")
    assert holds(order, "currency", "equals", "usd")
    assert holds(order, "source", "equals", "WEB")
    assert holds(order, "channel", "equals", "shopify")
    assert holds(order, "order_number", "equals", "1001")
    assert holds(order, "shipping_method", "contains", "ground")
    assert holds(order, "discount_code", "equals", "welcome")
    assert holds(order, "financial_status", "equals", "paid")
    assert holds(order, "fulfillment_status", "equals", "unfulfilled")
    assert holds(order, "tag", "is_not_empty")
    assert not holds(order, "tag", "is_empty")
    assert holds(make_order(tags=()), "tag", "is_empty")
    assert not holds(make_order(tags=()), "tag", "contains", "x")


def test_the_shipping_country_falls_back_to_the_billing_address() -> None:
    order = make_order(shipping_address=Address(), billing_address=ADDRESS.model_copy(update={"country": "GB"}))
    assert holds(order, "shipping_country", "equals", "GB")


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("greater_than", "58.00", True),
        ("greater_than", "58.01", False),
        ("greater_or_equal", "58.01", True),
        ("less_than", "58.01", False),
        ("less_or_equal", "58.010", True),
        ("equals", "58.01", True),
        ("equals", "$58.01", True),
        ("not_equals", "58.01", False),
        ("greater_than", "1,000", False),
    ],
)
def test_total_comparisons_are_decimal(operator: str, value: str, expected: bool) -> None:
    assert holds(make_order(), "total", operator, value) is expected


def test_all_and_any() -> None:
    order = make_order(tags=("wholesale",))
    both = [("tag", "equals", "wholesale"), ("currency", "equals", "EUR")]
    assert not evaluate([when("all", *both, match="all", add_memo="x")], order).fired
    assert evaluate([when("any", *both, match="any", add_memo="x")], order).fired


def test_a_rule_without_conditions_applies_to_every_order() -> None:
    decision = evaluate([when("always", set_class="7")], make_order())
    assert decision.settings_set == {"class_id": ("7", "always")}
    assert "no conditions" in decision.explain()[0]


# -- evaluation order and explanation ----------------------------------------------------------------------


def test_all_match_later_rules_replace_and_say_so() -> None:
    rules = [
        when("Default class", set_class="1"),
        when("Big orders", ("total", "greater_than", "50"), set_class="2", add_memo="#big"),
        when("Euro", ("currency", "equals", "EUR"), set_class="3"),
    ]
    decision = evaluate(rules, make_order())
    assert [t.name for t in decision.fired] == ["Default class", "Big orders"]
    assert decision.settings_set["class_id"] == ("2", "Big orders")
    assert decision.memo_tags == ["#big"]
    explained = decision.explain()
    assert explained[1] == (
        "rule 2 'Big orders' matched (total 58.01 is greater than 50): class = '2' (replaces what rule "
        "'Default class' set); memo tag = '#big'"
    )
    assert explained[2] == "rule 3 'Euro' did not match: currency equals 'EUR': no (currency is 'USD')"


def test_first_match_stops_and_disabled_rules_are_passed_over() -> None:
    off = when("Off", set_class="0").model_copy(update={"enabled": False})
    rules = [off, when("First", set_class="1", stop=True), when("Second", set_class="2")]
    decision = evaluate(rules, make_order())
    assert decision.settings_set["class_id"] == ("1", "First")
    assert [t.name for t in decision.traces] == ["Off", "First"]
    assert decision.traces[0].summary == "rule 1 'Off' is disabled"
    assert decision.traces[1].stopped


def test_skip_ends_the_evaluation_and_plan_leaves_the_order_out() -> None:
    rules = [
        when("Amazon", ("source", "equals", "amazon"), skip="Amazon orders are booked from the settlement report"),
        when("Later", set_class="9"),
    ]
    order = make_order(source="amazon")
    decision = evaluate(rules, order)
    assert decision.skip_reason == "rule 'Amazon': Amazon orders are booked from the settlement report"
    assert [t.name for t in decision.traces] == ["Amazon"]
    result = plan(order, make_settings(rules=rules), full_catalog())
    assert result.skipped == "rule 'Amazon': Amazon orders are booked from the settlement report"
    assert result.documents == []
    assert result.rules is not None
    assert result.rules.fired[0].name == "Amazon"
    # Another source is planned as usual, with the later rule applied.
    other = plan(make_order(source="web"), make_settings(rules=rules), full_catalog())
    assert other.skipped is None
    assert {doc.class_ref.id for doc in other.documents if doc.class_ref} == {"9"}


def test_evaluation_is_deterministic() -> None:
    rules = [when(f"r{i}", ("total", "greater_than", str(i * 10)), set_class=str(i)) for i in range(8)]
    order = make_order()
    first, second = evaluate(rules, order), evaluate(rules, order)
    assert first.explain() == second.explain()
    assert first.settings_set == second.settings_set == {"class_id": ("5", "r5")}


# -- actions, through plan ----------------------------------------------------------------------------------


def test_actions_change_the_documents() -> None:
    rules = [
        when(
            "Marketplace",
            ("tag", "equals", "marketplace"),
            set_class="CL-5",
            set_deposit_account="DEP-MKT",
            set_customer="Amazon customer",
            set_transaction_type="invoice",
            set_ar_account="AR-MKT",
            set_doc_number_prefix="MK-",
            add_memo="[marketplace]",
        )
    ]
    base = make_settings(payments=PaymentSettings(deposit_by_method={"card": "DEP-CARD"}))
    order = make_order(tags=("marketplace",))
    result = plan(order, base.model_copy(update={"rules": rules}), full_catalog())
    invoice = next(doc for doc in result.documents if doc.kind is DocumentKind.INVOICE)
    payment = next(doc for doc in result.documents if doc.kind is DocumentKind.PAYMENT)
    assert invoice.doc_number == "MK-1001"
    assert invoice.class_ref is not None
    assert invoice.class_ref.id == "CL-5"
    assert invoice.ar_account is not None
    assert invoice.ar_account.id == "AR-MKT"
    assert invoice.customer is not None
    assert invoice.customer.name == "Amazon customer"
    assert invoice.memo == "Shopify order #1001 [marketplace]"
    # The rule's deposit account wins over the by-method mapping of Settings → Payments.
    assert payment.deposit_account is not None
    assert payment.deposit_account.id == "DEP-MKT"
    assert [c.display_name for c in result.needs.customers.values()] == ["Amazon customer"]
    assert "Amazon customer" in catalog_query(order, base.model_copy(update={"rules": rules})).customer_names
    # Without the tag: the settings as they are.
    plain = plan(make_order(), base.model_copy(update={"rules": rules}), full_catalog())
    assert [doc.kind for doc in plain.documents] == [DocumentKind.SALES_RECEIPT]
    assert plain.documents[0].deposit_account is not None
    assert plain.documents[0].deposit_account.id == "DEP-CARD"
    assert plain.documents[0].memo == "Shopify order #1001"


def test_map_sku_posts_the_line_as_the_named_item() -> None:
    rule = Rule(
        name="Gift wrap",
        conditions=(Condition(field=RuleField.SKU, operator=Operator.EQUALS, value="WRAP"),),
        actions=(Action(kind=ActionKind.MAP_SKU, sku="wrap", value="MUG-01"),),
    )
    order = simple_order(product(sku="WRAP", name="Gift wrap", price="4.00"))
    settings_ = make_settings(rules=[rule], items={"sku_map": {"WRAP": "Nowhere"}})
    assert "MUG-01" in catalog_query(order, settings_).item_names
    result = plan(order, settings_, full_catalog())
    item_lines = [line for line in result.documents[0].lines if line.kind is LineKind.ITEM]
    assert item_lines[0].item is not None
    assert item_lines[0].item.id == "12"
    assert result.rules is not None
    assert result.rules.as_json()["sku_map"] == {"wrap": {"item": "MUG-01", "rule": "Gift wrap"}}


def test_memo_tags_are_added_once() -> None:
    decision = evaluate([when("a", add_memo="#x"), when("b", add_memo="#x")], make_order())
    assert decision.memo_tags == ["#x"]
    assert decision.memo("Shopify order #1001 #x") == "Shopify order #1001 #x"


def test_a_transaction_type_rule_still_needs_its_account() -> None:
    rules = [when("Invoices", set_transaction_type="invoice")]
    settings_ = make_settings(rules=rules)
    settings_ = settings_.model_copy(
        update={"accounts": settings_.accounts.model_copy(update={"accounts_receivable": None})}
    )
    with pytest.raises(Exception, match="these settings must be chosen") as caught:
        plan(make_order(), settings_, full_catalog())
    assert getattr(caught.value, "field", "") == "accounts.accounts_receivable"


# -- validation ---------------------------------------------------------------------------------------------


def rule_json(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Big",
        "conditions": [{"field": "total", "operator": "greater_than", "value": "100"}],
        "actions": [{"kind": "set_class", "value": "3"}],
    }
    body.update(changes)
    return body


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"conditions": [{"field": "total", "operator": "contains", "value": "1"}]},
            "rule 1 'Big': conditions[0].operator: total is an amount; use one of",
        ),
        (
            {"conditions": [{"field": "total", "operator": "greater_than", "value": "lots"}]},
            "rule 1 'Big': conditions[0].value: 'lots' is not an amount",
        ),
        (
            {"conditions": [{"field": "tag", "operator": "greater_than", "value": "1"}]},
            "rule 1 'Big': conditions[0].operator: tag is a text field",
        ),
        ({"conditions": [{"field": "tag", "operator": "equals"}]}, "conditions[0].value: tag equals needs a value"),
        ({"conditions": [{"field": "colour", "value": "red"}]}, "rule 1 'Big': conditions[0].field: Input should be"),
        ({"actions": []}, "rule 1 'Big': actions: a rule needs at least one action"),
        ({"actions": [{"kind": "set_transaction_type", "value": "cheque"}]}, "actions[0].value: the transaction type"),
        ({"actions": [{"kind": "map_sku", "value": "Mug"}]}, "actions[0].sku: map_sku needs the channel SKU"),
        ({"actions": [{"kind": "set_doc_number_prefix", "value": "FAR-TOO-LONG"}]}, "at most 10 characters"),
        ({"actions": [{"kind": "set_class", "value": " "}]}, "actions[0].value: set_class needs a value"),
        ({"actions": [{"kind": "set_class", "value": "1", "sku": "A"}]}, "actions[0].sku: only map_sku takes a SKU"),
        ({"name": ""}, "rule 1: name: String should have at least 1 character"),
        ({"colour": "red"}, "rule 1 'Big': colour: Extra inputs are not permitted"),
    ],
)
def test_invalid_rules_are_refused_naming_the_rule_and_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules([rule_json(**changes)])
    assert message in str(caught.value)


def test_duplicate_names_and_the_export_shape() -> None:
    with pytest.raises(RulesError, match="rule 2 'big': name: rule 1 already has this name"):
        parse_rules([rule_json(), rule_json(name="big")])
    assert len(parse_rules({"rules": [rule_json()]})) == 1
    with pytest.raises(RulesError, match="must be a JSON list"):
        parse_rules("nope")


def test_settings_refuse_invalid_rules() -> None:
    with pytest.raises(ValidationError, match="is not an amount"):
        ChannelSettings.model_validate(
            {"rules": [rule_json(conditions=[{"field": "total", "operator": "less_than", "value": "x"}])]}
        )
    with pytest.raises(ValidationError, match="already has this name"):
        ChannelSettings.model_validate({"rules": [rule_json(), rule_json()]})


def test_old_settings_load_without_rules() -> None:
    v3 = {"version": 3, "transaction_type": "invoice", "class_id": "4", "payments": {"create_methods": False}}
    loaded = ChannelSettings.model_validate(v3)
    assert loaded.version == SETTINGS_VERSION == 4
    assert loaded.rules == []
    assert loaded.transaction_type is TransactionType.INVOICE
    v1 = ChannelSettings.model_validate({"version": 1, "items": {"no_sku_item_name": "x"}})
    assert v1.version == 4
    assert v1.rules == []
    saved = make_settings(rules=[when("r", set_class="1")]).model_dump(mode="json")
    assert ChannelSettings.model_validate(json.loads(json.dumps(saved))).rules[0].name == "r"


# -- the preview ---------------------------------------------------------------------------------------------


def test_the_preview_says_which_rules_fired_and_why() -> None:
    from ledgerlink.sandbox.shopify import generate_orders

    shop_order = generate_orders(1, seed=3)[0]
    rules = [
        when("Everything", set_class="C1", add_memo="#rules"),
        when("Never", ("currency", "equals", "XXX"), skip="no"),
    ]
    settings_, _ = with_stand_in_accounts(ChannelSettings(rules=rules))
    body = preview_body(shop_order, channel="shopify", settings=settings_)
    assert body["rules"]["fired"] == ["Everything"]
    assert body["rules"]["settings"] == {"class_id": {"value": "C1", "rule": "Everything"}}
    assert body["rules"]["explanation"][1].startswith("rule 2 'Never' did not match: currency equals 'XXX': no")
    payload = body["documents"][0]["payload"]
    assert payload["ClassRef"]["value"] == "C1"
    assert "#rules" in payload["PrivateNote"]
    assert "rules" not in preview_body(
        shop_order, channel="shopify", settings=with_stand_in_accounts(ChannelSettings())[0]
    )


# -- property: valid rules never make the evaluator raise ---------------------------------------------------

texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
amount_texts = st.decimals(min_value=-(10**9), max_value=10**9, places=2).map(str)


@st.composite
def conditions(draw: st.DrawFn) -> Condition:
    field = draw(st.sampled_from(list(RuleField)))
    if field is RuleField.TOTAL:
        operator = draw(
            st.sampled_from(
                sorted({"equals", "not_equals", "greater_than", "greater_or_equal", "less_than", "less_or_equal"})
            )
        )
        return Condition(field=field, operator=Operator(operator), value=draw(amount_texts))
    operator = Operator(
        draw(st.sampled_from(sorted(o.value for o in Operator if not o.value.startswith(("greater", "less")))))
    )
    value = draw(texts.filter(lambda t: t.strip()))
    return Condition(field=field, operator=operator, value=value)


@st.composite
def actions(draw: st.DrawFn) -> Action:
    kind = draw(st.sampled_from(list(ActionKind)))
    if kind is ActionKind.MAP_SKU:
        return Action(
            kind=kind, sku=draw(texts.filter(lambda t: t.strip())), value=draw(st.sampled_from(["MUG-01", "Gift"]))
        )
    if kind is ActionKind.SET_TRANSACTION_TYPE:
        return Action(kind=kind, value=draw(st.sampled_from(TRANSACTION_TYPES)))
    if kind is ActionKind.SET_DOC_NUMBER_PREFIX:
        return Action(kind=kind, value=draw(st.text(alphabet="ABC-", max_size=10)))
    return Action(kind=kind, value=draw(texts.filter(lambda t: t.strip())))


@st.composite
def rule_lists(draw: st.DrawFn) -> list[Rule]:
    count = draw(st.integers(0, 6))
    return [
        Rule(
            name=f"rule {i}",
            enabled=draw(st.booleans()),
            match=draw(st.sampled_from(list(Combine))),
            stop_if_matched=draw(st.booleans()),
            conditions=tuple(draw(st.lists(conditions(), max_size=4))),
            actions=tuple(draw(st.lists(actions(), min_size=1, max_size=4))),
        )
        for i in range(count)
    ]


@st.composite
def orders(draw: st.DrawFn) -> Order:
    total = draw(st.one_of(st.decimals(allow_nan=False, allow_infinity=False), st.just(Decimal("58.01"))))
    return _order(draw, total, Address(country=draw(texts), region=draw(texts)))


def _order(draw: st.DrawFn, total: Decimal, address: Address) -> Order:
    return make_order(
        number=draw(texts),
        currency=draw(texts),
        source=draw(texts),
        tags=tuple(draw(st.lists(texts, max_size=3))),
        customer=Customer(email=draw(texts)) if draw(st.booleans()) else BUYER,
        shipping_address=draw(st.sampled_from([address, Address()])),
        billing_address=draw(st.sampled_from([address, Address(), ADDRESS])),
        payments=tuple(
            Payment(payment_id=str(i), amount=D("1"), gateway=draw(texts), method=draw(texts))
            for i in range(draw(st.integers(0, 2)))
        ),
        shipping_lines=tuple(
            ShippingLine(title=draw(texts), code=draw(texts), price=D("1")) for _ in range(draw(st.integers(0, 2)))
        ),
        order_discounts=tuple(Discount(amount=D("1"), code=draw(texts)) for _ in range(draw(st.integers(0, 2)))),
        lines=tuple(product(line_id=str(i), sku=draw(texts)) for i in range(draw(st.integers(0, 3)))),
        fulfillment_status=draw(st.sampled_from(["", "fulfilled", "partial"])),
        totals=Totals(subtotal=D("0"), total=total),
    )


@settings(max_examples=150, deadline=None, database=None)
@given(rules=rule_lists(), order=orders())
def test_valid_rules_never_raise_and_always_explain(rules: list[Rule], order: Order) -> None:
    decision = evaluate(rules, order)
    again = evaluate(rules, order)
    assert decision.explain() == again.explain()
    assert len(decision.explain()) == len(decision.traces) <= len(rules)
    assert all(trace.summary for trace in decision.traces)
    # The decision always yields settings the schema accepts.
    effective = decision.apply(make_settings(rules=rules))
    assert ChannelSettings.model_validate(effective.model_dump(mode="json")).rules == rules
    if decision.skip is not None:
        assert decision.traces[-1].stopped
        assert decision.skip_reason is not None
        assert decision.skipped_by in decision.skip_reason
