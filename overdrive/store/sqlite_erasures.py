"""The erasure list in the embedded SQLite database (the signal rows themselves are deleted; the
list keeps what replays and retrains must leave out even so, by digest)."""

from __future__ import annotations

from overdrive.domain.privacy import user_digest
from overdrive.store.sqlite_db import SqliteDatabase

SCHEMA = """
CREATE TABLE IF NOT EXISTS erased_users (digest TEXT PRIMARY KEY, erased_at REAL NOT NULL);
"""


class SqliteErasureList:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def add(self, user_id: str, *, at: float) -> None:
        digest = user_digest(user_id)
        await self._db.write(lambda c: c.execute(
            "INSERT INTO erased_users (digest, erased_at) VALUES (?, ?) "
            "ON CONFLICT (digest) DO UPDATE SET erased_at = max(erased_at, excluded.erased_at)", (digest, at)))

    async def snapshot(self) -> dict[str, float]:
        return dict(await self._db.read(lambda c: c.execute("SELECT digest, erased_at FROM erased_users").fetchall()))
