"""Settings: the Orders page as a Connex user finds it, Save → a new revision, History, tax CSV, isolation."""

from __future__ import annotations

import re

import pytest
from test_wizard import ORDERS_FORM, post, revisions, selected_of, setup_company
from webtools import Web, signup

from ledgerlink.domain.settings import TransactionType

pytestmark = pytest.mark.integration

HEADINGS = ("Order Settings", "Orders to QuickBooks", "Manual Sync and Marketplace Settings", "Transaction Type")


def visible_text(html: str) -> str:
    body = html.split("<body>", 1)[1]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))


def test_settings_lists_the_channels_and_the_orders_page_has_the_connex_headings(web: Web) -> None:
    channel = setup_company(web, web.client, "s@shop.test", "Settings Shop")
    index = web.client.get("/settings")
    assert index.status_code == 200
    assert f'href="/settings/{channel}"' in index.text
    assert 'class="sidebar"' in index.text
    landing = web.client.get(f"/settings/{channel}", follow_redirects=False)
    assert landing.status_code == 303
    assert landing.headers["location"] == f"/settings/{channel}/orders"

    page = web.client.get(f"/settings/{channel}/orders")
    assert page.status_code == 200
    text = visible_text(page.text).casefold()
    positions = []
    for heading in HEADINGS:
        # Each appears once, so a browser test can click it by its text, in this order.
        assert text.count(heading.casefold()) == 1, heading
        assert re.search(rf"<h\d[^>]*>{heading}</h\d>", page.text), heading
        positions.append(text.index(heading.casefold()))
    assert positions == sorted(positions)
    buttons = re.findall(r"<button[^>]*>([^<]*)</button>", page.text)
    assert [b for b in buttons if "save" in b.casefold()] == ["Save"]
    assert text.index("transaction type") < text.index("paid at the time of sale")


def test_change_the_transaction_type_on_the_orders_page_and_see_it_in_history(web: Web) -> None:
    channel = setup_company(web, web.client, "hist@shop.test", "History Shop")
    before = len(revisions(web, channel))
    answer = post(web.client, f"/settings/{channel}/orders", {**ORDERS_FORM, "transaction_type": "sales_order"})
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/settings/{channel}/orders"
    saved = revisions(web, channel)
    assert len(saved) == before + 1
    assert saved[-1].changed_by == "hist@shop.test"
    assert saved[-1].data["transaction_type"] == TransactionType.SALES_ORDER.value

    page = web.client.get(f"/settings/{channel}/orders")
    assert "Saved as revision" in page.text
    assert re.search(r'name="transaction_type" value="sales_order" checked', page.text)

    again = post(web.client, f"/settings/{channel}/orders", {**ORDERS_FORM, "transaction_type": "sales_order"})
    assert again.status_code == 303
    assert len(revisions(web, channel)) == before + 1  # nothing changed: no new revision

    history = web.client.get(f"/settings/{channel}/history")
    assert history.status_code == 200
    assert f"Revision {saved[-1].revision}" in history.text
    assert "hist@shop.test" in history.text
    row = re.search(r"<code>transaction_type</code></td><td>([^<]*)</td><td>([^<]*)</td>", history.text)
    assert row
    assert row.groups() == ("sales_receipt", "sales_order")


def test_settings_validation_messages_and_422(web: Web) -> None:
    channel = setup_company(web, web.client, "v@shop.test", "Valid Shop")
    before = len(revisions(web, channel))
    bad = post(web.client, f"/settings/{channel}/accounts", {"accounts.deposit": "", "accounts.item_income": ""})
    assert bad.status_code == 422
    assert 'data-field="accounts.deposit"' in bad.text
    assert 'data-field="accounts.item_income"' in bad.text
    bad = post(
        web.client,
        f"/settings/{channel}/customers",
        {"customers.mode": "single", "customers.single_name": "", "customers.when_missing": "create"},
    )
    assert bad.status_code == 422
    assert 'data-field="customers.single_name"' in bad.text
    assert len(revisions(web, channel)) == before

    page = web.client.get(f"/settings/{channel}/accounts")
    data = {f"accounts.{n}": selected_of(page.text, f"accounts.{n}") for n in ("deposit", "item_income")}
    ok = post(web.client, f"/settings/{channel}/accounts", data)
    assert ok.status_code == 303
    assert len(revisions(web, channel)) == before + 1


def test_tax_table_csv_round_trip_and_bad_rows(web: Web) -> None:
    channel = setup_company(web, web.client, "tax@shop.test", "Tax Shop")
    csv_text = "country,region,city,tax_code\nUS,CA,,TAX\nUS,CA,Los Angeles,LA County\nUS,NY,New York,NYC\n"
    imported = post(
        web.client, f"/settings/{channel}/tax/import", {}, files={"csv_file": ("codes.csv", csv_text, "text/csv")}
    )
    assert imported.status_code == 303, imported.text
    exported = web.client.get(f"/settings/{channel}/tax/export.csv")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    assert exported.text == csv_text

    page = web.client.get(f"/settings/{channel}/tax")
    assert 'value="Los Angeles"' in page.text

    bad_csv = "country,region,city,tax_code\nUS,WA,,TAX\nUS,,Seattle,TAX\nUS,OR\n"
    refused = post(
        web.client, f"/settings/{channel}/tax/import", {}, files={"csv_file": ("bad.csv", bad_csv, "text/csv")}
    )
    assert refused.status_code == 422
    assert "line 3: region: This is required" in refused.text
    assert "line 4: expected 4 columns" in refused.text
    assert web.client.get(f"/settings/{channel}/tax/export.csv").text == csv_text  # nothing imported

    # The wizard's import goes back to the wizard; "replace" swaps the whole table.
    wizard = post(
        web.client,
        f"/wizard/tax/import?connection={channel}",
        {"replace": "1"},
        files={"csv_file": ("one.csv", "US,TX,,TAX\n", "text/csv")},
    )
    assert wizard.status_code == 303
    assert wizard.headers["location"] == f"/wizard/tax?connection={channel}"
    assert web.client.get(f"/settings/{channel}/tax/export.csv").text == "country,region,city,tax_code\nUS,TX,,TAX\n"


def test_tax_rows_edited_in_the_form(web: Web) -> None:
    channel = setup_company(web, web.client, "rows@shop.test", "Rows Shop")
    form = {
        "tax.mode": "line_item",
        "tax.tax_item_name": "Sales Tax",
        "tax.jurisdictions.0.country": "us",
        "tax.jurisdictions.0.region": "CA",
        "tax.jurisdictions.0.tax_code": "TAX",
        "tax.jurisdictions.1.country": "US",
        "tax.jurisdictions.1.region": "CA",
        "tax.jurisdictions.1.tax_code": "NON",
    }
    duplicate = post(web.client, f"/settings/{channel}/tax", form)
    assert duplicate.status_code == 422
    assert 'data-field="tax.jurisdictions.1.region"' in duplicate.text
    form["tax.jurisdictions.1.remove"] = "1"
    assert post(web.client, f"/settings/{channel}/tax", form).status_code == 303
    assert web.client.get(f"/settings/{channel}/tax/export.csv").text.splitlines()[1:] == ["US,CA,,TAX"]


def test_another_companys_channel_is_not_found_in_settings(web: Web) -> None:
    channel = setup_company(web, web.client, "one@a.test", "Company A")
    other = web.new_client()
    signup(other, "two@b.test", "Company B")
    for path in ("", "/orders", "/accounts", "/history", "/tax/export.csv"):
        assert other.get(f"/settings/{channel}{path}").status_code == 404, path
    assert post(other, f"/settings/{channel}/orders", ORDERS_FORM).status_code == 404
    assert other.get(f"/settings/{channel}/nonsense").status_code == 404
    assert f"/settings/{channel}" not in other.get("/settings").text


def test_form_mapping_of_rows_schedule_and_error_locations() -> None:
    from starlette.datastructures import FormData

    from ledgerlink.domain.settings import ChannelSettings
    from ledgerlink.web import forms

    current = ChannelSettings()
    posted = FormData(
        [
            ("items.match_on", "sku"),
            ("items.when_missing", "fail"),
            ("items.sku_map.0.sku", "A-1"),
            ("items.sku_map.0.item", "Widget"),
            ("items.sku_map.1.sku", "a-1"),
            ("items.sku_map.1.item", "Gadget"),
            ("items.sku_map.2.sku", "B-2"),
            ("items.sku_map.2.item", "Gizmo"),
            ("items.sku_map.2.remove", "1"),
            ("shipping_item_name", "Shipping"),
            ("discount_item_name", ""),
            ("adjust_item_name", "Rounding"),
        ]
    )
    values = forms.read_form("products", posted)
    assert [r["sku"] for r in values["items.rows"]] == ["A-1", "a-1"]  # the removed row is gone
    with pytest.raises(forms.FormErrors) as caught:
        forms.apply_values(current, "products", values)
    assert set(caught.value.errors) == {"items.sku_map.1.sku", "discount_item_name"}
    assert caught.value.errors["discount_item_name"] == "This is required."

    schedule = forms.read_form(
        "orders", FormData([("transaction_type", "invoice"), ("schedule.choice", "60"), ("update_policy", "ignore")])
    )
    new = forms.apply_values(current, "orders", schedule)
    assert new.schedule.every_minutes == 60
    assert new.schedule.daily_at is None  # the time field's default is not saved for an hourly schedule
    assert forms.schedule_choice(new) == "60"
    assert forms.field_for_loc(("schedule",)) == "schedule.daily_at"
    assert forms.field_for_loc(("tax", "jurisdictions", 2, "region")) == "tax.jurisdictions.2.region"
    assert forms.diff_settings({"a": {"b": 1}}, {"a": {"b": 2}, "c": True}) == [("a.b", "1", "2"), ("c", "—", "on")]
