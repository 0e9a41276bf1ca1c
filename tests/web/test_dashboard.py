"""The dashboard: channel cards, Sync now (validated, queued once), the live progress JSON."""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from webtools import Web, connect_qbo, connect_shopify, csrf, signup

from ledgerlink.domain.catalog import CatalogQuery
from ledgerlink.domain.defaults import suggest_accounts
from ledgerlink.domain.settings import ChannelSettings
from ledgerlink.store.models import Connection, Membership, StoredOrder, SyncJob, SyncRun, User
from ledgerlink.sync.engine import save_settings
from ledgerlink.sync.jobs import drain

pytestmark = pytest.mark.integration

CHANNEL = "shopify"  # the name the Connections page gives the first Shopify store


def company_id_of(web: Web, email: str) -> int:
    with web.app.db.session() as session:
        found = session.execute(
            select(Membership.company_id).join(User, User.id == Membership.user_id).where(User.email == email)
        ).scalar_one()
        return int(found)


def connect_sandboxes(web: Web, client: TestClient, email: str, settings: ChannelSettings | None = None) -> int:
    """Connect QuickBooks (real OAuth flow) and Shopify through the Connections pages, then choose the accounts
    the wizard suggests; returns the channel connection's id."""
    connect_qbo(web, client)
    connect_shopify(web, client)
    company_id = company_id_of(web, email)
    with web.app.db.session() as session:
        channel = session.scalars(
            select(Connection).where(Connection.company_id == company_id, Connection.role == "channel")
        ).one()
        books = session.get(Connection, channel.books_id)
        assert books is not None
        channel_id = int(channel.id)
    adapter = web.app.adapters.books(books)
    try:
        catalog = adapter.catalog(CatalogQuery())
    finally:
        adapter.close()
    chosen = (settings or ChannelSettings()).model_copy(update={"accounts": suggest_accounts(catalog)})
    with web.app.db.session() as session:
        save_settings(session, channel_id, chosen, changed_by=email)
    return channel_id


def signed_up_with_channel(
    web: Web,
    email: str = "owner@shop.test",
    company: str = "Shop One",
    settings: ChannelSettings | None = None,
    client: TestClient | None = None,
) -> int:
    """A new company with QuickBooks and Shopify (the sandboxes) connected and its settings complete."""
    client = client or web.client
    signup(client, email, company)
    return connect_sandboxes(web, client, email, settings)


def sync_now(client: TestClient, channel_id: int, **fields: str) -> httpx.Response:
    token = csrf(client, "/")
    return client.post(f"/connections/{channel_id}/sync", data={"csrf_token": token, **fields}, follow_redirects=False)


def test_start_panel_without_connections(web: Web) -> None:
    signup(web.client, "new@shop.test", "New Shop")
    page = web.client.get("/")
    assert page.status_code == 200
    assert 'href="/connections"' in page.text
    assert 'href="/wizard"' in page.text
    assert '/sync"' not in page.text
    assert "start-panel" in page.text


def test_dashboard_numbers_after_a_drained_sync(web: Web) -> None:
    channel_id = signed_up_with_channel(web)
    page = web.client.get("/")
    assert CHANNEL in page.text
    assert "never — press Sync now" in page.text
    answer = sync_now(web.client, channel_id)
    assert answer.status_code == 303
    queued = web.client.get("/")
    assert "queued" in queued.text
    assert 'data-progress-url="/jobs/' in queued.text
    assert 'data-reload-when-done="1"' in queued.text
    assert drain(web.app) == 1
    with web.app.db.session() as session:
        posted = session.scalar(select(StoredOrder).where(StoredOrder.state == "posted").limit(1))
        assert posted is not None
        count = len(session.scalars(select(StoredOrder.id).where(StoredOrder.state == "posted")).all())
        failed = len(session.scalars(select(StoredOrder.id).where(StoredOrder.state == "failed")).all())
    page = web.client.get("/")
    assert "data-progress-url" not in page.text
    stats = page.text.split('class="stats"')[1]
    assert f'<div class="stat">{count}</div><div class="stat-label">orders synced today' in stats
    assert f'<div class="stat">{count}</div><div class="stat-label">orders synced this month' in stats
    assert failed >= 2  # the sandbox seeds two broken orders
    assert f'<div class="stat bad">{failed}</div>' in stats
    assert f"/activity?tab=errors&amp;connection={channel_id}" in page.text
    assert "succeeded" in page.text or "partial" in page.text
    assert "every 15 min" in page.text


def test_sync_now_pressed_twice_queues_one_job(web: Web) -> None:
    channel_id = signed_up_with_channel(web)
    assert sync_now(web.client, channel_id).status_code == 303
    assert sync_now(web.client, channel_id).status_code == 303
    with web.app.db.session() as session:
        jobs = session.scalars(select(SyncJob)).all()
        assert len(jobs) == 1
        assert jobs[0].requested_by == "owner@shop.test"
        assert jobs[0].trigger == "manual"


def test_sync_now_validates_dates_and_order_numbers(web: Web) -> None:
    channel_id = signed_up_with_channel(web)
    bad = sync_now(web.client, channel_id, since="31/01/2025", until="2025-01-01", orders="")
    assert bad.status_code == 422
    assert "use a date like 2025-01-31" in bad.text
    reversed_range = sync_now(web.client, channel_id, since="2025-02-01", until="2025-01-01")
    assert reversed_range.status_code == 422
    assert "the end date is before the start date" in reversed_range.text
    wrong_number = sync_now(web.client, channel_id, orders="1001, 10$02")
    assert wrong_number.status_code == 422
    assert "is not an order number" in wrong_number.text
    both = sync_now(web.client, channel_id, since="2025-01-01", orders="1001")
    assert both.status_code == 422
    assert "not both" in both.text
    ok = sync_now(web.client, channel_id, orders="#1001, 1002")
    assert ok.status_code == 303
    ranged = sync_now(web.client, channel_id, since="2025-01-01", until="2025-01-31")
    assert ranged.status_code == 303
    with web.app.db.session() as session:
        options = [j.options for j in session.scalars(select(SyncJob).order_by(SyncJob.id))]
    assert options == [{"orders": ["1001", "1002"]}, {"since": "2025-01-01", "until": "2025-01-31"}]


def test_sync_now_refuses_incomplete_settings(web: Web) -> None:
    channel_id = signed_up_with_channel(web)
    with web.app.db.session() as session:
        save_settings(session, channel_id, ChannelSettings())
    answer = sync_now(web.client, channel_id)
    assert answer.status_code == 422
    assert "Finish the settings first" in answer.text
    with web.app.db.session() as session:
        assert session.scalars(select(SyncJob)).first() is None


def test_progress_json(web: Web) -> None:
    channel_id = signed_up_with_channel(web)
    sync_now(web.client, channel_id)
    with web.app.db.session() as session:
        job = session.scalars(select(SyncJob)).one()
        job_id, company_id = job.id, job.company_id
    queued = web.client.get(f"/jobs/{job_id}/progress").json()
    assert queued == {"percent": 0, "text": "Waiting to start…", "finished": False}
    # A running job whose run is posting: 50 % + half of the posting share.
    with web.app.db.session() as session:
        run = SyncRun(
            company_id=company_id,
            connection_id=channel_id,
            trigger="manual",
            counts={"stage": "push", "pulled": 40, "orders_planned": 20, "postings_planned": 20, "posted": 10},
        )
        session.add(run)
        session.flush()
        row = session.get(SyncJob, job_id)
        assert row is not None
        row.state, row.run_id = "running", run.id
    running = web.client.get(f"/jobs/{job_id}/progress").json()
    assert running["percent"] == 75
    assert running["finished"] is False
    assert "10 of 20" in running["text"]
    with web.app.db.session() as session:
        run = session.scalars(select(SyncRun)).one()
        run.counts = {"stage": "pull", "pulled": 100}
    pulling = web.client.get(f"/jobs/{job_id}/progress").json()
    assert 0 < pulling["percent"] <= 30
    with web.app.db.session() as session:
        row = session.get(SyncJob, job_id)
        assert row is not None
        row.state = "queued"
        row.run_id = None
        session.delete(session.scalars(select(SyncRun)).one())
    drain(web.app)
    done = web.client.get(f"/jobs/{job_id}/progress").json()
    assert done["finished"] is True
    assert done["percent"] == 100
    assert "documents posted" in done["text"]


def test_other_companies_cannot_sync_or_see_progress(web: Web) -> None:
    channel_id = signed_up_with_channel(web)
    sync_now(web.client, channel_id)
    with web.app.db.session() as session:
        job_id = session.scalars(select(SyncJob.id)).one()
    other = web.new_client()
    signup(other, "other@shop.test", "Shop Two")
    assert other.get(f"/jobs/{job_id}/progress").status_code == 404
    token = csrf(other, "/")
    answer = other.post(f"/connections/{channel_id}/sync", data={"csrf_token": token})
    assert answer.status_code == 404
    with web.app.db.session() as session:
        assert len(session.scalars(select(SyncJob)).all()) == 1
    assert CHANNEL not in other.get("/").text
