"""Observability: structured logs with the request id, the id carried through Kafka to the worker,
the dashboard's data, scopes and audit, escaping, the ranking observer's figures, and the Prometheus
and Grafana files under deploy/ against the real /metrics."""

from __future__ import annotations

import calendar
import io
import json
import logging
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from overdrive.api import create_app
from overdrive.api.middleware import request_id_from
from overdrive.config import Settings
from overdrive.data.synthetic import WorldConfig, generate_world
from overdrive.domain.types import RankedItem, RankResult, Signal
from overdrive.evaluation.server_process import ServerProcess
from overdrive.observability import logs
from overdrive.observability.context import bound
from overdrive.observability.models import ModelHistory
from overdrive.observability.performance import PerformanceMonitor
from overdrive.observability.rankings import RankingMonitor, decided_by, gini
from overdrive.security.keys import KeyEntry, append_key, key_digest, new_key
from overdrive.wiring import build_services
from tests import real_servers
from tests.real_servers import app_env

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[2]
RANK = "/rank/for-you/enhanced"
CF_ENV = {"OVERDRIVE_CF_METHODS": "popularity,item_cosine", "OVERDRIVE_CF_TUNE": "false",
          "OVERDRIVE_DASHBOARD_SAMPLE_SECONDS": "1"}


class _Capture:
    """Log records of the root logger formatted as the service writes them, for one test."""

    def __init__(self, fmt: str) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(logs.formatter(fmt))

    def __enter__(self) -> _Capture:
        root = logging.getLogger()
        self._level = root.level
        root.addHandler(self.handler)
        root.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        root = logging.getLogger()
        root.removeHandler(self.handler)
        root.setLevel(self._level)

    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def json(self) -> list[dict]:
        return [json.loads(line) for line in self.lines()]


def _ranked(user: str, items: list[tuple[str, dict[str, float], dict[str, float]]], strategy: str = "enhanced",
            experiment: dict | None = None) -> RankResult:
    ranked = [RankedItem(id=i, score=sum(shares.values()), rank=n + 1, scores=shares, components=own)
              for n, (i, shares, own) in enumerate(items)]
    return RankResult(user_id=user, items=ranked, strategy=strategy, request_id=f"req-{user}", processing_time_ms=1.5,
                      candidates_considered=len(items), experiment=experiment)


# ---------------------------------------------------------------------------------- logs


def test_json_lines_carry_the_context_and_escape_client_text() -> None:
    with _Capture("json") as capture, bound("rid-1"):
        logging.getLogger("overdrive.test").warning("user %s", "eve\n{\"level\": \"ERROR\"}\x1b[31m\u2028\x85",
                                                    extra={"user_id": "u\u2029", "processing_time_ms": 1.25})
        logging.getLogger("overdrive.test").info("plain", extra={"request_id": "explicit"})
    raw = capture.stream.getvalue()
    assert raw.count("\n") == 2 and "\u2028" not in raw and "\u2029" not in raw and "\x85" not in raw and "\x1b" not in raw
    first, second = capture.json()
    assert set(first) >= {"timestamp", "level", "logger", "message", "request_id", "user_id", "processing_time_ms"}
    assert first["level"] == "WARNING" and first["logger"] == "overdrive.test" and first["request_id"] == "rid-1"
    assert first["message"] == "user eve\n{\"level\": \"ERROR\"}\x1b[31m\u2028\x85" and first["user_id"] == "u\u2029"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["timestamp"])
    assert second["request_id"] == "explicit"  # a record's own id wins over the bound one


def test_text_lines_are_one_line_with_the_context() -> None:
    with _Capture("text") as capture, bound("rid-2"):
        logging.getLogger("overdrive.test").info("hello %s", "a\nb", extra={"user_id": "u\n1"})
    (line,) = capture.lines()
    assert line.endswith("INFO overdrive.test hello a\\nb request_id=rid-2 user_id=u\\n1")


def test_auto_is_text_on_a_terminal_and_json_elsewhere() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert logs.chosen_format("auto", Tty()) == "text"
    assert logs.chosen_format("auto", io.StringIO()) == "json"
    assert logs.chosen_format("text", io.StringIO()) == "text"
    with pytest.raises(ValueError):
        logs.chosen_format("xml", io.StringIO())


def test_lines_are_written_in_batches_off_the_callers_path() -> None:
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        logs.configure("info", "json", stream=stream)
        (handler,) = root.handlers
        assert isinstance(handler, logs.BatchingHandler)
        deferred = logs.DeferredLogger(logging.getLogger("overdrive.ranking"))
        with bound("batched-1"):
            logging.getLogger("overdrive.test").info("first")
            deferred.log(logging.INFO, "Processing recommendation", {"request_id": "batched-1", "user_id": "u"})
            called = time.time()
        assert stream.getvalue() == ""  # nothing written on the caller's path
        deadline = time.monotonic() + 5
        while stream.getvalue().count("\n") < 2:
            assert time.monotonic() < deadline, stream.getvalue()
            time.sleep(0.01)
        first, ranking = (json.loads(line) for line in stream.getvalue().splitlines())
        assert first["request_id"] == "batched-1"  # the context noted when logged, written by another thread
        assert ranking["message"] == "Processing recommendation" and ranking["user_id"] == "u"
        stamp = time.strptime(ranking["timestamp"][:19], "%Y-%m-%dT%H:%M:%S")
        assert abs(calendar.timegm(stamp) - called) < 2  # the time of the call, not of the write
        logging.getLogger("overdrive.test").error("at once")
        assert stream.getvalue().splitlines()[-1].endswith('"message":"at once"}')  # errors are not held back
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = saved
        root.setLevel(level)
    assert not logs._deferring  # noqa: SLF001 - closing the handler logs deferred calls at once again


def test_a_request_id_is_taken_from_the_client_only_when_printable() -> None:
    assert request_id_from(b"abc-123") == "abc-123"
    for bad in (b"", b"x" * 129, b"a\nb", "é".encode(), None):
        assert re.fullmatch(r"[0-9a-f]{32}", request_id_from(bad))


def test_a_ranking_logs_the_specs_line_with_its_request_id(client: TestClient) -> None:
    client.post("/items/batch", json={"items": [{"id": f"i{n}", "tags": ["t"]} for n in range(5)]})
    with _Capture("json") as capture:
        r = client.post(RANK, json={"user_id": "user\n42", "limit": 3, "strategy": "enhanced"},
                        headers={"X-Request-ID": "trace-7"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "trace-7"
    (line,) = [e for e in capture.json() if e["message"] == "Processing recommendation"]
    assert line["request_id"] == "trace-7" and line["user_id"] == "user\n42" and line["ranking_method"] == "enhanced"
    assert line["processing_time_ms"] > 0 and line["logger"] == "overdrive.ranking" and line["items"] == 3
    assert "\n" not in capture.stream.getvalue().rstrip("\n").split("\n")[0]


def test_the_server_writes_json_with_uvicorns_access_line_carrying_the_request_id(tmp_path: Path) -> None:
    env = {k: v for k, v in app_env(tmp_path).items() if k != "OVERDRIVE_DATA_DIR"}
    env |= {"OVERDRIVE_LOG_LEVEL": "info", "OVERDRIVE_LOG_FORMAT": "json", "OVERDRIVE_ACCESS_LOG": "true"}
    log_path = tmp_path / "server.log"
    with ServerProcess(data_dir=tmp_path / "data", env=env, log_path=log_path) as server:
        r = httpx.post(server.url + RANK, json={"user_id": "u1"}, headers={"X-Request-ID": "e2e-1"})
        assert r.status_code == 200
        httpx.get(server.url + "/health/live?x=%0Afake%20line")
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]  # every line is one JSON object
    ours = [e for e in lines if e.get("request_id") == "e2e-1"]
    assert {e["logger"] for e in ours} == {"overdrive.ranking", "uvicorn.access"}, ours
    access = next(e for e in ours if e["logger"] == "uvicorn.access")
    assert access["method"] == "POST" and access["path"] == RANK and access["status"] == 200
    assert access["processing_time_ms"] >= 0 and access["client"].startswith("127.0.0.1")
    assert any(e.get("path", "").startswith("/health/live?x=%0A") for e in lines)
    assert any(e["logger"].startswith("uvicorn") and "startup" in e["message"].lower() for e in lines)


# -------------------------------------------------------------------- request id via Kafka


def test_the_request_id_travels_with_each_signal_through_kafka_to_the_workers_log(tmp_path: Path) -> None:
    why = real_servers.tansu_missing() or real_servers.shared_redis_missing()
    if why is not None:
        real_servers.unavailable(why)
    broker = real_servers.Tansu(log_dir=tmp_path).start()
    prefix = real_servers.unique_prefix("obs")
    env = {**app_env(tmp_path), "REDIS_URL": real_servers.SHARED_REDIS_URL, "OVERDRIVE_REDIS_PREFIX": prefix,
           "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "OVERDRIVE_KAFKA_TOPIC": "obs", "OVERDRIVE_KAFKA_PARTITIONS": "2",
           "OVERDRIVE_KAFKA_GROUP": "obs-workers", "OVERDRIVE_KAFKA_SESSION_TIMEOUT_MS": "6000",
           "OVERDRIVE_DASHBOARD_SAMPLE_SECONDS": "1"}
    worker = real_servers.WorkerProcess(env={**env, "OVERDRIVE_LOG_LEVEL": "debug", "OVERDRIVE_LOG_FORMAT": "json"},
                                        log_path=tmp_path / "worker.log")
    try:
        broker.create_topic("obs", partitions=2)
        worker.start()
        with TestClient(create_app(build_services(Settings.load(env)))) as client:
            client.post("/items/batch", json={"items": [{"id": "k1"}, {"id": "k2"}]})
            r = client.post("/signals/batch", headers={"X-Request-ID": "via-kafka-1"}, json={"signals": [
                {"user_id": "ku", "signal_type": "like", "content_id": "k1", "signal_id": "ks1"},
                {"user_id": "ku", "signal_type": "view", "content_id": "k2", "signal_id": "ks2"}]})
            assert r.status_code == 200, r.text
            deadline = time.monotonic() + 60
            while True:
                applied = [json.loads(line) for line in (tmp_path / "worker.log").read_text().splitlines()
                           if line.startswith("{") and "via-kafka-1" in line]
                if applied or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert applied, (tmp_path / "worker.log").read_text()[-3000:]
            line = applied[0]
            assert line["message"] == "signals applied" and line["request_id"] == "via-kafka-1"
            assert line["signal_ids"] == ["ks1", "ks2"] and line["user_ids"] == ["ku"] and line["applied"] == 2
            # The workers' lag, measured by this replica, reaches /metrics and the dashboard.
            while True:
                lag = re.search(r'overdrive_gauge\{name="kafka_consumer_lag"\} (\S+)', client.get("/metrics").text)
                if (lag and float(lag.group(1)) == 0.0) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert lag and float(lag.group(1)) == 0.0, lag
            assert 'id="chart-lag"' in client.get("/dashboard").text
            # /performance/system counts signals with Kafka too: produced by this replica, retained
            # by the topic, and read back from it by type. (One more signal on its own: Tansu reports
            # a partition's end as its last batch's first offset + 1, exact for a batch of one.)
            assert client.post("/signals/process", json={"user_id": "ku", "signal_type": "share", "content_id": "k1",
                                                         "signal_id": "ks3"}).status_code == 200
            while (system := client.get("/performance/system").json())["signals"]["total"] < 3:
                assert time.monotonic() < deadline, system["signals"]
                time.sleep(0.1)
            assert system["signals"] == {"total": 3, "by_type": {"like": 1, "share": 1, "view": 1}}
            assert system["signal_stages"]["produce"]["signals"] == 3 and system["store"]["signals"] == 3, system
    finally:
        if worker.proc is not None and worker.proc.poll() is None:
            worker.terminate()
        broker.stop()
        real_servers.delete_prefix(real_servers.SHARED_REDIS_URL, prefix)


# ------------------------------------------------------------------------------ dashboard


@pytest.fixture
def world_client(tmp_path: Path) -> Iterator[TestClient]:
    """The app with a world, a trained model, rankings and a running experiment."""
    world = generate_world(WorldConfig(n_users=40, n_items=120, n_topics=4, n_days=8, signals_per_user=25, seed=11))
    settings = Settings.load(app_env(tmp_path, **CF_ENV))
    with TestClient(create_app(build_services(settings))) as client:
        assert client.post("/items/batch", json={"items": world.items}).status_code == 201
        assert client.post("/signals/batch", json={"signals": world.signals}).status_code == 200
        client.post("/models/train")
        deadline = time.monotonic() + 60
        while client.get("/models/status").json()["collaborative"]["last_training"]["state"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        client.post("/experiments", json={"name": "ab", "state": "running", "salt": "t", "arms": [
            {"name": "a", "weights": {"real_time": 1.0}}, {"name": "b", "weights": {"freshness": 1.0}}]})
        for user in sorted({s["user_id"] for s in world.signals}):
            assert client.post(RANK, json={"user_id": user, "limit": 10}).status_code == 200
        yield client


def test_every_dashboard_page_and_its_data(world_client: TestClient) -> None:
    client = world_client
    from overdrive.api.routes.dashboard import refresh

    services = client.app.state.services
    client.portal.call(refresh, services)  # a point of history now, not a second from now
    (ranked,) = services.performance.rankings.recent_users(1)
    for path in ("/dashboard", "/dashboard/models", "/dashboard/catalog", "/dashboard/trending", "/dashboard/users",
                 f"/dashboard/users/{ranked}", "/dashboard/experiments"):
        r = client.get(path)
        assert r.status_code == 200, (path, r.text[:500])
        assert r.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in r.headers["content-security-policy"]
        assert "http://" not in r.text and "https://" not in r.text  # nothing from outside
    overview = client.get("/dashboard/api/overview").json()
    assert overview["history"] and overview["dependencies"]["store"]["ok"]
    assert any(e["endpoint"] == f"POST {RANK}" for e in overview["endpoints"])
    assert sum(overview["signals_by_type"].values()) > 0
    newest = overview["history"][-1]["t"]
    assert client.get(f"/dashboard/api/overview?since={newest}").json()["history"] == []
    models = client.get("/dashboard/api/models").json()
    assert models["history"] and models["history"][0]["validation_ndcg@10"]
    assert set(models["decided_share"]) <= {"content_based", "collaborative", "real_time", "user_interests", "freshness", "context"}
    assert abs(sum(models["decided_share"].values()) - 1.0) < 1e-3
    assert models["score_histograms"]
    catalog = client.get("/dashboard/api/catalog").json()
    assert catalog["items"] == 120 and 0 < catalog["coverage_last_hour"] <= 1
    assert 0 <= catalog["exposure_gini_last_hour"] <= 1 and catalog["lorenz"]["items"]
    user = client.get(f"/dashboard/api/users/{ranked}").json()
    assert user["rankings"] and user["rankings"][0]["items"][0]["components"]
    assert user["recent_signals"] and user["profile"]["total_signals"] > 0
    experiments = client.get("/dashboard/api/experiments").json()["experiments"]
    assert experiments and experiments[0]["results"]["arms"]
    assert client.get("/dashboard/users?user_id=u1", follow_redirects=False).headers["location"].endswith("/dashboard/users/u1")


def test_a_two_tower_members_training_curves_are_drawn(tmp_path: Path) -> None:
    """With the two-tower model in the ensemble, the models page draws its loss and holdout recall
    per epoch from the fitted network's own report."""
    world = generate_world(WorldConfig(n_users=40, n_items=120, n_topics=4, n_days=8, signals_per_user=25, seed=11))
    env = {**CF_ENV, "OVERDRIVE_CF_METHODS": "popularity,two_tower"}
    with TestClient(create_app(build_services(Settings.load(app_env(tmp_path, **env))))) as client:
        assert 'id="chart-two-tower"' not in client.get("/dashboard/models").text  # nothing fitted yet
        client.post("/items/batch", json={"items": world.items})
        client.post("/signals/batch", json={"signals": world.signals})
        client.post("/models/train")
        deadline = time.monotonic() + 120
        while (last := client.get("/models/status").json()["collaborative"]["last_training"])["state"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert last["state"] == "done", last
        curves = client.get("/dashboard/api/models").json()["two_tower_curves"]
        assert curves and len(curves["loss"]) >= 1 and all(v > 0 for v in curves["loss"]), curves
        assert 'id="chart-two-tower"' in client.get("/dashboard/models").text


def test_client_text_reaches_the_pages_escaped(client: TestClient) -> None:
    evil = "<img src=x onerror=alert(1)>"
    client.post("/items/batch", json={"items": [{"id": "</script><b>x", "tags": ["<i>t"]}]})
    assert client.post(RANK, json={"user_id": evil}).status_code == 200
    page = client.get(f"/dashboard/users/{evil}").text
    assert evil not in page and "</script><b>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page  # in the title, escaped by Jinja2
    assert "\\u003cimg src=x onerror=alert(1)\\u003e" in page  # in the page data, escaped by tojson


def test_dashboard_scopes_and_audit(tmp_path: Path) -> None:
    keys = {name: new_key() for name in ("ops", "metrics", "rank", "auditor")}
    scopes = {"ops": {"metrics:read", "analytics:read", "experiments:read"}, "metrics": {"metrics:read"},
              "rank": {"rank"}, "auditor": {"audit:read"}}
    for name, key in keys.items():
        append_key(tmp_path / "keys.json", KeyEntry(id=name, sha256=key_digest(key), scopes=frozenset(scopes[name])))
    settings = Settings.load(app_env(tmp_path, OVERDRIVE_API_KEYS_FILE=str(tmp_path / "keys.json")))
    with TestClient(create_app(build_services(settings))) as client:
        def get(path: str, who: str | None) -> int:
            return client.get(path, headers={"X-API-Key": keys[who]} if who else {}).status_code

        assert get("/dashboard", None) == 401 and get("/dashboard/static/dashboard.js", None) == 401
        assert get("/dashboard", "rank") == 403 and get("/dashboard/api/overview", "rank") == 403
        for path in ("/dashboard", "/dashboard/models", "/dashboard/catalog", "/dashboard/api/overview"):
            assert get(path, "metrics") == 200, path
        for path in ("/dashboard/users", "/dashboard/users/u9", "/dashboard/api/users/u9", "/dashboard/trending",
                     "/dashboard/experiments"):
            assert get(path, "metrics") == 403, path
            assert get(path, "ops") == 200, path
        records = client.get("/audit", params={"user": "u9", "action": "user.read"},
                             headers={"X-API-Key": keys["auditor"]}).json()["records"]
    assert len(records) == 2 and {r["principal"] for r in records} == {"key:ops"}
    assert all(r["detail"]["view"] == "dashboard" for r in records)


def test_erasure_drops_the_dashboards_copy_of_a_user(client: TestClient) -> None:
    client.post("/items/batch", json={"items": [{"id": "e1"}, {"id": "e2"}]})
    client.post("/signals/process", json={"user_id": "gone", "signal_type": "like", "content_id": "e1"})
    client.post(RANK, json={"user_id": "gone"})
    before = client.get("/dashboard/api/users/gone").json()
    assert before["rankings"] and before["recent_signals"]
    job = client.delete("/users/gone").json()
    deadline = time.monotonic() + 30
    while client.get(f"/users/erasures/{job['job_id']}").json()["state"] not in ("done", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    done = client.get(f"/users/erasures/{job['job_id']}").json()
    assert done["state"] == "done" and done["steps"]["observability"] == "dropped"
    after = client.get("/dashboard/api/users/gone").json()
    assert after["rankings"] == [] and after["recent_signals"] == []


# ------------------------------------------------------------------------ ranking figures


def test_the_ranking_observer_counts_decisions_coverage_cold_items_and_scores() -> None:
    monitor = RankingMonitor(per_user=2, max_users=2, score_sample_every=1)
    warm = {"real_time": 0.8, "freshness": 0.1}
    cold = {"real_time": 0.0, "freshness": 0.9}
    monitor.observe(_ranked("a", [("i1", {"real_time": 0.4, "freshness": 0.05}, warm),
                                  ("i2", {"real_time": 0.0, "freshness": 0.45}, cold)]))
    monitor.observe(_ranked("b", [("i2", {"real_time": 0.0, "freshness": 0.45}, cold)]))
    monitor.observe(_ranked("c", [("i3", {"freshness": 1.0}, {"freshness": 1.0})], strategy="freshness"))
    assert monitor.decided == {"real_time": 1, "freshness": 2}
    assert monitor.rankings == {"enhanced": 2, "freshness": 1}
    assert (monitor.cold_checked, monitor.cold) == (3, 2)  # the freshness-only ranking scored no engagement
    health = monitor.catalog_health(10)
    assert health["distinct_items_served_last_hour"] == 3 and health["coverage_last_hour"] == 0.3
    assert health["cold_share_served"] == round(2 / 3, 6)
    assert health["exposure_gini_last_hour"] == round(gini([1, 2, 1], zeros=7), 6)
    hist = monitor.score_histograms()
    assert hist["freshness"]["count"] == 4 and hist["real_time"]["count"] == 3
    assert hist["real_time"]["counts"][2] == 2  # two zeros in the (-0.1, 0] bucket
    assert monitor.recent_users(5) == ["c", "b"] and monitor.recent("a") == []  # LRU of two users
    sampled = RankingMonitor(score_sample_every=4)
    for n in range(8):
        sampled.observe(_ranked(f"s{n}", [("i1", {"freshness": 1.0}, {"freshness": 1.0})]))
    assert sampled.score_histograms()["freshness"]["count"] == 2  # the 1st and the 5th
    monitor.forget_user("b")
    assert monitor.recent("b") == []
    assert decided_by(_ranked("d", [])) is None


def test_gini() -> None:
    assert gini([5, 5, 5, 5]) == pytest.approx(0.0)
    assert gini([10], zeros=9) == pytest.approx(0.9)
    assert gini([]) == 0.0


def test_model_history_keeps_each_version_once_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    status = {"collaborative": {"serving": {"version": "v1", "fitted_at": 1.0, "validation_ndcg@10": {"als": 0.3},
                                            "fit_seconds": {"als": 0.5}},
                                "last_training": {"version": "v1", "seconds": 2.0, "signals": 10, "reason": "test"}},
              "blend": {"fitted": {"fitted_at": 5.0, "weights": {"freshness": 1.0}}}}
    history = ModelHistory(path)
    assert len(history.observe(status)) == 2 and history.observe(status) == []
    again = ModelHistory(path)
    assert again.observe(status) == [] and [r["model"] for r in again.records()] == ["collaborative", "blend"]
    assert again.records("collaborative")[0]["training_seconds"] == 2.0


def test_a_sample_gives_rates_percentiles_and_signal_rates() -> None:
    monitor = PerformanceMonitor()
    monitor.sample(now=100.0)
    for ms in range(1, 101):
        monitor.record("POST /x", float(ms), 500 if ms <= 5 else 200)
    monitor.signals.on_applied([Signal("u", "like", "i", 1.0)] * 20)
    point = monitor.sample(now=110.0)
    assert point["requests_per_s"] == 10.0 and point["errors_per_s"] == 0.5
    route = point["routes"]["POST /x"]
    assert route["error_rate"] == 0.05 and route["p50"] == pytest.approx(50.5) and route["p99"] == pytest.approx(99.01)
    assert point["signals_per_s"] == {"like": 2.0}
    assert monitor.sample(now=120.0)["routes"] == {}


# --------------------------------------------------------------- Prometheus and Grafana files


def _expressions() -> list[str]:
    exprs = []
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/overdrive.json").read_text())
    for panel in dashboard["panels"]:
        exprs += [t["expr"] for t in panel.get("targets", [])]
    rules = (ROOT / "deploy/prometheus/alerts.yml").read_text()
    exprs += re.findall(r"expr: \|?\n?((?:.*\n)*?)\s+for:", rules)
    return exprs


def test_every_series_the_deploy_files_use_is_in_metrics(world_client: TestClient) -> None:
    from overdrive.api.routes.dashboard import refresh

    client = world_client
    services = client.app.state.services
    services.performance.gauge("kafka_consumer_lag", lambda: 0.0)  # what wiring adds in scaled mode
    client.post("/signals/batch", json={"signals": [{"user_id": "m", "signal_type": "like", "content_id": "x"}]})
    client.portal.call(refresh, services)
    text = client.get("/metrics").text
    exported = set(re.findall(r"^([a-z_:][a-z0-9_:]*)(?:\{|\s)", text, flags=re.MULTILINE))
    gauges = set(re.findall(r'^overdrive_gauge\{name="([a-z_]+)"\}', text, flags=re.MULTILINE))
    exprs = _expressions()
    assert len(exprs) > 30
    used = {m for e in exprs for m in re.findall(r"\b(overdrive_[a-z0-9_]+)", e)}
    missing = sorted(m for m in used if m not in exported)
    assert not missing, f"series the deploy files use that /metrics lacks: {missing}"
    used_gauges = {g for e in exprs for g in re.findall(r'overdrive_gauge\{name="([a-z_]+)"\}', e)}
    assert used_gauges and used_gauges <= gauges, used_gauges - gauges
    for expr in exprs:  # every rule's and panel's series lives in /metrics, or is Prometheus's own `up`
        for name in re.findall(r"\b([a-z_]+)\{", expr):
            assert name.startswith("overdrive_") or name == "up", expr


def test_the_deploy_files_parse() -> None:
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/overdrive.json").read_text())
    assert dashboard["uid"] == "overdrive" and len(dashboard["panels"]) > 20


def test_the_alert_rules_pass_promtool_and_their_own_tests() -> None:
    """Prometheus's checker (Debian's `prometheus` package; .ci/run installs it) loads the rules
    and runs their unit tests (alerts_test.yml: each alert fires on the series it is meant for)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        real_servers.unavailable("promtool (Debian package prometheus) is not installed")
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        done = subprocess.run([promtool, *args], cwd=ROOT / "deploy/prometheus", check=False,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
