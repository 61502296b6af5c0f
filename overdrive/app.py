"""Entry point: settings → wiring → serve. `python -m overdrive.app`."""

from __future__ import annotations

import logging
import sys

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
    uvicorn.run(
        create_app(services),
        host=settings.host,
        port=settings.service_port,
        log_level=settings.log_level,
        access_log=False,
    )


if __name__ == "__main__":
    main()
