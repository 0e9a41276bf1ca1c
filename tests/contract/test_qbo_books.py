"""QboBooks against the QuickBooks Online sandbox over real HTTP: reads, creates, pushes, faults, tokens."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from ledgerlink.books.base import Operation, PushRequest, PushStatus, Tokens
from ledgerlink.books.qbo import QboBooks, QboConfig, WindowPacer, connect
from ledgerlink.books.qbo.client import NoPacer
from ledgerlink.domain.catalog import Catalog, CatalogQuery, MasterData, NewCustomer, NewItem
from ledgerlink.domain.documents import SHIPPING_ITEM_ID, DocLine, Document, DocumentKind, LineKind, Link, Ref
from ledgerlink.domain.errors import NeedsUserError
from ledgerlink.domain.order import Address
from ledgerlink.sandbox.qbo import Fault, QboLimits, QboSandbox
from ledgerlink.sandbox.server import RunningServer, serve

pytestmark = pytest.mark.contract

D = Decimal
TODAY = date(2025, 3, 4)


class MemoryTokens:
    """A TokenStore in memory: a lock and a Tokens value."""

    def __init__(self, tokens: Tokens) -> None:
        self.tokens = tokens
        self.lock = threading.Lock()

    def load(self) -> Tokens:
        with self.lock:
            return self.tokens

    def refresh(self, stale_access_token: str, do_refresh: Callable[[Tokens], Tokens]) -> Tokens:
        with self.lock:
            if self.tokens.access_token == stale_access_token:
                self.tokens = do_refresh(self.tokens)
            return self.tokens


@dataclass
class Env:
    sandbox: QboSandbox
    server: RunningServer
    books: QboBooks
    tokens: MemoryTokens
    creds: dict[str, str]

    def batches(self) -> int:
        return sum(1 for r in self.sandbox.requests if r.path.endswith("/batch"))


@pytest.fixture
def make_env() -> Iterator[Callable[..., Env]]:
    made: list[Env] = []

    def make(limits: QboLimits | None = None, pacer: Any = None, **config: Any) -> Env:
        sandbox = QboSandbox(limits=limits or QboLimits(enabled=False))
        server = serve(sandbox.app)
        creds = sandbox.credentials(server.base_url)
        store = MemoryTokens(
            Tokens(creds["access_token"], creds["refresh_token"], datetime.now(UTC) + timedelta(minutes=30))
        )
        settings = {
            "realm_id": creds["realm_id"],
            "client_id": creds["client_id"],
            "client_secret": creds["client_secret"],
            "api_base": creds["api_base"],
            "token_url": creds["token_url"],
            "authorize_url": creds["authorize_url"],
            "redirect_uri": creds["redirect_uri"],
            "throttle_wait": 0.05,
            "retry_backoff": 0.01,
            **config,
        }
        books = connect(QboConfig.model_validate(settings), store, pacer=pacer or NoPacer(), today=lambda: TODAY)
        env = Env(sandbox, server, books, store, creds)
        made.append(env)
        return env

    yield make
    for env in made:
        try:
            for record in env.sandbox.requests:
                if "/v3/" not in record.path:
                    continue  # the token endpoint
                assert record.minorversion is not None
                assert int(record.minorversion) >= 75
        finally:
            env.books.close()
            env.server.stop()


@pytest.fixture
def env(make_env: Callable[..., Env]) -> Env:
    return make_env()


WANTED = CatalogQuery(
    skus={"HAT-RED", "MUG-01"},
    item_names={"HAT-RED", "MUG-01", "Red Hat", "Shipping"},
    emails={"birds@intuit.com"},
    customer_names={"Cool Cars", "Nobody Here"},
)


def account_id(catalog: Catalog, name: str) -> str:
    return next(a.id for a in catalog.accounts.values() if a.name == name)


def sale(
    catalog: Catalog,
    kind: DocumentKind = DocumentKind.SALES_RECEIPT,
    number: str | None = None,
    **changes: Any,
) -> Document:
    """A sale of 2 mugs and a hat, a discount, shipping and pinned tax: 2×10.99 + 19.99 − 3 + 5 + 2.50."""
    mug = catalog.find_item("MUG-01", "")
    hat = catalog.find_item("HAT-RED", "")
    customer = catalog.find_customer("", "Cool Cars")
    assert mug
    assert hat
    assert customer
    number = number or f"T{uuid.uuid4().hex[:8].upper()}"
    fields: dict[str, Any] = {
        "role": {"Invoice": "invoice", "Estimate": "sales_order"}.get(str(kind), "receipt"),
        "kind": kind,
        "order_number": number,
        "doc_number": number,
        "txn_date": TODAY,
        "customer": Ref(key=f"customer:{customer.id}", name=customer.display_name, id=customer.id),
        "lines": (
            DocLine(
                kind=LineKind.ITEM,
                item=Ref(key="i", name=mug.name, id=mug.id),
                quantity=D(2),
                unit_price=D("10.99"),
                amount=D("21.98"),
                taxable=True,
            ),
            DocLine(
                kind=LineKind.ITEM,
                item=Ref(key="i", name=hat.name, id=hat.id),
                quantity=D(1),
                unit_price=D("19.99"),
                amount=D("19.99"),
                taxable=True,
            ),
            DocLine(
                kind=LineKind.DISCOUNT,
                amount=D("3.00"),
                description="Discount (SAVE3)",
                account=Ref(key="a", id=account_id(catalog, "Discounts given")),
            ),
            DocLine(
                kind=LineKind.SHIPPING,
                item=Ref(key="shipping", name="Shipping", id=SHIPPING_ITEM_ID),
                quantity=D(1),
                unit_price=D(5),
                amount=D(5),
            ),
        ),
        "tax_total": D("2.50"),
        "total": D("46.47"),
        "memo": f"Shopify order #{number}",
        "marker": f"k-{number}-{kind}",
        "shipping_address": Address(name="Grace Pariente", line1="1 Main St", city="Springfield", region="IL"),
    }
    if kind is DocumentKind.SALES_RECEIPT:
        fields["deposit_account"] = Ref(key="a", id=account_id(catalog, "Undeposited Funds"))
    if kind is DocumentKind.INVOICE:
        fields["ar_account"] = Ref(key="a", id=account_id(catalog, "Accounts Receivable (A/R)"))
    fields.update(changes)
    return Document.model_validate(fields)


def payment(catalog: Catalog, invoice: Document) -> Document:
    return invoice.model_copy(
        update={
            "role": "payment",
            "kind": DocumentKind.PAYMENT,
            "lines": (),
            "tax_total": None,
            "marker": f"k-{invoice.doc_number}-payment",
            "deposit_account": Ref(key="a", id=account_id(catalog, "Undeposited Funds")),
            "links": (Link(role="invoice", kind=DocumentKind.INVOICE, amount=invoice.total),),
        }
    )


def request(doc: Document, **changes: Any) -> PushRequest:
    return PushRequest(key=f"key:{doc.marker}", document=doc, **changes)


def test_catalog_reads_master_data_in_few_requests(env: Env) -> None:
    catalog = env.books.catalog(WANTED)
    assert catalog.company.books == "qbo"
    assert catalog.company.country == "US"
    assert catalog.company.allow_shipping_line
    assert catalog.company.automated_sales_tax
    assert not catalog.company.multicurrency
    assert any(a.name == "Undeposited Funds" for a in catalog.accounts.values())
    assert catalog.payment_methods
    assert catalog.tax_codes
    hat = catalog.find_item("HAT-RED", "")
    assert hat is not None
    assert hat.name == "Red Hat"
    assert catalog.find_item("", "Shipping") is not None
    assert catalog.find_customer("", "Cool Cars") is not None
    # One batch for the company, accounts and lists; one for the wanted items and customers.
    assert len(env.sandbox.requests) == 2
    again = env.books.catalog(CatalogQuery(skus={"TSHIRT-M"}), base=catalog)
    assert again.find_item("TSHIRT-M", "") is not None
    assert len(env.sandbox.requests) == 3


def test_catalog_finds_customers_by_email(env: Env) -> None:
    catalog = env.books.catalog(CatalogQuery(emails={"birds@intuit.com", "cool_cars@intuit.com"}))
    birds = catalog.find_customer("birds@intuit.com", "")
    assert birds is not None
    assert birds.display_name == "Amy's Bird Sanctuary"
    assert catalog.find_customer("cool_cars@intuit.com", "") is not None


def test_ensure_creates_customers_and_items_in_one_batch(env: Env) -> None:
    catalog = env.books.catalog(WANTED)
    before = env.batches()
    income = account_id(catalog, "Sales of Product Income")
    needs = MasterData(
        customers={
            "email:ann@example.com": NewCustomer(
                key="email:ann@example.com",
                display_name="Ann Lee",
                email="ann@example.com",
                given_name="Ann",
                billing_address=Address(line1="1 Main St", city="Springfield"),
            ),
            "name:shopify customer": NewCustomer(key="name:shopify customer", display_name="Shopify Customer"),
        },
        items={
            "sku:bag-1": NewItem(key="sku:bag-1", name="BAG-1", sku="BAG-1", income_account=income),
            "sku:inv-1": NewItem(
                key="sku:inv-1",
                name="INV-1",
                sku="INV-1",
                type="Inventory",
                income_account=income,
                asset_account=account_id(catalog, "Inventory Asset"),
                cogs_account=account_id(catalog, "Cost of Goods Sold"),
            ),
        },
    )
    grown, errors = env.books.ensure(needs, catalog)
    assert errors == {}
    assert env.batches() == before + 1
    ann = grown.find_customer("ann@example.com", "")
    assert ann is not None
    assert ann.display_name == "Ann Lee"
    assert grown.find_customer("", "Shopify Customer") is not None
    inv = grown.find_item("INV-1", "")
    assert inv is not None
    assert inv.type == "Inventory"
    stored = env.sandbox.entity("Item", inv.id)
    assert stored["InvStartDate"] == TODAY.isoformat()
    assert stored["TrackQtyOnHand"] is True
    assert grown.find_item("BAG-1", "") is not None


def test_ensure_binds_an_existing_name_or_disambiguates(env: Env) -> None:
    catalog = env.books.catalog(CatalogQuery())  # knows no customers: both creates hit 6240
    needs = MasterData(
        customers={
            "email:birds@intuit.com": NewCustomer(
                key="email:birds@intuit.com", display_name="Amy's Bird Sanctuary", email="birds@intuit.com"
            ),
            "email:other@example.com": NewCustomer(
                key="email:other@example.com", display_name="Cool Cars", email="other@example.com"
            ),
        }
    )
    grown, errors = env.books.ensure(needs, catalog)
    assert errors == {}
    birds = grown.find_customer("birds@intuit.com", "")
    seeded = next(c for c in env.sandbox.entities("Customer") if c["DisplayName"] == "Amy's Bird Sanctuary")
    assert birds is not None
    assert birds.id == seeded["Id"]
    other = grown.find_customer("other@example.com", "")
    assert other is not None
    assert other.display_name == "Cool Cars (other@example.com)"
    assert len([c for c in env.sandbox.entities("Customer") if c["DisplayName"].startswith("Amy's")]) == 1


def test_two_new_buyers_with_one_name_are_created_without_a_refusal(env: Env) -> None:
    catalog = env.books.catalog(CatalogQuery())
    needs = MasterData(
        customers={
            f"email:{email}": NewCustomer(key=f"email:{email}", display_name="Ann Lee", email=email)
            for email in ("ann@one.example", "ann@two.example")
        }
    )
    before = env.sandbox.stats.requests
    grown, errors = env.books.ensure(needs, catalog)
    assert errors == {}
    first, second = grown.find_customer("ann@one.example", ""), grown.find_customer("ann@two.example", "")
    assert first is not None
    assert second is not None
    assert (first.display_name, second.display_name) == ("Ann Lee", "Ann Lee (ann@two.example)")
    # One batch: no 6240 and no look-up by name for the second.
    assert env.sandbox.stats.requests - before == 1


def test_push_sales_receipt_posts_the_exact_total(env: Env) -> None:
    catalog = env.books.catalog(WANTED)
    doc = sale(catalog)
    (result,) = env.books.push([request(doc)])
    assert result.status is PushStatus.POSTED, result.error
    assert result.error == ""
    assert result.total == doc.total == D("46.47")
    stored = env.sandbox.entity("SalesReceipt", str(result.remote_id))
    assert stored["TotalAmt"] == doc.total
    assert stored["DocNumber"] == doc.doc_number
    assert f"[ledgerlink {doc.marker}]" in stored["PrivateNote"]
    assert stored["TxnTaxDetail"]["TotalTax"] == D("2.50")


def test_invoice_then_payment_settles_it(env: Env) -> None:
    catalog = env.books.catalog(WANTED)
    invoice = sale(catalog, DocumentKind.INVOICE)
    (posted,) = env.books.push([request(invoice)])
    assert posted.status is PushStatus.POSTED, posted.error
    assert posted.total == invoice.total
    pay = payment(catalog, invoice)
    (paid,) = env.books.push([request(pay, linked=(("invoice", str(posted.remote_id)),))])
    assert paid.status is PushStatus.POSTED, paid.error
    assert env.sandbox.entity("Invoice", str(posted.remote_id))["Balance"] == 0
    assert env.sandbox.entity("Payment", str(paid.remote_id))["TotalAmt"] == invoice.total


def test_payment_without_its_invoice_is_not_sent(env: Env) -> None:
    catalog = env.books.catalog(WANTED)
    pay = payment(catalog, sale(catalog, DocumentKind.INVOICE))
    (result,) = env.books.push([request(pay)])
    assert result.status is PushStatus.FAILED
    assert "not posted yet" in result.error
    assert env.sandbox.entities("Payment") == []


def test_estimate_then_linked_invoice(env: Env) -> None:
    catalog = env.books.catalog(WANTED)
    number = f"E{uuid.uuid4().hex[:6].upper()}"
    estimate = sale(catalog, DocumentKind.ESTIMATE, number=f"{number}-SO")
    (est,) = env.books.push([request(estimate)])
    assert est.status is PushStatus.POSTED, est.error
    invoice = sale(
        catalog, DocumentKind.INVOICE, number=number, links=(Link(role="sales_order", kind=DocumentKind.ESTIMATE),)
    )
    (inv,) = env.books.push([request(invoice, linked=(("sales_order", str(est.remote_id)),))])
    assert inv.status is PushStatus.POSTED, inv.error
    linked = env.sandbox.entity("Invoice", str(inv.remote_id))["LinkedTxn"]
    assert {"TxnId": est.remote_id, "TxnType": "Estimate"} in linked


def test_duplicate_number_binds_ours_and_refuses_a_stranger(env: Env) -> None:
    catalog = env.books.catalog(WANTED)
    ours = sale(catalog)
    (first,) = env.books.push([request(ours)])
    assert first.status is PushStatus.POSTED
    other = sale(catalog)
    # A different batch, so a different requestid: QuickBooks answers 6140 for our own document.
    second = env.books.push([request(other), request(ours)])
    assert second[0].status is PushStatus.POSTED
    assert second[1].status is PushStatus.POSTED
    assert second[1].bound_existing
    assert second[1].remote_id == first.remote_id
    assert [r["DocNumber"] for r in env.sandbox.entities("SalesReceipt")].count(ours.doc_number) == 1

    hat = catalog.find_item("HAT-RED", "")
    hat_id = hat.id if hat else ""
    stranger = env.books.client.post(
        "SalesReceipt",
        {
            "DocNumber": "X1001",
            "CustomerRef": {"value": str(ours.customer.id if ours.customer else "")},
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": D("46.47"),
                    "SalesItemLineDetail": {"ItemRef": {"value": hat_id}, "Qty": D(1), "UnitPrice": D("46.47")},
                }
            ],
        },
    )
    (refused,) = env.books.push([request(sale(catalog, number="X1001"))])
    assert refused.status is PushStatus.FAILED
    assert refused.error == (
        f"QuickBooks already has Sales Receipt X1001 (id {stranger['Id']}) that ledgerlink did not post; "
        "add a document-number prefix in Settings or remove it"
    )


def test_lost_answer_is_unknown_then_found_and_not_posted_twice(env: Env) -> None:
    catalog = env.books.catalog(WANTED)
    invoice = sale(catalog, DocumentKind.INVOICE)
    env.sandbox.inject(Fault(kind="lost_response", path_contains="batch"))
    (lost,) = env.books.push([request(invoice)])
    assert lost.status is PushStatus.UNKNOWN
    found = env.books.find(request(invoice))
    assert found is not None
    assert found.total == invoice.total
    assert env.books.find(request(sale(catalog, DocumentKind.INVOICE))) is None
    assert len(env.sandbox.entities("Invoice")) == 1

    pay = payment(catalog, invoice)
    env.sandbox.inject(Fault(kind="lost_response", path_contains="batch"))
    (lost_pay,) = env.books.push([request(pay, linked=(("invoice", found.remote_id),))])
    assert lost_pay.status is PushStatus.UNKNOWN
    found_pay = env.books.find(request(pay))
    assert found_pay is not None
    assert found_pay.total == invoice.total
    assert len(env.sandbox.entities("Payment")) == 1


def test_server_errors_on_a_batch_are_retried(env: Env) -> None:
    catalog = env.books.catalog(WANTED)
    env.sandbox.inject(Fault(kind="status", status=503, count=2, path_contains="batch"))
    (result,) = env.books.push([request(sale(catalog))])
    assert result.status is PushStatus.POSTED, result.error
    assert len(env.sandbox.entities("SalesReceipt")) == 1
    assert env.books.client.stats["retries"] == 2


def test_server_errors_that_last_ask_for_a_retry(env: Env) -> None:
    catalog = env.books.catalog(WANTED)
    env.sandbox.inject(Fault(kind="status", status=500, count=3, path_contains="batch"))
    (result,) = env.books.push([request(sale(catalog))])
    assert result.status is PushStatus.RETRY
    assert result.retry_after > 0


def test_throttled_requests_wait_and_go_through(env: Env) -> None:
    catalog = env.books.catalog(WANTED)
    env.sandbox.inject(Fault(kind="throttle", count=2, path_contains="batch"))
    (result,) = env.books.push([request(sale(catalog))])
    assert result.status is PushStatus.POSTED, result.error
    assert env.books.client.stats["throttled"] == 2


def _burst(env: Env, count: int) -> None:
    for _ in range(count):
        env.books.client.query("SELECT * FROM PaymentMethod")


def test_limits_without_pacing_bounce_off_429(make_env: Callable[..., Env]) -> None:
    limits = QboLimits(requests_per_minute=5, time_scale=120)  # five requests per half second
    env = make_env(limits=limits, throttle_wait=0.3)
    _burst(env, 12)
    assert env.sandbox.stats.throttled > 0
    assert env.books.client.stats["throttled"] == env.sandbox.stats.throttled


def test_pacer_keeps_under_the_limits(make_env: Callable[..., Env]) -> None:
    limits = QboLimits(requests_per_minute=5, batch_per_minute=2, time_scale=120)
    pacer = WindowPacer(requests_per_minute=5, batches_per_minute=2, minute=0.5)
    env = make_env(limits=limits, pacer=pacer)
    _burst(env, 12)
    env.books.catalog(WANTED)
    env.books.catalog(WANTED)
    assert env.sandbox.stats.throttled == 0
    assert env.books.client.stats["throttled"] == 0


def test_expired_access_token_is_refreshed_and_rotated(env: Env) -> None:
    env.books.catalog(CatalogQuery())
    env.sandbox.inject(Fault(kind="expire_tokens"))
    catalog = env.books.catalog(WANTED)
    assert catalog.find_item("HAT-RED", "") is not None
    assert env.tokens.tokens.refresh_token != env.creds["refresh_token"]
    assert env.tokens.tokens.access_token != env.creds["access_token"]
    env.sandbox.inject(Fault(kind="xml_401"))
    env.books.client.query("SELECT * FROM PaymentMethod")
    assert env.books.client.stats["refreshes"] == 2


def test_refused_refresh_token_asks_to_reconnect(env: Env) -> None:
    stale = env.tokens.tokens
    env.tokens.tokens = Tokens(stale.access_token, "not-a-refresh-token", stale.access_expires_at)
    env.sandbox.inject(Fault(kind="expire_tokens"))
    with pytest.raises(NeedsUserError, match="reconnect QuickBooks") as caught:
        env.books.catalog(WANTED)
    assert caught.value.action == "reconnect"


def test_void_and_update_use_id_and_sync_token(env: Env) -> None:
    catalog = env.books.catalog(WANTED)
    doc = sale(catalog, DocumentKind.INVOICE)
    (posted,) = env.books.push([request(doc)])
    (updated,) = env.books.push(
        [request(doc, operation=Operation.UPDATE, remote_id=posted.remote_id, sync_token=posted.sync_token)]
    )
    assert updated.status is PushStatus.POSTED, updated.error
    assert updated.sync_token != posted.sync_token
    (stale,) = env.books.push(
        [request(doc, operation=Operation.VOID, remote_id=posted.remote_id, sync_token=posted.sync_token)]
    )
    assert stale.status is PushStatus.RETRY
    assert stale.code == "5010"
    (voided,) = env.books.push(
        [request(doc, operation=Operation.VOID, remote_id=posted.remote_id, sync_token=updated.sync_token)]
    )
    assert voided.status is PushStatus.POSTED, voided.error
    assert env.sandbox.entity("Invoice", str(posted.remote_id))["TotalAmt"] == 0


def test_the_same_batch_sent_again_is_a_replay(env: Env) -> None:
    catalog = env.books.catalog(WANTED)
    doc = sale(catalog)
    (first,) = env.books.push([request(doc)])
    (again,) = env.books.push([request(doc)])
    assert again.status is PushStatus.POSTED
    assert again.remote_id == first.remote_id
    assert env.sandbox.requests[-1].replayed
    assert len(env.sandbox.entities("SalesReceipt")) == 1
