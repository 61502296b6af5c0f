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
        configure_logging(settings.log_level, settings.log_format)  # first: wiring logs too
        services = build_services(settings)
    except ValidationError as exc:
        sys.exit(f"overdrive: {describe_error(exc)}")
    except (SettingsError, DataDirInUse) as exc:
        sys.exit(f"overdrive: {exc}")
    tls = (settings.tls_cert_file, settings.tls_key_file) if settings.tls_cert_file and settings.tls_key_file else None
    serve(create_app(services), host=settings.host, port=settings.service_port, log_level=settings.log_level, tls=tls,
          access_log=settings.access_log)


def serve(app: Any, *, host: str, port: int, log_level: str, tls: tuple[Path, Path] | None = None,
          access_log: bool = False) -> None:
    """The server stack: uvicorn, one process, asyncio's event loop and httptools, its own log
    lines — and with `access_log` its access log — through ours (`configure_logging`: JSON lines
    or text, escaped, each with the request id); HTTPS when given a certificate and key.

    Not uvloop: its libuv (1.45 on) accepts one connection per loop iteration, and an iteration
    of a saturated server runs every request read in the one before (n connections × ~1.3 ms of
    ranking), so of connections opened together the k-th is accepted k iterations late: at 64
    connections their first requests waited up to 3 s. asyncio's loop accepts every pending
    connection at once. The ranker's throughput is the same on either loop.

    The ranking benchmark serves its bare comparison endpoint through this too.
    """
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=access_log, loop="asyncio", http="auto",
                log_config=None, ssl_certfile=tls[0] if tls else None, ssl_keyfile=tls[1] if tls else None)


if __name__ == "__main__":
    main()
