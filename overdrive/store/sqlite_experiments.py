"""Experiments in the embedded SQLite database: definitions and the exposure log."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import orjson

from overdrive.store.sqlite_db import SqliteDatabase

SCHEMA = """
CREATE TABLE IF NOT EXISTS experiments (id TEXT PRIMARY KEY, definition BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS exposures (
    seq INTEGER PRIMARY KEY,
    experiment TEXT NOT NULL,
    user_id TEXT NOT NULL,
    record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS exposures_experiment ON exposures (experiment, seq);
CREATE INDEX IF NOT EXISTS exposures_user ON exposures (user_id);
"""


class SqliteExperimentStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def put(self, experiment_id: str, definition: dict) -> None:
        blob = orjson.dumps(definition)
        await self._db.write(lambda c: c.execute(
            "INSERT OR REPLACE INTO experiments (id, definition) VALUES (?, ?)", (experiment_id, blob)))

    async def all(self) -> list[dict]:
        rows = await self._db.read(lambda c: c.execute("SELECT definition FROM experiments ORDER BY id").fetchall())
        return [orjson.loads(r[0]) for r in rows]

    async def delete(self, experiment_id: str) -> bool:
        def job(c) -> bool:  # noqa: ANN001
            c.execute("DELETE FROM exposures WHERE experiment = ?", (experiment_id,))
            return c.execute("DELETE FROM experiments WHERE id = ?", (experiment_id,)).rowcount > 0

        return await self._db.write(job)

    async def log_exposures(self, exposures: Sequence[dict]) -> None:
        rows = [(e["experiment"], e["user_id"], orjson.dumps(e)) for e in exposures]

        def job(c) -> None:  # noqa: ANN001 - return nothing: a cursor must not leave the writer thread
            c.executemany("INSERT INTO exposures (experiment, user_id, record) VALUES (?, ?, ?)", rows)

        await self._db.write(job)

    def exposures(self, experiment_id: str, *, batch_size: int = 10_000) -> Iterator[list[dict]]:
        last = 0
        while True:
            rows = self._db.read_sync(lambda c: c.execute(
                "SELECT seq, record FROM exposures WHERE experiment = ? AND seq > ? ORDER BY seq LIMIT ?",
                (experiment_id, last, batch_size)).fetchall())
            if not rows:
                return
            last = rows[-1][0]
            yield [orjson.loads(r[1]) for r in rows]

    async def user_exposures(self, user_id: str) -> list[dict]:
        rows = await self._db.read(lambda c: c.execute(
            "SELECT record FROM exposures WHERE user_id = ? ORDER BY seq", (user_id,)).fetchall())
        return [orjson.loads(r[0]) for r in rows]

    async def forget_user(self, user_id: str) -> int:
        return await self._db.write(lambda c: c.execute("DELETE FROM exposures WHERE user_id = ?", (user_id,)).rowcount)
