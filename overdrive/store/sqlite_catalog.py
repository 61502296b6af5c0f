"""ItemCatalog on the embedded SQLite database."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from overdrive.domain.codec import ITEM_COLUMNS, item_from_row, item_to_row
from overdrive.domain.types import Item
from overdrive.store.sqlite_db import SqliteDatabase

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    text TEXT,
    image_url TEXT,
    video_url TEXT,
    audio_url TEXT,
    author_id TEXT,
    created_at REAL,
    tags BLOB NOT NULL,
    metadata BLOB
);
CREATE INDEX IF NOT EXISTS items_created ON items (created_at);
"""
_COLUMNS = ", ".join(ITEM_COLUMNS)
_UPSERT = f"INSERT OR REPLACE INTO items ({_COLUMNS}) VALUES ({', '.join('?' * len(ITEM_COLUMNS))})"


class SqliteItemCatalog:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def put(self, items: Sequence[Item]) -> None:
        rows = [item_to_row(i) for i in items]

        def job(c) -> None:  # return nothing: a cursor must not leave the writer thread
            c.executemany(_UPSERT, rows)

        await self._db.write(job)

    async def get(self, item_ids: Sequence[str]) -> dict[str, Item]:
        ids = list(dict.fromkeys(item_ids))
        if not ids:
            return {}

        def query(c) -> dict[str, Item]:
            found: dict[str, Item] = {}
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for row in c.execute(f"SELECT {_COLUMNS} FROM items WHERE id IN ({marks})", chunk):
                    found[row[0]] = item_from_row(row)
            return found

        return await self._db.read(query)

    async def delete(self, item_id: str) -> bool:
        deleted = await self._db.write(lambda c: c.execute("DELETE FROM items WHERE id = ?", (item_id,)).rowcount)
        return deleted > 0

    async def newest(self, limit: int) -> list[str]:
        rows = await self._db.read(
            lambda c: c.execute(
                "SELECT id FROM items ORDER BY created_at DESC LIMIT ?", (limit,)
            ).fetchall()
        )
        return [r[0] for r in rows]

    async def count(self) -> int:
        return await self._db.read(lambda c: c.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    def scan(self, *, batch_size: int = 10_000) -> Iterator[list[Item]]:
        last = ""
        while True:
            rows = self._db.read_sync(
                lambda c: c.execute(
                    f"SELECT {_COLUMNS} FROM items WHERE id > ? ORDER BY id LIMIT ?", (last, batch_size)
                ).fetchall()
            )
            if not rows:
                return
            last = rows[-1][0]
            yield [item_from_row(r) for r in rows]

    async def close(self) -> None:
        await self._db.close()
