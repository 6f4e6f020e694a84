"""Runs in `.venv-ref` (transformers 4.56): per-step logits of the kani-tts-2 package's model code.

Teacher-forced through the reference's own `generate` (its speaker insertion, its frame-position
tracking, its cache), forcing each next token with a logits processor and recording the raw logits.
Only `kani_tts/model.py` is imported (by path), not the package with its NeMo parts.

usage: python reference_logits.py CASES.json OUT.npz
CASES.json: list of {"checkpoint", "prompt": [ids ending at end_of_human], "speaker": [128 floats] | null,
"forced": [ids]}; OUT.npz holds `generate_<i>` and `forward_<i>`, each [len(forced), vocab] float32.

`forward_<i>` is one teacher-forced forward of the whole sequence through the reference model (the
way it was trained: speaker projection inserted at index 1, frame-level positions, full causal mask).
`generate_<i>` is the reference's own cached generation path.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import sysconfig
from pathlib import Path

import numpy as np
import torch


def reference_module():
    path = Path(sysconfig.get_paths()["purelib"]) / "kani_tts" / "model.py"
    spec = importlib.util.spec_from_file_location("kani_tts_reference_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Force:
    """Logits processor that makes the next token the teacher's."""

    def __init__(self, prompt_length: int, forced: list[int]) -> None:
        self.prompt_length, self.forced = prompt_length, forced

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        out = torch.full_like(scores, float("-inf"))
        out[:, self.forced[input_ids.shape[1] - self.prompt_length]] = 0.0
        return out


def full_forward(module, model, case: dict) -> np.ndarray:
    """Logits of the whole teacher-forced sequence in one forward, predicting each forced token."""
    ids = torch.tensor([case["prompt"] + case["forced"][:-1]], dtype=torch.long)
    embeds = model.model.embed_tokens(ids)
    slot = 0
    if case["speaker"] is not None:
        speaker = torch.tensor([case["speaker"]], dtype=torch.float32)
        projected = model.model.speaker_emb_projection(speaker).unsqueeze(1)
        embeds = torch.cat([embeds[:, :1], projected, embeds[:, 1:]], dim=1)
        # The slot is a non-audio item: a text-range placeholder gives it the right position.
        ids = torch.cat([ids[:, :1], torch.zeros_like(ids[:, :1]), ids[:, 1:]], dim=1)
        slot = 1
    positions = module.compute_frame_level_positions(
        ids, model.audio_tokens_start, model.tokens_per_frame, model.audio_step
    )
    with torch.no_grad():
        out = model(inputs_embeds=embeds, attention_mask=torch.ones_like(ids), position_ids=positions)
    start = len(case["prompt"]) + slot - 1
    return out.logits[0, start:].float().numpy()


def main(cases_path: str, out_path: str) -> None:
    from transformers import LogitsProcessorList

    torch.manual_seed(0)
    module = reference_module()
    cases = json.loads(Path(cases_path).read_text())
    models: dict[str, object] = {}
    results = {}
    for index, case in enumerate(cases):
        if case["checkpoint"] not in models:
            model = module.KaniTTS2ForCausalLM.from_pretrained(case["checkpoint"], device_map="cpu")
            models[case["checkpoint"]] = model.float().eval()
        model = models[case["checkpoint"]]
        forced = case["forced"]

        force = Force(len(case["prompt"]), forced)
        prompt = torch.tensor([case["prompt"]], dtype=torch.long)
        kwargs = {}
        if case["speaker"] is not None:
            kwargs["speaker_emb"] = torch.tensor([case["speaker"]], dtype=torch.float32)
        with torch.no_grad():
            out = model.generate(
                input_ids=prompt,
                attention_mask=torch.ones_like(prompt),
                max_new_tokens=len(forced),
                min_new_tokens=len(forced),
                do_sample=False,
                logits_processor=LogitsProcessorList([force]),
                output_logits=True,
                return_dict_in_generate=True,
                eos_token_id=None,
                pad_token_id=0,
                **kwargs,
            )
        generated = out.sequences[0, prompt.shape[1] :].tolist()
        if generated != forced:
            raise SystemExit(f"case {index}: forcing failed: {generated[:8]} != {forced[:8]}")
        results[f"generate_{index}"] = torch.cat(out.logits, dim=0).float().numpy()
        results[f"forward_{index}"] = full_forward(module, model, case)
    np.savez(out_path, **results)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
