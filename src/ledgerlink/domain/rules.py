"""Rules: how a merchant changes the way orders are booked, without code. Pure data and a pure evaluator.

A channel's settings hold an ordered list of `Rule`s. Each rule has conditions on order fields (combined with
"all" or "any") and actions. `evaluate(rules, order)` runs them top-down between download and posting and
returns a `Decision`: whether to skip the order, and which settings to book it with (class, deposit account,
customer, transaction type, …). Every decision is explainable: each rule's trace says whether it matched, why
(condition by condition), and what it set. `Decision.apply(settings)` gives the settings `plan` books the order
with; `Decision.locate` puts a rule's QuickBooks Online location (DepartmentRef) on the documents.

Order of evaluation: rules run top to bottom; disabled rules are passed over. A matching rule applies its
actions in order; a later rule that sets the same thing replaces the earlier value (the trace says so), memo
tags add up, SKU mappings add up per SKU. A "skip" action ends the evaluation at once. A rule marked
`stop_if_matched` ends it after its own actions (first-match); otherwise evaluation goes on (all-match).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ledgerlink.domain.catalog import fold
from ledgerlink.domain.documents import DEPARTMENT_KINDS, Document, Ref
from ledgerlink.domain.errors import ConfigError, MappingError
from ledgerlink.domain.order import Order

if TYPE_CHECKING:
    from ledgerlink.domain.catalog import Catalog
    from ledgerlink.domain.settings import ChannelSettings

MAX_RULES = 5000  # Connex's limit; a list this long is still evaluated in well under a millisecond per rule
MAX_PREFIX = 10  # ChannelSettings.doc_number_prefix
TRANSACTION_TYPES = ("sales_receipt", "invoice", "sales_order", "sales_order_invoice_payment")
MAX_DEPARTMENT = 100  # a QuickBooks Online Department's Name; a full name "Parent:Child" is refused past it too


class RuleField(enum.StrEnum):
    """An order field a condition reads. Fields marked "any of" hold several values: a condition holds when any
    one of them satisfies it (and a negated operator when none does)."""

    CHANNEL = "channel"  # the store or marketplace kind: "shopify", "shipstation"
    SOURCE = "source"  # the channel's source name: "web", "pos", "amazon", …
    ORDER_NUMBER = "order_number"
    TAG = "tag"  # any of the order's tags
    PAYMENT_GATEWAY = "payment_gateway"  # any payment's gateway ("shopify_payments", "paypal")
    PAYMENT_METHOD = "payment_method"  # any payment's method ("Visa", "cash")
    SHIPPING_COUNTRY = "shipping_country"  # the shipping address's (else the billing address's) country code
    SHIPPING_REGION = "shipping_region"  # … its region / state / province code
    SHIPPING_METHOD = "shipping_method"  # any shipping line's title or code
    SKU = "sku"  # any product line's SKU
    DISCOUNT_CODE = "discount_code"  # any discount code
    CUSTOMER_EMAIL = "customer_email"
    CURRENCY = "currency"
    FINANCIAL_STATUS = "financial_status"
    FULFILLMENT_STATUS = "fulfillment_status"  # "unfulfilled" when the channel gives none
    TOTAL = "total"  # the order total (an amount)


NUMERIC_FIELDS = frozenset({RuleField.TOTAL})


class Operator(enum.StrEnum):
    """How a condition compares. Text compares without regard to case or surrounding spaces."""

    EQUALS = "equals"
    NOT_EQUALS = "not_equals"
    CONTAINS = "contains"
    NOT_CONTAINS = "not_contains"
    STARTS_WITH = "starts_with"
    ENDS_WITH = "ends_with"
    ONE_OF = "one_of"  # value: comma-separated choices
    IS_EMPTY = "is_empty"  # no value needed
    IS_NOT_EMPTY = "is_not_empty"
    GREATER_THAN = "greater_than"
    GREATER_OR_EQUAL = "greater_or_equal"
    LESS_THAN = "less_than"
    LESS_OR_EQUAL = "less_or_equal"


TEXT_OPERATORS = frozenset(
    {
        Operator.EQUALS,
        Operator.NOT_EQUALS,
        Operator.CONTAINS,
        Operator.NOT_CONTAINS,
        Operator.STARTS_WITH,
        Operator.ENDS_WITH,
        Operator.ONE_OF,
        Operator.IS_EMPTY,
        Operator.IS_NOT_EMPTY,
    }
)
NUMERIC_OPERATORS = frozenset(
    {
        Operator.EQUALS,
        Operator.NOT_EQUALS,
        Operator.GREATER_THAN,
        Operator.GREATER_OR_EQUAL,
        Operator.LESS_THAN,
        Operator.LESS_OR_EQUAL,
    }
)
NEGATED = frozenset({Operator.NOT_EQUALS, Operator.NOT_CONTAINS, Operator.IS_EMPTY})
NO_VALUE = frozenset({Operator.IS_EMPTY, Operator.IS_NOT_EMPTY})
OPERATOR_WORDS = {
    Operator.EQUALS: "equals",
    Operator.NOT_EQUALS: "does not equal",
    Operator.CONTAINS: "contains",
    Operator.NOT_CONTAINS: "does not contain",
    Operator.STARTS_WITH: "starts with",
    Operator.ENDS_WITH: "ends with",
    Operator.ONE_OF: "is one of",
    Operator.IS_EMPTY: "is empty",
    Operator.IS_NOT_EMPTY: "is not empty",
    Operator.GREATER_THAN: "is greater than",
    Operator.GREATER_OR_EQUAL: "is at least",
    Operator.LESS_THAN: "is less than",
    Operator.LESS_OR_EQUAL: "is at most",
}


class Combine(enum.StrEnum):
    """How a rule's conditions combine."""

    ALL = "all"
    ANY = "any"


class ActionKind(enum.StrEnum):
    """What a matching rule does."""

    SKIP = "skip"  # value: the reason shown on the dashboard
    SET_CLASS = "set_class"  # value: a QuickBooks Class id
    SET_DEPOSIT_ACCOUNT = "set_deposit_account"  # value: an account id (wins over Settings → Payments mappings)
    SET_AR_ACCOUNT = "set_ar_account"  # value: an Accounts Receivable account id
    SET_CUSTOMER = "set_customer"  # value: one customer name every matching order posts to ("Amazon customer")
    SET_TRANSACTION_TYPE = "set_transaction_type"  # value: one of TRANSACTION_TYPES
    SET_DOC_NUMBER_PREFIX = "set_doc_number_prefix"  # value: up to 10 characters ("" removes the prefix)
    ADD_MEMO = "add_memo"  # value: text added to every document's memo
    MAP_SKU = "map_sku"  # sku: the channel SKU; value: the QuickBooks item name it posts as
    # value: a QuickBooks Online location (DepartmentRef) by its full name or id; Desktop has no locations
    SET_DEPARTMENT = "set_department"


# Actions that set one setting: the name `Decision.settings_set` records it under.
SETTING_OF = {
    ActionKind.SET_CLASS: "class_id",
    ActionKind.SET_DEPOSIT_ACCOUNT: "accounts.deposit",
    ActionKind.SET_AR_ACCOUNT: "accounts.accounts_receivable",
    ActionKind.SET_CUSTOMER: "customer",
    ActionKind.SET_TRANSACTION_TYPE: "transaction_type",
    ActionKind.SET_DOC_NUMBER_PREFIX: "doc_number_prefix",
    ActionKind.SET_DEPARTMENT: "department",
}
ACTION_WORDS = {
    ActionKind.SKIP: "skip the order",
    ActionKind.SET_CLASS: "class",
    ActionKind.SET_DEPOSIT_ACCOUNT: "deposit account",
    ActionKind.SET_AR_ACCOUNT: "A/R account",
    ActionKind.SET_CUSTOMER: "customer",
    ActionKind.SET_TRANSACTION_TYPE: "transaction type",
    ActionKind.SET_DOC_NUMBER_PREFIX: "document number prefix",
    ActionKind.ADD_MEMO: "memo tag",
    ActionKind.MAP_SKU: "SKU mapping",
    ActionKind.SET_DEPARTMENT: "location",
}


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=True)


class Condition(_Part):
    """One test on an order field, e.g. `tag contains wholesale` or `total greater_than 500`."""

    field: RuleField
    operator: Operator = Operator.EQUALS
    value: str = Field(default="", max_length=500)

    @model_validator(mode="after")
    def _fits(self) -> Condition:
        numeric = self.field in NUMERIC_FIELDS
        allowed = NUMERIC_OPERATORS if numeric else TEXT_OPERATORS
        if self.operator not in allowed:
            kind = "an amount" if numeric else "a text field"
            choices = ", ".join(sorted(op.value for op in allowed))
            raise ValueError(f"operator: {self.field.value} is {kind}; use one of {choices}")
        if self.operator in NO_VALUE:
            return self
        if not self.value.strip():
            raise ValueError(f"value: {self.field.value} {self.operator.value} needs a value")
        if numeric and parse_amount(self.value) is None:
            raise ValueError(f"value: {self.value!r} is not an amount (write it like 100 or 99.95)")
        return self

    @property
    def amount(self) -> Decimal:
        """The value as an amount (numeric fields only; validated to parse)."""
        return parse_amount(self.value) or Decimal(0)

    def describe(self) -> str:
        if self.operator in NO_VALUE:
            return f"{self.field.value} {OPERATOR_WORDS[self.operator]}"
        return f"{self.field.value} {OPERATOR_WORDS[self.operator]} {self.value.strip()!r}"


class Action(_Part):
    """One thing a matching rule does; `sku` is used by `map_sku` only."""

    kind: ActionKind
    value: str = Field(default="", max_length=500)
    sku: str = Field(default="", max_length=100)

    @model_validator(mode="after")
    def _fits(self) -> Action:
        kind, value = self.kind, self.value.strip()
        if kind is ActionKind.MAP_SKU:
            if not self.sku.strip():
                raise ValueError("sku: map_sku needs the channel SKU to map")
            if not value:
                raise ValueError("value: map_sku needs the QuickBooks item name")
            if len(value) > 100:
                raise ValueError("value: a QuickBooks item name has at most 100 characters")
        elif kind is ActionKind.SET_DOC_NUMBER_PREFIX:
            if len(value) > MAX_PREFIX:
                raise ValueError(f"value: a document number prefix has at most {MAX_PREFIX} characters")
        elif kind is ActionKind.SET_TRANSACTION_TYPE:
            if value not in TRANSACTION_TYPES:
                raise ValueError(f"value: the transaction type must be one of {', '.join(TRANSACTION_TYPES)}")
        elif kind is ActionKind.SET_CUSTOMER:
            if not value:
                raise ValueError("value: set_customer needs the customer's name")
            if len(value) > 100:
                raise ValueError("value: a customer name has at most 100 characters")
        elif kind is ActionKind.SET_DEPARTMENT:
            if not value:
                raise ValueError("value: set_department needs the name of a QuickBooks location")
            if len(value) > MAX_DEPARTMENT:
                raise ValueError(f"value: a QuickBooks location's full name has at most {MAX_DEPARTMENT} characters")
        elif not value:
            raise ValueError(f"value: {kind.value} needs a value")
        if self.sku.strip() and kind is not ActionKind.MAP_SKU:
            raise ValueError(f"sku: only map_sku takes a SKU, not {kind.value}")
        return self

    def describe(self) -> str:
        value = self.value.strip()
        if self.kind is ActionKind.MAP_SKU:
            return f"SKU {self.sku.strip()!r} → item {value!r}"
        if self.kind is ActionKind.SKIP:
            return f"skip the order ({value})"
        if self.kind is ActionKind.SET_DOC_NUMBER_PREFIX and not value:
            return "no document number prefix"
        return f"{ACTION_WORDS[self.kind]} = {value!r}"


class Rule(_Part):
    """A named rule: when its conditions hold (all, or any), its actions apply. No conditions: always."""

    name: str = Field(min_length=1, max_length=100)
    enabled: bool = True
    match: Combine = Combine.ALL
    conditions: tuple[Condition, ...] = ()
    actions: tuple[Action, ...] = ()
    stop_if_matched: bool = False

    @model_validator(mode="before")
    @classmethod
    def _trim(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            data = {**data, "name": data["name"].strip()}
        return data

    @model_validator(mode="after")
    def _acts(self) -> Rule:
        if not self.actions:
            raise ValueError("actions: a rule needs at least one action")
        return self


class RulesError(ValueError):
    """Rules that cannot be used; each message names the rule (number and name) and the field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def parse_amount(text: str) -> Decimal | None:
    """A finite amount from text ("1,250.00" and "$99" are fine), or None."""
    cleaned = text.strip().replace(",", "").removeprefix("$").strip()
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def check_names(rules: Sequence[Rule]) -> None:
    """Rule names identify rules in every explanation: refuse two rules with the same name."""
    seen: dict[str, int] = {}
    for index, rule in enumerate(rules, start=1):
        key = rule.name.casefold()
        if key in seen:
            raise ValueError(f"rule {index} {rule.name!r}: name: rule {seen[key]} already has this name")
        seen[key] = index
    if len(rules) > MAX_RULES:
        raise ValueError(f"at most {MAX_RULES} rules, not {len(rules)}")


def parse_rules(data: Any) -> list[Rule]:
    """Rules from JSON data (a list of rules, or {"rules": [...]} as exported); raises RulesError naming the rule
    and the field of every problem."""
    if isinstance(data, dict) and "rules" in data:
        data = data["rules"]
    if not isinstance(data, list):
        raise RulesError(['rules must be a JSON list of rules (or {"rules": [...]})'])
    rules: list[Rule] = []
    problems: list[str] = []
    for index, raw in enumerate(data, start=1):
        try:
            rules.append(Rule.model_validate(raw))
        except ValidationError as exc:
            problems.extend(rule_problems(exc, index, raw))
    if not problems:
        try:
            check_names(rules)
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise RulesError(problems)
    return rules


def rule_problems(exc: ValidationError, index: int, raw: Any) -> list[str]:
    """Pydantic's errors for one rule as sentences naming the rule and the field."""
    name = raw.get("name") if isinstance(raw, dict) else None
    who = f"rule {index} {name.strip()!r}" if isinstance(name, str) and name.strip() else f"rule {index}"
    found = []
    for error in exc.errors():
        where = ".".join(_loc_part(p) for p in error["loc"]).replace(".[", "[")
        message = str(error["msg"]).removeprefix("Value error, ")
        # Our own validators name the field in the message ("value: …"); put it after the location.
        head, sep, rest = message.partition(": ")
        if sep and head.isidentifier() and head in {"field", "operator", "value", "sku", "name", "actions"}:
            where, message = f"{where}.{head}" if where else head, rest
        found.append(f"{who}: {where or 'rule'}: {message}")
    return found


def _loc_part(part: Any) -> str:
    return f"[{part}]" if isinstance(part, int) else str(part)


# -- evaluation ------------------------------------------------------------------------------------------------


def field_values(order: Order, name: RuleField) -> tuple[str, ...]:
    """The text values of a field of the order (several for the "any of" fields)."""
    address = order.shipping_address if not order.shipping_address.is_empty() else order.billing_address
    if name is RuleField.CHANNEL:
        return (order.channel,)
    if name is RuleField.SOURCE:
        return (order.source,)
    if name is RuleField.ORDER_NUMBER:
        return (order.number,)
    if name is RuleField.TAG:
        return tuple(order.tags)
    if name is RuleField.PAYMENT_GATEWAY:
        return tuple(p.gateway for p in order.payments if p.gateway)
    if name is RuleField.PAYMENT_METHOD:
        return tuple(p.method for p in order.payments if p.method)
    if name is RuleField.SHIPPING_COUNTRY:
        return (address.country,)
    if name is RuleField.SHIPPING_REGION:
        return (address.region,)
    if name is RuleField.SHIPPING_METHOD:
        return tuple(text for s in order.shipping_lines for text in (s.title, s.code) if text)
    if name is RuleField.SKU:
        return tuple(line.sku for line in order.lines if line.sku)
    if name is RuleField.DISCOUNT_CODE:
        codes = [d.code for line in order.lines for d in line.discounts if d.code]
        codes += [d.code for d in order.order_discounts if d.code]
        return tuple(dict.fromkeys(codes))
    if name is RuleField.CUSTOMER_EMAIL:
        return (order.customer.email,)
    if name is RuleField.CURRENCY:
        return (order.currency,)
    if name is RuleField.FINANCIAL_STATUS:
        return (order.financial_status,)
    if name is RuleField.FULFILLMENT_STATUS:
        return (order.fulfillment_status or "unfulfilled",)
    return (str(order.totals.total),)


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


def _text_holds(operator: Operator, value: str, wanted: str) -> bool:
    """The positive form of a text operator on one value."""
    have = _fold(value)
    if operator in {Operator.EQUALS, Operator.NOT_EQUALS}:
        return have == _fold(wanted)
    if operator in {Operator.CONTAINS, Operator.NOT_CONTAINS}:
        return _fold(wanted) in have
    if operator is Operator.STARTS_WITH:
        return have.startswith(_fold(wanted))
    if operator is Operator.ENDS_WITH:
        return have.endswith(_fold(wanted))
    if operator is Operator.ONE_OF:
        return have in {_fold(choice) for choice in wanted.split(",") if choice.strip()}
    return bool(have)  # IS_EMPTY / IS_NOT_EMPTY: "has a value"


def check(condition: Condition, order: Order) -> tuple[bool, str]:
    """Whether the condition holds for the order, and why, in words."""
    name = condition.field.value
    if condition.field in NUMERIC_FIELDS:
        amount = order.totals.total
        if not amount.is_finite():
            return False, f"{name} is not a number ({amount})"
        limit = condition.amount
        holds = {
            Operator.EQUALS: amount == limit,
            Operator.NOT_EQUALS: amount != limit,
            Operator.GREATER_THAN: amount > limit,
            Operator.GREATER_OR_EQUAL: amount >= limit,
            Operator.LESS_THAN: amount < limit,
            Operator.LESS_OR_EQUAL: amount <= limit,
        }[condition.operator]
        verb = OPERATOR_WORDS[condition.operator]
        return holds, f"{name} {amount} {verb if holds else _negate(verb)} {limit}"
    values = [v for v in field_values(order, condition.field) if v.strip()]
    hits = [v for v in values if _text_holds(condition.operator, v, condition.value)]
    holds = not hits if condition.operator in NEGATED else bool(hits)
    shown = ", ".join(repr(v) for v in values[:5]) + (", …" if len(values) > 5 else "")
    seen = f"{name} is {shown}" if values else f"{name} is empty"
    if condition.operator in NO_VALUE:
        return holds, seen
    verdict = "yes" if holds else "no"
    return holds, f"{condition.describe()}: {verdict} ({seen})"


def _negate(verb: str) -> str:
    if verb.startswith("is not "):
        return "is " + verb.removeprefix("is not ")
    if verb.startswith("is "):
        return "is not " + verb.removeprefix("is ")
    if verb == "equals":
        return "does not equal"
    return "equals" if verb == "does not equal" else f"not {verb}"


@dataclass(frozen=True, slots=True)
class RuleTrace:
    """What one rule did for one order: whether it ran and matched, why, and what it set."""

    index: int  # 1-based position in the list
    name: str
    enabled: bool
    matched: bool
    reasons: tuple[str, ...] = ()
    applied: tuple[str, ...] = ()
    stopped: bool = False  # evaluation ended with this rule (skip, or stop_if_matched)

    @property
    def summary(self) -> str:
        if not self.enabled:
            return f"rule {self.index} {self.name!r} is disabled"
        if not self.matched:
            return f"rule {self.index} {self.name!r} did not match: " + "; ".join(self.reasons)
        why = "; ".join(self.reasons) or "it has no conditions, so it applies to every order"
        return f"rule {self.index} {self.name!r} matched ({why}): " + "; ".join(self.applied)


@dataclass(slots=True)
class Decision:
    """The outcome of the rules for one order: skip it, or book it with these overrides."""

    traces: list[RuleTrace] = field(default_factory=list)
    skip: str | None = None
    skipped_by: str = ""
    settings_set: dict[str, tuple[str, str]] = field(default_factory=dict)  # setting → (value, rule name)
    memo_tags: list[str] = field(default_factory=list)
    sku_map: dict[str, tuple[str, str]] = field(default_factory=dict)  # folded SKU → (item name, rule name)
    sku_names: dict[str, str] = field(default_factory=dict)  # folded SKU → the SKU as the rule wrote it

    @property
    def fired(self) -> list[RuleTrace]:
        """The rules that matched, in order."""
        return [trace for trace in self.traces if trace.matched]

    @property
    def changes_anything(self) -> bool:
        return bool(self.skip is not None or self.settings_set or self.memo_tags or self.sku_map)

    @property
    def skip_reason(self) -> str | None:
        """The reason a skipped order is left out, naming the rule."""
        if self.skip is None:
            return None
        return f"rule {self.skipped_by!r}: {self.skip}"

    def explain(self) -> list[str]:
        """Why the order is booked as it is, one sentence per rule (the preview and the rules page show it)."""
        return [trace.summary for trace in self.traces]

    def as_json(self) -> dict[str, Any]:
        """The decision as plain JSON (the preview's "rules" section)."""
        return {
            "fired": [trace.name for trace in self.fired],
            "skipped": self.skip_reason,
            "settings": {name: {"value": value, "rule": rule} for name, (value, rule) in self.settings_set.items()},
            "memo_tags": list(self.memo_tags),
            "sku_map": {
                self.sku_names[key]: {"item": item, "rule": rule} for key, (item, rule) in self.sku_map.items()
            },
            "explanation": self.explain(),
        }

    def apply(self, settings: ChannelSettings) -> ChannelSettings:
        """`settings` with this decision's overrides: what `plan` books the order with (unchanged when none)."""
        if not self.settings_set and not self.sku_map:
            return settings
        from ledgerlink.domain.settings import CustomerMode, TransactionType

        update: dict[str, Any] = {}
        accounts: dict[str, Any] = {}
        for name, (value, _rule) in self.settings_set.items():
            if name == "class_id":
                update["class_id"] = value
            elif name == "transaction_type":
                update["transaction_type"] = TransactionType(value)
            elif name == "doc_number_prefix":
                update["doc_number_prefix"] = value
            elif name == "customer":
                update["customers"] = settings.customers.model_copy(
                    update={"mode": CustomerMode.SINGLE, "single_name": value}
                )
            elif name.startswith("accounts."):
                accounts[name.removeprefix("accounts.")] = value
        if "deposit" in accounts:
            # The rule's account wins over the by-method and by-currency mappings of Settings → Payments.
            update["payments"] = settings.payments.model_copy(
                update={"deposit_by_method": {}, "deposit_by_currency": {}}
            )
        if accounts:
            update["accounts"] = settings.accounts.model_copy(update=accounts)
        if self.sku_map:
            kept = {
                sku: item for sku, item in settings.items.sku_map.items() if sku.strip().casefold() not in self.sku_map
            }
            mapped = {self.sku_names[key]: item for key, (item, _rule) in self.sku_map.items()}
            update["items"] = settings.items.model_copy(update={"sku_map": {**kept, **mapped}})
        return settings.model_copy(update=update)

    @property
    def department(self) -> tuple[str, str] | None:
        """The location a rule set, and the rule's name; None when no rule set one."""
        return self.settings_set.get("department")

    def locate(self, documents: Sequence[Document], catalog: Catalog, order: Order) -> list[Document]:
        """The documents with the location a rule set (sales documents and refunds; a Payment has none).

        Raises `MappingError` naming the order and the field when the books are QuickBooks Desktop (it has no
        locations) or the company has no location of that name."""
        if self.department is None:
            return list(documents)
        name, rule = self.department
        if catalog.company.books != "qbo":
            raise ConfigError(
                f"rule {rule!r} sets the location {name!r}, but QuickBooks Desktop has no locations (departments): "
                "remove that action from the rule, or use a class instead",
                order=order.label,
                field="location",
            )
        department_id = catalog.find_department(name)
        if department_id is None:
            raise MappingError(
                f"rule {rule!r} sets the location {name!r}, which QuickBooks Online does not have: add it in "
                "QuickBooks (Settings → All lists → Locations), or correct the rule",
                order=order.label,
                field="location",
            )
        ref = Ref(key=f"department:{fold(name)}", name=name, id=department_id)
        return [
            doc.model_copy(update={"department": ref}) if doc.kind in DEPARTMENT_KINDS else doc for doc in documents
        ]

    def memo(self, memo: str) -> str:
        """A document memo with this decision's memo tags added (once, however often it is asked)."""
        tags = [tag for tag in self.memo_tags if tag not in memo]
        return " ".join([memo, *tags]) if tags else memo


def evaluate(rules: Iterable[Rule], order: Order) -> Decision:
    """Run the rules top-down on one order. Deterministic; never raises for valid rules and any order."""
    decision = Decision()
    for index, rule in enumerate(rules, start=1):
        if not rule.enabled:
            decision.traces.append(RuleTrace(index, rule.name, enabled=False, matched=False))
            continue
        results = [check(condition, order) for condition in rule.conditions]
        if not results:
            matched = True
        elif rule.match is Combine.ALL:
            matched = all(holds for holds, _why in results)
        else:
            matched = any(holds for holds, _why in results)
        reasons = tuple(why for _holds, why in results)
        if not matched:
            decision.traces.append(RuleTrace(index, rule.name, enabled=True, matched=False, reasons=reasons))
            continue
        applied, stop = _act(decision, rule)
        decision.traces.append(
            RuleTrace(index, rule.name, enabled=True, matched=True, reasons=reasons, applied=applied, stopped=stop)
        )
        if stop:
            break
    return decision


def _act(decision: Decision, rule: Rule) -> tuple[tuple[str, ...], bool]:
    applied: list[str] = []
    for action in rule.actions:
        value = action.value.strip()
        if action.kind is ActionKind.SKIP:
            decision.skip, decision.skipped_by = value, rule.name
            applied.append(action.describe())
            return tuple(applied), True
        if action.kind is ActionKind.ADD_MEMO:
            if value not in decision.memo_tags:
                decision.memo_tags.append(value)
            applied.append(action.describe())
        elif action.kind is ActionKind.MAP_SKU:
            key = action.sku.strip().casefold()
            note = ""
            if key in decision.sku_map and decision.sku_map[key][1] != rule.name:
                note = f" (replaces what rule {decision.sku_map[key][1]!r} set)"
            decision.sku_map[key] = (value, rule.name)
            decision.sku_names[key] = action.sku.strip()
            applied.append(action.describe() + note)
        else:
            setting = SETTING_OF[action.kind]
            note = ""
            if setting in decision.settings_set and decision.settings_set[setting][1] != rule.name:
                note = f" (replaces what rule {decision.settings_set[setting][1]!r} set)"
            decision.settings_set[setting] = (value, rule.name)
            applied.append(action.describe() + note)
    return tuple(applied), rule.stop_if_matched


def books_problems(rules: Sequence[Rule], books: str) -> list[str]:
    """Why these rules cannot be used with this kind of books ("qbo", "qbd"): Desktop has no locations."""
    if books == "qbo":
        return []
    return [
        f"rule {index} {rule.name!r}: actions[{number}].kind: QuickBooks Desktop has no locations (departments); "
        "set_department works with QuickBooks Online only"
        for index, rule in enumerate(rules, start=1)
        for number, action in enumerate(rule.actions)
        if action.kind is ActionKind.SET_DEPARTMENT
    ]


def apply_rules(order: Order, settings: ChannelSettings) -> tuple[Decision, ChannelSettings]:
    """The rules of `settings` on `order`: the decision and the settings to book the order with."""
    decision = evaluate(settings.rules, order)
    return decision, decision.apply(settings)
