"""``SARM2-PullPlug-v0``: grasp a plug seated in a wall socket, pull it out, lay it on the table.

Scene: a wall stands across the far end of the table with a socket plate on its face; a plug (a
free rigid body: housing, two prongs, a cable stub) is seated in the socket. A marked area on
the table near the robot is where the plug goes.

Holding force (why pulling needs force): the socket's spring contacts are modelled by an
invisible *socket slider* body on a slide joint along the socket axis with dry friction
(``frictionloss`` = :data:`HOLD_FORCE` newtons) over the prongs' insertion depth
:data:`INSERTION_DEPTH`; while the prongs are inside, the plug is welded to that slider (an
equality constraint), so the socket holds it against sideways loads and torques and it only moves
out along the axis, and only while the pull exceeds the contacts' friction. When the slider
reaches the end of its travel the prongs have left the contacts and the weld is switched off:
from then on the plug is an ordinary free body. A plug that has come out is never re-seated.
The friction constraint's impedance is set close to 1 so it behaves as Coulomb friction (no
creep under a pull below :data:`HOLD_FORCE`), and the weld's likewise, so a seated plug gives
less than 3 mm under 30 N sideways. Whether the plug is latched is the weld's ``eq_active`` flag,
part of MuJoCo's state.

Stages: pick_grab (plug grasped) -> pull (out of the socket: weld released and the plug at least
:data:`PULL_DISTANCE` from its seat) -> place (released, resting in the marked area).

Success: unplugged as above and the plug lying at rest inside the area, not held.
"""

from __future__ import annotations

from typing import Any, Final

import mujoco
import numpy as np

from sarm2_gym.envs.core.geometry import mat_to_quat, yaw_mat
from sarm2_gym.envs.core.scene import SceneBuilder
from sarm2_gym.envs.core.stages import Stage, TaskStatus, sequential_status
from sarm2_gym.envs.core.task_env import TaskEnv

__all__ = ["PullPlugEnv"]

ARMS: Final[tuple[str, str]] = ("left", "right")
# Plug (body frame: origin at the centre of the housing's front face, +x points into the socket).
HOUSING_HALF: Final = np.array([0.025, 0.017, 0.014])
PRONG_HALF: Final = np.array([0.009, 0.0015, 0.004])
PRONG_Y: Final[float] = 0.008
PLUG_MASS: Final[float] = 0.06
# Socket and wall (wall frame: origin at the socket plate's front face centre, -x faces the robot).
WALL_HALF: Final = np.array([0.012, 0.28, 0.16])
PLATE_HALF: Final = np.array([0.004, 0.04, 0.04])
SEAT_GAP: Final[float] = 0.0005  # housing front to plate when seated (no initial contact)
# Physics of the socket contacts.
HOLD_FORCE: Final[float] = 6.0  # N of dry friction on the prongs while they are inside
INSERTION_DEPTH: Final[float] = 0.018  # m the prongs travel before leaving the contacts
RELEASE_MARGIN: Final[float] = 0.001  # weld released this close to the end of travel
# Layout (world frame).
WALL_X: Final[tuple[float, float]] = (0.27, 0.31)
SOCKET_Y: Final[tuple[float, float]] = (-0.14, 0.06)
SOCKET_Z: Final[tuple[float, float]] = (0.075, 0.11)
WALL_YAW: Final[float] = 0.2
AREA_CENTER: Final = np.array([-0.02, -0.28])
AREA_HALF: Final = np.array([0.07, 0.06])
# Named thresholds.
PULL_DISTANCE: Final[float] = 0.05  # plug origin this far from its seat (and released) = out
# Prongs drawn this far out: the grasp stage counts as done (a plug let go half-way is a setback
# within the pull, not a return to the start).
PULL_STARTED: Final[float] = 0.002
REST_HEIGHT_TOL: Final[float] = 0.006  # housing bottom within this of the table = lying on it
SETTLED_SPEED: Final[float] = 0.05  # m/s


class PullPlugEnv(TaskEnv):
    """Pull a plug out of its socket and lay it down (see the module docstring).

    Observation, action and info follow :class:`~sarm2_gym.envs.core.task_env.TaskEnv`.
    ``env_state`` (``obs_mode="state"``, 20 values): plug position (3) and quaternion (4), plug
    held (1), socket seat position (3) and axis (3, into the wall), slider travel (1), latched
    (1), distance from the seat (1), area centre xy (2), plug resting in the area (1).
    """

    name = "PullPlug"
    instruction = "pull plug off the socket"
    stages = (
        Stage("grasp the plug", "pick_grab", 1.0),
        Stage("pull the plug out of the socket", "pull", 0.6),
        Stage("lay the plug down in its area", "place", 0.9),
    )
    env_state_dim = 20

    # ------------------------------------------------------------------ scene
    def _build_scene(self, scene: SceneBuilder) -> None:
        wx, wy, wz = WALL_HALF
        px, py, pz = PLATE_HALF
        hole = "".join(
            f'<geom type="box" size="0.0005 0.002 0.0055" pos="-0.0003 {s * PRONG_Y} 0" '
            f'rgba="0.1 0.1 0.1 1" contype="0" conaffinity="0"/>'
            for s in (-1, 1)
        )
        wall_x, socket_y, socket_z = np.mean(WALL_X), np.mean(SOCKET_Y), np.mean(SOCKET_Z)
        scene.add_body(
            f"""<body name="wall" pos="{wall_x} {socket_y} 0">
              <geom name="wall" type="box" size="{wx} {wy} {wz}" pos="{2 * px + wx} 0 {wz}"
                    rgba="0.82 0.84 0.86 1"/>
              <body name="socket" pos="0 0 {socket_z}">
                <geom name="socket_plate" type="box" size="{px} {py} {pz}" pos="{px} 0 0"
                      rgba="0.95 0.95 0.92 1"/>
                {hole}
                <body name="socket_slider" pos="{-SEAT_GAP} 0 0">
                  <joint name="socket_slide" type="slide" axis="-1 0 0"
                         range="0 {INSERTION_DEPTH}" frictionloss="{HOLD_FORCE}" damping="0.5"
                         solimpfriction="0.9999 0.9999 0.001" solreffriction="0.01 1"/>
                  <geom type="sphere" size="0.002" mass="0.01" contype="0" conaffinity="0"
                        rgba="0 0 0 0"/>
                </body>
              </body>
            </body>"""
        )
        hx, hy, hz = HOUSING_HALF
        qx, qy, qz = PRONG_HALF
        prongs = "".join(
            f'<geom name="prong_{i}" type="box" size="{qx} {qy} {qz}" '
            f'pos="{qx} {s * PRONG_Y} 0" rgba="0.8 0.7 0.3 1" contype="0" '
            f'conaffinity="0" mass="0.002"/>'
            for i, s in enumerate((-1, 1))
        )
        scene.add_body(
            f"""<body name="plug" pos="{wall_x - SEAT_GAP} {socket_y} {socket_z}">
              <freejoint name="plug"/>
              <geom name="plug_housing" type="box" size="{hx} {hy} {hz}" pos="{-hx} 0 0"
                    mass="{PLUG_MASS}" rgba="0.12 0.12 0.14 1" friction="1.0 0.01 0.001"/>
              <geom name="plug_grip" type="box" size="{hx * 0.5} {hy + 0.0008} {hz * 0.7}"
                    pos="{-hx} 0 0" rgba="0.3 0.3 0.33 1" contype="0" conaffinity="0"/>
              <geom name="plug_cable" type="capsule" size="0.005"
                    fromto="{-2 * hx} 0 0 {-2 * hx - 0.04} 0 0" mass="0.005"
                    rgba="0.12 0.12 0.14 1"/>
              {prongs}
            </body>"""
        )
        ax, ay = AREA_HALF
        strip = 0.005
        outline = "".join(
            f'<geom type="box" size="{sx} {sy} 0.0005" pos="{qx} {qy} 0.0006" '
            f'rgba="0.2 0.5 0.95 1" contype="0" conaffinity="0"/>'
            for qx, qy, sx, sy in (
                (0, ay, ax, strip),
                (0, -ay, ax, strip),
                (ax, 0, strip, ay),
                (-ax, 0, strip, ay),
            )
        )
        scene.add_body(
            f'<body name="plug_area" pos="{AREA_CENTER[0]} {AREA_CENTER[1]} 0">{outline}</body>'
        )
        # A stiff weld (impedance up to 0.999): a seated plug gives < 3 mm under 30 N sideways.
        scene.add_equality(
            '<weld name="plug_latch" body1="socket_slider" body2="plug" solref="0.01 1" '
            'solimp="0.99 0.999 0.001"/>'
        )

    def _configure(self) -> None:
        m = self.model
        self._wall = self.body_id("wall")
        self._socket = self.body_id("socket")
        self._slider = self.body_id("socket_slider")
        self._plug = self.body_id("plug")
        self._area = self.body_id("plug_area")
        self._latch = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_EQUALITY, "plug_latch")
        jnt = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "socket_slide")
        self._slide_qadr = int(m.jnt_qposadr[jnt])
        self.robot.register_graspable(["plug"])

    # ------------------------------------------------------------------ episode
    def _initialize_episode(self, rng: np.random.Generator, options: dict[str, Any]) -> None:
        seat = np.array([rng.uniform(*WALL_X), rng.uniform(*SOCKET_Y), rng.uniform(*SOCKET_Z)])
        rot = yaw_mat(float(rng.uniform(-WALL_YAW, WALL_YAW)))
        self.model.body_pos[self._wall] = [seat[0], seat[1], 0.0]
        self.model.body_quat[self._wall] = mat_to_quat(rot)
        self.model.body_pos[self._socket, 2] = seat[2]
        self.model.body_pos[self._area, :2] = AREA_CENTER + rng.uniform(-0.03, 0.03, 2)
        # Seated: the same pose relative to the slider as in the model, so the latch weld's
        # reference pose holds.
        self.set_free_body_pose(self._plug, seat - rot[:, 0] * SEAT_GAP, mat_to_quat(rot))

    def _after_step(self) -> None:
        # The prongs have left the socket contacts at the end of the slider's travel.
        if self.latched() and self.slider_travel() >= INSERTION_DEPTH - RELEASE_MARGIN:
            self.data.eq_active[self._latch] = 0

    # ------------------------------------------------------------------ readouts
    def latched(self) -> bool:
        """Whether the prongs are still inside the socket contacts."""
        return bool(self.data.eq_active[self._latch])

    def slider_travel(self) -> float:
        """How far the prongs have been drawn out of the contacts (m)."""
        return float(self.data.qpos[self._slide_qadr])

    def plug_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Plug origin (front face centre) and rotation."""
        return self.data.xpos[self._plug].copy(), self.data.xmat[self._plug].reshape(3, 3).copy()

    def seat(self) -> tuple[np.ndarray, np.ndarray]:
        """Where the seated plug's origin sits, and the socket axis (unit, into the wall)."""
        rot = self.data.xmat[self._socket].reshape(3, 3)
        return self.data.xpos[self._socket] - rot[:, 0] * SEAT_GAP, rot[:, 0].copy()

    def housing_center(self) -> np.ndarray:
        """World position of the housing's centre (where the expert grips)."""
        pos, mat = self.plug_pose()
        return pos + mat @ np.array([-HOUSING_HALF[0], 0.0, 0.0])

    def plug_held(self) -> bool:
        """Whether either gripper holds the plug."""
        return any(self.robot.holding(a) == self._plug for a in ARMS)

    def area_center(self) -> np.ndarray:
        """World xy of the marked area's centre."""
        return self.data.xpos[self._area, :2].copy()

    def seat_distance(self) -> float:
        """Distance of the plug origin from its seat (m)."""
        seat, _ = self.seat()
        pos, _ = self.plug_pose()
        return float(np.linalg.norm(pos - seat))

    def unplugged(self) -> bool:
        """Out of the socket contacts and at least :data:`PULL_DISTANCE` from the seat."""
        return not self.latched() and self.seat_distance() >= PULL_DISTANCE

    def plug_in_area(self) -> bool:
        """The plug lies on the table, at rest, its housing centre inside the marked area."""
        centre = self.housing_center()
        inside = bool(np.all(np.abs(centre[:2] - self.area_center()) <= AREA_HALF))
        low = centre[2] - HOUSING_HALF[2] <= REST_HEIGHT_TOL
        speed = float(np.linalg.norm(self.data.cvel[self._plug, 3:]))
        return inside and low and speed < SETTLED_SPEED

    # ------------------------------------------------------------------ status
    def _evaluate(self) -> TaskStatus:
        held = self.plug_held()
        out = self.unplugged()
        placed = out and not held and self.plug_in_area()
        tcp_dist = min(
            float(np.linalg.norm(self.robot.tcp_pos(self.data, a) - self.housing_center()))
            for a in ARMS
        )
        w_pick = 1.0 if held else 0.8 * (1 - float(np.clip(tcp_dist / 0.45, 0, 1)))
        # Pulling: travel through the contacts, then on to the named distance.
        w_pull = float(np.clip(self.seat_distance() / PULL_DISTANCE, 0.0, 1.0))
        area_dist = float(np.linalg.norm(self.housing_center()[:2] - self.area_center()))
        w_place = 0.85 * (1 - float(np.clip(area_dist / 0.45, 0, 1))) + (0.0 if held else 0.15)
        return sequential_status(
            done=[held or out or self.slider_travel() >= PULL_STARTED, out, placed],
            within=[w_pick, w_pull, w_place],
            metrics={
                "slider_travel": self.slider_travel(),
                "seat_distance": self.seat_distance(),
                "area_dist": area_dist,
            },
        )

    def _env_state(self) -> np.ndarray:
        pos, mat = self.plug_pose()
        seat, axis = self.seat()
        return np.concatenate(
            [
                pos,
                mat_to_quat(mat),
                [float(self.plug_held())],
                seat,
                axis,
                [self.slider_travel(), float(self.latched()), self.seat_distance()],
                self.area_center(),
                [float(self.plug_in_area())],
            ]
        )
