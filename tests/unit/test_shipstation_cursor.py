"""ShipStation's modifyDate cursor in Pacific time: the conversions, and pulls across both DST changes.

The pulls run against the sandbox in process (Starlette's TestClient as the adapter's HTTP client), so no
port is opened; the sandbox compares dates as Pacific wall-clock time, as ShipStation does.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from starlette.testclient import TestClient

from ledgerlink.channels import shipstation as adapter
from ledgerlink.channels.base import Cursor, Window
from ledgerlink.channels.shipstation import (
    PACIFIC,
    ShipStationChannel,
    is_repeated_hour,
    modify_date_start,
    parse_pacific,
)
from ledgerlink.sandbox.shipstation import ShipStationSandbox, generate_orders

pytestmark = pytest.mark.unit


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


# -- conversions -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wall", "expected"),
    [
        ("2026-01-15T12:00:00.0000000", utc(2026, 1, 15, 20)),  # PST
        ("2026-07-15T13:00:00.0000000", utc(2026, 7, 15, 20)),  # PDT
        ("2026-07-15T13:00:00.1234567", utc(2026, 7, 15, 20, 0, 0, 123456)),  # 100 ns ticks floored
        # November's repeated hour: 01:30 happens at 08:30 and 09:30 UTC; the earlier one is taken.
        ("2026-11-01T01:30:00.0000000", utc(2026, 11, 1, 8, 30)),
        ("2026-11-01T00:59:59.0000000", utc(2026, 11, 1, 7, 59, 59)),
        ("2026-11-01T02:00:00.0000000", utc(2026, 11, 1, 10)),
        # March's gap: 02:30 never happens; the earliest instant it could mean is 01:30 PST.
        ("2026-03-08T02:30:00.0000000", utc(2026, 3, 8, 9, 30)),
        ("2026-03-08T01:59:00.0000000", utc(2026, 3, 8, 9, 59)),
        ("2026-03-08T03:00:00.0000000", utc(2026, 3, 8, 10)),
        # An explicit offset (which ShipStation does not send) is honoured.
        ("2026-11-01T01:30:00-08:00", utc(2026, 11, 1, 9, 30)),
    ],
)
def test_parse_pacific_takes_the_earliest_instant(wall: str, expected: datetime) -> None:
    assert parse_pacific(wall) == expected
    assert parse_pacific(wall).tzinfo is UTC


@pytest.mark.parametrize("wall", ["yesterday", "2026-02-30T00:00:00", ""])
def test_parse_pacific_refuses_what_is_not_a_time(wall: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message is fromisoformat's
        parse_pacific(wall)


def test_only_novembers_fall_back_hour_repeats() -> None:
    start = datetime(2026, 11, 1, 0, 0)
    repeated = [
        start + timedelta(minutes=m) for m in range(0, 180, 5) if is_repeated_hour(start + timedelta(minutes=m))
    ]
    assert repeated[0] == datetime(2026, 11, 1, 1, 0)
    assert repeated[-1] == datetime(2026, 11, 1, 1, 55)
    assert len(repeated) == 12
    # The March gap is not a repeated hour, nor is any ordinary time.
    assert not is_repeated_hour(datetime(2026, 3, 8, 2, 30))
    assert not is_repeated_hour(datetime(2026, 7, 1, 1, 30))


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (utc(2026, 7, 1, 19, 0, 5, 999999), "2026-07-01 12:00:05"),  # floored to the second, never rounded up
        (utc(2026, 11, 1, 7, 50), "2026-11-01 00:50:00"),
        # In the repeated hour (either pass of it), read from an hour earlier.
        (utc(2026, 11, 1, 8, 45), "2026-11-01 00:45:00"),
        (utc(2026, 11, 1, 9, 10), "2026-11-01 00:10:00"),
        (utc(2026, 11, 1, 10, 5), "2026-11-01 02:05:00"),
        # Around the March gap, wall time is simply later for later instants.
        (utc(2026, 3, 8, 9, 59), "2026-03-08 01:59:00"),
        (utc(2026, 3, 8, 10, 0), "2026-03-08 03:00:00"),
    ],
)
def test_modify_date_start(moment: datetime, expected: str) -> None:
    assert modify_date_start(Cursor(updated_at=moment)) == expected


def test_a_naive_cursor_is_read_as_utc() -> None:
    naive = datetime(2026, 7, 1, 19, 0)
    assert modify_date_start(Cursor(updated_at=naive)) == "2026-07-01 12:00:00"


# -- pulls across the DST changes ------------------------------------------------------------------------------


class Account:
    """A sandbox served in process, a few older orders, and a channel that pulls from a stored cursor."""

    def __init__(self) -> None:
        self.sandbox = ShipStationSandbox(rate_limit=10_000)
        self.sandbox.add_orders(generate_orders(12, seed=4, start=utc(2026, 1, 5, 12)))
        self.ids = sorted(self.sandbox.orders)
        self.http = TestClient(self.sandbox.app, base_url="http://shipstation.test")
        config = {**self.sandbox.credentials("http://shipstation.test"), "order_statuses": []}
        self.channel = ShipStationChannel(config, client=self.http, sleep=lambda _: None)
        self.stored: dict[str, str] | None = None
        self.expected: list[tuple[int, str]] = []

    def edit(self, index: int, at: datetime | str) -> None:
        order = self.sandbox.modify(self.ids[index], {"internalNotes": f"edit at {at}"}, at=at)
        self.expected.append((order["orderId"], order["modifyDate"]))

    def run(self) -> set[tuple[int, str]]:
        """One sync run: pull from the stored cursor and store each page's cursor, as the engine does."""
        cursor = None if self.stored is None else Cursor.from_json(self.stored)
        seen: set[tuple[int, str]] = set()
        for page in self.channel.pull(cursor, Window()):
            seen.update((o["orderId"], o["modifyDate"]) for o in page.orders)
            # As the engine does: the stored cursor only moves forward.
            stored = None if self.stored is None else Cursor.from_json(self.stored)
            if page.next_cursor is not None and (stored is None or stored.updated_at <= page.next_cursor.updated_at):
                self.stored = page.next_cursor.to_json()
        return seen

    def lost(self, seen: set[tuple[int, str]]) -> list[tuple[int, str]]:
        """Edits made since the previous check that this run did not read; clears the list."""
        missing = [edit for edit in self.expected if edit not in seen]
        self.expected.clear()
        return missing


@pytest.fixture
def account() -> Iterator[Account]:
    made = Account()
    yield made
    made.http.close()


def fall_back(account: Account) -> list[tuple[int, str]]:
    """Edits around 2026-11-01 01:30 (the hour that happens twice), with runs in between; what was lost."""
    lost = []
    account.run()
    account.edit(0, utc(2026, 11, 1, 7, 50))  # 00:50 PDT
    account.edit(1, utc(2026, 11, 1, 8, 20))  # 01:20 PDT
    account.edit(2, utc(2026, 11, 1, 8, 45))  # 01:45 PDT
    lost += account.lost(account.run())
    account.edit(3, utc(2026, 11, 1, 9, 10))  # 01:10 PST: later, yet an earlier wall time than the cursor
    account.edit(4, utc(2026, 11, 1, 9, 30))  # 01:30 PST
    lost += account.lost(account.run())
    account.edit(5, utc(2026, 11, 1, 9, 55))  # 01:55 PST
    lost += account.lost(account.run())
    account.edit(6, utc(2026, 11, 1, 10, 10))  # 02:10 PST
    account.edit(1, utc(2026, 11, 1, 10, 20))  # 02:20 PST, the same order again
    lost += account.lost(account.run())
    account.edit(7, utc(2026, 11, 1, 10, 40))
    lost += account.lost(account.run())
    return lost


def spring_forward(account: Account) -> list[tuple[int, str]]:
    """Edits around 2026-03-08 02:30 (the hour that never happens), with runs in between; what was lost."""
    lost = []
    account.run()
    account.edit(0, utc(2026, 3, 8, 9, 30))  # 01:30 PST
    account.edit(1, utc(2026, 3, 8, 9, 59, 30))  # 01:59:30 PST
    lost += account.lost(account.run())
    # An order stamped inside the gap (an import whose clock did not jump); it must not push the cursor on.
    account.edit(2, "2026-03-08T02:30:00.0000000")
    lost += account.lost(account.run())
    account.edit(3, "2026-03-08T02:45:00.0000000")
    account.edit(4, utc(2026, 3, 8, 10, 10))  # 03:10 PDT
    lost += account.lost(account.run())
    account.edit(5, utc(2026, 3, 8, 10, 30))  # 03:30 PDT
    lost += account.lost(account.run())
    return lost


def test_no_edit_in_the_repeated_november_hour_is_lost(account: Account) -> None:
    assert fall_back(account) == []
    # The stored cursor has moved past the repeated hour and is an aware UTC time.
    assert account.stored is not None
    assert Cursor.from_json(account.stored).updated_at == utc(2026, 11, 1, 10, 40)


def test_no_edit_around_the_march_gap_is_lost(account: Account) -> None:
    assert spring_forward(account) == []
    assert account.stored is not None
    assert Cursor.from_json(account.stored).updated_at == utc(2026, 3, 8, 10, 30)


def test_without_the_step_back_the_repeated_hour_loses_edits(account: Account, monkeypatch: pytest.MonkeyPatch) -> None:
    # The control: reading from the cursor's own wall time misses 01:10 and 01:30 PST, proving the test bites.
    monkeypatch.setattr(
        adapter,
        "modify_date_start",
        lambda cursor: adapter.pacific_wall(cursor.updated_at).strftime("%Y-%m-%d %H:%M:%S"),
    )
    lost = fall_back(account)
    assert [account.sandbox.orders[order_id]["orderId"] for order_id, _ in lost] == account.ids[3:5]


def test_reading_gap_times_as_standard_time_loses_edits(account: Account, monkeypatch: pytest.MonkeyPatch) -> None:
    # The control: taking 02:30 in the gap as 02:30 PST (= 03:30 PDT) jumps the cursor past 02:45 and 03:10.
    def standard(raw: str) -> datetime:
        return datetime.fromisoformat(raw).replace(tzinfo=PACIFIC).astimezone(UTC)

    monkeypatch.setattr(adapter, "parse_pacific", standard)
    lost = spring_forward(account)
    assert [order_id for order_id, _ in lost] == account.ids[3:5]
