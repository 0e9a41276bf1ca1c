"""Webhooks of the QBO sandbox: entity changes, signed with the app's verifier token, in either payload shape.

Intuit configures webhooks in the developer portal (an endpoint and the entities to watch) and shows a
*verifier token*; every POST carries `intuit-signature` = base64(HMAC-SHA256(raw body, verifier token)).
Notifications carry ids only, are aggregated, best-effort and unordered. Two shapes:

- legacy: `{"eventNotifications": [{"realmId", "dataChangeEvent": {"entities": [{"name", "id", "operation",
  "lastUpdated"}]}}]}`;
- CloudEvents (mandatory from 2026): `[{"specversion": "1.0", "id", "source", "type": "qbo.invoice.created.v1",
  "time", "intuitentityid", "intuitaccountid", "data": {}}]`.

The sandbox records each change as it is written (`changed`, under the company lock, never blocking on the
network) and POSTs the aggregate on `flush()` — or every `interval` seconds from `start_worker()` — so a
client is never held up by its own webhook, as with Intuit. A failed POST keeps its batch for the next flush,
up to `max_attempts` tries.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

Shape = Literal["legacy", "cloudevents"]
DELIVERY_TIMEOUT = httpx.Timeout(10.0, connect=2.0)
VERBS = {
    "Create": "created",
    "Update": "updated",
    "Delete": "deleted",
    "Void": "voided",
    "Merge": "merged",
    "Emailed": "emailed",
}


def sign(body: bytes, verifier_token: str) -> str:
    """`intuit-signature`: base64 of the HMAC-SHA256 of the raw body with the verifier token."""
    return base64.b64encode(hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()).decode()


@dataclass(frozen=True, slots=True)
class Change:
    """One entity change: `operation` is Create, Update, Delete, Void, Merge or Emailed."""

    entity: str
    entity_id: str
    operation: str
    last_updated: str


@dataclass(slots=True)
class Endpoint:
    """A webhook endpoint as configured in the developer portal."""

    url: str
    verifier_token: str
    shape: Shape = "cloudevents"
    entities: frozenset[str] | None = None  # None: every entity

    def wants(self, change: Change) -> bool:
        return self.entities is None or change.entity in self.entities


@dataclass(slots=True)
class Post:
    """One POST made to an endpoint."""

    url: str
    shape: Shape
    body: bytes
    status: int | None
    error: str = ""
    changes: list[Change] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class QboWebhooks:
    """The webhook side of one sandbox company."""

    def __init__(self, realm_id: str, *, max_attempts: int = 4) -> None:
        self.realm_id = realm_id
        self.max_attempts = max_attempts
        self._lock = threading.Lock()
        self._endpoints: list[Endpoint] = []
        # Per endpoint: changes not yet delivered, with how many times their batch was tried.
        self._pending: dict[int, list[tuple[Change, int]]] = {}
        self.posts: list[Post] = []
        # How POSTs are sent: any httpx.Client (a Starlette TestClient reaches an in-process app).
        self.client: httpx.Client | None = None
        self._own_client: httpx.Client | None = None
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()

    def configure(
        self, url: str, verifier_token: str, *, shape: Shape = "cloudevents", entities: list[str] | None = None
    ) -> Endpoint:
        """Add an endpoint (the developer portal's webhook settings)."""
        if shape not in ("legacy", "cloudevents"):
            raise ValueError(f"unknown payload shape {shape!r}: legacy or cloudevents")
        endpoint = Endpoint(url, verifier_token, shape, frozenset(entities) if entities is not None else None)
        with self._lock:
            self._endpoints.append(endpoint)
            self._pending[id(endpoint)] = []
        return endpoint

    def clear(self) -> None:
        with self._lock:
            self._endpoints.clear()
            self._pending.clear()

    @property
    def endpoints(self) -> list[Endpoint]:
        with self._lock:
            return list(self._endpoints)

    def changed(self, entity: str, obj: dict[str, Any], operation: str | None) -> None:
        """Record a stored write (the object as answered); cheap, and a no-op without endpoints."""
        if not self._endpoints:
            return
        op = (operation or "").lower()
        if op == "delete":
            verb = "Delete"
        elif op == "void":
            verb = "Void"
        else:
            verb = "Create" if str(obj.get("SyncToken", "0")) == "0" else "Update"
        when = str((obj.get("MetaData") or {}).get("LastUpdatedTime") or datetime.now(UTC).isoformat())
        self.record(Change(entity, str(obj.get("Id", "")), verb, when))

    def record(self, change: Change) -> None:
        with self._lock:
            for endpoint in self._endpoints:
                if endpoint.wants(change):
                    self._pending[id(endpoint)].append((change, 0))

    @property
    def pending(self) -> int:
        with self._lock:
            return sum(len(rows) for rows in self._pending.values())

    def flush(self) -> list[Post]:
        """POST every pending change now, one aggregated notification per endpoint."""
        with self._lock:
            work = [(endpoint, self._pending[id(endpoint)]) for endpoint in self._endpoints]
            for endpoint in self._endpoints:
                self._pending[id(endpoint)] = []
        posts: list[Post] = []
        for endpoint, rows in work:
            if not rows:
                continue
            changes = [change for change, _ in rows]
            body = self.payload(endpoint.shape, changes)
            post = self._post(endpoint, body, changes)
            posts.append(post)
            if not post.ok:
                again = [(change, tries + 1) for change, tries in rows if tries + 1 < self.max_attempts]
                with self._lock:
                    if id(endpoint) in self._pending:
                        self._pending[id(endpoint)][:0] = again
        return posts

    def payload(self, shape: Shape, changes: list[Change]) -> bytes:
        """The body Intuit would send for these changes, in `shape`."""
        if shape == "legacy":
            entities = [
                {"name": c.entity, "id": c.entity_id, "operation": c.operation, "lastUpdated": c.last_updated}
                for c in changes
            ]
            document: Any = {
                "eventNotifications": [{"realmId": self.realm_id, "dataChangeEvent": {"entities": entities}}]
            }
        else:
            document = [
                {
                    "specversion": "1.0",
                    "id": str(uuid.uuid4()),
                    "source": "intuit.sandbox.ledgerlink",
                    "type": f"qbo.{c.entity.lower()}.{VERBS.get(c.operation, c.operation.lower())}.v1",
                    "datacontenttype": "application/json",
                    "time": c.last_updated,
                    "intuitentityid": c.entity_id,
                    "intuitaccountid": self.realm_id,
                    "data": {},
                }
                for c in changes
            ]
        return json.dumps(document, separators=(",", ":")).encode()

    def _post(self, endpoint: Endpoint, body: bytes, changes: list[Change]) -> Post:
        headers = {"Content-Type": "application/json", "intuit-signature": sign(body, endpoint.verifier_token)}
        status: int | None = None
        error = ""
        try:
            status = self._http().post(endpoint.url, content=body, headers=headers).status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        post = Post(endpoint.url, endpoint.shape, body, status, error, changes)
        with self._lock:
            self.posts.append(post)
        return post

    def _http(self) -> httpx.Client:
        if self.client is not None:
            return self.client
        if self._own_client is None:
            self._own_client = httpx.Client(timeout=DELIVERY_TIMEOUT)
        return self._own_client

    def start_worker(self, interval: float = 2.0) -> None:
        """Flush every `interval` seconds in a daemon thread until `close()` (the demo, a standalone sandbox)."""
        if self._worker is not None:
            return

        def loop() -> None:
            while not self._stop.wait(interval):
                self.flush()

        self._worker = threading.Thread(target=loop, name="qbo-sandbox-webhooks", daemon=True)
        self._worker.start()

    def close(self) -> None:
        self._stop.set()
        if self._worker is not None:
            self._worker.join(5.0)
            self._worker = None
        if self._own_client is not None:
            self._own_client.close()
            self._own_client = None
