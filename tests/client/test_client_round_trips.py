"""Every endpoint group through `Client` and `AsyncClient` against the real service process.

Each answer is also checked against the client's TypedDict for it (every required key present,
no key the client does not know), which covers the answers the OpenAPI declares only as objects.
The local experiment assignment is checked against the server's answer for many users.
"""

from __future__ import annotations

import subprocess
import sys
import time
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from overdrive.evaluation.server_process import ServerProcess
from overdrive.security.keys import KeyEntry, append_key, key_digest, new_key
from overdrive_client import (AsyncClient, BadRequest, Client, Forbidden, LocalAssigner, NotFound, SenderFailed,
                              Unauthorized, assign)
from overdrive_client import types as t
from tests.real_servers import app_env

ITEMS: list[t.Item] = [{"id": f"cat{n}", "type": "video", "tags": ["cats"], "author_id": "kit"} for n in range(6)] + \
    [{"id": f"car{n}", "type": "text", "text": f"car review {n}", "tags": ["cars"], "author_id": f"a{n}"} for n in range(6)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp: Path = tmp_path_factory.mktemp("client")
    # Content features on, so that similar items and item features answer (text only in ITEMS).
    with ServerProcess(data_dir=tmp / "data", env=app_env(tmp, OVERDRIVE_CONTENT_FEATURES="true")) as process:
        yield process


@pytest.fixture
def od(server: ServerProcess) -> Iterator[Client]:
    with Client(server.url, timeout=30.0) as client:
        yield client


def fits(answer: Any, shape: type) -> None:
    """`answer` has every key `shape` requires and none it does not know (nested shapes too)."""
    assert isinstance(answer, dict), answer
    hints = typing.get_type_hints(shape)
    assert set(shape.__required_keys__) <= set(answer), f"{shape.__name__}: missing {set(shape.__required_keys__) - set(answer)}"
    assert set(answer) <= set(hints), f"{shape.__name__}: unknown keys {set(answer) - set(hints)}"
    for key, value in answer.items():
        hint = hints[key]
        for member in typing.get_args(hint) or (hint,):
            if typing.is_typeddict(member) and isinstance(value, dict):
                fits(value, member)
            elif typing.get_origin(member) is list and value and typing.is_typeddict(typing.get_args(member)[0]):
                for element in value:
                    fits(element, typing.get_args(member)[0])


def test_health_items_and_signals(od: Client) -> None:
    fits(od.live(), t.Liveness)
    ready = od.ready()
    fits(ready, t.Readiness)
    assert ready["status"] == "ready"
    assert od.put_items(ITEMS) == {"stored": len(ITEMS)}
    stored = od.put_item({"id": "solo", "type": "text", "text": "alone", "tags": ["misc"]})
    fits(stored, t.CatalogItem)
    assert od.get_item("cat1")["tags"] == ["cats"]
    deadline = time.monotonic() + 120
    while (features := od.item_features("car1"))["features_pending"]:
        assert time.monotonic() < deadline, features
        time.sleep(0.2)
    fits(features, t.ItemFeatures)
    similar = od.similar_items("car1", k=3)
    fits(similar, t.SimilarItems)
    assert similar["items"] and similar["items"][0]["id"].startswith("car"), similar
    od.delete_item("solo")
    with pytest.raises(NotFound) as gone:
        od.get_item("solo")
    assert gone.value.status_code == 404 and gone.value.error == "not_found"

    ack = od.send_signal({"user_id": "rt", "signal_type": "like", "content_id": "cat1"})
    fits(ack, t.SignalAck)
    assert (ack["accepted"], ack["duplicates"]) == (1, 0)
    batch: list[t.Signal] = [{"user_id": "rt", "signal_type": "view", "content_id": f"cat{n}", "signal_id": f"rt-{n}"}
                             for n in range(5)]
    assert od.send_signals(batch)["accepted"] == 5
    again = od.send_signals(batch)  # the same ids again: acknowledged, not counted
    assert (again["accepted"], again["duplicates"]) == (0, 5)
    assert od.user_analytics("rt")["signal_counts"] == {"like": 1, "view": 5}

    with pytest.raises(BadRequest) as refused:
        od.send_signals([{"user_id": "rt", "signal_type": "view", "content_id": "cat1"},
                         {"user_id": "rt", "signal_type": "stare", "content_id": "cat1"}])  # type: ignore[typeddict-item]
    assert refused.value.status_code == 422
    assert [e["field"] for e in refused.value.errors] == ["signals[1].signal_type"]


def test_ranking_and_analytics(od: Client) -> None:
    od.put_items(ITEMS)
    for n in range(3):
        od.send_signal({"user_id": "fan", "signal_type": "like", "content_id": f"cat{n}"})
    strategies = od.strategies()
    fits(strategies, t.Strategies)
    assert "enhanced" in strategies["strategies"]
    feed = od.rank("fan", candidates=[i["id"] for i in ITEMS], limit=5, request_id="feed-1")
    fits(feed, t.RankResponse)
    assert len(feed["items"]) == 5 and feed["request_id"] == "feed-1"
    assert feed["items"][0]["id"].startswith("cat"), feed["items"]
    fits(od.rank("fan", limit=3, context={"device_info": {"device_class": "mobile"}}), t.RankResponse)
    fits(od.user_analytics("fan"), t.UserAnalytics)
    fits(od.user_realtime("fan"), t.UserRealtime)
    fits(od.item_analytics("cat0"), t.ItemAnalytics)
    fits(od.trending(limit=5), t.Trending)
    fits(od.insights("fan"), t.Insights)
    fits(od.performance(), t.Performance)


def test_models_privacy_and_audit(od: Client) -> None:
    fits(od.model_status(), t.ModelStatus)
    fits(od.train_models(), t.TrainingStarted)
    od.send_signal({"user_id": "leaver", "signal_type": "like", "content_id": "cat1"})
    export = od.export_user("leaver")
    fits(export, t.UserExport)
    assert [s["content_id"] for s in export["signals"]] == ["cat1"]
    job = od.erase_user("leaver")
    fits(job, t.ErasureJob)
    deadline = time.monotonic() + 30
    while (job := od.erasure_job(job["job_id"]))["state"] not in ("done", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    assert job["state"] == "done", job
    records = od.audit(action="user.erase", limit=10)
    fits(records, t.AuditRecords)
    assert records["records"], records


def test_experiments_and_the_local_assignment_agree_with_the_server(od: Client) -> None:
    definition: t.ExperimentDefinition = {
        "name": "client-ab", "layer": "client", "exposure": 0.6, "salt": "s1",
        "arms": [{"name": "control", "strategy": "enhanced", "share": 0.5},
                 {"name": "fresh", "weights": {"freshness": 0.6, "real_time": 0.4}, "share": 0.5}]}
    created = od.create_experiment(definition)
    fits(created, t.Experiment)
    interleaved = od.create_experiment({"name": "client-il", "kind": "interleaving", "layer": "il", "state": "running",
                                        "arms": [{"name": "a", "strategy": "enhanced"}, {"name": "b", "strategy": "popular"}]
                                        if "popular" in od.strategies()["strategies"] else
                                        [{"name": "a", "strategy": "enhanced"},
                                         {"name": "b", "weights": {"freshness": 1.0}}]})
    running = od.update_experiment(created["id"], {"state": "running"})
    assert running["state"] == "running"
    assert {e["id"] for e in od.list_experiments()["experiments"]} >= {created["id"], interleaved["id"]}
    fits(od.get_experiment(created["id"]), t.Experiment)

    experiments = od.list_experiments()["experiments"]
    local = LocalAssigner(od.list_experiments)
    arms_seen = set()
    for n in range(200):
        user = f"user-{n}"
        server = od.assignment(user)
        fits(server, t.Assignments)
        assert assign(experiments, user) == server["assignments"], user
        assert local.assignment(user) == server["assignments"], user
        arms_seen |= {a["arm"] for a in server["assignments"]}
    assert arms_seen == {"control", "fresh", "interleaved"}  # every arm reached, and some users in none

    fits(od.experiment_results(created["id"]), t.ExperimentResults)
    fits(od.experiment_results(interleaved["id"]), t.ExperimentResults)
    for experiment in (created, interleaved):
        od.update_experiment(experiment["id"], {"state": "stopped"})
        od.delete_experiment(experiment["id"])
    with pytest.raises(NotFound):
        od.get_experiment(created["id"])


@pytest.mark.anyio
async def test_async_client_and_sender(server: ServerProcess) -> None:
    async with AsyncClient(server.url) as od:
        assert (await od.put_items(ITEMS))["stored"] == len(ITEMS)
        async with od.signal_sender(batch_size=7, max_in_flight=3) as sender:
            for n in range(50):
                await sender.send({"user_id": "async", "signal_type": "view", "content_id": f"car{n % 6}"})
        assert (sender.stats.given, sender.stats.accepted, sender.stats.batches) == (50, 50, 8)
        assert (await od.user_analytics("async"))["signal_counts"] == {"view": 50}
        fits(await od.rank("async", limit=3), t.RankResponse)
        with pytest.raises(NotFound):
            await od.get_item("nothing-here")


def test_sender_flushes_a_partial_batch_on_time_and_on_close(od: Client) -> None:
    sender = od.signal_sender(batch_size=1000, flush_interval_s=0.2)
    sender.send({"user_id": "late", "signal_type": "view", "content_id": "cat0"})
    deadline = time.monotonic() + 5
    while sender.stats.acknowledged < 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    for _ in range(3):
        sender.send({"user_id": "late", "signal_type": "like", "content_id": "cat1"})
    sender.close()
    assert (sender.stats.given, sender.stats.accepted) == (4, 4)
    assert od.user_analytics("late")["signal_counts"] == {"view": 1, "like": 3}
    with pytest.raises(RuntimeError):
        sender.send({"user_id": "late", "signal_type": "view", "content_id": "cat0"})


def test_a_refused_batch_stops_the_sender_and_hands_back_what_was_not_sent(od: Client) -> None:
    sender = od.signal_sender(batch_size=2, max_in_flight=1)
    good: list[t.Signal] = [{"user_id": "stop", "signal_type": "view", "content_id": f"cat{n}"} for n in range(6)]
    bad = {"user_id": "stop", "signal_type": "stare", "content_id": "cat0"}
    sender.extend(good[:2])
    sender.send(bad)  # type: ignore[arg-type]
    with pytest.raises(SenderFailed) as stopped:
        sender.send(good[2])
        sender.flush()
    failure = stopped.value
    assert isinstance(failure.cause, BadRequest) and failure.cause.errors[0]["field"] == "signals[0].signal_type"
    assert failure.offset == 2 and [s["signal_type"] for s in failure.failed] == ["stare", "view"]
    with pytest.raises(SenderFailed):
        sender.send(good[3])
    with pytest.raises(SenderFailed):
        sender.close()  # stops its threads, and says again why it stopped
    # Every signal kept its id: sending the good ones of the failed batch again is safe.
    resent = od.send_signals([s for s in failure.failed + failure.unsent if s["signal_type"] != "stare"])
    assert resent["accepted"] == 1
    assert od.user_analytics("stop")["signal_counts"] == {"view": 3}


def test_a_sender_left_open_is_flushed_at_exit(server: ServerProcess, od: Client) -> None:
    script = (f"from overdrive_client import Client\n"
              f"sender = Client({server.url!r}).signal_sender(batch_size=1000, flush_interval_s=600)\n"
              f"for n in range(25):\n"
              f"    sender.send({{'user_id': 'exit', 'signal_type': 'view', 'content_id': 'cat0'}})\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert od.user_analytics("exit")["signal_counts"] == {"view": 25}


def test_api_key_and_jwt(tmp_path: Path) -> None:
    key = new_key()
    append_key(tmp_path / "keys.json", KeyEntry(id="ingest", sha256=key_digest(key), scopes=frozenset({"signals:write"})))
    secret = "a-test-secret-that-is-long-enough-0123456789"
    env = app_env(tmp_path, OVERDRIVE_API_KEYS_FILE=str(tmp_path / "keys.json"), OVERDRIVE_JWT_SECRET=secret)
    with ServerProcess(data_dir=tmp_path / "data", env=env) as server:
        with Client(server.url) as anonymous:
            assert anonymous.live()["status"] == "ok"
            with pytest.raises(Unauthorized):
                anonymous.strategies()
        with Client(server.url, api_key=key) as ingest:
            assert ingest.send_signal({"user_id": "k", "signal_type": "view", "content_id": "x"})["accepted"] == 1
            with pytest.raises(Forbidden):
                ingest.rank("k")

        def token() -> str:  # a fresh short-lived token per request, as a token source would give
            return jwt.encode({"sub": "feed-svc", "exp": int(time.time()) + 60, "scope": "rank"}, secret, "HS256")

        with Client(server.url, token=token) as feed:
            assert feed.rank("k", candidates=["x"])["user_id"] == "k"
            with pytest.raises(Forbidden):
                feed.send_signal({"user_id": "k", "signal_type": "view", "content_id": "x"})
