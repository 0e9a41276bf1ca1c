"""The QuickBooks Online REST v3 client: one request path, one classifier of answers, a pacer, token refresh.

Every answer goes through `classify`: QBO can put a `Fault` in a 200, sends 401s as JSON (with lower-case
keys) or as XML, and gives no rate-limit headers, so the status alone does not say what to do.
"""

from __future__ import annotations

import re
import threading
import time
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from ledgerlink.books.base import Tokens, TokenStore
from ledgerlink.books.qbo import oauth
from ledgerlink.domain.errors import LedgerlinkError, NeedsUserError, PermanentError, RetryableError
from ledgerlink.domain.errors import UnknownOutcome as UnknownOutcome  # re-exported: callers import it from here
from ledgerlink.http import Action, new_client
from ledgerlink.jsonwire import dumps, loads

if TYPE_CHECKING:
    from ledgerlink.books.qbo.adapter import QboConfig

MINOR_VERSION = 75
MAX_BATCH_ITEMS = 30
MAX_REQUEST_ID = 36  # Intuit's limit for a batch's requestid (50 for a single request)
QUERY_PAGE = 1000
MAX_TRIES = 3
MAX_THROTTLE_WAITS = 3
REFRESH_SKEW = timedelta(seconds=60)
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 130.0  # QBO gives up on a request after 120 s itself
QBO_TIMEOUT = httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)

_AUTH_CODES = frozenset({"100", "3200"})
_THROTTLE_CODES = frozenset({"3001"})
_FORBIDDEN_CODES = frozenset({"3100"})
_FROM = re.compile(r"\bfrom\s+(\w+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class FaultError:
    """One `Error` of a QBO `Fault`."""

    code: str
    message: str
    detail: str = ""
    element: str = ""


@dataclass(frozen=True, slots=True)
class QboFault:
    """A QBO `Fault`, whichever envelope it came in (JSON, lower-case JSON, XML)."""

    type: str
    errors: tuple[FaultError, ...]

    @property
    def code(self) -> str:
        return self.errors[0].code if self.errors else ""

    @property
    def codes(self) -> frozenset[str]:
        return frozenset(error.code for error in self.errors)

    @property
    def text(self) -> str:
        """The most useful sentence for a person: the Detail where QBO gives one, else the Message."""
        parts = [error.detail or error.message for error in self.errors if error.detail or error.message]
        return "; ".join(parts) or self.type or "QuickBooks Online answered with a fault"

    def mentions(self, words: str) -> bool:
        """True when any error's message or detail contains `words` (case-insensitive)."""
        needle = words.casefold()
        return any(needle in f"{e.message} {e.detail}".casefold() for e in self.errors)


def parse_fault(body: object) -> QboFault | None:
    """The fault in a parsed JSON body: `Fault.Error[]` or the lower-case `fault.error[]` envelope."""
    if not isinstance(body, Mapping):
        return None
    raw = body.get("Fault") or body.get("fault")
    if not isinstance(raw, Mapping):
        return None
    items = raw.get("Error") or raw.get("error") or []
    errors = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, Mapping):
            errors.append(
                FaultError(
                    code=str(item.get("code") or ""),
                    message=str(item.get("Message") or item.get("message") or ""),
                    detail=str(item.get("Detail") or item.get("detail") or ""),
                    element=str(item.get("element") or ""),
                )
            )
    return QboFault(type=str(raw.get("type") or ""), errors=tuple(errors))


def _parse_xml_fault(content: bytes) -> QboFault | None:
    try:
        # The body is Intuit's own answer over TLS; ElementTree resolves no external entities and
        # Python's expat refuses entity-expansion bombs.
        root = ET.fromstring(content)  # noqa: S314
    except ET.ParseError:
        return None
    fault = next((el for el in root.iter() if _local(el.tag) == "Fault"), None)
    if fault is None:
        return None
    errors = []
    for error in (el for el in fault if _local(el.tag) == "Error"):
        texts = {_local(child.tag): (child.text or "").strip() for child in error}
        errors.append(
            FaultError(code=error.get("code", ""), message=texts.get("Message", ""), detail=texts.get("Detail", ""))
        )
    return QboFault(type=fault.get("type", ""), errors=tuple(errors))


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def decode(response: httpx.Response) -> tuple[Any, QboFault | None]:
    """The body (JSON with Decimal numbers, or None) and the fault it carries, if any."""
    content = response.content
    if not content.strip():
        return None, None
    if content.lstrip().startswith(b"<"):
        return None, _parse_xml_fault(content)
    try:
        body = loads(content)
    except ValueError:
        return None, None
    return body, parse_fault(body)


def classify(response: httpx.Response, *, throttle_wait: float = 60.0) -> tuple[Action, LedgerlinkError | None]:
    """What to do with any QBO answer, and the error to raise if we stop here."""
    body, fault = decode(response)
    return _classify(response.status_code, body, fault, throttle_wait)


def _classify(
    status: int, body: Any, fault: QboFault | None, throttle_wait: float
) -> tuple[Action, LedgerlinkError | None]:
    codes = fault.codes if fault else frozenset()
    kind = fault.type.casefold() if fault else ""
    if status == 401 or codes & _AUTH_CODES or kind in {"authentication", "authenticationfault"}:
        return Action.REFRESH_TOKEN, NeedsUserError(
            "QuickBooks Online refused the access token: reconnect QuickBooks", action="reconnect"
        )
    if status == 429 or codes & _THROTTLE_CODES:
        # Intuit sends no Retry-After; its advice is to wait a minute.
        return Action.RATE_LIMITED, RetryableError("QuickBooks Online throttled the request", retry_after=throttle_wait)
    if status == 403 or codes & _FORBIDDEN_CODES:
        why = fault.text if fault else "authorization failed"
        return Action.FAIL, NeedsUserError(
            f"QuickBooks Online refused access ({why}): the connected user needs admin rights and an active "
            "subscription; reconnect QuickBooks",
            action="reconnect",
        )
    if status in {502, 504}:
        return Action.UNKNOWN_OUTCOME, UnknownOutcome(
            f"QuickBooks Online answered {status}: the request may or may not have been done", retry_after=5.0
        )
    if status >= 500 or status == 408:
        return Action.RETRY, RetryableError(f"QuickBooks Online answered {status}", retry_after=5.0)
    if status >= 400 or fault is not None:
        message = fault.text if fault else f"QuickBooks Online answered {status}"
        return Action.FAIL, PermanentError(message, code=fault.code if fault else str(status))
    if not isinstance(body, Mapping):
        # A 2xx we cannot read: the work may have been done.
        return Action.UNKNOWN_OUTCOME, UnknownOutcome(
            f"QuickBooks Online answered {status} with an unreadable body", retry_after=5.0
        )
    return Action.OK, None


class Pacer(Protocol):
    """Blocks until one more request (or batch request) fits under QuickBooks' per-company limits."""

    def acquire(self, is_batch: bool) -> None: ...


class NoPacer:
    """No pacing (tests of the 429 path)."""

    def acquire(self, is_batch: bool) -> None:
        """Never waits."""


class WindowPacer:
    """Sliding windows per second and per minute, kept just under Intuit's limits, so we wait instead of 429.

    A batch counts as a request and as a batch. The windows are a little longer than QBO's (`margin`) because
    QBO counts requests when they arrive, not when we send them. `minute` is settable so tests can run in
    compressed time, like the sandbox's `time_scale`.
    """

    def __init__(
        self,
        *,
        requests_per_minute: int = 500,
        requests_per_second: int = 10,
        batches_per_minute: int = 40,
        minute: float = 60.0,
        margin: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        stretch = 1.0 + margin
        self._windows = [
            (deque[float](), requests_per_second, minute / 60.0 * stretch, False),
            (deque[float](), requests_per_minute, minute * stretch, False),
            (deque[float](), batches_per_minute, minute * stretch, True),
        ]
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self.waited = 0.0

    def acquire(self, is_batch: bool) -> None:
        """Wait (sleeping outside the lock) until every window has room, then record the request."""
        while True:
            with self._lock:
                now = self._clock()
                wait = 0.0
                for stamps, limit, length, batches_only in self._windows:
                    if batches_only and not is_batch:
                        continue
                    while stamps and stamps[0] <= now - length:
                        stamps.popleft()
                    if len(stamps) >= limit:
                        wait = max(wait, stamps[0] + length - now)
                if wait <= 0:
                    for stamps, _limit, _length, batches_only in self._windows:
                        if is_batch or not batches_only:
                            stamps.append(now)
                    return
            self.waited += wait
            self._sleep(wait)


def qbo_timeout(read_timeout: float = READ_TIMEOUT) -> httpx.Timeout:
    """`QBO_TIMEOUT` with another read timeout: how long to wait for an answer before it counts as lost."""
    return httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT, read=read_timeout)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class QboClient:
    """Requests to one QBO company, with the pinned minorversion, a Bearer token and pacing on every one.

    Its HTTP client waits `config.read_timeout` seconds for an answer. A client handed in (`client=`) keeps its
    own timeouts, unless the connection's config sets `read_timeout`: then every request carries it.
    """

    def __init__(
        self,
        config: QboConfig,
        tokens: TokenStore,
        *,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = _utcnow,
        pacer: Pacer | None = None,
    ) -> None:
        self.config = config
        self.tokens = tokens
        timeout = qbo_timeout(config.read_timeout)
        self.http = client if client is not None else new_client(timeout=timeout)
        self._owns_http = client is None
        self._timeout = timeout if client is None or "read_timeout" in config.model_fields_set else None
        self.sleep = sleep
        self.clock = clock
        self.pacer: Pacer = (
            pacer
            if pacer is not None
            else WindowPacer(
                requests_per_minute=config.requests_per_minute,
                requests_per_second=config.requests_per_second,
                batches_per_minute=config.batches_per_minute,
                sleep=sleep,
            )
            if config.pace
            else NoPacer()
        )
        self.base = f"{config.api_base.rstrip('/')}/company/{config.realm_id}/"
        self.stats: dict[str, int] = {"requests": 0, "batches": 0, "throttled": 0, "refreshes": 0, "retries": 0}
        self._tokens: Tokens | None = None
        self._token_lock = threading.Lock()

    # -- public calls ---------------------------------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """GET `path` (relative to the company), e.g. `preferences` or `invoice/123`, with query `params`
        (e.g. CDC's `entities` and `changedSince`; a query string inside `path` would be dropped by httpx)."""
        return self._send("GET", path, params=params, read=True)

    def post(
        self,
        entity: str,
        body: Mapping[str, Any],
        *,
        requestid: str | None = None,
        operation: str | None = None,
        include: str | None = None,
    ) -> dict[str, Any]:
        """Create (or with `operation`, update/void/delete) one entity; returns the entity QBO sent back."""
        params = {"requestid": requestid, "operation": operation, "include": include}
        answer = self._send(
            "POST",
            entity.lower(),
            params={k: v for k, v in params.items() if v},
            content=dumps(body).encode(),
            content_type="application/json",
            read=False,
            replayable=requestid is not None,
        )
        found = answer.get(entity)
        if not isinstance(found, dict):
            raise UnknownOutcome(f"QuickBooks Online answered without the {entity}", retry_after=5.0)
        return found

    def query(self, select: str) -> list[dict[str, Any]]:
        """Every row of a SELECT (without STARTPOSITION/MAXRESULTS), paging 1000 at a time."""
        match = _FROM.search(select)
        entity = match.group(1) if match else ""
        rows: list[dict[str, Any]] = []
        start = 1
        while True:
            text = f"{select} STARTPOSITION {start} MAXRESULTS {QUERY_PAGE}"
            answer = self._send("POST", "query", content=text.encode(), content_type="application/text", read=True)
            page = query_rows(answer.get("QueryResponse"), entity)
            rows.extend(page)
            if len(page) < QUERY_PAGE:
                return rows
            start += QUERY_PAGE

    def batch(self, items: Sequence[Mapping[str, Any]], *, requestid: str) -> list[dict[str, Any]]:
        """One `/batch` request (≤30 items); returns `BatchItemResponse` (match answers to items by `bId`)."""
        if len(items) > MAX_BATCH_ITEMS:
            raise ValueError(f"a QBO batch holds at most {MAX_BATCH_ITEMS} items, got {len(items)}")
        if not requestid or len(requestid) > MAX_REQUEST_ID:
            raise ValueError(f"a batch requestid must be 1 to {MAX_REQUEST_ID} characters")
        if not items:
            return []
        reads_only = all("Query" in item for item in items)
        answer = self._send(
            "POST",
            "batch",
            params={"requestid": requestid},
            content=dumps({"BatchItemRequest": list(items)}).encode(),
            content_type="application/json",
            read=reads_only,
            replayable=True,
            is_batch=True,
        )
        found = answer.get("BatchItemResponse")
        return [item for item in found if isinstance(item, dict)] if isinstance(found, list) else []

    @property
    def timeout(self) -> httpx.Timeout:
        """The timeouts of every request: the connection's read timeout, or those of a client handed in."""
        return self._timeout if self._timeout is not None else self.http.timeout

    def close(self) -> None:
        """Close the HTTP client if this client made it."""
        if self._owns_http:
            self.http.close()

    # -- the one request path -------------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        content_type: str | None = None,
        read: bool,
        replayable: bool = False,
        is_batch: bool = False,
    ) -> dict[str, Any]:
        """Send with pacing, refresh-once on 401, waits on 429 and bounded retries where a replay is safe."""
        url = self.base + path
        query = {"minorversion": str(self.config.minor_version), **(params or {})}
        replayable = replayable or read
        refreshed = False
        throttles = 0
        failures = 0
        while True:
            self.pacer.acquire(is_batch)
            tokens = self._current_tokens()
            headers = {"Authorization": f"Bearer {tokens.access_token}", "Accept": "application/json"}
            if content_type:
                headers["Content-Type"] = content_type
            self.stats["requests"] += 1
            if is_batch:
                self.stats["batches"] += 1
            try:
                response = self.http.request(
                    method, url, params=query, content=content, headers=headers, timeout=self.timeout
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # The request never reached QuickBooks, so nothing was done: any request may go again.
                failures += 1
                if failures < MAX_TRIES:
                    self._backoff(failures)
                    continue
                raise RetryableError(f"QuickBooks Online unreachable: {exc!r}", retry_after=30.0) from exc
            except httpx.TransportError as exc:
                if not read:
                    raise UnknownOutcome(
                        f"the answer from QuickBooks Online was lost ({exc!r}): the request may have been done",
                        retry_after=5.0,
                    ) from exc
                failures += 1
                if failures < MAX_TRIES:
                    self._backoff(failures)
                    continue
                raise RetryableError(f"QuickBooks Online did not answer: {exc!r}", retry_after=30.0) from exc

            body, fault = decode(response)
            action, error = _classify(response.status_code, body, fault, self.config.throttle_wait)
            if action is Action.OK:
                return dict(body)
            if action is Action.REFRESH_TOKEN and not refreshed:
                refreshed = True
                self._refresh(tokens.access_token)
                continue
            if action is Action.RATE_LIMITED:
                self.stats["throttled"] += 1
                throttles += 1
                # A throttled request was not done, so it may always go again after the wait.
                if throttles <= MAX_THROTTLE_WAITS:
                    self.sleep(self.config.throttle_wait)
                    continue
            elif (action is Action.RETRY and replayable) or (action is Action.UNKNOWN_OUTCOME and read):
                failures += 1
                if failures < MAX_TRIES:
                    self._backoff(failures)
                    continue
                if action is Action.UNKNOWN_OUTCOME:
                    error = RetryableError(f"QuickBooks Online answered {response.status_code}", retry_after=30.0)
            raise error if error is not None else RuntimeError(f"unclassified answer {response.status_code}")

    def _backoff(self, failures: int) -> None:
        self.stats["retries"] += 1
        self.sleep(self.config.retry_backoff * 2 ** (failures - 1))

    # -- tokens -----------------------------------------------------------------------------------------------

    def _current_tokens(self) -> Tokens:
        with self._token_lock:
            if self._tokens is None:
                self._tokens = self.tokens.load()
            current = self._tokens
        if _aware(current.access_expires_at) - REFRESH_SKEW <= self.clock():
            return self._refresh(current.access_token)
        return current

    def _refresh(self, stale_access_token: str) -> Tokens:
        """Refresh through the store, which serialises refreshes per company and keeps the rotated token."""
        self.stats["refreshes"] += 1
        fresh = self.tokens.refresh(stale_access_token, self._do_refresh)
        with self._token_lock:
            self._tokens = fresh
        return fresh

    def _do_refresh(self, current: Tokens) -> Tokens:
        return oauth.refresh_tokens(
            self.http,
            self.config.token_url,
            self.config.client_id,
            self.config.client_secret.get_secret_value(),
            current.refresh_token,
            now=self.clock,
        )


def query_rows(response: object, entity: str) -> list[dict[str, Any]]:
    """The rows of a `QueryResponse` (the list under the entity's name; an empty answer has none)."""
    if not isinstance(response, Mapping):
        return []
    for key, value in response.items():
        if isinstance(value, list) and (not entity or key.casefold() == entity.casefold()):
            return [row for row in value if isinstance(row, dict)]
    return []


def select(entity: str, *conditions: str) -> str:
    """A QBO `SELECT *`; build the conditions with `equals`/`one_of`, which quote every value."""
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return f"SELECT * FROM {entity}{where}"  # noqa: S608 - QBO's query language; values are quoted by `quote`


def equals(column: str, value: str) -> str:
    """`column = 'value'`, quoted."""
    return f"{column} = {quote(value)}"


def one_of(column: str, values: Iterable[str]) -> str:
    """`column IN ('a', 'b')`, quoted."""
    return f"{column} IN ({', '.join(quote(v) for v in values)})"


def quote(value: str) -> str:
    """A QBO query string literal: backslashes and quotes escaped with a backslash."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
