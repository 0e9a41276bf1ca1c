"""Shared fixtures: real databases (SQLite file and the running PostgreSQL), sandboxes on real ports."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ledgerlink.bootstrap import App, bootstrap
from ledgerlink.config import Settings
from ledgerlink.sandbox.demo import setup_demo_company
from ledgerlink.sandbox.qbo import QboLimits, QboSandbox
from ledgerlink.sandbox.server import RunningServer, serve
from ledgerlink.sandbox.shopify import ShopifySandbox, generate_orders

PG_HOST = os.environ.get("LEDGERLINK_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("LEDGERLINK_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("LEDGERLINK_TEST_PG_USER", "postgres")
TEST_SECRET = "test-secret-key"


def _up(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The running PostgreSQL; a test that needs it fails (never skips) when it is not there."""
    if not _up(PG_HOST, PG_PORT):
        pytest.fail(
            f"PostgreSQL is not running on {PG_HOST}:{PG_PORT}: start it (`make services`, or "
            "pg_ctlcluster --skip-systemctl-redirect <version> main start)"
        )
    return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}"


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    import psycopg

    name = f"ll_test_{uuid.uuid4().hex[:12]}"
    admin = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/test"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{pg_server}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each engine test runs on the embedded default (SQLite file) and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledgerlink.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@dataclass
class Stack:
    """A company wired to a Shopify sandbox and a QuickBooks Online sandbox, on a real database."""

    app: App
    qbo: QboSandbox
    shop: ShopifySandbox
    qbo_server: RunningServer
    shop_server: RunningServer
    channel_id: int
    db_url: str
    data_dir: Path

    def env(self) -> dict[str, str]:
        """Environment for a `ledgerlink` subprocess on the same database."""
        env = dict(os.environ)
        env.update(
            LEDGERLINK_DATABASE_URL=self.db_url,
            LEDGERLINK_SECRET_KEY=TEST_SECRET,
            LEDGERLINK_DATA_DIR=str(self.data_dir),
            LEDGERLINK_ENV="test",
        )
        return env


def make_stack(
    db_url: str, data_dir: Path, *, orders: int, seed: int = 11, broken: bool = False, limits: QboLimits | None = None
) -> Stack:
    qbo = QboSandbox(limits=limits or QboLimits(time_scale=60.0))
    shop = ShopifySandbox(time_scale=60.0)
    shop.add_orders(generate_orders(orders, seed=seed, broken=broken))
    qbo_server = serve(qbo.app)
    shop_server = serve(shop.app)
    settings = Settings(env="test", data_dir=data_dir, database_url=db_url, secret_key=TEST_SECRET)  # type: ignore[arg-type]
    app = bootstrap(settings, throttle_wait=0.2, retry_backoff=0.05)
    channel_id = setup_demo_company(app, qbo, qbo_server.base_url, shop, shop_server.base_url)
    return Stack(app, qbo, shop, qbo_server, shop_server, channel_id, db_url, data_dir)


@pytest.fixture
def stack_factory(tmp_path: Path) -> Iterator[object]:
    """Build stacks on demand; everything is stopped at the end of the test."""
    made: list[Stack] = []

    def build(db_url: str, **kwargs: object) -> Stack:
        stack = make_stack(db_url, tmp_path, **kwargs)  # type: ignore[arg-type]
        made.append(stack)
        return stack

    yield build
    for stack in made:
        stack.app.db.dispose()
        stack.qbo_server.stop()
        stack.shop_server.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Markers by directory: tests/unit → unit, tests/contract → contract, tests/integration → integration."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        for marker in ("unit", "contract", "integration", "e2e", "browser"):
            if marker in parts:
                item.add_marker(getattr(pytest.mark, marker))
