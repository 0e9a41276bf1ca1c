"""The browser can reach the product: sign up and land on Connections."""

from __future__ import annotations

from typing import Any

import pytest
from livetools import Live

pytestmark = pytest.mark.browser


def test_sign_up_in_a_real_browser(live: Live, page: Any) -> None:
    page.goto(f"{live.url}/signup")
    live.shot(page, "00-signup")
    page.fill("input[name=company]", "Browser Shop")
    page.fill("input[name=name]", "Bea Bookkeeper")
    page.fill("input[name=email]", "bea@shop.test")
    page.fill("input[name=password]", "a long password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live.url}/connections")
    assert "Browser Shop" in page.content()
