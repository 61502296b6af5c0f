"""The served model's live updates, on one thread, in the order they were asked for.

Every applied signal batch is handed to the served model (`observe`), and catalog writes and
erasures reach it the same way; a thread of its own keeps them in order. Under load the thread can
fall behind the signals: queued one job per batch, the backlog (each job holding its signals and
the model it was meant for) grew without bound, and kept models a retrain had replaced alive.
Here consecutive signal batches for the same model wait as one, so a backlog is taken in one
`observe` call (one fold-in, however long it grew): the further behind, the cheaper per signal,
and the thread catches up. Signals for a model no longer served are dropped (a retrain replays
into its new model what its snapshot lacks), and with them the last reference to the old model.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from overdrive.domain.types import Signal

log = logging.getLogger(__name__)


class Observer(Protocol):
    def observe(self, signals: Sequence[Signal]) -> Any: ...


@dataclass(slots=True)
class _Job:
    model: Observer | None = None  # a signal batch for this model
    signals: list[Signal] = field(default_factory=list)
    call: Callable[[], Any] | None = None  # or a call, answered through `done`
    done: Future | None = None


class ModelUpdates:
    def __init__(self, served: Callable[[], Observer | None], *, name: str = "model-update") -> None:
        """`served`: the model served now (signals queued for another are dropped)."""
        self._served = served
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._jobs: deque[_Job] = deque()
        self._draining = False

    def observe(self, model: Observer, signals: Sequence[Signal]) -> None:
        """Hand `signals` to `model.observe`, after everything asked before."""
        with self._lock:
            last = self._jobs[-1] if self._jobs else None
            if last is not None and last.call is None and last.model is model:
                last.signals.extend(signals)
            else:
                self._jobs.append(_Job(model=model, signals=list(signals)))
            self._wake()

    def run(self, call: Callable[..., Any], *args: Any) -> Future:
        """`call(*args)` after everything asked before; its result or exception in the future."""
        done: Future = Future()
        with self._lock:
            self._jobs.append(_Job(call=lambda: call(*args), done=done))
            self._wake()
        return done

    @property
    def backlog(self) -> int:
        """Signals waiting to be observed."""
        with self._lock:
            return sum(len(job.signals) for job in self._jobs)

    def close(self) -> None:
        with self._lock:
            for job in self._jobs:
                if job.done is not None:
                    job.done.cancel()
            self._jobs.clear()
        self._thread.shutdown(wait=False, cancel_futures=True)

    def _wake(self) -> None:
        """(Lock held.) Start the drain unless it runs: it takes every job queued meanwhile."""
        if not self._draining:
            self._draining = True
            self._thread.submit(self._drain)

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._jobs:
                    self._draining = False
                    return
                job = self._jobs.popleft()
            if job.call is not None:
                assert job.done is not None
                if job.done.set_running_or_notify_cancel():
                    try:
                        job.done.set_result(job.call())
                    except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for it
                        job.done.set_exception(exc)
            elif job.model is self._served():
                try:
                    job.model.observe(job.signals)
                except Exception:  # the next batch tries again; a retrain starts from the log
                    log.exception("folding %d signals into the served model failed", len(job.signals))
