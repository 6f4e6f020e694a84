"""The API's side of books: titled inputs, mastering presets, book tags and cover, the 5,000,000-character
cap, and `POST /v1/estimate` (nothing queued)."""

from __future__ import annotations

import base64

import redis

from shared.settings import Settings
from tests.conftest import AUTH, ServiceEnv

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def _queue_length(env: ServiceEnv) -> int:
    return redis.Redis.from_url(env.redis_url).llen(env.queue)


def _book(**extra) -> dict:
    return {
        "inputs": [
            {"id": "ch001", "title": "Chapter 1: The Start", "text": "It was cold. It was dark.\n\nThen it rained."},
            {"id": "ch002", "title": "Chapter 2", "text": "Morning came. The sun rose over the hills."},
        ],
        "format": "m4b",
        **extra,
    }


def test_a_book_job_is_accepted_with_its_titles_preset_and_cover(api_client, service_env):
    body = _book(
        mastering="acx",
        book={"title": "A Book", "author": "An Author", "narrator": "A Reader", "chapter_files": "mp3",
              "cover": {"media_type": "image/png", "data": base64.b64encode(PNG).decode()}},
        pauses={"chapter_ms": 3000},
    )  # fmt: skip
    response = api_client.post("/v1/jobs", json=body, headers=AUTH)
    assert response.status_code == 202, response.get_json()
    job = response.get_json()
    assert job["sample_rate"] == 44100  # the ACX preset's delivery rate, stated in the record
    spec = service_env.services().jobs.spec(job["id"])
    assert spec is not None and spec.input_titles() == ["Chapter 1: The Start", "Chapter 2"]
    assert spec.bitrate_kbps == 192 and spec.book is not None and spec.book.cover is not None
    assert spec.file_tags()["album"] == "A Book" and spec.file_tags()["composer"] == "A Reader"


def test_bad_book_fields_are_refused_with_the_field_named(api_client, service_env):
    cases = [
        (_book(mastering="loud"), "mastering"),
        (_book(mastering={"preset": "acx", "rms_db": -20, "loudness_lufs": -19}), "mastering"),
        (_book(bitrate_kbps=100), "bitrate_kbps"),
        (_book(book={"cover": {"media_type": "image/png", "data": "not base64!"}}), "book.cover.data"),
        (_book(book={"cover": {"media_type": "image/png", "data": base64.b64encode(b"GIF89a").decode()}}),
         "book.cover.data"),
        ({"inputs": [{"text": "Hi.", "title": "Two\nlines"}]}, "inputs.0.title"),
    ]  # fmt: skip
    for body, field in cases:
        response = api_client.post("/v1/jobs", json=body, headers=AUTH)
        error = response.get_json()["error"]
        assert response.status_code == 422 and error["field"].startswith(field), (body, error)
    assert _queue_length(service_env) == 0


def test_the_text_cap_is_five_million_characters_by_default():
    assert Settings().max_text_chars == 5_000_000


def test_an_estimate_gives_duration_per_chapter_and_queues_nothing(api_client, service_env):
    response = api_client.post("/v1/estimate", json=_book(mastering="acx"), headers=AUTH)
    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    assert [c["title"] for c in answer["chapters"]] == ["Chapter 1: The Start", "Chapter 2"]
    assert answer["characters"] == sum(len(i["text"]) for i in _book()["inputs"])
    rate = answer["chars_per_second"]
    speech = answer["spoken_characters"] / rate
    # Speech plus pauses plus ACX room tone (0.75 s + 2.5 s per chapter) and one chapter pause.
    assert answer["audio_seconds"] > speech + 2 * 3.25
    assert answer["rtf"] is None and answer["processing_seconds"] is None  # no jobs measured yet
    assert answer["sample_characters"] == round(60 * rate)
    assert _queue_length(service_env) == 0
    bad = api_client.post("/v1/estimate", json={"inputs": []}, headers=AUTH)
    assert bad.status_code == 422
