"""An order's revision history on its page (what changed, what the books did) and the dashboard's
"recently changed after posting" panel."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select
from test_activity import synced
from webtools import Web

from ledgerlink.sandbox.shopify import lifecycle
from ledgerlink.store.models import Posting, StoredOrder
from ledgerlink.sync.jobs import drain

pytestmark = pytest.mark.integration


def test_edited_order_shows_its_diff_and_the_update_and_is_on_the_dashboard(web: Web) -> None:
    synced(web)
    with web.app.db.session() as session:
        order = session.scalars(
            select(StoredOrder).where(StoredOrder.state == "posted").order_by(StoredOrder.id)
        ).first()
        assert order is not None
        canonical = order.canonical or {}
        line = canonical["lines"][0]
        order_id, channel_order_id, number = order.id, int(order.channel_order_id), order.number
        posting = session.scalars(select(Posting).where(Posting.order_id == order.id)).one()
        doc_number, kind = posting.doc_number, posting.kind
    quantity = int(float(line["quantity"]))
    before_dashboard = web.client.get("/")
    assert "Recently changed after posting" not in before_dashboard.text

    lifecycle.edit_quantity(web.shop, channel_order_id, 0, quantity + 1)  # the webhook queues a sync of it
    drain(web.app)

    with web.app.db.session() as session:
        edited = session.get(StoredOrder, order_id)
        assert edited is not None
        assert edited.revision == 2
        assert edited.state == "posted"
        updates = session.scalars(select(Posting).where(Posting.order_id == order_id, Posting.revision == 2)).all()
        assert [(p.operation, p.state) for p in updates] == [("update", "posted")]
        new_total = edited.total
    page = web.client.get(f"/activity/orders/{order_id}")
    assert page.status_code == 200
    rows = re.findall(r'<tr class="revision" id="revision-(\d+)">(.*?)</tr>', page.text, re.S)
    assert [r[0] for r in rows] == ["2", "1"]
    second, first = rows[0][1], rows[1][1]
    assert re.search(
        rf'data-field="lines\[[^\]]+\]\.quantity">Quantity of “[^<]+: {quantity} → {quantity + 1}</li>', second
    )
    assert 'data-field="totals.total"' in second
    assert f"→ {new_total:,.2f}" in second
    assert f'{doc_number} <span class="badge posted">updated</span>' in second
    assert "First seen" in first
    assert f'{doc_number} <span class="badge superseded">created, then changed by a later revision</span>' in first
    assert "As Shopify sent it" in second

    dashboard = web.client.get("/")
    assert "Recently changed after posting" in dashboard.text
    panel = dashboard.text.split('id="changed-after-posting"', 1)[1]
    assert f'href="/activity/orders/{order_id}#revisions">#{number}</a>' in panel
    assert f"{'Sales Receipt' if kind == 'SalesReceipt' else kind} {doc_number} updated" in panel

    # A partial refund is the next revision: the refund shows as added, and the books got a refund document.
    lifecycle.refund(web.shop, channel_order_id, [(0, 1)])
    drain(web.app)
    page = web.client.get(f"/activity/orders/{order_id}")
    rows = re.findall(r'<tr class="revision" id="revision-(\d+)">(.*?)</tr>', page.text, re.S)
    assert [r[0] for r in rows] == ["3", "2", "1"]
    third = rows[0][1]
    assert re.search(r'data-field="refunds\[[^\]]+\]">Refund [^<]+ added: [0-9.,]+, 1 item', third)
    assert "Payment status: paid → partially_refunded" in third
    assert re.search(r"Refund Receipt [^<]*-R1 <span class=\"badge posted\">created</span>", third)
