"""A webhook storm: the same Shopify event delivered 10 times, concurrently and out of order with the scheduled
poll, posts the order once; forged deliveries queue nothing; a changed order delivered by webhook queues one job.

The web app is served on a real port and the deliveries are the sandbox's own (captured as Shopify sent them,
then replayed), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from ledgerlink.sandbox.server import RunningServer, serve
from ledgerlink.sandbox.shopify import generate_orders
from ledgerlink.store.models import Connection, Posting, PostingState, StoredOrder, SyncJob, WebhookReceipt
from ledgerlink.sync.engine import RunOptions
from ledgerlink.sync.jobs import drain
from ledgerlink.sync.webhooks import SHOPIFY_TOPICS, register_shopify_webhooks, set_webhook_secret, sign
from ledgerlink.web.app import create_app

StackFactory = Callable[..., Any]


@dataclass(frozen=True)
class Captured:
    """One delivery as the Shopify sandbox POSTed it."""

    url: str
    body: bytes
    headers: dict[str, str]

    @property
    def topic(self) -> str:
        return self.headers["x-shopify-topic"]

    @property
    def order_id(self) -> int:
        payload = json.loads(self.body)
        return int(payload.get("order_id") or payload["id"])


@dataclass
class Hooked:
    stack: Any
    server: RunningServer
    captured: list[Captured]

    def replay(self, deliveries: list[Captured], *, threads: int = 8) -> list[int]:
        """POST each delivery (concurrently, in the given order of submission); returns the statuses."""

        def post(delivery: Captured) -> int:
            with httpx.Client(timeout=30.0) as client:
                return client.post(delivery.url, content=delivery.body, headers=delivery.headers).status_code

        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(post, deliveries))

    def take(self) -> list[Captured]:
        taken = list(self.captured)
        self.captured.clear()
        return taken

    def receipts(self) -> list[WebhookReceipt]:
        with self.stack.app.db.session() as session:
            return list(session.scalars(select(WebhookReceipt).order_by(WebhookReceipt.id)))

    def webhook_jobs(self) -> list[SyncJob]:
        with self.stack.app.db.session() as session:
            return list(session.scalars(select(SyncJob).where(SyncJob.trigger == "webhook").order_by(SyncJob.id)))

    def poll(self) -> None:
        """The scheduled sync: everything changed since the cursor."""
        report = self.stack.app.engine().run(self.stack.channel_id, RunOptions(trigger="schedule"))
        assert report.error == ""

    def receipts_in_books(self) -> Counter[str]:
        return Counter(str(e.get("DocNumber")) for e in self.stack.qbo.entities("SalesReceipt"))


@pytest.fixture
def hooked(stack_factory: StackFactory, db_url: str) -> Iterator[Hooked]:
    stack = stack_factory(db_url, orders=12)
    server = serve(create_app(stack.app))
    captured: list[Captured] = []

    def capture(request: httpx.Request) -> httpx.Response:
        # Aim at the served app: the registered address is public_url + the path.
        headers = {k: v for k, v in request.headers.items() if k not in {"content-length", "host"}}
        captured.append(Captured(str(request.url), request.content, headers))
        return httpx.Response(200)

    try:
        stack.app.settings = stack.app.settings.model_copy(update={"public_url": server.base_url})
        with stack.app.db.session() as session:
            channel = session.get(Connection, stack.channel_id)
            assert channel is not None
            set_webhook_secret(stack.app.box, channel, stack.shop.webhook_secret)
            assert register_shopify_webhooks(stack.app, channel) == list(SHOPIFY_TOPICS)
        stack.shop.webhooks.client = httpx.Client(transport=httpx.MockTransport(capture))
        hooked = Hooked(stack, server, captured)
        hooked.poll()  # the store's existing orders are in the books before the storm
        yield hooked
    finally:
        server.stop()


def new_paid_orders(count: int, base: int) -> list[dict[str, Any]]:
    """Orders the store has not had yet (fresh ids and numbers), paid at checkout."""
    fresh = [o for o in generate_orders(30, seed=97) if o["financial_status"] == "paid"][:count]
    for index, order in enumerate(fresh):
        order["id"] = 7_700_000_000_000 + base + index
        order["order_number"] = base + index
        order["name"] = f"#{base + index}"
    return fresh


def posted_postings(hooked: Hooked, number: str) -> list[Posting]:
    with hooked.stack.app.db.session() as session:
        order = session.scalars(select(StoredOrder).where(StoredOrder.number == number)).one()
        return list(session.scalars(select(Posting).where(Posting.order_id == order.id)))


def test_ten_deliveries_out_of_order_with_a_poll_post_once(hooked: Hooked) -> None:
    first, second = new_paid_orders(2, base=5001)
    hooked.stack.shop.add_orders([first, second])
    deliveries = hooked.take()
    assert sorted((d.topic, d.order_id) for d in deliveries) == sorted(
        (topic, order["id"]) for order in (first, second) for topic in ("orders/create", "orders/paid")
    )
    storm_a = [d for d in deliveries if d.order_id == first["id"]] * 10
    random.Random(5).shuffle(storm_a)  # orders/paid before orders/create, and so on
    # Order A: the poll runs in the middle of its storm and posts it first; the webhook's job finds it done.
    statuses = hooked.replay(storm_a[:10])
    hooked.poll()
    statuses += hooked.replay(storm_a[10:])
    assert statuses == [200] * 20
    drain(hooked.stack.app)
    # Order B: the webhook's job posts it first; the poll after it finds nothing to do.
    storm_b = [d for d in deliveries if d.order_id == second["id"]] * 10
    random.Random(6).shuffle(storm_b)
    assert hooked.replay(storm_b) == [200] * 20
    drain(hooked.stack.app)
    hooked.poll()
    drain(hooked.stack.app)

    in_books = hooked.receipts_in_books()
    assert in_books["5001"] == 1
    assert in_books["5002"] == 1
    assert max(in_books.values()) == 1  # nothing at all was posted twice
    for number in ("5001", "5002"):
        [posting] = posted_postings(hooked, number)
        assert posting.state == PostingState.POSTED
    # Each delivery was accepted once however often it came (the unique webhook id), and queued one job per
    # order (two deliveries of one order while its job waits share it; PostgreSQL may race to two).
    delivered = sorted(d.headers["x-shopify-webhook-id"] for d in deliveries)
    assert sorted(r.webhook_id for r in hooked.receipts()) == delivered
    per_order = Counter(tuple(j.options["orders"]) for j in hooked.webhook_jobs())
    assert set(per_order) == {("5001",), ("5002",)}
    if hooked.stack.db_url.startswith("sqlite"):
        assert per_order == Counter({("5001",): 1, ("5002",): 1})
    else:
        assert max(per_order.values()) <= 2


def test_one_event_ten_times_at_once_is_accepted_once(hooked: Hooked) -> None:
    [order] = new_paid_orders(1, base=6001)
    hooked.stack.shop.add_orders([order])
    create = next(d for d in hooked.take() if d.topic == "orders/create")
    assert hooked.replay([create] * 10, threads=10) == [200] * 10
    [receipt] = hooked.receipts()
    [job] = hooked.webhook_jobs()
    assert (receipt.webhook_id, receipt.job_id, job.options) == (
        create.headers["x-shopify-webhook-id"],
        job.id,
        {"orders": ["6001"]},
    )
    drain(hooked.stack.app)
    assert hooked.receipts_in_books()["6001"] == 1


def test_forged_deliveries_are_refused_and_queue_nothing(hooked: Hooked) -> None:
    [order] = new_paid_orders(1, base=7001)
    hooked.stack.shop.add_orders([order])
    genuine = next(d for d in hooked.take() if d.topic == "orders/create")
    wrong_secret = Captured(
        genuine.url, genuine.body, {**genuine.headers, "x-shopify-hmac-sha256": sign(genuine.body, "guessed")}
    )
    tampered = Captured(genuine.url, genuine.body.replace(b'"paid"', b'"refunded"', 1), genuine.headers)
    unsigned = Captured(genuine.url, genuine.body, {k: v for k, v in genuine.headers.items() if "hmac" not in k})
    assert tampered.body != genuine.body
    assert hooked.replay([wrong_secret, tampered, unsigned] * 10) == [401] * 30
    assert hooked.receipts() == []
    assert hooked.webhook_jobs() == []
    # The genuine one still goes through afterwards: refusals left no trace that would dedupe it.
    assert hooked.replay([genuine]) == [200]
    assert len(hooked.webhook_jobs()) == 1


def test_a_changed_order_delivered_by_webhook_queues_one_job(hooked: Hooked) -> None:
    number = next(n for n in hooked.receipts_in_books())
    order = next(o for o in hooked.stack.shop.orders.values() if str(o["order_number"]) == number)
    hooked.stack.shop.update_order(order["id"], {"note": "gift wrap please", "tags": "vip"})
    [updated] = hooked.take()
    assert (updated.topic, updated.order_id) == ("orders/updated", order["id"])
    assert hooked.replay([updated] * 10) == [200] * 10
    [job] = hooked.webhook_jobs()
    assert job.options == {"orders": [number]}
    assert drain(hooked.stack.app) == 1
    with hooked.stack.app.db.session() as session:
        stored = session.scalars(select(StoredOrder).where(StoredOrder.number == number)).one()
        assert stored.revision == 2  # the change arrived through the webhook's sync of that one order
    hooked.poll()
    assert hooked.receipts_in_books()[number] == 1
    postings = posted_postings(hooked, number)
    assert [p.state for p in postings if p.operation == "create"] == [PostingState.POSTED]
    assert PostingState.FAILED not in {p.state for p in postings}


def test_the_webhook_job_and_the_poll_running_at_once_post_once(hooked: Hooked) -> None:
    orders = new_paid_orders(3, base=8001)
    hooked.stack.shop.add_orders(orders)
    storm = hooked.take() * 10
    random.Random(8).shuffle(storm)
    assert hooked.replay(storm) == [200] * len(storm)
    assert len(hooked.webhook_jobs()) >= 1
    # A worker runs the webhooks' jobs while the scheduler's poll runs beside it: both see the new orders.
    with ThreadPoolExecutor(2) as pool:
        worker = pool.submit(drain, hooked.stack.app)
        poller = pool.submit(hooked.poll)
        worker.result()
        poller.result()
    drain(hooked.stack.app)
    in_books = hooked.receipts_in_books()
    assert [in_books[str(o["order_number"])] for o in orders] == [1, 1, 1]
    assert max(in_books.values()) == 1
