"""A timed line whose first draw cannot be fitted is drawn again by the speak unit, and the draw that
fits is the one delivered: the fake engine's first draw of each chunk is paced slowly, its later draws
at its normal rate (as a sampling engine's takes differ in pace)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from api import create_app
from shared.storage import storage_from_settings
from tests.conftest import AUTH
from tests.support.fake_engine import CHARS_PER_SECOND, FakeEngine
from tests.support.units import run_until_idle
from worker.engines.base import ChunkRequest, ChunkResult

pytestmark = pytest.mark.fast

LINE = "Stand back, the bridge will not hold us both."


class SlowFirstDraws(FakeEngine):
    def draw(self, request: ChunkRequest) -> ChunkResult:
        first = request.key not in {key for key, _ in self.draws}
        result = super().draw(request)
        if first:  # 1.6 times as long: a fit would need 0.62, beyond the 0.8 bound
            result.audio = np.tile(result.audio, 2)[: round(len(result.audio) * 1.6)]
        return result


def test_a_line_out_of_bounds_is_redrawn_and_the_fitting_draw_delivered(service_env, make_runtime):
    app = create_app(service_env.settings())
    app.testing = True
    client = app.test_client()
    natural = len(LINE) / CHARS_PER_SECOND
    target = round(natural + 0.2, 3)  # the normal pace plus 2 x 100 ms of padding: no stretch needed
    body = {"format": "wav", "padding_ms": 100, "inputs": [{"id": "line", "text": LINE, "target_seconds": target}]}
    job_id = client.post("/v1/jobs", json=body, headers=AUTH).get_json()["id"]
    engine = SlowFirstDraws()
    assert run_until_idle(make_runtime(engine))[-1] == "assemble:succeeded"
    job = client.get(f"/v1/jobs/{job_id}", headers=AUTH).get_json()
    # Drawn once more by the speak unit's own call (not the engine's quality redraw), then it fitted.
    assert [call.keys for call in engine.calls] == [["00000-00000"], ["00000-00000"]]
    assert [key for key, _ in engine.draws] == ["00000-00000", "00000-00000"]
    fit = job["inputs"][0]["fit"]
    assert fit["status"] == "fitted" and fit["ratio"] == pytest.approx(1.0, abs=0.03)
    data = storage_from_settings(service_env.settings()).get_bytes(job["result"]["key"])
    audio, rate = sf.read(io.BytesIO(data))
    assert abs(len(audio) / rate - target) / target <= 0.02
