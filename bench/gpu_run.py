"""The whole KaniTTS2 GPU run in one process: correctness checks on the device, then the benchmark.

Checks (each reports its figures and a pass flag against the stated tolerance; a failed check does
not stop the run):
- static cache logits vs transformers' DynamicCache (as tests/.../test_decoder.py, at the real size and
  dtype): max |difference| / max(1, max |logit|) after the prefill and each frame, two rows in
  non-adjacent slots; tolerance 1e-4 in fp32, 0.05 in bf16;
- static cache vs the dynamic one: greedy frames from `generate_frames` (static per-slot cache, eager
  and compiled) are teacher-forced through the model's plain forward (transformers' LFM2 layers, no
  cache); at every generated position the chosen code's logit must be the forward's maximum within
  `--logit-tol` (a tie-tolerant form of "the same tokens"), and the largest gap is reported;
- compiled vs eager: sampled frames of the same rows and seeds, fraction identical;
- batch invariance: each row alone (1 slot) and among all rows (continuous batching), fraction of
  rows whose frames are identical;
- codec bf16 vs fp32 at the real size: relative RMS error of the decoded samples of the same codes,
  against `--codec-tol`, and both decode times.
Then `bench/kanitts2_engine.py` on the same built model and codec (batch sizes, schedules, codec,
operator counts, the reference), within what is left of `--time-budget`.

Run on the GPU machine through bench/gpu_run.sh; `--smoke` runs the same code on CPU with the tiny
model and codec (two to five minutes on two cores, most of it the first CPU compile).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def greedy(request: Any) -> Any:
    from dataclasses import replace

    options = {"temperature": 0.0, "top_p": 1.0, "repetition_penalty": 1.0}
    if hasattr(request, "top_k"):
        options["top_k"] = 0
    return replace(request, **options)


def teacher_forced_gap(model: Any, request: Any, frames: Any) -> float:
    """Largest (max logit - chosen code's logit) over the generated positions, by a full forward."""
    import torch

    from worker.engines.kanitts2.positions import frame_positions
    from worker.engines.kanitts2.prompt import frames_to_tokens

    spec = model.spec
    ids = spec.tokens
    device = model.lm_head.weight.device
    tokens = frames_to_tokens(frames, ids)
    items = torch.tensor([request.items + tokens], dtype=torch.long)
    mask = torch.ones_like(items)
    positions = frame_positions(
        items, mask, audio_start=ids.audio_start, tokens_per_frame=spec.tokens_per_frame, audio_step=spec.audio_step
    )
    speaker = None
    if request.speaker is not None:
        speaker = torch.as_tensor(request.speaker, dtype=torch.float32).reshape(1, -1).to(device)
    with torch.inference_mode():
        logits = model.logits(items.to(device), mask.to(device), positions.to(device), speaker=speaker)[0]
    start = len(request.items) - 1  # logits at i predict item i + 1
    gaps = []
    for k, token in enumerate(tokens):
        q = k % spec.tokens_per_frame
        lo = ids.audio_token(q, 0)
        row = logits[start + k, lo : lo + ids.codebook_size].float()
        gaps.append(float(row.max() - row[token - lo]))
    return max(gaps) if gaps else 0.0


def check_static_vs_dynamic(model: Any, rows: list, *, compiled: bool, tol: float, slots: int) -> dict:
    from kanitts2_engine import Generator

    generator = Generator()
    requests = [greedy(r.request) for r in rows]
    outputs, _ = generator(model, requests, slots=slots, schedule="slots", compiled=compiled)
    gaps = [teacher_forced_gap(model, req, out.frames) for req, out in zip(requests, outputs, strict=True)]
    return {
        "rows": len(rows),
        "frames": [len(o.frames) for o in outputs],
        "compiled": compiled,
        "slots": slots,
        "max_logit_gap": round(max(gaps), 5),
        "tolerance": tol,
        "passed": max(gaps) <= tol,
    }


def check_static_logits(model: Any, rows: list, *, frames: int, tol: float) -> dict:
    """The static per-slot cache's next-code logits against transformers' DynamicCache, token by token:
    two rows in non-adjacent slots of four, after the prefill and after each frame (codebook 0)."""
    from dataclasses import replace

    import torch

    from worker.engines.kanitts2.decoder import StaticDecoder, bucket_for
    from worker.engines.kanitts2.generate import AudioHead
    from worker.engines.kanitts2.positions import frame_positions
    from worker.engines.kanitts2.prompt import frames_to_tokens

    spec = model.spec
    ids = spec.tokens
    device = model.lm_head.weight.device
    chosen = {1: rows[0].request, 3: rows[1].request}
    slot_rows = {slot: replace(r, max_frames=frames, min_frames=frames) for slot, r in chosen.items()}
    longest = max(len(r.items) for r in chosen.values()) + 4 * frames
    decoder = StaticDecoder(model, slots=4, max_tokens=64 * (longest // 64 + 1), max_frames=frames)
    decoder.prefill(list(slot_rows), list(slot_rows.values()))
    head = AudioHead(model)
    worst = 0.0
    for frame in range(frames):
        for slot, row in slot_rows.items():
            done = decoder.codes[slot, :frame].cpu().numpy()
            sequence = torch.tensor([row.items + frames_to_tokens(done, ids)])
            mask = torch.ones_like(sequence)
            positions = frame_positions(
                sequence,
                mask,
                audio_start=ids.audio_start,
                tokens_per_frame=spec.tokens_per_frame,
                audio_step=spec.audio_step,
            )
            sequence, mask, positions = sequence.to(device), mask.to(device), positions.to(device)
            speaker = (
                None if row.speaker is None else torch.as_tensor(row.speaker, dtype=torch.float32)[None].to(device)
            )
            prompt = len(row.items)
            cache = model.new_cache()
            with torch.inference_mode():
                hidden = model.hidden(
                    sequence[:, :prompt], mask[:, :prompt], positions[:, :prompt], speaker=speaker, cache=cache
                )
                for t in range(prompt, sequence.shape[1]):
                    hidden = model.hidden(
                        sequence[:, t : t + 1], mask[:, : t + 1], positions[:, t : t + 1], cache=cache
                    )
                reference = head(hidden[:, -1], 0)
                ours = head(decoder.hidden[slot : slot + 1], 0)
            scale = max(1.0, reference.abs().max().item())
            worst = max(worst, (ours - reference).abs().max().item() / scale)
        decoder.frame_step(bucket_for(4, 4))
    return {
        "slots": sorted(slot_rows),
        "frames": frames,
        "max_relative_logit_error": round(worst, 6),
        "tolerance": tol,
        "passed": worst <= tol,
    }


def identical(a: list, b: list) -> list[bool]:
    import numpy as np

    return [bool(np.array_equal(x.frames, y.frames)) for x, y in zip(a, b, strict=True)]


def first_difference(a: Any, b: Any) -> int | None:
    import numpy as np

    n = min(len(a.frames), len(b.frames))
    differ = np.nonzero((a.frames[:n] != b.frames[:n]).any(axis=1))[0]
    return int(differ[0]) if len(differ) else (None if len(a.frames) == len(b.frames) else n)


def check_compiled_vs_eager(model: Any, rows: list, *, slots: int) -> dict:
    from kanitts2_engine import Generator

    generator = Generator()
    if not generator.has_compiled:
        return {"skipped": "generate_frames has no compiled option"}
    requests = [r.request for r in rows]
    eager, _ = generator(model, requests, slots=slots, schedule="slots", compiled=False)
    compiled, _ = generator(model, requests, slots=slots, schedule="slots", compiled=True)
    same = identical(eager, compiled)
    return {
        "rows": len(rows),
        "slots": slots,
        "identical_rows": sum(same),
        "first_differing_frame": [first_difference(a, b) for a, b in zip(eager, compiled, strict=True)],
        "passed": all(same),
    }


def check_batch_invariance(model: Any, rows: list, *, compiled: bool) -> dict:
    from kanitts2_engine import Generator

    generator = Generator()
    requests = [r.request for r in rows]
    alone = [generator(model, [r], slots=1, schedule="slots", compiled=compiled)[0][0] for r in requests]
    slots = max(1, len(requests) // 2)  # fewer slots than rows: rows also change slots and neighbours
    together, _ = generator(model, requests, slots=slots, schedule="slots", compiled=compiled)
    same = identical(alone, together)
    return {
        "rows": len(rows),
        "slots": slots,
        "compiled": compiled,
        "identical_rows": sum(same),
        "first_differing_frame": [first_difference(a, b) for a, b in zip(alone, together, strict=True)],
        "passed": all(same),
    }


def check_codec_bf16(codec_path: Path, device: str, *, rows: int, frames: int, tol: float) -> dict:
    import numpy as np
    import torch

    from worker.engines.kanitts2.codec import NanoCodec

    generator = torch.Generator().manual_seed(0)
    codes = [torch.randint(0, 4032, (4, frames), generator=generator) for _ in range(rows)]
    result: dict[str, Any] = {"rows": rows, "frames": frames}
    decoded = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        codec = NanoCodec.load(str(codec_path), device=device, dtype=dtype)
        codec.decode(codes[:1])  # warm-up
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        decoded[name] = np.concatenate(codec.decode(codes))
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        result[f"{name}_seconds"] = round(time.perf_counter() - started, 4)
        del codec
    ref, low = decoded["fp32"].astype(np.float64), decoded["bf16"].astype(np.float64)
    error = float(np.linalg.norm(low - ref) / max(np.linalg.norm(ref), 1e-12))
    result.update(
        relative_rms_error=round(error, 6),
        reference_rms=round(float(np.sqrt(np.mean(ref**2))), 5),
        tolerance=tol,
        passed=error <= tol,
    )
    return result


def ceilings(device: str) -> dict:
    """Copy bandwidth and bf16 matmul rate on random data (METHOD.md: measure the two ceilings)."""
    import torch

    if not device.startswith("cuda"):
        return {}
    x = torch.randn(2**30 // 2, device=device, dtype=torch.bfloat16)  # 1 GiB
    y = torch.empty_like(x)
    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        y.copy_(x)
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(10):
        y.copy_(x)
    end.record()
    torch.cuda.synchronize()
    copy_s = start.elapsed_time(end) / 1000 / 10
    start.record()
    for _ in range(10):
        a @ b
    end.record()
    torch.cuda.synchronize()
    mm_s = start.elapsed_time(end) / 1000 / 10
    return {
        "copy_bytes_per_second": round(2 * x.numel() * 2 / copy_s / 1e12, 3) * 1e12,
        "bf16_matmul_flops": round(2 * 8192**3 / mm_s / 1e12, 1) * 1e12,
    }


def guarded(name: str, report: dict, work) -> None:
    started = time.perf_counter()
    try:
        report[name] = work()
    except Exception as error:  # a failed check is a finding, not the end of the run
        report[name] = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()[-2000:]}
    report[name]["seconds_taken"] = round(time.perf_counter() - started, 1)
    print(name, json.dumps({k: v for k, v in report[name].items() if k != "traceback"}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny model and codec on CPU: does it all run?")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="folder for the JSON files")
    parser.add_argument("--time-budget", type=float, default=230.0, help="seconds for the whole run")
    parser.add_argument("--logit-tol", type=float, default=None, help="default 1e-3 fp32, 0.1 bf16")
    parser.add_argument("--codec-tol", type=float, default=0.02)
    parser.add_argument("--note", default="")
    args, bench_args = parser.parse_known_args()
    started = time.perf_counter()

    import kanitts2_engine as bench
    import torch
    from kanitts2_ops import build_model

    cuda = torch.cuda.is_available() and not args.smoke
    device = "cuda" if cuda else "cpu"
    config = "tiny" if args.smoke else "real"
    dtype = "bf16" if cuda else "fp32"
    tol = args.logit_tol if args.logit_tol is not None else (0.1 if dtype == "bf16" else 1e-3)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not cuda:
        torch.set_num_threads(min(2, torch.get_num_threads()))
    workdir = Path(tempfile.mkdtemp(prefix="kanitts2-gpu-"))
    model, tokenizer = build_model(config, device, dtype, workdir)
    codec_kind = "tiny" if args.smoke else "real"
    report: dict[str, Any] = {
        "run": "kanitts2 gpu checks",
        "config": config,
        "device": device,
        "dtype": dtype,
        "machine": bench.machine(device),
        "commit": bench.git_commit(),
        "note": args.note,
        "build_seconds": round(time.perf_counter() - started, 1),
    }
    guarded("ceilings", report, lambda: ceilings(device))
    planned = bench.plan_examples(streams=4, budget_seconds=25.0, chars_per_second=14.0)
    frames = 6 if args.smoke else 12
    rows = bench.build_rows(planned, count=6, model=model, tokenizer=tokenizer, length_scale=1.0, context_frames=28)
    for row in rows:  # short forced lengths: the checks are about equality, not speed
        n = min(row.frames, frames)
        row.frames, row.request = n, bench._shortened(row.request, n)
    static_tol = 0.05 if dtype == "bf16" else 1e-4
    checks_path = out / f"gpu-checks-{config}-{device}.json"
    # Cheap checks first, then the benchmark, then the checks that compile (inductor, cold cache: the
    # most expensive part), each skipped when the budget is spent.
    guarded(
        "static_logits_vs_dynamic_cache", report, lambda: check_static_logits(model, rows, frames=3, tol=static_tol)
    )
    guarded(
        "static_vs_dynamic_eager",
        report,
        lambda: check_static_vs_dynamic(model, rows, compiled=False, tol=tol, slots=len(rows)),
    )
    guarded("batch_invariance", report, lambda: check_batch_invariance(model, rows, compiled=False))
    codec_path = None
    try:
        from worker.engines.kanitts2.synthetic import nanocodec_config, write_nanocodec

        codec_config = nanocodec_config() if codec_kind == "real" else nanocodec_config(decoder_channels=64)
        codec_path = write_nanocodec(workdir / f"codec-{codec_kind}.nemo", codec_config, seed=0)
    except Exception as error:  # NeMo missing on the machine: no codec figures, said so in the report
        report["codec_build_error"] = f"{type(error).__name__}: {error}"
    if codec_path is not None:
        guarded(
            "codec_bf16_vs_fp32",
            report,
            lambda: check_codec_bf16(codec_path, device, rows=4 if args.smoke else 16, frames=50, tol=args.codec_tol),
        )
    report["checks_seconds"] = round(time.perf_counter() - started, 1)
    checks_path.write_text(json.dumps(report, indent=2) + "\n")

    reserve = 0.0 if args.smoke else 60.0  # for the compiled checks after the benchmark
    left = args.time_budget - (time.perf_counter() - started) - reserve
    defaults = [
        "--config",
        config,
        "--device",
        device,
        "--codec",
        codec_kind if codec_path is not None else "none",
        "--time-budget",
        str(max(30.0, left)),
        "--out",
        str(out / f"kanitts2-{config}-{device}.json"),
        "--note",
        args.note,
    ]
    if args.smoke:
        defaults += ["--batch-sizes", "1,4", "--repeats", "2", "--length-scale", "0.1", "--ref-frames", "8"]
        defaults += ["--codec-repeats", "1", "--no-ops-compiled", "--engine-batch", "4"]
    else:
        # CUDA graphs of the eager step (what SlotBatcher captures on CUDA); inductor would compile each of
        # up to 11 slot buckets cold on this machine, minutes the one call does not have.
        defaults += ["--compiled", "off", "--rows-per-slot", "2", "--engine-batch", "64", "--no-ops-compiled"]
        # five copies of the plan: the workload of bench/gpu_units.py's 64 jobs, which run right after
        defaults += ["--engine-copies", "5"]
    bench.main(
        defaults + bench_args,
        prebuilt={"model": model, "tokenizer": tokenizer, "checkpoint": workdir / config, "codec_path": codec_path},
    )

    for name, work in (
        ("compiled_vs_eager", lambda: check_compiled_vs_eager(model, rows, slots=2)),
        ("static_vs_dynamic_compiled", lambda: check_static_vs_dynamic(model, rows, compiled=True, tol=tol, slots=2)),
    ):
        if time.perf_counter() - started > args.time_budget:
            report.setdefault("skipped_for_time", []).append(name)
            continue
        guarded(name, report, work)
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    checks_path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
