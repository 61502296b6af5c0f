"""The benchmark's parts: the load generator against the reference endpoints, paced and closed-loop."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from benchmarks.load import post_request, run_load
from overdrive.evaluation.server_process import free_port
from benchmarks.ranking import RANK_PATH, reference_server


BODY = orjson.dumps({"user_id": "u", "candidate_items": [{"id": f"i{n}"} for n in range(100)], "limit": 20})


@pytest.fixture
def bare_port():
    port = free_port()
    with reference_server("bare", port):
        yield port


def test_load_generator_counts_answers_and_paces(bare_port: int) -> None:
    requests = [post_request("127.0.0.1", bare_port, "/", BODY)]
    closed = run_load("127.0.0.1", bare_port, requests, connections=4, duration_s=1.0, warmup_s=0.2)
    assert closed.requests > 50 and not closed.errors
    assert [i["id"] for i in orjson.loads(closed.sample_body)["items"]] == [f"i{n}" for n in range(20)]
    paced = run_load("127.0.0.1", bare_port, requests, connections=4, duration_s=2.0, warmup_s=0.2, rate=50)
    assert 80 <= paced.requests <= 110  # 50/s for 2 s, answered well within the window
    assert 0 < paced.percentile(50) <= paced.percentile(99)


def test_load_is_spread_over_replicas(bare_port: int) -> None:
    second = free_port()
    requests = [post_request("127.0.0.1", bare_port, "/", BODY)]
    with reference_server("bare", second):
        both = run_load("127.0.0.1", [bare_port, second], requests, connections=2, duration_s=0.5, warmup_s=0.1)
    assert both.requests > 0 and not both.errors
    with pytest.raises(ConnectionRefusedError):  # the second connection goes to the stopped one
        run_load("127.0.0.1", [bare_port, second], requests, connections=2, duration_s=0.5, warmup_s=0.1)


def test_framework_reference_validates_like_the_rank_route() -> None:
    port = free_port()
    with reference_server("framework", port):
        bad = orjson.dumps({"user_id": "u", "candidate_items": [{"id": ""}]})
        answers = run_load("127.0.0.1", port, [post_request("127.0.0.1", port, RANK_PATH, BODY)],
                           connections=2, duration_s=0.5, warmup_s=0.1)
        rejected = run_load("127.0.0.1", port, [post_request("127.0.0.1", port, RANK_PATH, bad)],
                            connections=1, duration_s=0.3, warmup_s=0.0)
    assert answers.requests > 0 and not answers.errors
    assert [i["id"] for i in orjson.loads(answers.sample_body)["items"]] == [f"i{n}" for n in range(20)]
    assert set(rejected.errors) == {"422"} and not rejected.requests  # the rank route's request model


@pytest.mark.parametrize(("args", "named"), [([], "--benchmark"), (["--benchmark", "--replicas", "2"], "--replicas")])
def test_benchmark_cli_refuses_what_it_cannot_run(args: list[str], named: str) -> None:
    done = subprocess.run([sys.executable, "-m", "overdrive.services.enhanced_ranking_service", *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and named in done.stderr  # replicas share live state only through Redis
