"""Reward-Aligned Behaviour Cloning weights (spec §3.6), from per-frame progress arrays.

For frame ``i`` the progress gained over one action chunk is ``r_i = phi(t + Delta) - phi(t)``
(``Delta`` = the policy's chunk size; the future index is clamped to the episode's last frame).
With ``mu = max(mean(r), 0)`` and ``sigma = max(std(r), eps)`` over the whole dataset (LeRobot's
global statistics; the paper's running Welford statistics converge to the same values),

    w~_i = clip((r_i - (mu - 2 sigma)) / (4 sigma + eps), 0, 1)
    w_i  = 1{r_i > kappa} + 1{0 <= r_i <= kappa} * w~_i

so chunks that make clear progress weigh 1, regressions weigh 0, and small gains are ramped.
Non-finite deltas weigh 1 (LeRobot). The BC loss is then ``sum(w l) / (sum(w) + eps)``.

Example:
    >>> w = rabc_weights([np.array([0.0, 0.1, 0.2, 0.2, 0.1])], chunk_size=1, kappa=0.05)
    >>> [round(float(x), 3) for x in w[0]]
    [1.0, 1.0, 0.433, 0.0, 0.433]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["DEFAULT_KAPPA", "rabc_deltas", "rabc_weights"]

DEFAULT_KAPPA = 0.01
"""LeRobot's default threshold (tuned for ~90 s episodes at 30 fps; see the spec §3.6)."""


def rabc_deltas(progress: np.ndarray, chunk_size: int) -> np.ndarray:
    """Progress gained over one chunk from every frame: ``p[min(i + H, T - 1)] - p[i]``."""
    p = np.asarray(progress, dtype=np.float64)
    if p.ndim != 1 or p.size == 0:
        raise ValueError(f"progress must be a non-empty 1-D array, got shape {p.shape}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    future = np.minimum(np.arange(p.size) + chunk_size, p.size - 1)
    return p[future] - p


def rabc_weights(
    progress: Sequence[np.ndarray], chunk_size: int, kappa: float = DEFAULT_KAPPA, eps: float = 1e-6
) -> list[np.ndarray]:
    """Per-frame RA-BC weights in [0, 1] for each episode's progress curve.

    Args:
        progress: One ``(T_e,)`` progress array per episode (any scale; usually [0, 1]).
        chunk_size: ``Delta``, the policy's chunk length.
        kappa: Deltas above it get weight 1.
        eps: Numerical floor of ``sigma``.

    Returns:
        One float32 ``(T_e,)`` weight array per episode.
    """
    deltas = [rabc_deltas(p, chunk_size) for p in progress]
    if not deltas:
        return []
    flat = np.concatenate(deltas)
    finite = flat[np.isfinite(flat)]
    mu = max(float(finite.mean()), 0.0) if finite.size else 0.0
    sigma = max(float(finite.std()), eps) if finite.size else eps
    out = []
    for r in deltas:
        soft = np.clip((r - (mu - 2.0 * sigma)) / (4.0 * sigma + eps), 0.0, 1.0)
        w = np.where(r > kappa, 1.0, np.where(r >= 0.0, soft, 0.0))
        w[~np.isfinite(r)] = 1.0
        out.append(w.astype(np.float32))
    return out
