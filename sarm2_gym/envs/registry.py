"""The ten benchmark tasks in the paper's order, and how to build their envs and experts.

The order is the task index of every dataset (``task_index``), as in the SARM2 reference
configuration, so a model trained here speaks the same task language as one trained on the
paper's real data.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sarm2_gym.envs.core.expert import ExpertQuality, ScriptedExpert

__all__ = [
    "TASKS",
    "TaskInfo",
    "env_ids_by_name",
    "expert_for",
    "implemented_tasks",
    "task_by_id",
    "task_index",
]


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """One benchmark task.

    Args:
        env_id: Registered Gymnasium id.
        instruction: The exact language instruction (the paper's string).
        env_entry: ``"module:Class"`` of the env, or ``None`` while the task is not built yet.
        expert_entry: ``"module:Class"`` of its scripted expert.
        max_episode_steps: TimeLimit at 10 Hz.
    """

    env_id: str
    instruction: str
    env_entry: str | None
    expert_entry: str | None
    max_episode_steps: int

    @property
    def name(self) -> str:
        """Short name (``"FoldShorts"``)."""
        return self.env_id.removeprefix("SARM2-").removesuffix("-v0")


_T = "sarm2_gym.envs.tasks"
_E = "sarm2_gym.envs.experts"

TASKS: Final[tuple[TaskInfo, ...]] = (
    TaskInfo(
        "SARM2-PlatesIntoBin-v0",
        "pick and place plates into bin",
        f"{_T}.plates_into_bin:PlatesIntoBinEnv",
        f"{_E}.plates_into_bin:PlatesIntoBinExpert",
        400,
    ),
    TaskInfo(
        "SARM2-CleanWhiteboard-v0",
        "clean whiteboard WITH whiteboard eraser",
        f"{_T}.clean_whiteboard:CleanWhiteboardEnv",
        f"{_E}.clean_whiteboard:CleanWhiteboardExpert",
        300,
    ),
    TaskInfo(
        "SARM2-FoldShorts-v0",
        "folding shorts",
        f"{_T}.fold_shorts:FoldShortsEnv",
        f"{_E}.fold_shorts:FoldShortsExpert",
        400,
    ),
    TaskInfo(
        "SARM2-FoldTShirt-v0",
        "folding the t-shirt",
        f"{_T}.fold_tshirt:FoldTShirtEnv",
        f"{_E}.fold_tshirt:FoldTShirtExpert",
        500,
    ),
    TaskInfo(
        "SARM2-PlatesIntoDishRack-v0",
        "pick and place plates into dish rack",
        f"{_T}.plates_into_dish_rack:PlatesIntoDishRackEnv",
        f"{_E}.plates_into_dish_rack:PlatesIntoDishRackExpert",
        300,
    ),
    TaskInfo(
        "SARM2-SweepScraps-v0",
        "sweep paper scraps WITH broom",
        f"{_T}.sweep_scraps:SweepScrapsEnv",
        f"{_E}.sweep_scraps:SweepScrapsExpert",
        400,
    ),
    TaskInfo(
        "SARM2-CoilHeadphones-v0",
        "coil and wrap headphones",
        f"{_T}.coil_headphones:CoilHeadphonesEnv",
        f"{_E}.coil_headphones:CoilHeadphonesExpert",
        400,
    ),
    TaskInfo(
        "SARM2-PullPlug-v0",
        "pull plug off the socket",
        f"{_T}.pull_plug:PullPlugEnv",
        f"{_E}.pull_plug:PullPlugExpert",
        300,
    ),
    TaskInfo(
        "SARM2-PutAwayUmbrella-v0",
        "put away an umbrella",
        f"{_T}.put_away_umbrella:PutAwayUmbrellaEnv",
        f"{_E}.put_away_umbrella:PutAwayUmbrellaExpert",
        200,
    ),
    TaskInfo(
        "SARM2-SetDinnerTable-v0",
        "set dinner table",
        f"{_T}.set_dinner_table:SetDinnerTableEnv",
        f"{_E}.set_dinner_table:SetDinnerTableExpert",
        500,
    ),
)
"""All ten tasks, in the paper's order (= dataset ``task_index``)."""


def implemented_tasks() -> tuple[TaskInfo, ...]:
    """The tasks whose env exists (and is registered)."""
    return tuple(t for t in TASKS if t.env_entry is not None)


def env_ids_by_name() -> dict[str, str]:
    """Short name -> Gymnasium id of every implemented task, in the paper's order.

    Example:
        >>> env_ids_by_name()["FoldShorts"]
        'SARM2-FoldShorts-v0'
    """
    return {t.name: t.env_id for t in implemented_tasks()}


def task_by_id(env_id: str) -> TaskInfo:
    """Look up a task by its Gymnasium id (``"SARM2-FoldShorts-v0"``) or short name.

    Raises:
        ValueError: For an unknown or not yet implemented task; lists the available ids.
    """
    for t in TASKS:
        if env_id in (t.env_id, t.name):
            if t.env_entry is None:
                raise ValueError(f"task {t.env_id} is not implemented yet")
            return t
    available = [t.env_id for t in implemented_tasks()]
    raise ValueError(f"unknown task {env_id!r}; available: {available}")


def task_index(env_id: str) -> int:
    """Index of a task in the paper's order (the dataset ``task_index``)."""
    info = task_by_id(env_id)
    return TASKS.index(info)


def _load(entry: str) -> Any:
    module, _, attr = entry.partition(":")
    return getattr(importlib.import_module(module), attr)


def env_class(env_id: str) -> Any:
    """The env class of a task."""
    info = task_by_id(env_id)
    assert info.env_entry is not None
    return _load(info.env_entry)


def expert_for(
    env_id: str,
    quality: str | ExpertQuality = "expert",
    options: Mapping[str, str] | None = None,
) -> ScriptedExpert:
    """A fresh scripted expert for a task.

    Args:
        env_id: Task id or short name.
        quality: Quality preset name, ``"mixed"``, or explicit knobs.
        options: Strategy options of the task's expert (its ``OPTIONS``; e.g. CleanWhiteboard's
            ``{"wipe": "sweep"}``).

    Raises:
        ValueError: For an unknown task, quality preset, option or option value.
    """
    info = task_by_id(env_id)
    if info.expert_entry is None:
        raise ValueError(f"task {env_id} has no scripted expert")
    expert: ScriptedExpert = _load(info.expert_entry)(quality, **dict(options or {}))
    return expert
