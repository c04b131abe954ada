"""Record real-robot episodes into :class:`~sarm2_gym.data.episode.Episode` objects and store them.

:class:`EpisodeRecorder` collects one episode's steps. Stores ("sinks") follow the tiny
:class:`EpisodeSink` protocol (``add_episode(episode)``), which the project's LeRobot v3 writer
:class:`~sarm2_gym.data.LeRobotDatasetWriter` implements (each episode is written atomically);
:func:`open_dataset_writer` opens it, and :func:`write_episode` is the one place that calls it.

Real-robot episodes have no privileged progress: their ``progress`` column is all zeros and
``meta["privileged_progress"]`` is ``False``; ``act_pri`` and ``stage`` are ``-1`` (unknown) unless
the robot reported them. Progress labels come later from ``sarm2 annotate``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from sarm2_gym.data.episode import (
    ACTION_KEY,
    PRIVILEGED_PROGRESS_META,
    STATE_KEY,
    Episode,
    image_key,
)
from sarm2_gym.data.writer import LeRobotDatasetWriter

__all__ = [
    "EpisodeRecorder",
    "EpisodeSink",
    "open_dataset_writer",
    "write_episode",
]


class EpisodeSink(Protocol):
    """Anything that stores finished episodes (e.g. ``LeRobotDatasetWriter``)."""

    def add_episode(self, episode: Episode) -> Any:
        """Store one finished episode durably before returning."""
        ...


def open_dataset_writer(root: str | Path, fps: int, **kwargs: Any) -> LeRobotDatasetWriter:
    """Create (or re-open to append to) the LeRobot v3 dataset at ``root``.

    Close it when done (it is a context manager): it holds a lock on the dataset.

    Args:
        root: Dataset directory.
        fps: Control rate; every recorded episode must have it.
        **kwargs: Passed to :class:`~sarm2_gym.data.LeRobotDatasetWriter` (``robot_type``, ...).
    """
    return LeRobotDatasetWriter(root, fps=fps, **kwargs)


def write_episode(sink: EpisodeSink, episode: Episode) -> Any:
    """Hand one finished episode to its store (the single call site of the dataset writer).

    Returns:
        Whatever the store returns (the episode index, for ``LeRobotDatasetWriter``).
    """
    return sink.add_episode(episode)


class EpisodeRecorder:
    """Collects one episode, row ``t`` = observation ``o_t``, action ``a_t`` and what followed.

    Args:
        task: Language instruction.
        fps: Control rate.
        env_id: Source id stored with the episode.
        cameras: Cameras to record.
    """

    def __init__(
        self, task: str, fps: int, env_id: str = "real", cameras: tuple[str, ...] = ()
    ) -> None:
        self.task, self.fps, self.env_id = task, int(fps), env_id
        self.cameras = tuple(cameras)
        self._rows: list[dict[str, Any]] = []
        self._obs: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self._rows)

    def start(self, obs: dict[str, np.ndarray]) -> None:
        """Begin an episode at its first observation."""
        self._rows = []
        self._obs = obs

    def add(
        self,
        action: np.ndarray,
        reward: float,
        next_obs: dict[str, np.ndarray],
        info: dict[str, Any],
    ) -> None:
        """Record one step: the action taken from the current observation and its outcome."""
        if self._obs is None:
            raise RuntimeError("call start(obs) before add()")
        row: dict[str, Any] = {cam: self._obs[cam] for cam in self.cameras}
        row["state"] = self._obs["state"]
        row["action"] = np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)
        row["reward"] = float(reward)
        row["primitive"] = int(info.get("primitive", -1))
        row["stage"] = int(info.get("stage", -1))
        self._rows.append(row)
        self._obs = next_obs

    def build(self, success: bool, meta: dict[str, Any] | None = None) -> Episode:
        """Turn the recorded steps into an :class:`Episode` labelled ``success``.

        The last row gets ``next.done``; with ``success`` it also gets ``next.success`` and the
        sparse reward 1.0 (the operator's label wins over what the env reported).

        Raises:
            ValueError: If no step was recorded.
        """
        rows = self._rows
        n = len(rows)
        if n == 0:
            raise ValueError("no steps recorded")
        reward = np.array([r["reward"] for r in rows], dtype=np.float32)
        reward[-1] = 1.0 if success else 0.0
        done = np.zeros(n, dtype=np.bool_)
        done[-1] = True
        frames: dict[str, np.ndarray] = {
            STATE_KEY: np.stack([r["state"] for r in rows]).astype(np.float32),
            ACTION_KEY: np.stack([r["action"] for r in rows]),
            "next.reward": reward,
            "next.done": done,
            "next.success": done & bool(success),
            "act_pri": np.array([r["primitive"] for r in rows], dtype=np.int64),
            "stage": np.array([r["stage"] for r in rows], dtype=np.int64),
            "progress": np.zeros(n, dtype=np.float32),
        }
        for cam in self.cameras:
            frames[image_key(cam)] = np.stack([r[cam] for r in rows]).astype(np.uint8)
        info = {PRIVILEGED_PROGRESS_META: False} | dict(meta or {})
        return Episode(self.task, self.env_id, frames, bool(success), fps=self.fps, meta=info)
