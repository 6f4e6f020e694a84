"""The estimate against a real run: the sample chapter (examples/pride-and-prejudice-ch1.txt) narrated
by the CPU engine (Piper, the voice shipped as a PyPI package), planned and assembled as the worker
does, for the default and ACX presets. Prints the estimated and real seconds and the error; the
estimate uses the speech-rate prior (what a fresh deployment says) and, second, the rate learned from
this run's chunks (what it says after its first job). Writes bench/results/estimate_error.json.

Run: .venv/bin/python bench/estimate_error.py
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.audio.trim import trim_silence  # noqa: E402
from shared.estimate import Pauses, estimate_job  # noqa: E402
from shared.jobs import JobCreate  # noqa: E402
from shared.settings import Settings  # noqa: E402
from shared.text.rate import SpeechRate  # noqa: E402
from worker.assembly import Mastering, build_file, outputs_for  # noqa: E402
from worker.engines.registry import load_engine  # noqa: E402
from worker.phases import Phases  # noqa: E402
from worker.planning import PlannedChunk, build_plan  # noqa: E402

SAMPLE = ROOT / "examples" / "pride-and-prejudice-ch1.txt"


def main() -> None:
    settings = Settings(engine="piper")
    engine = load_engine(settings)
    text = SAMPLE.read_text(encoding="utf-8")
    mastering = Mastering.from_settings(settings)
    rows = []
    for preset in ("default", "acx"):
        spec = JobCreate.model_validate(
            {"inputs": [{"id": "ch1", "title": "Chapter 1", "text": text}], "mastering": preset}
        )
        plan = build_plan(
            spec, budget_seconds=settings.chunk_budget_seconds, chars_per_second=settings.chars_per_second,
            streams=1, voice_default=engine.default_voice(),
        )  # fmt: skip
        started = time.perf_counter()
        audio = {
            r.key: trim_silence(r.audio, engine.sample_rate)
            for r in engine.generate([p.request for p in plan.all()], None, None)
        }
        synth = time.perf_counter() - started

        def load(planned: PlannedChunk, audio: dict[str, np.ndarray] = audio) -> np.ndarray:
            return audio[planned.key]

        rendered = build_file(
            outputs_for("job", spec)[0], plan, load, sample_rate=engine.sample_rate,
            file_rate=spec.sample_rate or engine.sample_rate, mastering=mastering, input_ids=spec.input_ids(),
            phases=Phases(),
        )  # fmt: skip
        pauses = spec.effective_pauses(mastering.pauses)
        targets = mastering.targets_for(spec)
        rate = SpeechRate(prior=settings.chars_per_second)
        for planned in plan.all():
            rate.update(len(planned.chunk.text), len(audio[planned.key]) / engine.sample_rate)
        for source, cps in (("prior", settings.chars_per_second), ("learned", rate.chars_per_second)):
            guess = estimate_job(
                spec, chars_per_second=cps, pauses=Pauses(pauses["sentence"], pauses["paragraph"], pauses["chapter"]),
                targets=targets, rtf=synth / rendered.duration_seconds, budget_seconds=settings.chunk_budget_seconds,
            )  # fmt: skip
            error = guess.audio_seconds / rendered.duration_seconds - 1
            rows.append(
                {
                    "preset": preset,
                    "rate": source,
                    "chars_per_second": round(cps, 2),
                    "estimated_seconds": guess.audio_seconds,
                    "real_seconds": round(rendered.duration_seconds, 2),
                    "error_percent": round(100 * error, 1),
                }
            )
            print(rows[-1])
    results = {
        "benchmark": "estimate_error",
        "engine": "piper",
        "characters": len(text),
        "rows": rows,
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version()},
    }
    (ROOT / "bench" / "results" / "estimate_error.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
