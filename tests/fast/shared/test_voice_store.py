"""`shared.voice_store.VoiceStore` on the real Redis: a voice's life from upload to ready, failed or gone."""

from __future__ import annotations

import pytest

from shared.voice_store import FAILED_RETENTION_SECONDS, VoiceLimitReached, VoiceStatus, VoiceStore

pytestmark = pytest.mark.fast

CONSENT = {"by": "Jane Doe", "at": "2026-01-15T10:00:00+00:00", "recorded_at": "2026-01-15T10:00:01+00:00"}
CLIPS = [{"filename": "one.wav", "bytes": 1000, "duration_seconds": 5.0}]


@pytest.fixture
def voices(services) -> VoiceStore:
    return services.voices


def new(voices: VoiceStore, tenant: str = "dev", *, limit: int = 10) -> str:
    voice_id = voices.new_id()
    voices.create(
        voice_id, tenant, name="Jane", description=None, language="en_gb", consent=CONSENT, clips=CLIPS, limit=limit
    )
    return voice_id


def test_a_voice_is_processing_until_its_task_marks_it_ready(voices):
    voice_id = new(voices)
    record = voices.get(voice_id, tenant="dev")
    assert record.status == VoiceStatus.PROCESSING and record.language == "en_gb" and not record.preview
    assert voices.ready_ids("dev") == set()
    assert voices.claim(voice_id) == 1 and voices.claim(voice_id) == 2  # every delivery counts
    clips = [{**CLIPS[0], "speech_seconds": 4.2}]
    assert voices.mark_ready(voice_id, clips=clips, preview=True)
    ready = voices.get(voice_id, tenant="dev")
    assert ready.status == VoiceStatus.READY and ready.preview and ready.clips == clips
    assert voices.ready_ids("dev") == {voice_id}
    assert voices.claim(voice_id) == -1  # a late redelivery finds nothing to do
    assert not voices.mark_failed(voice_id, "late", "a finished voice is not failed afterwards")


def test_a_failed_voice_keeps_its_reason_for_a_week(voices, services):
    voice_id = new(voices)
    assert voices.mark_failed(voice_id, "too_short", "clip 1: too short")
    record = voices.get(voice_id, tenant="dev")
    assert record.status == VoiceStatus.FAILED and record.error == {"code": "too_short", "message": "clip 1: too short"}
    ttl = services.redis.ttl(f"{services.settings.key_prefix}:voice:{voice_id}")
    assert FAILED_RETENTION_SECONDS - 60 < ttl <= FAILED_RETENTION_SECONDS
    assert not voices.mark_ready(voice_id, clips=CLIPS, preview=False)


def test_a_voice_deleted_while_cloning_cannot_be_brought_back(voices):
    voice_id = new(voices)
    assert not voices.delete(voice_id, "other")  # another tenant's id is no voice at all
    assert voices.delete(voice_id, "dev")
    assert not voices.mark_ready(voice_id, clips=CLIPS, preview=False)
    assert voices.get(voice_id, tenant=None) is None and voices.list("dev") == []


def test_voices_belong_to_one_tenant_and_the_limit_holds(voices):
    mine = [new(voices, limit=2) for _ in range(2)]
    with pytest.raises(VoiceLimitReached):
        new(voices, limit=2)
    assert [record.id for record in voices.list("dev")] == mine[::-1]  # newest first
    assert voices.get(mine[0], tenant="other") is None
    assert voices.update(mine[0], "other", name="Stolen") is None
    renamed = voices.update(mine[0], "dev", name="Ada", description="narrator")
    assert (renamed.name, renamed.description) == ("Ada", "narrator")
    voices.delete(mine[1], "dev")
    new(voices, limit=2)  # a deleted voice frees its place
