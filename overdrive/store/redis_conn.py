"""One Redis connection per process, standalone or Cluster, shared by every Redis-backed store.

URL: `REDIS_URL` as redis-py reads it (`redis://`, `rediss://`, `unix://`). A Redis Cluster is
named by the query flag `cluster=1`, e.g. `redis://10.0.0.1:7000,10.0.0.2:7000/?cluster=1`
(comma-separated seed nodes; any one of them is enough). The flag is ours, not redis-py's, so it
is stripped before the URL is handed on.

Failures of the server (refused, reset, timed out, cluster down, loading after a restart) become
`BackendUnavailable` at this boundary; the API answers 503. redis-py reconnects by itself on the
next command, so a restarted server is picked up without any action here. Timeouts and retries
are short on purpose: a caller gets an answer (or a 503) within about two seconds.

Lua scripts are sent by SHA (`EVALSHA`); after a restart or failover empties the script cache,
`NOSCRIPT` replies trigger one `SCRIPT LOAD` on every primary and a re-send of just those commands.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from redis.backoff import ExponentialBackoff
from redis.connection import HiredisRespSerializer
from redis.utils import HIREDIS_AVAILABLE
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    ClusterError,
    NoScriptError,
    RedisClusterException,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from overdrive.domain.errors import BackendUnavailable

log = logging.getLogger(__name__)

_CLUSTER_FLAG = "cluster"
_TRUE = {"1", "true", "yes", "on"}
_UNAVAILABLE = (
    RedisConnectionError, RedisTimeoutError, BusyLoadingError, ClusterDownError, ClusterError,
    TryAgainError, RedisClusterException, OSError,
)
_POOL_DEFAULTS: dict[str, Any] = {"max_connections": 64, "timeout": 5.0}  # URL query arguments win

_CLIENT_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": 1.0,
    "socket_timeout": 2.0,
    "health_check_interval": 15,
}


def split_cluster_flag(url: str) -> tuple[str, bool]:
    """(url without our `cluster` query flag, whether it named a cluster)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    cluster = any(k == _CLUSTER_FLAG and v.lower() in _TRUE for k, v in query)
    rest = urlencode([(k, v) for k, v in query if k != _CLUSTER_FLAG])
    return urlunsplit(parts._replace(query=rest)), cluster


def _retry() -> Any:
    from redis.asyncio.retry import Retry

    return Retry(ExponentialBackoff(cap=0.05, base=0.005), retries=2)


def _seed_nodes(url: str) -> tuple[str, list[tuple[str, int]]]:
    """A cluster URL may list several `host:port` seeds; redis-py takes one, the rest go as nodes."""
    parts = urlsplit(url)
    auth, _, hosts = parts.netloc.rpartition("@")
    seeds = []
    for hp in hosts.split(","):
        host, _, port = hp.rpartition(":") if ":" in hp else (hp, "", "6379")
        seeds.append((host or "127.0.0.1", int(port or 6379)))
    first = f"{auth}@{seeds[0][0]}:{seeds[0][1]}" if auth else f"{seeds[0][0]}:{seeds[0][1]}"
    return urlunsplit(parts._replace(netloc=first)), seeds


class _HiredisPacking:
    """Commands packed by hiredis in C, as redis-py's synchronous client does; its asyncio client
    packs them in Python, which was the largest single cost of a ranking on Redis (a ranking's
    reads take about 200 arguments); the A/B in the README measured the change."""

    _packer = HiredisRespSerializer()

    def pack_command(self, *args: Any) -> list[bytes]:
        return self._packer.pack(*args)


class RedisConnection:
    """The process's Redis client (async, plus a lazily made sync one for iterators)."""

    def __init__(self, url: str) -> None:
        self.url, self.cluster = split_cluster_flag(url)
        if self.cluster:
            first, seeds = _seed_nodes(self.url)
            nodes = [redis.asyncio.cluster.ClusterNode(h, p) for h, p in seeds[1:]]
            self.client: Any = redis.asyncio.cluster.RedisCluster.from_url(
                first, startup_nodes=nodes or None, retry=_retry(), **_CLIENT_OPTIONS
            )
        else:
            # A blocking pool: past `max_connections` a command waits up to `timeout` seconds for a
            # free connection (then BackendUnavailable: a 503) instead of failing at once, which
            # failed most rankings beyond ~100 concurrent requests. The URL may set either, as
            # `?max_connections=128&timeout=5`.
            pool = redis.asyncio.BlockingConnectionPool.from_url(
                self.url, retry=_retry(), **{**_POOL_DEFAULTS, **_CLIENT_OPTIONS})
            self.client = redis.asyncio.Redis(connection_pool=pool, retry=_retry())
            if HIREDIS_AVAILABLE:  # whichever connection class the URL's scheme chose, packing in C
                pool = self.client.connection_pool
                pool.connection_class = type(pool.connection_class.__name__, (_HiredisPacking, pool.connection_class), {})
        self._sync: Any = None
        self._scripts: dict[str, str] = {}

    def script(self, source: str) -> str:
        """Register a Lua script; returns the SHA to `EVALSHA` it by."""
        sha = hashlib.sha1(source.encode()).hexdigest()
        self._scripts[sha] = source
        return sha

    @property
    def sync(self) -> Any:
        """A blocking client on the same server, for the synchronous `scan` iterators."""
        if self._sync is None:
            if self.cluster:
                first, seeds = _seed_nodes(self.url)
                nodes = [redis.cluster.ClusterNode(h, p) for h, p in seeds[1:]]
                self._sync = redis.cluster.RedisCluster.from_url(first, startup_nodes=nodes or None, **_CLIENT_OPTIONS)
            else:
                self._sync = redis.Redis.from_url(self.url, **_CLIENT_OPTIONS)
        return self._sync

    async def execute(self, commands: Sequence[Sequence[Any]], *, transaction: bool = False) -> list[Any]:
        """Send commands in one pipeline and return their replies; raise the first error.

        `transaction` wraps them in MULTI/EXEC where the server can honour it (standalone only).
        Commands that hit an empty script cache are re-sent once after the scripts are loaded.
        """
        if not commands:
            return []
        with unavailable():
            results = await self._send(commands, transaction=transaction)
            missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
            if missing:
                await self._load_scripts()
                again = await self._send([commands[i] for i in missing], transaction=False)
                for i, r in zip(missing, again, strict=True):
                    results[i] = r
        for r in results:
            if isinstance(r, _UNAVAILABLE):
                raise BackendUnavailable(f"redis: {r}") from r
            if isinstance(r, Exception):
                raise r
        return results

    async def _send(self, commands: Sequence[Sequence[Any]], *, transaction: bool) -> list[Any]:
        pipe = self.client.pipeline(transaction=transaction and not self.cluster)
        for args in commands:
            pipe.execute_command(*args)
        return list(await pipe.execute(raise_on_error=False))

    async def _load_scripts(self) -> None:
        for source in self._scripts.values():
            await self.client.script_load(source)  # a Cluster client sends it to every primary
        log.info("loaded %d Lua scripts into redis", len(self._scripts))

    async def ping(self) -> dict:
        with unavailable():
            await self.client.ping()
        return {"backend": "redis-cluster" if self.cluster else "redis"}

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.aclose()
        if self._sync is not None:
            with contextlib.suppress(Exception):
                self._sync.close()
            self._sync = None


@contextlib.contextmanager
def unavailable() -> Iterator[None]:
    """Turn a server failure into `BackendUnavailable`; programming errors pass through."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise BackendUnavailable(f"redis: {exc or type(exc).__name__}") from exc

