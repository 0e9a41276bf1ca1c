"""The Order previewer: a stored order or pasted JSON → the documents that would be posted; nothing is posted."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select
from test_dashboard import signed_up_with_channel, sync_now
from webtools import Web, csrf, signup

from ledgerlink.sandbox.shopify import generate_orders
from ledgerlink.store.models import Posting, StoredOrder
from ledgerlink.sync.jobs import drain

pytestmark = pytest.mark.integration


def documents_in_books(web: Web) -> int:
    return sum(len(web.qbo.entities(kind)) for kind in ("SalesReceipt", "Invoice", "Estimate", "Payment"))


def test_preview_pasted_json_without_a_channel(web: Web) -> None:
    signup(web.client, "p@shop.test", "Preview Shop")
    order = generate_orders(1, seed=3)[0]
    token = csrf(web.client, "/preview")
    answer = web.client.post(
        "/preview",
        data={"csrf_token": token, "order_json": json.dumps({"order": order}), "transaction_type": "invoice"},
    )
    assert answer.status_code == 200, answer.text
    assert f"Order #{order['order_number']}" in answer.text
    assert "Invoice" in answer.text
    assert "&#34;DocNumber&#34;" in answer.text or '"DocNumber"' in answer.text
    assert "stand-ins" in answer.text
    assert "Created first in QuickBooks" in answer.text
    assert f"{float(order['total_price']):,.2f}" in answer.text


def test_preview_a_stored_order_with_the_channels_books(web: Web) -> None:
    channel_id = signed_up_with_channel(web)
    sync_now(web.client, channel_id)
    drain(web.app)
    before = documents_in_books(web)
    with web.app.db.session() as session:
        stored = session.scalars(select(StoredOrder).where(StoredOrder.state == "posted")).first()
        assert stored is not None
        posting = session.scalars(select(Posting).where(Posting.order_id == stored.id)).one()
        order_id, number, postings = stored.id, stored.number, session.scalar(select(func.count(Posting.id)))
    page = web.client.get("/preview")
    assert f'<option value="{order_id}"' in page.text
    token = csrf(web.client, "/preview")
    answer = web.client.post("/preview", data={"csrf_token": token, "order_id": str(order_id)})
    assert answer.status_code == 200, answer.text
    assert f"Order #{number}" in answer.text
    assert f"Sales Receipt {posting.doc_number}" in answer.text
    assert "matched against your QuickBooks company" in answer.text
    assert "<pre>" in answer.text
    as_invoice = web.client.post(
        "/preview",
        data={
            "csrf_token": token,
            "order_id": str(order_id),
            "connection": str(channel_id),
            "transaction_type": "sales_order_invoice_payment",
        },
    )
    assert "Estimate" in as_invoice.text
    assert "Payment" in as_invoice.text
    assert "posted as an Estimate" in as_invoice.text
    direct = web.client.get(f"/preview?order={order_id}")
    assert direct.status_code == 200
    assert f"Order #{number}" in direct.text
    # Nothing was posted or planned by previewing.
    assert documents_in_books(web) == before
    with web.app.db.session() as session:
        assert session.scalar(select(func.count(Posting.id))) == postings


def test_bad_json_and_mapping_errors_are_messages(web: Web) -> None:
    signup(web.client, "p@shop.test", "Preview Shop")
    token = csrf(web.client, "/preview")
    bad = web.client.post("/preview", data={"csrf_token": token, "order_json": '{"id": 1, "line_items": [}'})
    assert bad.status_code == 422
    assert "this is not JSON" in bad.text
    assert "line 1" in bad.text
    assert "Traceback" not in bad.text
    listed = web.client.post("/preview", data={"csrf_token": token, "order_json": "[1, 2]"})
    assert listed.status_code == 422
    assert "paste one order" in listed.text
    broken = generate_orders(1, seed=3)[0]
    broken["total_price"] = "1.00"
    wrong = web.client.post("/preview", data={"csrf_token": token, "order_json": json.dumps(broken)})
    assert wrong.status_code == 422
    assert f"Order {broken['order_number']}" in wrong.text
    assert "totals.total" in wrong.text
    nothing = web.client.post("/preview", data={"csrf_token": token})
    assert nothing.status_code == 422
    assert "pick an order" in nothing.text


def test_another_companys_order_cannot_be_previewed(web: Web) -> None:
    channel_id = signed_up_with_channel(web)
    sync_now(web.client, channel_id)
    drain(web.app)
    with web.app.db.session() as session:
        order_id = session.scalars(select(StoredOrder.id)).first()
    other = web.new_client()
    signup(other, "other@shop.test", "Shop Two")
    token = csrf(other, "/preview")
    answer = other.post("/preview", data={"csrf_token": token, "order_id": str(order_id)})
    assert answer.status_code == 422
    assert "pick one of your orders" in answer.text
    assert f'<option value="{order_id}"' not in other.get("/preview").text
    assert other.get(f"/preview?order={order_id}").status_code == 404
    foreign_channel = other.post(
        "/preview", data={"csrf_token": token, "order_json": "{}", "connection": str(channel_id)}
    )
    assert "pick one of your selling channels" in foreign_channel.text
