"""Signal ids made on the client, so a retried signal is recognised as a duplicate by the service.

An id is a random 96-bit prefix and a counter: unique without coordination, and about seven times
cheaper than a uuid4 per signal. A forked child (a pre-forking web server's worker) draws a new
prefix, so two processes never hand out the same id.
"""

from __future__ import annotations

import base64
import itertools
import os
from collections.abc import Iterable
from typing import cast

from overdrive_client.types import Signal


class _Ids:
    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        self._prefix = base64.urlsafe_b64encode(os.urandom(12)).decode()
        self._count = itertools.count()  # next() on it is atomic under the GIL: safe across threads

    def __call__(self) -> str:
        return f"{self._prefix}-{next(self._count):x}"


new_signal_id = _Ids()
os.register_at_fork(after_in_child=new_signal_id.reseed)


def with_id(signal: Signal) -> Signal:
    """`signal` itself when it has a `signal_id`, else a copy with a new one (the caller's dict is left alone)."""
    if signal.get("signal_id"):
        return signal
    return cast(Signal, {**signal, "signal_id": new_signal_id()})


def with_ids(signals: Iterable[Signal]) -> list[Signal]:
    return [with_id(s) for s in signals]
