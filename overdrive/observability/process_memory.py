"""Keeping a long-running process's memory to what it holds: the allocator, and giving back.

A full retrain reads the whole signal log into short-lived objects. Under CPython's own small-object
allocator the arenas they filled stay with the process once a few long-lived objects land among
them, so its RSS steps up after every retrain and follows the log's size; under the C library's
allocator, freed memory can be handed back to the system (`release_free_memory`) and RSS stays at
what the process keeps. The allocator is chosen when the interpreter starts, hence the re-exec.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

_ALLOCATOR = "malloc"


def use_system_allocator() -> None:
    """Run this entry point again under `PYTHONMALLOC=malloc` (same pid, arguments and interpreter
    options), unless the variable is set already — then as it says (`pymalloc` keeps CPython's)."""
    if "PYTHONMALLOC" in os.environ or sys.platform != "linux":
        return
    os.environ["PYTHONMALLOC"] = _ALLOCATOR
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def release_free_memory() -> bool:
    """Hand memory the C library holds free back to the system (glibc's `malloc_trim`); False
    where there is no such call."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") else None
