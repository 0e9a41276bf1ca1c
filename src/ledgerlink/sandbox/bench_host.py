"""The benchmark's sandboxes, served from a child process.

The engine under test and the sandboxes must not share one interpreter: they would share the GIL (the
sandbox's CPU would count as the engine's) and one heap (the orders and documents the sandbox stores would
show in the engine's memory curve). So `SandboxHost` starts a child process that serves `companies` QuickBooks
Online companies (one realm each, dispatched on the realm in the path) and as many Shopify shops (dispatched
on the access token), and answers a few commands over a pipe: counters, and orders arriving over time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import IO, Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]

REALM_BASE = 9_130_355_000_000_000
SHOP_TOKEN = "shpat_bench_{index:04d}"


@dataclass(frozen=True, slots=True)
class HostSpec:
    """What the child serves: `companies` realms and shops, each shop with `orders` generated orders."""

    companies: int = 1
    orders: int = 0
    seed: int = 5
    time_scale: float = 1.0
    shop_time_scale: float = 1.0
    limits: bool = True
    # Real QBO answers in hundreds of milliseconds, the sandbox in a few: this (real) latency, time-scaled,
    # is added to every QBO request, so a client sending one request after another is not flattered.
    latency_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Credentials of one company's two sandboxes, as `QboSandbox.credentials` / `ShopifySandbox.credentials`."""

    qbo: dict[str, str]
    shop: dict[str, str]


class Dispatch:
    """One ASGI app in front of many: the key function picks the app for a request (else the first)."""

    def __init__(self, apps: dict[str, Asgi], key: Callable[[Scope], str]) -> None:
        self.apps = apps
        self.key = key
        self.first = next(iter(apps.values()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self.apps.get(self.key(scope), self.first) if scope.get("type") == "http" else self.first
        await app(scope, receive, send)


def realm_of(scope: Scope) -> str:
    """The realm of a `/v3/company/{realm}/…` path ('' for the OAuth and sandbox paths)."""
    parts = str(scope.get("path", "")).split("/")
    return parts[3] if len(parts) > 3 and parts[1] == "v3" and parts[2] == "company" else ""


def shop_token_of(scope: Scope) -> str:
    """The `X-Shopify-Access-Token` of a request ('' when absent)."""
    for name, value in scope.get("headers", []):
        if name == b"x-shopify-access-token":
            return bytes(value).decode("latin-1")
    return ""


class SandboxHost:
    """Sandboxes in a child process; `endpoints[i]` is company i's. Use as a context manager."""

    def __init__(self, spec: HostSpec) -> None:
        # A fresh interpreter (not multiprocessing): it imports nothing of the parent's, whatever `__main__` is.
        self._process = subprocess.Popen(  # noqa: S603 - our own module, no shell
            [sys.executable, "-m", "ledgerlink.sandbox.bench_host", json.dumps(asdict(spec))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.pid = self._process.pid
        self._lock = threading.Lock()
        first = self._read()
        self.endpoints: list[Endpoints] = [Endpoints(qbo=q, shop=s) for q, s in first]

    def _read(self) -> Any:
        stdout = self._process.stdout
        line = stdout.readline() if stdout is not None else ""
        if not line:
            raise RuntimeError("the sandbox host stopped (see its output above)")
        return json.loads(line)

    def call(self, command: str, *args: Any) -> Any:
        """Send one command to the child and return its answer (an exception there is raised here)."""
        with self._lock:
            stdin = self._process.stdin
            if stdin is None:
                raise RuntimeError("the sandbox host has no input")
            stdin.write(json.dumps([command, list(args)]) + "\n")
            stdin.flush()
            ok, answer = self._read()
        if not ok:
            raise RuntimeError(f"sandbox host: {command} failed: {answer}")
        return answer

    def stats(self) -> dict[str, int]:
        """The QBO sandboxes' counters summed over every realm (requests, batches, batch_items, throttled, …)."""
        found: dict[str, int] = self.call("stats")
        return found

    def close(self) -> None:
        """Stop the child."""
        if self._process.poll() is None:
            try:
                self.call("stop")
                self._process.wait(10)
            except (OSError, RuntimeError, ValueError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait(10)
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None:
                stream.close()

    def __enter__(self) -> SandboxHost:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


# -- the child ---------------------------------------------------------------------------------------------------


def _main(spec: HostSpec, commands: IO[str], answers: IO[str]) -> None:
    from ledgerlink.sandbox.qbo import Fault, QboLimits, QboSandbox
    from ledgerlink.sandbox.server import serve
    from ledgerlink.sandbox.shopify import ShopifySandbox, generate_orders

    limits = QboLimits(time_scale=spec.time_scale, enabled=spec.limits)
    qbos = [QboSandbox(limits=limits, realm_id=str(REALM_BASE + i)) for i in range(spec.companies)]
    delay = round(spec.latency_ms / spec.time_scale)
    if delay > 0:
        for sandbox in qbos:
            sandbox.inject(Fault(kind="latency", count=10**12, path_contains="/v3/company/", delay_ms=delay))
    shops = [
        ShopifySandbox(
            shop=f"bench-{i:04d}.myshopify.com",
            access_token=SHOP_TOKEN.format(index=i),
            time_scale=spec.shop_time_scale,
        )
        for i in range(spec.companies)
    ]
    for index, shop in enumerate(shops):
        if spec.orders:
            shop.add_orders(generate_orders(spec.orders, seed=spec.seed + index))
    qbo_app = Dispatch({q.realm_id: q.app for q in qbos}, realm_of)
    shop_app = Dispatch({s.access_token: s.app for s in shops}, shop_token_of)
    arrivals: list[tuple[str, float]] = []
    arriving: list[threading.Thread] = []
    with serve(qbo_app) as qbo_server, serve(shop_app) as shop_server:

        def answer(payload: Any) -> None:
            answers.write(json.dumps(payload) + "\n")
            answers.flush()

        answer(
            [
                (q.credentials(qbo_server.base_url), s.credentials(shop_server.base_url))
                for q, s in zip(qbos, shops, strict=True)
            ]
        )
        for line in commands:
            command, args = json.loads(line)
            try:
                if command == "stop":
                    answer((True, None))
                    return
                if command == "stats":
                    totals: dict[str, int] = {}
                    for sandbox in qbos:
                        for key, value in sandbox.stats.to_dict().items():
                            totals[key] = (
                                max(totals.get(key, 0), value)
                                if key.startswith("max")
                                else (totals.get(key, 0) + value)
                            )
                    answer((True, totals))
                elif command == "arrive":
                    rate, count, seed = args
                    thread = threading.Thread(
                        target=_arrive, args=(shops[0], float(rate), int(count), int(seed), arrivals), daemon=True
                    )
                    thread.start()
                    arriving.append(thread)
                    answer((True, None))
                elif command == "arrivals":
                    answer((True, list(arrivals)))
                elif command == "arriving":
                    answer((True, any(t.is_alive() for t in arriving)))
                else:
                    answer((False, f"unknown command {command!r}"))
            except Exception as exc:  # reported to the parent, which raises it
                answer((False, repr(exc)))


def _arrive(shop: Any, rate: float, count: int, seed: int, arrivals: list[tuple[str, float]]) -> None:
    """Add `count` paid orders to `shop`, `rate` a (wall) second, each stamped with the moment it arrives."""
    from ledgerlink.sandbox.shopify import generate_orders

    orders = [o for o in generate_orders(count * 3, seed=seed) if o.get("financial_status") == "paid"][:count]
    started = time.monotonic()
    for index, order in enumerate(orders):
        due = started + index / rate
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        now = datetime.now(UTC)
        stamp = now.isoformat(timespec="seconds")
        order = {**order, "created_at": stamp, "processed_at": stamp, "updated_at": stamp, "refunds": []}
        shop.add_orders([order])
        arrivals.append((str(order["id"]), now.timestamp()))


if __name__ == "__main__":
    _main(HostSpec(**json.loads(sys.argv[1])), sys.stdin, sys.stdout)
