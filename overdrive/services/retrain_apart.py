"""A retrain in a child process, so that its working memory leaves with the child.

A retrain reads the whole signal log into memory and fits on it: a peak far above what the served
model holds, and in the serving process the allocator kept much of it (RSS rose in a step at each
retrain as the log grew). Here each retrain is one process, forked from a forkserver that imported
the fitting code once: it reads the log up to a position, fits, publishes the version into the
model folder and exits; the serving process loads that version and replays into it the signals
applied meanwhile that the snapshot lacks (`CollaborativeModelService`), asking the log which of
them it held up to the position (`logged`).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from overdrive.domain.types import Signal


@dataclass(frozen=True)
class Fitted:
    """What a retrain elsewhere published: the version, the log position its snapshot ended at,
    its figures (signals, items...), and what its own after-fit steps reported, by name."""

    version: str
    position: int
    stats: dict[str, Any] = field(default_factory=dict)
    after_fit: dict[str, Any] = field(default_factory=dict)


class ChildProcessRetrain:
    def __init__(self, *, target: Callable[[dict[str, float]], Fitted],
                 logged: Callable[[Sequence[Signal], int], list[Signal]], preload: Sequence[str] = ()) -> None:
        """`target(erased)`: the child's work (picklable: a module-level function, or a partial of
        one); `logged(signals, position)`: those of the log's signals up to `position` that may be
        among `signals`;
        `preload`: modules the forkserver imports once, so a retrain's child starts warm."""
        self._target = target
        self._logged = logged
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(list(preload))

    def fit(self, erased: dict[str, float]) -> Fitted:
        """Run one retrain in a fresh child and wait for it (on the caller's thread). The child's
        exceptions are raised here; one killed (out of memory) raises `BrokenProcessPool`."""
        with ProcessPoolExecutor(max_workers=1, mp_context=self._context) as pool:
            return pool.submit(self._target, erased).result()

    def logged(self, signals: Sequence[Signal], position: int) -> list[Signal]:
        return self._logged(signals, position)
