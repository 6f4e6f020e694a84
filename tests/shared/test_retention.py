"""The retention sweep on both backends (a directory, and moto's S3 server over HTTP): results and
checkpoints older than the retention go, everything else (voices first of all) stays."""

from __future__ import annotations

import os
import time
from pathlib import Path

from shared.retention import SWEEP_GRACE_SECONDS, sweep_expired
from shared.settings import Settings
from shared.storage import LocalStorage, Storage, storage_from_settings
from shared.storage_keys import checkpoint_key, embedding_key, reference_key, result_prefix
from tests.support.s3 import S3Server, s3_storage_url  # noqa: F401 - fixture

RETENTION = 7 * 24 * 3600
OLD_RESULT = result_prefix("t", "job_old") + "job_old.mp3"
NEW_RESULT = result_prefix("t", "job_new") + "job_new.mp3"
OLD_CHECKPOINT = checkpoint_key("job_old", "c0", 1)
VOICE = [embedding_key("t", "voice_1"), reference_key("t", "voice_1", 0)]


def _fill(storage: Storage) -> None:
    for key in (OLD_RESULT, NEW_RESULT, OLD_CHECKPOINT, *VOICE):
        storage.put_bytes(key, b"x")


def test_the_sweep_removes_old_results_and_checkpoints_of_a_directory_and_keeps_voices(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    _fill(storage)
    old = time.time() - RETENTION - SWEEP_GRACE_SECONDS - 60
    for key in (OLD_RESULT, OLD_CHECKPOINT, *VOICE):  # voices as old as the oldest job
        os.utime(storage.path_for(key), (old, old))
    assert sweep_expired(storage, retention_seconds=RETENTION) == 2
    assert storage.list_keys() == sorted([NEW_RESULT, *VOICE])
    assert not (tmp_path / "checkpoints").exists()  # emptied directories go too


def test_the_sweep_removes_old_results_and_checkpoints_of_a_bucket_and_keeps_voices(
    s3_server: S3Server,
    s3_storage_url: str,  # noqa: F811
) -> None:
    storage = storage_from_settings(
        Settings(storage_url=s3_storage_url, s3_endpoint_url=s3_server.endpoint_url, s3_region="us-east-1")
    )
    _fill(storage)
    modified = dict(storage.list_modified(""))
    assert set(modified) == {OLD_RESULT, NEW_RESULT, OLD_CHECKPOINT, *VOICE}
    assert all(abs(stamp - time.time()) < 300 for stamp in modified.values())
    assert sweep_expired(storage, retention_seconds=RETENTION) == 0  # nothing is old yet
    later = time.time() + RETENTION + SWEEP_GRACE_SECONDS + 60  # S3 cannot be back-dated: sweep from the future
    assert sweep_expired(storage, retention_seconds=RETENTION, now=later) == 3
    assert storage.list_keys() == sorted(VOICE)
