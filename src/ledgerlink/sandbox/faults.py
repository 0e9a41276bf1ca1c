"""Connection faults every sandbox can inject: a TCP reset, and an answer held past the client's read timeout.

A status or a 429 is an answer, and each sandbox writes it in its own wire format. These faults are the
*absence* of an answer, which an ASGI app cannot express by itself: uvicorn answers 500 for an app that
returns without one. So a sandbox answers with a marker (`drop_connection`), and `ConnectionFaults`, an ASGI
middleware outermost around the sandbox's app, turns the marker into the real thing on the socket: an RST
(`SO_LINGER` 0, then close), at once or after holding the request open.

The kinds, in every sandbox's `Fault` (QuickBooks Online, Shopify, ShipStation):

| kind | the work | what the client sees |
| --- | --- | --- |
| `reset` | not done | the connection reset, no HTTP answer |
| `reset_after_write` | done (committed) | the connection reset, no HTTP answer |
| `timeout` | not done | nothing for `delay_ms`, then a reset: a client with a shorter read timeout times out |
| `timeout_after_write` | done (committed) | the same, after the work |

A hold ends early when the client hangs up (its read timeout), so a long hold never keeps a server from
stopping.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Literal, get_args

from starlette.responses import Response

ConnectionFaultKind = Literal["reset", "reset_after_write", "timeout", "timeout_after_write"]
CONNECTION_FAULT_KINDS: frozenset[str] = frozenset(get_args(ConnectionFaultKind))
AFTER_WRITE_KINDS: frozenset[str] = frozenset({"reset_after_write", "timeout_after_write"})
# How long a `timeout` holds when the fault names no `delay_ms`: longer than any test client's read timeout.
DEFAULT_HOLD_MS = 30_000

# The marker: nginx's 444 ("no response") status and a header saying what to do with the connection.
DROP_STATUS = 444
DROP_HEADER = "x-ledgerlink-sandbox-drop"
_DROP_HEADER_BYTES = DROP_HEADER.encode()

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def is_connection_fault(kind: str) -> bool:
    """True for the kinds this module carries out (the others are HTTP answers of each sandbox)."""
    return kind in CONNECTION_FAULT_KINDS


def drop_connection(kind: str, delay_ms: int = 0) -> Response:
    """The marker answer for `kind`: `ConnectionFaults` resets the connection instead of sending it."""
    if not is_connection_fault(kind):
        raise ValueError(f"{kind!r} is not a connection fault; expected one of {sorted(CONNECTION_FAULT_KINDS)}")
    hold = 0 if kind.startswith("reset") else (delay_ms if delay_ms > 0 else DEFAULT_HOLD_MS)
    return Response(b"", status_code=DROP_STATUS, headers={DROP_HEADER: str(hold)})


async def around_work(kind: str, delay_ms: int, work: Callable[[], Awaitable[Response]]) -> Response:
    """Carry out a connection fault around `work`: before it (nothing done) or after it (done, answer lost)."""
    if kind in AFTER_WRITE_KINDS:
        await work()
    return drop_connection(kind, delay_ms)


class ConnectionFaults:
    """ASGI middleware: an answer marked by `drop_connection` becomes a reset connection, possibly after a hold.

    It must be the outermost layer that sees uvicorn's own `receive` (Starlette's `add_middleware` called last
    in `create_app`), because the socket is reached through it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        dropped = False

        async def guarded_send(message: Message) -> None:
            nonlocal dropped
            if dropped:
                return  # the rest of the marker answer goes nowhere
            if message["type"] == "http.response.start":
                hold_ms = _hold_of(message)
                if hold_ms is not None:
                    dropped = True
                    await _drop(receive, hold_ms)
                    return
            await send(message)

        await self.app(scope, receive, guarded_send)


def _hold_of(start: Message) -> int | None:
    if start.get("status") != DROP_STATUS:
        return None
    for name, value in start.get("headers", ()):
        if bytes(name).lower() == _DROP_HEADER_BYTES:
            return int(bytes(value).decode())
    return None


async def _drop(receive: Receive, hold_ms: int) -> None:
    """Hold the request `hold_ms` (unless the client gives up first), then reset the connection."""
    if hold_ms > 0:
        try:
            await asyncio.wait_for(_until_disconnected(receive), timeout=hold_ms / 1000)
            return  # the client hung up (its read timeout): nothing left to reset
        except TimeoutError:
            pass
    _reset(_transport_of(receive))
    # Let the server see the connection gone, so it does not try to answer 500 for an app that sent nothing.
    await _until_disconnected(receive)


async def _until_disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass  # a request body nobody read: drained and dropped


def _transport_of(receive: Receive) -> asyncio.Transport:
    # uvicorn's `receive` is a method of its request cycle, which holds the connection's transport; the ASGI
    # scope offers no way to reach the socket.
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if not isinstance(transport, asyncio.Transport):
        raise RuntimeError(
            "a connection fault needs the sandbox served by uvicorn (ledgerlink.sandbox.server.serve), "
            "with ConnectionFaults outermost around its app"
        )
    return transport


def _reset(transport: asyncio.Transport) -> None:
    """Close with an RST rather than a FIN: the client reads 'connection reset by peer'."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
