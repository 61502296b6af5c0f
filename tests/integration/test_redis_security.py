"""What replicas share in Redis for security and privacy: one audit chain that concurrent appends
from several connections extend without a fork, one rate-limit budget per credential, one
erasure list — on standalone Redis and on a Cluster."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from overdrive.domain.audit import first_break
from overdrive.domain.errors import RateLimited
from overdrive.domain.privacy import user_digest
from overdrive.security.audit import AuditTrail
from overdrive.security.principal import Principal
from overdrive.security.rate_limit import RateLimiter
from tests import real_servers

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["standalone", "cluster"])
async def redis_url(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, str]]:
    cluster = request.param == "cluster"
    missing = real_servers.redis_server_missing() if cluster else real_servers.shared_redis_missing()
    if missing:
        real_servers.unavailable(missing)
    url = real_servers.shared_cluster().url if cluster else real_servers.SHARED_REDIS_URL
    prefix = real_servers.unique_prefix("security")
    yield url, prefix
    real_servers.delete_prefix(url, prefix)


async def test_concurrent_appends_from_replicas_make_one_chain(redis_url: tuple[str, str]) -> None:
    from overdrive.store.redis_audit import RedisAuditLog
    from overdrive.store.redis_conn import RedisConnection

    url, prefix = redis_url
    connections = [RedisConnection(url) for _ in range(3)]
    trails = [AuditTrail(RedisAuditLog(connection=c, prefix=prefix)) for c in connections]
    try:
        await asyncio.gather(*(trail.record(principal=f"replica{n}", action="user.read", target=f"user:u{k}")
                               for n, trail in enumerate(trails) for k in range(40)))
        records = list(trails[0].records())
        assert [r["seq"] for r in records] == list(range(1, 121))
        assert first_break(records) is None
        assert len(await trails[1].query(principal="replica2", limit=1000)) == 40
        assert [r["seq"] for r in await trails[2].query(target="user:u7", limit=2)] == sorted(
            (r["seq"] for r in records if r["target"] == "user:u7"), reverse=True)[:2]
        assert trails[0].verify()["intact"]
    finally:
        for c in connections:
            await c.close()


async def test_replicas_spend_one_rate_budget(redis_url: tuple[str, str]) -> None:
    from overdrive.store.redis_conn import RedisConnection
    from overdrive.store.redis_rate_limit import RedisBuckets

    url, prefix = redis_url
    a, b = RedisConnection(url), RedisConnection(url)
    key = Principal(id="key:shared", scopes=frozenset({"rank"}))
    limits = {"rank": (0.01, 3.0)}  # 3 at once, then one every 100 s
    one = RateLimiter(limits=limits, buckets=RedisBuckets(connection=a, prefix=prefix))
    two = RateLimiter(limits=limits, buckets=RedisBuckets(connection=b, prefix=prefix))
    try:
        await one.check(key, "rank")
        await two.check(key, "rank")
        await one.check(key, "rank")
        with pytest.raises(RateLimited) as refused:
            await two.check(key, "rank")
        assert refused.value.retry_after_s >= 90
        await two.check(Principal(id="key:other", scopes=frozenset({"rank"})), "rank")  # its own budget
    finally:
        await a.close()
        await b.close()


async def test_the_erasure_list_is_shared_and_keeps_no_id(redis_url: tuple[str, str]) -> None:
    import redis

    from overdrive.store.redis_conn import RedisConnection
    from overdrive.store.redis_erasures import RedisErasureList

    url, prefix = redis_url
    conn = RedisConnection(url)
    try:
        await RedisErasureList(connection=conn, prefix=prefix).add("gone@example.org", at=100.0)
        await RedisErasureList(connection=conn, prefix=prefix).add("gone@example.org", at=50.0)  # never moves back
        assert await RedisErasureList(connection=conn, prefix=prefix).snapshot() == {user_digest("gone@example.org"): 100.0}
        plain = redis.Redis.from_url(real_servers.SHARED_REDIS_URL) if "cluster" not in url else None
        if plain is not None:
            assert not any(b"gone@example.org" in k for k in plain.scan_iter(match=f"{prefix}*"))
    finally:
        await conn.close()
