"""Browser tests: the real web app on a local port, the sandboxes behind it, and Debian's Chromium.

Chromium is Debian's package (`make test` installs it with apt-get when missing); Playwright drives it through
`executable_path`, never a browser download.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ledgerlink.bootstrap import App, bootstrap
from ledgerlink.sandbox.demo import sandbox_settings
from ledgerlink.sandbox.qbo import QboLimits, QboSandbox
from ledgerlink.sandbox.server import RunningServer, serve
from ledgerlink.sandbox.shopify import ShopifySandbox, generate_orders
from ledgerlink.sync.jobs import EmbeddedRunner

CHROMIUM = os.environ.get("LEDGERLINK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Live:
    """The running product: its URL, its App, the sandboxes, and where screenshots go."""

    url: str
    app: App
    qbo: QboSandbox
    shop: ShopifySandbox
    shop_url: str

    def shot(self, page: Any, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        # From the top: a page scrolled by typing would draw its sticky panels lower down the full-page picture.
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    qbo = QboSandbox(limits=QboLimits(time_scale=60.0), redirect_uri=f"{url}/connections/qbo/callback")
    shop = ShopifySandbox(time_scale=60.0)
    shop.add_orders(generate_orders(30, seed=17, broken=True))
    qbo_server, shop_server = serve(qbo.app), serve(shop.app)
    creds = qbo.credentials(qbo_server.base_url)
    shop_creds = shop.credentials(shop_server.base_url)
    settings = sandbox_settings(
        creds,
        shop_creds,
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'browser.db'}",
        public_url=url,
        env="test",
        secret_key="browser-test-secret",
    )
    app = bootstrap(settings, throttle_wait=0.2, retry_backoff=0.05)
    from ledgerlink.web.app import create_app

    web_server: RunningServer = serve(create_app(app), port=port)
    runner = EmbeddedRunner(app, tick_seconds=3600, idle_seconds=0.2).start()
    try:
        yield Live(url, app, qbo, shop, shop_server.base_url)
    finally:
        runner.stop()
        web_server.stop()
        qbo_server.stop()
        shop_server.stop()
        app.db.dispose()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: run `make browsers` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(20_000)
    try:
        yield tab
    finally:
        context.close()
