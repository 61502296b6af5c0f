"""The OpenAPI document tells the truth: schemathesis, with every check it has, against the real
service (`python -m overdrive.app`, embedded default settings on a temporary data folder) finds
nothing.

Generation is bounded (`OVERDRIVE_SCHEMATHESIS_EXAMPLES` cases per operation and phase, 30 by
default) and seeded (`OVERDRIVE_SCHEMATHESIS_SEED`, printed), so a run takes about a minute and a
failure reproduces. A longer run with another seed (docs/api.md):

    OVERDRIVE_SCHEMATHESIS_EXAMPLES=200 OVERDRIVE_SCHEMATHESIS_SEED=7 \\
        .venv/bin/python -m pytest tests/integration/test_openapi_schemathesis.py -s

What is configured, and why: `schemathesis.toml` (413 is a refusal) and `schemathesis_hooks.py`
(bodies breaking a rule JSON Schema cannot state are not generated).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from overdrive.evaluation.server_process import ServerProcess
from tests.real_servers import app_env

HERE = Path(__file__).parent
SEED = int(os.environ.get("OVERDRIVE_SCHEMATHESIS_SEED", "20261206"))
EXAMPLES = int(os.environ.get("OVERDRIVE_SCHEMATHESIS_EXAMPLES", "30"))


@pytest.mark.parametrize("auth", [False, True], ids=["open", "api-key"])
def test_schemathesis_finds_nothing_against_the_real_service(tmp_path: Path, auth: bool) -> None:
    """`open`: authentication off (loopback, no credential), the laptop default. `api-key`: an
    admin API key configured and sent; the document then declares its security schemes, and
    `ignored_auth` checks that each operation refuses a request without the key (fewer examples:
    the operations and bodies are the same)."""
    # Content features on, as in the default deployment: with them off, /items/{id}/features and
    # /similar answer 404 for an item just created (schemathesis: "created resource not found").
    env = app_env(tmp_path, OVERDRIVE_CONTENT_FEATURES="true")
    data_dir = Path(env.pop("OVERDRIVE_DATA_DIR"))
    examples, key = EXAMPLES, ""
    if auth:
        key = "odk_" + secrets.token_urlsafe(32)
        keys_file = tmp_path / "keys.json"
        keys_file.write_text(json.dumps({"keys": [{"id": "schemathesis", "scopes": ["admin"],
                                                   "sha256": hashlib.sha256(key.encode()).hexdigest()}]}))
        env["OVERDRIVE_API_KEYS_FILE"] = str(keys_file)
        examples = max(1, EXAMPLES // 3)
    config = HERE / "schemathesis.toml"
    log = tmp_path / "server.log"
    with ServerProcess(data_dir=data_dir, env=env, log_path=log) as server:
        location = [f"{server.url}/openapi.json"]
        if auth:
            # The key given per security scheme, so that `ignored_auth` knows what to leave out; the
            # document itself needs the key too, so it is fetched here.
            document = tmp_path / "openapi.json"
            document.write_bytes(httpx.get(f"{server.url}/openapi.json", headers={"X-API-Key": key}).raise_for_status().content)
            location = [str(document), "--url", server.url]
            config = tmp_path / "schemathesis.toml"
            config.write_text((HERE / "schemathesis.toml").read_text()
                              + f'\n[auth.openapi.apiKey]\napi_key = "{key}"\n\n[auth.openapi.bearer]\nbearer = "{key}"\n')
        command = [
            sys.executable, "-m", "schemathesis.cli", "--config-file", str(config),
            "run", *location,
            "--checks", "all",
            "--max-examples", str(examples), "--seed", str(SEED),
            "--workers", "2", "--continue-on-failure", "--no-color", "--output-truncate", "false",
            "--report", "junit", "--report-dir", str(tmp_path / "report"),
        ]
        print(f"schemathesis seed {SEED}, {examples} examples per operation: {' '.join(command)}")
        # Run from tmp_path: schemathesis keeps its case database (.schemathesis/) in the working folder.
        run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                             env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.integration.schemathesis_hooks",
                                  "PYTHONPATH": os.pathsep.join([str(HERE.parent.parent), os.environ.get("PYTHONPATH", "")])})
        # The cases reached the service's work, not only its refusals (with a key that did not
        # authenticate, every answer would be a documented 401): items and signals were stored.
        store = httpx.get(f"{server.url}/performance/system", headers={"X-API-Key": key} if auth else {}).json()["store"]
    (tmp_path / "schemathesis.txt").write_text(run.stdout + run.stderr)
    print(run.stdout[-4000:])
    server_log = log.read_text(errors="replace")
    assert run.returncode == 0, (f"seed {SEED}; the whole report: {tmp_path / 'schemathesis.txt'}\n"
                                 f"{run.stdout[-20000:]}\n{run.stderr[-4000:]}")
    assert "Traceback" not in server_log, server_log[-4000:]
    assert store["items"] > 0 and store["signals"] > 0, store
