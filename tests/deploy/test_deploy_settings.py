"""Every environment variable the Dockerfile, Compose and the manifests set is a real setting, and
every command they run exists: one of Overdrive's modules, with a `main` and a `__main__`, that
accepts the arguments it is given."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import json
import os
import shlex
import subprocess
import sys

import pytest

from overdrive.config import Settings
from tests.deploy.deploy_files import (
    ROOT, Container, compose_containers, dockerfile_env, dockerfile_instructions, is_overdrive_image, k8s_containers,
    k8s_resources, pod_spec,
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


# What the deploy files may run: `python -m MODULE [arguments]`.
MODULES = frozenset({"overdrive.app", "overdrive.worker", "overdrive.trainer"})


@functools.cache
def help_text(module: str) -> str:
    """`python -m MODULE --help`: the arguments it accepts (argparse exits 0 before doing anything)."""
    done = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, f"{module} --help: {done.stdout + done.stderr}"
    return done.stdout


def test_the_checks_see_everything() -> None:
    names = {c.where for c in overdrive_containers()}
    assert {"deploy/compose.yaml: api-1", "deploy/compose.yaml: api-2", "deploy/compose.yaml: worker",
            "deploy/compose.yaml: trainer"} <= names
    assert {"deploy/k8s/api-deployment.yaml: api", "deploy/k8s/worker-deployment.yaml: worker",
            "deploy/k8s/trainer-deployment.yaml: trainer", "deploy/k8s/train-cronjob.yaml: train"} <= names
    assert "OVERDRIVE_HOST" in SETTINGS and "REDIS_URL" in SETTINGS and "OVERDRIVE_TRAINER" in SETTINGS


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
    unknown = set(env) - SETTINGS
    assert not unknown, f"{container.where}: not settings: {sorted(unknown)}"
    assert command[:2] == ["python", "-m"] and command[2] in MODULES, f"{container.where}: {command}"
    module = command[2]
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, module
    source = open(spec.origin).read()
    assert 'if __name__ == "__main__"' in source, f"{module} has no __main__"
    assert callable(getattr(importlib.import_module(module), "main", None)), f"{module} has no main()"
    for argument in command[3:]:
        flag = argument.split("=", 1)[0]
        assert flag.startswith("--") and flag in help_text(module), f"{container.where}: {module} takes no {flag}"


def test_settings_files_the_env_names_are_mounted() -> None:
    """A file a setting names must exist at start-up: the keys file is mounted where it points."""
    keys_path = config_maps()["overdrive-config"]["OVERDRIVE_API_KEYS_FILE"]
    for resource in k8s_resources():
        spec = pod_spec(resource)
        for container in (spec or {}).get("containers", []):
            if any(s.get("configMapRef", {}).get("name") == "overdrive-config" for s in container.get("envFrom", [])):
                mounts = [m["mountPath"] for m in container.get("volumeMounts", [])]
                assert any(keys_path.startswith(m + "/") for m in mounts), resource["metadata"]["name"]
