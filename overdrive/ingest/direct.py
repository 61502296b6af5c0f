"""The offline bulk path: validate a dataset and write it straight into an embedded data folder.

For backfills and benchmarks with the service stopped: rows go through the same wire models as
the HTTP API (so the same rows are refused) and into the same SQLite log and catalog, in large
transactions. The service replays the log into its live state when it next starts. The data
folder's lock keeps a running service and a direct load from sharing it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from overdrive.api.errors import field_path
from overdrive.data.importers import batches
from overdrive.api.schemas import ItemIn, SignalIn
from overdrive.store.data_dir_lock import DataDirLock
from overdrive.store.sqlite_catalog import SCHEMA as ITEMS_SCHEMA, SqliteItemCatalog
from overdrive.store.sqlite_db import SqliteDatabase
from overdrive.store.sqlite_signal_log import SCHEMA as SIGNALS_SCHEMA, SqliteSignalLog

_BATCH = 20_000


def _validated(model, rows: list[dict], first_row: int, now: float, what: str) -> list:  # noqa: ANN001
    out = []
    for n, row in enumerate(rows):
        try:
            out.append(model.model_validate(row).to_domain(now))
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ValueError(f"{what} row {first_row + n}: {field_path(('body', *err['loc']))}: {err['msg']}") from None
    return out


async def _load(data_dir: Path, items: Iterable[dict], signals: Iterable[dict]) -> dict:
    lock = DataDirLock(data_dir).acquire()
    db = SqliteDatabase(path=data_dir / "overdrive.sqlite3", schema=SIGNALS_SCHEMA + ITEMS_SCHEMA)
    catalog, log = SqliteItemCatalog(db), SqliteSignalLog(db)
    report = {"items": 0, "signals": 0, "duplicates": 0}
    try:
        started = time.perf_counter()
        for batch in batches(items, _BATCH):
            await catalog.put(_validated(ItemIn, batch, report["items"], time.time(), "item"))
            report["items"] += len(batch)
        report["items_s"] = time.perf_counter() - started
        started = time.perf_counter()
        seen = 0
        for batch in batches(signals, _BATCH):
            fresh = await log.append(_validated(SignalIn, batch, seen, time.time(), "signal"))
            seen += len(batch)
            report["signals"] += len(fresh)
            report["duplicates"] += len(batch) - len(fresh)
        report["signals_s"] = time.perf_counter() - started
    finally:
        await db.close()
        lock.release()
    return report


def ingest_directly(data_dir: Path, items: Iterable[dict], signals: Iterable[dict]) -> dict:
    """Write items then signals into `data_dir`; returns counts and seconds per part."""
    return asyncio.run(_load(data_dir, items, signals))
