"""deploy/compose.yaml: valid for Compose (`docker-compose config`), two API replicas behind the
load balancer, the worker, the one trainer, Redis, Kafka, Prometheus scraping every replica,
Grafana, a data volume per replica and one model volume the trainer and the replicas share, the
auth secrets, and the files it mounts present; make-secrets.sh makes working keys."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.deploy.deploy_files import COMPOSE, DEPLOY, compose, dockerfile_env, is_overdrive_image
from tests.real_servers import unavailable


def compose_cli() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return None


def test_compose_config_validates() -> None:
    cli = compose_cli()
    if cli is None:
        unavailable("neither docker-compose nor `docker compose` is installed (apt-get install docker-compose)")
    done = subprocess.run([*cli, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, timeout=60,
                          cwd=DEPLOY)
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_config_catches_a_mistake(tmp_path: Path) -> None:
    cli = compose_cli()
    if cli is None:
        unavailable("neither docker-compose nor `docker compose` is installed (apt-get install docker-compose)")
    broken = compose()
    broken["services"]["redis"]["healthcheck"]["retries"] = "many"
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(broken))
    done = subprocess.run([*cli, "-f", str(path), "config", "-q"], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0


def api_services() -> dict[str, dict]:
    return {name: s for name, s in compose()["services"].items()
            if is_overdrive_image(s.get("image", "")) and "command" not in s}


def test_services() -> None:
    services = compose()["services"]
    assert {"lb", "worker", "trainer", "redis", "kafka", "prometheus", "grafana"} <= set(services)
    assert len(api_services()) == 2
    assert services["worker"]["command"] == ["python", "-m", "overdrive.worker"]
    assert services["worker"]["healthcheck"] == {"disable": True}, "the worker serves no HTTP"
    assert services["trainer"]["command"] == ["python", "-m", "overdrive.trainer"]
    assert services["trainer"]["healthcheck"] == {"disable": True}, "the trainer serves no HTTP"
    assert services["trainer"].get("deploy", {}).get("replicas", 1) == 1, "one trainer"
    for name, service in {**api_services(), "trainer": services["trainer"]}.items():
        assert service["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092", name
        assert service["environment"]["REDIS_URL"].startswith("redis://redis:"), name


def test_load_balancer_and_prometheus_reach_every_replica() -> None:
    nginx = (DEPLOY / "compose" / "nginx.conf").read_text()
    upstream = re.search(r"upstream overdrive \{(.*?)\}", nginx, re.S).group(1)
    assert sorted(re.findall(r"server (\S+):8000", upstream)) == sorted(api_services())
    prometheus = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    assert sorted(job["static_configs"][0]["targets"]) == sorted(f"{n}:8000" for n in api_services())
    assert job["authorization"]["credentials_file"] == "/run/secrets/prometheus-api-key"
    assert "prometheus-api-key" in compose()["services"]["prometheus"]["secrets"]


def mounts(service: dict) -> dict[str, str]:
    """Mount point -> source (a volume's name or a path) of a service's `volumes`."""
    return dict(reversed(v.split(":")[:2]) for v in service.get("volumes", []))


def test_the_replicas_follow_the_trainer_on_one_model_volume() -> None:
    trainer = compose()["services"]["trainer"]
    model_dir = trainer["environment"].get("MODEL_CACHE_DIR", dockerfile_env("runtime")["MODEL_CACHE_DIR"])
    shared = mounts(trainer)[model_dir]
    assert shared in compose()["volumes"], "a named volume, not a folder of the host"
    assert "OVERDRIVE_TRAINER" not in trainer["environment"]
    for name, service in api_services().items():
        assert service["environment"].get("MODEL_CACHE_DIR", model_dir) == model_dir, name
        assert mounts(service)[model_dir] == shared, f"{name} does not mount the trainer's model volume"
        assert mounts(service)["/var/lib/overdrive/data"] != shared, f"{name}: a data folder is locked by one process"
        assert service["environment"]["OVERDRIVE_TRAINER"] == "external", f"{name} would train on its own"


def test_volumes_secrets_and_mounted_files() -> None:
    spec = compose()
    data_volumes = []
    for name, service in api_services().items():
        assert "/var/lib/overdrive/data" in mounts(service) and "/var/lib/overdrive/models" in mounts(service), name
        data_volumes.append(mounts(service)["/var/lib/overdrive/data"])
        assert service["environment"]["OVERDRIVE_API_KEYS_FILE"] == "/run/secrets/api-keys"
        assert "api-keys" in service["secrets"]
    assert len(set(data_volumes)) == len(data_volumes), "a data folder is locked by one process"
    for service in spec["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), source
            else:
                assert source in spec["volumes"], source
    made = (DEPLOY / "compose" / "make-secrets.sh").read_text()
    for secret in spec["secrets"].values():
        assert secret["file"].startswith("./secrets/")
        assert Path(secret["file"]).name in made, secret["file"]


def test_make_secrets_makes_keys_the_service_accepts(tmp_path: Path) -> None:
    script = tmp_path / "deploy" / "compose" / "make-secrets.sh"
    script.parent.mkdir(parents=True)
    shutil.copy(DEPLOY / "compose" / "make-secrets.sh", script)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    secrets = tmp_path / "deploy" / "secrets"
    for secret in compose()["secrets"].values():
        assert (secrets / Path(secret["file"]).name).stat().st_size > 0, secret["file"]

    from overdrive.security.keys import key_digest, read_key_file

    keys = read_key_file(secrets / "api-keys.json")
    by_digest = {entry.sha256: entry for entry in keys.values()}
    assert by_digest[key_digest((secrets / "prometheus-api-key").read_text())].scopes == {"metrics:read"}
    assert by_digest[key_digest((secrets / "admin-api-key").read_text())].scopes == {"admin"}
    again = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert again.returncode == 0 and read_key_file(secrets / "api-keys.json") == keys, "a second run keeps the keys"
