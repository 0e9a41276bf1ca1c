"""The reverse direction, purely: a QuickBooks sale (SalesReceipt, Invoice, Estimate) → a ShipStation order.

No I/O and no clock. The sync (`sync/reverse.py`) reads the sales (CDC), the items and customers they name,
and hands them here; what comes back is the `createorder` body, or the reason the sale is left alone.

The rules:
- **Which sales**: the transaction types and QuickBooks classes of `FromBooksSettings` (a sale matches a class
  when the document or any of its lines carries it; no classes chosen means every class).
- **orderKey** = `qbo-<realm>-<type>-<Id>`: stable for the life of the document, so a resend is an upsert.
- **Status**: a sale with a balance due (an Invoice with `Balance` > 0) is `awaiting_payment`, any other
  `awaiting_shipment` (both settable). An Estimate is an order to fulfil, not a bill: it goes as
  `awaiting_shipment` with nothing paid (QuickBooks Online's stand-in for a sales order). A voided sale
  (QuickBooks zeroes it and notes "Voided"), a rejected estimate or a deleted sale cancels the order: the last
  body sent, with `orderStatus: cancelled` (ShipStation replaces whole orders).
- **Sums**: ShipStation's orderTotal is Σ items (unit price × quantity, discounts as negative adjustment
  items) + shippingAmount + taxAmount. The shipping lines (`SHIPPING_ITEM_ID` or the items named as
  shipping) become shippingAmount, `TxnTaxDetail.TotalTax` becomes taxAmount; a cent left over (a fractional
  quantity, rounding) becomes an adjustment item so the order always adds up to the sale's `TotalAmt`.
- **Write-back**: what ShipStation shipped comes back as a sparse update of TrackingNum, ShipDate and
  ShipMethodRef (carrier and service). With `write_shipping_cost`, the label's cost (`shipmentCost`) is added
  as one line of the sale's private note (its Memo), never as a line of the sale: the customer paid what the
  sale says, and the label cost is the merchant's expense, which the bookkeeper already books from the
  ShipStation or carrier bill; a second expense posted from here would count it twice.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ledgerlink.domain.errors import MappingError
from ledgerlink.domain.money import ZERO, cents

SHIPPING_ITEM_ID = "SHIPPING_ITEM_ID"
MAX_ORDER_NUMBER = 50
MAX_TRACKING_NUM = 31  # QuickBooks Online's TrackingNum field
MAX_SHIP_METHOD = 31
MAX_PRIVATE_NOTE = 4000  # QuickBooks Online's PrivateNote
SALE_ENTITIES = ("SalesReceipt", "Invoice", "Estimate")  # what QuickBooks Online's CDC is asked for
SOURCE = "QuickBooks Online"
_COUNTRIES = {
    "USA": "US",
    "U.S.A.": "US",
    "U.S.": "US",
    "UNITED STATES": "US",
    "UNITED STATES OF AMERICA": "US",
    "CANADA": "CA",
    "UNITED KINGDOM": "GB",
    "UK": "GB",
    "AUSTRALIA": "AU",
    "MEXICO": "MX",
}


class SaleType(enum.StrEnum):
    """The QuickBooks documents the reverse direction reads (Sales Orders exist only in QuickBooks Desktop)."""

    SALES_RECEIPT = "SalesReceipt"
    INVOICE = "Invoice"
    ESTIMATE = "Estimate"
    SALES_ORDER = "SalesOrder"

    @property
    def desktop_only(self) -> bool:
        return self is SaleType.SALES_ORDER

    @property
    def is_order(self) -> bool:
        """An order to fulfil (nothing is paid on it yet), not a bill or a receipt."""
        return self in (SaleType.ESTIMATE, SaleType.SALES_ORDER)


class ShipStationStatus(enum.StrEnum):
    """The statuses a new ShipStation order may be created in."""

    AWAITING_PAYMENT = "awaiting_payment"
    AWAITING_SHIPMENT = "awaiting_shipment"
    ON_HOLD = "on_hold"


class FromBooksSettings(BaseModel):
    """Sync Orders from QuickBooks (`ChannelSettings.from_books`): which sales go to ShipStation, and how."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    transaction_types: list[SaleType] = Field(
        default_factory=lambda: [SaleType.SALES_RECEIPT, SaleType.INVOICE],
        description="Which QuickBooks documents are sent to ShipStation",
    )
    class_ids: list[str] = Field(
        default_factory=list, description="Only sales of these QuickBooks classes (ids); empty for every class"
    )
    store_id: int | None = Field(default=None, description="The ShipStation store the orders go to")
    ship_via_services: dict[str, str] = Field(
        default_factory=dict,
        description="QuickBooks ship via (e.g. 'UPS Ground') → ShipStation requested shipping service",
    )
    default_service: str = Field(default="", max_length=100, description="Requested service when none maps")
    paid_status: ShipStationStatus = ShipStationStatus.AWAITING_SHIPMENT
    balance_due_status: ShipStationStatus = ShipStationStatus.AWAITING_PAYMENT
    shipping_item_names: list[str] = Field(
        default_factory=lambda: ["Shipping"],
        description="Items whose lines are the shipping charge (besides QuickBooks' own shipping line)",
    )
    write_tracking: bool = Field(default=True, description="Write ship date, carrier and tracking back")
    write_shipping_cost: bool = Field(
        default=False, description="Note the label's shipping cost on the QuickBooks sale (its private note)"
    )
    first_sync_days: int = Field(
        default=7, ge=0, le=30, description="How far back the first sync reads (QuickBooks keeps 30 days of changes)"
    )
    default_country: str = Field(default="US", min_length=2, max_length=2)

    @field_validator("transaction_types")
    @classmethod
    def _some_types(cls, value: list[SaleType]) -> list[SaleType]:
        if not value:
            raise ValueError("choose at least one transaction type")
        return list(dict.fromkeys(value))

    @field_validator("class_ids", "shipping_item_names")
    @classmethod
    def _clean(cls, value: list[str]) -> list[str]:
        return [v.strip() for v in value if v.strip()]

    @property
    def entities(self) -> list[str]:
        return [t.value for t in self.transaction_types]

    @property
    def online_entities(self) -> list[str]:
        """The chosen types QuickBooks Online has (what its CDC is asked for)."""
        return [t.value for t in self.transaction_types if not t.desktop_only]


@dataclass(frozen=True, slots=True)
class ItemInfo:
    """What the mapping needs of a QuickBooks item."""

    name: str
    sku: str = ""


@dataclass(frozen=True, slots=True)
class CustomerInfo:
    """What the mapping needs of a QuickBooks customer."""

    display_name: str
    company: str = ""
    email: str = ""
    phone: str = ""
    bill_addr: Mapping[str, Any] | None = None
    ship_addr: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ShipmentFacts:
    """One ShipStation shipment, as the write-back needs it."""

    shipment_id: int
    order_key: str
    tracking_number: str
    carrier_code: str
    service_code: str
    ship_date: date | None
    voided: bool = False
    shipment_cost: Decimal | None = None


# -- identity, filters, status ---------------------------------------------------------------------------------


def order_key(realm_id: str, entity: str, doc_id: str) -> str:
    """The ShipStation orderKey of one QuickBooks document: the same on every resend, so resends upsert."""
    return f"qbo-{realm_id}-{entity}-{doc_id}"


def is_deleted(row: Mapping[str, Any]) -> bool:
    """A CDC deletion stub (`status: "Deleted"`)."""
    return str(row.get("status") or "").casefold() == "deleted"


def is_voided(row: Mapping[str, Any]) -> bool:
    """Whether the sale is off: QuickBooks keeps a voided sale with every amount zeroed and "Voided" at the start
    of its memo; a rejected estimate will not be fulfilled either."""
    if str(row.get("TxnStatus") or "").casefold() == "rejected":
        return True
    note = str(row.get("PrivateNote") or "")
    return note.startswith("Voided") and _amount(row.get("TotalAmt")) == ZERO


def class_ids(row: Mapping[str, Any]) -> set[str]:
    """The classes a sale carries: the document's and its lines'."""
    found = {_ref_value(row.get("ClassRef"))}
    for line in _lines(row):
        for detail_name in ("SalesItemLineDetail", "DiscountLineDetail"):
            detail = line.get(detail_name)
            if isinstance(detail, Mapping):
                found.add(_ref_value(detail.get("ClassRef")))
    found.discard("")
    return found


def wanted(row: Mapping[str, Any], entity: str, settings: FromBooksSettings) -> str | None:
    """None when the sale goes to ShipStation, else why not (for the activity log)."""
    if entity not in settings.entities:
        return f"{entity} is not a chosen transaction type"
    if settings.class_ids and not (class_ids(row) & set(settings.class_ids)):
        return "its QuickBooks class is not one of the chosen classes"
    return None


def balance_due(row: Mapping[str, Any], entity: str) -> Decimal:
    """What is still owed on the sale (only invoices carry a balance)."""
    if entity != SaleType.INVOICE:
        return ZERO
    return max(_amount(row.get("Balance")), ZERO)


def amount_paid(row: Mapping[str, Any], entity: str, total: Decimal) -> Decimal:
    """What the customer has paid: all of a receipt, an invoice's total less its balance, nothing on an order."""
    if entity in (SaleType.ESTIMATE, SaleType.SALES_ORDER):
        return ZERO
    return total - balance_due(row, entity)


def status_for(row: Mapping[str, Any], entity: str, settings: FromBooksSettings) -> str:
    """The status a live sale is sent with."""
    if balance_due(row, entity) > 0:
        return settings.balance_due_status.value
    return settings.paid_status.value


def cancelled(body: Mapping[str, Any]) -> dict[str, Any]:
    """The order that cancels `body` in ShipStation: the same whole order with status cancelled."""
    return {**body, "orderStatus": "cancelled"}


# -- the mapping ---------------------------------------------------------------------------------------------


def to_shipstation(
    row: Mapping[str, Any],
    entity: str,
    realm_id: str,
    settings: FromBooksSettings,
    *,
    items: Mapping[str, ItemInfo],
    customer: CustomerInfo | None,
) -> dict[str, Any]:
    """The createorder body of one live QuickBooks sale; raises MappingError naming the field."""
    return _Mapper(row, entity, realm_id, settings, items, customer).order()


class _Mapper:
    def __init__(
        self,
        row: Mapping[str, Any],
        entity: str,
        realm_id: str,
        settings: FromBooksSettings,
        items: Mapping[str, ItemInfo],
        customer: CustomerInfo | None,
    ) -> None:
        self.row = row
        self.entity = entity
        self.realm_id = realm_id
        self.settings = settings
        self.items = items
        self.customer = customer
        self.doc_id = str(row.get("Id") or "")
        self.number = str(row.get("DocNumber") or "") or f"{entity}-{self.doc_id}"
        self.shipping_names = {n.casefold() for n in settings.shipping_item_names}

    def fail(self, message: str, field: str) -> MappingError:
        return MappingError(message, order=self.number, field=field)

    def order(self) -> dict[str, Any]:
        row = self.row
        if not self.doc_id:
            raise self.fail("the sale has no Id", "Id")
        if len(self.number) > MAX_ORDER_NUMBER:
            raise self.fail(f"a ShipStation order number holds at most {MAX_ORDER_NUMBER} characters", "DocNumber")
        products: list[dict[str, Any]] = []
        adjustments: list[dict[str, Any]] = []
        shipping = ZERO
        for index, line in enumerate(_flat_lines(row)):
            where = f"Line[{index}]"
            kind = line.get("DetailType")
            if kind == "SalesItemLineDetail":
                detail = line.get("SalesItemLineDetail")
                detail = detail if isinstance(detail, Mapping) else {}
                if self.is_shipping(detail):
                    shipping += self.money(line.get("Amount"), f"{where}.Amount")
                elif _ref_value(detail.get("ItemRef")):
                    products.append(self.item(line, detail, where))
            elif kind == "DiscountLineDetail":
                amount = self.money(line.get("Amount"), f"{where}.Amount")
                if amount:
                    adjustments.append(_adjustment(f"discount-{line.get('Id') or index}", "Discount", -abs(amount)))
        tax_detail = row.get("TxnTaxDetail")
        tax = ZERO
        if isinstance(tax_detail, Mapping):
            tax = self.money(tax_detail.get("TotalTax"), "TxnTaxDetail.TotalTax")
        total_amt = self.money(row.get("TotalAmt"), "TotalAmt")
        items = products + adjustments
        computed = cents(sum((Decimal(i["quantity"]) * i["unitPrice"] for i in items), ZERO)) + shipping + tax
        if computed != total_amt:
            # Rounding of a fractional quantity, or a line kind ShipStation has no place for.
            items.append(_adjustment("adjustment", "Adjustment", total_amt - computed))
        txn_date = self.day(row.get("TxnDate"), "TxnDate")
        bill_to = self.address(row.get("BillAddr"), self.customer.bill_addr if self.customer else None)
        ship_to = self.address(row.get("ShipAddr"), self.customer.ship_addr if self.customer else None) or bill_to
        if not ship_to:
            raise self.fail("the sale has no ship-to or bill-to address, and neither has its customer", "ShipAddr")
        bill_to = bill_to or ship_to
        paid = amount_paid(row, self.entity, total_amt)
        email = _email(row.get("BillEmail")) or (self.customer.email if self.customer else "")
        options: dict[str, Any] = {
            "customField1": str(row.get("DocNumber") or self.number),
            "customField2": f"QuickBooks {self.entity} {self.doc_id}",
            "source": SOURCE,
        }
        if self.settings.store_id is not None:
            options["storeId"] = self.settings.store_id
        body: dict[str, Any] = {
            "orderNumber": self.number,
            "orderKey": order_key(self.realm_id, self.entity, self.doc_id),
            "orderDate": _wall(txn_date),
            "orderStatus": status_for(row, self.entity, self.settings),
            "customerUsername": email or (self.customer.display_name if self.customer else ""),
            "customerEmail": email,
            "billTo": bill_to,
            "shipTo": ship_to,
            "items": items,
            "amountPaid": paid,
            "taxAmount": tax,
            "shippingAmount": shipping,
            "customerNotes": _memo(row.get("CustomerMemo")),
            "internalNotes": str(row.get("PrivateNote") or "")[:1000],
            "paymentMethod": _ref_name(row.get("PaymentMethodRef")),
            "requestedShippingService": self.service(),
            "advancedOptions": options,
        }
        if paid > 0:
            body["paymentDate"] = _wall(txn_date)
        return body

    # -- parts --

    def is_shipping(self, detail: Mapping[str, Any]) -> bool:
        item_id = _ref_value(detail.get("ItemRef"))
        if item_id == SHIPPING_ITEM_ID:
            return True
        info = self.items.get(item_id)
        name = info.name if info is not None else _ref_name(detail.get("ItemRef"))
        return name.casefold() in self.shipping_names

    def item(self, line: Mapping[str, Any], detail: Mapping[str, Any], where: str) -> dict[str, Any]:
        item_id = _ref_value(detail.get("ItemRef"))
        info = self.items.get(item_id)
        name = info.name if info is not None else _ref_name(detail.get("ItemRef"))
        sku = (info.sku if info is not None else "") or name
        amount = self.money(line.get("Amount"), f"{where}.Amount")
        qty_raw = detail.get("Qty")
        quantity = _decimal(qty_raw) if qty_raw not in (None, "") else Decimal(1)
        if quantity is None or quantity < 0:
            raise self.fail(f"expected a quantity, got {qty_raw!r}", f"{where}.SalesItemLineDetail.Qty")
        label = str(line.get("Description") or "").strip() or name or sku or "Item"
        key = str(line.get("Id") or where)
        return _item_line(key, sku, label, quantity, _decimal(detail.get("UnitPrice")), amount)

    def service(self) -> str:
        ship_via = _ref_name(self.row.get("ShipMethodRef")) or _ref_value(self.row.get("ShipMethodRef"))
        mapping = {k.casefold(): v for k, v in self.settings.ship_via_services.items()}
        if ship_via and ship_via.casefold() in mapping:
            return mapping[ship_via.casefold()]
        return self.settings.default_service or ship_via

    def address(self, raw: object, fallback: Mapping[str, Any] | None) -> dict[str, Any] | None:
        source = raw if isinstance(raw, Mapping) and _has_address(raw) else fallback
        if not isinstance(source, Mapping) or not _has_address(source):
            return None
        customer = self.customer
        street = [str(source.get(f"Line{n}") or "").strip() for n in range(1, 6)]
        street = [s for s in street if s]
        name = customer.display_name if customer is not None else _ref_name(self.row.get("CustomerRef"))
        # QuickBooks often puts the addressee on Line1 when the address was typed on the form.
        if len(street) > 1 and name and street[0].casefold() == name.casefold():
            street = street[1:]
        country = str(source.get("Country") or "").strip()
        return {
            "name": name or "Customer",
            "company": customer.company if customer is not None else "",
            "street1": street[0] if street else "",
            "street2": street[1] if len(street) > 1 else "",
            "street3": ", ".join(street[2:]),
            "city": str(source.get("City") or ""),
            "state": str(source.get("CountrySubDivisionCode") or ""),
            "postalCode": str(source.get("PostalCode") or ""),
            "country": _country(country, self.settings.default_country),
            "phone": customer.phone if customer is not None else "",
            "residential": None,
        }

    def money(self, raw: object, field: str) -> Decimal:
        value = _decimal(raw) if raw not in (None, "") else ZERO
        if value is None:
            raise self.fail(f"expected an amount, got {raw!r}", field)
        return cents(value)

    def day(self, raw: object, field: str) -> date:
        try:
            return date.fromisoformat(str(raw)[:10])
        except ValueError:
            raise self.fail(f"expected a date, got {raw!r}", field) from None


# -- the write-back ----------------------------------------------------------------------------------------


def ship_method(carrier_code: str, service_code: str) -> str:
    """The ShipMethodRef QuickBooks shows ("ups ups_ground"), within its length."""
    return " ".join(p for p in (carrier_code.strip(), service_code.strip()) if p)[:MAX_SHIP_METHOD]


def cost_line(shipment: ShipmentFacts) -> str:
    """The private-note line that records one shipment's label cost (names the shipment: written once)."""
    cost = cents(shipment.shipment_cost or ZERO)
    method = ship_method(shipment.carrier_code, shipment.service_code)
    parts = [p for p in (method, shipment.ship_date.isoformat() if shipment.ship_date else "") if p]
    how = f" ({', '.join(parts)})" if parts else ""
    return f"{_cost_marker(shipment)} shipping cost {cost}{how}"


def _cost_marker(shipment: ShipmentFacts) -> str:
    return f"ShipStation shipment {shipment.shipment_id}:"


def note_with_cost(note: str, shipment: ShipmentFacts) -> str | None:
    """The sale's private note with the shipment's label cost added; None when there is nothing to add.

    Nothing is added for a shipment without a cost (marked shipped outside ShipStation) or one already noted.
    The merchant's own text is kept; past QuickBooks' 4,000 characters the oldest text gives way, not ours.
    """
    if shipment.shipment_cost is None or shipment.shipment_cost <= 0 or _cost_marker(shipment) in note:
        return None
    line = cost_line(shipment)
    joined = f"{note.rstrip()}\n{line}" if note.strip() else line
    return joined[-MAX_PRIVATE_NOTE:]


def tracking_update(
    doc_id: str, sync_token: str, shipment: ShipmentFacts, *, private_note: str | None = None
) -> dict[str, Any]:
    """The sparse update that writes one shipment onto the QuickBooks sale (and, if given, its new memo)."""
    body: dict[str, Any] = {
        "Id": doc_id,
        "SyncToken": sync_token,
        "sparse": True,
        "TrackingNum": shipment.tracking_number[:MAX_TRACKING_NUM],
    }
    if shipment.ship_date is not None:
        body["ShipDate"] = shipment.ship_date.isoformat()
    method = ship_method(shipment.carrier_code, shipment.service_code)
    if method:
        body["ShipMethodRef"] = {"value": method, "name": method}
    if private_note is not None:
        body["PrivateNote"] = private_note
    return body


def shipment_facts(raw: Mapping[str, Any]) -> ShipmentFacts | None:
    """A ShipStation shipment (GET /shipments row), or None when it is not one we can use."""
    shipment_id = raw.get("shipmentId")
    key = raw.get("orderKey")
    if isinstance(shipment_id, bool) or not isinstance(shipment_id, int) or not isinstance(key, str) or not key:
        return None
    ship_date: date | None = None
    raw_date = raw.get("shipDate")
    if isinstance(raw_date, str) and raw_date.strip():
        try:
            ship_date = date.fromisoformat(raw_date.strip()[:10])
        except ValueError:
            ship_date = None
    return ShipmentFacts(
        shipment_id=shipment_id,
        order_key=key,
        tracking_number=str(raw.get("trackingNumber") or ""),
        carrier_code=str(raw.get("carrierCode") or ""),
        service_code=str(raw.get("serviceCode") or ""),
        ship_date=ship_date,
        voided=raw.get("voided") is True,
        shipment_cost=_decimal(raw.get("shipmentCost")) if raw.get("shipmentCost") not in (None, "") else None,
    )


# -- small readers -------------------------------------------------------------------------------------------


def _lines(row: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    lines = row.get("Line")
    return [line for line in lines if isinstance(line, Mapping)] if isinstance(lines, list) else []


def _flat_lines(row: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The lines with group (bundle) lines replaced by their component lines."""
    out: list[Mapping[str, Any]] = []
    for line in _lines(row):
        if line.get("DetailType") == "GroupLineDetail":
            group = line.get("GroupLineDetail")
            inner = group.get("Line") if isinstance(group, Mapping) else None
            out.extend(i for i in inner or [] if isinstance(i, Mapping))
        else:
            out.append(line)
    return out


def _ref_value(ref: object) -> str:
    return str(ref.get("value") or "") if isinstance(ref, Mapping) else ""


def _ref_name(ref: object) -> str:
    return str(ref.get("name") or "") if isinstance(ref, Mapping) else ""


def _email(raw: object) -> str:
    return str(raw.get("Address") or "").strip() if isinstance(raw, Mapping) else ""


def _memo(raw: object) -> str:
    if isinstance(raw, Mapping):
        return str(raw.get("value") or "")
    return str(raw or "")


def _decimal(raw: object) -> Decimal | None:
    if isinstance(raw, bool) or not isinstance(raw, int | str | Decimal | float):
        return None
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _amount(raw: object) -> Decimal:
    value = _decimal(raw)
    return cents(value) if value is not None else ZERO


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _adjustment(key: str, name: str, amount: Decimal) -> dict[str, Any]:
    return {"lineItemKey": key, "sku": "", "name": name, "quantity": 1, "unitPrice": cents(amount), "adjustment": True}


def _has_address(raw: Mapping[str, Any]) -> bool:
    return any(str(raw.get(k) or "").strip() for k in ("Line1", "City", "PostalCode"))


def _country(raw: str, default: str) -> str:
    if not raw:
        return default.upper()
    if len(raw) == 2 and raw.isalpha():
        return raw.upper()
    return _COUNTRIES.get(raw.upper(), default.upper())


def _wall(day: date) -> str:
    """A date as ShipStation's Pacific wall-clock timestamp (midnight)."""
    return datetime(day.year, day.month, day.day).strftime("%Y-%m-%dT%H:%M:%S.0000000")  # noqa: DTZ001 - Pacific wall time


# -- QuickBooks Desktop as the source ---------------------------------------------------------------------------
#
# The same rules for a Desktop sale, read from its qbXML Ret as plain values (`books/qbd/qbxml.read_sale`):
# orderKey `qbd-<books connection>-<type>-<TxnID>`, source "QuickBooks Desktop", the sales order (Desktop has real
# ones) as an order to fulfil with nothing paid. A voided sale (QuickBooks zeroes it and puts "VOID:" before its
# memo), a deleted one, or a sales order closed in QuickBooks before it shipped cancels the order. An invoice
# made from a sales order that is itself sent is not sent again (it would ship twice). What ShipStation shipped
# comes back as one …Mod: ShipDate, ShipMethodRef (only a ship method the company file has), the tracking number
# in `Other` (29 characters; a longer one, or a second shipment, goes to the memo) and, for a sales order,
# IsManuallyClosed.

DESKTOP_SOURCE = "QuickBooks Desktop"
DESKTOP_ENTITIES = ("SalesOrder", "Invoice", "SalesReceipt")
MAX_DESKTOP_OTHER = 29
MAX_DESKTOP_MEMO = 4095
MAX_DESKTOP_SHIP_METHOD = 15
# ShipStation carrier codes → the names QuickBooks' default Ship Via list uses.
_CARRIER_SHIP_VIA = {
    "ups": "UPS",
    "ups_walleted": "UPS",
    "fedex": "FedEx",
    "stamps_com": "US Mail",
    "usps": "US Mail",
    "dhl_express": "DHL",
    "dhl_express_worldwide": "DHL",
}


def desktop_order_key(books_id: int | str, entity: str, txn_id: str) -> str:
    """The ShipStation orderKey of one Desktop document (the TxnID never changes, so resends upsert)."""
    return f"qbd-{books_id}-{entity}-{txn_id}"


def desktop_total(sale: Mapping[str, Any]) -> Decimal:
    """The sale's total: TotalAmount, or (an InvoiceRet has none) Subtotal + SalesTaxTotal."""
    if str(sale.get("TotalAmount") or "").strip():
        return _amount(sale.get("TotalAmount"))
    return _amount(sale.get("Subtotal")) + _amount(sale.get("SalesTaxTotal"))


def desktop_is_voided(sale: Mapping[str, Any]) -> bool:
    """QuickBooks keeps a voided sale with every amount zeroed and "VOID:" at the start of its memo."""
    return str(sale.get("Memo") or "").startswith("VOID:") and desktop_total(sale) == ZERO


def desktop_is_closed(sale: Mapping[str, Any], entity: str) -> bool:
    """A sales order closed in QuickBooks (by hand, or by us after it shipped)."""
    return entity == SaleType.SALES_ORDER and str(sale.get("IsManuallyClosed") or "").lower() == "true"


def desktop_class_ids(sale: Mapping[str, Any]) -> set[str]:
    """The classes a Desktop sale carries (header and lines), by ListID and by full name."""
    found: set[str] = set()
    refs = [sale.get("ClassRef"), *(line.get("ClassRef") for line in _desktop_lines(sale))]
    for ref in refs:
        if isinstance(ref, Mapping):
            found |= {str(ref.get("ListID") or ""), str(ref.get("FullName") or "")}
    found.discard("")
    return found


def desktop_wanted(sale: Mapping[str, Any], entity: str, settings: FromBooksSettings) -> str | None:
    """None when the Desktop sale goes to ShipStation, else why not. Classes match by ListID or full name."""
    if entity not in settings.entities:
        return f"{entity} is not a chosen transaction type"
    if settings.class_ids and not (desktop_class_ids(sale) & set(settings.class_ids)):
        return "its QuickBooks class is not one of the chosen classes"
    if entity == SaleType.INVOICE and SaleType.SALES_ORDER in settings.transaction_types:
        for link in sale.get("LinkedTxn") or []:
            if isinstance(link, Mapping) and link.get("TxnType") == "SalesOrder":
                return "it was invoiced from a sales order, which is the order sent to ShipStation"
    return None


def desktop_balance_due(sale: Mapping[str, Any], entity: str) -> Decimal:
    if entity != SaleType.INVOICE:
        return ZERO
    return max(_amount(sale.get("BalanceRemaining")), ZERO)


def desktop_to_shipstation(
    sale: Mapping[str, Any],
    entity: str,
    books_key: int | str,
    settings: FromBooksSettings,
    *,
    items: Mapping[str, ItemInfo],
    subtotal_items: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The createorder body of one live Desktop sale; raises MappingError naming the order and the field.

    `items` are the company file's items by ListID (name and SKU); lines of `subtotal_items` (Desktop's
    Subtotal items repeat the lines above them) are left out."""
    txn_id = str(sale.get("TxnID") or "")
    number = str(sale.get("RefNumber") or "") or f"{entity}-{sale.get('TxnNumber') or txn_id}"

    def fail(message: str, field: str) -> MappingError:
        return MappingError(message, order=number, field=field)

    def money(raw: object, field: str) -> Decimal:
        value = _decimal(raw) if raw not in (None, "") else ZERO
        if value is None:
            raise fail(f"expected an amount, got {raw!r}", field)
        return cents(value)

    if not txn_id:
        raise fail("the sale has no TxnID", "TxnID")
    if len(number) > MAX_ORDER_NUMBER:
        raise fail(f"a ShipStation order number holds at most {MAX_ORDER_NUMBER} characters", "RefNumber")
    shipping_names = {n.casefold() for n in settings.shipping_item_names}
    products: list[dict[str, Any]] = []
    adjustments: list[dict[str, Any]] = []
    shipping = ZERO
    for index, line in enumerate(_desktop_lines(sale)):
        where = f"lines[{index}]"
        ref = line.get("ItemRef")
        if not isinstance(ref, Mapping) or not (ref.get("ListID") or ref.get("FullName")):
            continue  # a description-only line
        item_id = str(ref.get("ListID") or "")
        if item_id in subtotal_items:
            continue
        info = items.get(item_id)
        name = (info.name if info is not None else "") or str(ref.get("FullName") or "")
        amount = money(line.get("Amount"), f"{where}.Amount")
        if name.casefold() in shipping_names:
            shipping += amount
            continue
        if amount < 0:
            adjustments.append(_adjustment(f"discount-{line.get('TxnLineID') or index}", name or "Discount", amount))
            continue
        products.append(_desktop_item(line, name, info, amount, where, fail))
    tax = money(sale.get("SalesTaxTotal"), "SalesTaxTotal")
    total = desktop_total(sale)
    lines_out = products + adjustments
    computed = cents(sum((Decimal(i["quantity"]) * i["unitPrice"] for i in lines_out), ZERO)) + shipping + tax
    if computed != total:
        lines_out.append(_adjustment("adjustment", "Adjustment", total - computed))
    try:
        txn_date = date.fromisoformat(str(sale.get("TxnDate") or "")[:10])
    except ValueError:
        raise fail(f"expected a date, got {sale.get('TxnDate')!r}", "TxnDate") from None
    customer = sale.get("CustomerRef")
    customer_name = str(customer.get("FullName") or "") if isinstance(customer, Mapping) else ""
    addressee = customer_name.split(":")[0].strip()
    bill_to = _desktop_address(sale.get("BillAddress"), addressee, settings.default_country)
    ship_to = _desktop_address(sale.get("ShipAddress"), addressee, settings.default_country) or bill_to
    if ship_to is None:
        raise fail("the sale has no ship-to or bill-to address", "ShipAddress")
    paid = ZERO if entity == SaleType.SALES_ORDER else total - desktop_balance_due(sale, entity)
    status = (settings.balance_due_status if desktop_balance_due(sale, entity) > 0 else settings.paid_status).value
    ship_via_ref = sale.get("ShipMethodRef")
    ship_via_name = str(ship_via_ref.get("FullName") or "") if isinstance(ship_via_ref, Mapping) else ""
    services = {k.casefold(): v for k, v in settings.ship_via_services.items()}
    service = services.get(ship_via_name.casefold()) if ship_via_name else None
    message = sale.get("CustomerMsgRef")
    payment = sale.get("PaymentMethodRef")
    options: dict[str, Any] = {
        "customField1": number,
        "customField2": f"QuickBooks Desktop {entity} {txn_id}",
        "source": DESKTOP_SOURCE,
    }
    if settings.store_id is not None:
        options["storeId"] = settings.store_id
    body: dict[str, Any] = {
        "orderNumber": number,
        "orderKey": desktop_order_key(books_key, entity, txn_id),
        "orderDate": _wall(txn_date),
        "orderStatus": status,
        "customerUsername": addressee,
        "customerEmail": "",
        "billTo": bill_to or ship_to,
        "shipTo": ship_to,
        "items": lines_out,
        "amountPaid": paid,
        "taxAmount": tax,
        "shippingAmount": shipping,
        "customerNotes": str(message.get("FullName") or "") if isinstance(message, Mapping) else "",
        "internalNotes": str(sale.get("Memo") or "")[:1000],
        "paymentMethod": str(payment.get("FullName") or "") if isinstance(payment, Mapping) else "",
        "requestedShippingService": service or settings.default_service or ship_via_name,
        "advancedOptions": options,
    }
    if paid > 0:
        body["paymentDate"] = _wall(txn_date)
    return body


def _desktop_lines(sale: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    lines = sale.get("lines")
    return [line for line in lines if isinstance(line, Mapping)] if isinstance(lines, list) else []


def _desktop_item(
    line: Mapping[str, Any],
    name: str,
    info: ItemInfo | None,
    amount: Decimal,
    where: str,
    fail: Callable[[str, str], MappingError],
) -> dict[str, Any]:
    qty_raw = line.get("Quantity")
    quantity = _decimal(qty_raw) if qty_raw not in (None, "") else Decimal(1)
    if quantity is None or quantity < 0:
        raise fail(f"expected a quantity, got {qty_raw!r}", f"{where}.Quantity")
    label = str(line.get("Desc") or "").strip() or name or "Item"
    sku = (info.sku if info is not None else "") or name
    return _item_line(str(line.get("TxnLineID") or where), sku, label, quantity, _decimal(line.get("Rate")), amount)


def _item_line(
    key: str, sku: str, label: str, quantity: Decimal, rate: Decimal | None, amount: Decimal
) -> dict[str, Any]:
    """A ShipStation line item of a QuickBooks sale line (Online or Desktop). ShipStation counts whole units: a
    weighed or zero quantity ships as one line of its amount; a rate that does not give the amount is replaced."""
    if quantity == quantity.to_integral_value() and quantity > 0:
        whole = int(quantity)
        price = rate
        if price is None or cents(price * whole) != amount:
            price = amount / whole
        unit = price if price == cents(price) else cents(price)
    else:
        whole, unit = 1, amount
        label = f"{label} ({_plain(quantity)})"
    return {
        "lineItemKey": key,
        "sku": sku[:100],
        "name": label[:200],
        "quantity": whole,
        "unitPrice": unit,
        "adjustment": False,
    }


def _desktop_address(raw: object, addressee: str, default_country: str) -> dict[str, Any] | None:
    if not isinstance(raw, Mapping):
        return None
    street = [str(raw.get(f"Addr{n}") or "").strip() for n in range(1, 6)]
    street = [s for s in street if s]
    # Desktop fills Addr1 with the customer's name (and often Addr2 with the company) on its forms.
    if street and addressee and street[0].casefold() == addressee.casefold():
        street = street[1:]
    if not (street or str(raw.get("City") or "").strip() or str(raw.get("PostalCode") or "").strip()):
        return None
    return {
        "name": addressee or "Customer",
        "company": "",
        "street1": street[0] if street else "",
        "street2": street[1] if len(street) > 1 else "",
        "street3": ", ".join(street[2:]),
        "city": str(raw.get("City") or ""),
        "state": str(raw.get("State") or ""),
        "postalCode": str(raw.get("PostalCode") or ""),
        "country": _country(str(raw.get("Country") or "").strip(), default_country),
        "phone": "",
        "residential": None,
    }


@dataclass(frozen=True, slots=True)
class DesktopWriteBack:
    """What one shipment changes on the Desktop sale (None fields stay as they are)."""

    ship_date: date | None = None
    ship_method: str = ""
    close: bool = False
    other: str | None = None
    memo: str | None = None


def desktop_ship_method(shipment: ShipmentFacts, settings: FromBooksSettings, ship_methods: Iterable[str]) -> str:
    """The company file's ship method for a shipment: the ship via whose mapped service ShipStation used, the
    carrier's usual name (ups → UPS, stamps_com → US Mail), or "" when the company file has none of them."""
    known = {m.casefold(): m for m in ship_methods if m}
    service = shipment.service_code.casefold()
    candidates = [via for via, mapped in settings.ship_via_services.items() if service and mapped.casefold() == service]
    candidates += [_CARRIER_SHIP_VIA.get(shipment.carrier_code.casefold(), ""), shipment.carrier_code]
    for candidate in candidates:
        found = known.get(candidate.strip().casefold()) if candidate.strip() else None
        if found is not None:
            return found[:MAX_DESKTOP_SHIP_METHOD]
    return ""


def desktop_write_back(
    sale: Mapping[str, Any],
    entity: str,
    shipment: ShipmentFacts,
    settings: FromBooksSettings,
    ship_methods: Iterable[str],
) -> DesktopWriteBack | None:
    """The change one shipment makes on the Desktop sale as it is now; None when it is all there already (so a
    shipment is written once, even when the answer to the first Mod was lost)."""
    close = entity == SaleType.SALES_ORDER and not desktop_is_closed(sale, entity)
    ship_date: date | None = None
    method = ""
    other: str | None = None
    memo = str(sale.get("Memo") or "")
    new_memo = memo
    if settings.write_tracking:
        if shipment.ship_date is not None and str(sale.get("ShipDate") or "") != shipment.ship_date.isoformat():
            ship_date = shipment.ship_date
        wanted_method = desktop_ship_method(shipment, settings, ship_methods)
        current = sale.get("ShipMethodRef")
        current_name = str(current.get("FullName") or "") if isinstance(current, Mapping) else ""
        if wanted_method and current_name.casefold() != wanted_method.casefold():
            method = wanted_method
        tracking = shipment.tracking_number.strip()
        present = str(sale.get("Other") or "")
        if tracking and tracking != present and tracking not in memo:
            if len(tracking) <= MAX_DESKTOP_OTHER and not present:
                other = tracking
            else:
                new_memo = _memo_line(new_memo, f"Tracking {tracking} (ShipStation shipment {shipment.shipment_id})")
    if settings.write_shipping_cost:
        noted = note_with_cost(new_memo, shipment)
        if noted is not None:
            new_memo = noted
    memo_out = new_memo[-MAX_DESKTOP_MEMO:] if new_memo != memo else None
    if not (close or ship_date or method or other is not None or memo_out is not None):
        return None
    return DesktopWriteBack(ship_date=ship_date, ship_method=method, close=close, other=other, memo=memo_out)


def _memo_line(memo: str, line: str) -> str:
    return f"{memo.rstrip()}\n{line}" if memo.strip() else line
