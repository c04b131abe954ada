"""Scripted expert for ``SARM2-SweepScraps-v0`` (right arm; the broom lies on the right).

The sweep stage is planned one stroke at a time: each stroke starts behind the scrap farthest
from the zone, pushes the scraps in a bristle-wide band along the line towards the zone centre
with the bristles pressed on the table, and lifts the broom off at the end. The expert is
closed-loop over stages, so when a stroke is done it re-plans the next one from where the scraps
ended up, until the stage machine says enough scraps are in the zone.
"""

from __future__ import annotations

from typing import cast

import numpy as np

from sarm2_gym.envs.core.embodiment import HOME_MAT
from sarm2_gym.envs.core.expert import ArmTarget, ScriptedExpert, Waypoint
from sarm2_gym.envs.core.geometry import euler_to_mat, mat_to_euler, yaw_mat
from sarm2_gym.envs.experts._targets import once, toward
from sarm2_gym.envs.tasks.sweep_scraps import (
    BRISTLE_HALF,
    BROOM_CENTER_X,
    SweepScrapsEnv,
)

__all__ = ["SweepScrapsExpert"]

ARM = "right"
UP = np.array([0.0, 0.0, 1.0])
HOVER = 0.08  # clearance above the handle before descending (m)
GRASP_TOL = 0.007  # reach tolerance before closing: the open fingers leave this much slack
CARRY_Z = 0.07  # bristle height while moving the broom between strokes
PRESS = 0.01  # bristles commanded this far into the table while sweeping (the grasp complies)
BAND = 0.06  # half-width of the band of scraps one stroke takes (bristles are 0.075)
CLEAR = 0.09  # lateral reach within which a scrap lies in the bristles' path
BACKOFF = 0.045  # distance from the bristle face to the first scrap when the stroke starts
STOP_BEFORE_CENTER = 0.015  # the bristle face stops this far before the zone centre
MAX_STROKE_YAW = 0.9  # largest stroke heading away from +x (rad)
SWEEP_STEP = 0.015  # metres per control step while pushing: faster flings the light scraps


class SweepScrapsExpert(ScriptedExpert):
    """Grasp the broom's handle, sweep stroke by stroke, put the broom back in its area.

    Args:
        quality: Quality preset or knobs (see :class:`~sarm2_gym.envs.core.expert.ExpertQuality`).
    """

    @property
    def task(self) -> SweepScrapsEnv:
        """The task being demonstrated."""
        return cast(SweepScrapsEnv, self._require_env())

    # ------------------------------------------------------------------ broom <-> tool frames
    def _broom_in_tool(self) -> tuple[np.ndarray, np.ndarray]:
        """Broom origin and rotation in the tool (TCP) frame: constant while it is held."""
        env = self.task
        pos, mat = env.broom_pose()
        tcp = env.robot.tcp_pos(env.data, ARM)
        tool = env.robot.tcp_mat(env.data, ARM)
        return tool.T @ (pos - tcp), tool.T @ mat

    def _tool_for_broom(self, origin: np.ndarray, yaw: float) -> tuple[np.ndarray, np.ndarray]:
        """TCP position and rpy that put the held broom's origin at ``origin`` with ``yaw``."""
        p_b, r_b = self._broom_in_tool()
        # The full rotation, not just yaw: a broom grasped slightly tilted is levelled again,
        # so the whole bristle face reaches the table.
        tool = yaw_mat(yaw) @ r_b.T
        rpy = mat_to_euler(tool @ HOME_MAT.T)
        return origin - euler_to_mat(rpy) @ HOME_MAT @ p_b, rpy

    # ------------------------------------------------------------------ plans
    def plan_stage(self, stage: int) -> list[Waypoint]:
        """Waypoints for pick_grab (0), sweep (1, one stroke), place (2)."""
        task = self.task
        if stage == 0 or not task.broom_held():
            return self._plan_grasp()
        if stage == 1:
            return self._plan_stroke()
        return self._plan_place()

    def _grasp_yaw(self) -> float:
        """Tool yaw that puts the fingers across the handle (either of the two symmetric)."""
        return float((self.task.broom_yaw() + np.pi / 2) % np.pi - np.pi / 2)

    def _plan_grasp(self) -> list[Waypoint]:
        task = self.task
        if task.broom_held():
            return [self._lift_by(0.08, "pick_grab")]
        rpy = np.array([0.0, 0.0, self._grasp_yaw()])
        grip = task.grip_point
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
                until=task.broom_held,
                max_steps=12,
                grasp=True,
            ),
            self._lift_by(0.08, "pick_grab"),
        ]

    def _lift_by(self, dz: float, primitive: str) -> Waypoint:
        target = once(lambda: self._commanded_pos(ARM) + UP * dz)
        return Waypoint(primitive, {ARM: ArmTarget(pos=target)}, tol=0.01, max_steps=20)

    def _stroke(self) -> tuple[np.ndarray, np.ndarray, float]:
        """Start and end of the bristle block's origin for the next stroke, and its heading.

        Every stroke ends with the bristles centred on the zone, so the pile they push arrives
        inside it; its line is the one through the zone centre that takes the stray scrap
        farthest from the zone together with as many other strays as the bristles can hold.
        """
        task = self.task
        xy = task.scrap_xy()
        out = ~task.in_zone()
        zone = task.zone_center()
        dist = np.linalg.norm(xy - zone, axis=1)
        anchor = xy[int(np.argmax(np.where(out, dist, -1.0)))]
        base = float(np.arctan2(*(zone - anchor)[::-1]))
        best_heading, best_count = base, -1
        for dh in np.linspace(-0.35, 0.35, 15):
            heading = float(np.clip(base + dh, -MAX_STROKE_YAW, MAX_STROKE_YAW))
            d = np.array([np.cos(heading), np.sin(heading)])
            perp = (xy - zone) @ np.array([-d[1], d[0]])
            if abs(float((anchor - zone) @ np.array([-d[1], d[0]]))) > BAND:
                continue
            count = int(np.sum(out & (np.abs(perp) <= BAND)))
            if count > best_count:
                best_heading, best_count = heading, count
        d = np.array([np.cos(best_heading), np.sin(best_heading)])
        n = np.array([-d[1], d[0]])
        along, perp = (xy - zone) @ d, (xy - zone) @ n
        end_along = -STOP_BEFORE_CENTER - BRISTLE_HALF[0]
        in_path = (np.abs(perp) <= CLEAR) & (along < end_along)
        first = float(along[in_path].min()) if np.any(in_path) else end_along - 0.1
        start_along = first - BACKOFF - BRISTLE_HALF[0]
        return zone + start_along * d, zone + end_along * d, best_heading

    def _plan_stroke(self) -> list[Waypoint]:
        start, end, heading = self._stroke()
        start_above = self._tool_for_broom(np.array([*start, CARRY_Z]), heading)
        start_down = self._tool_for_broom(np.array([*start, -PRESS]), heading)
        end_down = self._tool_for_broom(np.array([*end, -PRESS]), heading)
        return [
            Waypoint("sweep", {ARM: ArmTarget(pos=start_above[0], rpy=start_above[1])}, tol=0.012),
            Waypoint("sweep", {ARM: ArmTarget(pos=start_down[0], rpy=start_down[1])}, tol=0.008),
            Waypoint(
                "sweep",
                {
                    ARM: ArmTarget(
                        pos=toward(lambda: self._commanded_pos(ARM), end_down[0], SWEEP_STEP),
                        rpy=end_down[1],
                    )
                },
                tol=0.006,
            ),
            self._lift_by(CARRY_Z, "sweep"),
        ]

    def _plan_place(self) -> list[Waypoint]:
        task = self.task
        area_xy, area_yaw = task.area_pose()
        origin_xy = area_xy - (yaw_mat(area_yaw)[:2, :2] @ np.array([BROOM_CENTER_X, 0.0]))
        above = self._tool_for_broom(np.array([*origin_xy, CARRY_Z]), area_yaw)
        down = self._tool_for_broom(np.array([*origin_xy, 0.003]), area_yaw)
        return [
            self._lift_by(0.02, "place"),
            Waypoint("place", {ARM: ArmTarget(pos=above[0], rpy=above[1])}, tol=0.01),
            Waypoint("place", {ARM: ArmTarget(pos=down[0], rpy=down[1])}, tol=0.004),
            Waypoint("place", {ARM: ArmTarget(gripper=-1.0)}, hold=3),
            Waypoint("dummy", {ARM: ArmTarget(pos=down[0] + UP * 0.1)}, tol=0.01),
        ]
