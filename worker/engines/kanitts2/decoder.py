"""The decode path at hardware speed: a static per-slot cache and one fused frame step.

`transformers`' LFM2 forward (used by `model.py` for conformance and tests) grows its caches by
concatenation and issues about 860 small operators per token. Here the same mathematics runs on
weights fused once per load (one QKV matmul, one w1|w3 matmul, q/k norms in one call, RoPE as one
matmul by a fixed rotation, per-layer learnable-RoPE frequencies precomputed) over buffers allocated
once: a KV cache `[slots, 2 * kv_heads, max_tokens, head_dim]` (keys, then values) per attention layer
and a conv state `[slots, hidden, tokens_per_frame]` (a ring of recent inputs) per short-conv layer.
A decode step writes in place at each slot's own length, so the step has fixed shapes per bucket of
slots and can be compiled (`torch.compile`) and captured as a CUDA graph. One captured unit is a
whole frame: four tokens, one per codebook, sampled on the device (`sampling.sample`); the host
looks at the slots once per frame.

Slots are independent rows: a slot is refilled by `prefill` (the prompt of a new row, eager, any
length) while the other slots keep their state, which is what continuous batching needs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from worker.engines.kanitts2.model import KaniTTS2ForCausalLM
from worker.engines.kanitts2.positions import frame_positions
from worker.engines.kanitts2.sampling import exponential_noise, noise_columns, row_keys, sample, seed_key

BUCKETS = (1, 2, 4, 8, 16, 32, 64, 96, 128, 192, 256)
"""Slot counts a frame step is compiled/captured for: a step runs over the smallest bucket that
covers the highest occupied slot (new rows take the lowest free slot, so occupied slots stay low)."""


def bucket_for(occupied: int, slots: int) -> int:
    """Smallest bucket >= `occupied`, never more than `slots`."""
    for size in BUCKETS:
        if size >= occupied:
            return min(size, slots)
    return slots


@dataclass
class RowRequest:
    """One row: prompt items (see `prompt.build_prompt`) and how to sample it."""

    items: list[int]
    seed: int
    max_frames: int
    speaker: np.ndarray | None = None
    temperature: float = 0.8
    top_p: float = 0.95
    repetition_penalty: float = 1.1
    min_frames: int = 1
    """Frames before `end_of_speech` may be sampled; the benchmark sets `max_frames` to force a length."""
    top_k: int = 50
    """Keep the k most likely codes per step (0 = off), as the reference's `generate` does by default."""


class _Layer:
    """One decoder layer's weights, fused for the decode step (`*_t` are transposed views, no copies)."""

    def __init__(self, layer: Any, attention: bool, rotate: torch.Tensor, ring: int) -> None:
        self.attention = attention
        self.op_norm = layer.operator_norm.weight
        self.ffn_norm = layer.ffn_norm.weight
        self.eps = float(layer.operator_norm.variance_epsilon)
        mlp: Any = layer.feed_forward
        self.w13 = torch.cat([mlp.w1.weight, mlp.w3.weight]).contiguous()
        self.w2 = mlp.w2.weight
        self.w13_t, self.w2_t = self.w13.t(), self.w2.t()
        if attention:
            attn: Any = layer.self_attn
            self.qkv = torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]).contiguous()
            self.out = attn.out_proj.weight
            heads = attn.q_proj.weight.shape[0] // attn.head_dim
            kv_heads = attn.k_proj.weight.shape[0] // attn.head_dim
            self.qk_norm = torch.cat(
                [attn.q_layernorm.weight.expand(heads, -1), attn.k_layernorm.weight.expand(kv_heads, -1)]
            ).contiguous()
            self.qk_eps = float(attn.q_layernorm.variance_epsilon)
            self.qkv_t, self.out_t = self.qkv.t(), self.out.t()
            # (x * w) @ R == x @ (diag(w) R) per head: the q/k norm weight folded into the rotation.
            self.qk_rotate = (self.qk_norm[:, :, None] * rotate).contiguous()  # [heads + kv_heads, d, d]
            self.qk_weight = self.qk_norm[:, None, :]  # [heads + kv_heads, 1, d]
        else:
            conv: Any = layer.conv
            self.in_w, self.in_b = conv.in_proj.weight, conv.in_proj.bias
            self.conv_w = conv.conv.weight.squeeze(1).contiguous()  # [hidden, kernel]
            self.conv_b = conv.conv.bias
            self.out_w, self.out_b = conv.out_proj.weight, conv.out_proj.bias
            self.in_t, self.out_t = self.in_w.t(), self.out_w.t()
            # The conv state is a ring of `ring` (= tokens per frame) inputs; token q of a frame writes
            # entry q, so its taps are the kernel laid out backwards from q (one entry is unused).
            kernel = self.conv_w.shape[-1]
            if kernel > ring:
                raise ValueError(f"conv kernel {kernel} longer than the {ring}-entry ring")
            taps = torch.zeros(ring, self.conv_w.shape[0], ring, dtype=self.conv_w.dtype, device=self.conv_w.device)
            for q in range(ring):
                for j in range(kernel):
                    taps[q, :, (q - (kernel - 1 - j)) % ring] = self.conv_w[:, j]
            self.ring_taps = list(taps.unbind(0))


def _rms(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """LFM2's RMSNorm in one fused call (float32 accumulation inside; one rounding in bf16)."""
    return F.rms_norm(x, weight.shape, weight, eps)


class StaticDecoder:
    """Fused weights and the static per-slot state of one batch of `slots` rows."""

    def __init__(self, model: KaniTTS2ForCausalLM, *, slots: int, max_tokens: int, max_frames: int) -> None:
        config: Any = model.config
        spec = model.spec
        self.model = model
        self.spec = spec
        self.ids = spec.tokens
        self.slots = slots
        self.max_tokens = max_tokens
        self.max_frames = max_frames
        weight = model.lm_head.weight
        self.device = weight.device
        self.dtype = weight.dtype
        body: Any = model.model
        self.head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)
        half = self.head_dim // 2
        rotate = torch.zeros(self.head_dim, self.head_dim)
        rotate[torch.arange(half) + half, torch.arange(half)] = -1.0
        rotate[torch.arange(half), torch.arange(half) + half] = 1.0
        self.rotate = rotate.to(self.device, self.dtype)  # x @ rotate == rotate_half(x)
        self.per_frame = spec.tokens_per_frame
        self.layers = [
            _Layer(layer, kind == "full_attention", self.rotate, self.per_frame)
            for layer, kind in zip(body.layers[: config.num_hidden_layers], config.layer_types, strict=False)
        ]
        ids = spec.tokens

        def codebook_rows(matrix: torch.Tensor) -> torch.Tensor:
            """`[codebooks, codebook_size + 1, hidden]`: each codebook's rows of a vocabulary matrix, then
            end_of_speech's (index codebook_size everywhere)."""
            eos = matrix[ids.end_of_speech : ids.end_of_speech + 1]
            starts = [ids.audio_token(q, 0) for q in range(self.per_frame)]
            return torch.stack([torch.cat([matrix[s : s + ids.codebook_size], eos]) for s in starts]).contiguous()

        self.final_norm = body.embedding_norm.weight
        self.final_eps = float(body.embedding_norm.variance_epsilon)
        # A stopped row feeds end_of_speech's embedding for the rest of its frame: computed, never read.
        self.code_embeddings = list(codebook_rows(body.embed_tokens.weight).unbind(0))
        self.heads = int(config.num_attention_heads)
        self.kv_heads = int(config.num_key_value_heads)
        self.kernel = int(config.conv_L_cache)
        hidden = int(config.hidden_size)
        self.codes_per_book = ids.codebook_size
        self.head_t = [rows.t() for rows in codebook_rows(weight).unbind(0)]  # the audio-only head
        self.inv_freq = self._layer_frequencies(model)  # [attention layers, head_dim // 2] float32
        self.qk_norm_weights = [layer.qk_weight for layer in self.layers if layer.attention]

        def zeros(*shape: int, dtype: torch.dtype = self.dtype) -> torch.Tensor:
            return torch.zeros(shape, dtype=dtype, device=self.device)

        self.kv = [
            zeros(slots, 2 * self.kv_heads, max_tokens, self.head_dim) for layer in self.layers if layer.attention
        ]
        self.conv = [zeros(slots, hidden, self.per_frame) for layer in self.layers if not layer.attention]
        self.hidden = zeros(slots, hidden)
        long, f32, boolean = torch.long, torch.float32, torch.bool
        self.length = zeros(slots, dtype=long)
        self.position = zeros(slots, dtype=f32)
        self.counter = zeros(slots, dtype=long)
        self.seed = zeros(slots, dtype=long)
        self.frames_done = zeros(slots, dtype=long)
        self.min_frames = zeros(slots, dtype=long)
        self.max_frames_row = zeros(slots, dtype=long)
        self.temperature = zeros(slots, dtype=f32)
        self.top_k = zeros(slots, dtype=long)
        self.top_p = zeros(slots, dtype=f32)
        self.penalty = torch.ones(slots, dtype=f32, device=self.device)
        self.active = zeros(slots, dtype=boolean)
        self.stopped = zeros(slots, dtype=boolean)
        self.seen = zeros(slots, self.per_frame, ids.codebook_size + 1, dtype=boolean)
        self.codes = zeros(slots, max_frames, self.per_frame, dtype=long)
        self.true = torch.ones((), dtype=boolean, device=self.device)
        self.slot_index = torch.arange(slots, device=self.device)
        self.token_offsets = torch.arange(self.per_frame, device=self.device, dtype=long)
        self.rank = torch.arange(ids.codebook_size + 1, device=self.device)
        self.columns = noise_columns(ids.codebook_size + 1, self.device)
        self.later_bias = torch.zeros(ids.codebook_size + 1, device=self.device)
        self.later_bias[ids.codebook_size] = float("-inf")  # end_of_speech only at a frame boundary
        self.positions_row = torch.arange(max_tokens, device=self.device)[None, None, None, :]
        self._buckets: dict[int, _Bucket] = {}
        self._graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self._step: Callable[[int], None] = self.frame_step

    @staticmethod
    def _layer_frequencies(model: KaniTTS2ForCausalLM) -> torch.Tensor:
        """Each attention layer's inverse RoPE frequencies, learnable scale applied (float32)."""
        body: Any = model.model
        config: Any = model.config
        base = body.rotary_emb.inv_freq.float()
        rows = []
        for index, kind in enumerate(config.layer_types[: config.num_hidden_layers]):
            if kind != "full_attention":
                continue
            if body.learnable_rope_layers is not None:
                alpha = body.learnable_rope_layers[str(index)].alpha(model.spec.alpha_min, model.spec.alpha_max)
                rows.append(base * alpha.float().to(base.device))
            else:
                rows.append(base)
        return torch.stack(rows).to(model.lm_head.weight.device)

    # ----- compile / graphs -------------------------------------------------------------------------

    def compile(self) -> None:
        """Use the `torch.compile`d frame step (inductor; one graph per bucket, static shapes)."""
        import torch._dynamo

        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 2 * len(BUCKETS))
        self._step = torch.compile(self.frame_step, dynamic=False, fullgraph=True)

    def capture_graphs(self) -> None:
        """Capture the frame step of every bucket as a CUDA graph; `run_frame` then replays them.

        Done before any row is admitted: the warm-up runs execute the step on the (empty) slots, and
        every buffer the step reads or writes is allocated once, so a replay sees the same addresses.
        The graphs share one memory pool (they never run at the same time).
        """
        if self.device.type != "cuda":
            raise ValueError("CUDA graphs need a CUDA device")
        sizes = sorted({bucket_for(size, self.slots) for size in BUCKETS})
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for n in sizes:
                for _ in range(2):
                    self._step(n)
        torch.cuda.current_stream(self.device).wait_stream(side)
        pool = torch.cuda.graph_pool_handle()
        graphs: dict[int, torch.cuda.CUDAGraph] = {}
        for n in sizes:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=pool):
                self._step(n)
            graphs[n] = graph
        torch.cuda.synchronize(self.device)
        self.active.zero_()
        self._graphs = graphs

    def run_frame(self, n: int) -> None:
        """One frame for slots [0, n): the captured graph, or the compiled or eager step."""
        graph = self._graphs.get(n)
        if graph is not None:
            graph.replay()
        else:
            self._step(n)

    # ----- prefill ----------------------------------------------------------------------------------

    @torch.no_grad()
    def prefill(self, slot_ids: Sequence[int], rows: Sequence[RowRequest]) -> None:
        """Fill the given slots with new rows: run their prompts (right-padded, one call) and reset state."""
        ids = self.ids
        count, width = len(rows), max(len(row.items) for row in rows)
        lengths = [len(row.items) for row in rows]
        if max(len(row.items) + self.per_frame * row.max_frames for row in rows) > self.max_tokens:
            raise ValueError(f"a row needs more than the cache's {self.max_tokens} tokens")
        if max(row.max_frames for row in rows) > self.max_frames:
            raise ValueError(f"a row asks for more than {self.max_frames} frames")
        items = torch.full((count, width), ids.pad, dtype=torch.long)
        mask = torch.zeros((count, width), dtype=torch.long)
        speaker = torch.zeros((count, self.spec.speaker_emb_dim), dtype=torch.float32)
        for b, row in enumerate(rows):
            items[b, : lengths[b]] = torch.tensor(row.items, dtype=torch.long)
            mask[b, : lengths[b]] = 1
            if row.speaker is not None:
                speaker[b] = torch.as_tensor(np.asarray(row.speaker, dtype=np.float32).reshape(-1))
        is_audio = (items >= ids.audio_start) & (items < ids.audio_end) & mask.bool()
        audio_count = is_audio.sum(dim=1)
        if bool((audio_count % self.per_frame != 0).any()):
            raise ValueError("pre-filled audio must be whole frames")
        positions = frame_positions(
            items, mask, audio_start=ids.audio_start, tokens_per_frame=self.per_frame, audio_step=self.spec.audio_step
        )
        other_count = mask.sum(dim=1) - audio_count
        seen = torch.zeros((count, self.per_frame, ids.codebook_size + 1), dtype=torch.bool)
        b_idx, cols = torch.nonzero(is_audio, as_tuple=True)
        offsets = items[b_idx, cols] - ids.audio_start
        seen[b_idx, offsets // ids.codebook_size, offsets % ids.codebook_size] = True

        device = self.device
        slots = torch.tensor(list(slot_ids), dtype=torch.long, device=device)
        lengths_t = torch.tensor(lengths, dtype=torch.long, device=device)
        items, positions = items.to(device), positions.to(device)
        x = self.model.model.embed(items, speaker.to(device))
        cos, sin = self._rope(positions)  # [count, width, layers, head_dim]
        attention, conv = 0, 0
        last = (lengths_t - 1)[:, None, None]
        for layer in self.layers:
            h = _rms(x, layer.op_norm, layer.eps)
            if layer.attention:
                q, k, v = self._qkv(h, layer, cos[:, :, attention], sin[:, :, attention])
                out = F.scaled_dot_product_attention(
                    q.transpose(1, 2),
                    k.transpose(1, 2),
                    v.transpose(1, 2),
                    is_causal=True,
                    scale=self.head_dim**-0.5,
                    enable_gqa=True,
                )
                self.kv[attention][slots, :, :width] = torch.cat([k, v], dim=2).transpose(1, 2)
                x = x + F.linear(out.transpose(1, 2).reshape(count, width, -1), layer.out)
                attention += 1
            else:
                bcx = F.linear(h, layer.in_w, layer.in_b)
                b_gate, c_gate, xs = bcx.chunk(3, dim=-1)
                bx = (b_gate * xs).transpose(1, 2)  # [count, hidden, width]
                y = F.conv1d(bx, layer.conv_w[:, None, :], layer.conv_b, padding=self.kernel - 1, groups=bx.shape[1])
                y = c_gate * y[..., :width].transpose(1, 2)
                x = x + F.linear(y, layer.out_w, layer.out_b)
                # The conv state is the last kernel-1 inputs of each row (zeros before a short prompt).
                padded = F.pad(bx, (self.kernel - 1, 0))
                index = last.expand(-1, bx.shape[1], 1) + torch.arange(1, self.kernel, device=device)
                ring = torch.zeros((count, bx.shape[1], self.per_frame), dtype=bx.dtype, device=device)
                ring[..., self.per_frame - (self.kernel - 1) :] = padded.gather(2, index)
                self.conv[conv][slots] = ring
                conv += 1
            x = x + self._ffn(x, layer)
        final = _rms(x, self.final_norm, self.final_eps)
        self.hidden[slots] = final.gather(1, last.expand(-1, 1, final.shape[-1])).squeeze(1)
        frames_before = torch.div(audio_count, self.per_frame, rounding_mode="floor")
        self.position[slots] = (other_count.float() + frames_before.float() * self.spec.audio_step).to(device)
        self.length[slots] = lengths_t
        self.counter[slots] = 0
        self.frames_done[slots] = 0
        self.seen[slots] = seen.to(device)

        def put(target: torch.Tensor, values: list, dtype: torch.dtype) -> None:
            target[slots] = torch.tensor(values, dtype=dtype, device=device)

        self.seed[slots] = seed_key(torch.tensor([int(row.seed) for row in rows], dtype=torch.long, device=device))
        put(self.min_frames, [max(1, row.min_frames) for row in rows], torch.long)
        put(self.max_frames_row, [row.max_frames for row in rows], torch.long)
        put(self.temperature, [row.temperature for row in rows], torch.float32)
        # Greedy rows (temperature <= 0) keep only their best code: top-k 1, no special case per step.
        put(self.top_k, [1 if row.temperature <= 0 else row.top_k for row in rows], torch.long)
        put(self.top_p, [row.top_p for row in rows], torch.float32)
        put(self.penalty, [row.repetition_penalty for row in rows], torch.float32)
        self.active[slots] = True
        self.stopped[slots] = False

    def release(self, slot_ids: Sequence[int]) -> None:
        """Mark slots free (their buffers are overwritten by the next prefill)."""
        if slot_ids:
            self.active[torch.tensor(list(slot_ids), dtype=torch.long, device=self.device)] = False

    # ----- the shared layer pieces ------------------------------------------------------------------

    def _rope(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin `[..., attention layers, head_dim]` in the model dtype, from float32 positions."""
        freqs = positions[..., None, None] * self.inv_freq
        emb = torch.cat([freqs, freqs], dim=-1)
        return emb.cos().to(self.dtype), emb.sin().to(self.dtype)  # cos/sin of float32 angles

    def _qkv(
        self, h: torch.Tensor, layer: _Layer, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q `[..., heads, d]`, k and v `[..., kv_heads, d]`: one matmul, q/k norms in one call, RoPE."""
        qkv = F.linear(h, layer.qkv).unflatten(-1, (self.heads + 2 * self.kv_heads, self.head_dim))
        qk, v = qkv.split([self.heads + self.kv_heads, self.kv_heads], dim=-2)
        qk = F.rms_norm(qk, (self.head_dim,), eps=layer.qk_eps) * layer.qk_norm
        qk = qk * cos.unsqueeze(-2) + (qk @ self.rotate) * sin.unsqueeze(-2)
        q, k = qk.split([self.heads, self.kv_heads], dim=-2)
        return q, k, v

    def _ffn(self, x: torch.Tensor, layer: _Layer) -> torch.Tensor:
        gate, up = F.linear(_rms(x, layer.ffn_norm, layer.eps), layer.w13).chunk(2, dim=-1)
        return F.linear(F.silu(gate) * up, layer.w2)

    # ----- the frame step ---------------------------------------------------------------------------

    def _views(self, n: int) -> _Bucket:
        """The buffers' views for slots [0, n), made once per bucket (a step does no slicing of its own)."""
        bucket = self._buckets.get(n)
        if bucket is None:
            bucket = self._buckets[n] = _Bucket(self, n)
        return bucket

    def _token(self, code: torch.Tensor, b: _Bucket, q: int, write: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Feed code `code` of codebook `q` (one per slot) through every layer; the final hidden `[n, hidden]`.

        `write` is each slot's cache index for this token, `valid` `[n, 1, 1, max_tokens]` the cache
        entries it attends to (its earlier tokens and itself). Residual adds ride in `addmm`.
        """
        n = b.n
        x = F.embedding(code, self.code_embeddings[q])
        attention, conv = 0, 0
        for layer in self.layers:
            h = _rms(x, layer.op_norm, layer.eps)
            if layer.attention:
                qkv = (h @ layer.qkv_t).view(n, self.heads + 2 * self.kv_heads, 1, self.head_dim)
                qk, v = qkv.split([self.heads + self.kv_heads, self.kv_heads], dim=1)
                qk = F.rms_norm(qk, (self.head_dim,), eps=layer.qk_eps)
                # Norm weight folded into cos and into the rotation: (n*w)*cos + ((n*w) @ R)*sin.
                qk = qk * b.weighted_cos[attention] + (qk @ layer.qk_rotate) * b.sin[attention]
                query, key = qk.split([self.heads, self.kv_heads], dim=1)
                kv = b.kv[attention]
                kv[b.index, :, write] = torch.cat([key, v], dim=1).view(n, 2 * self.kv_heads, self.head_dim)
                # Grouped-query attention without repeating K/V: the query heads that share a KV head
                # are that head's "query positions" (heads * 1 token -> kv_heads * group tokens).
                out = F.scaled_dot_product_attention(
                    query.view(n, self.kv_heads, self.heads // self.kv_heads, self.head_dim),
                    b.keys[attention],
                    b.values[attention],
                    attn_mask=valid,
                    scale=self.head_dim**-0.5,
                )
                x = torch.addmm(x, out.view(n, -1), layer.out_t)
                attention += 1
            else:
                b_gate, c_gate, xs = (
                    h @ layer.in_t if layer.in_b is None else torch.addmm(layer.in_b, h, layer.in_t)
                ).chunk(3, dim=-1)
                ring = b.ring[conv]
                b.ring_slots[conv][q].copy_(b_gate * xs)
                y = torch.linalg.vecdot(ring, layer.ring_taps[q])
                if layer.conv_b is not None:
                    y = y + layer.conv_b
                x = (
                    torch.addmm(x, c_gate * y, layer.out_t)
                    if layer.out_b is None
                    else x + F.linear(c_gate * y, layer.out_w, layer.out_b)
                )
                conv += 1
            gate, up = (_rms(x, layer.ffn_norm, layer.eps) @ layer.w13_t).chunk(2, dim=-1)
            x = torch.addmm(x, F.silu(gate) * up, layer.w2_t)
        return _rms(x, self.final_norm, self.final_eps)

    @torch.no_grad()
    def frame_step(self, n: int) -> None:
        """Generate one frame (one token per codebook) for slots [0, n), all on the device, in place.

        A row that samples `end_of_speech` at a frame boundary stops (`stopped`, inactive); one that
        reaches its frame cap becomes inactive too. Inactive slots compute garbage that nobody reads.
        """
        b = self._views(n)
        codebook = self.codes_per_book
        active = b.active
        frames_done = b.frames_done
        b.rope()
        keys = row_keys(b.seed[:, None], b.counter[:, None] + self.token_offsets)  # [n, codebooks]
        noise = exponential_noise(keys, self.columns).unbind(1)  # per codebook [n, codebook + 1]
        # Per-frame sampling constants: additive masks, reciprocals, the top-k cut in sorted order.
        eos_bias = torch.where(frames_done >= b.min_frames, 0.0, float("-inf"))
        first_bias = torch.cat([b.zeros_codes, eos_bias[:, None]], dim=1)
        inv_temperature = 1.0 / b.temperature.clamp_min(1e-5)[:, None]
        penalty = b.penalty[:, None]
        inv_penalty = 1.0 / penalty
        outside_k = (self.rank[None, :] >= b.top_k[:, None]) & (b.top_k[:, None] > 0)
        top_p = b.top_p[:, None]
        frame = frames_done.clamp(max=self.max_frames - 1)
        start = b.length
        relative = self.positions_row - start[:, None, None, None]  # [n, 1, 1, max_tokens]
        valid = (relative <= self.token_offsets[:, None, None, None, None]).unbind(0)  # per token q
        writes = (start[None, :] + self.token_offsets[:, None]).clamp(max=self.max_tokens - 1).unbind(0)
        hidden = b.hidden
        for q in range(self.per_frame):
            logits = hidden @ self.head_t[q]
            if logits.dtype != torch.float32:
                logits = logits.float()
            choice = sample(
                logits,
                bias=first_bias if q == 0 else self.later_bias,
                seen=b.seen_books[q],
                inv_temperature=inv_temperature,
                outside_k=outside_k,
                top_p=top_p,
                penalty=penalty,
                inv_penalty=inv_penalty,
                noise=noise[q],
            )
            if q == 0:
                stop = active & (choice == codebook)
                b.stopped |= stop
                active = active & ~stop
            b.codes_books[q][b.index, frame] = choice
            b.seen_books[q][b.index, choice] = self.true  # a device tensor: nothing copied from the host
            hidden = self._token(choice, b, q, writes[q], valid[q])
        b.hidden.copy_(hidden)
        frames_done = frames_done + active
        b.frames_done.copy_(frames_done)
        b.length.copy_(start + active * self.per_frame)
        b.counter.add_(self.per_frame)
        b.position.add_(self.spec.audio_step)
        b.active.copy_(active & (frames_done < b.max_frames_row))


class _Bucket:
    """Views of the decoder's buffers for slots [0, n) and the per-frame RoPE tables of those slots."""

    def __init__(self, decoder: StaticDecoder, n: int) -> None:
        d = decoder
        self.decoder = d
        self.n = n
        self.index = d.slot_index[:n]
        self.kv = [cache[:n] for cache in d.kv]
        self.keys = [cache[:, : d.kv_heads] for cache in self.kv]
        self.values = [cache[:, d.kv_heads :] for cache in self.kv]
        self.ring = [state[:n] for state in d.conv]
        self.ring_slots = [list(state.unbind(-1)) for state in self.ring]
        self.hidden = d.hidden[:n]
        self.length = d.length[:n]
        self.position = d.position[:n]
        self.counter = d.counter[:n]
        self.seed = d.seed[:n]
        self.frames_done = d.frames_done[:n]
        self.min_frames = d.min_frames[:n]
        self.max_frames_row = d.max_frames_row[:n]
        self.temperature = d.temperature[:n]
        self.top_k = d.top_k[:n]
        self.top_p = d.top_p[:n]
        self.penalty = d.penalty[:n]
        self.active = d.active[:n]
        self.stopped = d.stopped[:n]
        self.seen_books = list(d.seen[:n].unbind(1))
        self.codes_books = list(d.codes[:n].unbind(2))
        self.zeros_codes = torch.zeros((n, d.codes_per_book), dtype=torch.float32, device=d.device)
        self.weighted_cos: list[torch.Tensor] = []
        self.sin: list[torch.Tensor] = []

    def rope(self) -> None:
        """cos (times each layer's q/k norm weight) and sin of this frame's positions, per attention layer."""
        d = self.decoder
        freqs = self.position[:, None] * d.inv_freq[:, None, :]  # [layers, n, head_dim / 2]
        emb = torch.cat([freqs, freqs], dim=-1)[:, :, None, None, :]  # [layers, n, 1, 1, head_dim], float32
        self.sin = list(emb.sin().to(d.dtype).unbind(0))
        cos = emb.cos().to(d.dtype)
        self.weighted_cos = [c * w for c, w in zip(cos.unbind(0), d.qk_norm_weights, strict=True)]
