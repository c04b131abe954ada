"""In-memory episode: the unit that experts, collectors, datasets and reward models exchange.

An :class:`Episode` holds one trajectory as column arrays, one row per control step, in the
LeRobot convention: row ``t`` has the observation ``o_t``, the action ``a_t`` taken from it, and
the reward/done/success that followed (``next.*``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

__all__ = [
    "ACTION_KEY",
    "CAMERA_NAMES",
    "ENV_STATE_KEY",
    "IMAGE_KEYS",
    "PRIVILEGED_PROGRESS_META",
    "REQUIRED_COLUMNS",
    "STATE_KEY",
    "Episode",
    "has_privileged_progress",
    "image_key",
    "recorded_env_state",
]

CAMERA_NAMES: Final[tuple[str, ...]] = ("top", "left_wrist", "right_wrist")
"""The three cameras of the bimanual embodiment, in model input order."""

STATE_KEY: Final[str] = "observation.state"
ENV_STATE_KEY: Final[str] = "observation.environment_state"
ACTION_KEY: Final[str] = "action"


def image_key(camera: str) -> str:
    """Return the dataset feature key of a camera (LeRobot naming)."""
    return f"observation.images.{camera}"


IMAGE_KEYS: Final[tuple[str, ...]] = tuple(image_key(c) for c in CAMERA_NAMES)

PRIVILEGED_PROGRESS_META: Final[str] = "privileged_progress"
"""Episode-metadata flag that is ``False`` where the ``progress`` column is only a placeholder."""


def has_privileged_progress(meta: Mapping[str, Any]) -> bool:
    """Whether an episode's ``progress`` column is the simulator's progress, given its metadata.

    Every episode carries a ``progress`` column; a real robot's recorder fills it with zeros and
    sets :data:`PRIVILEGED_PROGRESS_META` to ``False`` (no training target, no oracle).
    """
    return meta.get(PRIVILEGED_PROGRESS_META) is not False


# Per-frame columns every episode carries, with their dtypes.
_REQUIRED_COLUMNS: Final[dict[str, Any]] = {
    STATE_KEY: np.float32,
    ACTION_KEY: np.float32,
    "next.reward": np.float32,
    "next.done": np.bool_,
    "next.success": np.bool_,
    "act_pri": np.int64,
    "stage": np.int64,
    "progress": np.float32,
}

REQUIRED_COLUMNS: Final[tuple[str, ...]] = tuple(_REQUIRED_COLUMNS)
"""Per-frame columns every episode must carry."""


@dataclass
class Episode:
    """One recorded trajectory.

    Args:
        task: The language instruction (``env.unwrapped.instruction``).
        env_id: The Gymnasium id that produced it, or ``""`` for data from elsewhere.
        frames: Column name -> array with leading dimension ``length``. Must contain
            ``observation.state`` (T, 14), ``action`` (T, 14), ``next.reward``, ``next.done``,
            ``next.success``, ``act_pri`` (primitive index), ``stage`` and ``progress``
            (privileged, in [0, 1]); image columns ``observation.images.<camera>`` are
            (T, H, W, 3) uint8. Extra columns (e.g. ``observation.environment_state`` or labels
            written later) are kept as they are.
        success: Whether the episode ended in task success.
        fps: Control rate in frames per second.
        meta: Episode-level metadata (seed, expert quality preset and knobs, ...), JSON-able.
    """

    task: str
    env_id: str
    frames: dict[str, np.ndarray]
    success: bool
    fps: int = 10
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    @property
    def length(self) -> int:
        """Number of frames."""
        return int(self.frames[STATE_KEY].shape[0])

    @property
    def cameras(self) -> tuple[str, ...]:
        """Cameras with image columns, in :data:`CAMERA_NAMES` order."""
        return tuple(c for c in CAMERA_NAMES if image_key(c) in self.frames)

    def validate(self) -> None:
        """Check columns, shapes and dtypes.

        Raises:
            ValueError: Naming the column that is missing, mis-shaped, of the wrong dtype, or
                holding NaN/inf values.
        """
        missing = [k for k in _REQUIRED_COLUMNS if k not in self.frames]
        if missing:
            raise ValueError(f"episode is missing columns {missing}")
        length = self.frames[STATE_KEY].shape[0]
        if length == 0:
            raise ValueError("episode has no frames")
        for key, arr in self.frames.items():
            if not isinstance(arr, np.ndarray):
                raise ValueError(f"column {key!r} must be a numpy array, got {type(arr).__name__}")
            if arr.shape[0] != length:
                raise ValueError(
                    f"column {key!r} has {arr.shape[0]} rows but the episode has {length} frames"
                )
            want = _REQUIRED_COLUMNS.get(key)
            if want is not None and arr.dtype != want:
                raise ValueError(f"column {key!r} has dtype {arr.dtype}, expected {np.dtype(want)}")
            if key.startswith("observation.images."):
                if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
                    raise ValueError(
                        f"image column {key!r} must be uint8 (T, H, W, 3), got {arr.dtype} "
                        f"{arr.shape}"
                    )
            elif arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
                raise ValueError(f"column {key!r} holds NaN or inf values")
        if self.frames[STATE_KEY].ndim != 2 or self.frames[ACTION_KEY].ndim != 2:
            raise ValueError("observation.state and action must be 2-D (T, dim)")


def recorded_env_state(ep: Episode, width: int | None = None, where: str = "episode") -> np.ndarray:
    """The privileged object state an episode recorded, ``(T, D)``.

    The recorder pads it to a fixed width; ``D`` is the task's own width, ``env_state_dim`` in
    the episode's metadata.

    Args:
        ep: The episode.
        width: The width the reader needs (``None``: whatever was recorded).
        where: How error messages name the episode (e.g. ``"episode 3 of DIR"``).

    Raises:
        ValueError: If the episode recorded no privileged state (only the simulated benchmark
            does; a real robot's recording has none) or one of another width.
    """
    recorded = ep.meta.get("env_state_dim")
    if ENV_STATE_KEY not in ep.frames or recorded is None or not has_privileged_progress(ep.meta):
        raise ValueError(
            f"{where} has no privileged state (only the simulated benchmark records one): "
            "nothing that reads it can learn from it"
        )
    if width is not None and int(recorded) != width:
        raise ValueError(
            f"{where} has a privileged state {recorded} wide, the policy's privileged_state_dim "
            f"is {width}"
        )
    return np.asarray(ep.frames[ENV_STATE_KEY][:, : int(recorded)], dtype=np.float32)
