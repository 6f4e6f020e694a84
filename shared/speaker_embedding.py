"""The stored form of a voice's speaker embedding: a unit 128-d float32 vector as `.npy`, never pickled.

The cloning task writes it and every synthesis job in the voice reads it; it lives here so the
synthesis path reads it without importing the cloning task.
"""

from __future__ import annotations

import io

import numpy as np

EMBEDDING_DIM = 128


def embedding_to_bytes(vector: np.ndarray) -> bytes:
    """`.npy` without pickling (`allow_pickle=False` on both ends)."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(vector, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


def embedding_from_bytes(data: bytes) -> np.ndarray:
    """The stored vector, or ValueError when it is not a finite (128,) array."""
    vector = np.load(io.BytesIO(data), allow_pickle=False)
    if vector.shape != (EMBEDDING_DIM,) or not np.all(np.isfinite(vector)):
        raise ValueError(f"stored embedding has shape {vector.shape}, expected ({EMBEDDING_DIM},)")
    return vector.astype(np.float32, copy=False)
