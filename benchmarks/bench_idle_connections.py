"""Idle connections past the descriptor limit: do other clients still get answers?

    python -m benchmarks.bench_idle_connections [--idle 1100] [--nofile 1024] [--before CHECKOUT]

Starts the real service with its open-file limit at `--nofile` (soft and hard), opens `--idle`
connections that never send a byte, then sends 50 signals, each on a fresh connection, and
prints how many were answered, the slowest, and how many idle connections the server closed.
With `--before CHECKOUT` the same against another checkout's server first (a git worktree).
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from overdrive.evaluation.server_process import free_port


def run(cwd: Path | None, idle_n: int, nofile: int, tmp: Path) -> str:
    port = free_port()
    env = {**os.environ, "OVERDRIVE_DATA_DIR": str(tmp / "data"), "MODEL_CACHE_DIR": str(tmp / "models"),
           "SERVICE_PORT": str(port), "OVERDRIVE_HOST": "127.0.0.1", "OVERDRIVE_CONTENT_FEATURES": "false",
           "OVERDRIVE_TRAIN_ON_START": "false", "OVERDRIVE_LOG_LEVEL": "warning"}
    with open(tmp / "server.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "overdrive.app"], cwd=cwd, env=env, stdout=log, stderr=log,
                                preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile)))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(idle_n)]
        time.sleep(0.5)
        answered, slowest = 0, 0.0
        for k in range(50):
            started = time.perf_counter()
            try:
                answered += httpx.post(f"http://127.0.0.1:{port}/signals/process", timeout=3, json={
                    "user_id": "u1", "signal_type": "view", "content_id": f"i{k}"}).is_success
            except httpx.HTTPError:
                pass
            slowest = max(slowest, time.perf_counter() - started)
        closed = 0
        for s in idle:
            s.settimeout(0.01)
            try:
                closed += s.recv(1) == b""
            except OSError:
                pass
            s.close()
        return (f"{answered} of 50 answered (slowest {slowest * 1000:,.0f} ms); "
                f"{closed} of {idle_n} idle connections closed by the server")
    finally:
        proc.kill()  # a server that ran out of descriptors may not stop on SIGTERM
        proc.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_idle_connections", description=__doc__.split("\n")[0])
    p.add_argument("--idle", type=int, default=1100)
    p.add_argument("--nofile", type=int, default=1024, help="the server's open-file limit")
    p.add_argument("--before", type=Path, metavar="CHECKOUT")
    args = p.parse_args(argv)
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    for name, cwd in ([("before", args.before)] if args.before else []) + [("now", None)]:
        with tempfile.TemporaryDirectory(prefix="overdrive-idle-") as tmp:
            print(f"{name}: {args.idle} idle connections, server open-file limit {args.nofile}: "
                  f"{run(cwd, args.idle, args.nofile, Path(tmp))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
