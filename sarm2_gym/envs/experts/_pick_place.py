"""Shared scripted expert of the pick-and-place tasks (one item at a time, either arm).

For the current stage (from the task's counted stage machine) the expert either picks the next
pending item with the arm on that item's side (the other arm parks at home, out of the way), or
carries the held item along the task's canonical route: up to the carry height, across to the
goal while turning it to the goal heading, down, open. A mistake made while carrying sets the
item down on a free patch of table short of its goal; the stage machine then falls back to the
pick stage and the expert fetches it again, which is the recovery.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from typing import cast

import numpy as np

from sarm2_gym.envs.core.embodiment import ARMS, FINGER_TRAVEL, HOME_POSITIONS
from sarm2_gym.envs.core.expert import ArmTarget, ExpertQuality, ScriptedExpert, Waypoint
from sarm2_gym.envs.core.task_env import TaskEnv
from sarm2_gym.envs.tasks._pick_place import (
    PLATE_HEIGHT,
    RIM_HALF_THICK,
    RIM_RADIUS,
    PickPlaceEnv,
)

__all__ = ["Grasp", "PickPlaceExpert", "hold_command", "wrap_half_turn"]

HOVER = 0.08  # clearance above a grasp before descending (m)
SAFE_Z = 0.12  # a free arm rises to this TCP height before travelling (clears the cup)
RETREAT = 0.06  # rise after letting go (m)
RELEASE_CLEARANCE = 0.012  # item bottom this far above its rest height when let go
OPEN_CLOSURE = 0.15  # fingers count as open below this closure fraction
# Table region where a mistaken put-down may go, and clearance from other objects.
SPOT_LOW = np.array([-0.28, -0.36])
SPOT_HIGH = np.array([0.34, 0.36])
SPOT_CLEARANCE = 0.03
SPOT_MIN_FROM_GOAL = 0.12
# A noisy (clumsy) operator cannot hold a position to a few millimetres: "reached" tolerances
# widen with the action noise (metres per unit of noise std), else every waypoint times out.
NOISE_TOL_GAIN = 0.045
PINCH_BELOW_RIM = 0.008  # plate grasps: TCP this far below the rim top
HOLD_SQUEEZE = 0.0015  # each finger commanded this far past the surface it holds (m)


class Grasp:
    """A grasp: TCP position, tool yaw (relative to the home pose) and the width pinched.

    Args:
        pos: Tool centre point position (world).
        yaw: Tool yaw; the fingers close along the tool's y axis, ``(sin yaw, -cos yaw, 0)``.
        width: Thickness of what the fingers pinch (m); once held, the gripper is commanded to
            just that width plus a slight squeeze (see :func:`hold_command`).
    """

    __slots__ = ("pos", "width", "yaw")

    def __init__(self, pos: np.ndarray, yaw: float, width: float) -> None:
        self.pos = np.asarray(pos, dtype=np.float64)
        self.yaw = float(yaw)
        self.width = float(width)


def hold_command(width: float) -> float:
    """Gripper command that closes the fingers to ``width`` less ``2 * HOLD_SQUEEZE``.

    A grasp is made with the gripper fully closed (both fingers must touch), then relaxed to
    this: the simulated fingers are light, so their contacts are soft, and squeezing a thin rim
    with the full closing force sinks them through it.
    """
    # Open, the finger pads' inner faces are FINGER_TRAVEL from the tool centre line.
    travel = FINGER_TRAVEL - width / 2 + HOLD_SQUEEZE
    # The grasp weld stays on only while the command is positive.
    return float(np.clip(travel / FINGER_TRAVEL * 2 - 1, 0.05, 1.0))


def wrap_half_turn(yaw: float) -> float:
    """Equivalent gripper yaw in [-pi/2, pi/2) (a parallel gripper is symmetric by a half turn)."""
    return float((yaw + np.pi / 2) % np.pi - np.pi / 2)


def _wrap(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


def _wrap_vec(angles: np.ndarray) -> np.ndarray:
    return (angles + np.pi) % (2 * np.pi) - np.pi


class PickPlaceExpert(ScriptedExpert):
    """Pick-and-place expert; subclasses say how to grasp each item and in which order.

    Args:
        quality: Quality preset or knobs (see :class:`~sarm2_gym.envs.core.expert.ExpertQuality`).
    """

    def __init__(self, quality: str | ExpertQuality = "expert", **options: str) -> None:
        super().__init__(quality, **options)
        self._park: dict[str, np.ndarray] = {}

    def reset(self, env: TaskEnv, seed: int | None = None) -> None:
        """Prepare for an episode of ``env`` (already reset)."""
        super().reset(env, seed)
        self._park = {}

    # ------------------------------------------------------------------ task-specific hooks
    @abstractmethod
    def grasp(self, k: int, arm: str) -> Grasp:
        """How ``arm`` grasps item ``k`` in its current pose."""

    def next_item(self, pending: list[int]) -> int:
        """Which pending item to fetch next (default: the first)."""
        return pending[0]

    @abstractmethod
    def item_radius(self, k: int) -> float:
        """Radius of a disc covering item ``k`` and the open fingers around it (for put-downs)."""

    def keep_out(self) -> list[tuple[np.ndarray, float]]:
        """Fixed obstacles (centre xy, radius) a mistaken put-down must avoid."""
        return []

    def plate_grasp(self, k: int, arm: str) -> Grasp:
        """Pinch rimmed plate ``k``'s rim beside the line it will travel along.

        A round plate can be held anywhere on its rim. The grasp weld lags the moving palm by a
        few millimetres in the direction of travel; with the fingers across the travel line the
        lag runs along the rim wall instead of pressing a fingertip into it. Of the two points
        beside the travel line, the one on the arm's side is used.
        """
        task = self.task
        pos = task.item_pos(k)
        travel = task.item_goal(k)[:2] - pos[:2]
        heading = float(np.arctan2(travel[1], travel[0]))
        home = np.asarray(HOME_POSITIONS[arm][:2]) - pos[:2]
        sides = (heading + np.pi / 2, heading - np.pi / 2)
        side = max(sides, key=lambda a: float(np.cos(a) * home[0] + np.sin(a) * home[1]))
        rim = pos + np.array([RIM_RADIUS * np.cos(side), RIM_RADIUS * np.sin(side), PLATE_HEIGHT])
        # Finger axis (sin yaw, -cos yaw) along the radius (cos side, sin side); the fingertips
        # end PINCH_BELOW_RIM below the rim top, above the plate's well.
        pinch = rim - np.array([0.0, 0.0, PINCH_BELOW_RIM])
        return Grasp(pinch, wrap_half_turn(side + np.pi / 2), 2 * RIM_HALF_THICK)

    # ------------------------------------------------------------------ helpers
    @property
    def task(self) -> PickPlaceEnv:
        """The task being demonstrated."""
        return cast(PickPlaceEnv, self._require_env())

    def arm_for(self, k: int) -> str:
        """The arm on item ``k``'s side of the table."""
        return "left" if self.task.item_pos(k)[1] > 0.0 else "right"

    def _held(self) -> tuple[str, int] | None:
        task = self.task
        for arm in ARMS:
            body = task.robot.holding(arm)
            if body >= 0 and body in task.items:
                return arm, task.items.index(body)
        return None

    def _tcp_for_item_z(self, arm: str, k: int, z: float) -> float:
        """Commanded TCP height that puts held item ``k``'s bottom at ``z``."""
        return float(self._commanded_pos(arm)[2] + (z - self.task.item_pos(k)[2]))

    def _xy_towards(self, arm: str, k: int, goal_xy: np.ndarray) -> np.ndarray:
        """Commanded TCP xy that puts held item ``k``'s origin at ``goal_xy``."""
        return self._commanded_pos(arm)[:2] + (goal_xy - self.task.item_pos(k)[:2])

    # ------------------------------------------------------------------ planning
    def plan_stage(self, stage: int) -> list[Waypoint]:
        """Pick (even stages) or place (odd stages) waypoints from the current state."""
        held = self._held()
        if held is not None:
            arm, k = held
            if stage % 2 == 1:
                return self._place_plan(arm, k)
            # Held but not lifted clear yet (e.g. a re-grasp): just lift.
            return [self._lift_wp(arm, "pick_grab")]
        pending = self.task.pending_items()
        if not pending:  # all placed, waiting for things to settle: back away from them
            for arm in ARMS:
                self._park[arm] = np.asarray(HOME_POSITIONS[arm], dtype=np.float64)
            return [*self._let_go_plan(None), Waypoint("dummy", {}, hold=2, max_steps=3)]
        return self._pick_plan(self.next_item(pending))

    def _let_go_plan(self, picking: str | None, hover: ArmTarget | None = None) -> list[Waypoint]:
        """Arms low by something they let go of: open fully, then rise straight up.

        The stage moves on the moment a grasp is released, so the fingers may still be closing
        around the item; ``picking`` (with its ``hover`` target) sets off meanwhile if it is
        another arm.
        """
        low = [a for a in ARMS if self._commanded_pos(a)[2] < SAFE_Z - 0.01]
        if not low:
            return []
        robot, data = self.task.robot, self.task.data
        still = {a: ArmTarget(pos=self._commanded_pos(a), gripper=-1.0) for a in low}
        opened = lambda: all(robot.closure(data, a) < OPEN_CLOSURE for a in low)  # noqa: E731
        rise = {a: ArmTarget(pos=self._rise(a)) for a in low}
        label = "dummy"
        if picking is not None and hover is not None and picking not in low:
            rise[picking], label = hover, "pick_grab"
        return [
            Waypoint("dummy", still, tol=self._tol(0.01), until=opened, max_steps=4),
            Waypoint(label, rise, tol=self._tol(0.012), max_steps=30),
        ]

    def _track(self, wp: Waypoint) -> np.ndarray:
        """Base tracking; an arm the waypoint leaves alone drifts to its park pose meanwhile."""
        action = super()._track(wp)
        limits = self.task.robot.limits
        for i, arm in enumerate(ARMS):
            park = self._park.get(arm)
            if park is None or arm in wp.targets:
                continue
            move = (park - self._commanded_pos(arm)) / limits.max_translation
            turn = -_wrap_vec(self._commanded_rpy(arm)) / limits.max_rotation
            for part, want in (
                (slice(7 * i, 7 * i + 3), move),
                (slice(7 * i + 3, 7 * i + 6), turn),
            ):
                peak = float(np.max(np.abs(want)))
                action[part] = (
                    want * (self.quality.speed / peak) if peak > self.quality.speed else want
                )
            action[7 * i + 6] = -1.0
        return action

    def _tol(self, tol: float) -> float:
        """A waypoint tolerance widened for action noise (see ``NOISE_TOL_GAIN``)."""
        return tol + NOISE_TOL_GAIN * self.quality.action_noise

    def _lift_wp(self, arm: str, primitive: str) -> Waypoint:
        pos = self._commanded_pos(arm)
        return Waypoint(
            primitive, {arm: ArmTarget(pos=np.array([pos[0], pos[1], SAFE_Z]))}, tol=self._tol(0.01)
        )

    def _pick_plan(self, k: int) -> list[Waypoint]:
        arm = self.arm_for(k)
        other = "right" if arm == "left" else "left"
        grasp = self.grasp(k, arm)
        rpy = np.array([0.0, 0.0, grasp.yaw])
        above = np.array([0.0, 0.0, HOVER])
        hover = ArmTarget(pos=lambda: self.grasp(k, arm).pos + above, rpy=rpy, gripper=-1.0)
        plan = self._let_go_plan(arm, hover)
        # The other arm goes home out of the way, in the background (see _track).
        self._park.pop(arm, None)
        self._park[other] = np.asarray(HOME_POSITIONS[other], dtype=np.float64)
        plan.append(Waypoint("pick_grab", {arm: hover}, tol=self._tol(0.012), max_steps=40))
        plan.append(
            Waypoint(
                "pick_grab",
                {arm: ArmTarget(pos=lambda: self.grasp(k, arm).pos, rpy=rpy)},
                tol=self._tol(0.004),
                max_steps=20,
            )
        )
        task = self.task
        plan.append(
            Waypoint(
                "pick_grab",
                {arm: ArmTarget(pos=self.grasp(k, arm).pos, gripper=1.0)},
                tol=self._tol(0.01),
                hold=1,
                until=lambda: task.item_holder(k) == arm,
                max_steps=10,
                grasp=True,
            )
        )
        lift_to = lambda: self.grasp_lift_target(arm)  # noqa: E731
        hold = hold_command(grasp.width)
        plan.append(
            Waypoint(
                "pick_grab",
                {arm: ArmTarget(pos=lift_to, gripper=hold)},
                tol=self._tol(0.01),
                max_steps=12,
            )
        )
        return plan

    def grasp_lift_target(self, arm: str) -> np.ndarray:
        """Straight up from where the arm closed, far enough to clear the item's rest."""
        pos = self._commanded_pos(arm)
        return np.array([pos[0], pos[1], max(pos[2], SAFE_Z)])

    def _offset_from_start(self, arm: str, offset: np.ndarray) -> Callable[[], np.ndarray]:
        """A target ``offset`` from wherever ``arm`` is commanded when first asked (then fixed)."""
        start: list[np.ndarray] = []

        def target() -> np.ndarray:
            if not start:
                start.append(self._commanded_pos(arm) + offset)
            return start[0]

        return target

    def _rise(self, arm: str) -> np.ndarray:
        pos = self._commanded_pos(arm)
        return np.array([pos[0], pos[1], SAFE_Z])

    def _place_plan(self, arm: str, k: int) -> list[Waypoint]:
        task = self.task
        goal_yaw = task.item_goal_yaw(k)
        rpy = self._commanded_rpy(arm)
        if goal_yaw is not None:
            rpy[2] = self._commanded_rpy(arm)[2] + _wrap(goal_yaw - task.item_yaw(k))
        rpy[:2] = 0.0
        carry = task.item_carry_z(k)

        def over_goal() -> np.ndarray:
            xy = self._xy_towards(arm, k, task.item_goal(k)[:2])
            return np.array([*xy, self._tcp_for_item_z(arm, k, carry)])

        def release_pos() -> np.ndarray:
            xy = self._xy_towards(arm, k, task.item_goal(k)[:2])
            z = task.item_goal(k)[2] + RELEASE_CLEARANCE
            return np.array([*xy, self._tcp_for_item_z(arm, k, z)])

        pos = self._commanded_pos(arm)
        up = lambda: np.array([pos[0], pos[1], self._tcp_for_item_z(arm, k, carry)])  # noqa: E731
        return [
            Waypoint("place", {arm: ArmTarget(pos=up)}, tol=self._tol(0.01), max_steps=15),
            Waypoint(
                "place",
                {arm: ArmTarget(pos=over_goal, rpy=rpy)},
                tol=self._tol(0.008),
                max_steps=50,
            ),
            Waypoint(
                "place",
                {arm: ArmTarget(pos=release_pos, rpy=rpy)},
                tol=self._tol(0.004),
                max_steps=25,
            ),
            # Letting go holds the pose, so a shaky hand does not drift off the goal meanwhile.
            Waypoint(
                "place",
                {arm: ArmTarget(pos=release_pos, rpy=rpy, gripper=-1.0)},
                hold=2,
                tol=1.0,
                max_steps=6,
            ),
            Waypoint(
                "dummy",
                {arm: ArmTarget(pos=self._offset_from_start(arm, np.array([0.0, 0.0, RETREAT])))},
                tol=self._tol(0.01),
            ),
        ]

    # ------------------------------------------------------------------ mistakes
    def mistake_waypoints(self, stage: int) -> list[Waypoint]:
        """While carrying: put the item down on free table short of its goal; else the default."""
        held = self._held()
        if held is None or stage % 2 == 0:
            return super().mistake_waypoints(stage)
        arm, k = held
        spot = self._free_spot(k)
        if spot is None:
            return super().mistake_waypoints(stage)
        task = self.task
        carry = task.item_carry_z(k)
        rest = task.item_rest_z(k)

        def over_spot() -> np.ndarray:
            return np.array([*self._xy_towards(arm, k, spot), self._tcp_for_item_z(arm, k, carry)])

        def down() -> np.ndarray:
            return np.array(
                [
                    *self._xy_towards(arm, k, spot),
                    self._tcp_for_item_z(arm, k, rest + RELEASE_CLEARANCE),
                ]
            )

        return [
            Waypoint("place", {arm: ArmTarget(pos=over_spot)}, tol=self._tol(0.01), max_steps=40),
            Waypoint("place", {arm: ArmTarget(pos=down)}, tol=self._tol(0.005), max_steps=20),
            Waypoint("place", {arm: ArmTarget(gripper=-1.0)}, hold=2, max_steps=6),
        ]

    def _free_spot(self, k: int) -> np.ndarray | None:
        """The free patch of table nearest to item ``k`` that is clearly not its goal."""
        task = self.task
        xs = np.linspace(SPOT_LOW[0], SPOT_HIGH[0], 21)
        ys = np.linspace(SPOT_LOW[1], SPOT_HIGH[1], 25)
        grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
        ok = np.linalg.norm(grid - task.item_goal(k)[:2], axis=1) >= SPOT_MIN_FROM_GOAL
        r = self.item_radius(k)
        for j in range(len(task.items)):
            if j != k:  # clear of the other items, and of where they are still to go
                for xy in (task.item_pos(j)[:2], task.item_goal(j)[:2]):
                    d = np.linalg.norm(grid - xy, axis=1)
                    ok &= d >= r + self.item_radius(j) + SPOT_CLEARANCE
        for centre, radius in self.keep_out():
            ok &= np.linalg.norm(grid - centre, axis=1) >= r + radius + SPOT_CLEARANCE
        if not np.any(ok):
            return None
        cand = grid[ok]
        return cast(
            np.ndarray, cand[np.argmin(np.linalg.norm(cand - task.item_pos(k)[:2], axis=1))]
        )
