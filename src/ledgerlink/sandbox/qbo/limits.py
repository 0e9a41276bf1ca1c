"""The knobs that shape how the QBO sandbox behaves as a service: Intuit's throttles and injected faults.

The throttles are the documented per-realm limits (500 requests/minute, 10/second, 40 batches/minute,
10 concurrent requests). They run in *scaled* time so a benchmark can hit a "minute" limit in one second.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ledgerlink.sandbox.faults import CONNECTION_FAULT_KINDS, ConnectionFaultKind

FaultKind = Literal["status", "lost_response", "throttle", "latency", "xml_401", "expire_tokens"] | ConnectionFaultKind
FAULT_KINDS: frozenset[str] = (
    frozenset({"status", "lost_response", "throttle", "latency", "xml_401", "expire_tokens"}) | CONNECTION_FAULT_KINDS
)


@dataclass(frozen=True)
class QboLimits:
    """Per-realm throttles of QuickBooks Online, and token lifetimes, all overridable for tests.

    `time_scale` compresses time: with 60, a "minute" window lasts one real second and a "second"
    window 1/60 s. Token lifetimes are in real seconds and are not scaled.
    """

    requests_per_minute: int = 500
    requests_per_second: int = 10
    batch_per_minute: int = 40
    concurrent: int = 10
    batch_max_items: int = 30
    time_scale: float = 1.0
    enabled: bool = True
    access_token_ttl: float = 3600.0
    # Intuit keeps a superseded refresh token usable for 24 h so a retry after a lost answer works.
    refresh_token_grace: float = 86400.0
    refresh_token_ttl: float = 8640000.0

    def __post_init__(self) -> None:
        if self.time_scale <= 0:
            raise ValueError("time_scale must be positive")


@dataclass
class Fault:
    """One armed misbehaviour: it hits the next `count` requests whose path contains `path_contains`.

    Kinds: `status` answers `status` before doing any work; `lost_response` does the work, commits it and
    then answers 504 (an answer lost in transit); `throttle` answers 429; `latency` sleeps `delay_ms`;
    `xml_401` answers 401 as XML; `expire_tokens` invalidates every access token issued so far. The connection
    faults of sandbox/faults.py: `reset` and `reset_after_write` drop the connection with no answer, before or
    after the work; `timeout` and `timeout_after_write` hold it `delay_ms` (30 s when 0) first.
    """

    kind: FaultKind
    count: int = 1
    path_contains: str | None = None
    status: int = 500
    delay_ms: int = 0
    code: str | None = None
    message: str | None = None
    detail: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if self.count < 1:
            raise ValueError("count must be at least 1")

    def matches(self, path: str) -> bool:
        """True when this fault applies to a request for `path`."""
        return self.path_contains is None or self.path_contains.lower() in path.lower()

    def to_dict(self) -> dict[str, Any]:
        """The fault as JSON-ready fields (the same fields `POST /_sandbox/faults` accepts)."""
        return asdict(self)


@dataclass
class SandboxStats:
    """Counters a benchmark reads to see how hard it pushed the sandbox."""

    requests: int = 0
    batches: int = 0
    batch_items: int = 0
    throttled: int = 0
    max_concurrent_seen: int = 0

    def to_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        return asdict(self)


@dataclass
class _RealmWindows:
    second: deque[float] = field(default_factory=deque)
    minute: deque[float] = field(default_factory=deque)
    batch_minute: deque[float] = field(default_factory=deque)
    in_flight: int = 0


class RateLimiter:
    """Sliding-window throttles per realm, in scaled time; a batch counts as one request."""

    def __init__(self, limits: QboLimits, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._realms: dict[str, _RealmWindows] = {}

    def _windows(self, realm_id: str) -> _RealmWindows:
        return self._realms.setdefault(realm_id, _RealmWindows())

    def enter(self, realm_id: str) -> int:
        """Mark a request in flight for the realm; returns how many are in flight now."""
        with self._lock:
            windows = self._windows(realm_id)
            windows.in_flight += 1
            return windows.in_flight

    def leave(self, realm_id: str) -> None:
        """Mark a request finished."""
        with self._lock:
            windows = self._windows(realm_id)
            windows.in_flight = max(0, windows.in_flight - 1)

    def admit(self, realm_id: str, *, is_batch: bool) -> bool:
        """Record the request and return True, or return False (and record nothing) when over a limit."""
        limits = self.limits
        if not limits.enabled:
            return True
        now = self._monotonic()
        second = 1.0 / limits.time_scale
        minute = 60.0 / limits.time_scale
        with self._lock:
            windows = self._windows(realm_id)
            _expire(windows.second, now - second)
            _expire(windows.minute, now - minute)
            _expire(windows.batch_minute, now - minute)
            over = (
                windows.in_flight > limits.concurrent
                or len(windows.second) >= limits.requests_per_second
                or len(windows.minute) >= limits.requests_per_minute
                or (is_batch and len(windows.batch_minute) >= limits.batch_per_minute)
            )
            if over:
                return False
            windows.second.append(now)
            windows.minute.append(now)
            if is_batch:
                windows.batch_minute.append(now)
            return True


def _expire(window: deque[float], horizon: float) -> None:
    while window and window[0] <= horizon:
        window.popleft()
