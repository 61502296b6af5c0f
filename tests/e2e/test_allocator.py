"""The service chooses its allocator at start-up: CPython's own where it never retrains itself
(the embedded default retrains in a child process), the C library's where it does."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from overdrive.evaluation.server_process import ServerProcess
from tests.real_servers import app_env


def _allocator_of(pid: int) -> str | None:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    values = [e.split(b"=", 1)[1].decode() for e in environ if e.startswith(b"PYTHONMALLOC=")]
    return values[0] if values else None


@pytest.mark.parametrize(("extra", "allocator"), [({}, None), ({"OVERDRIVE_RETRAIN_IN": "thread"}, "malloc")])
def test_the_c_allocator_only_where_the_service_retrains_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 extra: dict[str, str], allocator: str | None) -> None:
    monkeypatch.delenv("PYTHONMALLOC", raising=False)
    env = {k: v for k, v in app_env(tmp_path, **extra).items() if k != "OVERDRIVE_DATA_DIR"}
    with ServerProcess(data_dir=tmp_path / "data", env=env) as server:
        assert httpx.get(f"{server.url}/health/live", timeout=10).status_code == 200
        assert _allocator_of(server.proc.pid) == allocator  # type: ignore[union-attr]
