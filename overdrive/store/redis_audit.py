"""The audit trail in Redis, shared by every replica: a stream of sealed records and its head.

`P{audit}:head` holds "<seq> <hash>" of the newest record; `P{audit}:log` is a stream whose
entry ids are `<seq>-1`, each entry one record as JSON. An append seals the record after the head
it knows and stores it with a compare-and-set script: if another replica appended meanwhile, the
script answers the new head and the record is sealed again after it. Appends of one process go
one at a time (a lock) after the head its last append left, so they cost one round trip each and
only other replicas' appends make it retry (after a jittered pause, within a deadline). Both keys share a hash slot, so this holds on a
Cluster too. Durability is Redis's own (AOF).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator

import orjson

from overdrive.domain.audit import GENESIS, seal
from overdrive.domain.errors import BackendUnavailable
from overdrive.store.redis_conn import RedisConnection, unavailable
from overdrive.store.redis_feature_store import check_prefix

_APPEND_SCRIPT = """
local head = redis.call('GET', KEYS[1]) or ''
if head ~= ARGV[1] then return head end
redis.call('XADD', KEYS[2], ARGV[4] .. '-1', 'r', ARGV[3])
redis.call('SET', KEYS[1], ARGV[2])
return 'ok'
"""
_APPEND_DEADLINE_S = 10.0
_QUERY_CHUNK = 1000
_QUERY_SCAN_MAX = 200_000  # records a filtered query looks through at most


class RedisAuditLog:
    def __init__(self, *, connection: RedisConnection, prefix: str = "overdrive:") -> None:
        self._r = connection
        p = check_prefix(prefix)
        self._head, self._log = f"{p}{{audit}}:head", f"{p}{{audit}}:log"
        self._sha = connection.script(_APPEND_SCRIPT)
        self._lock = asyncio.Lock()
        self._known_head: bytes | None = None  # as this process's last append left it (may be stale)

    async def append(self, fields: dict) -> dict:
        async with self._lock:
            head = self._known_head
            if head is None:
                (head,) = await self._r.execute([["GET", self._head]])
            deadline, attempt = time.monotonic() + _APPEND_DEADLINE_S, 0
            while True:
                seq, prev = _parse_head(head)
                record = seal(fields, seq=seq + 1, prev=prev)
                new_head = f"{record['seq']} {record['hash']}"
                (answer,) = await self._r.execute([["EVALSHA", self._sha, 2, self._head, self._log, _text(head),
                                                    new_head, orjson.dumps(record), record["seq"]]])
                if answer == b"ok":
                    self._known_head = new_head.encode()
                    return record
                head, attempt = answer, attempt + 1  # another replica appended: after theirs, a little later
                if time.monotonic() > deadline:
                    self._known_head = None
                    raise BackendUnavailable("redis: the audit trail is too contended to append to; retry")
                await asyncio.sleep(random.uniform(0, min(0.05, 0.0005 * 2 ** min(attempt, 7))))

    async def query(self, *, target: str | None = None, principal: str | None = None, action: str | None = None,
                    since: float | None = None, until: float | None = None, limit: int = 100) -> list[dict]:
        wanted = {k: v for k, v in (("target", target), ("principal", principal), ("action", action)) if v is not None}
        found: list[dict] = []
        upper, looked = "+", 0
        while len(found) < limit and looked < _QUERY_SCAN_MAX:
            (entries,) = await self._r.execute([["XREVRANGE", self._log, upper, "-", "COUNT", _QUERY_CHUNK]])
            if not entries:
                break
            for entry_id, body in entries:
                record = orjson.loads(_field(body))
                if since is not None and record["at"] < since:
                    return found  # newest first: everything further is older still
                if all(record.get(k) == v for k, v in wanted.items()) and (until is None or record["at"] <= until):
                    found.append(record)
                    if len(found) == limit:
                        break
            looked += len(entries)
            upper = f"({_text(entries[-1][0])}"
        return found

    def scan(self, *, batch_size: int = 10_000) -> Iterator[list[dict]]:
        lower = "-"
        while True:
            with unavailable():
                entries = self._r.sync.xrange(self._log, lower, "+", count=batch_size)
            if not entries:
                return
            lower = f"({_text(entries[-1][0])}"
            yield [orjson.loads(_field(body)) for _, body in entries]


def _parse_head(head: bytes | None) -> tuple[int, str]:
    if not head:
        return 0, GENESIS
    seq, digest = _text(head).split(" ")
    return int(seq), digest


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def _field(body: dict) -> bytes:
    return body.get(b"r") or body.get("r")
