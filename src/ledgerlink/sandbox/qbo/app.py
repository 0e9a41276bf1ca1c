"""The HTTP face of the QBO sandbox: Intuit's v3 Accounting API, OAuth 2 endpoints and test hooks.

Every /v3 request goes through the same gate, in the order QuickBooks' own layers apply them: injected
faults (HTTP answers, or a connection reset or held with no answer: sandbox/faults.py), realm, bearer
token, throttles, minorversion, `requestid` replay, then the work itself under the company lock. Answers
use QBO's wire shapes: upper-case `Fault` bodies from the API, the lower-case gateway envelope for 401/403,
JSON numbers for money.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import html
import json
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlencode

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response

from ledgerlink.sandbox.faults import ConnectionFaults, around_work, is_connection_fault
from ledgerlink.sandbox.qbo.limits import Fault, QboLimits, RateLimiter, SandboxStats
from ledgerlink.sandbox.qbo.seed import seed_company
from ledgerlink.sandbox.qbo.state import (
    INVALID_PROPERTY_MESSAGE,
    JSON,
    WRITABLE_TYPES,
    Company,
    QboError,
    Tokens,
    canonical_type,
    invalid_property,
    not_found,
    parse_instant,
    required_error,
    unsupported,
)
from ledgerlink.sandbox.qbo.webhooks import QboWebhooks

DEFAULT_REALM_ID = "9130357960435720"
# Fixed, well-known sandbox credentials: they guard nothing but a local emulator.
DEFAULT_CLIENT_ID = "ABsandboxClientId0000000000000000000000000000000"
DEFAULT_CLIENT_SECRET = "sandboxClientSecret000000000000000000000"
MIN_MINOR_VERSION = 75
MAX_REQUEST_ID = 50
MAX_BATCH_REQUEST_ID = 36
# Intuit publishes one discovery document per environment; the sandbox answers at both names.
DISCOVERY_PATH = "/.well-known/openid_configuration"
DISCOVERY_PATHS = (DISCOVERY_PATH, "/.well-known/openid_sandbox_configuration")
BATCH_OPERATIONS = ("create", "update", "delete")

THROTTLE_MESSAGE = "message=ThrottleExceeded; errorCode=003001; statusCode=429"
AUTHENTICATION_MESSAGE = "message=AuthenticationFailed; errorCode=003200; statusCode=401"
AUTHORIZATION_MESSAGE = "message=AuthorizationFailed; errorCode=003100; statusCode=403"
GATEWAY_TIMEOUT_HTML = (
    "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n"
    "<center><h1>504 Gateway Time-out</h1></center>\r\n</body>\r\n</html>\r\n"
)


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        # QBO writes money as JSON numbers (55.0, 10.99), never strings.
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(payload: Any) -> bytes:
    """JSON as the sandbox writes it: Decimals become numbers."""
    return json.dumps(payload, default=_encode, separators=(",", ":")).encode()


@dataclass(frozen=True)
class RequestRecord:
    """One request as the sandbox saw it, for tests that assert on what a client sent."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    minorversion: str | None
    requestid: str | None
    batch_items: int | None
    replayed: bool
    at: float


@dataclass(frozen=True)
class _Stored:
    status: int
    body: bytes
    media_type: str


@dataclass
class _Exchange:
    """What the handlers learn about a request while serving it, for the log."""

    batch_items: int | None = None
    replayed: bool = False


@dataclass
class _FaultPlan:
    delay_ms: int = 0
    expire_tokens: bool = False
    terminal: Fault | None = None


class QboSandbox:
    """A stateful QuickBooks Online company served over HTTP, with throttles and fault injection.

    `app` is the ASGI app; `credentials(base_url)` tells a client how to reach it once served.
    """

    def __init__(
        self,
        limits: QboLimits | None = None,
        realm_id: str = DEFAULT_REALM_ID,
        *,
        country: str = "US",
        clock: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        redirect_uri: str = "http://localhost:8000/callback",
    ) -> None:
        self.limits = limits or QboLimits()
        self.realm_id = realm_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.company = Company(realm_id, country=country, clock=clock)
        self.lock = self.company.lock
        seed_company(self.company)
        self._monotonic = monotonic
        self.limiter = RateLimiter(self.limits, monotonic)
        self.tokens = Tokens(self.limits, monotonic)
        self._initial_tokens = self.tokens.issue()
        self._faults: list[Fault] = []
        self._requests: list[RequestRecord] = []
        self._replays: dict[tuple[str, str], _Stored] = {}
        self._stats = SandboxStats()
        # Entity-change webhooks (sandbox/qbo/webhooks.py): `webhooks.configure(url, verifier_token)`, `flush()`.
        self.webhooks = QboWebhooks(realm_id)
        self.app = create_app(self)

    # --- the Python surface used by tests, the demo and benchmarks ----------------------------------

    def credentials(self, base_url: str) -> dict[str, str]:
        """Everything a client needs to talk to this sandbox served at `base_url`."""
        base = base_url.rstrip("/")
        return {
            "base_url": base,
            "api_base": f"{base}/v3",
            "realm_id": self.realm_id,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "access_token": self._initial_tokens["access_token"],
            "refresh_token": self._initial_tokens["refresh_token"],
            "token_url": f"{base}/oauth2/v1/tokens/bearer",
            "authorize_url": f"{base}/connect/oauth2",
            "revoke_url": f"{base}/v2/oauth2/tokens/revoke",
            "discovery_url": f"{base}{DISCOVERY_PATH}",
            "redirect_uri": self.redirect_uri,
        }

    def discovery(self, base_url: str) -> JSON:
        """Intuit's OpenID Connect discovery document, naming this sandbox's endpoints.

        Intuit's OAuth libraries (intuit-oauth's `AuthClient`) read their endpoints from this document, so
        a client given its URL as the environment talks to the sandbox with no other change.
        """
        base = base_url.rstrip("/")
        return {
            "issuer": f"{base}/op/v1",
            "authorization_endpoint": f"{base}/connect/oauth2",
            "token_endpoint": f"{base}/oauth2/v1/tokens/bearer",
            "userinfo_endpoint": f"{base}/v1/openid_connect/userinfo",
            "revocation_endpoint": f"{base}/v2/oauth2/tokens/revoke",
            "jwks_uri": f"{base}/op/v1/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile", "address", "phone"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "claims_supported": ["aud", "exp", "iat", "iss", "realmid", "sub"],
        }

    def inject(self, fault: Fault) -> None:
        """Arm a fault; it fires on the next matching requests."""
        with self.lock:
            self._faults.append(fault)

    def clear_faults(self) -> int:
        """Disarm every fault; returns how many were still armed."""
        with self.lock:
            count = len(self._faults)
            self._faults.clear()
            return count

    @property
    def faults(self) -> list[Fault]:
        """The faults still armed (copies)."""
        with self.lock:
            return [copy.copy(fault) for fault in self._faults]

    def entities(self, entity: str) -> list[JSON]:
        """Deep copies of the stored objects of one type, in Id order."""
        with self.lock:
            name = canonical_type(entity, self.company.store) or entity
            rows = self.company.store.get(name, {}).values()
            return sorted(
                (copy.deepcopy(row) for row in rows),
                key=lambda row: (0, int(row["Id"])) if str(row["Id"]).isdigit() else (1, 0),
            )

    def entity(self, entity: str, entity_id: str) -> JSON:
        """A deep copy of one stored object (raises KeyError when absent)."""
        with self.lock:
            name = canonical_type(entity, self.company.store) or entity
            return copy.deepcopy(self.company.store[name][str(entity_id)])

    @property
    def requests(self) -> list[RequestRecord]:
        """The request log, oldest first (the test hooks under /_sandbox are not logged)."""
        with self.lock:
            return list(self._requests)

    @property
    def stats(self) -> SandboxStats:
        """A snapshot of the request counters."""
        with self.lock:
            return copy.copy(self._stats)

    def set_preference(self, section: str, name: str, value: Any) -> None:
        """Change one preference, e.g. `set_preference("SalesFormsPrefs", "AllowShipping", False)`."""
        with self.lock:
            prefs = self.company.preferences
            prefs.setdefault(section, {})[name] = value
            prefs["SyncToken"] = str(int(prefs["SyncToken"]) + 1)
            prefs["MetaData"]["LastUpdatedTime"] = self.company.stamp()

    def summary(self) -> JSON:
        """Entity counts, counters and armed faults (what GET /_sandbox/state answers)."""
        with self.lock:
            return {
                "realm_id": self.realm_id,
                "entities": {name: len(rows) for name, rows in self.company.store.items()},
                "deleted": {name: len(rows) for name, rows in self.company.deleted.items() if rows},
                "stats": self._stats.to_dict(),
                "faults": [fault.to_dict() for fault in self._faults],
                "requests": len(self._requests),
            }

    # --- shared answer builders --------------------------------------------------------------------

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
        all_headers = {"intuit_tid": secrets.token_hex(16), **(headers or {})}
        return Response(dumps(payload), status_code=status, media_type="application/json", headers=all_headers)

    def _fault(self, error: QboError) -> Response:
        return self._json(error.status, {"Fault": error.fault(), "time": self.company.response_time()})

    def _gateway(self, status: int, message: str, detail: str, code: str, kind: str) -> Response:
        """The lower-case envelope Intuit's gateway uses for authentication/authorization failures."""
        payload: JSON = {
            "warnings": None,
            "intuitObject": None,
            "fault": {
                "error": [{"message": message, "detail": detail, "code": code, "element": None}],
                "type": kind,
            },
            "report": None,
            "queryResponse": None,
            "batchItemResponse": [],
            "attachableResponse": [],
            "syncErrorResponse": None,
            "requestId": None,
            "time": int(self.company.now().timestamp() * 1000),
            "status": None,
            "cdcresponse": [],
        }
        headers = {"WWW-Authenticate": 'Bearer realm="Intuit", error="invalid_token"'} if status == 401 else {}
        return self._json(status, payload, headers)

    def _unauthenticated(self, detail: str) -> Response:
        return self._gateway(401, AUTHENTICATION_MESSAGE, detail, "3200", "AUTHENTICATION")

    def _xml_401(self) -> Response:
        body = (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            f'<IntuitResponse xmlns="http://schema.intuit.com/finance/v3" time="{self.company.response_time()}">'
            '<Fault type="AuthenticationFault"><Error code="100"><Message>General Authentication Error</Message>'
            "<Detail>AuthenticationErrorGeneral: SRV-110-Authentication Failure , statusCode: 401</Detail>"
            "</Error></Fault></IntuitResponse>"
        )
        return Response(body.encode(), status_code=401, media_type="application/xml")

    def _throttled(self) -> Response:
        with self.lock:
            self._stats.throttled += 1
        # Intuit sends no Retry-After; its advice is to wait 60 seconds.
        error = QboError("3001", THROTTLE_MESSAGE, "The request limit was reached.", status=429, fault_type="SERVICE")
        return self._fault(error)

    def _injected_status(self, fault: Fault) -> Response:
        if fault.status >= 500:
            error = QboError(
                fault.code or "10000",
                fault.message or "An application error has occurred while processing your request",
                fault.detail or f"System Failure Error: injected HTTP {fault.status}",
                status=fault.status,
                fault_type="SystemFault",
            )
        else:
            error = QboError(
                fault.code or "6000",
                fault.message or "A business validation error has occurred while processing your request",
                fault.detail or f"Business Validation Error: injected HTTP {fault.status}",
                status=fault.status,
            )
        return self._fault(error)

    # --- the gate every request passes ------------------------------------------------------------------

    def _take_faults(self, path: str) -> _FaultPlan:
        plan = _FaultPlan()
        with self.lock:
            for fault in self._faults:
                if not fault.matches(path):
                    continue
                if fault.kind == "latency":
                    plan.delay_ms += fault.delay_ms
                elif fault.kind == "expire_tokens":
                    plan.expire_tokens = True
                elif plan.terminal is None:
                    plan.terminal = fault
                else:
                    continue  # one terminal fault per request; the others wait for the next one
                fault.count -= 1
            self._faults = [fault for fault in self._faults if fault.count > 0]
        return plan

    async def _serve(self, request: Request, work: Callable[[], Awaitable[Response]]) -> Response:
        """Apply injected faults around `work` (which does the real handling)."""
        plan = self._take_faults(request.url.path)
        if plan.expire_tokens:
            self.tokens.expire_all()
        if plan.delay_ms:
            await asyncio.sleep(plan.delay_ms / 1000)
        terminal = plan.terminal
        if terminal is not None and terminal.kind == "status":
            return self._injected_status(terminal)
        if terminal is not None and terminal.kind == "throttle":
            return self._throttled()
        if terminal is not None and terminal.kind == "xml_401":
            return self._xml_401()
        if terminal is not None and is_connection_fault(terminal.kind):
            # No answer at all: a reset or a hold, before the work or after it was committed.
            return await around_work(terminal.kind, terminal.delay_ms, work)
        response = await work()
        if terminal is not None and terminal.kind == "lost_response":
            # The work is committed (and remembered for a requestid replay); only the answer is lost.
            return Response(GATEWAY_TIMEOUT_HTML.encode(), status_code=504, media_type="text/html")
        return response

    def _log(self, request: Request, response: Response, exchange: _Exchange) -> None:
        params = dict(request.query_params)
        record = RequestRecord(
            method=request.method,
            path=request.url.path,
            query=params,
            status=response.status_code,
            minorversion=params.get("minorversion"),
            requestid=params.get("requestid"),
            batch_items=exchange.batch_items,
            replayed=exchange.replayed,
            at=self._monotonic(),
        )
        with self.lock:
            self._requests.append(record)

    async def handle_v3(self, request: Request, realm_id: str, rest: str) -> Response:
        """Serve one `/v3/company/{realm}/...` request."""
        exchange = _Exchange()
        in_flight = self.limiter.enter(realm_id)
        with self.lock:
            self._stats.requests += 1
            self._stats.max_concurrent_seen = max(self._stats.max_concurrent_seen, in_flight)
        try:
            response = await self._serve(request, lambda: self._v3(request, realm_id, rest, exchange))
        finally:
            self.limiter.leave(realm_id)
        self._log(request, response, exchange)
        return response

    async def _v3(self, request: Request, realm_id: str, rest: str, exchange: _Exchange) -> Response:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        problem = self.tokens.check(token.strip() if scheme.lower() == "bearer" else None)
        if problem is not None:
            return self._unauthenticated(problem)
        if realm_id != self.realm_id:
            # A good token used on a company it was not granted for.
            return self._gateway(
                403,
                AUTHORIZATION_MESSAGE,
                f"Authorization Failure: the app is not authorized for company {realm_id}",
                "3100",
                "SERVICE",
            )
        parts = [part for part in rest.split("/") if part]
        is_batch = len(parts) == 1 and parts[0].lower() == "batch"
        if not self.limiter.admit(realm_id, is_batch=is_batch):
            return self._throttled()
        params = request.query_params
        try:
            _check_minor_version(params.get("minorversion"))
            request_id = params.get("requestid")
            is_write = request.method == "POST" and bool(parts) and parts[0].lower() != "query"
            if request_id is not None and is_write:
                limit = MAX_BATCH_REQUEST_ID if is_batch else MAX_REQUEST_ID
                if not request_id or len(request_id) > limit:
                    raise invalid_property("requestid", f"must be 1 to {limit} characters long")
            else:
                request_id = None
            body = await request.body()
        except QboError as error:
            return self._fault(error)
        with self.lock:
            if request_id is not None:
                stored = self._replays.get((realm_id, request_id))
                if stored is not None:
                    # Intuit: a repeated requestid gets the original answer; the work is not redone.
                    exchange.replayed = True
                    return Response(stored.body, status_code=stored.status, media_type=stored.media_type)
            try:
                response = self._dispatch(request.method, parts, params, body, exchange)
            except QboError as error:
                response = self._fault(error)
            if request_id is not None:
                self._replays[(realm_id, request_id)] = _Stored(
                    response.status_code, bytes(response.body), response.media_type or "application/json"
                )
            return response

    # --- the API proper (runs under the company lock) -----------------------------------------------------

    def _dispatch(self, method: str, parts: list[str], params: Any, body: bytes, exchange: _Exchange) -> Response:
        company = self.company
        if not parts:
            raise unsupported("No resource was named in the URL.")
        head = parts[0].lower()
        include = {word.strip().lower() for word in (params.get("include") or "").split(",")}
        allow_dup = "allowduplicatedocnum" in include
        if head == "query" and len(parts) == 1 and method in ("GET", "POST"):
            text = params.get("query") if method == "GET" else _text(body)
            if not text or not text.strip():
                raise QboError("4000", "Error parsing query", "QueryParserError: the query is empty")
            return self._ok({"QueryResponse": company.query(text)})
        if head == "batch" and len(parts) == 1 and method == "POST":
            return self._batch(_json_body(body), allow_dup, exchange)
        if head == "cdc" and len(parts) == 1 and method == "GET":
            return self._cdc(params)
        if head == "companyinfo" and method == "GET":
            if len(parts) != 2 or parts[1] != self.realm_id:
                raise not_found(f"CompanyInfo {parts[1] if len(parts) > 1 else ''} does not exist.")
            return self._ok({"CompanyInfo": copy.deepcopy(company.company_info)})
        if head == "preferences" and len(parts) == 1:
            if method == "GET":
                return self._ok({"Preferences": copy.deepcopy(company.preferences)})
            return self._ok({"Preferences": company.update_preferences(_json_body(body))})
        if head == "taxcode" and len(parts) == 2 and method == "GET":
            return self._ok({"TaxCode": company.read("TaxCode", parts[1])})
        entity = canonical_type(head, WRITABLE_TYPES)
        if entity is None:
            raise unsupported(f"Unsupported resource: {parts[0]}")
        if len(parts) == 2 and method == "GET":
            return self._ok({entity: company.read(entity, parts[1])})
        if len(parts) == 1 and method == "POST":
            operation = params.get("operation")
            if "void" in include and (operation or "update").lower() == "update":
                # QBO voids a SalesReceipt or Payment by a sparse update with `include=void`
                # (POST /salesreceipt?operation=update&include=void), as python-quickbooks sends it.
                operation = "void"
            result = company.write(entity, _json_body(body), operation=operation, allow_duplicate_docnum=allow_dup)
            self.webhooks.changed(entity, result, operation)
            return self._ok({entity: result})
        raise unsupported(f"Operation {method} /{'/'.join(parts)} is not supported.")

    def _ok(self, payload: JSON) -> Response:
        payload["time"] = self.company.response_time()
        return self._json(200, payload)

    def _batch(self, body: Any, allow_dup: bool, exchange: _Exchange) -> Response:
        if not isinstance(body, dict) or not isinstance(body.get("BatchItemRequest"), list):
            raise required_error("BatchItemRequest")
        items: list[Any] = body["BatchItemRequest"]
        exchange.batch_items = len(items)
        if len(items) > self.limits.batch_max_items:
            raise QboError(
                "2010",
                INVALID_PROPERTY_MESSAGE,
                f"Property Name:BatchItemRequest has {len(items)} items; "
                f"a batch may carry at most {self.limits.batch_max_items}",
                "BatchItemRequest",
            )
        seen: set[str] = set()
        for item in items:
            bid = item.get("bId") if isinstance(item, dict) else None
            if not isinstance(bid, str) or not bid:
                raise required_error("BatchItemRequest.bId")
            if bid in seen:
                raise invalid_property("BatchItemRequest.bId", f"is duplicated: {bid}")
            seen.add(bid)
        self._stats.batches += 1
        self._stats.batch_items += len(items)
        answers = [self._batch_item(item, allow_dup) for item in items]
        return self._ok({"BatchItemResponse": answers})

    def _batch_item(self, item: JSON, allow_dup: bool) -> JSON:
        bid = item["bId"]
        try:
            if "Query" in item:
                return {"bId": bid, "QueryResponse": self.company.query(str(item["Query"]))}
            keys = [key for key in item if key not in ("bId", "operation", "optionsData")]
            if len(keys) != 1:
                raise invalid_property("BatchItemRequest", "must carry exactly one entity or a Query")
            entity = canonical_type(keys[0], WRITABLE_TYPES)
            if entity is None:
                raise unsupported(f"Batch operations are not supported for {keys[0]}.")
            operation = str(item.get("operation") or "").lower()
            if operation not in BATCH_OPERATIONS:
                raise unsupported(f"Batch operation {item.get('operation')!r} is not supported.")
            result = self.company.write(entity, item[keys[0]], operation=operation, allow_duplicate_docnum=allow_dup)
            self.webhooks.changed(entity, result, operation)
            return {"bId": bid, entity: result}
        except QboError as error:
            return {"bId": bid, "Fault": error.fault()}

    def _cdc(self, params: Any) -> Response:
        entities = params.get("entities")
        changed_since = params.get("changedSince")
        if not entities:
            raise required_error("entities")
        if not changed_since:
            raise required_error("changedSince")
        try:
            since = parse_instant(changed_since)
        except ValueError as exc:
            raise invalid_property("changedSince", f"is not an ISO-8601 timestamp: {changed_since}") from exc
        names = [name.strip() for name in entities.split(",") if name.strip()]
        blocks = self.company.cdc(names, since)
        return self._ok({"CDCResponse": [{"QueryResponse": blocks}]})

    # --- OAuth 2 --------------------------------------------------------------------------------------------

    def _client_ok(self, request: Request) -> bool:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        client_id, _, secret = decoded.partition(":")
        return secrets.compare_digest(client_id, self.client_id) and secrets.compare_digest(secret, self.client_secret)

    async def handle_token(self, request: Request) -> Response:
        """POST /oauth2/v1/tokens/bearer: authorization_code and refresh_token grants."""
        exchange = _Exchange()
        response = await self._serve(request, lambda: self._token(request))
        self._log(request, response, exchange)
        return response

    async def _token(self, request: Request) -> Response:
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if not self._client_ok(request):
            return self._json(401, {"error": "invalid_client"}, headers)
        form = _form(await request.body())
        grant = form.get("grant_type")
        if grant == "authorization_code":
            if not form.get("code") or not form.get("redirect_uri"):
                return self._json(400, {"error": "invalid_request"}, headers)
            issued = self.tokens.exchange(form["code"], form["redirect_uri"])
        elif grant == "refresh_token":
            if not form.get("refresh_token"):
                return self._json(400, {"error": "invalid_request"}, headers)
            issued = self.tokens.refresh(form["refresh_token"])
        else:
            return self._json(400, {"error": "unsupported_grant_type"}, headers)
        if issued is None:
            return self._json(400, {"error": "invalid_grant"}, headers)
        return self._json(200, issued, headers)

    def handle_userinfo(self, request: Request) -> Response:
        """GET /v1/openid_connect/userinfo: the connected user, for a valid bearer token."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        problem = self.tokens.check(token.strip() if scheme.lower() == "bearer" else None)
        if problem is not None:
            response = self._json(401, {"error": "invalid_token"}, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        else:
            with self.lock:
                email = self.company.company_info.get("Email", {}).get("Address", "sandbox@example.com")
            response = self._json(
                200,
                {
                    "sub": f"sandbox-user-{self.realm_id}",
                    "givenName": "Sandbox",
                    "familyName": "User",
                    "email": email,
                    "emailVerified": True,
                },
            )
        self._log(request, response, _Exchange())
        return response

    async def handle_revoke(self, request: Request) -> Response:
        """POST /v2/oauth2/tokens/revoke with {"token": ...}."""
        exchange = _Exchange()

        async def work() -> Response:
            if not self._client_ok(request):
                return self._json(401, {"error": "invalid_client"})
            raw = await request.body()
            try:
                token = json.loads(raw or b"{}").get("token")
            except (ValueError, AttributeError):
                token = _form(raw).get("token")
            if not token:
                return self._json(400, {"error": "invalid_request"})
            self.tokens.revoke(str(token))
            return Response(b"", status_code=200)

        response = await self._serve(request, work)
        self._log(request, response, exchange)
        return response

    async def handle_authorize_page(self, request: Request) -> Response:
        """GET /connect/oauth2: the consent page, one form with an Authorize button."""
        params = request.query_params
        problem = self._authorize_problem(dict(params))
        if problem:
            return Response(_page("Authorization error", f"<p>{html.escape(problem)}</p>"), 400, media_type="text/html")
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(params.get(name, ""))}">'
            for name in ("client_id", "redirect_uri", "response_type", "scope", "state")
        )
        body = (
            f"<p>Connect <strong>{html.escape(self.client_id[:12])}…</strong> to "
            f"<strong>{html.escape(self.company.company_info['CompanyName'])}</strong> "
            f"(realm {html.escape(self.realm_id)})?</p>"
            f"<p>Scopes: {html.escape(params.get('scope', ''))}</p>"
            f'<form method="post" action="/connect/oauth2">{hidden}'
            '<button type="submit" name="decision" value="allow">Authorize</button> '
            '<button type="submit" name="decision" value="deny">Cancel</button></form>'
        )
        response = Response(_page("Intuit sandbox – authorize", body), 200, media_type="text/html")
        self._log(request, response, _Exchange())
        return response

    async def handle_authorize_submit(self, request: Request) -> Response:
        """POST /connect/oauth2: the user's decision; redirects back with a one-time code."""
        form = _form(await request.body())
        problem = self._authorize_problem(form)
        if problem:
            response = Response(
                _page("Authorization error", f"<p>{html.escape(problem)}</p>"), 400, media_type="text/html"
            )
        else:
            redirect = form["redirect_uri"]
            if form.get("decision") == "deny":
                query = {"error": "access_denied", "state": form.get("state", "")}
            else:
                code = self.tokens.new_code(redirect)
                query = {"code": code, "state": form.get("state", ""), "realmId": self.realm_id}
            separator = "&" if "?" in redirect else "?"
            response = Response(b"", status_code=302, headers={"Location": f"{redirect}{separator}{urlencode(query)}"})
        self._log(request, response, _Exchange())
        return response

    def _authorize_problem(self, params: dict[str, str]) -> str | None:
        if params.get("client_id") != self.client_id:
            return "Unknown client_id."
        if params.get("response_type") != "code":
            return "response_type must be 'code'."
        redirect = params.get("redirect_uri", "")
        if not redirect.startswith(("http://", "https://")):
            return "redirect_uri must be an http(s) URL."
        return None

    # --- test hooks -----------------------------------------------------------------------------------------

    async def handle_add_fault(self, request: Request) -> Response:
        """POST /_sandbox/faults: arm a fault from JSON with the fields of `Fault`."""
        try:
            raw = json.loads(await request.body() or b"{}")
            fault = Fault(**raw)
        except (ValueError, TypeError) as exc:
            return self._json(400, {"error": str(exc)})
        self.inject(fault)
        return self._json(201, {"armed": fault.to_dict()})


def _check_minor_version(value: str | None) -> None:
    if value is None:
        return  # served at the base version, as QBO does
    if not value.isdigit() or int(value) < MIN_MINOR_VERSION:
        raise QboError(
            "2010",
            INVALID_PROPERTY_MESSAGE,
            f"minorversion {value} is no longer supported: minor versions 1-74 were discontinued; "
            f"use {MIN_MINOR_VERSION} or later",
            "minorversion",
        )


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise unsupported("The request body is not valid UTF-8.") from exc


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(_text(body) or "null", parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise QboError(
            "2010",
            INVALID_PROPERTY_MESSAGE,
            f"The request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
        ) from exc


def _form(body: bytes) -> dict[str, str]:
    parsed = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {key: values[-1] for key, values in parsed.items()}


def _page(title: str, body: str) -> bytes:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    ).encode()


def create_app(sandbox: QboSandbox) -> FastAPI:
    """Build the ASGI app serving `sandbox`."""
    app = FastAPI(title="QuickBooks Online sandbox", docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/_sandbox/faults")
    async def add_fault(request: Request) -> Response:
        return await sandbox.handle_add_fault(request)

    @app.get("/_sandbox/faults")
    async def list_faults() -> Response:
        return sandbox._json(200, {"faults": [fault.to_dict() for fault in sandbox.faults]})

    @app.delete("/_sandbox/faults")
    async def clear_faults() -> Response:
        return sandbox._json(200, {"cleared": sandbox.clear_faults()})

    @app.get("/_sandbox/state")
    async def state() -> Response:
        return sandbox._json(200, sandbox.summary())

    @app.post("/_sandbox/webhooks")
    async def configure_webhook(request: Request) -> Response:
        """The developer portal's webhook settings: {"url", "verifier_token", "shape"?, "entities"?}."""
        try:
            raw = json.loads(await request.body() or b"{}")
            endpoint = sandbox.webhooks.configure(
                str(raw["url"]),
                str(raw["verifier_token"]),
                shape=raw.get("shape", "cloudevents"),
                entities=raw.get("entities"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            return sandbox._json(400, {"error": str(exc)})
        return sandbox._json(201, {"url": endpoint.url, "shape": endpoint.shape})

    @app.post("/_sandbox/webhooks/flush")
    async def flush_webhooks() -> Response:
        # In a worker thread: the receiver may be served by this very process.
        posts = await asyncio.to_thread(sandbox.webhooks.flush)
        return sandbox._json(200, {"posts": [{"url": p.url, "status": p.status, "error": p.error} for p in posts]})

    async def discovery(request: Request) -> Response:
        return sandbox._json(200, sandbox.discovery(str(request.base_url)))

    for path in DISCOVERY_PATHS:
        # intuit-oauth asks with a trailing slash; an answer, not a redirect, for either spelling.
        app.add_api_route(path, discovery, methods=["GET"])
        app.add_api_route(f"{path}/", discovery, methods=["GET"])

    @app.get("/op/v1/jwks")
    async def jwks() -> Response:
        # The sandbox issues no id_token, so it has no signing keys to publish.
        return sandbox._json(200, {"keys": []})

    @app.get("/v1/openid_connect/userinfo")
    async def userinfo(request: Request) -> Response:
        return sandbox.handle_userinfo(request)

    @app.post("/oauth2/v1/tokens/bearer")
    async def token(request: Request) -> Response:
        return await sandbox.handle_token(request)

    @app.post("/v2/oauth2/tokens/revoke")
    async def revoke(request: Request) -> Response:
        return await sandbox.handle_revoke(request)

    @app.get("/connect/oauth2")
    async def authorize_page(request: Request) -> Response:
        return await sandbox.handle_authorize_page(request)

    @app.post("/connect/oauth2")
    async def authorize_submit(request: Request) -> Response:
        return await sandbox.handle_authorize_submit(request)

    @app.api_route("/v3/company/{realm_id}/{rest:path}", methods=["GET", "POST"])
    async def v3(request: Request, realm_id: str, rest: str) -> Response:
        return await sandbox.handle_v3(request, realm_id, rest)

    # Last, so outermost: it turns the `reset`/`timeout` faults' marker answers into dropped connections.
    app.add_middleware(ConnectionFaults)
    return app


def run_standalone(host: str, port: int, limits: QboLimits) -> None:
    """Serve a fresh sandbox until interrupted; first prints one JSON line with its credentials."""
    sandbox = QboSandbox(limits=limits)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit this on Linux; without it a keep-alive client waits ~40 ms per answer
    # (Nagle against delayed ACK, since uvicorn writes headers and body separately).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    shown_host = "127.0.0.1" if host in ("", "0.0.0.0") else host  # noqa: S104 - only naming the bind-all address
    base_url = f"http://{shown_host}:{sock.getsockname()[1]}"
    print(json.dumps(sandbox.credentials(base_url)), flush=True)
    config = uvicorn.Config(sandbox.app, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
