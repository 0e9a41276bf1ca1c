"""Contract tests of the QuickBooks Online sandbox, over real HTTP, in QBO's own wire format."""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from ledgerlink.sandbox.qbo import Fault, QboLimits, QboSandbox
from ledgerlink.sandbox.server import RunningServer, serve

pytestmark = pytest.mark.contract

JSON = dict[str, Any]


class Qbo:
    """A minimal QBO client for the tests: bearer token, pinned minorversion, JSON with Decimals."""

    def __init__(self, sandbox: QboSandbox, server: RunningServer) -> None:
        self.sandbox = sandbox
        self.creds = sandbox.credentials(server.base_url)
        self.base = f"{self.creds['api_base']}/company/{self.creds['realm_id']}"
        self.token = self.creds["access_token"]
        self.http = httpx.Client(timeout=10)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        token: str | None = None,
        content: str | None = None,
        content_type: str = "application/json",
        minorversion: str | None = "75",
    ) -> httpx.Response:
        query = dict(params or {})
        if minorversion is not None:
            query.setdefault("minorversion", minorversion)
        headers = {
            "Authorization": f"Bearer {token or self.token}",
            "Accept": "application/json",
            "Content-Type": content_type,
        }
        data = content if content is not None else (json.dumps(body, default=str) if body is not None else None)
        return self.http.request(method, f"{self.base}/{path}", params=query, headers=headers, content=data)

    def post(self, path: str, body: Any, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, body=body, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def query(self, text: str) -> JSON:
        response = self.request("POST", "query", content=text, content_type="application/text")
        assert response.status_code == 200, response.text
        answer: JSON = loads(response)["QueryResponse"]
        return answer

    def one(self, entity: str, where: str) -> JSON:
        rows = self.query(select(entity, where))[entity]
        assert len(rows) == 1
        row: JSON = rows[0]
        return row


def select(entity: str, where: str, what: str = "*") -> str:
    """QBO query text; the tests build it from their own values (it is not SQL)."""
    return f"select {what} from {entity} where {where}"  # noqa: S608


def loads(response: httpx.Response) -> Any:
    return json.loads(response.text, parse_float=Decimal)


def error_of(response: httpx.Response) -> JSON:
    error: JSON = loads(response)["Fault"]["Error"][0]
    return error


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8].upper()}"


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[QboSandbox, RunningServer]]:
    sandbox = QboSandbox(limits=QboLimits(enabled=False))
    server = serve(sandbox.app)
    try:
        yield sandbox, server
    finally:
        server.stop()


@pytest.fixture
def qbo(shared: tuple[QboSandbox, RunningServer]) -> Iterator[Qbo]:
    sandbox, server = shared
    client = Qbo(sandbox, server)
    yield client
    sandbox.clear_faults()
    client.http.close()


@pytest.fixture
def fresh() -> Iterator[Any]:
    """Build a dedicated sandbox (own limits/country) and serve it; stopped after the test."""
    servers: list[RunningServer] = []
    clients: list[Qbo] = []

    def make(**kwargs: Any) -> Qbo:
        sandbox = QboSandbox(**kwargs)
        server = serve(sandbox.app)
        servers.append(server)
        clients.append(Qbo(sandbox, server))
        return clients[-1]

    yield make
    for client in clients:
        client.http.close()
    for server in servers:
        server.stop()


def item_id(qbo: Qbo, sku: str) -> str:
    return str(qbo.one("Item", f"Sku = '{sku}'")["Id"])


def customer_id(qbo: Qbo, name: str = "Cool Cars") -> str:
    escaped = name.replace("'", "\\'")
    return str(qbo.one("Customer", f"DisplayName = '{escaped}'")["Id"])


def sales_line(item: str, qty: int | str, price: str, amount: str | None = None) -> JSON:
    total = amount if amount is not None else str(Decimal(price) * Decimal(qty))
    return {
        "DetailType": "SalesItemLineDetail",
        "Amount": Decimal(total),
        "SalesItemLineDetail": {"ItemRef": {"value": item}, "Qty": Decimal(qty), "UnitPrice": Decimal(price)},
    }


def receipt(qbo: Qbo, doc: str | None = None, **extra: Any) -> JSON:
    body: JSON = {"Line": [sales_line(item_id(qbo, "MUG-01"), 5, "10.99")], **extra}
    if doc is not None:
        body["DocNumber"] = doc
    return body


# --- create / read / query ------------------------------------------------------------------------------


def test_create_read_and_query_speak_qbo_json(qbo: Qbo) -> None:
    doc = unique("SR")
    shipping = {
        "DetailType": "SalesItemLineDetail",
        "Amount": 5,
        "SalesItemLineDetail": {"ItemRef": {"value": "SHIPPING_ITEM_ID"}},
    }
    discount = {
        "DetailType": "DiscountLineDetail",
        "Amount": Decimal("4.95"),
        "DiscountLineDetail": {"PercentBased": False},
    }
    body = receipt(qbo, doc, TxnTaxDetail={"TotalTax": Decimal("4.10")})
    body["Line"] += [shipping, discount]

    created = qbo.post("salesreceipt", body)
    assert created.status_code == 200, created.text
    # Money travels as JSON numbers, never strings.
    assert '"TotalAmt":59.1' in created.text
    sr = loads(created)["SalesReceipt"]
    assert sr["SyncToken"] == "0"
    assert re.fullmatch(r"\d+", sr["Id"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d-08:00", sr["MetaData"]["CreateTime"])
    assert re.fullmatch(r".*T\d\d:\d\d:\d\d\.\d{3}-08:00", loads(created)["time"])
    # 54.95 subtotal - 4.95 discount + 5 shipping + 4.10 tax
    assert sr["TotalAmt"] == Decimal("59.1")
    assert sr["Line"][-1] == {"Amount": Decimal("54.95"), "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}}
    assert sr["DepositToAccountRef"]["name"] == "Undeposited Funds"

    read = qbo.get(f"salesreceipt/{sr['Id']}/")
    assert read.status_code == 200
    assert loads(read)["SalesReceipt"] == sr

    by_get = qbo.get("query", params={"query": select("SalesReceipt", f"DocNumber = '{doc}'")})
    assert loads(by_get)["QueryResponse"]["SalesReceipt"][0]["Id"] == sr["Id"]
    by_post = qbo.query(select("salesreceipt", f"docnumber in ('nope', '{doc}') maxresults 5"))
    assert by_post["startPosition"] == 1
    assert by_post["maxResults"] == 1
    assert qbo.query("select * from SalesReceipt where DocNumber = 'no-such-doc'") == {}
    assert qbo.query("select count(*) from PaymentMethod") == {"totalCount": 7}
    assert sr in qbo.sandbox.entities("SalesReceipt")


def test_query_grammar_paging_and_inactive_names(qbo: Qbo) -> None:
    accounts = qbo.query("select * from Account where Name LIKE '%income%' orderby Name desc")["Account"]
    assert [a["Name"] for a in accounts] == ["Shipping Income", "Sales of Product Income"]
    page = qbo.query("select * from PaymentMethod orderby Name startposition 2 maxresults 2")["PaymentMethod"]
    assert [p["Name"] for p in page] == ["Cash", "Check"]
    stamp = qbo.sandbox.entities("Account")[0]["MetaData"]["LastUpdatedTime"]
    assert qbo.query(select("Account", f"MetaData.LastUpdatedTime <= '{stamp}'", "count(*)"))["totalCount"] >= 14
    item = qbo.post("item", {"Name": unique("Old "), "Type": "Service", "IncomeAccountRef": {"value": "6"}})
    old = loads(item)["Item"]
    qbo.post("item", {"Id": old["Id"], "SyncToken": old["SyncToken"], "sparse": True, "Active": False})
    assert old["Name"] not in [i["Name"] for i in qbo.query("select * from Item")["Item"]]
    inactive = qbo.query("select * from Item where Active = false")["Item"]
    assert old["Name"] in [i["Name"] for i in inactive]

    bad = qbo.request("POST", "query", content="select * form Item", content_type="application/text")
    assert bad.status_code == 400
    error = error_of(bad)
    assert error["code"] == "4000"
    assert error["Message"] == "Error parsing query"
    assert "QueryParserError" in error["Detail"]
    assert (
        error_of(qbo.get("query", params={"query": "select * from Item where Name = 'a' or Name = 'b'"}))["code"]
        == "4000"
    )
    escaped = qbo.query("select * from Customer where DisplayName = 'Amy\\'s Bird Sanctuary'")
    assert escaped["Customer"][0]["DisplayName"] == "Amy's Bird Sanctuary"


# --- updates, void, delete ---------------------------------------------------------------------------------


def test_sparse_update_full_update_and_stale_sync_token(qbo: Qbo) -> None:
    sr = loads(qbo.post("salesreceipt", receipt(qbo, unique("UP"), PrivateNote="keep me", PaymentRefNum="X1")))[
        "SalesReceipt"
    ]
    sparse = qbo.post("salesreceipt", {"Id": sr["Id"], "SyncToken": "0", "sparse": True, "PaymentRefNum": "X2"})
    assert sparse.status_code == 200, sparse.text
    updated = loads(sparse)["SalesReceipt"]
    assert updated["SyncToken"] == "1"
    assert updated["PaymentRefNum"] == "X2"
    assert updated["PrivateNote"] == "keep me"
    assert updated["MetaData"]["CreateTime"] == sr["MetaData"]["CreateTime"]

    stale = qbo.post("salesreceipt", {"Id": sr["Id"], "SyncToken": "0", "sparse": True, "PrivateNote": "lost"})
    assert stale.status_code == 400
    assert error_of(stale)["code"] == "5010"
    assert error_of(stale)["Message"] == "Stale Object Error"

    full = {"Id": sr["Id"], "SyncToken": "1", "Line": updated["Line"], "DocNumber": updated["DocNumber"]}
    replaced = loads(qbo.post("salesreceipt", full))["SalesReceipt"]
    assert replaced["SyncToken"] == "2"
    assert "PrivateNote" not in replaced
    assert "PaymentRefNum" not in replaced


def test_void_and_delete(qbo: Qbo) -> None:
    sr = loads(qbo.post("salesreceipt", receipt(qbo, unique("VD"), PrivateNote="oops")))["SalesReceipt"]
    voided = qbo.post("salesreceipt", {"Id": sr["Id"], "SyncToken": sr["SyncToken"]}, params={"operation": "void"})
    assert voided.status_code == 200, voided.text
    body = loads(voided)["SalesReceipt"]
    assert body["TotalAmt"] == 0
    assert body["Balance"] == 0
    assert body["PrivateNote"].startswith("Voided")
    assert all(line["Amount"] == 0 for line in body["Line"])
    assert body["SyncToken"] == "1"

    deleted = qbo.post("salesreceipt", {"Id": sr["Id"], "SyncToken": "1"}, params={"operation": "delete"})
    assert deleted.status_code == 200, deleted.text
    assert loads(deleted)["SalesReceipt"] == {"Id": sr["Id"], "status": "Deleted", "domain": "QBO"}
    gone = qbo.get(f"salesreceipt/{sr['Id']}")
    assert gone.status_code == 400
    assert error_of(gone)["code"] == "610"
    customer_delete = qbo.post("customer", {"Id": customer_id(qbo), "SyncToken": "0"}, params={"operation": "delete"})
    assert customer_delete.status_code == 400
    assert error_of(customer_delete)["code"] == "500"


# --- batch ---------------------------------------------------------------------------------------------------


def test_batch_items_are_independent_and_size_is_capped(qbo: Qbo) -> None:
    dup = unique("Batch ")
    qbo.post("customer", {"DisplayName": dup})
    items = [
        {"bId": "1", "operation": "create", "Customer": {"DisplayName": unique("Batch ")}},
        {"bId": "2", "operation": "create", "Customer": {"DisplayName": dup}},
        {"bId": "3", "Query": "select * from Term where Name = 'Net 30'"},
        {"bId": "4", "operation": "create", "SalesReceipt": receipt(qbo, unique("B"))},
    ]
    response = qbo.post("batch", {"BatchItemRequest": items})
    assert response.status_code == 200, response.text
    answers = {answer["bId"]: answer for answer in loads(response)["BatchItemResponse"]}
    assert answers["1"]["Customer"]["Id"]
    assert answers["2"]["Fault"]["type"] == "ValidationFault"
    assert answers["2"]["Fault"]["Error"][0]["code"] == "6240"
    assert answers["3"]["QueryResponse"]["Term"][0]["DueDays"] == 30
    assert answers["4"]["SalesReceipt"]["TotalAmt"] == Decimal("54.95")

    too_many = [{"bId": str(n), "Query": "select * from Term"} for n in range(31)]
    rejected = qbo.post("batch", {"BatchItemRequest": too_many})
    assert rejected.status_code == 400
    assert "Fault" in loads(rejected)
    assert qbo.sandbox.requests[-1].batch_items == 31


# --- idempotency -----------------------------------------------------------------------------------------------


def test_requestid_replays_the_first_answer(qbo: Qbo) -> None:
    doc = unique("RQ")
    request_id = uuid.uuid4().hex
    first = qbo.post("salesreceipt", receipt(qbo, doc), params={"requestid": request_id})
    second = qbo.post("salesreceipt", receipt(qbo, doc), params={"requestid": request_id})
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert len([s for s in qbo.sandbox.entities("SalesReceipt") if s.get("DocNumber") == doc]) == 1
    assert qbo.sandbox.requests[-1].replayed
    assert qbo.sandbox.requests[-1].requestid == request_id

    batch_id = uuid.uuid4().hex[:36]
    body = {"BatchItemRequest": [{"bId": "1", "operation": "create", "SalesReceipt": receipt(qbo, unique("RB"))}]}
    one = qbo.post("batch", body, params={"requestid": batch_id})
    two = qbo.post("batch", body, params={"requestid": batch_id})
    assert one.content == two.content
    too_long = qbo.post("salesreceipt", receipt(qbo), params={"requestid": "x" * 51})
    assert too_long.status_code == 400


def test_lost_response_commits_then_answers_504_and_requestid_recovers(qbo: Qbo) -> None:
    doc = unique("LR")
    request_id = uuid.uuid4().hex
    qbo.sandbox.inject(Fault(kind="lost_response", path_contains="salesreceipt"))
    lost = qbo.post("salesreceipt", receipt(qbo, doc), params={"requestid": request_id})
    assert lost.status_code == 504
    assert lost.headers["content-type"].startswith("text/html")
    stored = [s for s in qbo.sandbox.entities("SalesReceipt") if s.get("DocNumber") == doc]
    assert len(stored) == 1
    retry = qbo.post("salesreceipt", receipt(qbo, doc), params={"requestid": request_id})
    assert retry.status_code == 200
    assert loads(retry)["SalesReceipt"]["Id"] == stored[0]["Id"]


def test_injected_status_fault_over_http_does_no_work(qbo: Qbo) -> None:
    hooks = httpx.post(
        f"{qbo.creds['base_url']}/_sandbox/faults", json={"kind": "status", "status": 503, "path_contains": "batch"}
    )
    assert hooks.status_code == 201
    failed = qbo.post(
        "batch", {"BatchItemRequest": [{"bId": "1", "operation": "create", "Customer": {"DisplayName": "Never"}}]}
    )
    assert failed.status_code == 503
    assert error_of(failed)["code"] == "10000"
    assert not [c for c in qbo.sandbox.entities("Customer") if c["DisplayName"] == "Never"]
    state = httpx.get(f"{qbo.creds['base_url']}/_sandbox/state").json()
    assert state["entities"]["Customer"] >= 2
    assert state["faults"] == []
    assert httpx.delete(f"{qbo.creds['base_url']}/_sandbox/faults").status_code == 200


# --- business rules --------------------------------------------------------------------------------------------


def test_duplicate_doc_number_6140_and_the_bypass(qbo: Qbo) -> None:
    doc = unique("D")
    invoice = loads(qbo.post("invoice", receipt(qbo, doc, CustomerRef={"value": customer_id(qbo)})))["Invoice"]
    dup = qbo.post("salesreceipt", receipt(qbo, doc))
    assert dup.status_code == 400
    error = error_of(dup)
    assert error["code"] == "6140"
    assert error["Message"] == "Duplicate Document Number Error"
    assert error["Detail"] == (
        "Duplicate Document Number Error : You must specify a different number. This number has already been "
        f"used. DocNumber={doc} is assigned to TxnType=Invoice with TxnId={invoice['Id']}"
    )
    allowed = qbo.post("salesreceipt", receipt(qbo, doc), params={"include": "allowduplicatedocnum"})
    assert allowed.status_code == 200
    too_long = qbo.post("salesreceipt", receipt(qbo, "X" * 22))
    assert error_of(too_long)["code"] == "6000"
    assert error_of(too_long)["Detail"].endswith("Min:0 Max:21")


def test_duplicate_customer_name_6240(qbo: Qbo) -> None:
    name = unique("Dup Customer ")
    assert qbo.post("customer", {"DisplayName": name}).status_code == 200
    again = qbo.post("customer", {"DisplayName": name.lower()})
    assert again.status_code == 400
    assert error_of(again)["code"] == "6240"
    assert error_of(again)["Message"] == "Duplicate Name Exists Error"
    assert error_of(again)["Detail"].startswith("The name supplied already exists. : Another customer")
    assert error_of(qbo.post("customer", {"DisplayName": "A:B"}))["code"] == "6000"
    assert (
        error_of(qbo.post("item", {"Name": "Red Hat", "Type": "Service", "IncomeAccountRef": {"value": "6"}}))["code"]
        == "6240"
    )


def test_amount_must_equal_qty_times_price_6070(qbo: Qbo) -> None:
    body = {"Line": [sales_line(item_id(qbo, "HAT-RED"), 3, "19.99", amount="59.99")]}
    response = qbo.post("salesreceipt", body)
    assert response.status_code == 400
    assert error_of(response)["code"] == "6070"
    ok = qbo.post("salesreceipt", {"Line": [sales_line(item_id(qbo, "HAT-RED"), 3, "19.99", amount="59.97")]})
    assert ok.status_code == 200


def test_missing_references_610_and_account_types_6430(qbo: Qbo) -> None:
    missing = qbo.post("invoice", receipt(qbo, CustomerRef={"value": "99999"}))
    assert missing.status_code == 400
    assert error_of(missing)["code"] == "610"
    assert "CustomerRef" in error_of(missing)["Detail"]
    no_item = qbo.post("salesreceipt", {"Line": [sales_line("424242", 1, "1.00")]})
    assert error_of(no_item)["code"] == "610"
    assert error_of(qbo.post("invoice", receipt(qbo)))["code"] == "2020"  # Invoice needs CustomerRef
    income = qbo.one("Account", "Name = 'Services'")["Id"]
    wrong = qbo.post("salesreceipt", receipt(qbo, DepositToAccountRef={"value": income}))
    assert error_of(wrong)["code"] == "6430"
    assert error_of(qbo.post("refundreceipt", receipt(qbo)))["code"] == "2020"  # needs DepositToAccountRef


def test_shipping_item_needs_allow_shipping(fresh: Any) -> None:
    qbo = fresh(limits=QboLimits(enabled=False))
    shipping = {
        "DetailType": "SalesItemLineDetail",
        "Amount": 5,
        "SalesItemLineDetail": {"ItemRef": {"value": "SHIPPING_ITEM_ID"}},
    }
    body = receipt(qbo)
    body["Line"].append(shipping)
    assert qbo.post("salesreceipt", body).status_code == 200
    qbo.sandbox.set_preference("SalesFormsPrefs", "AllowShipping", False)
    refused = qbo.post("salesreceipt", body)
    assert refused.status_code == 400
    assert error_of(refused)["code"] == "610"
    assert "AllowShipping" in error_of(refused)["Detail"]


def test_discount_amount_and_percent_together_is_6000(qbo: Qbo) -> None:
    body = receipt(qbo)
    body["Line"].append(
        {
            "DetailType": "DiscountLineDetail",
            "Amount": 3,
            "DiscountLineDetail": {"PercentBased": True, "DiscountPercent": 10},
        }
    )
    assert error_of(qbo.post("salesreceipt", body))["code"] == "6000"
    body["Line"][-1].pop("Amount")
    percent = loads(qbo.post("salesreceipt", body))["SalesReceipt"]
    assert percent["TotalAmt"] == Decimal("49.45")  # 54.95 - 5.50 (10 %, rounded half up)


def test_us_company_refuses_global_tax_calculation(qbo: Qbo, fresh: Any) -> None:
    refused = qbo.post("salesreceipt", receipt(qbo, GlobalTaxCalculation="TaxExcluded"))
    assert refused.status_code == 400
    canada = fresh(limits=QboLimits(enabled=False), country="CA")
    info = loads(canada.get(f"companyinfo/{canada.creds['realm_id']}"))["CompanyInfo"]
    assert info["Country"] == "CA"
    assert "PartnerTaxEnabled" not in loads(canada.get("preferences"))["Preferences"]["TaxPrefs"]
    gst = canada.one("TaxCode", "Name = 'GST'")["Id"]
    body = receipt(
        canada, GlobalTaxCalculation="TaxExcluded", TxnTaxDetail={"TotalTax": "2.75", "TxnTaxCodeRef": {"value": gst}}
    )
    body["Line"][0]["SalesItemLineDetail"]["TaxCodeRef"] = {"value": gst}
    accepted = canada.post("salesreceipt", body)
    assert accepted.status_code == 200, accepted.text
    assert loads(accepted)["SalesReceipt"]["TotalAmt"] == Decimal("57.70")


def test_inventory_item_rules_and_stock_moves(qbo: Qbo) -> None:
    cogs = qbo.one("Account", "Name = 'Cost of Goods Sold'")["Id"]
    asset = qbo.one("Account", "Name = 'Inventory Asset'")["Id"]
    income = qbo.one("Account", "Name = 'Sales of Product Income'")["Id"]
    name = unique("WIDGET-")
    base: JSON = {"Name": name, "Sku": name, "Type": "Inventory", "TrackQtyOnHand": True, "QtyOnHand": 10}
    assert error_of(qbo.post("item", base))["code"] == "2020"
    base.update(
        InvStartDate="2025-01-01",
        IncomeAccountRef={"value": income},
        ExpenseAccountRef={"value": income},
        AssetAccountRef={"value": asset},
    )
    assert error_of(qbo.post("item", base))["code"] == "6430"
    base["ExpenseAccountRef"] = {"value": cogs}
    item = loads(qbo.post("item", base))["Item"]
    assert item["QtyOnHand"] == 10
    assert error_of(qbo.post("item", {"Name": unique("Bundle "), "Type": "Group"}))["code"] == "500"
    qbo.post("salesreceipt", {"Line": [sales_line(item["Id"], 3, "4.00")]})
    qbo.post("estimate", {"CustomerRef": {"value": customer_id(qbo)}, "Line": [sales_line(item["Id"], 5, "4.00")]})
    assert loads(qbo.get(f"item/{item['Id']}"))["Item"]["QtyOnHand"] == 7


# --- linked transactions ---------------------------------------------------------------------------------------


def test_payment_applies_to_invoice_and_void_restores_it(qbo: Qbo) -> None:
    customer = customer_id(qbo)
    invoice = loads(qbo.post("invoice", receipt(qbo, unique("IN"), CustomerRef={"value": customer})))["Invoice"]
    assert invoice["Balance"] == Decimal("54.95")
    assert invoice["DueDate"]
    pay: JSON = {
        "CustomerRef": {"value": customer},
        "TotalAmt": 60,
        "Line": [{"Amount": Decimal("50.00"), "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}],
    }
    payment = loads(qbo.post("payment", pay))["Payment"]
    assert payment["UnappliedAmt"] == 10
    after = loads(qbo.get(f"invoice/{invoice['Id']}"))["Invoice"]
    assert after["Balance"] == Decimal("4.95")
    assert after["SyncToken"] == "1"
    assert {"TxnId": payment["Id"], "TxnType": "Payment"} in after["LinkedTxn"]

    pay["Line"][0]["Amount"] = 5
    over = qbo.post("payment", pay)
    assert over.status_code == 400
    assert error_of(over)["code"] == "6000"
    other = qbo.post("payment", {**pay, "CustomerRef": {"value": customer_id(qbo, "Amy's Bird Sanctuary")}})
    assert error_of(other)["code"] == "6000"

    voided = qbo.post("payment", {"Id": payment["Id"], "SyncToken": payment["SyncToken"]}, params={"operation": "void"})
    assert voided.status_code == 200
    assert loads(qbo.get(f"invoice/{invoice['Id']}"))["Invoice"]["Balance"] == Decimal("54.95")


def test_estimate_closes_when_invoiced(qbo: Qbo) -> None:
    customer = {"value": customer_id(qbo)}
    estimate = loads(qbo.post("estimate", receipt(qbo, unique("ES"), CustomerRef=customer)))["Estimate"]
    assert estimate["TxnStatus"] == "Pending"
    link = [{"TxnId": estimate["Id"], "TxnType": "Estimate"}]
    invoice = loads(qbo.post("invoice", receipt(qbo, unique("EI"), CustomerRef=customer, LinkedTxn=link)))["Invoice"]
    assert invoice["LinkedTxn"] == link
    closed = loads(qbo.get(f"estimate/{estimate['Id']}"))["Estimate"]
    assert closed["TxnStatus"] == "Closed"
    assert closed["LinkedTxn"] == [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]


# --- CDC --------------------------------------------------------------------------------------------------------


def test_cdc_reports_changes_and_deletions(qbo: Qbo) -> None:
    since = (datetime.now().astimezone() - timedelta(seconds=2)).isoformat(timespec="seconds")
    kept = loads(qbo.post("salesreceipt", receipt(qbo, unique("CK"))))["SalesReceipt"]
    gone = loads(qbo.post("salesreceipt", receipt(qbo, unique("CG"))))["SalesReceipt"]
    qbo.post("salesreceipt", {"Id": gone["Id"], "SyncToken": "0"}, params={"operation": "delete"})
    response = qbo.get("cdc", params={"entities": "Invoice,SalesReceipt", "changedSince": since})
    assert response.status_code == 200, response.text
    blocks = loads(response)["CDCResponse"][0]["QueryResponse"]
    receipts = next(block["SalesReceipt"] for block in blocks if "SalesReceipt" in block)
    assert kept["Id"] in [r["Id"] for r in receipts]
    assert {"Id": gone["Id"], "status": "Deleted"}.items() <= next(r for r in receipts if r["Id"] == gone["Id"]).items()
    old = (datetime.now().astimezone() - timedelta(days=31)).isoformat()
    assert qbo.get("cdc", params={"entities": "Invoice", "changedSince": old}).status_code == 400


# --- protocol: minorversion, throttles, tokens ---------------------------------------------------------------------


def test_minorversion_is_logged_and_old_ones_are_refused(qbo: Qbo) -> None:
    assert qbo.get("preferences").status_code == 200
    assert qbo.sandbox.requests[-1].minorversion == "75"
    old = qbo.get("preferences", minorversion="65")
    assert old.status_code == 400
    assert "no longer supported" in error_of(old)["Detail"]
    assert qbo.get("preferences", minorversion=None).status_code == 200


def test_throttles_answer_429_without_retry_after(fresh: Any) -> None:
    clock = [0.0]
    limits = QboLimits(requests_per_second=1000, requests_per_minute=5, time_scale=60)
    qbo = fresh(limits=limits, monotonic=lambda: clock[0])
    statuses = [qbo.get("preferences").status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    throttled = qbo.get("preferences")
    assert "retry-after" not in throttled.headers
    assert loads(throttled) == {
        "Fault": {
            "Error": [
                {
                    "Message": "message=ThrottleExceeded; errorCode=003001; statusCode=429",
                    "Detail": "The request limit was reached.",
                    "code": "3001",
                    "element": "",
                }
            ],
            "type": "SERVICE",
        },
        "time": loads(throttled)["time"],
    }
    clock[0] += 1.01  # one scaled minute later the window has slid past
    assert qbo.get("preferences").status_code == 200
    assert qbo.sandbox.stats.throttled == 2

    batches = fresh(limits=QboLimits(batch_per_minute=2, time_scale=60), monotonic=lambda: clock[0])
    body = {"BatchItemRequest": [{"bId": "1", "Query": "select * from Term"}]}
    assert [batches.post("batch", body).status_code for _ in range(3)] == [200, 200, 429]
    assert batches.get("preferences").status_code == 200  # plain requests still pass
    assert batches.sandbox.stats.batches == 2

    concurrent = fresh(limits=QboLimits(concurrent=2))
    concurrent.sandbox.inject(Fault(kind="latency", delay_ms=200, count=3, path_contains="preferences"))
    with ThreadPoolExecutor(max_workers=3) as pool:
        codes = sorted(pool.map(lambda _: Qbo.get(concurrent, "preferences").status_code, range(3)))
    assert codes == [200, 200, 429]
    assert concurrent.sandbox.stats.max_concurrent_seen == 3


def test_expired_and_unknown_tokens_get_401_json_and_xml(fresh: Any) -> None:
    clock = [0.0]
    qbo = fresh(limits=QboLimits(enabled=False), monotonic=lambda: clock[0])
    assert qbo.get("preferences").status_code == 200
    clock[0] += 3600  # access tokens last one hour
    expired = qbo.get("preferences")
    assert expired.status_code == 401
    fault = loads(expired)["fault"]
    assert fault["type"] == "AUTHENTICATION"
    assert fault["error"][0]["code"] == "3200"
    assert fault["error"][0]["message"] == "message=AuthenticationFailed; errorCode=003200; statusCode=401"
    assert fault["error"][0]["detail"].startswith("Token expired")
    assert loads(expired)["intuitObject"] is None
    assert loads(expired)["batchItemResponse"] == []
    assert qbo.get("preferences", token="made-up").status_code == 401

    qbo.sandbox.inject(Fault(kind="xml_401"))
    xml = qbo.get("preferences")
    assert xml.status_code == 401
    assert xml.headers["content-type"].startswith("application/xml")
    assert '<Fault type="AuthenticationFault"><Error code="100">' in xml.text

    short = fresh(limits=QboLimits(enabled=False, access_token_ttl=1.0), monotonic=lambda: clock[0])
    assert short.get("preferences").status_code == 200
    short.sandbox.inject(Fault(kind="expire_tokens"))
    assert short.get("preferences").status_code == 401


def basic(qbo: Qbo) -> dict[str, str]:
    pair = f"{qbo.creds['client_id']}:{qbo.creds['client_secret']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode(), "Accept": "application/json"}


def test_refresh_tokens_rotate_with_a_grace_period(fresh: Any) -> None:
    clock = [1000.0]
    qbo = fresh(limits=QboLimits(enabled=False), monotonic=lambda: clock[0])
    url = qbo.creds["token_url"]
    original = qbo.creds["refresh_token"]
    first = httpx.post(url, data={"grant_type": "refresh_token", "refresh_token": original}, headers=basic(qbo))
    assert first.status_code == 200
    issued = first.json()
    assert issued["token_type"] == "bearer"
    assert issued["expires_in"] == 3600
    assert issued["x_refresh_token_expires_in"] == 8640000
    assert issued["refresh_token"] != original
    assert qbo.get("preferences", token=issued["access_token"]).status_code == 200

    clock[0] += 3600  # within 24 h the superseded token still works (a retry after a lost answer)
    retry = httpx.post(url, data={"grant_type": "refresh_token", "refresh_token": original}, headers=basic(qbo))
    assert retry.status_code == 200
    clock[0] += 86400
    late = httpx.post(url, data={"grant_type": "refresh_token", "refresh_token": original}, headers=basic(qbo))
    assert late.status_code == 400
    assert late.json() == {"error": "invalid_grant"}
    newest = httpx.post(
        url, data={"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]}, headers=basic(qbo)
    )
    assert newest.status_code == 200
    unknown = httpx.post(url, data={"grant_type": "refresh_token", "refresh_token": "nope"}, headers=basic(qbo))
    assert unknown.json() == {"error": "invalid_grant"}
    bad_client = httpx.post(url, data={"grant_type": "refresh_token", "refresh_token": original})
    assert bad_client.status_code == 401


def test_authorization_code_flow_through_the_consent_page(qbo: Qbo) -> None:
    redirect = "http://127.0.0.1:9/callback"
    page = httpx.get(
        qbo.creds["authorize_url"],
        params={
            "client_id": qbo.creds["client_id"],
            "redirect_uri": redirect,
            "response_type": "code",
            "scope": "com.intuit.quickbooks.accounting",
            "state": "xyz",
        },
    )
    assert page.status_code == 200
    assert "Authorize" in page.text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    action = re.search(r'<form method="post" action="([^"]+)"', page.text)
    assert action is not None
    submitted = httpx.post(qbo.creds["base_url"] + action.group(1), data={**fields, "decision": "allow"})
    assert submitted.status_code == 302
    location = urlsplit(submitted.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == redirect
    answer = {key: values[0] for key, values in parse_qs(location.query).items()}
    assert answer["state"] == "xyz"
    assert answer["realmId"] == qbo.creds["realm_id"]

    grant = {"grant_type": "authorization_code", "code": answer["code"], "redirect_uri": redirect}
    tokens = httpx.post(qbo.creds["token_url"], data=grant, headers=basic(qbo))
    assert tokens.status_code == 200
    assert qbo.get("preferences", token=tokens.json()["access_token"]).status_code == 200
    reused = httpx.post(qbo.creds["token_url"], data=grant, headers=basic(qbo))
    assert reused.status_code == 400
    assert reused.json() == {"error": "invalid_grant"}


def test_unknown_realm_is_refused(qbo: Qbo) -> None:
    response = qbo.http.get(
        f"{qbo.creds['api_base']}/company/123/preferences",
        headers={"Authorization": f"Bearer {qbo.token}"},
        params={"minorversion": "75"},
    )
    assert response.status_code == 403
    assert response.json()["fault"]["error"][0]["code"] == "3100"
