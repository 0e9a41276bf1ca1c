"""The wizard's suggestions: account mapping picked from a company's chart of accounts by type."""

from __future__ import annotations

from collections.abc import Iterable

from ledgerlink.domain.catalog import Account, Catalog, fold
from ledgerlink.domain.settings import AccountMapping


def _pick(accounts: Iterable[Account], *, subtypes: tuple[str, ...] = (), types: tuple[str, ...] = ()) -> str | None:
    pool = sorted(accounts, key=lambda a: (a.name, a.id))
    for subtype in subtypes:
        for account in pool:
            if fold(account.subtype) == fold(subtype):
                return account.id
    for kind in types:
        for account in pool:
            if fold(account.type) == fold(kind):
                return account.id
    return None


def suggest_accounts(catalog: Catalog) -> AccountMapping:
    """What a bookkeeper would usually choose: Undeposited Funds, Sales of Product Income, A/R, …"""
    accounts = list(catalog.accounts.values())
    return AccountMapping(
        deposit=_pick(accounts, subtypes=("UndepositedFunds",), types=("Bank",)),
        item_income=_pick(accounts, subtypes=("SalesOfProductIncome",), types=("Income",)),
        item_discount=_pick(accounts, subtypes=("DiscountsRefundsGiven",), types=("Income",)),
        accounts_receivable=_pick(accounts, types=("Accounts Receivable",)),
        item_asset=_pick(accounts, subtypes=("Inventory",), types=("Other Current Asset",)),
        item_cogs=_pick(accounts, subtypes=("SuppliesMaterialsCogs",), types=("Cost of Goods Sold",)),
    )
