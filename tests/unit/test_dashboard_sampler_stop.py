"""The dashboard sampler stops at shutdown even when a cancel is lost (CPython 3.11's `wait_for`
drops one that lands as the awaited read completes): shutdown hung in CI's TestClient teardown."""

from __future__ import annotations

import asyncio

from overdrive.api.routes.dashboard import stop_tasks


def test_a_task_that_loses_the_first_cancel_is_cancelled_again_until_it_stops() -> None:
    cancels_seen: list[int] = []

    async def loses_one_cancel() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancels_seen.append(1)  # as wait_for does when its read had just completed: carry on
        await asyncio.sleep(3600)

    async def main() -> asyncio.Task:
        task = asyncio.create_task(loses_one_cancel())
        await asyncio.sleep(0)
        await asyncio.wait_for(stop_tasks([task]), 10.0)
        return task

    task = asyncio.run(main())
    assert task.cancelled() and len(cancels_seen) == 1


def test_a_failed_task_is_stopped_without_raising() -> None:
    async def fails() -> None:
        raise RuntimeError("a bad read")

    async def main() -> None:
        task = asyncio.create_task(fails())
        await asyncio.sleep(0)
        await stop_tasks([task])

    asyncio.run(main())
