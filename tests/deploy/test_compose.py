"""Static checks of docker-compose.yml, the Dockerfiles and prometheus.yml (no Docker engine here).

They catch what would otherwise show only on a GPU box: a misspelt setting, the API and the workers
disagreeing about Redis or storage, Prometheus scraping the wrong port, torch sneaking into the API.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from shared.queue import worker_queues
from shared.settings import Settings
from shared.storage import S3Storage, storage_from_settings
from shared.storage_keys import (
    EXPIRING_ROOTS,
    checkpoint_key,
    embedding_key,
    preview_key,
    reference_key,
    result_prefix,
)

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
PROMETHEUS = yaml.safe_load((REPO / "deploy" / "prometheus.yml").read_text())
HEAVY = ("torch", "transformers", "nemo", "safetensors")


def interpolate(value: Any) -> str:
    """What compose makes of `${VAR:-default}` when VAR is unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))


def environment(service: str) -> dict[str, str]:
    return {k: interpolate(v) for k, v in SERVICES[service].get("environment", {}).items()}


def settings_of(service: str) -> Settings:
    fields = {
        k.removeprefix("NARRATE_").lower(): v for k, v in environment(service).items() if k.startswith("NARRATE_")
    }
    return Settings(**fields)


def command(service: str) -> list[str]:
    value = SERVICES[service]["command"]
    return value if isinstance(value, list) else shlex.split(value)


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def published_ports(service: str) -> dict[int, int]:
    """container port -> host port."""
    pairs = (str(p).rsplit(":", 1) for p in SERVICES[service].get("ports", []))
    return {int(container): int(host.rsplit(":", 1)[-1]) for host, container in pairs}


def dockerfile(service: str) -> Path:
    build = SERVICES[service]["build"]
    return REPO / build.get("context", ".") / build["dockerfile"]


GPU_WORKERS = ["worker", *(f"worker-gpu{k}" for k in range(1, 8))]
"""One worker service per GPU of an eight-GPU box (worker-gpuK behind the profile gpuK)."""


def test_services() -> None:
    assert set(SERVICES) == {
        "redis", "minio", "minio-init", "api", *GPU_WORKERS, "voices", "webhooks", "prometheus", "grafana",
    }  # fmt: skip


def gpu_ids(service: str) -> list[str]:
    [device] = SERVICES[service]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert "count" not in device  # `count: 1` hands every replica the same first card
    return device["device_ids"]


@pytest.mark.parametrize("service", ["api", "worker", "voices", "webhooks"])
def test_every_narrate_variable_is_a_setting_with_a_valid_value(service: str) -> None:
    names = [k for k in environment(service) if k.startswith("NARRATE_")]
    unknown = [k for k in names if k.removeprefix("NARRATE_").lower() not in Settings.model_fields]
    assert unknown == []
    settings_of(service)  # validates every value as the service would at start


def test_api_and_worker_agree_on_redis_queue_and_storage() -> None:
    api, worker = settings_of("api"), settings_of("worker")
    for name in (
        "redis_url",
        "queue_name",
        "voice_queue_name",
        "webhook_queue_name",
        "key_prefix",
        "storage_url",
        "s3_endpoint_url",
        "s3_region",
        "dev_mode",
    ):
        assert getattr(api, name) == getattr(worker, name), name
    aws = {k: v for k, v in environment("api").items() if k.startswith("AWS_")}
    assert set(aws) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"}
    assert all(environment("worker")[k] == v for k, v in aws.items())


def test_redis_persists_to_a_volume() -> None:
    redis = command("redis")
    assert option(redis, "--appendonly") == "yes"
    assert urlsplit(settings_of("api").redis_url).hostname == "redis"
    assert any(str(v).endswith(":/data") and not str(v).startswith(".") for v in SERVICES["redis"]["volumes"])


def test_storage_is_the_bucket_minio_init_creates() -> None:
    settings = settings_of("api")
    url = urlsplit(settings.storage_url)
    assert url.scheme == "s3"
    endpoint = urlsplit(settings.s3_endpoint_url)
    assert endpoint.hostname == "minio"
    assert endpoint.port in published_ports("minio")  # the S3 port minio serves
    script = "\n".join(SERVICES["minio-init"]["entrypoint"])
    assert f"mc mb --ignore-existing local/{url.netloc}" in script
    assert "http://minio:9000" in script
    assert environment("api")["AWS_ACCESS_KEY_ID"] == environment("minio-init")["MINIO_ROOT_USER"]
    assert environment("api")["AWS_SECRET_ACCESS_KEY"] == environment("minio-init")["MINIO_ROOT_PASSWORD"]
    assert environment("minio")["MINIO_ROOT_PASSWORD"] == environment("minio-init")["MINIO_ROOT_PASSWORD"]
    for service in ("api", "worker"):
        assert SERVICES[service]["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
        assert SERVICES[service]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_minio_expires_results_and_checkpoints_after_the_retention_and_never_voices() -> None:
    storage = storage_from_settings(settings_of("api"))
    assert isinstance(storage, S3Storage)
    script = "\n".join(SERVICES["minio-init"]["entrypoint"])
    adds = [line.strip() for line in script.splitlines() if line.strip().startswith("mc ilm rule add")]
    rules = [re.fullmatch(r"mc ilm rule add --prefix (\S+) --expire-days (\d+) local/(\S+)", line) for line in adds]
    assert all(rules), adds  # every rule is scoped to a prefix: none covers the whole bucket
    found = {(m.group(3), m.group(1)): int(m.group(2)) for m in rules if m}
    assert set(found) == {(storage.bucket, storage.prefix + root) for root in EXPIRING_ROOTS}
    assert {days * 86400 for days in found.values()} == {Settings.model_fields["job_retention_seconds"].default}
    # The keys the service writes: results and checkpoints fall under a rule, a voice's objects under none.
    rule_prefixes = [prefix for _, prefix in found]
    for key in (result_prefix("t", "job_1") + "job_1.mp3", checkpoint_key("job_1", "c0", 1)):
        assert any(storage.full_key(key).startswith(p) for p in rule_prefixes), key
    for key in (embedding_key("t", "voice_1"), reference_key("t", "voice_1", 0), preview_key("t", "voice_1")):
        assert not any(storage.full_key(key).startswith(p) for p in rule_prefixes), key
    # Rules of earlier versions (one bucket-wide expiry) are removed before these are added.
    assert script.index("mc ilm rule rm --all --force local/narrate") < script.index(adds[0])


def test_api_runs_gunicorn_with_multiprocess_metrics() -> None:
    argv = command("api")
    assert argv[0] == "gunicorn"
    assert argv[-1] == "api.wsgi:app"
    assert (REPO / option(argv, "-c")).is_file()
    port = int(option(argv, "--bind").rsplit(":", 1)[1])
    assert port == 8080
    assert published_ports("api") == {8080: 8080}
    metrics_dir = environment("api")["PROMETHEUS_MULTIPROC_DIR"]
    assert any(t.split(":")[0] == metrics_dir for t in SERVICES["api"]["tmpfs"])


def test_worker_consumes_the_queue_on_a_reserved_gpu_with_a_thread_per_unit() -> None:
    argv = command("worker")
    assert argv[:4] == ["celery", "-A", "worker.celery_app:app", "worker"]
    assert option(argv, "-Q") == worker_queues(settings_of("worker"))
    assert option(argv, "--pool") == "threads"
    # as many threads as units the process runs at once, from the same variable its settings read
    assert interpolate(option(argv, "--concurrency")) == str(settings_of("worker").worker_units)
    assert SERVICES["worker"]["environment"]["NARRATE_WORKER_UNITS"] == option(argv, "--concurrency")
    assert settings_of("worker").engine == "kanitts2"
    assert gpu_ids("worker") == ["0"]
    cache = settings_of("worker").hf_cache_dir
    mounts = [str(v).split(":")[1] for v in SERVICES["worker"]["volumes"]]
    assert any(cache.startswith(m) for m in mounts)
    assert str(settings_of("worker").worker_metrics_port) in [str(p) for p in SERVICES["worker"]["expose"]]


def test_prometheus_scrapes_the_api_and_every_worker() -> None:
    mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in SERVICES["prometheus"]["volumes"]}
    assert (REPO / mounts["/etc/prometheus/prometheus.yml"]).resolve() == REPO / "deploy" / "prometheus.yml"
    jobs = {job["job_name"]: job for job in PROMETHEUS["scrape_configs"]}
    api_port = int(option(command("api"), "--bind").rsplit(":", 1)[1])
    assert jobs["narrate-api"]["static_configs"][0]["targets"] == [f"api:{api_port}"]
    assert jobs["narrate-api"]["metrics_path"] == "/metrics"
    [dns] = jobs["narrate-worker"]["dns_sd_configs"]
    assert dns["names"] == [*GPU_WORKERS, "voices", "webhooks"]
    assert dns["port"] == settings_of("worker").worker_metrics_port


def test_one_worker_per_gpu_each_pinned_to_its_own_card() -> None:
    assert [gpu_ids(service) for service in GPU_WORKERS] == [[str(k)] for k in range(8)]
    assert "profiles" not in SERVICES["worker"]  # GPU 0's worker always runs
    for k, service in enumerate(GPU_WORKERS[1:], start=1):
        assert SERVICES[service]["profiles"] == [f"gpu{k}"]
        assert command(service) == command("worker")
        assert settings_of(service) == settings_of("worker")
        # inside the container the one card it reserved is device 0
        assert environment(service)["CUDA_VISIBLE_DEVICES"] == "0"
        assert SERVICES[service]["depends_on"] == SERVICES["worker"]["depends_on"]


def test_a_voices_worker_clones_on_its_own_queue_beside_the_gpu_workers() -> None:
    argv = command("voices")
    assert argv[:4] == ["celery", "-A", "worker.celery_app:app", "worker"]
    assert option(argv, "-Q") == settings_of("voices").voice_queue_name
    assert settings_of("voices").voice_queue_name in option(command("worker"), "-Q").split(",")
    assert settings_of("voices") == settings_of("worker")
    assert SERVICES["voices"]["deploy"] == SERVICES["worker"]["deploy"]  # the same GPU reservation


def test_a_webhooks_worker_delivers_from_its_own_queue_without_a_gpu() -> None:
    argv = command("webhooks")
    assert argv[:4] == ["celery", "-A", "worker.webhook_app:app", "worker"]
    settings = settings_of("webhooks")
    assert option(argv, "-Q") == settings.webhook_queue_name == settings_of("api").webhook_queue_name
    assert option(argv, "--pool") == "threads"
    # The GPU workers never take deliveries: a retry counting down would wait behind a whole book.
    for service in ("worker", "voices"):
        assert settings.webhook_queue_name not in option(command(service), "-Q").split(",")
    assert "deploy" not in SERVICES["webhooks"]  # no GPU reservation
    for name in ("redis_url", "key_prefix", "storage_url", "s3_endpoint_url"):
        assert getattr(settings, name) == getattr(settings_of("api"), name), name
    assert SERVICES["webhooks"]["build"] == SERVICES["worker"]["build"]
    assert str(settings.worker_metrics_port) in [str(p) for p in SERVICES["webhooks"]["expose"]]


def copied_paths(path: Path) -> list[str]:
    sources = []
    for line in path.read_text().splitlines():
        if line.startswith("COPY "):
            sources += line.split()[1:-1]
    return sources


@pytest.mark.parametrize("service", ["api", "worker"])
def test_images_copy_only_what_exists_and_is_sent(service: str) -> None:
    path = dockerfile(service)
    ignore = Path(f"{path}.dockerignore").read_text().splitlines()
    for source in copied_paths(path):
        assert (REPO / source).exists(), f"{path.name} copies missing {source}"
        assert f"!{source.rstrip('/')}/" in ignore or f"!{source}" in ignore, source


def test_api_image_installs_no_torch() -> None:
    text = dockerfile("api").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.MULTILINE)
    installs = [line for line in text.splitlines() if "pip install" in line]
    # No extras: the package alone.
    assert installs and all(re.search(r"pip install (--constraint \S+ )*\.(\s|$)", line) for line in installs)
    instructions = "\n".join(line for line in text.lower().splitlines() if not line.lstrip().startswith("#"))
    assert not any(word in instructions for word in HEAVY)
    assert "worker" not in copied_paths(dockerfile("api")) and "./worker" not in text
    core = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not [dep for dep in core if dep.lower().startswith(HEAVY)]


def test_the_api_process_imports_no_torch(tmp_path: Path) -> None:
    roots = sorted({*HEAVY, "worker"})
    code = f"import sys, api.wsgi; print(sorted(m for m in sys.modules if m.split('.')[0] in {roots}))"
    env = {**os.environ, "NARRATE_STORAGE_URL": f"file://{tmp_path}", "NARRATE_DEV_MODE": "1"}
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_worker_image_is_cuda_torch_with_the_kanitts2_extra() -> None:
    text = dockerfile("worker").read_text()
    base = re.search(r"^FROM (\S+)", text, re.MULTILINE).group(1)
    assert base.startswith("pytorch/pytorch:") and "cuda" in base
    assert re.search(r'pip install (--constraint \S+ )+"\.\[kanitts2\]"', text)
    assert "torch==" in text  # the base image's torch is pinned while installing


def bind_mounts(service: str) -> dict[str, Path]:
    """container path -> the repository path compose mounts there."""
    mounts = {}
    for volume in SERVICES[service]["volumes"]:
        source, target, *_ = str(volume).split(":")
        if source.startswith("./"):
            mounts[target] = (REPO / source).resolve()
    return mounts


def test_prometheus_loads_the_alert_rules_compose_mounts() -> None:
    mounts = bind_mounts("prometheus")
    config_dir = Path("/etc/prometheus")
    for pattern in PROMETHEUS["rule_files"]:
        inside = config_dir / pattern  # relative to the config file's directory, as Prometheus reads it
        mounted = mounts[str(inside.parent)]
        assert sorted(mounted.glob(inside.name)) == [REPO / "deploy" / "prometheus" / "alerts.yml"]


def test_grafana_provisions_prometheus_and_the_dashboard() -> None:
    mounts = bind_mounts("grafana")
    provisioning = mounts["/etc/grafana/provisioning"]
    [source] = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    url = urlsplit(source["url"])
    assert (source["type"], url.hostname, url.port) == ("prometheus", "prometheus", published_ports("prometheus")[9090])
    assert source["jsonData"]["timeInterval"] == PROMETHEUS["global"]["scrape_interval"]
    [provider] = yaml.safe_load((provisioning / "dashboards" / "narrate.yml").read_text())["providers"]
    dashboards = mounts[provider["options"]["path"]]
    assert dashboards == REPO / "deploy" / "grafana" / "dashboards"
    home = environment("grafana")["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (dashboards / Path(home).relative_to(provider["options"]["path"])).is_file()
    # Every panel and query names the provisioned data source by its uid.
    for path in dashboards.glob("*.json"):
        for panel in json.loads(path.read_text())["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == source["uid"], panel["title"]
            assert all(t["datasource"]["uid"] == source["uid"] for t in panel["targets"]), panel["title"]
    assert "prometheus" in SERVICES["grafana"]["depends_on"]
    assert environment("grafana")["GF_SECURITY_ADMIN_PASSWORD"] != "admin"  # Grafana's well-known default
