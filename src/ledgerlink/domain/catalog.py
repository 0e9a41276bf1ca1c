"""What the books already hold that planning needs: accounts, items, customers, tax codes, payment methods.

A `Catalog` is a snapshot read from the books (or, in a preview, an empty one). `CatalogQuery` says which
records a batch of orders needs, so the adapter reads only those; `MasterData` is what must be created.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from pydantic import BaseModel, ConfigDict

from ledgerlink.domain.order import Address


def fold(text: str) -> str:
    """Case- and space-insensitive key for matching names, SKUs and e-mails."""
    return " ".join(text.split()).casefold()


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    name: str
    type: str
    subtype: str = ""


@dataclass(frozen=True, slots=True)
class ItemRecord:
    id: str
    name: str
    sku: str = ""
    type: str = "NonInventory"


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    id: str
    display_name: str
    email: str = ""


@dataclass(frozen=True, slots=True)
class CompanyFacts:
    """The facts of the company file that change the mapping."""

    books: str = "qbo"
    country: str = "US"
    home_currency: str = "USD"
    allow_shipping_line: bool = True
    automated_sales_tax: bool = True
    multicurrency: bool = False


@dataclass(frozen=True, slots=True)
class Catalog:
    """A read-only snapshot of master data, indexed for matching."""

    company: CompanyFacts = field(default_factory=CompanyFacts)
    accounts: dict[str, Account] = field(default_factory=dict)
    items_by_sku: dict[str, ItemRecord] = field(default_factory=dict)
    items_by_name: dict[str, ItemRecord] = field(default_factory=dict)
    customers_by_email: dict[str, CustomerRecord] = field(default_factory=dict)
    customers_by_name: dict[str, CustomerRecord] = field(default_factory=dict)
    tax_codes: dict[str, str] = field(default_factory=dict)
    payment_methods: dict[str, str] = field(default_factory=dict)
    classes: dict[str, str] = field(default_factory=dict)
    # QuickBooks Online's locations (the Department entity), folded full name → id; Desktop has none.
    departments: dict[str, str] = field(default_factory=dict)

    def find_item(self, sku: str, name: str) -> ItemRecord | None:
        """Match on SKU first (the item's SKU or an item named like the SKU), then on name."""
        if sku:
            hit = self.items_by_sku.get(fold(sku)) or self.items_by_name.get(fold(sku))
            if hit:
                return hit
        return self.items_by_name.get(fold(name)) if name else None

    def find_department(self, name: str) -> str | None:
        """The id of a location (department) named by its full name ("East:Boston"), its name, or its id."""
        key = fold(name)
        if not key:
            return None
        if key in self.departments:
            return self.departments[key]
        return name.strip() if name.strip() in self.departments.values() else None

    def find_customer(self, email: str, name: str) -> CustomerRecord | None:
        """Match on e-mail first, then on display name."""
        if email and (hit := self.customers_by_email.get(fold(email))):
            return hit
        return self.customers_by_name.get(fold(name)) if name else None

    def with_records(
        self,
        *,
        items: Iterable[ItemRecord] = (),
        customers: Iterable[CustomerRecord] = (),
        accounts: Iterable[Account] = (),
    ) -> Catalog:
        """A new catalog with these records added (later ones win, except that an e-mail keeps its first customer)."""
        by_sku, by_name = dict(self.items_by_sku), dict(self.items_by_name)
        for item in items:
            if item.sku:
                by_sku[fold(item.sku)] = item
            by_name[fold(item.name)] = item
        by_email, by_cname = dict(self.customers_by_email), dict(self.customers_by_name)
        for customer in customers:
            if customer.email:
                by_email.setdefault(fold(customer.email), customer)
            by_cname[fold(customer.display_name)] = customer
        all_accounts = dict(self.accounts)
        all_accounts.update({a.id: a for a in accounts})
        return replace(
            self,
            accounts=all_accounts,
            items_by_sku=by_sku,
            items_by_name=by_name,
            customers_by_email=by_email,
            customers_by_name=by_cname,
        )


@dataclass(slots=True)
class CatalogQuery:
    """The keys a batch of orders will look up; adapters read just these."""

    skus: set[str] = field(default_factory=set)
    item_names: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    customer_names: set[str] = field(default_factory=set)

    def merge(self, other: CatalogQuery) -> None:
        self.skus |= other.skus
        self.item_names |= other.item_names
        self.emails |= other.emails
        self.customer_names |= other.customer_names


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NewCustomer(_Value):
    """A customer to create before the documents that use it."""

    key: str
    display_name: str
    email: str = ""
    given_name: str = ""
    family_name: str = ""
    company: str = ""
    phone: str = ""
    billing_address: Address | None = None
    shipping_address: Address | None = None


class NewItem(_Value):
    """An item to create: non-inventory by default; inventory only when the merchant asked for it."""

    key: str
    name: str
    sku: str = ""
    type: str = "NonInventory"
    description: str = ""
    unit_price: str = ""
    income_account: str
    asset_account: str | None = None
    cogs_account: str | None = None


@dataclass(slots=True)
class MasterData:
    """Customers and items that must exist before the documents can be posted."""

    customers: dict[str, NewCustomer] = field(default_factory=dict)
    items: dict[str, NewItem] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.customers or self.items)

    def merge(self, other: MasterData) -> None:
        for ckey, customer in other.customers.items():
            self.customers.setdefault(ckey, customer)
        for ikey, item in other.items.items():
            self.items.setdefault(ikey, item)
