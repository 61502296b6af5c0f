"""Entry point: settings → wiring → serve. `python -m overdrive.app`."""

from __future__ import annotations

import logging
import sys
from typing import Any

import uvicorn
from pydantic import ValidationError

from overdrive.api import create_app
from overdrive.config import Settings, SettingsError, describe_error
from overdrive.store.data_dir_lock import DataDirInUse
from overdrive.wiring import build_services


def main() -> None:
    try:
        settings = Settings.load()
        services = build_services(settings)
    except ValidationError as exc:
        sys.exit(f"overdrive: {describe_error(exc)}")
    except (SettingsError, DataDirInUse) as exc:
        sys.exit(f"overdrive: {exc}")
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    serve(create_app(services), host=settings.host, port=settings.service_port, log_level=settings.log_level)


def serve(app: Any, *, host: str, port: int, log_level: str) -> None:
    """The server stack: uvicorn, one process, uvloop and httptools (its `auto` picks), no access log.

    The ranking benchmark serves its bare comparison endpoint through this too.
    """
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False, loop="auto", http="auto")


if __name__ == "__main__":
    main()
