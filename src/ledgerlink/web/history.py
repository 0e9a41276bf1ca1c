"""Read models of an order's life: each revision as it arrived, what changed, and what the books did with it.

The order page shows the whole history of one order; the dashboard lists the orders that changed after they
were posted. Revisions are stored raw (order_revisions), so each is read again with its channel's parser and
compared with the one before (`domain.diff`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledgerlink.channels.base import channel_parser
from ledgerlink.domain.diff import Change, diff_orders
from ledgerlink.domain.errors import MappingError
from ledgerlink.domain.order import Order
from ledgerlink.store.models import Connection, OrderRevision, Posting, PostingState, StoredOrder
from ledgerlink.web.queries import KIND_TITLES, channel_title

MAX_REVISIONS = 100
RECENT_CHANGED = 10

_DONE = {"create": "created", "update": "updated", "void": "voided"}


def posting_action(posting: Posting) -> str:
    """What the books did (or will do) with one posting, in a word or three."""
    verb = _DONE.get(posting.operation, posting.operation)
    if posting.state == PostingState.POSTED:
        return verb
    if posting.state == PostingState.VOIDED:
        return "created, then voided" if posting.operation == "create" else "voided"
    if posting.state == PostingState.FAILED:
        return f"not {verb}: failed"
    if posting.state == PostingState.SUPERSEDED:
        # A posted document stays in the books; a later revision's posting now carries its binding.
        if posting.posted_at is not None or posting.remote_id:
            return f"{verb}, then changed by a later revision"
        return "replaced by a later revision before it was sent"
    return f"waiting to be {verb}"


def posting_summary(posting: Posting) -> str:
    """One line for one posting: "Sales Receipt 1001 updated"."""
    title = KIND_TITLES.get(posting.kind, posting.kind)
    number = f" {posting.doc_number}" if posting.doc_number else ""
    return f"{title}{number} {posting_action(posting)}"


@dataclass
class RevisionView:
    """One revision of an order: when it came, what changed since the one before, and its postings."""

    revision: int
    seen_at: datetime
    content_hash: str
    changes: list[Change] = field(default_factory=list)
    unreadable: str = ""  # why this revision could not be read (its raw JSON is still shown)
    first: bool = False
    postings: list[Posting] = field(default_factory=list)
    raw_json: str = ""

    @property
    def books_did(self) -> str:
        """The postings of this revision in one sentence; empty when nothing was posted for it."""
        return "; ".join(posting_summary(p) for p in self.postings)


def _parser(kind: str) -> Callable[[Mapping[str, Any]], Order] | None:
    try:
        return channel_parser(kind)
    except (KeyError, ImportError, AttributeError):
        return None


def revision_history(
    session: Session, order: StoredOrder, connection: Connection, postings: Sequence[Posting]
) -> list[RevisionView]:
    """The order's revisions, newest first, each compared with the revision before it."""
    rows = list(
        session.scalars(
            select(OrderRevision)
            .where(OrderRevision.order_id == order.id)
            .order_by(OrderRevision.revision.desc())
            .limit(MAX_REVISIONS + 1)
        )
    )
    rows.reverse()  # oldest first, so each is compared with the one before
    by_revision: dict[int, list[Posting]] = defaultdict(list)
    for posting in postings:
        by_revision[posting.revision].append(posting)
    parse = _parser(connection.kind)
    views: list[RevisionView] = []
    previous: Order | None = None
    for index, row in enumerate(rows):
        view = RevisionView(
            revision=row.revision,
            seen_at=row.seen_at,
            content_hash=row.content_hash,
            first=row.revision == 1,
            postings=by_revision.get(row.revision, []),
            raw_json=json.dumps(row.raw, indent=2, ensure_ascii=False, default=str),
        )
        current: Order | None = None
        if parse is None:
            view.unreadable = f"{channel_title(connection.kind)} orders cannot be read here."
        else:
            try:
                current = parse(row.raw)
            except MappingError as exc:
                view.unreadable = str(exc)
        if current is not None and previous is not None:
            view.changes = diff_orders(previous, current)
        if index == 0 and row.revision > 1:
            continue  # only there to compare the oldest revision shown with
        previous = current
        views.append(view)
    views.reverse()
    return views


@dataclass(frozen=True, slots=True)
class ChangedOrder:
    """An order that changed after it was posted: its latest revision and what the books did with it."""

    order: StoredOrder
    connection: Connection
    postings: list[Posting]

    @property
    def books_did(self) -> str:
        if not self.postings:
            return "nothing posted for this revision yet"
        return "; ".join(posting_summary(p) for p in self.postings)


def recently_changed_after_posting(
    session: Session, company_id: int, limit: int = RECENT_CHANGED
) -> list[ChangedOrder]:
    """The company's orders at revision 2 or later that had postings, most recently changed first."""
    posted_before = (
        select(Posting.id).where(Posting.order_id == StoredOrder.id, Posting.revision < StoredOrder.revision).exists()
    )
    rows = session.execute(
        select(StoredOrder, Connection)
        .join(Connection, Connection.id == StoredOrder.connection_id)
        .where(
            StoredOrder.company_id == company_id,
            StoredOrder.revision > 1,
            posted_before,
        )
        .order_by(StoredOrder.updated_at.desc(), StoredOrder.id.desc())
        .limit(limit)
    ).all()
    ids = [order.id for order, _ in rows]
    latest: dict[int, list[Posting]] = defaultdict(list)
    if ids:
        for posting in session.scalars(select(Posting).where(Posting.order_id.in_(ids)).order_by(Posting.id)):
            latest[posting.order_id].append(posting)
    found: list[ChangedOrder] = []
    for order, connection in rows:
        current = [p for p in latest[order.id] if p.revision == order.revision]
        found.append(ChangedOrder(order, connection, current))
    return found
