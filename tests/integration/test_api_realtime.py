"""Real-time behaviour over HTTP: backpressure, windows, trending, metrics and read-your-writes."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from overdrive.api import create_app
from overdrive.config import Settings
from overdrive.wiring import build_services
from tests.real_servers import app_env


def _like(client: TestClient, user: str, item: str, **extra) -> None:
    r = client.post("/signals/process", json={"user_id": user, "signal_type": "like", "content_id": item, **extra})
    assert r.status_code == 200, r.text


def test_full_buffer_answers_429_with_retry_after_and_writes_nothing(tmp_path) -> None:
    settings = Settings.load(app_env(tmp_path, SIGNAL_BUFFER_SIZE="5"))
    with TestClient(create_app(build_services(settings))) as client:
        signals = [{"user_id": "u", "signal_type": "view", "content_id": f"i{n}"} for n in range(6)]
        r = client.post("/signals/batch", json={"signals": signals})
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert r.json()["error"] == "overloaded"
        assert client.get("/performance/system").json()["store"]["signals"] == 0
        assert client.post("/signals/batch", json={"signals": signals[:5]}).status_code == 200


def test_every_signal_moves_the_very_next_ranking(client: TestClient) -> None:
    now = time.time()
    items = [{"id": f"{topic}{i}", "tags": [topic], "author_id": topic, "created_at": now - 3600}
             for topic in ("jazz", "golf") for i in range(4)]
    client.post("/items/batch", json={"items": items})
    candidates = [{"id": i["id"]} for i in items if i["id"] not in ("jazz0", "golf0")]
    for step in range(3):  # alternate: each like must show in the next request, no waiting
        _like(client, "u1", "golf0" if step % 2 == 0 else "jazz0", signal_id=f"s{step}")
        top = client.post("/rank/for-you/enhanced", json={"user_id": "u1", "candidate_items": candidates}).json()["items"][0]
        assert top["id"].startswith("golf" if step % 2 == 0 else "jazz"), (step, top)


def test_realtime_windows_trending_and_session(client: TestClient) -> None:
    client.post("/items/batch", json={"items": [{"id": "hot", "tags": ["x"]}, {"id": "calm", "tags": ["y"]}]})
    _like(client, "fan0", "calm", timestamp=time.time() - 5 * 3600)  # an earlier session
    client.get("/analytics/user/fan0")
    for n in range(5):
        _like(client, f"fan{n}", "hot")
    rt = client.get("/analytics/user/fan0/realtime").json()
    assert rt["windows"]["1m"]["count"] == 1 and rt["windows"]["24h"]["count"] == 2
    assert rt["session"]["active"] is True
    assert rt["short_term_interests"][0]["feature"] in {"tag:x", "type:text"}
    assert client.get("/analytics/user/fan0").json()["sessions_total"] == 2
    hot = client.get("/analytics/item/hot").json()
    assert hot["windows"]["1m"]["count"] == 5 and hot["velocity"] > 1 and hot["engagement"] > 0
    trending = client.get("/analytics/trending", params={"limit": 5}).json()["items"]
    assert trending[0]["id"] == "hot" and "calm" not in {t["id"] for t in trending}
    assert client.get("/analytics/trending", params={"limit": 0}).status_code == 422


def test_metrics_and_stage_latencies(client: TestClient) -> None:
    _like(client, "u1", "a")
    client.get("/analytics/user/u1")  # settles: the signal has been through every stage
    perf = client.get("/performance/system").json()
    assert perf["signal_stages"]["apply"]["signals"] == 1
    assert set(perf["signal_stages"]) == {"queue_wait", "item_lookup", "apply"}
    assert perf["gauges"]["signal_queue_capacity"] == 10000
    assert perf["gauges"]["signals_unapplied"] == 0  # settled above: applied, hooks run
    text = client.get("/metrics").text
    assert 'overdrive_signal_stage_seconds_count{stage="apply"} 1.0' in text
    assert 'overdrive_http_request_seconds_count{route="POST /signals/process",status="200"} 1.0' in text
    assert 'overdrive_gauge{name="signal_queue_depth"}' in text
