"""Scripted expert for ``SARM2-CoilHeadphones-v0`` (both arms).

The left hand holds the headphones by the top of the band; the right hand picks the jack up and
carries it round the headphones, low but with its palm clearing them, so the trailing cable is
drawn against the cups turn by turn, spiralling in as the cable is used up; then it lays the
jack down and both hands let go. The circle goes the way the cable already curls round the
headphones, and a little past the winding the task asks for, so the coil still holds once the
jack is let go.
"""

from __future__ import annotations

from typing import cast

import numpy as np

from sarm2_gym.envs.core.expert import ArmTarget, ScriptedExpert, Waypoint
from sarm2_gym.envs.experts._targets import once
from sarm2_gym.envs.tasks.coil_headphones import MIN_WINDING, CoilHeadphonesEnv

__all__ = ["CoilHeadphonesExpert"]

ARM = "right"  # winds
HOLD_ARM = "left"  # holds the headphones
HOVER = 0.06  # clearance above the jack before descending (m)
GRASP_TOL = 0.007  # reach tolerance before closing: the open fingers leave this much slack
LIFT_Z = 0.05  # TCP height while winding: the palm passes above the headphones
ORBIT_RADIUS = (0.12, 0.10)  # TCP distance from the band's axis: first and last turn
ORBIT_STEP = np.deg2rad(25)  # angle between consecutive orbit waypoints
EXTRA_WINDING = np.deg2rad(50)  # wind this far past the success threshold before letting go
MIN_TCP_Z = 0.012  # lowest TCP the workspace allows
UP = np.array([0.0, 0.0, 1.0])


class CoilHeadphonesExpert(ScriptedExpert):
    """Grasp the jack, circle the headphones with it, lay it down.

    Args:
        quality: Quality preset or knobs (see :class:`~sarm2_gym.envs.core.expert.ExpertQuality`).
    """

    @property
    def task(self) -> CoilHeadphonesEnv:
        """The task being demonstrated."""
        return cast(CoilHeadphonesEnv, self._require_env())

    def _grasp_yaw(self) -> float:
        """Tool yaw with the fingers across the jack."""
        axis = self.task.jack_axis()
        return float((np.arctan2(axis[1], axis[0]) + np.pi / 2) % np.pi - np.pi / 2)

    def _jack_grip(self) -> np.ndarray:
        pos = self.task.jack_pos()
        return np.array([pos[0], pos[1], max(pos[2], MIN_TCP_Z)])

    def plan_stage(self, stage: int) -> list[Waypoint]:
        """Waypoints for pick_grab (0), wrap (1), place (2)."""
        task = self.task
        if not task.jack_held():
            if stage == 2:  # wound and the jack already down: let the headphones go
                return self._release_headphones()
            return self._plan_grasp()
        if stage == 0:
            return [self._lift()]
        if stage == 1:
            return self._plan_orbit(turns=MIN_WINDING - abs(task.winding()) + EXTRA_WINDING)
        return self._plan_place()

    def _hold_rpy(self) -> np.ndarray:
        """Left tool orientation with the fingers across the band's top."""
        yaw = self.task.band_yaw()
        return np.array([0.0, 0.0, float(yaw % np.pi - np.pi / 2)])

    def _plan_grasp(self) -> list[Waypoint]:
        """Both hands at once: the right takes the jack, the left the band (if not yet held)."""
        task = self.task
        rpy = np.array([0.0, 0.0, self._grasp_yaw()])
        hold = not task.headphones_held()
        band = task.band_top
        hold_rpy = self._hold_rpy()

        def both(right: ArmTarget, left: ArmTarget) -> dict[str, ArmTarget]:
            return {ARM: right, HOLD_ARM: left} if hold else {ARM: right}

        return [
            Waypoint(
                "pick_grab",
                both(
                    ArmTarget(pos=lambda: self._jack_grip() + UP * HOVER, rpy=rpy, gripper=-1.0),
                    ArmTarget(pos=lambda: band() + UP * HOVER, rpy=hold_rpy, gripper=-1.0),
                ),
                tol=0.015,
            ),
            Waypoint(
                "pick_grab",
                both(ArmTarget(pos=self._jack_grip, rpy=rpy), ArmTarget(pos=band, rpy=hold_rpy)),
                tol=GRASP_TOL,
            ),
            Waypoint(
                "pick_grab",
                both(ArmTarget(gripper=1.0), ArmTarget(gripper=1.0)),
                hold=2,
                until=lambda: task.jack_held() and task.headphones_held(),
                max_steps=12,
                grasp=True,
            ),
            self._lift(),
        ]

    def _release_headphones(self) -> list[Waypoint]:
        up = self._commanded_pos(HOLD_ARM) + UP * 0.1
        return [
            Waypoint("place", {HOLD_ARM: ArmTarget(gripper=-1.0)}, hold=3),
            Waypoint(
                "dummy",
                {
                    HOLD_ARM: ArmTarget(pos=up),
                    ARM: ArmTarget(pos=self._commanded_pos(ARM) + UP * 0.08),
                },
                tol=0.01,
            ),
        ]

    def _lift(self) -> Waypoint:
        """Raise the jack straight up from where it was grasped, the other hand holding still."""
        target = once(lambda: self._commanded_pos(ARM) * [1.0, 1.0, 0.0] + UP * LIFT_Z)
        return Waypoint("pick_grab", {ARM: ArmTarget(pos=target), **self._steady()}, tol=0.008)

    def _direction(self) -> float:
        """+1 to circle counter-clockwise, -1 clockwise: the way the cable already winds."""
        task = self.task
        wound = task.winding()
        if abs(wound) > np.deg2rad(20):
            return float(np.sign(wound))
        pts = task.cable_points()[:, :2] - task.axis_center()
        ang = np.unwrap(np.arctan2(pts[:, 1], pts[:, 0]))
        return 1.0 if ang[-1] - ang[0] >= 0 else -1.0

    def _orbit_point(self, angle: float, radius: float) -> np.ndarray:
        centre = self.task.axis_center()
        return np.array([*(centre + radius * np.array([np.cos(angle), np.sin(angle)])), LIFT_Z])

    def _radius(self, wound: float) -> float:
        """Orbit radius once ``wound`` radians are wound: spiral in as the cable is used up."""
        frac = float(np.clip(wound / (MIN_WINDING + EXTRA_WINDING), 0.0, 1.0))
        return ORBIT_RADIUS[0] + frac * (ORBIT_RADIUS[1] - ORBIT_RADIUS[0])

    def _plan_orbit(self, turns: float) -> list[Waypoint]:
        rel = self._commanded_pos(ARM)[:2] - self.task.axis_center()
        start = float(np.arctan2(rel[1], rel[0]))
        sign = self._direction()
        n = max(1, int(np.ceil(max(turns, ORBIT_STEP) / ORBIT_STEP)))
        done = abs(self.task.winding())
        r0 = self._radius(done)
        steady = self._steady()
        plan = [
            Waypoint(
                "wrap",
                {ARM: ArmTarget(pos=lambda: self._orbit_point(start, r0)), **steady},
                tol=0.015,
            )
        ]
        for k in range(1, n + 1):
            angle, radius = start + sign * k * ORBIT_STEP, self._radius(done + k * ORBIT_STEP)

            def target(a: float = angle, r: float = radius) -> np.ndarray:
                return self._orbit_point(a, r)

            plan.append(Waypoint("wrap", {ARM: ArmTarget(pos=target), **steady}, tol=0.015))
        return plan

    def _steady(self) -> dict[str, ArmTarget]:
        """Keep the holding hand where it is when the waypoint starts.

        Without a target of its own a hand's commanded pose would drift with action noise,
        carrying the held headphones away.
        """
        return {HOLD_ARM: ArmTarget(pos=once(lambda: self._commanded_pos(HOLD_ARM)))}

    def _plan_place(self) -> list[Waypoint]:
        task = self.task
        extra = max(0.0, MIN_WINDING + EXTRA_WINDING - abs(task.winding()))
        plan = self._plan_orbit(extra)[1:] if extra > ORBIT_STEP / 2 else []
        down = lambda: np.array([*self._commanded_pos(ARM)[:2], MIN_TCP_Z])  # noqa: E731
        return [
            *plan,
            Waypoint(
                "place", {ARM: ArmTarget(pos=down), **self._steady()}, tol=0.004, max_steps=15
            ),
            Waypoint("place", {ARM: ArmTarget(gripper=-1.0)}, hold=3),
            *self._release_headphones(),
        ]
