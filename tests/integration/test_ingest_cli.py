"""The ingest CLI loads a synthetic world into a real server process, idempotently."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from overdrive.ingest.http import RequestFailed, post_world
from overdrive.data.synthetic import WorldConfig, generate_world
from overdrive_client import Client, ConnectionFailed, Retry

REPO = Path(__file__).resolve().parents[2]
WORLD = ["--seed", "5", "--users", "30", "--items-count", "80", "--topics", "4", "--days", "3", "--signals-per-user", "20"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    data = tmp_path_factory.mktemp("ingest-server")
    env = {**os.environ, "OVERDRIVE_DATA_DIR": str(data / "data"), "MODEL_CACHE_DIR": str(data / "models"),
           "SERVICE_PORT": str(port), "OVERDRIVE_HOST": "127.0.0.1", "OVERDRIVE_LOG_LEVEL": "warning"}
    log = (data / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "overdrive.app"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                pytest.fail(f"server did not start: {(data / 'server.log').read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _ingest(url: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "overdrive.ingest", "--url", url, "--format", "synthetic", *WORLD,
         "--batch-size", "150", "--no-progress", *extra],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )


def _store(url: str) -> dict:
    return httpx.get(f"{url}/performance/system", timeout=10).json()["store"]


def test_cli_loads_the_world_and_a_rerun_adds_nothing(server: str, tmp_path: Path) -> None:
    world = generate_world(WorldConfig(n_users=30, n_items=80, n_topics=4, n_days=3, signals_per_user=20, seed=5))
    first = _ingest(server, "--out", str(tmp_path / "world"))
    assert first.returncode == 0, first.stderr
    assert _store(server) == {"signals": len(world.signals), "items": len(world.items)}
    assert f"{len(world.signals)} signals" in first.stdout and "signals/s" in first.stdout
    assert f"{len(world.signals)} accepted, 0 duplicates" in first.stdout
    assert (tmp_path / "world" / "signals.jsonl").read_text().count("\n") == len(world.signals)

    again = _ingest(server, "--concurrency", "1")
    assert again.returncode == 0, again.stderr
    assert f"0 accepted, {len(world.signals)} duplicates" in again.stdout
    assert _store(server)["signals"] == len(world.signals)


def test_a_refused_batch_names_the_absolute_row(server: str) -> None:
    signals = [{"user_id": "x", "signal_type": "view", "content_id": "i0", "signal_id": f"bad-{n}"} for n in range(9)]
    signals[7]["signal_type"] = "poke"
    with Client(server) as client, pytest.raises(RequestFailed, match=r"rows 6\.\.8\) answered 422: signals\[7\]\.signal_type"):
        post_world(client, [], signals, batch_size=3, concurrency=1)


def test_post_world_gives_up_on_an_unreachable_service_after_backoff() -> None:
    slept: list[float] = []
    with Client(f"http://127.0.0.1:{_free_port()}") as client, pytest.raises(ConnectionFailed, match="after 2 retries"):
        post_world(client, [{"id": "a"}], [], retry=Retry(attempts=2, sleep=slept.append))
    assert len(slept) == 2 and 0.125 <= slept[0] <= 0.25 and 0.25 <= slept[1] <= 0.5  # doubling, with jitter
