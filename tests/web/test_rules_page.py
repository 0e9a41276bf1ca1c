"""Settings → Rules: add, edit, reorder, enable/disable, delete, import/export as JSON, and "Test on an order",
each change a settings revision in the history; forms need the CSRF token; other companies' channels are 404."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from webtools import Web, connect_shopify, csrf, signup

from ledgerlink.channels.base import channel_parser
from ledgerlink.sandbox.shopify import generate_orders
from ledgerlink.store.models import Connection, Membership, SettingsRevision, StoredOrder, User
from ledgerlink.sync.engine import load_settings

pytestmark = pytest.mark.integration

# generate_orders(6, seed=13): #1002 is tagged "wholesale" and totals 830.74; #1004 comes from the POS.
ORDERS = generate_orders(6, seed=13)


def channel_with_orders(
    web: Web, client: TestClient, email: str = "rules@shop.test", company: str = "Rule Shop"
) -> int:
    """A company with a Shopify channel whose first six sandbox orders are stored (as a pull stores them)."""
    signup(client, email, company)
    connect_shopify(web, client)
    with web.app.db.session() as session:
        user = session.scalars(select(User).where(User.email == email)).one()
        company_id = session.scalars(select(Membership.company_id).where(Membership.user_id == user.id)).one()
        channel = session.scalars(
            select(Connection).where(Connection.company_id == company_id, Connection.role == "channel")
        ).one()
        parse = channel_parser("shopify")
        for raw in ORDERS:
            order = parse(raw)
            session.add(
                StoredOrder(
                    company_id=channel.company_id,
                    connection_id=channel.id,
                    channel_order_id=order.channel_order_id,
                    number=order.number,
                    content_hash=order.content_hash(),
                    raw=raw,
                    canonical=order.model_dump(mode="json"),
                    total=order.totals.total,
                    currency=order.currency,
                )
            )
        return int(channel.id)


def post(client: TestClient, path: str, **data: str) -> httpx.Response:
    token = csrf(client, "/settings")
    return client.post(path, data={"csrf_token": token, **data}, follow_redirects=False)


def rule_form(
    name: str, conditions: list[tuple[str, str, str]], actions: list[tuple[str, str]], **extra: str
) -> dict[str, str]:
    form = {"name": name, "enabled": "1", "match": "all", **extra}
    for i, (field, op, value) in enumerate(conditions):
        form |= {f"cond_field_{i}": field, f"cond_op_{i}": op, f"cond_value_{i}": value}
    for i, (kind, value) in enumerate(actions):
        form |= {f"act_kind_{i}": kind, f"act_value_{i}": value}
    return form


def names(web: Web, channel_id: int) -> list[str]:
    with web.app.db.session() as session:
        return [rule.name for rule in load_settings(session, channel_id).rules]


def revisions(web: Web, channel_id: int) -> list[SettingsRevision]:
    with web.app.db.session() as session:
        rows = session.scalars(
            select(SettingsRevision)
            .where(SettingsRevision.connection_id == channel_id)
            .order_by(SettingsRevision.revision)
        ).all()
        session.expunge_all()
        return list(rows)


def test_add_edit_reorder_toggle_delete(web: Web) -> None:
    channel_id = channel_with_orders(web, web.client)
    base = f"/settings/{channel_id}/rules"
    page = web.client.get(base)
    assert page.status_code == 200
    assert "No rules yet" in page.text
    assert f'href="{base}"' in web.client.get(f"/settings/{channel_id}/orders").text  # the tab on every settings page
    editor = web.client.get(f"{base}/new")
    assert 'name="cond_field_0"' in editor.text
    assert 'name="csrf_token"' in editor.text

    added = post(
        web.client, f"{base}/new", **rule_form("Wholesale", [("tag", "equals", "wholesale")], [("set_class", "7")])
    )
    assert added.status_code == 303
    post(
        web.client,
        f"{base}/new",
        **rule_form("Big orders", [("total", "greater_than", "500")], [("set_customer", "Big buyer")]),
    )
    assert names(web, channel_id) == ["Wholesale", "Big orders"]
    listing = web.client.get(base)
    assert "Saved as revision" in listing.text
    assert "tag equals &#39;wholesale&#39;" in listing.text
    assert "customer = &#39;Big buyer&#39;" in listing.text
    last = revisions(web, channel_id)[-1]
    assert last.changed_by == "rules@shop.test"
    assert last.data["rules"][1]["conditions"][0] == {"field": "total", "operator": "greater_than", "value": "500"}
    history = web.client.get(f"/settings/{channel_id}/history")
    assert "<code>rules</code>" in history.text

    # Edit rule 2: the editor shows its values; saving replaces it in place.
    edit = web.client.get(f"{base}/2/edit")
    assert 'value="Big orders"' in edit.text
    assert re.search(r'<option value="greater_than" selected>', edit.text)
    post(
        web.client,
        f"{base}/2",
        **rule_form("Big orders", [("total", "greater_or_equal", "800")], [("add_memo", "#big")]),
    )
    with web.app.db.session() as session:
        rule = load_settings(session, channel_id).rules[1]
        assert rule.conditions[0].operator.value == "greater_or_equal"
        assert rule.actions[0].value == "#big"

    post(web.client, f"{base}/2/up")
    assert names(web, channel_id) == ["Big orders", "Wholesale"]
    post(web.client, f"{base}/1/down")
    assert names(web, channel_id) == ["Wholesale", "Big orders"]
    post(web.client, f"{base}/1/toggle")
    with web.app.db.session() as session:
        assert [r.enabled for r in load_settings(session, channel_id).rules] == [False, True]
    assert "Enable Wholesale" in web.client.get(base).text
    count = len(revisions(web, channel_id))
    post(web.client, f"{base}/2/delete")
    assert names(web, channel_id) == ["Wholesale"]
    assert len(revisions(web, channel_id)) == count + 1
    assert post(web.client, f"{base}/9/delete").status_code == 404


def test_invalid_rules_are_refused_with_the_rule_and_the_field(web: Web) -> None:
    channel_id = channel_with_orders(web, web.client)
    base = f"/settings/{channel_id}/rules"
    before = len(revisions(web, channel_id))
    bad = post(web.client, f"{base}/new", **rule_form("Odd", [("total", "greater_than", "lots")], [("set_class", "1")]))
    assert bad.status_code == 422
    assert "rule 1 &#39;Odd&#39;: conditions[0].value: &#39;lots&#39; is not an amount" in bad.text
    assert 'value="Odd"' in bad.text  # what was typed is kept
    no_action = post(web.client, f"{base}/new", **rule_form("Nothing", [], []))
    assert "a rule needs at least one action" in no_action.text
    post(web.client, f"{base}/new", **rule_form("Twice", [], [("set_class", "1")]))
    again = post(web.client, f"{base}/new", **rule_form("twice", [], [("set_class", "2")]))
    assert again.status_code == 422
    assert "rule 2 &#39;twice&#39;: name: rule 1 already has this name" in again.text
    assert len(revisions(web, channel_id)) == before + 1
    assert names(web, channel_id) == ["Twice"]


def test_export_then_import(web: Web) -> None:
    channel_id = channel_with_orders(web, web.client)
    base = f"/settings/{channel_id}/rules"
    post(web.client, f"{base}/new", **rule_form("A", [("currency", "equals", "USD")], [("set_class", "1")]))
    post(web.client, f"{base}/new", **rule_form("B", [], [("add_memo", "#b")], stop_if_matched="1"))
    exported = web.client.get(f"{base}/export.json")
    assert exported.status_code == 200
    assert exported.headers["content-disposition"].startswith("attachment")
    body = exported.json()
    assert [r["name"] for r in body["rules"]] == ["A", "B"]
    assert body["rules"][1]["stop_if_matched"] is True

    # Appending the same rules clashes on the names: nothing is imported, the problem is named.
    clash = post(web.client, f"{base}/import", rules_json=json.dumps(body), mode="append")
    assert clash.status_code == 422
    assert "rule 3 &#39;A&#39;: name: rule 1 already has this name" in clash.text
    broken = post(web.client, f"{base}/import", rules_json='{"rules": [{"name": "X", "actions": [{"kind": "fly"}]}]}')
    assert "rule 1 &#39;X&#39;: actions[0].kind: Input should be" in broken.text
    not_json = post(web.client, f"{base}/import", rules_json="{nope")
    assert "this is not JSON" in not_json.text
    assert names(web, channel_id) == ["A", "B"]

    # Replace, from an uploaded file, in the reverse order.
    body["rules"].reverse()
    token = csrf(web.client, "/settings")
    uploaded = web.client.post(
        f"{base}/import",
        data={"csrf_token": token, "mode": "replace"},
        files={"rules_file": ("rules.json", json.dumps(body).encode(), "application/json")},
        follow_redirects=False,
    )
    assert uploaded.status_code == 303
    assert names(web, channel_id) == ["B", "A"]
    assert "Imported 2 rules" in web.client.get(base).text


def test_test_on_an_order_shows_the_rules_and_the_documents(web: Web) -> None:
    channel_id = channel_with_orders(web, web.client)
    base = f"/settings/{channel_id}/rules"
    post(web.client, f"{base}/new", **rule_form("POS", [("source", "equals", "pos")], [("skip", "booked by the till")]))
    post(
        web.client,
        f"{base}/new",
        **rule_form("Wholesale", [("tag", "equals", "wholesale")], [("set_class", "CL-7"), ("add_memo", "#wholesale")]),
    )
    post(
        web.client,
        f"{base}/new",
        **rule_form("Big", [("total", "greater_than", "500")], [("set_customer", "Big buyer")]),
    )
    page = web.client.get(base)
    assert '<option value="1002">' in page.text  # the stored orders are offered

    tested = post(web.client, f"{base}/test", order_number="1002")
    assert tested.status_code == 200
    text = tested.text
    assert "Order #1002: 2 rules fired" in text
    assert "source equals &#39;pos&#39;: no (source is &#39;web&#39;)" in text
    assert "total 830.74 is greater than 500" in text
    assert "Then: class = &#39;CL-7&#39;; memo tag = &#39;#wholesale&#39;" in text
    assert "<dt>Customer</dt><dd>Big buyer</dd>" in text
    assert "<dt>Class</dt><dd>CL-7</dd>" in text
    assert "Shopify order #1002 #wholesale" in text
    assert "SalesReceipt 1002" in text
    assert '<article class="card subtle tested-doc">' in text

    skipped = post(web.client, f"{base}/test", order_number="#1004")
    assert "rule &#39;POS&#39;: booked by the till" in skipped.text
    assert '<article class="card subtle tested-doc">' not in skipped.text

    missing = post(web.client, f"{base}/test", order_number="9999")
    assert missing.status_code == 422
    assert "there is no order #9999 of this channel" in missing.text
    # Testing saves nothing.
    assert len(revisions(web, channel_id)) == 4


def test_csrf_and_other_companies(web: Web) -> None:
    channel_id = channel_with_orders(web, web.client)
    base = f"/settings/{channel_id}/rules"
    refused = web.client.post(f"{base}/new", data=rule_form("X", [], [("set_class", "1")]), follow_redirects=False)
    assert refused.status_code == 403
    assert names(web, channel_id) == []
    other = web.new_client()
    signup(other, "other@shop.test", "Other Shop")
    assert other.get(base).status_code == 404
    token = csrf(other, "/settings")
    stolen = other.post(
        f"{base}/new", data={"csrf_token": token, **rule_form("X", [], [("set_class", "1")])}, follow_redirects=False
    )
    assert stolen.status_code == 404
    assert other.get(f"{base}/export.json").status_code == 404
    assert names(web, channel_id) == []


def test_a_location_rule_is_refused_for_a_desktop_company(web: Web) -> None:
    channel_id = channel_with_orders(web, web.client, email="desk@shop.test", company="Desk Shop")
    with web.app.db.session() as session:
        channel = session.get(Connection, channel_id)
        assert channel is not None
        desktop = Connection(
            company_id=channel.company_id, name="Desktop", kind="qbd", role="books", config={}, secrets=b""
        )
        session.add(desktop)
        session.flush()
        channel.books_id = desktop.id
    base = f"/settings/{channel_id}/rules"
    refused = post(web.client, f"{base}/new", **rule_form("North", [], [("set_department", "North")]))
    assert refused.status_code == 422
    assert "QuickBooks Desktop has no locations" in refused.text
    assert names(web, channel_id) == []
    allowed = post(web.client, f"{base}/new", **rule_form("Wholesale", [], [("set_class", "1")]))
    assert allowed.status_code == 303
