"""The benchmark's parts: the load generator against the reference endpoints, paced and closed-loop.

Asserted is what does not depend on the machine's speed: answers counted and correct, a paced
run never sending more than its rate allows. The figures (requests per second, how close a paced
run comes to its rate) are printed by benchmarks/bench_load.py."""

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
    assert closed.requests >= 4 and not closed.errors  # at least one answer per connection counted, none failed
    assert [i["id"] for i in orjson.loads(closed.sample_body)["items"]] == [f"i{n}" for n in range(20)]
    assert (closed.latencies_ms > 0).all()
    rate, duration_s, connections = 50, 2.0, 4
    paced = run_load("127.0.0.1", bare_port, requests, connections=connections, duration_s=duration_s,
                     warmup_s=0.2, rate=rate)
    # Paced: sends are scheduled every 1/rate s across the connections, so however fast the
    # machine and server, no more than rate x duration of them (+ one per connection at the
    # window's edges) fall in the measured window.
    assert 0 < paced.requests <= rate * duration_s + connections and not paced.errors
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
