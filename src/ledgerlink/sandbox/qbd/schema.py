"""The qbXML 13.0 rules the stand-in enforces: which elements each request may hold, in which order.

QuickBooks validates a whole message set against its schema before it runs any request of it, and answers a
set that breaks the schema with HRESULT 0x80040400 ("QuickBooks found an error when parsing the provided XML
text stream") instead of answers. The schema's content models are sequences, so an element out of order is
as wrong as an unknown one. The orders below are the SDK's (Intuit's Onscreen Reference for qbXML 13.0),
written down separately from ledgerlink's builders so the builders are checked against them, not against
themselves. "A|B" marks a choice that takes one place in the sequence.
"""

from __future__ import annotations

from lxml import etree

PARSE_ERROR_HRESULT = "0x80040400"
PARSE_ERROR_MESSAGE = "QuickBooks found an error when parsing the provided XML text stream."

_ADDRESS = ["Addr1", "Addr2", "Addr3", "Addr4", "Addr5", "City", "State", "PostalCode", "Country", "Note"]
_REF = ["ListID", "FullName"]
_CUSTOMER = [
    "Name", "IsActive", "ClassRef", "ParentRef", "CompanyName", "Salutation", "FirstName", "MiddleName", "LastName",
    "JobTitle", "BillAddress", "ShipAddress", "ShipToAddress", "Phone", "AltPhone", "Fax", "Email", "Cc", "Contact",
    "AltContact", "AdditionalContactRef", "Contacts", "CustomerTypeRef", "TermsRef", "SalesRepRef", "OpenBalance",
    "OpenBalanceDate", "SalesTaxCodeRef", "ItemSalesTaxRef", "SalesTaxCountry", "ResaleNumber", "AccountNumber",
    "CreditLimit", "PreferredPaymentMethodRef", "CreditCardInfo", "JobStatus", "JobStartDate", "JobProjectedEndDate",
    "JobEndDate", "JobDesc", "JobTypeRef", "Notes", "AdditionalNotes", "PreferredDeliveryMethod", "PriceLevelRef",
    "ExternalGUID", "TaxRegistrationNumber", "CurrencyRef",
]  # fmt: skip
_LINE_HEAD = ["ItemRef", "Desc", "Quantity", "UnitOfMeasure", "Rate|RatePercent|PriceLevelRef", "ClassRef", "Amount"]
_LINE_SITE = ["OptionForPriceRuleConflict", "InventorySiteRef", "InventorySiteLocationRef", "SerialNumber|LotNumber"]
_INVOICE_LINE = [*_LINE_HEAD, *_LINE_SITE, "ServiceDate", "SalesTaxCodeRef", "OverrideItemAccountRef", "Other1",
                 "Other2", "LinkToTxn", "DataExt"]  # fmt: skip
_RECEIPT_LINE = [*_LINE_HEAD, *_LINE_SITE, "ServiceDate", "SalesTaxCodeRef", "OverrideItemAccountRef", "Other1",
                 "Other2", "CreditCardTxnInfo", "DataExt"]  # fmt: skip
_ORDER_LINE = [*_LINE_HEAD, *_LINE_SITE, "SalesTaxCodeRef", "IsManuallyClosed", "Other1", "Other2", "DataExt"]
_CREDIT_LINE = [*_LINE_HEAD, *_LINE_SITE, "ServiceDate", "SalesTaxCodeRef", "OverrideItemAccountRef", "Other1",
                "Other2", "DataExt"]  # fmt: skip
_ESTIMATE_LINE = [*_LINE_HEAD, "OptionForPriceRuleConflict", "InventorySiteRef", "InventorySiteLocationRef",
                  "SalesTaxCodeRef", "MarkupRate|MarkupRatePercent", "Other1", "Other2", "DataExt"]  # fmt: skip
_SALES_RECEIPT = [
    "CustomerRef", "ClassRef", "TemplateRef", "TxnDate", "RefNumber", "BillAddress", "ShipAddress", "IsPending",
    "CheckNumber", "PaymentMethodRef", "DueDate", "SalesRepRef", "ShipDate", "ShipMethodRef", "FOB",
    "ItemSalesTaxRef", "Memo", "CustomerMsgRef", "IsToBePrinted", "IsToBeEmailed", "IsTaxIncluded",
    "CustomerSalesTaxCodeRef", "DepositToAccountRef", "CreditCardTxnInfo", "Other", "ExchangeRate", "ExternalGUID",
]  # fmt: skip
_INVOICE = [
    "CustomerRef", "ClassRef", "ARAccountRef", "TemplateRef", "TxnDate", "RefNumber", "BillAddress", "ShipAddress",
    "IsPending", "PONumber", "TermsRef", "DueDate", "SalesRepRef", "FOB", "ShipDate", "ShipMethodRef",
    "ItemSalesTaxRef", "Memo", "CustomerMsgRef", "IsToBePrinted", "IsToBeEmailed", "IsTaxIncluded",
    "CustomerSalesTaxCodeRef", "Other", "ExchangeRate", "ExternalGUID",
]  # fmt: skip
_SALES_ORDER = [
    "CustomerRef", "ClassRef", "TemplateRef", "TxnDate", "RefNumber", "BillAddress", "ShipAddress", "PONumber",
    "TermsRef", "DueDate", "SalesRepRef", "FOB", "ShipDate", "ShipMethodRef", "ItemSalesTaxRef", "IsManuallyClosed",
    "Memo", "CustomerMsgRef", "IsToBePrinted", "IsToBeEmailed", "IsTaxIncluded", "CustomerSalesTaxCodeRef", "Other",
    "ExchangeRate", "ExternalGUID",
]  # fmt: skip
_ESTIMATE = [
    "CustomerRef", "ClassRef", "TemplateRef", "TxnDate", "RefNumber", "BillAddress", "ShipAddress", "IsActive",
    "PONumber", "TermsRef", "DueDate", "SalesRepRef", "FOB", "ItemSalesTaxRef", "Memo", "CustomerMsgRef",
    "IsToBeEmailed", "IsTaxIncluded", "CustomerSalesTaxCodeRef", "Other", "ExchangeRate", "ExternalGUID",
]  # fmt: skip
_PAYMENT = [
    "CustomerRef", "ARAccountRef", "TxnDate", "RefNumber", "TotalAmount", "ExchangeRate", "PaymentMethodRef", "Memo",
    "DepositToAccountRef", "CreditCardTxnInfo",
]  # fmt: skip
_LIST_FILTER = ["ListID", "FullName", "MaxReturned", "ActiveStatus", "FromModifiedDate", "ToModifiedDate",
                "NameFilter|NameRangeFilter"]  # fmt: skip
_TXN_FILTER = ["TxnID", "RefNumber", "RefNumberCaseSensitive", "MaxReturned",
               "ModifiedDateRangeFilter|TxnDateRangeFilter", "EntityFilter", "AccountFilter",
               "RefNumberFilter|RefNumberRangeFilter", "CurrencyFilter"]  # fmt: skip
_SALE_LINES = {
    "SalesReceipt": _RECEIPT_LINE,
    "Invoice": _INVOICE_LINE,
    "SalesOrder": _ORDER_LINE,
    "CreditMemo": _CREDIT_LINE,
    "Estimate": _ESTIMATE_LINE,
}
_SALE_HEADS = {
    "SalesReceipt": _SALES_RECEIPT,
    "Invoice": _INVOICE,
    "SalesOrder": _SALES_ORDER,
    "CreditMemo": _INVOICE,  # CreditMemoAdd's header has the invoice's elements up to ExternalGUID
    "Estimate": _ESTIMATE,
}

# Each content model: the element name → its ordered children.
MODELS: dict[str, list[str]] = {
    "BillAddress": _ADDRESS,
    "ShipAddress": _ADDRESS,
    "CustomerAdd": _CUSTOMER,
    "CustomerMod": ["ListID", "EditSequence", *_CUSTOMER[:-3], "TaxRegistrationNumber", "CurrencyRef"],
    "SalesOrPurchase": ["Desc", "Price|PricePercent", "AccountRef"],
    "ItemNonInventoryAdd": ["Name", "BarCode", "IsActive", "ClassRef", "ParentRef", "ManufacturerPartNumber",
                            "UnitOfMeasureSetRef", "IsTaxIncluded", "SalesTaxCodeRef",
                            "SalesOrPurchase|SalesAndPurchase", "ExternalGUID"],
    "ItemServiceAdd": ["Name", "BarCode", "IsActive", "ClassRef", "ParentRef", "UnitOfMeasureSetRef", "IsTaxIncluded",
                       "SalesTaxCodeRef", "SalesOrPurchase|SalesAndPurchase", "ExternalGUID"],
    "ItemOtherChargeAdd": ["Name", "BarCode", "IsActive", "ClassRef", "ParentRef", "IsTaxIncluded", "SalesTaxCodeRef",
                           "SalesOrPurchase|SalesAndPurchase", "ExternalGUID"],
    "ItemDiscountAdd": ["Name", "BarCode", "IsActive", "ClassRef", "ParentRef", "ItemDesc", "SalesTaxCodeRef",
                        "DiscountRate|DiscountRatePercent", "AccountRef", "ExternalGUID"],
    "ItemInventoryAdd": ["Name", "BarCode", "IsActive", "ClassRef", "ParentRef", "ManufacturerPartNumber",
                         "UnitOfMeasureSetRef", "IsTaxIncluded", "SalesTaxCodeRef", "SalesDesc", "SalesPrice",
                         "IncomeAccountRef", "PurchaseDesc", "PurchaseCost", "PurchaseTaxCodeRef", "COGSAccountRef",
                         "PrefVendorRef", "AssetAccountRef", "ReorderPoint", "Max", "QuantityOnHand", "TotalValue",
                         "InventoryDate", "ExternalGUID"],
    "ReceivePaymentAdd": [*_PAYMENT, "ExternalGUID", "IsAutoApply|AppliedToTxnAdd"],
    "ReceivePaymentMod": ["TxnID", "EditSequence", *_PAYMENT, "AppliedToTxnMod"],
    "AppliedToTxnAdd": ["TxnID", "PaymentAmount", "SetCredit", "DiscountAmount", "DiscountAccountRef",
                        "DiscountClassRef"],
    "AppliedToTxnMod": ["TxnID", "PaymentAmount", "SetCredit", "DiscountAmount", "DiscountAccountRef",
                        "DiscountClassRef"],
    "TxnVoidRq": ["TxnVoidType", "TxnID"],
    "TxnDelRq": ["TxnDelType", "TxnID"],
    "SetCredit": ["CreditTxnID", "TxnLineID", "AppliedAmount", "Override"],
}  # fmt: skip
for _obj, _head in _SALE_HEADS.items():
    _line = _SALE_LINES[_obj]
    _links = ["LinkToTxnID", "SetCredit"] if _obj == "Invoice" else (["LinkToTxnID"] if _obj == "SalesOrder" else [])
    MODELS[f"{_obj}Add"] = [*_head, *_links, f"{_obj}LineAdd|{_obj}LineGroupAdd"]
    MODELS[f"{_obj}Mod"] = ["TxnID", "EditSequence", *[h for h in _head if h != "ExternalGUID"],
                            f"{_obj}LineMod|{_obj}LineGroupMod"]  # fmt: skip
    MODELS[f"{_obj}LineAdd"] = _line
    MODELS[f"{_obj}LineMod"] = ["TxnLineID", *_line]
for _name in ("Account", "Customer", "Item", "Class", "SalesTaxCode", "ItemSalesTax", "PaymentMethod"):
    _extra = {"Account": ["AccountType", "CurrencyFilter"], "Customer": ["TotalBalanceFilter", "CurrencyFilter",
              "ClassFilter"], "PaymentMethod": ["PaymentMethodType"]}.get(_name, [])  # fmt: skip
    MODELS[f"{_name}QueryRq"] = [*_LIST_FILTER, *_extra, "IncludeRetElement", "OwnerID"]
for _obj in ("SalesReceipt", "Invoice", "SalesOrder", "CreditMemo", "Estimate", "ReceivePayment"):
    _paid = ["PaidStatus"] if _obj == "Invoice" else []
    _lines = [] if _obj == "ReceivePayment" else ["IncludeLineItems", "IncludeLinkedTxns"]
    MODELS[f"{_obj}QueryRq"] = [*_TXN_FILTER, *_paid, *_lines, "IncludeRetElement", "OwnerID"]
# The reverse direction's reads: changes by modified date, deletions by deleted date, the ship methods.
MODELS["ModifiedDateRangeFilter"] = ["FromModifiedDate", "ToModifiedDate"]
MODELS["DeletedDateRangeFilter"] = ["FromDeletedDate", "ToDeletedDate"]
MODELS["TxnDeletedQueryRq"] = ["TxnDelType", "DeletedDateRangeFilter", "IncludeRetElement"]
MODELS["ShipMethodQueryRq"] = [*_LIST_FILTER, "IncludeRetElement"]

# Enumerated values (IQBENTxnVoidTypeType / TxnDelType): a value outside them breaks the schema. TxnVoidType has
# no SalesOrder, Estimate or ReceivePayment: through qbXML those can only be deleted.
ENUMS: dict[str, frozenset[str]] = {
    "TxnVoidType": frozenset({
        "ARRefundCreditCard", "Bill", "BillPaymentCheck", "BillPaymentCreditCard", "Charge", "Check",
        "CreditCardCharge", "CreditCardCredit", "CreditMemo", "Deposit", "InventoryAdjustment", "Invoice",
        "ItemReceipt", "JournalEntry", "SalesReceipt", "VendorCredit",
    }),
    "TxnDelType": frozenset({
        "ARRefundCreditCard", "Bill", "BillPaymentCheck", "BillPaymentCreditCard", "BuildAssembly", "Charge",
        "Check", "CreditCardCharge", "CreditCardCredit", "CreditMemo", "Deposit", "Estimate", "InventoryAdjustment",
        "Invoice", "ItemReceipt", "JournalEntry", "PurchaseOrder", "ReceivePayment", "SalesOrder", "SalesReceipt",
        "SalesTaxPaymentCheck", "TimeTracking", "TransferInventory", "VehicleMileage", "VendorCredit",
    }),
}  # fmt: skip
_BARE = ("TxnVoidRq", "TxnDelRq")
REQUESTS = frozenset(name for name in MODELS if name.endswith("QueryRq") or name in _BARE) | frozenset(
    f"{name}Rq" for name in MODELS if name.endswith(("Add", "Mod")) and "Line" not in name
)
# Requests that hold one body element named like the request without "Rq" (CustomerAddRq → CustomerAdd).
WRAPPED = frozenset(name for name in REQUESTS if name.endswith(("AddRq", "ModRq")))


class SchemaError(ValueError):
    """The message set breaks the qbXML schema: QuickBooks runs none of it."""


def _index(model: list[str]) -> dict[str, int]:
    return {tag: position for position, choice in enumerate(model) for tag in choice.split("|")}


_INDEXES = {name: _index(model) for name, model in MODELS.items()}


def check_request(element: etree._Element) -> None:
    """Raise SchemaError when a request element breaks the qbXML 13.0 content models."""
    tag = str(element.tag)
    if tag not in REQUESTS:
        raise SchemaError(f"<{tag}> is not a qbXML 13.0 request ledgerlink's stand-in knows")
    if tag in WRAPPED:
        children = [c for c in element if isinstance(c.tag, str)]
        body = tag.removesuffix("Rq")
        if len(children) != 1 or children[0].tag != body:
            raise SchemaError(f"<{tag}> must hold exactly one <{body}>")
        check_element(children[0])
    else:
        check_element(element)


def check_element(element: etree._Element) -> None:
    """Check an element's children against its content model (and theirs, recursively)."""
    tag = str(element.tag)
    if tag.endswith("Ref") or tag in ("LinkToTxn",):
        model = {"LinkToTxn": {"TxnID": 0, "TxnLineID": 1}}.get(tag, _index(_REF))
    else:
        found = _INDEXES.get(tag)
        if found is None:
            if len([c for c in element if isinstance(c.tag, str)]):
                raise SchemaError(f"<{tag}> may not hold elements")
            allowed = ENUMS.get(tag)
            if allowed is not None and (element.text or "").strip() not in allowed:
                raise SchemaError(f"<{tag}> does not take the value {element.text!r}")
            return
        model = found
    last = -1
    for child in element:
        if not isinstance(child.tag, str):
            continue
        position = model.get(str(child.tag))
        if position is None:
            raise SchemaError(f"<{child.tag}> is not allowed in <{tag}>")
        if position < last:
            raise SchemaError(f"<{child.tag}> is out of order in <{tag}>")
        last = position
        check_element(child)
