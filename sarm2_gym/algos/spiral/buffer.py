"""Chunk-level replay of labelled episodes (demonstrations and rollouts).

Episodes are stored frame by frame as the base policy's frozen features, the executed actions and
the labelled rewards; every frame ``t`` starts one chunk sample ``(s_t, a_{t:t+H}, R_t, d_t,
s_{t+H}, y^MC_t)`` as in the reference's RL data loader (spec §2.2), with the chunk return, done
flag, next index and MC return precomputed when the episode is added (:mod:`.targets`). Actions
past the episode's last row repeat it (the hold-still action), like LeRobot's edge padding.
Storing features instead of frames keeps 100 rollouts of a few hundred steps at a few MB.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sarm2_gym.algos.spiral.targets import (
    chunk_transitions,
    frame_to_transition_rewards,
    mc_returns,
)

__all__ = ["ChunkReplayBuffer", "ReplaySample"]

_PER_FRAME = (
    "features",
    "actions",
    "rewards",
    "chunk_return",
    "next_index",
    "done",
    "mc_return",
    "episode_end",
)


@dataclass(frozen=True)
class ReplaySample:
    """A batch of chunk transitions (torch, float32).

    Attributes:
        features: ``(B, F)`` at the chunk start.
        actions: ``(B, H, A)`` executed chunk.
        chunk_return: ``(B,)`` discounted reward over the chunk.
        done: ``(B,)`` 1.0 if the episode ends inside the chunk.
        next_features: ``(B, F)`` at ``t + H`` (clamped to the last frame).
        mc_return: ``(B,)`` sparse Monte-Carlo return.
    """

    features: torch.Tensor
    actions: torch.Tensor
    chunk_return: torch.Tensor
    done: torch.Tensor
    next_features: torch.Tensor
    mc_return: torch.Tensor


class ChunkReplayBuffer:
    """All labelled episodes seen so far; uniform sampling over their frames.

    Args:
        feature_dim: Width of the stored features.
        action_dim: Action width.
        chunk_size: ``H``.
        gamma: Per-step discount used for chunk and MC returns.
    """

    def __init__(self, feature_dim: int, action_dim: int, chunk_size: int, gamma: float) -> None:
        self.feature_dim, self.action_dim, self.chunk_size, self.gamma = (
            feature_dim,
            action_dim,
            chunk_size,
            gamma,
        )
        self._parts: dict[str, list[np.ndarray]] = {k: [] for k in _PER_FRAME}
        self._flat: dict[str, np.ndarray] | None = None
        self.episodes: list[dict[str, Any]] = []
        self.num_frames = 0

    def __len__(self) -> int:
        return self.num_frames

    def add_episode(
        self,
        features: np.ndarray,
        actions: np.ndarray,
        frame_rewards: np.ndarray,
        terminal: float,
        info: dict[str, Any] | None = None,
    ) -> None:
        """Add one labelled episode.

        Args:
            features: ``(L, F)`` base-policy features of every frame.
            actions: ``(L, A)`` executed actions (last row: hold-still).
            frame_rewards: ``(L,)`` labeller rewards ``r_t = P_t - P_{t-1}`` (spec §1.8).
            terminal: ``p_ep`` of the MC return.
            info: JSON-able episode metadata (source, round, success, ...).
        """
        n = features.shape[0]
        if (
            features.shape != (n, self.feature_dim)
            or actions.shape != (n, self.action_dim)
            or frame_rewards.shape != (n,)
        ):
            raise ValueError(
                f"episode arrays must be (L, {self.feature_dim}), (L, {self.action_dim}), (L,);"
                " got "
                f"{features.shape}, {actions.shape}, {frame_rewards.shape}"
            )
        rewards = frame_to_transition_rewards(frame_rewards)
        chunk_return, next_local, done = chunk_transitions(rewards, self.chunk_size, self.gamma)
        start = self.num_frames
        values: dict[str, np.ndarray] = {
            "features": features.astype(np.float32),
            "actions": actions.astype(np.float32),
            "rewards": rewards.astype(np.float32),
            "chunk_return": chunk_return.astype(np.float32),
            "next_index": (next_local + start).astype(np.int64),
            "done": done.astype(np.float32),
            "mc_return": mc_returns(n, self.gamma, terminal).astype(np.float32),
            "episode_end": np.full(n, start + n, np.int64),
        }
        for k, v in values.items():
            self._parts[k].append(v)
        self._flat = None
        self.num_frames += n
        self.episodes.append(
            {"start": start, "length": n, "terminal": float(terminal), **(info or {})}
        )

    def _arrays(self) -> dict[str, np.ndarray]:
        if self._flat is None:
            if not self.num_frames:
                raise ValueError("the replay buffer is empty")
            self._flat = {k: np.concatenate(v) for k, v in self._parts.items()}
            self._parts = {k: [v] for k, v in self._flat.items()}
        return self._flat

    def sample(self, batch_size: int, rng: np.random.Generator) -> ReplaySample:
        """Uniformly sampled chunk transitions."""
        a = self._arrays()
        idx = rng.integers(0, self.num_frames, size=batch_size)
        act_idx = self._chunk_rows(idx, a["episode_end"][idx])
        t = torch.from_numpy
        return ReplaySample(
            features=t(a["features"][idx]),
            actions=t(a["actions"][act_idx]),
            chunk_return=t(a["chunk_return"][idx]),
            done=t(a["done"][idx]),
            next_features=t(a["features"][a["next_index"][idx]]),
            mc_return=t(a["mc_return"][idx]),
        )

    def _chunk_rows(self, starts: np.ndarray, episode_ends: np.ndarray) -> np.ndarray:
        """``(B, H)`` rows of the chunks at ``starts``, the episode's last row repeated."""
        rows = starts[:, None] + np.arange(self.chunk_size)[None]
        return np.minimum(rows, episode_ends[:, None] - 1)

    def episode_chunks(
        self, index: int, mc_weight: float
    ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """Every chunk of stored episode ``index`` and the return that followed it.

        Args:
            index: Position in :attr:`episodes`.
            mc_weight: ``alpha`` of the critic target.

        Returns:
            ``(features (L, F), actions (L, H, A), realized (L,))``: the chunk starting at each
            frame as the critic is trained on it, and ``alpha y^MC + (1 - alpha) G_t`` with
            ``G_t`` the discounted dense return to the episode's end, what the critic's blended
            target estimates for the policy that collected the episode.
        """
        a = self._arrays()
        ep = self.episodes[index]
        start, n = int(ep["start"]), int(ep["length"])
        rows = np.arange(start, start + n)
        act_idx = self._chunk_rows(rows, np.full(n, start + n))
        dense = np.zeros(n)
        acc = 0.0
        for i in range(n - 1, -1, -1):
            acc = float(a["rewards"][start + i]) + self.gamma * acc
            dense[i] = acc
        realized = mc_weight * a["mc_return"][rows] + (1.0 - mc_weight) * dense
        t = torch.from_numpy
        return t(a["features"][rows]), t(a["actions"][act_idx]), realized

    # ------------------------------------------------------------------ persistence
    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """``(tensors, json)`` to save; :meth:`load_state` restores the buffer exactly."""
        meta = {"episodes": self.episodes, "num_frames": self.num_frames}
        if not self.num_frames:
            return {}, meta
        return {
            f"replay.{k}": torch.from_numpy(np.ascontiguousarray(v))
            for k, v in self._arrays().items()
        }, meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Restore from :meth:`state` output."""
        self.episodes = list(meta["episodes"])
        self.num_frames = int(meta["num_frames"])
        if self.num_frames:
            self._flat = {k: tensors[f"replay.{k}"].numpy() for k in _PER_FRAME}
            self._parts = {k: [v] for k, v in self._flat.items()}
        else:
            self._flat, self._parts = None, {k: [] for k in _PER_FRAME}
