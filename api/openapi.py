"""The OpenAPI 3.1 document, generated from the pydantic models that validate requests.

The paths are written here; tests/api/test_openapi.py holds them against the app's URL map, the
answers the app really gives (a dead Redis, a spent rate limit, bad query values) and the models' enums.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel, Field
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from api.json_body import MAX_DEPTH, MAX_INT_DIGITS
from api.params import IDEMPOTENCY_KEY_PATTERN
from api.routes.voices import LANGUAGE_PATTERN, MAX_CONSENT_AT_CHARS
from shared.estimate import Estimate
from shared.jobs import JobCreate, JobPage, JobStatus, JobView
from shared.lexicon_store import LexiconCreate, LexiconList, LexiconPatch, LexiconView
from shared.revisions import PickBody, RevisionCreate, RevisionList, RevisionView
from shared.speech import MAX_INPUT_CHARS, SpeechCreate, SpeechFormat
from shared.store import CURSOR_PATTERN
from shared.usage import UsageReport
from shared.voice_store import VoiceList, VoiceMixCreate, VoicePatch, VoiceView
from shared.webhook_store import (
    DeliveryList,
    WebhookCreate,
    WebhookCreated,
    WebhookEvent,
    WebhookList,
    WebhookPayload,
    WebhookSecret,
    WebhookView,
)

REF = "#/components/schemas/{model}"


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str = Field(..., description="invalid_request_error, authentication_error, rate_limit_error, server_error")
    param: str | None = Field(..., description="The body field at fault, or null.")
    code: str | None


class OpenAIErrorResponse(BaseModel):
    """The error shape of the OpenAI-compatible routes (`/v1/audio/*`, `/v1/models`), as OpenAI's clients read it."""

    error: OpenAIErrorDetail


def _json(ref: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": REF.format(model=ref)}}}}


BODY_ENCODING = (
    "A JSON body may be sent gzip-compressed (`Content-Encoding: gzip`), with a Content-Length or chunked; "
    "NARRATE_MAX_BODY_BYTES (32 MiB) applies to it once decompressed (413 `payload_too_large` above). Not valid "
    "gzip: 400 `invalid_encoding`; any other Content-Encoding: 415 naming it (with `Accept-Encoding: gzip`)."
)


def _body(ref: str) -> dict[str, Any]:
    """A JSON request body of the model `ref`, which may come gzip-compressed (api/body_encoding.py)."""
    return {"required": True, "description": BODY_ENCODING, **_json(ref)}


DOCUMENTED_MODELS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    (JobCreate, "validation"),
    (JobView, "serialization"),
    (JobPage, "serialization"),
    (ErrorResponse, "serialization"),
    (VoiceView, "serialization"),
    (VoiceList, "serialization"),
    (VoicePatch, "validation"),
    (VoiceMixCreate, "validation"),
    (WebhookCreate, "validation"),
    (WebhookCreated, "serialization"),
    (WebhookView, "serialization"),
    (WebhookList, "serialization"),
    (WebhookSecret, "serialization"),
    (DeliveryList, "serialization"),
    (WebhookPayload, "serialization"),
    (UsageReport, "serialization"),
    (Estimate, "serialization"),
    (SpeechCreate, "validation"),
    (LexiconCreate, "validation"),
    (LexiconPatch, "validation"),
    (LexiconView, "serialization"),
    (LexiconList, "serialization"),
    (OpenAIErrorResponse, "serialization"),
    (RevisionCreate, "validation"),
    (PickBody, "validation"),
    (RevisionView, "serialization"),
    (RevisionList, "serialization"),
]
"""The models whose JSON schemas are the document's components (request bodies validate, answers serialize)."""

V1_ERRORS = (400, 401, 429, 503)
"""What any /v1 request can meet: a query parameter repeated, empty or not the operation's, a missing
or wrong key, the per-key rate limit, Redis down."""

_DESCRIPTIONS = {
    400: "Malformed request: a query parameter repeated, empty or unknown (`invalid_query`), a bad cursor, "
    "invalid JSON, a body not UTF-8 or not valid gzip under Content-Encoding: gzip (`invalid_encoding`), "
    f"JSON nested deeper than {MAX_DEPTH} levels, an integer of more than "
    f"{MAX_INT_DIGITS} digits, NaN/Infinity or a lone surrogate (`invalid_json`, `field` names it), "
    "a bad Idempotency-Key, a webhook URL that is not public (`webhook_url_refused`), a bad date, "
    "SSML input that is malformed or outside the supported subset (`invalid_ssml`: the message names the line "
    "and column)",
    401: "Missing or unknown API key",
    404: "No such job, voice or lexicon for this key's tenant (a job naming one: `lexicon_not_found`)",
    409: "Conflicts with the current state",
    413: "Body (once decompressed) or text larger than the configured maximum",
    415: "Unsupported content type, or a Content-Encoding other than gzip (the message names it)",
    422: "A field is invalid (`field` names it); a language the engine cannot speak (`unsupported_language`) "
    "or its input's voice does not (`voice_language_mismatch`)",
    429: "Rate limit of this key exceeded (`rate_limited`), too many failed authentications from this "
    "address (`too_many_auth_failures`, with Retry-After), or the job would pass the tenant's monthly "
    "character quota (`quota_exceeded`)",
    503: "The job store (Redis) or the queue is unreachable; nothing was changed",
}


def _errors(*codes: int) -> dict[str, Any]:
    """Error answers of a /v1 operation: `codes` plus those every /v1 request can meet."""
    return {
        str(code): {"description": _DESCRIPTIONS[code], **_json("ErrorResponse")}
        for code in sorted({*codes, *V1_ERRORS})
    }


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    _, schemas = models_json_schema(DOCUMENTED_MODELS, ref_template=REF)
    job_id = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
    paths: dict[str, Any] = {
        "/v1/jobs": {
            "post": {
                "summary": "Submit a narration or batch job",
                "operationId": "createJob",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 200,
                            "pattern": IDEMPOTENCY_KEY_PATTERN,
                        },
                        "description": "The same key and body return the same job; another body is 409. "
                        "1-200 visible ASCII characters.",
                    },
                ],
                "requestBody": _body("JobCreate"),
                "responses": {
                    "202": {"description": "Queued", **_json("JobView")},
                    "200": {"description": "Returned again for a repeated Idempotency-Key", **_json("JobView")},
                    **_errors(400, 404, 409, 413, 415, 422),
                },
            },
            "get": {
                "summary": "List jobs, newest first",
                "operationId": "listJobs",
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"type": "string", "enum": [status.value for status in JobStatus]},
                    },
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                    {
                        "name": "cursor",
                        "in": "query",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": CURSOR_PATTERN},
                        "description": "`next_cursor` of the page before; any other value is 400 `invalid_cursor`.",
                    },
                ],
                "responses": {"200": {"description": "A page of jobs", **_json("JobPage")}, **_errors(422)},
            },
        },
        "/v1/jobs/{job_id}": {
            "get": {
                "summary": "Job status, progress and results",
                "operationId": "getJob",
                "parameters": [job_id],
                "responses": {"200": {"description": "The job", **_json("JobView")}, **_errors(404)},
            },
            "delete": {
                "summary": "Delete a finished job with its results (204); cancel a queued or running one (200)",
                "operationId": "deleteJob",
                "parameters": [job_id],
                "responses": {
                    "200": {"description": "It was queued or running: now canceled", **_json("JobView")},
                    "204": {"description": "It was finished: its record, results, checkpoints and key are gone"},
                    **_errors(404, 409),
                },
            },
        },
        "/v1/jobs/{job_id}/cancel": {
            "post": {
                "summary": "Cancel a queued or running job (a running job stops at its next chunk)",
                "operationId": "cancelJob",
                "parameters": [job_id],
                "responses": {"200": {"description": "Canceled", **_json("JobView")}, **_errors(404, 409)},
            },
        },
        **_revision_paths(job_id),
        **_file_paths(),
        **_voice_paths(),
        **_webhook_paths(),
        **_lexicon_paths(),
        **_speech_paths(),
        "/v1/usage": {
            "get": {
                "summary": "Characters, audio seconds and engine seconds used per UTC day, totals and the quota",
                "operationId": "getUsage",
                "parameters": [
                    {
                        "name": name,
                        "in": "query",
                        "schema": {"type": "string", "format": "date"},
                        "description": f"First / last UTC day (inclusive, YYYY-MM-DD); default: {default}. "
                        "At most 366 days.",
                    }
                    for name, default in (("from", "the first of this month"), ("to", "today"))
                ],
                "responses": {"200": {"description": "Usage", **_json("UsageReport")}, **_errors(400)},
            }
        },
        "/": {
            "get": {
                "summary": "The web page (HTML; its scripts and styles under /static/); it asks for the key",
                "security": [],
                "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
            }
        },
        "/v1/estimate": {
            "post": {
                "summary": "Estimate a job's audio length per chapter and time to make, without queueing it",
                "operationId": "estimateJob",
                "requestBody": _body("JobCreate"),
                "responses": {
                    "200": {"description": "The estimate", **_json("Estimate")},
                    **_errors(404, 413, 415, 422),
                },
            }
        },
        "/healthz": {"get": {"summary": "Process is up", "security": [], "responses": {"200": {"description": "ok"}}}},
        "/readyz": {
            "get": {
                "summary": "Redis and storage reachable",
                "security": [],
                "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}},
            },
        },
        "/metrics": {
            "get": {"summary": "Prometheus metrics", "security": [], "responses": {"200": {"description": "text"}}}
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "narrate",
            "version": "0.1.0",
            "description": f"Long-form text-to-speech jobs. {BODY_ENCODING}",
        },
        "paths": paths,
        "webhooks": _webhook_events(),
        "components": {
            "schemas": schemas["$defs"],
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def _revision_paths(job_id: dict[str, Any]) -> dict[str, Any]:
    revision_id = {"name": "revision_id", "in": "path", "required": True, "schema": {"type": "string"}}
    refusals = (
        "`job_not_succeeded`, `is_a_revision` (a pickup job), `no_render_record` (rendered before pickups were "
        "kept), `render_expired`; 422 `invalid_range` (`field` names the range), `unknown_voice`"
    )
    return {
        "/v1/jobs/{job_id}/revisions": {
            "post": {
                "summary": "Pick up sentences of a succeeded job: re-render only the chunks that cover them",
                "description": "Queues a pickup of the job's newest version. With `takes` 1 its result is published "
                "as the job's next version when it succeeds; with more, each take's span is offered and a pick "
                f"publishes one. 409: {refusals}.",
                "operationId": "createRevision",
                "parameters": [job_id],
                "requestBody": _body("RevisionCreate"),
                "responses": {
                    "202": {"description": "Queued", **_json("RevisionView")},
                    **_errors(404, 409, 413, 415, 422),
                },
            },
            "get": {
                "summary": "The job's pickups, oldest first",
                "operationId": "listRevisions",
                "parameters": [job_id],
                "responses": {"200": {"description": "Pickups", **_json("RevisionList")}, **_errors(404)},
            },
        },
        "/v1/jobs/{job_id}/revisions/{revision_id}": {
            "get": {
                "summary": "A pickup: its takes (span audio and seed each), the take picked, the version published",
                "operationId": "getRevision",
                "parameters": [job_id, revision_id],
                "responses": {"200": {"description": "The pickup", **_json("RevisionView")}, **_errors(404)},
            },
        },
        "/v1/jobs/{job_id}/revisions/{revision_id}/pick": {
            "post": {
                "summary": "Publish one take of a pickup of several as the job's next version",
                "description": "409: `nothing_to_pick` (one take: published on its own), `revision_not_ready`, "
                "`already_picked`; 422 `invalid_take`.",
                "operationId": "pickTake",
                "parameters": [job_id, revision_id],
                "requestBody": _body("PickBody"),
                "responses": {
                    "202": {"description": "The pick is queued", **_json("RevisionView")},
                    **_errors(404, 409, 413, 415, 422),
                },
            },
        },
    }


def _file_paths() -> dict[str, Any]:
    """The file backend's download route: the signed token is the permission, so no bearer key."""
    token = {
        "name": "token",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "From a `url` of a job (or voice preview); expires at its `url_expires_at`.",
    }
    range_header = {
        "name": "Range",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "`bytes=START-END`: a part of the file (206), as players ask when seeking.",
    }
    binary = {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
    error = {"description": "", **_json("ErrorResponse")}
    return {
        "/v1/files/{token}": {
            "get": {
                "summary": "Download a result of the file backend through a signed, expiring link",
                "operationId": "downloadFile",
                "security": [],
                "parameters": [token, range_header],
                "responses": {
                    "200": {"description": "The file (Content-Disposition names it; Accept-Ranges: bytes)", **binary},
                    "206": {"description": "The requested range (Content-Range)", **binary},
                    "304": {"description": "Not modified (If-None-Match / If-Modified-Since)"},
                    "403": {**error, "description": "The link has expired: read the job again for a fresh one"},
                    "404": {**error, "description": "Not a link of ours, or the file is gone"},
                    "416": {**error, "description": "The range lies outside the file"},
                    "503": {**error, "description": _DESCRIPTIONS[503]},
                },
            }
        }
    }


_SPEECH_DESCRIPTIONS = {
    400: f"A field is invalid (`param` names it): input longer than {MAX_INPUT_CHARS} characters "
    "(`input_too_long`: send it to POST /v1/jobs), an unknown voice (`voice_not_found`, `unknown_voice` "
    "for a part of a mix) or model (`model_not_found`), a voice mix that is malformed (`invalid_voice_mix`) or "
    "that the engine cannot speak (`mix_unsupported`), a value out of range; also invalid JSON",
    404: "Not found",
    409: "The job was canceled (by the tenant, through /v1/jobs) before it finished",
    413: "Body larger than the configured maximum once decompressed",
    415: "Unsupported content type, or a Content-Encoding other than gzip",
    500: "The job failed (`code` is the job's error code)",
    504: "The job did not finish within NARRATE_SPEECH_WAIT_SECONDS; it was canceled",
}


def _openai_errors(*codes: int) -> dict[str, Any]:
    """Error answers of an OpenAI-compatible operation, in OpenAI's shape."""
    text = {**_DESCRIPTIONS, **_SPEECH_DESCRIPTIONS}
    return {
        str(code): {"description": text[code], **_json("OpenAIErrorResponse")} for code in sorted({*codes, *V1_ERRORS})
    }


def _speech_paths() -> dict[str, Any]:
    audio: dict[str, Any] = {
        fmt.content_type: {"schema": {"type": "string", "format": "binary"}} for fmt in SpeechFormat
    }
    audio["text/event-stream"] = {"schema": {"type": "string"}}
    listing = {"type": "object", "required": ["object", "data"], "properties": {"object": {"const": "list"}}}
    return {
        "/v1/audio/speech": {
            "post": {
                "summary": "OpenAI-compatible speech: the text as one interactive-priority job, answered as audio",
                "description": "OpenAI's `POST /v1/audio/speech`. Each OpenAI voice name (alloy, echo, fable, onyx, "
                "nova, shimmer, ...) is spoken by the engine's default voice unless a voice of that id exists; "
                "`instructions` is accepted and ignored; `speed` time-stretches (pitch kept). Every format is "
                "24 kHz mono; `pcm` is raw 16-bit little-endian samples. mp3, opus, aac, wav and pcm stream as the "
                "audio is generated (chunked; a WAV stream's sizes read 0xFFFFFFFF), flac comes whole; "
                "`stream_format: sse` sends `speech.audio.delta` events (base64 audio) and a final "
                "`speech.audio.done`. A client that disconnects cancels the job. The job is listed under /v1/jobs "
                "(header `X-Narrate-Job`) and counts against the quota and usage like any other. Extensions: "
                "`seed` (same seed and text, same audio) and weighted voice mixes in `voice`, "
                "`ada(0.7)+ben(0.3)` (cloned voices' speaker embeddings blended; engines that clone only).",
                "operationId": "createSpeech",
                "requestBody": _body("SpeechCreate"),
                "responses": {
                    "200": {
                        "description": "The audio (streamed; flac whole), or with `stream_format: sse` its events",
                        "headers": {"X-Narrate-Job": {"schema": {"type": "string"}, "description": "The job's id."}},
                        "content": audio,
                    },
                    **_openai_errors(400, 409, 413, 415, 500, 504),
                },
            }
        },
        "/v1/audio/voices": {
            "get": {
                "summary": "Voices `voice` takes: the engine's, the tenant's ready cloned voices, OpenAI's names",
                "operationId": "listSpeechVoices",
                "responses": {
                    "200": {
                        "description": "`voices`: ids; `data`: `{id, object: voice}`; `aliases`: OpenAI's names "
                        "and the voice id each is spoken by (null: the engine's default voice)",
                        "content": {"application/json": {"schema": listing}},
                    },
                    **_openai_errors(),
                },
            }
        },
        "/v1/models": {
            "get": {
                "summary": "Models `model` takes (OpenAI's TTS model names and the engine's name): all run the engine",
                "operationId": "listModels",
                "responses": {
                    "200": {
                        "description": "`data`: `{id, object: model, created, owned_by}`",
                        "content": {"application/json": {"schema": listing}},
                    },
                    **_openai_errors(),
                },
            }
        },
    }


def _voice_paths() -> dict[str, Any]:
    voice_id = {"name": "voice_id", "in": "path", "required": True, "schema": {"type": "string"}}
    text = {"type": "string"}
    upload = {
        "type": "object",
        "required": ["files", "name", "consent_by"],
        "properties": {
            "files": {
                "type": "array",
                "items": {"type": "string", "format": "binary"},
                "description": "1-10 reference clips (WAV, FLAC, MP3, OGG/Opus; read by content), "
                "3-30 s of speech each, 25 MB in all by default.",
            },
            "name": {**text, "maxLength": 100},
            "description": {**text, "maxLength": 1000},
            "language": {
                **text,
                "maxLength": 30,
                "description": f"Language/accent tag such as en_us (`-` reads as `_`, any case): {LANGUAGE_PATTERN}",
            },
            "consent_by": {**text, "maxLength": 200, "description": "Who consented to the cloning of their voice."},
            "consent_at": {
                **text,
                "format": "date-time",
                "maxLength": MAX_CONSENT_AT_CHARS,
                "description": "When (default: now).",
            },
        },
    }
    return {
        "/v1/voices": {
            "post": {
                "summary": "Clone a voice from reference recordings, or save a weighted mix of your voices (kanitts2)",
                "description": "multipart/form-data: clips to clone (answered 202, status processing). JSON "
                "(`VoiceMixCreate`): a voice saved as a weighted mix of your ready voices' speaker embeddings, "
                "ready at once (answered 201).",
                "operationId": "createVoice",
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {"schema": upload},
                        "application/json": {"schema": {"$ref": REF.format(model="VoiceMixCreate")}},
                    },
                },
                "responses": {
                    "201": {"description": "A mix saved as a voice (status ready)", **_json("VoiceView")},
                    "202": {"description": "Queued for cloning (status processing)", **_json("VoiceView")},
                    **_errors(409, 413, 415, 422),
                },
            },
            "get": {
                "summary": "Your cloned voices, and the engine's built-in voices and language tags",
                "operationId": "listVoices",
                "responses": {"200": {"description": "Voices", **_json("VoiceList")}, **_errors()},
            },
        },
        "/v1/voices/{voice_id}": {
            "get": {
                "summary": "A voice: status, clips, consent, preview",
                "operationId": "getVoice",
                "parameters": [voice_id],
                "responses": {"200": {"description": "The voice", **_json("VoiceView")}, **_errors(404)},
            },
            "patch": {
                "summary": "Rename a voice or change its description",
                "operationId": "updateVoice",
                "parameters": [voice_id],
                "requestBody": _body("VoicePatch"),
                "responses": {
                    "200": {"description": "The voice", **_json("VoiceView")},
                    **_errors(404, 413, 415, 422),
                },
            },
            "delete": {
                "summary": "Delete a voice, its embedding and reference audio (queued jobs then fail)",
                "operationId": "deleteVoice",
                "parameters": [voice_id],
                "responses": {"204": {"description": "Deleted"}, **_errors(404)},
            },
        },
    }


def _webhook_paths() -> dict[str, Any]:
    endpoint_id = {"name": "endpoint_id", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "/v1/webhooks": {
            "post": {
                "summary": "Register a webhook endpoint (its signing secret is in this answer only)",
                "operationId": "createWebhook",
                "requestBody": _body("WebhookCreate"),
                "responses": {
                    "201": {"description": "Registered", **_json("WebhookCreated")},
                    **_errors(400, 409, 413, 415, 422),
                },
            },
            "get": {
                "summary": "Your webhook endpoints",
                "operationId": "listWebhooks",
                "responses": {"200": {"description": "Endpoints", **_json("WebhookList")}, **_errors()},
            },
        },
        "/v1/webhooks/default/secret": {
            "get": {
                "summary": "The default signing secret, which signs deliveries to jobs' own webhook_url",
                "operationId": "getDefaultWebhookSecret",
                "responses": {"200": {"description": "The secret", **_json("WebhookSecret")}, **_errors()},
            }
        },
        "/v1/webhooks/{endpoint_id}": {
            "get": {
                "summary": "A webhook endpoint",
                "operationId": "getWebhook",
                "parameters": [endpoint_id],
                "responses": {"200": {"description": "The endpoint", **_json("WebhookView")}, **_errors(404)},
            },
            "delete": {
                "summary": "Delete a webhook endpoint (its pending retries stop)",
                "operationId": "deleteWebhook",
                "parameters": [endpoint_id],
                "responses": {"204": {"description": "Deleted"}, **_errors(404)},
            },
        },
        "/v1/webhooks/{endpoint_id}/deliveries": {
            "get": {
                "summary": "Delivery attempts of an endpoint, newest first (`default`: jobs' own webhook_url)",
                "operationId": "listWebhookDeliveries",
                "parameters": [
                    endpoint_id,
                    {
                        "name": "subject",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "Only the attempts about this job or voice id.",
                    },
                ],
                "responses": {"200": {"description": "Attempts", **_json("DeliveryList")}, **_errors(404)},
            }
        },
    }


def _lexicon_paths() -> dict[str, Any]:
    lexicon_id = {"name": "lexicon_id", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "/v1/lexicons": {
            "post": {
                "summary": "Create a pronunciation lexicon (jobs name it in `lexicons`)",
                "operationId": "createLexicon",
                "requestBody": _body("LexiconCreate"),
                "responses": {
                    "201": {"description": "Created", **_json("LexiconView")},
                    **_errors(409, 413, 415, 422),
                },
            },
            "get": {
                "summary": "Your lexicons",
                "operationId": "listLexicons",
                "responses": {"200": {"description": "Lexicons", **_json("LexiconList")}, **_errors()},
            },
        },
        "/v1/lexicons/{lexicon_id}": {
            "get": {
                "summary": "A lexicon with its entries",
                "operationId": "getLexicon",
                "parameters": [lexicon_id],
                "responses": {"200": {"description": "The lexicon", **_json("LexiconView")}, **_errors(404)},
            },
            "put": {
                "summary": "Replace a lexicon (jobs already submitted keep the entries they were given)",
                "operationId": "replaceLexicon",
                "parameters": [lexicon_id],
                "requestBody": _body("LexiconCreate"),
                "responses": {
                    "200": {"description": "The lexicon", **_json("LexiconView")},
                    **_errors(404, 413, 415, 422),
                },
            },
            "patch": {
                "summary": "Change a lexicon's name, description or entries (as a whole)",
                "operationId": "changeLexicon",
                "parameters": [lexicon_id],
                "requestBody": _body("LexiconPatch"),
                "responses": {
                    "200": {"description": "The lexicon", **_json("LexiconView")},
                    **_errors(404, 413, 415, 422),
                },
            },
            "delete": {
                "summary": "Delete a lexicon (jobs already submitted keep its entries)",
                "operationId": "deleteLexicon",
                "parameters": [lexicon_id],
                "responses": {"204": {"description": "Deleted"}, **_errors(404)},
            },
        },
    }


def _webhook_events() -> dict[str, Any]:
    """OpenAPI 3.1 `webhooks`: what we POST to an endpoint, with the Standard Webhooks headers."""
    headers = [
        ("webhook-id", "The message id: the same on every retry of one event to one endpoint (deduplicate on it)."),
        ("webhook-timestamp", "Unix seconds of this attempt."),
        ("webhook-signature", "`v1,` + base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}` under the "
         "secret (the base64 after `whsec_`); space-separated when there are several."),
    ]  # fmt: skip
    parameters = [
        {"name": name, "in": "header", "required": True, "schema": {"type": "string"}, "description": text}
        for name, text in headers
    ]
    return {
        event.value: {
            "post": {
                "summary": f"{event.value}: sent to endpoints subscribed to it"
                + (" and to the job's own webhook_url" if event.value.startswith("job.") else ""),
                "operationId": f"event_{event.value.replace('.', '_')}",
                "parameters": parameters,
                "requestBody": {"required": True, **_json("WebhookPayload")},
                "responses": {"2XX": {"description": "Received; any other answer, a redirect or a timeout is retried"}},
            }
        }
        for event in WebhookEvent
    }
