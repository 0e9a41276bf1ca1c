"""My Account: company name, users, usage, notifications, API tokens and deleting the company."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from webtools import Web, connect_qbo, connect_shopify, csrf, signup

from ledgerlink.store.models import (
    ApiToken,
    Company,
    Connection,
    Membership,
    OrderState,
    Posting,
    SettingsRevision,
    StoredOrder,
    SyncRun,
    User,
)
from ledgerlink.web.routes.account import usage

pytestmark = pytest.mark.integration


def test_account_page_shows_everything(web: Web) -> None:
    signup(web.client, "acc@shop.test", "Acc Shop")
    page = web.client.get("/account")
    assert page.status_code == 200
    for text in ("Acc Shop", "acc@shop.test", "Usage in", "Notifications", "API tokens", "Delete company"):
        assert text in page.text
    assert 'href="/account/password"' in page.text


def test_rename_company(web: Web) -> None:
    signup(web.client, "rn@shop.test", "Old Name")
    token = csrf(web.client, "/account")
    bad = web.client.post("/account/company", data={"name": "  ", "csrf_token": token})
    assert bad.status_code == 422
    assert "the name of your business" in bad.text
    ok = web.client.post("/account/company", data={"name": "New Name", "csrf_token": token}, follow_redirects=False)
    assert ok.status_code == 303
    assert "New Name" in web.client.get("/account").text


def test_add_user(web: Web) -> None:
    signup(web.client, "boss@shop.test", "Boss Shop")
    other = web.new_client()
    signup(other, "someone@else.test", "Else Shop")
    token = csrf(web.client, "/account")
    taken = web.client.post(
        "/account/users", data={"email": "someone@else.test", "password": "long enough pw", "csrf_token": token}
    )
    assert taken.status_code == 422
    assert "another company" in taken.text
    short = web.client.post("/account/users", data={"email": "bk@shop.test", "password": "x", "csrf_token": token})
    assert short.status_code == 422
    assert "at least 10 characters" in short.text
    ok = web.client.post(
        "/account/users",
        data={"email": "BK@shop.test", "password": "long enough pw", "name": "Book Keeper", "csrf_token": token},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    assert "bk@shop.test" in web.client.get("/account").text
    again = web.client.post(
        "/account/users", data={"email": "bk@shop.test", "password": "long enough pw", "csrf_token": token}
    )
    assert "already a user of this company" in again.text
    # The new user signs in and sees this company; they are not its owner.
    bookkeeper = web.new_client()
    form = csrf(bookkeeper)
    signed = bookkeeper.post(
        "/signin",
        data={"email": "bk@shop.test", "password": "long enough pw", "csrf_token": form},
        follow_redirects=False,
    )
    assert signed.status_code == 303
    page = bookkeeper.get("/account")
    assert "Boss Shop" in page.text
    assert "Delete company" not in page.text
    form = csrf(bookkeeper, "/account")
    refused = bookkeeper.post("/account/delete", data={"confirm": "Boss Shop", "csrf_token": form})
    assert refused.status_code == 403


def test_notifications(web: Web) -> None:
    signup(web.client, "nt@shop.test", "Notify Shop")
    token = csrf(web.client, "/account")
    bad = web.client.post("/account/notifications", data={"notify_email": "nope", "csrf_token": token})
    assert bad.status_code == 422
    assert "an e-mail address" in bad.text
    ok = web.client.post(
        "/account/notifications",
        data={
            "notify_email": "alerts@shop.test",
            "events": ["order_failed", "needs_reconnect", "bogus"],
            "csrf_token": token,
        },
        follow_redirects=False,
    )
    assert ok.status_code == 303
    with web.app.db.session() as session:
        company = session.scalars(select(Company)).one()
        assert company.notify_email == "alerts@shop.test"
        assert company.notify_events == ["order_failed", "needs_reconnect"]


def test_token_name_required(web: Web) -> None:
    signup(web.client, "tk@shop.test", "Token Shop")
    token = csrf(web.client, "/account")
    answer = web.client.post("/account/tokens", data={"name": "", "csrf_token": token})
    assert answer.status_code == 422
    with web.app.db.session() as session:
        assert session.scalar(select(func.count()).select_from(ApiToken)) == 0


def test_usage_counts_posted_orders_per_channel(web: Web) -> None:
    signup(web.client, "us@shop.test", "Usage Shop")
    connect_shopify(web, web.client)
    now = datetime.now(UTC)
    with web.app.db.session() as session:
        company = session.scalars(select(Company)).one()
        conn = session.scalars(select(Connection)).one()
        for i, (state, when) in enumerate(
            [
                (OrderState.POSTED, now),
                (OrderState.POSTED, now),
                (OrderState.FAILED, now),
                (OrderState.POSTED, now - timedelta(days=45)),
            ]
        ):
            session.add(
                StoredOrder(
                    company_id=company.id,
                    connection_id=conn.id,
                    channel_order_id=str(i),
                    number=str(1000 + i),
                    content_hash="x",
                    raw={},
                    state=state,
                    updated_at=when,
                )
            )
    with web.app.db.session() as session:
        per_channel, documents = usage(session, company.id, now)
    assert [(u.name, u.today, u.month) for u in per_channel] == [("shopify", 2, 2)]
    assert documents == 0


def test_delete_company_removes_its_data(web: Web) -> None:
    signup(web.client, "del@shop.test", "Doomed Shop")
    connect_qbo(web, web.client)
    connect_shopify(web, web.client)
    survivor = web.new_client()
    signup(survivor, "keep@shop.test", "Kept Shop")
    connect_shopify(web, survivor)
    with web.app.db.session() as session:
        doomed = session.scalars(select(Company).where(Company.name == "Doomed Shop")).one()
        channel = session.scalars(
            select(Connection).where(Connection.company_id == doomed.id, Connection.role == "channel")
        ).one()
        session.add(SyncRun(company_id=doomed.id, connection_id=channel.id, state="succeeded"))
        order = StoredOrder(
            company_id=doomed.id,
            connection_id=channel.id,
            channel_order_id="1",
            number="1001",
            content_hash="x",
            raw={},
            state=OrderState.POSTED,
        )
        session.add(order)
        session.flush()
        session.add(
            Posting(
                key="k1",
                company_id=doomed.id,
                books_id=channel.books_id,
                order_id=order.id,
                revision=1,
                role="sale",
                kind="SalesReceipt",
                document={},
                total=10,
                state="posted",
            )
        )
        doomed_id = doomed.id
    token = csrf(web.client, "/account")
    wrong = web.client.post("/account/delete", data={"confirm": "doomed shop", "csrf_token": token})
    assert wrong.status_code == 422
    assert "type the company name exactly" in wrong.text
    gone = web.client.post(
        "/account/delete", data={"confirm": "Doomed Shop", "csrf_token": token}, follow_redirects=False
    )
    assert gone.status_code == 303
    assert web.client.get("/account", follow_redirects=False).status_code == 303  # signed out
    with web.app.db.session() as session:
        assert session.get(Company, doomed_id) is None
        for model in (Connection, StoredOrder, Posting, SyncRun, Membership, ApiToken):
            left = session.scalar(select(func.count()).select_from(model).where(model.company_id == doomed_id))
            assert left == 0, model.__name__
        assert session.scalars(select(User).where(User.email == "del@shop.test")).first() is None
        # The other company is untouched.
        kept = session.scalars(select(Company).where(Company.name == "Kept Shop")).one()
        assert session.scalar(select(func.count()).select_from(Connection).where(Connection.company_id == kept.id))
        assert session.scalar(select(func.count()).select_from(SettingsRevision)) == 1
