"""QuickBooks Online's per-company limits, shared by every worker through Redis.

Intuit throttles each company (realm): requests per minute, per second, batch requests per minute and
concurrent requests, answering 429 past any of them. One process pacing itself (`WindowPacer`) is not enough
once several workers post to the same company, so the windows live in Redis, keyed by realm, and are checked
and recorded by one Lua script (atomic across processes). The clock is Redis' own (`TIME`), so workers on
machines with skewed clocks still agree. A request that does not fit sleeps until it does: we pace instead of
bouncing off 429.

Concurrency is a semaphore with expiry (a sorted set of slots scored by when they lapse), taken in the same
atomic step as the windows and given back by `PacedTransport` once the answer is read, because the QBO
client's `Pacer` protocol has no "request finished" call. A slot of a worker killed mid-request lapses.

When Redis cannot be reached the pacer falls back to pacing this process alone (and logs it): a broker
restart must not stop the sync, and the QBO client still waits after any 429 it gets meanwhile.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import redis
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.backoff import NoBackoff
from redis.retry import Retry

from ledgerlink.books.base import Books
from ledgerlink.books.qbo.client import QBO_TIMEOUT, WindowPacer
from ledgerlink.config import Settings
from ledgerlink.http import new_client
from ledgerlink.store.crypto import SecretBox
from ledgerlink.store.db import Database
from ledgerlink.store.models import Connection
from ledgerlink.sync.connections import AdapterFactory
from ledgerlink.sync.tokens import DbTokenStore

log = logging.getLogger(__name__)

KEY_PREFIX = "ledgerlink:qbo"
# How long a concurrency slot outlives a worker killed while holding it. QBO's own request timeout is 120 s,
# but real requests take well under 30 s; a rare longer one lets one extra request in, never a flood.
SLOT_TTL = 30.0
SLOT_POLL = 0.004  # a freed slot is not announced; poll for one (jittered) this often
REDIS_RETRY_AFTER = 5.0  # after Redis failed, pace in-process this long before trying it again

# One atomic step for one request: the three windows and the concurrency slots of a realm.
# KEYS: per-second, per-minute, batch-per-minute windows (sorted sets of request stamps, µs), slots (sorted
# set of member → when it lapses, µs). ARGV: is_batch, member, (window length µs, limit) × 3, concurrent,
# slot ttl µs, slot poll µs.
# Returns 0 when the request was recorded and a slot taken, else the µs to wait before trying again.
_ACQUIRE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local is_batch = ARGV[1] == '1'
local wait = 0
for i = 1, 3 do
  if i < 3 or is_batch then
    local length = tonumber(ARGV[1 + 2 * i])
    local limit = tonumber(ARGV[2 + 2 * i])
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - length)
    if redis.call('ZCARD', KEYS[i]) >= limit then
      local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
      local w = tonumber(oldest[2]) + length - now
      if w > wait then wait = w end
    end
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
if redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[9]) then
  local poll = tonumber(ARGV[11])
  if poll > wait then wait = poll end
end
if wait > 0 then return math.ceil(wait) end
for i = 1, 3 do
  if i < 3 or is_batch then
    local length = tonumber(ARGV[1 + 2 * i])
    redis.call('ZADD', KEYS[i], now, ARGV[2])
    redis.call('PEXPIRE', KEYS[i], math.ceil(length / 1000) + 1000)
  end
end
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[10]), ARGV[2])
redis.call('PEXPIRE', KEYS[4], math.ceil(tonumber(ARGV[10]) / 1000) + 1000)
return 0
"""


class ScaleOutSettings(BaseSettings):
    """The scaled-out deployment's knobs (`LEDGERLINK_` prefix), beside `config.Settings`.

    `qbo_time_scale` compresses QuickBooks' clock for the sandboxes (as their `time_scale` does): pacing
    windows, the wait after a 429 and the retry backoff all shrink by it. Leave it at 1 against Intuit.
    """

    model_config = SettingsConfigDict(env_prefix="LEDGERLINK_", env_file=".env", extra="ignore")

    broker_url: str = ""
    redis_url: str = ""
    queue: str = "ledgerlink"  # the Celery queue tasks are sent to (a worker's default `--queues`)
    qbo_time_scale: float = 1.0
    qbo_concurrent: int = 10
    # How long "this job is already queued" is remembered when its message never starts (a lost broker).
    task_identity_ttl: float = 300.0
    # A running job's liveness key lapses this long after its worker stopped renewing it (killed).
    job_heartbeat_ttl: float = 15.0
    tick_seconds: float = 30.0
    # Redis only: an unacknowledged message (its worker was killed) is delivered again after this long.
    visibility_timeout: float = 3600.0

    @property
    def effective_redis_url(self) -> str:
        """`LEDGERLINK_REDIS_URL`, else the broker's URL when the broker is Redis; empty when neither."""
        if self.redis_url:
            return self.redis_url
        if self.broker_url.startswith(("redis://", "rediss://", "unix://")):
            return self.broker_url
        return ""


def redis_client(url: str) -> redis.Redis:
    """A Redis client that gives up fast: a pacer must notice a dead Redis at once and fall back."""
    return redis.Redis.from_url(
        url, socket_timeout=5.0, socket_connect_timeout=2.0, health_check_interval=30, retry=Retry(NoBackoff(), 1)
    )


class RedisPacer:
    """`Pacer` for one QuickBooks company, shared by every process that uses the same Redis and realm.

    `acquire` records the request in the windows and takes a concurrency slot in one atomic step, right
    before the request is sent (so what QuickBooks counts on arrival matches what we counted); `release`,
    called by `PacedTransport` once the answer is read, gives the slot back. `minute` is settable so tests run
    in compressed time; `margin` stretches the windows a little for the time a request spends in transit.
    """

    def __init__(
        self,
        client: redis.Redis,
        realm_id: str,
        *,
        requests_per_minute: int = 500,
        requests_per_second: int = 10,
        batches_per_minute: int = 40,
        concurrent: int = 10,
        minute: float = 60.0,
        margin: float = 0.05,
        slot_ttl: float = SLOT_TTL,
        sleep: Callable[[float], None] = time.sleep,
        prefix: str = KEY_PREFIX,
    ) -> None:
        self.redis = client
        self.realm_id = realm_id
        self.sleep = sleep
        stretch = 1.0 + margin
        self._keys = [f"{prefix}:{realm_id}:{name}" for name in ("second", "minute", "batch", "slots")]
        self._args: list[int] = []
        for length, limit in (
            (minute / 60.0 * stretch, requests_per_second),
            (minute * stretch, requests_per_minute),
            (minute * stretch, batches_per_minute),
        ):
            self._args += [round(length * 1_000_000), limit]
        self._args += [concurrent, round(slot_ttl * 1_000_000), round(SLOT_POLL * 1_000_000)]
        self._script = client.register_script(_ACQUIRE_LUA)
        self._fallback = WindowPacer(
            requests_per_minute=requests_per_minute,
            requests_per_second=requests_per_second,
            batches_per_minute=batches_per_minute,
            minute=minute,
            margin=margin,
            sleep=sleep,
        )
        self._held = threading.local()
        self._retry_redis_at = 0.0
        self.waited = 0.0
        self.degraded = False

    def acquire(self, is_batch: bool) -> None:
        """Wait until one more request (or batch) fits every window and a slot is free; take both."""
        self.release()  # a slot taken for a request that was never sent (the client gave up before it)
        member = uuid.uuid4().hex
        while True:
            if self.degraded and time.monotonic() < self._retry_redis_at:
                self._fallback.acquire(is_batch)
                return
            try:
                wait_us = int(self._script(keys=self._keys, args=[int(is_batch), member, *self._args]))
            except redis.RedisError as exc:
                self._degrade(exc)
                continue
            if self.degraded:
                log.info("Redis reachable again: pacing QuickBooks company %s across workers", self.realm_id)
                self.degraded = False
            if wait_us <= 0:
                self._held.member = member
                return
            wait = wait_us / 1_000_000 * (0.75 + random.random() / 2)  # noqa: S311 - jitter, not a secret
            self.waited += wait
            self.sleep(wait)

    def release(self) -> None:
        """Give back the slot this thread took in `acquire` (no-op when it holds none)."""
        member = getattr(self._held, "member", None)
        if member is None:
            return
        self._held.member = None
        if self.degraded:
            return  # the slot lapses by itself
        try:
            self.redis.zrem(self._keys[3], member)
        except redis.RedisError as exc:
            self._degrade(exc)

    def _degrade(self, exc: Exception) -> None:
        if not self.degraded:
            log.warning("Redis unreachable (%s): pacing QuickBooks company %s in this process only", exc, self.realm_id)
        self.degraded = True
        self._retry_redis_at = time.monotonic() + REDIS_RETRY_AFTER


class PacedTransport(httpx.BaseTransport):
    """Gives a company's concurrency slot back once its answer is read (token requests hold none).

    The QBO client's `Pacer` protocol has no "request finished" call, so the HTTP layer makes it.
    """

    def __init__(self, pacer: RedisPacer, inner: httpx.BaseTransport | None = None) -> None:
        self.pacer = pacer
        self.inner = inner or httpx.HTTPTransport()
        self._marker = f"/company/{pacer.realm_id}/"

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request`; for the company's API, read the whole answer, then release the slot."""
        if self._marker not in request.url.path:
            return self.inner.handle_request(request)
        try:
            response = self.inner.handle_request(request)
            try:
                content = response.read()
            finally:
                response.close()
        finally:
            self.pacer.release()
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            content=content,
            extensions=response.extensions,
            request=request,
        )

    def close(self) -> None:
        """Close the wrapped transport."""
        self.inner.close()


class PacedAdapterFactory(AdapterFactory):
    """`AdapterFactory` whose QuickBooks Online adapters pace through Redis, one set of windows per realm."""

    def __init__(
        self,
        db: Database,
        box: SecretBox,
        *,
        redis_url: str,
        concurrent: int = 10,
        minute: float = 60.0,
        **books_options: Any,
    ) -> None:
        super().__init__(db, box, **books_options)
        self.redis = redis_client(redis_url)
        self.concurrent = concurrent
        self.minute = minute

    def pacer(self, realm_id: str, config: Any) -> RedisPacer:
        """The shared pacer of one realm, with the limits of its connection's config."""
        return RedisPacer(
            self.redis,
            realm_id,
            requests_per_minute=config.requests_per_minute,
            requests_per_second=config.requests_per_second,
            batches_per_minute=config.batches_per_minute,
            concurrent=self.concurrent,
            minute=self.minute,
        )

    def books(self, conn: Connection) -> Books:
        """As `AdapterFactory.books`, with the realm's `RedisPacer` and a transport holding its slots."""
        if conn.kind != "qbo":
            return super().books(conn)
        from ledgerlink.books.qbo import QboConfig, connect

        secrets = self.box.open(conn.secrets)
        config = QboConfig.model_validate(
            {**conn.config, "client_secret": secrets.get("client_secret", ""), **self.books_options}
        )
        if not config.pace:
            return super().books(conn)
        pacer = self.pacer(config.realm_id, config)
        http = new_client(timeout=QBO_TIMEOUT, transport=PacedTransport(pacer))
        books = connect(config, DbTokenStore(self.db, self.box, conn.id), client=http, pacer=pacer)
        # The QBO client closes only an HTTP client it made itself; this one is its alone, so it closes it too.
        books.client._owns_http = True
        return books


def adapter_factory(settings: Settings, db: Database, box: SecretBox, **books_options: Any) -> AdapterFactory:
    """The composition root's adapter factory: shared pacing when Redis is configured, else per process."""
    scale = ScaleOutSettings(broker_url=settings.broker_url)
    if scale.qbo_time_scale != 1.0:
        books_options.setdefault("throttle_wait", 60.0 / scale.qbo_time_scale)
        books_options.setdefault("retry_backoff", 1.0 / scale.qbo_time_scale)
    url = scale.effective_redis_url
    if not url:
        return AdapterFactory(db, box, **books_options)
    return PacedAdapterFactory(
        db,
        box,
        redis_url=url,
        concurrent=scale.qbo_concurrent,
        minute=60.0 / scale.qbo_time_scale,
        **books_options,
    )
