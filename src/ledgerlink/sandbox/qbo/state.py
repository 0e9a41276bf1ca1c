"""The company file of the QBO sandbox: entities, business rules, queries, CDC, and OAuth tokens.

Everything here is plain in-memory state behind one re-entrant lock (`Company.lock`); callers hold it
for a whole request so a request is atomic, like a QuickBooks write. Money is `Decimal` throughout.
The rules are deliberately as strict as QuickBooks Online's, with the same error codes, because this is
where our own mapping bugs are meant to surface.
"""

from __future__ import annotations

import copy
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from ledgerlink.sandbox.qbo.limits import QboLimits
from ledgerlink.sandbox.qbo.query import QuerySyntaxError, matches, parse, project, run

JSON = dict[str, Any]

# QuickBooks answers in the company's local time; the sandbox company sits in US Pacific (standard time).
PACIFIC = timezone(timedelta(hours=-8))
CENT = Decimal("0.01")
ZERO = Decimal(0)

SALES_TYPES: tuple[str, ...] = ("SalesReceipt", "Invoice", "Estimate", "CreditMemo", "RefundReceipt")
TRANSACTION_TYPES: tuple[str, ...] = (*SALES_TYPES, "Payment")
VOIDABLE_TYPES: tuple[str, ...] = ("SalesReceipt", "Invoice", "Payment", "CreditMemo", "RefundReceipt")
NAME_LIST_TYPES: tuple[str, ...] = ("Customer", "Item", "Account", "PaymentMethod", "Class", "Term", "Department")
WRITABLE_TYPES: tuple[str, ...] = (*TRANSACTION_TYPES, *NAME_LIST_TYPES)
READ_ONLY_TYPES: tuple[str, ...] = ("TaxCode", "CompanyInfo", "Preferences")
QUERYABLE_TYPES: tuple[str, ...] = (*WRITABLE_TYPES, *READ_ONLY_TYPES)
CDC_TYPES: tuple[str, ...] = WRITABLE_TYPES

# How a duplicate-DocNumber error names the other document (QBO uses the UI label, with spaces).
TXN_TYPE_LABELS = {
    "SalesReceipt": "Sales Receipt",
    "Invoice": "Invoice",
    "Estimate": "Estimate",
    "CreditMemo": "Credit Memo",
    "RefundReceipt": "Refund Receipt",
}

SHIPPING_ITEM_ID = "SHIPPING_ITEM_ID"
MAX_LINES = 750
MAX_DOC_NUMBER = 21
CDC_MAX_OBJECTS = 1000
CDC_LOOKBACK = timedelta(days=30)

ACCOUNT_CLASSIFICATION = {
    "Bank": "Asset",
    "Other Current Asset": "Asset",
    "Fixed Asset": "Asset",
    "Other Asset": "Asset",
    "Accounts Receivable": "Asset",
    "Equity": "Equity",
    "Expense": "Expense",
    "Other Expense": "Expense",
    "Cost of Goods Sold": "Expense",
    "Accounts Payable": "Liability",
    "Credit Card": "Liability",
    "Long Term Liability": "Liability",
    "Other Current Liability": "Liability",
    "Income": "Revenue",
    "Other Income": "Revenue",
}
DEFAULT_SUBTYPE = {
    "Bank": "Checking",
    "Other Current Asset": "OtherCurrentAssets",
    "Fixed Asset": "OtherFixedAssets",
    "Other Asset": "OtherLongTermAssets",
    "Accounts Receivable": "AccountsReceivable",
    "Equity": "OwnersEquity",
    "Expense": "OtherMiscellaneousServiceCost",
    "Other Expense": "OtherMiscellaneousExpense",
    "Cost of Goods Sold": "SuppliesMaterialsCogs",
    "Accounts Payable": "AccountsPayable",
    "Credit Card": "CreditCard",
    "Long Term Liability": "OtherLongTermLiabilities",
    "Other Current Liability": "OtherCurrentLiabilities",
    "Income": "SalesOfProductIncome",
    "Other Income": "OtherMiscellaneousIncome",
}
ITEM_TYPES = ("Inventory", "Service", "NonInventory")
BOOKKEEPING_FIELDS = ("Id", "SyncToken", "MetaData", "domain", "sparse", "status", "time")

BUSINESS_MESSAGE = "A business validation error has occurred while processing your request"
REQUIRED_MESSAGE = "Required param missing, need to supply the required value for the API"
INVALID_PROPERTY_MESSAGE = "Request has invalid or unsupported property"
LENGTH_DETAIL = "String length is either shorter or longer than supported by specification. Min:0 Max:{max}"
DUPLICATE_NAME_DETAIL = (
    "The name supplied already exists. : Another customer, vendor or employee is already using this name. "
    "Please use a different name."
)
DUPLICATE_ITEM_DETAIL = (
    "The name supplied already exists. : Another product or service is already using this name. "
    "Please use a different name."
)


class QboError(Exception):
    """A QuickBooks fault: HTTP status plus one `Fault.Error[]` entry."""

    def __init__(
        self,
        code: str,
        message: str,
        detail: str = "",
        element: str = "",
        *,
        status: int = 400,
        fault_type: str = "ValidationFault",
    ) -> None:
        super().__init__(f"{code} {message}: {detail}")
        self.code = code
        self.message = message
        self.detail = detail
        self.element = element
        self.status = status
        self.fault_type = fault_type

    def fault(self) -> JSON:
        """The `Fault` object as QuickBooks writes it (also the shape of a batch item's fault)."""
        return {
            "Error": [{"Message": self.message, "Detail": self.detail, "code": self.code, "element": self.element}],
            "type": self.fault_type,
        }


def business_error(detail: str, element: str = "") -> QboError:
    """Code 6000, QBO's catch-all business validation fault."""
    return QboError("6000", BUSINESS_MESSAGE, f"Business Validation Error: {detail}", element)


def required_error(element: str) -> QboError:
    """Code 2020: a required field was not sent."""
    return QboError("2020", REQUIRED_MESSAGE, f"Required parameter {element} is missing in the request", element)


def invalid_property(element: str, detail: str) -> QboError:
    """Code 2010: a field has an unusable value or is not allowed here."""
    return QboError("2010", INVALID_PROPERTY_MESSAGE, f"Property Name:{element} {detail}", element)


def unsupported(detail: str) -> QboError:
    """Code 500: the operation does not exist for this entity."""
    return QboError("500", "Unsupported Operation", detail)


def not_found(detail: str, element: str = "") -> QboError:
    """Code 610: a referenced or requested object is missing or inactive."""
    return QboError("610", "Object Not Found", f"Object Not Found : {detail}", element)


def stale_object() -> QboError:
    """Code 5010: the SyncToken sent is not the current one."""
    return QboError(
        "5010",
        "Stale Object Error",
        "Stale Object Error : You and another user were working on the same thing at the same time. "
        "The other user finished before you did, so your work was not saved.",
    )


def length_error(element: str, maximum: int) -> QboError:
    """Code 6000 with QBO's string-length detail."""
    return QboError("6000", BUSINESS_MESSAGE, LENGTH_DETAIL.format(max=maximum), element)


def money(value: Any, element: str) -> Decimal:
    """A JSON number (or numeric string) as Decimal; anything else is a 2010 fault."""
    if isinstance(value, bool) or value is None:
        raise invalid_property(element, f"specified value is not a number: {value!r}")
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation as exc:
        raise invalid_property(element, f"specified value is not a number: {value!r}") from exc
    if not number.is_finite():
        raise invalid_property(element, f"specified value is not a number: {value!r}")
    return number


def _optional_money(value: Any, element: str) -> Decimal | None:
    if value is None or value == "":
        return None
    return money(value, element)


def _blank(value: Any) -> bool:
    return value is None or value == "" or value == {} or value == []


def parse_instant(text: str) -> datetime:
    """An ISO-8601 timestamp; a naive one is read in the company's offset."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=PACIFIC)


def default_clock() -> datetime:
    """Wall-clock time in the sandbox company's offset."""
    return datetime.now(PACIFIC)


class Company:
    """One QuickBooks company (realm): its entities, preferences and the rules that guard them.

    Callers must hold `lock` around every call; the public methods assume it.
    """

    def __init__(self, realm_id: str, *, country: str = "US", clock: Callable[[], datetime] | None = None) -> None:
        self.realm_id = realm_id
        self.country = country
        self.clock = clock or default_clock
        self.lock = threading.RLock()
        self.store: dict[str, dict[str, JSON]] = {name: {} for name in QUERYABLE_TYPES}
        self.deleted: dict[str, dict[str, datetime]] = {name: {} for name in WRITABLE_TYPES}
        self._next_id = 1

    # --- clock and identity ----------------------------------------------------------------------

    def now(self) -> datetime:
        """The current time in the company's offset."""
        moment = self.clock()
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=PACIFIC)
        return moment.astimezone(PACIFIC)

    def stamp(self, moment: datetime | None = None) -> str:
        """A MetaData timestamp, e.g. 2014-09-16T14:59:48-08:00."""
        return (moment or self.now()).astimezone(PACIFIC).isoformat(timespec="seconds")

    def response_time(self) -> str:
        """The `time` field of an answer, with milliseconds as QBO writes it."""
        return self.now().isoformat(timespec="milliseconds")

    def new_id(self) -> str:
        """The next entity Id: increasing integers as strings, shared by all entity types."""
        value = self._next_id
        self._next_id += 1
        return str(value)

    @property
    def is_us(self) -> bool:
        """True for a US company (automated sales tax, no GlobalTaxCalculation)."""
        return self.country.upper() == "US"

    @property
    def preferences(self) -> JSON:
        """The live Preferences object."""
        return self.store["Preferences"]["1"]

    @property
    def company_info(self) -> JSON:
        """The live CompanyInfo object."""
        return next(iter(self.store["CompanyInfo"].values()))

    def sales_pref(self, name: str) -> Any:
        """One of Preferences.SalesFormsPrefs."""
        return self.preferences.get("SalesFormsPrefs", {}).get(name)

    def insert(self, entity: str, fields: JSON, *, entity_id: str | None = None, when: datetime | None = None) -> JSON:
        """Store an object as-is (seeding and read-only lists); no rules are applied."""
        moment = self.stamp(when)
        obj: JSON = {
            "Id": entity_id or self.new_id(),
            "SyncToken": "0",
            "domain": "QBO",
            "sparse": False,
            **fields,
            "MetaData": {"CreateTime": moment, "LastUpdatedTime": moment},
        }
        self.store[entity][obj["Id"]] = obj
        return obj

    def find(self, entity: str, **where: Any) -> JSON | None:
        """The first stored object whose top-level fields equal `where` (used by seeding and tests)."""
        for obj in self.store[entity].values():
            if all(obj.get(key) == value for key, value in where.items()):
                return obj
        return None

    # --- reads ------------------------------------------------------------------------------------

    def read(self, entity: str, entity_id: str) -> JSON:
        """A deep copy of one object, or 610."""
        obj = self.store.get(entity, {}).get(entity_id)
        if obj is None:
            raise not_found(
                "Something you're trying to use has been made inactive or deleted. "
                f"{entity} with Id {entity_id} was not found.",
            )
        return copy.deepcopy(obj)

    def query(self, text: str) -> JSON:
        """Run a query and return the `QueryResponse` object."""
        try:
            select = parse(text)
        except QuerySyntaxError as exc:
            raise QboError("4000", "Error parsing query", str(exc)) from exc
        entity = canonical_type(select.entity, QUERYABLE_TYPES)
        if entity is None:
            raise QboError(
                "4000", "Error parsing query", f"QueryParserError: Invalid context declaration : {select.entity}"
            )
        rows: Iterable[JSON] = self.store[entity].values()
        if entity in NAME_LIST_TYPES and not select.mentions("Active"):
            # QBO hides inactive names unless the query asks about Active itself.
            rows = [row for row in rows if row.get("Active", True) is not False]
        if select.count:
            total = sum(1 for row in rows if all(matches(row, cond) for cond in select.where))
            return {"totalCount": total}
        found = run(select, rows)
        if not found:
            return {}
        if select.fields is not None:
            found = [project(row, select.fields) for row in found]
        return {
            entity: copy.deepcopy(found),
            "startPosition": select.start_position,
            "maxResults": len(found),
        }

    def cdc(self, entity_names: Iterable[str], since: datetime) -> list[JSON]:
        """The `QueryResponse` blocks of a CDC answer: changes and deletions at or after `since`."""
        if since < self.now() - CDC_LOOKBACK:
            raise QboError(
                "2010",
                INVALID_PROPERTY_MESSAGE,
                "Property Name:changedSince cannot be more than 30 days in the past",
                "changedSince",
            )
        blocks: list[JSON] = []
        room = CDC_MAX_OBJECTS
        for raw in entity_names:
            entity = canonical_type(raw, CDC_TYPES)
            if entity is None:
                raise invalid_property("entities", f"contains an entity CDC does not support: {raw}")
            changed: list[tuple[datetime, JSON]] = []
            for obj in self.store[entity].values():
                updated = parse_instant(obj["MetaData"]["LastUpdatedTime"])
                if updated >= since:
                    changed.append((updated, copy.deepcopy(obj)))
            for entity_id, when in self.deleted[entity].items():
                if when >= since:
                    stub = {
                        "Id": entity_id,
                        "status": "Deleted",
                        "domain": "QBO",
                        "MetaData": {"LastUpdatedTime": self.stamp(when)},
                    }
                    changed.append((when, stub))
            changed.sort(key=lambda pair: pair[0])
            rows = [row for _, row in changed][: max(room, 0)]
            room -= len(rows)
            blocks.append({entity: rows, "startPosition": 1, "maxResults": len(rows)} if rows else {})
        return blocks

    # --- writes -----------------------------------------------------------------------------------

    def write(
        self, entity: str, body: Any, *, operation: str | None = None, allow_duplicate_docnum: bool = False
    ) -> JSON:
        """Create, update, void or delete one object, enforcing QBO's rules; returns the stored object.

        For `operation="delete"` the result is QBO's deletion stub `{"Id", "status": "Deleted", "domain"}`.
        """
        if entity not in WRITABLE_TYPES:
            raise unsupported(f"Operation {operation or 'Create'} is not supported for {entity}.")
        if not isinstance(body, dict):
            raise QboError("2010", INVALID_PROPERTY_MESSAGE, f"The request body must be a {entity} object")
        if len(body) == 1 and entity in body:
            # python-quickbooks and QBO both send/expect the bare object; a wrapped one is a client bug.
            raise invalid_property(entity, f'Unrecognized field "{entity}": send the {entity} object bare')
        op = (operation or "").lower()
        if op == "delete":
            return self._delete(entity, body)
        if op == "void":
            return self._void(entity, body)
        if op not in ("", "create", "update"):
            raise unsupported(f"Operation {operation} is not supported.")
        if op == "create":
            body = {key: value for key, value in body.items() if key not in ("Id", "SyncToken")}
        has_id = not _blank(body.get("Id"))
        if op == "update" and not has_id:
            raise required_error("Id")
        existing = self._current(entity, body) if has_id else None
        if existing is None:
            candidate = {k: copy.deepcopy(v) for k, v in body.items() if k not in BOOKKEEPING_FIELDS}
        elif body.get("sparse") is True:
            candidate = {k: copy.deepcopy(v) for k, v in existing.items() if k not in BOOKKEEPING_FIELDS}
            candidate.update({k: copy.deepcopy(v) for k, v in body.items() if k not in BOOKKEEPING_FIELDS})
        else:
            # A full update replaces the object: whatever writable field is omitted is cleared.
            candidate = {k: copy.deepcopy(v) for k, v in body.items() if k not in BOOKKEEPING_FIELDS}
        # A new object gets its Id only once it passed the rules, so failed creates burn no Ids.
        known_id = existing["Id"] if existing is not None else ""
        prepared = self._prepare(entity, candidate, existing, known_id, allow_duplicate_docnum)
        return self._commit(entity, known_id or self.new_id(), prepared, existing)

    def update_preferences(self, body: Any) -> JSON:
        """Merge a Preferences update (sections are merged field by field, as QBO does)."""
        if not isinstance(body, dict):
            raise QboError("2010", INVALID_PROPERTY_MESSAGE, "The request body must be a Preferences object")
        current = self.preferences
        if _blank(body.get("SyncToken")):
            raise required_error("SyncToken")
        if str(body["SyncToken"]) != current["SyncToken"]:
            raise stale_object()
        for section, values in body.items():
            if section in BOOKKEEPING_FIELDS:
                continue
            if isinstance(values, dict) and isinstance(current.get(section), dict):
                current[section].update(copy.deepcopy(values))
            else:
                current[section] = copy.deepcopy(values)
        self._touch(current)
        return copy.deepcopy(current)

    def _current(self, entity: str, body: JSON) -> JSON:
        entity_id = str(body["Id"])
        existing = self.store[entity].get(entity_id)
        if existing is None:
            raise not_found(
                f"Another user has deleted this transaction or the {entity} with Id {entity_id} does not exist.",
                "Id",
            )
        if _blank(body.get("SyncToken")):
            raise required_error("SyncToken")
        if str(body["SyncToken"]) != existing["SyncToken"]:
            raise stale_object()
        return existing

    def _touch(self, obj: JSON) -> None:
        obj["SyncToken"] = str(int(obj["SyncToken"]) + 1)
        obj.setdefault("MetaData", {})["LastUpdatedTime"] = self.stamp()

    def _commit(self, entity: str, entity_id: str, prepared: JSON, existing: JSON | None) -> JSON:
        moment = self.stamp()
        created = existing["MetaData"]["CreateTime"] if existing is not None else moment
        sync = str(int(existing["SyncToken"]) + 1) if existing is not None else "0"
        obj: JSON = {
            "domain": "QBO",
            "sparse": False,
            "Id": entity_id,
            "SyncToken": sync,
            "MetaData": {"CreateTime": created, "LastUpdatedTime": moment},
            **prepared,
        }
        self._apply_effects(entity, existing, obj)
        self.store[entity][entity_id] = obj
        self._after_store(entity, obj, removed=existing)
        return copy.deepcopy(obj)

    def _void(self, entity: str, body: JSON) -> JSON:
        if entity not in VOIDABLE_TYPES:
            raise unsupported(f"Operation Void is not supported for {entity}.")
        if _blank(body.get("Id")):
            raise required_error("Id")
        existing = self._current(entity, body)
        voided = {k: copy.deepcopy(v) for k, v in existing.items() if k not in BOOKKEEPING_FIELDS}
        for line in voided.get("Line", []):
            if "Amount" in line:
                line["Amount"] = ZERO
            detail = line.get("SalesItemLineDetail")
            if isinstance(detail, dict) and "Qty" in detail:
                detail["Qty"] = ZERO
        tax = voided.get("TxnTaxDetail")
        if isinstance(tax, dict):
            tax["TotalTax"] = ZERO
            for tax_line in tax.get("TaxLine", []) or []:
                if isinstance(tax_line, dict) and "Amount" in tax_line:
                    tax_line["Amount"] = ZERO
        voided["TotalAmt"] = ZERO
        voided["Balance"] = ZERO
        if entity == "Payment":
            voided["UnappliedAmt"] = ZERO
        if entity == "CreditMemo":
            voided["RemainingCredit"] = ZERO
        note = existing.get("PrivateNote") or ""
        voided["PrivateNote"] = f"Voided - {note}" if note else "Voided"
        return self._commit(entity, existing["Id"], voided, existing)

    def _delete(self, entity: str, body: JSON) -> JSON:
        if entity not in TRANSACTION_TYPES:
            raise unsupported(f"Operation Delete is not supported for {entity}; make it inactive instead.")
        if _blank(body.get("Id")):
            raise required_error("Id")
        existing = self._current(entity, body)
        self._apply_effects(entity, existing, None)
        del self.store[entity][existing["Id"]]
        self.deleted[entity][existing["Id"]] = self.now()
        self._after_store(entity, None, removed=existing)
        return {"Id": existing["Id"], "status": "Deleted", "domain": "QBO"}

    # --- side effects on other objects -------------------------------------------------------------

    def _apply_effects(self, entity: str, old: JSON | None, new: JSON | None) -> None:
        """Keep inventory in step with sales documents (before the new version is stored)."""
        if entity not in ("SalesReceipt", "Invoice", "CreditMemo", "RefundReceipt"):
            return
        before = self._stock_effect(entity, old)
        after = self._stock_effect(entity, new)
        for item_id in sorted(set(before) | set(after)):
            delta = after.get(item_id, ZERO) - before.get(item_id, ZERO)
            item = self.store["Item"].get(item_id)
            if item is None or delta == 0:
                continue
            item["QtyOnHand"] = money(item.get("QtyOnHand", ZERO), "QtyOnHand") + delta
            # Stock moves show up in CDC for Item, but do not invalidate a SyncToken the merchant holds.
            item["MetaData"]["LastUpdatedTime"] = self.stamp()

    def _stock_effect(self, entity: str, obj: JSON | None) -> dict[str, Decimal]:
        if obj is None:
            return {}
        sign = Decimal(-1) if entity in ("SalesReceipt", "Invoice") else Decimal(1)
        effect: dict[str, Decimal] = {}
        for line in obj.get("Line", []):
            detail = line.get("SalesItemLineDetail") if line.get("DetailType") == "SalesItemLineDetail" else None
            if not isinstance(detail, dict):
                continue
            ref = detail.get("ItemRef") or {}
            item = self.store["Item"].get(str(ref.get("value")))
            qty = detail.get("Qty")
            if item is None or item.get("Type") != "Inventory" or _blank(qty):
                continue
            effect[item["Id"]] = effect.get(item["Id"], ZERO) + sign * money(qty, "Qty")
        return effect

    def _after_store(self, entity: str, obj: JSON | None, *, removed: JSON | None = None) -> None:
        """Recompute what depends on the stored object: invoice balances and estimate links."""
        if entity == "Payment":
            touched = set(self._applied(removed or {}))
            if obj is not None:
                touched |= set(self._applied(obj))
            for invoice_id in sorted(touched):
                self._refresh_invoice(invoice_id)
            credits = set(self._credited(removed or {})) | set(self._credited(obj or {}))
            for memo_id in sorted(credits):
                self._refresh_credit_memo(memo_id)
        if entity == "Invoice" and obj is not None:
            for link in obj.get("LinkedTxn", []):
                if link.get("TxnType") != "Estimate":
                    continue
                estimate = self.store["Estimate"].get(str(link.get("TxnId")))
                if estimate is None:
                    continue
                links = estimate.setdefault("LinkedTxn", [])
                back = {"TxnId": obj["Id"], "TxnType": "Invoice"}
                if back not in links or estimate.get("TxnStatus") != "Closed":
                    if back not in links:
                        links.append(back)
                    estimate["TxnStatus"] = "Closed"
                    self._touch(estimate)

    def _applied(self, payment: JSON) -> dict[str, Decimal]:
        """Invoice Id → amount this payment applies to it."""
        applied: dict[str, Decimal] = {}
        for line in payment.get("Line", []) or []:
            for link in line.get("LinkedTxn", []) or []:
                if link.get("TxnType") == "Invoice":
                    invoice_id = str(link.get("TxnId"))
                    applied[invoice_id] = applied.get(invoice_id, ZERO) + money(line.get("Amount", 0), "Amount")
                    break
        return applied

    def _payments_on(self, invoice_id: str, *, excluding: str | None = None) -> dict[str, Decimal]:
        """Payment Id → amount applied to the invoice, over all stored payments."""
        found: dict[str, Decimal] = {}
        for payment in self.store["Payment"].values():
            if payment["Id"] == excluding:
                continue
            amount = self._applied(payment).get(invoice_id)
            if amount:
                found[payment["Id"]] = amount
        return found

    def _refresh_invoice(self, invoice_id: str) -> None:
        invoice = self.store["Invoice"].get(invoice_id)
        if invoice is None:
            return
        payments = self._payments_on(invoice_id)
        balance = money(invoice.get("TotalAmt", 0), "TotalAmt") - sum(payments.values(), ZERO)
        links = [link for link in invoice.get("LinkedTxn", []) if link.get("TxnType") != "Payment"]
        links += [{"TxnId": pid, "TxnType": "Payment"} for pid in payments]
        if balance != invoice.get("Balance") or links != invoice.get("LinkedTxn", []):
            invoice["Balance"] = balance
            invoice["LinkedTxn"] = links
            # QBO bumps the invoice's SyncToken when a payment is applied to it.
            self._touch(invoice)

    # --- rules per entity ----------------------------------------------------------------------------

    def _prepare(self, entity: str, c: JSON, existing: JSON | None, entity_id: str, allow_dup: bool) -> JSON:
        if entity in SALES_TYPES:
            return self._prepare_sales(entity, c, existing, entity_id, allow_dup)
        if entity == "Payment":
            return self._prepare_payment(c, existing)
        if entity == "Customer":
            return self._prepare_customer(c, entity_id)
        if entity == "Item":
            return self._prepare_item(c, existing, entity_id)
        if entity == "Account":
            return self._prepare_account(c, entity_id)
        return self._prepare_named(entity, c, entity_id)

    def _ref(
        self, holder: JSON, key: str, target: str, *, element: str | None = None, required: bool = False
    ) -> JSON | None:
        """Validate `holder[key]` as a reference to an active `target`; fills in its name."""
        element = element or key
        ref = holder.get(key)
        if _blank(ref) or (isinstance(ref, dict) and _blank(ref.get("value"))):
            holder.pop(key, None)
            if required:
                raise required_error(element)
            return None
        if not isinstance(ref, dict):
            raise invalid_property(element, 'must be a reference object like {"value": "<Id>"}')
        value = str(ref["value"])
        obj = self.store[target].get(value)
        if obj is None or obj.get("Active", True) is False:
            state = "is inactive" if obj is not None else "does not exist"
            raise not_found(
                "Something you're trying to use has been made inactive or does not exist. "
                f"Check {element}: {target} with Id {value} {state}.",
                element,
            )
        ref["value"] = value
        if target != "TaxCode":
            ref["name"] = obj.get("FullyQualifiedName") or obj.get("DisplayName") or obj.get("Name") or ""
        return obj

    def _account_ref(
        self,
        holder: JSON,
        key: str,
        allowed: tuple[str, ...],
        *,
        element: str | None = None,
        required: bool = False,
        by_classification: bool = False,
    ) -> JSON | None:
        account = self._ref(holder, key, "Account", element=element, required=required)
        if account is None:
            return None
        kind = account.get("Classification") if by_classification else account.get("AccountType")
        if kind not in allowed:
            raise QboError(
                "6430",
                "Invalid account type",
                f"Invalid account type : You need to select a different type of account for {element or key}. "
                f"Account {account['Id']} ({account.get('Name')}) is {account.get('AccountType')}; "
                f"expected {' or '.join(allowed)}.",
                element or key,
            )
        return account

    def _default_account(self, holder: JSON, key: str, sub_type: str) -> None:
        account = self.find("Account", AccountSubType=sub_type, Active=True)
        if account is not None:
            holder[key] = {"value": account["Id"], "name": account["Name"]}

    def _check_doc_number(self, entity: str, c: JSON, existing: JSON | None, allow_dup: bool) -> None:
        doc = c.get("DocNumber")
        if _blank(doc):
            c.pop("DocNumber", None)
            return
        doc = str(doc)
        c["DocNumber"] = doc
        if len(doc) > MAX_DOC_NUMBER:
            raise length_error("DocNumber", MAX_DOC_NUMBER)
        if allow_dup or not self.sales_pref("CustomTxnNumbers"):
            return
        if existing is not None and existing.get("DocNumber") == doc:
            return
        for other_type in SALES_TYPES:
            for other in self.store[other_type].values():
                if other.get("DocNumber") != doc:
                    continue
                if existing is not None and other_type == entity and other["Id"] == existing["Id"]:
                    continue
                raise QboError(
                    "6140",
                    "Duplicate Document Number Error",
                    "Duplicate Document Number Error : You must specify a different number. "
                    f"This number has already been used. DocNumber={doc} is assigned to "
                    f"TxnType={TXN_TYPE_LABELS[other_type]} with TxnId={other['Id']}",
                    "DocNumber",
                )

    def _txn_date(self, c: JSON) -> date:
        raw = c.get("TxnDate")
        if _blank(raw):
            today = self.now().date()
            c["TxnDate"] = today.isoformat()
            return today
        try:
            return date.fromisoformat(str(raw))
        except ValueError as exc:
            raise invalid_property("TxnDate", f"specified value is not a valid date: {raw!r}") from exc

    def _currency(self, c: JSON) -> None:
        home = self.preferences.get("CurrencyPrefs", {}).get("HomeCurrency", {}).get("value", "USD")
        ref = c.get("CurrencyRef")
        if _blank(ref):
            c["CurrencyRef"] = {"value": home, "name": CURRENCY_NAMES.get(home, home)}
        elif isinstance(ref, dict) and str(ref.get("value")) != home and not self._multicurrency():
            raise business_error(f"Multicurrency is off; CurrencyRef must be the home currency {home}.", "CurrencyRef")

    def _multicurrency(self) -> bool:
        return bool(self.preferences.get("CurrencyPrefs", {}).get("MultiCurrencyEnabled"))

    def _prepare_sales(self, entity: str, c: JSON, existing: JSON | None, entity_id: str, allow_dup: bool) -> JSON:
        self._check_doc_number(entity, c, existing, allow_dup)
        if not _blank(c.get("GlobalTaxCalculation")) and self.is_us:
            raise invalid_property(
                "GlobalTaxCalculation", "is not supported for US companies (it applies to non-US locales only)"
            )
        self._ref(c, "CustomerRef", "Customer", required=entity in ("Invoice", "Estimate", "CreditMemo"))
        self._ref(c, "ClassRef", "Class")
        self._ref(c, "DepartmentRef", "Department")
        self._ref(c, "PaymentMethodRef", "PaymentMethod")
        term = self._ref(c, "SalesTermRef", "Term")
        if entity in ("SalesReceipt", "RefundReceipt"):
            if _blank(c.get("DepositToAccountRef")):
                if entity == "RefundReceipt":
                    raise required_error("DepositToAccountRef")
                self._default_account(c, "DepositToAccountRef", "UndepositedFunds")
            self._account_ref(c, "DepositToAccountRef", ("Bank", "Other Current Asset"))
        if entity in ("Invoice", "CreditMemo"):
            self._account_ref(c, "ARAccountRef", ("Accounts Receivable",))
        txn_date = self._txn_date(c)
        self._currency(c)

        lines = c.get("Line")
        if not isinstance(lines, list) or not lines:
            raise required_error("Line")
        if len(lines) > MAX_LINES:
            raise business_error(f"A transaction can have at most {MAX_LINES} lines; {len(lines)} were sent.", "Line")
        out_lines, subtotal, extras = self._sales_lines(lines)
        tax_detail = c.get("TxnTaxDetail")
        tax_detail = dict(tax_detail) if isinstance(tax_detail, dict) else {}
        tax = _optional_money(tax_detail.get("TotalTax"), "TxnTaxDetail.TotalTax") or ZERO
        tax_detail["TotalTax"] = tax
        if not self.is_us:
            self._ref(tax_detail, "TxnTaxCodeRef", "TaxCode", element="TxnTaxDetail.TxnTaxCodeRef")
        c["TxnTaxDetail"] = tax_detail
        total = subtotal - extras.discount + extras.shipping + tax
        if total < 0:
            raise business_error(f"Transaction total can't be negative ({total}).", "TotalAmt")
        out_lines.append({"Amount": subtotal, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}})
        c["Line"] = out_lines
        c["TotalAmt"] = total
        c.setdefault("ApplyTaxAfterDiscount", False)
        for status_field in ("PrintStatus", "EmailStatus"):
            if _blank(c.get(status_field)):
                c[status_field] = "NotSet"

        if entity == "Invoice":
            applied = sum(self._payments_on(entity_id).values(), ZERO)
            if total < applied:
                raise business_error(
                    f"The invoice total {total} is less than the {applied} already paid on it.", "TotalAmt"
                )
            c["Balance"] = total - applied
            if _blank(c.get("DueDate")):
                days = int((term or self._default_term() or {}).get("DueDays", 0) or 0)
                c["DueDate"] = (txn_date + timedelta(days=days)).isoformat()
            links: list[JSON] = []
            for link in c.get("LinkedTxn", []) or []:
                if not isinstance(link, dict) or link.get("TxnType") == "Payment":
                    continue  # payment links are the sandbox's to maintain
                if link.get("TxnType") != "Estimate":
                    raise invalid_property("LinkedTxn", f"TxnType {link.get('TxnType')!r} cannot be linked here")
                estimate = self.store["Estimate"].get(str(link.get("TxnId")))
                if estimate is None:
                    raise not_found(f"Estimate with Id {link.get('TxnId')} does not exist.", "LinkedTxn")
                if estimate.get("CustomerRef", {}).get("value") != c["CustomerRef"]["value"]:
                    raise business_error(f"Estimate {estimate['Id']} belongs to a different customer.", "LinkedTxn")
                links.append({"TxnId": estimate["Id"], "TxnType": "Estimate"})
            links += [{"TxnId": pid, "TxnType": "Payment"} for pid in self._payments_on(entity_id)]
            if links:
                c["LinkedTxn"] = links
            else:
                c.pop("LinkedTxn", None)
        elif entity == "Estimate":
            status = c.get("TxnStatus")
            if status not in ("Pending", "Accepted", "Closed", "Rejected"):
                c["TxnStatus"] = "Pending"
            # Links to invoices are maintained by the sandbox from the invoice side.
            if existing is not None and existing.get("LinkedTxn"):
                c["LinkedTxn"] = copy.deepcopy(existing["LinkedTxn"])
            else:
                c.pop("LinkedTxn", None)
        elif entity == "CreditMemo":
            used = sum((self._credited(p).get(entity_id, ZERO) for p in self.store["Payment"].values()), ZERO)
            if total < used:
                raise business_error(f"The credit memo total {total} is less than the {used} applied.", "TotalAmt")
            c["Balance"] = total - used
            c["RemainingCredit"] = total - used
        else:
            c["Balance"] = ZERO
        return c

    def _default_term(self) -> JSON | None:
        ref = self.sales_pref("DefaultTerms")
        if isinstance(ref, dict):
            return self.store["Term"].get(str(ref.get("value")))
        return None

    def _sales_lines(self, lines: list[Any]) -> tuple[list[JSON], Decimal, _Extras]:
        out: list[JSON] = []
        subtotal = ZERO
        extras = _Extras()
        discounts: list[tuple[JSON, str]] = []
        number = 0
        for index, raw in enumerate(lines):
            element = f"Line[{index}]"
            if not isinstance(raw, dict):
                raise invalid_property(element, "must be an object")
            line = dict(raw)
            kind = line.get("DetailType")
            if kind == "SubTotalLineDetail":
                continue  # QBO computes the subtotal line itself
            number += 1
            line["Id"] = str(number)
            line["LineNum"] = number
            if kind == "SalesItemLineDetail":
                amount = self._sales_item_line(line, element, extras)
                subtotal += amount
            elif kind == "DiscountLineDetail":
                if not self.sales_pref("AllowDiscount"):
                    raise business_error("Discounts are turned off in this company's preferences.", element)
                discounts.append((line, element))
            elif kind in ("DescriptionOnly", "DescriptionLineDetail"):
                line["DetailType"] = "DescriptionOnly"
            elif kind == "GroupLineDetail":
                detail = line.get("GroupLineDetail") or {}
                self._ref(
                    detail, "GroupItemRef", "Item", element=f"{element}.GroupLineDetail.GroupItemRef", required=True
                )
            else:
                raise invalid_property(f"{element}.DetailType", f"specified value is not supported: {kind!r}")
            out.append(line)
        for line, element in discounts:
            extras.discount += self._discount_line(line, element, subtotal)
        return out, subtotal, extras

    def _sales_item_line(self, line: JSON, element: str, extras: _Extras) -> Decimal:
        """Validate one SalesItemLine; returns what it adds to the subtotal (shipping goes to extras)."""
        detail = line.get("SalesItemLineDetail")
        detail = dict(detail) if isinstance(detail, dict) else {}
        line["SalesItemLineDetail"] = detail
        ref = detail.get("ItemRef")
        if _blank(ref) or (isinstance(ref, dict) and _blank(ref.get("value"))):
            # Without an item the line is documentation only: its amount does not count.
            return ZERO
        if "Amount" not in line or _blank(line.get("Amount")):
            raise required_error(f"{element}.Amount")
        amount = money(line["Amount"], f"{element}.Amount")
        line["Amount"] = amount
        qty = _optional_money(detail.get("Qty"), f"{element}.SalesItemLineDetail.Qty")
        price = _optional_money(detail.get("UnitPrice"), f"{element}.SalesItemLineDetail.UnitPrice")
        if qty is not None:
            detail["Qty"] = qty
        if price is not None:
            detail["UnitPrice"] = price
        # Clients such as python-quickbooks send Qty 0 / UnitPrice 0 for "not given", so only check real pairs.
        if qty and price:
            expected = (qty * price).quantize(CENT, rounding=ROUND_HALF_UP)
            if amount != expected:
                raise QboError(
                    "6070",
                    "Amount is not equal to UnitPrice * Qty",
                    f"Amount is not equal to UnitPrice * Qty. Supplied value:{amount}, "
                    f"UnitPrice * Qty = {price} * {qty} = {expected}",
                    f"{element}.Amount",
                )
        if _blank(detail.get("ServiceDate")):
            detail.pop("ServiceDate", None)
        self._ref(detail, "ClassRef", "Class", element=f"{element}.SalesItemLineDetail.ClassRef")
        self._ref(detail, "TaxCodeRef", "TaxCode", element=f"{element}.SalesItemLineDetail.TaxCodeRef")
        if isinstance(ref, dict) and str(ref.get("value")) == SHIPPING_ITEM_ID:
            if not self.sales_pref("AllowShipping"):
                raise not_found(
                    "SHIPPING_ITEM_ID can only be used when shipping is turned on "
                    "(Preferences.SalesFormsPrefs.AllowShipping is false).",
                    f"{element}.SalesItemLineDetail.ItemRef",
                )
            extras.shipping += amount
            return ZERO
        self._ref(detail, "ItemRef", "Item", element=f"{element}.SalesItemLineDetail.ItemRef", required=True)
        return amount

    def _discount_line(self, line: JSON, element: str, subtotal: Decimal) -> Decimal:
        detail = line.get("DiscountLineDetail")
        detail = dict(detail) if isinstance(detail, dict) else {}
        line["DiscountLineDetail"] = detail
        percent = _optional_money(detail.get("DiscountPercent"), f"{element}.DiscountLineDetail.DiscountPercent")
        amount = _optional_money(line.get("Amount"), f"{element}.Amount")
        percent_based = detail.get("PercentBased") is True
        computed = (subtotal * percent / 100).quantize(CENT, rounding=ROUND_HALF_UP) if percent else None
        # An echo of QBO's own answer (percent plus the amount it computed) is accepted.
        if percent and amount and not (percent_based and amount == computed):
            raise business_error("You can't set both an amount and a discount percentage on a discount line.", element)
        if computed is not None:
            value = computed
            detail["PercentBased"] = True
            detail["DiscountPercent"] = percent
        else:
            value = amount or ZERO
            detail["PercentBased"] = False
        if value < 0:
            raise business_error("A discount amount can't be negative.", f"{element}.Amount")
        line["Amount"] = value
        if _blank(detail.get("DiscountAccountRef")):
            self._default_account(detail, "DiscountAccountRef", "DiscountsRefundsGiven")
        self._account_ref(
            detail,
            "DiscountAccountRef",
            ("Revenue", "Expense"),
            element=f"{element}.DiscountLineDetail.DiscountAccountRef",
            by_classification=True,
        )
        self._ref(detail, "ClassRef", "Class", element=f"{element}.DiscountLineDetail.ClassRef")
        return value

    def _prepare_payment(self, c: JSON, existing: JSON | None) -> JSON:
        customer = self._ref(c, "CustomerRef", "Customer", required=True)
        assert customer is not None  # noqa: S101 - required=True guarantees it
        if _blank(c.get("TotalAmt")):
            raise required_error("TotalAmt")
        total = money(c["TotalAmt"], "TotalAmt")
        if total < 0:
            raise business_error("A payment amount can't be negative.", "TotalAmt")
        c["TotalAmt"] = total
        if _blank(c.get("DepositToAccountRef")):
            self._default_account(c, "DepositToAccountRef", "UndepositedFunds")
        self._account_ref(c, "DepositToAccountRef", ("Bank", "Other Current Asset"))
        self._account_ref(c, "ARAccountRef", ("Accounts Receivable",))
        self._ref(c, "PaymentMethodRef", "PaymentMethod")
        self._txn_date(c)
        self._currency(c)
        previous = self._applied(existing) if existing is not None else {}
        previous_credits = self._credited(existing) if existing is not None else {}
        applied_here: dict[str, Decimal] = {}
        credited_here: dict[str, Decimal] = {}
        lines = c.get("Line") or []
        if not isinstance(lines, list):
            raise invalid_property("Line", "must be a list")
        for index, line in enumerate(lines):
            element = f"Line[{index}]"
            if not isinstance(line, dict):
                raise invalid_property(element, "must be an object")
            links = [link for link in line.get("LinkedTxn", []) or [] if isinstance(link, dict)]
            if not links:
                raise required_error(f"{element}.LinkedTxn")
            amount = money(line.get("Amount"), f"{element}.Amount")
            line["Amount"] = amount
            if amount <= 0:
                raise business_error("An applied amount must be greater than 0.", f"{element}.Amount")
            link = links[0]
            if link.get("TxnType") == "CreditMemo":
                credited_here[self._credit_line(link, amount, customer, previous_credits, credited_here, element)] = (
                    credited_here.get(str(link.get("TxnId")), ZERO) + amount
                )
                continue
            if link.get("TxnType") != "Invoice":
                raise business_error(
                    f"The sandbox applies payments to invoices and credit memos only, not {link.get('TxnType')!r}.",
                    f"{element}.LinkedTxn",
                )
            invoice_id = str(link.get("TxnId"))
            link["TxnId"] = invoice_id
            invoice = self.store["Invoice"].get(invoice_id)
            if invoice is None:
                raise not_found(f"Invoice with Id {invoice_id} does not exist.", f"{element}.LinkedTxn")
            if invoice.get("CustomerRef", {}).get("value") != customer["Id"]:
                raise business_error(
                    f"Invoice {invoice_id} belongs to a different customer than this payment.",
                    f"{element}.LinkedTxn",
                )
            open_balance = (
                money(invoice.get("Balance", 0), "Balance")
                + previous.get(invoice_id, ZERO)
                - applied_here.get(invoice_id, ZERO)
            )
            if amount > open_balance:
                raise business_error(
                    f"The amount applied to Invoice {invoice_id} ({amount}) is more than its open balance "
                    f"({open_balance}).",
                    f"{element}.Amount",
                )
            applied_here[invoice_id] = applied_here.get(invoice_id, ZERO) + amount
        # Credits applied pay for invoices too: the payment's own money is what the credits do not cover.
        applied_total = sum(applied_here.values(), ZERO) - sum(credited_here.values(), ZERO)
        if applied_total < 0:
            raise business_error(
                f"The credits applied ({sum(credited_here.values(), ZERO)}) are more than the invoice amounts "
                f"applied ({sum(applied_here.values(), ZERO)}).",
                "Line",
            )
        if applied_total > total:
            raise business_error(
                f"The amounts applied ({applied_total}) are more than the payment total ({total}).", "Line"
            )
        c["Line"] = lines
        c["UnappliedAmt"] = total - applied_total
        return c

    def _credit_line(
        self,
        link: JSON,
        amount: Decimal,
        customer: JSON,
        previous: dict[str, Decimal],
        here: dict[str, Decimal],
        element: str,
    ) -> str:
        """Check a payment line that applies a credit memo; returns the credit memo's Id."""
        memo_id = str(link.get("TxnId"))
        link["TxnId"] = memo_id
        memo = self.store["CreditMemo"].get(memo_id)
        if memo is None:
            raise not_found(f"CreditMemo with Id {memo_id} does not exist.", f"{element}.LinkedTxn")
        if memo.get("CustomerRef", {}).get("value") != customer["Id"]:
            raise business_error(
                f"Credit memo {memo_id} belongs to a different customer than this payment.", f"{element}.LinkedTxn"
            )
        remaining = (
            money(memo.get("RemainingCredit", 0), "RemainingCredit")
            + previous.get(memo_id, ZERO)
            - here.get(memo_id, ZERO)
        )
        if amount > remaining:
            raise business_error(
                f"The amount applied from CreditMemo {memo_id} ({amount}) is more than its remaining credit "
                f"({remaining}).",
                f"{element}.Amount",
            )
        return memo_id

    def _credited(self, payment: JSON) -> dict[str, Decimal]:
        """CreditMemo Id → amount of it this payment applies."""
        credited: dict[str, Decimal] = {}
        for line in payment.get("Line", []) or []:
            for link in line.get("LinkedTxn", []) or []:
                if link.get("TxnType") == "CreditMemo":
                    memo_id = str(link.get("TxnId"))
                    credited[memo_id] = credited.get(memo_id, ZERO) + money(line.get("Amount", 0), "Amount")
                    break
        return credited

    def _refresh_credit_memo(self, memo_id: str) -> None:
        memo = self.store["CreditMemo"].get(memo_id)
        if memo is None:
            return
        used = sum((self._credited(p).get(memo_id, ZERO) for p in self.store["Payment"].values()), ZERO)
        remaining = money(memo.get("TotalAmt", 0), "TotalAmt") - used
        if remaining != memo.get("RemainingCredit"):
            memo["RemainingCredit"] = remaining
            memo["Balance"] = remaining
            self._touch(memo)

    def _name_check(
        self,
        entity: str,
        name: str,
        entity_id: str,
        *,
        field: str,
        maximum: int,
        detail: str,
        colon_allowed: bool = False,
    ) -> str:
        name = name.strip()
        if not name:
            raise required_error(field)
        if len(name) > maximum:
            raise length_error(field, maximum)
        if not colon_allowed and ":" in name:
            raise business_error(f"The name can't contain a colon (:): {name!r}.", field)
        folded = name.casefold()
        for other in self.store[entity].values():
            other_name = other.get("DisplayName") if entity == "Customer" else other.get("Name")
            if other["Id"] != entity_id and str(other_name or "").casefold() == folded:
                raise QboError("6240", "Duplicate Name Exists Error", f"{detail} Id={other['Id']}", field)
        return name

    def _prepare_customer(self, c: JSON, entity_id: str) -> JSON:
        display = c.get("DisplayName")
        if _blank(display):
            parts = [str(c[key]) for key in ("Title", "GivenName", "MiddleName", "FamilyName", "Suffix") if c.get(key)]
            display = " ".join(parts) or c.get("CompanyName")
        if _blank(display):
            raise required_error("DisplayName")
        c["DisplayName"] = self._name_check(
            "Customer", str(display), entity_id, field="DisplayName", maximum=500, detail=DUPLICATE_NAME_DETAIL
        )
        parent = self._ref(c, "ParentRef", "Customer")
        c["FullyQualifiedName"] = (
            f"{parent['FullyQualifiedName']}:{c['DisplayName']}" if parent is not None else c["DisplayName"]
        )
        c["Job"] = parent is not None
        self._ref(c, "SalesTermRef", "Term")
        self._ref(c, "PaymentMethodRef", "PaymentMethod")
        c["Active"] = c.get("Active", True) is not False
        existing = self.store["Customer"].get(entity_id)
        c["Balance"] = existing.get("Balance", ZERO) if existing else ZERO
        c["BalanceWithJobs"] = c["Balance"]
        c.setdefault("Taxable", self.is_us)
        self._currency(c)
        return c

    def _prepare_item(self, c: JSON, existing: JSON | None, entity_id: str) -> JSON:
        if _blank(c.get("Name")):
            raise required_error("Name")
        c["Name"] = self._name_check(
            "Item",
            str(c["Name"]),
            entity_id,
            field="Name",
            maximum=100,
            detail=DUPLICATE_ITEM_DETAIL,
            colon_allowed=True,
        )
        kind = c.get("Type")
        if _blank(kind):
            raise required_error("Type")
        if kind in ("Group", "Category"):
            raise unsupported(f"Creating or updating an item of Type {kind} is not supported via the API.")
        if kind not in ITEM_TYPES:
            raise invalid_property("Type", f"specified value is not supported: {kind!r}")
        if existing is not None and existing.get("Type") == "Inventory" and kind != "Inventory":
            raise business_error("An inventory item can't be changed to another type.", "Type")
        sku = c.get("Sku")
        if not _blank(sku) and len(str(sku)) > 100:
            raise length_error("Sku", 100)
        if kind == "Inventory":
            if c.get("TrackQtyOnHand") is not True:
                raise business_error("An Inventory item must have TrackQtyOnHand set to true.", "TrackQtyOnHand")
            for required in ("QtyOnHand", "InvStartDate"):
                if _blank(c.get(required)):
                    raise required_error(required)
            c["QtyOnHand"] = money(c["QtyOnHand"], "QtyOnHand")
            self._account_ref(c, "IncomeAccountRef", ("Income", "Other Income"), required=True)
            self._account_ref(c, "ExpenseAccountRef", ("Cost of Goods Sold",), required=True)
            self._account_ref(c, "AssetAccountRef", ("Other Current Asset",), required=True)
        else:
            if existing is not None and existing.get("TrackQtyOnHand") is True:
                raise business_error("TrackQtyOnHand can't be turned off once it is on.", "TrackQtyOnHand")
            c["TrackQtyOnHand"] = False
            self._account_ref(c, "IncomeAccountRef", ("Income", "Other Income"), required=True)
            self._account_ref(c, "ExpenseAccountRef", ("Cost of Goods Sold", "Expense", "Other Expense"))
            c.pop("AssetAccountRef", None)
            c.pop("QtyOnHand", None)
        for field in ("UnitPrice", "PurchaseCost"):
            c[field] = money(c[field], field) if not _blank(c.get(field)) else ZERO
        self._ref(c, "ClassRef", "Class")
        self._ref(c, "SalesTaxCodeRef", "TaxCode")
        c["FullyQualifiedName"] = c["Name"]
        c["Active"] = c.get("Active", True) is not False
        c.setdefault("Taxable", self.is_us)
        return c

    def _prepare_account(self, c: JSON, entity_id: str) -> JSON:
        if _blank(c.get("Name")):
            raise required_error("Name")
        c["Name"] = self._name_check(
            "Account", str(c["Name"]), entity_id, field="Name", maximum=100, detail=DUPLICATE_NAME_DETAIL
        )
        kind = c.get("AccountType")
        if _blank(kind):
            raise required_error("AccountType")
        if kind not in ACCOUNT_CLASSIFICATION:
            raise invalid_property("AccountType", f"specified value is not supported: {kind!r}")
        c["Classification"] = ACCOUNT_CLASSIFICATION[kind]
        if _blank(c.get("AccountSubType")):
            c["AccountSubType"] = DEFAULT_SUBTYPE[kind]
        existing = self.store["Account"].get(entity_id)
        c["CurrentBalance"] = existing.get("CurrentBalance", ZERO) if existing else ZERO
        c["FullyQualifiedName"] = c["Name"]
        c["Active"] = c.get("Active", True) is not False
        c["SubAccount"] = False
        self._currency(c)
        return c

    def _prepare_named(self, entity: str, c: JSON, entity_id: str) -> JSON:
        if _blank(c.get("Name")):
            raise required_error("Name")
        c["Name"] = self._name_check(
            entity, str(c["Name"]), entity_id, field="Name", maximum=100, detail=DUPLICATE_NAME_DETAIL
        )
        c["Active"] = c.get("Active", True) is not False
        if entity == "PaymentMethod":
            if c.get("Type") not in ("CREDIT_CARD", "NON_CREDIT_CARD"):
                c["Type"] = "NON_CREDIT_CARD"
        elif entity == "Class":
            c["FullyQualifiedName"] = c["Name"]
            c["SubClass"] = False
        elif entity == "Department":  # QuickBooks Online's locations
            c["FullyQualifiedName"] = c["Name"]
            c["SubDepartment"] = False
        elif entity == "Term":
            c.setdefault("Type", "STANDARD")
            c["DueDays"] = int(c.get("DueDays") or 0)
        return c


@dataclass
class _Extras:
    shipping: Decimal = ZERO
    discount: Decimal = ZERO


CURRENCY_NAMES = {"USD": "United States Dollar", "CAD": "Canadian Dollar", "GBP": "British Pound Sterling"}


def canonical_type(name: str, allowed: Iterable[str]) -> str | None:
    """The entity's canonical spelling, matching case-insensitively; None when unknown."""
    lowered = name.lower()
    for candidate in allowed:
        if candidate.lower() == lowered:
            return candidate
    return None


# --- OAuth 2 -------------------------------------------------------------------------------------------


@dataclass
class _RefreshToken:
    issued_at: float
    superseded_at: float | None = None
    revoked: bool = False


@dataclass
class _AuthCode:
    redirect_uri: str
    issued_at: float
    used: bool = False


AUTH_CODE_TTL = 600.0


class Tokens:
    """Intuit's OAuth 2 token bookkeeping: expiring access tokens, rotating refresh tokens, one-shot codes."""

    def __init__(self, limits: QboLimits, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._access: dict[str, float] = {}
        self._refresh: dict[str, _RefreshToken] = {}
        self._codes: dict[str, _AuthCode] = {}

    def issue(self) -> JSON:
        """A fresh access/refresh pair, shaped like Intuit's token response."""
        now = self._monotonic()
        access = "eyJsandbox." + secrets.token_urlsafe(32)
        refresh = "AB11sandbox" + secrets.token_urlsafe(24)
        with self._lock:
            self._access[access] = now + self.limits.access_token_ttl
            self._refresh[refresh] = _RefreshToken(issued_at=now)
        return {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "bearer",
            "expires_in": int(self.limits.access_token_ttl),
            "x_refresh_token_expires_in": int(self.limits.refresh_token_ttl),
        }

    def check(self, token: str | None) -> str | None:
        """None when the access token is good, else the 401 detail explaining why not."""
        if not token:
            return "Authorization header missing or not a Bearer token"
        with self._lock:
            expires_at = self._access.get(token)
        if expires_at is None:
            return f"Token invalid: {token[:12]}..."
        if self._monotonic() >= expires_at:
            return f"Token expired: {token[:12]}..."
        return None

    def expire_all(self) -> None:
        """Invalidate every access token issued so far (refresh tokens still work)."""
        now = self._monotonic()
        with self._lock:
            for token in self._access:
                self._access[token] = min(self._access[token], now)

    def refresh(self, token: str) -> JSON | None:
        """Rotate: a new pair for a usable refresh token, or None (→ invalid_grant)."""
        now = self._monotonic()
        with self._lock:
            state = self._refresh.get(token)
            if state is None or state.revoked or now - state.issued_at > self.limits.refresh_token_ttl:
                return None
            if state.superseded_at is not None and now - state.superseded_at > self.limits.refresh_token_grace:
                return None
            if state.superseded_at is None:
                state.superseded_at = now
        return self.issue()

    def revoke(self, token: str) -> bool:
        """Revoke a refresh token (and, if it is one, an access token); True when it was known."""
        with self._lock:
            known = False
            if token in self._refresh:
                self._refresh[token].revoked = True
                known = True
            if token in self._access:
                self._access[token] = min(self._access[token], self._monotonic())
                known = True
            return known

    def new_code(self, redirect_uri: str) -> str:
        """A single-use authorization code bound to the redirect URI it was issued for."""
        code = "AB11code" + secrets.token_urlsafe(18)
        with self._lock:
            self._codes[code] = _AuthCode(redirect_uri=redirect_uri, issued_at=self._monotonic())
        return code

    def exchange(self, code: str, redirect_uri: str) -> JSON | None:
        """Trade an unused, unexpired code for tokens; None (→ invalid_grant) otherwise."""
        with self._lock:
            state = self._codes.get(code)
            if (
                state is None
                or state.used
                or state.redirect_uri != redirect_uri
                or self._monotonic() - state.issued_at > AUTH_CODE_TTL
            ):
                return None
            state.used = True
        return self.issue()
