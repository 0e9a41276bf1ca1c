"""Helpers and fixtures for the web tests: the app over a fresh SQLite file, wired to real sandboxes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from fastapi.testclient import TestClient

from ledgerlink.bootstrap import App, bootstrap
from ledgerlink.config import Settings
from ledgerlink.sandbox.demo import sandbox_settings
from ledgerlink.sandbox.qbo import QboLimits, QboSandbox
from ledgerlink.sandbox.server import RunningServer, serve
from ledgerlink.sandbox.shopify import ShopifySandbox, generate_orders

PUBLIC_URL = "http://testserver"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Web:
    """A running web app and its sandboxes."""

    app: App
    client: TestClient
    qbo: QboSandbox
    qbo_server: RunningServer
    shop: ShopifySandbox
    shop_server: RunningServer
    settings: Settings

    def new_client(self) -> TestClient:
        """Another browser: its own cookies."""
        return TestClient(self.client.app, base_url=PUBLIC_URL)


def csrf(client: TestClient, path: str = "/signin") -> str:
    """The CSRF token of the client's session, read from a page's form."""
    page = client.get(path)
    found = CSRF.search(page.text)
    assert found, f"no csrf_token on {path}"
    return found.group(1)


def signup(client: TestClient, email: str, company: str, password: str = "correct horse battery") -> None:
    token = csrf(client, "/signup")
    answer = client.post(
        "/signup",
        data={"email": email, "password": password, "company": company, "name": "Test User", "csrf_token": token},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text


def connect_qbo(web: Web, client: TestClient) -> None:
    """Run the real OAuth 2 authorization-code flow against the sandbox's authorize page."""
    token = csrf(client, "/connections")
    start = client.post("/connections/qbo/connect", data={"csrf_token": token}, follow_redirects=False)
    assert start.status_code in (302, 303), start.text
    authorize = start.headers["location"]
    with httpx.Client(follow_redirects=False) as browser:
        page = browser.get(authorize)
        assert page.status_code == 200
        query = parse_qs(urlparse(authorize).query)
        form = {k: v[0] for k, v in query.items()}
        consent = browser.post(authorize.split("?")[0], data=form)
        assert consent.status_code in (302, 303), consent.text
        callback = consent.headers["location"]
    assert callback.startswith(PUBLIC_URL), callback
    done = client.get(callback.removeprefix(PUBLIC_URL), follow_redirects=False)
    assert done.status_code in (302, 303), done.text


def connect_shopify(web: Web, client: TestClient) -> None:
    creds = web.shop.credentials(web.shop_server.base_url)
    token = csrf(client, "/connections")
    answer = client.post(
        "/connections/shopify",
        data={
            "shop": creds["shop"],
            "access_token": creds["access_token"],
            "base_url": creds["base_url"],
            "webhook_secret": creds["webhook_secret"],
            "csrf_token": token,
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    qbo = QboSandbox(limits=QboLimits(time_scale=60.0), redirect_uri=f"{PUBLIC_URL}/connections/qbo/callback")
    shop = ShopifySandbox(time_scale=60.0)
    shop.add_orders(generate_orders(40, seed=13, broken=True))
    qbo_server, shop_server = serve(qbo.app), serve(shop.app)
    creds = qbo.credentials(qbo_server.base_url)
    shop_creds = shop.credentials(shop_server.base_url)
    settings = sandbox_settings(
        creds,
        shop_creds,
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'web.db'}",
        public_url=PUBLIC_URL,
        env="test",
        secret_key="web-test-secret",
    )
    app = bootstrap(settings, throttle_wait=0.2, retry_backoff=0.05)
    from ledgerlink.web.app import create_app

    client = TestClient(create_app(app), base_url=PUBLIC_URL)
    shop.deliver_webhooks_with(client)  # the sandbox's webhooks reach the in-process app
    try:
        yield Web(app, client, qbo, qbo_server, shop, shop_server, settings)
    finally:
        client.close()
        app.db.dispose()
        qbo_server.stop()
        shop_server.stop()
