"""Executing action chunks through an SB3-style ``predict`` (chunk queue carried in ``state``).

A chunk policy plans ``H`` actions at once and executes the first ``n_action_steps`` of them
open-loop before planning again (pi0-style). SB3's ``predict(obs, state, episode_start)``
contract already carries per-env memory between calls for recurrent policies; the queue of
not-yet-executed actions travels the same way, so ``evaluate_policy`` and any SB3-style loop run
chunk policies unchanged. Called with ``state=None`` every step, a planner replans every step
and executes only the first action of each chunk (receding horizon).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import numpy as np

__all__ = ["ChunkPlanner", "ChunkState", "batch_observation", "chunked_predict"]

ChunkState = tuple[np.ndarray, np.ndarray]
"""``(queue, cursor)``: planned actions ``(n_envs, H, A)`` and the next index per env ``(n_envs,)``;
an env whose cursor reached ``n_action_steps`` plans a new chunk."""


class ChunkPlanner(Protocol):
    """Anything that plans a batch of action chunks from a batch of observations."""

    def plan(self, observation: Mapping[str, np.ndarray], deterministic: bool) -> np.ndarray:
        """Return float32 chunks ``(n, H, A)`` for a batched observation dict."""
        ...


def batch_observation(observation: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], bool]:
    """Add a batch axis to a single env's observation dict.

    Returns:
        ``(batched, was_batched)``; batching is detected from the rank of ``"state"``.
    """
    if "state" not in observation:
        raise ValueError(f"observation must hold a 'state' entry, got keys {sorted(observation)}")
    batched = np.asarray(observation["state"]).ndim == 2
    if batched:
        return {k: np.asarray(v) for k, v in observation.items()}, True
    return {k: np.asarray(v)[None] for k, v in observation.items()}, False


def chunked_predict(
    planner: ChunkPlanner,
    observation: Mapping[str, np.ndarray],
    state: ChunkState | None,
    episode_start: np.ndarray | None,
    deterministic: bool,
    n_action_steps: int,
) -> tuple[np.ndarray, ChunkState]:
    """One control step of chunked execution for a batch of envs.

    Args:
        planner: Plans chunks for the envs that need one.
        observation: Batched (or single) observation dict.
        state: Queue from the previous call, or ``None`` (every env plans).
        episode_start: ``(n,)`` bools; envs starting an episode drop their queue.
        deterministic: Passed to the planner.
        n_action_steps: Actions executed from each chunk before replanning.

    Returns:
        ``(actions, state)``: actions ``(n, A)`` (or ``(A,)`` for a single observation).
    """
    obs, was_batched = batch_observation(observation)
    n = obs["state"].shape[0]
    if state is None:
        need = np.ones(n, dtype=bool)
        queue: np.ndarray | None = None
        cursor = np.zeros(n, dtype=np.int64)
    else:
        queue, cursor = np.array(state[0], dtype=np.float32), np.array(state[1], dtype=np.int64)
        if queue.shape[0] != n or cursor.shape != (n,):
            raise ValueError(f"state holds {queue.shape[0]} envs but the observation has {n}")
        need = cursor >= min(n_action_steps, queue.shape[1])
        if episode_start is not None:
            need |= np.asarray(episode_start, dtype=bool).reshape(n)
    if need.any():
        sub = {k: v[need] for k, v in obs.items()}
        chunks = np.asarray(planner.plan(sub, deterministic), dtype=np.float32)
        if queue is None:
            queue = np.zeros((n, *chunks.shape[1:]), dtype=np.float32)
        queue[need] = chunks
        cursor[need] = 0
    assert queue is not None
    actions = queue[np.arange(n), cursor].copy()
    cursor = cursor + 1
    if not was_batched:
        actions = actions[0]
    return actions, (queue, cursor)
