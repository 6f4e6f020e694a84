"""KaniTTS2 LM throughput: our batched loop at several batch sizes vs the reference at batch 1.

Random weights cannot decide to stop, so every row generates exactly `--frames` frames (the loop's
`min_frames` = `max_frames`, used only here). Reports tokens/s, audio seconds per second, per-stream
RTF (wall time / one row's audio), aggregate RTF (wall time / all rows' audio) and peak memory, then
runs the public kani-tts-2 model code (its own `generate`, sampling as its defaults) at batch 1 in
`.venv-ref` on the same checkpoint and prints our batch-1 speed as a ratio of it.

Configs: `tiny` (the test fixture; CPU) or `real` (LFM2-350M dimensions, random bf16 weights; meant for
a GPU). The codec is not part of these figures unless `--codec PATH.nemo` is given (then each batch's
frames are also decoded and timed).

Run: .venv/bin/python bench/kanitts2_engine.py --config tiny --batch-sizes 1,4,16,64 --frames 50
     .venv/bin/python bench/kanitts2_engine.py --config real --device cuda --frames 250
Writes bench/results/kanitts2-<config>-<device>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXT = "It was a bright cold day in April, and the clocks were striking thirteen."


def reference_worker(checkpoint: str, frames: int, repeats: int, device: str, out: str) -> None:
    """Runs under .venv-ref: time the reference model's generate at batch 1."""
    import importlib.util
    import sysconfig

    import torch
    from transformers import AutoTokenizer

    path = Path(sysconfig.get_paths()["purelib"]) / "kani_tts" / "model.py"
    spec = importlib.util.spec_from_file_location("kani_tts_reference_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.KaniTTS2ForCausalLM.from_pretrained(checkpoint, device_map=device)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    model = model.to(device=device, dtype=dtype).eval()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    text = tokenizer(f"en_us: {TEXT}")["input_ids"]
    prompt = torch.tensor([[64403, *text, 2, 64404]], device=device)
    new_tokens = 2 + 4 * frames  # start_of_ai, start_of_speech, then the frames
    times = []
    for _ in range(repeats + 1):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
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
        times.append(time.perf_counter() - start)
    seconds = min(times[1:])
    Path(out).write_text(json.dumps({"seconds": seconds, "new_tokens": new_tokens, "frames": frames}))


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
    return info


def peak_memory_bytes(device: str) -> int:
    import torch

    if device.startswith("cuda"):
        return int(torch.cuda.max_memory_allocated(device))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run(args: argparse.Namespace) -> dict:
    import torch

    sys.path.insert(0, str(ROOT))
    from tests.fixtures.kanitts2_tiny import lfm2_350m_config, tiny_config, write_checkpoint
    from worker.engines.kanitts2.engine import resolve_device
    from worker.engines.kanitts2.generate import RowRequest, generate_frames
    from worker.engines.kanitts2.model import load_kanitts2
    from worker.engines.kanitts2.prompt import build_prompt

    device = resolve_device(args.device)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    workdir = Path(tempfile.mkdtemp(prefix="kanitts2-bench-"))
    config = lfm2_350m_config() if args.config == "real" else tiny_config()
    std = 0.02 if args.config == "real" else 0.15
    checkpoint = write_checkpoint(workdir / args.config, config, seed=0, std=std, dtype=torch.bfloat16)
    model, tokenizer = load_kanitts2(str(checkpoint), device=device, dtype=dtype)
    params = sum(p.numel() for p in model.parameters())
    codec = None
    if args.codec:
        from worker.engines.kanitts2.codec import NanoCodec

        codec = NanoCodec.load(args.codec, device=device)
    fps = 12.5
    results = []
    for batch in args.batch_sizes:
        rows = [
            RowRequest(
                items=build_prompt(tokenizer, model.spec.tokens, f"{TEXT} ({i})", language_tag="en_us"),
                seed=i,
                max_frames=args.frames,
                min_frames=args.frames,
                temperature=1.0,
                top_p=0.95,
                repetition_penalty=1.1,
            )
            for i in range(batch)
        ]
        generate_frames(model, rows[: min(batch, 2)])  # warm-up (allocator, kernels)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(device)
        times, decode_times = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            outputs = generate_frames(model, rows)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
            if codec is not None:
                start = time.perf_counter()
                codec.decode([torch.from_numpy(o.frames.T.copy()) for o in outputs])
                decode_times.append(time.perf_counter() - start)
        seconds = min(times)
        assert all(len(o.frames) == args.frames for o in outputs)
        audio = batch * args.frames / fps
        entry = {
            "batch": batch,
            "frames_per_row": args.frames,
            "seconds": round(seconds, 4),
            "tokens_per_second": round(batch * args.frames * 4 / seconds, 1),
            "audio_seconds_per_second": round(audio / seconds, 2),
            "rtf_per_stream": round(seconds / (args.frames / fps), 4),
            "rtf_aggregate": round(seconds / audio, 5),
            "peak_memory_bytes": peak_memory_bytes(device),
        }
        if decode_times:
            entry["codec_decode_seconds"] = round(min(decode_times), 4)
            entry["rtf_aggregate_with_codec"] = round((seconds + min(decode_times)) / audio, 5)
        results.append(entry)
        print(json.dumps(entry))

    report = {
        "benchmark": "kanitts2_engine",
        "config": args.config,
        "parameters": params,
        "dtype": str(dtype),
        "machine": machine(device),
        "note": args.note,
        "results": results,
    }
    if args.reference:
        report["reference"] = run_reference(str(checkpoint), args, device, results)
    return report


def run_reference(checkpoint: str, args: argparse.Namespace, device: str, results: list[dict]) -> dict:
    python = Path(os.environ.get("REF_VENV", ROOT / ".venv-ref")) / "bin" / "python"
    if not python.exists():
        raise SystemExit("reference environment missing: run scripts/setup_reference_env.sh")
    out = Path(tempfile.mkdtemp()) / "reference.json"
    command = [
        str(python),
        __file__,
        "--reference-worker",
        checkpoint,
        "--frames",
        str(args.frames),
        "--repeats",
        str(args.repeats),
        "--device",
        device,
        "--out",
        str(out),
    ]
    subprocess.run(command, check=True, capture_output=True, text=True)
    ref = json.loads(out.read_text())
    ref_tps = ref["new_tokens"] / ref["seconds"]
    ours = next((r for r in results if r["batch"] == 1), None)
    summary = {
        "seconds": round(ref["seconds"], 4),
        "tokens_per_second": round(ref_tps, 1),
        "rtf_per_stream": round(ref["seconds"] / (ref["frames"] / 12.5), 4),
    }
    if ours:
        summary["ours_batch1_speedup"] = round(ours["tokens_per_second"] / ref_tps, 2)
    best = max(results, key=lambda r: r["tokens_per_second"])
    summary["ours_best_batch_speedup"] = round(best["tokens_per_second"] / ref_tps, 2)
    summary["ours_best_batch"] = best["batch"]
    print("reference (batch 1):", json.dumps(summary))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=["tiny", "real"], default="tiny")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 16, 64])
    parser.add_argument("--frames", type=int, default=50, help="frames generated per row (12.5 per second)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--codec", help="local .nemo NanoCodec to time decoding too")
    parser.add_argument("--no-reference", dest="reference", action="store_false")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--out", help="results JSON (default bench/results/kanitts2-<config>-<device>.json)")
    parser.add_argument("--note", help="free text stored with the results (e.g. what else ran on the machine)")
    parser.add_argument("--reference-worker", metavar="CHECKPOINT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference_worker:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        reference_worker(args.reference_worker, args.frames, args.repeats, args.device, args.out)
        return
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    report = run(args)
    kind = "cuda" if report["machine"]["device"].startswith("cuda") else "cpu"
    out = Path(args.out or ROOT / "bench" / "results" / f"kanitts2-{args.config}-{kind}.json")
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
