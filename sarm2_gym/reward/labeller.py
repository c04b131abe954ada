"""Offline labeller: per-frame dense reward and progress of recorded episodes (spec §1.8).

Exactly the reference labeller (``sarm2_label_ws.py::_process_one_episode``):

1. query the model at frames ``0, g, 2g, ...`` (``g`` = the model's frame gap) and clip the
   predicted steps-to-go ``s_k`` to [0, 1];
2. smooth: mean of the last 5 accepted samples, then a running minimum, so the smoothed
   steps-to-go ``s~_k`` never increases (``RegressionConfidenceSmoother`` with confidence 1);
3. sample rewards ``rho_k = -(s~_k - s~_{k-1})`` with ``s~_{-1} = 0``, so progress at the samples
   is ``P_k = sum_j rho_j = -s~_k`` in [-1, 0];
4. interpolate ``P`` linearly onto every frame (frames after the last sample keep its value);
   per-frame reward ``r_t = P_t - P_{t-1}``, ``r_0 = 0``;
5. clip rewards at 0 (``clip_reward_nonneg``).

Progress is returned shifted by +1 to [0, 1], as SPIRAL reads it. :func:`label_episode` is the
function other code calls (``progress, reward = label_episode(model, episode)``);
:func:`label_dataset` labels a whole LeRobot dataset and writes the columns ``sarm2_progress``
and ``sarm2_reward`` plus ``sarm_progress.parquet`` (LeRobot's RA-BC schema).

Example:
    >>> lab = labels_from_steps_to_go(np.array([0, 2, 4]), np.array([1.0, 0.5, 0.0]), 5, window=1)
    >>> lab.progress.tolist(), lab.reward.tolist()
    ([0.0, 0.25, 0.5, 0.75, 1.0], [0.0, 0.25, 0.25, 0.25, 0.25])
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, NamedTuple

import numpy as np
from tqdm.auto import tqdm

from sarm2_gym.data.columns import add_frame_columns
from sarm2_gym.data.episode import STATE_KEY, Episode, image_key
from sarm2_gym.data.reader import LeRobotDataset
from sarm2_gym.data.sarm_progress import write_sarm_progress
from sarm2_gym.reward.model import SARM2RewardModel

__all__ = [
    "PROGRESS_COLUMN",
    "REWARD_COLUMN",
    "SMOOTHING_WINDOW",
    "EpisodeLabels",
    "label_dataset",
    "label_episode",
    "labels_from_steps_to_go",
    "smooth_steps_to_go",
]

SMOOTHING_WINDOW: Final[int] = 5  # spec §1.8: window_size=5, beta=2, confidence fixed at 1
PROGRESS_COLUMN: Final[str] = "sarm2_progress"
REWARD_COLUMN: Final[str] = "sarm2_reward"


class EpisodeLabels(NamedTuple):
    """Dense labels of one episode (unpacks as ``progress, reward``).

    Attributes:
        progress: ``(T,)`` smoothed progress in [0, 1] (the reference's ``progress.npy`` + 1).
        reward: ``(T,)`` non-negative per-frame reward, ``reward[0] = 0``.
    """

    progress: np.ndarray
    reward: np.ndarray


def smooth_steps_to_go(values: np.ndarray, window: int = SMOOTHING_WINDOW) -> np.ndarray:
    """Spec §1.8 step 2: trailing mean over ``window`` samples, then a running minimum.

    Example:
        >>> smooth_steps_to_go(np.array([1.0, 0.6, 0.8, 0.2]), window=2).round(6).tolist()
        [1.0, 0.8, 0.7, 0.5]
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    v = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    csum = np.concatenate([[0.0], np.cumsum(v)])
    hi = np.arange(1, v.size + 1)
    lo = np.maximum(hi - window, 0)
    return np.minimum.accumulate((csum[hi] - csum[lo]) / (hi - lo))


def labels_from_steps_to_go(
    query_frames: np.ndarray,
    steps_to_go: np.ndarray,
    length: int,
    *,
    window: int = SMOOTHING_WINDOW,
    clip_nonneg: bool = True,
) -> EpisodeLabels:
    """Spec §1.8 steps 2-5 from the predictions at the query frames.

    Args:
        query_frames: Increasing frame indices the model was queried at.
        steps_to_go: Predicted steps-to-go at those frames.
        length: Frames of the episode.
        window: Smoothing window (samples).
        clip_nonneg: Clip per-frame rewards at 0 (the reference's ``clip_reward_nonneg``).
    """
    q = np.asarray(query_frames, dtype=np.float64)
    if q.ndim != 1 or q.size == 0 or q.size != np.asarray(steps_to_go).size:
        raise ValueError("need one prediction per query frame, at least one")
    if np.any(np.diff(q) <= 0) or q[0] < 0 or q[-1] >= length:
        raise ValueError(f"query frames must increase within [0, {length})")
    smoothed = smooth_steps_to_go(steps_to_go, window)
    rho = -np.diff(smoothed, prepend=0.0)  # step 3: rho_k = -(s~_k - s~_{k-1}), s~_{-1} = 0
    p_samples = np.cumsum(rho)  # = -s~_k, in [-1, 0]
    p = np.interp(np.arange(length, dtype=np.float64), q, p_samples)
    reward = np.diff(p, prepend=p[0])  # r_0 = 0
    if clip_nonneg:
        reward = np.maximum(reward, 0.0)
    return EpisodeLabels(progress=(p + 1.0).astype(np.float32), reward=reward.astype(np.float32))


def _episode_inputs(episode: Episode | Mapping[str, Any]) -> tuple[dict[str, Any], Any, str]:
    if isinstance(episode, Episode):
        frames = {c: episode.frames[image_key(c)] for c in episode.cameras}
        return frames, episode.frames[STATE_KEY], episode.task
    return dict(episode["images"]), episode["state"], str(episode["task"])


def label_episode(
    model: SARM2RewardModel,
    episode: Episode | Mapping[str, Any],
    *,
    frame_gap: int | None = None,
    window: int = SMOOTHING_WINDOW,
) -> EpisodeLabels:
    """Dense per-frame progress and reward of one episode with a SARM2 model (spec §1.8).

    Args:
        model: The reward model.
        episode: An :class:`~sarm2_gym.data.episode.Episode` with its camera images, or a
            mapping with ``images`` (camera -> uint8 ``(T, H, W, 3)``), ``state`` ``(T, S)`` and
            ``task`` (instruction).
        frame_gap: Query every this many frames (default: the model's frame gap).
        window: Smoothing window in samples.

    Returns:
        ``EpisodeLabels(progress, reward)``, both ``(T,)`` float32.
    """
    frames, state, task = _episode_inputs(episode)
    length = int(np.asarray(state).shape[0])
    gap = frame_gap or model.config.frame_gap
    query = np.arange(0, length, gap, dtype=np.int64)
    pred = model.predict_episode(frames, np.asarray(state), task, indices=query)
    return labels_from_steps_to_go(query, pred.steps_to_go, length, window=window)


def label_dataset(
    root: str | Path,
    model: SARM2RewardModel,
    *,
    frame_gap: int | None = None,
    window: int = SMOOTHING_WINDOW,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Label every episode of a dataset; write the columns and ``sarm_progress.parquet``.

    Args:
        root: LeRobot v3.0 dataset written by this library.
        model: The reward model.
        frame_gap: Query gap (default: the model's).
        window: Smoothing window.
        overwrite: Replace existing ``sarm2_progress`` / ``sarm2_reward`` columns.
        progress: Show a progress bar.

    Returns:
        The path of ``sarm_progress.parquet``.
    """
    ds = LeRobotDataset(root)
    cams = model.config.camera_names
    prog: dict[int, np.ndarray] = {}
    rew: dict[int, np.ndarray] = {}
    for i in tqdm(range(ds.num_episodes), desc=f"label {root}", disable=not progress):
        cols = ds.read_frames(i, [STATE_KEY, *(image_key(c) for c in cams)])
        episode = {
            "images": {c: cols[image_key(c)] for c in cams},
            "state": cols[STATE_KEY],
            "task": ds.episode_meta(i)["tasks"][0],
        }
        prog[i], rew[i] = label_episode(model, episode, frame_gap=frame_gap, window=window)
    add_frame_columns(root, {PROGRESS_COLUMN: prog, REWARD_COLUMN: rew}, overwrite=overwrite)
    return write_sarm_progress(root, progress_sparse=prog)
