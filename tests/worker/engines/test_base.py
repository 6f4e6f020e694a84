"""The engine contract's two ways in: a `generate` engine (Piper) behind submit/collect."""

from __future__ import annotations

import pytest

from worker.engines.base import ChunkRequest


@pytest.fixture(scope="module")
def piper():
    from worker.engines.piper_engine import PiperEngine

    return PiperEngine.load()


def _requests(prefix: str, count: int) -> list[ChunkRequest]:
    return [ChunkRequest(key=f"{prefix}/{i}", text=f"Line {i} of {prefix}.", seq=i) for i in range(count)]


def test_piper_serves_submitted_tickets_through_collect(piper) -> None:
    first, second = piper.submit(_requests("a", 3)), piper.submit(_requests("b", 2))
    assert first != second and piper.pending(first) and piper.pending(second)
    got: dict[int, list[str]] = {first: [], second: []}
    while piper.pending():
        for ticket, result in piper.collect():
            assert result.audio.size > 0
            got[ticket].append(result.key)
    assert got == {first: ["a/0", "a/1", "a/2"], second: ["b/0", "b/1"]}
    assert piper.collect() == [] and not piper.pending(first)


def test_a_cancelled_ticket_yields_nothing_more(piper) -> None:
    ticket = piper.submit(_requests("c", 3))
    assert [result.key for _, result in piper.collect()] == ["c/0"]
    piper.cancel(ticket)
    assert not piper.pending(ticket) and piper.collect() == []
    assert [r.key for r in piper.generate(_requests("d", 2))] == ["d/0", "d/1"]  # still usable
