"""End to end: the real server process, a synthetic world, SIGKILL mid-stream, restart.

Nothing acknowledged may be lost: after the restart every acknowledged signal is still stored
(re-sending it is answered as a duplicate), the per-user counts through the API cover it, and
ranking still answers with the replayed live features.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import httpx

from overdrive.evaluation.server_process import ServerProcess
from overdrive.data.synthetic import WorldConfig, generate_world


def _stream(url: str, signals: list[dict], batch: int, acked: list[dict], lock: threading.Lock) -> None:
    """Send signals until the server goes away, remembering those that were acknowledged."""
    with httpx.Client(base_url=url, timeout=10.0) as client:
        for start in range(0, len(signals), batch):
            chunk = signals[start : start + batch]
            try:
                if batch == 1:
                    r = client.post("/signals/process", json=chunk[0])
                else:
                    r = client.post("/signals/batch", json={"signals": chunk})
            except httpx.TransportError:
                return  # the server was killed; this request was never acknowledged
            assert r.status_code == 200, r.text
            with lock:
                acked.extend(chunk)


def test_sigkill_mid_stream_loses_nothing_acknowledged(tmp_path: Path) -> None:
    world = generate_world(WorldConfig(n_users=60, n_items=300, n_topics=5, n_days=10, signals_per_user=60, seed=11))
    signals = world.signals
    assert all(s.get("signal_id") for s in signals)
    lanes = [signals[0::3], signals[1::3], signals[2::3]]
    server = ServerProcess(data_dir=tmp_path / "data", env={"MODEL_CACHE_DIR": str(tmp_path / "models"), "OVERDRIVE_TRAIN_ON_START": "false"}).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30.0) as client:
            assert client.post("/items/batch", json={"items": world.items}).status_code == 201

        acked: list[dict] = []
        lock = threading.Lock()
        threads = [
            threading.Thread(target=_stream, args=(server.url, lanes[0], 1, acked, lock)),
            threading.Thread(target=_stream, args=(server.url, lanes[1], 1, acked, lock)),
            threading.Thread(target=_stream, args=(server.url, lanes[2], 25, acked, lock)),
        ]
        for t in threads:
            t.start()
        while True:  # kill while all three streams are still sending
            with lock:
                if len(acked) >= len(signals) // 4:
                    break
            threads[0].join(0.005)
        server.kill()
        for t in threads:
            t.join(30)
        assert 0 < len(acked) < len(signals)

        server.start()
        with httpx.Client(base_url=server.url, timeout=30.0) as client:
            # Every acknowledged signal is stored: sending it again is recognised as a duplicate.
            for start in range(0, len(acked), 5000):
                chunk = acked[start : start + 5000]
                r = client.post("/signals/batch", json={"signals": chunk}).json()
                assert (r["accepted"], r["duplicates"]) == (0, len(chunk))

            # Counted through the API, per user and type, at least what was acknowledged.
            per_user: dict[str, Counter] = {}
            for s in acked:
                per_user.setdefault(s["user_id"], Counter())[s["signal_type"]] += 1
            for user, expected in per_user.items():
                counts = client.get(f"/analytics/user/{user}").json()["signal_counts"]
                for signal_type, n in expected.items():
                    assert counts.get(signal_type, 0) >= n, (user, signal_type)
            stored = client.get("/performance/system").json()["store"]
            assert len(acked) <= stored["signals"] <= len(signals)
            assert stored["items"] == len(world.items)

            # Ranking still answers, and the replayed features personalise it.
            user = max(per_user, key=lambda u: sum(per_user[u].values()))
            r = client.post("/rank/for-you/enhanced", json={"user_id": user, "limit": 10})
            assert r.status_code == 200
            ranked = r.json()["items"]
            assert len(ranked) == 10
            assert "user_interests" in ranked[0]["scores"] and "real_time" in ranked[0]["scores"]
    finally:
        server.stop()
