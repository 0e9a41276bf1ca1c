"""`ChannelSettings`: what the install wizard and the Settings pages edit, per channel connection.

Validated and versioned: `version` is the schema version, so stored settings can be migrated when it changes.
"""

from __future__ import annotations

import enum
from datetime import date, time
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from ledgerlink.domain.reverse import FromBooksSettings
from ledgerlink.domain.rules import Rule, check_names

SETTINGS_VERSION = 4


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SyncDirection(enum.StrEnum):
    """Orders go into QuickBooks, or sales go from QuickBooks to the channel (ShipStation)."""

    TO_BOOKS = "to_quickbooks"
    FROM_BOOKS = "from_quickbooks"


class TransactionType(enum.StrEnum):
    """What each order becomes in QuickBooks."""

    SALES_RECEIPT = "sales_receipt"
    INVOICE = "invoice"
    SALES_ORDER = "sales_order"
    SALES_ORDER_INVOICE_PAYMENT = "sales_order_invoice_payment"

    @property
    def uses_receivables(self) -> bool:
        return self in {TransactionType.INVOICE, TransactionType.SALES_ORDER_INVOICE_PAYMENT}


class UpdatePolicy(enum.StrEnum):
    """What to do when an order changes after it was posted."""

    IGNORE = "ignore"
    UPDATE = "update"
    VOID_AND_REPOST = "void_and_repost"


class RefundMode(enum.StrEnum):
    """What a refund of a posted order becomes in the books."""

    AUTO = "auto"  # a credit memo for invoices, a refund receipt for sales receipts
    CREDIT_MEMO = "credit_memo"
    REFUND_RECEIPT = "refund_receipt"
    VOID = "void"  # void the order's documents once it is refunded in full; partial refunds are left alone


class CancelMode(enum.StrEnum):
    """What a cancellation of a posted order does."""

    VOID = "void"  # void the sale, its payments and refunds
    REFUND = "refund"  # post the cancellation's refunds like any other refund


class RestockMode(enum.StrEnum):
    """Whether refunded inventory goes back on hand in the books."""

    FOLLOW_CHANNEL = "follow_channel"
    ALWAYS = "always"
    NEVER = "never"


class ScheduleKind(enum.StrEnum):
    INTERVAL = "interval"
    DAILY = "daily"
    MANUAL = "manual"


class CustomerMode(enum.StrEnum):
    """One named customer for the whole channel, or one customer per buyer."""

    SINGLE = "single"
    PER_BUYER = "per_buyer"


class MissingCustomer(enum.StrEnum):
    CREATE = "create"
    FAIL = "fail"
    USE_SINGLE = "use_single"


class MissingItem(enum.StrEnum):
    CREATE_NON_INVENTORY = "create_non_inventory"
    CREATE_INVENTORY = "create_inventory"
    FAIL = "fail"


class TaxMode(enum.StrEnum):
    """Pin the channel's tax total on the transaction (US automated sales tax), or post tax as a line item."""

    PINNED_TOTAL = "pinned_total"
    LINE_ITEM = "line_item"


AccountId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class OrderFilter(_Section):
    """Which orders to sync. Empty lists mean "any"."""

    # Paid orders by default: a sales receipt says the money came in. Add "pending" to post unpaid invoices.
    financial_statuses: list[str] = Field(default_factory=lambda: ["paid", "partially_refunded", "refunded"])
    fulfillment_statuses: list[str] = Field(default_factory=list)
    created_from: date | None = None
    created_to: date | None = None
    order_numbers: list[str] = Field(default_factory=list)
    include_cancelled: bool = False


class Schedule(_Section):
    """How often the sync runs on its own ("Sync now" always works)."""

    kind: ScheduleKind = ScheduleKind.INTERVAL
    every_minutes: int = Field(default=15, ge=5, le=1440)
    daily_at: time | None = None

    @model_validator(mode="after")
    def _daily_needs_time(self) -> Schedule:
        if self.kind is ScheduleKind.DAILY and self.daily_at is None:
            raise ValueError("a daily schedule needs daily_at (the time of day)")
        return self


class AccountMapping(_Section):
    """Chart-of-accounts mapping: ids of accounts in the books."""

    item_asset: AccountId | None = None
    item_cogs: AccountId | None = None
    item_income: AccountId | None = None
    item_discount: AccountId | None = None
    accounts_receivable: AccountId | None = None
    deposit: AccountId | None = None
    # Where refund receipts take the money back from (a Bank or Other Current Asset account); the deposit
    # account when not chosen, since that is where the sale's money went.
    refund_from: AccountId | None = None


class PaymentSettings(_Section):
    """Where payments and sales receipts deposit, and how payment methods are matched in the books."""

    # Gateway or payment method (as the channel names it, e.g. "shopify_payments", "Visa") → account id.
    deposit_by_method: dict[str, AccountId] = Field(default_factory=dict)
    # Currency code → account id (used when no method mapping matches).
    deposit_by_currency: dict[str, AccountId] = Field(default_factory=dict)
    # Create a payment method in the books when none matches the channel's by name.
    create_methods: bool = True

    def deposit_for(self, names: list[str], currency: str) -> str | None:
        """The mapped deposit account for the first of `names` that has one, else for the currency."""
        by_method = {key.strip().casefold(): value for key, value in self.deposit_by_method.items()}
        for name in names:
            if name and (hit := by_method.get(name.strip().casefold())):
                return hit
        by_currency = {key.strip().upper(): value for key, value in self.deposit_by_currency.items()}
        return by_currency.get(currency.strip().upper())


class RefundSettings(_Section):
    """How refunds and cancellations of posted orders reach the books."""

    mode: RefundMode = RefundMode.AUTO
    # A refund of an order that was never synced: post the original first, then the refund. Off: such orders
    # are left out (the bookkeeper records them).
    sync_original_first: bool = True
    restock: RestockMode = RestockMode.FOLLOW_CHANNEL
    # Refunded inventory that is not restocked posts against this service item, so stock is not put back.
    no_restock_item_name: str = Field(default="Returns (not restocked)", min_length=1, max_length=100)
    on_cancel: CancelMode = CancelMode.VOID


class CustomerSettings(_Section):
    mode: CustomerMode = CustomerMode.PER_BUYER
    single_name: str = Field(default="Web Store", min_length=1, max_length=100)
    when_missing: MissingCustomer = MissingCustomer.CREATE


class ItemMatch(enum.StrEnum):
    """Which QuickBooks field a channel product is matched on."""

    SKU_THEN_NAME = "sku_then_name"
    SKU = "sku"
    NAME = "name"


class ItemSettings(_Section):
    """How products match QuickBooks items, what happens when none matches, and explicit SKU mappings."""

    match_on: ItemMatch = ItemMatch.SKU_THEN_NAME
    when_missing: MissingItem = MissingItem.CREATE_NON_INVENTORY
    # Channel SKU → name of the QuickBooks item it posts as (many SKUs may share one item).
    sku_map: dict[str, str] = Field(default_factory=dict)

    def mapped_item(self, sku: str) -> str | None:
        """The QuickBooks item name a SKU is mapped to (SKUs compare case-insensitively)."""
        if not sku or not self.sku_map:
            return None
        wanted = sku.strip().casefold()
        for channel_sku, item in self.sku_map.items():
            if channel_sku.strip().casefold() == wanted:
                return item
        return None


class TaxJurisdiction(_Section):
    """Orders shipped to this place get this QuickBooks tax code (city is optional; more specific wins)."""

    country: str = Field(default="US", min_length=2, max_length=2)
    region: str = Field(min_length=1, max_length=50)
    city: str = Field(default="", max_length=100)
    tax_code: str = Field(min_length=1, max_length=100)


class TaxSettings(_Section):
    mode: TaxMode = TaxMode.PINNED_TOTAL
    tax_item_name: str = Field(default="Sales Tax", min_length=1, max_length=100)
    jurisdictions: list[TaxJurisdiction] = Field(default_factory=list)

    def code_for(self, country: str, region: str, city: str) -> str | None:
        """The tax code of the most specific jurisdiction matching an address, if any."""
        best: tuple[int, str] | None = None
        for row in self.jurisdictions:
            if row.country.casefold() != (country or "US").casefold():
                continue
            if row.region.casefold() != region.casefold():
                continue
            if row.city and row.city.casefold() != city.casefold():
                continue
            rank = 2 if row.city else 1
            if best is None or rank > best[0]:
                best = (rank, row.tax_code)
        return best[1] if best else None


class ChannelSettings(_Section):
    """Everything the wizard asks, for one channel connection."""

    version: int = SETTINGS_VERSION
    direction: SyncDirection = SyncDirection.TO_BOOKS
    push_stock_levels: bool = False
    # Units kept back from the channel's available stock (orders placed but not synced yet); see sync/stock.py.
    stock_buffer: int = Field(default=0, ge=0, le=1_000_000)
    orders: OrderFilter = Field(default_factory=OrderFilter)
    schedule: Schedule = Field(default_factory=Schedule)
    update_policy: UpdatePolicy = UpdatePolicy.UPDATE
    payments: PaymentSettings = Field(default_factory=PaymentSettings)
    refunds: RefundSettings = Field(default_factory=RefundSettings)
    transaction_type: TransactionType = TransactionType.SALES_RECEIPT
    accounts: AccountMapping = Field(default_factory=AccountMapping)
    create_inventory_items: bool = False
    customers: CustomerSettings = Field(default_factory=CustomerSettings)
    items: ItemSettings = Field(default_factory=ItemSettings)
    tax: TaxSettings = Field(default_factory=TaxSettings)
    shipping_item_name: str = Field(default="Shipping", min_length=1, max_length=100)
    use_books_shipping_line: bool = True
    discount_item_name: str = Field(default="Discount", min_length=1, max_length=100)
    fee_item_name: str = Field(default="Other charges", min_length=1, max_length=100)
    doc_number_prefix: str = Field(default="", max_length=10)
    class_id: str | None = None
    adjust_total: bool = False
    adjust_item_name: str = Field(default="Rounding adjustment", min_length=1, max_length=100)
    # "Sync Orders from QuickBooks" (direction FROM_BOOKS): which sales go to ShipStation and how.
    from_books: FromBooksSettings = Field(default_factory=FromBooksSettings)
    # Rules (Settings → Rules), run top-down on each order before it is planned: see domain/rules.py.
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _migrate(cls, data: Any) -> Any:
        """Read settings saved by an older schema version: each step upgrades one version."""
        if not isinstance(data, dict):
            return data
        version = data.get("version", 1)
        if version < 2:
            # v2: the unused "no SKU" item name went; SKU mapping, match field, tax table and stock push came.
            data = {**data, "version": 2}
            items = data.get("items")
            if isinstance(items, dict):
                data["items"] = {k: v for k, v in items.items() if k != "no_sku_item_name"}
        if data.get("version", 1) < 3:
            # v3: payments (deposit by method/currency), refunds and accounts.refund_from came; all have defaults.
            data = {**data, "version": 3}
        if data.get("version", 1) < 4:
            # v4: rules came (none at first).
            data = {**data, "version": 4}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> ChannelSettings:
        check_names(self.rules)
        # One choice, two switches: "create inventory items" and "missing items: create inventory" agree.
        # validate_assignment re-runs this validator on every assignment: only assign when it changes something.
        if self.items.when_missing is MissingItem.CREATE_INVENTORY and not self.create_inventory_items:
            self.create_inventory_items = True
        elif self.create_inventory_items and self.items.when_missing is MissingItem.CREATE_NON_INVENTORY:
            self.items.when_missing = MissingItem.CREATE_INVENTORY
        elif self.create_inventory_items and self.items.when_missing is MissingItem.FAIL:
            self.create_inventory_items = False
        if self.customers.when_missing is MissingCustomer.USE_SINGLE and self.customers.mode is CustomerMode.SINGLE:
            self.customers.when_missing = MissingCustomer.CREATE
        return self

    def missing(self) -> list[str]:
        """Settings a sync cannot run without, as dotted field names (the wizard shows them)."""
        needed: list[str] = []
        if self.direction is SyncDirection.FROM_BOOKS:
            return needed
        if not self.accounts.deposit:
            needed.append("accounts.deposit")
        if not self.accounts.item_income:
            needed.append("accounts.item_income")
        if self.transaction_type.uses_receivables and not self.accounts.accounts_receivable:
            needed.append("accounts.accounts_receivable")
        # `items.when_missing` may be changed in place after validation, so it counts on its own too.
        if self.create_inventory_items or self.items.when_missing is MissingItem.CREATE_INVENTORY:
            if not self.accounts.item_asset:
                needed.append("accounts.item_asset")
            if not self.accounts.item_cogs:
                needed.append("accounts.item_cogs")
        return needed
