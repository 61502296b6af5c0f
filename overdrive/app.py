"""Entry point: settings → wiring → serve. `python -m overdrive.app`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import uvicorn
from pydantic import ValidationError

from overdrive.api import create_app
from overdrive.config import Settings, SettingsError, describe_error
from overdrive.observability.logs import configure as configure_logging
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
    configure_logging(settings.log_level)
    tls = (settings.tls_cert_file, settings.tls_key_file) if settings.tls_cert_file and settings.tls_key_file else None
    serve(create_app(services), host=settings.host, port=settings.service_port, log_level=settings.log_level, tls=tls)


def serve(app: Any, *, host: str, port: int, log_level: str, tls: tuple[Path, Path] | None = None) -> None:
    """The server stack: uvicorn, one process, uvloop and httptools (its `auto` picks), no access
    log, its own log lines through ours (escaped); HTTPS when given a certificate and key.

    The ranking benchmark serves its bare comparison endpoint through this too.
    """
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False, loop="auto", http="auto",
                log_config=None, ssl_certfile=tls[0] if tls else None, ssl_keyfile=tls[1] if tls else None)


if __name__ == "__main__":
    main()
