"""The one retry decision of the channel adapters (`ledgerlink.http`): what goes again, after how long, what is raised.

Each test scripts what one call meets, attempt after attempt (an answer, or an `httpx` transport error), and checks
the waits and the error that ends it. No network and no clock: the waits are recorded, not slept.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import pytest

from ledgerlink.channels.shipstation import ShipStationChannel
from ledgerlink.channels.shipstation_outbound import ShipStationOutbound
from ledgerlink.domain.errors import NeedsUserError, PermanentError, RetryableError, UnknownOutcome
from ledgerlink.http import NEVER_SENT, Attempts, RetryPolicy, backoff, rate_limit_wait, send_with_retries

pytestmark = pytest.mark.unit

URL = "https://api.example.com/v1/orders"
POLICY = RetryPolicy(
    remote="Acme",
    reconnect_message="Acme refused the key: reconnect",
    describe=lambda response: response.text,
    throttle_default=2.0,
)
GROWING = RetryPolicy(
    remote="Acme",
    reconnect_message="Acme refused the key: reconnect",
    describe=lambda response: response.text,
    throttle_default=60.0,
    throttle_backoff=True,
)

Step = httpx.Response | type[httpx.TransportError]


class Script:
    """Plays one scripted step per attempt: an answer, or a transport error raised as if from the socket."""

    def __init__(self, method: str, steps: Sequence[Step]) -> None:
        self.request = httpx.Request(method, URL)
        self.steps = list(steps)
        self.sent = 0
        self.sleeps: list[float] = []

    def send(self) -> httpx.Response:
        step = self.steps[self.sent]
        self.sent += 1
        if isinstance(step, httpx.Response):
            return step
        raise step("scripted", request=self.request)


def attempts_of(method: str, replayable: bool, policy: RetryPolicy, accept: frozenset[int]) -> Attempts:
    return policy.attempts(method, URL, replayable=replayable, accept=accept)


def run(
    steps: Sequence[Step],
    *,
    method: str = "GET",
    replayable: bool = True,
    policy: RetryPolicy = POLICY,
    accept: frozenset[int] = frozenset(),
) -> tuple[Script, httpx.Response]:
    """The call through `send_with_retries`, which must end in an answer."""
    script = Script(method, steps)
    attempts = attempts_of(method, replayable, policy, accept)
    return script, send_with_retries(script.send, attempts, script.sleeps.append)


def fail(
    steps: Sequence[Step], error: type[Exception], *, method: str = "GET", replayable: bool = True
) -> tuple[Script, pytest.ExceptionInfo[Exception]]:
    """The call through `send_with_retries`, which must end in `error`."""
    script = Script(method, steps)
    attempts = attempts_of(method, replayable, POLICY, frozenset())
    with pytest.raises(error) as caught:
        send_with_retries(script.send, attempts, script.sleeps.append)
    return script, caught


def answer(status: int, text: str = "", **headers: str) -> httpx.Response:
    return httpx.Response(status, text=text, headers=headers)


OK = answer(200, '{"orders": []}')


def test_a_read_goes_again_through_every_passing_fault_with_a_growing_backoff() -> None:
    steps: list[Step] = [httpx.ConnectError, httpx.ReadError, answer(500), answer(502), OK]
    script, response = run(steps)
    assert response is OK
    assert script.sent == 5
    assert script.sleeps == [0.5, 1.0, 2.0, 4.0]


def test_the_backoff_doubles_up_to_thirty_seconds() -> None:
    assert [backoff(n) for n in (1, 2, 3, 4, 7, 8, 20)] == [0.5, 1.0, 2.0, 4.0, 30.0, 30.0, 30.0]


def test_a_read_that_never_gets_an_answer_gives_up_after_the_last_try() -> None:
    script, caught = fail([httpx.ReadTimeout] * 10, RetryableError)
    assert not isinstance(caught.value, UnknownOutcome)  # a read changes nothing: nothing to look up
    assert str(caught.value).startswith("Acme did not answer: scripted")
    assert caught.value.retry_after == 30.0  # type: ignore[attr-defined]
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
    assert script.sent == POLICY.max_failed
    assert len(script.sleeps) == POLICY.max_failed - 1


def test_lasting_server_errors_give_up_with_the_remotes_words() -> None:
    script, caught = fail([answer(503, "down for maintenance")] * 10, RetryableError)
    assert str(caught.value) == "Acme answered 503: down for maintenance"
    assert script.sent == POLICY.max_failed


@pytest.mark.parametrize("lost", [httpx.ReadError, httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.WriteError])
def test_a_write_that_must_not_go_twice_and_lost_its_answer_is_an_unknown_outcome(
    lost: type[httpx.TransportError],
) -> None:
    script, caught = fail([lost, OK], UnknownOutcome, method="POST", replayable=False)
    assert str(caught.value).startswith("Acme's answer to POST /v1/orders was lost")
    assert isinstance(caught.value, RetryableError)  # callers that only know retryable errors still cope
    assert isinstance(caught.value.__cause__, lost)
    assert (script.sent, script.sleeps) == (1, [])  # never sent again


@pytest.mark.parametrize("never_sent", NEVER_SENT)
def test_a_write_that_never_left_goes_again(never_sent: type[httpx.TransportError]) -> None:
    script, response = run([never_sent, OK], method="POST", replayable=False)
    assert response is OK
    assert script.sleeps == [0.5]


@pytest.mark.parametrize("status", [502, 504])
def test_a_gateway_error_to_a_write_that_must_not_go_twice_is_an_unknown_outcome(status: int) -> None:
    script, caught = fail([answer(status, "gateway"), OK], UnknownOutcome, method="POST", replayable=False)
    assert str(caught.value) == f"Acme answered {status} to POST /v1/orders: gateway"
    assert script.sent == 1


@pytest.mark.parametrize("status", [500, 503])
def test_a_server_error_to_a_write_that_must_not_go_twice_is_raised_as_retryable(status: int) -> None:
    script, caught = fail([answer(status, "oops"), OK], RetryableError, method="POST", replayable=False)
    assert not isinstance(caught.value, UnknownOutcome)
    assert script.sent == 1


def test_a_replayable_write_goes_again_after_a_lost_answer() -> None:
    script, response = run([httpx.ReadError, answer(504), OK], method="POST", replayable=True)
    assert response is OK
    assert script.sleeps == [0.5, 1.0]


def test_a_read_is_replayable_whatever_the_caller_says() -> None:
    script, response = run([httpx.ReadError, OK], method="get", replayable=False)
    assert response is OK
    assert script.sent == 2


def test_a_429_waits_as_long_as_the_answer_says() -> None:
    steps: list[Step] = [
        answer(429, **{"Retry-After": "3"}),
        answer(429, **{"X-Rate-Limit-Reset": "7", "Retry-After": "3"}),  # ShipStation's own header wins
        answer(429),  # says nothing: the remote's default
        OK,
    ]
    script, response = run(steps)
    assert response is OK
    assert script.sleeps == [3.0, 7.0, 2.0]


def test_a_429_to_a_write_that_must_not_go_twice_goes_again() -> None:
    # A throttled request was refused before any work: it may always be sent again.
    script, response = run([answer(429, **{"Retry-After": "1"}), OK], method="POST", replayable=False)
    assert response is OK
    assert script.sleeps == [1.0]


def test_repeated_429s_wait_the_same_unless_the_policy_grows_the_wait() -> None:
    zero_reset = answer(429, **{"X-Rate-Limit-Reset": "0"})
    script, _ = run([zero_reset] * 4 + [OK])
    assert script.sleeps == [0.0, 0.0, 0.0, 0.0]
    script, _ = run([zero_reset] * 4 + [OK], policy=GROWING)
    # The first waits exactly for the reset; each further one longer, since the window still refuses.
    assert script.sleeps == [0.0, 0.5, 1.0, 2.0]


def test_endless_429s_give_up_with_the_last_wait_as_retry_after() -> None:
    script, caught = fail([answer(429, **{"Retry-After": "2"})] * 20, RetryableError)
    assert str(caught.value) == "Acme kept answering 429 Too Many Requests"
    assert caught.value.retry_after == 2.0  # type: ignore[attr-defined]
    assert script.sent == POLICY.max_throttled


def test_refused_credentials_need_the_user_at_once() -> None:
    script, caught = fail([answer(401), OK], NeedsUserError)
    assert str(caught.value) == "Acme refused the key: reconnect"
    assert caught.value.action == "reconnect"  # type: ignore[attr-defined]
    assert script.sleeps == []


def test_other_client_errors_are_permanent_unless_the_caller_accepts_them() -> None:
    script, caught = fail([answer(404, "no such order"), OK], PermanentError)
    assert str(caught.value) == "Acme refused /v1/orders: 404 no such order"
    assert caught.value.code == "404"  # type: ignore[attr-defined]
    assert script.sent == 1
    refused = answer(422, "has already been taken")
    script, response = run([refused], method="POST", accept=frozenset({422}))
    assert response is refused


def test_rate_limit_wait_reads_the_reset_header_then_retry_after() -> None:
    assert rate_limit_wait(answer(429, **{"X-Rate-Limit-Reset": "0.100"}), 60.0) == 0.1
    assert rate_limit_wait(answer(429, **{"X-Rate-Limit-Reset": "soon", "Retry-After": "4"}), 60.0) == 4.0
    assert rate_limit_wait(answer(429, **{"X-Rate-Limit-Reset": "-1"}), 60.0) == 60.0
    assert rate_limit_wait(answer(429, **{"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}), 60.0) == 0.0


def test_shipstation_mark_as_shipped_whose_answer_was_lost_raises_unknown_outcome() -> None:
    posts: list[httpx.Request] = []

    def lose_it(request: httpx.Request) -> httpx.Response:
        posts.append(request)
        raise httpx.ReadError("connection reset by peer", request=request)

    sleeps: list[float] = []
    with httpx.Client(transport=httpx.MockTransport(lose_it)) as client:
        channel = ShipStationChannel(
            {"api_key": "k", "api_secret": "s", "base_url": "https://ssapi.example.com"},
            client=client,
            sleep=sleeps.append,
        )
        with pytest.raises(UnknownOutcome, match="answer to POST /orders/markasshipped was lost"):
            ShipStationOutbound(channel).mark_as_shipped(1, "ups")
    assert (len(posts), sleeps) == (1, [])
