"""`KaniTTS2Engine` end to end on CPU: tiny LM checkpoint + tiny NanoCodec through the real loaders."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from worker.engines.base import ChunkRequest, EngineError, Sampling
from worker.engines.kanitts2.context import StreamContext

TEXTS = [
    ["The first chunk of stream zero. It ends here.", "Then comes the second one.", "And a third, short."],
    ["Stream one starts elsewhere.", "It goes on, with a second sentence. Done."],
]


def _requests(seed: int = 5) -> list[ChunkRequest]:
    out = []
    for stream, texts in enumerate(TEXTS):
        for seq, text in enumerate(texts):
            out.append(
                ChunkRequest(
                    key=f"job/{stream}/{seq}",
                    text=text,
                    stream=stream,
                    seq=seq,
                    sampling=Sampling(seed=seed),
                    last_sentence=text.split(". ")[-1],
                    expected_seconds=0.3,  # tiny caps: random weights never choose to stop
                )
            )
    return out


def _decode_carry(data: bytes) -> StreamContext:
    return StreamContext.from_bytes(data)


@pytest.fixture(scope="module", autouse=True)
def short_chunks(tiny_engine):
    """Random weights never choose to stop: bound chunks to a few frames so CPU tests stay fast."""
    tiny_engine.max_frames_per_chunk = 6
    yield
    tiny_engine.max_frames_per_chunk = None


@pytest.fixture(scope="module")
def full_run(tiny_engine):
    return {r.key: r for r in tiny_engine.generate(_requests())}


def test_load_resolves_cpu_fp32_and_describes_itself(tiny_engine) -> None:
    assert tiny_engine.name == "kanitts2" and tiny_engine.can_clone
    assert tiny_engine.sample_rate == 22050
    assert tiny_engine.device == "cpu" and tiny_engine.model.dtype == torch.float32
    assert [v.id for v in tiny_engine.voices()] == ["default", "en_us", "en_gb"]
    assert tiny_engine.gpu_memory() is None


def test_every_chunk_yields_audio_of_its_frames(full_run, tiny_engine) -> None:
    assert sorted(full_run) == sorted(r.key for r in _requests())
    spf = tiny_engine.codec.samples_per_frame
    for result in full_run.values():
        assert result.frames > 0
        assert result.audio.dtype == np.float32 and len(result.audio) == result.frames * spf
        assert np.all(np.abs(result.audio) <= 1.0)
        assert result.carry is not None


def test_streams_run_side_by_side_each_in_order(tiny_engine) -> None:
    keys = [r.key for r in tiny_engine.generate(_requests())]
    assert keys == ["job/0/0", "job/1/0", "job/0/1", "job/1/1", "job/0/2"]


def test_context_prompts_and_carry_contents(full_run, tiny_engine) -> None:
    """The carry holds the last sentence, its estimated frames and the codec tail of the stream."""
    first, second = full_run["job/0/0"], full_run["job/0/1"]
    carry = _decode_carry(first.carry)
    assert carry.text == "It ends here."
    share = len("It ends here.") / len(TEXTS[0][0])
    assert len(carry.frames) == max(1, round(first.frames * share))
    assert len(carry.tail) == first.frames  # the whole chunk: shorter than the codec's receptive field
    np.testing.assert_array_equal(carry.frames, carry.tail[-len(carry.frames) :])
    after = _decode_carry(second.carry)
    assert after.text == "Then comes the second one."
    np.testing.assert_array_equal(after.tail[: first.frames], carry.tail)
    assert len(after.tail) == first.frames + second.frames


def test_chunk_audio_continues_previous_chunk_without_seam(full_run, tiny_engine) -> None:
    """Chunk 0 + chunk 1 audio equals decoding both chunks' frames in one go."""
    first, second = full_run["job/0/0"], full_run["job/0/1"]
    frames = _decode_carry(second.carry).tail
    assert len(frames) == first.frames + second.frames, "test needs both chunks inside the codec tail"
    whole = tiny_engine.codec.decode([torch.from_numpy(np.ascontiguousarray(frames.T))])[0]
    joined = np.concatenate([first.audio, second.audio])
    np.testing.assert_allclose(joined, whole, atol=1e-5)


def test_resuming_from_carry_equals_continuing(full_run, tiny_engine) -> None:
    rest = [r for r in _requests() if r.seq >= 1]
    carry_in = {0: full_run["job/0/0"].carry, 1: full_run["job/1/0"].carry}
    resumed = {r.key: r for r in tiny_engine.generate(rest, carry_in)}
    assert sorted(resumed) == sorted(r.key for r in rest)
    for key, result in resumed.items():
        assert result.frames == full_run[key].frames
        np.testing.assert_array_equal(result.audio, full_run[key].audio)
        assert result.carry == full_run[key].carry


def test_context_changes_what_follows(full_run, tiny_engine) -> None:
    """Without the carry, chunk 1 is prompted differently and comes out differently."""
    second = next(r for r in _requests() if r.key == "job/0/1")
    alone = next(iter(tiny_engine.generate([second])))
    assert alone.frames != full_run["job/0/1"].frames or not np.array_equal(alone.audio, full_run["job/0/1"].audio)


def test_cloning_and_voice_checks(tiny_engine) -> None:
    base = _requests()[0]
    vec = np.random.default_rng(0).standard_normal(128).astype(np.float32)
    cloned = ChunkRequest(**{**base.__dict__, "speaker_embedding": vec, "key": "c"})
    plain = ChunkRequest(**{**base.__dict__, "key": "c"})
    a = next(iter(tiny_engine.generate([cloned])))
    b = next(iter(tiny_engine.generate([plain])))
    assert not np.array_equal(a.audio[: min(len(a.audio), len(b.audio))], b.audio[: min(len(a.audio), len(b.audio))])
    with pytest.raises(EngineError, match="unknown voice"):
        list(tiny_engine.generate([ChunkRequest(key="x", text="Hi.", voice="nobody")]))
    with pytest.raises(EngineError, match="128"):
        list(tiny_engine.generate([ChunkRequest(key="x", text="Hi.", speaker_embedding=np.ones(3))]))
    assert tiny_engine.language_tag(ChunkRequest(key="x", text="Hi.", voice="en_gb")) == "en_gb"
    assert tiny_engine.language_tag(ChunkRequest(key="x", text="Hi.", language="en")) == "en_us"
    in_british = ChunkRequest(key="x", text="Hi.", voice="voice_x", speaker_embedding=vec, language="en_gb")
    assert tiny_engine.language_tag(in_british) == "en_gb"  # a cloned voice's own tag


def test_the_language_tag_follows_the_input_language(tiny_engine) -> None:
    """A multilingual checkpoint (kani-tts-2-pt: English and Spanish): the tag of each input's language,
    its region's when the model has one; the model's own voice speaks all of them."""
    multilingual = copy.copy(tiny_engine)
    multilingual.spec = dataclasses.replace(tiny_engine.spec, language_tags=("en_us", "es_es", "es_mx"))
    assert multilingual.languages() == ["en", "es"]
    assert multilingual.default_voice("es-MX") == multilingual.default_voice("en") == "default"

    def tag(language: str) -> str | None:
        return multilingual.language_tag(ChunkRequest(key="x", text="Hola.", language=language))

    assert (tag("es"), tag("es-MX"), tag("es-AR"), tag("en-GB"), tag("en")) == (
        "es_es",
        "es_mx",
        "es_es",
        "en_us",
        "en_us",
    )
    assert (
        tiny_engine.languages() == ["en"]
        and tiny_engine.language_tag(ChunkRequest(key="x", text="Hi.", language="en-GB")) == "en_gb"
    )


def test_next_chunk_prompt_holds_previous_sentence_and_its_frames(full_run, tiny_engine) -> None:
    """Chunk 1 is prompted with chunk 0's last sentence (text + frames); its first frame's position
    follows those frames as if the two chunks were one utterance."""
    from worker.engines.kanitts2.positions import frame_positions
    from worker.engines.kanitts2.prompt import build_prompt, frames_to_tokens

    carry = _decode_carry(full_run["job/0/0"].carry)
    second = next(r for r in _requests() if r.key == "job/0/1")
    row = tiny_engine.row_for(second, carry)
    ids = tiny_engine.spec.tokens
    expected = build_prompt(
        tiny_engine.tokenizer,
        ids,
        second.text,
        language_tag="en_us",
        context_text="It ends here.",
        context_frames=carry.frames,
    )
    assert row.items == expected
    assert row.items[-4 * len(carry.frames) :] == frames_to_tokens(carry.frames, ids)
    text_part = tiny_engine.tokenizer("en_us: It ends here. Then comes the second one.")["input_ids"]
    assert row.items[1 : 1 + len(text_part)] == text_part
    items = torch.tensor([row.items])
    pos = frame_positions(
        items, torch.ones_like(items), audio_start=ids.audio_start, tokens_per_frame=4, audio_step=1.0
    )
    sos = row.items.index(ids.start_of_speech)
    assert pos[0, sos + 1].item() == sos + 1  # first context frame right after start_of_speech
    assert pos[0, -1].item() == sos + len(carry.frames)  # last context frame; the next generated one follows
    without = tiny_engine.row_for(second, None)
    assert without.items[-1] == ids.start_of_speech


def _same(a, b) -> bool:
    """Same frames (the carry holds them) and the same audio up to batched-decoding rounding."""
    return a.frames == b.frames and a.carry == b.carry and np.allclose(a.audio, b.audio, atol=1e-5)


def test_a_refused_draw_is_drawn_again_before_its_stream_goes_on(full_run, tiny_engine) -> None:
    """The chunk after a refused draw continues from the draw that was kept, not from the refused one."""
    requests = {r.key: r for r in _requests()}
    reviewed: list[str] = []

    def review(request: ChunkRequest, result) -> bool:
        reviewed.append(request.key)
        return request.key != "job/0/0" or reviewed.count("job/0/0") > 1  # refuse its first draw only

    results = {r.key: r for r in tiny_engine.generate(list(requests.values()), review=review)}
    assert sorted(results) == sorted(requests)  # every chunk once: the refused draw is not yielded
    assert sorted(reviewed) == sorted([*requests, "job/0/0"])
    redraw = requests["job/0/0"].redraw()
    assert redraw.seed() != requests["job/0/0"].seed()
    assert _same(results["job/0/0"], next(iter(tiny_engine.generate([redraw]))))
    assert not np.array_equal(results["job/0/0"].audio, full_run["job/0/0"].audio)
    # The rest of stream 0 follows the kept draw: equal to resuming from its carry.
    after = {
        r.key: r
        for r in tiny_engine.generate([requests["job/0/1"], requests["job/0/2"]], {0: results["job/0/0"].carry})
    }
    assert _same(results["job/0/1"], after["job/0/1"]) and _same(results["job/0/2"], after["job/0/2"])
    # Stream 1 is untouched.
    assert _same(results["job/1/0"], full_run["job/1/0"]) and _same(results["job/1/1"], full_run["job/1/1"])


def test_a_chunk_refused_twice_keeps_its_second_draw(tiny_engine) -> None:
    requests = [r for r in _requests() if r.stream == 0]
    reviewed: list[str] = []

    def refuse_all(request: ChunkRequest, result) -> bool:
        reviewed.append(request.key)
        return False

    results = list(tiny_engine.generate(requests, review=refuse_all))
    assert [r.key for r in results] == [r.key for r in requests]
    assert sorted(reviewed) == sorted(2 * [r.key for r in requests])
    assert _same(results[0], next(iter(tiny_engine.generate([requests[0].redraw()]))))


def test_codec_decoding_beside_the_lm_gives_the_same_results(tiny_engine) -> None:
    """The overlapped path (codec in its helper thread, results taken at later frames; on CUDA on its
    own stream) hands out the same chunks, each stream in order, as decoding in line."""
    from worker.engines.kanitts2.engine import KaniTTS2Engine

    inline = {r.key: r for r in tiny_engine.generate(_requests())}
    overlapped = KaniTTS2Engine(
        tiny_engine.model,
        tiny_engine.tokenizer,
        tiny_engine.codec,
        batch_size=4,
        max_frames_per_chunk=6,
        async_codec=True,
    )
    try:
        order = [r.key for r in overlapped.generate(_requests())]
        again = {r.key: r for r in overlapped.generate(_requests())}
    finally:
        overlapped.close()
    for stream in (0, 1):
        keys = [key for key in order if key.startswith(f"job/{stream}/")]
        assert keys == sorted(keys)
    assert sorted(order) == sorted(inline)
    for key, result in again.items():
        assert _same(result, inline[key])


def test_tickets_share_the_batch_and_a_cancelled_one_leaves_the_rest_intact(tiny_engine) -> None:
    """Two chunk lists submitted at once run side by side (their stream 0s never mix); cancelling one
    drops its chunks and leaves the other's results as they are alone."""
    alone = {r.key: r for r in tiny_engine.generate(_requests(seed=9))}
    first = tiny_engine.submit(_requests(seed=9))
    second = tiny_engine.submit([ChunkRequest(**{**r.__dict__, "key": "other/" + r.key}) for r in _requests(seed=3)])
    got: dict[int, list] = {first: [], second: []}
    while tiny_engine.pending(first):
        for ticket, result in tiny_engine.collect():
            got[ticket].append(result)
        if got[second] and tiny_engine.pending(second):
            tiny_engine.cancel(second)
    assert not tiny_engine.pending(second) and len(got[second]) < len(_requests())
    assert sorted(r.key for r in got[first]) == sorted(alone)
    for result in got[first]:
        assert _same(result, alone[result.key])
    assert tiny_engine.collect() == []  # nothing of the cancelled ticket is left running


def test_the_stream_with_most_to_go_starts_first(tiny_engine) -> None:
    from worker.engines.kanitts2.engine import KaniTTS2Engine

    one_slot = KaniTTS2Engine(
        tiny_engine.model, tiny_engine.tokenizer, tiny_engine.codec, batch_size=1, max_frames_per_chunk=6
    )
    short = [r for r in _requests() if r.stream == 1][:1]
    long = [ChunkRequest(**{**r.__dict__, "stream": 2}) for r in _requests() if r.stream == 0]
    order = [r.key for r in one_slot.generate(short + long)]
    assert order == ["job/0/0", "job/0/1", "job/0/2", "job/1/0"]  # stream 2 (three chunks) before stream 1


def test_a_chunk_longer_than_the_cache_fails_alone_with_a_clear_error(tiny_engine) -> None:
    """Its result carries the error and no audio; the short chunks of the same call, in its stream and
    in another, are generated as usual (a line sheet fails just that line)."""
    from worker.engines.kanitts2.engine import KaniTTS2Engine

    small = KaniTTS2Engine(
        tiny_engine.model, tiny_engine.tokenizer, tiny_engine.codec, max_frames_per_chunk=6, cache_tokens=48
    )
    long = ChunkRequest(key="long", text="A sentence far too long for a cache of forty-eight tokens.", seq=0)
    requests = [long, ChunkRequest(key="after", text="Hi.", seq=1), ChunkRequest(key="other", text="Yes.", stream=1)]
    results = {r.key: r for r in small.generate(requests)}
    assert set(results) == {"long", "after", "other"}
    assert isinstance(results["long"].error, EngineError) and len(results["long"].audio) == 0
    assert "does not fit the engine's cache" in str(results["long"].error)
    for key in ("after", "other"):
        assert results[key].error is None and len(results[key].audio) > 0
    assert not small.pending()


@pytest.mark.parametrize("urgent", [True, False])
def test_an_urgent_chunk_takes_the_next_free_slot_ahead_of_every_waiting_row(tiny_engine, urgent) -> None:
    """An interactive job's chunk submitted while a book's rows run and wait is admitted as soon as a
    slot frees; without `urgent` it waits behind the book's rows (each stream's next chunk goes first)."""
    from worker.engines.kanitts2.engine import KaniTTS2Engine

    one_slot = KaniTTS2Engine(
        tiny_engine.model, tiny_engine.tokenizer, tiny_engine.codec, batch_size=1, max_frames_per_chunk=6
    )
    one_slot.submit(_requests())
    order: list[str] = []
    while not order:  # the book runs: its first row is done, the rest wait
        order += [result.key for _, result in one_slot.collect()]
    line = ChunkRequest(key="now/0", text="Right away, please.", urgent=urgent, expected_seconds=0.3)
    one_slot.submit([line])
    while one_slot.pending():
        order += [result.key for _, result in one_slot.collect()]
    assert sorted(order) == sorted([r.key for r in _requests()] + ["now/0"])
    assert order.index("now/0") == (1 if urgent else len(order) - 1)


def test_chunks_of_threads_calling_generate_at_once_share_the_batch(tiny_engine) -> None:
    """A worker runs one unit per thread through one engine: rows of units that start together must run
    in one batch, not one after another while every other thread waits for the engine."""
    import threading

    from worker.engines.kanitts2.engine import KaniTTS2Engine

    engine = KaniTTS2Engine(
        tiny_engine.model, tiny_engine.tokenizer, tiny_engine.codec, batch_size=4, max_frames_per_chunk=12
    )
    start = threading.Barrier(4)
    keys: dict[int, list[str]] = {}

    def unit(index: int) -> None:
        start.wait()
        request = ChunkRequest(key=f"unit-{index}/0", text="Every unit says the same.", expected_seconds=0.9)
        keys[index] = [result.key for result in engine.generate([request])]

    threads = [threading.Thread(target=unit, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert keys == {index: [f"unit-{index}/0"] for index in range(4)}  # each caller got its own result
    stats = engine.batcher().stats
    assert stats.row_steps / stats.frames > 2.5  # rows side by side (one at a time would be 1.0)
    assert not engine.pending()


def test_a_thread_arriving_while_another_drives_the_engine_joins_its_running_batch(tiny_engine) -> None:
    """A worker's unit threads share the engine: one thread's three-chunk stream is running when three
    more threads each bring a chunk; their rows are admitted at the next frame step, not after the
    running chunk is done, so all three are finished before that stream's second chunk."""
    import threading
    import time

    from worker.engines.kanitts2.engine import KaniTTS2Engine

    engine = KaniTTS2Engine(  # chunks long enough that the threads surely start within the first one
        tiny_engine.model, tiny_engine.tokenizer, tiny_engine.codec, batch_size=4, max_frames_per_chunk=48
    )
    stream = [r for r in _requests() if r.stream == 0]  # three chunks, one after another
    singles = [[ChunkRequest(key=f"line/{i}", text="A line.", sampling=Sampling(seed=i), expected_seconds=0.3)]
               for i in range(3)]  # fmt: skip
    done: list[str] = []
    order_lock = threading.Lock()

    def run(requests: list[ChunkRequest]) -> None:
        for result in engine.generate(requests):
            with order_lock:
                done.append(result.key)

    first = threading.Thread(target=run, args=(stream,))
    first.start()
    deadline = time.monotonic() + 60
    while (engine._batcher is None or engine._batcher.stats.frames < 1) and time.monotonic() < deadline:
        time.sleep(0.001)  # the stream's first chunk is generating
    others = [threading.Thread(target=run, args=(requests,)) for requests in singles]
    for thread in others:
        thread.start()
    for thread in [first, *others]:
        thread.join(timeout=120)
    assert sorted(done) == sorted([r.key for r in stream] + ["line/0", "line/1", "line/2"])
    second = done.index(stream[1].key)
    assert all(done.index(f"line/{i}") < second for i in range(3)), done
