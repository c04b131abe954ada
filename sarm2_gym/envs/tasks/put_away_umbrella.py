"""``SARM2-PutAwayUmbrella-v0``: pick up a closed umbrella, turn it upright, put it in its stand.

Scene: a closed umbrella (a rigid body: tip ferrule, capsule canopy, shaft and handle) lies on the
table in front of the robot; an umbrella stand, an open cylinder built from ``STAND_SEGMENTS`` wall
segments on a base, stands on the robot's left or right (drawn per episode; the arm on that side
does the work). The umbrella is grasped at the handle, from above, fingers across the handle;
pitching the hand about the finger axis then swings the tip down and stands the umbrella upright.

Stages: pick_grab (held and lifted) -> rotate_turn (held and upright within ``UPRIGHT_TOL``) ->
insert (released with its tip inside the stand).

Success: the umbrella's axis within ``UPRIGHT_TOL`` of vertical (handle up), its tip inside the
stand's bore and at least ``INSERT_DEPTH`` below the stand's rim, released (not held, no TCP within
``RELEASE_CLEARANCE`` of the handle) and at rest.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from sarm2_gym.envs.core.embodiment import ARMS, ControlLimits
from sarm2_gym.envs.core.geometry import mat_to_quat, yaw_mat
from sarm2_gym.envs.core.scene import SceneBuilder
from sarm2_gym.envs.core.stages import Stage, TaskStatus, sequential_status
from sarm2_gym.envs.core.task_env import TaskEnv

__all__ = ["PutAwayUmbrellaEnv"]

# ---- umbrella geometry (umbrella frame: +x along the shaft from the tip to the handle)
TIP_FROM: Final[float] = -0.185  # ferrule capsule, centre line from/to (x)
TIP_TO: Final[float] = -0.16
TIP_RADIUS: Final[float] = 0.005
TIP_X: Final[float] = TIP_FROM - TIP_RADIUS  # the very end of the tip
CANOPY_FROM: Final[float] = -0.14
CANOPY_TO: Final[float] = 0.06
CANOPY_RADIUS: Final[float] = 0.021  # the furled canopy, thickest part: it rests on the table
SHAFT_RADIUS: Final[float] = 0.005
HANDLE_FROM: Final[float] = 0.10
HANDLE_TO: Final[float] = 0.17
HANDLE_RADIUS: Final[float] = 0.015
HANDLE_X: Final[float] = (HANDLE_FROM + HANDLE_TO) / 2  # where the hand closes
UMBRELLA_MASS: Final[dict[str, float]] = {
    "tip": 0.01,
    "canopy": 0.17,
    "shaft": 0.01,
    "handle": 0.06,
}
UMBRELLA_REST_Z: Final[float] = CANOPY_RADIUS  # umbrella origin height lying on the table
# A furled umbrella is a cylinder on the table: rolling friction keeps it from rolling away at the
# first touch of a finger, as the folds and the strap of a real one do.
UMBRELLA_CONTACT: Final[str] = 'condim="6" friction="0.9 0.02 0.004"'

# ---- stand geometry (an open cylinder)
STAND_INNER_RADIUS: Final[float] = 0.038
STAND_WALL_HALF_THICK: Final[float] = 0.004
STAND_BASE_HALF: Final[float] = 0.005  # base disc half-thickness
STAND_FLOOR: Final[float] = 2 * STAND_BASE_HALF  # inside floor height
STAND_TOP: Final[float] = 0.19  # rim height
STAND_SEGMENTS: Final[int] = 16

# ---- named thresholds of the stage / success rules
LIFT_HEIGHT: Final[float] = 0.04  # a held umbrella raised this far above its rest = picked
UPRIGHT_TOL: Final[float] = np.deg2rad(20.0)  # axis within this of vertical, handle up
INSERT_DEPTH: Final[float] = 0.10  # tip at least this far below the stand's rim
RELEASE_CLEARANCE: Final[float] = 0.04  # released = no TCP within this of the handle's centre
SETTLED_SPEED: Final[float] = 0.05  # m/s: an umbrella moving slower than this is at rest
# Normalisers and shares of the within-stage progress terms.
REACH_DIST: Final[float] = 0.35  # TCP-to-handle distance at which reaching counts as not started
REACH_SHARE: Final[float] = 0.7  # pick_grab: reaching the handle (rest: lifting)
TURN_LIFT: Final[float] = 0.3  # rotate_turn: lift that lets the tip swing down clear of the table
TURN_LIFT_SHARE: Final[float] = 0.3  # rotate_turn: share of lifting (rest: the swing upright)
CARRY_DIST: Final[float] = 0.4  # horizontal tip-to-stand distance at which carrying starts
DROP_HEIGHT: Final[float] = STAND_TOP - STAND_FLOOR  # tip height above the floor: lowering starts
CARRY_SHARE: Final[float] = 0.5  # insert: carrying over the stand (0.4 lowering, 0.1 letting go)
LOWER_SHARE: Final[float] = 0.4

# Initial-condition ranges.
UMBRELLA_XY: Final = np.array([0.02, 0.0])
UMBRELLA_JITTER: Final = np.array([0.03, 0.03])
UMBRELLA_YAW: Final[float] = 0.35  # handle direction within this of straight ahead (+x)
STAND_XY: Final = np.array([0.15, 0.26])  # y mirrored to the drawn side
STAND_JITTER: Final = np.array([0.03, 0.03])


class PutAwayUmbrellaEnv(TaskEnv):
    """Put a closed umbrella away in its stand (see the module docstring).

    Observation, action and info follow :class:`~sarm2_gym.envs.core.task_env.TaskEnv`.
    ``env_state`` (``obs_mode="state"``, 13 values): umbrella position (3) and quaternion (4),
    held flag (1), tip position (3), stand centre xy (2).
    """

    name = "PutAwayUmbrella"
    instruction = "put away an umbrella"
    stages = (
        Stage("grasp the umbrella by its handle", "pick_grab", 1.0),
        Stage("turn the umbrella upright", "rotate_turn", 0.9),
        Stage("lower the umbrella into the stand", "insert", 1.4),
    )
    env_state_dim = 13
    # Standing the umbrella up is a 90 degree pitch about the finger axis (the default pitch range
    # stops at 1.2 rad), and its tip must clear the stand's rim with the hand above it.
    control_limits = ControlLimits(
        workspace_high=(0.45, 0.50, 0.60),
        rpy_low=(-1.75, -1.6, -np.pi),
        rpy_high=(1.75, 1.6, np.pi),
    )

    # ------------------------------------------------------------------ scene
    def _build_scene(self, scene: SceneBuilder) -> None:
        scene.add_body(self._umbrella_xml())
        scene.add_body(self._stand_xml())

    @staticmethod
    def _umbrella_xml() -> str:
        m = UMBRELLA_MASS
        c = UMBRELLA_CONTACT
        return f"""<body name="umbrella" pos="{UMBRELLA_XY[0]} {UMBRELLA_XY[1]} {UMBRELLA_REST_Z}">
          <freejoint name="umbrella"/>
          <geom name="umbrella_tip" type="capsule" size="{TIP_RADIUS}"
                fromto="{TIP_FROM} 0 0 {TIP_TO} 0 0" mass="{m["tip"]}" rgba="0.75 0.75 0.78 1"
                {c}/>
          <geom name="umbrella_canopy" type="capsule" size="{CANOPY_RADIUS}"
                fromto="{CANOPY_FROM} 0 0 {CANOPY_TO} 0 0" mass="{m["canopy"]}"
                rgba="0.12 0.2 0.45 1" {c}/>
          <geom type="cylinder" size="{CANOPY_RADIUS + 0.0015} 0.006" pos="-0.02 0 0"
                quat="0.7071068 0 0.7071068 0" rgba="0.08 0.1 0.2 1" contype="0"
                conaffinity="0" mass="0"/>
          <geom name="umbrella_shaft" type="cylinder" size="{SHAFT_RADIUS}"
                fromto="{CANOPY_TO} 0 0 {HANDLE_FROM} 0 0" mass="{m["shaft"]}"
                rgba="0.75 0.75 0.78 1" {c}/>
          <geom name="umbrella_handle" type="capsule" size="{HANDLE_RADIUS}"
                fromto="{HANDLE_FROM} 0 0 {HANDLE_TO} 0 0" mass="{m["handle"]}"
                rgba="0.45 0.28 0.14 1" {c}/>
        </body>"""

    @staticmethod
    def _stand_xml() -> str:
        r = STAND_INNER_RADIUS + STAND_WALL_HALF_THICK
        half_len = np.pi * r / STAND_SEGMENTS * 1.06  # slight overlap: no gaps
        wall_h = (STAND_TOP - STAND_FLOOR) / 2
        walls = []
        for k in range(STAND_SEGMENTS):
            a = 2 * np.pi * k / STAND_SEGMENTS
            q = mat_to_quat(yaw_mat(a))
            walls.append(
                f'<geom type="box" size="{STAND_WALL_HALF_THICK} {half_len:.5f} {wall_h}" '
                f'pos="{r * np.cos(a):.5f} {r * np.sin(a):.5f} {STAND_FLOOR + wall_h}" '
                f'quat="{q[0]:.6f} 0 0 {q[3]:.6f}" rgba="0.55 0.2 0.16 1"/>'
            )
        return f"""<body name="stand" pos="{STAND_XY[0]} {-STAND_XY[1]} 0">
          <geom name="stand_base" type="cylinder" size="{r + STAND_WALL_HALF_THICK + 0.004}
                {STAND_BASE_HALF}" pos="0 0 {STAND_BASE_HALF}" rgba="0.4 0.14 0.12 1"/>
          {"".join(walls)}
        </body>"""

    def _configure(self) -> None:
        self._umbrella = self.body_id("umbrella")
        self._stand = self.body_id("stand")
        self.robot.register_graspable(["umbrella"])
        self._stand_side = "right"

    # ------------------------------------------------------------------ episode
    def _initialize_episode(self, rng: np.random.Generator, options: dict[str, Any]) -> None:
        self._stand_side = str(rng.choice(ARMS))
        sign = 1.0 if self._stand_side == "left" else -1.0
        stand_xy = np.array([STAND_XY[0], sign * STAND_XY[1]])
        stand_xy += rng.uniform(-STAND_JITTER, STAND_JITTER)
        self.model.body_pos[self._stand, :2] = stand_xy
        xy = UMBRELLA_XY + rng.uniform(-UMBRELLA_JITTER, UMBRELLA_JITTER)
        yaw = rng.uniform(-UMBRELLA_YAW, UMBRELLA_YAW)
        # Turned about its own axis too, so the strap band is not always on top.
        spin = rng.uniform(0, 2 * np.pi)
        quat = mat_to_quat(yaw_mat(yaw) @ _rot_x(spin))
        self.set_free_body_pose(self._umbrella, np.array([*xy, UMBRELLA_REST_Z + 0.0005]), quat)

    # ------------------------------------------------------------------ readouts for experts
    @property
    def stand_side(self) -> str:
        """The side (``"left"``/``"right"``) the stand is on this episode."""
        return self._stand_side

    def umbrella_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Umbrella origin and rotation matrix (column 0: the shaft, tip to handle)."""
        b = self._umbrella
        return self.data.xpos[b].copy(), self.data.xmat[b].reshape(3, 3).copy()

    def handle_point(self) -> np.ndarray:
        """World position of the middle of the handle (where the hand closes)."""
        pos, mat = self.umbrella_pose()
        return pos + mat[:, 0] * HANDLE_X

    def tip_point(self) -> np.ndarray:
        """World position of the end of the tip."""
        pos, mat = self.umbrella_pose()
        return pos + mat[:, 0] * TIP_X

    def stand_center(self) -> np.ndarray:
        """World position of the centre of the stand's inside floor."""
        return self.data.xpos[self._stand] + np.array([0.0, 0.0, STAND_FLOOR])

    def umbrella_held_by(self) -> str | None:
        """The arm holding the umbrella, if any."""
        for arm in ARMS:
            if self.robot.holding(arm) == self._umbrella:
                return arm
        return None

    def tilt(self) -> float:
        """Angle (rad) between the shaft (tip to handle) and straight up."""
        _, mat = self.umbrella_pose()
        return float(np.arccos(np.clip(mat[2, 0], -1.0, 1.0)))

    def tip_in_stand(self) -> bool:
        """The tip is inside the stand's bore, at least ``INSERT_DEPTH`` below its rim."""
        tip = self.tip_point()
        radial = float(np.linalg.norm(tip[:2] - self.data.xpos[self._stand, :2]))
        return radial <= STAND_INNER_RADIUS and tip[2] <= STAND_TOP - INSERT_DEPTH

    # ------------------------------------------------------------------ status
    def _handle_clearance(self) -> float:
        handle = self.handle_point()
        return min(float(np.linalg.norm(self.robot.tcp_pos(self.data, a) - handle)) for a in ARMS)

    def _evaluate(self) -> TaskStatus:
        pos, _ = self.umbrella_pose()
        holder = self.umbrella_held_by()
        held = holder is not None
        tilt = self.tilt()
        upright = tilt <= UPRIGHT_TOL
        inside = self.tip_in_stand()
        clearance = self._handle_clearance()
        speed = float(np.linalg.norm(self.data.cvel[self._umbrella, 3:]))
        stowed = not held and upright and inside and clearance >= RELEASE_CLEARANCE
        lift = float(pos[2] - UMBRELLA_REST_Z)

        picked = held and lift >= LIFT_HEIGHT
        turned = held and upright
        in_stand = upright and inside and not held  # let go in the stand, hand maybe still near
        if held:
            w_pick = REACH_SHARE + (1 - REACH_SHARE) * float(np.clip(lift / LIFT_HEIGHT, 0, 1))
        else:
            w_pick = REACH_SHARE * (1 - min(clearance / REACH_DIST, 1.0))
        # Raising the umbrella high enough to swing it upright, then the swing itself.
        w_turn = TURN_LIFT_SHARE * float(np.clip(lift / TURN_LIFT, 0.0, 1.0)) + (
            1 - TURN_LIFT_SHARE
        ) * float(np.clip((np.pi / 2 - tilt) / (np.pi / 2), 0.0, 1.0))
        w_insert = self._insert_progress(held, clearance)
        return sequential_status(
            done=[
                picked or turned or in_stand,
                turned or in_stand,
                stowed and speed < SETTLED_SPEED,
            ],
            within=[w_pick, w_turn, w_insert],
            metrics={
                "tilt_deg": float(np.degrees(tilt)),
                "tip_height": float(self.tip_point()[2]),
                "handle_clearance": clearance,
            },
        )

    def _insert_progress(self, held: bool, clearance: float) -> float:
        tip = self.tip_point()
        stand = self.stand_center()
        carry = float(np.linalg.norm(tip[:2] - stand[:2]))
        height = float(tip[2] - stand[2])
        release = 0.0 if held else float(np.clip(clearance / RELEASE_CLEARANCE, 0.0, 1.0))
        return float(
            CARRY_SHARE * (1 - min(carry / CARRY_DIST, 1))
            + LOWER_SHARE * (1 - np.clip(height / DROP_HEIGHT, 0, 1))
            + (1 - CARRY_SHARE - LOWER_SHARE) * release * (1 - 1e-3)
        )

    def _env_state(self) -> np.ndarray:
        pos, mat = self.umbrella_pose()
        return np.concatenate(
            [
                pos,
                mat_to_quat(mat),
                [float(self.umbrella_held_by() is not None)],
                self.tip_point(),
                self.data.xpos[self._stand, :2],
            ]
        )


def _rot_x(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
