"""The signal topic read as history: what the collaborative model retrains on in Kafka mode.

With Kafka the API keeps no signal log of its own — the topic is the log. A scan reads every
partition from the oldest record the broker still retains up to its end (the client's
partition-EOF event; the partition is then let go, so later records are left to the retrain's
replay), with no consumer group (`assign`, nothing committed), decodes each record and drops
signal ids it has already passed on: client retries and redelivery repeat records, and workers
de-duplicate the same way. Transient client errors are logged and waited out; a scan with no
progress for `stall_timeout_s` fails the retrain. How far back it reaches is the topic's retention
(`retention.ms`); set it to the history the model should learn from. Blocking: the trainer calls
it on its own thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from overdrive.domain.errors import BackendUnavailable
from overdrive.domain.types import Signal
from overdrive.stream.kafka_common import signal_of, assigning_config, ensure_topic

log = logging.getLogger(__name__)


class KafkaSignalHistory:
    def __init__(self, *, bootstrap_servers: str, topic: str, partitions: int = 12, stall_timeout_s: float = 30.0,
                 config: Mapping[str, Any] | None = None) -> None:
        self._topic = topic
        self._partitions = partitions
        self._stall_timeout_s = stall_timeout_s
        self._config = {
            **assigning_config(bootstrap_servers, "overdrive-history"),
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",  # if retention deletes what the scan is at: go on from the oldest left
            **(config or {}),
        }

    async def count(self) -> int:
        """Records the topic retains, repeats included."""
        return await asyncio.to_thread(self._retained)

    def _retained(self) -> int:
        with self._consumer() as (consumer, partitions):
            return sum(high - low for low, high in self._bounds(consumer, partitions).values())

    async def user_signals(self, user_id: str) -> list[Signal]:
        """One user's signals: a read of the whole topic (exports and erasures are rare)."""
        return (await self.signals_of([user_id]))[user_id]

    async def signals_of(self, user_ids: Collection[str]) -> dict[str, list[Signal]]:
        """These users' signals, from one read of the whole topic."""
        def read() -> dict[str, list[Signal]]:
            out: dict[str, list[Signal]] = {u: [] for u in user_ids}
            for batch in self.scan():
                for s in batch:
                    if s.user_id in out:
                        out[s.user_id].append(s)
            return out

        return await asyncio.to_thread(read)

    def scan(self, *, batch_size: int = 10_000, erased: Mapping[str, float] | None = None) -> Iterator[list[Signal]]:
        """Every retained signal once, in batches (per partition in order; partitions interleave),
        less those of users `erased` (digest -> when) after they were produced."""
        with self._consumer() as (consumer, partitions):
            reading = {p for p, (low, high) in self._bounds(consumer, partitions).items() if high > low}
            consumer.assign([TopicPartition(self._topic, p, OFFSET_BEGINNING) for p in reading])
            seen: set[str] = set()
            batch: list[Signal] = []
            bad = 0
            progress = time.monotonic()
            while reading:
                if time.monotonic() - progress > self._stall_timeout_s:
                    raise BackendUnavailable(f"kafka: reading topic {self._topic!r} stalled "
                                             f"({len(reading)} partitions unfinished)")
                for rec in consumer.consume(batch_size, 1.0):
                    error = rec.error()
                    if error is not None and error.code() != KafkaError._PARTITION_EOF:
                        if error.fatal():
                            raise BackendUnavailable(f"kafka: reading topic {self._topic!r}: {error}")
                        log.warning("signal history: %s (retrying)", error)
                        continue
                    if rec.partition() not in reading:  # fetched before its partition was let go
                        continue
                    progress = time.monotonic()
                    if error is not None:  # the partition's end
                        reading.discard(rec.partition())
                        consumer.incremental_unassign([TopicPartition(self._topic, rec.partition())])
                        continue
                    try:
                        signal = signal_of(rec, erased or {})
                    except ValueError:  # the worker logs and skips these too
                        bad += 1
                        continue
                    if signal is not None and signal.signal_id not in seen:
                        seen.add(signal.signal_id)
                        batch.append(signal)
                if len(batch) >= batch_size:
                    yield batch
                    batch = []
            if batch:
                yield batch
            if bad:
                log.warning("signal history: %d undecodable records in %s skipped", bad, self._topic)

    def _bounds(self, consumer: Any, partitions: int) -> dict[int, tuple[int, int]]:
        try:
            return {p: consumer.get_watermark_offsets(TopicPartition(self._topic, p), timeout=5.0)
                    for p in range(partitions)}
        except KafkaException as exc:
            raise BackendUnavailable(f"kafka: cannot read the offsets of topic {self._topic!r}: {exc}") from exc

    @contextmanager
    def _consumer(self) -> Iterator[tuple[Any, int]]:
        """A consumer, and the topic's partition count."""
        partitions = ensure_topic({"bootstrap.servers": self._config["bootstrap.servers"]}, self._topic, self._partitions)
        consumer = Consumer(dict(self._config))
        try:
            yield consumer, partitions
        finally:
            consumer.close()
