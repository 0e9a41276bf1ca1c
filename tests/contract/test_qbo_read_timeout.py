"""A QuickBooks Online connection's `read_timeout` over real HTTP: a held request ends in the client's own timeout.

The sandbox holds the request far longer than the connection's read timeout (a `timeout` fault), so the only way
a test ends quickly with `httpx.ReadTimeout` is the client giving up itself: with the HTTP client it made, and
with one handed in that has QuickBooks' long default, as the scaled-out workers' paced client has.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from test_faults import MemoryTokens, no_sleep

from ledgerlink.books.base import Tokens
from ledgerlink.books.qbo import QboClient, QboConfig, UnknownOutcome
from ledgerlink.books.qbo.client import QBO_TIMEOUT, READ_TIMEOUT, NoPacer
from ledgerlink.http import new_client
from ledgerlink.sandbox.faults import DROP_STATUS
from ledgerlink.sandbox.qbo import Fault, QboLimits, QboSandbox
from ledgerlink.sandbox.server import RunningServer, serve

pytestmark = pytest.mark.contract

SHORT = 0.3  # seconds: longer than any answer of a sandbox on loopback
HOLD_MS = 60_000  # the sandbox's hold: a client still waiting after it would make the test crawl


@dataclass
class Qbo:
    sandbox: QboSandbox
    server: RunningServer
    creds: dict[str, str]

    def client(self, *, http: httpx.Client | None = None, **config: object) -> QboClient:
        settings = QboConfig.model_validate(
            {
                "realm_id": self.creds["realm_id"],
                "client_id": self.creds["client_id"],
                "client_secret": self.creds["client_secret"],
                "api_base": self.creds["api_base"],
                "token_url": self.creds["token_url"],
                "retry_backoff": 0.0,
                "pace": False,
                **config,
            }
        )
        tokens = MemoryTokens(
            Tokens(self.creds["access_token"], self.creds["refresh_token"], datetime.now(UTC) + timedelta(minutes=30))
        )
        return QboClient(settings, tokens, client=http, sleep=no_sleep, pacer=NoPacer())

    def statuses(self, path_end: str) -> list[int]:
        return [r.status for r in self.sandbox.requests if r.path.endswith(path_end)]


@pytest.fixture
def qbo() -> Iterator[Qbo]:
    sandbox = QboSandbox(limits=QboLimits(enabled=False))
    server = serve(sandbox.app)
    try:
        yield Qbo(sandbox, server, sandbox.credentials(server.base_url))
    finally:
        server.stop()


def test_the_default_read_timeout_is_quickbooks_own() -> None:
    config = QboConfig(realm_id="1", client_id="c", client_secret="s")  # type: ignore[arg-type]
    assert config.read_timeout == READ_TIMEOUT == QBO_TIMEOUT.read
    with pytest.raises(ValueError, match="read_timeout"):
        QboConfig(realm_id="1", client_id="c", client_secret="s", read_timeout=0)  # type: ignore[arg-type]


def test_a_held_write_ends_in_the_clients_own_read_timeout(qbo: Qbo) -> None:
    client = qbo.client(read_timeout=SHORT)
    assert client.http.timeout.read == SHORT
    qbo.sandbox.inject(Fault(kind="timeout_after_write", delay_ms=HOLD_MS, path_contains="/customer"))
    with pytest.raises(UnknownOutcome) as lost:
        client.post("Customer", {"DisplayName": "Held"}, requestid=uuid.uuid4().hex)
    assert isinstance(lost.value.__cause__, httpx.ReadTimeout)
    assert sum(1 for row in qbo.sandbox.entities("Customer") if row["DisplayName"] == "Held") == 1
    assert qbo.statuses("/customer") == [DROP_STATUS]
    client.close()


def test_the_connections_read_timeout_applies_through_a_client_handed_in(qbo: Qbo) -> None:
    # As the scaled-out workers build it: a paced HTTP client with QuickBooks' long default, handed in.
    with new_client(timeout=QBO_TIMEOUT) as http:
        client = qbo.client(http=http, read_timeout=SHORT)
        assert client.timeout.read == SHORT
        expected = client.query("SELECT * FROM PaymentMethod")
        qbo.sandbox.inject(Fault(kind="timeout", delay_ms=HOLD_MS, path_contains="/query"))
        # A read goes again after its own timeout and gets the same rows.
        assert client.query("SELECT * FROM PaymentMethod") == expected
        assert qbo.statuses("/query") == [200, DROP_STATUS, 200]
        # A write's answer is lost to the client's own timeout (a reset after the hold would be a ReadError).
        qbo.sandbox.inject(Fault(kind="timeout", delay_ms=HOLD_MS, path_contains="/customer"))
        with pytest.raises(UnknownOutcome) as lost:
            client.post("Customer", {"DisplayName": "Held"}, requestid=uuid.uuid4().hex)
        assert isinstance(lost.value.__cause__, httpx.ReadTimeout)


def test_a_client_handed_in_keeps_its_own_timeouts_when_the_connection_sets_none(qbo: Qbo) -> None:
    mine = httpx.Timeout(SHORT, connect=5.0)
    with new_client(timeout=mine) as http:
        client = qbo.client(http=http)
        assert client.timeout == mine
        qbo.sandbox.inject(Fault(kind="timeout", delay_ms=HOLD_MS, path_contains="/customer"))
        with pytest.raises(UnknownOutcome) as lost:
            client.post("Customer", {"DisplayName": "Held too"}, requestid=uuid.uuid4().hex)
        assert isinstance(lost.value.__cause__, httpx.ReadTimeout)
