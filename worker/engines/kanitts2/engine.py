"""`KaniTTS2Engine`: batched waves over streams, with context from chunk to chunk.

Each wave generates the next chunk of every stream that has one (at most `batch_size` rows) in one
batch, decodes all of them with one codec call and yields their results before the next wave starts,
so the pipeline checkpoints every chunk as soon as it exists.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from worker.engines.base import ChunkRequest, ChunkResult, Engine, EngineError, Review, VoiceInfo
from worker.engines.kanitts2.context import StreamContext, next_context
from worker.engines.kanitts2.generate import RowRequest, frame_cap, generate_frames
from worker.engines.kanitts2.prompt import build_prompt

if TYPE_CHECKING:
    import torch

    from shared.settings import Settings
    from worker.engines.kanitts2.codec import NanoCodec
    from worker.engines.kanitts2.model import KaniTTS2ForCausalLM

log = logging.getLogger(__name__)

DEFAULT_VOICE = "default"


def resolve_device(requested: str) -> str:
    """`auto` -> `cuda` when a GPU is visible, else `cpu` (called in the worker process, never at import)."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


class KaniTTS2Engine(Engine):
    name = "kanitts2"
    can_clone = True

    def __init__(
        self,
        model: KaniTTS2ForCausalLM,
        tokenizer: Any,
        codec: NanoCodec,
        *,
        batch_size: int = 16,
        context_sentences: int = 1,
        max_frames_per_chunk: int | None = None,
        default_streams: int = 4,
    ) -> None:
        self.default_streams = default_streams
        self.model = model
        self.tokenizer = tokenizer
        self.codec = codec
        self.batch_size = batch_size
        self.context_sentences = context_sentences
        self.max_frames_per_chunk = max_frames_per_chunk
        """Hard bound below the text-derived frame cap (tests and benchmarks; None in production)."""
        self.spec = model.spec
        self.sample_rate = codec.sample_rate
        self.frames_per_second = codec.sample_rate / codec.samples_per_frame
        if codec.num_codebooks != self.spec.tokens_per_frame or codec.codebook_size != self.spec.tokens.codebook_size:
            raise ValueError("codec and LM disagree on codebooks")

    @classmethod
    def load(cls, settings: Settings) -> KaniTTS2Engine:
        """Load LM, tokenizer and codec on the configured device (bf16 LM on GPU, fp32 on CPU)."""
        import torch

        from worker.engines.kanitts2.codec import NanoCodec
        from worker.engines.kanitts2.model import load_kanitts2

        if settings.hf_cache_dir:  # the codec's hub download has no cache argument of its own
            os.environ.setdefault("HF_HUB_CACHE", settings.hf_cache_dir)
        device = resolve_device(settings.kanitts2_device)
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        model, tokenizer = load_kanitts2(
            settings.kanitts2_model, device=device, dtype=dtype, cache_dir=settings.hf_cache_dir
        )
        codec = NanoCodec.load(settings.kanitts2_codec, device=device)
        log.info("KaniTTS2 loaded on %s (%s): %s", device, dtype, settings.kanitts2_model)
        return cls(
            model,
            tokenizer,
            codec,
            batch_size=settings.batch_size,
            context_sentences=settings.kanitts2_context_sentences,
            default_streams=settings.kanitts2_streams,
            max_frames_per_chunk=settings.kanitts2_max_frames_per_chunk,
        )

    @property
    def device(self) -> torch.device:
        return self.model.lm_head.weight.device

    def voices(self) -> list[VoiceInfo]:
        tags = self.spec.language_tags
        default = VoiceInfo(
            id=DEFAULT_VOICE,
            description="The model's own voice" + (f" with tag {tags[0]}" if tags else ""),
            language=tags[0].split("_")[0] if tags else "",
        )
        return [default] + [
            VoiceInfo(id=tag, description=f"Language/accent tag {tag}", language=tag.split("_")[0]) for tag in tags
        ]

    def gpu_memory(self) -> tuple[int, int] | None:
        """(allocated, peak) bytes on the engine's GPU, None on CPU."""
        import torch

        if self.device.type != "cuda":
            return None
        return torch.cuda.memory_allocated(self.device), torch.cuda.max_memory_allocated(self.device)

    def language_tag(self, request: ChunkRequest) -> str | None:
        """The `<tag>:` of the prompt: a tag named as voice, else one matching the language, else the first."""
        tags = self.spec.language_tags
        if not tags:
            return None
        voice = (request.voice or "").lower()
        if voice in tags:
            return voice
        if voice not in ("", DEFAULT_VOICE) and request.speaker_embedding is None:
            raise EngineError(f"unknown voice {request.voice!r}; this model offers {', '.join(tags)}")
        language = (request.language or "").lower().replace("-", "_")
        for tag in tags:
            if language and (tag == language or tag.startswith(language + "_")):
                return tag
        return tags[0]

    def speaker(self, request: ChunkRequest) -> np.ndarray | None:
        if request.speaker_embedding is None:
            return None
        vector = np.asarray(request.speaker_embedding, dtype=np.float32).reshape(-1)
        if vector.shape != (self.spec.speaker_emb_dim,) or not np.all(np.isfinite(vector)):
            raise EngineError(f"speaker embedding must be {self.spec.speaker_emb_dim} finite numbers")
        norm = float(np.linalg.norm(vector))
        if norm == 0.0:
            raise EngineError("speaker embedding is all zeros")
        return vector / norm

    def generate(
        self,
        requests: Sequence[ChunkRequest],
        carry_in: Mapping[int, bytes] | None = None,
        review: Review | None = None,
    ) -> Iterator[ChunkResult]:
        queues: dict[int, list[ChunkRequest]] = defaultdict(list)
        for request in sorted(requests, key=lambda r: (r.stream, r.seq)):
            queues[request.stream].append(request)
        contexts: dict[int, StreamContext | None] = {
            stream: StreamContext.from_bytes(data) for stream, data in (carry_in or {}).items() if data
        }
        refused: dict[str, float] = {}  # chunk key -> engine seconds of its refused draw, charged to the kept one
        while any(queues.values()):
            # Lowest stream ids first; streams beyond batch_size wait for the next wave.
            streams = [stream for stream in sorted(queues) if queues[stream]][: self.batch_size]
            for request, result, context in self._wave([queues[stream].pop(0) for stream in streams], contexts):
                if review is not None and not review(request, result) and request.key not in refused:
                    # Drawn again in the stream's next wave, from the same context, before the stream goes on.
                    refused[request.key] = result.synth_seconds
                    queues[request.stream].insert(0, request.redraw())
                    continue
                result.synth_seconds += refused.pop(request.key, 0.0)
                contexts[request.stream] = context
                yield result

    def row_for(self, request: ChunkRequest, context: StreamContext | None) -> RowRequest:
        """The generation row of one chunk: prompt (with the stream's context), speaker, sampling, cap."""
        speaker = self.speaker(request)
        use_text = context is not None and self.context_sentences > 0 and bool(context.text)
        items = build_prompt(
            self.tokenizer,
            self.spec.tokens,
            request.text,
            language_tag=self.language_tag(request),
            with_speaker=speaker is not None,
            context_text=context.text if use_text else "",
            context_frames=context.frames if use_text else None,
        )
        cap = frame_cap(request.text, request.expected_seconds, self.frames_per_second)
        if self.max_frames_per_chunk is not None:
            cap = min(cap, self.max_frames_per_chunk)
        sampling = request.sampling
        return RowRequest(
            items=items,
            seed=request.seed(),
            max_frames=cap,
            speaker=speaker,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            repetition_penalty=sampling.repetition_penalty,
        )

    def _wave(
        self, wave: list[ChunkRequest], contexts: Mapping[int, StreamContext | None]
    ) -> Iterator[tuple[ChunkRequest, ChunkResult, StreamContext]]:
        """One batch, one chunk per stream: each chunk's result and the context it would hand on."""
        started = time.perf_counter()
        rows = [self.row_for(request, contexts.get(request.stream)) for request in wave]
        outputs = generate_frames(self.model, rows)
        audio = self._decode(wave, outputs, contexts)
        # The wave's wall time, shared by the rows in proportion to the frames each generated.
        elapsed = time.perf_counter() - started
        total_frames = max(1, sum(len(output.frames) for output in outputs))
        for request, output, samples in zip(wave, outputs, audio, strict=True):
            if not output.stopped:
                log.warning("chunk %s reached its frame cap (%d frames)", request.key, len(output.frames))
            context = next_context(
                text=request.text,
                last_sentence=request.last_sentence,
                frames=output.frames,
                previous=contexts.get(request.stream),
                sentences=self.context_sentences,
                tail_frames=self.codec.receptive_field_frames if self.context_sentences > 0 else 0,
                frames_per_second=self.frames_per_second,
            )
            result = ChunkResult(
                key=request.key,
                audio=samples,
                carry=context.to_bytes() if self.context_sentences > 0 else None,
                frames=len(output.frames),
                synth_seconds=elapsed * max(1, len(output.frames)) / total_frames,
            )
            yield request, result, context

    def _decode(self, wave, outputs, contexts) -> list[np.ndarray]:
        import torch

        codes = [torch.from_numpy(np.ascontiguousarray(o.frames.T)) for o in outputs]
        left: list[torch.Tensor | None] = []
        for request in wave:
            context = contexts.get(request.stream)
            use = self.context_sentences > 0 and context is not None and len(context.tail) > 0
            left.append(torch.from_numpy(np.ascontiguousarray(context.tail.T)) if use else None)
        return self.codec.decode(codes, left)
