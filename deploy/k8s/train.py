"""The training CronJob's step (train-cronjob.yaml): retrain on the trainer, then restart the API.

    TRAINER_URL=http://overdrive-trainer:8000 TRAINER_KEY=... RESTART_DEPLOYMENT=overdrive-api python train.py

1. POST /models/train on the trainer (a key with models:admin and metrics:read) and poll
   /models/status until its collaborative job is no longer running; exit 1 if it failed, 0
   without a restart when there was nothing to train on (409, or the job skipped).
2. Patch the pod template of RESTART_DEPLOYMENT (in this pod's namespace) with a new
   `kubectl.kubernetes.io/restartedAt`, as `kubectl rollout restart` does, through the Kubernetes
   API with this pod's service account: the replicas are replaced one at a time and each loads
   the store's new current version when it starts. Unset or empty RESTART_DEPLOYMENT: no restart.

Standard library only: it runs in the Overdrive image.
"""

from __future__ import annotations

import datetime
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request

SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def call(method: str, url: str, *, token: str, body: object = None, content_type: str = "application/json",
         context: ssl.SSLContext | None = None, timeout: float = 30.0) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Authorization": f"Bearer {token}"})
    if data is not None:
        request.add_header("Content-Type", content_type)
    with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
        return json.loads(response.read() or b"{}")


def train(base: str, key: str, *, poll_s: float = 10.0, deadline_s: float = 4 * 3600.0) -> dict:
    """Start a retrain on the trainer and wait for it; the collaborative job's final state
    (`{"state": "skipped"}` when the service answers 409: nothing to train on yet)."""
    try:
        started = call("POST", f"{base}/models/train", token=key, body={})
    except urllib.error.HTTPError as exc:
        if exc.code != 409:
            raise
        return {"state": "skipped", "detail": exc.read().decode(errors="replace")}
    print(f"retrain asked: {json.dumps(started)}", flush=True)
    until = time.monotonic() + deadline_s
    while True:
        job = call("GET", f"{base}/models/status", token=key)["collaborative"]["last_training"]
        if job.get("state") != "running":
            return job
        if time.monotonic() > until:
            raise TimeoutError(f"the retrain still runs after {deadline_s:.0f} s")
        time.sleep(poll_s)


def restart(deployment: str, *, api: str = "https://kubernetes.default.svc", account: str = SERVICE_ACCOUNT) -> None:
    """What `kubectl rollout restart deployment/<deployment>` does, in this pod's namespace."""
    with open(f"{account}/namespace") as fh:
        namespace = fh.read().strip()
    with open(f"{account}/token") as fh:
        token = fh.read().strip()
    context = ssl.create_default_context(cafile=f"{account}/ca.crt")
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}}
    call("PATCH", f"{api}/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}", token=token, body=patch,
         content_type="application/strategic-merge-patch+json", context=context)
    print(f"deployment {namespace}/{deployment} restarting (restartedAt {now})", flush=True)


def main() -> int:
    base = os.environ.get("TRAINER_URL", "http://overdrive-trainer:8000").rstrip("/")
    key = os.environ["TRAINER_KEY"].strip()
    try:
        job = train(base, key, poll_s=float(os.environ.get("TRAIN_POLL_SECONDS", "10")))
    except (urllib.error.URLError, TimeoutError, KeyError) as exc:
        print(f"retrain: {exc}", file=sys.stderr)
        return 1
    print(f"retrain finished: {json.dumps(job)}", flush=True)
    if job.get("state") == "skipped":  # nothing to train on: nothing new to roll out either
        return 0
    if job.get("state") != "done":
        return 1
    if deployment := os.environ.get("RESTART_DEPLOYMENT", ""):
        try:
            restart(deployment)
        except (OSError, urllib.error.URLError) as exc:
            print(f"restart of {deployment}: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
