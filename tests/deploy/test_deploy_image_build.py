"""The image build, opt-in: `OVERDRIVE_BUILD_IMAGE=1 .venv/bin/python -m pytest tests/deploy/test_deploy_image_build.py`
runs deploy/build-image.sh (podman, a local Debian base; ~10 minutes and a few GB on 2 cores the
first time, cached after) and its smoke run. Always: the scripts parse."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.deploy.deploy_files import DEPLOY, ROOT

SCRIPTS = [DEPLOY / "build-image.sh", DEPLOY / "compose" / "make-secrets.sh"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_parses_and_is_executable(script) -> None:
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert os.access(script, os.X_OK)


@pytest.mark.timeout(3600)
def test_image_builds_starts_and_trains() -> None:
    if os.environ.get("OVERDRIVE_BUILD_IMAGE") != "1":
        pytest.skip("opt-in: OVERDRIVE_BUILD_IMAGE=1 builds the image with podman (heavy; see docs/deploy.md)")
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed (apt-get install podman mmdebstrap)")
    done = subprocess.run([str(DEPLOY / "build-image.sh")], cwd=ROOT, capture_output=True, text=True, timeout=3500)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "start to /health/ready 200" in done.stdout and "served by a new container" in done.stdout
