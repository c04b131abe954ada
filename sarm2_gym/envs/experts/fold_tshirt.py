"""Scripted bimanual expert for ``SARM2-FoldTShirt-v0``.

Fold the left sleeve in (the hands pinch the two corners of its cuff and lay them on their
mirror points on the body), then the right sleeve, then the bottom up (the hands pinch the hem
corners and lay them on the shoulders), then the right hand presses along the last crease. The
skills are shared with the shorts expert (see :mod:`sarm2_gym.envs.experts._cloth_fold`).
"""

from __future__ import annotations

import numpy as np

from sarm2_gym.envs.core.expert import ArmTarget, Waypoint
from sarm2_gym.envs.experts._cloth_fold import ClothFoldExpert
from sarm2_gym.envs.tasks.fold_tshirt import FoldTShirtEnv

__all__ = ["FoldTShirtExpert"]

# A sleeve is a narrow flap: folded over, its bend pushes the held cuff up against the soft
# grasp, and laying it down by the measured hang pressed the fingertips through the sleeve into
# the body; opening them there dragged the cuff back out. The tool stays this far above the
# body point the cuff is laid on (about 1 cm between fingertips and the body's top).
SLEEVE_TCP_FLOOR = 0.012  # m
PLACE_BEYOND = (0.0, 0.0, 0.0)  # lay the corners this far past their partners, per fold (m)
DETOUR_HEIGHT = 0.1  # m, a wrong move with an empty hand is made this high, clear of the cloth
DETOUR_REACH = 0.12  # m, how far off (per horizontal axis) such a wrong move goes at most


class FoldTShirtExpert(ClothFoldExpert):
    """Fold each sleeve in, fold the bottom up, then press the crease.

    Args:
        quality: Quality preset or knobs (see :class:`~sarm2_gym.envs.core.expert.ExpertQuality`).
    """

    def _plan_for(self, stage: int) -> list[Waypoint]:
        """Stages come in (pick, fold) pairs, one per fold, then the press."""
        fold, carrying = divmod(stage, 2)
        if fold >= len(FoldTShirtEnv.CARRY):
            return self._press()
        (left, right), (left_to, right_to) = FoldTShirtEnv.CARRY[fold]
        if not carrying:
            return self._release_if_holding() + self._pick((left,), (right,), yaw_offset=0.0)
        if not all(self.task.cloth_held()):
            # Let go and still settling: the task judges the fold once the cloth rests.
            return [Waypoint("dummy", {}, hold=1, max_steps=3)]
        floor = SLEEVE_TCP_FLOOR if fold < 2 else None
        return self._carry((left_to,), (right_to,), beyond=PLACE_BEYOND[fold], tcp_floor=floor)

    def mistake_waypoints(self, stage: int) -> list[Waypoint]:
        """A drop while carrying (the base's), or a wrong move with an empty hand.

        The empty hand lifts clear of the cloth first: sweeping sideways at pressing height
        would drag the folded stack apart, a different and unrecoverable mistake.
        """
        arm = self._busy_arm()
        if self.task.robot.holding_cloth(arm):
            return super().mistake_waypoints(stage)
        primitive = self.task.stages[stage].primitive
        here = self._commanded_pos(arm)
        up = np.array([here[0], here[1], max(here[2], DETOUR_HEIGHT)])
        wrong = up + np.r_[self._rng.uniform(-DETOUR_REACH, DETOUR_REACH, 2), 0.0]
        return [
            Waypoint(primitive, {arm: ArmTarget(pos=up)}, tol=0.015, max_steps=10),
            Waypoint(primitive, {arm: ArmTarget(pos=wrong)}, tol=0.02, max_steps=15),
        ]
