"""The ranking contract over HTTP: shape, explanations, catalog candidates, and visible adaptation."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from overdrive.config import Settings
from tests.real_servers import RELEVANCE_ONLY, app_env

DAY = 86400.0


@pytest.fixture
def settings(tmp_path) -> Settings:
    """The blend's own order: these tests check scores, so no diversity re-ranking."""
    return Settings.load(app_env(tmp_path, **RELEVANCE_ONLY))


@pytest.fixture
def catalog(client: TestClient) -> TestClient:
    now = time.time()
    items = [
        {"id": f"sport{i}", "text": "match report", "tags": ["sports"], "author_id": "s", "created_at": now - i * DAY}
        for i in range(5)
    ] + [
        {"id": f"food{i}", "text": "recipe", "tags": ["cooking"], "author_id": "c", "created_at": now - i * DAY}
        for i in range(5)
    ]
    assert client.post("/items/batch", json={"items": items}).status_code == 201
    return client


def _rank(client: TestClient, **body) -> dict:
    r = client.post("/rank/for-you/enhanced", json={"user_id": "u1", **body})
    assert r.status_code == 200, r.text
    return r.json()


def test_response_shape_and_explanations(catalog: TestClient) -> None:
    out = _rank(catalog, candidate_items=[{"id": "sport0"}, {"id": "food3"}, {"id": "sport2"}], limit=2)
    assert set(out) == {"user_id", "items", "strategy", "request_id", "processing_time_ms"}
    assert out["strategy"] == "learned" and out["user_id"] == "u1"  # the default: the learned blend (configured weights until fitted)
    assert [i["rank"] for i in out["items"]] == [1, 2]
    scores = [i["score"] for i in out["items"]]
    assert scores == sorted(scores, reverse=True)
    for item in out["items"]:
        assert set(item["scores"]) <= {"content_based", "collaborative", "real_time", "user_interests", "freshness"}
        assert sum(item["scores"].values()) == pytest.approx(item["score"])


def test_cold_start_uses_only_freshness(catalog: TestClient) -> None:
    out = _rank(catalog, candidate_items=[{"id": "food4"}, {"id": "sport0"}, {"id": "food1"}])
    assert [i["id"] for i in out["items"]] == ["sport0", "food1", "food4"]
    assert all(set(i["scores"]) == {"freshness"} for i in out["items"])
    assert out["items"][0]["score"] == pytest.approx(1.0, abs=1e-3)  # renormalised: freshness carries all weight


def test_likes_change_the_next_ranking(catalog: TestClient) -> None:
    candidates = [{"id": f"food{i}"} for i in range(3)] + [{"id": f"sport{i}"} for i in range(1, 4)]
    before = [i["id"] for i in _rank(catalog, candidate_items=candidates)["items"]]
    assert before[0] == "food0"
    for i in (0, 4):  # likes on sports items that are not among the candidates
        catalog.post("/signals/process", json={"user_id": "u1", "signal_type": "like", "content_id": f"sport{i}"})
    after = _rank(catalog, candidate_items=candidates)["items"]  # (the liked sport0 is not a candidate)
    assert [i["id"] for i in after[:3]] == ["sport1", "sport2", "sport3"]
    assert after[0]["scores"]["user_interests"] > 0
    other = [i["id"] for i in _rank(catalog, candidate_items=candidates, user_id="u2")["items"]]
    assert other == before  # another user's feed is unaffected


def test_negative_signals_push_items_down(catalog: TestClient) -> None:
    for _ in range(3):
        catalog.post("/signals/process", json={"user_id": "u1", "signal_type": "hide", "content_id": "food0"})
    candidates = [{"id": "food0"}, {"id": "food1"}, {"id": "food2"}]
    assert [i["id"] for i in _rank(catalog, candidate_items=candidates)["items"]] == ["food1", "food2"]  # hidden: gone
    out = _rank(catalog, candidate_items=candidates, exclude_seen=False)
    assert out["items"][-1]["id"] == "food0"
    assert out["items"][-1]["scores"]["real_time"] < 0


def test_candidates_come_from_the_catalog_when_omitted(catalog: TestClient) -> None:
    out = _rank(catalog, limit=100)
    assert {i["id"] for i in out["items"]} == {f"sport{i}" for i in range(5)} | {f"food{i}" for i in range(5)}
    catalog.delete("/items/food0")
    assert "food0" not in {i["id"] for i in _rank(catalog, limit=100)["items"]}


def test_candidate_content_overrides_and_unknown_ids_still_rank(catalog: TestClient) -> None:
    catalog.post("/signals/process", json={"user_id": "u1", "signal_type": "like", "content_id": "sport0"})
    out = _rank(catalog, candidate_items=[
        {"id": "food1", "tags": ["sports"], "text": "a recipe for match day"},
        {"id": "food2"},
        {"id": "brand-new", "text": "never seen", "type": "image", "metadata": {"k": 1}},
    ])
    ids = [i["id"] for i in out["items"]]
    assert ids[0] == "food1" and set(ids) == {"food1", "food2", "brand-new"}


def test_strategies_select_one_component(catalog: TestClient) -> None:
    out = _rank(catalog, candidate_items=[{"id": "food4"}, {"id": "food0"}], strategy="freshness")
    assert out["strategy"] == "freshness" and out["items"][0]["id"] == "food0"
    r = catalog.post("/rank/for-you/enhanced", json={"user_id": "u1", "strategy": "nope"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "strategy"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"candidate_items": [{"id": "a"}] * 5001}, "candidate_items"),
        ({"candidate_items": [{"id": "a"}, {"id": "a"}]}, "candidate_items[1].id"),
        ({"candidate_items": [{"text": "no id"}]}, "candidate_items[0].id"),
        ({"user_id": ""}, "user_id"),
    ],
)
def test_rank_validation_names_the_field(client: TestClient, body: dict, field: str) -> None:
    r = client.post("/rank/for-you/enhanced", json={"user_id": "u1", **body})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == field


def test_request_id_is_echoed(catalog: TestClient) -> None:
    r = catalog.post("/rank/for-you/enhanced", json={"user_id": "u1"}, headers={"X-Request-ID": "abc-123"})
    assert r.json()["request_id"] == "abc-123" and r.headers["x-request-id"] == "abc-123"


def test_analytics_insights_and_performance_reflect_activity(catalog: TestClient) -> None:
    for t in ("view", "view", "like", "skip"):
        catalog.post("/signals/process", json={"user_id": "u1", "signal_type": t, "content_id": "sport1", "duration": 20})
    profile = catalog.get("/analytics/user/u1").json()
    assert profile["signal_counts"] == {"view": 2, "like": 1, "skip": 1}
    assert profile["top_interests"][0]["feature"] in {"tag:sports", "author:s", "type:text"}
    realtime = catalog.get("/analytics/user/u1/realtime").json()
    assert realtime["windows"]["1m"]["count"] == 4 and realtime["session"]["signals"] == 4
    assert realtime["session"]["active"] is True and realtime["last_hour_by_type"]["view"] == 2
    _rank(catalog)
    insights = catalog.get("/insights/u1").json()
    assert insights["rankings_seen"] == 1 and insights["latest"]["top_items"]
    assert insights["top_interests"]
    perf = catalog.get("/performance/system").json()
    assert perf["endpoints"]["POST /signals/process"]["count"] == 4
    assert perf["endpoints"]["POST /rank/for-you/enhanced"]["latency_ms"]["p99"] > 0
    assert perf["store"] == {"signals": 4, "items": 10}
    unknown = catalog.get("/analytics/user/nobody").json()
    assert unknown["known"] is False and unknown["signal_counts"] == {}


def test_health(client: TestClient) -> None:
    assert client.get("/health/live").json() == {"status": "ok"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["checks"]["store"]["ok"] is True


def test_a_candidate_may_override_every_content_field_an_item_has() -> None:
    """`CandidateIn` is a TypedDict for speed; it must keep `_Content`'s fields (and `type`)."""
    from overdrive.api.schemas import CandidateIn, ItemIn, _Content

    assert set(CandidateIn.__annotations__) == set(_Content.model_fields) | {"id", "type"} == set(ItemIn.model_fields)
