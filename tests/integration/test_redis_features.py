"""The Redis FeatureStore against the memory one, on the same randomised signal stream.

The contract suite pins named behaviours; this one checks that every read — engagement, top
list, velocity, trending, windows, interests (long and short), activity, sessions — agrees with
`MemoryFeatureStore` after a stream with backfills, repeats, unknown items, negative signals and
batches, on standalone Redis and on a Redis Cluster. Also: keys carry TTLs, ids with braces stay
in one Cluster slot, and the store answers `BackendUnavailable` when its server is gone.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest

from overdrive.domain.errors import BackendUnavailable
from overdrive.domain.types import Item, Signal
from overdrive.store.feature_config import FeatureConfig
from overdrive.store.memory_feature_store import MemoryFeatureStore
from tests import real_servers

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0
CONFIG = FeatureConfig(engagement_half_life_s=1800.0, interest_half_life_s=86400.0, short_term_half_life_s=300.0,
                       session_gap_s=600.0, recent_per_user=7)
TYPES = ["view", "like", "share", "skip", "hide", "comment", "scroll", "dwell", "report", "follow"]
ITEMS = {
    f"it{n}": Item(id=f"it{n}", type=random.Random(n).choice(["video", "text", "image"]),
                   author_id=f"au{n % 4}" if n % 5 else None, tags=(f"t{n % 3}", f"T{n % 2}"), created_at=T0)
    for n in range(12)
}
ITEMS["br{ace}"] = Item(id="br{ace}", author_id="}odd{", tags=("x",))


def _stream(seed: int, n: int) -> list[Signal]:
    rng = random.Random(seed)
    out = []
    for k in range(n):
        ts = T0 + rng.uniform(-90_000, 4_000)  # mostly within a day, some beyond, some backfilled
        out.append(Signal(
            user_id=rng.choice(["u1", "u2", "u3", "{u4}"]), signal_type=rng.choice(TYPES),
            content_id=rng.choice([*ITEMS, "ghost"]), timestamp=ts,
            duration=rng.choice([None, 5.0, 60.0]), intensity=rng.choice([1.0, 0.5, 2.0]),
            signal_id=f"s{k}" if k % 7 else None, metadata={"k": k} if k % 3 == 0 else {},
        ))
    out += [out[i] for i in range(1, n, 9) if out[i].signal_id]  # redeliveries
    return out


@pytest.fixture(params=["standalone", "cluster"])
async def redis_store(request: pytest.FixtureRequest) -> AsyncIterator:
    from overdrive.store.redis_conn import RedisConnection
    from overdrive.store.redis_feature_store import RedisFeatureStore

    if request.param == "cluster":
        if (why := real_servers.redis_server_missing()) is not None:
            real_servers.unavailable(why)
        url = real_servers.shared_cluster().url
    else:
        if (why := real_servers.shared_redis_missing()) is not None:
            real_servers.unavailable(why)
        url = real_servers.SHARED_REDIS_URL
    prefix = real_servers.unique_prefix("feat")
    connection = RedisConnection(url)
    try:
        yield RedisFeatureStore(connection=connection, config=CONFIG, prefix=prefix), connection
    finally:
        await connection.close()
        real_servers.delete_prefix(url, prefix)


async def _snapshot(store, now: float) -> dict:
    ids = [*ITEMS, "ghost", "never"]
    snap = {
        "engagement": await store.item_engagement(ids, now=now),
        "top": await store.top_engaged(50, now=now),
        "velocity": await store.item_velocity(ids, now=now),
        "trending": await store.trending(5, now=now),
    }
    for kind, entity in [("item", i) for i in ids] + [("author", f"au{n}") for n in range(4)] + [("author", "}odd{")]:
        snap[f"w:{kind}:{entity}"] = await store.windows(kind, entity, now=now)
    for user in ["u1", "u2", "u3", "{u4}", "nobody"]:
        snap[f"long:{user}"] = await store.user_interests(user, now=now)
        snap[f"short:{user}"] = await store.user_interests(user, now=now, term="short")
        snap[f"act:{user}"] = await store.user_activity(user, now=now)
    return snap


def _assert_same(got, want, path: str = "") -> None:
    if isinstance(want, dict):
        assert set(got) == set(want), path
        for k in want:
            _assert_same(got[k], want[k], f"{path}.{k}")
    elif isinstance(want, list | tuple) and not hasattr(want, "signal_type"):
        assert len(got) == len(want), path
        for n, (g, w) in enumerate(zip(got, want, strict=True)):
            _assert_same(g, w, f"{path}[{n}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-9), path
    elif hasattr(want, "__dataclass_fields__"):
        for name in want.__dataclass_fields__:
            _assert_same(getattr(got, name), getattr(want, name), f"{path}.{name}")
    else:
        assert got == want, path


async def test_matches_the_memory_store_on_a_random_stream(redis_store) -> None:
    store, _ = redis_store
    memory = MemoryFeatureStore(config=CONFIG)
    stream = _stream(seed=3, n=400)
    rng = random.Random(5)
    pos = 0
    while pos < len(stream):
        size = rng.choice([1, 3, 20, 60])
        batch, pos = stream[pos : pos + size], pos + size
        now = T0 + rng.uniform(0, 600)
        want = await memory.apply(batch, ITEMS, now=now)
        got = await store.apply(batch, ITEMS, now=now)
        assert [s.signal_id for s in got] == [s.signal_id for s in want]
    for now in (T0 + 600, T0 + 3_000, T0 + 40_000):
        _assert_same(await _snapshot(store, now), await _snapshot(memory, now))


async def test_redelivery_of_a_whole_batch_changes_nothing(redis_store) -> None:
    store, _ = redis_store
    batch = [s for s in _stream(seed=9, n=60) if s.signal_id]
    assert len(await store.apply(batch, ITEMS, now=T0)) == len({s.signal_id for s in batch})
    before = await _snapshot(store, T0 + 10)
    assert await store.apply(batch, ITEMS, now=T0) == []
    _assert_same(await _snapshot(store, T0 + 10), before)


async def test_windows_and_markers_expire(redis_store) -> None:
    store, connection = redis_store
    await store.apply([Signal(user_id="u1", signal_type="like", content_id="it1", timestamp=T0, signal_id="x")], ITEMS, now=T0)
    client = connection.client
    prefix = store._p  # noqa: SLF001 - the test inspects the layout it documents
    fine_ttl = await client.ttl(f"{prefix}{{i:it1}}:wf")
    coarse_ttl = await client.ttl(f"{prefix}{{i:it1}}:wc")
    marker_ttl = await client.ttl(f"{prefix}{{u:u1}}:seen:x")
    assert 0 < fine_ttl <= 910 and 86_000 < coarse_ttl <= 86_460
    assert CONFIG.dedupe_ttl_s - 60 < marker_ttl <= CONFIG.dedupe_ttl_s


async def test_an_unreachable_server_is_backend_unavailable() -> None:
    from overdrive.store.redis_conn import RedisConnection
    from overdrive.store.redis_feature_store import RedisFeatureStore

    connection = RedisConnection(f"redis://127.0.0.1:{real_servers.free_port()}/0")
    store = RedisFeatureStore(connection=connection, config=CONFIG, prefix=real_servers.unique_prefix())
    try:
        with pytest.raises(BackendUnavailable):
            await store.item_engagement(["x"], now=T0)
        with pytest.raises(BackendUnavailable):
            await connection.ping()
    finally:
        await connection.close()


async def test_many_more_concurrent_commands_than_connections_wait_their_turn() -> None:
    """Past the pool's size a command waits for a free connection instead of failing: 2,000
    concurrent pipelines on a pool of 8 all succeed (redis-py's default pool raised "Too many
    connections" beyond 100, failing most rankings under load)."""
    from overdrive.store.redis_conn import RedisConnection

    if why := real_servers.shared_redis_missing():
        real_servers.unavailable(why)
    url = real_servers.SHARED_REDIS_URL
    connection = RedisConnection(url + ("&" if "?" in url else "?") + "max_connections=8")
    try:
        assert connection.client.connection_pool.max_connections == 8
        replies = await asyncio.gather(*(connection.execute([["PING"], ["ECHO", str(n)]]) for n in range(2000)))
        assert [r[1] for r in replies] == [str(n).encode() for n in range(2000)]
    finally:
        await connection.close()
