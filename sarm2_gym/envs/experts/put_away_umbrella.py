"""Scripted expert for ``SARM2-PutAwayUmbrella-v0``.

The arm on the stand's side grasps the handle from above with the fingers across it, lifts the
umbrella clear of the table, pitches the hand about the finger axis so the tip swings down (the
umbrella then hangs upright below the hand) while carrying it over the stand, lowers the tip into
the stand, lets go and backs off along its approach axis.
"""

from __future__ import annotations

from typing import Any, Final, cast

import numpy as np

from sarm2_gym.envs.core.embodiment import ARMS
from sarm2_gym.envs.core.expert import ArmTarget, ExpertQuality, ScriptedExpert, Waypoint
from sarm2_gym.envs.core.task_env import TaskEnv
from sarm2_gym.envs.tasks.put_away_umbrella import (
    HANDLE_X,
    STAND_FLOOR,
    STAND_TOP,
    TIP_X,
    UMBRELLA_REST_Z,
    PutAwayUmbrellaEnv,
)

__all__ = ["PutAwayUmbrellaExpert"]

HOVER_UP: Final[np.ndarray] = np.array([0.0, 0.0, 0.08])  # clearance above the handle first
TURN_Z: Final[float] = 0.36  # TCP height before pitching: the tip swings 0.33 m below the hand
CARRY_CLEARANCE: Final[float] = 0.04  # tip this far above the stand's rim while carrying
TURN_PITCH: Final[float] = -1.55  # hand pitch that hangs the umbrella about 1 degree off vertical
SEAT_GAP: Final[float] = 0.012  # tip lowered to this far above the stand's floor
LOWER_STEP: Final[float] = 0.02  # metres per control step while lowering into the stand
BACK_OFF: Final[float] = 0.07  # retreat along the approach axis after letting go
BACK_STEP: Final[float] = 0.02  # metres per control step while drawing back
OPEN_ENOUGH: Final[float] = 0.3  # finger closure below which the hand may draw back
NOISE_SLACK: Final[float] = 1.5  # reach tolerances grow by this x the per-step action noise
MISTAKE_TURN_BACK: Final[float] = 0.3  # a wrong turn goes back to this fraction of the pitch


class PutAwayUmbrellaExpert(ScriptedExpert):
    """Put the umbrella in its stand with the arm on the stand's side (see the module docstring).

    Args:
        quality: Quality preset or knobs (see :class:`~sarm2_gym.envs.core.expert.ExpertQuality`).
    """

    def __init__(self, quality: str | ExpertQuality = "expert", **options: str) -> None:
        super().__init__(quality, **options)
        # Where an arm without a job waits (position, orientation).
        self._park: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def task(self) -> PutAwayUmbrellaEnv:
        """The task being demonstrated."""
        return cast(PutAwayUmbrellaEnv, self._require_env())

    def reset(self, env: TaskEnv, seed: int | None = None) -> None:
        """Prepare for an episode of ``env`` (already reset)."""
        super().reset(env, seed)
        self._park = {arm: (self._commanded_pos(arm), self._commanded_rpy(arm)) for arm in ARMS}

    # ------------------------------------------------------------------ geometry helpers
    @property
    def _arm(self) -> str:
        return self.task.stand_side

    def _yaw(self) -> float:
        """Hand yaw that puts the fingers across the handle (palm x along the shaft)."""
        _, mat = self.task.umbrella_pose()
        return float(np.arctan2(mat[1, 0], mat[0, 0]))

    def _over_stand(self, tip_z: float) -> np.ndarray:
        """TCP target that puts the tip over the stand's axis at height ``tip_z``."""
        tcp = self._commanded_pos(self._arm)
        tip = self.task.tip_point()
        stand = self.task.stand_center()
        return tcp + np.array([stand[0] - tip[0], stand[1] - tip[1], tip_z - tip[2]])

    def _lower_towards(self, target: np.ndarray) -> np.ndarray:
        """Step towards ``target`` with the descent capped at ``LOWER_STEP`` per step.

        A held object trails a moving mocap hand (by about 2 x weld time constant x speed); a
        slow final descent keeps the tip from being rammed into the stand's floor.
        """
        tcp = self._commanded_pos(self._arm)
        out = np.asarray(target, dtype=float).copy()
        out[2] = tcp[2] + float(np.clip(out[2] - tcp[2], -LOWER_STEP, LOWER_STEP))
        return out

    def _withdraw(self, goal: np.ndarray) -> np.ndarray:
        """Stay until the fingers have opened, then move at most ``BACK_STEP`` towards ``goal``."""
        tcp = self._commanded_pos(self._arm)
        if self.task.robot.closure(self.task.data, self._arm) > OPEN_ENOUGH:
            return tcp
        delta = goal - tcp
        dist = float(np.linalg.norm(delta))
        return goal if dist <= BACK_STEP else tcp + delta * (BACK_STEP / dist)

    def _backed_off(self) -> np.ndarray:
        """Behind the TCP along the (horizontal, once turned) approach axis."""
        mat = self.task.robot.tcp_mat(self.task.data, self._arm)
        approach = mat[:, 2].copy()
        approach[2] = 0.0
        return self._commanded_pos(self._arm) - BACK_OFF * approach

    def _wp(self, primitive: str, targets: dict[str, ArmTarget], tol: float, **kw: Any) -> Waypoint:
        """A waypoint whose tolerances widen with the action noise; idle arms hold still.

        The noise knob jitters every commanded pose by about ``action_noise`` x the per-step
        limit each step: a tolerance below that is met only by luck, and an arm given no target
        would be walked about by the noise.
        """
        noise = self.quality.action_noise
        limits = self._require_env().robot.limits
        kw.setdefault("rot_tol", 0.05 + NOISE_SLACK * noise * limits.max_rotation)
        full = dict(targets)
        for arm in ARMS:
            if arm not in full:
                pos, rpy = self._park[arm]
                full[arm] = ArmTarget(pos=pos, rpy=rpy)
        return Waypoint(
            primitive, full, tol=tol + NOISE_SLACK * noise * limits.max_translation, **kw
        )

    # ------------------------------------------------------------------ planning
    def plan_stage(self, stage: int) -> list[Waypoint]:
        """Waypoints for pick_grab (0), rotate_turn (1), insert (2)."""
        held = self.task.umbrella_held_by() == self._arm
        if stage == 2 and self.task.tip_in_stand():  # in (maybe let go already): withdraw
            return self._plan_insert()
        if stage == 0 or not held:
            return self._plan_pick(held)
        if stage == 1:
            return self._plan_turn()
        return self._plan_insert()

    def _plan_pick(self, held: bool) -> list[Waypoint]:
        arm = self._arm
        lift = self._wp(
            "pick_grab",
            {arm: ArmTarget(pos=lambda: self._above(TURN_Z))},
            tol=0.01,
        )
        if held:  # held but not lifted clear: just lift
            return [lift]
        rpy = np.array([0.0, 0.0, self._yaw()])
        handle = self.task.handle_point
        return [
            self._wp(
                "pick_grab",
                {arm: ArmTarget(pos=lambda: handle() + HOVER_UP, rpy=rpy, gripper=-1.0)},
                tol=0.01,
            ),
            self._wp("pick_grab", {arm: ArmTarget(pos=handle, rpy=rpy)}, tol=0.004),
            self._wp(
                "pick_grab",
                # Keep servoing to the handle while the fingers close (a noisy hand drifts).
                {arm: ArmTarget(pos=handle, gripper=1.0)},
                tol=0.01,
                hold=2,
                until=lambda: self.task.umbrella_held_by() == arm,
                max_steps=12,
                grasp=True,
            ),
            lift,
        ]

    def _above(self, z: float) -> np.ndarray:
        tcp = self._commanded_pos(self._arm)
        return np.array([tcp[0], tcp[1], z])

    def _plan_turn(self) -> list[Waypoint]:
        arm = self._arm
        rpy = np.array([0.0, TURN_PITCH, self._commanded_rpy(arm)[2]])
        first = self._above(max(TURN_Z, float(self._commanded_pos(arm)[2])))
        # Rise on while pitching, so the tip, swinging down 0.33 m below the hand, ends up above
        # the stand's rim: the insert then only carries across and lowers.
        top = first.copy()
        top[2] = STAND_TOP + CARRY_CLEARANCE + (HANDLE_X - TIP_X) * np.sin(-TURN_PITCH)
        return [
            self._wp("rotate_turn", {arm: ArmTarget(pos=first)}, tol=0.01),
            self._wp("rotate_turn", {arm: ArmTarget(pos=top, rpy=rpy)}, tol=0.01),
        ]

    def _plan_insert(self) -> list[Waypoint]:
        arm = self._arm
        rpy = np.array([0.0, TURN_PITCH, self._commanded_rpy(arm)[2]])
        if self.task.tip_in_stand():
            # Let it settle, then open and draw the hand back once the fingers are clear of the
            # handle. Opening and withdrawing are one waypoint, the last of three: an expert that
            # stops part-way through this plan (the "partial" knob) still holds the umbrella.
            back = self._backed_off()
            hold = self._commanded_pos(arm)
            return [
                self._wp("insert", {arm: ArmTarget(pos=hold)}, 0.01, hold=1),
                self._wp("insert", {arm: ArmTarget(pos=hold)}, 0.01),
                self._wp(
                    "insert",
                    {arm: ArmTarget(pos=lambda: self._withdraw(back), gripper=-1.0)},
                    tol=0.005,
                    until=lambda: bool(np.linalg.norm(self._commanded_pos(arm) - back) < 0.005),
                ),
            ]
        # Over the stand, then down until the tip is deep inside; the plan then runs out and is
        # made again: let go if inside, otherwise lift and try again.
        carry_z = STAND_TOP + CARRY_CLEARANCE
        return [
            self._wp(
                "insert",
                {arm: ArmTarget(pos=lambda: self._over_stand(carry_z), rpy=rpy)},
                tol=0.006,
            ),
            self._wp(
                "insert",
                {
                    arm: ArmTarget(
                        pos=lambda: self._lower_towards(self._over_stand(STAND_FLOOR + SEAT_GAP)),
                        rpy=rpy,
                    )
                },
                tol=0.005,
                until=self.task.tip_in_stand,
                max_steps=40,
            ),
        ]

    # ------------------------------------------------------------------ mistakes
    def mistake_waypoints(self, stage: int) -> list[Waypoint]:
        """Recoverable mistakes: set the umbrella back down, turn back, or miss the stand.

        Dropping the umbrella from high up would land it anywhere (even standing in the stand by
        luck), so mistakes with the umbrella in hand are ones a person recovers from.
        """
        arm = self._arm
        if self.task.umbrella_held_by() != arm:
            return super().mistake_waypoints(stage)
        tcp = self._commanded_pos(arm)
        if stage == 0:  # fumble: let go just above the table, it drops back
            pos, _ = self.task.umbrella_pose()
            low = tcp - np.array([0.0, 0.0, pos[2] - UMBRELLA_REST_Z - 0.005])
            return [
                self._wp("pick_grab", {arm: ArmTarget(pos=low)}, tol=0.006, max_steps=12),
                Waypoint("dummy", {arm: ArmTarget(gripper=-1.0)}, hold=3, max_steps=6),
                self._wp("dummy", {arm: ArmTarget(pos=low + UP_6CM)}, tol=0.01, max_steps=10),
            ]
        rpy = self._commanded_rpy(arm)
        if stage == 1:  # turned back towards level, as if unsure which way the tip should go
            back = np.array([0.0, MISTAKE_TURN_BACK * TURN_PITCH, rpy[2]])
            above = self._above(max(TURN_Z, float(tcp[2])))
            return [
                self._wp("rotate_turn", {arm: ArmTarget(pos=above)}, tol=0.01, max_steps=12),
                self._wp("rotate_turn", {arm: ArmTarget(rpy=back)}, tol=0.01, max_steps=12),
            ]
        # insert: the tip comes down on the stand's rim, is lifted off again
        stand = self.task.stand_center()
        tip = self.task.tip_point()
        side = tip[:2] - stand[:2]
        side = side / max(float(np.linalg.norm(side)), 1e-6)
        miss = tcp.copy()
        miss[:2] += stand[:2] - tip[:2] + side * (MISS_OFFSET)
        on_rim = miss.copy()
        on_rim[2] += STAND_TOP + 0.01 - tip[2]
        return [
            self._wp("insert", {arm: ArmTarget(pos=miss)}, tol=0.006, max_steps=15),
            self._wp(
                "insert",
                {arm: ArmTarget(pos=lambda: self._lower_towards(on_rim))},
                tol=0.006,
                max_steps=15,
            ),
            self._wp("dummy", {arm: ArmTarget(pos=miss)}, tol=0.01, max_steps=15),
        ]


UP_6CM: Final[np.ndarray] = np.array([0.0, 0.0, 0.06])
MISS_OFFSET: Final[float] = 0.045  # a missed insert comes down this far off the stand's axis
