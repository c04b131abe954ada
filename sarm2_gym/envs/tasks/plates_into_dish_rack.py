"""``SARM2-PlatesIntoDishRack-v0``: pick two plates off the table, turn them upright, rack them.

Scene: two rimmed plates lie flat on the table, one on each side of the robot; a dish rack (a base
with two rows of vertical tines forming ``N_SLOTS`` slots, and two low rails along the slots that
cradle a racked plate's edge) stands in front of the robot. A plate is
a flat base disc plus a low rim wall built from ``PLATE_SEGMENTS`` straight segments, so a
parallel gripper can pick it honestly: from above, one finger inside the rim and one outside,
pinching the rim wall. Turning the gripper about its roll axis by 90 degrees then stands the plate
upright, hanging from its rim, ready to be lowered between two tines.

Per plate the stages are pick_grab (held and lifted) -> rotate_turn (held with its face within
``UPRIGHT_TOL`` of vertical) -> insert (released, upright, seated in a slot); the task is these
three stages for each of the two plates, in whichever order the plates are handled.

Success: both plates upright within ``UPRIGHT_TOL``, each between the tines of its own slot,
seated (centre at most ``SEATED_MARGIN`` above resting on the rack's rails), released (not held,
no TCP within ``RELEASE_CLEARANCE`` of the rim) and at rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from sarm2_gym.envs.core.embodiment import ARMS
from sarm2_gym.envs.core.geometry import mat_to_quat, yaw_mat
from sarm2_gym.envs.core.scene import SceneBuilder
from sarm2_gym.envs.core.stages import Stage, TaskStatus
from sarm2_gym.envs.core.task_env import TaskEnv

__all__ = ["PLATES", "PlateState", "PlatesIntoDishRackEnv"]

# ---- plate geometry (plate frame: origin at the base disc centre, +z the eating face's normal)
PLATES: Final[tuple[str, ...]] = ("plate_right", "plate_left")  # handled by the right/left arm
PLATE_RADIUS: Final[float] = 0.075  # centre line of the rim wall
PLATE_RIM_HALF_THICK: Final[float] = 0.004  # radial half-thickness of the rim wall
PLATE_RIM_HEIGHT: Final[float] = 0.026  # rim wall rises this far above the base's mid-plane
PLATE_BASE_HALF_THICK: Final[float] = 0.003
PLATE_SEGMENTS: Final[int] = 24
PLATE_OUTER_RADIUS: Final[float] = PLATE_RADIUS + PLATE_RIM_HALF_THICK
PLATE_REST_Z: Final[float] = PLATE_BASE_HALF_THICK  # plate origin height lying on the table
# Middle of the plate's thickness (base underside to rim top) along its normal: a racked plate is
# centred in its slot by this point, not by its base.
PLATE_MID_OFFSET: Final[float] = (PLATE_RIM_HEIGHT - PLATE_BASE_HALF_THICK) / 2
PLATE_MASS: Final[tuple[float, float]] = (0.14, 0.10)  # base disc, whole rim (kg)
# Glazed ceramic: a hard contact (solimp close to 1). MuJoCo scales contact stiffness with the
# effective mass, so against the light fingers a default contact lets a finger sink several mm
# into the thin rim and, under the fingers' closing force, slip right through it; priority makes
# these parameters, not the mixed ones, apply to every contact with a plate.
PLATE_CONTACT: Final[str] = (
    'priority="1" friction="0.9 0.01 0.001" solref="0.01 1" solimp="0.99 0.999 0.001"'
)

# ---- dish rack geometry (rack frame = world axes; slots are stacked along y)
RACK_BASE_HALF: Final = np.array([0.10, 0.11, 0.01])
RACK_BASE_TOP: Final[float] = 2 * RACK_BASE_HALF[2]
N_SLOTS: Final[int] = 4
SLOT_PITCH: Final[float] = 0.05  # centre-to-centre distance of neighbouring tines
TINE_RADIUS: Final[float] = 0.004
TINE_HEIGHT: Final[float] = 0.09  # above the rack base
TINE_ROW_X: Final[float] = 0.045  # the two tine rows at rack x +- this
# Two rails along y cradle a racked plate's edge, so it cannot roll along its slot like a wheel.
RAIL_X: Final[float] = 0.035
RAIL_RADIUS: Final[float] = 0.005
SLOT_Y: Final[np.ndarray] = (np.arange(N_SLOTS) + 0.5 - N_SLOTS / 2) * SLOT_PITCH  # rack frame
TINE_Y: Final[np.ndarray] = (np.arange(N_SLOTS + 1) - N_SLOTS / 2) * SLOT_PITCH

# ---- named thresholds of the stage / success rules
LIFT_HEIGHT: Final[float] = 0.04  # a held plate raised this far above its resting height = picked
UPRIGHT_TOL: Final[float] = np.deg2rad(20.0)  # plate face within this of vertical, facing a tine
SLOT_HALF_WIDTH: Final[float] = SLOT_PITCH / 2 - TINE_RADIUS  # plate mid-plane between the tines
RACK_X_TOL: Final[float] = 0.03  # plate centre this close to the rack's centre line along x
SEATED_MARGIN: Final[float] = 0.015  # plate centre at most this above resting on the rack's rails
SETTLED_SPEED: Final[float] = 0.05  # m/s: a plate moving slower than this is at rest
RELEASE_CLEARANCE: Final[float] = 0.06  # released = no TCP within this of the plate's rim
# Normalisers of the within-stage progress terms.
REACH_DIST: Final[float] = 0.35  # TCP-to-rim distance at which reaching counts as not started
CARRY_DIST: Final[float] = 0.35  # horizontal plate-to-slot distance at which carrying starts
DROP_HEIGHT: Final[float] = 0.12  # height above seated at which lowering into the slot starts
# Share of each stage's progress credited to the sub-goals inside it.
REACH_SHARE: Final[float] = 0.7  # pick_grab: reaching the rim (rest: lifting)
CARRY_SHARE: Final[float] = 0.5  # insert: carrying over the slots (0.4 lowering, 0.1 letting go)
LOWER_SHARE: Final[float] = 0.4

# Initial-condition ranges.
PLATE_XY: Final[dict[str, tuple[float, float]]] = {
    "plate_right": (0.0, -0.27),
    "plate_left": (0.0, 0.27),
}
PLATE_JITTER: Final = np.array([0.04, 0.03])
RACK_XY: Final = np.array([0.21, 0.0])
RACK_JITTER: Final = np.array([0.03, 0.04])


@dataclass(frozen=True, slots=True)
class PlateState:
    """Where one plate stands in its own three-stage sequence.

    Args:
        stage: 0 pick_grab, 1 rotate_turn, 2 insert, 3 done (racked).
        within: Progress inside ``stage`` in [0, 1].
        slot: Index of the slot the plate is seated in, or -1.
    """

    stage: int
    within: float
    slot: int


class PlatesIntoDishRackEnv(TaskEnv):
    """Put two plates upright into a dish rack (see the module docstring).

    Observation, action and info follow :class:`~sarm2_gym.envs.core.task_env.TaskEnv`.
    ``env_state`` (``obs_mode="state"``, 20 values): per plate (right plate first) its position (3),
    quaternion (4) and held flag (1); the rack centre xy (2); per plate whether it is racked (1).
    """

    name = "PlatesIntoDishRack"
    instruction = "pick and place plates into dish rack"
    stages = (
        Stage("grasp the first plate by its rim", "pick_grab", 1.0),
        Stage("turn the first plate upright", "rotate_turn", 0.75),
        Stage("insert the first plate between two tines", "insert", 1.7),
        Stage("grasp the second plate by its rim", "pick_grab", 1.0),
        Stage("turn the second plate upright", "rotate_turn", 0.75),
        Stage("insert the second plate between two tines", "insert", 1.7),
    )
    env_state_dim = 20

    # ------------------------------------------------------------------ scene
    def _build_scene(self, scene: SceneBuilder) -> None:
        colors = {"plate_right": "0.93 0.93 0.9 1", "plate_left": "0.75 0.85 0.95 1"}
        for plate, xy in PLATE_XY.items():
            scene.add_body(self._plate_xml(plate, xy, colors[plate]))
        scene.add_body(self._rack_xml())

    @staticmethod
    def _plate_xml(name: str, xy: tuple[float, float], rgba: str) -> str:
        seg_half = np.pi * PLATE_RADIUS / PLATE_SEGMENTS * 1.04  # slight overlap: no gaps
        seg_mass = PLATE_MASS[1] / PLATE_SEGMENTS
        rim = []
        for k in range(PLATE_SEGMENTS):
            a = 2 * np.pi * k / PLATE_SEGMENTS
            x, y = PLATE_RADIUS * np.cos(a), PLATE_RADIUS * np.sin(a)
            q = mat_to_quat(yaw_mat(a))
            rim.append(
                f'<geom type="box" size="{PLATE_RIM_HALF_THICK} {seg_half:.5f} '
                f'{PLATE_RIM_HEIGHT / 2}" pos="{x:.5f} {y:.5f} {PLATE_RIM_HEIGHT / 2}" '
                f'quat="{q[0]:.6f} 0 0 {q[3]:.6f}" mass="{seg_mass:.5f}" rgba="{rgba}" '
                f"{PLATE_CONTACT}/>"
            )
        base_r = PLATE_RADIUS - PLATE_RIM_HALF_THICK
        return f"""<body name="{name}" pos="{xy[0]} {xy[1]} {PLATE_REST_Z}">
          <freejoint name="{name}"/>
          <geom name="{name}_base" type="cylinder" size="{base_r} {PLATE_BASE_HALF_THICK}"
                mass="{PLATE_MASS[0]}" rgba="{rgba}" {PLATE_CONTACT}/>
          <geom type="cylinder" size="{base_r * 0.55} 0.0004" pos="0 0 {PLATE_BASE_HALF_THICK}"
                rgba="0.55 0.6 0.7 1" contype="0" conaffinity="0" mass="0"/>
          {"".join(rim)}
        </body>"""

    @staticmethod
    def _rack_xml() -> str:
        bx, by, bz = RACK_BASE_HALF
        parts = [
            f'<geom name="rack_base" type="box" size="{bx} {by} {bz}" pos="0 0 {bz}" '
            f'rgba="0.35 0.38 0.42 1"/>'
        ]
        for sx in (-1, 1):
            parts.append(
                f'<geom type="capsule" size="{RAIL_RADIUS}" fromto="{sx * RAIL_X} {-by} '
                f'{RACK_BASE_TOP + RAIL_RADIUS} {sx * RAIL_X} {by} {RACK_BASE_TOP + RAIL_RADIUS}" '
                f'rgba="0.55 0.58 0.62 1"/>'
            )
            for ty in TINE_Y:
                x = sx * TINE_ROW_X
                parts.append(
                    f'<geom type="capsule" size="{TINE_RADIUS}" fromto="{x} {ty:.4f} '
                    f'{RACK_BASE_TOP} {x} {ty:.4f} {RACK_BASE_TOP + TINE_HEIGHT}" '
                    f'rgba="0.78 0.8 0.84 1"/>'
                )
        return f"""<body name="rack" pos="{RACK_XY[0]} {RACK_XY[1]} 0">
          {"".join(parts)}
        </body>"""

    def _configure(self) -> None:
        self._plates = [self.body_id(p) for p in PLATES]
        self._rack = self.body_id("rack")
        self.robot.register_graspable(list(PLATES))

    # ------------------------------------------------------------------ episode
    def _initialize_episode(self, rng: np.random.Generator, options: dict[str, Any]) -> None:
        rack_xy = RACK_XY + rng.uniform(-RACK_JITTER, RACK_JITTER)
        self.model.body_pos[self._rack, :2] = rack_xy
        for plate, body in zip(PLATES, self._plates, strict=True):
            xy = np.asarray(PLATE_XY[plate]) + rng.uniform(-PLATE_JITTER, PLATE_JITTER)
            yaw = rng.uniform(0.0, 2 * np.pi)  # where the rim's segment seams fall
            self.set_free_body_pose(
                body, np.array([*xy, PLATE_REST_Z + 0.0005]), mat_to_quat(yaw_mat(yaw))
            )

    # ------------------------------------------------------------------ readouts for experts
    def plate_pose(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Plate ``index``'s origin (base centre) and rotation matrix (column 2: face normal)."""
        body = self._plates[index]
        return self.data.xpos[body].copy(), self.data.xmat[body].reshape(3, 3).copy()

    def plate_mid(self, index: int) -> np.ndarray:
        """Centre of plate ``index``'s thickness (what is centred between two tines)."""
        pos, mat = self.plate_pose(index)
        return pos + mat[:, 2] * PLATE_MID_OFFSET

    def plate_held_by(self, index: int) -> str | None:
        """The arm holding plate ``index``, if any."""
        for arm in ARMS:
            if self.robot.holding(arm) == self._plates[index]:
                return arm
        return None

    def rack_center(self) -> np.ndarray:
        """World position of the centre of the rack base's top face."""
        return self.data.xpos[self._rack] + np.array([0.0, 0.0, RACK_BASE_TOP])

    def slot_center(self, slot: int) -> np.ndarray:
        """World position of a slot's centre on the rack base's top face."""
        return self.rack_center() + np.array([0.0, SLOT_Y[slot], 0.0])

    def seated_height(self) -> float:
        """Height of an upright plate's centre when its edge rests on the two rails."""
        reach = PLATE_OUTER_RADIUS + RAIL_RADIUS
        return float(RACK_BASE_TOP + RAIL_RADIUS + np.sqrt(reach**2 - RAIL_X**2))

    def plate_upright(self, index: int) -> bool:
        """Plate ``index``'s face is within ``UPRIGHT_TOL`` of vertical, across the slots."""
        _, mat = self.plate_pose(index)
        return self._upright(mat)

    def plate_seated(self, index: int) -> bool:
        """Plate ``index`` stands between two tines, low enough to rest on the rails."""
        pos, _ = self.plate_pose(index)
        return self._slot_of(index) >= 0 and pos[2] <= self.seated_height() + SEATED_MARGIN

    def plate_states(self) -> list[PlateState]:
        """Each plate's stage in its own pick -> turn -> insert sequence."""
        return [self._plate_state(i) for i in range(len(PLATES))]

    # ------------------------------------------------------------------ status
    def _upright(self, mat: np.ndarray) -> bool:
        # Face normal horizontal and across the slots (along y), within the tolerance.
        return bool(abs(mat[1, 2]) >= np.cos(UPRIGHT_TOL))

    def _slot_of(self, index: int) -> int:
        """Slot whose tines plate ``index``'s mid-plane lies between (seated or not), or -1."""
        mid = self.plate_mid(index)
        rel = mid[:2] - self.data.xpos[self._rack, :2]
        if abs(rel[0]) > RACK_X_TOL:
            return -1
        k = int(np.argmin(np.abs(SLOT_Y - rel[1])))
        return k if abs(SLOT_Y[k] - rel[1]) <= SLOT_HALF_WIDTH else -1

    def _plate_state(self, index: int) -> PlateState:
        pos, mat = self.plate_pose(index)
        holder = self.plate_held_by(index)
        upright = self._upright(mat)
        slot = self._slot_of(index)
        seated = self.plate_seated(index)
        clearance = self._rim_distance(index)
        if holder is None and upright and seated and clearance >= RELEASE_CLEARANCE:
            return PlateState(3, 1.0, slot)
        if upright and (holder is not None or slot >= 0):
            return PlateState(2, self._insert_progress(index, holder is not None, clearance), -1)
        lift = float(pos[2] - PLATE_REST_Z)
        if holder is not None and lift >= LIFT_HEIGHT:
            # Tilt of the face from lying flat, 0 (flat) .. 1 (vertical).
            tilt = float(np.arccos(np.clip(abs(mat[2, 2]), 0.0, 1.0)) / (np.pi / 2))
            return PlateState(1, tilt, -1)
        if holder is not None:
            lifted = float(np.clip(lift / LIFT_HEIGHT, 0.0, 1.0))
            return PlateState(0, REACH_SHARE + (1 - REACH_SHARE) * lifted, -1)
        return PlateState(0, REACH_SHARE * (1 - min(clearance / REACH_DIST, 1)), -1)

    def _plate_speed(self, index: int) -> float:
        return float(np.linalg.norm(self.data.cvel[self._plates[index], 3:]))

    def _rim_distance(self, index: int) -> float:
        """Distance from the nearest TCP to the nearest point of plate ``index``'s rim circle."""
        pos, mat = self.plate_pose(index)
        best = np.inf
        for arm in ARMS:
            rel = self.robot.tcp_pos(self.data, arm) - pos
            normal = mat[:, 2]
            along = float(rel @ normal)
            radial = float(np.linalg.norm(rel - along * normal))
            best = min(best, float(np.hypot(radial - PLATE_RADIUS, along - PLATE_RIM_HEIGHT / 2)))
        return best

    def free_slots(self, exclude: int) -> list[int]:
        """Slots not taken by a plate other than ``exclude``."""
        taken = {self._slot_of(i) for i in range(len(PLATES)) if i != exclude}
        return [k for k in range(N_SLOTS) if k not in taken]

    def _insert_progress(self, index: int, held: bool, clearance: float) -> float:
        """Carry over the free slots, lower onto the base, let go and withdraw (0..1)."""
        mid = self.plate_mid(index)
        slot_y = SLOT_Y[self.free_slots(index)] + self.data.xpos[self._rack, 1]
        # Distance to the segment through the free slots' centres: convex, so it only shrinks
        # along a straight carry towards any of them.
        dy = max(slot_y.min() - mid[1], 0.0, mid[1] - slot_y.max())
        carry = float(np.hypot(mid[0] - self.data.xpos[self._rack, 0], dy))
        pos, _ = self.plate_pose(index)
        height = float(pos[2] - self.seated_height())
        release = 0.0 if held else float(np.clip(clearance / RELEASE_CLEARANCE, 0.0, 1.0))
        return float(
            CARRY_SHARE * (1 - min(carry / CARRY_DIST, 1))
            + LOWER_SHARE * (1 - np.clip(height / DROP_HEIGHT, 0, 1))
            + (1 - CARRY_SHARE - LOWER_SHARE) * release * (1 - 1e-3)
        )

    def _evaluate(self) -> TaskStatus:
        states = self.plate_states()
        done = sum(s.stage == 3 for s in states)
        n_sub = 3
        if done == len(states):
            # Success also needs the plates at rest: one still rocking may yet fall out.
            settled = all(self._plate_speed(i) < SETTLED_SPEED for i in range(len(PLATES)))
            within = 1.0 if settled else 1.0 - 1e-3
            return TaskStatus(len(self.stages) - 1, within, settled, self._metrics(states))
        # The plate being worked on is the unfinished one furthest along its own sequence.
        open_states = [s for s in states if s.stage < 3]
        best = max(open_states, key=lambda s: (s.stage, s.within))
        return TaskStatus(n_sub * done + best.stage, best.within, False, self._metrics(states))

    def _metrics(self, states: list[PlateState]) -> dict[str, float]:
        out: dict[str, float] = {"plates_racked": float(sum(s.stage == 3 for s in states))}
        for i, plate in enumerate(PLATES):
            _, mat = self.plate_pose(i)
            out[f"{plate}_stage"] = float(states[i].stage)
            out[f"{plate}_tilt_deg"] = float(np.degrees(np.arccos(np.clip(abs(mat[2, 2]), 0, 1))))
        return out

    def _env_state(self) -> np.ndarray:
        parts: list[np.ndarray] = []
        for i in range(len(PLATES)):
            pos, mat = self.plate_pose(i)
            parts += [pos, mat_to_quat(mat), np.array([float(self.plate_held_by(i) is not None)])]
        parts.append(self.data.xpos[self._rack, :2])
        parts.append(np.array([float(s.stage == 3) for s in self.plate_states()]))
        return np.concatenate(parts)
