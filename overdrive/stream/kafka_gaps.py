"""Offsets a consumer must not step over: a record that the broker has counted but not yet written.

A topic our producers write (idempotent, no transactions, no compaction) has dense offsets, so a
record past the next expected offset means one in between is missing. Some brokers answer a fetch
that way for a moment: Tansu's object-store engine (its `memory://` included) reserves a batch's
offset and raises the high watermark before it writes the batch, and a fetch returns every batch
already written below the watermark, so a concurrent producer's later batch can arrive first.
Stepping over the hole (and committing past it) loses the record for good. The consumer instead
re-reads from the hole until it fills; only a hole still open after `wait_s` is taken as real (a
partial write the broker never finished) and stepped over, with a warning.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


class OffsetGaps:
    def __init__(self, *, wait_s: float = 2.0) -> None:
        self._wait_s = wait_s
        self._next: dict[int, int] = {}  # partition -> the offset expected next
        self._open_since: dict[int, float] = {}  # partition -> when the hole at its next offset was first seen
        self.skipped = 0  # holes stepped over after the wait

    def expect(self, partition: int, offset: int) -> None:
        """The partition is read from `offset` on (its committed offset, once assigned)."""
        self._next[partition] = offset
        self._open_since.pop(partition, None)

    def forget(self, partition: int) -> None:
        """The partition is no longer ours (revoked): nothing is expected of it."""
        self._next.pop(partition, None)
        self._open_since.pop(partition, None)

    def expected(self, partition: int) -> int | None:
        return self._next.get(partition)

    def admit(self, partition: int, offset: int, now: float | None = None) -> bool:
        """Whether the record at `offset` may be taken. False: a record before it is missing yet;
        re-read the partition from `expected(partition)`."""
        wanted = self._next.get(partition)
        if wanted is not None and offset > wanted:
            now = time.monotonic() if now is None else now
            since = self._open_since.setdefault(partition, now)
            if now - since < self._wait_s:
                return False
            self.skipped += 1
            log.warning("kafka partition %d: offsets %d..%d never arrived within %.1fs; stepping over them",
                        partition, wanted, offset - 1, self._wait_s)
        self._next[partition] = offset + 1
        self._open_since.pop(partition, None)
        return True
