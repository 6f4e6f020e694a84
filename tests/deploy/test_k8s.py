"""Static and live checks of the Kubernetes manifests (deploy/k8s): no cluster runs here.

Every object is validated against the Kubernetes API schemas (kubernetes-validate, strict: an unknown or
misspelt field fails), the KEDA ScaledObject against the fields of KEDA's ScaledObject CRD it uses, and
the manifests must agree with the settings and the queue the code really uses (the token list the
scaler counts is checked against a real Celery send into the test's Redis).
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import redis
import yaml

from shared.queue import make_celery, worker_queues
from shared.settings import Settings

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
KUBERNETES_VERSION = "1.32.0"
"""Oldest Kubernetes release the manifests target (apps/v1, autoscaling/v2 behaviour fields of KEDA)."""
KUBECTL = shutil.which("kubectl")

# The ScaledObject fields this project uses, with their types and required keys as KEDA's CRD
# (keda.sh/v1alpha1, config/crd/bases/keda.sh_scaledobjects.yaml in kedacore/keda) declares them; unknown
# keys fail, so a misspelt field (say `minReplicas`) is caught as the API server would.
_INT = {"type": "integer"}
SCALED_OBJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        k: {"type": "string"} for k in ("apiVersion", "kind", "name", "envSourceContainerName")
                    },
                },
                "minReplicaCount": _INT,
                "maxReplicaCount": _INT,
                "idleReplicaCount": _INT,
                "pollingInterval": _INT,
                "cooldownPeriod": _INT,
                "initialCooldownPeriod": _INT,
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {"name": {"type": "string"}, "behavior": {"type": "object"}},
                        },
                    },
                },
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "useCachedMetrics": {"type": "boolean"},
                            # Every trigger metadata value is a string in the CRD (numbers quoted).
                            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                            "authenticationRef": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {"name": {"type": "string"}, "kind": {"type": "string"}},
                            },
                        },
                    },
                },
            },
        },
    },
}
REDIS_LIST_SCALER_KEYS = {
    "address", "addressFromEnv", "host", "hostFromEnv", "port", "portFromEnv", "listName", "listLength",
    "activationListLength", "databaseIndex", "enableTLS", "unsafeSsl", "usernameFromEnv", "passwordFromEnv",
}  # fmt: skip
"""Metadata keys of KEDA's Redis list scaler (`type: redis`)."""


def _load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def _merge(into: Any, patch: Any) -> Any:
    """Kustomize's strategic merge as far as these manifests use it: maps by key, lists of named items by
    name, anything else replaced."""
    if isinstance(into, dict) and isinstance(patch, dict):
        return {**into, **{k: _merge(into[k], v) if k in into else v for k, v in patch.items()}}
    if (
        isinstance(into, list)
        and isinstance(patch, list)
        and all(isinstance(i, dict) and "name" in i for i in into + patch)
    ):
        merged = {i["name"]: i for i in into}
        for item in patch:
            merged[item["name"]] = _merge(merged[item["name"]], item) if item["name"] in merged else item
        return list(merged.values())
    return patch


def _render_without_kubectl(directory: Path) -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        path = directory / name
        docs += _render_without_kubectl(path) if path.is_dir() else _load(path)
    for patch in (doc for entry in kustomization.get("patches", []) for doc in _load(directory / entry["path"])):
        target = find(docs, patch["kind"], patch["metadata"]["name"])
        docs[docs.index(target)] = _merge(target, patch)
    return docs


def rendered(directory: Path) -> list[dict[str, Any]]:
    """What `kubectl kustomize` makes of a directory; without kubectl, its files and patches merged here
    (no namespace, labels or image tags: the test that needs those skips)."""
    if KUBECTL:
        out = subprocess.run([KUBECTL, "kustomize", str(directory)], check=True, capture_output=True, text=True)
        return [doc for doc in yaml.safe_load_all(out.stdout) if doc]
    return _render_without_kubectl(directory)


BASE = rendered(K8S / "base")
GPU = rendered(K8S / "overlays" / "gpu")


def container(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return find(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]


def env_of(docs: list[dict[str, Any]], name: str) -> dict[str, str]:
    """The container's plain environment: the ConfigMap's values, then its own `env` entries."""
    values = dict(find(docs, "ConfigMap", "narrate-config")["data"])
    values.update({e["name"]: e["value"] for e in container(docs, name).get("env", []) if "value" in e})
    return values


def settings_of(docs: list[dict[str, Any]], name: str) -> Settings:
    fields = {k.removeprefix("NARRATE_").lower(): v for k, v in env_of(docs, name).items() if k.startswith("NARRATE_")}
    return Settings(**fields)


@pytest.mark.parametrize("overlay", ["base", "gpu"])
def test_every_kubernetes_object_is_valid_against_the_api_schemas(overlay: str) -> None:
    docs = BASE if overlay == "base" else GPU
    core = [d for d in docs if not d["apiVersion"].startswith("keda.sh/")]
    assert {d["kind"] for d in core} >= {"Namespace", "ConfigMap", "Deployment", "Service", "StatefulSet"}
    for doc in core:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_a_misspelt_field_fails_validation() -> None:
    """The validation above can fail: strict mode rejects a field Kubernetes does not know."""
    api = find(BASE, "Deployment", "api")
    broken = {**api, "spec": {**api["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed: the render sub-check cannot run")
def test_kustomize_renders_base_and_gpu_overlay() -> None:
    """(Only this sub-check needs kubectl; the others validate the resource files as written.)"""
    for docs in (BASE, GPU):
        assert all(d["metadata"].get("namespace") == "narrate" for d in docs if d["kind"] != "Namespace")
    assert container(GPU, "worker")["image"] == "narrate-worker:latest"
    assert container(BASE, "worker")["image"] == "narrate-worker-cpu:latest"


def test_scaled_object_matches_keda_crd_and_targets_the_gpu_workers() -> None:
    (scaled,) = [d for d in GPU if d["kind"] == "ScaledObject"]
    jsonschema.validate(scaled, SCALED_OBJECT_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):  # the schema does reject what KEDA would
        jsonschema.validate({**scaled, "spec": {**scaled["spec"], "minReplicas": 0}}, SCALED_OBJECT_SCHEMA)
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == "worker"
    assert find(GPU, "Deployment", spec["scaleTargetRef"]["name"])
    assert spec["minReplicaCount"] == 0  # batch-only clusters pay for no idle GPU
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "redis"
    assert set(trigger["metadata"]) <= REDIS_LIST_SCALER_KEYS
    settings = settings_of(GPU, "worker")
    assert trigger["metadata"]["listName"] == settings.queue_name
    assert int(trigger["metadata"]["listLength"]) == settings.worker_units
    host, port = trigger["metadata"]["address"].rsplit(":", 1)
    redis_service = find(GPU, "Service", "redis")
    assert host == f"{redis_service['metadata']['name']}.narrate.svc.cluster.local"
    assert int(port) == redis_service["spec"]["ports"][0]["port"]
    assert trigger["metadata"]["databaseIndex"] == settings.redis_url.rsplit("/", 1)[-1]


def test_the_list_the_scaler_counts_is_where_the_api_sends_work_tokens(redis_url: str, key_prefix: str) -> None:
    """A real send through the project's Celery configuration lands on the key KEDA reads with LLEN."""
    queue = f"{key_prefix}-k8s-{uuid.uuid4().hex[:6]}"
    settings = Settings(redis_url=redis_url, queue_name=queue)
    app = make_celery(settings, "k8s-test")
    client = redis.Redis.from_url(redis_url)
    try:
        app.send_task("narrate.work", queue=queue)
        app.send_task("narrate.work", queue=queue)
        assert client.llen(queue) == 2
    finally:
        client.delete(queue)
        app.close()


def test_gpu_workers_take_one_gpu_each_and_run_the_worker_command() -> None:
    worker = container(GPU, "worker")
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    settings = settings_of(GPU, "worker")
    assert settings.engine == "kanitts2"
    argv = worker["command"]
    assert argv[argv.index("-Q") + 1] == worker_queues(settings)
    assert argv[argv.index("--pool") + 1] == "threads"
    assert argv[argv.index("--concurrency") + 1] == "$(NARRATE_WORKER_UNITS)"
    assert "nvidia.com/gpu" not in str(container(BASE, "worker")["resources"])
    assert settings_of(BASE, "worker").engine == "piper"


@pytest.mark.parametrize("overlay", ["base", "gpu"])
def test_workers_drain_on_scale_down(overlay: str) -> None:
    """SIGTERM checkpoints and hands units back (worker/celery_app.py); the grace period covers that."""
    docs = BASE if overlay == "base" else GPU
    pod = find(docs, "Deployment", "worker")["spec"]["template"]["spec"]
    settings = settings_of(docs, "worker")
    assert pod["terminationGracePeriodSeconds"] >= 2 * settings.lease_seconds


def test_api_is_ready_on_readyz_and_requests_resources() -> None:
    from api import create_app

    api = container(BASE, "api")
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    routes = {rule.rule for rule in create_app(Settings(dev_mode=True)).url_map.iter_rules()}
    assert {"/readyz", "/healthz", "/metrics"} <= routes
    for name in ("api", "worker", "webhooks"):
        requests = container(BASE, name)["resources"]["requests"]
        assert requests["cpu"] and requests["memory"]


def test_prometheus_scrapes_every_pod_on_its_metrics_port() -> None:
    for name in ("api", "worker", "webhooks"):
        template = find(GPU, "Deployment", name)["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        ports = {p["containerPort"] for p in template["spec"]["containers"][0]["ports"]}
        assert int(annotations["prometheus.io/port"]) in ports
    assert int(
        find(GPU, "Deployment", "worker")["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"]
    ) == (settings_of(GPU, "worker").worker_metrics_port)


def test_redis_persists_its_append_only_file() -> None:
    redis_set = find(BASE, "StatefulSet", "redis")
    args = redis_set["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--appendfsync") + 1] == "everysec"
    data_dir = args[args.index("--dir") + 1]
    mounts = redis_set["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    claims = {c["metadata"]["name"] for c in redis_set["spec"]["volumeClaimTemplates"]}
    assert any(m["mountPath"] == data_dir and m["name"] in claims for m in mounts)
    assert urlsplit_host(settings_of(BASE, "api").redis_url) == find(BASE, "Service", "redis")["metadata"]["name"]


def urlsplit_host(url: str) -> str | None:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname
