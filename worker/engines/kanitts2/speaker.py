"""Speaker embeddings for voice cloning: the WavLM embedder KaniTTS2 was trained with.

The checkpoint (`nineninesix/speaker-emb-tbr`, a copy of Orange/Speaker-wavLM-tbr) is a transformers
directory: a `WavLMConfig` with two extra fields (`embd_size`, `top_interm_size`) and weights for a
`WavLMPreTrainedModel` holding `wavlm.*` (the encoder) and `top_layers.*` (the head). The module names
below mirror that layout so transformers' own loader reads it, key renames of older checkpoints
included. Pipeline: mean/variance normalised 16 kHz mono (at most 30 s) -> WavLM -> mean and std over
time -> 1x1 conv -> ReLU -> BN -> 1x1 conv -> ReLU -> BN -> L2 norm.

Nothing heavy is imported until `SpeakerEmbedder.load`, which the worker calls on the first cloning job.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.audio.resample import resample

if TYPE_CHECKING:
    import torch

SAMPLE_RATE = 16000
MAX_SECONDS = 30.0
MIN_SAMPLES = 1600
"""0.1 s: the encoder needs a few 20 ms frames for a standard deviation over time."""
MAX_CHANNELS = 8
WEIGHT_PATTERNS = ["config.json", "*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin*"]


class SpeakerEmbedder:
    """A loaded speaker embedder: audio clips in, 128-d unit vectors out."""

    sample_rate: int = SAMPLE_RATE

    def __init__(self, model: Any, *, device: str) -> None:
        self._model = model
        self.device = device
        self.dim: int = int(model.config.embd_size)

    @classmethod
    def load(cls, source: str, *, device: str = "cpu", cache_dir: str | None = None) -> SpeakerEmbedder:
        """Load a local checkpoint directory, or download a hub id into `cache_dir` first.

        Missing, unexpected or mis-shaped weights are an error: a half-loaded embedder still returns
        unit vectors, just meaningless ones.
        """
        import torch

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        directory = Path(source)
        if not directory.is_dir():
            if directory.exists() or source.startswith((".", "/")):
                raise FileNotFoundError(f"speaker embedder checkpoint is not a directory: {source}")
            from huggingface_hub import snapshot_download

            directory = Path(snapshot_download(source, cache_dir=cache_dir, allow_patterns=WEIGHT_PATTERNS))

        model, info = _embeddings_model_class().from_pretrained(
            str(directory), output_loading_info=True, dtype=torch.float32
        )
        problems = {k: v for k, v in info.items() if k != "error_msgs" and v}
        if problems or info.get("error_msgs"):
            raise ValueError(f"speaker embedder checkpoint does not match the model: {problems or info}")
        model.to(device).eval()
        return cls(model, device=device)

    def embed(self, audio: np.ndarray, sr: int) -> np.ndarray:
        """One clip -> (dim,) float32 unit vector. Mixes to mono, resamples to 16 kHz, keeps 30 s."""
        import torch

        samples = prepare_clip(audio, sr)
        with torch.inference_mode():
            values = torch.from_numpy(samples)[None].to(self.device)
            vector = self._model(values)[0].float().cpu().numpy()
        return vector.astype(np.float32, copy=False)

    def embed_many(self, clips: list[tuple[np.ndarray, int]]) -> np.ndarray:
        """Average of the per-clip embeddings, L2-normalised: how the model's training voices were made."""
        if not clips:
            raise ValueError("no clips to embed")
        mean = np.mean([self.embed(audio, sr) for audio, sr in clips], axis=0)
        norm = float(np.linalg.norm(mean))
        if norm == 0.0 or not np.isfinite(norm):
            raise ValueError("clip embeddings cancel out; cannot form a voice from them")
        return (mean / norm).astype(np.float32)


def prepare_clip(audio: np.ndarray, sr: int) -> np.ndarray:
    """Mono float32 at 16 kHz, at most 30 s. Channels are averaged: the smaller axis of a 2-D array."""
    array = np.asarray(audio)
    if array.ndim == 2:
        channel_axis = int(np.argmin(array.shape))
        if array.shape[channel_axis] > MAX_CHANNELS:
            raise ValueError(f"audio of shape {array.shape} is not a multi-channel clip")
        array = array.mean(axis=channel_axis)
    elif array.ndim != 1:
        raise ValueError(f"audio must be 1-D (mono) or 2-D (multi-channel), got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"audio must be float samples in [-1, 1], got {array.dtype}")
    if not np.isfinite(array).all():
        raise ValueError("audio contains NaN or infinite samples")
    array = array.astype(np.float32, copy=False)
    array = resample(array[: round(MAX_SECONDS * sr) + 1], int(sr), SAMPLE_RATE)
    array = array[: int(MAX_SECONDS * SAMPLE_RATE)]
    if array.shape[0] < MIN_SAMPLES:
        raise ValueError(f"audio is too short for a speaker embedding ({array.shape[0] / SAMPLE_RATE:.2f} s)")
    return np.ascontiguousarray(array)


@cache
def _embeddings_model_class() -> type:
    """The model class, built on first use so importing this module imports no torch."""
    import torch
    from torch import nn
    from transformers import WavLMModel
    from transformers.models.wavlm.modeling_wavlm import WavLMPreTrainedModel

    class TopLayers(nn.Module):
        def __init__(self, in_size: int, interm_size: int, embd_size: int) -> None:
            super().__init__()
            self.affine1 = nn.Conv1d(in_size, interm_size, kernel_size=1)
            self.batchnorm1 = nn.BatchNorm1d(interm_size, affine=False, eps=1e-3)
            self.affine2 = nn.Conv1d(interm_size, embd_size, kernel_size=1)
            self.batchnorm2 = nn.BatchNorm1d(embd_size, affine=False, eps=1e-3)
            self.activation = nn.ReLU()

        def forward(self, stats: torch.Tensor) -> torch.Tensor:
            out = self.batchnorm1(self.activation(self.affine1(stats)))
            out = self.batchnorm2(self.activation(self.affine2(out)))
            return nn.functional.normalize(out[:, :, 0], dim=1)

    class SpeakerEmbeddingModel(WavLMPreTrainedModel):
        def __init__(self, config: Any) -> None:
            super().__init__(config)
            self.wavlm = WavLMModel(config)
            self.top_layers = TopLayers(2 * config.hidden_size, int(config.top_interm_size), int(config.embd_size))
            self.post_init()

        def forward(self, input_values: torch.Tensor) -> torch.Tensor:
            mean = input_values.mean(dim=1, keepdim=True)
            normalised = (input_values - mean) / (input_values.std(dim=1, keepdim=True) + 1e-10)
            hidden = self.wavlm(input_values=normalised).last_hidden_state
            std = hidden.var(dim=1).clamp(min=1e-10).sqrt()
            stats = torch.cat([hidden.mean(dim=1), std], dim=1).unsqueeze(2)
            return self.top_layers(stats)

    return SpeakerEmbeddingModel
