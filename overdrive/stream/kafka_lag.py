"""The worker group's lag, as an API replica reports it: records on the topic no worker has committed.

Lag = Σ over the topic's partitions of (high watermark − the group's committed offset), a partition
the group never committed counting from its low watermark. Measured on a thread of its own every
`every_s` once first read (a consumer that only asks: it joins no group and commits nothing), so
`read()` — a gauge of `PerformanceMonitor`, read on the event loop — never waits on the broker.
`read()` is -1 until the first measurement, and while the broker does not answer.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

log = logging.getLogger(__name__)

UNKNOWN = -1.0


class KafkaConsumerLag:
    def __init__(self, *, bootstrap_servers: str, topic: str, group: str, every_s: float = 5.0,
                 timeout_s: float = 2.0) -> None:
        self._config = {"bootstrap.servers": bootstrap_servers, "group.id": group, "enable.auto.commit": False}
        self._topic = topic
        self._every_s = every_s
        self._timeout_s = timeout_s
        self._value = UNKNOWN
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def read(self) -> float:
        if self._thread is None and not self._stop.is_set():
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="kafka-lag", daemon=True)
                    self._thread.start()
        return self._value

    def measure(self, consumer: Any) -> float:
        """One measurement (blocking, up to a few broker round trips)."""
        meta = consumer.list_topics(topic=self._topic, timeout=self._timeout_s).topics.get(self._topic)
        if meta is None or meta.error is not None or not meta.partitions:
            raise KafkaException(f"topic {self._topic!r} unavailable")
        partitions = [TopicPartition(self._topic, p) for p in sorted(meta.partitions)]
        committed = consumer.committed(partitions, timeout=self._timeout_s)
        lag = 0
        for tp in committed:
            low, high = consumer.get_watermark_offsets(TopicPartition(self._topic, tp.partition), timeout=self._timeout_s)
            start = tp.offset if tp.offset >= 0 else low
            lag += max(0, high - start)
        return float(lag)

    def _run(self) -> None:
        consumer = None
        try:
            while not self._stop.is_set():
                try:
                    if consumer is None:
                        consumer = Consumer(self._config)
                    self._value = self.measure(consumer)
                except (KafkaException, RuntimeError) as exc:
                    if self._value != UNKNOWN:
                        log.warning("kafka consumer lag not measured: %s", exc)
                    self._value = UNKNOWN
                self._stop.wait(self._every_s)
        finally:
            if consumer is not None:
                consumer.close()

    async def close(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            await asyncio.to_thread(thread.join, self._timeout_s * 3)
