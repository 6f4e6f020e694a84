"""Operator calls per KaniTTS2 decode step, counted with torch.profiler (CPU, batch 1).

What is counted: every profiler event named `aten::*` that has no `aten::*` ancestor, i.e. each call
into the ATen dispatcher made from Python or from a compiled graph's wrapper, not the calls an aten op
makes inside itself (`aten::linear` counts once, not again for its `aten::t`/`aten::addmm`). Beside it,
`computing_ops_per_decode_step` leaves out the calls that launch no work: pure views (`view`, `slice`,
`transpose`, ...) and `to`/`contiguous`/`reshape` calls that copied nothing. Kernels
that the compiled path generates itself (Inductor's fused C++/Triton kernels) are not aten calls and
are not counted; on CUDA the number of kernel and graph launches is reported beside it (a replayed CUDA
graph is one launch and no aten call).

Method: `generate_frames` for one row forced to F frames and to F + k frames (`min_frames` =
`max_frames`; random weights never stop by themselves), each profiled after a warm-up, and
(count(F + k) - count(F)) / (4 k) per generated token. Prefill, setup and the final readout cancel,
so the same method applies to any version of the loop.

Run: .venv/bin/python bench/kanitts2_ops.py --config real --label before
Writes bench/results/kanitts2-ops-<label>.json (machine, commit, counts, top operators).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TEXT = "It was a bright cold day in April, and the clocks were striking thirteen."


VIEW_OPS = frozenset(
    f"aten::{name}"
    for name in [
        "view",
        "alias",
        "as_strided",
        "slice",
        "select",
        "narrow",
        "transpose",
        "t",
        "permute",
        "unsqueeze",
        "squeeze",
        "expand",
        "expand_as",
        "view_as",
        "detach",
        "lift_fresh",
        "split",
        "split_with_sizes",
        "chunk",
        "unbind",
        "_reshape_alias",
        "unflatten",
        "flatten",
    ]
)
"""Ops that only make a new view of existing memory: no kernel runs for them on any device."""
MAYBE_COPY_OPS = {"aten::to": "aten::_to_copy", "aten::type_as": "aten::_to_copy", "aten::contiguous": "aten::clone"}
MAYBE_COPY_OPS |= {"aten::reshape": "aten::clone"}
"""Ops that copy only when they must: a no-op when the named op does not run inside them."""


def _runs(event: Any, inner: str) -> bool:
    return any(child.name == inner or _runs(child, inner) for child in event.cpu_children)


def top_level_aten_ops(work: Callable[[], Any], *, cuda: bool = False) -> tuple[Counter, Counter, int]:
    """While `work()` runs: the top-level aten calls by name, those of them that compute (not views
    and not no-op casts/reshapes), and the CUDA kernel launches."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        work()
        if cuda:
            torch.cuda.synchronize()
    names: Counter = Counter()
    computing: Counter = Counter()
    launches = 0
    for event in prof.events():
        name = event.name
        if name in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernelEx", "cudaGraphLaunch"):
            launches += 1
        if not name.startswith("aten::"):
            continue
        parent = event.cpu_parent
        while parent is not None and not parent.name.startswith("aten::"):
            parent = parent.cpu_parent
        if parent is not None:
            continue
        names[name] += 1
        if name in VIEW_OPS or (name in MAYBE_COPY_OPS and not _runs(event, MAYBE_COPY_OPS[name])):
            continue
        computing[name] += 1
    return names, computing, launches


def generate_kwargs(generate: Callable, **wanted: Any) -> dict:
    """Only the keyword arguments this version of `generate_frames` accepts (old loops have none)."""
    accepted = inspect.signature(generate).parameters
    return {key: value for key, value in wanted.items() if key in accepted}


def ops_per_decode_step(
    model: Any,
    tokenizer: Any,
    *,
    frames: int = 2,
    extra: int = 2,
    compiled: bool = False,
    speaker: bool = True,
) -> dict:
    """Top-level aten calls per decode step (one generated token) of `generate_frames` at batch 1."""
    import numpy as np

    from worker.engines.kanitts2.generate import RowRequest, generate_frames
    from worker.engines.kanitts2.prompt import build_prompt

    spec = model.spec
    vector = np.random.default_rng(0).standard_normal(spec.speaker_emb_dim).astype(np.float32) if speaker else None
    items = build_prompt(tokenizer, spec.tokens, TEXT, language_tag="en_us", with_speaker=speaker)
    cuda = model.lm_head.weight.device.type == "cuda"
    options = generate_kwargs(generate_frames, compiled=compiled)

    def run(count: int) -> None:
        row = RowRequest(items=items, seed=1, max_frames=count, min_frames=count, speaker=vector)
        outputs = generate_frames(model, [row], **options)
        assert len(outputs[0].frames) == count

    counts, computing, launches, seconds = {}, {}, {}, {}
    for count in (frames, frames + extra):
        run(count)  # warm-up: compilation, allocator, lazy imports
        started = time.perf_counter()
        names, computed, launched = top_level_aten_ops(lambda count=count: run(count), cuda=cuda)
        seconds[count] = time.perf_counter() - started
        counts[count], computing[count], launches[count] = names, computed, launched
    tokens = extra * spec.tokens_per_frame
    long, short = frames + extra, frames
    difference = counts[long] - counts[short]  # for the breakdown only (Counter drops negatives)
    result = {
        "ops_per_decode_step": round((sum(counts[long].values()) - sum(counts[short].values())) / tokens, 2),
        "computing_ops_per_decode_step": round(
            (sum(computing[long].values()) - sum(computing[short].values())) / tokens, 2
        ),
        "frames": [frames, frames + extra],
        "tokens_in_difference": tokens,
        "ops_total": {str(k): sum(v.values()) for k, v in counts.items()},
        "top_ops_per_step": {name: round(n / tokens, 2) for name, n in difference.most_common(15)},
        "compiled": bool(options.get("compiled", False)),
        "profiled_seconds": {str(k): round(v, 2) for k, v in seconds.items()},
    }
    if cuda:
        result["cuda_kernel_launches_per_step"] = round((launches[frames + extra] - launches[frames]) / tokens, 2)
    return result


def git_state(root: Path) -> dict:
    """The commit the measured code came from, and whether the engine's files differ from it."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
        return done.stdout.rstrip() if done.returncode == 0 else ""  # porcelain lines start with a space

    commit = git("rev-parse", "HEAD").strip()
    if not commit:  # a copy of the tree without .git (an export, the GPU machine): the caller names it
        return {"commit": os.environ.get("NARRATE_COMMIT") or None, "commit_from": "NARRATE_COMMIT"}
    dirty = git("status", "--porcelain", "--", "worker/engines/kanitts2")
    return {"commit": commit, "engine_files_modified": [line[3:] for line in dirty.splitlines()]}


def machine() -> dict:
    """The machine facts `kanitts2_engine` records, for the device this count ran on."""
    import torch
    from kanitts2_engine import machine as engine_machine

    return engine_machine("cuda:0" if torch.cuda.is_available() else "cpu")


def build_model(config_name: str, device: str, dtype_name: str, workdir: Path) -> tuple[Any, Any]:
    import torch

    from worker.engines.kanitts2.model import load_kanitts2
    from worker.engines.kanitts2.synthetic import lfm2_350m_config, tiny_config, write_checkpoint

    config = lfm2_350m_config() if config_name == "real" else tiny_config()
    std = 0.02 if config_name == "real" else 0.15
    checkpoint = write_checkpoint(workdir / config_name, config, seed=0, std=std, dtype=torch.bfloat16)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    return load_kanitts2(str(checkpoint), device=device, dtype=dtype)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=["tiny", "real"], default="real")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--extra", type=int, default=2, help="k: frames added for the second count")
    parser.add_argument("--modes", default="eager", help="comma list of eager,compiled")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--label", default="now", help="names the result file kanitts2-ops-<label>.json")
    parser.add_argument("--note", default="")
    parser.add_argument("--out")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer = build_model(args.config, args.device, args.dtype, Path(tempfile.mkdtemp(prefix="kanitts2-")))
    report: dict[str, Any] = {
        "benchmark": "kanitts2_ops",
        "counted": "top-level aten:: calls (no aten:: ancestor) per generated token, torch.profiler, batch 1, "
        "(count(F+k frames) - count(F frames)) / 4k; computing_ops leaves out pure view ops and aten::to/"
        "contiguous/reshape calls that copied nothing",
        "config": args.config,
        "device": args.device,
        "dtype": args.dtype,
        "parameters": sum(p.numel() for p in model.parameters()),
        "machine": machine(),
        **git_state(ROOT),
        "note": args.note,
        "modes": {},
    }
    import worker.engines.kanitts2.generate as generate_module

    report["generate_module"] = str(Path(generate_module.__file__).relative_to(ROOT))
    for mode in args.modes.split(","):
        result = ops_per_decode_step(
            model, tokenizer, frames=args.frames, extra=args.extra, compiled=mode.strip() == "compiled"
        )
        report["modes"][mode.strip()] = result
        print(mode, json.dumps(result))
    out = Path(args.out or ROOT / "bench" / "results" / f"kanitts2-ops-{args.label}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
