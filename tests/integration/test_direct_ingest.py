"""The offline bulk path: straight into the data folder, replayed by the service at start."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from overdrive.api import create_app
from overdrive.config import Settings
from overdrive.ingest.direct import ingest_directly
from overdrive.data.synthetic import WorldConfig, generate_world
from overdrive.store.data_dir_lock import DataDirInUse
from overdrive.wiring import build_services
from tests.real_servers import app_env


def test_direct_load_is_replayed_and_excludes_a_running_service(tmp_path) -> None:
    world = generate_world(WorldConfig(n_users=40, n_items=100, n_topics=3, n_days=5, signals_per_user=30, seed=5))
    settings = Settings.load(app_env(tmp_path))
    done = ingest_directly(settings.data_dir, world.items, world.signals)
    assert (done["items"], done["signals"], done["duplicates"]) == (100, len(world.signals), 0)
    again = ingest_directly(settings.data_dir, [], world.signals[:10])
    assert (again["signals"], again["duplicates"]) == (0, 10)

    with TestClient(create_app(build_services(settings))) as client:
        assert client.get("/performance/system").json()["store"] == {"items": 100, "signals": len(world.signals)}
        user = world.signals[0]["user_id"]
        expected = sum(1 for s in world.signals if s["user_id"] == user)
        assert client.get(f"/analytics/user/{user}").json()["total_signals"] == expected
        with pytest.raises(DataDirInUse):
            ingest_directly(settings.data_dir, [], world.signals[:1])
    with pytest.raises(DataDirInUse):  # and a direct load keeps a second service out
        from overdrive.store.data_dir_lock import DataDirLock

        held = DataDirLock(settings.data_dir).acquire()
        try:
            build_services(settings)
        finally:
            held.release()


def test_direct_load_names_the_bad_row(tmp_path) -> None:
    rows = [{"user_id": "u", "signal_type": "like", "content_id": "a"}, {"user_id": "u", "signal_type": "poke", "content_id": "a"}]
    with pytest.raises(ValueError, match=r"signal row 1: signal_type"):
        ingest_directly(tmp_path / "data", [], rows)


def test_directly_loaded_items_get_content_features_when_the_service_starts(tmp_path) -> None:
    import time

    world = generate_world(WorldConfig(n_users=5, n_items=30, n_topics=3, n_days=2, signals_per_user=3, seed=6))
    settings = Settings.load(app_env(tmp_path, OVERDRIVE_CONTENT_FEATURES="true"))
    ingest_directly(settings.data_dir, world.items, [])
    with TestClient(create_app(build_services(settings))) as client:
        deadline = time.monotonic() + 240
        while (content := client.get("/health/ready").json()["checks"]["models"]["content"])["indexed_items"] < 30:
            assert time.monotonic() < deadline, content
            time.sleep(0.25)
        assert client.get(f"/items/{world.items[0]['id']}/similar?k=3").json()["items"]
