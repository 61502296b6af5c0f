"""deploy/k8s: valid against the Kubernetes schemas (offline, kubernetes-validate), and what the
deployment promises: probes, resources, autoscaling, disruption budget, workers <= partitions, one
trainer on the shared model store that the API replicas follow, the nightly retrain on the same store."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate  # requirements-dev.txt
import pytest
import yaml

from tests.deploy.deploy_files import K8S, KUSTOMIZATION, dockerfile_env, k8s_files, k8s_resources, pod_spec

# The newest schemas the package ships, and an older release still widely run.
VERSIONS = ("1.37.0", "1.30.0")
MODEL_CACHE_DIR = dockerfile_env("runtime")["MODEL_CACHE_DIR"]  # the image's, unless a pod sets its own


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", k8s_files(), ids=lambda p: p.name)
def test_manifest_is_valid_kubernetes(path: Path, version: str) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        if doc:
            # strict: a misspelt or misplaced field fails instead of being ignored
            kubernetes_validate.validate(doc, version, strict=True)


def test_a_broken_manifest_is_caught() -> None:
    deployment = _one("Deployment", "overdrive-api")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}  # misspelt
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[0], strict=True)


def test_kustomization_names_every_manifest() -> None:
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in k8s_files())
    for generator in kustomization.get("configMapGenerator", []):
        for name in generator["files"]:
            assert (K8S / name).is_file(), name
    names = {(r["kind"], r["metadata"]["name"]) for r in k8s_resources()}
    assert len(names) == len(k8s_resources()), "a kind/name pair is defined twice"


def _one(kind: str, name: str) -> dict:
    found = [r for r in k8s_resources() if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def _env(container: dict) -> dict[str, str]:
    config = _one("ConfigMap", "overdrive-config")["data"]
    own = {e["name"]: e.get("value") for e in container.get("env", [])}
    return {**config, **own}


def test_api_probes_resources_and_security() -> None:
    api = _one("Deployment", "overdrive-api")
    spec = pod_spec(api)
    (container,) = spec["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["ports"][0]["containerPort"] == 8000
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert api["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    # the API replicas do not train: the trainer does, and they follow its versions
    assert _env(container)["OVERDRIVE_TRAINER"] == "external"


def test_service_hpa_and_pdb_point_at_the_api() -> None:
    api = _one("Deployment", "overdrive-api")
    labels = api["spec"]["template"]["metadata"]["labels"]
    service = _one("Service", "overdrive-api")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] in ("http", 8000)
    hpa = _one("HorizontalPodAutoscaler", "overdrive-api")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "overdrive-api"}
    assert hpa["spec"]["minReplicas"] >= 2
    pdb = _one("PodDisruptionBudget", "overdrive-api")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"], "a drain could never proceed"
    trainer_labels = _one("Deployment", "overdrive-trainer")["spec"]["template"]["metadata"]["labels"]
    assert not service["spec"]["selector"].items() <= trainer_labels.items(), "the trainer must not take traffic"


def test_workers_are_no_more_than_partitions() -> None:
    worker = _one("Deployment", "overdrive-worker")
    (container,) = pod_spec(worker)["containers"]
    assert container["command"] == ["python", "-m", "overdrive.worker"]
    partitions = int(_env(container)["OVERDRIVE_KAFKA_PARTITIONS"])
    assert 1 <= worker["spec"]["replicas"] <= partitions
    scaled = [h for h in k8s_resources() if h["kind"] == "HorizontalPodAutoscaler"
              and h["spec"]["scaleTargetRef"]["name"] == "overdrive-worker"]
    assert all(h["spec"]["maxReplicas"] <= partitions for h in scaled)


def _models_claim(spec: dict) -> str:
    """The claim mounted at MODEL_CACHE_DIR in a pod spec with one container."""
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"] if "persistentVolumeClaim" in v}
    (container,) = spec["containers"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    mount = mounts[_env(container).get("MODEL_CACHE_DIR", MODEL_CACHE_DIR)]
    assert not mount.get("readOnly"), "the trainer writes the store; a replica records training requests in it"
    return claims[mount["name"]]


def test_one_trainer_writes_the_shared_model_store() -> None:
    trainer = _one("Deployment", "overdrive-trainer")
    assert trainer["spec"]["replicas"] == 1 and trainer["spec"]["strategy"]["type"] == "Recreate"
    (container,) = pod_spec(trainer)["containers"]
    assert container["command"] == ["python", "-m", "overdrive.trainer"]
    assert not {"ports", "startupProbe", "readinessProbe", "livenessProbe"} & set(container), "it serves no HTTP"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    pvc = _one("PersistentVolumeClaim", "overdrive-models")
    assert "ReadWriteMany" in pvc["spec"]["accessModes"]
    for name in ("overdrive-api", "overdrive-trainer"):
        assert _models_claim(pod_spec(_one("Deployment", name))) == "overdrive-models", name
    trainer_labels = trainer["spec"]["template"]["metadata"]["labels"]
    for service in (r for r in k8s_resources() if r["kind"] == "Service"):
        assert not service["spec"]["selector"].items() <= trainer_labels.items(), service["metadata"]["name"]


def test_the_cronjob_retrains_once_on_the_shared_store_as_the_trainer() -> None:
    cron = _one("CronJob", "overdrive-train")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    spec = pod_spec(cron)
    (container,) = spec["containers"]
    assert container["command"] == ["python", "-m", "overdrive.trainer", "--once"]
    assert spec["restartPolicy"] == "Never"
    assert _models_claim(spec) == "overdrive-models"
    (trainer,) = pod_spec(_one("Deployment", "overdrive-trainer"))["containers"]
    assert container["image"] == trainer["image"]
    assert container.get("envFrom") == trainer.get("envFrom") and container.get("env") == trainer.get("env")
    assert container["resources"] == trainer["resources"]
    # nothing left of the restart-after-retrain layout: the replicas follow the store themselves
    assert "serviceAccountName" not in spec
    assert not [r for r in k8s_resources() if r["kind"] in ("Role", "RoleBinding", "ServiceAccount")]


def test_secret_placeholders_let_nobody_in() -> None:
    secret = _one("Secret", "overdrive-keys")
    assert secret["stringData"] == {"api-keys.json": '{"keys": []}'}
    assert yaml.safe_load(secret["stringData"]["api-keys.json"]) == {"keys": []}
