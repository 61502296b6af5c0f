"""ModelUpdates: the served model's updates in order, a backlog taken as one batch, and nothing
kept for a model that is no longer served."""

from __future__ import annotations

import threading
import weakref

from overdrive.domain.types import Signal
from overdrive.services.model_updates import ModelUpdates


class Recorder:
    def __init__(self, log: list) -> None:
        self.log = log

    def observe(self, signals: list[Signal]) -> None:
        self.log.append(("observe", self, [s.content_id for s in signals]))


def sig(item: str) -> Signal:
    return Signal(user_id="u", signal_type="like", content_id=item, timestamp=1.0)


def test_updates_run_in_order_and_a_backlog_is_one_observe() -> None:
    log: list = []
    model = Recorder(log)
    updates = ModelUpdates(lambda: model)
    gate = threading.Event()
    blocked = updates.run(gate.wait, 5.0)  # the thread is busy: what follows waits
    updates.observe(model, [sig("a"), sig("b")])
    updates.observe(model, [sig("c")])
    done = updates.run(log.append, ("call", None, []))
    updates.observe(model, [sig("d")])
    assert updates.backlog == 4
    gate.set()
    assert blocked.result(5.0) is True
    done.result(5.0)
    last = updates.run(lambda: None)
    last.result(5.0)
    assert log == [("observe", model, ["a", "b", "c"]), ("call", None, []), ("observe", model, ["d"])]
    assert updates.backlog == 0
    updates.close()


def test_signals_for_a_model_no_longer_served_are_dropped_with_it() -> None:
    log: list = []
    old, new = Recorder(log), Recorder(log)
    served = [old]
    updates = ModelUpdates(lambda: served[0])
    gate = threading.Event()
    updates.run(gate.wait, 5.0)
    updates.observe(old, [sig("a")])
    gone = weakref.ref(old)
    served[0] = new  # a retrain swapped the model before the queue reached its signals
    updates.observe(new, [sig("b")])
    del old
    gate.set()
    updates.run(lambda: None).result(5.0)
    assert [(entry[1] is new, entry[2]) for entry in log] == [(True, ["b"])]
    assert gone() is None  # the queue held the last reference to the old model, and let it go
    updates.close()


def test_a_failing_call_reaches_its_caller_and_the_queue_goes_on() -> None:
    log: list = []
    model = Recorder(log)
    updates = ModelUpdates(lambda: model)

    def fail() -> None:
        raise ValueError("no")

    failed = updates.run(fail)
    updates.observe(model, [sig("a")])
    try:
        failed.result(5.0)
        raise AssertionError("the call's exception was lost")
    except ValueError:
        pass
    updates.run(lambda: None).result(5.0)
    assert log == [("observe", model, ["a"])]
    updates.close()
