"""Scripted expert for ``SARM2-CleanWhiteboard-v0`` (right arm; the tray is on the right)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import ClassVar, cast

import numpy as np

from sarm2_gym.envs.core.expert import ArmTarget, ScriptedExpert, Waypoint
from sarm2_gym.envs.tasks.clean_whiteboard import (
    BOARD_HALF,
    BOARD_TOP,
    ERASER_HALF,
    INK_CELL,
    INK_GRID,
    TRAY_BASE,
    TRAY_MEAN_XY,
    TRAY_RANGE,
    CleanWhiteboardEnv,
)

__all__ = ["CleanWhiteboardExpert"]

ARM = "right"
HOVER = 0.09  # clearance above a target before descending (m)
GRASP_DEPTH = 0.012  # TCP this far below the eraser's top face when grasping
PRESS = 0.003  # felt face commanded this far into the board, so it stays in contact
WIPE_REACH = 0.012  # "reached" tolerance while chasing the nearest ink cell
# The sweep: lanes along the board's y axis, the eraser's 10 cm long side across them. Lane
# centres 9 cm apart overlap by 1 cm, so three lanes cover every ink cell centre (+-12.6 cm in x).
SWEEP_LANES_X = (-0.9 * ERASER_HALF[0] * 2, 0.0, 0.9 * ERASER_HALF[0] * 2)
# The dense sweep: four lanes 6.6 cm apart, the outer ones with the felt 2 mm inside the board's
# edges. They overlap by 3.2 cm, so a copy of the path that is off by up to 2.2 cm across the
# lanes still covers every ink cell: a cloned policy's lanes drift by about that much (the eraser
# held off centre, imprecise moves), which the expert never shows and so never corrects.
_OUTER_LANE_X = float(BOARD_HALF[0] - 0.98 * ERASER_HALF[0] - 0.002)
DENSE_SWEEP_LANES_X = tuple(float(x) for x in np.linspace(-_OUTER_LANE_X, _OUTER_LANE_X, 4))
# Per ``wipe`` option; read-only like the other lane constants (tuples).
LANES_X: Mapping[str, tuple[float, ...]] = MappingProxyType(
    {"sweep": SWEEP_LANES_X, "dense_sweep": DENSE_SWEEP_LANES_X}
)
# ``lanes="lifted"``: each lane of a sweep is executed with the felt this far above the board
# with this probability (at least one lane per sweep), its recorded actions still pressing.
LIFT_CLEARANCE = 0.015
LIFT_PROBABILITY = 0.4
SWEEP_END_Y = (INK_GRID[1] - 1) / 2 * INK_CELL  # outermost ink cell centres along y
SWEEP_LEG_STEPS = 40  # a leg that cannot reach its end (eraser stuck) is given up after this
# TCP heights (m) on the way from the board back to the tray. The way out runs low: the erase
# stage begins once the eraser is 3 cm out of its tray and the arm heads for the board at its
# hover height (about 7.5 cm). ``carry="direct"`` comes back at about 12 cm and lowers the eraser
# from there, close to the way out; ``carry="high"`` comes back at CARRY_HEIGHT and goes straight
# down, so the arm's height over the tray tells the way back from the way out.
PLACE_LIFT = 0.13
CARRY_HEIGHT = 0.24
# ``approach="survey"``: the first grasp starts from above the tray's mean place, at this TCP
# height. From the arm's start both cameras see the eraser's y nearly end-on (its whole range
# moves it by under a pixel either way at 64 px); looking down from here, the right wrist camera
# sees it move by several pixels.
SURVEY_HEIGHT = 0.14
SURVEY_POINT = (float(TRAY_MEAN_XY[0]), float(TRAY_MEAN_XY[1]), SURVEY_HEIGHT)  # TCP (m)
# Steps held there: the arm gets there in about four, so the move on to the eraser starts in
# a policy's second chunk of ten, planned from that view (a chunk is executed without looking).
SURVEY_HOLD = 6
# ``carry="survey"``: on the way back the arm also stops at the survey point, holding the eraser
# (the tray shows around it in the right wrist camera), for a whole chunk: wherever in a chunk
# it arrives, the policy's next chunk, the one that puts the eraser down, is planned from there.
PLACE_SURVEY_HOLD = 10


class CleanWhiteboardExpert(ScriptedExpert):
    """Grasp the eraser from above, wipe until no ink is left, put the eraser back in its tray.

    Two ways to wipe (option ``wipe``):

    - ``"nearest"`` (default): chase the remaining ink cell nearest the eraser. Short, but every
      move depends on where the ink is; a policy cloned from it must find the last specks in its
      camera images.
    - ``"sweep"``: wipe the whole board in three overlapping lanes (boustrophedon, starting at the
      far +y end so that it finishes next to the tray), then chase whatever ink is left. Longer,
      but the path follows the board, not the ink, so a cloned policy can follow it from where the
      arm is on the board; the task moves on to placing as soon as the last ink is gone.
    - ``"dense_sweep"``: the same in four lanes that overlap by 3.2 cm instead of 1 cm (starting
      at the near -y end, so that it too finishes next to the tray): longer, but a copy of its
      path still covers the board when the eraser is held a couple of centimetres off centre.

    With a sweep, option ``lanes="lifted"`` executes some lanes (each with probability
    :data:`LIFT_PROBABILITY`, at least one, drawn from the episode's seed) with the felt
    :data:`LIFT_CLEARANCE` above the board while the recorded actions keep pressing, as a
    perturbation push's do. Those lanes leave their ink, and the demonstration shows the expert
    chase it before it puts the eraser away: the board, not the end of the sweep, says when
    wiping is done (a policy cloned from the plain sweep places the eraser with ink left).
    ``"exact"`` (default) wipes every lane.

    Option ``finish`` sets when wiping stops. ``"ink"`` (default): as soon as the last ink is gone,
    wherever the sweep is, so the images alone (a clean board) tell when to stop. ``"sweep"``:
    with a sweep, every lane is wiped to its end even after the board is clean, then any ink left
    is chased; wiping then always ends at the sweep's end, next to the tray, where the arm's own
    position tells that it is done. Its frames wiping a clean board are labelled ``erase`` (what
    the arm does) while the task is already at place.

    Option ``approach`` sets the way to the first grasp. ``"direct"`` (default): straight from
    the arm's start to above the eraser, a move planned from images in which the eraser's place
    across the robot (y) shows by under a pixel. ``"survey"``: first to
    :data:`SURVEY_HEIGHT` above the tray's mean place (the same point every episode), then to the
    eraser, so the move that depends on where the eraser lies starts from a top-down wrist view.

    Option ``carry`` sets the way back to the tray. ``"direct"`` (default): at about the height of
    the way out, so the arm near the tray holding the eraser looks about the same whether it has
    just picked it up or is about to put it down; only the board in the images tells the two
    apart. ``"high"``: at :data:`CARRY_HEIGHT`, then straight down onto the tray, so the arm's
    height tells them apart too. ``"survey"``: as ``"direct"``, with a stop of
    :data:`PLACE_SURVEY_HOLD` steps at the survey point above the tray's mean place before going
    over the tray's centre and down.

    Args:
        quality: Quality preset or knobs (see :class:`~sarm2_gym.envs.core.expert.ExpertQuality`).
        **options: ``wipe="nearest"``, ``"sweep"`` or ``"dense_sweep"``; ``lanes="exact"`` or
            ``"lifted"``; ``finish="ink"`` or ``"sweep"``; ``carry="direct"``, ``"high"`` or
            ``"survey"``; ``approach="direct"`` or ``"survey"``.
    """

    OPTIONS: ClassVar[dict[str, tuple[str, ...]]] = {
        "wipe": ("nearest", "sweep", "dense_sweep"),
        "lanes": ("exact", "lifted"),
        "finish": ("ink", "sweep"),
        "carry": ("direct", "high", "survey"),
        "approach": ("direct", "survey"),
    }

    @property
    def task(self) -> CleanWhiteboardEnv:
        """The task being demonstrated."""
        return cast(CleanWhiteboardEnv, self._require_env())

    def _grasp_yaw(self) -> float:
        """Yaw that puts the fingers across the eraser's short side (either of two symmetric)."""
        _, mat = self.task.eraser_pose()
        yaw = float(np.arctan2(mat[1, 0], mat[0, 0]))
        return float((yaw + np.pi / 2) % np.pi - np.pi / 2)

    def _eraser_top(self) -> np.ndarray:
        pos, _ = self.task.eraser_pose()
        return pos + np.array([0.0, 0.0, ERASER_HALF[2]])

    def _felt_z(self) -> float:
        """Height of the eraser's felt face now."""
        pos, _ = self.task.eraser_pose()
        return float(pos[2] - ERASER_HALF[2])

    def _tcp_for_felt_at(self, z: float) -> float:
        """TCP height that puts the held eraser's felt face at height ``z``."""
        return float(self._commanded_pos(ARM)[2] + (z - self._felt_z()))

    def keeps_plan(self, planned: int, stage: int) -> bool:
        """With a sweep and ``finish="sweep"``: the sweep goes on once the board is clean.

        Only from erase to place and while the eraser is held: one let go falls back to
        pick_grab, which re-plans.
        """
        return (
            self.options["finish"] == "sweep"
            and self.options["wipe"] in LANES_X
            and (planned, stage) == (1, 2)
            and self.task.eraser_held()
        )

    def plan_stage(self, stage: int) -> list[Waypoint]:
        """Waypoints for pick_grab (0), erase (1), place (2)."""
        task = self.task
        if stage == 0:
            if task.eraser_held():  # held but not yet lifted clear: just lift
                return [self._lift(0.12, "pick_grab")]
            yaw = self._grasp_yaw()
            rpy = np.array([0.0, 0.0, yaw])
            return [
                *self._survey(rpy),
                Waypoint(
                    "pick_grab",
                    {
                        ARM: ArmTarget(
                            pos=lambda: self._eraser_top() + np.array([0, 0, HOVER]),
                            rpy=rpy,
                            gripper=-1.0,
                        )
                    },
                    tol=0.01,
                ),
                Waypoint(
                    "pick_grab",
                    {
                        ARM: ArmTarget(
                            pos=lambda: self._eraser_top() - np.array([0, 0, GRASP_DEPTH]), rpy=rpy
                        )
                    },
                    tol=0.004,
                ),
                Waypoint(
                    "pick_grab",
                    {ARM: ArmTarget(gripper=1.0)},
                    hold=2,
                    until=task.eraser_held,
                    max_steps=12,
                    grasp=True,
                ),
                self._lift(0.12, "pick_grab"),
            ]
        if stage == 1:
            if not task.eraser_held():
                return self.plan_stage(0)
            chase = Waypoint(
                "erase",
                {ARM: ArmTarget(pos=self._wipe_target, rpy=self._level_rpy)},
                tol=WIPE_REACH,
                until=lambda: len(task.remaining_ink()) == 0,
                max_steps=220,
            )
            lanes = LANES_X.get(self.options["wipe"])
            if lanes is not None:
                return [*self._sweep(lanes, self._lanes_to_lift(len(lanes))), chase]
            return [
                Waypoint(
                    "erase", {ARM: ArmTarget(pos=lambda: self._above_nearest_ink(0.04))}, tol=0.015
                ),
                chase,
            ]
        # stage 2: place (re-grasp first if the eraser was dropped after erasing)
        if not task.eraser_held():
            return self.plan_stage(0)
        tray = task.tray_center()
        high = self.options["carry"] == "high"
        above_tray = lambda: np.array(  # noqa: E731
            [
                tray[0],
                tray[1],
                CARRY_HEIGHT if high else self._tcp_for_felt_at(TRAY_BASE + 0.08),
            ]
        )
        look: list[Waypoint] = []
        if self.options["carry"] == "survey":
            target = {ARM: ArmTarget(pos=np.array(SURVEY_POINT), rpy=np.zeros(3))}
            look = [Waypoint("place", target, tol=0.01, hold=PLACE_SURVEY_HOLD)]
        return [
            self._lift(CARRY_HEIGHT if high else PLACE_LIFT, "place"),
            *look,
            Waypoint("place", {ARM: ArmTarget(pos=above_tray, rpy=np.zeros(3))}, tol=0.01),
            Waypoint(
                "place",
                {
                    ARM: ArmTarget(
                        pos=lambda: np.array(
                            [tray[0], tray[1], self._tcp_for_felt_at(TRAY_BASE + 0.006)]
                        )
                    )
                },
                tol=0.004,
            ),
            Waypoint("place", {ARM: ArmTarget(gripper=-1.0)}, hold=3),
            Waypoint(
                "dummy",
                {ARM: ArmTarget(pos=lambda: self._commanded_pos(ARM) + np.array([0, 0, 0.08]))},
                tol=0.01,
            ),
        ]

    def _survey(self, rpy: np.ndarray) -> list[Waypoint]:
        """With ``approach="survey"``, the look from above the tray before the first grasp.

        Only while the eraser still lies where trays are placed: a re-grasp elsewhere (dropped on
        the board) goes straight to it.
        """
        if self.options["approach"] != "survey":
            return []
        pos, _ = self.task.eraser_pose()
        if np.any(np.abs(pos[:2] - TRAY_MEAN_XY) > TRAY_RANGE + 0.01):
            return []
        target = {ARM: ArmTarget(pos=np.array(SURVEY_POINT), rpy=rpy, gripper=-1.0)}
        return [Waypoint("pick_grab", target, tol=0.01, hold=SURVEY_HOLD)]

    def _lift(self, height: float, primitive: str) -> Waypoint:
        """Straight up to ``height`` (TCP z) from wherever the arm is."""
        start = self._commanded_pos(ARM)
        return Waypoint(
            primitive, {ARM: ArmTarget(pos=np.array([start[0], start[1], height]))}, tol=0.01
        )

    def _level_rpy(self) -> np.ndarray:
        """The commanded yaw with roll and pitch zero: the felt face stays flat on the board."""
        return self._commanded_rpy(ARM) * np.array([0.0, 0.0, 1.0])

    def _lanes_to_lift(self, n: int) -> frozenset[int]:
        """Which of ``n`` lanes to execute lifted (none unless ``lanes="lifted"``)."""
        if self.options["lanes"] != "lifted":
            return frozenset()  # draws nothing: other episodes keep their random streams
        lifted = {i for i in range(n) if self._rng.random() < LIFT_PROBABILITY}
        return frozenset(lifted or {int(self._rng.integers(n))})

    def _sweep(
        self, lanes: tuple[float, ...], lifted: frozenset[int] = frozenset()
    ) -> list[Waypoint]:
        """Hover over the first lane's start, then wipe the lanes back and forth.

        The first lane starts at the end that makes the last one finish at the -y end, next to
        the tray: the far (+y) end for an odd number of lanes, the near end for an even one.

        Args:
            lanes: Lane positions across the board (board-local x, metres).
            lifted: Indices of the lanes whose legs are executed lifted (each leg's
                :attr:`~sarm2_gym.envs.core.expert.Waypoint.executed`); their recorded
                waypoints press as the others do.
        """
        y = SWEEP_END_Y if len(lanes) % 2 else -SWEEP_END_Y
        plan = [
            Waypoint(
                "erase",
                {ARM: ArmTarget(pos=self._on_board(lanes[0], y, 0.04))},
                tol=0.015,
            )
        ]
        for i, x in enumerate(lanes):
            for leg_y in (y, -y):  # move over to the lane's start, then along it
                leg = Waypoint(
                    "erase",
                    {ARM: ArmTarget(pos=self._on_board(x, leg_y), rpy=self._level_rpy)},
                    tol=WIPE_REACH,
                    max_steps=SWEEP_LEG_STEPS,
                )
                if i in lifted:
                    up = ArmTarget(
                        pos=self._on_board(x, leg_y, LIFT_CLEARANCE), rpy=self._level_rpy
                    )
                    leg.executed = replace(leg, targets={ARM: up})
                plan.append(leg)
            y = -y
        return plan

    def _on_board(self, x: float, y: float, clearance: float = -PRESS) -> Callable[[], np.ndarray]:
        """TCP target for the felt face's centre at board-local ``(x, y)``.

        Args:
            x: Along the board's x axis from its centre (metres).
            y: Along the board's y axis from its centre (metres).
            clearance: Felt height above the board; negative presses it in.
        """
        return lambda: self._felt_over(self.task.board_center()[:2] + np.array([x, y]), clearance)

    def _nearest_ink(self) -> np.ndarray:
        ink = self.task.remaining_ink()
        pos, _ = self.task.eraser_pose()
        if len(ink) == 0:
            return pos[:2]
        return ink[int(np.argmin(np.linalg.norm(ink - pos[:2], axis=1)))]

    def _above_nearest_ink(self, clearance: float) -> np.ndarray:
        return self._felt_over(self._nearest_ink(), clearance)

    def _wipe_target(self) -> np.ndarray:
        return self._felt_over(self._nearest_ink(), -PRESS)

    def _felt_over(self, xy: np.ndarray, clearance: float) -> np.ndarray:
        """TCP target putting the felt face's centre over world ``xy``.

        Args:
            xy: World position on the board (metres).
            clearance: Felt height above the board; negative presses it in.
        """
        return np.array(
            [*(xy + self._tcp_offset_xy()), self._tcp_for_felt_at(BOARD_TOP + clearance)]
        )

    def _tcp_offset_xy(self) -> np.ndarray:
        """Horizontal offset from the eraser centre to the TCP (the grasp is not centred)."""
        pos, _ = self.task.eraser_pose()
        return self._commanded_pos(ARM)[:2] - pos[:2]
