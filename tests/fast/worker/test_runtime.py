"""`worker.runtime.Runtime`: the engine's GPU memory in metrics, the embedder from the registry."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from tests.support.fake_engine import FakeEngine

pytestmark = pytest.mark.fast


def test_gpu_memory_is_reported_under_the_engine_device(make_runtime):
    engine = FakeEngine(gpu=(3 * 2**30, 5 * 2**30), gpu_total=80 * 2**30, device="cuda:7")
    make_runtime(engine).report_gpu_memory()
    labels = {"device": "cuda:7"}
    assert REGISTRY.get_sample_value("narrate_gpu_memory_allocated_bytes", labels) == 3 * 2**30
    assert REGISTRY.get_sample_value("narrate_gpu_memory_peak_bytes", labels) == 5 * 2**30
    # The device's capacity: what the alert on GPU memory near the limit divides by.
    assert REGISTRY.get_sample_value("narrate_gpu_memory_total_bytes", labels) == 80 * 2**30


def test_an_engine_without_gpu_memory_reports_none(make_runtime):
    make_runtime(FakeEngine(device="cpu-only-test")).report_gpu_memory()
    assert REGISTRY.get_sample_value("narrate_gpu_memory_allocated_bytes", {"device": "cpu-only-test"}) is None
    assert REGISTRY.get_sample_value("narrate_gpu_memory_total_bytes", {"device": "cpu-only-test"}) is None


def test_a_worker_whose_engine_cannot_clone_has_no_speaker_embedder(make_runtime):
    runtime = make_runtime()  # the test settings name the piper engine
    with pytest.raises(ValueError, match="cannot clone"):
        runtime.speaker_embedder()
