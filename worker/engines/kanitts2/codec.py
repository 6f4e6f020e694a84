"""NanoCodec frames to waveforms, many rows per call, with left context for seamless continuation.

The codec is NeMo's `AudioCodecModel`. Its decoder is a causal HiFi-GAN: a sample depends only on the
current frame and a bounded number of earlier frames (`receptive_field_frames`). Two properties the
engine relies on follow from that, and `load` refuses a decoder that lacks it:
- right-padded batches decode exactly, so chunks of different lengths share one decoder call;
- chunk k decoded behind at least `receptive_field_frames` frames of chunk k-1 continues chunk k-1's
  waveform sample for sample, so consecutive chunks join without a seam.

Precision: fp32 unless a `dtype` is asked for. Reduced precision (bf16/fp16) is only worth it on CUDA,
where the decoder dominates at large batch; it has been checked only on the tiny random-weight test
codec (bf16 on CPU: about 0.3 % relative RMS error), so compare it with fp32 on the real codec and a
GPU before turning it on.
"""

from __future__ import annotations

import math
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

if TYPE_CHECKING:
    import torch
    from nemo.collections.tts.models import AudioCodecModel
    from nemo.collections.tts.modules.audio_codec_modules import CausalHiFiGANDecoder

WEIGHTS_MEMBER = "model_weights.ckpt"
# Parts of the checkpoint needed to turn codes into audio; everything else (discriminators, losses) is
# training-only and is dropped from the config so that loading builds and downloads nothing extra.
DECODING_PREFIXES = ("vector_quantizer.", "audio_decoder.")
TRAINING_ONLY_KEYS = ("discriminator", "slm_encoder", "slm_predictor", "use_slm_loss", "use_scl_loss")


class NanoCodec:
    """A loaded NanoCodec decoder. Build with `NanoCodec.load`; never touches CUDA at import."""

    def __init__(self, model: AudioCodecModel, *, device: str, dtype: torch.dtype) -> None:
        self._model = model
        self.device = device
        self.dtype = dtype
        self.sample_rate: int = int(model.output_sample_rate)
        self.samples_per_frame: int = int(model.samples_per_frame)
        self.num_codebooks: int = int(model.num_codebooks)
        self.codebook_size: int = int(model.codebook_size)
        self.receptive_field_frames: int = causal_receptive_field_frames(model.audio_decoder)
        """Frames of left context after which a continuation matches a one-go decode."""

    @classmethod
    def load(cls, source: str, *, device: str = "cpu", dtype: torch.dtype | None = None) -> NanoCodec:
        """Load a local `.nemo` file, or a hub name through NeMo's own `from_pretrained` download."""
        import torch
        from nemo.collections.tts.models import AudioCodecModel

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        path = Path(source)
        if path.suffix == ".nemo" or path.exists():
            if not path.is_file():
                raise FileNotFoundError(f"codec checkpoint not found: {source}")
        else:
            path = Path(AudioCodecModel.from_pretrained(source, return_model_file=True))

        # `restore_from` is typed for every NeMo model and return mode: here a DictConfig (which NeMo's own
        # hint for `override_config_path` calls OmegaConf), then the codec model.
        config: Any = AudioCodecModel.restore_from(str(path), return_config=True)
        for key in TRAINING_ONLY_KEYS:
            if key in config:
                config.pop(key)
        model = cast(
            "AudioCodecModel",
            AudioCodecModel.restore_from(str(path), override_config_path=config, map_location=torch.device(device)),
        )
        _load_decoding_weights(model, path)
        model.eval()
        dtype = torch.float32 if dtype is None else dtype
        model.to(device=device, dtype=dtype)
        return cls(model, device=device, dtype=dtype)

    def decode(
        self,
        codes: list[torch.Tensor],
        left_context: list[torch.Tensor | None] | None = None,
    ) -> list[np.ndarray]:
        """Decode rows of codes `[num_codebooks, T_i]` in one batched call.

        `left_context[i]` (optional, `[num_codebooks, C_i]`) are the frames just before row i: they are
        decoded in front of it and their samples dropped. Only the last `receptive_field_frames` of a
        context matter, so longer contexts are cut to that. Returns float32 mono arrays of exactly
        `T_i * samples_per_frame` samples.
        """
        import torch

        contexts: list[torch.Tensor | None] = [None] * len(codes) if left_context is None else list(left_context)
        if len(contexts) != len(codes):
            raise ValueError(f"{len(codes)} code rows but {len(contexts)} left contexts")

        rows: list[torch.Tensor] = []
        context_frames: list[int] = []
        for i, (row, context) in enumerate(zip(codes, contexts, strict=True)):
            row = self._checked(row, f"codes[{i}]")
            if context is not None and context.shape[-1] > 0:
                context = self._checked(context, f"left_context[{i}]")[:, -self.receptive_field_frames :]
                rows.append(torch.cat([context, row], dim=1))
                context_frames.append(context.shape[1])
            else:
                rows.append(row)
                context_frames.append(0)

        out = [np.zeros(0, dtype=np.float32) for _ in codes]
        todo = [i for i, row in enumerate(codes) if row.shape[-1] > 0]
        if not todo:
            return out
        lengths = torch.tensor([rows[i].shape[1] for i in todo], dtype=torch.long)
        tokens = torch.zeros((len(todo), self.num_codebooks, int(lengths.max())), dtype=torch.long)
        for b, i in enumerate(todo):
            tokens[b, :, : rows[i].shape[1]] = rows[i]

        with torch.inference_mode():
            audio, _ = self._model.decode(tokens=tokens.to(self.device), tokens_len=lengths.to(self.device))
            audio = audio.float().cpu().numpy()

        spf = self.samples_per_frame
        for b, i in enumerate(todo):
            start = context_frames[i] * spf
            out[i] = np.ascontiguousarray(audio[b, start : start + codes[i].shape[-1] * spf], dtype=np.float32)
        return out

    def _checked(self, codes: torch.Tensor, name: str) -> torch.Tensor:
        """Codes as a CPU LongTensor, refusing shapes and values the codec would silently misread."""
        import torch

        if codes.dim() != 2 or codes.shape[0] != self.num_codebooks:
            raise ValueError(f"{name} must be [{self.num_codebooks}, T], got {tuple(codes.shape)}")
        if codes.dtype.is_floating_point or codes.dtype == torch.bool:
            raise ValueError(f"{name} must hold integer codes, got {codes.dtype}")
        codes = codes.to(device="cpu", dtype=torch.long)
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ValueError(f"{name} has codes outside 0..{self.codebook_size - 1}")
        return codes


def causal_receptive_field_frames(decoder: CausalHiFiGANDecoder | torch.nn.Module) -> int:
    """Left context, in frames, that fully determines every sample of the frames after it.

    Walks NeMo's `CausalHiFiGANDecoder` from the output back to the frame input: each causal conv adds
    its dilated kernel span, each residual layer its widest branch, and each causal transposed conv
    (kernel 2*stride, right-trimmed) maps a lookback of L samples to ceil(L / stride) + 1 inputs.
    A decoder that is not causal has no such bound and is refused.
    """
    from nemo.collections.tts.modules.audio_codec_modules import CausalHiFiGANDecoder

    if not isinstance(decoder, CausalHiFiGANDecoder):
        raise ValueError(
            f"{type(decoder).__name__} is not a causal decoder: batched and continued decoding would not be exact"
        )
    lookback = _conv_span(decoder.post_conv.conv)
    pairs: list[tuple[Any, Any]] = list(zip(decoder.up_sample_conv_layers, decoder.res_layers, strict=True))
    for up_sample, res_layer in reversed(pairs):
        lookback += _res_layer_span(res_layer)
        conv = up_sample.conv
        stride, kernel = conv.stride[0], conv.kernel_size[0]
        if up_sample.padding_left != 0 or kernel > 2 * stride:
            raise ValueError("up-sampling layer is not causal in the expected way")
        lookback = math.ceil(lookback / stride) + 1
    return lookback + _conv_span(decoder.pre_conv.conv)


def _conv_span(conv: Any) -> int:
    return (conv.kernel_size[0] - 1) * conv.dilation[0]


def _res_layer_span(res_layer: Any) -> int:
    """Branches run in parallel (widest wins); the blocks of a branch run in sequence (spans add)."""
    return max(
        sum(_conv_span(block.input_conv.conv) + _conv_span(block.skip_conv.conv) for block in branch.res_blocks)
        for branch in res_layer.res_blocks
    )


def _load_decoding_weights(model: AudioCodecModel, path: Path) -> None:
    """Load the archive's decoding tensors into the restored model strictly, whatever NeMo loaded.

    NeMo's `AudioCodecModel.load_state_dict` always loads non-strictly, so a renamed or missing key
    would otherwise leave random weights in place and produce noise without an error. The archive is
    compared with the tensors the restored modules hold, after old weight-norm names are mapped to the
    ones the modules use, and every tensor is then loaded strictly (NeMo itself already refuses shapes
    that do not fit).
    """
    import torch

    with tarfile.open(path, "r:*") as archive:
        member = next((m for m in archive.getmembers() if Path(m.name).name == WEIGHTS_MEMBER and m.isfile()), None)
        if member is None:
            raise ValueError(f"{path} has no {WEIGHTS_MEMBER}")
        handle = archive.extractfile(member)
        assert handle is not None
        stored = torch.load(handle, map_location="cpu", weights_only=True)

    modules = {prefix: getattr(model, prefix.removesuffix(".")) for prefix in DECODING_PREFIXES}
    held = {prefix + key for prefix, module in modules.items() for key in module.state_dict()}
    wanted = weight_norm_names({k: v for k, v in stored.items() if k.startswith(DECODING_PREFIXES)}, held)
    missing = sorted(held - set(wanted))
    unexpected = sorted(set(wanted) - held)
    if missing or unexpected:
        raise ValueError(f"codec checkpoint mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for prefix, module in modules.items():
        module.load_state_dict({k.removeprefix(prefix): v for k, v in wanted.items() if k.startswith(prefix)})


def weight_norm_names(state: dict[str, torch.Tensor], held: set[str]) -> dict[str, torch.Tensor]:
    """`state` with old weight-norm names (`X.weight_g`, `X.weight_v`) renamed to the parametrized ones
    (`X.parametrizations.weight.original0/1`) where the module holds those instead, as PyTorch's own
    load hook does for NeMo; every other key is left as it is, so a real mismatch still shows."""
    renamed: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for old, new in (
            (".weight_g", ".parametrizations.weight.original0"),
            (".weight_v", ".parametrizations.weight.original1"),
        ):
            candidate = key.removesuffix(old) + new
            if key.endswith(old) and key not in held and candidate in held:
                key = candidate
                break
        renamed[key] = value
    return renamed
