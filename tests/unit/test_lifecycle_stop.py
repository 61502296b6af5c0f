"""Shutdown ends even when one of its steps hangs: the step is named in the log and the rest run."""

from __future__ import annotations

import asyncio
import logging

import pytest

from overdrive.services.container import Lifecycle


def test_a_hanging_stop_step_is_named_and_the_later_steps_still_run(caplog: pytest.LogCaptureFixture) -> None:
    done: list[str] = []

    async def hangs() -> None:
        await asyncio.Event().wait()

    async def closes_the_store() -> None:
        done.append("store closed")

    lifecycle = Lifecycle(stops=[hangs, closes_the_store], stop_timeout_s=0.05)
    with caplog.at_level(logging.ERROR, logger="overdrive.services.container"):
        asyncio.run(lifecycle.stop())
    assert done == ["store closed"]
    assert "hangs" in caplog.text and "did not finish" in caplog.text
