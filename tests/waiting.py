"""Waiting on a condition in tests, instead of sleeping for a guessed time.

`eventually` polls until the condition holds and returns at once when it does; its timeout is
only a safety net, so a broken condition fails the test with a message instead of hanging it. It
never passes a test by waiting long enough: what the test asserts is the condition itself.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def eventually(condition: Callable[[], Any | Awaitable[Any]], *, timeout_s: float = 30.0,
                     interval_s: float = 0.05, what: Callable[[], Any | Awaitable[Any]] | str | None = None) -> Any:
    """Poll `condition()` (plain or async) until it returns something truthy, and return that.

    Raises AssertionError after `timeout_s` (a safety net, not a measurement), naming `what`: a
    string, or a callable (plain or async) whose result describes the state at that moment."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await _call(condition)
        if result:
            return result
        if time.monotonic() >= deadline:
            described = await _call(what) if callable(what) else what
            raise AssertionError(f"condition not met within {timeout_s:g} s: {described or condition}")
        await asyncio.sleep(interval_s)


async def _call(fn: Callable[[], Any | Awaitable[Any]]) -> Any:
    result = fn()
    return await result if inspect.isawaitable(result) else result
