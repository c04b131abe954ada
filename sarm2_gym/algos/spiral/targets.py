"""Chunk-level critic targets (spec §2.2), as pure functions.

For an episode of ``L`` frames with per-row rewards ``r_t`` and chunk length ``H``:

    R_t   = sum_{h < H'} gamma^h r_{t+h},      H' = min(H, L - t)            (chunk return)
    d_t   = 1 if t + H >= L else 0;  next index = t + H, clamped to L - 1     (done in chunk)
    y^MC  = p_ep * gamma^(L - 1 - t)                                         (sparse MC return)
    y^TD  = R_t + gamma^H (1 - d_t) min_i Q^tgt_i(s_{t+H}, z', a')           (dense TD)
    y     = alpha y^MC + (1 - alpha) y^TD

``r_t`` is the reward that *followed* row ``t``'s action (the LeRobot ``next.reward``
convention), i.e. the labeller's per-frame reward of frame ``t + 1``: each chunk is credited with
the progress its own actions made. (The reference loader indexes the labeller's frame rewards
directly, which credits a chunk with the step before it instead of its last step.)

Example (H = 2, gamma = 0.5, L = 3):
    >>> R, nxt, done = chunk_transitions(np.array([1.0, 2.0, 4.0]), chunk_size=2, gamma=0.5)
    >>> R.tolist(), nxt.tolist(), done.tolist()
    ([2.0, 4.0, 4.0], [2, 2, 2], [False, True, True])
    >>> mc_returns(3, gamma=0.5, terminal=1.0).tolist()
    [0.25, 0.5, 1.0]
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["chunk_transitions", "critic_targets", "frame_to_transition_rewards", "mc_returns"]


def frame_to_transition_rewards(frame_rewards: np.ndarray) -> np.ndarray:
    """Per-frame rewards ``r_t = P_t - P_{t-1}`` (spec §1.8) -> reward following row ``t``."""
    r = np.asarray(frame_rewards, dtype=np.float64)
    return np.append(r[1:], 0.0)


def chunk_transitions(
    rewards: np.ndarray, chunk_size: int, gamma: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chunk return, next-row index and done flag for every row of one episode.

    Args:
        rewards: ``(L,)`` reward following each row.
        chunk_size: ``H``.
        gamma: Per-step discount.

    Returns:
        ``(R (L,), next_index (L,) int64, done (L,) bool)``; indices are local to the episode.
    """
    r = np.asarray(rewards, dtype=np.float64)
    length = r.size
    if length == 0 or chunk_size < 1:
        raise ValueError(
            f"need a non-empty episode and chunk_size >= 1, got {length}, {chunk_size}"
        )
    padded = np.concatenate(
        [r, np.zeros(chunk_size)]
    )  # rewards past the end are 0, so H' = min(H, L-t)
    t = np.arange(length)
    chunk_return = sum(gamma**h * padded[t + h] for h in range(chunk_size))
    raw_next = t + chunk_size
    done = raw_next >= length
    return np.asarray(chunk_return, dtype=np.float64), np.minimum(raw_next, length - 1), done


def mc_returns(length: int, gamma: float, terminal: float) -> np.ndarray:
    """Sparse Monte-Carlo return ``terminal * gamma^(L - 1 - t)`` of every row."""
    return terminal * gamma ** np.arange(length - 1, -1, -1, dtype=np.float64)


def critic_targets(
    chunk_return: torch.Tensor,
    done: torch.Tensor,
    next_min_q: torch.Tensor,
    mc_return: torch.Tensor,
    gamma: float,
    chunk_size: int,
    mc_weight: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blended target ``alpha y^MC + (1 - alpha) y^TD`` and the TD part, both ``(B,)``.

    Args:
        chunk_return: ``R_t``.
        done: 1.0 where the episode ends inside the chunk.
        next_min_q: ``min_i Q^tgt_i`` at the next chunk's state (no gradient).
        mc_return: ``y^MC``.
        gamma: Per-step discount.
        chunk_size: ``H`` (bootstrap discount ``gamma^H``).
        mc_weight: ``alpha``: 0 = dense TD only, 1 = sparse MC only, 0.5 = SPIRAL.
    """
    td = chunk_return + gamma**chunk_size * (1.0 - done) * next_min_q
    return mc_weight * mc_return + (1.0 - mc_weight) * td, td
