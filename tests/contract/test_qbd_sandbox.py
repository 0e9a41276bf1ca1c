"""The QuickBooks Desktop stand-in answers qbXML as QuickBooks does, and the Web Connector endpoint speaks the
Web Connector's SOAP (read through zeep from our WSDL, over real HTTP)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from lxml import etree

from ledgerlink.books.qbd import qbxml
from ledgerlink.books.qbd.qbxml import ResponseSet, parse_response
from ledgerlink.bootstrap import App, bootstrap
from ledgerlink.config import Settings
from ledgerlink.domain.catalog import NewCustomer, NewItem
from ledgerlink.domain.documents import DocLine, Document, DocumentKind, LineKind, Link, Ref
from ledgerlink.sandbox.qbd import QbdCompany, QbdParseError, QuickBooksCrashed, check_request
from ledgerlink.sandbox.qbd.driver import WebConnector
from ledgerlink.sandbox.server import RunningServer, serve
from ledgerlink.sync.connections import add_connection, create_company
from ledgerlink.web.app import create_app
from ledgerlink.web.security import hash_password

pytestmark = pytest.mark.contract
D = Decimal


def reference(name: str) -> str:
    shared = Path(__file__).resolve().parents[2].parent / "shared"
    return (shared / "reference" / "fixtures" / name).read_text(encoding="utf-8")


def run(
    company: QbdCompany, *requests: etree._Element, new_id: str | None = None, on_error: str = "continueOnError"
) -> ResponseSet:
    for number, rq in enumerate(requests, start=1):
        rq.set("requestID", str(number))
    return parse_response(company.process(qbxml.message_set(list(requests), new_id=new_id, on_error=on_error)))


def account(company: QbdCompany, name: str) -> str:
    found = company.find("Account", name)
    assert found is not None
    return found.list_id


def invoice(company: QbdCompany, customer: str, amount: str = "40.00", number: str = "1001") -> Document:
    return Document(
        role="invoice",
        kind=DocumentKind.INVOICE,
        order_number=number,
        doc_number=number,
        txn_date=date(2025, 1, 6),
        customer=Ref(key="c", name=customer, id=customer),
        lines=(
            DocLine(
                kind=LineKind.ITEM,
                amount=D(amount),
                description="Consulting",
                item=Ref(key="i", name="Consulting", id="Consulting"),
                quantity=D(1),
                unit_price=D(amount),
            ),
        ),
        total=D(amount),
        memo=f"Shopify order #{number}",
        marker=f"ll-test-{number}",
        ar_account=Ref(key="a", id=account(company, "Accounts Receivable")),
    )


@pytest.fixture
def company() -> QbdCompany:
    return QbdCompany()


# -- adds, names, references -----------------------------------------------------------------------------------


def test_adds_answer_with_ids_edit_sequences_and_times(company: QbdCompany) -> None:
    jane = NewCustomer(key="k", display_name="Jane Doe", email="jane@example.com")
    tee = NewItem(key="i", name="TEE", sku="TEE", unit_price="19.99", income_account=account(company, "Sales"))
    answers = run(
        company,
        qbxml.customer_add(jane, "Jane Doe", "0"),
        qbxml.item_add(tee, "TEE", "0"),
        qbxml.document_add(invoice(company, "Jane Doe"), "0"),
    )
    customer, item, sale = (answers.answers[str(n)] for n in (1, 2, 3))
    assert customer.code == 0
    assert customer.ret is not None
    assert qbxml.is_list_id(customer.ret.list_id)
    assert item.rs == "ItemNonInventoryAddRs"
    assert item.ret is not None
    assert item.ret.list_id
    assert sale.ret is not None
    assert qbxml.is_list_id(sale.ret.txn_id)
    assert sale.ret.edit_sequence
    assert sale.ret.find("TimeCreated")
    assert sale.ret.find("TxnNumber")
    assert sale.ret.total == D("40.00")
    assert sale.ret.find("BalanceRemaining") == "40.00"
    assert sale.ret.find("CustomerRef/ListID") == customer.ret.list_id  # referred to by name, bound by id


def test_duplicate_names_are_3100_case_insensitively_and_items_have_their_own_names(company: QbdCompany) -> None:
    jane = NewCustomer(key="k", display_name="Jane Doe")
    run(company, qbxml.customer_add(jane, "Jane Doe", "0"))
    again = run(company, qbxml.customer_add(jane, "JANE DOE", "0")).answers["1"]
    assert (again.code, again.severity) == (3100, "Error")
    assert again.message == 'The name "JANE DOE" of the list element is already in use.'
    item = NewItem(key="i", name="Jane Doe", income_account=account(company, "Sales"))
    assert run(company, qbxml.item_add(item, "Jane Doe", "0")).answers["1"].code == 0


def test_invalid_references_and_limits_are_refused_and_the_rest_runs(company: QbdCompany) -> None:
    answers = run(
        company,
        qbxml.document_add(invoice(company, "Nobody"), "0"),
        qbxml.customer_add(NewCustomer(key="k", display_name="x"), "N" * 42, "0"),
        qbxml.customer_add(NewCustomer(key="k", display_name="ok"), "Ok Customer", "0"),
    )
    missing, long_name, fine = answers.answers["1"], answers.answers["2"], answers.answers["3"]
    assert missing.code == 3140
    assert 'QuickBooks Customer "Nobody"' in missing.message
    assert long_name.code == 3070
    assert '"Name" is too long' in long_name.message
    assert fine.code == 0
    long_ref = qbxml.document_add(invoice(company, "Ok Customer"), "1")
    number = long_ref.find("InvoiceAdd/RefNumber")
    assert number is not None
    number.text = "123456789012"  # one over Desktop's 11
    assert run(company, long_ref).answers["1"].code == 3070


def test_stop_on_error_stops(company: QbdCompany) -> None:
    answers = run(
        company,
        qbxml.document_add(invoice(company, "Nobody"), "0"),
        qbxml.customer_add(NewCustomer(key="k", display_name="x"), "Never Added", "0"),
        on_error="stopOnError",
    )
    assert list(answers.answers) == ["1"]
    assert company.find("entity", "Never Added") is None


# -- edit sequences, payments, links ---------------------------------------------------------------------------


def test_stale_edit_sequence_is_3200(company: QbdCompany) -> None:
    run(company, qbxml.customer_add(NewCustomer(key="k", display_name="Ann"), "Ann", "0"))
    added = run(company, qbxml.document_add(invoice(company, "Ann"), "0")).answers["1"].ret
    assert added is not None
    changed = invoice(company, "Ann", amount="45.00")
    first = run(company, qbxml.document_mod(changed, "0", txn_id=added.txn_id, edit_sequence=added.edit_sequence))
    ret = first.answers["1"].ret
    assert first.answers["1"].code == 0
    assert ret is not None
    assert ret.total == D("45.00")
    assert ret.edit_sequence != added.edit_sequence
    stale = run(company, qbxml.document_mod(changed, "0", txn_id=added.txn_id, edit_sequence=added.edit_sequence))
    assert stale.answers["1"].code == 3200
    assert stale.answers["1"].message == f'The provided edit sequence "{added.edit_sequence}" is out-of-date.'


def test_payment_applies_to_an_invoice_and_never_above_its_balance(company: QbdCompany) -> None:
    run(company, qbxml.customer_add(NewCustomer(key="k", display_name="Bo"), "Bo", "0"))
    sale = run(company, qbxml.document_add(invoice(company, "Bo"), "0")).answers["1"].ret
    assert sale is not None
    pay = invoice(company, "Bo").model_copy(
        update={
            "kind": DocumentKind.PAYMENT,
            "role": "payment",
            "lines": (),
            "links": (Link(role="invoice", kind=DocumentKind.INVOICE, amount=D("40.00")),),
            "deposit_account": Ref(key="d", id=account(company, "Undeposited Funds")),
        }
    )
    paid = run(company, qbxml.document_add(pay, "0", linked={"invoice": sale.txn_id})).answers["1"]
    assert paid.code == 0
    assert paid.ret is not None
    assert paid.ret.find("AppliedToTxnRet/BalanceRemaining") == "0.00"
    again = run(company, qbxml.document_add(pay, "0", linked={"invoice": sale.txn_id})).answers["1"]
    assert again.code == 3180
    assert "open balance" in again.message
    gone = run(company, qbxml.document_add(pay, "0", linked={"invoice": "FFFF-1736154000"})).answers["1"]
    assert gone.code == 3120


def test_a_credit_memo_applied_to_an_invoice_lowers_its_balance(company: QbdCompany) -> None:
    run(company, qbxml.customer_add(NewCustomer(key="k", display_name="Di"), "Di", "0"))
    sale = run(company, qbxml.document_add(invoice(company, "Di"), "0")).answers["1"].ret
    credit_doc = invoice(company, "Di", amount="10.00", number="1001-R1").model_copy(
        update={"kind": DocumentKind.CREDIT_MEMO, "role": "refund:r1"}
    )
    credit = run(company, qbxml.document_add(credit_doc, "0")).answers["1"].ret
    assert sale is not None
    assert credit is not None
    assert credit.total == D("10.00")
    apply = invoice(company, "Di").model_copy(
        update={
            "kind": DocumentKind.PAYMENT,
            "role": "apply:r1",
            "lines": (),
            "total": D("0.00"),
            "links": (
                Link(role="invoice", kind=DocumentKind.INVOICE, amount=D("10.00")),
                Link(role="refund:r1", kind=DocumentKind.CREDIT_MEMO, amount=D("10.00")),
            ),
        }
    )
    links = {"invoice": sale.txn_id, "refund:r1": credit.txn_id}
    applied = run(company, qbxml.document_add(apply, "0", linked=links)).answers["1"]
    assert applied.code == 0, applied.message
    balances = {t.kind: t.balance for t in company.transactions() if t.kind in ("Invoice", "CreditMemo")}
    assert balances == {"Invoice": D("30.00"), "CreditMemo": D("0.00")}
    again = run(company, qbxml.document_add(apply, "0", linked=links)).answers["1"]
    assert again.code == 3180  # the credit is used up


# -- queries and iterators ---------------------------------------------------------------------------------------


def test_iterators_page_through_long_lists(company: QbdCompany) -> None:
    for n in range(25):
        company.add_list_object("Customer", f"Customer {n:02}")
    start = run(company, qbxml.list_query("Customer", "0", max_returned=10, iterator="Start")).answers["1"]
    assert (len(start.rets), start.remaining) == (10, 15)
    assert start.iterator_id
    names = [r.full_name for r in start.rets]
    remaining = start.remaining
    while remaining:
        page = run(
            company,
            qbxml.list_query("Customer", "0", max_returned=10, iterator="Continue", iterator_id=start.iterator_id),
        ).answers["1"]
        names += [r.full_name for r in page.rets]
        assert page.remaining < remaining
        remaining = page.remaining
    assert names == [f"Customer {n:02}" for n in range(25)]
    unknown = run(company, qbxml.list_query("Customer", "0", iterator="Continue", iterator_id="{nope}")).answers["1"]
    assert unknown.code >= 3000


def test_queries_by_name_and_ref_number(company: QbdCompany) -> None:
    lists = run(company, *(qbxml.list_query(name, "0") for name in qbxml.LIST_QUERIES if name != "Customer"))
    accounts = lists.answers["1"]
    assert {r.find("AccountType") for r in accounts.rets} >= {"AccountsReceivable", "Income", "OtherCurrentAsset"}
    assert any(r.find("SpecialAccountType") == "UndepositedFunds" for r in accounts.rets)
    run(company, qbxml.customer_add(NewCustomer(key="k", display_name="Cy"), "Cy", "0"))
    run(company, qbxml.document_add(invoice(company, "Cy", number="2002"), "0"))
    found = run(company, qbxml.txn_query("Invoice", "0", ref_numbers=["2002"])).answers["1"]
    assert len(found.rets) == 1
    assert "[ledgerlink ll-test-2002]" in found.rets[0].memo
    none = run(company, qbxml.txn_query("Invoice", "0", ref_numbers=["9999"])).answers["1"]
    assert (none.code, none.ok, none.rets) == (1, True, ())


# -- message-set recovery ----------------------------------------------------------------------------------------


def test_message_set_recovery_returns_the_kept_answer_and_runs_nothing_twice(company: QbdCompany) -> None:
    jane = NewCustomer(key="k", display_name="Dee")
    text = qbxml.message_set(
        [qbxml.customer_add(jane, "Dee", "1"), qbxml.document_add(invoice(company, "Dee"), "2")], new_id="set-0001"
    )
    first = parse_response(company.process(text))
    ask = parse_response(company.process(qbxml.message_set([], new_id="set-0001", old_id="set-0001")))
    assert ask.message_set_status == "0"
    assert {k: (a.code, a.ret and (a.ret.list_id, a.ret.txn_id)) for k, a in ask.answers.items()} == {
        k: (a.code, a.ret and (a.ret.list_id, a.ret.txn_id)) for k, a in first.answers.items()
    }
    replay = parse_response(company.process(text))  # the very same set again: the kept answer, nothing runs
    assert replay.answers["2"].ret is not None
    assert first.answers["2"].ret is not None
    assert replay.answers["2"].ret.txn_id == first.answers["2"].ret.txn_id
    assert len(company.transactions("Invoice")) == 1
    other = qbxml.message_set([qbxml.list_query("Account", "1")], new_id="set-0001")
    assert parse_response(company.process(other)).message_set_status == "9001"
    unknown = parse_response(company.process(qbxml.message_set([], new_id="never-sent", old_id="never-sent")))
    assert (unknown.message_set_status, unknown.answers) == ("9002", {})
    too_long = company.process(
        qbxml.message_set([]).replace("<QBXMLMsgsRq ", f'<QBXMLMsgsRq newMessageSetID="{"x" * 25}" ')
    )
    assert parse_response(too_long).message_set_status == "9004"


def test_a_crash_mid_set_keeps_what_ran_and_no_answer(company: QbdCompany) -> None:
    requests = [qbxml.customer_add(NewCustomer(key=str(n), display_name=f"P{n}"), f"P{n}", str(n)) for n in range(5)]
    with pytest.raises(QuickBooksCrashed):
        company.process(qbxml.message_set(requests, new_id="crash-1"), crash_after=3)
    assert len(company.customers()) == 3
    assert (
        parse_response(company.process(qbxml.message_set([], new_id="crash-1", old_id="crash-1"))).message_set_status
        == "9002"
    )


def test_the_intuit_samples_pass_the_schema_and_run(company: QbdCompany) -> None:
    customers = company.process(reference("qbxml_CustomerAddRq.xml"))
    assert [a.code for a in parse_response(customers).answers.values()] == [0, 0]
    payment = parse_response(company.process(reference("qbxml_ReceivePaymentAddRq.xml"))).answers["2"]
    assert payment.code == 3140
    assert "Ecker Designs:Office Repairs" in payment.message
    first, second = reference("qbxml_ErrRecovery_messageset.xml.txt").split("<!-- ===== next file")
    with pytest.raises(QbdParseError):  # CheckAdd: not a request the stand-in runs
        company.process(first)
    assert (
        parse_response(company.process("<" + second.split("-->", 1)[1].split("<", 1)[1])).message_set_status == "9002"
    )


def test_a_schema_violation_fails_the_whole_set(company: QbdCompany) -> None:
    good = qbxml.customer_add(NewCustomer(key="a", display_name="A"), "A", "1")
    bad = qbxml.customer_add(NewCustomer(key="b", display_name="B", email="b@example.com"), "B", "2")
    add = bad[0]
    email = add.find("Email")
    assert email is not None
    add.remove(email)
    add.insert(0, email)
    check_request(good)
    with pytest.raises(QbdParseError) as failed:
        company.process(qbxml.message_set([good, bad]))
    assert failed.value.hresult == "0x80040400"
    assert company.find("entity", "A") is None  # nothing ran


# -- the SOAP endpoint, through zeep ------------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[App, RunningServer]]:
    settings = Settings(  # type: ignore[arg-type]
        env="test", data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'l.db'}", secret_key="test-secret-key"
    )
    app = bootstrap(settings)
    with app.db.session() as session:
        company = create_company(session, "Soap Co")
        add_connection(
            session,
            app.box,
            company,
            name="quickbooks-desktop",
            kind="qbd",
            role="books",
            config={"user_name": "soap-user"},
            secrets={"password_hash": hash_password("a long enough password")},
        )
    server = serve(create_app(app))
    try:
        yield app, server
    finally:
        server.stop()
        app.db.dispose()


def test_the_wsdl_describes_the_web_connector_contract(served: tuple[App, RunningServer]) -> None:
    _app, server = served
    wc = WebConnector(f"{server.base_url}/qbwc?wsdl", QbdCompany(), user_name="soap-user", password="x")
    try:
        operations = wc.client.service._binding._operations  # zeep's reading of our WSDL
        assert set(operations) == {
            "serverVersion", "clientVersion", "authenticate", "sendRequestXML", "receiveResponseXML",
            "connectionError", "getLastError", "closeConnection",
        }  # fmt: skip
        send = operations["sendRequestXML"]
        assert send.soapaction == "http://developer.intuit.com/sendRequestXML"
        assert [name for name, _ in send.input.body.type.elements] == [
            "ticket", "strHCPResponse", "strCompanyFileName", "qbXMLCountry", "qbXMLMajorVers", "qbXMLMinorVers",
        ]  # fmt: skip
        assert wc.service.serverVersion().startswith("ledgerlink")
        assert wc.service.clientVersion("2.3.0.215") in ("", None)
        assert wc.run(password="wrong").status == "nvu"
        ticket_none = wc.run(password="a long enough password")
        assert ticket_none.status == ""  # first contact: the lists are due
        assert ticket_none.finished
        assert wc.run(password="a long enough password").status == "none"
        assert "ledgerlink does not know" in wc.service.getLastError("no-such-ticket")
    finally:
        wc.close()


def test_the_endpoint_refuses_entities_and_unknown_methods(served: tuple[App, RunningServer]) -> None:
    _app, server = served
    envelope = (
        '<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        '<authenticate xmlns="http://developer.intuit.com/"><strUserName>&x;</strUserName>'
        "<strPassword>p</strPassword></authenticate></soap:Body></soap:Envelope>"
    )
    answer = httpx.post(f"{server.base_url}/qbwc", content=envelope, headers={"Content-Type": "text/xml"})
    assert answer.status_code == 500
    assert "faultstring" in answer.text
    assert "passwd" not in answer.text
    unknown = envelope.split("]>", 1)[1].replace("authenticate", "dropDatabase").replace("&x;", "u")
    answer = httpx.post(f"{server.base_url}/qbwc", content=unknown, headers={"Content-Type": "text/xml"})
    assert answer.status_code == 500
    assert "unknown method" in answer.text
