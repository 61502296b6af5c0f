"""The benchmark's CPU meter tells a busy process from an idle one."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from benchmarks.cpu_use import cpu_meter


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="reads /proc (Linux)")
def test_busy_and_idle_processes() -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.5)  # past the child's interpreter start-up
        used = cpu_meter({"busy": os.getpid(), "idle": sleeper.pid})
        deadline = time.monotonic() + 0.6
        while time.monotonic() < deadline:
            pass
        share = used()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert set(share) == {"busy", "idle", "machine"}
    assert share["idle"] < 0.1 < share["busy"] <= 1.05
    assert share["machine"] >= share["busy"] - 0.05  # the host's busy time includes this process's
