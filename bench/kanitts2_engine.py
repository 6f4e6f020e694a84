"""KaniTTS2 engine throughput on a realistic workload, waves against slots, codec included.

Workload: the plan of `examples/` (the sample chapter cut by the project's own `chunk_text` and
`split_streams` into streams, and every line of the game-lines sheet as a stream of its own), copied
as further jobs (other seeds and speakers) until there are `--rows-per-slot` rows per batch slot.
Each chunk is forced to its planned length (`expected seconds x 12.5` frames, times `--length-scale`;
random weights never stop by themselves), carries a speaker embedding, and a chunk after the first of
its stream is prompted with the previous chunk's last sentence and random stand-in frames for it
(the context pre-fill, through the project's `next_context` and `build_prompt`). Rows are handed over
in the engine's order (first chunks of every stream, then second chunks, ...).

For each batch size (slots) and schedule (`waves`: new rows only when every slot is empty; `slots`: a
finished row's slot takes the next row at the next frame) it reports the median, min and max of
`--repeats` runs: tokens/s, seconds of audio per second, per-stream RTF (frame-step time x 12.5: the
time one stream needs per second of its audio), slot occupancy (useful row-steps / slot-steps; also
over the frames during which rows were still waiting, i.e. without the drain at the end) and peak
memory (GPU: `torch.cuda.max_memory_allocated`; CPU: the process's peak RSS, which only grows).
Then it decodes every row with the codec at its real size (random weights, batches of
`--codec-batch`, each row behind its stream's previous frames) and reports that time and the
aggregate with it. Beside that: operator calls per decode step (eager and compiled; see
bench/kanitts2_ops.py), an engine-level run (`KaniTTS2Engine.generate` on the same plan, with real
stream context), and the reference (`kani-tts-2`'s own `generate`, batch 1, in `.venv-ref` or the
interpreter `REF_PYTHON` names) on the same machine in the same run, for the ratio.

Run (CPU, tiny):  .venv/bin/python bench/kanitts2_engine.py --config tiny --codec tiny
Run (GPU, real):  python3 bench/kanitts2_engine.py --config real --device cuda   (see bench/gpu_run.sh)
Writes bench/results/kanitts2-<config>-<device>.json (or --out).
"""

from __future__ import annotations

import argparse
import csv
import gc
import inspect
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FPS = 12.5
BOOK = ROOT / "examples" / "pride-and-prejudice-ch1.txt"
LINES = ROOT / "examples" / "game-lines.csv"
REFERENCE_TEXT = "It was a bright cold day in April, and the clocks were striking thirteen."


@dataclass(frozen=True)
class PlannedChunk:
    text: str
    last_sentence: str
    stream: int
    seq: int
    expected_seconds: float


@dataclass
class Row:
    """One chunk of the workload, ready for `generate_frames` and for the codec."""

    chunk: PlannedChunk
    frames: int
    request: Any  # RowRequest
    left_context: Any = None  # np.ndarray [C, 4] of the stream's previous frames, for the codec
    stand_in: Any = field(default=None, repr=False)  # random frames standing in for this chunk's output


def plan_examples(*, streams: int, budget_seconds: float, chars_per_second: float) -> list[PlannedChunk]:
    """The chunks the project's planner makes of `examples/`: the chapter in `streams` streams, then
    one stream per game line (the planner gives every input streams of its own)."""
    from shared.text.chunking import chunk_text, split_streams

    planned: list[PlannedChunk] = []
    book = chunk_text(
        BOOK.read_text(encoding="utf-8"), budget_seconds=budget_seconds, chars_per_second=chars_per_second
    )
    for stream, chunks in enumerate(split_streams(book, streams)):
        planned += [PlannedChunk(c.text, c.last_sentence, stream, seq, c.est_seconds) for seq, c in enumerate(chunks)]
    with LINES.open(encoding="utf-8", newline="") as handle:
        for line in csv.DictReader(handle):
            stream = 1 + max(p.stream for p in planned)
            chunks = chunk_text(line["text"], budget_seconds=budget_seconds, chars_per_second=chars_per_second)
            planned += [
                PlannedChunk(c.text, c.last_sentence, stream, seq, c.est_seconds) for seq, c in enumerate(chunks)
            ]
    return planned


def build_rows(
    planned: Sequence[PlannedChunk],
    *,
    count: int,
    model: Any,
    tokenizer: Any,
    length_scale: float,
    context_frames: int,
) -> list[Row]:
    """`count` rows: the plan, copied as further jobs (new streams, seeds, speakers) as often as needed,
    in the engine's order within each copy (all first chunks, then all second chunks, ...)."""
    import numpy as np

    from worker.engines.kanitts2.context import next_context
    from worker.engines.kanitts2.generate import RowRequest
    from worker.engines.kanitts2.prompt import build_prompt

    spec = model.spec
    ids = spec.tokens
    accepts_top_k = "top_k" in inspect.signature(RowRequest).parameters
    rng = np.random.default_rng(0)
    streams_per_copy = 1 + max(p.stream for p in planned)
    order = sorted(planned, key=lambda p: (p.seq, p.stream))
    rows: list[Row] = []
    copy = 0
    while len(rows) < count:
        speakers = rng.standard_normal((streams_per_copy, spec.speaker_emb_dim)).astype(np.float32)
        speakers /= np.linalg.norm(speakers, axis=1, keepdims=True)
        previous: dict[int, Row] = {}
        for chunk in order:
            if len(rows) >= count:
                break
            frames = max(1, round(chunk.expected_seconds * FPS * length_scale))
            context = None
            before = previous.get(chunk.stream)
            if before is not None:
                context = next_context(
                    text=before.chunk.text,
                    last_sentence=before.chunk.last_sentence,
                    frames=before.stand_in,
                    previous=None,
                    sentences=1,
                    tail_frames=context_frames,
                    frames_per_second=FPS,
                )
            items = build_prompt(
                tokenizer,
                ids,
                chunk.text,
                language_tag=spec.language_tags[0] if spec.language_tags else None,
                with_speaker=True,
                context_text=context.text if context is not None else "",
                context_frames=context.frames if context is not None and context.text else None,
            )
            options = {"top_k": 50} if accepts_top_k else {}
            request = RowRequest(
                items=items,
                seed=int(rng.integers(2**31)),
                max_frames=frames,
                min_frames=frames,
                speaker=speakers[chunk.stream],
                temperature=0.8,
                top_p=0.95,
                repetition_penalty=1.1,
                **options,
            )
            stand_in = rng.integers(0, ids.codebook_size, size=(frames, spec.tokens_per_frame))
            row = Row(chunk, frames, request, context.tail if context is not None else None, stand_in)
            rows.append(row)
            previous[chunk.stream] = row
        copy += 1
    return rows


def synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_memory_bytes(device: str) -> int:
    import torch

    if device.startswith("cuda"):
        return int(torch.cuda.max_memory_allocated(device))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)


class Generator:
    """`generate_frames` as this checkout has it: slots, schedules and stats when the loop offers them;
    for the old wave loop (no `slots`), waves of `slots` rows with the occupancy counted here."""

    def __init__(self) -> None:
        from worker.engines.kanitts2 import generate

        self.module = generate
        self.accepted = set(inspect.signature(generate.generate_frames).parameters)
        self.has_slots = "slots" in self.accepted
        self.has_compiled = "compiled" in self.accepted
        self._batchers: dict[tuple, Any] = {}

    def __call__(self, model: Any, requests: list, *, slots: int, schedule: str, compiled: bool) -> tuple[list, dict]:
        generate = self.module.generate_frames
        if hasattr(self.module, "SlotBatcher"):
            return self._batched(model, requests, slots=slots, schedule=schedule, compiled=compiled)
        if self.has_slots:
            stats = self.module.BatchStats()
            options: dict[str, Any] = {"slots": slots, "schedule": schedule, "stats": stats}
            if self.has_compiled:
                options["compiled"] = compiled
            outputs = generate(model, requests, **options)
            return outputs, {"slot_steps": stats.slot_steps, "row_steps": stats.row_steps, "frames": stats.frames}
        if schedule != "waves":
            raise ValueError("this generate_frames has no slots: only waves can be measured")
        outputs, slot_steps, frame_steps = [], 0, 0
        for start in range(0, len(requests), slots):
            wave = requests[start : start + slots]
            outputs += generate(model, wave)
            longest = max(r.max_frames for r in wave)
            slot_steps += len(wave) * longest
            frame_steps += longest
        row_steps = sum(len(o.frames) for o in outputs)
        return outputs, {"slot_steps": slot_steps, "row_steps": row_steps, "frames": frame_steps}

    def batcher(self, model: Any, requests: list, *, slots: int, schedule: str, compiled: bool) -> Any:
        """The `SlotBatcher` of (model, slots, schedule, compiled), reused across runs: its buffers are
        allocated and its CUDA graphs captured (or its step compiled) once, in the warm-up, not in a
        timed run. Rebuilt only when a workload needs a longer cache than it has; one is kept at a time."""
        module = self.module
        tokens = module.cache_tokens(requests, model.spec.tokens_per_frame)
        frames = max(r.max_frames for r in requests)
        key = (id(model), slots, schedule, compiled)
        batcher = self._batchers.get(key)
        if batcher is None or batcher.max_tokens < tokens or batcher.max_frames < frames:
            self._batchers.clear()  # one batcher at a time: peak memory is that of the run measured
            gc.collect()
            batcher = self._batchers[key] = module.SlotBatcher(
                model,
                slots=slots,
                max_tokens=tokens,
                max_frames=frames,
                schedule=schedule,
                compiled=compiled,
            )
        return batcher

    def _batched(self, model: Any, requests: list, *, slots: int, schedule: str, compiled: bool) -> tuple[list, dict]:
        """`generate_frames`' own loop over `SlotBatcher` (same batcher, same calls), also counting the
        frames during which rows were still waiting: the occupancy the scheduler is responsible for,
        apart from the drain at the end of a finite workload, when nothing is left to admit."""
        module = self.module
        stats = module.BatchStats()
        batcher = self.batcher(model, requests, slots=slots, schedule=schedule, compiled=compiled)
        batcher.stats = stats
        order = module.longest_first(requests) if hasattr(module, "longest_first") else range(len(requests))
        for index in order:  # as generate_frames admits them
            batcher.submit(index, requests[index])
        outputs: dict = {}
        waiting_slot_steps = waiting_row_steps = 0
        while batcher.busy:
            slot_steps, row_steps = stats.slot_steps, stats.row_steps
            finished = batcher.step()
            ran = stats.row_steps - row_steps
            if len(outputs) + ran < len(requests):  # some row was still waiting during this frame
                waiting_slot_steps += stats.slot_steps - slot_steps
                waiting_row_steps += ran
            outputs.update(finished)
            if hasattr(batcher, "seconds"):
                batcher.seconds.clear()
        counts = {"slot_steps": stats.slot_steps, "row_steps": stats.row_steps, "frames": stats.frames}
        counts |= {"waiting_slot_steps": waiting_slot_steps, "waiting_row_steps": waiting_row_steps}
        return [outputs[index] for index in range(len(requests))], counts


def guarded(work: Any, *args: Any, **kwargs: Any) -> dict:
    """`work(...)`'s result, or the error it raised (an extra that fails must not lose the figures)."""
    try:
        return work(*args, **kwargs)
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}"}


def spread(values: Sequence[float], digits: int = 4) -> dict:
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


def measure_lm(
    generator: Generator,
    model: Any,
    rows: list[Row],
    *,
    slots: int,
    schedule: str,
    compiled: bool,
    repeats: int,
    device: str,
) -> tuple[dict, list]:
    """Median/min/max over repeats of one (slots, schedule); returns the last run's outputs too."""
    requests = [row.request for row in rows]
    tokens = 4 * sum(row.frames for row in rows)
    audio = sum(row.frames for row in rows) / FPS
    warm = [_shortened(r, 2) for r in requests[: max(1, slots)]]
    if hasattr(generator.module, "SlotBatcher"):  # sized for the whole workload: built (and captured) here
        generator.batcher(model, requests, slots=slots, schedule=schedule, compiled=compiled)
    generator(model, warm, slots=slots, schedule=schedule, compiled=compiled)  # compile/capture this bucket
    reset_peak(device)
    times, stats, outputs = [], {}, []
    for _ in range(repeats):
        synchronize(device)
        started = time.perf_counter()
        outputs, stats = generator(model, requests, slots=slots, schedule=schedule, compiled=compiled)
        synchronize(device)
        times.append(time.perf_counter() - started)
    if [len(o.frames) for o in outputs] != [row.frames for row in rows]:
        raise AssertionError("a row did not generate its forced length")
    occupancy = stats["row_steps"] / stats["slot_steps"] if stats["slot_steps"] else 0.0
    waiting = stats.get("waiting_slot_steps")
    step = [t / max(1, stats["frames"]) for t in times]
    return {
        "rows": len(rows),
        "frames": sum(row.frames for row in rows),
        "audio_seconds": round(audio, 2),
        "seconds": spread(times),
        "tokens_per_second": spread([tokens / t for t in times], 1),
        "audio_seconds_per_second": spread([audio / t for t in times], 2),
        "rtf_per_stream": spread([s * FPS for s in step], 4),
        "frame_step_ms": spread([s * 1000 for s in step], 3),
        "occupancy": round(occupancy, 4),
        "occupancy_while_rows_wait": round(stats["waiting_row_steps"] / waiting, 4) if waiting else None,
        "slot_steps": stats["slot_steps"],
        "row_steps": stats["row_steps"],
        "frame_steps": stats["frames"],
        "peak_memory_bytes": peak_memory_bytes(device),
    }, outputs


def _shortened(request: Any, frames: int) -> Any:
    from dataclasses import replace

    return replace(request, max_frames=min(frames, request.max_frames), min_frames=min(frames, request.max_frames))


def measure_codec(codec: Any, rows: list[Row], outputs: list, *, batch: int, repeats: int, device: str) -> dict:
    """Decode every row (behind its stream's previous frames), `batch` rows per codec call."""
    import numpy as np
    import torch

    codes = [torch.from_numpy(np.ascontiguousarray(o.frames.T)) for o in outputs]
    left = [
        torch.from_numpy(np.ascontiguousarray(row.left_context.T)) if row.left_context is not None else None
        for row in rows
    ]
    codec.decode(codes[:2], left[:2])  # warm-up
    reset_peak(device)
    times = []
    samples = 0
    for _ in range(repeats):
        synchronize(device)
        started = time.perf_counter()
        samples = 0
        for start in range(0, len(codes), batch):
            audio = codec.decode(codes[start : start + batch], left[start : start + batch])
            samples += sum(len(a) for a in audio)
        synchronize(device)
        times.append(time.perf_counter() - started)
    seconds_of_audio = samples / codec.sample_rate
    return {
        "codec_batch": batch,
        "dtype": str(codec.dtype),
        "seconds": spread(times),
        "audio_seconds_per_second": spread([seconds_of_audio / t for t in times], 2),
        "peak_memory_bytes": peak_memory_bytes(device),
    }


def measure_engine(
    model: Any, tokenizer: Any, codec: Any, planned: Sequence[PlannedChunk], *, batch: int, copies: int, options: dict
) -> dict:
    """`KaniTTS2Engine.generate` end to end (codec and real stream context included) on `copies` of the
    plan, chunks capped at their planned frame count (random weights never stop)."""
    import numpy as np

    from worker.engines.base import ChunkRequest
    from worker.engines.kanitts2.engine import KaniTTS2Engine

    accepted = set(inspect.signature(KaniTTS2Engine.__init__).parameters)
    extra = {k: v for k, v in options.items() if k in accepted}
    frames_cap = max(1, round(max(p.expected_seconds for p in planned) * FPS))
    engine = KaniTTS2Engine(model, tokenizer, codec, batch_size=batch, max_frames_per_chunk=frames_cap, **extra)
    streams = 1 + max(p.stream for p in planned)
    speakers = np.random.default_rng(1).standard_normal((copies * streams, model.spec.speaker_emb_dim))
    requests = [
        ChunkRequest(
            key=f"{copy}-{p.stream}-{p.seq}",
            text=p.text,
            stream=copy * streams + p.stream,
            seq=p.seq,
            speaker_embedding=speakers[copy * streams + p.stream].astype(np.float32),
            last_sentence=p.last_sentence,
            expected_seconds=p.expected_seconds,
        )
        for copy in range(copies)
        for p in planned
    ]
    started = time.perf_counter()
    results = list(engine.generate(requests))
    seconds = time.perf_counter() - started
    audio = sum(len(r.audio) for r in results) / codec.sample_rate
    return {
        "batch_size": batch,
        "chunks": len(results),
        "audio_seconds": round(audio, 2),
        "seconds": round(seconds, 3),
        "audio_seconds_per_second": round(audio / seconds, 2),
        "options": sorted(extra),
        "note": "one run; random weights never stop, so each chunk runs to its frame cap (the text-derived "
        "cap, bounded by the longest planned chunk)",
    }


def machine(device: str) -> dict:
    import torch
    import transformers

    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": device,
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(device)
        info["gpu_memory_bytes"] = torch.cuda.get_device_properties(device).total_memory
    return info


def git_commit() -> str | None:
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else os.environ.get("NARRATE_COMMIT") or None


def build_codec(kind: str, workdir: Path, device: str, dtype: str, *, path: Path | None = None) -> Any:
    """NanoCodec at the published size (`real`) or the tests' (`tiny`), random weights, loaded through
    the production loader from a `.nemo` (`path`, or one written here)."""
    import torch

    from worker.engines.kanitts2.codec import NanoCodec
    from worker.engines.kanitts2.synthetic import nanocodec_config, write_nanocodec

    if path is None:
        config = nanocodec_config() if kind == "real" else nanocodec_config(decoder_channels=64, encoder_channels=2)
        path = write_nanocodec(workdir / f"codec-{kind}.nemo", config, seed=0)
    return NanoCodec.load(str(path), device=device, dtype={"fp32": torch.float32, "bf16": torch.bfloat16}[dtype])


def run(args: argparse.Namespace, prebuilt: dict | None = None) -> dict:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    from kanitts2_ops import build_model, ops_per_decode_step

    from worker.engines.kanitts2.engine import resolve_device

    started = time.perf_counter()
    device = resolve_device(args.device)
    dtype = args.dtype or ("bf16" if device.startswith("cuda") else "fp32")
    compiled = device.startswith("cuda") if args.compiled == "auto" else args.compiled == "on"
    workdir = Path(tempfile.mkdtemp(prefix="kanitts2-bench-"))
    if prebuilt:  # gpu_run.py built them already (same config, device and dtype)
        model, tokenizer, checkpoint = prebuilt["model"], prebuilt["tokenizer"], prebuilt["checkpoint"]
    else:
        model, tokenizer = build_model(args.config, device, dtype, workdir)
        checkpoint = workdir / args.config
    codec = None
    if args.codec != "none":
        path = prebuilt.get("codec_path") if prebuilt else None
        codec = build_codec(args.codec, workdir, device, args.codec_dtype, path=path)
    planned = plan_examples(streams=args.streams, budget_seconds=args.budget_seconds, chars_per_second=14.0)
    generator = Generator()
    report: dict[str, Any] = {
        "benchmark": "kanitts2_engine",
        "config": args.config,
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": dtype,
        "compiled": compiled and generator.has_compiled,
        "cuda_graphs": device.startswith("cuda") and hasattr(generator.module, "SlotBatcher"),
        "codec": args.codec,
        "machine": machine(device),
        "commit": git_commit(),
        "note": args.note,
        "workload": {
            "plan_chunks": len(planned),
            "plan_streams": 1 + max(p.stream for p in planned),
            "plan_frames": [max(1, round(p.expected_seconds * FPS)) for p in planned],
            "length_scale": args.length_scale,
            "rows_per_slot": args.rows_per_slot,
            "min_rows": args.min_rows,
        },
        "results": [],
    }

    def out_of_time() -> bool:
        return args.time_budget is not None and time.perf_counter() - started > args.time_budget

    def save() -> None:
        if args.out_path is not None:
            args.out_path.write_text(json.dumps(report, indent=2) + "\n")

    schedules = [s for s in args.schedules if s == "waves" or generator.has_slots]
    for batch in args.batch_sizes:
        if out_of_time():
            report.setdefault("skipped_for_time", []).append(batch)
            continue
        count = max(args.min_rows, args.rows_per_slot * batch)
        rows = build_rows(
            planned,
            count=count,
            model=model,
            tokenizer=tokenizer,
            length_scale=args.length_scale,
            context_frames=codec.receptive_field_frames if codec is not None else 28,
        )
        entry: dict[str, Any] = {"batch": batch}
        outputs = None
        for schedule in schedules:
            if schedule == "waves" and batch == 1 and "slots" in schedules:
                continue  # one slot: both schedules are the same loop
            result, outputs = measure_lm(
                generator,
                model,
                rows,
                slots=batch,
                schedule=schedule,
                compiled=compiled,
                repeats=args.repeats,
                device=device,
            )
            entry[schedule] = result
            print(json.dumps({"batch": batch, "schedule": schedule, **result}), flush=True)
        if codec is not None and outputs is not None:
            lm = entry.get("slots") or entry.get("waves")
            codec_result = measure_codec(
                codec, rows, outputs, batch=min(args.codec_batch, batch), repeats=args.codec_repeats, device=device
            )
            lm_seconds = lm["seconds"]["median"]
            codec_result["aggregate_audio_seconds_per_second_with_codec"] = round(
                lm["audio_seconds"] / (lm_seconds + codec_result["seconds"]["median"]), 2
            )
            entry["codec"] = codec_result
            print(json.dumps({"batch": batch, "codec": codec_result}), flush=True)
        report["results"].append(entry)
        save()
        if args.reference and "reference" not in report and not out_of_time():
            # Right after the first (smallest) batch size: the ratio must not be what a budget cuts.
            report["reference"] = guarded(run_reference, str(checkpoint), args, device, dtype, report["results"])
            save()
    if "reference" in report:
        add_ratios(report["reference"], report["results"])
        save()
    if args.engine_batch and codec is not None and not out_of_time():
        report["engine"] = guarded(
            measure_engine,
            model,
            tokenizer,
            codec,
            planned,
            batch=args.engine_batch,
            copies=args.engine_copies,
            options={"compiled": compiled},
        )
        print("engine", json.dumps(report["engine"]), flush=True)
        save()

    if args.ops and not out_of_time():
        report["ops_per_decode_step"] = {}
        modes = ["eager"] + (["compiled"] if generator.has_compiled and args.ops_compiled else [])
        for mode in modes:
            report["ops_per_decode_step"][mode] = guarded(
                ops_per_decode_step, model, tokenizer, frames=2, extra=2, compiled=mode == "compiled"
            )
            print(mode, json.dumps(report["ops_per_decode_step"][mode]), flush=True)
        save()

    report["total_seconds"] = round(time.perf_counter() - started, 1)
    return report


def reference_worker(checkpoint: str, frames: int, repeats: int, device: str, dtype: str, out: str) -> None:
    """Runs under the reference's interpreter: its model's own `generate` at batch 1."""
    import importlib.util

    import torch
    from transformers import AutoTokenizer

    spec = importlib.util.find_spec("kani_tts")  # the package's __init__ imports NeMo: load model.py alone
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("kani-tts-2 is not installed for this interpreter")
    path = Path(next(iter(spec.submodule_search_locations))) / "model.py"
    module_spec = importlib.util.spec_from_file_location("kani_tts_reference_model", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    model = module.KaniTTS2ForCausalLM.from_pretrained(checkpoint).to(device=device, dtype=torch_dtype).eval()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    text = tokenizer(f"en_us: {REFERENCE_TEXT}")["input_ids"]
    prompt = torch.tensor([[64403, *text, 2, 64404]], device=device)
    new_tokens = 2 + 4 * frames  # start_of_ai, start_of_speech, then the frames
    times = []
    for _ in range(repeats + 1):  # the first run warms up
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        with torch.no_grad():
            model.generate(
                input_ids=prompt,
                attention_mask=torch.ones_like(prompt),
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=True,
                temperature=1.0,
                top_p=0.95,
                repetition_penalty=1.1,
                eos_token_id=None,
                pad_token_id=0,
            )
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    Path(out).write_text(json.dumps({"seconds": times[1:], "new_tokens": new_tokens, "frames": frames}))


def reference_python() -> tuple[str, dict]:
    """The reference's interpreter and environment: `REF_PYTHON` (+ `REF_PYTHONPATH`), else .venv-ref."""
    env = dict(os.environ)
    if os.environ.get("REF_PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["REF_PYTHONPATH"]
    python = os.environ.get("REF_PYTHON") or str(ROOT / ".venv-ref" / "bin" / "python")
    return python, env


def run_reference(checkpoint: str, args: argparse.Namespace, device: str, dtype: str, results: list[dict]) -> dict:
    python, env = reference_python()
    if not Path(python).exists() and "/" in python:
        return {"error": f"reference interpreter missing ({Path(python).name}): run scripts/setup_reference_env.sh"}
    out = Path(tempfile.mkdtemp()) / "reference.json"
    command = [python, __file__, "--reference-worker", checkpoint, "--frames", str(args.ref_frames)]
    command += ["--repeats", str(args.repeats), "--device", device, "--dtype", dtype, "--out", str(out)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    ref = json.loads(out.read_text())
    speeds = [ref["new_tokens"] / s for s in ref["seconds"]]
    summary = {
        "frames": ref["frames"],
        "seconds": spread(ref["seconds"]),
        "tokens_per_second": spread(speeds, 1),
        "rtf_per_stream": spread([s / (ref["frames"] / FPS) for s in ref["seconds"]]),
    }
    add_ratios(summary, results)
    print("reference (batch 1):", json.dumps(summary), flush=True)
    return summary


def add_ratios(reference: dict, results: list[dict]) -> None:
    """Our tokens/s at batch 1 and at the best batch size over the reference's (medians)."""
    if "tokens_per_second" not in reference:
        return
    theirs = reference["tokens_per_second"]["median"]
    ours = next((r for r in results if r["batch"] == 1), None)
    if ours:
        lm = ours.get("slots") or ours.get("waves")
        reference["ours_batch1_speedup"] = round(lm["tokens_per_second"]["median"] / theirs, 2)
    if results:
        best = max(results, key=lambda r: (r.get("slots") or r.get("waves"))["tokens_per_second"]["median"])
        lm = best.get("slots") or best.get("waves")
        reference["ours_best_batch"] = best["batch"]
        reference["ours_best_batch_speedup"] = round(lm["tokens_per_second"]["median"] / theirs, 2)


def int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: Sequence[str] | None = None, *, prebuilt: dict | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=["tiny", "real"], default="tiny")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], help="LM dtype (default bf16 on GPU, fp32 on CPU)")
    parser.add_argument("--compiled", choices=["auto", "on", "off"], default="auto", help="auto: on for CUDA")
    parser.add_argument("--batch-sizes", type=int_list, default=None, help="default 1,16,64,128,256 (CPU 1,4,16)")
    parser.add_argument("--schedules", type=lambda s: s.split(","), default=["waves", "slots"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rows-per-slot", type=int, default=3)
    parser.add_argument("--min-rows", type=int, default=3)
    parser.add_argument("--length-scale", type=float, default=1.0, help="planned frames x this (short CPU runs)")
    parser.add_argument("--streams", type=int, default=4, help="streams the chapter is split into")
    parser.add_argument("--budget-seconds", type=float, default=25.0, help="chunk budget (the service default)")
    parser.add_argument("--codec", choices=["real", "tiny", "none"], default="real")
    parser.add_argument("--codec-dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--codec-batch", type=int, default=64)
    parser.add_argument("--codec-repeats", type=int, default=3)
    parser.add_argument("--no-ops", dest="ops", action="store_false", help="skip the operator counts")
    parser.add_argument("--no-ops-compiled", dest="ops_compiled", action="store_false")
    parser.add_argument("--engine-batch", type=int, default=0, help="also time KaniTTS2Engine.generate at this size")
    parser.add_argument("--engine-copies", type=int, default=1)
    parser.add_argument("--no-reference", dest="reference", action="store_false")
    parser.add_argument("--ref-frames", type=int, default=50)
    parser.add_argument("--time-budget", type=float, help="seconds; later batch sizes and extras are skipped")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--out", help="results JSON (default bench/results/kanitts2-<config>-<device>.json)")
    parser.add_argument("--note", default="", help="stored with the results (e.g. what else ran on the machine)")
    parser.add_argument("--reference-worker", metavar="CHECKPOINT", help=argparse.SUPPRESS)
    parser.add_argument("--frames", type=int, default=50, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.reference_worker:
        reference_worker(args.reference_worker, args.frames, args.repeats, args.device, args.dtype or "fp32", args.out)
        return {}
    import torch

    cuda = args.device.startswith("cuda") or (args.device == "auto" and torch.cuda.is_available())
    if args.batch_sizes is None:
        args.batch_sizes = [1, 16, 64, 128, 256] if cuda else [1, 4, 16]
    kind = "cuda" if cuda else "cpu"
    args.out_path = Path(args.out or ROOT / "bench" / "results" / f"kanitts2-{args.config}-{kind}.json")
    args.out_path.parent.mkdir(parents=True, exist_ok=True)
    report = run(args, prebuilt)
    args.out_path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out_path}")
    return report


if __name__ == "__main__":
    main()
