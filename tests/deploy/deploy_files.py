"""What the deploy tests read: the Dockerfile, deploy/compose.yaml, deploy/k8s/*.yaml, parsed."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
K8S = DEPLOY / "k8s"
KUSTOMIZATION = K8S / "kustomization.yaml"


def k8s_files() -> list[Path]:
    """The manifests (every YAML file of deploy/k8s but kustomize's own)."""
    return sorted(p for p in K8S.glob("*.yaml") if p != KUSTOMIZATION)


def k8s_resources() -> list[dict]:
    return [doc for path in k8s_files() for doc in yaml.safe_load_all(path.read_text()) if doc]


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def pod_spec(resource: dict) -> dict | None:
    """The pod spec of a workload (Deployment, StatefulSet, DaemonSet, Job, CronJob), else None."""
    spec = resource.get("spec", {})
    if resource["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec.get("template", {}).get("spec")


@dataclass
class Container:
    """One container of any of the three files, as far as the checks need it."""

    where: str                    # for messages: "deploy/k8s/api-deployment.yaml: api"
    image: str
    command: list[str] | None     # None: the image's default (CMD)
    env: dict[str, str] = field(default_factory=dict)
    env_from_config_maps: list[str] = field(default_factory=list)


def k8s_containers() -> list[Container]:
    out = []
    for path in k8s_files():
        for doc in yaml.safe_load_all(path.read_text()):
            spec = pod_spec(doc) if doc else None
            for c in (spec or {}).get("containers", []) + (spec or {}).get("initContainers", []):
                out.append(Container(
                    where=f"{path.relative_to(ROOT)}: {c['name']}", image=c["image"],
                    command=(c.get("command") or []) + (c.get("args") or []) or None,
                    env={e["name"]: e.get("value", "<from a reference>") for e in c.get("env", [])},
                    env_from_config_maps=[s["configMapRef"]["name"] for s in c.get("envFrom", []) if "configMapRef" in s],
                ))
    return out


def compose_containers() -> list[Container]:
    out = []
    for name, service in compose()["services"].items():
        env = service.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) for e in env)
        out.append(Container(where=f"deploy/compose.yaml: {name}", image=service.get("image", ""),
                             command=service.get("command"), env={k: str(v) for k, v in env.items()}))
    return out


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(
        line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")))
    out = []
    for line in text.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """Stage name (or base image) -> its instructions, FROM first."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current = None
    for word, rest in dockerfile_instructions():
        if word == "FROM":
            parts = rest.split()
            current = parts[parts.index("AS") + 1] if "AS" in parts else parts[0]
            stages[current] = [(word, rest)]
        elif current is not None:
            stages[current].append((word, rest))
    return stages


def stage_chain(target: str) -> list[str]:
    """`target` and the stages it is built FROM, the target first."""
    stages = dockerfile_stages()
    chain = []
    while target in stages:
        chain.append(target)
        target = stages[target][0][1].split()[0]
    return chain


def dockerfile_env(target: str) -> dict[str, str]:
    """Every variable an ENV instruction sets (KEY=value form) in the image of `target`."""
    stages = dockerfile_stages()
    env = {}
    for name in reversed(stage_chain(target)):
        for word, rest in stages[name]:
            if word == "ENV":
                env.update(re.findall(r"(\w+)=(\S*)", rest))
    return env


def is_overdrive_image(image: str) -> bool:
    return image.split("/")[-1].split(":")[0] == "overdrive"
