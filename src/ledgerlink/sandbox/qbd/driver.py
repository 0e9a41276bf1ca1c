"""A QuickBooks Web Connector for tests, the demo and benchmarks: a real SOAP client (zeep) reading our WSDL.

It runs a session the way the Web Connector does: serverVersion, clientVersion, authenticate; then, until the
server answers 100 % (or hands back an empty request), sendRequestXML → give the qbXML to QuickBooks (here the
`QbdCompany` stand-in) → receiveResponseXML; getLastError after a negative answer; closeConnection. It can
also misbehave the ways a real one does:
  * `lose_response=n`: QuickBooks runs message set n but its answer never reaches the server (the Web
    Connector reports connectionError and ends the session);
  * `drop_request=n`: message set n never reaches QuickBooks (it could not start);
  * `crash=(n, k)`: QuickBooks stops after k requests of message set n and keeps no answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import requests
from zeep import Client, Settings
from zeep.transports import Transport

from ledgerlink.sandbox.qbd.company import QbdCompany, QbdParseError, QuickBooksCrashed

WEB_CONNECTOR_VERSION = "2.3.0.215"
COULD_NOT_START = ("0x80040408", "Could not start QuickBooks.")


@dataclass
class RoundTrip:
    """One sendRequestXML/receiveResponseXML pair: size, and where the time went."""

    requests: int
    server_seconds: float
    quickbooks_seconds: float
    progress: int


@dataclass
class SessionLog:
    """What one Web Connector session saw."""

    ticket: str = ""
    status: str = ""  # authenticate's second string: "" (work), "none", "nvu", or a company file path
    round_trips: list[RoundTrip] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lost: int = 0
    summary: str = ""
    seconds: float = 0.0

    @property
    def sets(self) -> int:
        return len(self.round_trips)

    @property
    def finished(self) -> bool:
        return bool(self.round_trips) and self.round_trips[-1].progress >= 100


class WebConnector:
    """A Web Connector bound to one company file and one application (user name, password)."""

    def __init__(
        self,
        wsdl_url: str,
        company: QbdCompany,
        *,
        user_name: str,
        password: str,
        company_file: str = r"C:\Users\Public\Documents\Intuit\QuickBooks\Company Files\Sandbox.qbw",
        timeout: float = 120.0,
        qbxml_version: tuple[int, int] = (13, 0),
    ) -> None:
        self.http = requests.Session()
        # zeep's constructors carry no annotations.
        transport = Transport(session=self.http, timeout=timeout, operation_timeout=timeout)  # type: ignore[no-untyped-call]
        self.client = Client(  # type: ignore[no-untyped-call]
            wsdl_url, transport=transport, settings=Settings(strict=True, xml_huge_tree=False)
        )
        self.service: Any = self.client.service
        self.company = company
        self.user_name = user_name
        self.password = password
        self.company_file = company_file
        self.qbxml_version = qbxml_version

    def run(
        self,
        *,
        password: str | None = None,
        lose_response: int | None = None,
        drop_request: int | None = None,
        crash: tuple[int, int] | None = None,
        max_sets: int = 100_000,
    ) -> SessionLog:
        """One session, start to end."""
        log = SessionLog()
        started = time.perf_counter()
        try:
            self._run(log, password, lose_response, drop_request, crash, max_sets)
        finally:
            log.seconds = time.perf_counter() - started
        return log

    def _run(
        self,
        log: SessionLog,
        password: str | None,
        lose_response: int | None,
        drop_request: int | None,
        crash: tuple[int, int] | None,
        max_sets: int,
    ) -> None:
        self.service.serverVersion()
        answer = str(self.service.clientVersion(WEB_CONNECTOR_VERSION) or "")
        if answer.startswith("E:"):
            log.errors.append(answer[2:])
            return
        strings = _strings(self.service.authenticate(self.user_name, self.password if password is None else password))
        log.ticket = strings[0] if strings else ""
        log.status = strings[1] if len(strings) > 1 else ""
        if log.status in ("nvu", "none"):
            return
        first = True
        major, minor = self.qbxml_version
        while log.sets < max_sets:
            mark = time.perf_counter()
            request = str(
                self.service.sendRequestXML(
                    log.ticket,
                    self.company.host_response() if first else "",
                    self.company_file,
                    self.company.country,
                    major,
                    minor,
                )
                or ""
            )
            server = time.perf_counter() - mark
            first = False
            if not request:
                if error := str(self.service.getLastError(log.ticket) or ""):
                    log.errors.append(error)
                break
            number = log.sets + 1
            if drop_request == number:
                self._lost(log, *COULD_NOT_START)
                return
            mark = time.perf_counter()
            try:
                response = self.company.process(request, crash_after=crash[1] if crash and crash[0] == number else None)
            except QbdParseError as exc:
                progress = int(self.service.receiveResponseXML(log.ticket, "", exc.hresult, exc.message))
                log.round_trips.append(RoundTrip(0, server, 0.0, progress))
                log.errors.append(str(self.service.getLastError(log.ticket) or ""))
                break
            except QuickBooksCrashed as exc:
                self._lost(log, "0x80040410", f"QuickBooks stopped: {exc}")
                return
            quickbooks = time.perf_counter() - mark
            if lose_response == number:
                self._lost(log, "0x8004040A", "The connection to the web service was lost.")
                return
            mark = time.perf_counter()
            progress = int(self.service.receiveResponseXML(log.ticket, response, "", ""))
            server += time.perf_counter() - mark
            log.round_trips.append(RoundTrip(request.count("requestID="), server, quickbooks, progress))
            if progress < 0:
                log.errors.append(str(self.service.getLastError(log.ticket) or ""))
                break
            if progress >= 100:
                break
        log.summary = str(self.service.closeConnection(log.ticket) or "")

    def _lost(self, log: SessionLog, hresult: str, message: str) -> None:
        log.lost += 1
        self.service.connectionError(log.ticket, hresult, message)
        log.summary = str(self.service.closeConnection(log.ticket) or "")

    def close(self) -> None:
        self.http.close()


def _strings(value: Any) -> list[str]:
    """zeep's reading of an ArrayOfString (a list, or an object with a `string` list)."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v or "") for v in value]
    inner = getattr(value, "string", None)
    if inner is not None:
        return [str(v or "") for v in inner]
    return [str(value)]
