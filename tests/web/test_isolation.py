"""Two companies side by side: neither can read or change the other's connections, settings, orders, runs or
jobs — through the pages or through the JSON API. Every attempt answers 404 (or 403) and changes nothing."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from webtools import Web, connect_qbo, connect_shopify, csrf, signup

from ledgerlink.domain.catalog import CatalogQuery
from ledgerlink.domain.defaults import suggest_accounts
from ledgerlink.store.models import (
    Company,
    Connection,
    Posting,
    SettingsRevision,
    StoredOrder,
    SyncJob,
    SyncRun,
)
from ledgerlink.sync.jobs import drain

pytestmark = pytest.mark.integration

TOKEN = re.compile(r"<code>(llk_[A-Za-z0-9_-]+)</code>")
REFUSED = (403, 404)


def _token(client: TestClient, name: str) -> str:
    form = csrf(client, "/account")
    page = client.post("/account/tokens", data={"name": name, "csrf_token": form})
    found = TOKEN.search(page.text)
    assert found
    return found.group(1)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _snapshot(web: Web, company_id: int) -> dict[str, Any]:
    """Everything of one company an attack could change."""
    with web.app.db.session() as session:
        conns = session.scalars(select(Connection).where(Connection.company_id == company_id).order_by(Connection.id))
        orders = session.scalars(select(StoredOrder).where(StoredOrder.company_id == company_id))
        conn_ids = [c.id for c in session.scalars(select(Connection).where(Connection.company_id == company_id))]
        return {
            "company": session.get(Company, company_id).name,  # type: ignore[union-attr]
            "connections": [(c.id, c.name, c.status, c.secrets, c.books_id) for c in conns],
            "settings": session.scalar(
                select(func.count()).select_from(SettingsRevision).where(SettingsRevision.connection_id.in_(conn_ids))
            ),
            "orders": sorted((o.id, o.state, o.revision) for o in orders),
            "postings": sorted(
                (p.id, p.state) for p in session.scalars(select(Posting).where(Posting.company_id == company_id))
            ),
            "runs": session.scalar(select(func.count()).select_from(SyncRun).where(SyncRun.company_id == company_id)),
            "jobs": sorted(
                (j.id, j.state) for j in session.scalars(select(SyncJob).where(SyncJob.company_id == company_id))
            ),
        }


def test_companies_cannot_reach_each_other(web: Web) -> None:
    a, b, c = web.client, web.new_client(), web.new_client()
    signup(a, "a@one.test", "Company A")
    signup(b, "b@two.test", "Company B")
    signup(c, "c@three.test", "Company C")

    # A: QuickBooks + Shopify, accounts chosen, one sync run through the job queue.
    connect_qbo(web, a)
    connect_shopify(web, a)
    token_a = _token(a, "a-script")
    conns_a = a.get("/api/v1/connections", headers=_auth(token_a)).json()
    books_a = next(x for x in conns_a if x["role"] == "books")
    channel_a = next(x for x in conns_a if x["role"] == "channel")
    with web.app.db.session() as session:
        books_row = session.get(Connection, books_a["id"])
    assert books_row is not None
    adapter = web.app.adapters.books(books_row)
    try:
        accounts = suggest_accounts(adapter.catalog(CatalogQuery()))
    finally:
        adapter.close()
    settings_url = f"/api/v1/connections/{channel_a['id']}/settings"
    body = a.get(settings_url, headers=_auth(token_a)).json()["settings"] | {
        "accounts": accounts.model_dump(mode="json")
    }
    assert a.put(settings_url, json=body, headers=_auth(token_a)).status_code == 200
    job_a = a.post(f"/api/v1/connections/{channel_a['id']}/sync", json={}, headers=_auth(token_a)).json()["job_id"]
    assert drain(web.app) == 1
    run_a = a.get(f"/api/v1/jobs/{job_a}", headers=_auth(token_a)).json()["run_id"]
    assert run_a is not None
    orders_a = a.get("/api/v1/orders?limit=200", headers=_auth(token_a)).json()["orders"]
    failed_a = next(o for o in orders_a if o["state"] == "failed")
    posted_a = next(o for o in orders_a if o["state"] == "posted")
    queued_a = a.post(
        f"/api/v1/connections/{channel_a['id']}/sync", json={"orders": ["1001"]}, headers=_auth(token_a)
    ).json()["job_id"]  # left waiting in the queue

    # B: its own Shopify store and token. C: a QuickBooks Desktop pairing (for the .qwc file).
    connect_shopify(web, b)
    token_b = _token(b, "b-script")
    [channel_b] = b.get("/api/v1/connections", headers=_auth(token_b)).json()
    form_c = csrf(c, "/connections")
    made = c.post(
        "/connections/qbd",
        data={"user_name": "c-wc", "password": "long enough 1", "confirm": "long enough 1", "csrf_token": form_c},
        follow_redirects=False,
    )
    assert made.status_code == 303
    qbd_c = int(made.headers["location"].rsplit("/", 1)[1])

    with web.app.db.session() as session:
        company_a = session.get(Connection, channel_a["id"]).company_id  # type: ignore[union-attr]
        company_c = session.get(Connection, qbd_c).company_id  # type: ignore[union-attr]
    before_a, before_c = _snapshot(web, company_a), _snapshot(web, company_c)

    # -- B through the pages ----------------------------------------------------------------------------
    form_b = csrf(b, "/connections")
    reads = [
        f"/connections/{books_a['id']}",
        f"/connections/{channel_a['id']}",
        f"/connections/{qbd_c}",
        f"/connections/{qbd_c}/qwc",
        f"/settings/{channel_a['id']}",
        f"/settings/{channel_a['id']}/history",
        f"/settings/{channel_a['id']}/tax/export.csv",
        f"/activity/orders/{failed_a['id']}",
        f"/jobs/{job_a}/progress",
    ]
    for path in reads:
        answer = b.get(path, follow_redirects=False)
        assert answer.status_code in REFUSED, (path, answer.status_code)
    writes = [
        f"/connections/{books_a['id']}/disconnect",
        f"/connections/{channel_a['id']}/disconnect",
        f"/connections/{qbd_c}/disconnect",
        f"/connections/{qbd_c}/password",
        f"/connections/{channel_a['id']}/sync",
        f"/settings/{channel_a['id']}/refresh-lists",
        f"/activity/orders/{failed_a['id']}/retry",
    ]
    for path in writes:
        data = {"csrf_token": form_b, "password": "long enough 2", "confirm": "long enough 2"}
        answer = b.post(path, data=data, follow_redirects=False)
        assert answer.status_code in REFUSED, (path, answer.status_code)
    # B's own pages do not list A's things.
    assert f"/connections/{channel_a['id']}" not in b.get("/connections").text
    assert "Company A" not in b.get("/account").text

    # -- B through the API ------------------------------------------------------------------------------
    hb = _auth(token_b)
    for path in (
        f"/api/v1/connections/{channel_a['id']}",
        f"/api/v1/connections/{books_a['id']}",
        f"/api/v1/connections/{channel_a['id']}/settings",
        f"/api/v1/connections/{channel_a['id']}/settings/history",
        f"/api/v1/orders/{failed_a['id']}",
        f"/api/v1/orders/{posted_a['id']}",
        f"/api/v1/runs/{run_a}",
        f"/api/v1/jobs/{job_a}",
        f"/api/v1/jobs/{queued_a}",
    ):
        answer = b.get(path, headers=hb)
        assert answer.status_code in REFUSED, (path, answer.status_code)
    assert b.put(settings_url, json=body, headers=hb).status_code in REFUSED
    assert b.post(f"/api/v1/connections/{channel_a['id']}/sync", json={}, headers=hb).status_code in REFUSED
    assert b.post(f"/api/v1/orders/{failed_a['id']}/retry", headers=hb).status_code in REFUSED
    preview = {"order": {"id": 1}, "connection_id": channel_a["id"]}
    assert b.post("/api/v1/preview", json=preview, headers=hb).status_code in REFUSED
    # Lists show only B's own objects.
    assert [x["id"] for x in b.get("/api/v1/connections", headers=hb).json()] == [channel_b["id"]]
    assert b.get("/api/v1/orders", headers=hb).json()["total"] == 0
    assert b.get(f"/api/v1/orders?connection_id={channel_a['id']}", headers=hb).json()["orders"] == []
    assert b.get("/api/v1/runs", headers=hb).json() == []
    assert b.get(f"/api/v1/runs?connection_id={channel_a['id']}", headers=hb).json() == []
    assert b.get("/api/v1/company", headers=hb).json()["name"] == "Company B"

    # -- A's token cannot see B's (or C's) data --------------------------------------------------------
    ha = _auth(token_a)
    assert a.get(f"/api/v1/connections/{channel_b['id']}", headers=ha).status_code == 404
    assert a.get(f"/api/v1/connections/{channel_b['id']}/settings", headers=ha).status_code == 404
    assert a.get(f"/api/v1/connections/{qbd_c}", headers=ha).status_code == 404
    assert channel_b["id"] not in [x["id"] for x in a.get("/api/v1/connections", headers=ha).json()]
    assert a.get(f"/connections/{channel_b['id']}").status_code == 404
    assert a.get(f"/connections/{qbd_c}/qwc").status_code == 404

    # Nothing changed for A or C.
    assert _snapshot(web, company_a) == before_a
    assert _snapshot(web, company_c) == before_c
    # And A still reaches its own pages: the refusals above were about ownership, not missing pages.
    for path in reads:
        if str(qbd_c) not in path:
            assert a.get(path, follow_redirects=False).status_code in (200, 303), path
    assert c.get(f"/connections/{qbd_c}/qwc").status_code == 200
    assert a.get(f"/api/v1/orders/{failed_a['id']}", headers=ha).status_code == 200


def test_api_without_or_with_a_revoked_token(web: Web) -> None:
    signup(web.client, "r@one.test", "Revoker")
    token = _token(web.client, "temp")
    assert web.client.get("/api/v1/connections").status_code == 401
    assert web.client.get("/api/v1/connections", headers=_auth(token)).status_code == 200
    page = web.client.get("/account").text
    found = re.search(r'action="/account/tokens/(\d+)/revoke"', page)
    assert found
    other = web.new_client()
    signup(other, "o@two.test", "Other")
    form_other = csrf(other, "/account")
    # Another company cannot revoke it…
    assert other.post(f"/account/tokens/{found.group(1)}/revoke", data={"csrf_token": form_other}).status_code == 404
    assert web.client.get("/api/v1/connections", headers=_auth(token)).status_code == 200
    # …its own company can.
    form = csrf(web.client, "/account")
    web.client.post(f"/account/tokens/{found.group(1)}/revoke", data={"csrf_token": form})
    answer = web.client.get("/api/v1/connections", headers=_auth(token))
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
