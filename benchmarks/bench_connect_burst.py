"""A burst of new connections to a saturated server: how long each connection's first request waits,
on asyncio's event loop (what `overdrive.app.serve` uses) against uvloop, same endpoint, same run.

    python -m benchmarks.bench_connect_burst [--connections 64] [--spin-ms 1.3] [--seconds 4]

The endpoint spends `--spin-ms` of CPU per request (a ranking's own handler time, nothing of the
service), so the server is saturated once the connections are open. They open within `--ramp-ms`
(as a client pool reconnecting after a deploy) and keep sending (closed loop); the first request
of each connection and all later ones are reported apart. uvloop's libuv accepts one connection per loop turn, and a saturated turn lasts connections ×
spin, so there the k-th connection's first request waits about k turns.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time

import numpy as np

from overdrive.evaluation.server_process import free_port

BODY = b'{"user_id": "u", "limit": 20}'


def serve(loop: str, port: int, spin_ms: float) -> None:
    """The spin endpoint on uvicorn with `loop`; run in a child process."""
    import uvicorn

    async def app(scope, receive, send) -> None:  # noqa: ANN001 - the ASGI signature
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        deadline = time.perf_counter() + spin_ms / 1000.0
        while time.perf_counter() < deadline:
            pass
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"{}"})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, loop=loop, http="auto")


async def _connection(port: int, delay_s: float, until: float, first: list[float], later: list[float]) -> None:
    request = (f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(BODY)}\r\n\r\n").encode() + BODY
    await asyncio.sleep(delay_s)
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    n = 0
    while time.perf_counter() < until:
        sent = started if n == 0 else time.perf_counter()  # the first counts from the connect
        writer.write(request)
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)
        (first if n == 0 else later).append((time.perf_counter() - sent) * 1000.0)
        n += 1
    writer.close()


async def _burst(port: int, connections: int, seconds: float, ramp_s: float) -> tuple[np.ndarray, np.ndarray]:
    first: list[float] = []
    later: list[float] = []
    until = time.perf_counter() + seconds
    await asyncio.gather(*(_connection(port, k * ramp_s / connections, until, first, later) for k in range(connections)))
    return np.asarray(first), np.asarray(later)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_connect_burst", description=__doc__.split("\n")[0])
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--spin-ms", type=float, default=1.3)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--ramp-ms", type=float, default=300.0, help="connections open evenly over this long")
    p.add_argument("--serve", nargs=2, metavar=("LOOP", "PORT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), args.spin_ms)
        return 0
    print(f"{args.connections} connections opened over {args.ramp_ms:g} ms, {args.spin_ms} ms of CPU a request, {args.seconds} s")
    print(f"{'loop':<9}{'first P50':>11}{'first P99':>11}{'first max':>11}{'later P50':>11}{'later P99':>11}{'req/s':>9}")
    for loop in ("asyncio", "uvloop"):
        port = free_port()
        child = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_connect_burst", "--spin-ms",
                                  str(args.spin_ms), "--serve", loop, str(port)])
        try:
            _wait_for(port)
            first, later = asyncio.run(_burst(port, args.connections, args.seconds, args.ramp_ms / 1000.0))
        finally:
            child.terminate()
            child.wait(10)
        print(f"{loop:<9}{np.percentile(first, 50):>9.1f}ms{np.percentile(first, 99):>9.1f}ms{first.max():>9.1f}ms"
              f"{np.percentile(later, 50):>9.1f}ms{np.percentile(later, 99):>9.1f}ms"
              f"{(len(first) + len(later)) / args.seconds:>9.0f}")
    return 0


def _wait_for(port: int, timeout_s: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("the endpoint did not start") from None
            time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
