"""Reward-model evaluation metrics: pure numpy functions (DESIGN "Measuring", spec §1.8, §3.7).

* :func:`macro_mse` — held-out demonstration MSE of steps-to-go, mean over episodes of the mean
  over the episode's samples (the reference's ``compute_mse`` "macro").
* :func:`spearman` — rank correlation (average ranks for ties).
* :func:`value_order_correlation` — VOC (GVL): Spearman between an episode's predicted values
  and the chronological order of its frames.
* :func:`classify_rollouts` / :func:`rollout_rho` — SARM's rollout score
  ``rho = (#correct - #wrong) / N`` over success / partial / failed rollouts, each classified by
  its final predicted progress with two stated thresholds.

Example:
    >>> round(spearman(np.array([1.0, 2.0, 3.0]), np.array([10.0, 30.0, 20.0])), 3)
    0.5
    >>> rollout_rho(np.array([0.95, 0.5, 0.1, 0.97]), ["success", "partial", "failed", "failed"])
    0.5
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
from scipy.stats import rankdata

__all__ = [
    "FAILED_BELOW",
    "SUCCESS_AT",
    "classify_rollouts",
    "macro_mse",
    "rollout_rho",
    "spearman",
    "value_order_correlation",
]

SUCCESS_AT: Final[float] = 0.9
"""A rollout whose final predicted progress is at least this is classified ``success``."""
FAILED_BELOW: Final[float] = 0.25
"""Below this it is ``failed`` (the benchmark calls an unsuccessful rollout ``partial`` from 25 %
privileged progress on, :data:`sarm2_gym.data.recording.PARTIAL_MIN_PROGRESS`); in between it is
``partial``."""


def macro_mse(predictions: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> float:
    """Mean over episodes of each episode's mean squared error (NaN for no episodes)."""
    if len(predictions) != len(targets):
        raise ValueError("need one target array per prediction array")
    per_episode = [
        float(np.mean((np.asarray(p, np.float64) - np.asarray(t, np.float64)) ** 2))
        for p, t in zip(predictions, targets, strict=True)
        if len(p)
    ]
    return float(np.mean(per_episode)) if per_episode else float("nan")


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation; NaN when either input is constant or has < 2 values."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"need two 1-D arrays of one length, got {x.shape} and {y.shape}")
    if x.size < 2:
        return float("nan")
    rx, ry = rankdata(x), rankdata(y)
    sx, sy = rx.std(), ry.std()
    if sx == 0 or sy == 0:
        return float("nan")
    return float(((rx - rx.mean()) * (ry - ry.mean())).mean() / (sx * sy))


def value_order_correlation(values: np.ndarray) -> float:
    """VOC: Spearman between predicted values and frame order (1 = strictly increasing)."""
    v = np.asarray(values, np.float64)
    return spearman(v, np.arange(v.size, dtype=np.float64))


def classify_rollouts(
    final_progress: np.ndarray, success_at: float = SUCCESS_AT, failed_below: float = FAILED_BELOW
) -> list[str]:
    """``"success"`` / ``"partial"`` / ``"failed"`` from each rollout's final predicted progress."""
    if not failed_below <= success_at:
        raise ValueError("need failed_below <= success_at")
    out = []
    for p in np.asarray(final_progress, np.float64):
        out.append("success" if p >= success_at else "failed" if p < failed_below else "partial")
    return out


def rollout_rho(
    final_progress: np.ndarray,
    outcomes: Sequence[str],
    success_at: float = SUCCESS_AT,
    failed_below: float = FAILED_BELOW,
) -> float:
    """SARM's rollout score ``(#correct - #wrong) / N`` (spec §3.7); NaN for no rollouts."""
    if len(final_progress) != len(outcomes):
        raise ValueError("need one outcome per rollout")
    if not len(outcomes):
        return float("nan")
    predicted = classify_rollouts(final_progress, success_at, failed_below)
    correct = sum(p == o for p, o in zip(predicted, outcomes, strict=True))
    return (correct - (len(outcomes) - correct)) / len(outcomes)
