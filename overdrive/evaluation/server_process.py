"""Run the real service as a child process, for end-to-end tests, benchmarks and evaluations."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`python -m overdrive.app` on a free loopback port with its own data folder."""

    def __init__(self, *, data_dir: Path, port: int | None = None, env: dict[str, str] | None = None,
                 log_path: Path | None = None, cwd: Path | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self._env = env or {}
        self._cert = self._env.get("OVERDRIVE_TLS_CERT_FILE")  # served over HTTPS, this certificate trusted
        self.url = f"{'https' if self._cert else 'http'}://127.0.0.1:{self.port}"
        self._log_path = log_path or data_dir.parent / f"server-{self.port}.log"
        self._cwd = cwd  # `-m` imports from here first: another checkout's code (benchmarks/rank_ab.py)
        self.proc: subprocess.Popen | None = None

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What an httpx client of this server verifies its TLS certificate with."""
        return ssl.create_default_context(cafile=self._cert) if self._cert else True

    def start(self, *, timeout_s: float = 60.0) -> ServerProcess:
        env = {
            **os.environ,
            "OVERDRIVE_DATA_DIR": str(self.data_dir),
            "SERVICE_PORT": str(self.port),
            "OVERDRIVE_HOST": "127.0.0.1",
            "OVERDRIVE_LOG_LEVEL": "warning",
            **self._env,
        }
        log = open(self._log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen([sys.executable, "-m", "overdrive.app"], env=env, stdout=log, stderr=log, cwd=self._cwd)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; log: {self._log_path}")
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=1.0, verify=self.verify).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server not ready within {timeout_s}s; log: {self._log_path}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks run, as in a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
