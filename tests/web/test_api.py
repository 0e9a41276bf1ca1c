"""The JSON API: bearer tokens, settings with revisions, syncs as jobs, orders, runs, the preview, OpenAPI."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from webtools import Web, connect_qbo, connect_shopify, csrf, signup

from ledgerlink.domain.catalog import CatalogQuery
from ledgerlink.domain.defaults import suggest_accounts
from ledgerlink.sandbox.shopify import generate_orders
from ledgerlink.store.models import Connection, OrderState, StoredOrder
from ledgerlink.sync.jobs import drain

pytestmark = pytest.mark.integration

TOKEN = re.compile(r"<code>(llk_[A-Za-z0-9_-]+)</code>")


def api_token(client: TestClient, name: str = "script") -> str:
    """Create a token under My Account and read it from the page (it is shown once)."""
    token = csrf(client, "/account")
    page = client.post("/account/tokens", data={"name": name, "csrf_token": token})
    assert page.status_code == 200, page.text
    found = TOKEN.search(page.text)
    assert found, "the new token is shown on the page"
    return found.group(1)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def ready_company(web: Web, client: TestClient, email: str, company: str) -> tuple[str, int]:
    """Signed up, QuickBooks and Shopify connected, accounts chosen; returns (API token, channel id)."""
    signup(client, email, company)
    connect_qbo(web, client)
    connect_shopify(web, client)
    token = api_token(client)
    with web.app.db.session() as session:
        books = session.scalars(select(Connection).where(Connection.role == "books").order_by(Connection.id.desc()))
        books_conn = books.first()
        assert books_conn is not None
    adapter = web.app.adapters.books(books_conn)
    try:
        accounts = suggest_accounts(adapter.catalog(CatalogQuery()))
    finally:
        adapter.close()
    [channel] = [c for c in client.get("/api/v1/connections", headers=bearer(token)).json() if c["role"] == "channel"]
    current = client.get(f"/api/v1/connections/{channel['id']}/settings", headers=bearer(token)).json()["settings"]
    current["accounts"] = accounts.model_dump(mode="json")
    saved = client.put(f"/api/v1/connections/{channel['id']}/settings", json=current, headers=bearer(token))
    assert saved.status_code == 200, saved.text
    assert saved.json()["missing"] == []
    return token, int(channel["id"])


def test_api_needs_a_valid_token(web: Web) -> None:
    assert web.client.get("/api/v1/company").status_code == 401
    bad = web.client.get("/api/v1/company", headers=bearer("llk_nope"))
    assert bad.status_code == 401
    assert "API token" in bad.json()["detail"]
    assert web.client.get("/api/v1/company", headers={"Authorization": "Basic abc"}).status_code == 401


def test_company_and_revoked_token(web: Web) -> None:
    signup(web.client, "api@shop.test", "API Shop")
    token = api_token(web.client, "reporting")
    answer = web.client.get("/api/v1/company", headers=bearer(token))
    assert answer.status_code == 200
    assert answer.json()["name"] == "API Shop"
    account = web.client.get("/account")
    assert "reporting" in account.text
    assert token not in account.text  # shown once only
    assert token[:12] in account.text
    token_id = re.search(r'action="/account/tokens/(\d+)/revoke"', account.text)
    assert token_id
    form = csrf(web.client, "/account")
    web.client.post(f"/account/tokens/{token_id.group(1)}/revoke", data={"csrf_token": form})
    assert web.client.get("/api/v1/company", headers=bearer(token)).status_code == 401


def test_settings_put_validates_and_keeps_history(web: Web) -> None:
    signup(web.client, "set@shop.test", "Set Shop")
    connect_shopify(web, web.client)
    token = api_token(web.client, "ci")
    [conn] = web.client.get("/api/v1/connections", headers=bearer(token)).json()
    assert conn["kind"] == "shopify"
    assert "access_token" not in str(conn)
    url = f"/api/v1/connections/{conn['id']}/settings"
    got = web.client.get(url, headers=bearer(token)).json()
    assert got["revision"] == 1
    assert "accounts.deposit" in got["missing"]
    body = got["settings"] | {"transaction_type": "not-a-type", "doc_number_prefix": "X" * 40}
    bad = web.client.put(url, json=body, headers=bearer(token))
    assert bad.status_code == 422
    fields = {tuple(e["loc"][-1:]) for e in bad.json()["detail"]}
    assert ("transaction_type",) in fields
    assert ("doc_number_prefix",) in fields
    body = got["settings"] | {"transaction_type": "invoice"}
    good = web.client.put(url, json=body, headers=bearer(token))
    assert good.status_code == 200, good.text
    assert good.json()["revision"] == 2
    assert good.json()["settings"]["transaction_type"] == "invoice"
    history = web.client.get(url + "/history", headers=bearer(token)).json()
    assert [h["revision"] for h in history] == [2, 1]
    assert history[0]["changed_by"] == "api:ci"
    assert history[1]["changed_by"] == "set@shop.test"


def test_sync_orders_runs_jobs_and_retry(web: Web) -> None:
    token, channel_id = ready_company(web, web.client, "sync@shop.test", "Sync Shop")
    queued = web.client.post(f"/api/v1/connections/{channel_id}/sync", json={}, headers=bearer(token))
    assert queued.status_code == 202, queued.text
    job_id = queued.json()["job_id"]
    assert web.client.get(f"/api/v1/jobs/{job_id}", headers=bearer(token)).json()["state"] == "queued"
    assert drain(web.app) == 1
    job = web.client.get(f"/api/v1/jobs/{job_id}", headers=bearer(token)).json()
    assert job["state"] == "done", job
    assert job["requested_by"] == "api:script"
    run = web.client.get(f"/api/v1/runs/{job['run_id']}", headers=bearer(token)).json()
    assert run["state"] in {"succeeded", "partial"}
    assert run["counts"]["pulled"] >= 40
    assert [r["id"] for r in web.client.get("/api/v1/runs?limit=5", headers=bearer(token)).json()] == [run["id"]]

    page = web.client.get("/api/v1/orders?state=posted&limit=5", headers=bearer(token)).json()
    assert page["total"] > 0
    assert len(page["orders"]) == 5
    first = page["orders"][0]
    assert first["channel"] == "shopify"
    assert first["documents"]
    assert first["documents"][0]["state"] == "posted"
    assert first["documents"][0]["remote_id"]
    by_number = web.client.get(f"/api/v1/orders?number={first['number']}", headers=bearer(token)).json()
    assert [o["id"] for o in by_number["orders"]] == [first["id"]]
    detail = web.client.get(f"/api/v1/orders/{first['id']}", headers=bearer(token)).json()
    assert detail["number"] == first["number"]
    assert "events" in detail
    assert web.client.get("/api/v1/orders?state=bogus", headers=bearer(token)).status_code == 422

    failed = web.client.get("/api/v1/orders?state=failed", headers=bearer(token)).json()["orders"]
    assert failed, "the sandbox seeds broken orders"
    assert failed[0]["detail"]
    again = web.client.post(f"/api/v1/orders/{failed[0]['id']}/retry", headers=bearer(token))
    assert again.status_code == 200
    with web.app.db.session() as session:
        order = session.get(StoredOrder, failed[0]["id"])
        assert order is not None
        assert order.state != OrderState.FAILED or order.error_field == "revision"

    windowed = web.client.post(
        f"/api/v1/connections/{channel_id}/sync",
        json={"orders": [first["number"]], "since": "2020-01-01"},
        headers=bearer(token),
    )
    assert windowed.status_code == 202
    with web.app.db.session() as session:
        from ledgerlink.store.models import SyncJob

        row = session.get(SyncJob, windowed.json()["job_id"])
        assert row is not None
        assert row.options == {"since": "2020-01-01", "orders": [first["number"]]}


def test_sync_refused_until_setup_is_done(web: Web) -> None:
    signup(web.client, "early@shop.test", "Early Shop")
    connect_shopify(web, web.client)
    token = api_token(web.client)
    [conn] = web.client.get("/api/v1/connections", headers=bearer(token)).json()
    answer = web.client.post(f"/api/v1/connections/{conn['id']}/sync", json={}, headers=bearer(token))
    assert answer.status_code == 409
    assert "QuickBooks" in answer.json()["detail"]
    bad = web.client.post(f"/api/v1/connections/{conn['id']}/sync", json={"since": "x"}, headers=bearer(token))
    assert bad.status_code == 422


def test_preview(web: Web) -> None:
    signup(web.client, "pre@shop.test", "Preview Shop")
    token = api_token(web.client)
    order = generate_orders(1, seed=3)[0]
    answer = web.client.post(
        "/api/v1/preview", json={"order": order, "transaction_type": "invoice"}, headers=bearer(token)
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["order"]["number"] == str(order["order_number"])
    assert body["documents"][0]["kind"] == "Invoice"
    assert body["documents"][0]["payload"]["Line"]
    bad = web.client.post("/api/v1/preview", json={"order": {"nothing": 1}}, headers=bearer(token))
    assert bad.status_code == 422
    unknown = web.client.post("/api/v1/preview", json={"order": order, "channel": "nope"}, headers=bearer(token))
    assert unknown.status_code == 422


def test_openapi_documents_the_api(web: Web) -> None:
    schema = web.client.get("/api/openapi.json").json()
    paths = schema["paths"]
    for path in (
        "/api/v1/company",
        "/api/v1/connections",
        "/api/v1/connections/{connection_id}/settings",
        "/api/v1/connections/{connection_id}/settings/history",
        "/api/v1/connections/{connection_id}/sync",
        "/api/v1/orders",
        "/api/v1/orders/{order_id}",
        "/api/v1/orders/{order_id}/retry",
        "/api/v1/runs",
        "/api/v1/runs/{run_id}",
        "/api/v1/jobs/{job_id}",
        "/api/v1/preview",
    ):
        assert path in paths, path
    assert {"OrderOut", "RunOut", "JobOut", "ChannelSettings", "SettingsOut"} <= set(schema["components"]["schemas"])
    assert not any(p.startswith("/connections") or p.startswith("/account") for p in paths)
