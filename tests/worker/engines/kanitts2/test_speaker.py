"""Speaker embedder on a tiny WavLM checkpoint saved in the real checkpoint's layout."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soxr
import torch
from safetensors.torch import load_file, save_file

from tests.fixtures.wavlm_tiny import alto, bass, build_tiny_speaker_embedder
from worker.engines.kanitts2.speaker import SpeakerEmbedder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_speaker_embedder(tmp_path_factory.mktemp("speaker-emb"))


@pytest.fixture(scope="module")
def embedder(tiny_dir: Path) -> SpeakerEmbedder:
    return SpeakerEmbedder.load(str(tiny_dir))


def test_embedding_is_a_128_d_unit_vector(embedder: SpeakerEmbedder) -> None:
    vector = embedder.embed(alto(), 16000)
    assert vector.shape == (128,)
    assert vector.dtype == np.float32
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)


def test_embedding_follows_the_reference_pipeline(embedder: SpeakerEmbedder, tiny_dir: Path) -> None:
    """WavLM on the normalised clip, mean+std pooling, conv/ReLU/BN twice, L2 norm, recomputed here."""
    from transformers import WavLMModel

    clip = alto()
    encoder = WavLMModel.from_pretrained(str(tiny_dir)).eval()
    weights = load_file(str(tiny_dir / "model.safetensors"))
    with torch.inference_mode():
        x = torch.from_numpy(clip)[None]
        hidden = encoder(input_values=(x - x.mean()) / (x.std() + 1e-10)).last_hidden_state[0].double()
    out = torch.cat([hidden.mean(0), hidden.var(0).sqrt()])
    for i in (1, 2):
        out = weights[f"top_layers.affine{i}.weight"][:, :, 0].double() @ out
        out = torch.relu(out + weights[f"top_layers.affine{i}.bias"].double())
        mean = weights[f"top_layers.batchnorm{i}.running_mean"].double()
        var = weights[f"top_layers.batchnorm{i}.running_var"].double()
        out = (out - mean) / torch.sqrt(var + 1e-3)
    expected = (out / out.norm()).numpy()
    np.testing.assert_allclose(embedder.embed(clip, 16000), expected, atol=1e-4)


def test_embedding_is_deterministic_across_calls_and_loads(embedder: SpeakerEmbedder, tiny_dir: Path) -> None:
    clip = bass()
    first = embedder.embed(clip, 16000)
    np.testing.assert_array_equal(embedder.embed(clip, 16000), first)
    np.testing.assert_array_equal(SpeakerEmbedder.load(str(tiny_dir)).embed(clip, 16000), first)


def test_different_voices_give_different_embeddings(embedder: SpeakerEmbedder) -> None:
    a, b = embedder.embed(alto(), 16000), embedder.embed(bass(), 16000)
    assert float(a @ b) < 0.9


def test_many_clips_average_to_the_normalised_mean(embedder: SpeakerEmbedder) -> None:
    clips = [(alto(seed=1), 16000), (alto(1.5, seed=2), 16000), (bass(seed=3), 16000)]
    singles = np.stack([embedder.embed(audio, sr) for audio, sr in clips])
    expected = singles.mean(axis=0) / np.linalg.norm(singles.mean(axis=0))
    combined = embedder.embed_many(clips)
    np.testing.assert_allclose(combined, expected, atol=1e-6)
    assert np.linalg.norm(combined) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(embedder.embed_many(clips[:1]), singles[0], atol=1e-6)
    with pytest.raises(ValueError):
        embedder.embed_many([])


def test_other_sample_rates_are_resampled(embedder: SpeakerEmbedder) -> None:
    clip = alto()
    at_16k = embedder.embed(clip, 16000)
    at_48k = embedder.embed(soxr.resample(clip, 16000, 48000).astype(np.float32), 48000)
    assert float(at_16k @ at_48k) > 0.999
    # ...while a different voice at 48 kHz is clearly further away
    assert float(at_48k @ embedder.embed(bass(sr=48000), 48000)) < 0.9


def test_multi_channel_audio_is_mixed_to_mono(embedder: SpeakerEmbedder) -> None:
    mono = alto()
    expected = embedder.embed(mono, 16000)
    np.testing.assert_allclose(embedder.embed(np.stack([mono, mono], axis=1), 16000), expected, atol=1e-6)
    np.testing.assert_allclose(embedder.embed(np.stack([mono, mono], axis=0), 16000), expected, atol=1e-6)


@pytest.mark.parametrize(
    "audio",
    [
        np.zeros((2, 2, 16000), dtype=np.float32),  # not audio
        np.zeros((16000, 20), dtype=np.float32),  # 20 "channels"
        np.zeros(16000, dtype=np.int16),  # PCM integers, not float samples
        np.full(16000, np.nan, dtype=np.float32),
        np.zeros(800, dtype=np.float32),  # 50 ms
    ],
)
def test_unusable_audio_is_refused(embedder: SpeakerEmbedder, audio: np.ndarray) -> None:
    with pytest.raises(ValueError):
        embedder.embed(audio, 16000)


def test_only_the_first_30_seconds_count(embedder: SpeakerEmbedder) -> None:
    long = np.concatenate([alto(30.0, seed=4), bass(10.0, seed=5)])
    np.testing.assert_allclose(embedder.embed(long, 16000), embedder.embed(long[: 30 * 16000], 16000), atol=1e-6)


def test_old_weight_norm_names_and_pytorch_bin_load_alike(
    embedder: SpeakerEmbedder, tiny_dir: Path, tmp_path: Path
) -> None:
    """Hub checkpoints saved by older transformers use `weight_g`/`weight_v` and may be `.bin` files."""
    state = load_file(str(tiny_dir / "model.safetensors"))
    prefix = "wavlm.encoder.pos_conv_embed.conv."
    state[prefix + "weight_g"] = state.pop(prefix + "parametrizations.weight.original0")
    state[prefix + "weight_v"] = state.pop(prefix + "parametrizations.weight.original1")
    old = tmp_path / "old"
    old.mkdir()
    shutil.copy(tiny_dir / "config.json", old / "config.json")
    torch.save(state, old / "pytorch_model.bin")
    clip = alto()
    np.testing.assert_allclose(
        SpeakerEmbedder.load(str(old)).embed(clip, 16000), embedder.embed(clip, 16000), atol=1e-6
    )


@pytest.mark.parametrize("change", ["missing", "unexpected"])
def test_checkpoint_with_wrong_weights_is_refused(tiny_dir: Path, tmp_path: Path, change: str) -> None:
    state = load_file(str(tiny_dir / "model.safetensors"))
    if change == "missing":
        state.pop("top_layers.batchnorm2.running_var")
    else:
        state["top_layers.affine3.weight"] = torch.zeros(1)
    shutil.copy(tiny_dir / "config.json", tmp_path / "config.json")
    save_file(state, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="does not match"):
        SpeakerEmbedder.load(str(tmp_path))


def test_a_missing_local_checkpoint_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        SpeakerEmbedder.load(str(tmp_path / "nowhere"))


def test_importing_the_module_loads_no_torch() -> None:
    code = "import sys, worker.engines.kanitts2.speaker; sys.exit('torch' in sys.modules)"
    root = Path(__file__).resolve().parents[4]
    assert subprocess.run([sys.executable, "-c", code], cwd=root, check=False).returncode == 0
