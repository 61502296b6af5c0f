"""The entry points' allocator switch: the same process, run again under the C library's allocator."""

from __future__ import annotations

import os
import subprocess
import sys

from overdrive.observability.process_memory import release_free_memory

_PROBE = (
    "import os\n"
    "print('pid', os.getpid(), os.environ.get('PYTHONMALLOC'), flush=True)\n"
    "from overdrive.observability.process_memory import use_system_allocator\n"
    "use_system_allocator()\n"
    "print('running', os.getpid(), os.environ.get('PYTHONMALLOC'), flush=True)\n"
)


def _run(env: dict[str, str]) -> list[str]:
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.split("\n")[:-1]


def test_an_entry_point_runs_again_in_the_same_process_under_the_system_allocator() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONMALLOC"}
    first, again, running = _run(env)
    pid = first.split()[1]
    assert first == f"pid {pid} None"
    assert again == f"pid {pid} malloc"  # the program started over, same pid, with the variable set
    assert running == f"running {pid} malloc"


def test_an_allocator_chosen_by_the_operator_is_kept() -> None:
    first, running = _run({**os.environ, "PYTHONMALLOC": "pymalloc"})
    pid = first.split()[1]
    assert (first, running) == (f"pid {pid} pymalloc", f"running {pid} pymalloc")  # no second start


def test_free_memory_goes_back_where_the_c_library_can_give_it() -> None:
    assert release_free_memory() is (sys.platform == "linux")  # glibc here; elsewhere it says it could not
