"""Processor worker of scaled mode: `python -m overdrive.worker`.

Consumes signals from `OVERDRIVE_KAFKA_TOPIC` in the consumer group `OVERDRIVE_KAFKA_GROUP` and
writes live state to Redis; needs `KAFKA_BOOTSTRAP_SERVERS` and `REDIS_URL` (the same settings as
the API). Run as many as there are partitions to spread; each user's signals stay on one.
SIGTERM or SIGINT: finish and commit the batch in hand, leave the group, exit 0.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from pydantic import ValidationError

from overdrive.config import Settings, SettingsError, describe_error
from overdrive.observability.logs import configure as configure_logging
from overdrive.wiring import build_worker


async def _run(worker, close) -> None:  # noqa: ANN001 - see build_worker
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await worker.run(stop)
    finally:
        await worker.close()
        await close()


def main() -> None:
    try:
        settings = Settings.load()
        configure_logging(settings.log_level, settings.log_format)  # first: wiring logs too
        worker, close = build_worker(settings)
    except ValidationError as exc:
        sys.exit(f"overdrive.worker: {describe_error(exc)}")
    except SettingsError as exc:
        sys.exit(f"overdrive.worker: {exc}")
    asyncio.run(_run(worker, close))


if __name__ == "__main__":
    main()
