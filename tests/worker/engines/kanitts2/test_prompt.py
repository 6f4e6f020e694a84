"""The tokenizer must add the BOS the KaniTTS2 prompt layout was trained with, and nothing else."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tokenizers import Tokenizer, processors

from worker.engines.kanitts2.config import TokenIds
from worker.engines.kanitts2.model import load_kanitts2
from worker.engines.kanitts2.prompt import build_prompt, check_tokenizer

IDS = TokenIds()


def _with_post_processor(tiny_checkpoint: Path, tmp_path: Path, template: str | None) -> Path:
    """A copy of the tiny checkpoint whose tokenizer adds `template`'s special tokens (None: none)."""
    target = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, target)
    tokenizer = Tokenizer.from_file(str(target / "tokenizer.json"))
    specials = [("<|startoftext|>", 1), ("<|endoftext|>", 2)]
    tokenizer.post_processor = (
        processors.TemplateProcessing(single=template, special_tokens=specials)
        if template
        else processors.ByteLevel(trim_offsets=False)
    )
    tokenizer.save(str(target / "tokenizer.json"))
    return target


def test_the_checkpoint_tokenizer_puts_bos_first(tiny_lm) -> None:
    model, tokenizer = tiny_lm
    check_tokenizer(tokenizer, model.spec.tokens)
    items = build_prompt(tokenizer, model.spec.tokens, "Hello there.", language_tag="en_us")
    assert items[:2] == [model.spec.tokens.start_of_human, 1]


@pytest.mark.parametrize(
    "template",
    [None, "<|endoftext|> $A", "<|startoftext|> $A <|endoftext|>", "<|startoftext|> <|startoftext|> $A"],
    ids=["no-bos", "another-token", "bos-and-eos", "bos-twice"],
)
def test_a_tokenizer_with_other_special_tokens_is_refused_at_load(
    tiny_checkpoint: Path, tmp_path: Path, template: str | None
) -> None:
    checkpoint = _with_post_processor(tiny_checkpoint, tmp_path, template)
    with pytest.raises(ValueError, match="must add BOS 1 in front of the text and nothing else"):
        load_kanitts2(str(checkpoint))


class _NoBos:
    def __call__(self, text: str) -> dict:
        return {"input_ids": [10 + len(word) for word in text.split()]}


def test_a_prompt_built_with_a_tokenizer_without_bos_is_refused() -> None:
    with pytest.raises(ValueError, match="did not put BOS 1 in front of the text"):
        build_prompt(_NoBos(), IDS, "new text", language_tag="en_us")
