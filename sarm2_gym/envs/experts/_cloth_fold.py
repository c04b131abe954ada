"""Shared scripted skills of the garment-folding experts (FoldShorts, FoldTShirt).

Both grippers work together on every fold: they pinch the two corners of the part being folded,
carry them over in an arc (up to about half the carry distance, so the cloth peels off the table
instead of dragging), lay them just above their partner corners and let go. One hand then
presses along the last crease with half-closed fingers, spot by spot, each press going deeper
until the task registers it.

All targets are read from the cloth each step, so an expert follows the garment wherever the
previous fold left it, and a drop (a mistake) sends the stage machine back to a grasp stage that
re-plans from the cloth's new state.
"""

from __future__ import annotations

from abc import abstractmethod
from functools import partial
from typing import ClassVar, cast

import numpy as np

from sarm2_gym.envs.core.expert import ArmTarget, ScriptedExpert, Waypoint
from sarm2_gym.envs.tasks._cloth_fold import ClothFoldEnv

__all__ = ["ClothFoldExpert"]

UP = np.array([0.0, 0.0, 1.0])
HOVER = 0.08  # clearance above a corner before descending onto it (m)
GRASP_ABOVE = 0.013  # TCP this far above the top grasped vertex: fingertips just touch the cloth
LIFT = 0.06  # TCP height after grasping (m)
NOISE_TOL_GAIN = 1.5  # waypoint tolerances grow by this x the per-step action noise (m)
STACKED = 0.015  # vertices within this (xy, m) of their mean count as one stack to pinch
ARC_RISE = 0.5  # arc apex height as a fraction of the carry distance
PLACE_CLEARANCE = 0.01  # lowest carried vertex this far above the partner corner when letting go
RETREAT = 0.12  # TCP height after letting go (m)
TIP_BELOW_TCP = 0.009  # fingertips are this far below the TCP (m)
PRESS_DEPTH = 0.019  # fingertips this far into the stack below its local top surface (m)
PRESS_DEEPER = 0.003  # a press that does not register goes this much deeper each step (m)
PRESS_TCP_Z_MIN = 0.013  # never closer than 4 mm from fingertips to table
PRESS_LIFT = 0.012  # fingertips this far above the stack between two presses (m)
PRESS_PROBE = 0.03  # the local stack top is the highest vertex this close (xy) to a press spot (m)
PRESS_GRIP = 0.0  # half-closed fingers, 5 cm apart: they press but never pinch (grasps need > 0)
PRESS_INBOARD = 0.008  # tool this far from the crease towards the folded-over edge (m)
PRESS_SPACING = 0.05  # press spots along the crease at least this far apart (m)
PRESS_INSET = 0.012  # press spots this far in from the crease's ends, so pads stay on the stack


class ClothFoldExpert(ScriptedExpert):
    """Pick, carry-and-fold and press skills; subclasses sequence them in :meth:`_plan_for`.

    Args:
        quality: Quality preset or knobs (see :class:`~sarm2_gym.envs.core.expert.ExpertQuality`).
    """

    press_arm: ClassVar[str] = "right"  # the hand that presses the last crease

    @property
    def task(self) -> ClothFoldEnv:
        """The task being demonstrated."""
        return cast(ClothFoldEnv, self._require_env())

    # ------------------------------------------------------------------ geometry
    def _p(self, name: str) -> np.ndarray:
        return self.task.keypoints()[name]

    def _grasp_at(self, *names: str) -> np.ndarray:
        """TCP target that pinches the stack of vertices ``names`` (xy mean, above the top).

        If the vertices do not lie on top of each other (a layer slid off), the top one is
        pinched alone.
        """
        pts = np.array([self._p(n) for n in names])
        if np.max(np.linalg.norm(pts[:, :2] - pts[:, :2].mean(axis=0), axis=1)) > STACKED:
            pts = pts[[int(np.argmax(pts[:, 2]))]]
        return np.array([*pts[:, :2].mean(axis=0), pts[:, 2].max() + GRASP_ABOVE])

    # ------------------------------------------------------------------ plans
    def plan_stage(self, stage: int) -> list[Waypoint]:
        """Waypoints for ``stage`` (see :meth:`_plan_for`), tolerances widened for noisy hands."""
        plan = self._plan_for(stage)
        # A noisy hand never settles within a tight tolerance of its target: widen them all by
        # about the noise's reach per step, so a clumsy demo is slower but not stuck.
        slack = NOISE_TOL_GAIN * self.quality.action_noise * self.task.robot.limits.max_translation
        for wp in plan:
            wp.tol += slack
        return plan

    @abstractmethod
    def _plan_for(self, stage: int) -> list[Waypoint]:
        """Waypoints that accomplish ``stage`` from the current state."""

    def _release_if_holding(self) -> list[Waypoint]:
        if not any(self.task.cloth_held()):
            return []
        return [
            Waypoint(
                "dummy",
                {a: ArmTarget(gripper=-1.0) for a in ("left", "right")},
                hold=2,
                max_steps=4,
            ),
            Waypoint(
                "dummy",
                {a: ArmTarget(pos=self._commanded_pos(a) + UP * 0.06) for a in ("left", "right")},
                tol=0.01,
                max_steps=10,
            ),
        ]

    def _pick(
        self, left: tuple[str, ...], right: tuple[str, ...], yaw_offset: float
    ) -> list[Waypoint]:
        """Hover above both grasp points, descend, close, lift."""
        yaw = self.task.garment_yaw_now() + yaw_offset
        rpy = np.array([0.0, 0.0, (yaw + np.pi / 2) % np.pi - np.pi / 2])  # fingers are symmetric
        over = {
            "left": ArmTarget(
                pos=lambda: self._grasp_at(*left) + UP * HOVER, rpy=rpy, gripper=-1.0
            ),
            "right": ArmTarget(
                pos=lambda: self._grasp_at(*right) + UP * HOVER, rpy=rpy, gripper=-1.0
            ),
        }
        down = {
            "left": ArmTarget(pos=lambda: self._grasp_at(*left), rpy=rpy),
            "right": ArmTarget(pos=lambda: self._grasp_at(*right), rpy=rpy),
        }
        # Closing keeps tracking the grasp point, so a noisy hand does not drift off the corner.
        close = {
            "left": ArmTarget(pos=lambda: self._grasp_at(*left), gripper=1.0),
            "right": ArmTarget(pos=lambda: self._grasp_at(*right), gripper=1.0),
        }
        both_held = lambda: all(self.task.cloth_held())  # noqa: E731
        return [
            Waypoint("pick_grab", over, tol=0.012, max_steps=40),
            Waypoint("pick_grab", down, tol=0.004, max_steps=15),
            Waypoint("pick_grab", close, hold=2, until=both_held, max_steps=8, grasp=True),
            Waypoint(
                "pick_grab",
                {a: ArmTarget(pos=partial(self._raised, a, LIFT)) for a in ("left", "right")},
                tol=0.01,
                max_steps=10,
            ),
        ]

    def _hang(self, arm: str) -> float:
        """How far the lowest cloth vertex ``arm`` holds hangs below its TCP (m)."""
        task = self.task
        held = task.robot.holding_cloth(arm)
        if not held:
            return GRASP_ABOVE
        return float(task.robot.tcp_pos(task.data, arm)[2] - task.data.xpos[held, 2].min())

    def _raised(self, arm: str, z: float) -> np.ndarray:
        pos = self._commanded_pos(arm)
        return np.array([pos[0], pos[1], max(z, pos[2])])

    def _carry(
        self,
        left_to: tuple[str, ...],
        right_to: tuple[str, ...],
        beyond: float,
        tcp_floor: float | None = None,
    ) -> list[Waypoint]:
        """Arc both held corners over onto the corners ``left_to`` / ``right_to`` and let go.

        The corners are laid down ``beyond`` past their partners (along the carry), which pulls
        the folded layer straight instead of pushing slack up into the crease. With
        ``tcp_floor`` the tool never goes lower than that far above the partner's grasp point:
        a narrow flap's bend pushes the held corner up against the soft grasp, so the measured
        hang understates how low the fingertips already are.
        """
        start = {a: self._commanded_pos(a) for a in ("left", "right")}
        partner = {
            "left": lambda: self._grasp_at(*left_to),
            "right": lambda: self._grasp_at(*right_to),
        }

        def goal_of(arm: str) -> np.ndarray:
            g = partner[arm]()
            heading = g[:2] - start[arm][:2]
            g[:2] += beyond * heading / max(float(np.linalg.norm(heading)), 1e-6)
            return g

        goal = {"left": lambda: goal_of("left"), "right": lambda: goal_of("right")}

        def lay_down(arm: str) -> np.ndarray:
            """Goal with the lowest carried vertex just clear of the partner corner below."""
            g = goal[arm]()
            lowest = g[2] + PLACE_CLEARANCE + self._hang(arm) - GRASP_ABOVE
            g[2] = lowest if tcp_floor is None else max(lowest, g[2] + tcp_floor)
            return g

        def apex(arm: str) -> np.ndarray:
            g = goal[arm]()
            dist = float(np.linalg.norm(g[:2] - start[arm][:2]))
            mid = (start[arm] + g) / 2.0
            return np.array([mid[0], mid[1], max(start[arm][2], ARC_RISE * dist)])

        apexes = {a: apex(a) for a in ("left", "right")}
        return [
            Waypoint(
                "fold_flatten",
                {a: ArmTarget(pos=apexes[a]) for a in apexes},
                tol=0.02,
                max_steps=20,
            ),
            Waypoint(
                "fold_flatten",
                {a: ArmTarget(pos=partial(lambda arm: goal[arm]() + UP * 0.05, a)) for a in goal},
                tol=0.015,
                max_steps=20,
            ),
            Waypoint(
                "fold_flatten",
                {a: ArmTarget(pos=partial(lay_down, a)) for a in goal},
                tol=0.006,
                max_steps=12,
            ),
            Waypoint(
                "fold_flatten",
                {a: ArmTarget(pos=partial(lay_down, a), gripper=-1.0) for a in goal},
                tol=0.01,
                hold=2,
                max_steps=5,
            ),
            Waypoint(
                "dummy",
                {a: ArmTarget(pos=partial(self._raised, a, RETREAT)) for a in goal},
                tol=0.015,
                max_steps=10,
            ),
        ]

    def _press(self) -> list[Waypoint]:
        """One hand presses down along the crease where it is not pressed yet; the other clears.

        The fingers, half closed, lie along the crease with the tool just inboard of it, so both
        pads push on the fold itself (pressing further inboard drags the top layer). Spots are
        spaced so that every crease point lies within the task's press radius of one of them;
        each press goes ``PRESS_DEPTH`` into the local top of the stack, and deeper until the
        press registers.
        """
        task = self.task
        todo = task.unpressed_crease()
        if len(todo) == 0:
            return [Waypoint("dummy", {}, hold=1, max_steps=2)]
        pos = task.cloth.positions(task.data)
        yaw = self.task.garment_yaw_now()
        rpy = np.array(
            [0.0, 0.0, (yaw + np.pi / 2) % np.pi - np.pi / 2]
        )  # fingers along the v axis
        inboard = PRESS_INBOARD * np.array([np.cos(yaw), np.sin(yaw)])
        centre = pos[task.crease, :2].mean(axis=0)
        reach = task.crease_reach(todo)
        spots: list[_PressSpot] = []
        hand = task.robot.tcp_pos(task.data, self.press_arm)[:2]
        ends = pos[todo, :2]
        if np.linalg.norm(ends[np.argmin(reach)] - hand) > np.linalg.norm(
            ends[np.argmax(reach)] - hand
        ):
            reach = -reach  # start at the end nearer the pressing hand
        for xy in pos[todo[np.argsort(reach)], :2]:
            # Spots at the crease's ends move inwards so the finger pads stay on the stack.
            spot = xy + min(PRESS_INSET, float(np.linalg.norm(centre - xy))) * _unit(centre - xy)
            if any(np.linalg.norm(spot + inboard - q.xy) < PRESS_SPACING for q in spots):
                continue
            spots.append(_PressSpot(task, spot + inboard, PRESS_DEPTH))
        arm, other = self.press_arm, "left" if self.press_arm == "right" else "right"
        plan = [
            Waypoint(
                "press",
                {
                    arm: ArmTarget(
                        pos=np.array([*spots[0].xy, HOVER]), rpy=rpy, gripper=PRESS_GRIP
                    ),
                    other: ArmTarget(pos=lambda: self._raised(other, RETREAT)),
                },
                tol=0.012,
                max_steps=30,
            )
        ]
        for spot in spots:
            plan += [
                Waypoint("press", {arm: ArmTarget(pos=spot.above)}, tol=0.006),
                Waypoint(
                    "press",
                    {arm: ArmTarget(pos=spot.down)},
                    tol=0.008,
                    hold=1,
                    until=spot.pressed,  # hold the press until it registers
                    max_steps=8,
                ),
            ]
        plan.append(
            Waypoint(
                "dummy",
                {arm: ArmTarget(pos=lambda: self._raised(arm, RETREAT))},
                tol=0.015,
                max_steps=10,
            )
        )
        return plan


class _PressSpot:
    """Where one press goes; its height is read from the cloth once the hand heads there."""

    def __init__(self, task: ClothFoldEnv, xy: np.ndarray, depth: float) -> None:
        self.task, self.xy, self.depth = task, xy, depth
        self._touch: float | None = None

    def touch(self) -> float:
        """TCP height at which the fingertips meet the local top of the stack (read once)."""
        if self._touch is None:
            pos = self.task.cloth.positions(self.task.data)
            near = np.linalg.norm(pos[:, :2] - self.xy, axis=1) <= PRESS_PROBE
            top = float(pos[near, 2].max()) if near.any() else 0.0
            self._touch = top + self.task.cloth.radius + TIP_BELOW_TCP
        return self._touch

    def pressed(self) -> bool:
        """Whether the crease under this spot counts as pressed; if not, press harder."""
        todo = self.task.unpressed_crease()
        pos = self.task.cloth.positions(self.task.data)[todo, :2]
        done = not np.any(np.linalg.norm(pos - self.xy, axis=1) <= self.task.press_radius)
        if not done:
            self.depth += PRESS_DEEPER
        return done

    def above(self) -> np.ndarray:
        """Clear of the stack, right above the press."""
        return np.array([*self.xy, self.touch() + PRESS_LIFT])

    def down(self) -> np.ndarray:
        """The press itself: ``depth`` into the stack."""
        return np.array([*self.xy, max(self.touch() - self.depth, PRESS_TCP_Z_MIN)])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-9)
