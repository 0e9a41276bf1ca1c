"""`QbdBooks`: the `Books` port for QuickBooks Desktop, which ledgerlink never calls.

Desktop is *pulled*: the QuickBooks Web Connector on the merchant's PC calls our SOAP service on a schedule
and runs the qbXML we hand it (`sync/qbwc.py`). So this adapter answers from what the last Web Connector
session recorded (the `DesktopLedger` port, kept in the database by `sync/qbwc.py`):

* `catalog()` reads the lists cached from the company file (accounts, items, customers, tax codes, payment
  methods, classes), plus the customers and items queued to be added; empty before the first session.
* `ensure()` calls nothing: it queues the customer and item adds and returns a catalog in which the new
  records exist with their FullName as id, so planning resolves; qbXML refers to them by FullName and
  QuickBooks resolves them as it runs the message set in order.
* `push()` refuses: the engine leaves Desktop postings pending and the Web Connector collects them — creates
  as …Add, updates as …Mod (TxnID + EditSequence; a fulfilment's shipment-only update names the ship fields
  alone), voids as TxnVoid or TxnDel (`QbdConfig.remove_with`).
* `find()` looks a document up among the transactions QuickBooks reported back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from ledgerlink.books.base import PushRequest, PushResult, RemoteDoc
from ledgerlink.books.qbd.qbxml import MAX_CUSTOMER_NAME, MAX_ITEM_NAME, desktop_name, ref_number, txn_object
from ledgerlink.domain.catalog import (
    Account,
    Catalog,
    CatalogQuery,
    CompanyFacts,
    CustomerRecord,
    ItemRecord,
    MasterData,
    fold,
)
from ledgerlink.domain.errors import LedgerlinkError

DEFAULT_REQUESTS_PER_SET = 200
DEFAULT_TAX_ITEM = "Channel Sales Tax"


class QbdConfig(BaseModel):
    """A QuickBooks Desktop connection: who the Web Connector signs in as, and how big each round trip is."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    user_name: str = Field(min_length=1)
    owner_id: str = ""
    file_id: str = ""
    # Each Web Connector round trip must finish well inside its two-minute limit; QuickBooks runs roughly
    # 5-20 requests a second, so 200 requests is a safe default.
    requests_per_set: int = Field(default=DEFAULT_REQUESTS_PER_SET, ge=1, le=1000)
    page_size: int = Field(default=500, ge=10, le=5000, description="MaxReturned of list iterators")
    lists_max_age_hours: float = Field(default=24.0, ge=0)
    tax_item_name: str = Field(default=DEFAULT_TAX_ITEM, min_length=1, max_length=31)
    # How a document the order no longer has leaves the company file: voided (kept at zero, the audit trail
    # stays) or deleted. Sales orders and received payments cannot be voided through qbXML: always deleted.
    remove_with: Literal["void", "delete"] = "void"


@dataclass(frozen=True, slots=True)
class ListRecord:
    """One cached list entry of the company file. `list` is account, item, customer, sales_tax_code,
    item_sales_tax, class or payment_method; `kind` the account or item type; `special` the account's
    SpecialAccountType."""

    list: str
    list_id: str
    full_name: str
    kind: str = ""
    sku: str = ""
    email: str = ""
    special: str = ""


@dataclass(frozen=True, slots=True)
class QueuedRecord:
    """A customer or item to add on the next Web Connector session, under `name` (its FullName to be)."""

    kind: str  # "customer" | "item"
    key: str
    name: str
    body: dict[str, Any]
    alias: str = ""


@dataclass(frozen=True, slots=True)
class RecordedTxn:
    """A transaction QuickBooks reported (an add's answer, or a look-up)."""

    txn_type: str
    txn_id: str
    edit_sequence: str
    ref_number: str
    total: Decimal | None
    memo: str
    customer: str = ""


class DesktopLedger(Protocol):
    """What the Web Connector sessions recorded for one company file (implemented in `sync/qbwc.py`)."""

    def facts(self) -> CompanyFacts: ...

    def short_lists(self) -> list[ListRecord]:
        """Accounts, sales tax codes, payment methods and classes."""
        ...

    def matching(self, wanted: CatalogQuery) -> list[ListRecord]:
        """Cached items and customers matching the wanted SKUs, names and e-mails."""
        ...

    def queued(self) -> list[QueuedRecord]:
        """Customers and items queued and not yet in the cached lists."""
        ...

    def queue(self, records: Sequence[QueuedRecord]) -> None:
        """Queue adds; a name already queued is kept as it is."""
        ...

    def transactions(self, txn_type: str, ref_number: str) -> list[RecordedTxn]: ...


@dataclass
class QbdBooks:
    """The `Books` port on QuickBooks Desktop: reads and queues through the ledger, never calls out."""

    kind: ClassVar[str] = "qbd"

    config: QbdConfig
    ledger: DesktopLedger
    _base: Catalog | None = field(default=None, init=False, repr=False)

    def catalog(self, wanted: CatalogQuery, base: Catalog | None = None) -> Catalog:
        """The cached lists (read once per adapter), the wanted items and customers, and queued records."""
        start = base if base is not None and base.company.books == "qbd" else self._read_base()
        items: list[ItemRecord] = []
        customers: list[CustomerRecord] = []
        for row in self.ledger.matching(wanted):
            if row.list == "item":
                items.append(ItemRecord(id=row.list_id, name=row.full_name, sku=row.sku, type=row.kind))
            elif row.list == "customer":
                customers.append(CustomerRecord(id=row.list_id, display_name=row.full_name, email=row.email))
        grown = start.with_records(items=items, customers=customers)
        return _with_queued(grown, self.ledger.queued())

    def _read_base(self) -> Catalog:
        if self._base is not None:
            return self._base
        accounts: dict[str, Account] = {}
        tax_codes: dict[str, str] = {}
        payment_methods: dict[str, str] = {}
        classes: dict[str, str] = {}
        for row in self.ledger.short_lists():
            if row.list == "account":
                accounts[row.list_id] = Account(id=row.list_id, name=row.full_name, type=row.kind, subtype=row.special)
            elif row.list == "sales_tax_code":
                tax_codes[fold(row.full_name)] = row.list_id
            elif row.list == "payment_method":
                payment_methods[fold(row.full_name)] = row.list_id
            elif row.list == "class":
                classes[fold(row.full_name)] = row.list_id
        self._base = Catalog(
            company=self.ledger.facts(),
            accounts=accounts,
            tax_codes=tax_codes,
            payment_methods=payment_methods,
            classes=classes,
        )
        return self._base

    def ensure(self, needs: MasterData, catalog: Catalog) -> tuple[Catalog, dict[str, str]]:
        """Queue the missing customers and items for the next Web Connector session; nothing is called.

        Names are cut to Desktop's limits (customers 41, items 31); two needs that end up with one name share
        the record, as QuickBooks names are unique."""
        queued: list[QueuedRecord] = []
        names: dict[tuple[str, str], QueuedRecord] = {}
        for customer in needs.customers.values():
            if catalog.find_customer(customer.email, customer.display_name) is not None:
                continue
            name = desktop_name(customer.display_name, MAX_CUSTOMER_NAME)
            record = QueuedRecord(
                "customer", customer.key, name, customer.model_dump(mode="json"), alias=customer.display_name
            )
            if names.setdefault(("customer", fold(name)), record) is record:
                queued.append(record)
        for item in needs.items.values():
            if catalog.find_item(item.sku, item.name) is not None:
                continue
            name = desktop_name(item.name, MAX_ITEM_NAME)
            record = QueuedRecord("item", item.key, name, item.model_dump(mode="json"), alias=item.name)
            if names.setdefault(("item", fold(name)), record) is record:
                queued.append(record)
        if queued:
            self.ledger.queue(queued)
        grown = _with_queued(catalog, queued)
        # The plan looks needs up by the name it asked for, which may be longer than Desktop's.
        by_customer = dict(grown.customers_by_name)
        by_item = dict(grown.items_by_name)
        for customer in needs.customers.values():
            hit = grown.find_customer("", desktop_name(customer.display_name, MAX_CUSTOMER_NAME))
            if hit is not None:
                by_customer.setdefault(fold(customer.display_name), hit)
        for item in needs.items.values():
            found = grown.find_item("", desktop_name(item.name, MAX_ITEM_NAME))
            if found is not None:
                by_item.setdefault(fold(item.name), found)
        return replace(grown, customers_by_name=by_customer, items_by_name=by_item), {}

    def push(self, requests: Sequence[PushRequest]) -> list[PushResult]:
        """Refused: QuickBooks Desktop cannot be called; the Web Connector collects pending postings."""
        raise LedgerlinkError(
            "QuickBooks Desktop documents are not pushed: they stay pending until the QuickBooks Web Connector "
            f"collects them ({len(requests)} waiting); the sync engine must leave Desktop postings to it"
        )

    def find(self, request: PushRequest) -> RemoteDoc | None:
        """A document QuickBooks reported, by RefNumber, whose memo carries our marker."""
        doc = request.document
        if not doc.doc_number or not doc.marker:
            return None
        txn_type = txn_object(doc.kind)
        for txn in self.ledger.transactions(txn_type, ref_number(doc.doc_number)):
            if f"[ledgerlink {doc.marker}]" in txn.memo:
                return RemoteDoc(
                    kind=str(doc.kind),
                    remote_id=txn.txn_id,
                    sync_token=txn.edit_sequence,
                    doc_number=txn.ref_number,
                    total=txn.total if txn.total is not None else doc.total,
                    customer_id=txn.customer,
                    private_note=txn.memo,
                )
        return None

    def close(self) -> None:
        """Nothing to release."""


def _with_queued(catalog: Catalog, queued: Sequence[QueuedRecord]) -> Catalog:
    """The catalog with queued records as if they existed, id = their FullName (qbXML refers by FullName)."""
    items: list[ItemRecord] = []
    customers: list[CustomerRecord] = []
    for record in queued:
        if record.kind == "customer":
            customers.append(
                CustomerRecord(id=record.name, display_name=record.name, email=str(record.body.get("email") or ""))
            )
        else:
            items.append(
                ItemRecord(
                    id=record.name,
                    name=record.name,
                    sku=str(record.body.get("sku") or ""),
                    type=str(record.body.get("type") or "NonInventory"),
                )
            )
    if not items and not customers:
        return catalog
    grown = catalog.with_records(items=items, customers=customers)
    by_customer = dict(grown.customers_by_name)
    by_item = dict(grown.items_by_name)
    for record in queued:
        if not record.alias:
            continue
        if record.kind == "customer":
            if (customer := by_customer.get(fold(record.name))) is not None:
                by_customer.setdefault(fold(record.alias), customer)
        elif (item := by_item.get(fold(record.name))) is not None:
            by_item.setdefault(fold(record.alias), item)
    return replace(grown, customers_by_name=by_customer, items_by_name=by_item)
