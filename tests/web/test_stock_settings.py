"""Settings → Products: "push stock levels from QuickBooks" and the units kept back (stock_buffer), saved,
shown again, and refused with a message on the field when the number is not a whole number of units."""

from __future__ import annotations

import re
from typing import Any

import pytest
from test_wizard import post, revisions, setup_company
from webtools import Web

pytestmark = pytest.mark.integration

PRODUCTS_FORM: dict[str, Any] = {
    "items.match_on": "sku_then_name",
    "items.when_missing": "create_non_inventory",
    "shipping_item_name": "Shipping",
    "discount_item_name": "Discount",
    "adjust_item_name": "Rounding adjustment",
}


def buffer_input(html: str) -> str:
    found = re.search(r'<input name="stock_buffer"[^>]*value="([^"]*)"', html)
    assert found, "no stock_buffer field"
    return found.group(1)


def push_checked(html: str) -> bool:
    found = re.search(r'<input[^>]*name="push_stock_levels"[^>]*>', html)
    assert found, "no push_stock_levels checkbox"
    return "checked" in found.group(0)


def test_stock_fields_save_show_and_refuse_bad_numbers(web: Web) -> None:
    channel = setup_company(web, web.client, "stock@shop.test", "Stock Shop")
    path = f"/settings/{channel}/products"
    page = web.client.get(path)
    assert page.status_code == 200
    assert "Push stock levels from QuickBooks to Shopify" in page.text
    assert buffer_input(page.text) == "0"
    assert not push_checked(page.text)

    answer = post(web.client, path, {**PRODUCTS_FORM, "push_stock_levels": "on", "stock_buffer": "3"})
    assert answer.status_code == 303, answer.text
    saved = revisions(web, channel)[-1].data
    assert (saved["push_stock_levels"], saved["stock_buffer"]) == (True, 3)
    page = web.client.get(path)
    assert buffer_input(page.text) == "3"
    assert push_checked(page.text)

    for bad, message in (
        ("two", "Enter a whole number of units to keep back"),
        ("-1", "Enter a whole number of units to keep back"),
        ("2000001", "less than or equal to 1000000"),
    ):
        refused = post(web.client, path, {**PRODUCTS_FORM, "push_stock_levels": "on", "stock_buffer": bad})
        assert refused.status_code == 422, bad
        assert message in refused.text, bad
    assert revisions(web, channel)[-1].data["stock_buffer"] == 3

    # Unticked and emptied: the push is off and nothing is kept back.
    answer = post(web.client, path, {**PRODUCTS_FORM, "stock_buffer": ""})
    assert answer.status_code == 303, answer.text
    saved = revisions(web, channel)[-1].data
    assert (saved["push_stock_levels"], saved["stock_buffer"]) == (False, 0)
    # A form without the stock fields (a channel that takes no stock levels) leaves them as they are.
    post(web.client, path, {**PRODUCTS_FORM, "push_stock_levels": "on", "stock_buffer": "5"})
    answer = post(web.client, path, {**PRODUCTS_FORM, "adjust_total": "on"})
    assert answer.status_code == 303, answer.text
    saved = revisions(web, channel)[-1].data
    assert (saved["push_stock_levels"], saved["stock_buffer"], saved["adjust_total"]) == (True, 5, True)
