"""Random-weight checkpoints at tiny or published dimensions, for benchmarks and offline tests.

Nothing is downloaded. The KaniTTS2 side writes a checkpoint directory in the layout of the public one
(config.json with the released keys, one `model.safetensors` without the tied `lm_head.weight`, a small
BPE tokenizer that adds BOS=1), so our loader and the reference package's model code both load it. The
NanoCodec side builds NeMo's `AudioCodecModel` from a config and saves it as a `.nemo`, so the production
loader (`restore_from`) is what reads it back.

Sizes: `tiny_config` is a 6-layer, 64-wide LM for tests; `lfm2_350m_config` has the published
LFM2-350M dimensions (about 370 M parameters) for benchmarks. `nanocodec_config()` has the published
22 kHz / 0.6 kbps / 12.5 fps codec's dimensions (decoder base 864 channels, about 31 M decoder
parameters); tests shrink its channel counts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Long-form narration needs a voice that does not drift between chunks.",
    "She sells sea shells by the sea shore, and the shells she sells are surely sea shells.",
    "Chapter one. It was a bright cold day in April, and the clocks were striking thirteen.",
    "en_us: pt_br: hello world, how are you today? I am fine, thank you!",
    'Numbers like one, two, three and punctuation; quotes "here" and (there).',
]
"""What the tiny tokenizer is trained on (any text still tokenizes: it is byte-level)."""
LANGUAGE_TAGS = ["en_us", "en_gb"]
ATTENTION_LAYERS = [2, 4]
LFM2_350M_ATTENTION_LAYERS = [2, 5, 8, 10, 12, 14]


def tiny_config() -> dict:
    """config.json of the tiny checkpoint (LFM2 keys as in LFM2-350M, KaniTTS2 keys as released)."""
    layers = 6
    return {
        "architectures": ["KaniTTS2ForCausalLM"],
        "model_type": "lfm2",
        "vocab_size": 80538,
        "hidden_size": 64,
        "intermediate_size": 192,
        "block_auto_adjust_ff_dim": True,
        "block_ffn_dim_multiplier": 1.0,
        "block_multiple_of": 32,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "layer_types": ["full_attention" if i in ATTENTION_LAYERS else "conv" for i in range(layers)],
        "full_attn_idxs": ATTENTION_LAYERS,
        "conv_L_cache": 3,
        "conv_bias": False,
        "max_position_embeddings": 128000,
        "norm_eps": 1e-05,
        "rope_theta": 1000000.0,
        "initializer_range": 0.02,
        "tie_word_embeddings": True,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 64402,
        "use_cache": True,
        "torch_dtype": "float32",
        "audio_tokens_start": 64410,
        "tokens_per_frame": 4,
        "audio_step": 1.0,
        "use_learnable_rope": True,
        "alpha_min": 0.1,
        "alpha_max": 2.0,
        "speaker_emb_dim": 128,
        "language_settings": {"status": "available_language_tags", "language_tags_list": LANGUAGE_TAGS},
    }


def lfm2_350m_config() -> dict:
    """The real model's dimensions (LFM2-350M backbone, KaniTTS2 vocabulary) for benchmarks."""
    layers = 16
    return {
        **tiny_config(),
        "hidden_size": 1024,
        "intermediate_size": 6656,
        "block_multiple_of": 256,
        "num_hidden_layers": layers,
        "num_attention_heads": 16,
        "num_key_value_heads": 8,
        "layer_types": ["full_attention" if i in LFM2_350M_ATTENTION_LAYERS else "conv" for i in range(layers)],
        "full_attn_idxs": LFM2_350M_ATTENTION_LAYERS,
        "torch_dtype": "bfloat16",
        "language_settings": {"status": "available_language_tags", "language_tags_list": ["en_us"]},
    }


def save_tokenizer(directory: Path) -> None:
    """A small byte-level BPE tokenizer (400 ids, BOS=1 added) in the checkpoint's file layout."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<|unk|>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = ["<|pad|>", "<|startoftext|>", "<|endoftext|>", "<|unk|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(SENTENCES, trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A", special_tokens=[("<|startoftext|>", 1)]
    )
    tokenizer.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": "<|startoftext|>",
                "eos_token": "<|endoftext|>",
                "pad_token": "<|pad|>",
                "unk_token": "<|unk|>",
                "add_bos_token": True,
                "model_max_length": 128000,
            },
            indent=2,
        )
    )


def write_checkpoint(
    directory: Path, config: dict, *, seed: int = 0, std: float = 0.15, dtype: torch.dtype | None = None
) -> Path:
    """Random weights for `config`, saved like the released checkpoint (config, safetensors, tokenizer).

    Norm weights are drawn around 1 and the learnable-RoPE scales spread over their range, so paths
    that get positions or norms wrong give clearly different logits. `std` 0.15 makes the tiny model's
    logits peaked; use about 0.02 at the real size (activations stay finite over 16 layers).
    """
    import torch
    from safetensors.torch import save_file
    from transformers.models.lfm2.configuration_lfm2 import Lfm2Config

    from worker.engines.kanitts2.model import KaniTTS2ForCausalLM

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    save_tokenizer(directory)

    generator = torch.Generator().manual_seed(seed)
    model = KaniTTS2ForCausalLM(Lfm2Config(**config))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("alpha_weight"):
                parameter.copy_(torch.randn((), generator=generator) * 1.5)
            elif "norm" in name:
                parameter.copy_(1.0 + 0.1 * torch.randn(parameter.shape, generator=generator))
            else:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)
    state = {k: v.to(dtype or v.dtype).contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    return directory


def build_tiny_kanitts2(directory: Path, *, seed: int = 0, audio_step: float = 1.0) -> Path:
    """Write the tiny checkpoint into `directory` (created) and return it.

    Weights are larger than the usual 0.02 init so the random model has peaked, position-sensitive
    logits (differences between paths show up clearly in the tests).
    """
    return write_checkpoint(directory, {**tiny_config(), "audio_step": audio_step}, seed=seed)


# NanoCodec 22 kHz / 0.6 kbps / 12.5 fps, as its published model config describes it.
CODEC_SAMPLE_RATE = 22050
CODEC_DOWN_RATES = [2, 3, 6, 7, 7]
CODEC_UP_RATES = [7, 7, 6, 3, 2]
CODEC_SAMPLES_PER_FRAME = 1764
CODEC_LEVELS = [9, 8, 8, 7]
CODEC_GROUPS = 4
NANOCODEC_DECODER_CHANNELS = 864
NANOCODEC_ENCODER_CHANNELS = 24
_MODULES = "nemo.collections.tts.modules.audio_codec_modules"
_LOSSES = "nemo.collections.tts.losses.audio_codec_loss"


def nanocodec_config(
    *, decoder_channels: int = NANOCODEC_DECODER_CHANNELS, encoder_channels: int = NANOCODEC_ENCODER_CHANNELS
) -> dict:
    """`AudioCodecModel` config of the published codec; tests shrink only the channel counts.

    Causal HiFi-GAN decoder (up rates 7*7*6*3*2 = 1764 samples per frame, NeMo's default kernel sizes
    and dilations, half-snake activations, clamped output, grouped up-sampling), 4 groups of FSQ levels
    [9, 8, 8, 7]. The discriminator is training-only and replaced by a one-band STFT one: it builds
    offline (the published SLM discriminator downloads WavLM) and stays small (the multi-period one has
    fixed 1024-channel layers); the engine's loader drops it anyway.
    """
    encoded_dim = CODEC_GROUPS * len(CODEC_LEVELS)
    return {
        "sample_rate": CODEC_SAMPLE_RATE,
        "samples_per_frame": CODEC_SAMPLES_PER_FRAME,
        "audio_encoder": {
            "_target_": f"{_MODULES}.HiFiGANEncoder",
            "down_sample_rates": CODEC_DOWN_RATES,
            "encoded_dim": encoded_dim,
            "base_channels": encoder_channels,
            "activation": "lrelu",
            "pad_mode": "replicate",
        },
        "vector_quantizer": {
            "_target_": f"{_MODULES}.GroupFiniteScalarQuantizer",
            "num_groups": CODEC_GROUPS,
            "num_levels_per_group": CODEC_LEVELS,
        },
        "audio_decoder": {
            "_target_": f"{_MODULES}.CausalHiFiGANDecoder",
            "up_sample_rates": CODEC_UP_RATES,
            "input_dim": encoded_dim,
            "base_channels": decoder_channels,
            "activation": "half_snake",
            "output_activation": "clamp",
            "pad_mode": "zeros",
            "n_groups_equal_to_out_channels": True,
        },
        "discriminator": {
            "_target_": f"{_MODULES}.MultiResolutionDiscriminatorSTFT",
            "resolutions": [[512, 128, 512]],
            "stft_bands": [[0.0, 1.0]],
        },
        "commit_loss_scale": 0.0,
        "loss_resolutions": [[512, 128, 512]],
        "mel_loss_dims": [32],
        "generator_loss": {"_target_": f"{_LOSSES}.GeneratorSquaredLoss"},
        "discriminator_loss": {"_target_": f"{_LOSSES}.DiscriminatorSquaredLoss"},
    }


def write_nanocodec(path: Path, config: dict | None = None, *, seed: int = 0) -> Path:
    """Build an `AudioCodecModel` from `config` (default: the published size) with seeded random
    weights and save it as a `.nemo` file at `path`."""
    import torch
    from nemo.collections.tts.models import AudioCodecModel
    from omegaconf import OmegaConf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = AudioCodecModel(cfg=OmegaConf.create(config or nanocodec_config()))
    model.eval()
    model.save_to(str(path))
    return path
