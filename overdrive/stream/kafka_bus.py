"""SignalBus on Kafka: the topic is the durable log; workers (`python -m overdrive.worker`) apply.

`publish` produces every signal (key = user id, idempotent producer, acks=all) and returns only
when the broker has acknowledged all of them. If it cannot within `delivery_timeout_ms` — broker
down or stalled — it raises `BackendUnavailable` and the API answers 503 with Retry-After: the
signals are not acknowledged, some may still land, and the client's retry with the same
`signal_id`s is safe because workers de-duplicate by id. (We chose 503 over spooling to disk: a
spool is a second durable log to recover and bound; the broker's outage is visible to clients.)
A signal without an id gets a uuid4 here, so de-duplication covers redelivery of every record.

De-duplication happens in the workers, so `publish` cannot tell a repeat from a new signal and
returns every signal: the API reports `duplicates: 0` in this mode.

`settled(user)` is read-your-writes across replicas: after the ack, the produced offsets are
recorded per user in Redis (`Watermarks`); workers record applied offsets per partition; settled
polls until the user's produced offsets are applied.

The `learners` (the in-process models' fold-in and click labels) get every signal of the topic,
from any replica, through this replica's own `KafkaSignalTail`.

Each record carries the id of the request that published it in its `x-request-id` header (the
request being served, `overdrive.observability.context`), so the worker's log lines about the
signal carry the same id as the API's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Producer

from overdrive.domain.codec import encode_signal
from overdrive.domain.errors import BackendUnavailable, Overloaded
from overdrive.domain.types import Signal
from overdrive.observability.context import current_request_id
from overdrive.observability.performance import PerformanceMonitor
from overdrive.store.protocols import ErasureList
from overdrive.stream.kafka_common import Erasures, check_topic, ensure_topic
from overdrive.stream.applier import Learners
from overdrive.stream.kafka_tail import KafkaSignalTail

log = logging.getLogger(__name__)

_SETTLE_POLL_S = 0.002
REQUEST_ID_HEADER = "x-request-id"
_ERASURES_EVERY_S = 1.0


class Watermarks(Protocol):
    """Produced and applied offsets, shared by every replica and worker."""

    async def record_produced(self, offsets: Mapping[str, Mapping[int, int]]) -> None: ...

    async def record_applied(self, offsets: Mapping[int, int]) -> None: ...

    async def settled(self, user_id: str) -> bool: ...


class KafkaSignalBus:
    def __init__(
        self,
        *,
        bootstrap_servers: str,
        topic: str,
        watermarks: Watermarks,
        partitions: int = 12,
        delivery_timeout_ms: int = 5000,
        config: Mapping[str, Any] | None = None,
        learners: Learners | None = None,
        erasures: ErasureList | None = None,
        monitor: PerformanceMonitor | None = None,
    ) -> None:
        self._topic = topic
        self._monitor = monitor  # the `produce` stage: produce to every ack, per batch
        self._partitions = partitions
        self._watermarks = watermarks
        self._timeout_s = delivery_timeout_ms / 1000.0
        self._config = {
            "bootstrap.servers": bootstrap_servers,
            "acks": "all",
            "enable.idempotence": True,
            "message.timeout.ms": delivery_timeout_ms,
            "linger.ms": 1,
            "socket.timeout.ms": min(delivery_timeout_ms, 5000),
            **(config or {}),
        }
        self._producer: Any = None
        self._suspect = False  # a delivery failed: open a fresh producer before the next publish
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._erasures = Erasures(erasures)
        self._erasures_task: asyncio.Task | None = None
        self._tail = KafkaSignalTail(bootstrap_servers=bootstrap_servers, topic=topic, partitions=partitions,
                                     learners=Learners() if learners is None else learners, erasures=self._erasures)

    # --------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, ensure_topic, {"bootstrap.servers": self._config["bootstrap.servers"]},
                                       self._topic, self._partitions)
        except BackendUnavailable as exc:  # start anyway: /health/ready says so, publish answers 503
            log.warning("kafka topic check at start failed: %s", exc)
        self._open()
        self._erasures_task = asyncio.create_task(self._refresh_erasures())
        await asyncio.to_thread(self._tail.start)

    async def _refresh_erasures(self) -> None:
        while True:
            with contextlib.suppress(BackendUnavailable):
                await self._erasures.refresh()
            await asyncio.sleep(_ERASURES_EVERY_S)

    def _open(self) -> None:
        self._suspect = False
        self._producer = Producer({**self._config, "error_cb": self._on_error})
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, args=(self._producer, self._stop), name="kafka-producer-poll", daemon=True)
        self._poller.start()

    def _reopen(self) -> None:
        """Replace a producer whose delivery failed with a fresh one (new producer id and epoch).

        After a timeout the idempotent producer bumps its epoch, which not every broker handles
        (Tansu then fences every later record); a fresh producer sidesteps that. The old one
        keeps serving its in-flight records' reports until they resolve, in the background.
        """
        old, stop = self._producer, self._stop
        self._open()

        def retire() -> None:
            old.flush(self._timeout_s)
            stop.set()

        threading.Thread(target=retire, name="kafka-producer-retire", daemon=True).start()
        log.info("kafka producer reopened after a failed delivery")

    def _poll(self, producer: Any, stop: threading.Event) -> None:
        """Serve delivery reports; they resolve futures on the event loop."""
        while not stop.is_set():
            producer.poll(0.05)

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._suspect = True
        log.warning("kafka producer: %s", err)

    async def close(self) -> None:
        if self._erasures_task is not None:
            self._erasures_task.cancel()
        await asyncio.to_thread(self._tail.close)
        if self._producer is None:
            return
        producer, self._producer = self._producer, None
        await asyncio.get_running_loop().run_in_executor(None, producer.flush, self._timeout_s)
        self._stop.set()
        if self._poller is not None:
            self._poller.join(1.0)

    # ------------------------------------------------------------------------------ publish

    async def publish(self, signals: Sequence[Signal]) -> list[Signal]:
        if self._producer is None:
            raise BackendUnavailable("kafka: the signal bus is not started")
        if self._suspect:
            self._reopen()
        signals = [s if s.signal_id is not None else dataclasses.replace(s, signal_id=uuid.uuid4().hex) for s in signals]
        loop = asyncio.get_running_loop()
        futures = []
        started = time.perf_counter()
        request_id = current_request_id()
        headers = [(REQUEST_ID_HEADER, request_id.encode())] if request_id else None
        try:
            for s in signals:
                fut = loop.create_future()
                self._producer.produce(self._topic, key=s.user_id.encode(), value=encode_signal(s), headers=headers,
                                       on_delivery=_reporter(loop, fut))
                futures.append(fut)
        except BufferError as exc:
            raise Overloaded(f"kafka producer queue is full ({exc}); retry shortly", retry_after_s=1.0) from exc
        except KafkaException as exc:
            raise BackendUnavailable(f"kafka: {exc}") from exc
        finally:
            if len(futures) < len(signals):
                for f in futures:  # the ones already queued may still land; nobody waits for them
                    f.add_done_callback(_consume_result)
        try:
            done = await _wait(futures, self._timeout_s + 2.0)
        except BackendUnavailable:
            self._suspect = True
            raise
        if self._monitor is not None:
            self._monitor.record_stage("produce", (time.perf_counter() - started) * 1000.0, len(signals))
        produced: dict[str, dict[int, int]] = {}
        for s, (partition, offset) in zip(signals, done, strict=True):
            parts = produced.setdefault(s.user_id, {})
            parts[partition] = max(offset, parts.get(partition, -1))
        try:
            await self._watermarks.record_produced(produced)
        except BackendUnavailable as exc:  # the signals are durable; only read-your-writes degrades
            log.warning("recording produced offsets failed: %s", exc)
        return signals

    async def settled(self, user_id: str, *, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if await self._watermarks.settled(user_id):
                    return True
            except BackendUnavailable:
                return False
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_SETTLE_POLL_S)

    # ------------------------------------------------------------------------------- health

    async def check(self) -> dict:
        if self._producer is None:
            raise BackendUnavailable("kafka: the signal bus is not started")
        return await asyncio.get_running_loop().run_in_executor(None, check_topic, self._producer, self._topic)


def _reporter(loop: asyncio.AbstractEventLoop, fut: asyncio.Future) -> Any:
    def report(err: KafkaError | None, msg: Any) -> None:
        result = (err, msg.partition(), msg.offset())
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting any more
            loop.call_soon_threadsafe(_resolve, fut, result)

    return report


def _resolve(fut: asyncio.Future, result: tuple[KafkaError | None, int, int]) -> None:
    if fut.done():
        return
    err, partition, offset = result
    if err is not None:
        fut.set_exception(BackendUnavailable(f"kafka: delivery failed: {err.str()}"))
    else:
        fut.set_result((partition, offset))


def _consume_result(fut: asyncio.Future) -> None:
    if not fut.cancelled():
        fut.exception()


async def _wait(futures: list[asyncio.Future], timeout_s: float) -> list[tuple[int, int]]:
    """Every delivery report, or `BackendUnavailable` naming the first failure."""
    try:
        results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), timeout_s)
    except TimeoutError:
        for f in futures:
            f.add_done_callback(_consume_result)
        raise BackendUnavailable(f"kafka: no delivery report within {timeout_s:.1f}s") from None
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results
