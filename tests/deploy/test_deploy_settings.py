"""Every environment variable the Dockerfile, Compose and the manifests set is a real setting, and
every command they run exists: a module with a `__main__`, or the script a ConfigMap ships."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex

import pytest
import yaml

from overdrive.config import Settings
from tests.deploy.deploy_files import (
    K8S, KUSTOMIZATION, Container, compose_containers, dockerfile_env, dockerfile_instructions,
    is_overdrive_image, k8s_containers, k8s_resources, pod_spec,
)

SETTINGS = frozenset(name for field in Settings.model_fields.values() for name in field.validation_alias.choices)
# Not Overdrive's: the interpreter's and the shell's.
PLATFORM = frozenset({"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"})


def overdrive_containers() -> list[Container]:
    return [c for c in k8s_containers() + compose_containers() if is_overdrive_image(c.image)]


def config_maps() -> dict[str, dict[str, str]]:
    return {r["metadata"]["name"]: r.get("data", {}) for r in k8s_resources() if r["kind"] == "ConfigMap"}


def default_command() -> list[str]:
    (cmd,) = [json.loads(rest) for word, rest in dockerfile_instructions() if word == "CMD"][-1:]
    return cmd


def runs_service(command: list[str]) -> bool:
    return command[:3] in (["python", "-m", "overdrive.app"], ["python", "-m", "overdrive.worker"])


def test_the_checks_see_everything() -> None:
    names = {c.where for c in overdrive_containers()}
    assert {"deploy/compose.yaml: api-1", "deploy/compose.yaml: api-2", "deploy/compose.yaml: worker"} <= names
    assert {"deploy/k8s/api-deployment.yaml: api", "deploy/k8s/worker-deployment.yaml: worker",
            "deploy/k8s/trainer-deployment.yaml: trainer", "deploy/k8s/train-cronjob.yaml: train"} <= names
    assert "OVERDRIVE_HOST" in SETTINGS and "REDIS_URL" in SETTINGS


@pytest.mark.parametrize("target", ["runtime", "full"])
def test_dockerfile_env_are_settings(target: str) -> None:
    env = set(dockerfile_env(target)) - PLATFORM
    assert env and not env - SETTINGS, f"not settings: {sorted(env - SETTINGS)}"


def test_config_map_keys_are_settings() -> None:
    for name, data in config_maps().items():
        if name == "overdrive-config":
            assert not set(data) - SETTINGS, f"{name}: not settings: {sorted(set(data) - SETTINGS)}"


@pytest.mark.parametrize("container", overdrive_containers(), ids=lambda c: c.where)
def test_container_env_and_command(container: Container) -> None:
    command = container.command or default_command()
    if isinstance(command, str):
        command = shlex.split(command)
    env = dict(container.env)
    for name in container.env_from_config_maps:
        env.update(config_maps()[name])
    if runs_service(command):
        unknown = set(env) - SETTINGS
        assert not unknown, f"{container.where}: not settings: {sorted(unknown)}"
        module = command[2]
        assert importlib.util.find_spec(module) is not None, module
        source = importlib.util.find_spec(module).origin
        assert 'if __name__ == "__main__"' in open(source).read(), f"{module} has no __main__"
    else:
        # The CronJob's step: a script from a ConfigMap that kustomize makes from deploy/k8s.
        assert command[0] == "python" and command[1].endswith(".py"), f"{container.where}: {command}"
        script = K8S / command[1].rsplit("/", 1)[1]
        generated = [f for g in yaml.safe_load(KUSTOMIZATION.read_text()).get("configMapGenerator", []) for f in g["files"]]
        assert script.name in generated, f"{container.where}: no ConfigMap ships {script.name}"
        read = set(re.findall(r"os\.environ(?:\.get)?[\[(]\"(\w+)\"", script.read_text()))
        assert not set(env) - read, f"{container.where}: {script.name} reads none of {sorted(set(env) - read)}"


def test_the_cronjob_mounts_its_script_where_it_runs_it() -> None:
    (cron,) = [r for r in k8s_resources() if r["kind"] == "CronJob"]
    spec = pod_spec(cron)
    (container,) = spec["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    (script_mount,) = [name for name, path in mounts.items() if container["command"][1].startswith(path + "/")]
    assert volumes[script_mount]["configMap"]["name"] == "overdrive-train-script"


def test_settings_files_the_env_names_are_mounted() -> None:
    """A file a setting names must exist at start-up: the keys file is mounted where it points."""
    keys_path = config_maps()["overdrive-config"]["OVERDRIVE_API_KEYS_FILE"]
    for resource in k8s_resources():
        spec = pod_spec(resource)
        for container in (spec or {}).get("containers", []):
            if any(s.get("configMapRef", {}).get("name") == "overdrive-config" for s in container.get("envFrom", [])):
                mounts = [m["mountPath"] for m in container.get("volumeMounts", [])]
                assert any(keys_path.startswith(m + "/") for m in mounts), resource["metadata"]["name"]
