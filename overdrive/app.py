"""Entry point: settings → wiring → serve. `python -m overdrive.app`."""

from __future__ import annotations

if __name__ == "__main__":  # before the imports below: the allocator is chosen at start-up
    # CPython's own allocator takes signals faster; the C library's gives back what a retrain's read
    # of the log freed, where this process retrains itself (docs/configuration.md#memory).
    from overdrive.config import Settings
    from overdrive.observability.process_memory import use_system_allocator

    try:
        _retrains_here = Settings.load().retrains_in_this_process
    except Exception:  # noqa: BLE001 - main() below names what is wrong with the settings
        _retrains_here = False
    if _retrains_here:
        use_system_allocator()

import resource
import sys
from pathlib import Path
from typing import Any

import uvicorn
from pydantic import ValidationError

from overdrive.api import create_app
from overdrive.api.admission import Admission
from overdrive.api.http_protocol import ConnectionLimits, ReadinessSnapshot, limits_protocol
from overdrive.config import Settings, SettingsError, describe_error
from overdrive.observability.logs import configure as configure_logging
from overdrive.store.data_dir_lock import DataDirInUse
from overdrive.store.redis_replica_lease import ReplicaLeaseHeld
from overdrive.wiring import build_services


def main() -> None:
    try:
        settings = Settings.load()
        configure_logging(settings.log_level, settings.log_format)  # first: wiring logs too
        services = build_services(settings)
    except ValidationError as exc:
        sys.exit(f"overdrive: {describe_error(exc)}")
    except (SettingsError, DataDirInUse, ReplicaLeaseHeld) as exc:
        sys.exit(f"overdrive: {exc}")
    tls = (settings.tls_cert_file, settings.tls_key_file) if settings.tls_cert_file and settings.tls_key_file else None
    app = create_app(services)
    serve(app, host=settings.host, port=settings.service_port, log_level=settings.log_level, tls=tls,
          access_log=settings.access_log, limits=connection_limits(settings), admission=app.state.admission,
          switch_interval_s=settings.gil_switch_interval_ms / 1000.0)


def connection_limits(settings: Settings) -> ConnectionLimits:
    """The HTTP limits from the settings; raises the open-file limit to its hard ceiling first, so
    that the connection cap (unless set) is that less a reserve for the store, models and logs,
    and less the connections one loop turn may accept."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):  # not ours to raise: the cap follows what there is
            pass
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    # asyncio accepts up to `backlog` connections in one loop turn before any of them reaches the
    # protocol (which closes an idle one to make room), so those must fit beside the cap too.
    backlog = max(16, min(2048, soft // 4))
    auto = max(16, soft - max(64, soft // 10) - backlog)
    return ConnectionLimits(max_header_bytes=settings.http_max_header_bytes, backlog=backlog,
                            header_timeout_s=settings.http_header_timeout_seconds,
                            body_timeout_s=settings.http_body_timeout_seconds,
                            keep_alive_s=settings.http_keep_alive_seconds,
                            max_connections=min(settings.max_connections, auto) if settings.max_connections else auto)


def serve(app: Any, *, host: str, port: int, log_level: str, tls: tuple[Path, Path] | None = None,
          access_log: bool = False, limits: ConnectionLimits | None = None, admission: Admission | None = None,
          switch_interval_s: float | None = None) -> None:
    """The server stack: uvicorn, one process, asyncio's event loop and httptools, its own log
    lines — and with `access_log` its access log — through ours (`configure_logging`: JSON lines
    or text, escaped, each with the request id); HTTPS when given a certificate and key.

    Not uvloop: its libuv (1.45 on) accepts one connection per loop iteration, and an iteration
    of a saturated server runs every request read in the one before (n connections × ~1.3 ms of
    ranking), so of connections opened together the k-th is accepted k iterations late: at 64
    connections their first requests waited up to 3 s. asyncio's loop accepts every pending
    connection at once. The ranker's throughput is the same on either loop.

    The connection runs `overdrive.api.http_protocol` (httptools with bounded headers, header,
    body and idle timeouts, and a connection cap) under `limits`, without them its defaults; it
    counts rankings and signal writes into `admission` (`overdrive.api.admission`) as soon as
    they are parsed, so that those past the bound are shed before they queue on the loop; it
    answers `/health/live` itself and, with `admission` (the service's app), `/health/ready`
    from a snapshot of the app's own answer taken every second.

    `switch_interval_s` is how long another thread (the SQLite writer, a scorer pool) may hold
    the GIL while the loop waits for it (Python's default 5 ms): at 1 ms the storm benchmark's
    /health/live P99 went from 78 to 44 ms and its throughput up ~18 % (in-flight bounds 8 and 16;
    docs/benchmarks.md).

    The ranking benchmark serves its bare comparison endpoint through this too.
    """
    limits = limits or ConnectionLimits()
    if switch_interval_s is not None:
        sys.setswitchinterval(switch_interval_s)
    protocol = limits_protocol(limits, admission, ReadinessSnapshot() if admission is not None else None)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=access_log, loop="asyncio",
                http=protocol, timeout_keep_alive=limits.keep_alive_s, backlog=limits.backlog,  # type: ignore[arg-type]
                h11_max_incomplete_event_size=limits.max_header_bytes,  # used only if served by h11
                log_config=None, ssl_certfile=tls[0] if tls else None, ssl_keyfile=tls[1] if tls else None)


if __name__ == "__main__":
    main()
