"""The QuickBooks Web Connector's side of a Desktop sync: sessions, message sets, and exactly-once recovery.

The Web Connector on the merchant's PC calls us (DESIGN.md "Exactly once", point 7): `authenticate` opens a
session (a ticket kept in the database, so any web process can answer its next call); then, until we answer
100 %, it asks `sendRequestXML` for a qbXML message set, runs it in QuickBooks and hands the answer to
`receiveResponseXML`. Each round trip must finish well inside the Web Connector's two-minute limit, so a
message set carries at most `requests_per_set` requests (`onError="continueOnError"`).

A session does, in this order:
  1. recovery: a message set whose answer never arrived (lost response, `connectionError`, a session that
     ended early) is asked about with `oldMessageSetID`; QuickBooks answers with the answer it kept, which is
     bound as if it had arrived. If QuickBooks kept none, the postings of that set are looked up by RefNumber
     (our marker in the memo decides) and only the ones QuickBooks has no trace of are sent again;
  2. lists: accounts, classes, sales tax codes and items, payment methods, customers and items (long lists
     through iterators), cached for `QbdBooks.catalog()` when they are missing, stale or asked for;
  3. edit sequences: an update QuickBooks refused as stale (3200: the document changed since we read its
     EditSequence, e.g. a payment was applied to the invoice) is re-read by TxnID, then sent again;
  4. work: the queued customer and item adds, then the ready Desktop postings in dependency order (a sales
     order before the invoice linked to it, an invoice before its payment: never LIFO), in one message set:
     creates as …AddRq, updates as …ModRq (TxnID + EditSequence, lines replaced), voids as TxnVoidRq or
     TxnDelRq (`QbdConfig.remove_with`; sales orders and payments can only be deleted). Every posting is
     marked `sending` (committed, with the set id as its claim) before the set goes out, and becomes `posted`
     (TxnID, EditSequence, TotalAmount) or `failed` (QuickBooks' message) when the answer comes back. An
     update or a void whose answer was lost is simply sent again: a repeated Mod meets 3200 and is re-read, a
     repeated delete finds nothing (3120), and both mean it is done.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from lxml import etree
from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from ledgerlink.books.qbd.adapter import ListRecord, QbdConfig, QueuedRecord, RecordedTxn
from ledgerlink.books.qbd.qbxml import (
    MAX_ITEM_NAME,
    Answer,
    QbXmlError,
    ResponseSet,
    Ret,
    customer_add,
    desktop_name,
    document_add,
    document_mod,
    item_add,
    list_query,
    message_set,
    parse_response,
    ref_number,
    removal,
    shipment_mod,
    txn_object,
    txn_query,
)
from ledgerlink.domain.catalog import CatalogQuery, CompanyFacts, NewCustomer, NewItem, fold
from ledgerlink.domain.documents import Document, UpdateScope
from ledgerlink.domain.errors import LedgerlinkError, MappingError
from ledgerlink.store.crypto import SecretBox
from ledgerlink.store.db import Database
from ledgerlink.store.models import (
    Connection,
    Posting,
    PostingState,
    QbdCompanyFile,
    QbdListEntry,
    QbdMessageSet,
    QbdQueuedRecord,
    QbdTransaction,
    QbwcSession,
)
from ledgerlink.sync.engine import (
    _bindings,
    _mark_posted,
    _observe_posted,
    _rebind,
    _settle_order,
    _target,
    load_settings,
)

SERVER_VERSION = "ledgerlink 0.1.0"
MIN_QBXML_MAJOR = 13
PARSE_ERROR_HRESULT = "0x80040400"
# An argon2 hash of nothing anyone can type: an unknown user name costs as much time as a wrong password.
_DUMMY_HASH = "$argon2id$v=19$m=65536,t=3,p=4$2MLOacAJug3tYjicSUFDVw$yFFT3ajl5wvOGm3hoYv0E3t6/j6DwCVwS6f7SGuc2nY"
# qbXML list query → our list name
LISTS = {
    "Account": "account",
    "Class": "class",
    "SalesTaxCode": "sales_tax_code",
    "ItemSalesTax": "item_sales_tax",
    "PaymentMethod": "payment_method",
    "Customer": "customer",
    "Item": "item",
    "ShipMethod": "ship_method",  # a shipment's carrier is a ShipMethodRef only when the company file has it
}
ITERATED = ("Customer", "Item")
SHORT_LISTS = ("account", "sales_tax_code", "payment_method", "class")
CURRENCIES = {"US": "USD", "CA": "CAD", "UK": "GBP", "GB": "GBP", "AU": "AUD"}
_IN_CHUNK = 500
# QuickBooks' "the provided edit sequence is out-of-date" (Desktop's 5010): the document changed since we read it.
STALE_EDIT_SEQUENCE = 3200
NOT_FOUND = 3120
# How often a Mod meets a stale EditSequence (each time re-read and sent again) before the posting fails.
MAX_STALE_ATTEMPTS = 5
SIGN_IN_REFUSED = (
    "The Web Connector signed in with a wrong password: type the password of this connection into the Web "
    "Connector's Password column (or set a new one here), then run it again."
)


def _now() -> datetime:
    return datetime.now(UTC)


def _new_ticket() -> str:
    return secrets.token_hex(16)


def _new_set_id() -> str:
    return secrets.token_hex(12)  # 24 characters: QuickBooks' limit for message-set ids


# -- the ledger QbdBooks reads ---------------------------------------------------------------------------------


class DbDesktopLedger:
    """`DesktopLedger` on the database: the lists, queue and transactions the sessions recorded."""

    def __init__(self, db: Database, books_id: int) -> None:
        self.db = db
        self.books_id = books_id

    def facts(self) -> CompanyFacts:
        with self.db.session(readonly=True) as session:
            row = session.get(QbdCompanyFile, self.books_id)
            country = ((row.country if row is not None else "") or "US").upper()
        return CompanyFacts(
            books="qbd",
            country=country,
            home_currency=CURRENCIES.get(country, "USD"),
            allow_shipping_line=False,
            automated_sales_tax=False,
            multicurrency=False,
        )

    def short_lists(self) -> list[ListRecord]:
        with self.db.session(readonly=True) as session:
            rows = session.scalars(
                select(QbdListEntry).where(
                    QbdListEntry.books_id == self.books_id,
                    QbdListEntry.list.in_(SHORT_LISTS),
                    QbdListEntry.is_active.is_(True),
                )
            ).all()
            return [_list_record(row) for row in rows]

    def matching(self, wanted: CatalogQuery) -> list[ListRecord]:
        skus = sorted({fold(s) for s in wanted.skus if s.strip()})
        item_names = sorted({fold(n) for n in wanted.item_names if n.strip()})
        emails = sorted({fold(e) for e in wanted.emails if e.strip()})
        customer_names = sorted({fold(n) for n in wanted.customer_names if n.strip()})
        found: dict[int, ListRecord] = {}
        searches = [
            ("item", QbdListEntry.fold_sku, skus),
            ("item", QbdListEntry.fold_name, item_names),
            ("item", QbdListEntry.fold_alias, item_names),
            ("customer", QbdListEntry.fold_email, emails),
            ("customer", QbdListEntry.fold_name, customer_names),
            ("customer", QbdListEntry.fold_alias, customer_names),
        ]
        with self.db.session(readonly=True) as session:
            for list_name, column, values in searches:
                for start in range(0, len(values), _IN_CHUNK):
                    rows = session.scalars(
                        select(QbdListEntry).where(
                            QbdListEntry.books_id == self.books_id,
                            QbdListEntry.list == list_name,
                            QbdListEntry.is_active.is_(True),
                            column.in_(values[start : start + _IN_CHUNK]),
                        )
                    )
                    for row in rows:
                        found[row.id] = _list_record(row)
        return list(found.values())

    def queued(self) -> list[QueuedRecord]:
        with self.db.session(readonly=True) as session:
            rows = session.scalars(
                select(QbdQueuedRecord).where(
                    QbdQueuedRecord.books_id == self.books_id,
                    or_(
                        QbdQueuedRecord.state.in_(("pending", "sending")),
                        and_(QbdQueuedRecord.state == "done", QbdQueuedRecord.list_id.is_(None)),
                    ),
                )
            ).all()
            return [QueuedRecord(r.kind, r.need_key, r.name, dict(r.body), alias=r.alias) for r in rows]

    def queue(self, records: Sequence[QueuedRecord]) -> None:
        """Queue adds; a name already queued stays (a failed one is tried again with the new details)."""
        for attempt in range(3):
            try:
                with self.db.session() as session:
                    for record in records:
                        existing = session.scalars(
                            select(QbdQueuedRecord).where(
                                QbdQueuedRecord.books_id == self.books_id,
                                QbdQueuedRecord.kind == record.kind,
                                QbdQueuedRecord.fold_name == fold(record.name),
                            )
                        ).first()
                        if existing is None:
                            session.add(
                                QbdQueuedRecord(
                                    books_id=self.books_id,
                                    kind=record.kind,
                                    need_key=record.key[:400],
                                    name=record.name,
                                    fold_name=fold(record.name),
                                    alias=record.alias[:400],
                                    body=record.body,
                                )
                            )
                        elif existing.state == "failed":
                            existing.state, existing.error, existing.body = "pending", "", record.body
                return
            except IntegrityError:
                # Another worker queued the same name at the same moment: its row stands, ours is not needed.
                if attempt == 2:
                    raise

    def transactions(self, txn_type: str, ref_number: str) -> list[RecordedTxn]:
        with self.db.session(readonly=True) as session:
            rows = session.scalars(
                select(QbdTransaction).where(
                    QbdTransaction.books_id == self.books_id,
                    QbdTransaction.txn_type == txn_type,
                    QbdTransaction.ref_number == ref_number,
                )
            ).all()
            return [
                RecordedTxn(r.txn_type, r.txn_id, r.edit_sequence, r.ref_number, r.total, r.memo, r.customer)
                for r in rows
            ]


def _list_record(row: QbdListEntry) -> ListRecord:
    return ListRecord(
        list=row.list,
        list_id=row.list_id,
        full_name=row.full_name,
        kind=row.kind,
        sku=row.fold_sku,
        email=row.fold_email,
        special=row.special,
    )


# -- what the dashboard shows ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DesktopStatus:
    """For the dashboard: orders waiting for the Web Connector, when it last came, whether it is overdue."""

    waiting: int
    last_contact_at: datetime | None
    lists_refreshed_at: datetime | None
    refresh_requested_at: datetime | None
    last_error: str
    overdue: bool


# What a sync run makes for QuickBooks Desktop waits for the Web Connector; summaries say so in these words.
QUEUED_FOR_DESKTOP = "queued for QuickBooks Desktop (sent at the next Web Connector session)"
# The Web Connector's schedule ("run every N minutes", in the .qwc file): Intuit's default, and the range the
# Connections page accepts (once a minute to once a day).
DEFAULT_RUN_EVERY_MINUTES = 15
MIN_RUN_EVERY_MINUTES = 1
MAX_RUN_EVERY_MINUTES = 1440


def run_every_minutes(config: Mapping[str, Any] | None) -> int:
    """The schedule stored on a Desktop connection (`config["run_every_minutes"]`), else the default."""
    value = (config or {}).get("run_every_minutes")
    try:
        minutes = int(value) if value is not None else DEFAULT_RUN_EVERY_MINUTES
    except (TypeError, ValueError):
        return DEFAULT_RUN_EVERY_MINUTES
    if not MIN_RUN_EVERY_MINUTES <= minutes <= MAX_RUN_EVERY_MINUTES:
        return DEFAULT_RUN_EVERY_MINUTES
    return minutes


def desktop_status(
    session: Session,
    books_id: int,
    *,
    every_minutes: int = DEFAULT_RUN_EVERY_MINUTES,
    now: datetime | None = None,
) -> DesktopStatus:
    """Where the Desktop connection stands; `overdue` when the Web Connector missed two of its runs."""
    now = now or _now()
    row = session.get(QbdCompanyFile, books_id)
    waiting = session.scalar(
        select(func.count(Posting.id)).where(
            Posting.books_id == books_id, Posting.state.in_((PostingState.PENDING, PostingState.SENDING))
        )
    )
    last = row.last_contact_at if row is not None else None
    overdue = last is None or now - last > timedelta(minutes=2 * every_minutes)
    return DesktopStatus(
        waiting=int(waiting or 0),
        last_contact_at=last,
        lists_refreshed_at=row.lists_refreshed_at if row is not None else None,
        refresh_requested_at=row.refresh_requested_at if row is not None else None,
        last_error=row.last_error if row is not None else "",
        overdue=overdue,
    )


# The lists the wizard shows from a Desktop company, in the order it shows them.
WIZARD_LISTS = ("account", "item", "class", "payment_method", "sales_tax_code")


def desktop_lists(session: Session, books_id: int) -> dict[str, list[str]]:
    """The active names of each list the last Web Connector sessions brought back (for the wizard's drop-downs),
    by list name: account, item, class, payment_method, sales_tax_code; empty before the first session."""
    found: dict[str, list[str]] = {name: [] for name in WIZARD_LISTS}
    rows = session.execute(
        select(QbdListEntry.list, QbdListEntry.full_name)
        .where(
            QbdListEntry.books_id == books_id,
            QbdListEntry.list.in_(WIZARD_LISTS),
            QbdListEntry.is_active.is_(True),
        )
        .order_by(QbdListEntry.full_name)
    )
    for list_name, full_name in rows:
        found[list_name].append(full_name)
    return found


def request_list_refresh(session: Session, books_id: int, now: datetime | None = None) -> None:
    """ "Refresh lists": the next Web Connector session reads the lists again."""
    row = _company(session, books_id, lock=False)
    row.refresh_requested_at = now or _now()


def _set_health(session: Session, books_id: int, status: str, detail: str = "") -> None:
    """The Desktop connection's badge on the Connections page: `ok` once a session exchanged work with
    QuickBooks, `error` with the reason when the Web Connector, QuickBooks or its company file refused."""
    conn = session.get(Connection, books_id)
    if conn is not None and (conn.status, conn.status_detail) != (status, detail):
        conn.status, conn.status_detail = status, detail


def _company(session: Session, books_id: int, *, lock: bool) -> QbdCompanyFile:
    query = select(QbdCompanyFile).where(QbdCompanyFile.books_id == books_id)
    if lock:
        query = query.with_for_update()
    row = session.scalars(query).first()
    if row is None:
        row = QbdCompanyFile(books_id=books_id, last_error="")
        session.add(row)
        session.flush()
    return row


# -- the service -----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Part:
    """One request of a message set being built, with what it is for."""

    element: etree._Element
    entry: dict[str, Any]


class WebConnectorService:
    """The Web Connector's methods, on the database. `verify(hash, password)` checks a stored password hash."""

    def __init__(
        self,
        db: Database,
        box: SecretBox,
        *,
        verify: Callable[[str, str], bool],
        clock: Callable[[], datetime] = _now,
        new_ticket: Callable[[], str] = _new_ticket,
        new_set_id: Callable[[], str] = _new_set_id,
    ) -> None:
        self.db = db
        self.box = box
        self.verify = verify
        self.clock = clock
        self.new_ticket = new_ticket
        self.new_set_id = new_set_id

    # -- the SOAP methods ------------------------------------------------------------------------------------

    def server_version(self) -> str:
        return SERVER_VERSION

    def client_version(self, version: str) -> str:
        """ "" accepts any Web Connector (2.x speaks the protocol we use)."""
        return ""

    def authenticate(self, user_name: str, password: str) -> list[str]:
        """[ticket, ""] when there is work, [ticket, "none"] when there is none, [ticket, "nvu"] when the user
        name or password is wrong."""
        ticket = self.new_ticket()
        conn = self._connection_for(user_name)
        if conn is None:
            self.verify(_DUMMY_HASH, password)
            return [ticket, "nvu"]
        stored = str(self.box.open(conn.secrets).get("password_hash") or "")
        if not stored or not self.verify(stored, password):
            with self.db.session() as session:
                _set_health(session, conn.id, "error", SIGN_IN_REFUSED)
            return [ticket, "nvu"]
        config = _config(conn)
        with self.db.session() as session:
            company = _company(session, conn.id, lock=True)
            company.last_contact_at = self.clock()
            if not self._has_work(session, conn.id, company, config, None):
                # Signed in, nothing to exchange: that proves the schedule and the password, not the company
                # file, so only "waiting" and a refused password are cleared here.
                row = session.get(Connection, conn.id)
                if row is not None and (row.status == "waiting" or row.status_detail == SIGN_IN_REFUSED):
                    _set_health(session, conn.id, "ok")
                return [ticket, "none"]
            session.add(QbwcSession(ticket=ticket, books_id=conn.id, counts={}))
            company.last_session_at = self.clock()
        return [ticket, ""]

    def send_request_xml(
        self,
        ticket: str,
        hcp_response: str,
        company_file: str,
        country: str,
        major: int,
        minor: int,
    ) -> str:
        """The next qbXML message set for this session, or "" when there is nothing more to do."""
        with self.db.session() as session:
            sess = session.get(QbwcSession, ticket)
            if sess is None or sess.state != "open":
                return ""
            company = _company(session, sess.books_id, lock=True)
            conn = session.get(Connection, sess.books_id)
            if conn is None:
                sess.last_error = "this QuickBooks Desktop connection was removed from ledgerlink"
                return ""
            if company_file:
                sess.company_file = company.company_file = company_file[:500]
            if country:
                company.country = country[:5].upper()
            if major:
                sess.qbxml_version = company.qbxml_version = f"{major}.{minor}"
                if major < MIN_QBXML_MAJOR:
                    sess.last_error = company.last_error = (
                        f"This QuickBooks speaks qbXML {major}.{minor}; ledgerlink needs qbXML {MIN_QBXML_MAJOR}.0 "
                        "or later (QuickBooks Desktop 2014 or newer). Update QuickBooks, then run the Web "
                        "Connector again."
                    )
                    _set_health(session, sess.books_id, "error", sess.last_error)
                    return ""
            return self._next_set(session, sess, company, _config(conn))

    def receive_response_xml(self, ticket: str, response: str, hresult: str, message: str) -> int:
        """Bind QuickBooks' answer; returns the percentage done (100: finished; negative: see getLastError)."""
        with self.db.session() as session:
            sess = session.get(QbwcSession, ticket)
            if sess is None or sess.state != "open":
                return -1
            company = _company(session, sess.books_id, lock=True)
            conn = session.get(Connection, sess.books_id)
            if conn is None:
                return -1
            config = _config(conn)
            set_id, mode = sess.outstanding, sess.outstanding_mode
            sess.outstanding, sess.outstanding_mode = None, ""
            mset = (
                session.scalars(select(QbdMessageSet).where(QbdMessageSet.set_id == set_id)).first() if set_id else None
            )
            if mset is None or mset.state != "sent":
                # Answered (or recovered) already, e.g. by a later session: nothing to bind twice.
                return self._progress(session, sess, company, config)
            counts = Counter(sess.counts or {})
            if hresult.strip():
                self._not_run(session, mset, hresult.strip(), message, counts)
                sess.counts = dict(counts)
                sess.last_error = company.last_error = (
                    f"QuickBooks could not run ledgerlink's request ({hresult.strip()}: {message.strip()}). "
                    + (
                        "The documents in it were marked failed; report this to ledgerlink support."
                        if hresult.strip().lower() == PARSE_ERROR_HRESULT
                        else "Nothing was lost: the next Web Connector run checks what QuickBooks did and goes on."
                    )
                )
                _set_health(session, sess.books_id, "error", sess.last_error)
                return -1
            try:
                answer = parse_response(response)
            except QbXmlError as exc:
                self._mark_unknown(session, mset)
                sess.last_error = (
                    f"The Web Connector returned an answer ledgerlink cannot read ({exc}); the next run checks what "
                    "QuickBooks did."
                )
                _set_health(session, sess.books_id, "error", sess.last_error)
                return -1
            # QuickBooks ran our requests and its answer arrived: the connection works, end to end.
            _set_health(session, sess.books_id, "ok")
            if mode == "recovery":
                if answer.message_set_status not in ("", "0") or not answer.answers:
                    self._mark_unknown(session, mset)
                    counts["recovered_unknown"] += 1
                    sess.counts = dict(counts)
                    return self._progress(session, sess, company, config)
                counts["recovered_answered"] += 1
            self._apply(session, sess, company, mset, answer, counts)
            sess.counts = dict(counts)
            company.last_error = ""
            return self._progress(session, sess, company, config)

    def connection_error(self, ticket: str, hresult: str, message: str) -> str:
        """The Web Connector could not reach QuickBooks (or lost our set's answer): keep the error; a set
        still waiting for its answer is recovered on the next run. Returns "done"."""
        with self.db.session() as session:
            sess = session.get(QbwcSession, ticket)
            if sess is None:
                return "done"
            company = _company(session, sess.books_id, lock=True)
            sess.last_error = company.last_error = (
                f"The Web Connector could not work with QuickBooks ({hresult}: {message}). Check that QuickBooks "
                "is installed and the company file can be opened; ledgerlink checks what was done on the next run."
            )
            sess.outstanding, sess.outstanding_mode = None, ""
            _set_health(session, sess.books_id, "error", sess.last_error)
        return "done"

    def get_last_error(self, ticket: str) -> str:
        """The last error of the session, in words a person can act on."""
        with self.db.session(readonly=True) as session:
            sess = session.get(QbwcSession, ticket)
            if sess is None:
                return (
                    "ledgerlink does not know this Web Connector session (it may have ended): run the Web "
                    "Connector again."
                )
            return sess.last_error or ""

    def close_connection(self, ticket: str) -> str:
        """Close the session; a summary for the Web Connector's status line."""
        with self.db.session() as session:
            sess = session.get(QbwcSession, ticket)
            if sess is None:
                return "ledgerlink: nothing to do."
            sess.state, sess.closed_at = "closed", self.clock()
            counts = Counter(sess.counts or {})
        return _summary(counts)

    # -- choosing the next message set -----------------------------------------------------------------------

    def _next_set(self, session: Session, sess: QbwcSession, company: QbdCompanyFile, config: QbdConfig) -> str:
        counts = Counter(sess.counts or {})
        try:
            while True:
                lost = session.scalars(
                    select(QbdMessageSet)
                    .where(QbdMessageSet.books_id == sess.books_id, QbdMessageSet.state == "sent")
                    .order_by(QbdMessageSet.id)
                    .limit(1)
                ).first()
                if lost is None:
                    break
                if lost.purpose != "work":
                    # Queries change nothing in QuickBooks: a lost one is simply asked again later.
                    lost.state = "resolved"
                    continue
                # Ask what became of it before anything else is sent (QuickBooks keeps the last set's answer).
                lost.recoveries += 1
                lost.ticket = sess.ticket
                sess.outstanding, sess.outstanding_mode = lost.set_id, "recovery"
                counts["recovery_requests"] += 1
                return message_set([], new_id=lost.set_id, old_id=lost.set_id)
            for build in (self._lookup_set, self._refresh_set, self._sequence_set, self._work_set, self._reverse_set):
                parts, purpose = build(session, sess, company, config, counts)
                if parts:
                    return self._open_set(session, sess, purpose, parts, counts)
            return ""
        finally:
            sess.counts = dict(counts)

    def _open_set(
        self, session: Session, sess: QbwcSession, purpose: str, parts: Sequence[_Part], counts: Counter[str]
    ) -> str:
        set_id = self.new_set_id()
        entries = []
        for number, part in enumerate(parts, start=1):
            part.element.set("requestID", str(number))
            entries.append({**part.entry, "rid": str(number)})
        session.add(
            QbdMessageSet(set_id=set_id, books_id=sess.books_id, ticket=sess.ticket, purpose=purpose, requests=entries)
        )
        posting_ids = [e["id"] for e in entries if e["what"] == "posting"]
        for start in range(0, len(posting_ids), _IN_CHUNK):
            session.execute(
                update(Posting)
                .where(Posting.id.in_(posting_ids[start : start + _IN_CHUNK]))
                .values(state=PostingState.SENDING, claim_token=set_id, attempts=Posting.attempts + 1)
                .execution_options(synchronize_session=False)
            )
        sess.outstanding, sess.outstanding_mode = set_id, ""
        counts["sets"] += 1
        counts["requests"] += len(parts)
        return message_set([p.element for p in parts], new_id=set_id)

    def _lookup_set(
        self, session: Session, sess: QbwcSession, company: QbdCompanyFile, config: QbdConfig, counts: Counter[str]
    ) -> tuple[list[_Part], str]:
        """RefNumber look-ups for the postings of sets QuickBooks kept no answer for."""
        parts: list[_Part] = []
        unknown = session.scalars(
            select(QbdMessageSet)
            .where(QbdMessageSet.books_id == sess.books_id, QbdMessageSet.state == "unknown")
            .order_by(QbdMessageSet.id)
        ).all()
        for mset in unknown:
            ids = [e["id"] for e in mset.requests if e.get("what") == "posting"]
            rows = _postings(session, ids, claim=mset.set_id)
            if not rows:
                mset.state = "resolved"
                continue
            for row in rows:
                if len(parts) >= config.requests_per_set:
                    break
                if row.operation != "create":
                    # An update or a void is sent again: repeating it changes nothing more (see above).
                    row.state, row.claim_token = PostingState.PENDING, None
                    counts["recovered_resend"] += 1
                    continue
                doc = Document.model_validate(row.document)
                if not doc.doc_number:
                    # Nothing to look it up by: a person must check QuickBooks before it is sent again.
                    _fail(
                        session,
                        row,
                        "its answer from QuickBooks was lost and it has no number to look it up by; "
                        "check QuickBooks, then retry the order",
                        "lost",
                    )
                    continue
                element = txn_query(txn_object(doc.kind), "0", ref_numbers=[ref_number(doc.doc_number)])
                parts.append(_Part(element, {"what": "lookup", "id": row.id}))
        return parts, "lookup"

    def _refresh_set(
        self, session: Session, sess: QbwcSession, company: QbdCompanyFile, config: QbdConfig, counts: Counter[str]
    ) -> tuple[list[_Part], str]:
        """The list queries: all lists when they are due, then the iterators' next pages."""
        state = dict(sess.refresh) if sess.refresh is not None else None
        parts: list[_Part] = []
        if state is None:
            if not _refresh_due(company, config, self.clock()):
                sess.refresh = {"open": {}, "done": True}
                return [], "refresh"
            for name in LISTS:
                if name in ITERATED:
                    element = list_query(name, "0", max_returned=config.page_size, iterator="Start")
                else:
                    element = list_query(name, "0")
                parts.append(_Part(element, {"what": "query", "list": name}))
            sess.refresh = {"open": {}, "done": False}
            counts["list_refreshes"] += 1
            return parts, "refresh"
        for name, iterator_id in dict(state.get("open") or {}).items():
            element = list_query(name, "0", max_returned=config.page_size, iterator="Continue", iterator_id=iterator_id)
            parts.append(_Part(element, {"what": "query", "list": name}))
        return parts, "refresh"

    def _sequence_set(
        self, session: Session, sess: QbwcSession, company: QbdCompanyFile, config: QbdConfig, counts: Counter[str]
    ) -> tuple[list[_Part], str]:
        """TxnID queries for the documents whose update met a stale EditSequence: their current one is read."""
        rows = session.scalars(
            select(Posting)
            .where(
                Posting.books_id == sess.books_id,
                Posting.state == PostingState.PENDING,
                Posting.operation == "update",
                Posting.error_code == str(STALE_EDIT_SEQUENCE),
            )
            .order_by(Posting.id)
            .limit(config.requests_per_set)
        ).all()
        parts: list[_Part] = []
        for row in rows:
            txn_id, _sequence = _target(session, row)
            if not txn_id:
                _fail(session, row, "the document to update is no longer bound in ledgerlink", "unbound")
                counts["failed"] += 1
                continue
            doc = Document.model_validate(row.document)
            parts.append(
                _Part(txn_query(txn_object(doc.kind), "0", txn_ids=[txn_id]), {"what": "sequence", "id": row.id})
            )
        return parts, "lookup"

    def _reverse_set(
        self, session: Session, sess: QbwcSession, company: QbdCompanyFile, config: QbdConfig, counts: Counter[str]
    ) -> tuple[list[_Part], str]:
        """Desktop sales read for ShipStation, and shipments written back onto them (sync/reverse_desktop.py)."""
        from ledgerlink.sync.reverse_desktop import reverse_set

        found = reverse_set(session, sess, page_size=min(config.page_size, 500), clock=self.clock)
        counts["reverse_requests"] += len(found)
        return [_Part(element, entry) for element, entry in found], "reverse"

    def _change_request(
        self,
        session: Session,
        row: Posting,
        doc: Document,
        have: dict[str, str],
        config: QbdConfig,
        methods: Sequence[str] = (),
    ) -> etree._Element:
        """The request for a posting: …Add for a create; …Mod or TxnVoid/TxnDel on the document it is bound to.
        A shipment-only update (a fulfilment) is a …Mod of the ship fields alone, whatever the update policy."""
        if row.operation == "create":
            return document_add(doc, "0", linked=have, tax_item=config.tax_item_name, ship_methods=methods)
        txn_id, edit_sequence = _target(session, row)
        if not txn_id:
            raise MappingError(
                f"cannot {row.operation} {doc.kind} {doc.doc_number}: ledgerlink has no QuickBooks document bound "
                "to it",
                order=doc.order_number,
                field="binding",
            )
        if row.operation == "void":
            return removal(txn_object(doc.kind), txn_id, "0", delete=config.remove_with == "delete")
        if doc.scope is UpdateScope.SHIPMENT:
            return shipment_mod(doc, "0", txn_id=txn_id, edit_sequence=edit_sequence or "", ship_methods=methods)
        return document_mod(
            doc,
            "0",
            txn_id=txn_id,
            edit_sequence=edit_sequence or "",
            linked=have,
            tax_item=config.tax_item_name,
            ship_methods=methods,
        )

    def _work_set(
        self, session: Session, sess: QbwcSession, company: QbdCompanyFile, config: QbdConfig, counts: Counter[str]
    ) -> tuple[list[_Part], str]:
        """Queued customers and items first, then ready postings (oldest first, dependencies posted)."""
        limit = config.requests_per_set
        masters = session.scalars(
            select(QbdQueuedRecord)
            .where(QbdQueuedRecord.books_id == sess.books_id, QbdQueuedRecord.state == "pending")
            .order_by(QbdQueuedRecord.kind, QbdQueuedRecord.id)  # "customer" < "item"
            .limit(limit)
        ).all()
        master_parts: list[_Part] = []
        discount_accounts = _discount_accounts(session, sess.books_id) if any(m.kind == "item" for m in masters) else {}
        for record in masters:
            try:
                if record.kind == "customer":
                    element = customer_add(NewCustomer.model_validate(record.body), record.name, "0")
                else:
                    element = item_add(
                        NewItem.model_validate(record.body),
                        record.name,
                        "0",
                        discount_account=discount_accounts.get(record.fold_name),
                    )
            except (MappingError, ValueError) as exc:
                record.state, record.error = "failed", str(exc)
                continue
            record.state = "sending"
            master_parts.append(_Part(element, {"what": record.kind, "id": record.id}))
        doc_parts: list[_Part] = []
        needs_tax_item = False
        waiting: set[int] = set()
        methods: list[str] | None = None  # the Ship Via list, read once a set needs it
        while len(master_parts) + len(doc_parts) < limit:
            room = limit - len(master_parts) - len(doc_parts)
            rows = _ready_postings(session, sess.books_id, room, self.clock(), exclude=waiting, fresh_only=True)
            if not rows:
                break
            linked = _linked_remote_ids(session, rows)
            for row in rows:
                doc = Document.model_validate(row.document)
                have = linked.get((row.order_id, row.revision), {})
                if _links_in_flight(session, row, [link.role for link in doc.links if link.role not in have]):
                    waiting.add(row.id)  # e.g. a credit application whose credit memo goes out first
                    continue
                if doc.shipment is not None and methods is None:
                    methods = _ship_methods(session, sess.books_id)
                try:
                    element = self._change_request(session, row, doc, have, config, methods or ())
                except MappingError as exc:
                    _fail(session, row, exc.detail, "mapping")
                    counts["failed"] += 1
                    continue
                # Claimed in this transaction, so the next pick skips it; `_open_set` stamps the set id.
                row.state = PostingState.SENDING
                needs_tax_item = needs_tax_item or (row.operation != "void" and bool(doc.tax_total))
                doc_parts.append(_Part(element, {"what": "posting", "id": row.id}))
            session.flush()
        if needs_tax_item:
            tax_part = self._tax_item_part(session, sess.books_id, config)
            if tax_part is not None:
                master_parts.append(tax_part)
        return master_parts + doc_parts, "work"

    def _tax_item_part(self, session: Session, books_id: int, config: QbdConfig) -> _Part | None:
        """The Other Charge item that carries the channel's tax, added once when the company lacks it."""
        name = desktop_name(config.tax_item_name, MAX_ITEM_NAME)
        known = session.scalars(
            select(QbdListEntry.id).where(
                QbdListEntry.books_id == books_id, QbdListEntry.list == "item", QbdListEntry.fold_name == fold(name)
            )
        ).first()
        queued = session.scalars(
            select(QbdQueuedRecord).where(
                QbdQueuedRecord.books_id == books_id,
                QbdQueuedRecord.kind == "item",
                QbdQueuedRecord.fold_name == fold(name),
            )
        ).first()
        if known is not None or (queued is not None and queued.state in ("sending", "done")):
            return None
        account = _tax_account(session, books_id)
        if account is None:
            return None  # QuickBooks will name the missing item in its answer
        item = NewItem(
            key=f"name:{fold(name)}",
            name=name,
            type="Service",
            income_account=account,
            description="Sales tax collected by the selling channel",
        )
        if queued is None:
            queued = QbdQueuedRecord(
                books_id=books_id,
                kind="item",
                need_key=item.key,
                name=name,
                fold_name=fold(name),
                alias="",
                body=item.model_dump(mode="json"),
                state="sending",
            )
            session.add(queued)
            session.flush()
        else:
            queued.state, queued.body = "sending", item.model_dump(mode="json")
        return _Part(item_add(item, name, "0"), {"what": "item", "id": queued.id})

    # -- binding answers -------------------------------------------------------------------------------------

    def _apply(
        self,
        session: Session,
        sess: QbwcSession,
        company: QbdCompanyFile,
        mset: QbdMessageSet,
        answer: ResponseSet,
        counts: Counter[str],
    ) -> None:
        entries = list(mset.requests)
        posting_ids = [e["id"] for e in entries if e["what"] in ("posting", "lookup", "sequence")]
        postings = {p.id: p for p in _postings(session, posting_ids, claim=None)}
        master_ids = [e["id"] for e in entries if e["what"] in ("customer", "item")]
        masters = {
            m.id: m for m in session.scalars(select(QbdQueuedRecord).where(QbdQueuedRecord.id.in_(master_ids or [-1])))
        }
        missing = False
        refresh = dict(sess.refresh or {"open": {}, "done": False})
        refresh_open = dict(refresh.get("open") or {})
        refresh_failed = False
        for entry in entries:
            got = answer.answers.get(entry["rid"])
            what = entry["what"]
            if what == "posting":
                row = postings.get(entry["id"])
                if row is None or row.state != PostingState.SENDING or row.claim_token != mset.set_id:
                    continue
                if got is None:
                    missing = True
                    continue
                self._bind_posting(session, mset, row, got, counts)
            elif what == "lookup":
                row = postings.get(entry["id"])
                if row is not None and row.state == PostingState.SENDING:
                    self._bind_lookup(session, mset, row, got, counts)
            elif what == "sequence":
                row = postings.get(entry["id"])
                if row is not None and row.state == PostingState.PENDING and got is not None:
                    self._bind_sequence(session, row, got, counts)
            elif what in ("customer", "item"):
                record = masters.get(entry["id"])
                if record is not None and record.state == "sending":
                    self._bind_master(session, sess, record, got, counts)
            elif what.startswith("reverse_"):
                from ledgerlink.sync.reverse_desktop import bind_reverse

                bind_reverse(session, sess, entry, got)
            elif what == "query":
                name = str(entry["list"])
                if got is None or not got.ok:
                    refresh_open.pop(name, None)
                    refresh_failed = True
                    continue
                _store_list(session, sess.books_id, name, got.rets, sess.ticket)
                counts[f"listed_{LISTS[name]}"] += len(got.rets)
                if got.iterator_id and got.remaining > 0:
                    refresh_open[name] = got.iterator_id
                else:
                    refresh_open.pop(name, None)
                    _drop_stale(session, sess.books_id, name, sess.ticket)
        if mset.purpose == "refresh":
            refresh["open"] = refresh_open
            refresh["failed"] = bool(refresh.get("failed")) or refresh_failed
            if not refresh_open and not refresh["failed"] and not refresh.get("done"):
                company.lists_refreshed_at = self.clock()
                company.refresh_requested_at = None
                refresh["done"] = True
                counts["lists_refreshed"] += 1
            sess.refresh = refresh
        mset.answered_at = self.clock()
        if missing:
            self._mark_unknown(session, mset)
        else:
            mset.state = "answered"

    def _bind_posting(
        self, session: Session, mset: QbdMessageSet, row: Posting, got: Answer, counts: Counter[str]
    ) -> None:
        if row.operation == "void":
            self._bind_removal(session, mset, row, got, counts)
            return
        if row.operation == "update" and got.code == STALE_EDIT_SEQUENCE:
            counts["stale_edit_sequence"] += 1
            if row.attempts < MAX_STALE_ATTEMPTS:
                # Read the document's EditSequence again (`_sequence_set`), then send the Mod again.
                row.state, row.claim_token = PostingState.PENDING, None
                row.error, row.error_code = f"QuickBooks: {got.describe()}", str(STALE_EDIT_SEQUENCE)
                return
            doc_ref = ref_number(row.doc_number) if row.doc_number else f"#{row.id}"
            _fail(
                session,
                row,
                f"QuickBooks Desktop kept refusing the change to {row.kind} {doc_ref} as out of date "
                f"({row.attempts} tries): someone may be editing it in QuickBooks; retry the order later",
                str(got.code),
            )
            counts["failed"] += 1
            return
        ret = got.ret
        if got.ok and ret is not None and ret.txn_id:
            note = "" if got.code == 0 else f"QuickBooks warned: {got.describe()}"
            _mark_posted(session, row, ret.txn_id, ret.edit_sequence, ret.total, bound=False, note=note)
            _rebind(session, row)
            _record_txn(session, row.books_id, ret, row.id, mset.set_id)
            _observe_posted(session, row)
            if row.operation == "update":
                counts["updated"] += 1
            else:
                counts["posted"] += 1
                counts[f"posted_{row.kind}"] += 1
        else:
            doc_ref = ref_number(row.doc_number) if row.doc_number else f"#{row.id}"
            _fail(session, row, f"QuickBooks Desktop refused {row.kind} {doc_ref}: {got.describe()}", str(got.code))
            counts["failed"] += 1
            return
        _settle_order(session, row.order_id)

    def _bind_removal(
        self, session: Session, mset: QbdMessageSet, row: Posting, got: Answer, counts: Counter[str]
    ) -> None:
        """A TxnVoid or TxnDel answered: done (and done already, when QuickBooks no longer has the document)."""
        txn_id, _sequence = _target(session, row)
        doc_ref = ref_number(row.doc_number) if row.doc_number else f"#{row.id}"
        if got.code not in (0, NOT_FOUND) or not txn_id:
            _fail(
                session,
                row,
                f"QuickBooks Desktop refused to void {row.kind} {doc_ref}: {got.describe()}",
                str(got.code),
            )
            counts["failed"] += 1
            return
        deleted = got.rs == "TxnDelRs" or got.code == NOT_FOUND
        note = "" if got.code == 0 else f"QuickBooks no longer has it ({got.describe()})"
        _mark_posted(session, row, txn_id, None, Decimal(0), bound=False, note=note)
        _rebind(session, row)
        for txn in session.scalars(
            select(QbdTransaction).where(QbdTransaction.books_id == row.books_id, QbdTransaction.txn_id == txn_id)
        ):
            if deleted:
                session.delete(txn)
            else:
                txn.total, txn.memo, txn.set_id = Decimal(0), f"VOID: {txn.memo}", mset.set_id
        counts["deleted" if deleted else "voided"] += 1
        _settle_order(session, row.order_id)

    def _bind_sequence(self, session: Session, row: Posting, got: Answer, counts: Counter[str]) -> None:
        """The document's current EditSequence: stored on its binding, and the update goes out again."""
        if row.error_code != str(STALE_EDIT_SEQUENCE):
            return
        ret = got.ret
        doc_ref = ref_number(row.doc_number) if row.doc_number else f"#{row.id}"
        if got.code == 0 and ret is not None and ret.edit_sequence:
            binding = _bindings(session, row.order_id).get(row.role)
            if binding is not None and binding.remote_id == ret.txn_id:
                binding.sync_token = ret.edit_sequence
            row.error_code = ""
            counts["edit_sequences_refreshed"] += 1
            return
        if got.code in (1, NOT_FOUND):
            _fail(
                session,
                row,
                f"QuickBooks Desktop no longer has {row.kind} {doc_ref} (deleted there?): it cannot be updated; "
                "retry the order to post it again",
                str(got.code),
            )
        else:
            _fail(session, row, f"reading {row.kind} {doc_ref} again failed: {got.describe()}", str(got.code))
        counts["failed"] += 1

    def _bind_lookup(
        self, session: Session, mset: QbdMessageSet, row: Posting, got: Answer | None, counts: Counter[str]
    ) -> None:
        doc = Document.model_validate(row.document)
        if got is None:
            return  # asked again on the next look-up round
        if not got.ok:
            _fail(
                session,
                row,
                f"its answer from QuickBooks was lost and looking up {row.kind} {ref_number(doc.doc_number)} failed "
                f"({got.describe()}); check QuickBooks for it, then retry the order",
                str(got.code),
            )
            counts["failed"] += 1
            return
        marker = f"[ledgerlink {doc.marker}]"
        for ret in got.rets:
            if doc.marker and marker in ret.memo:
                _mark_posted(session, row, ret.txn_id, ret.edit_sequence, ret.total, bound=True)
                _record_txn(session, row.books_id, ret, row.id, mset.set_id)
                _observe_posted(session, row)
                _settle_order(session, row.order_id)
                counts["posted"] += 1
                counts[f"posted_{row.kind}"] += 1
                counts["recovered_bound"] += 1
                return
        # QuickBooks has no trace of it: send it again.
        row.state, row.claim_token = PostingState.PENDING, None
        counts["recovered_resend"] += 1

    def _bind_master(
        self, session: Session, sess: QbwcSession, record: QbdQueuedRecord, got: Answer | None, counts: Counter[str]
    ) -> None:
        if got is None:
            record.state = "pending"
            return
        ret = got.ret
        if got.ok and ret is not None and ret.list_id:
            record.state, record.list_id, record.error = "done", ret.list_id, ""
            _store_list(
                session,
                sess.books_id,
                "Customer" if record.kind == "customer" else "Item",
                [ret],
                "",
                alias=record.alias,
            )
            counts[f"{record.kind}s_added"] += 1
        elif got.code == 3100:
            # The name is taken: QuickBooks names are unique, so the record by that name is the one to use.
            record.state, record.error = "done", ""
            counts[f"{record.kind}s_existing"] += 1
        else:
            record.state, record.error = "failed", got.describe()
            counts[f"{record.kind}s_failed"] += 1

    def _mark_unknown(self, session: Session, mset: QbdMessageSet) -> None:
        """QuickBooks kept no answer for this set: its postings are looked up; its adds go out again (a name
        QuickBooks already has comes back as 3100 and is taken as done)."""
        mset.state = "unknown" if mset.purpose == "work" else "resolved"
        ids = [e["id"] for e in mset.requests if e.get("what") in ("customer", "item")]
        if ids:
            session.execute(
                update(QbdQueuedRecord)
                .where(QbdQueuedRecord.id.in_(ids), QbdQueuedRecord.state == "sending")
                .values(state="pending")
                .execution_options(synchronize_session=False)
            )

    def _not_run(self, session: Session, mset: QbdMessageSet, hresult: str, message: str, counts: Counter[str]) -> None:
        """QuickBooks returned an error for the whole set instead of answers."""
        if hresult.lower() != PARSE_ERROR_HRESULT:
            self._mark_unknown(session, mset)
            return
        # QuickBooks validates the whole set before running any of it: nothing was done, and sending the same
        # set again would fail again. The postings fail with QuickBooks' words.
        mset.state, mset.answered_at = "answered", self.clock()
        ids = [e["id"] for e in mset.requests if e.get("what") == "posting"]
        for row in _postings(session, ids, claim=mset.set_id):
            _fail(session, row, f"QuickBooks could not read the request ({hresult}): {message}", hresult)
            counts["failed"] += 1
        for entry in mset.requests:
            if entry.get("what") in ("customer", "item"):
                record = session.get(QbdQueuedRecord, entry["id"])
                if record is not None and record.state == "sending":
                    record.state, record.error = "failed", f"QuickBooks could not read the request: {message}"

    # -- progress and work -----------------------------------------------------------------------------------

    def _progress(self, session: Session, sess: QbwcSession, company: QbdCompanyFile, config: QbdConfig) -> int:
        if not self._has_work(session, sess.books_id, company, config, sess):
            return 100
        counts = sess.counts or {}
        done = int(counts.get("requests", 0))
        remaining = session.scalar(
            select(func.count(Posting.id)).where(
                Posting.books_id == sess.books_id, Posting.state.in_((PostingState.PENDING, PostingState.SENDING))
            )
        )
        total = done + int(remaining or 0)
        return max(1, min(99, int(done * 100 / total))) if total else 99

    def _has_work(
        self,
        session: Session,
        books_id: int,
        company: QbdCompanyFile,
        config: QbdConfig,
        sess: QbwcSession | None,
    ) -> bool:
        open_sets = session.scalars(
            select(QbdMessageSet.id)
            .where(QbdMessageSet.books_id == books_id, QbdMessageSet.state.in_(("sent", "unknown")))
            .limit(1)
        ).first()
        if open_sets is not None:
            return True
        if sess is None or sess.refresh is None:
            if _refresh_due(company, config, self.clock()):
                return True
        elif sess.refresh.get("open"):
            return True
        queued = session.scalars(
            select(QbdQueuedRecord.id)
            .where(QbdQueuedRecord.books_id == books_id, QbdQueuedRecord.state == "pending")
            .limit(1)
        ).first()
        if queued is not None:
            return True
        if _ready_postings(session, books_id, 1, self.clock()):
            return True
        from ledgerlink.sync.reverse_desktop import reverse_has_work

        return reverse_has_work(session, books_id, sess)

    def _connection_for(self, user_name: str) -> Connection | None:
        wanted = user_name.strip()
        if not wanted:
            return None
        with self.db.session(readonly=True) as session:
            for conn in session.scalars(select(Connection).where(Connection.kind == "qbd")):
                if str((conn.config or {}).get("user_name") or "") == wanted:
                    return conn
        return None


# -- helpers ---------------------------------------------------------------------------------------------------


def _config(conn: Connection) -> QbdConfig:
    try:
        return QbdConfig.model_validate(conn.config or {})
    except ValueError as exc:
        raise LedgerlinkError(f"the QuickBooks Desktop connection {conn.name!r} is misconfigured: {exc}") from None


def _refresh_due(company: QbdCompanyFile, config: QbdConfig, now: datetime) -> bool:
    if company.lists_refreshed_at is None or company.refresh_requested_at is not None:
        return True
    return now - company.lists_refreshed_at > timedelta(hours=config.lists_max_age_hours)


def _ready_postings(
    session: Session,
    books_id: int,
    limit: int,
    now: datetime,
    *,
    exclude: Collection[int] = (),
    fresh_only: bool = False,
) -> Sequence[Posting]:
    """Pending postings due now whose dependency is posted, oldest first: customers and items come before in
    the set, a sales order is posted before its invoice is picked, an invoice before its payment. With
    `fresh_only`, updates waiting for their EditSequence to be read again are left out."""
    dep = aliased(Posting)
    query = (
        select(Posting)
        .where(
            Posting.books_id == books_id,
            Posting.state == PostingState.PENDING,
            or_(Posting.not_before.is_(None), Posting.not_before <= now),
            or_(
                Posting.depends_on_id.is_(None),
                exists().where(and_(dep.id == Posting.depends_on_id, dep.state == PostingState.POSTED)),
            ),
        )
        .order_by(Posting.id)
        .limit(limit)
    )
    if exclude:
        query = query.where(Posting.id.not_in(list(exclude)))
    if fresh_only:
        query = query.where(Posting.error_code != str(STALE_EDIT_SEQUENCE))
    return session.scalars(query).all()


def _links_in_flight(session: Session, row: Posting, roles: Sequence[str]) -> bool:
    """True when a document this posting links to (same order and revision) is still on its way."""
    if not roles:
        return False
    found = session.scalars(
        select(Posting.id).where(
            Posting.order_id == row.order_id,
            Posting.revision == row.revision,
            Posting.role.in_(list(roles)),
            Posting.state.in_((PostingState.PENDING, PostingState.SENDING)),
        )
    ).first()
    return found is not None


def _postings(session: Session, ids: Iterable[int], *, claim: str | None) -> list[Posting]:
    wanted = list(ids)
    found: list[Posting] = []
    for start in range(0, len(wanted), _IN_CHUNK):
        query = select(Posting).where(Posting.id.in_(wanted[start : start + _IN_CHUNK]))
        if claim is not None:
            query = query.where(Posting.state == PostingState.SENDING, Posting.claim_token == claim)
        found.extend(session.scalars(query))
    return found


def _linked_remote_ids(session: Session, rows: Sequence[Posting]) -> dict[tuple[int, int], dict[str, str]]:
    """TxnIDs of the documents these postings link to, by role: each role's live binding in the books (its
    newest posted create or update, of any revision: a payment taken later applies to the invoice posted
    before the order changed)."""
    wanted = {(r.order_id, r.revision) for r in rows if r.document.get("links")}
    if not wanted:
        return {}
    live: dict[int, dict[str, str]] = {}
    order_ids = sorted({order_id for order_id, _ in wanted})
    for start in range(0, len(order_ids), _IN_CHUNK):
        result = session.execute(
            select(Posting.order_id, Posting.role, Posting.remote_id)
            .where(
                Posting.order_id.in_(order_ids[start : start + _IN_CHUNK]),
                Posting.state == PostingState.POSTED,
                Posting.operation != "void",
            )
            .order_by(Posting.id)
        )
        for order_id, role, remote_id in result:
            if remote_id:
                live.setdefault(order_id, {})[role] = remote_id
    return {(order_id, revision): live[order_id] for order_id, revision in wanted if order_id in live}


def _fail(session: Session, row: Posting, message: str, code: str) -> None:
    row.state, row.claim_token = PostingState.FAILED, None
    row.error, row.error_code = message, code[:20]
    session.flush()
    _settle_order(session, row.order_id)


def _record_txn(session: Session, books_id: int, ret: Ret, posting_id: int | None, set_id: str) -> None:
    txn_type = ret.tag.removesuffix("Ret")
    existing = session.scalars(
        select(QbdTransaction).where(QbdTransaction.books_id == books_id, QbdTransaction.txn_id == ret.txn_id)
    ).first()
    if existing is None:
        existing = QbdTransaction(books_id=books_id, txn_id=ret.txn_id, txn_type=txn_type)
        session.add(existing)
    existing.ref_number = ret.ref_number[:20]
    existing.edit_sequence = ret.edit_sequence[:20]
    existing.total = ret.total
    existing.memo = ret.memo
    existing.customer = ret.customer[:200]
    existing.posting_id = posting_id
    existing.set_id = set_id


def _spaced(name: str) -> str:
    """ "AccountsReceivable" → "Accounts Receivable" (the account types the wizard's suggestions know)."""
    out = []
    for index, char in enumerate(name):
        if index and char.isupper() and not name[index - 1].isupper():
            out.append(" ")
        out.append(char)
    return "".join(out)


def _entry_values(list_name: str, ret: Ret) -> dict[str, Any]:
    if list_name == "account":
        return {"kind": _spaced(ret.find("AccountType")), "special": ret.find("SpecialAccountType")}
    if list_name == "item":
        kind = ret.tag.removeprefix("Item").removesuffix("Ret") or "Item"
        return {"kind": kind, "fold_sku": fold(ret.find("ManufacturerPartNumber"))[:100]}
    if list_name == "customer":
        return {"fold_email": fold(ret.find("Email"))[:320]}
    return {}


def _store_list(
    session: Session, books_id: int, query_name: str, rets: Sequence[Ret], ticket: str, *, alias: str = ""
) -> None:
    """Upsert list entries from …Ret elements (one page of a list query, or an add's answer)."""
    list_name = LISTS[query_name]
    rets = [r for r in rets if r.list_id]
    if not rets:
        return
    existing = {
        row.list_id: row
        for row in session.scalars(
            select(QbdListEntry).where(
                QbdListEntry.books_id == books_id,
                QbdListEntry.list == list_name,
                QbdListEntry.list_id.in_([r.list_id for r in rets]),
            )
        )
    }
    for ret in rets:
        row = existing.get(ret.list_id)
        if row is None:
            row = QbdListEntry(books_id=books_id, list=list_name, list_id=ret.list_id, fold_alias="")
            session.add(row)
            existing[ret.list_id] = row
        name = ret.full_name or ret.name
        row.full_name = name[:400]
        row.fold_name = fold(name)[:400]
        if alias:
            row.fold_alias = fold(alias)[:400]
        row.edit_sequence = ret.edit_sequence[:20]
        row.is_active = ret.is_active
        if ticket:
            row.refreshed_by = ticket
        values = _entry_values(list_name, ret)
        row.kind = str(values.get("kind", row.kind or ""))[:40]
        row.special = str(values.get("special", row.special or ""))[:40]
        row.fold_sku = str(values.get("fold_sku", row.fold_sku or ""))
        row.fold_email = str(values.get("fold_email", row.fold_email or ""))
    session.flush()


def _drop_stale(session: Session, books_id: int, query_name: str, ticket: str) -> None:
    """A list read to its end: entries this session did not see are gone from the company file."""
    session.execute(
        delete(QbdListEntry).where(
            QbdListEntry.books_id == books_id,
            QbdListEntry.list == LISTS[query_name],
            QbdListEntry.refreshed_by != ticket,
        )
    )


def _ship_methods(session: Session, books_id: int) -> list[str]:
    """The company file's active ship methods (Ship Via list), as last read."""
    return list(
        session.scalars(
            select(QbdListEntry.full_name).where(
                QbdListEntry.books_id == books_id,
                QbdListEntry.list == "ship_method",
                QbdListEntry.is_active.is_(True),
            )
        )
    )


def _discount_accounts(session: Session, books_id: int) -> dict[str, str]:
    """Discount item name (folded, as Desktop names it) → the Item Discount account, from the settings of the
    channels that post to this company file: the discount item posts to that account."""
    found: dict[str, str] = {}
    channel_ids = session.scalars(select(Connection.id).where(Connection.books_id == books_id)).all()
    for channel_id in channel_ids:
        try:
            settings = load_settings(session, channel_id)
        except LedgerlinkError:
            continue
        if settings.accounts.item_discount:
            name = desktop_name(settings.discount_item_name, MAX_ITEM_NAME)
            found.setdefault(fold(name), settings.accounts.item_discount)
    return found


def _tax_account(session: Session, books_id: int) -> str | None:
    """The account a channel-tax item posts to: Sales Tax Payable, else another current liability."""
    accounts = session.scalars(
        select(QbdListEntry).where(QbdListEntry.books_id == books_id, QbdListEntry.list == "account")
    ).all()
    for row in accounts:
        if row.special == "SalesTaxPayable":
            return row.list_id
    for row in sorted(accounts, key=lambda r: r.full_name):
        if row.kind == "Other Current Liability":
            return row.list_id
    return None


def _summary(counts: Counter[str]) -> str:
    parts = [f"{counts.get('posted', 0)} documents posted"]
    changed = [f"{counts[k]} {k}" for k in ("updated", "voided", "deleted") if counts.get(k)]
    if changed:
        parts.append(", ".join(changed))
    if counts.get("failed"):
        parts.append(f"{counts['failed']} refused (see Sync Activity in ledgerlink)")
    added = counts.get("customers_added", 0) + counts.get("items_added", 0)
    if added:
        parts.append(f"{counts.get('customers_added', 0)} customers and {counts.get('items_added', 0)} items added")
    if counts.get("recovered_bound") or counts.get("recovered_answered"):
        parts.append("answers lost earlier were recovered")
    if counts.get("lists_refreshed"):
        parts.append("lists refreshed")
    return "ledgerlink: " + ", ".join(parts) + "."


def total_posted(session: Session, books_id: int) -> Decimal:
    """Σ posted totals of a Desktop connection (for reports and tests)."""
    value = session.scalar(
        select(func.coalesce(func.sum(Posting.posted_total), 0)).where(
            Posting.books_id == books_id, Posting.state == PostingState.POSTED
        )
    )
    return Decimal(str(value))
