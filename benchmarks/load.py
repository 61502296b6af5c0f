"""A small HTTP/1.1 load generator: keep-alive connections, pre-encoded requests, asyncio streams.

Each connection sends one request, reads the whole response (Content-Length framed), records the
latency and sends the next — closed loop, so `connections` requests are in flight at once. With
`rate` set, sends are paced to that many requests per second in total (open loop: latency is
measured from the scheduled send time, so queueing behind a slow server is counted). Only
requests sent after the warm-up and answered within the measured window count, so requests per
second is what the server completed, not what was offered.
Requests are encoded once up front, so the generator costs a few tens of microseconds a request
and leaves the CPU to the server under test. That is why it does not use the typed client
(`overdrive_client`), which the other HTTP tools use: on httpx a ranking request cost the client
~0.6 ms of CPU here (raw httpx the same), some ten times this generator's, taken from the same
few cores as the server it measures.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

_GRACE_S = 5.0  # after the measured window, how long a paced client may still catch up

def post_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


@dataclass
class LoadResult:
    seconds: float
    latencies_ms: np.ndarray
    errors: dict[str, int] = field(default_factory=dict)
    sample_body: bytes = b""

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.requests else float("nan")


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
            break
    return status, await reader.readexactly(length)


async def _client(host: str, port: int, requests: list[bytes], offset: int, start: float, warm_until: float,
                  end: float, interval: float | None, out: list[float], errors: dict[str, int],
                  sample: list[bytes]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    n = offset
    next_send = start  # paced connections are staggered by the caller through `start`
    try:
        while True:
            if interval:
                delay = next_send - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent = next_send
                next_send += interval
            else:
                sent = time.perf_counter()
            if sent >= end or time.perf_counter() >= end + _GRACE_S:
                break  # (a paced client that fell behind abandons its backlog)
            writer.write(requests[n % len(requests)])
            n += 1
            status, body = await _read_response(reader)
            done = time.perf_counter()
            if status != 200:
                errors[str(status)] = errors.get(str(status), 0) + 1
            elif sent >= warm_until and done <= end:
                out.append((done - sent) * 1000.0)
                if not sample:
                    sample.append(body)
    finally:
        writer.close()


async def _run(host: str, ports: Sequence[int], requests: list[bytes], connections: int, duration_s: float,
               warmup_s: float, rate: float | None) -> LoadResult:
    start = time.perf_counter()
    warm_until, end = start + warmup_s, start + warmup_s + duration_s
    interval = connections / rate if rate else None  # each connection's share of the pace
    out: list[float] = []
    errors: dict[str, int] = {}
    sample: list[bytes] = []
    step = max(1, len(requests) // connections)
    await asyncio.gather(*(
        _client(host, ports[c % len(ports)], requests, c * step, start + (c * interval / connections if interval else 0.0),
                warm_until, end, interval, out, errors, sample)
        for c in range(connections)
    ))
    return LoadResult(seconds=duration_s, latencies_ms=np.asarray(out), errors=errors,
                      sample_body=sample[0] if sample else b"")


def run_load(host: str, port: int | Sequence[int], requests: list[bytes], *, connections: int = 64,
             duration_s: float = 10.0, warmup_s: float = 2.0, rate: float | None = None) -> LoadResult:
    """Drive the server for warm-up + duration; only responses to requests sent after warm-up count.
    Given several ports (replicas of one service), the connections are spread over them in turn."""
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        runner = asyncio.run
    ports = [port] if isinstance(port, int) else list(port)
    return runner(_run(host, ports, requests, connections, duration_s, warmup_s, rate))
