"""Where the CPU went during a load run: each process's and the whole machine's busy time, in
cores, from /proc (Linux). It tells a benchmark whether the server, the load generator or the rest
of the machine (Redis, the OS) was the limit."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

_PROC = Path("/proc")


def cpu_meter(processes: Mapping[str, int]) -> Callable[[], dict[str, float]]:
    """Start measuring `processes` (name -> pid) and the machine; the function returned gives each
    one's average use since then in cores (1.0: one core busy all along), the whole host as
    "machine". Without /proc it gives {}."""
    if not (_PROC / "stat").exists():
        return dict
    started = time.monotonic()
    before = busy_seconds(processes)

    def since() -> dict[str, float]:
        elapsed = time.monotonic() - started
        after = busy_seconds(processes)
        return {name: (after[name] - before[name]) / elapsed for name in before}

    return since


def busy_seconds(processes: Mapping[str, int]) -> dict[str, float]:
    """Each process's CPU seconds so far (user + system) and the whole machine's, as "machine"."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for name, pid in processes.items():
        stat = (_PROC / str(pid) / "stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()  # from field 3 on: the name may hold spaces
        out[name] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    user, nice, system, idle, iowait, irq, softirq, steal = map(int, (_PROC / "stat").read_text().split()[1:9])
    out["machine"] = (user + nice + system + irq + softirq + steal) / tick
    return out
