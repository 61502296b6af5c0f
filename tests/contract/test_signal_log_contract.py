"""SignalLog contract: every backend must behave exactly like this.

The backend comes from the `signal_log` / `signal_log_factory` fixtures (tests/contract/conftest.py).
The last section checks the embedded backend's group-commit writer directly.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from overdrive.domain.errors import BackendUnavailable
from overdrive.domain.types import Signal
from overdrive.store.protocols import SignalLog

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0


def sig(
    n: int,
    *,
    user: str = "u1",
    content: str | None = None,
    stype: str = "view",
    ts: float | None = None,
    sid: str | None = "auto",
    **extra,
) -> Signal:
    return Signal(
        user_id=user,
        signal_type=stype,
        content_id=content if content is not None else f"c{n}",
        timestamp=T0 + n if ts is None else ts,
        signal_id=f"s{n}" if sid == "auto" else sid,
        **extra,
    )


def scan_all(log: SignalLog, batch_size: int = 10_000) -> list[list[Signal]]:
    return list(log.scan(batch_size=batch_size))


def flat(batches: list[list[Signal]]) -> list[Signal]:
    return [s for b in batches for s in b]


# ---------------------------------------------------------------------------------- append


async def test_empty_log(signal_log: SignalLog) -> None:
    assert await signal_log.count() == 0
    assert scan_all(signal_log) == []
    assert await signal_log.append([]) == []
    await signal_log.ping()


async def test_append_returns_all_new_signals_in_order(signal_log: SignalLog) -> None:
    batch = [sig(1), sig(2), sig(3, sid=None)]
    assert await signal_log.append(batch) == batch
    assert await signal_log.count() == 3


async def test_duplicate_ids_across_calls_are_dropped(signal_log: SignalLog) -> None:
    await signal_log.append([sig(1), sig(2)])
    # A retry that repeats s1/s2 (even with different content) and adds s3.
    retry = [sig(1, stype="like"), sig(3), sig(2, content="other")]
    assert await signal_log.append(retry) == [sig(3)]
    assert await signal_log.count() == 3
    # The first write wins: the stored s1 is still a view.
    assert [s.signal_type for s in flat(scan_all(signal_log))] == ["view", "view", "view"]
    assert await signal_log.append([sig(1), sig(2), sig(3)]) == []
    assert await signal_log.count() == 3


async def test_duplicate_ids_within_one_call_are_dropped(signal_log: SignalLog) -> None:
    first = sig(1)
    batch = [first, sig(2), sig(1, stype="like"), sig(2), sig(4)]
    fresh = await signal_log.append(batch)
    assert fresh == [first, sig(2), sig(4)]
    assert await signal_log.count() == 3


async def test_signals_without_id_are_never_deduplicated(signal_log: SignalLog) -> None:
    same = sig(1, sid=None)
    assert await signal_log.append([same, same]) == [same, same]
    assert await signal_log.append([same]) == [same]
    assert await signal_log.count() == 3


async def test_large_batch_with_many_duplicates(signal_log: SignalLog) -> None:
    # More ids than one SQL parameter chunk, half of them already stored.
    first = [sig(n) for n in range(0, 1200, 2)]
    await signal_log.append(first)
    second = [sig(n) for n in range(1200)]
    fresh = await signal_log.append(second)
    assert [s.signal_id for s in fresh] == [f"s{n}" for n in range(1, 1200, 2)]
    assert await signal_log.count() == 1200


async def test_every_field_roundtrips(signal_log: SignalLog) -> None:
    full = Signal(
        user_id="u-ü",
        signal_type="dwell",
        content_id="item/1",
        timestamp=T0 + 0.125,
        duration=42.5,
        intensity=0.75,
        signal_id="sig-full",
        metadata={"source": "feed", "position": 3, "nested": {"a": [1, 2]}},
    )
    bare = Signal(user_id="u-ü", signal_type="like", content_id="item/2", timestamp=T0 + 1)
    await signal_log.append([full, bare])
    assert flat(scan_all(signal_log)) == [full, bare]


# ------------------------------------------------------------------------------- scan/count


async def test_scan_yields_everything_in_append_order_in_batches(signal_log: SignalLog) -> None:
    # Timestamps deliberately not in append order: scan follows append order.
    appended = [sig(n, ts=T0 - n, user=f"u{n % 3}", sid=None if n % 4 == 0 else "auto") for n in range(11)]
    await signal_log.append(appended[:4])
    await signal_log.append(appended[4:5])
    await signal_log.append(appended[5:])
    batches = scan_all(signal_log, batch_size=3)
    assert [len(b) for b in batches] == [3, 3, 3, 2]
    assert flat(batches) == appended
    assert [len(b) for b in scan_all(signal_log, batch_size=11)] == [11]
    assert flat(scan_all(signal_log, batch_size=1)) == appended
    assert await signal_log.count() == 11


async def test_scan_is_restartable(signal_log: SignalLog) -> None:
    await signal_log.append([sig(n) for n in range(5)])
    assert flat(scan_all(signal_log, batch_size=2)) == flat(scan_all(signal_log, batch_size=2))


# ------------------------------------------------------------------------------ durability


async def test_data_survives_close_and_reopen(signal_log_factory, store_location: Path) -> None:
    stored = [sig(1), sig(2, stype="like"), sig(3, sid=None)]
    async with signal_log_factory(store_location) as log:
        await log.append(stored)
    async with signal_log_factory(store_location) as log:
        assert await log.count() == 3
        assert flat(scan_all(log)) == stored
        # Deduplication remembers ids written before the restart.
        assert await log.append([sig(1), sig(4)]) == [sig(4)]
    async with signal_log_factory(store_location) as log:
        assert await log.count() == 4


async def test_closed_log_refuses_with_backend_unavailable(signal_log_factory, store_location: Path) -> None:
    async with signal_log_factory(store_location) as log:
        await log.append([sig(1)])
    # The context manager closed it; closing again is harmless.
    await log.close()
    with pytest.raises(BackendUnavailable):
        await log.append([sig(2)])
    with pytest.raises(BackendUnavailable):
        await log.ping()


# ----------------------------------------------------------------------------- concurrency


async def test_concurrent_appends_all_land_exactly_once(signal_log: SignalLog) -> None:
    signals = [sig(n, user=f"u{n % 7}") for n in range(200)]
    results = await asyncio.gather(*(signal_log.append([s]) for s in signals))
    assert all(r == [s] for r, s in zip(results, signals, strict=True))
    assert await signal_log.count() == 200
    stored = flat(scan_all(signal_log))
    assert sorted(s.signal_id for s in stored) == sorted(s.signal_id for s in signals)


async def test_concurrent_retries_of_the_same_signal_land_once(signal_log: SignalLog) -> None:
    # 20 distinct signals, each sent 10 times concurrently (client retries racing each other).
    sends = [sig(n % 20) for n in range(200)]
    results = await asyncio.gather(*(signal_log.append([s]) for s in sends))
    accepted = [s.signal_id for r in results for s in r]
    assert sorted(accepted) == sorted(f"s{n}" for n in range(20))
    assert await signal_log.count() == 20


# ------------------------------------------------- embedded backend: the group-commit writer


@pytest.fixture
async def sqlite_db(anyio_backend: str, tmp_path: Path):
    from overdrive.store.sqlite_db import SqliteDatabase

    db = SqliteDatabase(path=tmp_path / "db.sqlite3", schema="CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER);")
    try:
        yield db
    finally:
        await db.close()


async def _one_group(db, jobs) -> list:
    """Run `jobs` as one group commit: hold the writer on a gate job while they queue."""
    gate = threading.Event()
    held = db.write(lambda c: gate.wait(10))
    held_task = asyncio.ensure_future(held)
    await asyncio.sleep(0.05)  # the writer is now inside the gate job
    tasks = [asyncio.ensure_future(db.write(job)) for job in jobs]
    await asyncio.sleep(0)  # every job is queued behind the gate
    gate.set()
    await held_task
    return await asyncio.gather(*tasks, return_exceptions=True)


async def test_group_commit_failing_job_rolls_back_alone(sqlite_db) -> None:
    class Boom(Exception):
        pass

    def good(k: str):
        return lambda c: c.execute("INSERT INTO t VALUES (?, 1)", (k,)).rowcount

    def bad(c):
        c.execute("INSERT INTO t VALUES ('bad', 1)")
        raise Boom("job failed")

    def sql_error(c):
        c.execute("INSERT INTO t VALUES ('half', 1)")
        c.execute("INSERT INTO t VALUES ('a', 2)")  # primary-key conflict: an sqlite3 error

    results = await _one_group(sqlite_db, [good("a"), bad, good("b"), sql_error, good("c")])
    assert results[0] == 1 and results[2] == 1 and results[4] == 1
    assert isinstance(results[1], Boom)
    assert isinstance(results[3], sqlite3.IntegrityError)
    rows = await sqlite_db.read(lambda c: c.execute("SELECT k, v FROM t ORDER BY k").fetchall())
    assert rows == [("a", 1), ("b", 1), ("c", 1)]


async def test_group_commit_only_good_jobs_reach_disk(sqlite_db, tmp_path: Path) -> None:
    from overdrive.store.sqlite_db import SqliteDatabase

    def bad(c):
        c.execute("INSERT INTO t VALUES ('bad', 1)")
        raise RuntimeError("no")

    await _one_group(sqlite_db, [lambda c: c.execute("INSERT INTO t VALUES ('x', 1)"), bad])
    await sqlite_db.close()
    again = SqliteDatabase(path=tmp_path / "db.sqlite3", schema="CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v INTEGER);")
    try:
        assert await again.read(lambda c: c.execute("SELECT k FROM t").fetchall()) == [("x",)]
    finally:
        await again.close()


# ----------------------------------------------------------------------------------- privacy


async def test_user_signals_and_erasure(signal_log: SignalLog) -> None:
    mine = [sig(n, user="gone", metadata={"note": "private-marker-gone"}) for n in range(3)]
    await signal_log.append([sig(10), *mine, sig(11)])
    assert await signal_log.user_signals("gone") == mine
    assert await signal_log.erase_user("gone") == 3
    assert await signal_log.user_signals("gone") == []
    assert [s.signal_id for s in flat(scan_all(signal_log))] == ["s10", "s11"]
    assert await signal_log.count() == 2
    assert await signal_log.erase_user("gone") == 0  # idempotent
    assert (await signal_log.append(mine)) == mine  # their ids are free again: a new user


async def test_erased_rows_leave_no_bytes_in_the_file(signal_log_factory, tmp_path: Path) -> None:
    """`VACUUM` and a truncated WAL: the erased user's text is nowhere on disk."""
    async with signal_log_factory(tmp_path) as log:
        await log.append([sig(n, user="zebra-erased-user", metadata={"email": "zebra@example.org"}) for n in range(50)])
        await log.append([sig(100 + n) for n in range(50)])
        await log.erase_user("zebra-erased-user")
    for f in tmp_path.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert b"zebra" not in data, f


# ---------------------------------------------------------------------------- applied mark


async def test_positions_grow_and_the_applied_mark_never_moves_back(signal_log: SignalLog) -> None:
    assert await signal_log.last_position() == 0 and await signal_log.applied_position() is None
    await signal_log.append([sig(n) for n in range(3)])
    first = await signal_log.last_position()
    await signal_log.append([sig(n) for n in range(3, 5)])
    last = await signal_log.last_position()
    assert last > first > 0
    assert [s.signal_id for s in flat(list(signal_log.scan(after=first)))] == ["s3", "s4"]
    assert flat(list(signal_log.scan(after=last))) == []
    await signal_log.mark_applied(last)
    await signal_log.mark_applied(first)  # a late, lower mark
    assert await signal_log.applied_position() == last
