"""One trainer, many servers: a trainer publishes model versions into the shared model store and
replicas started with OVERDRIVE_TRAINER=external serve each one without training themselves,
pass it their retrain and erasure requests, and answer every request during a swap."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from overdrive.api import create_app
from overdrive.config import Settings
from overdrive.data.synthetic import WorldConfig, generate_world
from overdrive.domain.codec import item_from_dict, signal_from_dict
from overdrive.models.collaborative_filtering import AdvancedCollaborativeFiltering
from overdrive.services.collaborative_service import CollaborativeModelService
from overdrive.store.sqlite_catalog import SCHEMA as CATALOG_SCHEMA, SqliteItemCatalog
from overdrive.store.sqlite_db import SqliteDatabase
from overdrive.store.sqlite_erasures import SCHEMA as ERASURES_SCHEMA, SqliteErasureList
from overdrive.store.sqlite_signal_log import SCHEMA as SIGNALS_SCHEMA, SqliteSignalLog
from overdrive.wiring import build_services
from tests.real_servers import app_env

pytestmark = pytest.mark.anyio

WORLD = WorldConfig(n_users=40, n_items=120, n_topics=4, n_days=8, signals_per_user=25, seed=5)


def _factory() -> AdvancedCollaborativeFiltering:
    return AdvancedCollaborativeFiltering(methods=("popularity", "item_cosine"), tune=False)


class Trainer:
    """A trainer over its own copy of the world (as `python -m overdrive.trainer` reads the topic)."""

    def __init__(self, folder: Path, model_dir: Path) -> None:
        self.log = SqliteSignalLog(SqliteDatabase(path=folder / "signals.sqlite3", schema=SIGNALS_SCHEMA))
        self.erasures = SqliteErasureList(SqliteDatabase(path=folder / "erasures.sqlite3", schema=ERASURES_SCHEMA))
        self.catalog = SqliteItemCatalog(SqliteDatabase(path=folder / "catalog.sqlite3", schema=CATALOG_SCHEMA))
        self.service = CollaborativeModelService(
            model_dir=model_dir, factory=_factory, history=self.log, erasures=self.erasures, catalog=self.catalog,
            retrain_interval_s=None, train_on_start=False, follow_every_s=0.05)

    async def fill(self) -> None:
        world = generate_world(WORLD)
        await self.catalog.put([item_from_dict(i) for i in world.items])
        await self.log.append([signal_from_dict(s) for s in world.signals])


def _replica(model_dir: Path) -> CollaborativeModelService:
    return CollaborativeModelService(
        model_dir=model_dir, factory=_factory, history=None, erasures=_NoErasures(), catalog=None,  # type: ignore[arg-type]
        retrain_interval_s=3600.0, train_on_start=True, trains=False, follow_every_s=0.05)


class _NoErasures:
    async def snapshot(self) -> dict[str, float]:
        return {}


async def _until(check, timeout_s: float = 20.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_replicas_serve_what_the_trainer_publishes_and_pass_it_their_requests(tmp_path: Path) -> None:
    model_dir = tmp_path / "models" / "collaborative"
    trainer = Trainer(tmp_path, model_dir)
    await trainer.fill()
    replicas = [_replica(model_dir), _replica(model_dir)]
    for replica in replicas:
        await replica.start()  # nothing published yet, and they never train themselves
    stop = asyncio.Event()
    answering = asyncio.create_task(trainer.service.answer_requests(stop))
    try:
        first = (await trainer.service.train_now(reason="first"))["version"]
        await _until(lambda: all(getattr(r.model(), "version", None) == first for r in replicas))
        assert all(r.status()["collaborative"]["trainer"] == "external" for r in replicas)

        # POST /models/train on a replica: a request the trainer answers with a new version.
        job = replicas[0].train(reason="POST /models/train")
        assert job["state"] == "requested"
        await _until(lambda: all(r.model().version != first for r in replicas))
        second = replicas[1].model().version
        assert trainer.service.model().version == second

        # An erasure: the replica masks the user at once, the trainer publishes a version without
        # them and deletes every older one.
        user = generate_world(WORLD).signals[0]["user_id"]
        assert user in replicas[0].model()._user_index
        await trainer.erasures.add(user, at=time.time())
        await trainer.log.erase_user(user)
        await replicas[0].forget_user(user)
        assert user not in replicas[0].model()._user_index
        await _until(lambda: all(r.model().version not in (first, second) for r in replicas))
        third = replicas[0].model().version
        assert trainer.service.model().version == third
        assert user not in replicas[1].model()._user_index
        # Replicas see a version once it is current; the older ones go right after.
        await _until(lambda: [p.name for p in (model_dir / "versions").iterdir()] == [third])
    finally:
        stop.set()
        await answering
        for service in (*replicas, trainer.service):
            await service.close()


def test_a_replica_answers_every_ranking_while_it_swaps_in_a_new_version(tmp_path: Path) -> None:
    model_dir = tmp_path / "models"
    env = app_env(tmp_path, MODEL_CACHE_DIR=str(model_dir), OVERDRIVE_TRAINER="external",
                  OVERDRIVE_MODEL_FOLLOW_SECONDS="0.1", OVERDRIVE_CF_METHODS="popularity,item_cosine",
                  OVERDRIVE_CF_TUNE="false", OVERDRIVE_CONTENT_FEATURES="false")
    world = generate_world(WORLD)
    trainer = Trainer(tmp_path, model_dir / "collaborative")
    with TestClient(create_app(build_services(Settings.load(env)))) as client:
        client.post("/items/batch", json={"items": world.items})
        client.post("/signals/batch", json={"signals": world.signals})
        assert client.get("/models/status").json()["collaborative"]["serving"] is None  # it never trains itself
        statuses: list[int] = []
        done = threading.Event()

        def rank() -> None:
            user = world.signals[0]["user_id"]
            while not done.is_set():
                statuses.append(client.post("/rank/for-you/enhanced", json={"user_id": user, "limit": 10}).status_code)

        ranking = threading.Thread(target=rank)
        ranking.start()
        try:
            async def publish_twice() -> list[str]:
                await trainer.fill()
                return [(await trainer.service.train_now(reason=f"v{n}"))["version"] for n in range(2)]

            versions = asyncio.run(publish_twice())
            deadline = time.monotonic() + 20
            while client.get("/models/status").json()["collaborative"]["serving"] is None or \
                    client.get("/models/status").json()["collaborative"]["serving"]["version"] != versions[-1]:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        finally:
            done.set()
            ranking.join()
        assert statuses and set(statuses) == {200}, set(statuses)
        assert client.post("/models/train").json()["collaborative"]["state"] == "requested"
        assert (model_dir / "collaborative" / "REQUESTED").exists()


def test_the_trainer_process_trains_on_the_topic_and_publishes(tmp_path: Path) -> None:
    """`python -m overdrive.trainer --once` against a real broker and Redis: every replica's
    signals (here produced by one bus) in, a version in the shared model store out."""
    import os
    import subprocess
    import sys

    from overdrive.store.redis_conn import RedisConnection
    from overdrive.store.redis_watermarks import RedisWatermarks
    from overdrive.stream.kafka_bus import KafkaSignalBus
    from tests import real_servers

    refused = subprocess.run([sys.executable, "-m", "overdrive.trainer", "--once"], capture_output=True, text=True,
                             env={**os.environ, **app_env(tmp_path)}, timeout=60)
    assert refused.returncode != 0 and "the trainer needs both" in refused.stderr, refused.stderr
    if why := real_servers.tansu_missing() or real_servers.shared_redis_missing():
        real_servers.unavailable(why)
    broker = real_servers.Tansu(log_dir=tmp_path).start()
    prefix = real_servers.unique_prefix("trainer")
    try:
        broker.create_topic("trained", partitions=2)

        async def produce() -> None:
            redis = RedisConnection(real_servers.SHARED_REDIS_URL)
            bus = KafkaSignalBus(bootstrap_servers=broker.bootstrap, topic="trained", partitions=2,
                                 watermarks=RedisWatermarks(connection=redis, topic="trained", prefix=prefix))
            await bus.start()
            try:
                await bus.publish([signal_from_dict(s) for s in generate_world(WORLD).signals])
            finally:
                await bus.close()
                await redis.close()

        asyncio.run(produce())
        env = {**os.environ, **app_env(tmp_path), "REDIS_URL": real_servers.SHARED_REDIS_URL,
               "OVERDRIVE_REDIS_PREFIX": prefix, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
               "OVERDRIVE_KAFKA_TOPIC": "trained", "OVERDRIVE_KAFKA_PARTITIONS": "2",
               "OVERDRIVE_CF_METHODS": "popularity,item_cosine", "OVERDRIVE_CF_TUNE": "false"}
        try:
            done = subprocess.run([sys.executable, "-m", "overdrive.trainer", "--once"], capture_output=True, text=True,
                                  env=env, timeout=180)
        except subprocess.TimeoutExpired as exc:  # say where it waited
            raise AssertionError(f"the trainer did not finish: {exc.stdout!r} {exc.stderr!r}") from None
        assert done.returncode == 0, done.stdout + done.stderr
        produced = len(generate_world(WORLD).signals)
        assert "'state': 'done'" in done.stdout and f"'signals': {produced}," in done.stdout, done.stdout
        assert (tmp_path / "models" / "collaborative" / "CURRENT").read_text().strip() in done.stdout
        assert "blend from history:" in done.stderr, done.stderr  # the after-fit step ran (too little here to fit)
    finally:
        broker.stop()
        real_servers.delete_prefix(real_servers.SHARED_REDIS_URL, prefix)


async def test_a_user_erased_while_the_trainer_fits_is_not_in_what_it_publishes(tmp_path: Path) -> None:
    """Another replica erases a user after the trainer read its snapshot: the version is masked,
    saved again, and the one that held them deleted."""
    model_dir = tmp_path / "models" / "collaborative"
    trainer = Trainer(tmp_path, model_dir)
    await trainer.fill()
    user = generate_world(WORLD).signals[0]["user_id"]
    real_snapshot = trainer.erasures.snapshot

    async def snapshot_then_erase() -> dict[str, float]:
        taken = await real_snapshot()
        if user not in taken:  # the erasure lands just after the trainer's snapshot
            await trainer.erasures.add(user, at=time.time())
        return taken

    trainer.service._erasures.snapshot = snapshot_then_erase  # type: ignore[method-assign]
    try:
        job = await trainer.service.train_now(reason="erasure race")
        assert job["state"] == "done" and job["masked_after_fit"] == 1, job
        assert user not in trainer.service.model()._user_index
        assert [p.name for p in (model_dir / "versions").iterdir()] == [job["version"]]
        reloaded = AdvancedCollaborativeFiltering.load(model_dir / "versions" / job["version"])
        assert user not in reloaded._user_index
    finally:
        await trainer.service.close()


def test_replicas_serve_the_blend_the_trainer_fits_on_history(tmp_path: Path) -> None:
    """The trainer's after-fit step (what `python -m overdrive.trainer` runs after each version)
    fits the blend on the history it trained on, into the shared model folder; a replica with
    OVERDRIVE_TRAINER=external, which never fits it, serves it within its follow interval."""
    from overdrive.wiring import _fit_history, _history_blend

    env = app_env(tmp_path, MODEL_CACHE_DIR=str(tmp_path / "models"), OVERDRIVE_TRAINER="external",
                  OVERDRIVE_MODEL_FOLLOW_SECONDS="0.1", OVERDRIVE_RANKING_WEIGHTS='{"freshness": 3.0}',
                  OVERDRIVE_CF_METHODS="ease,item_cosine,popularity", OVERDRIVE_CF_TUNE="false",
                  OVERDRIVE_CONTENT_FEATURES="false")
    settings = Settings.load(env)
    world = generate_world(WorldConfig(n_users=300, n_items=500, n_topics=6, n_days=14, signals_per_user=40, seed=3))
    late = sorted(s["timestamp"] for s in world.signals)[int(0.9 * len(world.signals))]
    # Creation dates that carry no signal (see test_blend_from_history): freshness earns ~0.
    rng = random.Random(0)
    items = {d["id"]: item_from_dict({**d, "created_at": late - rng.uniform(1, 2 * 86400)}) for d in world.items}
    signals = [signal_from_dict(s) for s in world.signals]
    model = AdvancedCollaborativeFiltering(methods=("ease", "item_cosine", "popularity"), tune=False)
    model.fit_signals(signals, items=items)

    with TestClient(create_app(build_services(settings))) as client:
        strategies = client.get("/rank/strategies").json()["strategies"]
        assert strategies["learned"] == strategies["enhanced"]  # nothing fitted yet
        _fit_history(_history_blend(settings, content=None))(signals, items, model)  # on the trainer
        saved = json.loads((tmp_path / "models" / "blend" / "history.json").read_text())
        assert saved["weights"]["freshness"] < 0.05 and saved["weights"]["collaborative"] > 0.1, saved["weights"]
        deadline = time.monotonic() + 20
        while client.get("/rank/strategies").json()["strategies"]["learned"] != saved["weights"]:
            assert time.monotonic() < deadline, "the replica did not pick up the trainer's fit"
            time.sleep(0.05)
        blend = client.get("/models/status").json()["blend"]
        assert blend["serving"] == "weights fitted from history" and blend["history_job"]["state"] == "loaded"
        assert blend["from_history"]["fitted_at"] == saved["fitted_at"]
        assert client.post("/rank/for-you/enhanced", json={"user_id": world.user_ids[0]}).json()["strategy"] == "learned"
