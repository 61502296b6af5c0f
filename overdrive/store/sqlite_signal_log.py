"""SignalLog on the embedded SQLite database."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator, Mapping, Sequence

from overdrive.domain.codec import SIGNAL_COLUMNS, signal_from_row, signal_to_row
from overdrive.domain.types import Signal
from overdrive.store.sqlite_db import SqliteDatabase

SCHEMA = """
CREATE TABLE IF NOT EXISTS signals (
    seq INTEGER PRIMARY KEY,
    signal_id TEXT UNIQUE,
    user_id TEXT NOT NULL,
    content_id TEXT NOT NULL,
    signal_type TEXT NOT NULL,
    ts REAL NOT NULL,
    duration REAL,
    intensity REAL NOT NULL,
    metadata BLOB
);
CREATE INDEX IF NOT EXISTS signals_user ON signals (user_id);
CREATE TABLE IF NOT EXISTS applied_mark (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    seq INTEGER NOT NULL
);
"""
_COLUMNS = ", ".join(SIGNAL_COLUMNS)
_INSERT = f"INSERT INTO signals ({_COLUMNS}) VALUES ({', '.join('?' * len(SIGNAL_COLUMNS))})"


class SqliteSignalLog:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def append(self, signals: Sequence[Signal]) -> list[Signal]:
        return await self._db.write(lambda conn: _append(conn, signals))

    async def count(self) -> int:
        return await self._db.read(lambda c: c.execute("SELECT COUNT(*) FROM signals").fetchone()[0])

    async def last_position(self) -> int:
        """The position of the newest stored signal (0 when empty)."""
        return await self._db.read(lambda c: c.execute("SELECT COALESCE(MAX(seq), 0) FROM signals").fetchone()[0])

    async def applied_position(self) -> int | None:
        """The position up to which live state holds every signal, as last marked (None: never)."""
        row = await self._db.read(lambda c: c.execute("SELECT seq FROM applied_mark WHERE id = 0").fetchone())
        return None if row is None else row[0]

    async def mark_applied(self, position: int) -> None:
        """Record that every signal up to `position` is in live state (a mark never moves back)."""
        await self._db.write(lambda c: c.execute(
            "INSERT INTO applied_mark (id, seq) VALUES (0, ?) ON CONFLICT (id) DO UPDATE SET seq = MAX(seq, excluded.seq)",
            (position,)))

    def position(self) -> int:
        """`last_position`, for a caller without an event loop (a retrain in a child process)."""
        return self._db.read_sync(lambda c: c.execute("SELECT COALESCE(MAX(seq), 0) FROM signals").fetchone()[0])

    def scan(self, *, batch_size: int = 10_000, erased: Mapping[str, float] | None = None,
             after: int = 0, up_to: int | None = None) -> Iterator[list[Signal]]:
        """(`erased` is for the protocol: an erasure deletes the user's rows here.) `up_to`: stop
        at this position, so that a snapshot is exactly the signals logged up to it."""
        last, end = after, (1 << 62) if up_to is None else up_to
        while True:
            rows = self._db.read_sync(
                lambda c: c.execute(
                    f"SELECT seq, {_COLUMNS} FROM signals WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                    (last, end, batch_size),
                ).fetchall()
            )
            if not rows:
                return
            last = rows[-1][0]
            yield [signal_from_row(r[1:]) for r in rows]

    async def user_signals(self, user_id: str) -> list[Signal]:
        rows = await self._db.read(lambda c: c.execute(
            f"SELECT {_COLUMNS} FROM signals WHERE user_id = ? ORDER BY seq", (user_id,)).fetchall())
        return [signal_from_row(r) for r in rows]

    async def signals_of(self, user_ids: Collection[str]) -> dict[str, list[Signal]]:
        ids = list(dict.fromkeys(user_ids))

        def query(c) -> dict[str, list[Signal]]:  # noqa: ANN001
            out: dict[str, list[Signal]] = {u: [] for u in ids}
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                rows = c.execute(f"SELECT {_COLUMNS} FROM signals WHERE user_id IN ({','.join('?' * len(chunk))}) "
                                 "ORDER BY seq", chunk).fetchall()
                for row in rows:
                    out[row[1]].append(signal_from_row(row))
            return out

        return await self._db.read(query)

    def logged_like(self, signals: Sequence[Signal], *, up_to: int) -> list[Signal]:
        """The signals logged up to position `up_to` that may be among `signals`: the same id, or
        (for those without one) the same user and timestamp. Synchronous: a retrain's thread asks
        which of the signals applied meanwhile its child's snapshot held, without reading whole
        histories."""
        ids = list({s.signal_id for s in signals if s.signal_id is not None})
        unnamed = list({(s.user_id, s.timestamp) for s in signals if s.signal_id is None})
        rows: list[tuple] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows += self._db.read_sync(lambda c, chunk=chunk: c.execute(
                f"SELECT {_COLUMNS} FROM signals WHERE seq <= ? AND signal_id IN ({','.join('?' * len(chunk))})",
                (up_to, *chunk)).fetchall())
        for start in range(0, len(unnamed), 400):
            pairs = unnamed[start : start + 400]
            rows += self._db.read_sync(lambda c, pairs=pairs: c.execute(
                f"SELECT {_COLUMNS} FROM signals WHERE seq <= ? AND (user_id, ts) IN (VALUES {','.join(['(?, ?)'] * len(pairs))})",
                (up_to, *(v for pair in pairs for v in pair))).fetchall())
        return [signal_from_row(r) for r in rows]

    async def erase_user(self, user_id: str) -> int:
        """Rows deleted in one transaction (overwritten on disk: `secure_delete`), then the WAL is
        folded in and truncated and the file vacuumed, so no page of the database keeps them."""
        deleted = await self._db.write(lambda c: c.execute("DELETE FROM signals WHERE user_id = ?", (user_id,)).rowcount)
        await self._db.write_alone(_compact)
        return deleted

    async def ping(self) -> None:
        await self._db.read(lambda c: c.execute("SELECT 1 FROM signals LIMIT 1").fetchall())

    async def close(self) -> None:
        await self._db.close()


def _compact(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("VACUUM")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _append(conn: sqlite3.Connection, signals: Sequence[Signal]) -> list[Signal]:
    """Insert the signals whose ids are new; runs inside the writer's transaction."""
    ids = list({s.signal_id for s in signals if s.signal_id is not None})
    seen: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        seen.update(r[0] for r in conn.execute(f"SELECT signal_id FROM signals WHERE signal_id IN ({marks})", chunk))
    fresh: list[Signal] = []
    for s in signals:
        if s.signal_id is not None:
            if s.signal_id in seen:
                continue
            seen.add(s.signal_id)
        fresh.append(s)
    conn.executemany(_INSERT, [signal_to_row(s) for s in fresh])
    return fresh
