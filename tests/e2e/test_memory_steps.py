"""A serving process loads at start what it may need later, so its memory does not step up in
the middle of a run (the soak's RSS growth over its last half)."""

from __future__ import annotations

from pathlib import Path

import httpx

from overdrive.evaluation.server_process import ServerProcess
from tests.real_servers import app_env


def _mapped(pid: int, part: str) -> bool:
    return part in Path(f"/proc/{pid}/maps").read_text()


def test_the_blend_fitting_library_is_loaded_before_the_first_fit(tmp_path: Path) -> None:
    """`POST /models/train` fits the blend on impressions with scikit-learn's logistic regression:
    a replica whose first such request came late stepped up by ~20 MiB then."""
    env = {k: v for k, v in app_env(tmp_path).items() if k != "OVERDRIVE_DATA_DIR"}
    with ServerProcess(data_dir=tmp_path / "data", env=env) as server:
        assert httpx.get(f"{server.url}/health/ready", timeout=10).status_code == 200
        assert _mapped(server.proc.pid, "sklearn/linear_model")  # type: ignore[union-attr]
