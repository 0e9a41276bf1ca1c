"""The deterministic starting company of the QBO sandbox: chart of accounts, items, tax codes, customers.

Ids are assigned in a fixed order so tests and the demo can rely on them; lookups by name or Sku are
still the robust way to find things. Seed objects are dated 90 days back so CDC windows skip them.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from ledgerlink.sandbox.qbo.state import ACCOUNT_CLASSIFICATION, CURRENCY_NAMES, Company

JSON = dict[str, Any]

# (Name, AccountType, AccountSubType)
CHART_OF_ACCOUNTS: tuple[tuple[str, str, str], ...] = (
    ("Checking", "Bank", "Checking"),
    ("Undeposited Funds", "Other Current Asset", "UndepositedFunds"),
    ("Accounts Receivable (A/R)", "Accounts Receivable", "AccountsReceivable"),
    ("Inventory Asset", "Other Current Asset", "Inventory"),
    ("Sales of Product Income", "Income", "SalesOfProductIncome"),
    ("Services", "Income", "ServiceFeeIncome"),
    ("Shipping Income", "Income", "OtherPrimaryIncome"),
    ("Discounts given", "Income", "DiscountsRefundsGiven"),
    ("Cost of Goods Sold", "Cost of Goods Sold", "SuppliesMaterialsCogs"),
    ("Sales Tax Payable", "Other Current Liability", "SalesTaxPayable"),
    ("Accounts Payable (A/P)", "Accounts Payable", "AccountsPayable"),
    ("Opening Balance Equity", "Equity", "OpeningBalanceEquity"),
    ("Refunds", "Expense", "OtherMiscellaneousServiceCost"),
    ("Merchant fees", "Expense", "BankCharges"),
)

PAYMENT_METHODS: tuple[tuple[str, str], ...] = (
    ("Cash", "NON_CREDIT_CARD"),
    ("Check", "NON_CREDIT_CARD"),
    ("Visa", "CREDIT_CARD"),
    ("MasterCard", "CREDIT_CARD"),
    ("American Express", "CREDIT_CARD"),
    ("Discover", "CREDIT_CARD"),
    ("PayPal", "NON_CREDIT_CARD"),
)

TERMS: tuple[tuple[str, int], ...] = (("Due on receipt", 0), ("Net 15", 15), ("Net 30", 30), ("Net 60", 60))

# Non-US tax codes (Canada): Ids are plain numbers there, unlike the US TAX/NON pseudo-codes.
CA_TAX_CODES: tuple[tuple[str, str, bool], ...] = (
    ("Exempt", "Exempt", False),
    ("Zero-rated", "Zero-rated supplies", False),
    ("GST", "GST 5%", True),
    ("HST ON", "HST Ontario 13%", True),
)


def seed_company(company: Company) -> None:
    """Fill an empty company with the standard sandbox data (US or, by `company.country`, non-US)."""
    when = company.now() - timedelta(days=90)
    us = company.is_us
    currency = "USD" if us else ("CAD" if company.country.upper() == "CA" else "USD")
    currency_ref = {"value": currency, "name": CURRENCY_NAMES.get(currency, currency)}
    name = f"Sandbox Company {company.country.upper()}"

    company.insert(
        "CompanyInfo",
        {
            "CompanyName": name,
            "LegalName": name,
            "Country": company.country.upper(),
            "CompanyAddr": {
                "Line1": "123 Sierra Way" if us else "100 King St W",
                "City": "San Pablo" if us else "Toronto",
                "CountrySubDivisionCode": "CA" if us else "ON",
                "PostalCode": "87999" if us else "M5X 1A9",
                "Country": company.country.upper(),
            },
            "Email": {"Address": "noreply@quickbooks.com"},
            "SupportedLanguages": "en",
            "FiscalYearStartMonth": "January",
            "CompanyStartDate": (when.date() - timedelta(days=365)).isoformat(),
            "NameValue": [{"Name": "NeoEnabled", "Value": "true"}],
        },
        entity_id=company.realm_id,
        when=when,
    )
    tax_prefs: JSON = {"UsingSalesTax": True}
    if us:
        tax_prefs["PartnerTaxEnabled"] = True

    accounts: dict[str, JSON] = {}
    for account_name, account_type, sub_type in CHART_OF_ACCOUNTS:
        accounts[account_name] = company.insert(
            "Account",
            {
                "Name": account_name,
                "FullyQualifiedName": account_name,
                "SubAccount": False,
                "Active": True,
                "AccountType": account_type,
                "AccountSubType": sub_type,
                "Classification": ACCOUNT_CLASSIFICATION[account_type],
                "CurrentBalance": Decimal(0),
                "CurrencyRef": dict(currency_ref),
            },
            when=when,
        )

    terms = {
        term_name: company.insert(
            "Term", {"Name": term_name, "Active": True, "Type": "STANDARD", "DueDays": days}, when=when
        )
        for term_name, days in TERMS
    }
    company.insert(
        "Preferences",
        {
            "AccountingInfoPrefs": {"TrackDepartments": False, "ClassTrackingPerTxn": True},
            "SalesFormsPrefs": {
                "AllowShipping": True,
                "CustomTxnNumbers": True,
                "AllowDiscount": True,
                "AllowDeposit": True,
                "AllowEstimates": True,
                "DefaultTerms": {"value": terms["Net 30"]["Id"]},
            },
            "TaxPrefs": tax_prefs,
            "CurrencyPrefs": {"HomeCurrency": {"value": currency}, "MultiCurrencyEnabled": False},
        },
        entity_id="1",
        when=when,
    )

    for method_name, method_type in PAYMENT_METHODS:
        company.insert("PaymentMethod", {"Name": method_name, "Active": True, "Type": method_type}, when=when)
    for class_name in ("Online Store", "Retail"):
        company.insert(
            "Class",
            {"Name": class_name, "FullyQualifiedName": class_name, "SubClass": False, "Active": True},
            when=when,
        )

    if us:
        for code, taxable in (("TAX", True), ("NON", False)):
            company.insert(
                "TaxCode",
                {"Name": code, "Description": code, "Taxable": taxable, "TaxGroup": False, "Active": True},
                entity_id=code,
                when=when,
            )
    else:
        for code_name, description, taxable in CA_TAX_CODES:
            company.insert(
                "TaxCode",
                {
                    "Name": code_name,
                    "Description": description,
                    "Taxable": taxable,
                    "TaxGroup": True,
                    "Active": True,
                },
                when=when,
            )

    def ref(account_name: str) -> JSON:
        return {"value": accounts[account_name]["Id"], "name": account_name}

    def item(item_name: str, fields: JSON) -> None:
        company.insert(
            "Item",
            {
                "Name": item_name,
                "FullyQualifiedName": item_name,
                "Active": True,
                "Taxable": us,
                "UnitPrice": Decimal(0),
                "PurchaseCost": Decimal(0),
                "TrackQtyOnHand": False,
                **fields,
            },
            when=when,
        )

    item("Services", {"Type": "Service", "IncomeAccountRef": ref("Services")})
    item("Shipping", {"Type": "Service", "IncomeAccountRef": ref("Shipping Income")})
    item(
        "Red Hat",
        {
            "Type": "NonInventory",
            "Sku": "HAT-RED",
            "UnitPrice": Decimal("19.99"),
            "IncomeAccountRef": ref("Sales of Product Income"),
            "ExpenseAccountRef": ref("Cost of Goods Sold"),
        },
    )
    item(
        "Coffee Mug",
        {
            "Type": "NonInventory",
            "Sku": "MUG-01",
            "UnitPrice": Decimal("10.99"),
            "IncomeAccountRef": ref("Sales of Product Income"),
            "ExpenseAccountRef": ref("Cost of Goods Sold"),
        },
    )
    item(
        "T-Shirt M",
        {
            "Type": "Inventory",
            "Sku": "TSHIRT-M",
            "UnitPrice": Decimal("25.00"),
            "PurchaseCost": Decimal("8.00"),
            "TrackQtyOnHand": True,
            "QtyOnHand": Decimal(100),
            "InvStartDate": (when.date() - timedelta(days=1)).isoformat(),
            "IncomeAccountRef": ref("Sales of Product Income"),
            "ExpenseAccountRef": ref("Cost of Goods Sold"),
            "AssetAccountRef": ref("Inventory Asset"),
        },
    )

    for display, given, family, email in (
        ("Amy's Bird Sanctuary", "Amy", "Lauterbach", "birds@intuit.com"),
        ("Cool Cars", "Grace", "Pariente", "cool_cars@intuit.com"),
    ):
        company.insert(
            "Customer",
            {
                "DisplayName": display,
                "FullyQualifiedName": display,
                "GivenName": given,
                "FamilyName": family,
                "CompanyName": display,
                "PrimaryEmailAddr": {"Address": email},
                "Active": True,
                "Job": False,
                "Taxable": us,
                "Balance": Decimal(0),
                "BalanceWithJobs": Decimal(0),
                "CurrencyRef": dict(currency_ref),
            },
            when=when,
        )
