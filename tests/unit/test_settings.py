"""`ChannelSettings`: defaults, what a sync cannot run without, round-trips and refusals."""

from __future__ import annotations

from datetime import date, time
from typing import Any

import pytest
from pydantic import ValidationError

from ledgerlink.domain.settings import (
    SETTINGS_VERSION,
    AccountMapping,
    ChannelSettings,
    CustomerMode,
    CustomerSettings,
    ItemSettings,
    MissingCustomer,
    MissingItem,
    OrderFilter,
    Schedule,
    ScheduleKind,
    SyncDirection,
    TaxMode,
    TaxSettings,
    TransactionType,
    UpdatePolicy,
)

pytestmark = pytest.mark.unit


def test_defaults_are_valid_and_ask_for_the_two_accounts_every_sync_needs() -> None:
    settings = ChannelSettings()

    assert settings.version == SETTINGS_VERSION
    assert settings.direction is SyncDirection.TO_BOOKS
    assert settings.transaction_type is TransactionType.SALES_RECEIPT
    assert settings.items.when_missing is MissingItem.CREATE_NON_INVENTORY
    assert settings.create_inventory_items is False
    assert settings.orders.financial_statuses == ["paid", "partially_refunded", "refunded"]
    assert settings.missing() == ["accounts.deposit", "accounts.item_income"]


@pytest.mark.parametrize(
    ("ttype", "needs_receivables"),
    [
        (TransactionType.SALES_RECEIPT, False),
        (TransactionType.SALES_ORDER, False),
        (TransactionType.INVOICE, True),
        (TransactionType.SALES_ORDER_INVOICE_PAYMENT, True),
    ],
)
def test_receivables_account_is_required_for_invoice_types_only(
    ttype: TransactionType, needs_receivables: bool
) -> None:
    settings = ChannelSettings(transaction_type=ttype, accounts=AccountMapping(deposit="35", item_income="79"))

    assert settings.missing() == (["accounts.accounts_receivable"] if needs_receivables else [])


def test_deposit_is_required_whatever_the_transaction_type() -> None:
    for ttype in TransactionType:
        settings = ChannelSettings(
            transaction_type=ttype, accounts=AccountMapping(item_income="79", accounts_receivable="84")
        )
        assert settings.missing() == ["accounts.deposit"]


def test_inventory_accounts_are_required_only_when_inventory_items_are_created() -> None:
    accounts = AccountMapping(deposit="35", item_income="79")
    assert ChannelSettings(accounts=accounts).missing() == []

    settings = ChannelSettings(accounts=accounts, items=ItemSettings(when_missing=MissingItem.CREATE_INVENTORY))

    assert settings.create_inventory_items is True
    assert settings.missing() == ["accounts.item_asset", "accounts.item_cogs"]
    complete = accounts.model_copy(update={"item_asset": "81", "item_cogs": "80"})
    assert settings.model_copy(update={"accounts": complete}).missing() == []


def test_inventory_accounts_are_required_when_the_item_strategy_is_changed_in_place() -> None:
    """The Settings page edits sections in place; the requirement must follow."""
    settings = ChannelSettings(accounts=AccountMapping(deposit="35", item_income="79"))

    settings.items.when_missing = MissingItem.CREATE_INVENTORY

    assert settings.missing() == ["accounts.item_asset", "accounts.item_cogs"]


def test_assigning_a_field_after_validation_still_validates() -> None:
    settings = ChannelSettings(items=ItemSettings(when_missing=MissingItem.CREATE_INVENTORY))

    settings.transaction_type = TransactionType.INVOICE
    assert settings.transaction_type is TransactionType.INVOICE
    with pytest.raises(ValidationError):
        settings.transaction_type = "estimate"  # type: ignore[assignment]


def test_connection_syncing_from_quickbooks_needs_no_accounts() -> None:
    assert ChannelSettings(direction=SyncDirection.FROM_BOOKS, transaction_type="invoice").missing() == []


def test_use_single_in_single_customer_mode_means_create_the_single_customer() -> None:
    settings = ChannelSettings(
        customers=CustomerSettings(mode=CustomerMode.SINGLE, when_missing=MissingCustomer.USE_SINGLE)
    )

    assert settings.customers.when_missing is MissingCustomer.CREATE


def full_settings() -> ChannelSettings:
    return ChannelSettings(
        direction=SyncDirection.TO_BOOKS,
        orders=OrderFilter(
            financial_statuses=["paid", "pending"],
            fulfillment_statuses=["fulfilled"],
            created_from=date(2024, 1, 1),
            created_to=date(2024, 12, 31),
            order_numbers=["1001"],
            include_cancelled=True,
        ),
        schedule=Schedule(kind=ScheduleKind.DAILY, daily_at=time(2, 30)),
        update_policy=UpdatePolicy.VOID_AND_REPOST,
        transaction_type=TransactionType.SALES_ORDER_INVOICE_PAYMENT,
        accounts=AccountMapping(
            item_asset="81",
            item_cogs="80",
            item_income="79",
            item_discount="86",
            accounts_receivable="84",
            deposit="35",
        ),
        customers=CustomerSettings(mode=CustomerMode.PER_BUYER, single_name="Shop", when_missing=MissingCustomer.FAIL),
        items=ItemSettings(when_missing=MissingItem.CREATE_INVENTORY, sku_map={"A-1": "Widget"}),
        tax=TaxSettings(mode=TaxMode.LINE_ITEM, tax_item_name="Tax"),
        shipping_item_name="Freight",
        use_books_shipping_line=False,
        discount_item_name="Promo",
        fee_item_name="Fees",
        doc_number_prefix="SH-",
        class_id="300",
        adjust_total=True,
        adjust_item_name="Adjust",
    )


@pytest.mark.parametrize("settings", [ChannelSettings(), full_settings()], ids=["defaults", "everything-set"])
def test_round_trip_through_json(settings: ChannelSettings) -> None:
    again = ChannelSettings.model_validate_json(settings.model_dump_json())

    assert again == settings
    assert again.model_dump() == settings.model_dump()
    assert ChannelSettings.model_validate(settings.model_dump(mode="json")) == settings


def test_account_ids_are_trimmed() -> None:
    assert AccountMapping(deposit=" 35 ").deposit == "35"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param({"schedule": {"kind": "daily"}}, id="daily-without-time"),
        pytest.param({"schedule": {"every_minutes": 1}}, id="interval-too-short"),
        pytest.param({"schedule": {"every_minutes": 1441}}, id="interval-over-a-day"),
        pytest.param({"transaction_type": "estimate"}, id="unknown-transaction-type"),
        pytest.param({"direction": "both"}, id="unknown-direction"),
        pytest.param({"update_policy": "delete"}, id="unknown-update-policy"),
        pytest.param({"tax": {"mode": "vat"}}, id="unknown-tax-mode"),
        pytest.param({"items": {"when_missing": "guess"}}, id="unknown-item-strategy"),
        pytest.param({"customers": {"single_name": ""}}, id="empty-single-customer"),
        pytest.param({"accounts": {"deposit": "   "}}, id="blank-account-id"),
        pytest.param({"doc_number_prefix": "ELEVENCHARS"}, id="prefix-over-10"),
        pytest.param({"shipping_item_name": "x" * 101}, id="item-name-over-100"),
        pytest.param({"colour": "blue"}, id="unknown-field"),
        pytest.param({"accounts": {"bank": "35"}}, id="unknown-account"),
        pytest.param({"orders": {"created_from": "yesterday"}}, id="bad-date"),
    ],
)
def test_bad_values_are_rejected(raw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ChannelSettings.model_validate(raw)


def test_daily_schedule_with_a_time_is_accepted() -> None:
    schedule = ChannelSettings.model_validate({"schedule": {"kind": "daily", "daily_at": "02:30"}}).schedule

    assert schedule.daily_at == time(2, 30)
