"""The KaniTTS2 language model: transformers' LFM2 backbone plus the KaniTTS2 additions.

The additions (speaker projection, one learnable RoPE scale per attention layer) are modules of a
subclass so the checkpoint's own keys (`model.speaker_emb_projection.weight`,
`model.learnable_rope_layers.<l>.alpha_weight`) load through `from_pretrained` unchanged. The
backbone's forward is ours because LFM2's passes one rotary embedding to every layer; we compute
cos/sin per attention layer from its own scaled inverse frequencies and reuse LFM2's layers, masks
and `DynamicCache` as they are.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from transformers import AutoTokenizer
from transformers.cache_utils import DynamicCache
from transformers.masking_utils import create_causal_mask, create_recurrent_attention_mask
from transformers.models.lfm2.configuration_lfm2 import Lfm2Config
from transformers.models.lfm2.modeling_lfm2 import Lfm2Model, Lfm2PreTrainedModel

from worker.engines.kanitts2.config import KaniTTS2Spec
from worker.engines.kanitts2.prompt import SPEAKER_SLOT, check_tokenizer

log = logging.getLogger(__name__)

CHECKPOINT_FILES = ["*.json", "*.safetensors", "tokenizer*", "*.txt", "*.model"]
"""What a hub snapshot needs: config, weights, tokenizer (no training state, no other formats)."""


class LearnableRope(nn.Module):
    """One attention layer's RoPE scale: alpha = alpha_min + (alpha_max - alpha_min) * sigmoid(w)."""

    def __init__(self) -> None:
        super().__init__()
        self.alpha_weight = nn.Parameter(torch.zeros(()))

    def alpha(self, alpha_min: float, alpha_max: float) -> torch.Tensor:
        return alpha_min + (alpha_max - alpha_min) * torch.sigmoid(self.alpha_weight.float())


class KaniTTS2Model(Lfm2Model):
    """LFM2 backbone with the speaker projection and per-layer learnable RoPE."""

    def __init__(self, config: Lfm2Config) -> None:
        super().__init__(config)
        self.spec = KaniTTS2Spec.from_config(config)
        self.speaker_emb_projection = nn.Linear(self.spec.speaker_emb_dim, config.hidden_size, bias=False)
        self.learnable_rope_layers = (
            nn.ModuleDict(
                {
                    str(index): LearnableRope()
                    for index, kind in enumerate(config.layer_types or [])
                    if kind == "full_attention"
                }
            )
            if self.spec.use_learnable_rope
            else None
        )

    def embed(self, items: torch.Tensor, speaker: torch.Tensor | None) -> torch.Tensor:
        """Embeddings of prompt items `[B, T]`; `SPEAKER_SLOT` items take the projected `speaker[b]`."""
        embeds = self.embed_tokens(items.clamp(min=0))
        slot = items == SPEAKER_SLOT
        if speaker is not None and bool(slot.any()):
            projected = self.speaker_emb_projection(speaker.to(embeds.dtype))
            embeds = torch.where(slot[..., None], projected[:, None, :], embeds)
        elif bool(slot.any()):
            raise ValueError("prompt has a speaker slot but no speaker embedding was given")
        return embeds

    def layer_rotary(self, layer: int, hidden: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """cos/sin of one attention layer, computed in float32 from float positions."""
        if self.learnable_rope_layers is None:
            raise ValueError("this checkpoint has no learnable RoPE")
        rope = cast(LearnableRope, self.learnable_rope_layers[str(layer)])
        inv_freq = cast(torch.Tensor, self.rotary_emb.inv_freq).to(device=hidden.device, dtype=torch.float32)
        inv_freq = inv_freq * rope.alpha(self.spec.alpha_min, self.spec.alpha_max).to(hidden.device)
        freqs = positions[..., None].float() * inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(hidden.dtype), emb.sin().to(hidden.dtype)

    def forward(  # type: ignore[override]
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache: DynamicCache | None = None,
    ) -> torch.Tensor:
        """Final hidden states `[B, T, H]`.

        `attention_mask` is the 2-D padding mask over cache + new items and is required: frame
        positions repeat, and without a mask transformers reads that as packed sequences.
        """
        mask_kwargs: dict[str, Any] = {
            "config": self.config,
            "inputs_embeds": inputs_embeds,
            "attention_mask": attention_mask,
            "cache": cache,
            "position_ids": position_ids,
        }
        masks = {
            "full_attention": create_causal_mask(**mask_kwargs),
            "conv": create_recurrent_attention_mask(**mask_kwargs),
        }
        hidden = inputs_embeds
        shared_rotary = self.rotary_emb(hidden, position_ids=position_ids)
        layer_types = self.config.layer_types or []
        for index, layer in enumerate(self.layers[: self.config.num_hidden_layers]):
            kind = layer_types[index]
            rotary = shared_rotary
            if kind == "full_attention" and self.learnable_rope_layers is not None:
                rotary = self.layer_rotary(index, hidden, position_ids)
            hidden = layer(
                hidden,
                attention_mask=masks[kind],
                position_embeddings=rotary,
                position_ids=position_ids,
                cache=cache,
            )
        return self.embedding_norm(hidden)


class KaniTTS2ForCausalLM(Lfm2PreTrainedModel):
    """KaniTTS2 LM with the checkpoint's module names (`model.*`, tied `lm_head`)."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}  # noqa: RUF012

    def __init__(self, config: Lfm2Config) -> None:
        super().__init__(config)
        self.model = KaniTTS2Model(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    @property
    def spec(self) -> KaniTTS2Spec:
        return self.model.spec

    def get_input_embeddings(self) -> nn.Module:
        return self.model.embed_tokens

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def new_cache(self) -> DynamicCache:
        """Empty KV + conv-state cache for this model's layer layout."""
        return DynamicCache(config=self.config)

    def hidden(
        self,
        items: torch.Tensor,
        attention_mask: torch.Tensor,
        positions: torch.Tensor,
        *,
        speaker: torch.Tensor | None = None,
        cache: DynamicCache | None = None,
    ) -> torch.Tensor:
        """Final hidden states of `items` `[B, T]` appended to `cache`."""
        return self.model(self.model.embed(items, speaker), attention_mask, positions, cache)

    def logits(
        self,
        items: torch.Tensor,
        attention_mask: torch.Tensor,
        positions: torch.Tensor,
        *,
        speaker: torch.Tensor | None = None,
        cache: DynamicCache | None = None,
    ) -> torch.Tensor:
        """Full-vocabulary logits `[B, T, V]` in float32 (tests, conformance; generation slices the head)."""
        return self.lm_head(self.hidden(items, attention_mask, positions, speaker=speaker, cache=cache)).float()


def resolve_checkpoint(source: str, *, cache_dir: str | None = None) -> Path:
    """A local checkpoint directory: `source` itself, or its hub snapshot (downloaded once)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id=source, cache_dir=cache_dir, allow_patterns=CHECKPOINT_FILES))


def load_kanitts2(
    source: str,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    cache_dir: str | None = None,
) -> tuple[KaniTTS2ForCausalLM, Any]:
    """Load the LM and its tokenizer from a hub id or a local directory.

    Any missing, unexpected or mis-shaped weight is an error: a silently random speaker projection or
    RoPE scale produces plausible but wrong speech.
    """
    path = resolve_checkpoint(source, cache_dir=cache_dir)
    # With output_loading_info transformers returns (model, info); its annotation names the model only.
    model, info = cast(
        "tuple[KaniTTS2ForCausalLM, dict[str, Any]]",
        KaniTTS2ForCausalLM.from_pretrained(path, dtype=dtype, output_loading_info=True),
    )
    problems = {
        name: sorted(info.get(name) or [])
        for name in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs")
        if info.get(name)
    }
    if problems:
        raise ValueError(f"KaniTTS2 checkpoint {source} does not match the model: {problems}")
    # PreTrainedModel.to is wrapped with `wraps(nn.Module.to)`, whose unbound signature type checkers then expect.
    model = model.to(device).eval()  # type: ignore[arg-type]
    tokenizer = AutoTokenizer.from_pretrained(path)
    check_tokenizer(tokenizer, model.spec.tokens)
    return model, tokenizer
