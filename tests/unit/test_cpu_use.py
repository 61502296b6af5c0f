"""The benchmark's CPU meter tells a busy process from an idle one.

No sleeps and no wall-clock window: the idle child says when it is ready (and then blocks on
reading its stdin, using no CPU), and the busy process burns a fixed amount of CPU time rather
than spinning until a deadline, so a slow or crowded machine only stretches the test."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from benchmarks.cpu_use import cpu_meter

BURN_CPU_S = 0.5  # CPU time this process burns while measured: 50 clock ticks, so a tick is 2 %
_IDLE_CHILD = "import sys; print('ready', flush=True); sys.stdin.read()"


def _burn(cpu_s: float) -> float:
    """Count in steps of 100,000 until this thread has used `cpu_s` of CPU; the CPU time used."""
    start = time.thread_time()
    n = 0
    while time.thread_time() - start < cpu_s:
        for _ in range(100_000):
            n += 1
    return time.thread_time() - start


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="reads /proc (Linux)")
def test_busy_and_idle_processes() -> None:
    idle = subprocess.Popen([sys.executable, "-c", _IDLE_CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert idle.stdout.readline() == "ready\n"  # past its start-up; from here it waits on stdin
        window_start = time.monotonic()
        used = cpu_meter({"busy": os.getpid(), "idle": idle.pid})
        burned_s = _burn(BURN_CPU_S)
        share = used()
        window_s = time.monotonic() - window_start  # contains the meter's own window
    finally:
        idle.stdin.close()  # end of input: the child exits
        try:
            idle.wait(timeout=30)
        except subprocess.TimeoutExpired:
            idle.kill()
            idle.wait()
        idle.stdout.close()
    assert set(share) == {"busy", "idle", "machine"}
    # Shares are cores averaged over the meter's window; times the (longer) window_s they bound
    # the CPU seconds from above. The busy process shows at least what it burned (less a clock
    # tick or two of /proc's rounding); the idle one next to nothing.
    assert share["busy"] * window_s >= burned_s - 0.03
    assert share["idle"] * window_s < 0.05 < burned_s
    assert share["idle"] < share["busy"] <= 1.05  # one busy thread uses at most one core
    assert share["machine"] >= share["busy"] - 0.05  # the host's busy time includes this process's
