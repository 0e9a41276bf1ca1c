"""Reading what changed in a QuickBooks Online company with Change Data Capture, in windows that stay whole.

CDC (`GET /cdc?entities=…&changedSince=…`) has only a lower bound, looks back at most 30 days, and answers at
most 1,000 objects *shared by every entity asked for*; a saturated answer says nothing about what was left out,
so it is not a safe checkpoint. `CdcReader.read` therefore:

1. asks for every entity at once; an answer under the cap is complete up to the server's `time`: the next
   window starts there, less an overlap for writes committed late once the reader has caught up (rows read
   twice are harmless to a caller that compares SyncTokens);
2. on a saturated answer for several entities, asks for each entity alone;
3. on a saturated answer for one entity, reads a bounded window instead: the longest `[since, until)` that a
   `COUNT(*)` query says holds fewer than 1,000 of that entity, found by halving the span (binary search),
   and the live rows of that window are read with the query API (which pages and takes both bounds). The
   deletion stubs of the saturated answer that fall in the window are kept, but others may have been cut:
   `deletions_complete` is then False and the caller checks the ids it cares about with `existing_ids`.

Each call covers one window; the caller loops (`caught_up`) and stores `next_since` after it has handled the
changes, so a crash re-reads a window and never skips one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ledgerlink.books.qbo.client import QboClient, one_of, quote, select
from ledgerlink.domain.errors import PermanentError

CDC_MAX_OBJECTS = 1000
CDC_LOOKBACK = timedelta(days=30)
# Stay clear of the 30-day edge: QBO counts from its own clock and a request takes time to arrive.
LOOKBACK_MARGIN = timedelta(minutes=10)
DEFAULT_OVERLAP = timedelta(minutes=2)
MIN_WINDOW = timedelta(seconds=1)  # MetaData.LastUpdatedTime has whole seconds
MAX_IN_VALUES = 100


@dataclass(frozen=True, slots=True)
class Change:
    """One changed (or deleted) object."""

    entity: str
    id: str
    deleted: bool
    row: dict[str, Any]
    updated_at: datetime | None

    @property
    def sync_token(self) -> str:
        return str(self.row.get("SyncToken") or "")


@dataclass(slots=True)
class CdcBatch:
    """One window's changes and where the next window starts."""

    since: datetime
    next_since: datetime
    changes: list[Change] = field(default_factory=list)
    deletions_complete: bool = True
    caught_up: bool = True
    lookback_clamped: bool = False
    requests: int = 0


class CdcReader:
    """CDC on one company through its `QboClient` (pacing, token refresh and retries are the client's)."""

    def __init__(
        self,
        client: QboClient,
        *,
        cap: int = CDC_MAX_OBJECTS,
        overlap: timedelta = DEFAULT_OVERLAP,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.client = client
        self.cap = cap
        self.overlap = overlap
        self.clock = clock or client.clock

    def read(self, entities: Sequence[str], since: datetime) -> CdcBatch:
        """The changes of `entities` in one window starting at `since` (aware)."""
        if not entities:
            raise ValueError("name at least one entity")
        since = _aware(since)
        oldest = self.clock() - CDC_LOOKBACK + LOOKBACK_MARGIN
        clamped = since < oldest
        if clamped:
            since = oldest
        batch = self._read(list(entities), since)
        batch.lookback_clamped = clamped
        if batch.caught_up:
            # Only at the tail: rows committed late may carry a LastUpdatedTime a little in the past. (Within a
            # backlog the next window starts exactly where this one ended, or a burst would be re-read forever.)
            batch.next_since = max(since, batch.next_since - self.overlap)
        return batch

    def _read(self, entities: list[str], since: datetime) -> CdcBatch:
        rows, stamp = self._cdc(entities, since)
        total = sum(len(found) for found in rows.values())
        if total < self.cap:
            changes = [c for entity in entities for c in _changes(entity, rows.get(entity, []))]
            return CdcBatch(since, max(since, stamp), changes, requests=1)
        if len(entities) > 1:
            parts = [self._read([entity], since) for entity in entities]
            return CdcBatch(
                since,
                min(p.next_since for p in parts),
                [c for p in parts for c in p.changes],
                deletions_complete=all(p.deletions_complete for p in parts),
                caught_up=all(p.caught_up for p in parts),
                requests=1 + sum(p.requests for p in parts),
            )
        entity = entities[0]
        until, requests = self._window(entity, since, stamp)
        live = self.client.query(
            select(
                entity,
                f"MetaData.LastUpdatedTime >= {quote(_iso(since))}",
                f"MetaData.LastUpdatedTime < {quote(_iso(until))}",
            )
            + " ORDERBY MetaData.LastUpdatedTime"
        )
        stubs = [c for c in _changes(entity, rows.get(entity, [])) if c.deleted and _inside(c, since, until)]
        changes = [*_changes(entity, live), *stubs]
        caught_up = until >= stamp
        return CdcBatch(
            since,
            max(since, stamp) if caught_up else until,
            changes,
            deletions_complete=False,
            caught_up=caught_up,
            requests=1 + requests + 1,
        )

    def _window(self, entity: str, since: datetime, stamp: datetime) -> tuple[datetime, int]:
        """The end of the longest window `[since, end)` holding fewer than `cap` of `entity`, and the requests
        it took: the span is halved (a binary search on `COUNT(*)`) down to a second. When one second alone
        holds `cap` or more, that second is the window (the query API pages through it)."""
        good, bad = since, stamp
        requests = 0
        while bad - good > MIN_WINDOW:
            middle = good + timedelta(seconds=max(1, int((bad - good).total_seconds() / 2)))
            if middle >= bad:
                break
            requests += 1
            if self._count(entity, since, middle) < self.cap:
                good = middle
            else:
                bad = middle
        if good <= since:
            return min(stamp, since + MIN_WINDOW), requests
        return good, requests

    def _count(self, entity: str, since: datetime, until: datetime) -> int:
        text = (
            f"SELECT COUNT(*) FROM {entity} WHERE MetaData.LastUpdatedTime >= {quote(_iso(since))} "  # noqa: S608 - QBO's query language, values quoted
            f"AND MetaData.LastUpdatedTime < {quote(_iso(until))}"
        )
        answer = self.client.get("query", {"query": text})
        response = answer.get("QueryResponse")
        count = response.get("totalCount") if isinstance(response, Mapping) else None
        if isinstance(count, bool) or not isinstance(count, int):
            raise PermanentError(f"QuickBooks Online answered a COUNT query without a count: {answer!r}"[:300])
        return count

    def _cdc(self, entities: list[str], since: datetime) -> tuple[dict[str, list[dict[str, Any]]], datetime]:
        answer = self.client.get("cdc", {"entities": ",".join(entities), "changedSince": _iso(since)})
        rows: dict[str, list[dict[str, Any]]] = {}
        for block in answer.get("CDCResponse") or []:
            if not isinstance(block, Mapping):
                continue
            for response in block.get("QueryResponse") or []:
                if not isinstance(response, Mapping):
                    continue
                for key, value in response.items():
                    if isinstance(value, list):
                        rows.setdefault(_canonical(key, entities), []).extend(r for r in value if isinstance(r, dict))
        stamp = _parse(answer.get("time")) or self.clock()
        return rows, _aware(stamp)

    def existing_ids(self, entity: str, ids: Iterable[str]) -> set[str]:
        """Which of `ids` still exist (a deletion cut from a saturated answer shows up as a missing id)."""
        wanted = sorted({i for i in ids if i})
        found: set[str] = set()
        for start in range(0, len(wanted), MAX_IN_VALUES):
            chunk = wanted[start : start + MAX_IN_VALUES]
            rows = self.client.query(select(entity, one_of("Id", chunk)))
            found.update(str(row.get("Id")) for row in rows)
        return found


def _changes(entity: str, rows: Iterable[Mapping[str, Any]]) -> list[Change]:
    out = []
    for row in rows:
        doc_id = str(row.get("Id") or "")
        if not doc_id:
            continue
        meta = row.get("MetaData")
        updated = _parse(meta.get("LastUpdatedTime")) if isinstance(meta, Mapping) else None
        deleted = str(row.get("status") or "").casefold() == "deleted"
        out.append(Change(entity, doc_id, deleted, dict(row), updated))
    return out


def _inside(change: Change, since: datetime, until: datetime) -> bool:
    return change.updated_at is None or since <= change.updated_at < until


def _canonical(key: str, entities: Sequence[str]) -> str:
    for entity in entities:
        if entity.casefold() == key.casefold():
            return entity
    return key


def _parse(raw: object) -> datetime | None:
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        return _aware(datetime.fromisoformat(raw.strip()))
    except ValueError:
        return None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    """Whole seconds with the offset, as QBO writes LastUpdatedTime (flooring only reads a little more)."""
    return _aware(moment).astimezone(UTC).replace(microsecond=0).isoformat()
