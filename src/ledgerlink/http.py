"""The one HTTP client factory, the one classifier of HTTP answers into actions, and the channel adapters' one
retry loop (`RetryPolicy` per remote, `Attempts` per call, `send_with_retries`)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx

from ledgerlink.domain.errors import NeedsUserError, PermanentError, RetryableError, UnknownOutcome

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
USER_AGENT = "ledgerlink/0.1 (+https://github.com/ledgerlink)"
# Failures that prove the request never left this machine: any request, even a write, may go again after them.
NEVER_SENT: tuple[type[httpx.TransportError], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def new_client(
    base_url: str = "",
    *,
    headers: dict[str, str] | None = None,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    transport: httpx.BaseTransport | None = None,
    auth: httpx.Auth | tuple[str, str] | None = None,
) -> httpx.Client:
    """An `httpx.Client` with our timeouts and user agent; tests inject a `transport`."""
    merged = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    merged.update(headers or {})
    return httpx.Client(base_url=base_url, headers=merged, timeout=timeout, transport=transport, auth=auth)


class Action(enum.Enum):
    """What to do with an HTTP answer."""

    OK = "ok"
    RETRY = "retry"
    RATE_LIMITED = "rate_limited"
    REFRESH_TOKEN = "refresh_token"  # noqa: S105 - an action name, not a secret
    FAIL = "fail"
    UNKNOWN_OUTCOME = "unknown_outcome"


def classify_status(status: int) -> Action:
    """Classify by status alone; adapters refine with the body where the remote needs it (QBO)."""
    if status < 400:
        return Action.OK
    if status == 401:
        return Action.REFRESH_TOKEN
    if status == 429:
        return Action.RATE_LIMITED
    if status in {502, 504}:
        # The request may have been done before the answer was lost: look it up before resending.
        return Action.UNKNOWN_OUTCOME
    if status >= 500 or status == 408:
        return Action.RETRY
    return Action.FAIL


def retry_after_seconds(response: httpx.Response, default: float) -> float:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), else `default`."""
    raw = response.headers.get("Retry-After")
    if not raw:
        return default
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return default
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def rate_limit_wait(response: httpx.Response, default: float) -> float:
    """Seconds until a rate-limit window resets: `X-Rate-Limit-Reset` (ShipStation's), else `Retry-After`
    (Shopify's, and the HTTP standard's), else `default`."""
    raw = response.headers.get("X-Rate-Limit-Reset")
    if raw is not None:
        try:
            reset = float(raw)
        except ValueError:
            reset = -1.0
        if reset >= 0:
            return reset
    return retry_after_seconds(response, default)


def backoff(attempt: int) -> float:
    """Seconds to wait after the `attempt`-th passing fault in a row: 0.5, 1, 2, 4, … at most 30."""
    return float(min(30.0, 0.5 * 2 ** (attempt - 1)))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How the calls to one remote are retried: how often, how long to wait, and its words in the errors."""

    remote: str  # named in every error, e.g. "Shopify"
    reconnect_message: str  # the `NeedsUserError` of a refused credential (401)
    describe: Callable[[httpx.Response], str]  # the remote's own words in an error answer
    throttle_default: float  # seconds to wait after a 429 that does not say how long
    throttle_backoff: bool = False  # wait longer on each further 429 in a row (at least `backoff`)
    max_failed: int = 5
    max_throttled: int = 8
    give_up_after: float = 30.0  # the `retry_after` of the error raised when the tries are used up

    def attempts(
        self, method: str, url: str, *, replayable: bool = True, accept: frozenset[int] = frozenset()
    ) -> Attempts:
        """The decisions for one call. Reads are always replayable; a write is when sending it twice cannot
        double anything (an upsert, an absolute value, a refused duplicate)."""
        return Attempts(self, method.upper(), url, replayable=replayable or method.upper() == "GET", accept=accept)


@dataclass(slots=True)
class Attempts:
    """The retry decision of one call, attempt after attempt: hand back the answer, go again after a wait, or raise.

    A 429 was not done, so it always goes again (a bounded number of times). A replayable call goes again after
    a lost connection, a timeout or a 5xx. A call that must not be sent twice goes again only when it never
    left (`NEVER_SENT`); when it was sent and its answer lost (a reset, a read timeout, 502/504) it raises
    `UnknownOutcome`, after any other 5xx a `RetryableError`, so the caller looks before sending it again.
    """

    policy: RetryPolicy
    method: str
    url: str
    replayable: bool
    accept: frozenset[int] = frozenset()  # statuses handed back to the caller instead of raising
    failed: int = field(default=0, init=False)
    throttled: int = field(default=0, init=False)

    @property
    def _what(self) -> str:
        return f"{self.method} {urlsplit(self.url).path}"

    def after_failure(self, exc: httpx.TransportError) -> float:
        """No answer came: the seconds to wait before going again, or raise when it must not or cannot."""
        remote = self.policy.remote
        if not self.replayable and not isinstance(exc, NEVER_SENT):
            raise UnknownOutcome(
                f"{remote}'s answer to {self._what} was lost: {exc}", retry_after=self.policy.give_up_after
            ) from exc
        self.failed += 1
        if self.failed >= self.policy.max_failed:
            raise RetryableError(f"{remote} did not answer: {exc}", retry_after=self.policy.give_up_after) from exc
        return backoff(self.failed)

    def after_answer(self, response: httpx.Response) -> float | None:
        """An answer came: None when it is the caller's, else the seconds to wait before going again; raises
        the typed error when the call ends here."""
        status = response.status_code
        action = classify_status(status)
        if action is Action.OK or status in self.accept:
            return None
        policy = self.policy
        if action is Action.RATE_LIMITED:
            self.throttled += 1
            wait = rate_limit_wait(response, policy.throttle_default)
            if policy.throttle_backoff and self.throttled > 1:
                # The window still refuses (another app on the same key, or a reset rounded down): wait longer.
                wait = max(wait, backoff(self.throttled - 1))
            if self.throttled >= policy.max_throttled:
                raise RetryableError(f"{policy.remote} kept answering 429 Too Many Requests", retry_after=wait)
            return wait
        if action in {Action.RETRY, Action.UNKNOWN_OUTCOME}:
            if not self.replayable:
                said = f"{policy.remote} answered {status} to {self._what}: {policy.describe(response)}"
                if action is Action.UNKNOWN_OUTCOME:
                    raise UnknownOutcome(said, retry_after=policy.give_up_after)
                raise RetryableError(said, retry_after=policy.give_up_after)
            # A read changes nothing, and a replayable write cannot double: an unknown outcome is another retry.
            self.failed += 1
            if self.failed >= policy.max_failed:
                raise RetryableError(
                    f"{policy.remote} answered {status}: {policy.describe(response)}", retry_after=policy.give_up_after
                )
            return backoff(self.failed)
        if action is Action.REFRESH_TOKEN:
            raise NeedsUserError(policy.reconnect_message, action="reconnect")
        raise PermanentError(
            f"{policy.remote} refused {urlsplit(self.url).path}: {status} {policy.describe(response)}", code=str(status)
        )


def send_with_retries(
    send: Callable[[], httpx.Response], attempts: Attempts, sleep: Callable[[float], None]
) -> httpx.Response:
    """The one retry loop of the channel adapters: `send` one attempt at a time and do what `attempts` decides."""
    while True:
        try:
            response = send()
        except httpx.TransportError as exc:
            sleep(attempts.after_failure(exc))
            continue
        wait = attempts.after_answer(response)
        if wait is None:
            return response
        sleep(wait)
