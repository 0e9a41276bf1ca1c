"""Settings → Rules: the ordered rules of one selling channel (list, add, edit, reorder, delete, enable/disable,
import and export as JSON) and "Test on an order", which shows which rules fire for a stored order and the
documents it would become. Every change is a new settings revision, so History shows who changed the rules.

The pages live under `/settings/{id}/rules…`; this router is mounted before the settings router, whose
`/settings/{id}/{page}` would otherwise answer `/settings/{id}/rules`. Within it, the fixed paths (import,
test, export) come before `/rules/{target}`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from ledgerlink.channels.base import channel_parser
from ledgerlink.domain.errors import LedgerlinkError
from ledgerlink.domain.rules import (
    ActionKind,
    Decision,
    Operator,
    Rule,
    RuleField,
    RulesError,
    books_problems,
    check_names,
    evaluate,
    parse_rules,
    rule_problems,
)
from ledgerlink.domain.settings import ChannelSettings
from ledgerlink.jsonwire import loads
from ledgerlink.preview import preview_body, with_stand_in_accounts
from ledgerlink.store.models import Connection, StoredOrder
from ledgerlink.sync.engine import load_settings
from ledgerlink.web import forms
from ledgerlink.web.deps import SessionDep, Viewer, ViewerDep, csrf_protect
from ledgerlink.web.routes.preview import pretty_json
from ledgerlink.web.routes.settings import (
    TABS,
    FormDep,
    channel_connection,
    channels_of,
    missing_words,
    not_found,
    save_if_changed,
    upload_text,
)
from ledgerlink.web.templating import flash, render

router = APIRouter(dependencies=[Depends(csrf_protect)], include_in_schema=False)

BLANK_ROWS = 2  # empty condition and action rows the editor offers below the filled ones
MAX_ROWS = 40

FIELD_LABELS = {
    RuleField.CHANNEL: "Store / marketplace",
    RuleField.SOURCE: "Source name",
    RuleField.ORDER_NUMBER: "Order number",
    RuleField.TAG: "Order tag (any)",
    RuleField.PAYMENT_GATEWAY: "Payment gateway (any)",
    RuleField.PAYMENT_METHOD: "Payment method (any)",
    RuleField.SHIPPING_COUNTRY: "Shipping country",
    RuleField.SHIPPING_REGION: "Shipping state / region",
    RuleField.SHIPPING_METHOD: "Shipping method (any)",
    RuleField.SKU: "SKU (any line)",
    RuleField.DISCOUNT_CODE: "Discount code (any)",
    RuleField.CUSTOMER_EMAIL: "Customer e-mail",
    RuleField.CURRENCY: "Currency",
    RuleField.FINANCIAL_STATUS: "Financial status",
    RuleField.FULFILLMENT_STATUS: "Fulfilment status",
    RuleField.TOTAL: "Order total",
}
OPERATOR_LABELS = {
    Operator.EQUALS: "equals",
    Operator.NOT_EQUALS: "does not equal",
    Operator.CONTAINS: "contains",
    Operator.NOT_CONTAINS: "does not contain",
    Operator.STARTS_WITH: "starts with",
    Operator.ENDS_WITH: "ends with",
    Operator.ONE_OF: "is one of (comma-separated)",
    Operator.IS_EMPTY: "is empty",
    Operator.IS_NOT_EMPTY: "is not empty",
    Operator.GREATER_THAN: "greater than",
    Operator.GREATER_OR_EQUAL: "greater than or equal to",
    Operator.LESS_THAN: "less than",
    Operator.LESS_OR_EQUAL: "less than or equal to",
}
ACTION_LABELS = {
    ActionKind.SKIP: "Skip the order (value: the reason)",
    ActionKind.SET_CLASS: "Set the QuickBooks class (class id)",
    ActionKind.SET_DEPOSIT_ACCOUNT: "Set the deposit account (account id)",
    ActionKind.SET_AR_ACCOUNT: "Set the A/R account (account id)",
    ActionKind.SET_CUSTOMER: "Post to one customer (name)",
    ActionKind.SET_TRANSACTION_TYPE: "Set the transaction type",
    ActionKind.SET_DOC_NUMBER_PREFIX: "Set the document number prefix",
    ActionKind.ADD_MEMO: "Add a memo tag",
    ActionKind.MAP_SKU: "Map a SKU to a QuickBooks item (SKU → item name)",
    ActionKind.SET_DEPARTMENT: "Set the QuickBooks Online location (name or id)",
}


@dataclass(frozen=True, slots=True)
class TestedDocument:
    """One document of a tested order, as the rules page shows it."""

    kind: str
    number: str
    customer: str
    class_id: str
    account: str
    memo: str
    total: str
    payload: str


def _page(
    request: Request,
    session: Session,
    viewer: Viewer,
    channel: Connection,
    template: str,
    *,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    settings = extra.pop("settings", None) or load_settings(session, channel.id)
    return render(
        request,
        template,
        status_code=status_code,
        viewer=viewer,
        channels=channels_of(session, viewer.company.id),
        channel=channel,
        store=forms.channel_title(channel.kind),
        page="rules",
        tabs=TABS,
        missing=missing_words(settings),
        forms=forms,
        settings=settings,
        rules=settings.rules,
        field_labels=FIELD_LABELS,
        operator_labels=OPERATOR_LABELS,
        action_labels=ACTION_LABELS,
        **extra,
    )


def check_books(session: Session, channel: Connection, rules: list[Rule]) -> None:
    """Refuse rules the channel's QuickBooks cannot carry out (a location on a Desktop company)."""
    books = session.get(Connection, channel.books_id) if channel.books_id is not None else None
    problems = books_problems(rules, books.kind) if books is not None else []
    if problems:
        raise ValueError("; ".join(problems))


def _save_rules(session: Session, channel: Connection, rules: list[Rule], email: str) -> int | None:
    """Validate the whole settings with these rules and save a new revision when something changed."""
    current = load_settings(session, channel.id)
    new = ChannelSettings.model_validate({**current.model_dump(mode="json"), "rules": [r.model_dump() for r in rules]})
    return save_if_changed(session, channel, current, new, email)


def _saved(request: Request, revision: int | None, what: str) -> None:
    flash(request, f"{what} Saved as revision {revision}." if revision is not None else "Nothing changed.")


def _list_url(channel: Connection) -> str:
    return f"/settings/{channel.id}/rules"


@router.get("/settings/{connection_id}/rules")
def rules_page(request: Request, session: SessionDep, viewer: ViewerDep, connection_id: int) -> Response:
    """The channel's rules, top to bottom, with the import, export and test tools."""
    channel = channel_connection(session, viewer, connection_id)
    if channel is None:
        return not_found(request, viewer)
    return _page(request, session, viewer, channel, "settings/rules.html", orders=_recent_numbers(session, channel))


# -- import and export -------------------------------------------------------------------------------------


@router.get("/settings/{connection_id}/rules/export.json")
def export_rules(request: Request, session: SessionDep, viewer: ViewerDep, connection_id: int) -> Response:
    """The rules as a JSON download ({"rules": [...]}), which the import takes back."""
    channel = channel_connection(session, viewer, connection_id)
    if channel is None:
        return not_found(request, viewer)
    rules = load_settings(session, channel.id).rules
    body = json.dumps({"rules": [rule.model_dump(mode="json") for rule in rules]}, indent=2, ensure_ascii=False)
    filename = f"rules-{channel.name}.json".replace('"', "")
    return Response(
        body + "\n",
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.post("/settings/{connection_id}/rules/import")
def import_rules(
    request: Request, form: FormDep, session: SessionDep, viewer: ViewerDep, connection_id: int
) -> Response:
    """Import rules from an uploaded file or pasted JSON: all or nothing, appended or replacing the list."""
    channel = channel_connection(session, viewer, connection_id)
    if channel is None:
        return not_found(request, viewer)
    pasted = form.get("rules_json")
    text = upload_text(form, "rules_file")
    if not text or not text.strip():
        text = pasted if isinstance(pasted, str) else ""
    replace = form.get("mode") == "replace"
    problems: list[str] = []
    imported: list[Rule] = []
    current: list[Rule] = []
    if not text.strip():
        problems = ["choose a JSON file or paste the rules' JSON (as the export writes it)"]
    else:
        try:
            imported = parse_rules(loads(text))
        except json.JSONDecodeError as exc:
            problems = [f"this is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"]
        except RulesError as exc:
            problems = exc.problems
    if not problems:
        current = [] if replace else list(load_settings(session, channel.id).rules)
        try:
            check_names([*current, *imported])
            check_books(session, channel, [*current, *imported])
        except ValueError as exc:
            problems = [f"{exc} (after the {len(current)} rules already there; rename it, or replace the list)"]
    if problems:
        return _page(
            request,
            session,
            viewer,
            channel,
            "settings/rules.html",
            status_code=422,
            import_errors=problems,
            orders=_recent_numbers(session, channel),
        )
    revision = _save_rules(session, channel, [*current, *imported], viewer.user.email)
    _saved(request, revision, f"Imported {len(imported)} rule{'s' if len(imported) != 1 else ''}.")
    return RedirectResponse(_list_url(channel), status_code=303)


# -- test on an order --------------------------------------------------------------------------------------


def _recent_numbers(session: Session, channel: Connection, limit: int = 50) -> list[str]:
    """Numbers of the channel's latest stored orders (suggestions for the test box)."""
    return list(
        session.scalars(
            select(StoredOrder.number)
            .where(StoredOrder.connection_id == channel.id)
            .order_by(StoredOrder.id.desc())
            .limit(limit)
        )
    )


def _tested_documents(body: dict[str, Any]) -> list[TestedDocument]:
    documents = []
    for doc in body["documents"]:
        payload: dict[str, Any] = doc["payload"]
        account = payload.get("DepositToAccountRef") or payload.get("ARAccountRef") or {}
        documents.append(
            TestedDocument(
                kind=doc["kind"],
                number=str(payload.get("DocNumber") or ""),
                customer=str((payload.get("CustomerRef") or {}).get("name") or ""),
                class_id=str((payload.get("ClassRef") or {}).get("value") or ""),
                account=str(account.get("name") or account.get("value") or ""),
                memo=str(payload.get("PrivateNote") or ""),
                total=str(payload.get("TotalAmt") or ""),
                payload=pretty_json({doc["kind"]: payload}),
            )
        )
    return documents


@router.post("/settings/{connection_id}/rules/test")
def test_rules(request: Request, form: FormDep, session: SessionDep, viewer: ViewerDep, connection_id: int) -> Response:
    """Run the saved rules on one stored order: which rules match and why, and the documents it would become."""
    channel = channel_connection(session, viewer, connection_id)
    if channel is None:
        return not_found(request, viewer)
    number = str(form.get("order_number") or "").strip().removeprefix("#")
    orders = _recent_numbers(session, channel)
    stored = (
        session.scalars(
            select(StoredOrder).where(StoredOrder.connection_id == channel.id, StoredOrder.number == number)
        ).first()
        if number
        else None
    )
    if stored is None:
        message = f"there is no order #{number} of this channel" if number else "enter an order number"
        return _page(
            request,
            session,
            viewer,
            channel,
            "settings/rules.html",
            status_code=422,
            test_error=message,
            test_number=number,
            orders=orders,
        )
    settings = load_settings(session, channel.id)
    decision: Decision | None = None
    body: dict[str, Any] | None = None
    problem = ""
    try:
        order = channel_parser(channel.kind)(stored.raw)
        decision = evaluate(settings.rules, order)
        body = preview_body(stored.raw, channel=channel.kind, settings=with_stand_in_accounts(settings)[0])
    except LedgerlinkError as exc:
        problem = str(exc)
    return _page(
        request,
        session,
        viewer,
        channel,
        "settings/rules.html",
        settings=settings,
        test_number=number,
        orders=orders,
        decision=decision,
        tested=_tested_documents(body) if body else [],
        tested_skip=(body or {}).get("skipped", ""),
        tested_order=(body or {}).get("order"),
        test_problem=problem,
    )


# -- add and edit -----------------------------------------------------------------------------------------


def _editor(
    request: Request,
    session: Session,
    viewer: Viewer,
    channel: Connection,
    *,
    number: int | None,
    values: dict[str, Any],
    problems: list[str] | None = None,
    status_code: int = 200,
) -> Response:
    conditions = list(values.get("conditions") or [])
    actions = list(values.get("actions") or [])
    conditions += [{"field": "", "operator": "equals", "value": ""}] * BLANK_ROWS
    actions += [{"kind": "", "value": "", "sku": ""}] * BLANK_ROWS
    return _page(
        request,
        session,
        viewer,
        channel,
        "settings/rules_edit.html",
        status_code=status_code,
        number=number,
        v=values,
        condition_rows=conditions,
        action_rows=actions,
        problems=problems or [],
        action=f"/settings/{channel.id}/rules/{number if number else 'new'}",
    )


@router.get("/settings/{connection_id}/rules/new")
def new_rule(request: Request, session: SessionDep, viewer: ViewerDep, connection_id: int) -> Response:
    channel = channel_connection(session, viewer, connection_id)
    if channel is None:
        return not_found(request, viewer)
    values = {"name": "", "enabled": True, "match": "all", "stop_if_matched": False}
    return _editor(request, session, viewer, channel, number=None, values=values)


@router.get("/settings/{connection_id}/rules/{number}/edit")
def edit_rule(request: Request, session: SessionDep, viewer: ViewerDep, connection_id: int, number: int) -> Response:
    channel = channel_connection(session, viewer, connection_id)
    if channel is None:
        return not_found(request, viewer)
    rules = load_settings(session, channel.id).rules
    if not 1 <= number <= len(rules):
        return not_found(request, viewer)
    return _editor(request, session, viewer, channel, number=number, values=rules[number - 1].model_dump(mode="json"))


def rule_from_form(form: FormData) -> dict[str, Any]:
    """The rule the editor posted, as JSON data (blank rows left out)."""

    def text(name: str) -> str:
        value = form.get(name)
        return value.strip() if isinstance(value, str) else ""

    conditions = []
    actions = []
    for row in range(MAX_ROWS):
        if text(f"cond_field_{row}"):
            conditions.append(
                {
                    "field": text(f"cond_field_{row}"),
                    "operator": text(f"cond_op_{row}") or "equals",
                    "value": text(f"cond_value_{row}"),
                }
            )
        if text(f"act_kind_{row}"):
            action = {"kind": text(f"act_kind_{row}"), "value": text(f"act_value_{row}")}
            if text(f"act_sku_{row}"):
                action["sku"] = text(f"act_sku_{row}")
            actions.append(action)
    return {
        "name": text("name"),
        "enabled": bool(form.get("enabled")),
        "match": text("match") or "all",
        "stop_if_matched": bool(form.get("stop_if_matched")),
        "conditions": conditions,
        "actions": actions,
    }


@router.post("/settings/{connection_id}/rules/{target}")
def save_rule(
    request: Request, form: FormDep, session: SessionDep, viewer: ViewerDep, connection_id: int, target: str
) -> Response:
    """Save the editor: `target` is "new" (added at the bottom) or the number of the rule it replaces."""
    channel = channel_connection(session, viewer, connection_id)
    if channel is None:
        return not_found(request, viewer)
    rules = list(load_settings(session, channel.id).rules)
    if target == "new":
        number = None
    elif target.isdigit() and 1 <= int(target) <= len(rules):
        number = int(target)
    else:
        return not_found(request, viewer)
    data = rule_from_form(form)
    position = number or len(rules) + 1
    try:
        rule = Rule.model_validate(data)
        if number is None:
            rules.append(rule)
        else:
            rules[number - 1] = rule
        check_names(rules)
        check_books(session, channel, rules)
    except ValidationError as exc:
        problems = rule_problems(exc, position, data)
        return _editor(
            request, session, viewer, channel, number=number, values=data, problems=problems, status_code=422
        )
    except ValueError as exc:
        return _editor(
            request, session, viewer, channel, number=number, values=data, problems=[str(exc)], status_code=422
        )
    revision = _save_rules(session, channel, rules, viewer.user.email)
    _saved(request, revision, f"Rule {rule.name!r} {'added' if number is None else 'saved'}.")
    return RedirectResponse(_list_url(channel), status_code=303)


# -- reorder, enable, delete -------------------------------------------------------------------------------


@router.post("/settings/{connection_id}/rules/{number}/{operation}")
def change_rule(
    request: Request,
    form: FormDep,
    session: SessionDep,
    viewer: ViewerDep,
    connection_id: int,
    number: int,
    operation: str,
) -> Response:
    """Move a rule up or down, turn it on or off, or delete it."""
    channel = channel_connection(session, viewer, connection_id)
    if channel is None:
        return not_found(request, viewer)
    rules = list(load_settings(session, channel.id).rules)
    if not 1 <= number <= len(rules) or operation not in {"up", "down", "toggle", "delete"}:
        return not_found(request, viewer)
    index = number - 1
    rule = rules[index]
    if operation == "up" and index > 0:
        rules[index - 1], rules[index] = rules[index], rules[index - 1]
        what = f"Rule {rule.name!r} moved up."
    elif operation == "down" and index < len(rules) - 1:
        rules[index + 1], rules[index] = rules[index], rules[index + 1]
        what = f"Rule {rule.name!r} moved down."
    elif operation == "toggle":
        rules[index] = rule.model_copy(update={"enabled": not rule.enabled})
        what = f"Rule {rule.name!r} {'disabled' if rule.enabled else 'enabled'}."
    elif operation == "delete":
        del rules[index]
        what = f"Rule {rule.name!r} deleted."
    else:
        what = f"Rule {rule.name!r} is already at the {'top' if operation == 'up' else 'bottom'}."
    _saved(request, _save_rules(session, channel, rules, viewer.user.email), what)
    return RedirectResponse(_list_url(channel), status_code=303)
