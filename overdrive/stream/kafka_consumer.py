"""The processor worker's loop: consume signals in a group, write state, then commit.

Per batch: poll up to `batch_size` records → `SignalApplier.apply` (item lookup, then
`FeatureStore.apply`, which skips signal ids it has seen, so redelivery changes nothing) → record
applied offsets (for read-your-writes) → commit the offsets synchronously. A record past a hole in
its partition's offsets waits for the hole to fill (`OffsetGaps`: a broker may return a later batch
before an earlier one is written). Offsets are committed only after state is
written, so a worker killed at any point resumes from the last commit and re-applies nothing
twice. While the store is unavailable the batch is retried with backoff, uncommitted
(`until_stored`, the processor's policy). Records
are applied in log order (one user's signals are in order on one partition); the embedded
queue's priority ordering has no meaning when a whole batch lands before its commit.

Each record's `x-request-id` header (the API request that published it) goes with it into the
log: a skipped record's line names it, and at debug level each applied batch is logged once per
request id (its users, signal ids, what was applied). While a batch from a single request is
applied that id is bound, so whatever the applier logs carries it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from overdrive.domain.errors import BackendUnavailable
from overdrive.observability.context import bound
from overdrive.stream.applier import SignalApplier, until_stored
from overdrive.stream.kafka_bus import REQUEST_ID_HEADER, Watermarks
from overdrive.store.protocols import ErasureList
from overdrive.stream.kafka_common import Erasures, ensure_topic, signal_of
from overdrive.stream.kafka_gaps import OffsetGaps

log = logging.getLogger(__name__)

_REPORT_EVERY_S = 10.0
_ERASURES_EVERY_S = 1.0


class KafkaSignalWorker:
    def __init__(
        self,
        *,
        bootstrap_servers: str,
        topic: str,
        group: str,
        applier: SignalApplier,
        watermarks: Watermarks,
        erasures: ErasureList | None = None,
        partitions: int = 12,
        session_timeout_ms: int = 45_000,
        batch_size: int = 1000,
        poll_timeout_s: float = 0.1,
        gap_wait_s: float = 2.0,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        """`gap_wait_s`: how long a hole in a partition's offsets holds back the records after it."""
        self._topic = topic
        self._gaps = OffsetGaps(wait_s=gap_wait_s)
        self._partitions = partitions
        self._applier = applier
        self._erasures = Erasures(erasures)  # records of users erased after they were produced are skipped
        self._watermarks = watermarks
        self._batch_size = batch_size
        self._poll_timeout_s = poll_timeout_s
        self._config = {
            "bootstrap.servers": bootstrap_servers,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": session_timeout_ms,
            "heartbeat.interval.ms": max(100, session_timeout_ms // 4),
            "enable.partition.eof": False,
            "fetch.wait.max.ms": 10,  # the broker may hold a fetch this long: it bounds signal-to-visible
            **(config or {}),
        }
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="kafka-consumer")  # the client is not thread-safe
        self.stats = {"batches": 0, "records": 0, "applied": 0, "skipped_duplicates": 0, "skipped_erased": 0,
                      "bad_records": 0, "holes_waited": 0}

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; the batch in hand is finished and committed first."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(BackendUnavailable):
            await loop.run_in_executor(self._executor, ensure_topic, {"bootstrap.servers": self._config["bootstrap.servers"]},
                                       self._topic, self._partitions)
        consumer = Consumer(self._config)
        await loop.run_in_executor(self._executor, lambda: consumer.subscribe(
            [self._topic], on_assign=self._assigned, on_revoke=self._revoked))
        log.info("worker started: topic=%s group=%s", self._topic, self._config["group.id"])
        reported = time.monotonic()
        try:
            refreshed = 0.0
            while not stop.is_set():
                if time.monotonic() - refreshed >= _ERASURES_EVERY_S:
                    refreshed = time.monotonic()
                    with contextlib.suppress(BackendUnavailable):
                        await self._erasures.refresh()
                records = await loop.run_in_executor(self._executor, self._poll, consumer)
                if records:
                    await self._handle(consumer, records, stop)
                if time.monotonic() - reported >= _REPORT_EVERY_S:
                    reported = time.monotonic()
                    log.info("worker progress: %s", " ".join(f"{k}={v}" for k, v in self.stats.items()))
        finally:
            await loop.run_in_executor(self._executor, consumer.close)
            log.info("worker stopped: %s", " ".join(f"{k}={v}" for k, v in self.stats.items()))

    def _assigned(self, consumer: Any, partitions: list[Any]) -> None:
        """Each partition is read on from its committed offset: the first record must be that one."""
        log.info("partitions assigned: %s", sorted(p.partition for p in partitions))
        try:
            committed = consumer.committed(partitions, timeout=10)
        except KafkaException as exc:  # unknown: the first record read sets what comes next
            log.warning("reading the committed offsets failed: %s", exc)
            committed = []
        for p in partitions:
            self._gaps.forget(p.partition)
        for tp in committed:
            if tp.offset >= 0:
                self._gaps.expect(tp.partition, tp.offset)

    def _revoked(self, consumer: Any, partitions: list[Any]) -> None:
        log.info("partitions revoked: %s", sorted(p.partition for p in partitions))
        for p in partitions:
            self._gaps.forget(p.partition)

    def _poll(self, consumer: Any) -> list[Any]:
        """Wait for one record, then take whatever else is already fetched (up to the batch size).

        `consume(n, timeout)` alone waits out its timeout whenever fewer than n records come:
        that wait would sit in every signal's path to visibility.
        """
        first = consumer.consume(1, self._poll_timeout_s)
        if not first or self._batch_size == 1:
            return first
        return first + consumer.consume(self._batch_size - 1, 0)

    async def _handle(self, consumer: Any, records: list[Any], stop: asyncio.Event) -> None:
        signals, last, request_ids = [], {}, []
        held: set[int] = set()  # partitions with a hole: their records after it are read again
        for rec in records:
            err = rec.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:  # noqa: SLF001 - the client's public constant
                    log.warning("kafka consume error: %s", err)
                continue
            if rec.partition() in held:
                continue
            if not self._gaps.admit(rec.partition(), rec.offset()):
                held.add(rec.partition())
                continue
            last[rec.partition()] = max(rec.offset(), last.get(rec.partition(), -1))
            request_id = _request_id_of(rec)
            try:
                signal = signal_of(rec, self._erasures.current)
            except ValueError as exc:  # poison record: skip it (it is logged), never block the partition
                self.stats["bad_records"] += 1
                log.error("skipping undecodable record partition=%d offset=%d: %s", rec.partition(), rec.offset(), exc,
                          extra={"request_id": request_id})
                continue
            if signal is None:
                self.stats["skipped_erased"] += 1
            else:
                signals.append(signal)
                request_ids.append(request_id)
        if held:
            self.stats["holes_waited"] += 1
            rewind = [TopicPartition(self._topic, p, self._gaps.expected(p)) for p in sorted(held)]
            await asyncio.get_running_loop().run_in_executor(self._executor, lambda: [consumer.seek(tp) for tp in rewind])
        if not last:
            return
        started = time.perf_counter()
        distinct = set(request_ids)
        with bound(next(iter(distinct)) if len(distinct) == 1 else None):
            applied = await until_stored(lambda: self._applier.apply(signals), stop=stop)
        if applied is not None and log.isEnabledFor(logging.DEBUG):
            _log_applied(signals, request_ids, applied)
        if applied is None:
            return  # stopping while the store is down: leave the batch uncommitted
        await until_stored(lambda: self._watermarks.record_applied(last), stop=stop, attempts=3)
        offsets = [TopicPartition(self._topic, p, off + 1) for p, off in last.items()]
        try:
            await asyncio.get_running_loop().run_in_executor(
                self._executor, lambda: consumer.commit(offsets=offsets, asynchronous=False))
        except KafkaException as exc:  # e.g. a rebalance took the partition: it is redelivered, and skipped
            log.warning("offset commit failed (batch will be redelivered, de-duplicated): %s", exc)
        self.stats["batches"] += 1
        self.stats["records"] += len(signals)
        self.stats["applied"] += len(applied)
        self.stats["skipped_duplicates"] += len(signals) - len(applied)
        if len(applied) < len(signals):
            log.info("skipped %d already-applied signals (redelivery or client retry)", len(signals) - len(applied))
        log.debug("batch records=%d applied=%d partitions=%s ms=%.2f", len(signals), len(applied), sorted(last),
                  (time.perf_counter() - started) * 1000.0)

    async def close(self) -> None:
        self._executor.shutdown(wait=True)


def _request_id_of(record: Any) -> str | None:
    for key, value in record.headers() or ():
        if key == REQUEST_ID_HEADER and value:
            return value.decode("utf-8", "replace")
    return None


def _log_applied(signals: list[Any], request_ids: list[str | None], applied: list[Any]) -> None:
    """One debug line per request id of the batch: its signals, and which were new."""
    new = {id(s) for s in applied}
    groups: dict[str | None, list[Any]] = {}
    for signal, request_id in zip(signals, request_ids, strict=True):
        groups.setdefault(request_id, []).append(signal)
    for request_id, group in groups.items():
        log.debug("signals applied", extra={
            "request_id": request_id,
            "user_ids": sorted({s.user_id for s in group}),
            "signal_ids": [s.signal_id for s in group],
            "signals": len(group),
            "applied": sum(1 for s in group if id(s) in new),
        })

