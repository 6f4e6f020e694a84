"""`POST /v1/estimate`: a job's length and time to make, before it is submitted (nothing is queued)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Blueprint, g, jsonify, request
from flask.typing import ResponseReturnValue

from api.context import services
from api.submission import (
    engine_speaks,
    engine_summary,
    known_voices,
    parse_json_body,
    take_lexicon_snapshot,
    validate_job,
)
from shared.estimate import MIN_AUDIO_FOR_RTF, Pauses, estimate_job
from shared.text.rate import SpeechRate

bp = Blueprint("estimate", __name__, url_prefix="/v1/estimate")

LANGUAGE = "en"
"""The speech-rate key the workers learn under (jobs plan in English)."""
RTF_DAYS = 30


@bp.post("")
def estimate() -> ResponseReturnValue:
    found = services()
    settings = found.settings
    payload = parse_json_body(request.get_data(cache=False), request.content_type)
    spec = validate_job(
        payload,
        settings,
        known_voices(found, g.tenant),
        engine_speaks(found),
        can_clone=engine_summary(found).can_clone,
    )
    spec = take_lexicon_snapshot(found.lexicons, g.tenant, spec)
    learned = found.jobs.speech_rate(settings.engine, LANGUAGE)
    rate = SpeechRate.from_dict(learned) if learned else SpeechRate(prior=settings.chars_per_second)
    pauses = spec.effective_pauses(
        {
            "clause": settings.pause_clause_ms,
            "sentence": settings.pause_sentence_ms,
            "paragraph": settings.pause_paragraph_ms,
            "end": settings.pause_paragraph_ms,
            "chapter": settings.pause_chapter_ms,
        }
    )
    targets = spec.mastering_options().targets(
        default_lufs=settings.loudness_target_lufs, default_peak_dbfs=settings.peak_dbfs
    )
    today = datetime.now(UTC).date()
    usage = found.usage.report(g.tenant, today - timedelta(days=RTF_DAYS - 1), today, None).totals
    rtf = usage.engine_seconds / usage.audio_seconds if usage.audio_seconds >= MIN_AUDIO_FOR_RTF else None
    answer = estimate_job(
        spec,
        chars_per_second=rate.chars_per_second,
        pauses=Pauses(pauses["sentence"], pauses["paragraph"], pauses["chapter"]),
        targets=targets,
        rtf=rtf,
        budget_seconds=settings.chunk_budget_seconds,
    )
    return jsonify(answer.model_dump(mode="json"))
