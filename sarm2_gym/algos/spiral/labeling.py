"""Scoring episodes with a reward model: the ``RolloutLabeler`` protocol and the spec §1.8 math.

A labeller turns one finished episode into per-frame dense rewards and progress. The math from a
model's steps-to-go predictions to rewards is shared by every labeller (spec §1.8):

1. query the model at frames ``0, g, 2g, ...`` (and, here, always the last frame, so the outcome
   is scored), ``s_k = clip(steps_to_go, 0, 1)``;
2. smooth: trailing mean over the last ``window`` samples, then a running minimum, so smoothed
   steps-to-go never increases;
3. progress at the samples ``P_k = 1 - s~_k`` (the reference's ``-s~_k`` shifted by +1, as SPIRAL
   does), linearly interpolated onto every frame;
4. per-frame reward ``r_t = P_t - P_{t-1}`` with ``r_0 = 0``, clipped at 0.

Defaults are adapted to the benchmark's 10 Hz and episodes of 5-30 s: the reference queries every
30 frames at 30 fps (1 s) with a 5-sample window, i.e. 5 s of smoothing lag, which would swallow
most of a 6-second episode. Here ``frame_gap=1`` and ``window=5`` (0.5 s). Both are arguments.

:class:`PrivilegedProgressLabeler` feeds the simulator's privileged progress through exactly this
math. It is an **oracle** for tests and ablations, not SARM2. :class:`RewardModelLabeler` does the
same with any model exposing ``predict_episode`` (the SARM2 reward model).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from sarm2_gym.common.smoothed_progress import SMOOTHING_WINDOW
from sarm2_gym.data.episode import (
    ACTION_KEY,
    STATE_KEY,
    Episode,
    has_privileged_progress,
    image_key,
)

__all__ = [
    "EpisodeLabels",
    "PrivilegedProgressLabeler",
    "RewardModelLabeler",
    "RolloutEpisode",
    "RolloutLabeler",
    "labels_from_steps_to_go",
    "query_frames",
    "smooth_steps_to_go",
]


@dataclass(frozen=True)
class RolloutEpisode:
    """One episode to score, in the dataset row layout (row ``t``: observation, action taken).

    Attributes:
        task: Instruction.
        state: ``(L, S)`` robot state per frame; the last row is the final observation.
        actions: ``(L, A)``; the last row is a hold-still action (as recorded datasets do).
        success: Whether the episode ended in task success (the sparse outcome).
        images: Camera -> uint8 ``(L, H, W, 3)``; ``None`` if not kept.
        progress: ``(L,)`` privileged progress (simulation only), or ``None``.
        fps: Control rate.
        meta: Free-form metadata (reset seed, round, ...).
    """

    task: str
    state: np.ndarray
    actions: np.ndarray
    success: bool
    images: Mapping[str, np.ndarray] | None = None
    progress: np.ndarray | None = None
    fps: int = 10
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.state.shape[0]
        if n == 0 or self.actions.shape[0] != n:
            raise ValueError(
                f"state has {n} rows and actions {self.actions.shape[0]}; need equal, > 0"
            )
        if self.progress is not None and self.progress.shape != (n,):
            raise ValueError(f"progress must be ({n},), got {self.progress.shape}")

    @property
    def length(self) -> int:
        """Frames ``L``."""
        return int(self.state.shape[0])

    @classmethod
    def from_episode(
        cls, episode: Episode, keep_images: bool = True, dataset_episode: int | None = None
    ) -> RolloutEpisode:
        """From a recorded :class:`~sarm2_gym.data.episode.Episode`.

        ``progress`` is the episode's ``progress`` column, or ``None`` where that column is a
        placeholder (:func:`~sarm2_gym.data.episode.has_privileged_progress`).
        ``dataset_episode``: the episode's index in its dataset, kept as
        ``meta["dataset_episode"]``.
        """
        images = {c: episode.frames[image_key(c)] for c in episode.cameras} if keep_images else None
        progress = episode.frames.get("progress")
        if not has_privileged_progress(episode.meta):
            progress = None
        return cls(
            task=episode.task,
            state=episode.frames[STATE_KEY],
            actions=episode.frames[ACTION_KEY],
            success=episode.success,
            images=images,
            progress=None if progress is None else np.asarray(progress, np.float64),
            fps=episode.fps,
            meta=dict(episode.meta)
            | ({} if dataset_episode is None else {"dataset_episode": dataset_episode}),
        )


@dataclass(frozen=True)
class EpisodeLabels:
    """Dense labels of one episode.

    Attributes:
        reward: ``(L,)`` per-frame reward ``r_t = P_t - P_{t-1}`` (``r_0 = 0``), non-negative.
        progress: ``(L,)`` smoothed progress ``P_t`` in [0, 1].
    """

    reward: np.ndarray
    progress: np.ndarray


@runtime_checkable
class RolloutLabeler(Protocol):
    """Scores finished episodes. ``needs_images`` tells collectors whether to keep frames."""

    needs_images: bool

    def label(self, episode: RolloutEpisode) -> EpisodeLabels:
        """Dense per-frame reward and progress of one episode."""
        ...


def query_frames(length: int, frame_gap: int) -> np.ndarray:
    """Frames the model is queried at: ``0, g, 2g, ...`` plus the last frame."""
    if length < 1 or frame_gap < 1:
        raise ValueError(f"need length >= 1 and frame_gap >= 1, got {length}, {frame_gap}")
    idx = np.arange(0, length, frame_gap)
    return idx if idx[-1] == length - 1 else np.append(idx, length - 1)


def smooth_steps_to_go(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over the last ``window`` samples, then a running minimum (spec §1.8)."""
    v = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    csum = np.concatenate([[0.0], np.cumsum(v)])
    hi = np.arange(1, v.size + 1)
    lo = np.maximum(hi - window, 0)
    return np.minimum.accumulate((csum[hi] - csum[lo]) / (hi - lo))


def labels_from_steps_to_go(
    sample_frames: np.ndarray, steps_to_go: np.ndarray, length: int, window: int
) -> EpisodeLabels:
    """Spec §1.8 steps 2-5: smoothing, progress at samples, interpolation, clipped reward.

    Example:
        >>> lab = labels_from_steps_to_go(np.array([0, 2, 4]), np.array([1.0, 0.5, 0.0]), 5, 1)
        >>> lab.progress.tolist(), lab.reward.tolist()
        ([0.0, 0.25, 0.5, 0.75, 1.0], [0.0, 0.25, 0.25, 0.25, 0.25])
    """
    smoothed = smooth_steps_to_go(steps_to_go, window)
    progress = np.interp(
        np.arange(length), np.asarray(sample_frames, dtype=np.float64), 1.0 - smoothed
    )
    reward = np.maximum(np.diff(progress, prepend=progress[0]), 0.0)
    return EpisodeLabels(reward=reward, progress=progress)


class PrivilegedProgressLabeler:
    """ORACLE labeller (ablation/tests only): the simulator's privileged progress as the model.

    It reads ``episode.progress`` (ground-truth task progress from simulator state) as if it were a
    reward model's prediction and applies the same smoothing/delta math as every labeller, so
    algorithm tests do not depend on a trained reward model. It is *not* SARM2.

    Args:
        frame_gap: Query every ``frame_gap`` frames.
        window: Smoothing window in samples.
    """

    needs_images = False

    def __init__(self, frame_gap: int = 1, window: int = SMOOTHING_WINDOW) -> None:
        self.frame_gap = frame_gap
        self.window = window

    def label(self, episode: RolloutEpisode) -> EpisodeLabels:
        """Labels from privileged progress.

        Raises:
            ValueError: If the episode carries no privileged progress (e.g. real-robot data).
        """
        if episode.progress is None:
            raise ValueError(
                "PrivilegedProgressLabeler needs privileged progress (simulation only)"
            )
        idx = query_frames(episode.length, self.frame_gap)
        return labels_from_steps_to_go(
            idx, 1.0 - episode.progress[idx], episode.length, self.window
        )


class RewardModelLabeler:
    """Labels episodes with a learned progress model (e.g. ``SARM2RewardModel``).

    The model must offer ``predict_episode(frames, state, task, indices)`` returning an object with
    a ``steps_to_go`` array (one value per queried frame), as ``SARM2RewardModel`` does.

    Args:
        model: The reward model.
        frame_gap: Query every ``frame_gap`` frames.
        window: Smoothing window in samples.
    """

    needs_images = True

    def __init__(self, model: Any, frame_gap: int = 1, window: int = SMOOTHING_WINDOW) -> None:
        self.model = model
        self.frame_gap = frame_gap
        self.window = window

    @classmethod
    def from_pretrained(cls, directory: str, **kwargs: Any) -> RewardModelLabeler:
        """Load a SARM2 reward-model checkpoint directory."""
        from sarm2_gym.reward import SARM2RewardModel

        return cls(SARM2RewardModel.from_pretrained(directory), **kwargs)

    def label(self, episode: RolloutEpisode) -> EpisodeLabels:
        """Labels from the model's steps-to-go predictions."""
        if episode.images is None:
            raise ValueError("RewardModelLabeler needs the episode's camera frames")
        idx = query_frames(episode.length, self.frame_gap)
        pred = self.model.predict_episode(episode.images, episode.state, episode.task, indices=idx)
        return labels_from_steps_to_go(
            idx, np.asarray(pred.steps_to_go), episode.length, self.window
        )
