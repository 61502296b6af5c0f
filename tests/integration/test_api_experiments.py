"""Experiments over the real app: definitions, sticky assignment, a feed run by the user's arm,
the exposure log, results with a planted winner, interleaving, immutability, and privacy."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from overdrive.api import create_app
from overdrive.config import Settings
from overdrive.wiring import build_services
from tests.real_servers import RELEVANCE_ONLY, app_env

NOW = time.time()
# Fresh items with no engagement, and stale items that everybody engaged with: `freshness` puts
# the fresh ones first, `real_time` the popular ones.
FRESH = [{"id": f"fresh{n}", "created_at": NOW - n * 60, "tags": [f"f{n}"]} for n in range(10)]
STALE = [{"id": f"stale{n}", "created_at": NOW - 30 * 86_400 - n, "tags": [f"s{n}"]} for n in range(10)]
CANDIDATES = [{"id": i["id"]} for i in FRESH + STALE]


@pytest.fixture
def app(tmp_path: Path):
    settings = Settings.load(app_env(tmp_path, **RELEVANCE_ONLY, OVERDRIVE_EXCLUDE_SIGNAL_TYPES=""))
    with TestClient(create_app(build_services(settings))) as client:
        assert client.post("/items/batch", json={"items": FRESH + STALE}).status_code == 201
        crowd = [{"user_id": f"crowd{k}", "signal_type": "share", "content_id": f"stale{n}", "timestamp": NOW - 3600}
                 for k in range(5) for n in range(10)]
        assert client.post("/signals/batch", json={"signals": crowd}).status_code == 200
        yield client


def _experiment(client: TestClient, **over) -> dict:
    body = {"name": "fresh vs popular", "arms": [{"name": "popular", "weights": {"real_time": 1.0}},
                                                {"name": "fresh", "weights": {"freshness": 1.0}}],
            "state": "running", "salt": "s1", **over}
    r = client.post("/experiments", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def _rank(client: TestClient, user: str, **over) -> dict:
    r = client.post("/rank/for-you/enhanced", json={"user_id": user, "candidate_items": CANDIDATES, "limit": 5, **over})
    assert r.status_code == 200, r.text
    return r.json()


def test_a_users_arm_runs_their_feed_and_is_logged(app: TestClient) -> None:
    experiment = _experiment(app)
    users = [f"u{n}" for n in range(40)]
    arms = {}
    for user in users:
        answer = _rank(app, user)
        arm = answer["experiment"]["arm"]
        assert answer["experiment"]["id"] == experiment["id"]
        expected = "fresh" if arm == "fresh" else "stale"
        assert all(i["id"].startswith(expected) for i in answer["items"]), (arm, answer["items"])
        arms[user] = arm
        assignment = app.get(f"/experiments/assignment/{user}").json()["assignments"]
        assert assignment == [{"experiment": experiment["id"], "name": "fresh vs popular", "kind": "ab",
                               "layer": "default", "arm": arm}]
    assert set(arms.values()) == {"popular", "fresh"}
    assert all(_rank(app, u)["experiment"]["arm"] == arms[u] for u in users[:10])  # sticky
    explicit = _rank(app, "u0", strategy="enhanced")
    assert "experiment" not in explicit and explicit["strategy"] == "enhanced"
    results = app.get(f"/experiments/{experiment['id']}/results").json()
    assert results["users"] == 40 and results["feeds"] == 50  # 40 + 10 repeats; the explicit one not counted
    assert results["arms"]["fresh"]["users"] + results["arms"]["popular"]["users"] == 40
    assert results["srm"]["alarm"] is False
    assert set(results["guardrails"]) == {"popular", "fresh"}


IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def test_bots_are_in_no_experiment_and_exposures_carry_device_and_country(app: TestClient) -> None:
    experiment = _experiment(app)
    crawled = app.post("/rank/for-you/enhanced", headers={"User-Agent": GOOGLEBOT},
                       json={"user_id": "crawler", "candidate_items": CANDIDATES})
    assert crawled.status_code == 200 and "experiment" not in crawled.json()
    for n in range(6):
        r = app.post("/rank/for-you/enhanced", headers={"User-Agent": IPHONE},
                     json={"user_id": f"m{n}", "candidate_items": CANDIDATES, "context": {"location": {"country": "pt"}}})
        assert r.json()["experiment"]["id"] == experiment["id"]
    results = app.get(f"/experiments/{experiment['id']}/results").json()
    assert results["users"] == 6  # not the crawler
    assert set(results["cohorts"]["device_class"]) == {"mobile"} and set(results["cohorts"]["country"]) == {"PT"}


def test_results_find_the_planted_winner(app: TestClient) -> None:
    experiment = _experiment(app)
    for n in range(300):
        user = f"v{n}"
        answer = _rank(app, user)
        if answer["experiment"]["arm"] == "fresh":  # fresh is what these users want: they like 2 of 5
            likes = [i["id"] for i in answer["items"][:2]]
        else:
            likes = [answer["items"][0]["id"]] if n % 5 == 0 else []
        signals = [{"user_id": user, "signal_type": "like", "content_id": i, "duration": 30.0} for i in likes]
        if signals:
            assert app.post("/signals/batch", json={"signals": signals}).status_code == 200
    results = app.get(f"/experiments/{experiment['id']}/results").json()
    ctr = results["comparisons"]["fresh"]["ctr"]
    assert ctr["significant"] and ctr["lift"] > 1.0 and ctr["p_value"] < 0.001, ctr
    assert results["arms"]["fresh"]["ctr"]["value"] == pytest.approx(0.4, abs=1e-9)
    assert results["arms"]["fresh"]["dwell_seconds_per_exposure"]["value"] == pytest.approx(12.0)  # 2 of 5 × 30 s
    assert set(results["cohorts"]) == {"new_vs_returning", "activity", "first_seen_week", "device_class", "country"}
    assert results["srm"]["alarm"] is False


def test_interleaving_credits_clicks_to_the_arm_that_showed_the_item(app: TestClient) -> None:
    experiment = _experiment(app, kind="interleaving", name="fresh vs popular, interleaved")
    for n in range(60):
        answer = _rank(app, f"w{n}", limit=6)
        teams = answer["experiment"]["teams"]
        assert answer["experiment"]["arm"] == "interleaved" and answer["strategy"] == "interleaved"
        assert set(teams.values()) == {"popular", "fresh"} and len(answer["items"]) == 6
        # These users like what the fresh arm contributed (as the crowd's likes add up, the popular
        # arm starts to rank fresh items too: those count for it).
        liked = next(i["id"] for i in answer["items"] if teams[i["id"]] == "fresh")
        app.post("/signals/process", json={"user_id": f"w{n}", "signal_type": "like", "content_id": liked})
    verdict = app.get(f"/experiments/{experiment['id']}/results").json()["interleaving"]
    (pair,) = verdict["pairs"]
    preferring_fresh = pair["wins"] if pair["arm_a"] == "fresh" else pair["losses"]
    assert preferring_fresh == 60 and pair["p_value"] < 1e-6


def test_definitions_layers_and_immutability(app: TestClient) -> None:
    first = _experiment(app, exposure=0.6, layer="feed")
    refused = app.post("/experiments", json={"name": "too big", "layer": "feed", "exposure": 0.5,
                                              "arms": [{"name": "a", "strategy": "enhanced"}, {"name": "b", "strategy": "freshness"}]})
    # Valid, but the layer's other experiments hold its users: a conflict with the present state.
    assert refused.status_code == 409 and refused.json()["error"] == "conflict" and "exposure" in refused.json()["message"]
    other = _experiment(app, exposure=0.4, layer="feed", name="the rest")
    both = [u for u in (f"x{n}" for n in range(300))
            if len(app.get(f"/experiments/assignment/{u}").json()["assignments"]) == 2]
    assert both == []  # one layer never shares a user
    bad_arm = app.post("/experiments", json={"name": "x", "arms": [{"name": "a", "strategy": "nope"},
                                                                  {"name": "b", "strategy": "enhanced"}]})
    assert bad_arm.status_code == 422 and bad_arm.json()["errors"][0]["field"] == "arms[0].strategy"
    frozen = app.patch(f"/experiments/{first['id']}", json={"arms": first["arms"][::-1]})
    assert frozen.status_code == 409 and "arms" in frozen.json()["message"]  # fixed once it has run
    assert app.patch(f"/experiments/{first['id']}", json={"exposure": 0.3}).status_code == 409  # would move users out
    stopped = app.patch(f"/experiments/{other['id']}", json={"state": "stopped"}).json()
    assert stopped["state"] == "stopped"
    assert app.patch(f"/experiments/{other['id']}", json={"state": "running"}).status_code == 409
    grown = app.patch(f"/experiments/{first['id']}", json={"exposure": 1.0})  # the stopped one's users are free
    assert grown.status_code == 200 and grown.json()["exposure"] == 1.0
    assert app.delete(f"/experiments/{other['id']}").status_code == 204
    assert app.get(f"/experiments/{other['id']}").status_code == 404
    assert [e["id"] for e in app.get("/experiments").json()["experiments"]] == [first["id"]]


def test_erasure_and_export_cover_experiments(app: TestClient) -> None:
    experiment = _experiment(app)
    _rank(app, "gone")
    export = app.get("/users/gone/export").json()["experiments"]
    assert export["assignments"][0]["experiment"] == experiment["id"]
    assert [e["request_id"] for e in export["exposures"]]
    job = app.delete("/users/gone").json()
    deadline = time.monotonic() + 60
    while (state := app.get(f"/users/erasures/{job['job_id']}").json())["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert state["steps"]["experiment_exposures"] == 1
    assert app.get("/users/gone/export").json()["experiments"]["exposures"] == []
    assert app.get(f"/experiments/{experiment['id']}/results").json()["users"] == 0
