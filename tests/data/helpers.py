"""Synthetic episodes for dataset tests (no MuJoCo)."""

from __future__ import annotations

from typing import Any

import numpy as np

from sarm2_gym.data import Episode

TASKS = ("pick and place plates into bin", "folding shorts", "pull plug off the socket")


def make_episode(
    length: int = 6,
    *,
    seed: int = 0,
    task: str = TASKS[0],
    cameras: tuple[str, ...] = ("top", "left_wrist"),
    image_hw: tuple[int, int] = (8, 10),
    extra: bool = False,
    success: bool = True,
    meta: dict[str, Any] | None = None,
) -> Episode:
    """A random but valid episode; ``extra`` adds env state, a vector label and a string label."""
    rng = np.random.default_rng(seed)
    frames: dict[str, np.ndarray] = {
        "observation.state": rng.normal(size=(length, 14)).astype(np.float32),
        "action": rng.uniform(-1, 1, size=(length, 14)).astype(np.float32),
        "next.reward": np.zeros(length, np.float32),
        "next.done": np.arange(length) == length - 1,
        "next.success": (np.arange(length) == length - 1) & success,
        "act_pri": rng.integers(0, 22, size=length).astype(np.int64),
        "stage": np.sort(rng.integers(0, 3, size=length)).astype(np.int64),
        "progress": np.linspace(0.0, 1.0, length, dtype=np.float32),
    }
    frames["next.reward"][-1] = float(success)
    for cam in cameras:
        frames[f"observation.images.{cam}"] = rng.integers(
            0, 256, size=(length, *image_hw, 3), dtype=np.uint8
        )
    if extra:
        frames["observation.environment_state"] = rng.normal(size=(length, 5)).astype(np.float64)
        frames["stage_probs"] = rng.dirichlet(np.ones(4), size=length).astype(np.float32)
        frames["segment"] = np.array(["fast", "slow"] * length)[:length]
    if meta is None:
        meta = {"seed": seed, "quality": "noisy", "quality_knobs": {"noise": 0.05, "speed": 1.2}}
    return Episode(
        task=task,
        env_id="SARM2-PlatesIntoBin-v0",
        frames=frames,
        success=success,
        fps=10,
        meta=meta,
    )


def assert_frames_equal(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    """Exact equality of every column, dtype and shape included."""
    assert set(got) == set(want)
    for key, arr in want.items():
        assert got[key].shape == arr.shape, key
        if arr.dtype.kind == "U":
            assert got[key].tolist() == arr.tolist(), key
            continue
        assert got[key].dtype == arr.dtype, key
        np.testing.assert_array_equal(got[key], arr, err_msg=key)
