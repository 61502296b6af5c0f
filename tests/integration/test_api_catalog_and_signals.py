"""The HTTP contract for the catalog and signal ingest, through the real app and store."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
from fastapi.testclient import TestClient

from overdrive.api import create_app
from overdrive.config import Settings
from overdrive.wiring import build_services
from tests.real_servers import app_env


def _signal(**over):
    return {"user_id": "u1", "signal_type": "like", "content_id": "i1", **over}


def _counts(client: TestClient, user: str = "u1") -> dict:
    return client.get(f"/analytics/user/{user}").json()["signal_counts"]


def test_item_roundtrip_replace_and_delete(client: TestClient) -> None:
    item = {
        "id": "i1", "text": "Goal!", "type": "video", "video_url": "https://cdn.example/v.mp4",
        "image_url": "data:image/png;base64,AAAA", "audio_url": "/media/a.wav", "author_id": "a1",
        "created_at": "2026-01-02T03:04:05Z", "tags": ["sports", "football"], "metadata": {"lang": "en"},
    }
    r = client.post("/items", json=item)
    assert r.status_code == 201
    got = client.get("/items/i1").json()
    assert got["created_at"] == pytest.approx(1767323045.0)
    assert {k: got[k] for k in item if k != "created_at"} == {k: v for k, v in item.items() if k != "created_at"}
    client.post("/items", json={"id": "i1", "text": "replaced"})
    assert client.get("/items/i1").json()["text"] == "replaced"
    assert client.delete("/items/i1").status_code == 204
    assert client.get("/items/i1").status_code == 404
    assert client.delete("/items/i1").status_code == 404


def test_item_batch_is_all_or_nothing(client: TestClient) -> None:
    good = [{"id": f"b{i}", "text": "t"} for i in range(5)]
    bad = [*good, {"id": "x" * 257}]
    r = client.post("/items/batch", json={"items": bad})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "items[5].id"
    assert client.get("/items/b0").status_code == 404
    assert client.post("/items/batch", json={"items": good}).json() == {"stored": 5}
    assert client.get("/performance/system").json()["store"]["items"] == 5


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"id": ""}, "id"),
        ({"id": "a", "type": "hologram"}, "type"),
        ({"id": "a", "image_url": "ftp://x/y.png"}, "image_url"),
        ({"id": "a", "created_at": "yesterday-ish"}, "created_at"),
        ({"id": "a", "created_at": -1e12}, "created_at"),  # before the year 1
        ({"id": "a", "created_at": "2999-01-01T00:00:00Z"}, "created_at"),
        ({"id": "a", "tags": ["ok", ""]}, "tags[1]"),
        ({"id": "a", "colour": "red"}, "colour"),
    ],
)
def test_item_validation_names_the_field(client: TestClient, item: dict, field: str) -> None:
    r = client.post("/items", json=item)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == field


def test_dates_before_1970_are_dates_too(client: TestClient) -> None:
    """An archive of old films is a real catalog, and its history may be backfilled."""
    assert client.post("/items", json={"id": "casablanca", "created_at": "1942-11-26"}).status_code == 201
    assert client.get("/items/casablanca").json()["created_at"] == datetime(1942, 11, 26, tzinfo=timezone.utc).timestamp()
    assert client.post("/items", json={"id": "hamlet", "created_at": -11_670_000_000}).status_code == 201  # 1600
    r = client.post("/signals/process", json=_signal(content_id="casablanca", timestamp="1943-01-23T20:00:00Z"))
    assert r.status_code == 200 and r.json()["accepted"] == 1
    assert _counts(client) == {"like": 1}


def test_signal_acknowledged_and_counted(client: TestClient) -> None:
    r = client.post("/signals/process", json=_signal(duration=12.5, metadata={"scroll_position": 100}))
    assert r.status_code == 200 and r.json()["accepted"] == 1
    client.post("/signals/process", json=_signal(signal_type="view"))
    assert _counts(client) == {"like": 1, "view": 1}


def test_unknown_signal_type_lists_the_valid_ones(client: TestClient) -> None:
    r = client.post("/signals/process", json=_signal(signal_type="poke"))
    assert r.status_code == 422
    err = r.json()["errors"][0]
    assert err["field"] == "signal_type"
    for valid in ("view", "completion", "skip", "report"):
        assert valid in err["message"]


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"duration": -1}, "duration"),
        ({"intensity": float("inf")}, "intensity"),
        ({"user_id": "u" * 257}, "user_id"),
        ({"timestamp": time.time() + 3 * 86400}, "timestamp"),
        ({"timestamp": "not a time"}, "timestamp"),
        ({"content_id": None}, "content_id"),
    ],
)
def test_signal_validation_names_the_field(client: TestClient, over: dict, field: str) -> None:
    r = client.post("/signals/process", content=_json(_signal(**over)), headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == field


def _json(obj: dict) -> str:
    import json

    return json.dumps(obj)  # allows Infinity, as a careless client might send


def test_timestamps_accept_iso_and_epoch(client: TestClient) -> None:
    client.post("/signals/process", json=_signal(timestamp="2026-03-01T12:00:00+01:00"))
    client.post("/signals/process", json=_signal(timestamp=1772362800))
    recent = client.get("/analytics/user/u1").json()
    assert recent["total_signals"] == 2
    assert recent["last_signal_at"] == pytest.approx(1772362800.0)


def test_duplicate_signal_ids_are_acknowledged_once(client: TestClient) -> None:
    first = client.post("/signals/process", json=_signal(signal_id="s-1")).json()
    again = client.post("/signals/process", json=_signal(signal_id="s-1")).json()
    assert (first["accepted"], again["accepted"], again["duplicates"]) == (1, 0, 1)
    batch = client.post("/signals/batch", json={"signals": [_signal(signal_id="s-2"), _signal(signal_id="s-2"), _signal(signal_id="s-1")]})
    assert batch.json()["accepted"] == 1 and batch.json()["duplicates"] == 2
    assert _counts(client) == {"like": 2}


def test_rejected_batch_writes_nothing(client: TestClient) -> None:
    signals = [_signal(signal_id=f"s{i}") for i in range(50)] + [_signal(signal_type="nope")]
    r = client.post("/signals/batch", json={"signals": signals})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "signals[50].signal_type"
    assert _counts(client) == {}
    assert client.post("/signals/batch", json={"signals": signals[:50]}).json()["accepted"] == 50


def test_batch_size_is_bounded(client: TestClient) -> None:
    r = client.post("/signals/batch", json={"signals": [_signal()] * 10_001})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "signals"
    assert client.post("/signals/batch", json={"signals": []}).status_code == 422


def test_malformed_json_is_a_400(client: TestClient) -> None:
    r = client.post("/signals/process", content=b'{"user_id": ', headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_json" and r.json()["errors"][0]["field"] == "body"


def test_body_over_the_limit_is_a_413(tmp_path) -> None:
    settings = Settings.load(app_env(tmp_path, OVERDRIVE_MAX_BODY_BYTES="2048"))
    with TestClient(create_app(build_services(settings))) as client:
        big = {"signals": [_signal(metadata={"pad": "x" * 100}) for _ in range(40)]}
        r = client.post("/signals/batch", json=big)
        assert r.status_code == 413 and r.json()["field"] == "body"

        def chunks():  # no Content-Length: the limit is enforced while streaming
            for _ in range(10):
                yield b" " * 1024

        r = client.post("/signals/batch", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413
        assert _counts(client) == {}


def test_path_ids_are_bounded(client: TestClient) -> None:
    assert client.get("/items/" + "x" * 257).status_code == 422
    assert client.get("/analytics/user/" + "x" * 257).status_code == 422


@pytest.mark.parametrize(
    ("path", "raw", "field"),
    [
        ("/signals/process", '{"user_id":"u","signal_type":"like","content_id":"a","metadata":{"x":1180591620717411303424}}', "metadata"),
        ("/signals/process", '{"user_id":"u\\ud800","signal_type":"like","content_id":"a"}', "user_id"),
        ("/items", '{"id":"a","text":"bad \\udc00 text"}', "text"),
        ("/items", '{"id":"a","tags":["\\udc00"]}', "tags[0]"),
        ("/items", '{"id":"a","image_url":"x\\udc00.png"}', "image_url"),
        ("/rank/for-you/enhanced", '{"user_id":"u","candidate_items":[{"id":"a"},{"id":"\\ud800"}]}', "candidate_items[1].id"),
        # NaN and 1e400 (infinity) would be stored as null: refused, at any depth.
        ("/items", '{"id":"a","metadata":{"x":NaN}}', "metadata"),
        ("/items", '{"id":"a","metadata":{"x":1e400}}', "metadata"),
        ("/signals/process", '{"user_id":"u","signal_type":"like","content_id":"a","metadata":{"d":[1,{"x":-Infinity}]}}', "metadata"),
        # Strict types: a boolean is not a number, a string is not a boolean.
        ("/rank/for-you/enhanced", '{"user_id":"u","limit":true}', "limit"),
        ("/rank/for-you/enhanced", '{"user_id":"u","exclude_seen":"true"}', "exclude_seen"),
        ("/signals/process", '{"user_id":"u","signal_type":"like","content_id":"a","intensity":"2"}', "intensity"),
    ],
)
def test_unstorable_values_are_rejected_not_crashed_on(client: TestClient, path: str, raw: str, field: str) -> None:
    r = client.post(path, content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == field


def test_an_item_batch_naming_one_id_twice_is_refused(client: TestClient) -> None:
    r = client.post("/items/batch", json={"items": [{"id": "a", "tags": ["x"]}, {"id": "b"}, {"id": "a", "tags": ["y"]}]})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "items", r.text
    assert "items[2].id 'a' repeats items[0].id" in r.json()["message"]
    assert client.get("/items/a").status_code == 404  # all or nothing


def test_ids_round_trip_through_url_paths_or_are_refused_when_they_cannot(client: TestClient) -> None:
    """Every character but "/" round-trips percent-encoded; an id with "/" could never be read back
    (the server receives %2F decoded), so it is refused where it is first written."""
    from urllib.parse import quote

    for raw in ("50%off", "what?", "a#b", "with space", "ünï"):
        assert client.post("/items", json={"id": raw, "tags": ["t"]}).status_code == 201
        assert client.post("/signals/process", json=_signal(user_id=raw, content_id=raw)).status_code == 200
        assert client.get(f"/items/{quote(raw, safe='')}").json()["id"] == raw
        assert _counts(client, quote(raw, safe="")) == {"like": 1}
        assert client.delete(f"/items/{quote(raw, safe='')}").status_code == 204
    for body, path, field in ((_signal(user_id="a/b"), "/signals/process", "user_id"),
                              (_signal(content_id="a/b"), "/signals/process", "content_id"),
                              ({"id": "a/b"}, "/items", "id"),
                              ({"items": [{"id": "ok"}, {"id": "a/b"}]}, "/items/batch", "items[1].id")):
        r = client.post(path, json=body)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == field, r.text
        assert "must not contain '/'" in r.json()["message"]
