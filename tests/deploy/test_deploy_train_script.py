"""deploy/k8s/train.py, the training CronJob's step: against a real service it asks for a retrain
with a key that may only train and read status, waits for it and reports; its restart sends what
`kubectl rollout restart` sends (checked on a local HTTP listener standing in for the API server)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import certifi
import httpx
import pytest

from overdrive.security.keys import KeyEntry, append_key, key_digest, new_key
from tests.deploy.deploy_files import K8S
from tests.real_servers import app_env, free_port

SCRIPT = K8S / "train.py"


def load_script():
    spec = importlib.util.spec_from_file_location("overdrive_k8s_train", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def service(tmp_path: Path):
    keys = tmp_path / "keys.json"
    admin, trainer = new_key(), new_key()
    append_key(keys, KeyEntry(id="admin", sha256=key_digest(admin), scopes=frozenset({"admin"})))
    append_key(keys, KeyEntry(id="trainer", sha256=key_digest(trainer), scopes=frozenset({"models:admin", "metrics:read"})))
    port = free_port()
    env = {**os.environ, **app_env(tmp_path), "SERVICE_PORT": str(port), "OVERDRIVE_API_KEYS_FILE": str(keys),
           "OVERDRIVE_CF_METHODS": "als,popularity", "OVERDRIVE_CF_TUNE": "false", "OVERDRIVE_LOG_LEVEL": "warning"}
    proc = subprocess.Popen([sys.executable, "-m", "overdrive.app"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "not ready"
            time.sleep(0.1)
        yield base, admin, trainer
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def run_script(base: str, key: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TRAINER_URL": base, "TRAINER_KEY": key, "RESTART_DEPLOYMENT": "", "TRAIN_POLL_SECONDS": "0.2"}
    return subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=240)


def test_retrain_through_the_script(service) -> None:
    base, admin, trainer = service
    auth = {"Authorization": f"Bearer {admin}"}
    # Nothing to train on yet: the service refuses (409) or the job ends skipped, and the step
    # succeeds without restarting anything; a service that reports the job failed fails the step.
    empty = run_script(base, trainer)
    skipped = empty.returncode == 0 and '"state": "skipped"' in empty.stdout
    failed = empty.returncode == 1 and '"state": "failed"' in empty.stdout
    assert skipped or failed, empty.stdout + empty.stderr
    assert "restarting" not in empty.stdout

    signals = [{"user_id": f"u{u}", "content_id": f"i{(u * 7 + k) % 40}", "signal_type": "like", "signal_id": f"s{u}-{k}"}
               for u in range(30) for k in range(12)]
    assert httpx.post(f"{base}/signals/batch", json={"signals": signals}, headers=auth, timeout=30).status_code == 200
    done = run_script(base, trainer)
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"state": "done"' in done.stdout
    status = httpx.get(f"{base}/models/status", headers=auth, timeout=10).json()["collaborative"]
    assert status["artifacts"]["current_version"] is not None

    refused = run_script(base, "od_not-a-key")
    assert refused.returncode == 1 and "401" in refused.stderr


def test_restart_patches_the_deployment_as_kubectl_does(tmp_path: Path) -> None:
    seen: list[tuple[str, str, dict, dict]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PATCH(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.command, self.path, dict(self.headers), body))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "namespace").write_text("overdrive")
    (account / "token").write_text("sa-token\n")
    (account / "ca.crt").write_text(Path(certifi.where()).read_text())
    try:
        load_script().restart("overdrive-api", api=f"http://127.0.0.1:{server.server_port}", account=str(account))
    finally:
        server.shutdown()
    ((method, path, headers, body),) = seen
    assert method == "PATCH" and path == "/apis/apps/v1/namespaces/overdrive/deployments/overdrive-api"
    assert headers["Authorization"] == "Bearer sa-token"
    assert headers["Content-Type"] == "application/strategic-merge-patch+json"
    annotations = body["spec"]["template"]["metadata"]["annotations"]
    assert list(annotations) == ["kubectl.kubernetes.io/restartedAt"]
