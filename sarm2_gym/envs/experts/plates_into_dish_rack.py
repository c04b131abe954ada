"""Scripted expert for ``SARM2-PlatesIntoDishRack-v0``.

Each plate is handled by the arm on its side (right plate: right arm). The arm pinches the plate's
rim wall at the edge facing the rack, lifts it, rolls 90 degrees so the plate hangs upright below
the fingers with its face across the slots, carries it over a free slot on its own side of the rack
(so the two palms never reach over each other's plate), lowers it between the tines, lets go and
backs off along its approach axis before the other arm starts.
"""

from __future__ import annotations

from typing import Any, Final, cast

import numpy as np

from sarm2_gym.envs.core.embodiment import ARMS
from sarm2_gym.envs.core.expert import ArmTarget, ExpertQuality, ScriptedExpert, Waypoint
from sarm2_gym.envs.core.task_env import TaskEnv
from sarm2_gym.envs.tasks.plates_into_dish_rack import (
    N_SLOTS,
    PLATE_OUTER_RADIUS,
    PLATE_RADIUS,
    PLATE_REST_Z,
    PLATES,
    RACK_BASE_TOP,
    SLOT_PITCH,
    TINE_HEIGHT,
    PlatesIntoDishRackEnv,
)

__all__ = ["PlatesIntoDishRackExpert"]

ARM_OF: Final[dict[str, str]] = {"plate_right": "right", "plate_left": "left"}
SIDE: Final[dict[str, float]] = {"right": -1.0, "left": 1.0}  # sign of the arm's side along y
HOVER: Final[float] = 0.07  # clearance above the rim before descending (m)
GRASP_Z: Final[float] = 0.021  # TCP height above the plate's origin when pinching the rim
TURN_START_Z: Final[float] = 0.14  # TCP height reached before rolling (the plate swings down)
CARRY_Z: Final[float] = 0.31  # TCP height while carrying an upright plate over the tines
LOWER_STEP: Final[float] = 0.012  # metres per control step while lowering into a slot
LET_GO_HEIGHT: Final[float] = 0.008  # let go only with the plate this close to resting
LET_GO_TILT: Final[float] = np.deg2rad(10.0)  # ... and its face this close to square
SEAT_GAP: Final[float] = 0.004  # plate lowered to this far above resting on the rack rails
BACK_OFF: Final[float] = 0.08  # retreat along the approach axis after letting go
BACK_STEP: Final[float] = 0.02  # metres per control step while drawing back
OPEN_ENOUGH: Final[float] = 0.3  # finger closure below which the hand may draw back
PARK_Z: Final[float] = 0.28  # an idle arm that has let go of its plate waits at this height
PARK_BACK: Final[float] = 0.03  # ... and this much further back along its approach axis
MISS_CLEARANCE: Final[float] = 0.02  # a missed insert stops this far above the tine tops
MISTAKE_TURN_BACK: Final[float] = 0.25  # a wrong turn goes back to this fraction of the roll
UP_6CM: Final[np.ndarray] = np.array([0.0, 0.0, 0.06])
ASKEW_X: Final[float] = 0.25  # |x component| of a held plate's face normal that rolling can't fix
REGRASP_DROP: Final[float] = 0.03  # a crooked plate is let go this far above where it lies flat
NOISE_SLACK: Final[float] = 1.5  # reach tolerances grow by this x the per-step action noise


class PlatesIntoDishRackExpert(ScriptedExpert):
    """Rack both plates, one arm per plate (see the module docstring).

    Args:
        quality: Quality preset or knobs (see :class:`~sarm2_gym.envs.core.expert.ExpertQuality`).
    """

    def __init__(self, quality: str | ExpertQuality = "expert", **options: str) -> None:
        super().__init__(quality, **options)
        self._slot_choice: dict[int, int] = {}
        # Where an arm without a job waits (position, orientation).
        self._park: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def task(self) -> PlatesIntoDishRackEnv:
        """The task being demonstrated."""
        return cast(PlatesIntoDishRackEnv, self._require_env())

    def reset(self, env: TaskEnv, seed: int | None = None) -> None:
        """Prepare for an episode; draws which slot of its side each plate goes to."""
        super().reset(env, seed)
        self._park = {arm: (self._commanded_pos(arm), self._commanded_rpy(arm)) for arm in ARMS}
        half = N_SLOTS // 2
        self._slot_choice = {
            0: int(self._rng.integers(0, half)),  # right plate: a slot at rack y < 0
            1: int(self._rng.integers(half, N_SLOTS)),  # left plate: a slot at rack y > 0
        }

    # ------------------------------------------------------------------ geometry helpers
    def _current_plate(self) -> int | None:
        """The plate the task status refers to: the unfinished one furthest along."""
        states = self.task.plate_states()
        open_ids = [i for i, s in enumerate(states) if s.stage < 3]
        if not open_ids:
            return None
        return max(open_ids, key=lambda i: (states[i].stage, states[i].within, -i))

    @staticmethod
    def _arm(plate: int) -> str:
        return ARM_OF[PLATES[plate]]

    def _grasp_point(self, plate: int) -> np.ndarray:
        """Rim point facing the robot's midline (the rack side) at pinching height."""
        pos, _ = self.task.plate_pose(plate)
        side = SIDE[self._arm(plate)]
        return pos + np.array([0.0, -side * PLATE_RADIUS, GRASP_Z])

    def _hover(self, plate: int) -> np.ndarray:
        return self._grasp_point(plate) + np.array([0.0, 0.0, HOVER])

    def _roll(self, plate: int) -> float:
        """Roll that stands the plate upright, face across the slots, from how it is held now.

        A clean pinch needs 90 degrees (the plate then hangs below the fingers); a plate that
        was knocked askew before the fingers closed needs more or less. The plate is welded to the
        hand, so rolling by the angle between its face normal and the slot axis (about world x,
        the roll axis at zero pitch and yaw) stands it up.
        """
        arm = self._arm(plate)
        _, mat = self.task.plate_pose(plate)
        normal = mat[:, 2]
        want = np.array([0.0, SIDE[arm], 0.0])  # rim side facing the palm
        delta = np.arctan2(normal[1] * want[2] - normal[2] * want[1], normal @ want)
        roll = float(self.task.robot.rpy(self.task.data, arm)[0] + delta)
        limits = self.task.robot.limits
        return float(np.clip(roll, limits.rpy_low[0], limits.rpy_high[0]))

    def _slot(self, plate: int) -> int:
        free = self.task.free_slots(plate)
        want = self._slot_choice.get(plate, 0)
        if want in free:
            return want
        return min(free, key=lambda k: abs(k - want))

    def _over_slot(self, plate: int, z: float | None) -> np.ndarray:
        """TCP target putting the plate's mid-plane over its slot (at TCP height ``z``)."""
        arm = self._arm(plate)
        offset = self._commanded_pos(arm)[:2] - self.task.plate_mid(plate)[:2]
        xy = self.task.slot_center(self._slot(plate))[:2] + offset
        tcp = self._commanded_pos(arm)
        return np.array([*xy, tcp[2] if z is None else z])

    def _seat_target(self, plate: int) -> np.ndarray:
        """TCP target that lowers the plate onto the rack rails, still centred on its slot."""
        arm = self._arm(plate)
        pos, _ = self.task.plate_pose(plate)
        tcp = self._commanded_pos(arm)
        z = tcp[2] + (self.task.seated_height() + SEAT_GAP - pos[2])
        return self._lower_towards(arm, self._over_slot(plate, z))

    # ------------------------------------------------------------------ planning
    def _wp(self, primitive: str, targets: dict[str, ArmTarget], tol: float, **kw: Any) -> Waypoint:
        """A waypoint whose tolerances widen with the action noise.

        The noise knob jitters the commanded pose by about ``action_noise`` x the per-step limit
        every step; a tolerance below that is met only by luck and stalls a clumsy expert.
        """
        noise = self.quality.action_noise
        limits = self._require_env().robot.limits
        kw.setdefault("rot_tol", 0.05 + NOISE_SLACK * noise * limits.max_rotation)
        # An arm left out of a waypoint gets no command, so the noise would walk it about (into
        # a racked plate); hold it where it was parked instead.
        full = dict(targets)
        for arm in ARMS:
            if arm not in full:
                pos, rpy = self._park[arm]
                full[arm] = ArmTarget(pos=pos, rpy=rpy)
        return Waypoint(
            primitive, full, tol=tol + NOISE_SLACK * noise * limits.max_translation, **kw
        )

    def plan_stage(self, stage: int) -> list[Waypoint]:
        """Waypoints for the current plate's pick_grab (0), rotate_turn (1), insert (2)."""
        plate = self._current_plate()
        if plate is None:  # both racked, still settling: wait
            return [self._wp("dummy", {}, tol=0.01, hold=2, max_steps=3)]
        sub = stage % 3
        arm = self._arm(plate)
        holder = self.task.plate_held_by(plate)
        if holder is not None and holder != arm:  # never happens with this expert; be safe
            return [Waypoint("dummy", {holder: ArmTarget(gripper=-1.0)}, hold=3, max_steps=6)]
        racked = self.task.plate_seated(plate) and self.task.plate_upright(plate)
        # In its slot (maybe let go already): release and withdraw.
        if sub == 2 and racked and (holder is None or self._ready_to_let_go(plate)):
            return self._plan_insert(plate)
        if sub == 0 or holder is None:
            return self._plan_pick(plate)
        if sub == 1:
            return self._plan_turn(plate)
        return self._plan_insert(plate)

    def _plan_pick(self, plate: int) -> list[Waypoint]:
        arm = self._arm(plate)
        other = "left" if arm == "right" else "right"
        lift = self._wp(
            "pick_grab",
            {arm: ArmTarget(pos=lambda: self._above(arm, TURN_START_Z))},
            tol=0.01,
        )
        if self.task.plate_held_by(plate) == arm:  # held but not lifted clear: just lift
            return [lift]
        flat = np.zeros(3)
        # The other arm may still be beside the plate it has racked: lift it clear while this
        # arm reaches for its plate.
        clear = self._commanded_pos(other)
        if abs(self._commanded_rpy(other)[0]) > 1.0:  # still turned: back off further first
            clear[1] += SIDE[other] * PARK_BACK
        clear[2] = max(clear[2], PARK_Z)
        self._park[other] = (clear, self._commanded_rpy(other))
        return [
            self._wp(
                "pick_grab",
                {
                    arm: ArmTarget(pos=lambda: self._hover(plate), rpy=flat, gripper=-1.0),
                    other: ArmTarget(pos=clear, gripper=-1.0),
                },
                tol=0.01,
            ),
            self._wp(
                "pick_grab",
                {arm: ArmTarget(pos=lambda: self._grasp_point(plate), rpy=flat)},
                tol=0.004,
            ),
            self._wp(
                "pick_grab",
                # Keep servoing to the rim while the fingers close (a noisy hand drifts off it).
                {arm: ArmTarget(pos=lambda: self._grasp_point(plate), gripper=1.0)},
                tol=0.01,
                hold=2,
                until=lambda: self.task.plate_held_by(plate) == arm,
                max_steps=12,
                grasp=True,
            ),
            lift,
        ]

    def _askew(self, plate: int) -> bool:
        """The plate sits in the hand so crookedly that no reachable roll stands it upright.

        (It was knocked before the fingers closed: a clumsy hand's doing.)
        """
        _, mat = self.task.plate_pose(plate)
        limits = self.task.robot.limits
        roll = self._roll(plate)
        at_limit = roll <= limits.rpy_low[0] + 1e-6 or roll >= limits.rpy_high[0] - 1e-6
        return at_limit or abs(mat[0, 2]) > ASKEW_X

    def _plan_regrasp(self, plate: int) -> list[Waypoint]:
        """Set a crookedly held plate back down, let go and lift off (then pick it up anew)."""
        arm = self._arm(plate)
        tcp = self._commanded_pos(arm)
        down = np.array([tcp[0], tcp[1], PLATE_REST_Z + GRASP_Z + REGRASP_DROP])
        return [
            self._wp(
                "pick_grab",
                {arm: ArmTarget(pos=lambda: self._lower_towards(arm, down), rpy=np.zeros(3))},
                tol=0.01,
                max_steps=40,
            ),
            Waypoint("dummy", {arm: ArmTarget(gripper=-1.0)}, hold=3, max_steps=6),
            self._wp("dummy", {arm: ArmTarget(pos=down + UP_6CM)}, tol=0.01, max_steps=10),
        ]

    def _plan_turn(self, plate: int) -> list[Waypoint]:
        arm = self._arm(plate)
        if self._askew(plate):
            return self._plan_regrasp(plate)
        tcp = self._commanded_pos(arm)
        up = np.array([tcp[0], tcp[1], max(tcp[2], TURN_START_Z)])
        roll = np.array([self._roll(plate), 0.0, 0.0])
        return [
            self._wp("rotate_turn", {arm: ArmTarget(pos=up)}, tol=0.01),
            self._wp(
                "rotate_turn",
                {arm: ArmTarget(pos=np.array([*up[:2], CARRY_Z]), rpy=roll)},
                tol=0.01,
            ),
        ]

    def _square_rpy(self, plate: int) -> np.ndarray:
        """Hand orientation that stands the plate upright and squares it to the slots.

        Roll fixes the face's tilt (see :meth:`_roll`); yaw, a rotation about world z applied
        last, turns the face normal onto the slot axis, so the plate slides between the tines
        rather than catching on them.
        """
        arm = self._arm(plate)
        _, mat = self.task.plate_pose(plate)
        normal = mat[:, 2]
        want = np.array([0.0, SIDE[arm], 0.0])
        delta = np.arctan2(normal[0] * want[1] - normal[1] * want[0], normal[:2] @ want[:2])
        yaw = float(self.task.robot.rpy(self.task.data, arm)[2] + delta)
        return np.array([self._roll(plate), 0.0, float((yaw + np.pi) % (2 * np.pi) - np.pi)])

    def _ready_to_let_go(self, plate: int) -> bool:
        """Seated on the rails, between the tines, squarely upright (stricter than success)."""
        pos, mat = self.task.plate_pose(plate)
        return (
            self.task.plate_seated(plate)
            and pos[2] <= self.task.seated_height() + LET_GO_HEIGHT
            and abs(mat[1, 2]) >= np.cos(LET_GO_TILT)
        )

    def _plan_insert(self, plate: int) -> list[Waypoint]:
        arm = self._arm(plate)
        roll = self._square_rpy(plate)
        if self.task.plate_held_by(plate) is None or self._ready_to_let_go(plate):
            # Let it settle, then open and draw the hand back once the fingers are clear of the
            # rim. Opening and withdrawing are one waypoint, the last of three: an expert that
            # stops part-way through this plan (the "partial" knob) still holds the plate.
            back = self._backed_off(arm)
            hold = self._commanded_pos(arm)
            return [
                self._wp("insert", {arm: ArmTarget(pos=hold)}, 0.01, hold=1),
                self._wp("insert", {arm: ArmTarget(pos=hold)}, 0.01),
                self._wp(
                    "insert",
                    {arm: ArmTarget(pos=lambda: self._withdraw(arm, back), gripper=-1.0)},
                    tol=0.005,
                    until=lambda: bool(np.linalg.norm(self._commanded_pos(arm) - back) < 0.005),
                ),
            ]
        # Carry over the slot and lower until the plate sits on the rails; the plan then runs
        # out and is made again: release if seated, otherwise lift and try again (a plate caught
        # on a tine top is never let go of there).
        carry_z = max(CARRY_Z, float(self._commanded_pos(arm)[2]))
        return [
            self._wp(
                "insert",
                {arm: ArmTarget(pos=lambda: self._over_slot(plate, carry_z), rpy=roll)},
                tol=0.005,
            ),
            self._wp(
                "insert",
                {arm: ArmTarget(pos=lambda: self._seat_target(plate), rpy=roll)},
                tol=0.004,
                until=lambda: self._ready_to_let_go(plate),
                max_steps=40,
            ),
        ]

    def _withdraw(self, arm: str, goal: np.ndarray) -> np.ndarray:
        """Stay until the fingers have opened, then move at most ``BACK_STEP`` towards ``goal``."""
        tcp = self._commanded_pos(arm)
        if self.task.robot.closure(self.task.data, arm) > OPEN_ENOUGH:
            return tcp
        delta = goal - tcp
        dist = float(np.linalg.norm(delta))
        return goal if dist <= BACK_STEP else tcp + delta * (BACK_STEP / dist)

    def _backed_off(self, arm: str) -> np.ndarray:
        """Behind the current TCP along the (horizontal, once turned) approach axis."""
        return self._commanded_pos(arm) + np.array([0.0, SIDE[arm] * BACK_OFF, 0.0])

    def _above(self, arm: str, z: float) -> np.ndarray:
        tcp = self._commanded_pos(arm)
        return np.array([tcp[0], tcp[1], z])

    def _lower_towards(self, arm: str, target: np.ndarray) -> np.ndarray:
        """Step towards ``target`` with the vertical motion capped at ``LOWER_STEP``.

        A held object trails a moving mocap gripper by about 2 x (weld time constant) x speed;
        along the (vertical, once turned) finger axis that lag pushes the rim into a finger, so a
        turned plate is raised and lowered slowly.
        """
        tcp = self._commanded_pos(arm)
        out = np.asarray(target, dtype=float).copy()
        out[2] = tcp[2] + float(np.clip(out[2] - tcp[2], -LOWER_STEP, LOWER_STEP))
        return out

    # ------------------------------------------------------------------ mistakes
    def mistake_waypoints(self, stage: int) -> list[Waypoint]:
        """Recoverable mistakes: set the plate down flat, turn back, or lower it over a tine row.

        Dropping a plate from carrying height could flip it rim-down, which no parallel gripper can
        pick up again, so mistakes with a plate in hand are ones a person recovers from.
        """
        plate = self._current_plate()
        if plate is None:
            return []
        arm = self._arm(plate)
        sub = stage % 3
        if self.task.plate_held_by(plate) != arm:
            return super().mistake_waypoints(stage)
        tcp = self._commanded_pos(arm)
        if sub == 0:  # fumble: let go just above the table, the plate falls back flat
            pos, _ = self.task.plate_pose(plate)
            low = tcp - np.array([0.0, 0.0, pos[2] - PLATE_REST_Z - 0.005])
            return [
                self._wp("pick_grab", {arm: ArmTarget(pos=low)}, tol=0.006, max_steps=12),
                Waypoint("dummy", {arm: ArmTarget(gripper=-1.0)}, hold=3, max_steps=6),
                self._wp("dummy", {arm: ArmTarget(pos=low + UP_6CM)}, tol=0.01, max_steps=10),
            ]
        if sub == 1:  # turned back towards flat, as if unsure of the direction
            back = np.array([MISTAKE_TURN_BACK * self._roll(plate), 0.0, 0.0])
            return [
                self._wp("rotate_turn", {arm: ArmTarget(pos=tcp, rpy=back)}, tol=0.01, max_steps=12)
            ]
        # insert: lowered towards a tine row instead of between the tines, stopped short, lifted
        miss = self._over_slot(plate, None)
        miss[1] += SIDE[arm] * SLOT_PITCH / 2  # half a pitch off puts the plate over a tine
        pos, _ = self.task.plate_pose(plate)
        bottom = pos[2] - PLATE_OUTER_RADIUS
        on_tines = np.array(
            [*miss[:2], tcp[2] - (bottom - (RACK_BASE_TOP + TINE_HEIGHT + MISS_CLEARANCE))]
        )
        return [
            self._wp(
                "insert",
                {arm: ArmTarget(pos=np.array([*miss[:2], tcp[2]]))},
                tol=0.006,
                max_steps=15,
            ),
            self._wp(
                "insert",
                {arm: ArmTarget(pos=lambda: self._lower_towards(arm, on_tines))},
                tol=0.006,
                max_steps=20,
            ),
            self._wp(
                "dummy",
                {
                    arm: ArmTarget(
                        pos=lambda: self._lower_towards(arm, np.array([*miss[:2], CARRY_Z]))
                    )
                },
                tol=0.01,
                max_steps=20,
            ),
        ]
