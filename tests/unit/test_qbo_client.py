"""QboClient against httpx.MockTransport: the classifier, refresh, throttling, retries and pacing."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from ledgerlink.books.base import Tokens
from ledgerlink.books.qbo import QboConfig, UnknownOutcome, WindowPacer, classify
from ledgerlink.books.qbo.client import MINOR_VERSION, NoPacer, QboClient, quote
from ledgerlink.books.qbo.oauth import authorize_url, exchange_code
from ledgerlink.domain.errors import NeedsUserError, PermanentError, RetryableError
from ledgerlink.http import Action
from ledgerlink.jsonwire import dumps, loads

pytestmark = pytest.mark.unit

NOW = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)
TOKEN_URL = "https://oauth.example/tokens"
API = "https://qbo.example/v3"

Handler = Callable[[httpx.Request], httpx.Response]


class MemoryTokens:
    """A TokenStore in memory: a lock and a Tokens value."""

    def __init__(self, tokens: Tokens) -> None:
        self.tokens = tokens
        self.lock = threading.Lock()
        self.refreshes = 0

    def load(self) -> Tokens:
        with self.lock:
            return self.tokens

    def refresh(self, stale_access_token: str, do_refresh: Callable[[Tokens], Tokens]) -> Tokens:
        with self.lock:
            if self.tokens.access_token == stale_access_token:
                self.tokens = do_refresh(self.tokens)
                self.refreshes += 1
            return self.tokens


def tokens(access: str = "at-1", expires: datetime | None = None) -> MemoryTokens:
    return MemoryTokens(Tokens(access, "rt-1", expires or NOW + timedelta(hours=1)))


def config(**changes: Any) -> QboConfig:
    values: dict[str, Any] = {
        "realm_id": "9130",
        "client_id": "cid",
        "client_secret": "csecret",
        "api_base": API,
        "token_url": TOKEN_URL,
        "throttle_wait": 7.0,
        "retry_backoff": 0.5,
    }
    values.update(changes)
    return QboConfig.model_validate(values)


def ok(body: dict[str, Any], status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=dumps(body).encode(), headers={"Content-Type": "application/json"})


def fault(code: str, message: str, detail: str = "", status: int = 400) -> httpx.Response:
    return ok(
        {"Fault": {"Error": [{"Message": message, "Detail": detail, "code": code}], "type": "ValidationFault"}}, status
    )


AUTH_401 = {
    "warnings": None,
    "fault": {
        "error": [
            {
                "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                "detail": "Token expired: x",
                "code": "3200",
            }
        ],
        "type": "AUTHENTICATION",
    },
    "time": 1633520295688,
}
XML_401 = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    b'<IntuitResponse xmlns="http://schema.intuit.com/finance/v3" time="2025-03-04T04:00:00.000-08:00">'
    b'<Fault type="AuthenticationFault"><Error code="100"><Message>General Authentication Error</Message>'
    b"<Detail>AuthenticationErrorGeneral: SRV-110-Authentication Failure</Detail></Error></Fault></IntuitResponse>"
)


class Recorder:
    """A MockTransport handler that answers API calls from a script and token calls like Intuit."""

    def __init__(self, answers: list[httpx.Response | Exception | Handler], *, token_error: str = "") -> None:
        self.answers = answers
        self.requests: list[httpx.Request] = []
        self.token_requests: list[httpx.Request] = []
        self.token_error = token_error
        self.issued = 1

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            self.token_requests.append(request)
            if self.token_error:
                return ok({"error": self.token_error}, 400)
            self.issued += 1
            return ok(
                {
                    "access_token": f"at-{self.issued}",
                    "refresh_token": f"rt-{self.issued}",
                    "expires_in": 3600,
                    "x_refresh_token_expires_in": 8726400,
                    "token_type": "bearer",
                }
            )
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        return answer(request)


def make(
    recorder: Recorder, store: MemoryTokens | None = None, **changes: Any
) -> tuple[QboClient, MemoryTokens, list[float]]:
    sleeps: list[float] = []
    store = store or tokens()
    client = QboClient(
        config(**changes),
        store,
        client=httpx.Client(transport=httpx.MockTransport(recorder)),
        sleep=sleeps.append,
        clock=lambda: NOW,
        pacer=NoPacer(),
    )
    return client, store, sleeps


def test_every_request_is_pinned_and_authorised() -> None:
    rec = Recorder([ok({"Preferences": {"Id": "1"}}), ok({"Invoice": {"Id": "5"}})])
    client, _store, _ = make(rec)
    client.get("preferences")
    client.post("Invoice", {"Line": []}, requestid="rid-1")
    for request in rec.requests:
        assert int(request.url.params["minorversion"]) >= 75
        assert request.headers["Accept"] == "application/json"
        assert request.headers["Authorization"] == "Bearer at-1"
        assert str(request.url).startswith(f"{API}/company/9130/")
    assert rec.requests[1].url.path.endswith("/invoice")
    assert rec.requests[1].url.params["requestid"] == "rid-1"
    assert MINOR_VERSION >= 75


def test_minor_version_below_75_is_refused() -> None:
    with pytest.raises(ValueError, match="minor_version"):
        config(minor_version=74)


def test_query_pages_through_1000_rows() -> None:
    first = ok({"QueryResponse": {"Item": [{"Id": str(i)} for i in range(1000)], "startPosition": 1}})
    second = ok({"QueryResponse": {"Item": [{"Id": "x"}], "startPosition": 1001}})
    rec = Recorder([first, second])
    client, _, _ = make(rec)
    rows = client.query("SELECT * FROM Item")
    assert len(rows) == 1001
    assert [r.headers["Content-Type"] for r in rec.requests] == ["application/text"] * 2
    assert rec.requests[0].content == b"SELECT * FROM Item STARTPOSITION 1 MAXRESULTS 1000"
    assert rec.requests[1].content == b"SELECT * FROM Item STARTPOSITION 1001 MAXRESULTS 1000"


def test_empty_query_answer() -> None:
    client, _, _ = make(Recorder([ok({"QueryResponse": {}, "time": "t"})]))
    assert client.query("SELECT * FROM Customer WHERE DisplayName = 'x'") == []


def test_quote_escapes() -> None:
    assert quote("O'Brien \\ Co") == "'O\\'Brien \\\\ Co'"


def test_a_200_can_carry_a_fault() -> None:
    rec = Recorder([fault("6000", "A business validation error has occurred", "Amount is wrong", status=200)])
    client, _, _ = make(rec)
    with pytest.raises(PermanentError, match="Amount is wrong") as caught:
        client.post("SalesReceipt", {})
    assert caught.value.code == "6000"


def test_validation_fault_is_permanent_with_detail() -> None:
    rec = Recorder([fault("610", "Object Not Found", "Something you're trying to use has been made inactive")])
    client, _, _ = make(rec)
    with pytest.raises(PermanentError, match="made inactive") as caught:
        client.get("item/3")
    assert caught.value.code == "610"


@pytest.mark.parametrize("expired", [ok(AUTH_401, 401), httpx.Response(401, content=XML_401)])
def test_401_refreshes_once_and_stores_the_rotated_token(expired: httpx.Response) -> None:
    rec = Recorder([expired, ok({"Preferences": {}})])
    client, store, _ = make(rec)
    client.get("preferences")
    assert rec.requests[1].headers["Authorization"] == "Bearer at-2"
    assert store.tokens.refresh_token == "rt-2"
    assert store.tokens.refresh_expires_at == NOW + timedelta(seconds=8726400)
    (token_call,) = rec.token_requests
    assert parse_qs(token_call.content.decode()) == {"grant_type": ["refresh_token"], "refresh_token": ["rt-1"]}
    assert token_call.headers["Authorization"].startswith("Basic ")
    assert client.stats["refreshes"] == 1


def test_refused_refresh_token_asks_to_reconnect() -> None:
    rec = Recorder([ok(AUTH_401, 401)], token_error="invalid_grant")
    client, _, _ = make(rec)
    with pytest.raises(NeedsUserError, match="reconnect QuickBooks") as caught:
        client.get("preferences")
    assert caught.value.action == "reconnect"


def test_second_401_after_refresh_asks_to_reconnect() -> None:
    rec = Recorder([ok(AUTH_401, 401), ok(AUTH_401, 401)])
    client, _, _ = make(rec)
    with pytest.raises(NeedsUserError):
        client.get("preferences")
    assert len(rec.token_requests) == 1


def test_expired_access_token_is_refreshed_before_sending() -> None:
    rec = Recorder([ok({"Preferences": {}})])
    client, store, _ = make(rec, tokens(expires=NOW - timedelta(minutes=1)))
    client.get("preferences")
    assert rec.requests[0].headers["Authorization"] == "Bearer at-2"
    assert store.refreshes == 1


def test_429_waits_the_configured_time_and_retries() -> None:
    throttled = fault("3001", "message=ThrottleExceeded; errorCode=003001; statusCode=429", status=429)
    rec = Recorder([throttled, throttled, ok({"SalesReceipt": {"Id": "1"}})])
    client, _, sleeps = make(rec)
    assert client.post("SalesReceipt", {})["Id"] == "1"
    assert sleeps == [7.0, 7.0]
    assert client.stats["throttled"] == 2


def test_429_is_bounded() -> None:
    throttled = fault("3001", "ThrottleExceeded", status=429)
    rec = Recorder([throttled] * 4)
    client, _, sleeps = make(rec)
    with pytest.raises(RetryableError) as caught:
        client.get("preferences")
    assert not isinstance(caught.value, UnknownOutcome)
    assert caught.value.retry_after == 7.0
    assert len(sleeps) == 3


def test_5xx_on_a_read_is_retried_with_backoff() -> None:
    rec = Recorder([httpx.Response(503), httpx.Response(500), ok({"Preferences": {}})])
    client, _, sleeps = make(rec)
    client.get("preferences")
    assert sleeps == [0.5, 1.0]


def test_5xx_retries_are_bounded() -> None:
    rec = Recorder([httpx.Response(500)] * 3)
    client, _, _ = make(rec)
    with pytest.raises(RetryableError):
        client.get("preferences")
    assert len(rec.requests) == 3


def test_5xx_on_a_write_without_requestid_is_not_replayed() -> None:
    rec = Recorder([httpx.Response(500)])
    client, _, _ = make(rec)
    with pytest.raises(RetryableError) as caught:
        client.post("SalesReceipt", {})
    assert not isinstance(caught.value, UnknownOutcome)
    assert len(rec.requests) == 1


def test_5xx_on_a_batch_with_requestid_is_replayed() -> None:
    rec = Recorder([httpx.Response(503), ok({"BatchItemResponse": [{"bId": "0", "Invoice": {"Id": "1"}}]})])
    client, _, _ = make(rec)
    answers = client.batch([{"bId": "0", "operation": "create", "Invoice": {}}], requestid="r1")
    assert answers == [{"bId": "0", "Invoice": {"Id": "1"}}]
    assert [r.url.params["requestid"] for r in rec.requests] == ["r1", "r1"]
    assert client.stats["batches"] == 2


@pytest.mark.parametrize(
    "lost",
    [httpx.Response(504), httpx.Response(502), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("dropped")],
)
def test_lost_answer_on_a_write_is_an_unknown_outcome(lost: httpx.Response | Exception) -> None:
    rec = Recorder([lost])
    client, _, _ = make(rec)
    with pytest.raises(UnknownOutcome):
        client.batch([{"bId": "0", "operation": "create", "Invoice": {}}], requestid="r1")
    assert len(rec.requests) == 1


def test_lost_answer_on_a_read_is_retried() -> None:
    rec = Recorder([httpx.ReadTimeout("slow"), httpx.Response(504), ok({"QueryResponse": {}})])
    client, _, _ = make(rec)
    assert client.query("SELECT * FROM Item") == []


def test_connection_refused_is_retried_even_for_writes() -> None:
    rec = Recorder([httpx.ConnectError("refused"), ok({"Invoice": {"Id": "1"}})])
    client, _, _ = make(rec)
    assert client.post("Invoice", {})["Id"] == "1"


def test_batch_holds_at_most_30_items() -> None:
    client, _, _ = make(Recorder([]))
    with pytest.raises(ValueError, match="at most 30"):
        client.batch([{"bId": str(i), "Query": "SELECT * FROM Item"} for i in range(31)], requestid="r")


def test_batch_body_keeps_money_exact() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        body = loads(request.content)
        amount = body["BatchItemRequest"][0]["Invoice"]["Line"][0]["Amount"]
        assert isinstance(amount, Decimal)
        assert b'"Amount":0.10' in request.content
        return ok({"BatchItemResponse": []})

    client, _, _ = make(Recorder([echo]))
    client.batch(
        [{"bId": "0", "operation": "create", "Invoice": {"Line": [{"Amount": Decimal("0.10")}]}}], requestid="r"
    )


def test_classify() -> None:
    assert classify(ok({"Invoice": {}}))[0] is Action.OK
    assert classify(ok(AUTH_401, 401))[0] is Action.REFRESH_TOKEN
    assert classify(httpx.Response(401, content=XML_401))[0] is Action.REFRESH_TOKEN
    assert classify(fault("3001", "ThrottleExceeded", status=200))[0] is Action.RATE_LIMITED
    action, error = classify(ok({"fault": {"error": [{"message": "AuthorizationFailed", "code": "3100"}]}}, 403))
    assert action is Action.FAIL
    assert isinstance(error, NeedsUserError)
    assert classify(httpx.Response(504))[0] is Action.UNKNOWN_OUTCOME
    assert classify(httpx.Response(503))[0] is Action.RETRY
    action, error = classify(fault("6140", "Duplicate Document Number Error", "DocNumber=1 is assigned"))
    assert action is Action.FAIL
    assert isinstance(error, PermanentError)
    assert error.code == "6140"
    assert classify(httpx.Response(200, content=b"<html>oops</html>"))[0] is Action.UNKNOWN_OUTCOME


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_pacer_keeps_under_requests_per_second() -> None:
    fake = FakeTime()
    pacer = WindowPacer(requests_per_second=10, margin=0.0, clock=fake.clock, sleep=fake.sleep)
    for _ in range(10):
        pacer.acquire(False)
    assert fake.slept == []
    pacer.acquire(False)
    assert fake.slept == [pytest.approx(1.0)]


def test_pacer_counts_batches_per_minute() -> None:
    fake = FakeTime()
    pacer = WindowPacer(requests_per_second=1000, batches_per_minute=2, margin=0.0, clock=fake.clock, sleep=fake.sleep)
    pacer.acquire(True)
    pacer.acquire(True)
    pacer.acquire(False)  # a plain request is not held back by the batch window
    assert fake.slept == []
    pacer.acquire(True)
    assert sum(fake.slept) == pytest.approx(60.0)


def test_pacer_per_minute_in_compressed_time() -> None:
    fake = FakeTime()
    pacer = WindowPacer(requests_per_minute=3, requests_per_second=100, minute=1.0, clock=fake.clock, sleep=fake.sleep)
    for _ in range(4):
        pacer.acquire(False)
    assert sum(fake.slept) == pytest.approx(1.05)


def test_authorize_url_and_code_exchange() -> None:
    url = authorize_url("https://appcenter.example/connect", "cid", "https://app.example/cb", "st8")
    params = parse_qs(httpx.URL(url).query.decode())
    assert params == {
        "client_id": ["cid"],
        "response_type": ["code"],
        "scope": ["com.intuit.quickbooks.accounting"],
        "redirect_uri": ["https://app.example/cb"],
        "state": ["st8"],
    }
    rec = Recorder([])
    with httpx.Client(transport=httpx.MockTransport(rec)) as http:
        got = exchange_code(http, TOKEN_URL, "cid", "csecret", "code-1", "https://app.example/cb", now=lambda: NOW)
    assert got.refresh_token == "rt-2"
    assert got.access_expires_at == NOW + timedelta(hours=1)
    assert parse_qs(rec.token_requests[0].content.decode())["grant_type"] == ["authorization_code"]


def test_config_secret_is_marked_and_hidden() -> None:
    cfg = config()
    assert "csecret" not in repr(cfg)
    schema = QboConfig.model_json_schema()
    assert schema["properties"]["client_secret"]["secret"] is True
    sandbox = QboConfig(realm_id="1", client_id="c", client_secret="s", environment="sandbox")  # type: ignore[arg-type]
    assert sandbox.api_base.startswith("https://sandbox-quickbooks")
