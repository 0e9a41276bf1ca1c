"""The engine end to end on a real database (SQLite file and PostgreSQL) against both sandboxes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from ledgerlink.sandbox.qbo import Fault
from ledgerlink.store.models import Event, OrderState, Posting, PostingState, StoredOrder, SyncRun
from ledgerlink.sync.engine import RunOptions

StackFactory = Callable[..., Any]


def doc_numbers(stack: Any, kind: str = "SalesReceipt") -> Counter[str]:
    return Counter(str(e.get("DocNumber")) for e in stack.qbo.entities(kind))


def order_states(stack: Any) -> Counter[str]:
    with stack.app.db.session() as session:
        return Counter(s for (s,) in session.execute(select(StoredOrder.state)))


def test_sync_posts_every_eligible_order_once_and_totals_match(stack_factory: StackFactory, db_url: str) -> None:
    stack = stack_factory(db_url, orders=80)
    engine = stack.app.engine()
    first = engine.run(stack.channel_id)
    assert first.error == ""
    states = order_states(stack)
    # One sales receipt per posted order (refunded orders also get their refund receipts).
    assert states[OrderState.POSTED] == first.counts["posted_SalesReceipt"] > 50
    assert states[OrderState.FAILED] == 0
    numbers = doc_numbers(stack)
    assert len(numbers) == states[OrderState.POSTED]
    assert max(numbers.values()) == 1
    with stack.app.db.session() as session:
        channel_total = session.scalar(
            select(func.sum(StoredOrder.total)).where(StoredOrder.state == OrderState.POSTED)
        )
    books_total = sum((Decimal(str(e["TotalAmt"])) for e in stack.qbo.entities("SalesReceipt")), Decimal(0))
    assert channel_total == books_total

    second = engine.run(stack.channel_id)
    assert second.counts["posted"] == 0
    assert second.counts.get("postings_planned", 0) == 0
    assert doc_numbers(stack) == numbers
    with stack.app.db.session() as session:
        runs = session.scalars(select(SyncRun).order_by(SyncRun.id)).all()
        assert [r.state for r in runs] == ["succeeded", "succeeded"]


def test_invoices_with_payments_leave_nothing_owing(stack_factory: StackFactory, db_url: str) -> None:
    stack = stack_factory(db_url, orders=30)
    from ledgerlink.domain.settings import TransactionType
    from ledgerlink.sync.engine import load_settings, save_settings

    with stack.app.db.session() as session:
        settings = load_settings(session, stack.channel_id)
        save_settings(
            session, stack.channel_id, settings.model_copy(update={"transaction_type": TransactionType.INVOICE})
        )
    report = stack.app.engine().run(stack.channel_id)
    assert report.error == ""
    invoices = stack.qbo.entities("Invoice")
    payments = stack.qbo.entities("Payment")
    assert invoices
    assert len(payments) == len(invoices)
    assert all(Decimal(str(inv["Balance"])) == 0 for inv in invoices)


def test_bad_orders_fail_with_order_and_field_and_others_go_on(stack_factory: StackFactory, db_url: str) -> None:
    stack = stack_factory(db_url, orders=20, broken=True)
    # The demo's two broken orders: one total that does not add up, one line with quantity 0.
    from ledgerlink.sync.engine import load_settings, save_settings

    with stack.app.db.session() as session:
        settings = load_settings(session, stack.channel_id)
        everything = settings.orders.model_copy(update={"financial_statuses": []})
        save_settings(session, stack.channel_id, settings.model_copy(update={"orders": everything}))
    report = stack.app.engine().run(stack.channel_id)
    fields = {field for _number, field, _message in report.failures}
    assert "totals.total" in fields
    assert any(f.endswith(".quantity") for f in fields)
    assert report.counts["posted"] >= 15
    with stack.app.db.session() as session:
        failed = session.scalars(select(StoredOrder).where(StoredOrder.state == OrderState.FAILED)).all()
        assert {o.error_field for o in failed} == fields
        assert all(o.raw for o in failed)  # kept, not lost
        events = session.scalars(select(Event).where(Event.level == "error")).all()
        assert any("totals.total" in e.message for e in events)


def test_lost_answer_is_looked_up_not_resent(stack_factory: StackFactory, db_url: str) -> None:
    stack = stack_factory(db_url, orders=40)
    # QuickBooks does the work, then the answer is lost (gateway timeout) on two document batches.
    stack.qbo.inject(Fault(kind="lost_response", count=2, path_contains="batch"))
    report = stack.app.engine().run(stack.channel_id)
    assert report.error == ""
    numbers = doc_numbers(stack)
    assert max(numbers.values()) == 1
    assert sum(numbers.values()) == order_states(stack)[OrderState.POSTED]
    assert order_states(stack)[OrderState.FAILED] == 0


def test_a_look_up_that_fails_leaves_the_posting_to_be_looked_up_again(
    stack_factory: StackFactory, db_url: str
) -> None:
    """An answer is lost, and then QuickBooks cannot be reached for the look-up either: the run goes on with the
    other orders, the posting stays `sending` (never re-sent blind), and the next run looks it up and binds it."""
    stack = stack_factory(db_url, orders=40)
    from ledgerlink.books.base import PushResult, PushStatus
    from ledgerlink.domain.errors import RetryableError
    from ledgerlink.sync.engine import SyncEngine

    adapters = stack.app.adapters
    refused = {"left": 1000}
    lost = {"left": 1}

    class UnreachableFind:
        kind = "qbo"

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def push(self, requests: Any) -> Any:
            results = self.inner.push(requests)
            if lost["left"]:
                lost["left"] -= 1  # QuickBooks created the documents; the answer never came back
                return [PushResult(r.key, PushStatus.UNKNOWN, error="the answer was lost") for r in requests]
            return results

        def find(self, request: Any) -> Any:
            if refused["left"]:
                refused["left"] -= 1
                raise RetryableError("QuickBooks could not be reached for the look-up")
            return self.inner.find(request)

    engine = SyncEngine(
        stack.app.db, channel_factory=adapters.channel, books_factory=lambda conn: UnreachableFind(adapters.books(conn))
    )
    report = engine.run(stack.channel_id)
    assert report.error == ""
    assert report.counts["lookup_failed"] > 0
    with stack.app.db.session() as session:
        sending = session.scalar(select(func.count()).where(Posting.state == PostingState.SENDING))
    assert sending > 0
    assert sum(doc_numbers(stack).values()) == report.counts["posted_SalesReceipt"] + sending

    refused["left"] = 0
    again = engine.run(stack.channel_id)
    assert again.error == ""
    assert again.counts["recovered_bound"] == sending
    numbers = doc_numbers(stack)
    assert max(numbers.values()) == 1
    assert sum(numbers.values()) == order_states(stack)[OrderState.POSTED]
    assert order_states(stack)[OrderState.FAILED] == 0


def test_creates_without_an_answer_leave_the_orders_waiting_not_failed(
    stack_factory: StackFactory, db_url: str
) -> None:
    """QuickBooks does not answer while the customers and items are created: the orders that need them stay
    pending with the reason (the bookkeeper has nothing to fix), and the next pass posts them, once each."""
    stack = stack_factory(db_url, orders=30)
    from ledgerlink.domain.errors import RetryableError
    from ledgerlink.sync.engine import SyncEngine

    adapters = stack.app.adapters
    silent = {"on": True}

    class SilentEnsure:
        kind = "qbo"

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def ensure(self, needs: Any, catalog: Any) -> Any:
            found = self.inner.ensure(needs, catalog)  # QuickBooks creates them; the answer never comes
            if silent["on"]:
                raise RetryableError("the answer from QuickBooks Online was lost (ReadTimeout('timed out'))")
            return found

    engine = SyncEngine(
        stack.app.db, channel_factory=adapters.channel, books_factory=lambda conn: SilentEnsure(adapters.books(conn))
    )
    first = engine.run(stack.channel_id)
    assert first.error == ""
    assert first.counts["orders_waiting"] > 0
    assert order_states(stack)[OrderState.FAILED] == 0
    with stack.app.db.session() as session:
        details = session.scalars(select(StoredOrder.detail).where(StoredOrder.state == OrderState.PENDING)).all()
    assert 0 < len(details) <= first.counts["orders_waiting"]  # tried again in the pass's last planning step
    assert all(d.startswith("waiting for QuickBooks to create") for d in details)

    silent["on"] = False
    second = engine.run(stack.channel_id)
    assert second.error == ""
    states = order_states(stack)
    assert states[OrderState.PENDING] == states[OrderState.FAILED] == 0
    numbers = doc_numbers(stack)
    assert max(numbers.values()) == 1
    assert sum(numbers.values()) == states[OrderState.POSTED]


class Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing in the engine handles it."""


def test_crash_after_books_answered_is_recovered_by_lookup(stack_factory: StackFactory, db_url: str) -> None:
    stack = stack_factory(db_url, orders=30)
    from ledgerlink.sync.engine import SyncEngine

    adapters = stack.app.adapters
    crashes = {"left": 1}

    class CrashingBooks:
        kind = "qbo"

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def push(self, requests: Any) -> Any:
            results = self.inner.push(requests)
            if crashes["left"]:
                crashes["left"] -= 1
                raise Crash  # QuickBooks created the documents; we die before recording them
            return results

    crashing = SyncEngine(
        stack.app.db, channel_factory=adapters.channel, books_factory=lambda conn: CrashingBooks(adapters.books(conn))
    )
    with pytest.raises(Crash):
        crashing.run(stack.channel_id)
    with stack.app.db.session() as session:
        sending = session.scalar(select(func.count()).where(Posting.state == PostingState.SENDING))
    assert sending > 0
    created_before_rerun = sum(doc_numbers(stack).values())
    assert created_before_rerun == sending

    report = stack.app.engine().run(stack.channel_id)
    assert report.error == ""
    assert report.counts["recovered_bound"] == sending
    numbers = doc_numbers(stack)
    assert max(numbers.values()) == 1
    assert sum(numbers.values()) == order_states(stack)[OrderState.POSTED]


def test_server_errors_are_retried(stack_factory: StackFactory, db_url: str) -> None:
    stack = stack_factory(db_url, orders=25)
    stack.qbo.inject(Fault(kind="status", status=503, count=2, path_contains="batch"))
    report = stack.app.engine().run(stack.channel_id)
    assert report.error == ""
    assert order_states(stack)[OrderState.FAILED] == 0
    assert max(doc_numbers(stack).values()) == 1


def test_manual_sync_by_order_numbers_leaves_the_cursor(stack_factory: StackFactory, tmp_path: Any) -> None:
    stack = stack_factory(f"sqlite:///{tmp_path / 'manual.db'}", orders=30)
    paid = [str(o["order_number"]) for o in stack.shop.orders.values() if o["financial_status"] == "paid"][:3]
    report = stack.app.engine().run(stack.channel_id, RunOptions(order_numbers=tuple(paid)))
    assert report.error == ""
    assert sorted(doc_numbers(stack)) == sorted(paid)
    with stack.app.db.session() as session:
        from ledgerlink.store.models import CursorRow

        assert session.get(CursorRow, stack.channel_id) is None
    full = stack.app.engine().run(stack.channel_id)
    assert max(doc_numbers(stack).values()) == 1
    assert full.counts["posted_SalesReceipt"] == order_states(stack)[OrderState.POSTED] - 3


def test_dry_run_writes_nothing(stack_factory: StackFactory, tmp_path: Any) -> None:
    stack = stack_factory(f"sqlite:///{tmp_path / 'dry.db'}", orders=15)
    report = stack.app.engine().run(stack.channel_id, RunOptions(dry_run=True))
    assert report.previews
    assert stack.qbo.entities("SalesReceipt") == []
    with stack.app.db.session() as session:
        assert session.scalar(select(func.count()).select_from(StoredOrder)) == 0
        assert session.scalar(select(func.count()).select_from(Posting)) == 0


def test_changed_order_after_posting_is_not_posted_again(stack_factory: StackFactory, tmp_path: Any) -> None:
    stack = stack_factory(f"sqlite:///{tmp_path / 'changed.db'}", orders=10)
    engine = stack.app.engine()
    engine.run(stack.channel_id)
    before = doc_numbers(stack)
    target = next(o for o in stack.shop.orders.values() if str(o["order_number"]) in before)
    stack.shop.update_order(target["id"], {"note": "gift wrap please", "tags": "vip"})
    report = engine.run(stack.channel_id)
    assert report.counts["orders_changed"] == 1
    # A change the books do not show (note, tags) is a new revision that changes nothing in QuickBooks.
    assert report.counts["posted"] == report.counts["updated"] == 0
    assert doc_numbers(stack) == before
    with stack.app.db.session() as session:
        order = session.scalars(select(StoredOrder).where(StoredOrder.channel_order_id == str(target["id"]))).one()
        assert order.revision == 2
        assert order.state == OrderState.POSTED
        live = session.scalars(select(Posting).where(Posting.order_id == order.id)).all()
        assert [p.state for p in live] == [PostingState.POSTED]


@pytest.mark.parametrize("policy", ["sqlite"])
def test_expired_access_token_is_refreshed_and_rotation_stored(
    stack_factory: StackFactory, tmp_path: Any, policy: str
) -> None:
    stack = stack_factory(f"sqlite:///{tmp_path / 'tokens.db'}", orders=10)
    stack.qbo.inject(Fault(kind="expire_tokens", count=1))
    from ledgerlink.store.models import Connection
    from ledgerlink.sync.tokens import tokens_from_secrets

    with stack.app.db.session() as session:
        books = session.scalars(select(Connection).where(Connection.role == "books")).one()
        before = tokens_from_secrets(stack.app.box.open(books.secrets))
    report = stack.app.engine().run(stack.channel_id)
    assert report.error == ""
    with stack.app.db.session() as session:
        books = session.scalars(select(Connection).where(Connection.role == "books")).one()
        after = tokens_from_secrets(stack.app.box.open(books.secrets))
        assert books.status == "ok"
    assert after.refresh_token != before.refresh_token
    assert report.counts["posted"] > 0


def test_retry_after_a_refused_number_replans_with_the_new_prefix(stack_factory: StackFactory, tmp_path: Any) -> None:
    stack = stack_factory(f"sqlite:///{tmp_path / 'retry.db'}", orders=12)
    paid = sorted(str(o["order_number"]) for o in stack.shop.orders.values() if o["financial_status"] == "paid")
    taken = paid[0]
    # Someone typed a sales receipt with this number into QuickBooks by hand.
    creds = stack.qbo.credentials(stack.qbo_server.base_url)
    import httpx

    item = stack.qbo.entities("Item")[0]["Id"]
    line = {
        "DetailType": "SalesItemLineDetail",
        "Amount": 5,
        "SalesItemLineDetail": {"ItemRef": {"value": item}, "Qty": 1, "UnitPrice": 5},
    }
    body = {"DocNumber": taken, "Line": [line]}
    answer = httpx.post(
        f"{creds['api_base']}/company/{creds['realm_id']}/salesreceipt?minorversion=75",
        json=body,
        headers={"Authorization": f"Bearer {creds['access_token']}"},
    )
    assert answer.status_code == 200, answer.text
    engine = stack.app.engine()
    first = engine.run(stack.channel_id)
    failed = {number for number, _field, _message in first.failures}
    assert failed == {taken}
    from ledgerlink.sync.engine import load_settings, save_settings

    with stack.app.db.session() as session:
        settings = load_settings(session, stack.channel_id)
        save_settings(session, stack.channel_id, settings.model_copy(update={"doc_number_prefix": "SH-"}))
    again = engine.run(stack.channel_id, RunOptions(retry_failed=True))
    assert again.counts["orders_retried"] == 1
    assert again.counts["posted"] == 1
    assert doc_numbers(stack)[f"SH-{taken}"] == 1
    assert doc_numbers(stack)[taken] == 1  # the hand-made one, untouched


def test_changed_after_part_was_posted_is_not_posted_again(stack_factory: StackFactory, tmp_path: Any) -> None:
    stack = stack_factory(f"sqlite:///{tmp_path / 'partial.db'}", orders=8)
    from ledgerlink.domain.settings import TransactionType
    from ledgerlink.sync.engine import load_settings, save_settings

    with stack.app.db.session() as session:
        settings = load_settings(session, stack.channel_id)
        save_settings(
            session, stack.channel_id, settings.model_copy(update={"transaction_type": TransactionType.INVOICE})
        )
    # QuickBooks refuses every payment: the invoices post, the payments fail.
    engine = stack.app.engine()
    from ledgerlink.books.base import PushResult, PushStatus

    adapters = stack.app.adapters

    class RefusePayments:
        kind = "qbo"

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def push(self, requests: Any) -> Any:
            invoices = [r for r in requests if r.document.kind.value != "Payment"]
            results = list(self.inner.push(invoices)) if invoices else []
            results += [
                PushResult(key=r.key, status=PushStatus.FAILED, error="refused for the test", code="6000")
                for r in requests
                if r.document.kind.value == "Payment"
            ]
            return results

    from ledgerlink.sync.engine import SyncEngine

    refusing = SyncEngine(
        stack.app.db, channel_factory=adapters.channel, books_factory=lambda conn: RefusePayments(adapters.books(conn))
    )
    refusing.run(stack.channel_id)
    invoices_before = len(stack.qbo.entities("Invoice"))
    assert invoices_before > 0
    assert stack.qbo.entities("Payment") == []
    target = next(
        o
        for o in stack.shop.orders.values()
        if any(str(o["order_number"]) == str(e["DocNumber"]) for e in stack.qbo.entities("Invoice"))
    )
    stack.shop.update_order(target["id"], {"note": "changed after posting"})
    report = engine.run(stack.channel_id)
    # The new revision is the target: its invoice is in the books already (kept, not posted again), its
    # payment was not, so only the payment is posted, once.
    assert report.error == ""
    assert len(stack.qbo.entities("Invoice")) == invoices_before
    invoice = next(e for e in stack.qbo.entities("Invoice") if str(e["DocNumber"]) == str(target["order_number"]))
    applied = [
        p
        for p in stack.qbo.entities("Payment")
        if any(line["LinkedTxn"][0]["TxnId"] == invoice["Id"] for line in p["Line"])
    ]
    assert len(applied) == 1
    assert Decimal(str(stack.qbo.entity("Invoice", invoice["Id"])["Balance"])) == 0
    with stack.app.db.session() as session:
        order = session.scalars(select(StoredOrder).where(StoredOrder.channel_order_id == str(target["id"]))).one()
        assert order.state == OrderState.POSTED
        kinds = Counter(
            p.kind for p in session.scalars(select(Posting).where(Posting.order_id == order.id)) if p.state == "posted"
        )
        assert (kinds["Invoice"], kinds["Payment"]) == (1, 1)
    again = engine.run(stack.channel_id)
    assert again.counts["posted"] == 0
    assert report.counts.get("posted_Invoice", 0) == 0
    assert report.counts["posted_Payment"] == 1
