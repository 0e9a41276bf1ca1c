"""A stateful stand-in for a QuickBooks Desktop company file that answers qbXML message sets as QuickBooks does.

What it reproduces (qbXML 13.0, see reference/external-apis.md §2):
  * the schema check of a whole message set before any of it runs (`schema.py`; a violation is an HRESULT
    error for the Web Connector to report, not an answer);
  * ListID / TxnID / EditSequence / TxnNumber / TimeCreated / TimeModified on every object;
  * status codes: 0 OK, 1 no match (queries), 3070 string too long, 3100 name not unique, 3120 object not
    found, 3140 invalid reference, 3180 error saving (payment above the open balance), 3200 stale
    EditSequence; `onError` stopOnError / continueOnError;
  * Mods as QuickBooks runs them: TxnID + EditSequence (3200 when another change came in between, and
    applying a payment or linking an invoice changes the EditSequence of the invoice or sales order too),
    lines replaced by the …LineMod list (TxnLineID -1 adds, an existing id changes, unnamed lines go), an
    invoice never below what is applied to it (3180), each request all or nothing;
  * TxnVoid (SalesReceipt, Invoice, CreditMemo: amounts to zero, "VOID:" memo, kept) and TxnDel (also
    SalesOrder, Estimate, ReceivePayment: gone; a second delete is 3120), undoing payment applications;
  * queries by ListID, FullName, TxnID and RefNumber, MaxReturned, ActiveStatus, and iterators
    (iterator="Start" / "Continue", iteratorID, iteratorRemainingCount);
  * message-set error recovery: the answer to each `newMessageSetID` is kept with a checksum of its request;
    `oldMessageSetID` gets the kept answer back (messageSetStatusCode 0) or 9002 when none was kept; the same
    id sent again with the same requests gets the kept answer without running them twice, with other
    requests 9001 (checksum mismatch); an id over 24 characters 9004.
Money is computed the way QuickBooks does: line Amount (or Quantity × Rate, to the cent), tax from the
ItemSalesTax rate on lines coded taxable, an invoice's balance reduced by payments applied to it.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from lxml import etree

from ledgerlink.books.qbd.qbxml import parse_xml
from ledgerlink.sandbox.qbd.schema import PARSE_ERROR_HRESULT, PARSE_ERROR_MESSAGE, SchemaError, check_request

CENT = Decimal("0.01")
LIMITS = {
    ("Customer", "Name"): 41,
    ("Item", "Name"): 31,
    ("Txn", "RefNumber"): 11,
    ("ReceivePayment", "RefNumber"): 20,
    ("Txn", "Memo"): 4095,
    ("Customer", "CompanyName"): 41,
    ("Customer", "FirstName"): 25,
    ("Customer", "LastName"): 25,
    ("Customer", "Phone"): 21,
    ("Item", "ManufacturerPartNumber"): 31,
    ("Txn", "Other"): 29,
    ("ShipMethod", "Name"): 15,
}
_ENTITY = "entity"  # customers, vendors, employees and other names share one name space
SALE_OBJECTS = ("SalesReceipt", "Invoice", "SalesOrder", "CreditMemo", "Estimate")
TXN_OBJECTS = (*SALE_OBJECTS, "ReceivePayment")
ITEM_TYPES = ("ItemService", "ItemNonInventory", "ItemOtherCharge", "ItemInventory", "ItemDiscount", "ItemSalesTax")


class QbdParseError(Exception):
    """QuickBooks refused the whole message set (the Web Connector hands `hresult` and `message` to the server)."""

    def __init__(self, detail: str) -> None:
        self.hresult = PARSE_ERROR_HRESULT
        self.message = PARSE_ERROR_MESSAGE
        self.detail = detail
        super().__init__(f"{self.message} ({detail})")


class QuickBooksCrashed(Exception):
    """QuickBooks stopped in the middle of a message set: what ran is kept, no answer was kept."""


class _Refusal(Exception):
    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _decimal(text: str | None, field_name: str) -> Decimal:
    try:
        return Decimal((text or "").strip())
    except InvalidOperation:
        raise _Refusal(
            3020, f'There was an error when converting the amount "{text}" in the field "{field_name}".'
        ) from None


@dataclass
class ListObject:
    """A list entry: account, customer, item, class, tax code, payment method."""

    kind: str  # Account, Customer, ItemNonInventory, …, Class, SalesTaxCode, PaymentMethod
    list_id: str
    name: str
    edit_sequence: str
    created: datetime
    modified: datetime
    is_active: bool = True
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def space(self) -> str:
        if self.kind == "Customer":
            return _ENTITY
        return "Item" if self.kind.startswith("Item") else self.kind


@dataclass
class Line:
    txn_line_id: str
    item: ListObject
    desc: str
    quantity: Decimal | None
    rate: Decimal | None
    amount: Decimal
    tax_code: str


@dataclass
class Txn:
    """A transaction: sales receipt, invoice, sales order, credit memo, estimate, received payment."""

    kind: str
    txn_id: str
    txn_number: int
    edit_sequence: str
    created: datetime
    modified: datetime
    customer: ListObject
    txn_date: str
    ref_number: str
    memo: str
    lines: list[Line] = field(default_factory=list)
    refs: dict[str, ListObject] = field(default_factory=dict)  # ClassRef, ARAccountRef, DepositToAccountRef, …
    subtotal: Decimal = Decimal("0.00")
    tax: Decimal = Decimal("0.00")
    total: Decimal = Decimal("0.00")
    applied: Decimal = Decimal("0.00")  # invoices: payments and credits applied; credit memos: credit used
    applied_to: list[tuple[Txn, Decimal]] = field(default_factory=list)  # payments
    credits: list[tuple[Txn, Txn, Decimal]] = field(default_factory=list)  # payments: (credit memo, invoice, amount)
    linked: list[str] = field(default_factory=list)
    fully_invoiced: bool = False
    voided: bool = False
    # The header fields the reverse direction reads and writes (ShipMethodRef is kept in `refs`).
    bill_address: dict[str, str] | None = None
    ship_address: dict[str, str] | None = None
    ship_date: str = ""
    other: str = ""
    manually_closed: bool = False

    @property
    def balance(self) -> Decimal:
        return _cents(self.total - self.applied)


@dataclass
class _Iterator:
    rs: str
    remaining: list[Any]
    page: int


class QbdCompany:
    """One company file. `process(qbxml)` answers a message set; thread-safe (one request set at a time)."""

    def __init__(self, *, name: str = "Sandbox Company", country: str = "US", seed: bool = True) -> None:
        self.name = name
        self.country = country
        self.lists: dict[str, ListObject] = {}
        self.by_name: dict[tuple[str, str], ListObject] = {}
        self.txns: dict[str, Txn] = {}
        self.deleted: dict[str, Txn] = {}  # TxnDel'd transactions, for tests (QuickBooks keeps no copy)
        self.deleted_at: dict[str, datetime] = {}  # TxnID → TimeDeleted, what TxnDeletedQuery reports
        self.kept: dict[str, tuple[str, str]] = {}  # message set id → (checksum of the requests, answer)
        self.iterators: dict[str, _Iterator] = {}
        self.stats: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self._txn_numbers = itertools.count(1)
        self._clock = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
        self._ids = itertools.count(1)
        self._epoch = 1736154000
        if seed:
            seed_company(self)

    # -- identity ---------------------------------------------------------------------------------------------

    def _tick(self) -> datetime:
        self._clock += timedelta(seconds=1)
        return self._clock

    def _list_id(self) -> str:
        return f"{0x80000000 + next(self._ids):X}-{self._epoch}"

    def _txn_id(self) -> str:
        return f"{next(self._ids):X}-{self._epoch}"

    def _edit_sequence(self) -> str:
        return str(self._epoch + next(self._counter))

    # -- lists ------------------------------------------------------------------------------------------------

    def add_list_object(self, kind: str, name: str, **fields: Any) -> ListObject:
        """Add a list entry directly (for seeding and tests); names are unique per name space."""
        now = self._tick()
        obj = ListObject(kind, self._list_id(), name, self._edit_sequence(), now, now, fields=dict(fields))
        if (obj.space, name.casefold()) in self.by_name:
            raise ValueError(f"the name {name!r} is already in use")
        self.lists[obj.list_id] = obj
        self.by_name[(obj.space, name.casefold())] = obj
        return obj

    def find(self, space: str, name: str) -> ListObject | None:
        return self.by_name.get((space, name.casefold()))

    def customers(self) -> list[ListObject]:
        return [o for o in self.lists.values() if o.kind == "Customer"]

    def items(self) -> list[ListObject]:
        return [o for o in self.lists.values() if o.kind.startswith("Item")]

    def transactions(self, kind: str | None = None) -> list[Txn]:
        return [t for t in self.txns.values() if kind is None or t.kind == kind]

    # -- message sets -----------------------------------------------------------------------------------------

    def process(self, text: str, *, crash_after: int | None = None) -> str:
        """Answer one qbXML message set (as the Web Connector hands it to QuickBooks)."""
        with self._lock:
            return self._process(text, crash_after)

    def _process(self, text: str, crash_after: int | None) -> str:
        try:
            root = parse_xml(text)
        except ValueError as exc:
            raise QbdParseError(str(exc)) from None
        msgs = root.find("QBXMLMsgsRq") if root.tag == "QBXML" else None
        if msgs is None:
            raise QbdParseError("no QBXML/QBXMLMsgsRq")
        on_error = msgs.get("onError")
        if on_error not in ("stopOnError", "continueOnError"):
            raise QbdParseError("QBXMLMsgsRq needs onError")
        requests = [r for r in msgs if isinstance(r.tag, str)]
        try:
            for rq in requests:
                check_request(rq)
        except SchemaError as exc:
            raise QbdParseError(str(exc)) from None
        self.stats["message_sets"] += 1
        old_id, new_id = msgs.get("oldMessageSetID"), msgs.get("newMessageSetID")
        for set_id in (old_id, new_id):
            if set_id is not None and len(set_id) > 24:
                return _answer([], status="9004")
        checksum = hashlib.sha256(b"".join(etree.tostring(r) for r in requests)).hexdigest()
        if old_id is not None:
            kept = self.kept.get(old_id)
            self.stats["recovery_requests"] += 1
            if kept is None:
                return _answer([], status="9002")
            return _with_status(kept[1], "0")
        if new_id is not None and new_id in self.kept:
            kept_checksum, kept_answer = self.kept[new_id]
            if kept_checksum != checksum:
                return _answer([], status="9001")
            self.stats["replayed_sets"] += 1
            return kept_answer
        answers: list[etree._Element] = []
        for index, rq in enumerate(requests):
            if crash_after is not None and index >= crash_after:
                raise QuickBooksCrashed(f"QuickBooks stopped after {index} of {len(requests)} requests")
            rs = self._run(rq)
            answers.append(rs)
            if on_error == "stopOnError" and int(rs.get("statusCode", "0")) >= 1000:
                break
        answer = _answer(answers, new_id=new_id)
        if new_id is not None:
            self.kept[new_id] = (checksum, answer)
        return answer

    def _run(self, rq: etree._Element) -> etree._Element:
        tag = str(rq.tag)
        name = tag.removesuffix("Rq")
        rs = etree.Element(f"{name}Rs")
        if rq.get("requestID") is not None:
            rs.set("requestID", rq.get("requestID", ""))
        self.stats[name] += 1
        try:
            code, message, rets = self._dispatch(name, rq, rs)
        except _Refusal as exc:
            code, message, rets = exc.code, exc.message, []
        severity = "Info" if code in (0, 1) else ("Warn" if code < 1000 else "Error")
        rs.set("statusCode", str(code))
        rs.set("statusSeverity", severity)
        rs.set("statusMessage", message)
        for ret in rets:
            rs.append(ret)
        return rs

    def _dispatch(self, name: str, rq: etree._Element, rs: etree._Element) -> tuple[int, str, list[etree._Element]]:
        body = rq.find(name)
        if name == "CustomerAdd" and body is not None:
            return 0, "Status OK", [self._customer_ret(self._customer_add(body))]
        if name == "CustomerMod" and body is not None:
            return 0, "Status OK", [self._customer_ret(self._customer_mod(body))]
        if name.startswith("Item") and name.endswith("Add") and body is not None:
            return 0, "Status OK", [self._item_ret(self._item_add(name.removesuffix("Add"), body))]
        if name.endswith("Add") and name.removesuffix("Add") in TXN_OBJECTS and body is not None:
            return 0, "Status OK", [self._txn_ret(self._txn_add(name.removesuffix("Add"), body), lines=True)]
        if name.endswith("Mod") and name.removesuffix("Mod") in TXN_OBJECTS and body is not None:
            return 0, "Status OK", [self._txn_ret(self._txn_mod(name.removesuffix("Mod"), body), lines=True)]
        if name == "TxnVoid":
            return 0, "Status OK", self._void(rq)
        if name == "TxnDel":
            return 0, "Status OK", self._delete(rq)
        if name == "TxnDeletedQuery":
            return self._found(self._deleted_query(rq))
        if name.endswith("Query"):
            return self._query(name.removesuffix("Query"), rq, rs)
        raise _Refusal(3250, f"ledgerlink's stand-in does not run {name} requests")

    # -- list adds --------------------------------------------------------------------------------------------

    def _limit(self, space: str, field_name: str, value: str) -> str:
        limit = LIMITS.get((space, field_name))
        if limit is not None and len(value) > limit:
            raise _Refusal(3070, f'The string "{value}" in the field "{field_name}" is too long.')
        return value

    def _new_name(self, space: str, name: str) -> None:
        if not name.strip():
            raise _Refusal(3090, 'There was an error when storing "" in the field "Name".')
        if (space, name.casefold()) in self.by_name:
            raise _Refusal(3100, f'The name "{name}" of the list element is already in use.')

    def _ref(self, element: etree._Element | None, space: str, what: str, context: str) -> ListObject:
        if element is None:
            raise _Refusal(3150, f'There is a missing element: "{what}".')
        list_id, full_name = element.findtext("ListID"), element.findtext("FullName")
        obj: ListObject | None = None
        if list_id:
            obj = self.lists.get(list_id)
            if obj is not None and obj.space != space:
                obj = None
        elif full_name:
            obj = self.find(space, full_name)
        if obj is None:
            value = list_id or full_name or ""
            raise _Refusal(
                3140,
                f'There is an invalid reference to QuickBooks {what} "{value}" in the {context}. QuickBooks error '
                "message: Invalid argument. The specified record does not exist in the list.",
            )
        return obj

    def _customer_fields(self, body: etree._Element) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for tag in ("CompanyName", "FirstName", "LastName", "Phone", "Email"):
            value = body.findtext(tag)
            if value is not None:
                fields[tag] = self._limit("Customer", tag, value)
        for tag in ("BillAddress", "ShipAddress"):
            address = body.find(tag)
            if address is not None:
                fields[tag] = {child.tag: child.text or "" for child in address if isinstance(child.tag, str)}
        return fields

    def _customer_add(self, body: etree._Element) -> ListObject:
        name = self._limit("Customer", "Name", body.findtext("Name") or "")
        self._new_name(_ENTITY, name)
        fields = self._customer_fields(body)
        return self.add_list_object("Customer", name, **fields)

    def _customer_mod(self, body: etree._Element) -> ListObject:
        obj = self._existing_list(body.findtext("ListID") or "", "Customer")
        self._check_sequence(obj.edit_sequence, body.findtext("EditSequence") or "")
        name = body.findtext("Name")
        if name is not None and name.casefold() != obj.name.casefold():
            self._limit("Customer", "Name", name)
            self._new_name(_ENTITY, name)
            del self.by_name[(_ENTITY, obj.name.casefold())]
            obj.name = name
            self.by_name[(_ENTITY, name.casefold())] = obj
        obj.fields.update(self._customer_fields(body))
        obj.edit_sequence, obj.modified = self._edit_sequence(), self._tick()
        return obj

    def _existing_list(self, list_id: str, kind: str) -> ListObject:
        obj = self.lists.get(list_id)
        if obj is None or obj.kind != kind:
            raise _Refusal(3120, f'Object "{list_id}" specified in the request cannot be found.')
        return obj

    def _check_sequence(self, current: str, given: str) -> None:
        if given != current:
            raise _Refusal(3200, f'The provided edit sequence "{given}" is out-of-date.')

    def _item_add(self, kind: str, body: etree._Element) -> ListObject:
        name = self._limit("Item", "Name", body.findtext("Name") or "")
        self._new_name("Item", name)
        context = "item"
        fields: dict[str, Any] = {}
        sku = body.findtext("ManufacturerPartNumber")
        if sku is not None:
            fields["ManufacturerPartNumber"] = self._limit("Item", "ManufacturerPartNumber", sku)
        sale = body.find("SalesOrPurchase")
        if sale is not None:
            fields["AccountRef"] = self._ref(sale.find("AccountRef"), "Account", "Account", context)
            fields["Desc"] = sale.findtext("Desc") or ""
            if sale.findtext("Price"):
                fields["Price"] = _decimal(sale.findtext("Price"), "Price")
        for tag in ("IncomeAccountRef", "COGSAccountRef", "AssetAccountRef", "AccountRef"):
            ref = body.find(tag)
            if ref is not None:
                fields[tag] = self._ref(ref, "Account", "Account", context)
        if kind == "ItemInventory":
            for tag in ("IncomeAccountRef", "COGSAccountRef", "AssetAccountRef"):
                if tag not in fields:
                    raise _Refusal(3150, f'There is a missing element: "{tag}".')
        if kind == "ItemDiscount" and "AccountRef" not in fields:
            raise _Refusal(3150, 'There is a missing element: "AccountRef".')
        if kind in ("ItemNonInventory", "ItemService", "ItemOtherCharge") and "AccountRef" not in fields:
            raise _Refusal(3150, 'There is a missing element: "SalesOrPurchase/AccountRef".')
        return self.add_list_object(kind, name, **fields)

    # -- transactions -----------------------------------------------------------------------------------------

    def _txn_add(self, kind: str, body: etree._Element) -> Txn:
        customer = self._ref(body.find("CustomerRef"), _ENTITY, "Customer", kind)
        now = self._tick()
        txn = Txn(
            kind=kind,
            txn_id=self._txn_id(),
            txn_number=next(self._txn_numbers),
            edit_sequence=self._edit_sequence(),
            created=now,
            modified=now,
            customer=customer,
            txn_date=body.findtext("TxnDate") or now.date().isoformat(),
            ref_number="",
            memo="",
        )
        self._fill(txn, body, adding=True)
        self.txns[txn.txn_id] = txn
        return txn

    def _txn_mod(self, kind: str, body: etree._Element) -> Txn:
        txn_id = body.findtext("TxnID") or ""
        txn = self.txns.get(txn_id)
        if txn is None or txn.kind != kind:
            raise _Refusal(3120, f'Object "{txn_id}" specified in the request cannot be found.')
        self._check_sequence(txn.edit_sequence, body.findtext("EditSequence") or "")
        # A request is all or nothing: a refusal half-way leaves the transaction as it was.
        saved = replace(
            txn,
            refs=dict(txn.refs),
            lines=list(txn.lines),
            applied_to=list(txn.applied_to),
            credits=list(txn.credits),
            linked=list(txn.linked),
        )
        try:
            if body.find("CustomerRef") is not None:
                txn.customer = self._ref(body.find("CustomerRef"), _ENTITY, "Customer", kind)
            if kind == "ReceivePayment":
                self._unapply(txn)
            self._fill(txn, body, adding=False)
            if kind == "Invoice" and txn.total < txn.applied:
                raise _Refusal(
                    3180,
                    "There was an error when saving an Invoice. QuickBooks error message: The invoice total "
                    f"{txn.total} is less than the payments and credits applied to it ({txn.applied}).",
                )
        except _Refusal:
            if kind == "ReceivePayment":
                self._unapply(txn)
            for name in ("customer", "txn_date", "ref_number", "memo", "refs", "lines", "subtotal", "tax", "total",
                         "bill_address", "ship_address", "ship_date", "other", "manually_closed"):  # fmt: skip
                setattr(txn, name, getattr(saved, name))
            if kind == "ReceivePayment":
                txn.applied_to, txn.credits = saved.applied_to, saved.credits
                self._reapply(txn)
            raise
        txn.edit_sequence, txn.modified = self._edit_sequence(), self._tick()
        return txn

    def _unapply(self, txn: Txn) -> None:
        """Take a payment's applications off the invoices and credit memos it was applied to."""
        for invoice, amount in txn.applied_to:
            invoice.applied = _cents(invoice.applied - amount)
            self._touch(invoice)
        for credit, invoice, used in txn.credits:
            credit.applied, invoice.applied = _cents(credit.applied - used), _cents(invoice.applied - used)
            self._touch(credit)
            self._touch(invoice)
        txn.applied_to, txn.credits = [], []

    def _reapply(self, txn: Txn) -> None:
        for invoice, amount in txn.applied_to:
            invoice.applied = _cents(invoice.applied + amount)
        for credit, invoice, used in txn.credits:
            credit.applied, invoice.applied = _cents(credit.applied + used), _cents(invoice.applied + used)

    def _touch(self, txn: Txn) -> None:
        """Another transaction changed this one (a payment applied, an invoice linked): QuickBooks gives it a new
        EditSequence, so a Mod sent with the one read before is stale (3200)."""
        txn.edit_sequence, txn.modified = self._edit_sequence(), self._tick()

    def _fill(self, txn: Txn, body: etree._Element, *, adding: bool) -> None:
        kind = txn.kind
        space = "ReceivePayment" if kind == "ReceivePayment" else "Txn"
        if body.findtext("TxnDate"):
            txn.txn_date = body.findtext("TxnDate") or txn.txn_date
        if body.find("RefNumber") is not None:
            txn.ref_number = self._limit(space, "RefNumber", body.findtext("RefNumber") or "")
        if body.find("Memo") is not None:
            txn.memo = self._limit("Txn", "Memo", body.findtext("Memo") or "")
        for tag, target in (
            ("ClassRef", "Class"),
            ("ARAccountRef", "Account"),
            ("DepositToAccountRef", "Account"),
            ("PaymentMethodRef", "PaymentMethod"),
            ("ItemSalesTaxRef", "Item"),
            ("TemplateRef", "Template"),
            ("ShipMethodRef", "ShipMethod"),
        ):
            if body.find(tag) is not None:
                txn.refs[tag] = self._ref(body.find(tag), target, tag.removesuffix("Ref"), kind)
        self._fill_shipping(txn, body, adding=adding)
        if kind == "ReceivePayment":
            self._payment(txn, body)
            return
        if adding:
            for link in body.findall("LinkToTxnID"):
                linked = self.txns.get(link.text or "")
                if linked is None or linked.kind not in ("SalesOrder", "Estimate") or linked.voided:
                    raise _Refusal(3120, f'Object "{link.text}" specified in the request cannot be found.')
                if linked.customer is not txn.customer:
                    raise _Refusal(
                        3180,
                        f"There was an error when saving a {kind}. QuickBooks error message: The transaction to "
                        "link to belongs to another customer.",
                    )
                txn.linked.append(linked.txn_id)
        line_tag = f"{kind}LineAdd" if adding else f"{kind}LineMod"
        lines = body.findall(line_tag)
        if adding:
            txn.lines = [self._line(txn, element) for element in lines]
        elif lines:
            # A Mod that names lines replaces them: TxnLineID -1 adds a line, an existing id changes that line,
            # and the lines it does not name are deleted.
            existing = {line.txn_line_id: line for line in txn.lines}
            kept: list[Line] = []
            for element in lines:
                line_id = element.findtext("TxnLineID") or ""
                if line_id == "-1":
                    kept.append(self._line(txn, element))
                    continue
                if line_id not in existing:
                    raise _Refusal(3120, f'Object "{line_id}" specified in the request cannot be found.')
                kept.append(self._line(txn, element, base=existing.pop(line_id)))
            txn.lines = kept
        txn.subtotal = _cents(sum((line.amount for line in txn.lines), Decimal(0)))
        tax_item = txn.refs.get("ItemSalesTaxRef")
        rate = Decimal(str(tax_item.fields.get("TaxRate", "0"))) if tax_item is not None else Decimal(0)
        taxable = sum((line.amount for line in txn.lines if line.tax_code == "Tax"), Decimal(0))
        txn.tax = _cents(taxable * rate / 100)
        txn.total = _cents(txn.subtotal + txn.tax)
        if adding:
            for linked_id in txn.linked:
                self.txns[linked_id].fully_invoiced = True
                self._touch(self.txns[linked_id])

    def _line(self, txn: Txn, element: etree._Element, *, base: Line | None = None) -> Line:
        """A line from a …LineAdd, or a …LineMod applied to `base` (what it does not say stays as it was)."""
        if base is not None and element.find("ItemRef") is None:
            item = base.item
        else:
            item = self._ref(element.find("ItemRef"), "Item", "Item", txn.kind)
        quantity = _decimal(element.findtext("Quantity"), "Quantity") if element.findtext("Quantity") else None
        rate = _decimal(element.findtext("Rate"), "Rate") if element.findtext("Rate") else None
        if base is not None:
            quantity = quantity if quantity is not None else base.quantity
            rate = rate if rate is not None else base.rate
        if element.findtext("Amount"):
            amount = _cents(_decimal(element.findtext("Amount"), "Amount"))
        elif rate is not None:
            amount = _cents((quantity if quantity is not None else Decimal(1)) * rate)
        elif base is not None:
            amount = base.amount
        else:
            amount = _cents(Decimal(str(item.fields.get("Price", "0"))))
        code = base.tax_code if base is not None else "Non"
        tax_ref = element.find("SalesTaxCodeRef")
        if tax_ref is not None:
            code_obj = self._ref(tax_ref, "SalesTaxCode", "Sales Tax Code", txn.kind)
            code = "Tax" if code_obj.fields.get("IsTaxable") else "Non"
        desc = element.findtext("Desc")
        if desc is None:
            desc = base.desc if base is not None else ""
        line_id = base.txn_line_id if base is not None else self._txn_id()
        return Line(line_id, item, desc, quantity, rate, amount, code)

    def _payment(self, txn: Txn, body: etree._Element) -> None:
        txn.total = _cents(_decimal(body.findtext("TotalAmount") or "0", "TotalAmount"))
        applied = body.findall("AppliedToTxnAdd") or body.findall("AppliedToTxnMod")
        for element in applied:
            txn_id = element.findtext("TxnID") or ""
            invoice = self.txns.get(txn_id)
            if invoice is None or invoice.kind != "Invoice" or invoice.voided:
                raise _Refusal(3120, f'Object "{txn_id}" specified in the request cannot be found.')
            if invoice.customer is not txn.customer:
                raise _Refusal(
                    3180,
                    "There was an error when saving a ReceivePayment. QuickBooks error message: The invoice belongs "
                    "to another customer.",
                )
            amount = _cents(_decimal(element.findtext("PaymentAmount") or "0", "PaymentAmount"))
            for set_credit in element.findall("SetCredit"):
                credit_id = set_credit.findtext("CreditTxnID") or ""
                credit = self.txns.get(credit_id)
                if credit is None or credit.kind != "CreditMemo" or credit.voided:
                    raise _Refusal(3120, f'Object "{credit_id}" specified in the request cannot be found.')
                used = _cents(_decimal(set_credit.findtext("AppliedAmount") or "0", "AppliedAmount"))
                if credit.customer is not txn.customer or used > credit.balance or used > invoice.balance - amount:
                    raise _Refusal(
                        3180,
                        "There was an error when saving a ReceivePayment. QuickBooks error message: The credit "
                        f"applied ({used}) is more than the credit left or the invoice's open balance.",
                    )
                credit.applied = _cents(credit.applied + used)
                invoice.applied = _cents(invoice.applied + used)
                txn.credits.append((credit, invoice, used))
                self._touch(credit)
            if amount > invoice.balance:
                raise _Refusal(
                    3180,
                    "There was an error when saving a ReceivePayment. QuickBooks error message: The payment amount "
                    f"{amount} is more than the open balance {invoice.balance} of invoice {invoice.ref_number}.",
                )
            txn.applied_to.append((invoice, amount))
        for invoice, amount in txn.applied_to:
            invoice.applied = _cents(invoice.applied + amount)
            self._touch(invoice)

    def _target(self, rq: etree._Element, type_tag: str) -> Txn:
        txn_id = rq.findtext("TxnID") or ""
        txn = self.txns.get(txn_id)
        if txn is None or txn.kind != (rq.findtext(type_tag) or ""):
            raise _Refusal(3120, f'Object "{txn_id}" specified in the request cannot be found.')
        return txn

    def _detach(self, txn: Txn) -> None:
        """What a void or a delete undoes around the transaction: a payment's applications, the payments and
        credits applied to an invoice (they stay as the customer's credit), the invoices' links to an order."""
        self._unapply(txn)
        for other in self.txns.values():
            if other is txn or other.kind != "ReceivePayment":
                continue
            kept = [(invoice, amount) for invoice, amount in other.applied_to if invoice is not txn]
            kept_credits = [(c, i, used) for c, i, used in other.credits if txn not in (c, i)]
            if len(kept) != len(other.applied_to) or len(kept_credits) != len(other.credits):
                for credit, invoice, used in other.credits:
                    if txn in (credit, invoice):
                        credit.applied, invoice.applied = _cents(credit.applied - used), _cents(invoice.applied - used)
                for invoice, amount in other.applied_to:
                    if invoice is txn:
                        invoice.applied = _cents(invoice.applied - amount)
                other.applied_to, other.credits = kept, kept_credits
                self._touch(other)

    def _void(self, rq: etree._Element) -> list[etree._Element]:
        """TxnVoid: amounts to zero, "VOID:" before the memo, the record stays. Voiding it again changes nothing."""
        txn = self._target(rq, "TxnVoidType")
        if not txn.voided:
            self._detach(txn)
            txn.voided = True
            txn.memo = f"VOID: {txn.memo}"
            txn.total = txn.subtotal = txn.tax = Decimal("0.00")
            for line in txn.lines:
                line.amount = Decimal("0.00")
                line.quantity = None
            txn.edit_sequence, txn.modified = self._edit_sequence(), self._tick()
            self.stats["voided"] += 1
        out = [etree.Element(tag) for tag in ("TxnVoidType", "TxnID", "TimeCreated", "TimeModified")]
        for element, text in zip(
            out, (txn.kind, txn.txn_id, txn.created.isoformat(), txn.modified.isoformat()), strict=True
        ):
            element.text = text
        if txn.ref_number:
            out.append(etree.Element("RefNumber"))
            out[-1].text = txn.ref_number
        return out

    def _delete(self, rq: etree._Element) -> list[etree._Element]:
        """TxnDel: the transaction is gone (a second delete finds nothing: 3120)."""
        txn = self._target(rq, "TxnDelType")
        self._detach(txn)
        for other in self.txns.values():
            if txn.txn_id in other.linked:
                other.linked.remove(txn.txn_id)
                self._touch(other)
        for linked_id in txn.linked:
            linked = self.txns.get(linked_id)
            if linked is not None:
                linked.fully_invoiced = False
                self._touch(linked)
        del self.txns[txn.txn_id]
        self.deleted[txn.txn_id] = txn
        self.deleted_at[txn.txn_id] = self._tick()
        self.stats["deleted"] += 1
        out = [etree.Element(tag) for tag in ("TxnDelType", "TxnID", "TimeDeleted")]
        for element, text in zip(out, (txn.kind, txn.txn_id, self._tick().isoformat()), strict=True):
            element.text = text
        if txn.ref_number:
            out.append(etree.Element("RefNumber"))
            out[-1].text = txn.ref_number
        return out

    # -- queries ----------------------------------------------------------------------------------------------

    def _query(self, name: str, rq: etree._Element, rs: etree._Element) -> tuple[int, str, list[etree._Element]]:
        iterator = rq.get("iterator")
        if iterator == "Continue":
            iterator_id = rq.get("iteratorID", "")
            state = self.iterators.get(iterator_id)
            if state is None:
                raise _Refusal(3120, f'Object "{iterator_id}" specified in the request cannot be found.')
            page, state.remaining = state.remaining[: state.page], state.remaining[state.page :]
            rs.set("iteratorRemainingCount", str(len(state.remaining)))
            rs.set("iteratorID", iterator_id)
            if not state.remaining:
                del self.iterators[iterator_id]
            return self._found(page)
        if name in TXN_OBJECTS:
            found: list[Any] = self._txn_matches(name, rq)
            build: Callable[[Any], etree._Element] = lambda t: self._txn_ret(  # noqa: E731
                t, lines=(rq.findtext("IncludeLineItems") or "").lower() == "true"
            )
        else:
            found = self._list_matches(name, rq)
            build = self._list_ret
        max_returned = int(rq.findtext("MaxReturned") or 0) or None
        results = [build(obj) for obj in found]
        if iterator == "Start":
            page_size = max_returned or 100
            page, rest = results[:page_size], results[page_size:]
            iterator_id = "{" + hashlib.sha256(f"{id(rq)}{self._tick()}".encode()).hexdigest()[:32] + "}"
            if rest:
                self.iterators[iterator_id] = _Iterator(f"{name}QueryRs", rest, page_size)
            rs.set("iteratorRemainingCount", str(len(rest)))
            rs.set("iteratorID", iterator_id)
            return self._found(page)
        if max_returned is not None:
            results = results[:max_returned]
        return self._found(results)

    @staticmethod
    def _found(results: list[etree._Element]) -> tuple[int, str, list[etree._Element]]:
        if not results:
            return 1, "A query request did not find a matching object in QuickBooks", []
        return 0, "Status OK", results

    def _list_matches(self, name: str, rq: etree._Element) -> list[ListObject]:
        kinds = {
            "Account": ("Account",),
            "Customer": ("Customer",),
            "Item": ITEM_TYPES,
            "ItemSalesTax": ("ItemSalesTax",),
            "Class": ("Class",),
            "SalesTaxCode": ("SalesTaxCode",),
            "PaymentMethod": ("PaymentMethod",),
            "ShipMethod": ("ShipMethod",),
        }[name]
        ids = [e.text or "" for e in rq.findall("ListID")]
        names = [(e.text or "").casefold() for e in rq.findall("FullName")]
        status = rq.findtext("ActiveStatus") or "ActiveOnly"
        found = []
        for obj in self.lists.values():
            if obj.kind not in kinds:
                continue
            if ids and obj.list_id not in ids:
                continue
            if names and obj.name.casefold() not in names:
                continue
            if not ids and not names:
                if status == "ActiveOnly" and not obj.is_active:
                    continue
                if status == "InactiveOnly" and obj.is_active:
                    continue
            found.append(obj)
        return found

    def _txn_matches(self, name: str, rq: etree._Element) -> list[Txn]:
        ids = [e.text or "" for e in rq.findall("TxnID")]
        refs = [e.text or "" for e in rq.findall("RefNumber")]
        found = []
        for txn in self.txns.values():
            if txn.kind != name:
                continue
            if ids and txn.txn_id not in ids:
                continue
            if refs and txn.ref_number not in refs:
                continue
            if not self._modified_within(txn, rq.find("ModifiedDateRangeFilter")):
                continue
            found.append(txn)
        found.sort(key=lambda t: (t.modified, t.txn_number))
        if ids and not found:
            raise _Refusal(3120, f'Object "{ids[0]}" specified in the request cannot be found.')
        return found

    # -- answers ----------------------------------------------------------------------------------------------

    def _stamp(self, ret: etree._Element, created: datetime, modified: datetime, sequence: str) -> None:
        _sub(ret, "TimeCreated", created.isoformat())
        _sub(ret, "TimeModified", modified.isoformat())
        _sub(ret, "EditSequence", sequence)

    def _list_ret(self, obj: ListObject) -> etree._Element:
        if obj.kind == "Customer":
            return self._customer_ret(obj)
        if obj.kind.startswith("Item"):
            return self._item_ret(obj)
        ret = etree.Element(f"{obj.kind}Ret")
        _sub(ret, "ListID", obj.list_id)
        self._stamp(ret, obj.created, obj.modified, obj.edit_sequence)
        _sub(ret, "Name", obj.name.rsplit(":", 1)[-1])
        if obj.kind in ("Account", "Class"):
            _sub(ret, "FullName", obj.name)
        _sub(ret, "IsActive", "true" if obj.is_active else "false")
        if obj.kind == "Account":
            _sub(ret, "AccountType", str(obj.fields.get("AccountType", "")))
            if obj.fields.get("SpecialAccountType"):
                _sub(ret, "SpecialAccountType", str(obj.fields["SpecialAccountType"]))
        if obj.kind == "SalesTaxCode":
            _sub(ret, "IsTaxable", "true" if obj.fields.get("IsTaxable") else "false")
        if obj.kind == "PaymentMethod":
            _sub(ret, "PaymentMethodType", str(obj.fields.get("PaymentMethodType", "Other")))
        return ret

    def _customer_ret(self, obj: ListObject) -> etree._Element:
        ret = etree.Element("CustomerRet")
        _sub(ret, "ListID", obj.list_id)
        self._stamp(ret, obj.created, obj.modified, obj.edit_sequence)
        _sub(ret, "Name", obj.name)
        _sub(ret, "FullName", obj.name)
        _sub(ret, "IsActive", "true" if obj.is_active else "false")
        _sub(ret, "Sublevel", "0")
        for tag in ("CompanyName", "FirstName", "LastName"):
            if obj.fields.get(tag):
                _sub(ret, tag, str(obj.fields[tag]))
        for tag in ("BillAddress", "ShipAddress"):
            address = obj.fields.get(tag)
            if isinstance(address, dict):
                element = etree.SubElement(ret, tag)
                for key, value in address.items():
                    _sub(element, key, value)
        for tag in ("Phone", "Email"):
            if obj.fields.get(tag):
                _sub(ret, tag, str(obj.fields[tag]))
        balance = sum((t.balance for t in self.txns.values() if t.kind == "Invoice" and t.customer is obj), Decimal(0))
        _sub(ret, "Balance", f"{_cents(balance):.2f}")
        return ret

    def _item_ret(self, obj: ListObject) -> etree._Element:
        ret = etree.Element(f"{obj.kind}Ret")
        _sub(ret, "ListID", obj.list_id)
        self._stamp(ret, obj.created, obj.modified, obj.edit_sequence)
        _sub(ret, "Name", obj.name)
        _sub(ret, "FullName", obj.name)
        _sub(ret, "IsActive", "true" if obj.is_active else "false")
        if obj.fields.get("ManufacturerPartNumber"):
            _sub(ret, "ManufacturerPartNumber", str(obj.fields["ManufacturerPartNumber"]))
        if obj.kind == "ItemSalesTax":
            _sub(ret, "TaxRate", str(obj.fields.get("TaxRate", "0")))
        account = obj.fields.get("AccountRef") or obj.fields.get("IncomeAccountRef")
        if isinstance(account, ListObject):
            if obj.kind in ("ItemDiscount", "ItemInventory"):
                _ref_element(ret, "AccountRef" if obj.kind == "ItemDiscount" else "IncomeAccountRef", account)
            else:
                sale = etree.SubElement(ret, "SalesOrPurchase")
                if obj.fields.get("Desc"):
                    _sub(sale, "Desc", str(obj.fields["Desc"]))
                if obj.fields.get("Price") is not None:
                    _sub(sale, "Price", f"{obj.fields['Price']:.2f}")
                _ref_element(sale, "AccountRef", account)
        return ret

    def _txn_ret(self, txn: Txn, *, lines: bool) -> etree._Element:
        ret = etree.Element(f"{txn.kind}Ret")
        _sub(ret, "TxnID", txn.txn_id)
        self._stamp(ret, txn.created, txn.modified, txn.edit_sequence)
        _sub(ret, "TxnNumber", str(txn.txn_number))
        _ref_element(ret, "CustomerRef", txn.customer)
        for tag in ("ClassRef", "ARAccountRef"):
            if tag in txn.refs:
                _ref_element(ret, tag, txn.refs[tag])
        _sub(ret, "TxnDate", txn.txn_date)
        if txn.ref_number:
            _sub(ret, "RefNumber", txn.ref_number)
        if txn.kind != "ReceivePayment":
            self._shipping_ret(ret, txn)
        if txn.kind == "ReceivePayment":
            _sub(ret, "TotalAmount", f"{txn.total:.2f}")
            if "PaymentMethodRef" in txn.refs:
                _ref_element(ret, "PaymentMethodRef", txn.refs["PaymentMethodRef"])
            if txn.memo:
                _sub(ret, "Memo", txn.memo)
            if "DepositToAccountRef" in txn.refs:
                _ref_element(ret, "DepositToAccountRef", txn.refs["DepositToAccountRef"])
            applied = sum((amount for _invoice, amount in txn.applied_to), Decimal(0))
            _sub(ret, "UnusedPayment", f"{_cents(txn.total - applied):.2f}")
            for invoice, amount in txn.applied_to:
                element = etree.SubElement(ret, "AppliedToTxnRet")
                _sub(element, "TxnID", invoice.txn_id)
                _sub(element, "TxnType", "Invoice")
                _sub(element, "TxnDate", invoice.txn_date)
                _sub(element, "RefNumber", invoice.ref_number)
                _sub(element, "BalanceRemaining", f"{invoice.balance:.2f}")
                _sub(element, "Amount", f"{amount:.2f}")
            return ret
        _sub(ret, "Subtotal", f"{txn.subtotal:.2f}")
        _sub(ret, "SalesTaxTotal", f"{txn.tax:.2f}")
        if txn.kind == "Invoice":
            # Like QuickBooks, an InvoiceRet has no TotalAmount: Subtotal + SalesTaxTotal, less what was applied.
            _sub(ret, "AppliedAmount", f"{-txn.applied:.2f}")
            _sub(ret, "BalanceRemaining", f"{txn.balance:.2f}")
            _sub(ret, "IsPaid", "true" if txn.balance == 0 else "false")
        else:
            _sub(ret, "TotalAmount", f"{txn.total:.2f}")
        if txn.kind == "SalesOrder":
            _sub(ret, "IsManuallyClosed", "true" if txn.manually_closed else "false")
            _sub(ret, "IsFullyInvoiced", "true" if txn.fully_invoiced else "false")
        if txn.memo:
            _sub(ret, "Memo", txn.memo)
        if txn.other:
            _sub(ret, "Other", txn.other)
        if "PaymentMethodRef" in txn.refs:
            _ref_element(ret, "PaymentMethodRef", txn.refs["PaymentMethodRef"])
        if "DepositToAccountRef" in txn.refs:
            _ref_element(ret, "DepositToAccountRef", txn.refs["DepositToAccountRef"])
        for linked in txn.linked:
            element = etree.SubElement(ret, "LinkedTxn")
            _sub(element, "TxnID", linked)
            _sub(element, "TxnType", self.txns[linked].kind)
        if lines:
            for line in txn.lines:
                element = etree.SubElement(ret, f"{txn.kind}LineRet")
                _sub(element, "TxnLineID", line.txn_line_id)
                _ref_element(element, "ItemRef", line.item)
                if line.desc:
                    _sub(element, "Desc", line.desc)
                if line.quantity is not None:
                    _sub(element, "Quantity", str(line.quantity))
                if line.rate is not None:
                    _sub(element, "Rate", str(line.rate))
                _sub(element, "Amount", f"{line.amount:.2f}")
                tax_code = etree.SubElement(element, "SalesTaxCodeRef")
                _sub(tax_code, "FullName", line.tax_code)
        return ret

    # -- the header fields of shipping (the reverse direction) ---------------------------------------------------

    def _fill_shipping(self, txn: Txn, body: etree._Element, *, adding: bool) -> None:
        """BillAddress, ShipAddress, ShipDate, Other and (sales orders) IsManuallyClosed. As QuickBooks does, a
        new sale without addresses takes its customer's; a Mod changes only what it names."""
        if txn.kind == "ReceivePayment":
            return
        for tag, name in (("BillAddress", "bill_address"), ("ShipAddress", "ship_address")):
            element = body.find(tag)
            if element is not None:
                setattr(txn, name, {c.tag: c.text or "" for c in element if isinstance(c.tag, str)})
            elif adding and isinstance(txn.customer.fields.get(tag), dict):
                setattr(txn, name, dict(txn.customer.fields[tag]))
        if body.find("ShipDate") is not None:
            ship_date = (body.findtext("ShipDate") or "").strip()
            try:
                datetime.fromisoformat(ship_date)
            except ValueError:
                raise _Refusal(3020, f'There was an error when converting the date "{ship_date}" in the field '
                               '"ShipDate".') from None  # fmt: skip
            txn.ship_date = ship_date
        if body.find("Other") is not None:
            txn.other = self._limit("Txn", "Other", body.findtext("Other") or "")
        if body.find("IsManuallyClosed") is not None:
            txn.manually_closed = (body.findtext("IsManuallyClosed") or "").strip().lower() == "true"

    @staticmethod
    def _shipping_ret(ret: etree._Element, txn: Txn) -> None:
        for tag, address in (("BillAddress", txn.bill_address), ("ShipAddress", txn.ship_address)):
            if address:
                element = etree.SubElement(ret, tag)
                for key, value in address.items():
                    _sub(element, key, value)
        if txn.ship_date:
            _sub(ret, "ShipDate", txn.ship_date)
        if "ShipMethodRef" in txn.refs:
            _ref_element(ret, "ShipMethodRef", txn.refs["ShipMethodRef"])

    @staticmethod
    def _modified_within(txn: Txn, window: etree._Element | None) -> bool:
        """ModifiedDateRangeFilter: FromModifiedDate and ToModifiedDate, both inclusive."""
        if window is None:
            return True
        since = (window.findtext("FromModifiedDate") or "").strip()
        until = (window.findtext("ToModifiedDate") or "").strip()
        if since and txn.modified < _moment(since, "FromModifiedDate"):
            return False
        return not (until and txn.modified > _moment(until, "ToModifiedDate"))

    def _deleted_query(self, rq: etree._Element) -> list[etree._Element]:
        """TxnDeletedQuery: the deletions of the named types, within DeletedDateRangeFilter (inclusive)."""
        types = {(e.text or "").strip() for e in rq.findall("TxnDelType")}
        window = rq.find("DeletedDateRangeFilter")
        since = (window.findtext("FromDeletedDate") or "").strip() if window is not None else ""
        until = (window.findtext("ToDeletedDate") or "").strip() if window is not None else ""
        out = []
        for txn_id, when in sorted(self.deleted_at.items(), key=lambda pair: pair[1]):
            txn = self.deleted[txn_id]
            if txn.kind not in types:
                continue
            if since and when < _moment(since, "FromDeletedDate"):
                continue
            if until and when > _moment(until, "ToDeletedDate"):
                continue
            ret = etree.Element("TxnDeletedRet")
            _sub(ret, "TxnDelType", txn.kind)
            _sub(ret, "TxnID", txn.txn_id)
            _sub(ret, "TimeCreated", txn.created.isoformat())
            _sub(ret, "TimeDeleted", when.isoformat())
            if txn.ref_number:
                _sub(ret, "RefNumber", txn.ref_number)
            out.append(ret)
        return out

    # -- for tests and the demo -------------------------------------------------------------------------------

    def set_clock(self, moment: datetime) -> None:
        """Set the company file's clock (TimeCreated/TimeModified of what comes next), e.g. to the real time."""
        with self._lock:
            self._clock = moment

    def total_of(self, txn: Txn) -> Decimal:
        return txn.total

    def by_memo(self, text: str) -> list[Txn]:
        return [t for t in self.txns.values() if text in t.memo]

    def host_response(self) -> str:
        """The HostQuery/CompanyQuery answer the Web Connector passes on its first sendRequestXML."""
        return (
            '<?xml version="1.0" ?><QBXML><QBXMLMsgsRs>'
            '<HostQueryRs requestID="1" statusCode="0" statusSeverity="Info" statusMessage="Status OK"><HostRet>'
            "<ProductName>QuickBooks Enterprise Solutions 24.0 (ledgerlink stand-in)</ProductName>"
            f"<MajorVersion>34</MajorVersion><MinorVersion>0</MinorVersion><Country>{self.country}</Country>"
            "<SupportedQBXMLVersion>13.0</SupportedQBXMLVersion><SupportedQBXMLVersion>16.0</SupportedQBXMLVersion>"
            "<IsAutomaticLogin>false</IsAutomaticLogin><QBFileMode>SingleUser</QBFileMode></HostRet></HostQueryRs>"
            '<CompanyQueryRs requestID="2" statusCode="0" statusSeverity="Info" statusMessage="Status OK">'
            f"<CompanyRet><CompanyName>{self.name}</CompanyName></CompanyRet></CompanyQueryRs>"
            "</QBXMLMsgsRs></QBXML>"
        )


def _moment(text: str, field_name: str) -> datetime:
    """A qbXML DATETIMETYPE; one without an offset is read as the company's time (UTC here)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _Refusal(
            3020, f'There was an error when converting the date "{text}" in the field "{field_name}".'
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _sub(parent: etree._Element, tag: str, text: str) -> etree._Element:
    element = etree.SubElement(parent, tag)
    element.text = text
    return element


def _ref_element(parent: etree._Element, tag: str, obj: ListObject) -> None:
    element = etree.SubElement(parent, tag)
    _sub(element, "ListID", obj.list_id)
    _sub(element, "FullName", obj.name)


def _answer(answers: Iterable[etree._Element], *, status: str | None = None, new_id: str | None = None) -> str:
    root = etree.Element("QBXML")
    msgs = etree.SubElement(root, "QBXMLMsgsRs")
    if new_id is not None:
        msgs.set("newMessageSetID", new_id)
    if status is not None:
        msgs.set("messageSetStatusCode", status)
    for rs in answers:
        msgs.append(rs)
    return '<?xml version="1.0" ?>\n' + etree.tostring(root, encoding="unicode")


def _with_status(answer: str, status: str) -> str:
    root = parse_xml(answer)
    msgs = root.find("QBXMLMsgsRs")
    if msgs is not None:
        msgs.set("messageSetStatusCode", status)
    return '<?xml version="1.0" ?>\n' + etree.tostring(root, encoding="unicode")


def seed_company(company: QbdCompany) -> None:
    """A small US company: the accounts a bookkeeper maps, tax codes, a tax item, payment methods, items."""
    accounts = [
        ("Checking", "Bank", ""),
        ("Undeposited Funds", "OtherCurrentAsset", "UndepositedFunds"),
        ("Accounts Receivable", "AccountsReceivable", "AccountsReceivable"),
        ("Inventory Asset", "OtherCurrentAsset", "InventoryAssets"),
        ("Sales Tax Payable", "OtherCurrentLiability", "SalesTaxPayable"),
        ("Sales", "Income", ""),
        ("Shipping and Delivery Income", "Income", ""),
        ("Sales Discounts", "Income", ""),
        ("Cost of Goods Sold", "CostOfGoodsSold", "CostOfGoodsSold"),
        ("Opening Balance Equity", "Equity", "OpeningBalanceEquity"),
    ]
    for name, kind, special in accounts:
        company.add_list_object("Account", name, AccountType=kind, SpecialAccountType=special)
    company.add_list_object("SalesTaxCode", "Tax", IsTaxable=True)
    company.add_list_object("SalesTaxCode", "Non", IsTaxable=False)
    payable = company.find("Account", "Sales Tax Payable")
    company.add_list_object("ItemSalesTax", "State Tax", TaxRate="6.25", AccountRef=payable)
    for method, kind in (("Cash", "Cash"), ("Check", "Check"), ("Visa", "Visa"), ("MasterCard", "MasterCard")):
        company.add_list_object("PaymentMethod", method, PaymentMethodType=kind)
    company.add_list_object("Class", "Online")
    company.add_list_object("Class", "Retail")
    sales = company.find("Account", "Sales")
    company.add_list_object("ItemService", "Consulting", AccountRef=sales, Price=Decimal("95.00"))
    company.add_list_object("ItemNonInventory", "Gift Card", AccountRef=sales, ManufacturerPartNumber="GIFT")
    company.add_list_object(
        "ItemOtherCharge", "Shipping", AccountRef=company.find("Account", "Shipping and Delivery Income")
    )
    for method in ("UPS", "FedEx", "US Mail"):  # part of QuickBooks' default Ship Via list
        company.add_list_object("ShipMethod", method)
