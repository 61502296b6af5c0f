"""A retrain replays the signals applied while it ran, except those its log snapshot already has."""

from __future__ import annotations

import asyncio
import functools
import os
import time
from pathlib import Path

import pytest

from overdrive.domain.types import Item, Signal
from overdrive.models.collaborative_filtering import AdvancedCollaborativeFiltering, ArtifactStore
from overdrive.services.collaborative_service import CollaborativeModelService, fit_and_save
from overdrive.services.retrain_apart import ChildProcessRetrain, Fitted
from overdrive.store.sqlite_catalog import SCHEMA as ITEMS_SCHEMA, SqliteItemCatalog
from overdrive.store.sqlite_db import SqliteDatabase
from overdrive.store.sqlite_erasures import SCHEMA as ERASURES_SCHEMA, SqliteErasureList
from overdrive.store.sqlite_signal_log import SCHEMA as SIGNALS_SCHEMA, SqliteSignalLog

pytestmark = pytest.mark.anyio


SCHEMA = ITEMS_SCHEMA + SIGNALS_SCHEMA + ERASURES_SCHEMA


def _popularity() -> AdvancedCollaborativeFiltering:
    return AdvancedCollaborativeFiltering(methods=("popularity",), tune=False)


def _fit_in_child(db_path: Path, model_dir: Path, erased: dict[str, float]) -> Fitted:
    """What the composition root's child retrain does, on this test's files."""
    db = SqliteDatabase(path=db_path, schema=SCHEMA)
    try:
        log = SqliteSignalLog(db)
        position = log.position()
        store = ArtifactStore(root=model_dir, loader=AdvancedCollaborativeFiltering.load)
        _, version, signals, items = fit_and_save(_popularity, store, log.scan(up_to=position), SqliteItemCatalog(db).scan())
        return Fitted(version=version, position=position, stats={"signals": len(signals), "fitted_by_process": os.getpid()})
    finally:
        asyncio.run(db.close())


@pytest.mark.parametrize("where", ["thread", "child process"])
async def test_signals_logged_before_the_snapshot_are_not_counted_twice(anyio_backend: str, tmp_path: Path,
                                                                        where: str) -> None:
    db = SqliteDatabase(path=tmp_path / "db.sqlite3", schema=SCHEMA)
    catalog, log = SqliteItemCatalog(db), SqliteSignalLog(db)
    now = time.time()
    await catalog.put([Item(id=f"i{n}", created_at=now) for n in range(20)])
    history = [Signal(user_id=f"u{u}", signal_type="like", content_id=f"i{(u * 3 + k) % 20}", timestamp=now - 60 + k)
               for u in range(10) for k in range(4)]
    acknowledged = [Signal(user_id="u1", signal_type="view", content_id="i7", timestamp=now),
                    Signal(user_id="u2", signal_type="like", content_id="i9", timestamp=now, signal_id="s-1")]
    await log.append(history + acknowledged)  # logged, not yet applied when the retrain starts
    apart = None if where == "thread" else ChildProcessRetrain(
        target=functools.partial(_fit_in_child, tmp_path / "db.sqlite3", tmp_path / "models"),
        logged=lambda late, position: log.logged_like(late, up_to=position))
    service = CollaborativeModelService(
        model_dir=tmp_path / "models", catalog=catalog, history=log, erasures=SqliteErasureList(db), retrain_interval_s=None,
        train_on_start=False, factory=_popularity, apart=apart,
    )
    await service.start()
    try:
        service.train(reason="test")
        newer = Signal(user_id="u1", signal_type="like", content_id="i8", timestamp=now + 1)  # logged after the snapshot
        service.observe([*acknowledged, newer])  # the processor applies all three while the retrain runs
        while service.status()["collaborative"]["last_training"]["state"] == "running":
            await asyncio.sleep(0.02)
        job = service.status()["collaborative"]["last_training"]
        assert job["state"] == "done" and job["signals"] == len(history) + 2
        assert job["replayed_after_fit"] == 1  # just `newer`
        assert (job.get("fitted_by_process", os.getpid()) == os.getpid()) == (where == "thread")
        assert service.model().version == job["version"]
        assert service.model().status()["pending_interactions"] == 1
    finally:
        await service.close()
        await log.close()


async def test_the_log_says_which_signals_it_held_up_to_a_position(anyio_backend: str, tmp_path: Path) -> None:
    db = SqliteDatabase(path=tmp_path / "db.sqlite3", schema=SCHEMA)
    log = SqliteSignalLog(db)
    try:
        now = time.time()
        named = Signal(user_id="u1", signal_type="like", content_id="i1", timestamp=now, signal_id="s-1")
        unnamed = Signal(user_id="u1", signal_type="view", content_id="i2", timestamp=now + 1)
        other = Signal(user_id="u2", signal_type="view", content_id="i2", timestamp=now + 1)  # same time, someone else
        await log.append([named, unnamed, other])
        position = log.position()
        later = Signal(user_id="u1", signal_type="view", content_id="i3", timestamp=now + 2)
        await log.append([later, Signal(user_id="u1", signal_type="like", content_id="i1", timestamp=now, signal_id="s-2")])
        asked = [named, unnamed, later, Signal(user_id="u1", signal_type="like", content_id="i1", timestamp=now, signal_id="s-2")]
        held = log.logged_like(asked, up_to=position)
        assert sorted((s.signal_id or "", s.content_id) for s in held) == [("", "i2"), ("s-1", "i1")]
        assert log.logged_like(asked, up_to=log.position()) and log.logged_like([], up_to=position) == []
    finally:
        await log.close()


async def test_items_written_while_a_retrain_runs_reach_the_new_model(anyio_backend: str, tmp_path: Path) -> None:
    db = SqliteDatabase(path=tmp_path / "db.sqlite3", schema=SCHEMA)
    catalog, log = SqliteItemCatalog(db), SqliteSignalLog(db)
    now = time.time()
    await catalog.put([Item(id=f"i{n}", tags=(f"t{n % 3}",), created_at=now) for n in range(20)])
    await log.append([Signal(user_id=f"u{u}", signal_type="like", content_id=f"i{(u * 3 + k) % 20}", timestamp=now - 60 + k)
                      for u in range(10) for k in range(4)])
    service = CollaborativeModelService(
        model_dir=tmp_path / "models", catalog=catalog, history=log, erasures=SqliteErasureList(db), retrain_interval_s=None,
        train_on_start=False, factory=_popularity,
    )
    await service.start()
    try:
        service.train(reason="test")
        late = Item(id="late", tags=("t1",), created_at=now)  # not in the catalog snapshot the retrain read
        service.add_items([late])
        while service.status()["collaborative"]["last_training"]["state"] == "running":
            await asyncio.sleep(0.02)
        assert service.status()["collaborative"]["last_training"]["state"] == "done"
        model = service.model()
        assert "late" in model._new_items  # scored from its content anchors, like an item written after the fit
        assert "late" in dict(model.recommend("u1", 25))
        service.add_items([Item(id="later", tags=("t2",), created_at=now)])  # after: handed to the served model
        deadline = time.monotonic() + 5
        while "later" not in model._new_items:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
    finally:
        await service.close()
        await log.close()
