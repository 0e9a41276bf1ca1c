"""`plan(order, settings, catalog)`: the accounting documents an order should become. Pure: no I/O.

The plan also lists the master data (customers, items) the documents need that the books do not have yet.
Every document is checked: its total must equal the channel's order total to the cent, or the order fails
with an error naming the difference (unless the settings allow an adjustment line).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ledgerlink.domain.catalog import (
    Catalog,
    CatalogQuery,
    CustomerRecord,
    ItemRecord,
    MasterData,
    NewCustomer,
    NewItem,
    fold,
)
from ledgerlink.domain.documents import (
    SHIPPING_ITEM_ID,
    DocLine,
    Document,
    DocumentKind,
    LineKind,
    Link,
    Ref,
    UpdateScope,
    shipment_of,
)
from ledgerlink.domain.errors import ConfigError, MappingError
from ledgerlink.domain.money import ZERO, total
from ledgerlink.domain.order import Order, Refund
from ledgerlink.domain.rules import Decision, apply_rules
from ledgerlink.domain.settings import (
    CancelMode,
    ChannelSettings,
    CustomerMode,
    ItemMatch,
    MissingCustomer,
    MissingItem,
    RefundMode,
    RestockMode,
    SyncDirection,
    TaxMode,
    TransactionType,
    UpdatePolicy,
)

MAX_DOC_NUMBER = 21
MAX_ITEM_NAME = 100
CHANNEL_TITLES = {"shopify": "Shopify", "shipstation": "ShipStation", "woocommerce": "WooCommerce"}
# The roles of the sale itself; payments, credit applications and refunds follow from them.
SALE_ROLES = frozenset({"receipt", "invoice", "sales_order"})
PAYMENT_ROLE = "payment"
REFUND_ROLE = "refund:"
APPLY_ROLE = "apply:"
# Voids go out dependents first: payments (and credit applications) before credits, credits before the sale.
_VOID_RANK = {
    DocumentKind.PAYMENT: 0,
    DocumentKind.CREDIT_MEMO: 1,
    DocumentKind.REFUND_RECEIPT: 1,
    DocumentKind.SALES_RECEIPT: 2,
    DocumentKind.INVOICE: 2,
    DocumentKind.ESTIMATE: 3,
    DocumentKind.SALES_ORDER: 3,
}


class ChangeKind(enum.StrEnum):
    """What a planned change does to the books (the values are the books port's operations)."""

    CREATE = "create"
    UPDATE = "update"
    VOID = "void"


@dataclass(frozen=True, slots=True)
class PostedDoc:
    """A document of the order that is in the books now (its live binding in the ledger)."""

    role: str
    document: Document

    @property
    def kind(self) -> DocumentKind:
        return self.document.kind


@dataclass(frozen=True, slots=True)
class Change:
    """One thing to do to the books for an order: create a document, update or void one that is there."""

    operation: ChangeKind
    document: Document

    @property
    def role(self) -> str:
        return self.document.role


@dataclass(slots=True)
class Plan:
    """What one order becomes: documents to post, master data to create first, or why it is skipped.

    `changes` (filled by `reconcile`) says what to do to the books to get there from what they hold now;
    `void_all` says why every document of the order is to be voided (cancelled, refunded in full).
    """

    order: Order
    documents: list[Document] = field(default_factory=list)
    needs: MasterData = field(default_factory=MasterData)
    skipped: str | None = None
    void_all: str | None = None
    changes: list[Change] = field(default_factory=list)
    generation: int = 1
    rules: Decision | None = None  # what the channel's rules decided for this order, and why

    @property
    def ready(self) -> bool:
        """All references resolved: the documents can be posted as they are."""
        return not self.needs and all(not doc.unresolved() for doc in self.documents)


def eligibility(order: Order, settings: ChannelSettings, *, posted: bool = False) -> str | None:
    """Why the order filter leaves this order out, or None when it is to be synced.

    `posted`: the order has documents in the books already, so a cancellation is no reason to leave it.
    """
    filt = settings.orders
    if settings.direction is SyncDirection.FROM_BOOKS:
        return "this connection syncs orders from QuickBooks, not to it"
    if order.cancelled_at is not None and not filt.include_cancelled and not posted:
        return "cancelled before it was synced"
    if filt.order_numbers and order.number not in filt.order_numbers:
        return f"order number {order.number} is not in the order filter"
    if filt.financial_statuses and order.financial_status not in filt.financial_statuses:
        wanted = ", ".join(filt.financial_statuses)
        return f"financial status {order.financial_status or 'none'!r} is not one of the synced statuses ({wanted})"
    fulfilment = order.fulfillment_status or "unfulfilled"
    if filt.fulfillment_statuses and fulfilment not in filt.fulfillment_statuses:
        wanted = ", ".join(filt.fulfillment_statuses)
        return f"fulfilment status {fulfilment!r} is not one of the synced statuses ({wanted})"
    created = order.created_at.date()
    if filt.created_from and created < filt.created_from:
        return f"created {created} before the sync start date {filt.created_from}"
    if filt.created_to and created > filt.created_to:
        return f"created {created} after the sync end date {filt.created_to}"
    return None


def catalog_query(order: Order, settings: ChannelSettings) -> CatalogQuery:
    """The master-data keys `plan` will look up for this order."""
    _decision, settings = apply_rules(order, settings)  # a rule may name another customer or map a SKU
    query = CatalogQuery()
    for line in order.lines:
        if line.sku.strip():
            query.skus.add(line.sku.strip())
            query.item_names.add(line.sku.strip())
        if line.name.strip():
            query.item_names.add(line.name.strip())
        if line.sku.strip() or line.name.strip():
            query.item_names.add(_item_name(line.sku.strip() or line.name.strip()))
        if mapped := settings.items.mapped_item(line.sku):
            query.item_names.add(mapped)
    query.item_names |= {
        _item_name(name)
        for name in (
            settings.shipping_item_name,
            settings.fee_item_name,
            settings.tax.tax_item_name,
            settings.adjust_item_name,
            settings.discount_item_name,
            *([settings.refunds.no_restock_item_name] if order.refunds else []),
        )
    }
    if settings.customers.mode is CustomerMode.PER_BUYER:
        if order.customer.email:
            query.emails.add(order.customer.email)
        if name := _buyer_name(order):
            query.customer_names |= {name, _clean_name(name)}
    query.customer_names.add(_clean_name(settings.customers.single_name))
    return query


def plan(
    order: Order,
    settings: ChannelSettings,
    catalog: Catalog,
    *,
    books: Sequence[PostedDoc] = (),
    generation: int = 1,
) -> Plan:
    """The documents `order` becomes under `settings`, given what the books hold (`catalog`).

    `books` are the order's documents already in the books (payments and credit applications there are kept,
    and only what was captured since is paid anew); `generation` > 1 numbers the documents of a repost
    ("1001-2"), since QuickBooks keeps the number of a voided document.
    The channel's rules (`settings.rules`) run first: they skip the order, or change the settings it is
    booked with; `Plan.rules` says which fired and why.
    """
    decision, effective = apply_rules(order, settings)
    result = _plan(order, effective, catalog, books=books, generation=generation, skip=decision.skip_reason)
    result.rules = decision
    if decision.memo_tags:
        result.documents = [doc.model_copy(update={"memo": decision.memo(doc.memo)}) for doc in result.documents]
    if decision.department is not None and result.documents:
        result.documents = decision.locate(result.documents, catalog, order)  # a rule's location (QBO only)
    return result


def _plan(
    order: Order,
    settings: ChannelSettings,
    catalog: Catalog,
    *,
    books: Sequence[PostedDoc],
    generation: int,
    skip: str | None,
) -> Plan:
    posted = bool(books)
    refunds = settings.refunds
    if posted and order.cancelled_at is not None and refunds.on_cancel is CancelMode.VOID:
        return Plan(order=order, void_all="cancelled in the channel after it was posted")
    if posted and refunds.mode is RefundMode.VOID and order.fully_refunded:
        return Plan(order=order, void_all="refunded in full in the channel (refund setting: void)")
    reason = skip or eligibility(order, settings, posted=posted)
    if reason is None and not posted and order.refunds:
        if refunds.mode is RefundMode.VOID and order.fully_refunded:
            reason = "refunded in full before it was synced (refund setting: void)"
        elif not refunds.sync_original_first:
            reason = "refunded before it was synced, and the settings say not to sync such orders"
    if reason is not None:
        return Plan(order=order, skipped=reason)
    return _Planner(order, settings, catalog, books=books, generation=generation).build()


def reconcile(
    order: Order,
    settings: ChannelSettings,
    catalog: Catalog,
    *,
    books: Sequence[PostedDoc] = (),
    generation: int = 1,
) -> Plan:
    """`plan`, plus the changes that take the books from what they hold (`books`) to the plan.

    Under the update policy `update` a changed document is updated, a new one created, one the order no
    longer has voided; `ignore` only creates what is new (a later payment, a refund); `void_and_repost`
    voids every document once the sale changed and posts the order again under new numbers. A cancellation
    or a full refund (as the refund settings say) voids everything, whatever the update policy.
    """
    result = plan(order, settings, catalog, books=books, generation=generation)
    if result.skipped is not None:
        return result
    if result.void_all is not None:
        result.changes = _voids(books)
        return result
    if not books:
        result.changes = [Change(ChangeKind.CREATE, doc) for doc in result.documents]
        return result
    posted = {doc.role: doc for doc in books}
    wanted = {doc.role: doc for doc in result.documents}
    changed = [
        role
        for role, doc in posted.items()
        if role not in wanted or not same_document(doc.document, wanted[role], shipment=False, catalog=catalog)
    ]
    policy = settings.update_policy
    # Tracking is not a financial change: whatever the update policy, a new shipment is written (once) onto a
    # sale whose other changes are not, as a shipment-only update of the document as the books hold it.
    shipped = [
        role
        for role, doc in posted.items()
        if role in wanted
        and wanted[role].shipment is not None
        and doc.document.shipment != wanted[role].shipment
        and not (policy is UpdatePolicy.UPDATE and role in changed)
    ]
    track = [
        Change(
            ChangeKind.UPDATE,
            posted[role].document.model_copy(update={"shipment": wanted[role].shipment, "scope": UpdateScope.SHIPMENT}),
        )
        for role in shipped
    ]
    if policy is UpdatePolicy.VOID_AND_REPOST and changed:
        fresh = plan(order, settings, catalog, generation=generation + 1)
        fresh.changes = _voids(books) + [Change(ChangeKind.CREATE, doc) for doc in fresh.documents]
        return fresh
    changes: list[Change] = []
    if policy is UpdatePolicy.UPDATE:
        changes += _voids([posted[role] for role in changed if role not in wanted])
        updates = [wanted[role] for role in changed if role in wanted]
        # A payment that shrinks goes first (an invoice cannot fall below what is applied to it); the sale
        # next, so that a payment growing with it fits.
        updates.sort(
            key=lambda doc: (
                0 if doc.kind is DocumentKind.PAYMENT and doc.total < posted[doc.role].document.total else 1,
                _VOID_RANK.get(doc.kind, 9) * -1,
            )
        )
        changes += [Change(ChangeKind.UPDATE, doc) for doc in updates]
    changes += track
    changes += [Change(ChangeKind.CREATE, doc) for doc in result.documents if doc.role not in posted]
    result.changes = changes
    return result


def _voids(books: Sequence[PostedDoc]) -> list[Change]:
    ordered = sorted(books, key=lambda doc: _VOID_RANK.get(doc.kind, 9))
    return [Change(ChangeKind.VOID, doc.document) for doc in ordered]


def same_document(a: Document, b: Document, *, shipment: bool = True, catalog: Catalog | None = None) -> bool:
    """The two documents say the same in the books: references compared by id, the marker and the scope of
    the last update ignored; with `shipment=False` the shipment (tracking) too.

    On QuickBooks Desktop a customer or item we queued is referred to by its FullName until a Web Connector
    session brings back its ListID, and by the ListID after that; given the `catalog` (which knows both), the
    two forms of one record are one reference, so that change alone is no change."""
    ignored = {"marker", "scope"} | (set() if shipment else {"shipment"})
    left, right = a.model_dump(exclude=ignored), b.model_dump(exclude=ignored)
    if _comparable(left, None) == _comparable(right, None):
        return True
    if catalog is None or catalog.company.books != "qbd":
        return False
    same: bool = _comparable(left, catalog) == _comparable(right, catalog)
    return same


def _desktop_id(catalog: Catalog, field: str, ref_id: str) -> str:
    """The ListID of the Desktop customer or item a FullName reference names (the id itself otherwise)."""
    if field == "customer":
        record: CustomerRecord | ItemRecord | None = catalog.customers_by_name.get(fold(ref_id))
    elif field == "item":
        record = catalog.items_by_name.get(fold(ref_id))
    else:
        return ref_id
    return record.id if record is not None else ref_id


def _comparable(value: Any, desktop: Catalog | None, field: str = "") -> Any:
    if isinstance(value, dict):
        if set(value) == {"key", "name", "id"}:
            # A reference: how it was matched (its key) and the name it was shown under do not matter.
            if value["id"] is None:
                return ("name", value["name"])
            ref_id = str(value["id"])
            return ("ref", _desktop_id(desktop, field, ref_id) if desktop is not None else ref_id)
        return {key: _comparable(item, desktop, key) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_comparable(item, desktop, field) for item in value]
    return value


class _Planner:
    """One planning pass; collects needs while it builds the documents."""

    def __init__(
        self,
        order: Order,
        settings: ChannelSettings,
        catalog: Catalog,
        *,
        books: Sequence[PostedDoc] = (),
        generation: int = 1,
    ) -> None:
        self.order = order
        self.settings = settings
        self.catalog = catalog
        self.books = catalog.company.books
        self.posted = {doc.role: doc.document for doc in books}
        self.generation = generation
        self.needs = MasterData()

    def fail(self, message: str, field: str) -> MappingError:
        return MappingError(message, order=self.order.label, field=field)

    def config(self, message: str, field: str) -> ConfigError:
        return ConfigError(message, order=self.order.label, field=field)

    def build(self) -> Plan:
        order, settings = self.order, self.settings
        missing = settings.missing()
        if missing:
            raise self.config("these settings must be chosen before orders can sync", ", ".join(missing))
        if order.taxes_included:
            raise self.fail(
                "prices include tax; tax-inclusive orders need tax codes mapped, which is not supported yet",
                "taxes_included",
            )
        if (
            order.currency.upper() != self.catalog.company.home_currency.upper()
            and not self.catalog.company.multicurrency
        ):
            raise self.fail(
                f"order is in {order.currency} but the QuickBooks company uses {self.catalog.company.home_currency} "
                "and multicurrency is off",
                "currency",
            )
        if not order.lines:
            raise self.fail("the order has no product lines", "lines")

        customer = self.customer()
        lines = self.sale_lines()
        tax_total = self.tax(lines)
        documents = self.documents(customer, lines, tax_total)
        return Plan(order=order, documents=documents, needs=self.needs, generation=self.generation)

    # -- master data -------------------------------------------------------------------------------------

    def customer(self) -> Ref:
        cset = self.settings.customers
        if cset.mode is CustomerMode.SINGLE:
            return self.single_customer()
        name, email = _buyer_name(self.order), self.order.customer.email.strip()
        if not name and not email:
            return self.single_customer()
        display = _clean_name(name or email)
        # Also look for the name a customer is created under, or the next plan would create it again.
        hit = self.catalog.find_customer(email, name) or self.catalog.find_customer("", display)
        if hit is not None:
            return Ref(key=f"customer:{hit.id}", name=hit.display_name, id=hit.id)
        if cset.when_missing is MissingCustomer.FAIL:
            raise self.fail(
                f"customer {name or email!r} is not in QuickBooks and the settings say not to create customers",
                "customer",
            )
        if cset.when_missing is MissingCustomer.USE_SINGLE:
            return self.single_customer()
        key = f"email:{fold(email)}" if email else f"name:{fold(name)}"
        buyer = self.order.customer
        self.needs.customers.setdefault(
            key,
            NewCustomer(
                key=key,
                display_name=display,
                email=email,
                given_name=buyer.first_name,
                family_name=buyer.last_name,
                company=buyer.company,
                phone=buyer.phone or self.order.billing_address.phone,
                billing_address=None if self.order.billing_address.is_empty() else self.order.billing_address,
                shipping_address=None if self.order.shipping_address.is_empty() else self.order.shipping_address,
            ),
        )
        return Ref(key=key, name=display)

    def single_customer(self) -> Ref:
        name = _clean_name(self.settings.customers.single_name)
        hit = self.catalog.find_customer("", name)
        if hit is not None:
            return Ref(key=f"customer:{hit.id}", name=hit.display_name, id=hit.id)
        key = f"name:{fold(name)}"
        self.needs.customers.setdefault(key, NewCustomer(key=key, display_name=name))
        return Ref(key=key, name=name)

    def product_item(self, index: int) -> Ref:
        line = self.order.lines[index]
        sku, name = line.sku.strip(), line.name.strip()
        if not sku and not name:
            raise self.fail("the line has neither a SKU nor a name to match an item on", f"lines[{index}].sku")
        item_name = _item_name(sku or name)
        items = self.settings.items
        mapped = items.mapped_item(sku)
        if mapped is not None:
            hit = self.catalog.find_item("", mapped)
            if hit is None:
                raise self.fail(
                    f"SKU {sku!r} is mapped to the QuickBooks item {mapped!r}, which QuickBooks does not have",
                    f"lines[{index}].sku",
                )
            return Ref(key=f"item:{hit.id}", name=hit.name, id=hit.id)
        if items.match_on is ItemMatch.SKU:
            hit = self.catalog.find_item(sku, "") if sku else None
        elif items.match_on is ItemMatch.NAME:
            hit = self.catalog.find_item("", name)
        else:
            hit = self.catalog.find_item(sku, name)
        # Also look for the (cleaned, shortened) name an item is created under, or it would be created again.
        hit = hit or self.catalog.find_item("", item_name)
        if hit is not None:
            return Ref(key=f"item:{hit.id}", name=hit.name, id=hit.id)
        how = items.when_missing
        if how is MissingItem.FAIL:
            raise self.fail(
                f"no QuickBooks item matches SKU {sku!r} or name {name!r}; map it or create it in QuickBooks "
                "(unmatched product)",
                f"lines[{index}].sku",
            )
        key = f"sku:{fold(sku)}" if sku else f"name:{fold(name)}"
        inventory = how is MissingItem.CREATE_INVENTORY
        accounts = self.settings.accounts
        return self.need_item(
            NewItem(
                key=key,
                name=item_name,
                sku=sku,
                type="Inventory" if inventory else "NonInventory",
                description=name,
                unit_price=str(line.unit_price),
                income_account=self.income_account(),
                asset_account=accounts.item_asset if inventory else None,
                cogs_account=accounts.item_cogs if inventory else None,
            )
        )

    def service_item(self, name: str) -> Ref:
        """An item the settings name (shipping, fees, tax, adjustment, discount); created as a service."""
        clean = _item_name(name)
        hit = self.catalog.find_item("", clean)
        if hit is not None:
            return Ref(key=f"item:{hit.id}", name=hit.name, id=hit.id)
        key = f"name:{fold(clean)}"
        return self.need_item(NewItem(key=key, name=clean, type="Service", income_account=self.income_account()))

    def need_item(self, item: NewItem) -> Ref:
        """Add `item` to the needs, unless one by the same name is needed already (QuickBooks item names are unique)."""
        for needed in self.needs.items.values():
            if needed.key == item.key or fold(needed.name) == fold(item.name):
                return Ref(key=needed.key, name=needed.name)
        self.needs.items[item.key] = item
        return Ref(key=item.key, name=item.name)

    def income_account(self) -> str:
        income = self.settings.accounts.item_income
        if not income:
            raise self.config(
                "choose the Item Income account: new items post their sales to it", "accounts.item_income"
            )
        return income

    def account(self, account_id: str | None, field: str, why: str) -> Ref:
        if not account_id:
            raise self.config(f"choose this account: {why}", field)
        known = self.catalog.accounts.get(account_id)
        return Ref(key=f"account:{account_id}", name=known.name if known else "", id=account_id)

    # -- lines ------------------------------------------------------------------------------------------

    def sale_lines(self) -> list[DocLine]:
        order, settings = self.order, self.settings
        lines: list[DocLine] = []
        for index, line in enumerate(order.lines):
            lines.append(
                DocLine(
                    kind=LineKind.ITEM,
                    item=self.product_item(index),
                    description=line.name,
                    quantity=line.quantity,
                    unit_price=line.unit_price,
                    amount=line.gross,
                    taxable=line.taxable and line.tax_total > 0,
                )
            )
        discount = total([*(line.discount_total for line in order.lines), *(d.amount for d in order.order_discounts)])
        if discount:
            codes = sorted({d.code for line in order.lines for d in line.discounts if d.code})
            codes += sorted({d.code for d in order.order_discounts if d.code} - set(codes))
            lines.append(
                DocLine(
                    kind=LineKind.DISCOUNT,
                    amount=discount,
                    description="Discount" + (f" ({', '.join(codes)})" if codes else ""),
                    account=self.account(
                        settings.accounts.item_discount,
                        "accounts.item_discount",
                        f"the order has discounts of {discount}; discounts post to the Item Discount account",
                    ),
                    item=self.service_item(settings.discount_item_name) if self.books == "qbd" else None,
                )
            )
        shipping = total(s.net for s in order.shipping_lines)
        if shipping:
            if settings.use_books_shipping_line and self.books == "qbo" and self.catalog.company.allow_shipping_line:
                item = Ref(key="shipping", name="Shipping", id=SHIPPING_ITEM_ID)
            else:
                item = self.service_item(settings.shipping_item_name)
            lines.append(
                DocLine(
                    kind=LineKind.SHIPPING,
                    item=item,
                    description=", ".join(s.title for s in order.shipping_lines if s.title) or "Shipping",
                    quantity=Decimal(1),
                    unit_price=shipping,
                    amount=shipping,
                    taxable=any(s.tax_total > 0 for s in order.shipping_lines),
                )
            )
        for index, fee in enumerate(order.fees):
            if fee.amount == ZERO:
                continue
            if fee.amount < 0:
                raise self.fail(f"fee {fee.name!r} is negative ({fee.amount})", f"fees[{index}].amount")
            lines.append(
                DocLine(
                    kind=LineKind.FEE,
                    item=self.service_item(settings.fee_item_name),
                    description=fee.name,
                    quantity=Decimal(1),
                    unit_price=fee.amount,
                    amount=fee.amount,
                    taxable=fee.taxable,
                )
            )
        return lines

    def tax(self, lines: list[DocLine], amount: Decimal | None = None) -> Decimal | None:
        """Pin the tax total (the channel's, or `amount`) on the document, or add it as a line; returns the
        pinned total."""
        tax = self.order.totals.tax if amount is None else amount
        if self.settings.tax.mode is TaxMode.LINE_ITEM:
            if tax:
                lines.append(
                    DocLine(
                        kind=LineKind.TAX,
                        item=self.service_item(self.settings.tax.tax_item_name),
                        description="Sales tax",
                        quantity=Decimal(1),
                        unit_price=tax,
                        amount=tax,
                    )
                )
                for i, line in enumerate(lines):
                    if line.taxable:
                        lines[i] = line.model_copy(update={"taxable": False})
            return None
        if self.books == "qbo" and self.catalog.company.country.upper() != "US" and tax:
            raise self.config(
                "outside the US QuickBooks Online needs a tax code per line; choose 'tax as a line item' for now",
                "tax.mode",
            )
        return tax

    # -- documents --------------------------------------------------------------------------------------

    def doc_number(self, suffix: str = "") -> str:
        """Prefix + channel number (+ "-2" for a repost's generation) + `suffix` ("-R1", "-SO")."""
        repost = f"-{self.generation}" if self.generation > 1 else ""
        number = f"{self.settings.doc_number_prefix}{self.order.number}{repost}{suffix}"
        if len(number) > MAX_DOC_NUMBER:
            raise self.config(
                f"document number {number!r} is longer than QuickBooks' {MAX_DOC_NUMBER} characters; "
                "shorten the prefix",
                "doc_number_prefix",
            )
        return number

    def documents(self, customer: Ref, lines: list[DocLine], tax_total: Decimal | None) -> list[Document]:
        order, settings = self.order, self.settings
        memo = f"{CHANNEL_TITLES.get(order.channel, order.channel)} order #{order.number}"
        base = {
            "order_number": order.number,
            "txn_date": order.created_at.date(),
            "customer": customer,
            "currency": order.currency.upper(),
            "memo": memo,
            "billing_address": None if order.billing_address.is_empty() else order.billing_address,
            "shipping_address": None if order.shipping_address.is_empty() else order.shipping_address,
            "class_ref": Ref(key=f"class:{settings.class_id}", id=settings.class_id) if settings.class_id else None,
            "tax_code": self.tax_code(),
        }
        lines = self.balance(lines, tax_total)
        sale = {**base, "lines": tuple(lines), "tax_total": tax_total, "total": order.totals.total}
        # Tracking goes onto the sale itself: a receipt or an invoice, and on Desktop a sales order that is the
        # order's only document (Online's estimate has no tracking field).
        shipped = {"shipment": shipment_of(order)}
        ttype = settings.transaction_type
        docs: list[Document] = []
        if ttype is TransactionType.SALES_RECEIPT:
            docs.append(
                Document(
                    role="receipt",
                    kind=DocumentKind.SALES_RECEIPT,
                    doc_number=self.doc_number(),
                    deposit_account=self.deposit(),
                    payment_method=self.payment_method(),
                    **sale,
                    **shipped,
                )
            )
            docs += self.refund_documents(base, docs[0], open_balance=ZERO)
            return docs
        sales_order_kind = DocumentKind.SALES_ORDER if self.books == "qbd" else DocumentKind.ESTIMATE
        if ttype in {TransactionType.SALES_ORDER, TransactionType.SALES_ORDER_INVOICE_PAYMENT}:
            # Online numbers estimates and invoices from one sequence, so the estimate gets a suffix there.
            suffix = "-SO" if ttype is TransactionType.SALES_ORDER_INVOICE_PAYMENT and self.books == "qbo" else ""
            tracked = shipped if ttype is TransactionType.SALES_ORDER and self.books == "qbd" else {}
            docs.append(
                Document(
                    role="sales_order", kind=sales_order_kind, doc_number=self.doc_number(suffix), **sale, **tracked
                )
            )
            if ttype is TransactionType.SALES_ORDER:
                return docs
        links = (Link(role="sales_order", kind=sales_order_kind),) if docs else ()
        docs.append(
            Document(
                role="invoice",
                kind=DocumentKind.INVOICE,
                doc_number=self.doc_number(),
                ar_account=self.receivables(),
                links=links,
                **sale,
                **shipped,
            )
        )
        invoice = docs[-1]
        payments, paid = self.payments(base, invoice)
        docs += payments
        docs += self.refund_documents(base, invoice, open_balance=invoice.total - paid)
        return docs

    # -- payments ---------------------------------------------------------------------------------------

    def payments(self, base: dict[str, Any], invoice: Document) -> tuple[list[Document], Decimal]:
        """The invoice's payments: those in the books kept, a new one for what was captured since.

        Returns the payments and what they add up to (never more than the invoice total)."""
        target = min(self.order.paid_amount, invoice.total)
        posted = sorted(
            (doc for role, doc in self.posted.items() if _payment_index(role)),
            key=lambda doc: _payment_index(doc.role),
        )
        docs: list[Document] = []
        left = target
        for doc in posted:
            # Less was paid than the books show (the order was edited down): the latest payments shrink.
            amount = min(doc.total, left)
            left -= amount
            if amount == doc.total:
                docs.append(doc)
            elif amount > ZERO:
                docs.append(
                    doc.model_copy(
                        update={
                            "total": amount,
                            "links": (Link(role="invoice", kind=DocumentKind.INVOICE, amount=amount),),
                        }
                    )
                )
        if left > ZERO:
            number = max((_payment_index(doc.role) for doc in posted), default=0) + 1
            role = PAYMENT_ROLE if number == 1 else f"{PAYMENT_ROLE}-{number}"
            later = {"txn_date": self.order.updated_at.date()} if posted else {}
            docs.append(
                Document(
                    **{
                        **base,
                        **later,
                        "role": role,
                        "kind": DocumentKind.PAYMENT,
                        "doc_number": self.doc_number(),
                        "total": left,
                        "deposit_account": self.deposit(),
                        "ar_account": self.receivables(),
                        "payment_method": self.payment_method(),
                        "links": (Link(role="invoice", kind=DocumentKind.INVOICE, amount=left),),
                    }
                )
            )
        return docs, target

    # -- refunds ----------------------------------------------------------------------------------------

    def refund_kind(self) -> DocumentKind | None:
        mode = self.settings.refunds.mode
        if mode is RefundMode.VOID:
            return None
        if mode is RefundMode.AUTO:
            receivables = self.settings.transaction_type.uses_receivables
            return DocumentKind.CREDIT_MEMO if receivables else DocumentKind.REFUND_RECEIPT
        return DocumentKind.CREDIT_MEMO if mode is RefundMode.CREDIT_MEMO else DocumentKind.REFUND_RECEIPT

    def refund_documents(self, base: dict[str, Any], sale: Document, *, open_balance: Decimal) -> list[Document]:
        """One document per refund ("1001-R1", "1001-R2"…); a credit memo goes against the invoice's open
        balance (a zero Payment applying it), and what the invoice no longer owes stays as the buyer's credit."""
        kind = self.refund_kind()
        if kind is None or sale.kind not in (DocumentKind.INVOICE, DocumentKind.SALES_RECEIPT):
            return []
        docs: list[Document] = []
        for index, refund in enumerate(self.order.refunds, start=1):
            if refund.value == ZERO and refund.amount == ZERO:
                continue  # a restock without money or lines given back: nothing for the books
            doc = self.refund_document(base, sale, refund, index, kind)
            docs.append(doc)
            if kind is not DocumentKind.CREDIT_MEMO or sale.kind is not DocumentKind.INVOICE:
                continue
            role = f"{APPLY_ROLE}{refund.refund_id}"
            if role in self.posted:
                applied = self.posted[role].links[0].amount or ZERO
                docs.append(self.posted[role])
            else:
                applied = min(max(open_balance, ZERO), doc.total)
                if applied > ZERO:
                    docs.append(
                        Document(
                            **{
                                **base,
                                "txn_date": doc.txn_date,
                                "role": role,
                                "kind": DocumentKind.PAYMENT,
                                "doc_number": doc.doc_number,
                                "memo": f"{base['memo']}: credit memo {doc.doc_number} applied to invoice "
                                f"{sale.doc_number}",
                                "total": ZERO,
                                "ar_account": self.receivables(),
                                "links": (
                                    Link(role=sale.role, kind=DocumentKind.INVOICE, amount=applied),
                                    Link(role=doc.role, kind=DocumentKind.CREDIT_MEMO, amount=applied),
                                ),
                            }
                        )
                    )
            open_balance -= applied
        return docs

    def refund_document(
        self, base: dict[str, Any], sale: Document, refund: Refund, index: int, kind: DocumentKind
    ) -> Document:
        order, settings = self.order, self.settings
        where = f"refunds[{index - 1}]"
        lines: list[DocLine] = []
        discount = ZERO
        by_id = {line.line_id: position for position, line in enumerate(order.lines)}
        for number, refunded in enumerate(refund.lines):
            position = by_id.get(refunded.line_id)
            if position is None:
                raise self.fail(
                    f"the refund returns line {refunded.line_id}, which the order does not have",
                    f"{where}.lines[{number}].line_id",
                )
            line = order.lines[position]
            item = self.product_item(position)
            if not self.restocks(refunded.restock) and self.is_inventory(item):
                item = self.service_item(settings.refunds.no_restock_item_name)
            gross = total([refunded.quantity * line.unit_price])
            if refunded.subtotal <= gross:
                amount, quantity, price = gross, refunded.quantity, line.unit_price
                discount += gross - refunded.subtotal
            else:  # more came back than the list price: no unit price that multiplies out
                amount, quantity, price = refunded.subtotal, refunded.quantity, None
            lines.append(
                DocLine(
                    kind=LineKind.ITEM,
                    item=item,
                    description=f"Refund: {line.name}",
                    quantity=quantity,
                    unit_price=price,
                    amount=amount,
                    taxable=refunded.tax > 0,
                )
            )
        discount = total([discount])
        if discount:
            lines.append(
                DocLine(
                    kind=LineKind.DISCOUNT,
                    amount=discount,
                    description="Discount on the refunded lines",
                    account=self.account(
                        settings.accounts.item_discount,
                        "accounts.item_discount",
                        "refunded lines carry discounts; discounts post to the Item Discount account",
                    ),
                    item=self.service_item(settings.discount_item_name) if self.books == "qbd" else None,
                )
            )
        if refund.shipping:
            # Shopify reports refunded shipping with its tax in one amount: it is refunded as shipping.
            lines.append(
                DocLine(
                    kind=LineKind.SHIPPING,
                    item=self.shipping_item(),
                    description="Refunded shipping",
                    quantity=Decimal(1),
                    unit_price=refund.shipping,
                    amount=refund.shipping,
                )
            )
        value = refund.value
        # The money that went back is the truth when it differs from what the refund itemises.
        adjust = total([refund.amount - value]) if refund.amount > ZERO else ZERO
        for amount, text in ((refund.adjustments, "Refund adjustment"), (adjust, "Refund difference")):
            if amount:
                lines.append(
                    DocLine(
                        kind=LineKind.ADJUSTMENT,
                        item=self.service_item(settings.adjust_item_name),
                        description=text,
                        quantity=Decimal(1),
                        unit_price=amount,
                        amount=amount,
                    )
                )
        tax_total = self.tax(lines, total(line.tax for line in refund.lines))
        expected = total([value + adjust])
        computed = total([*(line.signed_amount for line in lines), tax_total or ZERO])
        if computed != expected:
            raise self.fail(
                f"refund {index} adds up to {computed} but the channel refunded {expected}", f"{where}.amount"
            )
        if expected < ZERO:
            raise self.fail(f"refund {index} is negative ({expected})", f"{where}.amount")
        extra: dict[str, Any] = {}
        if kind is DocumentKind.CREDIT_MEMO:
            extra["ar_account"] = self.receivables()
        else:
            extra["deposit_account"] = self.refund_from()
            extra["payment_method"] = self.payment_method()
        when = refund.created_at.date() if refund.created_at is not None else base["txn_date"]
        note = f": {refund.note}" if refund.note else ""
        return Document(
            **{
                **base,
                **extra,
                "role": f"{REFUND_ROLE}{refund.refund_id}",
                "kind": kind,
                "doc_number": self.doc_number(f"-R{index}"),
                "txn_date": when,
                "memo": f"{base['memo']}, refund {index}{note}",
                "lines": tuple(lines),
                "tax_total": tax_total,
                "total": expected,
                "links": (Link(role=sale.role, kind=sale.kind),),
            }
        )

    def restocks(self, channel_says: bool) -> bool:
        mode = self.settings.refunds.restock
        return channel_says if mode is RestockMode.FOLLOW_CHANNEL else mode is RestockMode.ALWAYS

    def is_inventory(self, item: Ref) -> bool:
        """Whether the item keeps stock in the books (a refund of it would put stock back on hand)."""
        if item.id is None:
            needed = self.needs.items.get(item.key)
            return needed is not None and needed.type == "Inventory"
        return any(
            record.id == item.id and record.type == "Inventory"
            for record in (*self.catalog.items_by_name.values(), *self.catalog.items_by_sku.values())
        )

    def shipping_item(self) -> Ref:
        settings = self.settings
        if settings.use_books_shipping_line and self.books == "qbo" and self.catalog.company.allow_shipping_line:
            return Ref(key="shipping", name="Shipping", id=SHIPPING_ITEM_ID)
        return self.service_item(settings.shipping_item_name)

    def balance(self, lines: list[DocLine], tax_total: Decimal | None) -> list[DocLine]:
        """Check the lines add up to the channel's total; adjust only if the settings allow it."""
        computed = total([*(line.signed_amount for line in lines), tax_total or ZERO])
        expected = self.order.totals.total
        difference = total([expected - computed])
        if difference == ZERO:
            return lines
        if not self.settings.adjust_total:
            raise self.fail(
                f"lines, shipping, discounts and tax add up to {computed} but the channel's total is {expected} "
                f"(difference {difference}); correct the order in the channel, or turn on "
                "'adjust the QuickBooks total'",
                "totals.total",
            )
        return [
            *lines,
            DocLine(
                kind=LineKind.ADJUSTMENT,
                item=self.service_item(self.settings.adjust_item_name),
                description=f"Total adjustment to match the channel's total {expected}",
                quantity=Decimal(1),
                unit_price=difference,
                amount=difference,
            ),
        ]

    def tax_code(self) -> Ref | None:
        """The tax code of the jurisdiction the order ships to, when the tax table has one."""
        if self.settings.tax.mode is not TaxMode.PINNED_TOTAL or not self.settings.tax.jurisdictions:
            return None
        order = self.order
        address = order.shipping_address if not order.shipping_address.is_empty() else order.billing_address
        code = self.settings.tax.code_for(address.country, address.region, address.city)
        if code is None:
            return None
        known = self.catalog.tax_codes.get(fold(code))
        return Ref(key=f"tax_code:{code}", name=code, id=known or code)

    def deposit(self) -> Ref:
        """The deposit account of the payment's method or currency (Settings → Payments), else the default."""
        names = [name for payment in self.order.payments for name in (payment.method, payment.gateway) if name]
        mapped = self.settings.payments.deposit_for(names, self.order.currency)
        return self.account(
            mapped or self.settings.accounts.deposit, "accounts.deposit", "sales receipts and payments deposit to it"
        )

    def refund_from(self) -> Ref:
        """Where refund receipts take the money back from: the refund account, else the deposit account."""
        if self.settings.accounts.refund_from:
            return self.account(self.settings.accounts.refund_from, "accounts.refund_from", "refunds are paid from it")
        return self.deposit()

    def receivables(self) -> Ref:
        return self.account(
            self.settings.accounts.accounts_receivable,
            "accounts.accounts_receivable",
            "invoices post to Accounts Receivable",
        )

    def payment_method(self) -> Ref | None:
        for payment in self.order.payments:
            for candidate in (payment.method, payment.gateway):
                if candidate and (pid := self.catalog.payment_methods.get(fold(candidate))):
                    return Ref(key=f"payment_method:{pid}", name=candidate, id=pid)
        return None


def _payment_index(role: str) -> int:
    """1 for "payment", n for "payment-n", 0 for any other role."""
    if role == PAYMENT_ROLE:
        return 1
    head, _, number = role.partition("-")
    return int(number) if head == PAYMENT_ROLE and number.isdigit() else 0


def _buyer_name(order: Order) -> str:
    return (order.customer.display_name or order.billing_address.name or order.shipping_address.name).strip()


def _clean_name(name: str) -> str:
    """QuickBooks refuses ':' in names (it separates parent and child)."""
    return " ".join(name.replace(":", "-").split())


def _item_name(name: str) -> str:
    """The name an item is created under: cleaned and cut to QuickBooks' limit."""
    return _clean_name(name)[:MAX_ITEM_NAME].strip()
