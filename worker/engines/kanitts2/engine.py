"""`KaniTTS2Engine`: continuous batching over streams, with context from chunk to chunk.

Every stream of every submitted ticket feeds the slot batcher one chunk at a time: when a chunk's
row finishes, its frames are decoded (together with every other row that finished in the same
frame), reviewed, and the stream's next chunk, prompted with this one's context, takes a slot at
the next frame boundary ahead of any waiting stream. No row waits for another row to finish, and a
result is handed out as soon as it exists, so the pipeline checkpoints every chunk at once.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from worker.engines.base import ChunkRequest, ChunkResult, Engine, EngineError, Review, Ticket, VoiceInfo
from worker.engines.kanitts2.context import StreamContext, next_context
from worker.engines.kanitts2.generate import (
    MAX_CHUNK_SECONDS,
    RowOutput,
    RowRequest,
    SlotBatcher,
    frame_cap,
)
from worker.engines.kanitts2.prompt import build_prompt

if TYPE_CHECKING:
    import torch

    from shared.settings import Settings
    from worker.engines.kanitts2.codec import NanoCodec
    from worker.engines.kanitts2.model import KaniTTS2ForCausalLM

log = logging.getLogger(__name__)

DEFAULT_VOICE = "default"
CACHE_TOKENS = 3072
"""Cache length per slot: a chunk's prompt (text, context text, up to 12 s of context frames) plus 40 s
of frames fits with room to spare."""


@dataclass
class _Stream:
    """One stream of one ticket: its chunks still to go, its context, the row it has in the batcher."""

    ticket: Ticket
    stream: int
    queue: list[ChunkRequest]
    context: StreamContext | None
    review: Review | None
    running: Hashable | None = None
    draws: int = 0
    """1 while the head chunk's second draw is generating."""
    refused_seconds: float = 0.0

    @property
    def busy(self) -> bool:
        return bool(self.queue) or self.running is not None


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
        compiled: bool = False,
        cuda_graphs: bool | None = None,
        cache_tokens: int = CACHE_TOKENS,
        async_codec: bool | None = None,
    ) -> None:
        self.default_streams = default_streams
        self.compiled = compiled
        """Decode step through `torch.compile` (inductor)."""
        self.cuda_graphs = cuda_graphs
        """Replay the frame step as captured CUDA graphs (None: on CUDA devices)."""
        self.cache_tokens = cache_tokens
        self._batcher: SlotBatcher | None = None
        self._tickets: dict[Ticket, dict[int, _Stream]] = {}
        self._outbox: dict[Ticket, list[ChunkResult]] = {}
        self._next_ticket = 0
        self._decoding: list[Future] = []
        self._codec_pool: ThreadPoolExecutor | None = None
        self._codec_stream: Any = None
        on_cuda = str(codec.device).startswith("cuda")
        if async_codec if async_codec is not None else on_cuda:
            # The codec decodes in a helper thread (on CUDA on a stream of its own) while the LM goes on.
            self._codec_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kanitts2-codec")
            if on_cuda:
                import torch

                self._codec_stream = torch.cuda.Stream(torch.device(codec.device))
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
        codec_dtype = torch.bfloat16 if settings.kanitts2_codec_bf16 and device.startswith("cuda") else None
        codec = NanoCodec.load(settings.kanitts2_codec, device=device, dtype=codec_dtype)
        log.info("KaniTTS2 loaded on %s (%s): %s", device, dtype, settings.kanitts2_model)
        engine = cls(
            model,
            tokenizer,
            codec,
            batch_size=settings.batch_size,
            context_sentences=settings.kanitts2_context_sentences,
            default_streams=settings.kanitts2_streams,
            max_frames_per_chunk=settings.kanitts2_max_frames_per_chunk,
            compiled=settings.kanitts2_compile,
            cuda_graphs=settings.kanitts2_cuda_graphs,
            cache_tokens=settings.kanitts2_cache_tokens,
        )
        engine.model_version = f"{settings.kanitts2_model}+{settings.kanitts2_codec}"
        return engine

    @property
    def device(self) -> str:
        return str(self.model.lm_head.weight.device)

    def voices(self) -> list[VoiceInfo]:
        tags = self.spec.language_tags
        # The model's own voice speaks every language it has a tag for: the tag follows the input's language.
        default = VoiceInfo(
            id=DEFAULT_VOICE, description="The model's own voice, in the language of each input", language=""
        )
        return [default] + [
            VoiceInfo(id=tag, description=f"Language/accent tag {tag}", language=tag.split("_")[0]) for tag in tags
        ]

    def languages(self) -> list[str]:
        """The languages of the checkpoint's tags (`kani-tts-2-pt`: English and Spanish among them); a model
        without tags is taken for English."""
        return list(dict.fromkeys(tag.split("_")[0] for tag in self.spec.language_tags)) or ["en"]

    def gpu_memory(self) -> tuple[int, int] | None:
        """(allocated, peak) bytes on the engine's GPU, None on CPU."""
        import torch

        if not self.device.startswith("cuda"):
            return None
        return torch.cuda.memory_allocated(self.device), torch.cuda.max_memory_allocated(self.device)

    def gpu_memory_total(self) -> int | None:
        import torch

        if not self.device.startswith("cuda"):
            return None
        return int(torch.cuda.get_device_properties(self.device).total_memory)

    def language_tag(self, request: ChunkRequest) -> str | None:
        """The `<tag>:` of the prompt: a tag named as voice, else the tag of the language (`es-MX` -> `es_mx`,
        else the first `es_*`), else the first."""
        tags = self.spec.language_tags
        if not tags:
            return None
        voice = (request.voice or "").lower()
        if voice in tags:
            return voice
        if voice not in ("", DEFAULT_VOICE) and request.speaker_embedding is None:
            raise EngineError(f"unknown voice {request.voice!r}; this model offers {', '.join(tags)}")
        language = (request.language or "").lower().replace("-", "_")
        base = language.split("_")[0]
        for wanted in (language, base):
            for tag in tags:
                if wanted and (tag == wanted or tag.startswith(wanted + "_")):
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

    # ----- submit / collect: continuous batching across streams and tickets ------------------------

    def submit(
        self,
        requests: Sequence[ChunkRequest],
        carry_in: Mapping[int, bytes] | None = None,
        review: Review | None = None,
    ) -> Ticket:
        """Queue a chunk list; each of its streams feeds the batcher one chunk at a time, in order.

        Rows are built (and bad voices or embeddings refused) here, before anything runs.
        """
        self._next_ticket += 1
        ticket = self._next_ticket
        queues: dict[int, list[ChunkRequest]] = defaultdict(list)
        for request in sorted(requests, key=lambda r: (r.stream, r.seq)):
            self.speaker(request)  # refuse bad voices and embeddings before queueing anything
            self.language_tag(request)
            queues[request.stream].append(request)
        streams = {
            stream: _Stream(
                ticket=ticket,
                stream=stream,
                queue=queue,
                context=StreamContext.from_bytes(carry_in[stream]) if carry_in and carry_in.get(stream) else None,
                review=review,
            )
            for stream, queue in queues.items()
        }
        self._tickets[ticket] = streams
        self._outbox[ticket] = []
        # The longest stream first (most frames to go, then the lowest id): a job then ends with its short
        # streams finishing beside the long one, not with the long one running alone.
        # Urgent (interactive) streams go before every waiting row, fed in reverse to keep their order.
        ordered = sorted(streams.values(), key=lambda s: (-sum(map(self.frame_cap, s.queue)), s.stream))
        for stream in reversed([s for s in ordered if s.queue[0].urgent]):
            self._feed(stream, front=True)
        for stream in ordered:
            self._feed(stream, front=False)
        return ticket

    def collect(self) -> list[tuple[Ticket, ChunkResult]]:
        # Until a result is ready, or a new chunk list waits to be admitted (its rows join the batch at
        # the next frame boundary instead of after the next finished chunk).
        while not any(self._outbox.values()) and (self._batcher_busy() or self._decoding):
            self._advance()
            if self._submissions_waiting():
                break
        ready = [(ticket, result) for ticket, results in self._outbox.items() for result in results]
        for results in self._outbox.values():
            results.clear()
        for ticket in [t for t, streams in self._tickets.items() if not any(s.busy for s in streams.values())]:
            del self._tickets[ticket]
            self._outbox.pop(ticket, None)
        return ready

    def cancel(self, ticket: Ticket) -> None:
        streams = self._tickets.pop(ticket, {})
        self._outbox.pop(ticket, None)
        if self._batcher is not None and streams:
            self._batcher.cancel({s.running for s in streams.values() if s.running is not None})

    def pending(self, ticket: Ticket | None = None) -> bool:
        if ticket is None:
            return bool(self._tickets) or any(self._outbox.values())
        return ticket in self._tickets

    def _batcher_busy(self) -> bool:
        return self._batcher is not None and self._batcher.busy

    def batcher(self) -> SlotBatcher:
        """The slot batcher, built on first use with this engine's slots and cache size."""
        if self._batcher is None:
            self._batcher = SlotBatcher(
                self.model,
                slots=self.batch_size,
                max_tokens=self.cache_tokens,
                max_frames=math.ceil(MAX_CHUNK_SECONDS * self.frames_per_second),
                compiled=self.compiled,
                cuda_graphs=self.cuda_graphs,
            )
        return self._batcher

    def _feed(self, stream: _Stream, *, front: bool) -> None:
        """Give the stream's next chunk to the batcher (its context exists: the previous chunk is done).

        A chunk too long for a slot's cache fails alone: its result carries the error (the rows of other
        chunks and tickets go on) and the stream goes on with its next chunk from the same context."""
        while stream.running is None and stream.queue:
            request = stream.queue[0]
            tag = (stream.ticket, stream.stream, request.key, stream.draws)
            row = self.row_for(request, stream.context)
            try:
                self.batcher().submit(tag, row, front=front)
            except ValueError as error:  # a prompt plus its frame cap longer than a slot's cache
                stream.queue.pop(0)
                stream.draws, stream.refused_seconds = 0, 0.0
                failed = EngineError(f"chunk {request.key} does not fit the engine's cache: {error}")
                self._outbox.setdefault(stream.ticket, []).append(
                    ChunkResult(key=request.key, audio=np.zeros(0, np.float32), error=failed)
                )
                continue
            stream.running = tag

    def _advance(self) -> None:
        """One frame of the batcher; finished rows go to the codec; decoded rows are reviewed and handed on.

        On CUDA the codec runs on its own stream in a helper thread, so the next frames of the LM are
        generated while it decodes; its results are taken at a later frame boundary (or waited for
        when the LM has nothing else to do). On CPU it decodes in line.
        """
        batcher = self.batcher()
        finished = batcher.step() if batcher.busy else []
        rows = self._finished_rows(batcher, finished)
        if rows:
            self._decoding.append(self._start_decode(rows))
        idle = not batcher.busy
        while self._decoding and (self._decoding[0].done() or idle):
            job = self._decoding.pop(0)
            self._hand_on(*job.result())

    def _start_decode(self, rows: list[tuple[_Stream, RowOutput, float]]) -> Future:
        chunks = [(stream.queue[0], stream.context) for stream, _, _ in rows]
        outputs = [output for _, output, _ in rows]
        if self._codec_pool is None:
            future: Future = Future()
            future.set_result((rows, *self._timed_decode(chunks, outputs)))
            return future
        return self._codec_pool.submit(self._decode_on_codec_stream, rows, chunks, outputs)

    def _decode_on_codec_stream(
        self,
        rows: list[tuple[_Stream, RowOutput, float]],
        chunks: list[tuple[ChunkRequest, StreamContext | None]],
        outputs: list[RowOutput],
    ) -> tuple[list[tuple[_Stream, RowOutput, float]], list[np.ndarray], float]:
        import torch

        with torch.cuda.stream(self._codec_stream):
            return (rows, *self._timed_decode(chunks, outputs))

    def _timed_decode(
        self, chunks: list[tuple[ChunkRequest, StreamContext | None]], outputs: list[RowOutput]
    ) -> tuple[list[np.ndarray], float]:
        """Samples of every row and the codec's seconds per frame (to charge each row its share)."""
        started = time.perf_counter()
        audio = self._decode(chunks, outputs)
        return audio, (time.perf_counter() - started) / max(1, sum(max(1, len(o.frames)) for o in outputs))

    def _finished_rows(
        self, batcher: SlotBatcher, finished: list[tuple[Hashable, RowOutput]]
    ) -> list[tuple[_Stream, RowOutput, float]]:
        """The finished rows whose stream still waits for them (a cancelled ticket's rows are dropped)."""
        rows = []
        for tag, output in finished:
            ticket, stream_id, _key, _draw = cast(tuple[Ticket, int, str, int], tag)
            stream = self._tickets.get(ticket, {}).get(stream_id)
            if stream is not None and stream.running == tag:
                rows.append((stream, output, batcher.seconds.pop(tag, 0.0)))
            else:
                batcher.seconds.pop(tag, None)
        return rows

    def _hand_on(
        self, rows: list[tuple[_Stream, RowOutput, float]], audio: list[np.ndarray], decode_share: float
    ) -> None:
        """Review each decoded row: keep it (context on, result out) or draw it again; feed the streams."""
        decoded = [
            (row, samples)
            for row, samples in zip(rows, audio, strict=True)
            if self._tickets.get(row[0].ticket, {}).get(row[0].stream) is row[0]  # not cancelled meanwhile
        ]
        rows = [row for row, _ in decoded]
        for (stream, output, seconds), samples in decoded:
            request = stream.queue[0]
            stream.running = None
            if not output.stopped:
                log.warning("chunk %s reached its frame cap (%d frames)", request.key, len(output.frames))
            context = next_context(
                text=request.text,
                last_sentence=request.last_sentence,
                frames=output.frames,
                previous=stream.context,
                sentences=self.context_sentences,
                tail_frames=self.codec.receptive_field_frames if self.context_sentences > 0 else 0,
                frames_per_second=self.frames_per_second,
            )
            result = ChunkResult(
                key=request.key,
                audio=samples,
                carry=context.to_bytes() if self.context_sentences > 0 else None,
                frames=len(output.frames),
                synth_seconds=seconds + decode_share * max(1, len(output.frames)),
            )
            verdict = stream.review(request, result) if stream.review is not None else True
            if not verdict and stream.draws == 0:
                # Drawn again from the same context before the stream goes on; charged to the kept draw.
                stream.refused_seconds = result.synth_seconds
                stream.draws = 1
                stream.queue[0] = request.redraw()
            else:
                result.synth_seconds += stream.refused_seconds
                stream.refused_seconds, stream.draws = 0.0, 0
                stream.context = context
                stream.queue.pop(0)
                self._outbox.setdefault(stream.ticket, []).append(result)
        # Each stream's next chunk (or redraw) takes a slot before any waiting stream's chunk; fed in
        # reverse so that streams finishing together keep their order at the front of the queue.
        for stream, _, _ in reversed(rows):
            self._feed(stream, front=True)

    def frame_cap(self, request: ChunkRequest) -> int:
        """Most frames the chunk may generate (text-derived, bounded by `max_frames_per_chunk`)."""
        cap = frame_cap(request.text, request.expected_seconds, self.frames_per_second)
        return cap if self.max_frames_per_chunk is None else min(cap, self.max_frames_per_chunk)

    def row_for(self, request: ChunkRequest, context: StreamContext | None) -> RowRequest:
        """The generation row of one chunk: prompt (with the stream's context), speaker, sampling, cap."""
        speaker = self.speaker(request)
        use_text = context is not None and self.context_sentences > 0 and bool(context.text)
        context = context if use_text else None
        items = build_prompt(
            self.tokenizer,
            self.spec.tokens,
            request.text,
            language_tag=self.language_tag(request),
            with_speaker=speaker is not None,
            context_text=context.text if context is not None else "",
            context_frames=context.frames if context is not None else None,
        )
        cap = self.frame_cap(request)
        sampling = request.sampling
        return RowRequest(
            items=items,
            seed=request.seed(),
            max_frames=cap,
            speaker=speaker,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            repetition_penalty=sampling.repetition_penalty,
        )

    def _decode(
        self, chunks: Sequence[tuple[ChunkRequest, StreamContext | None]], outputs: Sequence[RowOutput]
    ) -> list[np.ndarray]:
        """All rows that finished in one frame, in one codec call, each behind its stream's codec tail."""
        import torch

        codes = [torch.from_numpy(np.ascontiguousarray(o.frames.T)) for o in outputs]
        left: list[torch.Tensor | None] = []
        for _request, context in chunks:
            use = self.context_sentences > 0 and context is not None and len(context.tail) > 0
            left.append(torch.from_numpy(np.ascontiguousarray(context.tail.T)) if use and context else None)
        return self.codec.decode(codes, left)

    def close(self) -> None:
        """Drop the batcher's buffers, the model and the codec; free the GPU's cached blocks."""
        if self._codec_pool is not None:
            self._codec_pool.shutdown(wait=True, cancel_futures=True)
            self._codec_pool = None
        self._decoding.clear()
        self._batcher = None
        self._tickets.clear()
        self._outbox.clear()
        for name in ("model", "codec"):
            vars(self).pop(name, None)
        import gc

        gc.collect()
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()
