"""The one HTTP client factory and the one classifier of HTTP answers into actions."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
USER_AGENT = "ledgerlink/0.1 (+https://github.com/ledgerlink)"


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
