"""The one trainer of scaled mode: `python -m overdrive.trainer [--once]`.

Trains the collaborative ensemble on the Kafka topic (every replica's signals) and the catalog in
Redis, publishes each version into the shared `MODEL_CACHE_DIR` and then fits the learned blend on
the same history there (`OVERDRIVE_BLEND_FROM_HISTORY`); API replicas started with
`OVERDRIVE_TRAINER=external` serve each version within `OVERDRIVE_MODEL_FOLLOW_SECONDS` and
leave it their `POST /models/train` and erasure requests there. Runs: at start when no version
exists, every `OVERDRIVE_RETRAIN_INTERVAL_MINUTES`, and on each request. `--once`: one retrain,
then exit (0 when published or nothing to train on, 1 when it failed) — for a CronJob.
Run one: a second would only repeat the work. SIGTERM or SIGINT: stop after the retrain in hand.
"""

from __future__ import annotations

if __name__ == "__main__":  # before the imports below: the allocator is chosen at start-up
    from overdrive.observability.process_memory import use_system_allocator

    use_system_allocator()

import argparse
import asyncio
import signal
import sys

from pydantic import ValidationError

from overdrive.config import Settings, SettingsError, describe_error
from overdrive.observability.logs import configure as configure_logging
from overdrive.wiring import build_trainer


async def _run(service, close, *, once: bool) -> int:  # noqa: ANN001 - see build_trainer
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        if once:
            job = await service.train_now(reason="python -m overdrive.trainer --once")
            print(job, flush=True)
            return 0 if job.get("state") in ("done", "skipped") else 1
        await service.start()
        await service.answer_requests(stop)
        return 0
    finally:
        await close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m overdrive.trainer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--once", action="store_true", help="one retrain, then exit")
    args = parser.parse_args(argv)
    try:
        settings = Settings.load()
        configure_logging(settings.log_level, settings.log_format)
        service, close = build_trainer(settings)
    except ValidationError as exc:
        sys.exit(f"overdrive.trainer: {describe_error(exc)}")
    except SettingsError as exc:
        sys.exit(f"overdrive.trainer: {exc}")
    sys.exit(asyncio.run(_run(service, close, once=args.once)))


if __name__ == "__main__":
    main()
