"""Every setting of the service, read once from `NARRATE_*` environment variables.

One typed object for the API, the worker, the CLI stack and the tests, so a value is spelled and
defaulted in exactly one place. Each field's docstring is its documentation (README "Settings").
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.text.rate import DEFAULT_CHARS_PER_SECOND

EngineName = Literal["piper", "kanitts2"]


class QcAsr(StrEnum):
    """The recogniser that checks every chunk (`Settings.qc_asr`)."""

    OFF = "off"
    POCKETSPHINX = "pocketsphinx"
    WHISPER = "whisper"


DEV_KEY = "dev-key-change-me"
"""The development API key, accepted (for tenant `DEV_TENANT`) only with `dev_mode`."""
DEV_TENANT = "dev"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="NARRATE_", env_file=None, extra="ignore", use_attribute_docstrings=True
    )

    # --- services -------------------------------------------------------------------------------
    redis_url: str = "redis://127.0.0.1:6379/0"
    """Redis for the job store, the rate limits and the Celery broker: `redis://[:password@]host:port/db`,
    or through Sentinel (failover) `sentinel://[:password@]host:port;sentinel://host:port/db`, the
    sentinels' addresses in kombu's notation; the primary is the one named `redis_sentinel_master`."""
    redis_sentinel_master: str = "mymaster"
    """Name of the primary the sentinels watch (`sentinel monitor <name> ...`); only with `sentinel://`."""
    key_prefix: str = "narrate"
    """Prefix of every Redis key the job store writes (lets several deployments or test runs share one Redis)."""
    queue_name: str = "narrate"
    """Celery queue the API sends synthesis jobs to and the GPU workers consume."""
    voice_queue_name: str = "narrate-voices"
    """Celery queue of voice cloning tasks: its own, so a worker that consumes only it (compose's
    `voices`) clones in seconds while the synthesis workers are busy with long jobs."""
    storage_url: str = "file://./var/storage"
    """Where results and checkpoints go: `s3://bucket/prefix` or `file:///abs/dir` (or relative `file://./dir`)."""
    s3_endpoint_url: str | None = None
    """S3 endpoint for MinIO, R2, Ceph etc.; unset for AWS."""
    s3_public_endpoint_url: str | None = None
    """Endpoint named in presigned URLs when clients reach S3 under another host than the services do
    (e.g. MinIO as `minio:9000` inside Docker, `localhost:9000` outside)."""
    s3_region: str | None = None
    """S3 region (AWS needs it for presigned URLs outside us-east-1)."""
    s3_presign_expiry_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    """How long a result URL stays valid: S3 presigned GETs and the file backend's `/v1/files/` links alike.
    Links are minted afresh on every read of a job, so a job read later always has live ones."""
    s3_multipart_threshold_bytes: int = Field(default=16 * 1024 * 1024, ge=5 * 1024 * 1024)
    """Uploads above this size use S3 multipart upload."""
    s3_connect_timeout_seconds: float = Field(default=10.0, gt=0)
    """How long one S3 request waits for a connection."""
    s3_read_timeout_seconds: float = Field(default=60.0, gt=0)
    """How long one S3 request waits for the server to answer (a hung server counts as an outage)."""
    s3_max_attempts: int = Field(default=3, ge=1)
    """Tries boto3 makes of one S3 request by itself (its standard retry mode) inside each of our own
    retries (`storage_retry_seconds`)."""
    storage_retry_seconds: float = Field(default=60.0, ge=0)
    """How long one storage operation keeps retrying transient failures (refused or dropped connections,
    timeouts, 5xx, throttling; exponential back-off with jitter) before it gives up; a job whose storage
    stays unreachable that long is put back on the queue (see `storage_requeue_seconds`)."""
    api_storage_retry_seconds: float = Field(default=5.0, ge=0)
    """The same budget inside an API request (a voice upload), kept well below gunicorn's timeout: the
    client gets a 503 and retries instead."""

    # --- API --------------------------------------------------------------------------------------
    api_keys: str = ""
    """Comma-separated `tenant:sha256hex` pairs; the hash is the SHA-256 of the bearer key. Empty with
    `dev_mode` adds the development key `dev-key-change-me` for tenant `dev`."""
    dev_mode: bool = False
    """Enables the development API key. Never in production."""
    max_text_chars: int = Field(default=5_000_000, ge=1)
    """Largest total text of one job, in characters (413 above)."""
    speech_wait_seconds: float = Field(default=300.0, gt=0)
    """Longest `POST /v1/audio/speech` waits for its job (4,096 characters take seconds on a GPU); after it
    the job is canceled and the answer is a 504."""
    max_inputs: int = Field(default=20_000, ge=1)
    """Most inputs in one job (a game studio's batch of lines)."""
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    """Largest JSON request body (413 above); a gzip-compressed body (`Content-Encoding: gzip`) is measured
    once decompressed."""
    rate_limit: str = "600 per minute"
    """Per-tenant limit of write requests (submit, cancel, ...) per route, in flask-limiter notation."""
    read_rate_limit: str = "6000 per minute"
    """Per-tenant limit of all API requests together (status polling included)."""
    auth_failure_limit: str = "20 per minute"
    """Failed authentications (missing or wrong API key) allowed per client address, in flask-limiter
    notation (moving window). Above it that address gets 429 `too_many_auth_failures` for every `/v1/`
    request until the window has room again; other addresses, the same tenant's included, are unaffected."""
    trusted_proxies: int = Field(default=0, ge=0, le=10)
    """How many reverse proxies in front of the API append to `X-Forwarded-For`; the client address (for
    the authentication failure limit) is taken that many hops from the right. 0: the TCP peer, and the
    header is ignored (a client could forge it)."""
    request_body_timeout_seconds: float = Field(default=60.0, gt=0)
    """Longest time a client may take to send a request body; slower ones get 408 and are disconnected, so
    slow clients cannot hold the API (enforced by the gunicorn worker, deploy/gunicorn_worker.py)."""
    job_retention_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    """How long job records, idempotency keys, results and checkpoints are kept (voices are kept until deleted)."""
    public_url: str | None = None
    """Base URL clients reach the API at (`https://tts.example.com`), for the file backend's download
    links; unset: the host of each request. Set it behind a proxy, and for links minted outside a request
    (webhooks)."""
    download_signing_key: SecretStr | None = None
    """Secret that signs the file backend's download links. Unset: a random key created once in Redis and
    shared by every API process."""

    # --- worker -----------------------------------------------------------------------------------
    engine: EngineName = "piper"
    """Speech engine of the worker: `piper` (CPU preview voice) or `kanitts2` (GPU)."""
    visibility_timeout_seconds: int = Field(default=2 * 3600 + 600, ge=3)
    """Redis broker redelivery timeout of an unacknowledged message: it must cover the longest retry
    countdown a worker holds (a webhook's, up to twice `webhook_retry_max_backoff_seconds`) and a voice
    clone. Synthesis does not depend on it: work tokens are acknowledged as they start, and a dead
    worker's units come back through their leases."""
    assembly_processes: int = Field(default=1, ge=0)
    """Processes per worker that stitch, master, encode and upload finished jobs beside the engine (0: on
    the unit's own thread), so the engine's batch never waits for a CPU-bound assembly."""
    alignment: bool = True
    """Time every word of a finished job by forced alignment (pocketsphinx, in the assembly process, off the
    generation path) for sentence cues, word timestamps, lip-sync phonemes and read-along books; false:
    estimate word times from their length (cheaper, less exact; the outputs say `estimated`)."""
    max_attempts: int = Field(default=3, ge=1)
    """A unit (of a job's plan, speech or assembly) claimed this many times without finishing (its worker
    died, it stalled, its storage stayed unreachable) fails its job with that reason instead of looping."""
    storage_requeue_seconds: float = Field(default=30.0, ge=0)
    """Delay before a job whose storage stayed unreachable past `storage_retry_seconds` is delivered again
    (doubled at each further attempt); each such delivery counts against `max_attempts`."""
    lease_seconds: float = Field(default=30.0, ge=1)
    """A unit's lease lasts this long unless its worker renews it (it does, every third of it); a worker
    that lost its lease stops without changing anything. Also about how long the units of a worker that
    died (or whose whole machine vanished) wait before the sweeper gives them to another worker."""
    worker_units: int = Field(default=16, ge=1, le=1024)
    """Units one worker process runs at once (its Celery `--concurrency`, threads): the chunks of all of
    them go to the process's one engine, whose batch mixes their rows."""
    unit_audio_seconds: float = Field(default=300.0, gt=0)
    """Estimated audio seconds of one speak unit at most: a long input is cut into streams of about this
    much (at paragraph boundaries; never fewer than its `streams`), short inputs are packed, in order,
    into units of up to this much. Units of one job run side by side on any workers."""
    unit_stall_seconds: float = Field(default=600.0, gt=0)
    """A speak unit whose holder reports no finished chunk for this long is given back (`unit_stalled`) and
    retried; after `max_attempts` claims its job fails. The only time bound on synthesis: a job of any
    length runs as long as its units make progress."""
    checkpoint_interval_seconds: float = Field(default=30.0, ge=0)
    """Wall seconds between two checkpoint part objects of a running speak unit (also written at the
    unit's end and when it stops): at most this much of a unit's work is done again after a crash (0: a
    part per chunk)."""
    checkpoint_min_audio_seconds: float = Field(default=60.0, ge=0)
    """A part is rolled at the interval only once it holds at least this much audio, so that a slow engine
    (a CPU) still writes at most one part per this much speech; the unit's end and a stop write what is
    left. A crash then costs at most the longer of the interval and the time to make this much audio."""
    sweep_seconds: float | None = Field(default=None, gt=0)
    """How often a worker process's sweeper returns units of expired leases, stalled units and units whose
    hand-back delay is over to the ready queue (unset: a third of `lease_seconds`)."""
    worker_metrics_port: int = Field(default=9101, ge=0, le=65535)
    """Port of the worker's Prometheus endpoint (0 = off)."""
    qc_asr: QcAsr = QcAsr.POCKETSPHINX
    """Quality control: every chunk is transcribed by this recogniser and scored against its text (word
    error rate, missing and inserted words); `off` keeps only the duration and silence checks. ASR runs
    on the worker's CPU in `qc_asr_processes` processes beside the engine (see docs/quality.md for its cost);
    `whisper` runs `qc_whisper_model` through transformers, on `qc_whisper_device`."""
    qc_max_wer: float = Field(default=0.05, ge=0.0, le=1.0)
    """A chunk whose word error rate is above this is drawn again (with `pocketsphinx`, one dropped
    word in a 20-word chunk is 0.05)."""
    qc_redraws: int = Field(default=2, ge=0, le=10)
    """Most times a chunk that fails a check is drawn again (new seeds); the best draw is kept, and one
    still failing is listed in the job's `quality.flagged` for a person to review."""
    qc_asr_processes: int = Field(default=2, ge=1, le=64)
    """Processes beside each worker process that transcribe chunks (each loads its own recogniser; about
    40 MB for pocketsphinx). Processes, not threads: a decoder holds the GIL while it runs."""
    qc_whisper_model: str = "openai/whisper-base.en"
    """Hugging Face id or local directory of the Whisper model of `qc_asr=whisper`; read from
    `hf_cache_dir` and never downloaded by the worker (put it there beforehand)."""
    qc_whisper_device: str = "cpu"
    """Device of the Whisper recogniser (`cpu`, `cuda`, `cuda:1`)."""
    batch_size: int = Field(default=16, ge=1)
    """Most chunks an engine generates at once (KaniTTS2: its batch slots; each holds a 3072-token cache,
    36 MiB in bf16 at the LFM2-350M size, so 256 slots take about 9 GiB)."""

    # --- text and audio ---------------------------------------------------------------------------
    chunk_budget_seconds: float = Field(default=25.0, gt=1.0, le=35.0)
    """Target length of one generated chunk in estimated audio seconds."""
    interactive_first_chunk_chars: int = Field(default=60, ge=0, le=1000)
    """Most characters of the first chunk of an interactive-priority job (the speech endpoint's), so that
    its audio starts early: the first sentence, or its first clauses when longer (0: a full chunk)."""
    chars_per_second: float = Field(default=DEFAULT_CHARS_PER_SECOND, gt=1.0)
    """Speech-rate estimate used to size chunks before anything was measured."""
    loudness_target_lufs: float = Field(default=-19.0, ge=-40.0, le=-5.0)
    """Integrated loudness of results (ITU-R BS.1770)."""
    peak_dbfs: float = Field(default=-1.0, ge=-12.0, le=0.0)
    """Highest sample peak of results."""
    pause_sentence_ms: int = Field(default=250, ge=0, le=5000)
    """Pause after a chunk that ends a sentence."""
    pause_clause_ms: int = Field(default=120, ge=0, le=5000)
    """Pause after a chunk that was split inside a sentence."""
    pause_paragraph_ms: int = Field(default=600, ge=0, le=10000)
    """Pause after a chunk that ends a paragraph."""
    pause_chapter_ms: int = Field(default=1500, ge=0, le=20000)
    """Pause between inputs when they are concatenated into one file."""
    pause_turn_ms: int = Field(default=350, ge=0, le=10000)
    """Pause between two speakers' turns of a dialogue input."""
    fit_min_ratio: float = Field(default=0.8, ge=0.25, le=1.0)
    """Shortest a timed line may be stretched to, as a share of its generated duration."""
    fit_max_ratio: float = Field(default=1.25, ge=1.0, le=4.0)
    """Longest a timed line may be stretched to, as a multiple of its generated duration."""
    fit_redraws: int = Field(default=2, ge=0, le=10)
    """Draws of a timed line with other seeds when its fit would pass the ratio bounds."""

    # --- KaniTTS2 engine --------------------------------------------------------------------------
    kanitts2_model: str = "nineninesix/kani-tts-2-en"
    """Hugging Face id or local directory of the KaniTTS2 checkpoint."""
    kanitts2_codec: str = "nvidia/nemo-nano-codec-22khz-0.6kbps-12.5fps"
    """NanoCodec: hub name or a local `.nemo` file."""
    kanitts2_speaker_embedder: str = "nineninesix/speaker-emb-tbr"
    """Speaker embedder for voice cloning: hub id or local directory."""
    kanitts2_device: str = "auto"
    """`auto` (CUDA when present), `cuda`, `cuda:N` or `cpu`."""
    kanitts2_streams: int = Field(default=4, ge=1, le=256)
    """Default number of side-by-side streams a long text is split into."""
    kanitts2_context_sentences: int = Field(default=1, ge=0, le=4)
    """Sentences of the previous chunk carried as context (0 = independent chunks)."""
    kanitts2_max_frames_per_chunk: int | None = Field(default=None, ge=1)
    """Hard bound on generated frames per chunk below the text-derived cap (tests and benchmarks with
    random weights, which never choose to stop); unset in production."""
    kanitts2_cache_tokens: int = Field(default=3072, ge=64)
    """Key/value cache of one batch slot, in tokens: prompt, carried context and every generated frame of
    the longest chunk. A chunk that needs more fails alone (`synthesis_failed`: its line in a line sheet,
    the job otherwise); memory grows with `batch_size` times this."""
    kanitts2_compile: bool = False
    """Run the decode step through `torch.compile` (inductor): fewer, fused kernels; minutes of compiling
    per batch bucket at start-up, so off by default."""
    kanitts2_cuda_graphs: bool | None = None
    """Replay the decode step as captured CUDA graphs (unset: on when the device is CUDA)."""
    kanitts2_codec_bf16: bool = False
    """Decode NanoCodec in bf16 on CUDA (faster at large batches); off until `bench/gpu_run.py` has shown
    its error against fp32 at the real size on your GPU."""
    hf_cache_dir: str | None = None
    """Cache directory for downloaded checkpoints (a volume in production)."""

    # --- voices (cloning) -------------------------------------------------------------------------
    voice_upload_max_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    """Largest total upload of reference clips for one voice (413 above)."""
    voice_max_clips: int = Field(default=10, ge=1)
    """Most reference clips for one voice."""
    voices_per_tenant: int = Field(default=100, ge=1)
    """Most voices one tenant may keep."""
    lexicons_per_tenant: int = Field(default=100, ge=1)
    """Most pronunciation lexicons one tenant may keep (each of at most 1000 entries)."""
    voice_rate_limit: str = "10 per minute"
    """Per-tenant rate of cloning requests."""
    storage_sweep_interval_seconds: int = Field(default=3600, ge=0)
    """How often each worker process deletes result and checkpoint objects older than
    `job_retention_seconds` (plus an hour's grace) of the file backend; voices are never swept (0 = no
    sweep). On S3 the bucket's lifecycle rule on `results/` and `checkpoints/` does it instead (compose
    sets it; set it on your own bucket)."""
    gpu_idle_release_seconds: float = Field(default=0.0, ge=0.0)
    """Idle seconds after which a worker releases its engine's GPU memory and reloads on the next job, for
    GPUs shared with other services (0 = keep it loaded)."""

    # --- webhooks -----------------------------------------------------------------------------------
    webhook_queue_name: str = "narrate-webhooks"
    """Celery queue of webhook deliveries, consumed by the webhooks worker (`worker.webhook_app`), never by
    the GPU workers: a retry waiting for its time would otherwise sit behind a book for hours."""
    webhook_allow_hosts: str = ""
    """Comma-separated host names, IP addresses or CIDR networks a webhook URL may name or resolve to
    although they are not public (loopback, private, link-local, metadata): `127.0.0.1` in development and
    tests. Empty: only public addresses."""
    webhook_timeout_seconds: float = Field(default=10.0, gt=0.0, le=60.0)
    """How long one delivery attempt may take (connect and answer); longer counts as a failed attempt."""
    webhook_retry_base_seconds: float = Field(default=5.0, gt=0.0)
    """Wait before the first retry of a failed delivery; each further retry waits twice as long."""
    webhook_retry_max_backoff_seconds: float = Field(default=3600.0, gt=0.0)
    """Longest wait between two attempts (kept below half the broker's visibility timeout, or a waiting
    retry would be delivered twice)."""
    webhook_retry_window_seconds: float = Field(default=24 * 3600.0, gt=0.0)
    """No attempt is made later than this after the event; the last failure is final."""
    webhook_ca_bundle: str | None = None
    """PEM file of the certificate authorities trusted for https webhook receivers (unset: the system's)."""
    webhook_endpoints_per_tenant: int = Field(default=20, ge=1)
    """Most webhook endpoints one tenant may register."""

    # --- usage and quotas -------------------------------------------------------------------------
    monthly_character_quota: int | None = Field(default=None, ge=0)
    """Characters a tenant may submit per UTC calendar month (unset: no quota); a job that would exceed
    it is refused with 429 `quota_exceeded` before anything is stored."""
    tenant_quotas: str = ""
    """Per-tenant overrides of the monthly character quota: `tenant=characters,...`."""
    usage_retention_days: int = Field(default=400, ge=31)
    """How long the per-tenant daily usage counters are kept."""

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://", "sentinel://")):
            raise ValueError("redis_url must be redis://, rediss://, unix:// or sentinel://host:port;...")
        if value.startswith("sentinel://"):
            sentinels(value)  # every address parses
        return value

    @property
    def redis_sentinels(self) -> list[tuple[str, int]] | None:
        """The sentinels' (host, port) when `redis_url` is a `sentinel://` URL, else None."""
        return sentinels(self.redis_url) if self.redis_url.startswith("sentinel://") else None

    @field_validator("storage_url")
    @classmethod
    def _storage_scheme(cls, value: str) -> str:
        if not value.startswith(("s3://", "file://")):
            raise ValueError("storage_url must start with s3:// or file://")
        return value

    @field_validator("tenant_quotas")
    @classmethod
    def _quotas_parse(cls, value: str) -> str:
        _parse_quotas(value)
        return value

    def character_quota(self, tenant: str) -> int | None:
        """The monthly character quota of `tenant`: its override, else the default (None: unlimited)."""
        return _parse_quotas(self.tenant_quotas).get(tenant, self.monthly_character_quota)


def sentinels(url: str) -> list[tuple[str, int]]:
    """(host, port) of every `sentinel://` address in kombu's `;`-separated notation."""
    found = []
    for part in url.split(";"):
        where = urlsplit(part.strip())
        if where.scheme != "sentinel" or not where.hostname:
            raise ValueError(f"not a sentinel://host:port address: {part!r}")
        found.append((where.hostname, where.port or 26379))
    return found


def sentinel_auth(url: str) -> tuple[str | None, int]:
    """The Redis password (on the first address, as kombu reads it) and the database number (on the last)."""
    first, last = urlsplit(url.split(";")[0]), urlsplit(url.split(";")[-1])
    return first.password, int(last.path.strip("/") or 0)


def _parse_quotas(value: str) -> dict[str, int]:
    quotas: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        tenant, _, amount = item.partition("=")
        if not tenant.strip() or not amount.strip().isdigit():
            raise ValueError(f"tenant_quotas entry {item!r} is not tenant=characters")
        quotas[tenant.strip()] = int(amount)
    return quotas


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests build their own `Settings` instead."""
    return Settings()
