"""What the Kafka producer (API) and consumer (worker) share: the wire format and the topic.

A record is keyed by `user_id` (so one user's signals stay in order on one partition and one
worker) and its value is the signal as orjson, always carrying a `signal_id`.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from overdrive.domain.codec import decode_signal
from overdrive.domain.errors import BackendUnavailable
from overdrive.domain.privacy import erased_before
from overdrive.domain.types import Signal
from overdrive.store.protocols import ErasureList

log = logging.getLogger(__name__)


def assigning_config(bootstrap_servers: str, group_id: str) -> dict[str, Any]:
    """A consumer that only `assign`s partitions: no group joined, nothing committed (the client
    still requires a group id)."""
    return {"bootstrap.servers": bootstrap_servers, "group.id": group_id, "enable.auto.commit": False}


def ensure_topic(config: dict[str, Any], topic: str, partitions: int, *, timeout_s: float = 5.0) -> int:
    """Create `topic` if the broker lacks it; returns its partition count. Blocking."""
    admin = AdminClient(config)
    try:
        found = admin.list_topics(topic=topic, timeout=timeout_s).topics.get(topic)
        if found is not None and found.error is None and found.partitions:
            return len(found.partitions)
        futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)],
                                      operation_timeout=timeout_s, request_timeout=timeout_s)
        try:
            futures[topic].result(timeout_s)
            log.info("created topic %s with %d partitions", topic, partitions)
        except KafkaException as exc:  # created meanwhile by another replica is fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
        return partitions
    except KafkaException as exc:
        raise BackendUnavailable(f"kafka: cannot reach or create topic {topic!r}: {exc}") from exc


def check_topic(client: Any, topic: str, *, timeout_s: float = 1.0) -> dict:
    """Health: the broker answers a metadata request for the topic within `timeout_s`. Blocking."""
    try:
        meta = client.list_topics(topic=topic, timeout=timeout_s)
    except KafkaException as exc:
        raise BackendUnavailable(f"kafka: broker did not answer within {timeout_s}s ({exc})") from exc
    found = meta.topics.get(topic)
    if found is None or found.error is not None:
        raise BackendUnavailable(f"kafka: topic {topic!r} unavailable ({found.error if found else 'missing'})")
    return {"backend": "kafka", "topic": topic, "partitions": len(found.partitions)}


class Erasures:
    """The erasure list as the topic's readers use it: a snapshot, refreshed now and then, that a
    reader thread may read at any time (the reference is swapped whole)."""

    def __init__(self, source: ErasureList | None) -> None:
        self._source = source
        self.current: dict[str, float] = {}

    async def refresh(self) -> None:
        if self._source is not None:
            self.current = await self._source.snapshot()


def signal_of(record: Any, erased: dict[str, float]) -> Signal | None:
    """The record's signal; None when its user was erased after it was produced (a new user's
    later records pass). `ValueError` for a record that is not an encoded signal."""
    signal = decode_signal(record.value())
    if erased and erased_before(erased, signal.user_id, record.timestamp()[1] / 1000.0):
        return None
    return signal
