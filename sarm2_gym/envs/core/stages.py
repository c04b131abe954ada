"""Task stage machines: the stage list, each stage's primitive, and privileged progress.

A task is an ordered list of :class:`Stage` s. From simulator state the task reports which stage
it is in and how far that stage has come (:class:`TaskStatus`); the :class:`StageMachine` turns
that into the privileged task progress in [0, 1] with each stage's share given by its weight,
like SARM's temporal-proportion breakpoints (spec §3.2): weights are set to the share of an
expert episode each stage takes, so an expert's progress grows about linearly in time.

Example:
    >>> sm = StageMachine((Stage("grab", "pick_grab", 1.0), Stage("put", "place", 3.0)))
    >>> sm.progress(TaskStatus(stage=1, stage_progress=0.5, success=False))
    0.625
    >>> sm.primitive(1)
    8
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from sarm2_gym.envs.core.primitives import group_of, primitive_index

__all__ = ["Stage", "StageMachine", "TaskStatus", "sequential_status"]


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage of a task.

    Args:
        name: Short description, unique within the task (``"fold legs together"``).
        primitive: The action primitive this stage performs (a vocabulary name).
        weight: Relative share of task progress (and of an expert episode's duration).
    """

    name: str
    primitive: str
    weight: float = 1.0

    def __post_init__(self) -> None:
        primitive_index(self.primitive)  # raises on an unknown primitive
        if not self.weight > 0:
            raise ValueError(f"stage {self.name!r} weight must be positive, got {self.weight}")


@dataclass(frozen=True, slots=True)
class TaskStatus:
    """What the simulator state says about task completion.

    Args:
        stage: Index of the stage being worked on (the last stage once everything is done).
        stage_progress: Progress within that stage, in [0, 1].
        success: The task's success predicate.
        metrics: Named measurements behind the decision (distances, coverage, ...).
    """

    stage: int
    stage_progress: float
    success: bool
    metrics: Mapping[str, float] = field(default_factory=dict)


class StageMachine:
    """Maps a :class:`TaskStatus` to progress and primitive labels.

    Args:
        stages: The task's stages in order.
    """

    def __init__(self, stages: Sequence[Stage]) -> None:
        if not stages:
            raise ValueError("a task needs at least one stage")
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique, got {names}")
        self.stages = tuple(stages)
        weights = np.array([s.weight for s in stages], dtype=np.float64)
        self.weights = weights / weights.sum()
        self.breakpoints = np.concatenate([[0.0], np.cumsum(self.weights)])
        self.primitives = tuple(primitive_index(s.primitive) for s in stages)

    @property
    def n_stages(self) -> int:
        """Number of stages."""
        return len(self.stages)

    def progress(self, status: TaskStatus) -> float:
        """Privileged task progress in [0, 1]; exactly 1.0 on success."""
        if status.success:
            return 1.0
        k = int(np.clip(status.stage, 0, self.n_stages - 1))
        within = float(np.clip(status.stage_progress, 0.0, 1.0))
        # Without success the last breakpoint (1.0) is never reached.
        return float(min(self.breakpoints[k] + self.weights[k] * within, 0.999))

    def primitive(self, stage: int) -> int:
        """Vocabulary index of a stage's primitive."""
        return self.primitives[int(np.clip(stage, 0, self.n_stages - 1))]

    def group(self, stage: int) -> int:
        """Gate group index of a stage's primitive."""
        return group_of(self.primitive(stage))


def sequential_status(
    done: Sequence[bool], within: Sequence[float], metrics: Mapping[str, float] | None = None
) -> TaskStatus:
    """Status of a task whose stages complete in order.

    The current stage is the first one not done; a stage only counts as done if every stage
    before it is. Success is all stages done.

    Args:
        done: Per stage, whether its goal holds in the current state.
        within: Per stage, progress towards its goal in [0, 1].
        metrics: Optional named measurements.
    """
    if len(done) != len(within):
        raise ValueError("done and within must have one entry per stage")
    for k, flag in enumerate(done):
        if not flag:
            return TaskStatus(k, float(within[k]), False, dict(metrics or {}))
    return TaskStatus(len(done) - 1, 1.0, True, dict(metrics or {}))
