"""A local, stateful QuickBooks Online (Accounting API v3) emulator speaking the real wire format.

`QboSandbox` holds one seeded company and serves it over HTTP (`sb.app`), with Intuit's throttles
(`QboLimits`) and injectable misbehaviour (`Fault`) so clients can be tested against what QBO really does.
"""

from __future__ import annotations

from ledgerlink.sandbox.qbo.app import DEFAULT_REALM_ID, QboSandbox, RequestRecord, create_app, run_standalone
from ledgerlink.sandbox.qbo.limits import Fault, QboLimits, SandboxStats
from ledgerlink.sandbox.qbo.state import QboError

__all__ = [
    "DEFAULT_REALM_ID",
    "Fault",
    "QboError",
    "QboLimits",
    "QboSandbox",
    "RequestRecord",
    "SandboxStats",
    "create_app",
    "run_standalone",
]
