"""Every API replica's own read of the signal topic, for the in-process models that learn from it.

With Kafka the API only produces and `python -m overdrive.worker` applies, so the learners embedded
mode calls after applying a batch — the collaborative model's fold-in, the learned blend's click
labels — would never run on a replica. The tail reads the topic from its end as it was when the
replica started, with no consumer group (`assign`, nothing committed: each replica sees every
signal, and a restart does not replay history its models were trained on), decodes each batch,
drops signal ids it has already passed on (client retries, redelivery) and hands the rest to the
`Learners` on its own thread. Partitions added to the topic while the replica runs are not read. (Tansu
reports a partition's end as of its last record batch, so there the first read may repeat a few
signals from just before the start: a label set twice is one label, and a fold-in of a signal
the model already counts weighs it a little more until the next retrain.) Like the worker, it
waits for a hole in a partition's offsets to fill rather than step over it (`OffsetGaps`).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from overdrive.domain.errors import BackendUnavailable
from overdrive.stream.applier import Learners
from overdrive.stream.kafka_common import Erasures, signal_of, assigning_config, ensure_topic
from overdrive.stream.kafka_gaps import OffsetGaps

log = logging.getLogger(__name__)

_REMEMBERED_IDS = 100_000


class KafkaSignalTail:
    def __init__(
        self,
        *,
        bootstrap_servers: str,
        topic: str,
        learners: Learners,
        erasures: Erasures | None = None,
        partitions: int = 12,
        batch_size: int = 500,
        poll_timeout_s: float = 0.1,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self._topic = topic
        self._partitions = partitions
        self._learners = learners
        self._erasures = erasures or Erasures(None)  # records of users erased after they were produced stay out
        self._batch_size = batch_size
        self._poll_timeout_s = poll_timeout_s
        self._config = {
            **assigning_config(bootstrap_servers, "overdrive-tail"),
            "enable.partition.eof": False,
            "fetch.wait.max.ms": 10,
            **(config or {}),
        }
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = threading.Event()  # positioned at the topic's end: later signals are seen
        self._passed: OrderedDict[str, None] = OrderedDict()  # recent signal ids handed to the learners
        self._gaps = OffsetGaps()
        self.stats = {"batches": 0, "signals": 0, "bad_records": 0}

    def start(self, *, timeout_s: float = 10.0) -> None:
        """Start reading; returns once positioned at the end of every partition (or on timeout,
        with the reader still trying in the background). Without learners there is nothing to do."""
        if not self._learners.subscribed:
            return
        self._thread = threading.Thread(target=self._run, name="kafka-tail", daemon=True)
        self._thread.start()
        self._started.wait(timeout_s)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)

    def _run(self) -> None:
        consumer = None
        try:
            while consumer is None and not self._stop.is_set():
                try:
                    consumer = self._positioned()
                except (BackendUnavailable, KafkaException) as exc:
                    log.warning("signal tail cannot reach the broker yet (%s); retrying", exc)
                    self._stop.wait(1.0)
            self._started.set()
            while consumer is not None and not self._stop.is_set():
                for held in self._handle(consumer.consume(self._batch_size, self._poll_timeout_s)):
                    consumer.seek(TopicPartition(self._topic, held, self._gaps.expected(held)))
        finally:
            self._started.set()
            if consumer is not None:
                consumer.close()

    def _positioned(self) -> Any:
        partitions = ensure_topic({"bootstrap.servers": self._config["bootstrap.servers"]}, self._topic, self._partitions)
        consumer = Consumer(self._config)
        ends = [consumer.get_watermark_offsets(TopicPartition(self._topic, p), timeout=5.0)[1] for p in range(partitions)]
        consumer.assign([TopicPartition(self._topic, p, end) for p, end in enumerate(ends)])
        for p, end in enumerate(ends):
            self._gaps.expect(p, end)
        return consumer

    def _handle(self, records: list[Any]) -> set[int]:
        """Hand the batch's new signals to the learners; returns the partitions to read again from
        a hole in their offsets."""
        signals, held = [], set()
        for rec in records:
            if rec.error() is not None:
                log.warning("signal tail: consume error: %s", rec.error())
                continue
            if rec.partition() in held:
                continue
            if not self._gaps.admit(rec.partition(), rec.offset()):
                held.add(rec.partition())
                continue
            try:
                signal = signal_of(rec, self._erasures.current)
            except ValueError:  # the worker logs and skips these too
                self.stats["bad_records"] += 1
                continue
            if signal is not None and signal.signal_id not in self._passed:
                self._passed[signal.signal_id] = None
                signals.append(signal)
        while len(self._passed) > _REMEMBERED_IDS:
            self._passed.popitem(last=False)
        if signals:
            self.stats["batches"] += 1
            self.stats["signals"] += len(signals)
            self._learners.notify(signals)
        return held
