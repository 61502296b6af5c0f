"""A connection storm against the real service: does liveness survive saturation?

    python -m benchmarks.bench_storm [--connections 1000] [--slow 200] [--seconds 15] [--modes off,on]

Starts the real service (`python -m overdrive.app`, embedded default) on a synthetic world and
opens `--connections` keep-alive connections that send rankings (`POST /rank/for-you/enhanced`,
catalog candidates) and signals (`POST /signals/process`, a `--signal-share` of them) in a
closed loop, plus `--slow` connections that stream an endless request header a few bytes at a
time (each reconnects when the server closes it), while two probes — `GET /health/live` and
`GET /health/ready`, each on its own connection — ask every 100 ms. A client answered
503 with `Retry-After` waits that long (× 0.5–1.5, jittered) and sends again, as the typical
client does; that answer is counted as shed, not as an error. Errors are every other non-200
answer, a connection closed or reset under a request, and a request unanswered after `--timeout`.

Each mode is one server on its own copy of the world: `off` turns load shedding off
(`OVERDRIVE_MAX_INFLIGHT_RANKINGS=0`, `OVERDRIVE_MAX_INFLIGHT_SIGNAL_WRITES=0`; the connection
limits and the health answers stay), `on` runs the defaults, and with `--before CHECKOUT` mode
`before` runs the server of another checkout (`git worktree add /tmp/before COMMIT`) first;
`--env NAME=VALUE` adds settings to all. Prints per mode the ranking and signal
P50/P99 and counts, shed answers, errors, the probes' P50/P99/max, and what became of the
slow-header connections.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from benchmarks.load import post_request
from overdrive.evaluation.server_process import ServerProcess

RANK_PATH = "/rank/for-you/enhanced"
SIGNAL_PATH = "/signals/process"
MODES = {
    "off": {"OVERDRIVE_MAX_INFLIGHT_RANKINGS": "0", "OVERDRIVE_MAX_INFLIGHT_SIGNAL_WRITES": "0"},
    "on": {},
}


@dataclass
class Tally:
    latencies_ms: dict[str, list[float]] = field(default_factory=lambda: {"rank": [], "signal": []})
    shed: dict[str, int] = field(default_factory=lambda: {"rank": 0, "signal": 0})
    errors: dict[str, int] = field(default_factory=dict)
    probes_ms: dict[str, list[float]] = field(default_factory=lambda: {"live": [], "ready": []})
    probe_errors: dict[str, int] = field(default_factory=dict)
    slow_closed: int = 0
    slow_lifetimes_s: list[float] = field(default_factory=list)
    slow_refused: int = 0

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, await reader.readexactly(int(headers.get(b"content-length", b"0")))


async def _worker(port: int, kind: str, requests: list[bytes], offset: int, warm_until: float, end: float,
                  timeout_s: float, tally: Tally) -> None:
    n = offset
    writer = None
    while time.perf_counter() < end:
        try:
            if writer is None:
                reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout_s)
            sent = time.perf_counter()
            writer.write(requests[n % len(requests)])
            n += 1
            status, headers, _ = await asyncio.wait_for(_read_response(reader), timeout_s)
        except (TimeoutError, asyncio.TimeoutError):
            tally.error("timeout")
            writer = _close(writer)
            continue
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            tally.error(f"{kind}: {type(exc).__name__}")
            writer = _close(writer)
            await asyncio.sleep(0.1)
            continue
        done = time.perf_counter()
        counted = warm_until <= sent and done <= end
        if status == 200:
            if counted:
                tally.latencies_ms[kind].append((done - sent) * 1000.0)
        elif status == 503 and b"retry-after" in headers:
            if counted:
                tally.shed[kind] += 1
            await asyncio.sleep(float(headers[b"retry-after"]) * random.uniform(0.5, 1.5))
        else:
            if counted:
                tally.error(f"{kind}: {status}")
        if headers.get(b"connection") == b"close":
            writer = _close(writer)
    _close(writer)


def _close(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None:
        writer.close()
    return None


async def _probe(port: int, path: str, name: str, warm_until: float, end: float, timeout_s: float, tally: Tally) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    writer = None
    while (now := time.perf_counter()) < end:
        next_at = now + 0.1
        try:
            sent = time.perf_counter()
            if writer is None:  # a reconnect counts in the probe's latency, as a kubelet's would
                reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout_s)
            writer.write(request)
            status, headers, _ = await asyncio.wait_for(_read_response(reader), timeout_s)
            if headers.get(b"connection") == b"close":
                writer = _close(writer)
            if sent >= warm_until:
                if status == 200:
                    tally.probes_ms[name].append((time.perf_counter() - sent) * 1000.0)
                else:
                    tally.probe_errors[f"{name}: {status}"] = tally.probe_errors.get(f"{name}: {status}", 0) + 1
        except (OSError, TimeoutError, asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
            writer = _close(writer)
            if sent >= warm_until:
                key = f"{name}: {type(exc).__name__}"
                tally.probe_errors[key] = tally.probe_errors.get(key, 0) + 1
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    _close(writer)


async def _slow_header(port: int, start_after: float, end: float, tally: Tally) -> None:
    """An endless header, 16 bytes every 100 ms; reconnects when the server hangs up."""
    await asyncio.sleep(start_after)
    while time.perf_counter() < end:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            tally.slow_refused += 1
            await asyncio.sleep(0.5)
            continue
        opened = time.perf_counter()
        try:
            writer.write(f"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Slow: ".encode())
            while time.perf_counter() < end:
                await asyncio.sleep(0.1)
                if reader.at_eof():
                    break
                writer.write(b"a" * 16)
                await writer.drain()
        except OSError:
            pass
        if time.perf_counter() < end:
            tally.slow_closed += 1
            tally.slow_lifetimes_s.append(time.perf_counter() - opened)
        writer.close()


async def _storm(port: int, rank_requests: list[bytes], signal_requests: list[bytes], args: argparse.Namespace) -> Tally:
    tally = Tally()
    start = time.perf_counter()
    warm_until, end = start + args.warmup, start + args.warmup + args.seconds
    n_signal = round(args.connections * args.signal_share)
    tasks = [
        _worker(port, "signal" if c < n_signal else "rank",
                signal_requests if c < n_signal else rank_requests, c * 7, warm_until, end, args.timeout, tally)
        for c in range(args.connections)
    ]
    tasks += [_slow_header(port, k * 1.0 / max(1, args.slow), end, tally) for k in range(args.slow)]
    # The probes run in a process of their own: in this one they would wait behind the load
    # generator's own event loop, which is as busy as the server's.
    probes = multiprocessing.get_context("spawn").Pool(1)
    probed = probes.apply_async(_probes, (port, args.warmup, args.seconds, args.timeout))
    await asyncio.gather(*tasks)
    tally.probes_ms, tally.probe_errors = probed.get(timeout=args.timeout + 60)
    probes.close()
    probes.join()
    return tally


def _probes(port: int, warmup_s: float, seconds: float, timeout_s: float) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Both probes, each on its own connection every 100 ms, in this (child) process's own loop."""
    tally = Tally()
    start = time.perf_counter()
    warm_until, end = start + warmup_s, start + warmup_s + seconds

    async def both() -> None:
        await asyncio.gather(_probe(port, "/health/live", "live", warm_until, end, timeout_s, tally),
                             _probe(port, "/health/ready", "ready", warm_until, end, timeout_s, tally))

    asyncio.run(both())
    return tally.probes_ms, tally.probe_errors


def _world(tmp: Path, args: argparse.Namespace) -> tuple[Path, list[str], list[str]]:
    from overdrive.data.synthetic import WorldConfig, generate_world
    from overdrive.ingest.direct import ingest_directly

    world = generate_world(WorldConfig(n_users=args.users, n_items=args.items, signals_per_user=20, seed=1))
    ingest_directly(tmp / "world", world.items, world.signals)
    print(f"world: {len(world.items)} items, {len(world.signals)} signals, {len(world.user_ids)} users")
    return tmp / "world", [i["id"] for i in world.items], world.user_ids


def _requests(port: int, ids: list[str], users: list[str], candidates: int) -> tuple[list[bytes], list[bytes]]:
    rng = np.random.default_rng(7)
    ranks = [post_request("127.0.0.1", port, RANK_PATH, orjson.dumps({
        "user_id": users[int(rng.integers(len(users)))],
        "candidate_items": [{"id": ids[j]} for j in rng.choice(len(ids), size=min(candidates, len(ids)), replace=False)],
        "limit": 20})) for _ in range(512)]
    signals = [post_request("127.0.0.1", port, SIGNAL_PATH, orjson.dumps({
        "user_id": users[int(rng.integers(len(users)))], "content_id": ids[int(rng.integers(len(ids)))],
        "signal_type": str(rng.choice(["view", "like", "share", "skip"]))})) for _ in range(512)]
    return ranks, signals


def _pct(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q):,.1f}" if values else "-"


def _report(mode: str, tally: Tally, seconds: float) -> None:
    print(f"\n[{mode}]")
    for kind in ("rank", "signal"):
        lat = tally.latencies_ms[kind]
        print(f"  {kind:<7} answered {len(lat):>7,} ({len(lat) / seconds:,.0f}/s)  P50 {_pct(lat, 50)} ms  "
              f"P99 {_pct(lat, 99)} ms  shed (503 + Retry-After) {tally.shed[kind]:,}")
    print(f"  errors  {sum(tally.errors.values())} {tally.errors or ''}")
    for name, lat in tally.probes_ms.items():
        print(f"  /health/{name:<6} probes {len(lat):>4}  P50 {_pct(lat, 50)} ms  P99 {_pct(lat, 99)} ms  "
              f"max {max(lat) if lat else float('nan'):,.1f} ms")
    print(f"  probe errors {sum(tally.probe_errors.values())} {tally.probe_errors or ''}")
    lives = tally.slow_lifetimes_s
    print(f"  slow-header connections closed by the server: {tally.slow_closed}"
          + (f" (after {np.median(lives):.1f} s median)" if lives else "") + f"; refused: {tally.slow_refused}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_storm", description=__doc__.split("\n")[0])
    p.add_argument("--connections", type=int, default=1000, help="ranking and signal connections")
    p.add_argument("--signal-share", type=float, default=0.2, help="share of the connections that send signals")
    p.add_argument("--slow", type=int, default=200, help="connections streaming an endless header")
    p.add_argument("--seconds", type=float, default=15.0, help="measured, per mode")
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--timeout", type=float, default=30.0, help="a request unanswered this long is an error")
    p.add_argument("--items", type=int, default=2000)
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--candidates", type=int, default=100)
    p.add_argument("--modes", default="off,on", help=f"comma-separated, of {', '.join(MODES)}")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="a setting for every mode's server")
    p.add_argument("--before", type=Path, metavar="CHECKOUT",
                   help="also run mode 'before': the server from another checkout (e.g. a git worktree of an older commit)")
    args = p.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # this process holds ~1,200 sockets
    extra = dict(e.split("=", 1) for e in args.env)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores; "
          f"{args.connections} connections ({args.signal_share:.0%} signals), {args.slow} slow-header, "
          f"{args.seconds:.0f} s per mode")
    with tempfile.TemporaryDirectory(prefix="overdrive-storm-") as tmp_name:
        tmp = Path(tmp_name)
        world, ids, users = _world(tmp, args)
        for mode in (["before"] if args.before else []) + args.modes.split(","):
            data = tmp / f"data-{mode}"
            shutil.copytree(world, data)
            env = {"OVERDRIVE_CONTENT_FEATURES": "false", "OVERDRIVE_TRAIN_ON_START": "false",
                   "OVERDRIVE_RETRAIN_INTERVAL_MINUTES": "0", "MODEL_CACHE_DIR": str(tmp / f"models-{mode}"),
                   **MODES.get(mode, {}), **extra}
            server = ServerProcess(data_dir=data, env=env, log_path=tmp / f"server-{mode}.log",
                                   cwd=args.before if mode == "before" else None)
            try:
                server.start()
            except RuntimeError:
                print((tmp / f"server-{mode}.log").read_text(errors="replace")[-3000:])
                raise
            try:
                ranks, signals = _requests(server.port, ids, users, args.candidates)
                tally = asyncio.run(_storm(server.port, ranks, signals, args))
            finally:
                server.stop()
            _report(mode, tally, args.seconds)
            log = (tmp / f"server-{mode}.log").read_text(errors="replace").strip().splitlines()
            if log:
                print(f"  server log: {len(log)} lines, last: {log[-1][:200]}")
            print(f"  load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
