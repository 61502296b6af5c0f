"""The audit trail in the embedded SQLite database: one row per record, appended by the writer
thread, so reading the chain's head and appending after it is one transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import orjson

from overdrive.domain.audit import GENESIS, seal
from overdrive.store.sqlite_db import SqliteDatabase

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    principal TEXT,
    action TEXT NOT NULL,
    target TEXT,
    hash TEXT NOT NULL,
    record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_target ON audit (target, seq);
CREATE INDEX IF NOT EXISTS audit_principal ON audit (principal, seq);
"""


class SqliteAuditLog:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def append(self, fields: dict) -> dict:
        return await self._db.write(lambda conn: _append(conn, fields))

    async def query(self, *, target: str | None = None, principal: str | None = None, action: str | None = None,
                    since: float | None = None, until: float | None = None, limit: int = 100) -> list[dict]:
        where, args = [], []
        for column, value in (("target", target), ("principal", principal), ("action", action)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            where.append("at >= ?")
            args.append(since)
        if until is not None:
            where.append("at <= ?")
            args.append(until)
        sql = f"SELECT record FROM audit {'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY seq DESC LIMIT ?"
        rows = await self._db.read(lambda c: c.execute(sql, (*args, limit)).fetchall())
        return [orjson.loads(r[0]) for r in rows]

    def scan(self, *, batch_size: int = 10_000) -> Iterator[list[dict]]:
        last = 0
        while True:
            rows = self._db.read_sync(lambda c: c.execute(
                "SELECT seq, record FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (last, batch_size)).fetchall())
            if not rows:
                return
            last = rows[-1][0]
            yield [orjson.loads(r[1]) for r in rows]


def _append(conn: sqlite3.Connection, fields: dict) -> dict:
    head = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
    record = seal(fields, seq=seq, prev=prev)
    conn.execute("INSERT INTO audit (seq, at, principal, action, target, hash, record) VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (seq, record["at"], record["principal"], record["action"], record["target"], record["hash"],
                  orjson.dumps(record)))
    return record
