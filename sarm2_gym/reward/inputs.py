"""Validation of numpy inputs to the inference API, with errors that name the problem."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["check_frames", "check_state"]


def check_frames(frames: Mapping[str, np.ndarray], cameras: Sequence[str], image_size: int) -> int:
    """Check camera images and return their common length.

    Args:
        frames: Camera -> uint8 ``(T, H, W, 3)``; extra keys are ignored.
        cameras: Cameras the model needs.
        image_size: Required height and width.

    Raises:
        ValueError: On a missing camera, wrong dtype / rank / size, or unequal lengths.
    """
    if not isinstance(frames, Mapping):
        raise ValueError(f"frames must map camera name -> images, got {type(frames).__name__}")
    missing = [c for c in cameras if c not in frames]
    if missing:
        raise ValueError(f"missing camera(s) {missing}; the model needs {list(cameras)}")
    lengths = set()
    for cam in cameras:
        arr = frames[cam]
        if not isinstance(arr, np.ndarray):
            raise ValueError(f"camera {cam!r}: images must be a numpy array")
        if arr.dtype != np.uint8:
            raise ValueError(f"camera {cam!r}: images must be uint8, got {arr.dtype}")
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise ValueError(f"camera {cam!r}: images must be (T, H, W, 3), got {arr.shape}")
        if arr.shape[1:3] != (image_size, image_size):
            raise ValueError(
                f"camera {cam!r}: images must be {image_size}x{image_size}, "
                f"got {arr.shape[1]}x{arr.shape[2]}"
            )
        lengths.add(arr.shape[0])
    if len(lengths) != 1:
        raise ValueError(f"cameras have different numbers of frames: {sorted(lengths)}")
    length = lengths.pop()
    if length == 0:
        raise ValueError("no frames given")
    return int(length)


def check_state(state: np.ndarray, length: int, state_dim: int) -> np.ndarray:
    """Check a ``(T, state_dim)`` state array and return it as float32.

    Raises:
        ValueError: On a wrong shape or NaN / inf values (naming the frames).
    """
    arr = np.asarray(state)
    if arr.shape != (length, state_dim):
        raise ValueError(f"state must be ({length}, {state_dim}), got {arr.shape}")
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"state must be numeric, got {arr.dtype}")
    arr = arr.astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
    if bad.size:
        raise ValueError(f"state holds NaN or inf at frame(s) {bad[:10].tolist()}")
    return arr
