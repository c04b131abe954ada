"""Scripted expert for ``SARM2-PullPlug-v0`` (right arm).

Grasp the plug's housing from above with the fingers across it, draw it straight back along the
socket axis at a steady pace (the socket's contact friction is overcome by the grasp, not
jerked), lift it clear, carry it to the marked area and lay it down.
"""

from __future__ import annotations

from typing import cast

import numpy as np

from sarm2_gym.envs.core.expert import ArmTarget, ScriptedExpert, Waypoint
from sarm2_gym.envs.experts._targets import once, toward
from sarm2_gym.envs.tasks.pull_plug import HOUSING_HALF, PULL_DISTANCE, PullPlugEnv

__all__ = ["PullPlugExpert"]

ARM = "right"
HOVER = 0.07  # clearance above the housing before descending (m)
GRASP_TOL = 0.007  # reach tolerance before closing: the open fingers leave this much slack
PULL_STEP = 0.005  # metres per control step along the socket axis while pulling
PULL_OVERSHOOT = 0.015  # pull this much beyond the named distance
CARRY_Z = 0.09  # TCP height while carrying the plug to its area
RELEASE_Z = 0.004  # housing bottom this far above the table when the fingers open
UP = np.array([0.0, 0.0, 1.0])


class PullPlugExpert(ScriptedExpert):
    """Grasp, pull along the socket axis, lay the plug in its area.

    Args:
        quality: Quality preset or knobs (see :class:`~sarm2_gym.envs.core.expert.ExpertQuality`).
    """

    @property
    def task(self) -> PullPlugEnv:
        """The task being demonstrated."""
        return cast(PullPlugEnv, self._require_env())

    def _axis_yaw(self) -> float:
        """Tool yaw with the fingers across the plug (tool x along the plug's own axis)."""
        _, mat = self.task.plug_pose()
        yaw = float(np.arctan2(mat[1, 0], mat[0, 0]))
        return float((yaw + np.pi / 2) % np.pi - np.pi / 2)

    def plan_stage(self, stage: int) -> list[Waypoint]:
        """Waypoints for pick_grab (0), pull (1), place (2)."""
        task = self.task
        if not task.plug_held():
            return self._plan_grasp()
        if stage <= 1:
            return self._plan_pull()
        return self._plan_place()

    def _plan_grasp(self) -> list[Waypoint]:
        task = self.task
        rpy = np.array([0.0, 0.0, self._axis_yaw()])
        grip = task.housing_center
        return [
            Waypoint(
                "pick_grab",
                {ARM: ArmTarget(pos=lambda: grip() + UP * HOVER, rpy=rpy, gripper=-1.0)},
                tol=0.01,
            ),
            Waypoint("pick_grab", {ARM: ArmTarget(pos=grip, rpy=rpy)}, tol=GRASP_TOL),
            Waypoint(
                "pick_grab",
                {ARM: ArmTarget(gripper=1.0)},
                hold=2,
                until=task.plug_held,
                max_steps=12,
                grasp=True,
            ),
        ]

    def _plan_pull(self) -> list[Waypoint]:
        task = self.task
        if task.unplugged():
            return [self._lift("pull")]
        _, axis = task.seat()
        start = self._commanded_pos(ARM)
        goal = start - axis * (PULL_DISTANCE + PULL_OVERSHOOT - task.seat_distance())
        return [
            Waypoint(
                "pull",
                {ARM: ArmTarget(pos=toward(lambda: self._commanded_pos(ARM), goal, PULL_STEP))},
                tol=0.004,
                until=task.unplugged,
                max_steps=40,
            ),
            self._lift("pull"),
        ]

    def _lift(self, primitive: str) -> Waypoint:
        """Straight up to the carrying height from wherever the arm is when this starts."""
        target = once(lambda: self._commanded_pos(ARM) * [1.0, 1.0, 0.0] + UP * CARRY_Z)
        return Waypoint(primitive, {ARM: ArmTarget(pos=target)}, tol=0.01)

    def _tcp_for_bottom_at(self, z: float) -> float:
        """TCP height that puts the held housing's bottom at height ``z``."""
        bottom = self.task.housing_center()[2] - HOUSING_HALF[2]
        return float(self._commanded_pos(ARM)[2] + (z - bottom))

    def _plan_place(self) -> list[Waypoint]:
        task = self.task
        area = task.area_center()
        offset = self._commanded_pos(ARM)[:2] - task.housing_center()[:2]
        above = np.array([*(area + offset), CARRY_Z])
        down_z = self._tcp_for_bottom_at(RELEASE_Z)
        return [
            self._lift("place"),
            Waypoint("place", {ARM: ArmTarget(pos=above)}, tol=0.01),
            Waypoint("place", {ARM: ArmTarget(pos=np.array([*above[:2], down_z]))}, tol=0.004),
            Waypoint("place", {ARM: ArmTarget(gripper=-1.0)}, hold=3),
            Waypoint(
                "dummy", {ARM: ArmTarget(pos=np.array([*above[:2], CARRY_Z + 0.04]))}, tol=0.01
            ),
        ]
