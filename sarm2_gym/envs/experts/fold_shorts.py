"""Scripted bimanual expert for ``SARM2-FoldShorts-v0``.

Fold the left half onto the right half (the hands pinch the left waist corner and the left leg's
outer end), then the leg ends up onto the waist (the hands pinch the stacked leg ends), then the
right hand presses along the new crease. The skills are shared with the t-shirt expert (see
:mod:`sarm2_gym.envs.experts._cloth_fold`).
"""

from __future__ import annotations

from sarm2_gym.envs.core.expert import Waypoint
from sarm2_gym.envs.core.task_env import TaskEnv
from sarm2_gym.envs.experts._cloth_fold import ClothFoldExpert

__all__ = ["FoldShortsExpert"]

REPAIR_WAIST = 0.1  # waist corners this close (m): the first fold is being repaired, not made
PLACE_BEYOND = (0.0, 0.0)  # lay the corners this far past their partners (first, second fold)


class FoldShortsExpert(ClothFoldExpert):
    """Fold left half onto right half, leg ends onto the waist, then press the crease.

    Args:
        quality: Quality preset or knobs (see :class:`~sarm2_gym.envs.core.expert.ExpertQuality`).
    """

    def reset(self, env: TaskEnv, seed: int | None = None) -> None:
        """Prepare for an episode of ``env`` (already reset)."""
        super().reset(env, seed)
        self._leg_corner = "outer"  # the left leg corner the right hand folds over

    def _plan_for(self, stage: int) -> list[Waypoint]:
        task = self.task
        held = task.cloth_held()
        if stage in (1, 3) and not all(held):
            # Let go and still settling: the task judges the fold once the cloth rests.
            return [Waypoint("dummy", {}, hold=1, max_steps=3)]
        if stage == 0:
            self._leg_corner = self._leg_corner_to_fold()
            return self._release_if_holding() + self._pick(
                ("waist_left",), (f"leg_left_{self._leg_corner}",), yaw_offset=0.0
            )
        if stage == 1:
            return self._carry(
                ("waist_right",), (f"leg_right_{self._leg_corner}",), beyond=PLACE_BEYOND[0]
            )
        if stage == 2:
            return self._release_if_holding() + self._pick(
                ("leg_left_inner", "leg_right_inner"),
                ("leg_left_outer", "leg_right_outer"),
                yaw_offset=0.0,
            )
        if stage == 3:
            return self._carry(
                ("waist_left_inner", "waist_right_inner"),
                ("waist_left", "waist_right"),
                beyond=PLACE_BEYOND[1],
            )
        return self._press()

    def _leg_corner_to_fold(self) -> str:
        """Which left leg corner the right hand carries to fold (or re-fold) the left half.

        The outer one, unless the left half already lies over the right half (a fold being
        repaired after a drop) and the inner corner is further off.
        """
        errors = self.task.status.metrics
        if errors.get("fold1_waist", 1.0) < REPAIR_WAIST and errors.get(
            "fold1_leg_inner", 0.0
        ) > errors.get("fold1_leg_outer", 0.0):
            return "inner"
        return "outer"
