"""The naive client: what a developer writes with python-quickbooks, against the same sandbox and limits.

Per order: one customer lookup (by display name), one item lookup per line (and per shipping line), a create
for each that is missing, one SalesReceipt create. No batching, no pacing, no requestid; a 429 is handled as
python-quickbooks users do, by sleeping Intuit's advised 60 seconds (scaled) and trying again. It posts the
same orders the engine posts (the default filter: paid, partially refunded, refunded; not cancelled), from
the generated orders directly: its Shopify pull is left out, which only flatters it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ledgerlink.sandbox.bench_common import real_minutes
from ledgerlink.sandbox.bench_host import HostSpec, SandboxHost
from ledgerlink.sandbox.shopify import generate_orders

POSTED_STATUSES = frozenset({"paid", "partially_refunded", "refunded"})
_T = TypeVar("_T")


def postable(raw: dict[str, Any]) -> bool:
    """True for an order the engine's default filter posts."""
    return raw.get("financial_status") in POSTED_STATUSES and not raw.get("cancelled_at")


class NaiveClient:
    """python-quickbooks, used the straightforward way."""

    def __init__(self, creds: dict[str, str], time_scale: float) -> None:
        from intuitlib.client import AuthClient  # type: ignore[import-untyped]
        from quickbooks import QuickBooks  # type: ignore[import-untyped]

        # requests-oauthlib refuses plain http; the sandbox is on 127.0.0.1 (this process only, as tests do).
        os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")
        api = creds["api_base"].rstrip("/")
        # intuitlib reads Intuit's discovery document; the sandbox serves its own (an environment may be a URL).
        discovery = api.removesuffix("/v3") + "/.well-known/openid_sandbox_configuration"
        auth = AuthClient(
            creds["client_id"],
            creds["client_secret"],
            creds["redirect_uri"],
            discovery,
            access_token=creds["access_token"],
            refresh_token=creds["refresh_token"],
        )
        self.qb = QuickBooks(
            auth_client=auth, refresh_token=creds["refresh_token"], company_id=creds["realm_id"], minorversion=75
        )
        self.qb.sandbox_api_url_v3 = self.qb.api_url_v3 = api
        self.throttle_wait = 60.0 / time_scale
        self.throttled = 0
        self.failed = 0
        self.income_ref: Any = None

    def _call(self, action: Callable[[], _T]) -> _T:
        from quickbooks.exceptions import QuickbooksException  # type: ignore[import-untyped]

        while True:
            try:
                return action()
            except QuickbooksException as exc:
                text = f"{exc.message} {exc.detail}"
                if exc.error_code in (3001, 429) or "ThrottleExceeded" in text or "429" in text:
                    self.throttled += 1
                    time.sleep(self.throttle_wait)
                    continue
                raise

    def start(self) -> None:
        """Read an income account for the items it creates (once)."""
        from quickbooks.objects.account import Account  # type: ignore[import-untyped]

        accounts = self._call(lambda: Account.filter(AccountType="Income", qb=self.qb))
        self.income_ref = accounts[0].to_ref()

    def customer(self, raw: dict[str, Any]) -> Any:
        from quickbooks.objects.base import EmailAddress  # type: ignore[import-untyped]
        from quickbooks.objects.customer import Customer  # type: ignore[import-untyped]

        person = raw.get("customer") or raw.get("billing_address") or {}
        name = f"{person.get('first_name') or ''} {person.get('last_name') or ''}".strip() or "Web Store"
        name = name.replace(":", " ")
        found = self._call(lambda: Customer.filter(DisplayName=name, qb=self.qb))
        if found:
            return found[0]
        customer = Customer()
        customer.DisplayName = name
        if raw.get("email"):
            customer.PrimaryEmailAddr = EmailAddress()
            customer.PrimaryEmailAddr.Address = raw["email"]
        return self._call(lambda: customer.save(qb=self.qb))

    def item(self, name: str) -> Any:
        from quickbooks.objects.item import Item  # type: ignore[import-untyped]

        name = name.replace(":", " ")[:100]
        found = self._call(lambda: Item.filter(Name=name, qb=self.qb))
        if found:
            return found[0]
        item = Item()
        item.Name = name
        item.Type = "NonInventory"
        item.IncomeAccountRef = self.income_ref
        return self._call(lambda: item.save(qb=self.qb))

    def post(self, raw: dict[str, Any]) -> None:
        """One order: lookups, creates, one SalesReceipt."""
        from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail  # type: ignore[import-untyped]
        from quickbooks.objects.salesreceipt import SalesReceipt  # type: ignore[import-untyped]

        customer = self.customer(raw)
        lines = []
        wanted = [
            (str(li.get("sku") or li.get("title") or "item"), float(li.get("price") or 0), int(li.get("quantity") or 1))
            for li in raw.get("line_items", [])
        ]
        wanted += [("Shipping", float(s.get("price") or 0), 1) for s in raw.get("shipping_lines", [])]
        for name, price, quantity in wanted:
            item = self.item(name)
            line = SalesItemLine()
            line.Amount = round(price * quantity, 2)
            line.SalesItemLineDetail = SalesItemLineDetail()
            line.SalesItemLineDetail.ItemRef = item.to_ref()
            line.SalesItemLineDetail.Qty = quantity
            line.SalesItemLineDetail.UnitPrice = price
            lines.append(line)
        receipt = SalesReceipt()
        receipt.DocNumber = f"N{raw['order_number']}"
        receipt.TxnDate = str(raw.get("created_at", ""))[:10]
        receipt.CustomerRef = customer.to_ref()
        receipt.Line = lines
        # python-quickbooks defaults this to "TaxExcluded", which QBO refuses for US companies (error 2010).
        receipt.GlobalTaxCalculation = None
        self._call(lambda: receipt.save(qb=self.qb))


def bench_naive(orders: int, time_scale: float, *, seed: int = 5, latency_ms: float = 0.0) -> dict[str, Any]:
    """Post the postable ones of `orders` generated orders with the naive client; figures in real-limit terms."""
    from quickbooks.exceptions import QuickbooksException

    todo = [raw for raw in generate_orders(orders, seed=seed) if postable(raw)]
    spec = HostSpec(companies=1, time_scale=time_scale, shop_time_scale=time_scale, latency_ms=latency_ms)
    with SandboxHost(spec) as host:
        client = NaiveClient(host.endpoints[0].qbo, time_scale)
        before = host.stats()
        started = time.perf_counter()
        client.start()
        posted = 0
        for raw in todo:
            try:
                client.post(raw)
                posted += 1
            except QuickbooksException:
                client.failed += 1
        wall = time.perf_counter() - started
        after = host.stats()
    stats = {k: after.get(k, 0) - before.get(k, 0) for k in after if not k.startswith("max")}
    minutes = real_minutes(wall, time_scale)
    rate = posted / minutes if minutes else 0.0
    return {
        "client": "python-quickbooks, one request per lookup/create, no batching, no pacing, 60 s sleep on 429",
        "orders": orders,
        "orders_posted": posted,
        "orders_failed": client.failed,
        "qbo_latency_ms": latency_ms,
        "time_scale": time_scale,
        "wall_seconds": round(wall, 2),
        "real_minutes": round(minutes, 2),
        "orders_per_minute": round(rate, 1),
        "requests": stats.get("requests", 0),
        "requests_per_order": round(stats.get("requests", 0) / max(posted, 1), 3),
        "throttled_429": stats.get("throttled", 0),
        "minutes_per_10000_orders": round(10000 * posted / max(len(todo), 1) / rate, 1) if rate else None,
    }
