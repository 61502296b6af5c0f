"""Context over HTTP, on every backend: signals teach a user's per-context tastes and habits, a rank
request in a context ranks by them, analytics show the user model, and bots teach nothing."""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from overdrive.config import Settings
from tests import real_servers
from tests.real_servers import RELEVANCE_ONLY, app_env

IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
SMART_TV = "Mozilla/5.0 (Linux; Tizen 6.0; SMART-TV; SAMSUNG QE55Q80A) AppleWebKit/537.36 (KHTML, like Gecko) Version/6.0 TV Safari/537.36"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
NEWS = [f"news{i}" for i in range(4)]
FILMS = [f"film{i}" for i in range(4)]


@pytest.fixture(params=["embedded", "redis", "redis-cluster"])
def settings(request: pytest.FixtureRequest, tmp_path) -> Iterator[Settings]:
    """Every backend: the user model and the prior live in the FeatureStore."""
    if request.param == "embedded":
        yield Settings.load(app_env(tmp_path, **RELEVANCE_ONLY))
        return
    why = real_servers.shared_redis_missing() if request.param == "redis" else real_servers.redis_server_missing()
    if why is not None:
        real_servers.unavailable(why)
    url = real_servers.SHARED_REDIS_URL if request.param == "redis" else real_servers.shared_cluster().url
    prefix = real_servers.unique_prefix("context")
    yield Settings.load(app_env(tmp_path, REDIS_URL=url, OVERDRIVE_REDIS_PREFIX=prefix, **RELEVANCE_ONLY))
    real_servers.delete_prefix(url, prefix)


def offset_for(local_hour: int, now: float) -> int:
    """The UTC offset (minutes) at which `now` falls in `local_hour`."""
    utc_hour = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).hour
    return ((local_hour - utc_hour + 12) % 24 - 12) * 60


def zoned(at: float, offset: int) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.timezone(datetime.timedelta(minutes=offset))).isoformat()


@pytest.fixture
def taught(client: TestClient) -> TestClient:
    """u1 reads news on the phone in the morning and watches films on the TV in the evening."""
    items = [{"id": i, "type": "text", "text": "headlines", "tags": ["news"]} for i in NEWS]
    items += [{"id": i, "type": "video", "text": "a film", "tags": ["film"]} for i in FILMS]
    assert client.post("/items/batch", json={"items": items}).status_code == 201
    now = time.time()
    morning_at, evening_at = now - 60, now - 30  # each offset from its own instant: an hour may turn between them
    morning, evening = offset_for(8, morning_at), offset_for(20, evening_at)
    signals = [{"user_id": "u1", "signal_type": "like", "content_id": i, "timestamp": zoned(morning_at, morning),
                "metadata": {"device_info": {"user_agent": IPHONE}, "location": {"country": "pt", "city": "Lisbon"}}}
               for i in NEWS]
    signals += [{"user_id": "u1", "signal_type": "like", "content_id": i, "timestamp": zoned(evening_at, evening),
                 "metadata": {"device_info": {"user_agent": SMART_TV}}} for i in FILMS]
    assert client.post("/signals/batch", json={"signals": signals}).status_code == 200
    return client


def _rank(client: TestClient, context: dict, **headers: str) -> dict:
    r = client.post("/rank/for-you/enhanced", headers=headers, json={
        "user_id": "u1", "candidate_items": [{"id": i} for i in NEWS[:2] + FILMS[:2]], "exclude_seen": False,
        "strategy": "context", "context": context})
    assert r.status_code == 200, r.text
    return r.json()


def test_a_ranking_in_context_follows_the_users_taste_there(taught: TestClient) -> None:
    now = time.time()
    on_the_phone = _rank(taught, {"device_info": {"user_agent": IPHONE}, "utc_offset_minutes": offset_for(8, now)})
    assert {i["id"] for i in on_the_phone["items"][:2]} == set(NEWS[:2])
    on_tv = _rank(taught, {"local_time": zoned(now, offset_for(20, now))}, **{"User-Agent": SMART_TV})  # device from the header
    assert {i["id"] for i in on_tv["items"][:2]} == set(FILMS[:2])
    assert all(set(i["scores"]) == {"context"} for i in on_tv["items"])
    blended = taught.post("/rank/for-you/enhanced", json={"user_id": "u1", "exclude_seen": False,
                                                          "candidate_items": [{"id": "news0"}, {"id": "film0"}]}).json()
    assert all("context" in i["scores"] for i in blended["items"])  # in the default blend, explained


def test_analytics_show_the_user_model_and_the_sessions_context(taught: TestClient) -> None:
    profile = taught.get("/analytics/user/u1").json()
    assert set(profile["devices"]) == {"mobile", "tv"} and profile["primary_device"] in {"mobile", "tv"}
    assert profile["timezone"] is not None and sum(profile["active_hours_local"].values()) <= 1.0
    assert set(profile["active_hours_local"]) <= {"8", "20"}
    assert profile["locations"] == {"PT": 1.0} and profile["cities"] == {"PT/Lisbon": 1.0}
    assert {p["feature"] for p in profile["context_preferences"]["mobile|morning"]} >= {"tag:news"}
    assert {p["feature"] for p in profile["context_preferences"]["tv|evening"]} >= {"tag:film"}
    evolution = profile["interest_evolution"]
    assert evolution["timeline"] and evolution["timeline"][-1]["top_interests"]
    assert evolution["medium_term_interests"] and set(evolution["drift"]) == {"short_vs_long", "medium_vs_long", "short_vs_medium"}
    realtime = taught.get("/analytics/user/u1/realtime").json()
    assert realtime["context"]["device_class"] == "tv" and realtime["context"]["daypart"] == "evening"


def test_bots_signals_are_kept_but_teach_nothing(client: TestClient) -> None:
    assert client.post("/items", json={"id": "a", "text": "x"}).status_code == 201
    r = client.post("/signals/process", headers={"User-Agent": GOOGLEBOT},
                    json={"user_id": "crawler", "signal_type": "like", "content_id": "a"})
    assert r.status_code == 200 and r.json()["accepted"] == 1
    assert client.get("/analytics/user/crawler").json()["known"] is False
    assert client.get("/analytics/item/a").json()["engagement"] == 0.0
