"""Commands are packed by hiredis in C, byte for byte as redis-py's own (Python) packer does."""

from __future__ import annotations

import pytest
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection

from overdrive.store.redis_conn import RedisConnection

COMMANDS = [
    ("EVALSHA", "ab12", 3, "overdrive:{i:a}:e", "overdrive:{i:é}:e", b"raw\x00bytes"),
    ("ZADD", "k", 0.1, "m", 1e-07, "n", 1_700_000_000.123456, "o", -5, "p", 2**63),
    ("CONFIG GET", "maxmemory"),  # a command name of two words is split, as redis-py does
    ("SET", "k", memoryview(b"view"), bytearray(b"array")),
]


@pytest.mark.parametrize("url, base", [
    ("redis://127.0.0.1:6379/0", Connection),
    ("rediss://127.0.0.1:6380/0", SSLConnection),
    ("unix:///tmp/redis.sock", UnixDomainSocketConnection),
])
def test_every_scheme_keeps_its_connection_class_and_packs_like_redis_py(url: str, base: type) -> None:
    pool = RedisConnection(url).client.connection_pool  # nothing connects until a command is sent
    ours, theirs = pool.make_connection(), base(**pool.connection_kwargs)
    assert isinstance(ours, base) and type(ours).pack_command is not base.pack_command
    for command in COMMANDS:
        assert b"".join(ours.pack_command(*command)) == b"".join(theirs.pack_command(*command)), command
