"""Clients written for the real services, pointed at the sandboxes run standalone: the proof they speak the real APIs.

Each sandbox runs as its own process through the CLI (`ledgerlink sandbox qbo|shopify --port N`), and its one JSON
line on stdout is all the test reads to configure the clients:

- python-quickbooks with intuit-oauth against the QuickBooks Online sandbox. intuit-oauth's `AuthClient` takes the
  URL of an OpenID discovery document as its `environment` (Intuit's own documents are the named environments), so
  it finds the sandbox's token, revoke and userinfo endpoints there; `QuickBooks.api_url_v3` is the documented
  base URL attribute. oauthlib refuses plain-http URLs unless `OAUTHLIB_INSECURE_TRANSPORT` is set, which is its
  switch for exactly this case (a local server without TLS).
- ShopifyAPI against the Shopify sandbox: a `shopify.Session` for the shop, then `ShopifyResource.set_site(...)`
  to the sandbox's plain-http URL (a Session always builds `https://<shop>.myshopify.com`).

Nothing here patches a client's code; when a client failed, the sandbox was fixed.
"""

from __future__ import annotations

import json
import select
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyactiveresource.connection
import pytest
import shopify
from intuitlib.client import AuthClient
from intuitlib.exceptions import AuthClientError
from quickbooks import QuickBooks
from quickbooks.batch import batch_create
from quickbooks.exceptions import AuthorizationException, QuickbooksException, ValidationException
from quickbooks.objects.account import Account
from quickbooks.objects.base import Ref
from quickbooks.objects.company_info import CompanyInfo
from quickbooks.objects.customer import Customer
from quickbooks.objects.detailline import DiscountLine, DiscountLineDetail, SalesItemLine, SalesItemLineDetail
from quickbooks.objects.item import Item
from quickbooks.objects.salesreceipt import SalesReceipt

pytestmark = pytest.mark.contract

JSON = dict[str, Any]
MINOR_VERSION = 75
START_TIMEOUT = 20.0
QBO_KEYS = {
    "base_url",
    "api_base",
    "realm_id",
    "client_id",
    "client_secret",
    "access_token",
    "refresh_token",
    "token_url",
    "authorize_url",
    "revoke_url",
    "discovery_url",
    "redirect_uri",
}
SHOPIFY_KEYS = {"base_url", "shop", "access_token", "api_version", "webhook_secret"}


# --- the sandboxes as real processes -----------------------------------------------------------------------


class Standalone:
    """One `ledgerlink sandbox ...` process and the JSON line it printed on start."""

    def __init__(self, kind: str, extra: list[str], log: Path) -> None:
        self.port = _free_port()
        self.log = log
        self._stderr = log.open("wb")
        command = [sys.executable, "-m", "ledgerlink", "sandbox", kind, "--port", str(self.port), *extra]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self._stderr, text=True)  # noqa: S603
        self.line = self._first_line()
        self.creds: JSON = json.loads(self.line)
        _wait_until_listening(self.port, self.process)

    def _first_line(self) -> str:
        stdout = self.process.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], START_TIMEOUT)
        if not ready:
            self.stop()
            pytest.fail(f"the sandbox printed nothing within {START_TIMEOUT} s: {self.log.read_text()}")
        line = stdout.readline()
        if not line:
            self.stop()
            pytest.fail(f"the sandbox exited before printing its line: {self.log.read_text()}")
        return line

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._stderr.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_until_listening(port: int, process: subprocess.Popen[str]) -> None:
    """The QBO sandbox prints its line before uvicorn listens; wait for the port to take connections."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@pytest.fixture(scope="module")
def qbo_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Standalone]:
    # The throttles are the real ones (10 requests a second per realm); python-quickbooks does not pace itself,
    # so the rate-limit clock runs fast, through the CLI's own knob.
    log = tmp_path_factory.mktemp("qbo") / "stderr.log"
    sandbox = Standalone("qbo", ["--time-scale", "1000"], log)
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture(scope="module")
def shopify_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Standalone]:
    log = tmp_path_factory.mktemp("shopify") / "stderr.log"
    sandbox = Standalone("shopify", ["--orders", "120", "--seed", "11"], log)
    try:
        yield sandbox
    finally:
        sandbox.stop()


# --- python-quickbooks + intuit-oauth ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_oauth() -> Iterator[None]:
    """oauthlib's documented switch for an OAuth 2 server on plain http (the sandbox has no TLS)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
        yield


def auth_client(creds: JSON, **tokens: str | None) -> AuthClient:
    """intuit-oauth's client, with the sandbox's discovery document as its environment."""
    return AuthClient(
        client_id=creds["client_id"],
        client_secret=creds["client_secret"],
        redirect_uri=creds["redirect_uri"],
        environment=creds["discovery_url"],
        access_token=tokens.get("access_token", creds["access_token"]),
        refresh_token=tokens.get("refresh_token", creds["refresh_token"]),
        realm_id=creds["realm_id"],
    )


def quickbooks_client(creds: JSON, auth: AuthClient) -> QuickBooks:
    """python-quickbooks as its README builds it, with its base URL pointed at the sandbox."""
    client = QuickBooks(
        auth_client=auth,
        refresh_token=auth.refresh_token,
        company_id=creds["realm_id"],
        minorversion=MINOR_VERSION,
    )
    client.api_url_v3 = creds["api_base"]
    return client


@pytest.fixture
def qb(qbo_sandbox: Standalone, local_oauth: None) -> QuickBooks:
    creds = qbo_sandbox.creds
    return quickbooks_client(creds, auth_client(creds))


def unique(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


def new_customer(qb: QuickBooks) -> Customer:
    customer = Customer()
    customer.DisplayName = unique("PyQB")
    saved: Customer = customer.save(qb=qb)
    return saved


def item_line(amount: float, item: Ref, qty: float | None = None, price: float | None = None) -> SalesItemLine:
    line = SalesItemLine()
    line.Amount = amount
    line.SalesItemLineDetail = SalesItemLineDetail()
    line.SalesItemLineDetail.ItemRef = item
    if qty is not None and price is not None:
        line.SalesItemLineDetail.Qty = qty
        line.SalesItemLineDetail.UnitPrice = price
    return line


def shipping_line(amount: float) -> SalesItemLine:
    ref = Ref()
    ref.value = "SHIPPING_ITEM_ID"
    return item_line(amount, ref)


def discount_line(amount: float) -> DiscountLine:
    line = DiscountLine()
    line.Amount = amount
    line.DiscountLineDetail = DiscountLineDetail()
    line.DiscountLineDetail.PercentBased = False
    return line


def us_sales_receipt(customer: Customer, doc_number: str, lines: list[Any]) -> SalesReceipt:
    receipt = SalesReceipt()
    receipt.CustomerRef = customer.to_ref()
    receipt.DocNumber = doc_number
    receipt.Line = lines
    # python-quickbooks defaults GlobalTaxCalculation to "TaxExcluded"; the sandbox refuses it on a US company
    # (its own contract test pins that). See test_python_quickbooks_default_tax_calculation_on_us_company.
    receipt.GlobalTaxCalculation = None
    return receipt


def red_hat(qb: QuickBooks) -> Item:
    (hat,) = Item.filter(Name="Red Hat", qb=qb)
    return hat


def test_qbo_standalone_prints_one_json_line_with_what_a_client_needs(qbo_sandbox: Standalone) -> None:
    creds = qbo_sandbox.creds
    assert qbo_sandbox.line.endswith("\n")
    assert "\n" not in qbo_sandbox.line.rstrip("\n")
    assert set(creds) == QBO_KEYS
    base = creds["base_url"]
    assert base == f"http://127.0.0.1:{qbo_sandbox.port}"
    assert creds["api_base"] == f"{base}/v3"
    for key in ("token_url", "authorize_url", "revoke_url", "discovery_url"):
        assert creds[key].startswith(f"{base}/"), key
    assert creds["realm_id"].isdigit()
    assert all(creds[key] for key in QBO_KEYS)


def test_intuit_oauth_reads_the_sandbox_discovery_document(qbo_sandbox: Standalone, local_oauth: None) -> None:
    creds = qbo_sandbox.creds
    auth = auth_client(creds)
    assert auth.token_endpoint == creds["token_url"]
    assert auth.revoke_endpoint == creds["revoke_url"]
    assert auth.auth_endpoint == creds["authorize_url"]
    info = auth.get_user_info().json()
    assert info["sub"]
    assert info["email"]


def test_company_info_accounts_and_items(qb: QuickBooks, qbo_sandbox: Standalone) -> None:
    realm = qbo_sandbox.creds["realm_id"]
    info = CompanyInfo.get(realm, qb=qb)
    assert info.Id == realm or info.CompanyName
    assert info.CompanyName

    banks = Account.filter(AccountType="Bank", qb=qb)
    assert banks
    assert all(account.AccountType == "Bank" for account in banks)
    assert len(Account.all(qb=qb)) >= len(banks)

    items = Item.all(qb=qb)  # python-quickbooks asks for `SELECT *, Sku FROM Item`
    assert {"Red Hat", "Shipping"} <= {item.Name for item in items}
    assert red_hat(qb).Sku == "HAT-RED"
    inventory = Item.query("SELECT * FROM Item WHERE Type = 'Inventory' ORDERBY Name", qb=qb)
    assert inventory
    assert all(item.Type == "Inventory" for item in inventory)
    assert [item.Name for item in inventory] == sorted(item.Name for item in inventory)
    assert Item.where("Type = 'Service'", order_by="Name DESC", max_results=1, qb=qb)[0].Type == "Service"
    assert Item.count(qb=qb) == len(items)


def test_sales_receipt_create_read_sparse_update_and_void(qb: QuickBooks) -> None:
    customer = new_customer(qb)
    assert customer.Id
    assert customer.SyncToken == "0"
    hat = red_hat(qb)
    doc = f"PQ-{uuid.uuid4().hex[:8]}"
    receipt = us_sales_receipt(
        customer, doc, [item_line(40, hat.to_ref(), qty=2, price=20), discount_line(5), shipping_line(7.5)]
    )

    created = receipt.save(qb=qb)
    assert created.Id
    assert created.SyncToken == "0"
    assert created.TotalAmt == 42.5  # 40 - 5 + 7.50 shipping

    read = SalesReceipt.get(created.Id, qb=qb)
    assert read.DocNumber == doc
    assert read.CustomerRef.value == customer.Id
    kinds = [(line.DetailType, line.Amount) for line in read.Line]
    assert kinds == [
        ("SalesItemLineDetail", 40),
        ("DiscountLineDetail", 5),
        ("SalesItemLineDetail", 7.5),
        ("SubTotalLineDetail", 40),
    ]
    assert read.Line[0].SalesItemLineDetail["ItemRef"]["name"] == "Red Hat"
    assert read.Line[2].SalesItemLineDetail["ItemRef"]["value"] == "SHIPPING_ITEM_ID"
    assert read.MetaData["CreateTime"]

    read.PrivateNote = "paid at the market stall"
    read.sparse = True
    read.GlobalTaxCalculation = None
    updated = read.save(qb=qb)
    assert updated.SyncToken == "1"
    assert updated.PrivateNote == "paid at the market stall"
    assert updated.TotalAmt == 42.5

    answer = updated.void(qb=qb)  # POST salesreceipt?operation=update&include=void, a sparse body
    assert answer["SalesReceipt"]["Id"] == created.Id
    voided = SalesReceipt.get(created.Id, qb=qb)
    assert voided.TotalAmt == 0
    assert voided.PrivateNote.startswith("Voided")
    assert voided.SyncToken == "2"
    assert all(line.Amount == 0 for line in voided.Line)


def test_batch_create_reports_successes_and_faults(qb: QuickBooks) -> None:
    taken = new_customer(qb).DisplayName
    fresh = [Customer() for _ in range(3)]
    for customer in fresh:
        customer.DisplayName = unique("Batch")
    clash = Customer()
    clash.DisplayName = taken

    result = batch_create([*fresh, clash], qb=qb)

    assert sorted(c.DisplayName for c in result.successes) == sorted(c.DisplayName for c in fresh)
    assert len({c.Id for c in result.successes}) == 3
    (fault,) = result.faults
    assert fault.original_object is clash
    assert [error.code for error in fault.Error] == ["6240"]


def test_request_id_replay_returns_the_same_receipt(qb: QuickBooks) -> None:
    customer = new_customer(qb)
    hat = red_hat(qb)
    doc = f"RQ-{uuid.uuid4().hex[:8]}"
    request_id = uuid.uuid4().hex

    def receipt() -> SalesReceipt:
        return us_sales_receipt(customer, doc, [item_line(20, hat.to_ref(), qty=1, price=20)])

    first = receipt().save(qb=qb, request_id=request_id)
    again = receipt().save(qb=qb, request_id=request_id)
    assert again.Id == first.Id
    assert [r.Id for r in SalesReceipt.filter(DocNumber=doc, qb=qb)] == [first.Id]


def test_duplicate_doc_number_raises_code_6140(qb: QuickBooks) -> None:
    customer = new_customer(qb)
    hat = red_hat(qb)
    doc = f"DD-{uuid.uuid4().hex[:8]}"
    first = us_sales_receipt(customer, doc, [item_line(20, hat.to_ref(), qty=1, price=20)]).save(qb=qb)

    with pytest.raises(QuickbooksException) as raised:
        us_sales_receipt(customer, doc, [item_line(20, hat.to_ref(), qty=1, price=20)]).save(qb=qb)

    assert raised.value.error_code == 6140
    assert raised.value.message == "Duplicate Document Number Error"
    assert f"TxnId={first.Id}" in raised.value.detail


def test_token_refresh_and_revoke_through_intuit_oauth(qbo_sandbox: Standalone, local_oauth: None) -> None:
    creds = qbo_sandbox.creds
    auth = auth_client(creds)
    auth.refresh()
    first_refresh = auth.refresh_token
    auth.refresh()
    assert auth.refresh_token != first_refresh  # Intuit rotates refresh tokens
    assert auth.access_token != creds["access_token"]
    assert auth.expires_in > 0
    assert auth.x_refresh_token_expires_in > auth.expires_in

    fresh = quickbooks_client(creds, auth)
    assert CompanyInfo.get(creds["realm_id"], qb=fresh).CompanyName

    # A client built with no access token refreshes on construction, as python-quickbooks does.
    lazy = auth_client(creds, access_token=None, refresh_token=auth.refresh_token)
    lazy_client = quickbooks_client(creds, lazy)
    assert lazy.access_token
    assert lazy.access_token != auth.access_token
    assert CompanyInfo.get(creds["realm_id"], qb=lazy_client).CompanyName

    assert lazy.revoke(token=lazy.refresh_token) is True
    with pytest.raises(AuthClientError) as refused:
        lazy.refresh()
    assert refused.value.status_code == 400
    assert json.loads(refused.value.content) == {"error": "invalid_grant"}


def test_a_bad_access_token_raises_authorization_exception(qbo_sandbox: Standalone, local_oauth: None) -> None:
    creds = qbo_sandbox.creds
    client = quickbooks_client(creds, auth_client(creds, access_token="not-a-token"))
    with pytest.raises(AuthorizationException) as raised:
        CompanyInfo.get(creds["realm_id"], qb=client)
    assert raised.value.error_code == 401
    assert "AuthenticationFailed" in raised.value.detail


@pytest.mark.xfail(
    raises=ValidationException,
    strict=True,
    reason=(
        "open question: python-quickbooks sends GlobalTaxCalculation='TaxExcluded' by default, and its own "
        "integration tests save sales receipts that way against Intuit's (US) sandbox companies; the QBO sandbox "
        "refuses it for US companies, and test_qbo_sandbox.py::test_us_company_refuses_global_tax_calculation "
        "pins that refusal"
    ),
)
def test_python_quickbooks_default_tax_calculation_on_us_company(qb: QuickBooks) -> None:
    customer = new_customer(qb)
    receipt = SalesReceipt()
    receipt.CustomerRef = customer.to_ref()
    receipt.Line = [item_line(20, red_hat(qb).to_ref(), qty=1, price=20)]
    assert receipt.GlobalTaxCalculation == "TaxExcluded"
    assert receipt.save(qb=qb).TotalAmt == 20


# --- ShopifyAPI ----------------------------------------------------------------------------------------------


@pytest.fixture
def shop(shopify_sandbox: Standalone) -> Iterator[JSON]:
    """A ShopifyAPI session for the sandbox shop, its site pointed at the sandbox's own URL."""
    creds = shopify_sandbox.creds
    session = shopify.Session(creds["shop"], creds["api_version"], creds["access_token"])
    shopify.ShopifyResource.activate_session(session)
    shopify.ShopifyResource.set_site(f"{creds['base_url']}/admin/api/{creds['api_version']}")
    try:
        yield creds
    finally:
        shopify.ShopifyResource.clear_session()


def test_shopify_standalone_prints_one_json_line_with_what_a_client_needs(shopify_sandbox: Standalone) -> None:
    creds = shopify_sandbox.creds
    assert set(creds) == SHOPIFY_KEYS
    assert creds["base_url"] == f"http://127.0.0.1:{shopify_sandbox.port}"
    assert creds["shop"].endswith(".myshopify.com")
    assert creds["access_token"].startswith("shpat_")


def test_shopify_orders_page_by_cursor(shop: JSON) -> None:
    first = shopify.Order.find(limit=50)
    assert len(first) == 50
    assert first.has_next_page()
    assert not first.has_previous_page()
    assert "page_info=" in first.next_page_url

    seen = [order.id for order in first]
    page = first
    while page.has_next_page():
        page = page.next_page()
        assert 0 < len(page) <= 50
        assert page.has_previous_page()
        seen.extend(order.id for order in page)
    assert len(seen) == len(set(seen)) == shopify.Order.count()

    everything = shopify.Order.find(status="any", limit=250)
    assert not everything.has_next_page()
    assert len(everything) == shopify.Order.count(status="any") == 120
    assert set(seen) <= {order.id for order in everything}


def test_shopify_find_one_order_and_its_transactions(shop: JSON) -> None:
    (listed,) = shopify.Order.find(limit=1, financial_status="paid")
    order = shopify.Order.find(listed.id)
    assert order.id == listed.id
    assert order.name.startswith("#")
    assert isinstance(order.total_price, str)  # Shopify writes money as decimal strings
    assert order.line_items
    assert all(isinstance(item, shopify.LineItem) for item in order.line_items)

    transactions = order.transactions()
    assert transactions
    assert all(isinstance(t, shopify.Transaction) for t in transactions)
    assert {t.order_id for t in transactions} == {order.id}
    settled = [t for t in transactions if t.kind in {"sale", "capture"} and t.status == "success"]
    assert sum(float(t.amount) for t in settled) == pytest.approx(float(order.total_price))
    assert [t.id for t in shopify.Transaction.find(order_id=order.id)] == [t.id for t in transactions]

    narrow = shopify.Order.find(order.id, fields="id,name")
    assert set(narrow.attributes) == {"id", "name"}


def test_shopify_errors_surface_as_activeresource_exceptions(shop: JSON, shopify_sandbox: Standalone) -> None:
    with pytest.raises(pyactiveresource.connection.ResourceNotFound):
        shopify.Order.find(1)
    creds = shopify_sandbox.creds
    with shopify.Session.temp(creds["shop"], creds["api_version"], "shpat_wrong"):
        shopify.ShopifyResource.set_site(f"{creds['base_url']}/admin/api/{creds['api_version']}")
        with pytest.raises(pyactiveresource.connection.UnauthorizedAccess):
            shopify.Order.find(limit=1)
