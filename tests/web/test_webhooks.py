"""Webhooks: Shopify (HMAC on the raw body, dedupe on the webhook id, one order queued) and QuickBooks Online
(verifier token; legacy and CloudEvents payloads recorded); the sandboxes' subscriptions and deliveries."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select
from webtools import Web, connect_qbo, connect_shopify, csrf, signup

from ledgerlink.domain.catalog import CatalogQuery
from ledgerlink.domain.defaults import suggest_accounts
from ledgerlink.domain.settings import ChannelSettings, Schedule, ScheduleKind
from ledgerlink.sandbox.shopify.webhooks import BACKOFF_BASE_SECONDS
from ledgerlink.store.models import BooksEvent, Connection, StoredOrder, SyncJob, WebhookReceipt
from ledgerlink.sync.engine import save_settings
from ledgerlink.sync.jobs import drain
from ledgerlink.sync.webhooks import (
    SHOPIFY_TOPICS,
    WebhookSetupError,
    parse_qbo_payload,
    register_shopify_webhooks,
    set_webhook_secret,
    sign,
    unregister_shopify_webhooks,
    verify,
)

pytestmark = pytest.mark.integration

VERIFIER = "qbo-verifier-token-for-tests"


@pytest.fixture
def hooked(web: Web) -> tuple[Web, int, str]:
    """A company with QuickBooks and Shopify connected, the wizard's accounts chosen and webhooks registered
    (what the Shopify connect route does once it stores the API secret key): (web, channel id, token)."""
    signup(web.client, "owner@hooks.test", "Hooks Co")
    connect_qbo(web, web.client)
    connect_shopify(web, web.client)
    with web.app.db.session() as session:
        channel = session.scalars(select(Connection).where(Connection.kind == "shopify")).one()
        books = session.get(Connection, channel.books_id)
        assert books is not None
        channel_id = channel.id
    adapter = web.app.adapters.books(books)
    try:
        accounts = suggest_accounts(adapter.catalog(CatalogQuery()))
    finally:
        adapter.close()
    with web.app.db.session() as session:
        save_settings(session, channel_id, ChannelSettings(accounts=accounts), changed_by="test")
        stored = session.get(Connection, channel_id)
        assert stored is not None
        set_webhook_secret(web.app.box, stored, web.shop.webhook_secret)
        assert register_shopify_webhooks(web.app, stored) == list(SHOPIFY_TOPICS)
        token = str(stored.config["webhook_token"])
    web.app.settings = web.app.settings.model_copy(update={"qbo_verifier_token": SecretStr(VERIFIER)})
    return web, channel_id, token


def post_shopify(
    web: Web,
    token: str,
    payload: dict[str, Any],
    *,
    topic: str = "orders/updated",
    secret: str | None = None,
    webhook_id: str | None = None,
    signature: str | None = None,
    shop: str | None = None,
    omit_signature: bool = False,
) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": shop or web.shop.shop,
        "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
        "X-Shopify-API-Version": "2025-01",
    }
    if not omit_signature:
        headers["X-Shopify-Hmac-Sha256"] = signature or sign(body, secret or web.shop.webhook_secret)
    answer: httpx.Response = web.client.post(f"/webhooks/shopify/{token}", content=body, headers=headers)
    return answer


def post_qbo(web: Web, payload: Any, *, token: str = VERIFIER, signature: str | None = None) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "intuit-signature": signature or sign(body, token)}
    answer: httpx.Response = web.client.post("/webhooks/qbo", content=body, headers=headers)
    return answer


def jobs(web: Web) -> list[SyncJob]:
    with web.app.db.session() as session:
        return list(session.scalars(select(SyncJob).order_by(SyncJob.id)))


def receipts(web: Web) -> list[WebhookReceipt]:
    with web.app.db.session() as session:
        return list(session.scalars(select(WebhookReceipt).order_by(WebhookReceipt.id)))


def books_events(web: Web) -> list[BooksEvent]:
    with web.app.db.session() as session:
        return list(session.scalars(select(BooksEvent).order_by(BooksEvent.id)))


def a_paid_order(web: Web) -> dict[str, Any]:
    return next(o for o in web.shop.orders.values() if o["financial_status"] == "paid")


# -- signatures ----------------------------------------------------------------------------------------------


def test_signature_is_base64_hmac_sha256_of_the_raw_body() -> None:
    # Shopify's documented example shape: base64(HMAC-SHA256(body, secret)), compared in constant time.
    body = b'{"id":1,"note":"caf\xc3\xa9"}'
    good = sign(body, "s3cret")
    assert verify(body, "s3cret", good)
    assert verify(body, "s3cret", f" {good}\n")  # header whitespace is not part of the signature
    assert not verify(body + b" ", "s3cret", good)  # the raw body, byte for byte: re-serialised JSON fails
    assert not verify(body, "other", good)
    assert not verify(body, "s3cret", None)
    assert not verify(body, "", sign(body, ""))  # no secret configured: nothing verifies


# -- Shopify -------------------------------------------------------------------------------------------------


def test_registration_subscribes_the_five_topics_once(hooked: tuple[Web, int, str]) -> None:
    web, channel_id, token = hooked
    address = f"{web.settings.public_url}/webhooks/shopify/{token}"
    subs = web.shop.webhooks.subscriptions()
    assert sorted((s.topic, s.address) for s in subs) == sorted((t, address) for t in SHOPIFY_TOPICS)
    assert len(token) >= 40
    with web.app.db.session() as session:
        channel = session.get(Connection, channel_id)
        assert channel is not None
        assert register_shopify_webhooks(web.app, channel) == list(SHOPIFY_TOPICS)  # again: nothing doubled
        assert web.app.box.open(channel.secrets)["webhook_secret"] == web.shop.webhook_secret
        assert "webhook_secret" not in json.dumps(channel.config)  # the secret is sealed, never in config
    assert len(web.shop.webhooks.subscriptions()) == len(SHOPIFY_TOPICS)


def test_a_new_address_replaces_our_old_subscriptions(hooked: tuple[Web, int, str]) -> None:
    web, channel_id, old = hooked
    with web.app.db.session() as session:
        channel = session.get(Connection, channel_id)
        assert channel is not None
        channel.config = {k: v for k, v in channel.config.items() if k != "webhook_token"}
        register_shopify_webhooks(web.app, channel)
        new = str(channel.config["webhook_token"])
    assert new != old
    assert {s.address.rsplit("/", 1)[-1] for s in web.shop.webhooks.subscriptions()} == {new}


def test_another_connection_to_the_same_store_keeps_its_subscriptions(hooked: tuple[Web, int, str]) -> None:
    web, _channel_id, first = hooked
    other = web.new_client()
    signup(other, "second@hooks.test", "Second Co")
    connect_shopify(web, other)
    with web.app.db.session() as session:
        second = session.scalars(select(Connection).where(Connection.kind == "shopify").order_by(Connection.id))
        conn = list(second)[-1]
        set_webhook_secret(web.app.box, conn, web.shop.webhook_secret)
        register_shopify_webhooks(web.app, conn)
        token = str(conn.config["webhook_token"])
    by_token = Counter(s.address.rsplit("/", 1)[-1] for s in web.shop.webhooks.subscriptions())
    assert by_token == {first: len(SHOPIFY_TOPICS), token: len(SHOPIFY_TOPICS)}
    with web.app.db.session() as session:
        conn = session.scalars(select(Connection).where(Connection.config["webhook_token"].as_string() == token)).one()
        assert unregister_shopify_webhooks(web.app, conn) == len(SHOPIFY_TOPICS)
    assert {s.address.rsplit("/", 1)[-1] for s in web.shop.webhooks.subscriptions()} == {first}


def test_registration_needs_the_api_secret_key(web: Web) -> None:
    signup(web.client, "nosecret@hooks.test", "No Secret Co")
    creds = web.shop.credentials(web.shop_server.base_url)
    answer = web.client.post(
        "/connections/shopify",
        data={
            "shop": creds["shop"],
            "access_token": creds["access_token"],
            "base_url": creds["base_url"],
            "webhook_secret": "",
            "csrf_token": csrf(web.client, "/connections"),
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    with web.app.db.session() as session:
        channel = session.scalars(select(Connection).where(Connection.kind == "shopify")).one()
        with pytest.raises(WebhookSetupError, match="API secret key"):
            register_shopify_webhooks(web.app, channel)
    assert web.shop.webhooks.subscriptions() == []


def test_a_signed_webhook_queues_a_sync_of_that_one_order(hooked: tuple[Web, int, str]) -> None:
    web, channel_id, token = hooked
    order = a_paid_order(web)
    answer = post_shopify(web, token, order, topic="orders/paid")
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "queued"
    [job] = jobs(web)
    assert (job.connection_id, job.trigger, job.options, job.state) == (
        channel_id,
        "webhook",
        {"orders": [str(order["order_number"])]},
        "queued",
    )
    [receipt] = receipts(web)
    assert (receipt.topic, receipt.order_number, receipt.channel_order_id, receipt.job_id) == (
        "orders/paid",
        str(order["order_number"]),
        str(order["id"]),
        job.id,
    )


def test_the_same_delivery_twice_is_recorded_and_queued_once(hooked: tuple[Web, int, str]) -> None:
    web, _channel_id, token = hooked
    order = a_paid_order(web)
    first = post_shopify(web, token, order, webhook_id="wh-1")
    again = post_shopify(web, token, order, webhook_id="wh-1")
    assert first.json()["status"] == "queued"
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    # Another delivery (another id) of the same order while its job still waits: the job is not doubled.
    other = post_shopify(web, token, order, topic="orders/paid", webhook_id="wh-2")
    assert other.json() == {"status": "queued", "job": first.json()["job"]}
    assert len(jobs(web)) == 1
    assert [r.webhook_id for r in receipts(web)] == ["wh-1", "wh-2"]


@pytest.mark.parametrize(
    "forgery",
    ["bad signature", "missing signature", "wrong secret", "wrong connection token", "another shop", "body changed"],
)
def test_an_unverified_webhook_gets_401_and_changes_nothing(hooked: tuple[Web, int, str], forgery: str) -> None:
    web, _channel_id, token = hooked
    order = a_paid_order(web)
    if forgery == "bad signature":
        answer = post_shopify(web, token, order, signature="bm90IGEgc2lnbmF0dXJl")
    elif forgery == "missing signature":
        answer = post_shopify(web, token, order, omit_signature=True)
    elif forgery == "wrong secret":
        answer = post_shopify(web, token, order, secret="shpss_someone_else")
    elif forgery == "wrong connection token":
        answer = post_shopify(web, token[:-4] + "AAAA", order)
    elif forgery == "another shop":
        # Signed with the app's secret (shared by every store of the app), but from another store.
        answer = post_shopify(web, token, order, shop="someone-else.myshopify.com")
    else:
        signature = sign(json.dumps(order).encode(), web.shop.webhook_secret)
        answer = post_shopify(web, token, {**order, "total_price": "0.01"}, signature=signature)
    assert answer.status_code == 401
    assert jobs(web) == []
    assert receipts(web) == []


def test_a_refund_queues_its_stored_order_or_a_sync_of_changes(hooked: tuple[Web, int, str]) -> None:
    web, channel_id, token = hooked
    order = a_paid_order(web)
    refund = {"id": 9001, "order_id": order["id"], "created_at": order["created_at"], "refund_line_items": []}
    unknown = post_shopify(web, token, refund, topic="refunds/create")
    assert unknown.json()["status"] == "queued"
    assert [j.options for j in jobs(web)] == [{}]  # never pulled yet: the pull by updated_at brings it
    with web.app.db.session() as session:
        session.add(
            StoredOrder(
                company_id=session.get(Connection, channel_id).company_id,  # type: ignore[union-attr]
                connection_id=channel_id,
                channel_order_id=str(order["id"]),
                number=str(order["order_number"]),
                content_hash="x",
                raw=order,
            )
        )
    known = post_shopify(web, token, {**refund, "id": 9002}, topic="refunds/create")
    assert known.json()["status"] == "queued"
    assert [j.options for j in jobs(web)] == [{}, {"orders": [str(order["order_number"])]}]


def web_books(web: Web, channel_id: int) -> Connection:
    with web.app.db.session() as session:
        channel = session.get(Connection, channel_id)
        assert channel is not None
        assert channel.books_id is not None
        books = session.get(Connection, channel.books_id)
        assert books is not None
        return books


def test_webhooks_wait_for_the_wizard_and_respect_a_manual_schedule(hooked: tuple[Web, int, str]) -> None:
    web, channel_id, token = hooked
    with web.app.db.session() as session:
        save_settings(session, channel_id, ChannelSettings(), changed_by="test")  # no accounts chosen
    unfinished = post_shopify(web, token, a_paid_order(web))
    assert unfinished.json() == {"status": "ignored", "reason": "the setup wizard is not finished"}
    adapter = web.app.adapters.books(web_books(web, channel_id))
    try:
        accounts = suggest_accounts(adapter.catalog(CatalogQuery()))
    finally:
        adapter.close()
    manual = ChannelSettings(accounts=accounts, schedule=Schedule(kind=ScheduleKind.MANUAL))
    with web.app.db.session() as session:
        save_settings(session, channel_id, manual, changed_by="test")
    by_hand = post_shopify(web, token, a_paid_order(web))
    assert by_hand.json() == {"status": "ignored", "reason": "the sync is set to run only when started by hand"}
    assert jobs(web) == []
    assert [r.outcome for r in receipts(web)] == ["ignored", "ignored"]


def test_other_topics_and_bad_bodies(hooked: tuple[Web, int, str]) -> None:
    web, _channel_id, token = hooked
    uninstalled = post_shopify(web, token, {"id": 1}, topic="app/uninstalled")
    assert uninstalled.json()["status"] == "ignored"
    body = b"not json"
    headers = {"X-Shopify-Hmac-Sha256": sign(body, web.shop.webhook_secret), "X-Shopify-Topic": "orders/create"}
    assert web.client.post(f"/webhooks/shopify/{token}", content=body, headers=headers).status_code == 400
    assert jobs(web) == []


def test_the_sandbox_delivers_on_change_and_the_order_syncs(hooked: tuple[Web, int, str]) -> None:
    web, _channel_id, _token = hooked
    web.shop.deliver_webhooks_with(web.client)
    order = a_paid_order(web)
    web.shop.update_order(order["id"], {"note": "leave at the door"})
    [attempt] = web.shop.webhooks.attempts
    assert (attempt.topic, attempt.status) == ("orders/updated", 200)
    [job] = jobs(web)
    assert job.options == {"orders": [str(order["order_number"])]}
    assert drain(web.app) == 1
    assert [str(e["DocNumber"]) for e in web.qbo.entities("SalesReceipt")] == [str(order["order_number"])]
    with web.app.db.session() as session:
        assert session.scalar(select(func.count()).select_from(StoredOrder)) == 1  # that one order only


def test_no_session_and_no_csrf_token_are_needed(hooked: tuple[Web, int, str]) -> None:
    web, _channel_id, token = hooked
    stranger = web.new_client()  # no cookies at all
    body = json.dumps(a_paid_order(web)).encode()
    answer = stranger.post(
        f"/webhooks/shopify/{token}",
        content=body,
        headers={
            "X-Shopify-Hmac-Sha256": sign(body, web.shop.webhook_secret),
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Webhook-Id": "fresh",
            "X-Shopify-Shop-Domain": web.shop.shop,
        },
    )
    assert answer.status_code == 200


# -- QuickBooks Online ---------------------------------------------------------------------------------------

LEGACY = {
    "eventNotifications": [
        {
            "realmId": "",  # filled in with the sandbox's realm
            "dataChangeEvent": {
                "entities": [
                    {"id": "1234", "operation": "Create", "name": "Invoice", "lastUpdated": "2025-09-08T20:52:31.657Z"},
                    {"id": "77", "operation": "Update", "name": "Item", "lastUpdated": "2025-09-08T20:53:01.000Z"},
                ]
            },
        }
    ]
}


def legacy(realm: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(json.dumps(LEGACY))
    document["eventNotifications"][0]["realmId"] = realm
    return document


def cloud_events(realm: str) -> list[dict[str, Any]]:
    return [
        {
            "specversion": "1.0",
            "id": "88cd52b0-0a5f-4ad8-bd30-4f1e3c3c0d11",
            "source": "intuit.dsnBgbseACLLRZNxo2dfc4evmEJdxde58xeeYcZliOU=",
            "type": "qbo.salesreceipt.voided.v1",
            "datacontenttype": "application/json",
            "time": "2025-11-12T10:00:00.000Z",
            "intuitentityid": "145",
            "intuitaccountid": realm,
            "data": {},
        },
        {
            "specversion": "1.0",
            "id": "0b6d1c7e-3f2a-4a59-8d1c-2c9f0d7a1e22",
            "source": "intuit.dsnBgbseACLLRZNxo2dfc4evmEJdxde58xeeYcZliOU=",
            "type": "qbo.creditmemo.created.v1",
            "time": "2025-11-12T10:00:01.000Z",
            "intuitentityid": "146",
            "intuitaccountid": realm,
            "data": {},
        },
    ]


def test_qbo_legacy_payload_is_verified_and_recorded(hooked: tuple[Web, int, str]) -> None:
    web, channel_id, _token = hooked
    books = web_books(web, channel_id)
    answer = post_qbo(web, legacy(web.qbo.realm_id))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "recorded", "recorded": 2, "duplicates": 0, "unknown_realms": []}
    rows = books_events(web)
    assert [(e.books_id, e.entity, e.entity_id, e.operation, e.source) for e in rows] == [
        (books.id, "Invoice", "1234", "Create", "legacy"),
        (books.id, "Item", "77", "Update", "legacy"),
    ]
    assert rows[0].occurred_at is not None
    assert rows[0].occurred_at.year == 2025
    assert all(e.processed_at is None for e in rows)
    again = post_qbo(web, legacy(web.qbo.realm_id))  # Intuit retries: nothing recorded twice
    assert again.json()["duplicates"] == 2
    assert len(books_events(web)) == 2
    assert jobs(web) == []  # books events are recorded, not synced from here


def test_qbo_cloudevents_payload_is_verified_and_recorded(hooked: tuple[Web, int, str]) -> None:
    web, _channel_id, _token = hooked
    answer = post_qbo(web, cloud_events(web.qbo.realm_id))
    assert answer.json()["recorded"] == 2
    assert [(e.entity, e.entity_id, e.operation, e.source) for e in books_events(web)] == [
        ("SalesReceipt", "145", "Void", "cloudevents"),
        ("CreditMemo", "146", "Create", "cloudevents"),
    ]
    assert post_qbo(web, cloud_events(web.qbo.realm_id)).json()["duplicates"] == 2


@pytest.mark.parametrize("forgery", ["bad signature", "other token", "missing signature", "no token configured"])
def test_a_forged_qbo_webhook_gets_401_and_records_nothing(hooked: tuple[Web, int, str], forgery: str) -> None:
    web, _channel_id, _token = hooked
    payload = legacy(web.qbo.realm_id)
    if forgery == "bad signature":
        answer = post_qbo(web, payload, signature="Zm9yZ2Vk")
    elif forgery == "other token":
        answer = post_qbo(web, payload, token="not-the-verifier")
    elif forgery == "missing signature":
        answer = web.client.post("/webhooks/qbo", content=json.dumps(payload).encode())
    else:
        web.app.settings = web.app.settings.model_copy(update={"qbo_verifier_token": SecretStr("")})
        answer = post_qbo(web, payload, token="")
    assert answer.status_code == 401
    assert books_events(web) == []


def test_qbo_unknown_realm_and_bad_shapes(hooked: tuple[Web, int, str]) -> None:
    web, _channel_id, _token = hooked
    unknown = post_qbo(web, legacy("310687"))
    assert unknown.status_code == 200  # Intuit must not retry for a company we do not serve
    assert unknown.json()["unknown_realms"] == ["310687"]
    assert post_qbo(web, {"something": "else"}).status_code == 400
    assert post_qbo(web, [{"specversion": "1.0", "type": "nope"}]).status_code == 400
    assert books_events(web) == []


def test_parse_qbo_payload_shapes() -> None:
    [single] = parse_qbo_payload(cloud_events("1")[0])  # one CloudEvent, not in an array
    assert (single.entity, single.operation, single.event_id) == (
        "SalesReceipt",
        "Void",
        "ce:88cd52b0-0a5f-4ad8-bd30-4f1e3c3c0d11",
    )
    first, second = parse_qbo_payload(legacy("1"))
    assert first.event_id != second.event_id
    assert first.event_id.startswith("legacy:")


@pytest.mark.parametrize("shape", ["legacy", "cloudevents"])
def test_the_qbo_sandbox_reports_what_a_sync_posted(hooked: tuple[Web, int, str], shape: str) -> None:
    web, channel_id, _token = hooked
    web.qbo.webhooks.configure(f"{web.settings.public_url}/webhooks/qbo", VERIFIER, shape=shape)  # type: ignore[arg-type]
    web.qbo.webhooks.client = web.client
    order = a_paid_order(web)
    with web.app.db.session() as session:
        from ledgerlink.sync.jobs import enqueue

        channel = session.get(Connection, channel_id)
        assert channel is not None
        enqueue(session, channel, options={"orders": [str(order["order_number"])]})
    drain(web.app)
    [receipt] = web.qbo.entities("SalesReceipt")
    assert web.qbo.webhooks.pending >= 1
    [post] = web.qbo.webhooks.flush()
    assert (post.status, post.shape) == (200, shape)
    recorded = {(e.entity, e.entity_id, e.operation, e.source) for e in books_events(web)}
    assert ("SalesReceipt", receipt["Id"], "Create", shape) in recorded
    assert web.qbo.webhooks.flush() == []  # nothing pending any more


def test_the_qbo_sandbox_keeps_a_failed_batch_for_the_next_flush(hooked: tuple[Web, int, str]) -> None:
    web, _channel_id, _token = hooked
    web.qbo.webhooks.configure(f"{web.settings.public_url}/webhooks/qbo", "wrong-token")
    web.qbo.webhooks.client = web.client
    web.qbo.webhooks.changed("Invoice", {"Id": "5", "SyncToken": "1"}, None)
    [refused] = web.qbo.webhooks.flush()
    assert refused.status == 401
    assert web.qbo.webhooks.pending == 1
    web.qbo.webhooks.clear()
    assert books_events(web) == []


# -- the Shopify sandbox's webhook API -----------------------------------------------------------------------


def admin(web: Web) -> httpx.Client:
    creds = web.shop.credentials(web.shop_server.base_url)
    return httpx.Client(
        base_url=f"{creds['base_url']}/admin/api/{creds['api_version']}",
        headers={"X-Shopify-Access-Token": creds["access_token"]},
    )


def test_sandbox_subscriptions_api(web: Web) -> None:
    with admin(web) as api:
        made = api.post("/webhooks.json", json={"webhook": {"topic": "orders/create", "address": "https://a.test/h"}})
        assert made.status_code == 201
        hook = made.json()["webhook"]
        assert (hook["topic"], hook["address"], hook["format"]) == ("orders/create", "https://a.test/h", "json")
        twice = api.post("/webhooks.json", json={"webhook": {"topic": "orders/create", "address": "https://a.test/h"}})
        assert twice.status_code == 422
        assert "already been taken" in twice.json()["errors"]["address"][0]
        wrong = api.post("/webhooks.json", json={"webhook": {"topic": "orders/eaten", "address": "https://a.test/h"}})
        assert wrong.status_code == 422
        assert [h["id"] for h in api.get("/webhooks.json").json()["webhooks"]] == [hook["id"]]
        assert api.get("/webhooks.json", params={"topic": "orders/paid"}).json()["webhooks"] == []
        assert api.get("/webhooks/count.json").json() == {"count": 1}
        assert api.get(f"/webhooks/{hook['id']}.json").json()["webhook"]["id"] == hook["id"]
        assert api.delete(f"/webhooks/{hook['id']}.json").status_code == 200
        assert api.delete(f"/webhooks/{hook['id']}.json").status_code == 404
        assert api.get("/webhooks.json").json()["webhooks"] == []
        assert httpx.get(f"{web.shop_server.base_url}/admin/api/2025-01/webhooks.json").status_code == 401


def test_sandbox_delivery_headers_and_retries_with_backoff(web: Web) -> None:
    seen: list[httpx.Request] = []
    answers = iter([500, 503, 200])

    def receiver(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(next(answers))

    web.shop.webhooks.client = httpx.Client(transport=httpx.MockTransport(receiver))
    web.shop.webhooks.subscribe("orders/paid", "https://hooks.test/in")
    order = a_paid_order(web)
    [first] = web.shop.deliver("orders/paid", order["id"])
    assert first.status == 500
    [waiting] = web.shop.webhooks.pending
    first_wait = waiting.next_at
    assert web.shop.webhooks.retry_due() == []  # the backoff has not passed
    [second] = web.shop.webhooks.retry_due(force=True)
    assert second.status == 503
    [again] = web.shop.webhooks.pending
    assert again.next_at > first_wait
    assert web.shop.webhooks.backoff(2) == 2 * web.shop.webhooks.backoff(1) == 2 * BACKOFF_BASE_SECONDS / 60.0
    [third] = web.shop.webhooks.retry_due(force=True)
    assert third.ok
    assert web.shop.webhooks.pending == []
    assert len({r.headers["X-Shopify-Webhook-Id"] for r in seen}) == 1  # the same id on every retry
    request = seen[0]
    assert request.headers["X-Shopify-Topic"] == "orders/paid"
    assert request.headers["X-Shopify-Shop-Domain"] == web.shop.shop
    assert verify(request.content, web.shop.webhook_secret, request.headers["X-Shopify-Hmac-Sha256"])
    assert json.loads(request.content)["id"] == order["id"]


def test_sandbox_removes_a_subscription_after_eight_failures(web: Web) -> None:
    web.shop.webhooks.client = httpx.Client(transport=httpx.MockTransport(lambda _r: httpx.Response(500)))
    web.shop.webhooks.subscribe("orders/updated", "https://hooks.test/down")
    order = a_paid_order(web)
    for _ in range(8):
        web.shop.update_order(order["id"], {"note": str(uuid.uuid4())})
    assert web.shop.webhooks.subscriptions() == []
    assert web.shop.webhooks.pending == []
