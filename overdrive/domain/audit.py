"""Audit records and their hash chain: what every audit store seals with, and the verifier checks.

A record says who (`principal`) did what (`action`) to what (`target`), when, under which
request id, and how it ended (`outcome`). Each record carries its sequence number and the hash of
the record before it (`prev`); its own `hash` is the SHA-256 of all of that in canonical JSON. So
changing, removing or reordering any record breaks every link after it. (Dropping the newest
records leaves a shorter valid chain: compare the head with one kept elsewhere to see that.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import orjson

GENESIS = "0" * 64
FIELDS = ("at", "principal", "action", "target", "request_id", "outcome", "detail")


def seal(fields: dict[str, Any], *, seq: int, prev: str) -> dict[str, Any]:
    """The record that follows `prev` as number `seq`, with its hash."""
    record = {name: fields.get(name) for name in FIELDS}
    record["detail"] = record["detail"] or {}
    record.update(seq=seq, prev=prev)
    record["hash"] = record_hash(record)
    return record


def record_hash(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def first_break(records: Iterable[dict[str, Any]]) -> tuple[int, str] | None:
    """The first record that does not follow from the ones before it, and why; None if none."""
    prev, expected = GENESIS, 1
    for record in records:
        seq = record.get("seq")
        if seq != expected:
            return (int(seq or 0), f"sequence {seq} where {expected} was due (records missing or reordered)")
        if record.get("prev") != prev:
            return (seq, "its link to the record before does not match (that record was changed or removed)")
        if record_hash(record) != record.get("hash"):
            return (seq, "its contents do not match its hash (the record was changed)")
        prev, expected = record["hash"], expected + 1
    return None
