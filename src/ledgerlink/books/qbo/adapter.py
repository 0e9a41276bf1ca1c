"""`QboBooks`: the `Books` port for QuickBooks Online, on top of `QboClient` and `mapping`.

Reads master data in as few requests as it can (batches of queries), creates missing customers and items in
batches before the documents that use them, pushes documents in batches with a deterministic `requestid`,
and resolves "duplicate document number" answers by binding the existing document only when it is ours.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from ledgerlink.books.base import Operation, PushRequest, PushResult, PushStatus, RemoteDoc, TokenStore
from ledgerlink.books.qbo import oauth
from ledgerlink.books.qbo.client import (
    MAX_BATCH_ITEMS,
    MINOR_VERSION,
    READ_TIMEOUT,
    Pacer,
    QboClient,
    QboFault,
    UnknownOutcome,
    equals,
    one_of,
    parse_fault,
    query_rows,
    select,
)
from ledgerlink.books.qbo.mapping import (
    MAX_DISPLAY_NAME,
    MAX_ITEM_NAME,
    NUMBERED_KINDS,
    amount,
    clean_name,
    customer_body,
    item_body,
    missing_links,
    ref_id,
    remote_doc,
    shipment_update,
    to_qbo,
)
from ledgerlink.domain.catalog import (
    Account,
    Catalog,
    CatalogQuery,
    CompanyFacts,
    CustomerRecord,
    ItemRecord,
    MasterData,
    NewCustomer,
    NewItem,
    fold,
)
from ledgerlink.domain.documents import Document, DocumentKind, UpdateScope
from ledgerlink.domain.errors import MappingError, PermanentError, RetryableError
from ledgerlink.jsonwire import dumps

PRODUCTION_API = "https://quickbooks.api.intuit.com/v3"
SANDBOX_API = "https://sandbox-quickbooks.api.intuit.com/v3"
MAX_IN_VALUES = 100
# QBO reports a duplicate DocNumber as 6140 or (in older answers) 6210; the message text is the stable part.
DUPLICATE_DOC_CODES = frozenset({"6140", "6210"})
DUPLICATE_DOC_TEXT = "Duplicate Document Number"
DUPLICATE_NAME_CODE = "6240"
STALE_OBJECT_CODE = "5010"
# How often a stale SyncToken (5010) is re-read and the update or void sent again before giving up for now.
STALE_RETRIES = 3
MAX_PAYMENT_METHOD_NAME = 31
_ASSIGNED = re.compile(r"DocNumber=(?P<number>.+?) is assigned to TxnType=(?P<type>.+?) with TxnId=(?P<id>\w+)")
_T = TypeVar("_T")
_TOTAL_CHECKED = frozenset(
    {
        DocumentKind.SALES_RECEIPT,
        DocumentKind.INVOICE,
        DocumentKind.ESTIMATE,
        DocumentKind.CREDIT_MEMO,
        DocumentKind.REFUND_RECEIPT,
    }
)


class QboConfig(BaseModel):
    """A QuickBooks Online connection: the company (realm), the app's credentials, and how hard to push."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    realm_id: str = Field(min_length=1, description="QuickBooks company id (realmId)")
    client_id: str = Field(min_length=1)
    client_secret: SecretStr = Field(json_schema_extra={"secret": True})
    api_base: str = PRODUCTION_API
    token_url: str = oauth.INTUIT_TOKEN_URL
    authorize_url: str = oauth.INTUIT_AUTHORIZE_URL
    redirect_uri: str = ""
    environment: Literal["production", "sandbox"] = "production"
    minor_version: int = Field(default=MINOR_VERSION, ge=MINOR_VERSION, description="Intuit retired 1-74")
    batch_size: int = Field(default=MAX_BATCH_ITEMS, ge=1, le=MAX_BATCH_ITEMS)
    throttle_wait: float = Field(default=60.0, ge=0, description="seconds to wait after a 429")
    retry_backoff: float = Field(default=1.0, ge=0, description="first wait before retrying a 5xx; doubles")
    read_timeout: float = Field(
        default=READ_TIMEOUT, gt=0, description="seconds to wait for an answer before it counts as lost"
    )
    pace: bool = True
    requests_per_minute: int = Field(default=500, ge=1)
    requests_per_second: int = Field(default=10, ge=1)
    batches_per_minute: int = Field(default=40, ge=1)

    @model_validator(mode="after")
    def _sandbox_api(self) -> QboConfig:
        # An Intuit developer sandbox company lives on its own host; an explicit api_base still wins.
        if self.environment == "sandbox" and "api_base" not in self.model_fields_set:
            object.__setattr__(self, "api_base", SANDBOX_API)
        return self


def _today() -> date:
    return datetime.now(UTC).date()


@dataclass
class QboBooks:
    """The `Books` port on QuickBooks Online."""

    kind: ClassVar[str] = "qbo"

    config: QboConfig
    client: QboClient
    today: Callable[[], date] = _today
    custom_txn_numbers: bool = True
    _base: Catalog | None = field(default=None, init=False, repr=False)

    # -- catalog ----------------------------------------------------------------------------------------------

    def catalog(self, wanted: CatalogQuery, base: Catalog | None = None) -> Catalog:
        """Company facts, accounts, tax codes, payment methods, classes and locations (read once), plus the wanted
        items and customers (read per call, as batched queries)."""
        if base is not None and base.company.books == "qbo" and base.accounts:
            start = base
            if self._base is None:
                self._base = base
        else:
            start = self._base if self._base is not None else self._read_base()
        selects: list[str] = []
        selects += _in_queries("Item", "Sku", wanted.skus)
        selects += _in_queries("Item", "Name", wanted.item_names)
        selects += _in_queries("Customer", "DisplayName", wanted.customer_names)
        # QBO cannot put an e-mail in an IN list: one query per address, packed into batches.
        selects += [
            select("Customer", equals("PrimaryEmailAddr", email))
            for email in sorted({e.strip() for e in wanted.emails if e.strip()})
        ]
        items: list[ItemRecord] = []
        customers: list[CustomerRecord] = []
        for entity, rows in self._run_queries(selects):
            if entity == "Item":
                items += [_item_record(row) for row in rows]
            else:
                customers += [_customer_record(row) for row in rows]
        return start.with_records(items=items, customers=customers)

    def _read_base(self) -> Catalog:
        selects = [
            "SELECT * FROM CompanyInfo",
            "SELECT * FROM Preferences",
            "SELECT * FROM Account WHERE Active = true",
            "SELECT * FROM TaxCode",
            "SELECT * FROM PaymentMethod",
            "SELECT * FROM Class",
            "SELECT * FROM Department",
        ]
        found: dict[str, list[dict[str, Any]]] = {}
        for entity, rows in self._run_queries(selects):
            found.setdefault(entity, []).extend(rows)
        info = next(iter(found.get("CompanyInfo", [])), {})
        prefs = next(iter(found.get("Preferences", [])), {})
        sales = _section(prefs, "SalesFormsPrefs")
        tax = _section(prefs, "TaxPrefs")
        currency = _section(prefs, "CurrencyPrefs")
        self.custom_txn_numbers = sales.get("CustomTxnNumbers") is not False
        country = str(info.get("Country") or "US").upper()
        home = currency.get("HomeCurrency")
        company = CompanyFacts(
            books="qbo",
            country=country,
            home_currency=str(home.get("value") if isinstance(home, Mapping) else home or "USD").upper(),
            allow_shipping_line=sales.get("AllowShipping") is True,
            automated_sales_tax=country == "US" and tax.get("PartnerTaxEnabled") is not False,
            multicurrency=currency.get("MultiCurrencyEnabled") is True,
        )
        accounts = {
            str(row["Id"]): Account(
                id=str(row["Id"]),
                name=str(row.get("FullyQualifiedName") or row.get("Name") or ""),
                type=str(row.get("AccountType") or ""),
                subtype=str(row.get("AccountSubType") or ""),
            )
            for row in found.get("Account", [])
            if "Id" in row
        }
        self._base = Catalog(
            company=company,
            accounts=accounts,
            tax_codes=_names(found.get("TaxCode", [])),
            payment_methods=_names(found.get("PaymentMethod", [])),
            classes=_names(found.get("Class", [])),
            departments=_names(found.get("Department", [])),
        )
        return self._base

    def _run_queries(self, selects: Sequence[str]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """Run SELECTs as Query items of batches (30 a request); a full page is read on with `query`."""
        page = 1000
        for chunk in _chunks(selects, MAX_BATCH_ITEMS):
            items = [{"bId": str(i), "Query": f"{text} MAXRESULTS {page}"} for i, text in enumerate(chunk)]
            # A fresh requestid: QBO answers a repeated requestid with its first answer, which for a read
            # would be stale data.
            answers = self._batch_answers(items, _fresh_id())
            for index, text in enumerate(chunk):
                entity = _entity_of(text)
                answer = answers.get(str(index), {})
                fault = parse_fault(answer)
                if fault is not None:
                    raise PermanentError(f"QuickBooks Online refused the query {text!r}: {fault.text}", code=fault.code)
                rows = query_rows(answer.get("QueryResponse"), entity)
                if len(rows) >= page:
                    rows = self.client.query(text)
                yield entity, rows

    # -- ensure -----------------------------------------------------------------------------------------------

    def ensure(self, needs: MasterData, catalog: Catalog) -> tuple[Catalog, dict[str, str]]:
        """Create the missing customers and items in batches (customers and items together); a name QBO
        already has is bound when it is the same customer/item, else created once more under a clearer name."""
        errors: dict[str, str] = {}
        grown = catalog
        customers = [c for c in needs.customers.values() if catalog.find_customer(c.email, c.display_name) is None]
        items = [i for i in needs.items.values() if catalog.find_item(i.sku, i.name) is None]
        pending: list[_Create] = [_Create(c.key, "Customer", customer_body(c), c) for c in customers]
        inv_start = self.today()
        pending += [_Create(i.key, "Item", item_body(i, inv_start), i) for i in items]
        pending = _distinct_names(pending)
        for attempt in range(2):
            retry: list[_Create] = []
            for chunk in _chunks(pending, MAX_BATCH_ITEMS):
                created, again, failed = self._create_batch(chunk, last=attempt == 1)
                grown = _grow(grown, created)
                retry += again
                errors.update(failed)
            pending = retry
            if not pending:
                break
        for create in pending:
            errors.setdefault(create.key, f"QuickBooks Online already has a record named {create.name!r}")
        return grown, errors

    def _create_batch(
        self, chunk: Sequence[_Create], *, last: bool
    ) -> tuple[list[tuple[_Create, CustomerRecord | ItemRecord]], list[_Create], dict[str, str]]:
        items = [{"bId": str(i), "operation": "create", c.entity: c.body} for i, c in enumerate(chunk)]
        # Not derived from the keys: a repeated requestid would replay an old answer (e.g. a 6240 the merchant
        # has since fixed). Names are unique in QBO, which is what keeps master data from doubling.
        rid = _fresh_id()
        try:
            try:
                answers = self._batch_answers(items, rid)
            except UnknownOutcome:
                # Names are unique in QBO, so sending the same creates again cannot duplicate anything: a record
                # made by the lost attempt comes back as 6240 and is bound below.
                answers = self._batch_answers(items, _fresh_id())
        except PermanentError as exc:
            return [], [], {c.key: f"could not create {c.entity.lower()} {c.name!r}: {exc}" for c in chunk}
        # A RetryableError (no answer twice, throttled, QuickBooks down) goes up: nothing is known to have failed,
        # so the orders that need these records wait for the next pass instead of failing.
        created: list[tuple[_Create, CustomerRecord | ItemRecord]] = []
        again: list[_Create] = []
        failed: dict[str, str] = {}
        for index, create in enumerate(chunk):
            answer = answers.get(str(index))
            if answer is None:
                failed[create.key] = f"QuickBooks Online did not answer for {create.entity.lower()} {create.name!r}"
                continue
            entity = answer.get(create.entity)
            if isinstance(entity, dict):
                created.append((create, _record(create.entity, entity)))
                continue
            fault = parse_fault(answer) or QboFault("", ())
            if fault.code == DUPLICATE_NAME_CODE or fault.mentions("Duplicate Name"):
                existing = self._existing_named(create)
                if existing is not None:
                    created.append((create, existing))
                elif not last:
                    again.append(create.renamed())
                else:
                    failed[create.key] = (
                        f"QuickBooks Online already has a name {create.name!r} (perhaps a vendor, an employee or "
                        f"an inactive record): {fault.text}"
                    )
                continue
            failed[create.key] = f"could not create {create.entity.lower()} {create.name!r}: {_describe(fault)}"
        return created, again, failed

    def _batch_answers(self, items: list[dict[str, Any]], requestid: str) -> dict[str, dict[str, Any]]:
        return {str(a.get("bId")): a for a in self.client.batch(items, requestid=requestid)}

    def _existing_named(self, create: _Create) -> CustomerRecord | ItemRecord | None:
        """The active record with this name if it is the one we wanted (same e-mail / SKU where known)."""
        if create.entity == "Customer":
            rows = self.client.query(select("Customer", equals("DisplayName", create.name)))
            email = create.need.email if isinstance(create.need, NewCustomer) else ""
            for row in rows:
                record = _customer_record(row)
                if not email or not record.email or fold(record.email) == fold(email):
                    return record
            return None
        rows = self.client.query(select("Item", equals("Name", create.name)))
        sku = create.need.sku if isinstance(create.need, NewItem) else ""
        for row in rows:
            found = _item_record(row)
            if not sku or not found.sku or fold(found.sku) == fold(sku):
                return found
        return None

    # -- push -------------------------------------------------------------------------------------------------

    def push(self, requests: Sequence[PushRequest]) -> list[PushResult]:
        """Send documents in batches; one result per request, in order. Only NeedsUserError escapes."""
        results: dict[str, PushResult] = {}
        ready: list[tuple[PushRequest, dict[str, Any]]] = []
        try:
            company = self._company()
        except RetryableError as exc:
            status = PushStatus.RETRY
            return [PushResult(r.key, status, error=str(exc), retry_after=exc.retry_after) for r in requests]
        for request in requests:
            if request.operation is Operation.VOID:
                results[request.key] = self._void(request)
                continue
            try:
                ready.append((request, self._batch_item(request, company)))
            except MappingError as exc:
                results[request.key] = PushResult(request.key, PushStatus.FAILED, error=str(exc), code="mapping")
        for chunk in _chunks(ready, self.config.batch_size):
            for result in self._push_batch(chunk):
                results[result.key] = result
        for request in requests:
            result = results[request.key]
            if request.operation is Operation.UPDATE and result.code == STALE_OBJECT_CODE:
                results[request.key] = self._update_fresh(request, company)
        return [results[request.key] for request in requests]

    def _update_fresh(self, request: PushRequest, company: CompanyFacts) -> PushResult:
        """5010: the document changed since its SyncToken was stored (QuickBooks itself bumps an invoice's
        when a payment is applied): read it again by Id and re-apply our sparse update, a bounded number of
        times."""
        doc = request.document
        last = PushResult(request.key, PushStatus.RETRY, error="stale sync token", code=STALE_OBJECT_CODE)
        for _attempt in range(STALE_RETRIES):
            try:
                fresh = replace(request, sync_token=self._current_token(request))
                body = self._batch_item(fresh, company)[str(doc.kind)]
                rid = _request_id("update", [fresh.key, str(fresh.sync_token), dumps(body)])
                entity = self.client.post(str(doc.kind), body, requestid=rid, operation="update")
            except MappingError as exc:
                return PushResult(request.key, PushStatus.FAILED, error=str(exc), code="mapping")
            except UnknownOutcome as exc:
                return PushResult(request.key, PushStatus.UNKNOWN, error=str(exc), retry_after=exc.retry_after)
            except RetryableError as exc:
                return PushResult(request.key, PushStatus.RETRY, error=str(exc), retry_after=exc.retry_after)
            except PermanentError as exc:
                if exc.code == STALE_OBJECT_CODE:
                    last = PushResult(request.key, PushStatus.RETRY, error=str(exc), code=STALE_OBJECT_CODE)
                    continue
                return PushResult(request.key, PushStatus.FAILED, error=str(exc), code=exc.code or "")
            return self._posted(fresh, entity)
        return last

    def _current_token(self, request: PushRequest) -> str:
        """The document's SyncToken as QuickBooks has it now (read by Id: list queries have been seen stale)."""
        kind = str(request.document.kind)
        entity = self.client.get(f"{kind.lower()}/{request.remote_id}").get(kind)
        if not isinstance(entity, dict) or "SyncToken" not in entity:
            raise PermanentError(f"QuickBooks Online has no {kind} {request.remote_id} any more", code="610")
        return str(entity["SyncToken"])

    def ensure_payment_methods(self, names: Sequence[str], catalog: Catalog) -> Catalog:
        """Match each name to a QuickBooks payment method, creating those it lacks (names are unique, so a
        method made by a lost attempt comes back as a duplicate and is bound). A method that cannot be made
        is left out: the documents then simply carry none."""
        methods = dict(catalog.payment_methods)
        wanted = sorted({clean_name(n, MAX_PAYMENT_METHOD_NAME) for n in names} - {""}, key=fold)
        missing = [name for name in wanted if fold(name) not in methods]
        if not missing:
            return catalog
        items = [
            {"bId": str(i), "operation": "create", "PaymentMethod": {"Name": name}} for i, name in enumerate(missing)
        ]
        try:
            answers = self._batch_answers(items, _fresh_id())
            for index, name in enumerate(missing):
                entity = answers.get(str(index), {}).get("PaymentMethod")
                if isinstance(entity, dict) and "Id" in entity:
                    methods[fold(name)] = str(entity["Id"])
                    continue
                for row in self.client.query(select("PaymentMethod", equals("Name", name))):
                    methods[fold(str(row.get("Name") or name))] = str(row["Id"])
        except (RetryableError, PermanentError):
            pass  # matched what could be; the rest go without a method this time
        if self._base is not None:
            self._base = replace(self._base, payment_methods={**self._base.payment_methods, **methods})
        return replace(catalog, payment_methods=methods)

    def _batch_item(self, request: PushRequest, company: CompanyFacts) -> dict[str, Any]:
        doc = request.document
        if request.operation is Operation.UPDATE and doc.scope is UpdateScope.SHIPMENT:
            # Tracking only: the rest of the document stays as QuickBooks has it (the merchant may have edited it).
            return {
                "operation": "update",
                str(doc.kind): {**shipment_update(doc), **self._identity(request), "sparse": True},
            }
        linked = dict(request.linked)
        missing = missing_links(doc, linked)
        if missing:
            raise MappingError(
                f"{doc.kind} {doc.doc_number} follows from the {', '.join(missing)} of this order, which is not "
                "posted yet",
                order=doc.order_number,
                field="links",
            )
        unresolved = [ref.name or ref.key for ref in doc.unresolved()]
        if unresolved:
            raise MappingError(
                f"{doc.kind} {doc.doc_number} refers to records QuickBooks does not have yet: {', '.join(unresolved)}",
                order=doc.order_number,
                field="refs",
            )
        body = to_qbo(doc, linked=linked, company=company)
        if request.operation is Operation.UPDATE:
            body = {**body, **self._identity(request), "sparse": True}
            return {"operation": "update", str(doc.kind): body}
        return {"operation": "create", str(doc.kind): body}

    def _void(self, request: PushRequest) -> PushResult:
        """Void one document, on its own: voids are not batch operations. A Payment is voided by a sparse
        update with `include=void`; the other kinds by `operation=void`."""
        doc = request.document
        try:
            identity = self._identity(request)
        except MappingError as exc:
            return PushResult(request.key, PushStatus.FAILED, error=str(exc), code="mapping")
        rid = _request_id("void", [f"{request.key}:{request.sync_token}"])
        try:
            if doc.kind is DocumentKind.PAYMENT:
                entity = self.client.post(
                    str(doc.kind), {**identity, "sparse": True}, requestid=rid, operation="update", include="void"
                )
            else:
                entity = self.client.post(str(doc.kind), identity, requestid=rid, operation="void")
        except UnknownOutcome as exc:
            return PushResult(request.key, PushStatus.UNKNOWN, error=str(exc), retry_after=exc.retry_after)
        except RetryableError as exc:
            return PushResult(request.key, PushStatus.RETRY, error=str(exc), retry_after=exc.retry_after)
        except PermanentError as exc:
            # A stale token (5010) is retried: the engine looks the document up for its current token first.
            status = PushStatus.RETRY if exc.code == STALE_OBJECT_CODE else PushStatus.FAILED
            return PushResult(request.key, status, error=str(exc), code=exc.code or "")
        return self._posted(request, entity)

    @staticmethod
    def _identity(request: PushRequest) -> dict[str, Any]:
        if not request.remote_id or request.sync_token is None:
            raise MappingError(
                f"cannot {request.operation} {request.document.kind} {request.document.doc_number}: "
                "its QuickBooks id and sync token are not known",
                order=request.document.order_number,
                field="remote_id",
            )
        return {"Id": request.remote_id, "SyncToken": request.sync_token}

    def _company(self) -> CompanyFacts:
        base = self._base if self._base is not None else self._read_base()
        return base.company

    def _push_batch(self, chunk: Sequence[tuple[PushRequest, dict[str, Any]]]) -> list[PushResult]:
        items = [{"bId": str(index), **item} for index, (_request, item) in enumerate(chunk)]
        # Derived from the posting keys so a replay of this very batch is recognised; the bodies are in it too,
        # because QBO answers a repeated requestid with its first answer, and a corrected document must not
        # get the old failure back.
        rid = _request_id("push", [f"{request.key}:{request.operation}:{dumps(item)}" for request, item in chunk])
        try:
            answers = self._batch_answers(items, rid)
        except UnknownOutcome as exc:
            return [
                PushResult(r.key, PushStatus.UNKNOWN, error=str(exc), retry_after=exc.retry_after) for r, _ in chunk
            ]
        except RetryableError as exc:
            return [PushResult(r.key, PushStatus.RETRY, error=str(exc), retry_after=exc.retry_after) for r, _ in chunk]
        except PermanentError as exc:
            return [PushResult(r.key, PushStatus.FAILED, error=str(exc), code=exc.code or "") for r, _ in chunk]
        return [self._result(request, answers.get(str(index))) for index, (request, _item) in enumerate(chunk)]

    def _result(self, request: PushRequest, answer: Mapping[str, Any] | None) -> PushResult:
        doc = request.document
        if answer is None:
            return PushResult(request.key, PushStatus.UNKNOWN, error="QuickBooks Online's answer left this out")
        entity = answer.get(str(doc.kind))
        if isinstance(entity, dict):
            return self._posted(request, entity)
        fault = parse_fault(answer) or QboFault("", ())
        if fault.codes & DUPLICATE_DOC_CODES or fault.mentions(DUPLICATE_DOC_TEXT):
            return self._duplicate(request, fault)
        if STALE_OBJECT_CODE in fault.codes:
            return PushResult(
                request.key, PushStatus.RETRY, error=f"stale sync token: {fault.text}", code=STALE_OBJECT_CODE
            )
        if "3001" in fault.codes:
            return PushResult(
                request.key, PushStatus.RETRY, error=fault.text, code="3001", retry_after=self.config.throttle_wait
            )
        return PushResult(request.key, PushStatus.FAILED, error=_describe(fault), code=fault.code)

    def _posted(self, request: PushRequest, entity: Mapping[str, Any], *, bound: bool = False) -> PushResult:
        doc = request.document
        total = amount(entity.get("TotalAmt"))
        warning = ""
        if request.operation is not Operation.VOID and doc.kind in _TOTAL_CHECKED and total != doc.total:
            warning = (
                f"QuickBooks computed a total of {total} for {doc.kind} {doc.doc_number} but the order's total is "
                f"{doc.total}"
            )
        return PushResult(
            request.key,
            PushStatus.POSTED,
            remote_id=str(entity.get("Id", "")),
            sync_token=str(entity.get("SyncToken", "")),
            total=total,
            error=warning,
            bound_existing=bound,
        )

    def _duplicate(self, request: PushRequest, fault: QboFault) -> PushResult:
        """Another document has this number: bind it if it is ours (same total, customer, our marker)."""
        doc = request.document
        found = _ASSIGNED.search(" ".join(f"{e.message} {e.detail}" for e in fault.errors))
        txn_type = found.group("type").replace(" ", "") if found else str(doc.kind)
        txn_id = found.group("id") if found else ""
        try:
            if txn_id:
                entity = self.client.get(f"{txn_type.lower()}/{txn_id}").get(txn_type)
                candidates = [entity] if isinstance(entity, dict) else []
            else:
                candidates = self.client.query(select(str(doc.kind), equals("DocNumber", doc.doc_number)))
        except RetryableError as exc:
            return PushResult(request.key, PushStatus.RETRY, error=str(exc), retry_after=exc.retry_after)
        except PermanentError:
            candidates = []  # gone since (deleted?): fall through to the explanation
        if txn_type == str(doc.kind):
            for entity in candidates:
                if _is_ours(doc, entity, strict=True):
                    return self._posted(request, entity, bound=True)
        if not txn_id and candidates:
            txn_id = str(candidates[0].get("Id", ""))
        ident = f" (id {txn_id})" if txn_id else ""
        return PushResult(
            request.key,
            PushStatus.FAILED,
            error=(
                f"QuickBooks already has {_spaced(txn_type)} {doc.doc_number}{ident} that ledgerlink did not post; "
                "add a document-number prefix in Settings or remove it"
            ),
            code=fault.code or "6140",
        )

    # -- find -------------------------------------------------------------------------------------------------

    def find(self, request: PushRequest) -> RemoteDoc | None:
        """After an unknown outcome: the document by number (ours only), or a payment by our marker."""
        doc = request.document
        kind = str(doc.kind)
        self._company()  # reads the preferences once, which say whether our numbers are kept
        if doc.kind in NUMBERED_KINDS and doc.doc_number and self.custom_txn_numbers:
            rows = self.client.query(select(kind, equals("DocNumber", doc.doc_number)))
        else:
            # Payments have no document number (and without custom numbers QBO assigns its own): search the
            # customer's documents of that day for our marker.
            if doc.customer is None or doc.customer.id is None:
                return None
            rows = self.client.query(
                select(kind, equals("CustomerRef", doc.customer.id), equals("TxnDate", doc.txn_date.isoformat()))
            )
        for row in rows:
            if _is_ours(doc, row, strict=False):
                return remote_doc(kind, row)
        return None

    def close(self) -> None:
        """Release the HTTP client."""
        self.client.close()


def connect(config: QboConfig, tokens: TokenStore, **kw: Any) -> QboBooks:
    """A `QboBooks` for one company; `kw` goes to `QboClient` (client=, sleep=, clock=, pacer=) except `today`."""
    today = kw.pop("today", _today)
    pacer: Pacer | None = kw.pop("pacer", None)
    return QboBooks(config=config, client=QboClient(config, tokens, pacer=pacer, **kw), today=today)


# -- helpers --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Create:
    key: str
    entity: str
    body: dict[str, Any]
    need: NewCustomer | NewItem

    @property
    def name(self) -> str:
        return str(self.body.get("DisplayName") or self.body.get("Name") or "")

    def renamed(self) -> _Create:
        """The same record under a name that says whose it is, e.g. "Ann Lee (ann@example.com)"."""
        if isinstance(self.need, NewCustomer):
            extra = self.need.email or "ledgerlink"
            name = clean_name(f"{self.name} ({extra})", MAX_DISPLAY_NAME)
            return replace(self, body={**self.body, "DisplayName": name})
        extra = self.need.sku if self.need.sku and fold(self.need.sku) != fold(self.name) else "ledgerlink"
        suffix = f" ({extra})"
        name = clean_name(self.name[: MAX_ITEM_NAME - len(suffix)] + suffix, MAX_ITEM_NAME)
        return replace(self, body={**self.body, "Name": name})


def _distinct_names(creates: Sequence[_Create]) -> list[_Create]:
    """Two new records of one kind under one name (two buyers called Ann Lee, two SKUs named "Mug"): the first
    keeps the name, the others get the clearer one at once, instead of a refusal (6240) and a look-up each."""
    taken: set[tuple[str, str]] = set()
    distinct: list[_Create] = []
    for create in creates:
        name = (create.entity, fold(create.name))
        if name in taken:
            create = create.renamed()
            name = (create.entity, fold(create.name))
        taken.add(name)
        distinct.append(create)
    return distinct


def _grow(catalog: Catalog, created: Iterable[tuple[_Create, CustomerRecord | ItemRecord]]) -> Catalog:
    """Add created/bound records, also under the name that was asked for (it may differ after a rename)."""
    pairs = list(created)
    customers = [r for _c, r in pairs if isinstance(r, CustomerRecord)]
    items = [r for _c, r in pairs if isinstance(r, ItemRecord)]
    grown = catalog.with_records(items=items, customers=customers)
    by_item_name = dict(grown.items_by_name)
    by_customer_name = dict(grown.customers_by_name)
    for create, record in pairs:
        need = create.need
        if isinstance(need, NewCustomer) and isinstance(record, CustomerRecord):
            by_customer_name.setdefault(fold(need.display_name), record)
        elif isinstance(need, NewItem) and isinstance(record, ItemRecord):
            by_item_name.setdefault(fold(need.name), record)
    return replace(grown, items_by_name=by_item_name, customers_by_name=by_customer_name)


def _record(entity: str, row: Mapping[str, Any]) -> CustomerRecord | ItemRecord:
    return _customer_record(row) if entity == "Customer" else _item_record(row)


def _item_record(row: Mapping[str, Any]) -> ItemRecord:
    return ItemRecord(
        id=str(row.get("Id", "")),
        name=str(row.get("Name") or ""),
        sku=str(row.get("Sku") or ""),
        type=str(row.get("Type") or "NonInventory"),
    )


def _customer_record(row: Mapping[str, Any]) -> CustomerRecord:
    email = row.get("PrimaryEmailAddr")
    return CustomerRecord(
        id=str(row.get("Id", "")),
        display_name=str(row.get("DisplayName") or ""),
        email=str(email.get("Address") or "") if isinstance(email, Mapping) else "",
    )


def _names(rows: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    return {
        fold(str(row.get("FullyQualifiedName") or row.get("Name") or "")): str(row["Id"])
        for row in rows
        if "Id" in row and row.get("Active", True) is not False
    }


def _section(prefs: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = prefs.get(name)
    return value if isinstance(value, Mapping) else {}


def _is_ours(doc: Document, entity: Mapping[str, Any], *, strict: bool) -> bool:
    """Our marker is in its private note; `strict` (binding on a duplicate number) also wants the same total
    and customer, so a stranger's document that quotes our marker is never taken for ours."""
    if not doc.marker or f"[ledgerlink {doc.marker}]" not in str(entity.get("PrivateNote") or ""):
        return False
    if not strict:
        return True
    customer = doc.customer.id if doc.customer is not None else None
    return amount(entity.get("TotalAmt")) == doc.total and (
        customer is None or ref_id(entity, "CustomerRef") == customer
    )


def _describe(fault: QboFault) -> str:
    return f"{fault.text} (QuickBooks error {fault.code})" if fault.code else fault.text


def _spaced(txn_type: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", txn_type)


def _request_id(prefix: str, parts: Iterable[str]) -> str:
    """A deterministic requestid (≤36 chars): the same batch sent again is recognised as a replay."""
    digest = hashlib.sha256("\n".join([prefix, *parts]).encode()).hexdigest()
    return digest[:36]


def _fresh_id() -> str:
    return uuid.uuid4().hex


def _entity_of(select: str) -> str:
    words = select.split()
    for index, word in enumerate(words[:-1]):
        if word.upper() == "FROM":
            return words[index + 1]
    return ""


def _in_queries(entity: str, column: str, values: Iterable[str]) -> list[str]:
    clean = sorted({v.strip() for v in values if v and v.strip()})
    return [select(entity, one_of(column, chunk)) for chunk in _chunks(clean, MAX_IN_VALUES)]


def _chunks(values: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
