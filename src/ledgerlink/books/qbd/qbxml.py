"""qbXML 13.0: the requests ledgerlink sends to QuickBooks Desktop and the answers it reads back.

The one place that maps a `Document` (and new customers and items) to qbXML. QuickBooks validates every
message set against its schema before it runs any of it, and the schema is a strict *sequence*: elements
must come in the SDK's order, so each builder below emits its elements in that order (see the OSR for
qbXML 13.0). Desktop's limits are applied here: RefNumber ≤ 11 characters (the full channel number stays
in the memo), item names ≤ 31, customer names ≤ 41, ship-via ≤ 15, message-set ids ≤ 24.

References are written as `ListID` when we know QuickBooks' id, otherwise as `FullName`: a customer or item
queued earlier in the same message set has no ListID yet, and QuickBooks resolves a FullName as it runs the
requests in order.

Answers are parsed without entities, DTDs or network access: they come from a machine we do not control.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from lxml import etree

from ledgerlink.domain.catalog import NewCustomer, NewItem
from ledgerlink.domain.documents import DocLine, Document, DocumentKind, LineKind, Ref, Shipment
from ledgerlink.domain.errors import MappingError
from ledgerlink.domain.money import cents
from ledgerlink.domain.order import Address

QBXML_VERSION = "13.0"
MAX_REF_NUMBER = 11
MAX_ITEM_NAME = 31
MAX_CUSTOMER_NAME = 41
MAX_SHIP_VIA = 15
MAX_MEMO = 4095
MAX_DESC = 4095
MAX_MESSAGE_SET_ID = 24
MAX_SKU = 31  # ManufacturerPartNumber
NON_TAXABLE = "Non"
_ADDRESS_LIMITS = {"Addr": 41, "City": 31, "State": 21, "PostalCode": 13, "Country": 31}
_LIST_ID = re.compile(r"^[0-9A-F]{1,16}-\d{9,12}$")

# Document kind → (qbXML object name, line element stem, request family)
TXN_OBJECTS: dict[DocumentKind, str] = {
    DocumentKind.SALES_RECEIPT: "SalesReceipt",
    DocumentKind.INVOICE: "Invoice",
    DocumentKind.SALES_ORDER: "SalesOrder",
    DocumentKind.ESTIMATE: "Estimate",
    DocumentKind.CREDIT_MEMO: "CreditMemo",
    DocumentKind.PAYMENT: "ReceivePayment",
}
_HAS_AR = frozenset({"Invoice", "CreditMemo", "ReceivePayment"})
# TxnVoidType of the sales side (qbXML's enumeration has no SalesOrder, Estimate or ReceivePayment: those can
# only be deleted); TxnDelType accepts all of ours.
VOIDABLE = frozenset({"SalesReceipt", "Invoice", "CreditMemo"})
DELETABLE = frozenset({"SalesReceipt", "Invoice", "CreditMemo", "SalesOrder", "Estimate", "ReceivePayment"})


class QbXmlError(ValueError):
    """An answer that is not readable qbXML (or that tries entity or DTD tricks)."""


# -- small values ----------------------------------------------------------------------------------------------


def ref_number(doc_number: str) -> str:
    """Desktop's RefNumber (≤ 11): the number itself, or its last 11 characters (the distinctive end of a
    sequential channel number); the full number always goes into the memo as well."""
    number = doc_number.strip()
    return number if len(number) <= MAX_REF_NUMBER else number[-MAX_REF_NUMBER:]


def desktop_name(name: str, limit: int) -> str:
    """A list name within Desktop's limit: unchanged when it fits, else cut and suffixed with a short digest so
    two long names that share a beginning stay two names (and the same long name always gives the same one)."""
    clean = " ".join(name.replace(":", "-").split())
    if len(clean) <= limit:
        return clean
    digest = hashlib.sha256(clean.encode()).hexdigest()[:6]
    return f"{clean[: limit - 7].rstrip()}~{digest}"


def ship_via(name: str) -> str:
    """A ship method name within Desktop's 15 characters."""
    return " ".join(name.split())[:MAX_SHIP_VIA].strip()


def memo_for(doc: Document) -> str:
    """The memo: the channel's full order number, the full document number when RefNumber had to be cut, and
    our marker, e.g. "Shopify order #SH-100000123 [ledgerlink ll-…]"."""
    parts = [doc.memo or f"order #{doc.order_number}"]
    if doc.doc_number and ref_number(doc.doc_number) != doc.doc_number and doc.doc_number not in parts[0]:
        parts.append(f"no. {doc.doc_number}")
    if doc.marker:
        parts.append(f"[ledgerlink {doc.marker}]")
    return " ".join(parts)[:MAX_MEMO]


def is_list_id(value: str) -> bool:
    """True for QuickBooks ids (ListID / TxnID shape, e.g. "80000001-1197759802")."""
    return bool(_LIST_ID.match(value))


def money(value: Decimal) -> str:
    return f"{cents(value):.2f}"


def _quantity(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def _rate(value: Decimal) -> str:
    # Rates may carry more than two decimals (Desktop keeps five).
    return format(value.quantize(Decimal("0.00001")).normalize(), "f") if value != value.to_integral() else money(value)


# -- element helpers -------------------------------------------------------------------------------------------


def _add(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, tag)
    if text is not None:
        element.text = text
    return element


def _text(parent: etree._Element, tag: str, value: str, limit: int | None = None) -> None:
    """Append `<tag>value</tag>` when value is not empty (cut to `limit`)."""
    value = value.strip()
    if value:
        _add(parent, tag, value[:limit] if limit else value)


def ref(parent: etree._Element, tag: str, target: Ref | str) -> None:
    """A list reference: `<ListID>` for a QuickBooks id, else `<FullName>`."""
    if isinstance(target, Ref):
        value = target.id or target.name
        if not value:
            raise MappingError(f"the reference {target.key!r} has neither a QuickBooks id nor a name", field=tag)
    else:
        value = target
    element = _add(parent, tag)
    if is_list_id(value):
        _add(element, "ListID", value)
    else:
        _add(element, "FullName", value)


def _address(parent: etree._Element, tag: str, address: Address | None) -> None:
    if address is None or address.is_empty():
        return
    element = _add(parent, tag)
    lines = [address.name, address.company, address.line1, address.line2]
    for index, line in enumerate([line for line in lines if line.strip()][:5], start=1):
        _text(element, f"Addr{index}", line, _ADDRESS_LIMITS["Addr"])
    _text(element, "City", address.city, _ADDRESS_LIMITS["City"])
    _text(element, "State", address.region, _ADDRESS_LIMITS["State"])
    _text(element, "PostalCode", address.postal_code, _ADDRESS_LIMITS["PostalCode"])
    _text(element, "Country", address.country, _ADDRESS_LIMITS["Country"])


def request(name: str, request_id: str, **attributes: str) -> etree._Element:
    """An empty `<{name}Rq requestID="…">` element."""
    element = etree.Element(f"{name}Rq", requestID=request_id)
    for key, value in attributes.items():
        element.set(key, value)
    return element


# -- master data -----------------------------------------------------------------------------------------------


def customer_add(customer: NewCustomer, name: str, request_id: str) -> etree._Element:
    """CustomerAddRq: Name, CompanyName, FirstName, LastName, BillAddress, ShipAddress, Phone, Email."""
    rq = request("CustomerAdd", request_id)
    body = _add(rq, "CustomerAdd")
    _add(body, "Name", name)
    _text(body, "CompanyName", customer.company, 41)
    _text(body, "FirstName", customer.given_name, 25)
    _text(body, "LastName", customer.family_name, 25)
    _address(body, "BillAddress", customer.billing_address)
    _address(body, "ShipAddress", customer.shipping_address)
    _text(body, "Phone", customer.phone, 21)
    _text(body, "Email", customer.email, 1023)
    return rq


def customer_mod(list_id: str, edit_sequence: str, customer: NewCustomer, name: str, request_id: str) -> etree._Element:
    """CustomerModRq: ListID and EditSequence first, then the fields of CustomerAdd in the same order."""
    rq = request("CustomerMod", request_id)
    body = _add(rq, "CustomerMod")
    _add(body, "ListID", list_id)
    _add(body, "EditSequence", edit_sequence)
    _add(body, "Name", name)
    _text(body, "CompanyName", customer.company, 41)
    _text(body, "FirstName", customer.given_name, 25)
    _text(body, "LastName", customer.family_name, 25)
    _address(body, "BillAddress", customer.billing_address)
    _address(body, "ShipAddress", customer.shipping_address)
    _text(body, "Phone", customer.phone, 21)
    _text(body, "Email", customer.email, 1023)
    return rq


def _price(item: NewItem) -> str | None:
    try:
        return money(Decimal(item.unit_price)) if item.unit_price else None
    except InvalidOperation:
        return None


def item_non_inventory_add(item: NewItem, name: str, request_id: str) -> etree._Element:
    """ItemNonInventoryAddRq: Name, ManufacturerPartNumber, SalesOrPurchase{Desc, Price, AccountRef=income}."""
    rq = request("ItemNonInventoryAdd", request_id)
    body = _add(rq, "ItemNonInventoryAdd")
    _add(body, "Name", name)
    _text(body, "ManufacturerPartNumber", item.sku, MAX_SKU)
    sale = _add(body, "SalesOrPurchase")
    _text(sale, "Desc", item.description, MAX_DESC)
    if (price := _price(item)) is not None:
        _add(sale, "Price", price)
    ref(sale, "AccountRef", item.income_account)
    return rq


def item_inventory_add(item: NewItem, name: str, request_id: str) -> etree._Element:
    """ItemInventoryAddRq: Name, ManufacturerPartNumber, SalesDesc, SalesPrice, IncomeAccountRef,
    COGSAccountRef, AssetAccountRef (the SDK's order)."""
    if not item.cogs_account or not item.asset_account:
        raise MappingError(
            f"inventory item {name!r} needs the Item COGS and Item Asset accounts", field="accounts.item_asset"
        )
    rq = request("ItemInventoryAdd", request_id)
    body = _add(rq, "ItemInventoryAdd")
    _add(body, "Name", name)
    _text(body, "ManufacturerPartNumber", item.sku, MAX_SKU)
    _text(body, "SalesDesc", item.description, MAX_DESC)
    if (price := _price(item)) is not None:
        _add(body, "SalesPrice", price)
    ref(body, "IncomeAccountRef", item.income_account)
    ref(body, "COGSAccountRef", item.cogs_account)
    ref(body, "AssetAccountRef", item.asset_account)
    return rq


def item_service_add(item: NewItem, name: str, request_id: str) -> etree._Element:
    """ItemServiceAddRq: Name, SalesOrPurchase{Desc, Price, AccountRef}."""
    return _sales_or_purchase_item("ItemServiceAdd", item, name, request_id)


def item_other_charge_add(item: NewItem, name: str, request_id: str) -> etree._Element:
    """ItemOtherChargeAddRq (shipping, fees, tax carried as a line, adjustments): Name, SalesOrPurchase."""
    return _sales_or_purchase_item("ItemOtherChargeAdd", item, name, request_id)


def _sales_or_purchase_item(verb: str, item: NewItem, name: str, request_id: str) -> etree._Element:
    rq = request(verb, request_id)
    body = _add(rq, verb)
    _add(body, "Name", name)
    sale = _add(body, "SalesOrPurchase")
    _text(sale, "Desc", item.description, MAX_DESC)
    if (price := _price(item)) is not None:
        _add(sale, "Price", price)
    ref(sale, "AccountRef", item.income_account)
    return rq


def item_discount_add(name: str, account: str, request_id: str, description: str = "") -> etree._Element:
    """ItemDiscountAddRq: Name, ItemDesc, AccountRef (the discount account); the amount is given per line."""
    rq = request("ItemDiscountAdd", request_id)
    body = _add(rq, "ItemDiscountAdd")
    _add(body, "Name", name)
    _text(body, "ItemDesc", description, MAX_DESC)
    ref(body, "AccountRef", account)
    return rq


def item_add(item: NewItem, name: str, request_id: str, *, discount_account: str | None = None) -> etree._Element:
    """The add request for a new item by its type: Inventory, NonInventory, or a charge item ("Service"),
    which becomes a Discount item when it carries the discount account."""
    if item.type == "Inventory":
        return item_inventory_add(item, name, request_id)
    if item.type == "NonInventory":
        return item_non_inventory_add(item, name, request_id)
    if discount_account:
        return item_discount_add(name, discount_account, request_id, item.description)
    return item_other_charge_add(item, name, request_id)


# -- transactions ----------------------------------------------------------------------------------------------


def txn_object(kind: DocumentKind) -> str:
    """The qbXML object a document kind becomes (SalesReceipt, Invoice, SalesOrder, ReceivePayment, …)."""
    try:
        return TXN_OBJECTS[kind]
    except KeyError:
        hint = (
            ": choose 'credit memo' for refunds in Settings (Desktop records a refund as a credit memo)"
            if kind is DocumentKind.REFUND_RECEIPT
            else ""
        )
        raise MappingError(f"QuickBooks Desktop has no {kind} for ledgerlink to create{hint}", field="kind") from None


def document_add(
    doc: Document,
    request_id: str,
    *,
    linked: Mapping[str, str] | None = None,
    tax_item: str = "",
    ship_methods: Collection[str] = (),
) -> etree._Element:
    """The add request for a document. `linked` maps a linked role ("sales_order", "invoice") to its TxnID;
    `tax_item` is the item that carries a pinned channel tax as its own line; `ship_methods` are the company
    file's ship methods (a shipment's carrier is a ShipMethodRef only when it is one of them)."""
    obj = txn_object(doc.kind)
    if obj == "ReceivePayment":
        return _payment(doc, request_id, linked or {}, mod=None)
    return _sale(doc, obj, request_id, linked or {}, tax_item, mod=None, ship_methods=ship_methods)


def document_mod(
    doc: Document,
    request_id: str,
    *,
    txn_id: str,
    edit_sequence: str,
    linked: Mapping[str, str] | None = None,
    tax_item: str = "",
    ship_methods: Collection[str] = (),
) -> etree._Element:
    """The …Mod request: TxnID and EditSequence first; all lines replaced (each sent as a new line, -1)."""
    obj = txn_object(doc.kind)
    if obj == "ReceivePayment":
        return _payment(doc, request_id, linked or {}, mod=(txn_id, edit_sequence))
    return _sale(doc, obj, request_id, linked or {}, tax_item, mod=(txn_id, edit_sequence), ship_methods=ship_methods)


def _sale(
    doc: Document,
    obj: str,
    request_id: str,
    linked: Mapping[str, str],
    tax_item: str,
    mod: tuple[str, str] | None,
    ship_methods: Collection[str] = (),
) -> etree._Element:
    """SalesReceipt / Invoice / SalesOrder / Estimate / CreditMemo, in the SDK's order:
    [TxnID, EditSequence,] CustomerRef, ClassRef, ARAccountRef, TxnDate, RefNumber, BillAddress, ShipAddress,
    PaymentMethodRef (receipts), ShipDate, ShipMethodRef, Memo, DepositToAccountRef (receipts), Other,
    [LinkToTxnID (adds)], lines. The shipment fields only on a sale that shipped."""
    verb = f"{obj}Mod" if mod else f"{obj}Add"
    rq = request(verb, request_id)
    body = _add(rq, verb)
    if mod:
        _add(body, "TxnID", mod[0])
        _add(body, "EditSequence", mod[1])
    if doc.customer is None:
        raise MappingError(f"{obj} {doc.doc_number} needs a customer", order=doc.order_number, field="customer")
    ref(body, "CustomerRef", doc.customer)
    if doc.class_ref is not None:
        ref(body, "ClassRef", doc.class_ref)
    if obj in _HAS_AR and doc.ar_account is not None:
        ref(body, "ARAccountRef", doc.ar_account)
    _add(body, "TxnDate", doc.txn_date.isoformat())
    if doc.doc_number:
        _add(body, "RefNumber", ref_number(doc.doc_number))
    _address(body, "BillAddress", doc.billing_address)
    _address(body, "ShipAddress", doc.shipping_address)
    if obj == "SalesReceipt" and doc.payment_method is not None:
        ref(body, "PaymentMethodRef", doc.payment_method)
    shipped = desktop_shipment(doc.shipment, ship_methods) if doc.shipment and obj in REVERSE_OBJECTS else None
    if shipped is not None and shipped.ship_date is not None:
        _add(body, "ShipDate", shipped.ship_date.isoformat())
    if shipped is not None and shipped.ship_method:
        method = _add(body, "ShipMethodRef")
        _add(method, "FullName", shipped.ship_method)
    _add(body, "Memo", shipped.memo(doc) if shipped is not None else memo_for(doc))
    if obj == "SalesReceipt":
        if doc.deposit_account is None:
            raise MappingError("a sales receipt needs a deposit account", order=doc.order_number, field="deposit")
        ref(body, "DepositToAccountRef", doc.deposit_account)
    if shipped is not None and shipped.other:
        _add(body, "Other", shipped.other)
    if obj == "Invoice" and not mod:
        for link in doc.links:
            if link.role == "sales_order":
                txn = linked.get(link.role)
                if not txn:
                    raise MappingError(
                        f"invoice {doc.doc_number} follows from the sales order of this order, which is not posted yet",
                        order=doc.order_number,
                        field="links",
                    )
                _add(body, "LinkToTxnID", txn)
    line_tag = f"{obj}LineMod" if mod else f"{obj}LineAdd"
    for line in doc.lines:
        _line(body, line_tag, line, doc, mod=mod is not None)
    if doc.tax_total:
        if not tax_item:
            raise MappingError("the order's tax needs a tax item to be carried on", order=doc.order_number, field="tax")
        tax_line = DocLine(
            kind=LineKind.TAX,
            amount=doc.tax_total,
            description="Sales tax",
            item=Ref(key="tax", name=tax_item),
        )
        _line(body, line_tag, tax_line, doc, mod=mod is not None)
    return rq


def _line(parent: etree._Element, tag: str, line: DocLine, doc: Document, *, mod: bool) -> None:
    """One line: [TxnLineID,] ItemRef, Desc, Quantity, Rate, Amount, SalesTaxCodeRef. Tax is the channel's,
    carried as its own line, so every line is marked non-taxable and QuickBooks adds none of its own."""
    if line.item is None:
        raise MappingError(
            f"a {line.kind} line of {doc.kind} {doc.doc_number} has no item; Desktop lines need one",
            order=doc.order_number,
            field="lines.item",
        )
    element = _add(parent, tag)
    if mod:
        _add(element, "TxnLineID", "-1")
    ref(element, "ItemRef", line.item)
    _text(element, "Desc", line.description, MAX_DESC)
    if line.kind is not LineKind.DISCOUNT and line.quantity is not None and line.unit_price is not None:
        _add(element, "Quantity", _quantity(line.quantity))
        _add(element, "Rate", _rate(line.unit_price))
    _add(element, "Amount", money(line.signed_amount))
    sales_tax = _add(element, "SalesTaxCodeRef")
    _add(sales_tax, "FullName", NON_TAXABLE)


def _payment(doc: Document, request_id: str, linked: Mapping[str, str], mod: tuple[str, str] | None) -> etree._Element:
    """ReceivePaymentAdd/Mod: CustomerRef, ARAccountRef, TxnDate, RefNumber, TotalAmount, PaymentMethodRef,
    Memo, DepositToAccountRef, AppliedToTxnAdd{TxnID, PaymentAmount} (the invoice it pays)."""
    verb = "ReceivePaymentMod" if mod else "ReceivePaymentAdd"
    rq = request(verb, request_id)
    body = _add(rq, verb)
    if mod:
        _add(body, "TxnID", mod[0])
        _add(body, "EditSequence", mod[1])
    if doc.customer is None:
        raise MappingError(f"payment {doc.doc_number} needs a customer", order=doc.order_number, field="customer")
    ref(body, "CustomerRef", doc.customer)
    if doc.ar_account is not None:
        ref(body, "ARAccountRef", doc.ar_account)
    _add(body, "TxnDate", doc.txn_date.isoformat())
    if doc.doc_number:
        _add(body, "RefNumber", ref_number(doc.doc_number))
    _add(body, "TotalAmount", money(doc.total))
    if doc.payment_method is not None:
        ref(body, "PaymentMethodRef", doc.payment_method)
    _add(body, "Memo", memo_for(doc))
    if doc.deposit_account is not None:
        ref(body, "DepositToAccountRef", doc.deposit_account)
    invoices = [link for link in doc.links if link.kind is not DocumentKind.CREDIT_MEMO]
    credits = [link for link in doc.links if link.kind is DocumentKind.CREDIT_MEMO]
    for link in doc.links:
        if not linked.get(link.role):
            raise MappingError(
                f"payment {doc.doc_number} applies to the {link.role} of this order, which is not posted yet",
                order=doc.order_number,
                field="links",
            )
    for index, link in enumerate(invoices):
        applied = _add(body, "AppliedToTxnMod" if mod else "AppliedToTxnAdd")
        _add(applied, "TxnID", linked[link.role])
        # A credit application moves no money: the payment is 0.00 and the credit memo pays the invoice.
        paid = doc.total if credits else (link.amount if link.amount is not None else doc.total)
        _add(applied, "PaymentAmount", money(paid))
        if index == 0:
            for credit in credits:
                set_credit = _add(applied, "SetCredit")
                _add(set_credit, "CreditTxnID", linked[credit.role])
                _add(set_credit, "AppliedAmount", money(credit.amount if credit.amount is not None else doc.total))
    return rq


def txn_void(txn_type: str, txn_id: str, request_id: str) -> etree._Element:
    """TxnVoidRq: TxnVoidType, TxnID (no EditSequence: a void applies to whatever version is there)."""
    if txn_type not in VOIDABLE:
        raise MappingError(f"QuickBooks Desktop cannot void a {txn_type} through qbXML; it is deleted", field="kind")
    rq = request("TxnVoid", request_id)
    _add(rq, "TxnVoidType", txn_type)
    _add(rq, "TxnID", txn_id)
    return rq


def txn_del(txn_type: str, txn_id: str, request_id: str) -> etree._Element:
    """TxnDelRq: TxnDelType, TxnID. The transaction is gone from the company file (no audit copy)."""
    if txn_type not in DELETABLE:
        raise MappingError(f"QuickBooks Desktop cannot delete a {txn_type} through qbXML", field="kind")
    rq = request("TxnDel", request_id)
    _add(rq, "TxnDelType", txn_type)
    _add(rq, "TxnID", txn_id)
    return rq


def removal(txn_type: str, txn_id: str, request_id: str, *, delete: bool = False) -> etree._Element:
    """How a posted document leaves the books: TxnVoidRq (kept at zero, the audit trail stays), or TxnDelRq when
    `delete` is asked or qbXML cannot void that type (sales orders, estimates, received payments)."""
    if delete or txn_type not in VOIDABLE:
        return txn_del(txn_type, txn_id, request_id)
    return txn_void(txn_type, txn_id, request_id)


# -- queries ---------------------------------------------------------------------------------------------------

LIST_QUERIES = ("Account", "Class", "SalesTaxCode", "ItemSalesTax", "PaymentMethod", "Customer", "Item")


def list_query(
    name: str,
    request_id: str,
    *,
    list_ids: Iterable[str] = (),
    full_names: Iterable[str] = (),
    max_returned: int | None = None,
    active_only: bool = False,
    iterator: str | None = None,
    iterator_id: str | None = None,
) -> etree._Element:
    """`{name}QueryRq` for a list: ListID* | FullName* | (MaxReturned, ActiveStatus), with an iterator
    ("Start" / "Continue" + iteratorID) for long lists (customers, items)."""
    attributes: dict[str, str] = {}
    if iterator:
        attributes["iterator"] = iterator
    if iterator_id:
        attributes["iteratorID"] = iterator_id
    rq = request(f"{name}Query", request_id, **attributes)
    ids, names = list(list_ids), list(full_names)
    for value in ids:
        _add(rq, "ListID", value)
    for value in names:
        _add(rq, "FullName", value)
    if not ids and not names:
        if max_returned is not None:
            _add(rq, "MaxReturned", str(max_returned))
        if active_only:
            _add(rq, "ActiveStatus", "ActiveOnly")
    return rq


def txn_query(
    obj: str,
    request_id: str,
    *,
    txn_ids: Iterable[str] = (),
    ref_numbers: Iterable[str] = (),
    include_line_items: bool = False,
) -> etree._Element:
    """`{obj}QueryRq` by TxnID* or RefNumber* (the look-up before an add, and after a lost answer)."""
    rq = request(f"{obj}Query", request_id)
    for value in txn_ids:
        _add(rq, "TxnID", value)
    for value in ref_numbers:
        _add(rq, "RefNumber", value)
    if include_line_items and obj != "ReceivePayment":
        _add(rq, "IncludeLineItems", "true")
    return rq


# -- message sets ----------------------------------------------------------------------------------------------


def message_set(
    requests: Sequence[etree._Element],
    *,
    new_id: str | None = None,
    old_id: str | None = None,
    on_error: str = "continueOnError",
) -> str:
    """A whole qbXML document: the XML and qbxml declarations, then QBXML/QBXMLMsgsRq with the requests."""
    for set_id in (new_id, old_id):
        if set_id is not None and not 0 < len(set_id) <= MAX_MESSAGE_SET_ID:
            raise ValueError(f"a message set id is 1 to {MAX_MESSAGE_SET_ID} characters: {set_id!r}")
    root = etree.Element("QBXML")
    msgs = etree.SubElement(root, "QBXMLMsgsRq", onError=on_error)
    if old_id:
        msgs.set("oldMessageSetID", old_id)
    if new_id:
        msgs.set("newMessageSetID", new_id)
    for rq in requests:
        msgs.append(rq)
    body = etree.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="utf-8"?>\n<?qbxml version="{QBXML_VERSION}"?>\n{body}'


# -- reading answers -------------------------------------------------------------------------------------------

_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=False,
)


def parse_xml(text: str | bytes) -> etree._Element:
    """Parse untrusted XML: no entity expansion, no DTD, no network; a document with a DOCTYPE is refused."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    raw = raw.lstrip(b"\xef\xbb\xbf").strip()
    if not raw:
        raise QbXmlError("empty XML")
    try:
        tree = etree.fromstring(raw, _PARSER).getroottree()
    except etree.XMLSyntaxError as exc:
        raise QbXmlError(f"not well-formed XML: {exc}") from None
    if getattr(tree.docinfo, "doctype", "") or tree.docinfo.internalDTD is not None:
        raise QbXmlError("XML with a DOCTYPE is refused")
    return tree.getroot()


@dataclass(frozen=True, slots=True)
class Ret:
    """The parts of a …Ret element ledgerlink keeps: ids, edit sequence, number, total, memo, names."""

    tag: str
    txn_id: str = ""
    list_id: str = ""
    edit_sequence: str = ""
    ref_number: str = ""
    total: Decimal | None = None
    memo: str = ""
    name: str = ""
    full_name: str = ""
    customer: str = ""
    is_active: bool = True
    element: etree._Element | None = field(default=None, repr=False, compare=False)

    def find(self, path: str) -> str:
        """Text at a child path of the Ret ("AccountType", "PaymentMethodRef/FullName"), or ""."""
        if self.element is None:
            return ""
        found = self.element.findtext(path)
        return (found or "").strip()


@dataclass(frozen=True, slots=True)
class Answer:
    """One …Rs: its request id, status, the Rets, and the iterator's state for long lists."""

    request_id: str
    rs: str
    code: int
    severity: str
    message: str
    rets: tuple[Ret, ...] = ()
    iterator_id: str = ""
    remaining: int = 0

    @property
    def ok(self) -> bool:
        """Done as asked: status 0, a warning (500–999) with a result, or "no match" (1) for a query."""
        if self.code == 0:
            return True
        if self.code == 1 and self.rs.endswith("QueryRs"):
            return True
        return 500 <= self.code < 1000 and bool(self.rets)

    @property
    def ret(self) -> Ret | None:
        return self.rets[0] if self.rets else None

    def describe(self) -> str:
        return f"{self.message} (QuickBooks status {self.code})" if self.message else f"QuickBooks status {self.code}"


@dataclass(frozen=True, slots=True)
class ResponseSet:
    """A whole qbXML answer: the answers by request id, and the message-set status of a recovery answer."""

    answers: dict[str, Answer]
    message_set_status: str = ""
    new_message_set_id: str = ""


def _decimal(text: str) -> Decimal | None:
    if not text:
        return None
    try:
        return cents(Decimal(text))
    except InvalidOperation:
        return None


def read_ret(element: etree._Element) -> Ret:
    """The fields of a …Ret element."""

    def text(path: str) -> str:
        return (element.findtext(path) or "").strip()

    # An InvoiceRet has no TotalAmount: its total is Subtotal + SalesTaxTotal.
    total = _decimal(text("TotalAmount"))
    if total is None and text("Subtotal"):
        subtotal, tax = _decimal(text("Subtotal")), _decimal(text("SalesTaxTotal") or "0")
        total = cents(subtotal + tax) if subtotal is not None and tax is not None else None
    return Ret(
        tag=str(element.tag),
        txn_id=text("TxnID"),
        list_id=text("ListID"),
        edit_sequence=text("EditSequence"),
        ref_number=text("RefNumber"),
        total=total,
        memo=text("Memo"),
        name=text("Name"),
        full_name=text("FullName") or text("Name"),
        customer=text("CustomerRef/FullName"),
        is_active=text("IsActive").lower() != "false",
        element=element,
    )


def parse_response(text: str | bytes) -> ResponseSet:
    """Read a qbXML answer into answers by request id."""
    root = parse_xml(text)
    if root.tag != "QBXML":
        raise QbXmlError(f"expected a QBXML document, got <{root.tag}>")
    msgs = root.find("QBXMLMsgsRs")
    if msgs is None:
        raise QbXmlError("the answer has no QBXMLMsgsRs")
    answers: dict[str, Answer] = {}
    for rs in msgs:
        if not isinstance(rs.tag, str) or not rs.tag.endswith("Rs"):
            continue
        rid = rs.get("requestID", "")
        try:
            code = int(rs.get("statusCode", "0"))
        except ValueError:
            code = -1
        rets = tuple(read_ret(child) for child in rs if isinstance(child.tag, str) and child.tag.endswith("Ret"))
        try:
            remaining = int(rs.get("iteratorRemainingCount", "0"))
        except ValueError:
            remaining = 0
        answers[rid] = Answer(
            request_id=rid,
            rs=str(rs.tag),
            code=code,
            severity=rs.get("statusSeverity", ""),
            message=rs.get("statusMessage", ""),
            rets=rets,
            iterator_id=rs.get("iteratorID", ""),
            remaining=remaining,
        )
    return ResponseSet(
        answers=answers,
        message_set_status=msgs.get("messageSetStatusCode", ""),
        new_message_set_id=msgs.get("newMessageSetID", ""),
    )


def parse_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


# -- the reverse direction: Desktop sales read for ShipStation, and what ShipStation shipped written back -------

# Transactions the reverse direction reads. `Other` holds at most 29 characters (the SDK's limit for the header
# field); a ship method name at most 15 (`MAX_SHIP_VIA`).
REVERSE_OBJECTS = ("SalesOrder", "Invoice", "SalesReceipt")
MAX_OTHER = 29
_SALE_ADDRESS_TAGS = ("Addr1", "Addr2", "Addr3", "Addr4", "Addr5", "City", "State", "PostalCode", "Country", "Note")


def qb_datetime(moment: datetime) -> str:
    """A qbXML DATETIMETYPE: ISO 8601 to the second, with its UTC offset."""
    return moment.replace(microsecond=0).isoformat()


def txn_changes_query(
    obj: str,
    request_id: str,
    *,
    modified_from: datetime | None = None,
    max_returned: int = 100,
    iterator_id: str = "",
) -> etree._Element:
    """`{obj}QueryRq` for the documents changed since `modified_from` (MaxReturned, ModifiedDateRangeFilter,
    IncludeLineItems, IncludeLinkedTxns), read through an iterator: "Start", or "Continue" with `iterator_id`."""
    if iterator_id:
        rq = request(f"{obj}Query", request_id, iterator="Continue", iteratorID=iterator_id)
        _add(rq, "MaxReturned", str(max_returned))
        return rq
    rq = request(f"{obj}Query", request_id, iterator="Start")
    _add(rq, "MaxReturned", str(max_returned))
    if modified_from is not None:
        window = _add(rq, "ModifiedDateRangeFilter")
        _add(window, "FromModifiedDate", qb_datetime(modified_from))
    _add(rq, "IncludeLineItems", "true")
    _add(rq, "IncludeLinkedTxns", "true")
    return rq


def txn_deleted_query(types: Iterable[str], request_id: str, *, deleted_from: datetime) -> etree._Element:
    """TxnDeletedQueryRq: TxnDelType*, DeletedDateRangeFilter{FromDeletedDate} (the deletions since then)."""
    rq = request("TxnDeletedQuery", request_id)
    for txn_type in types:
        if txn_type not in DELETABLE:
            raise MappingError(f"QuickBooks Desktop does not report deleted {txn_type}s", field="kind")
        _add(rq, "TxnDelType", txn_type)
    window = _add(rq, "DeletedDateRangeFilter")
    _add(window, "FromDeletedDate", qb_datetime(deleted_from))
    return rq


def ship_mod(
    obj: str,
    request_id: str,
    *,
    txn_id: str,
    edit_sequence: str,
    ship_date: date | None = None,
    ship_method: str = "",
    close: bool = False,
    memo: str | None = None,
    other: str | None = None,
) -> etree._Element:
    """`{obj}ModRq` that writes a shipment onto a sale and changes nothing else (no line is named, so the lines
    stay): TxnID, EditSequence, ShipDate, ShipMethodRef, IsManuallyClosed (sales orders), Memo, Other, in the
    SDK's order."""
    if obj not in REVERSE_OBJECTS:
        raise MappingError(f"ledgerlink writes shipments onto sales orders, invoices and receipts, not {obj}s")
    if close and obj != "SalesOrder":
        raise MappingError(f"only a sales order can be closed, not a {obj}", field="IsManuallyClosed")
    if other is not None and len(other) > MAX_OTHER:
        raise MappingError(f"Other holds at most {MAX_OTHER} characters", field="Other")
    rq = request(f"{obj}Mod", request_id)
    body = _add(rq, f"{obj}Mod")
    _add(body, "TxnID", txn_id)
    _add(body, "EditSequence", edit_sequence)
    if ship_date is not None:
        _add(body, "ShipDate", ship_date.isoformat())
    if ship_method:
        method = _add(body, "ShipMethodRef")
        _add(method, "FullName", ship_via(ship_method))
    if close:
        _add(body, "IsManuallyClosed", "true")
    if memo is not None:
        _add(body, "Memo", memo[:MAX_MEMO])
    if other is not None:
        _add(body, "Other", other)
    return rq


@dataclass(frozen=True, slots=True)
class DesktopShipment:
    """A channel's shipment in Desktop's fields: ShipDate, a ShipMethodRef only when the company file has a
    ship method of the carrier's name, the tracking number in `Other` when it fits in 29 characters, and what
    has no field of its own (an unknown carrier, a longer tracking number) as one line under the memo."""

    ship_date: date | None
    ship_method: str
    other: str
    memo_line: str

    def memo(self, doc: Document) -> str:
        """The document's memo with the shipment's line under it (when it has one)."""
        base = memo_for(doc)
        return f"{base}\n{self.memo_line}"[:MAX_MEMO] if self.memo_line else base


def desktop_shipment(shipment: Shipment, ship_methods: Collection[str]) -> DesktopShipment:
    """How `shipment` is written on a Desktop sale, given the company file's ship method names."""
    known = {" ".join(name.split()).casefold(): name for name in ship_methods if name.strip()}
    carriers = [part.strip() for part in shipment.carrier.split(",") if part.strip()]
    method = next(
        (known[name.casefold()] for name in (shipment.carrier.strip(), *carriers) if name.casefold() in known), ""
    )
    notes: list[str] = []
    if carriers and (not method or len(carriers) > 1):
        notes.append(f"Shipped via {shipment.carrier.strip()}")
    tracking = shipment.tracking_number.strip()
    other = tracking if len(tracking) <= MAX_OTHER else ""
    if tracking and not other:
        notes.append(f"Tracking {tracking}")
    return DesktopShipment(
        ship_date=shipment.ship_date,
        ship_method=ship_via(method) if method else "",
        other=other,
        memo_line="; ".join(notes),
    )


def shipment_mod(
    doc: Document, request_id: str, *, txn_id: str, edit_sequence: str, ship_methods: Collection[str] = ()
) -> etree._Element:
    """The …ModRq of a shipment-only update (`UpdateScope.SHIPMENT`): the document's ShipDate, ShipMethodRef and
    tracking (`Other`, or the memo when it does not fit), nothing else; the lines and amounts stay as they are."""
    obj = txn_object(doc.kind)
    if doc.shipment is None or obj not in REVERSE_OBJECTS:
        raise MappingError(
            f"{doc.kind} {doc.doc_number} carries no shipment QuickBooks Desktop can hold",
            order=doc.order_number,
            field="shipment",
        )
    shipped = desktop_shipment(doc.shipment, ship_methods)
    return ship_mod(
        obj,
        request_id,
        txn_id=txn_id,
        edit_sequence=edit_sequence,
        ship_date=shipped.ship_date,
        ship_method=shipped.ship_method,
        memo=shipped.memo(doc) if shipped.memo_line else None,
        other=shipped.other or None,
    )


def _ref_dict(element: etree._Element | None) -> dict[str, str] | None:
    if element is None:
        return None
    return {
        "ListID": (element.findtext("ListID") or "").strip(),
        "FullName": (element.findtext("FullName") or "").strip(),
    }


def _address_dict(element: etree._Element | None) -> dict[str, str] | None:
    if element is None:
        return None
    return {tag: (element.findtext(tag) or "").strip() for tag in _SALE_ADDRESS_TAGS if element.findtext(tag)}


def _sale_line(element: etree._Element) -> dict[str, Any]:
    def text(tag: str) -> str:
        return (element.findtext(tag) or "").strip()

    return {
        "TxnLineID": text("TxnLineID"),
        "ItemRef": _ref_dict(element.find("ItemRef")),
        "ClassRef": _ref_dict(element.find("ClassRef")),
        "Desc": text("Desc"),
        "Quantity": text("Quantity"),
        "Rate": text("Rate"),
        "Amount": text("Amount"),
    }


def read_sale(element: etree._Element) -> dict[str, Any]:
    """A SalesOrderRet / InvoiceRet / SalesReceiptRet (or TxnDeletedRet) as plain values for the domain's mapping:
    strings as QuickBooks wrote them, refs as {ListID, FullName}, addresses as {Addr1, …}, `lines` with group
    lines replaced by their component lines."""

    def text(tag: str) -> str:
        return (element.findtext(tag) or "").strip()

    lines: list[dict[str, Any]] = []
    for child in element:
        tag = str(child.tag)
        if tag.endswith("LineRet"):
            lines.append(_sale_line(child))
        elif tag.endswith("LineGroupRet"):
            lines.extend(_sale_line(inner) for inner in child if str(inner.tag).endswith("LineRet"))
    kind = str(element.tag).removesuffix("Ret")
    return {
        "type": text("TxnDelType") or kind,
        "TxnID": text("TxnID"),
        "EditSequence": text("EditSequence"),
        "TimeModified": text("TimeModified"),
        "TimeDeleted": text("TimeDeleted"),
        "TxnNumber": text("TxnNumber"),
        "RefNumber": text("RefNumber"),
        "TxnDate": text("TxnDate"),
        "CustomerRef": _ref_dict(element.find("CustomerRef")),
        "ClassRef": _ref_dict(element.find("ClassRef")),
        "BillAddress": _address_dict(element.find("BillAddress")),
        "ShipAddress": _address_dict(element.find("ShipAddress")),
        "PONumber": text("PONumber"),
        "ShipDate": text("ShipDate"),
        "ShipMethodRef": _ref_dict(element.find("ShipMethodRef")),
        "PaymentMethodRef": _ref_dict(element.find("PaymentMethodRef")),
        "Subtotal": text("Subtotal"),
        "SalesTaxTotal": text("SalesTaxTotal"),
        "TotalAmount": text("TotalAmount"),
        "BalanceRemaining": text("BalanceRemaining"),
        "IsPaid": text("IsPaid"),
        "IsManuallyClosed": text("IsManuallyClosed"),
        "IsFullyInvoiced": text("IsFullyInvoiced"),
        "Memo": text("Memo"),
        "CustomerMsgRef": _ref_dict(element.find("CustomerMsgRef")),
        "Other": text("Other"),
        "LinkedTxn": [
            {"TxnID": (link.findtext("TxnID") or "").strip(), "TxnType": (link.findtext("TxnType") or "").strip()}
            for link in element.findall("LinkedTxn")
        ],
        "lines": lines,
    }
