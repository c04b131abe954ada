"""Waypoint target helpers shared by the scripted experts.

A :class:`~sarm2_gym.envs.core.expert.Waypoint` target may be a callable, re-evaluated every
step. These build the two kinds the experts need besides fixed points: a target fixed when its
waypoint starts (not when the plan is made, which may be many steps earlier and elsewhere), and
a target that leads the arm towards a goal at a chosen pace (slower than the arm's top speed).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["once", "toward"]


def once(fn: Callable[[], np.ndarray]) -> Callable[[], np.ndarray]:
    """A target evaluated the first time it is asked for, then kept fixed.

    Example:
        >>> calls = iter([np.zeros(3), np.ones(3)])
        >>> target = once(lambda: next(calls))
        >>> target().tolist(), target().tolist()
        ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
    """
    cache: list[np.ndarray] = []

    def value() -> np.ndarray:
        if not cache:
            cache.append(np.asarray(fn(), dtype=np.float64))
        return cache[0]

    return value


def toward(
    current: Callable[[], np.ndarray], goal: np.ndarray, step: float
) -> Callable[[], np.ndarray]:
    """A moving target at most ``step`` metres ahead of ``current()``, on the way to ``goal``.

    Example:
        >>> target = toward(lambda: np.zeros(3), np.array([1.0, 0.0, 0.0]), 0.01)
        >>> target().tolist()
        [0.01, 0.0, 0.0]
    """
    goal = np.asarray(goal, dtype=np.float64)

    def value() -> np.ndarray:
        here = np.asarray(current(), dtype=np.float64)
        delta = goal - here
        norm = float(np.linalg.norm(delta))
        return goal if norm <= step else here + delta * (step / norm)

    return value
