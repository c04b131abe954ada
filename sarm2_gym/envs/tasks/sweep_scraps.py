"""``SARM2-SweepScraps-v0``: pick up a hand broom, sweep paper scraps into a zone, put it down.

Scene: a rigid hand broom (a bristle head and a handle) lies on its bristles in a marked parking
area to the robot's right; a dozen light paper scraps (thin boxes and discs, a few grams each, low
friction) are scattered on the table in front of the robot, and a marked target zone lies beyond
them. Scraps move only by contact: the broom's bristle block pushes them across the table.

Stages: pick_grab (broom grasped by its handle and raised or carried off its area) -> sweep (at
least :data:`SCRAPS_REQUIRED` of the :data:`N_SCRAPS` scraps inside the zone) -> place (broom
released, resting on its bristles in its area).

Success: :data:`SCRAPS_REQUIRED` scraps inside the zone, the broom not held and settled in its
area. Eleven of twelve rather than all twelve: a light scrap squeezed out sideways by the pile
in front of the bristles is what a person sweeping also leaves behind, and demanding the last
one would make the task depend on a single chaotic contact rather than on sweeping.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from sarm2_gym.envs.core.geometry import mat_to_quat, yaw_mat
from sarm2_gym.envs.core.scene import SceneBuilder
from sarm2_gym.envs.core.stages import Stage, TaskStatus, sequential_status
from sarm2_gym.envs.core.task_env import TaskEnv

__all__ = ["SweepScrapsEnv"]

ARMS: Final[tuple[str, str]] = ("left", "right")
# Broom geometry (body frame: origin under the bristle block's centre, on the table; the head's
# pushing face looks along +x, the handle points along -x).
BRISTLE_HALF: Final = np.array([0.024, 0.075, 0.009])
HEAD_HALF: Final = np.array([0.028, 0.079, 0.011])
HANDLE_RADIUS: Final[float] = 0.011
HANDLE_X: Final[tuple[float, float]] = (-0.03, -0.175)  # capsule end points along the body x
HANDLE_Z: Final[float] = 0.036
GRIP_X: Final[float] = -0.125  # where the expert grips the handle
# Masses: the head is heavy enough to keep the centre of mass above the bristles when lying.
HEAD_MASS: Final[float] = 0.12
BRISTLE_MASS: Final[float] = 0.05
HANDLE_MASS: Final[float] = 0.03
BROOM_FRICTION: Final[float] = 0.35
# Paper scraps: thin boxes and discs.
N_SCRAPS: Final[int] = 12
SCRAPS_REQUIRED: Final[int] = 11
SCRAP_THICKNESS: Final[float] = 0.004
SCRAP_BOX_HALF: Final[tuple[float, float]] = (0.014, 0.010)  # rectangular scraps (m)
SCRAP_DISC_RADIUS: Final[float] = 0.012  # every third scrap is a round one
SCRAP_MASS: Final[float] = 0.002  # kg, a small piece of card
SCRAP_FRICTION: Final[float] = 0.3
SCRAP_MIN_GAP: Final[float] = 0.036  # centre spacing of scattered scraps
# Layout (world frame; x away from the robot, y to its left).
ZONE_CENTER: Final = np.array([0.27, 0.0])
ZONE_HALF: Final = np.array([0.08, 0.12])
SCRAP_REGION_CENTER: Final = np.array([0.04, 0.0])
SCRAP_REGION_HALF: Final = np.array([0.07, 0.085])
AREA_CENTER: Final = np.array([-0.03, -0.33])
AREA_HALF: Final = np.array([0.13, 0.10])  # marked parking area (around the lying broom)
BROOM_YAW_RANGE: Final[float] = 0.25
# Named thresholds.
LIFT_HEIGHT: Final[float] = 0.02  # broom raised this far = picked
# Once this many scraps are in the zone the grasp stage counts as done: a broom dropped later is
# a setback within the sweep (re-grasp and go on), not a return to the start.
SWEEP_STARTED: Final[int] = 1
AREA_POS_TOL: Final[float] = 0.06  # broom centre within this of the area centre = in the area
AREA_YAW_TOL: Final[float] = 0.4  # and its handle within this of the area's direction (rad)
REST_HEIGHT_TOL: Final[float] = 0.01  # bristles within this of the table = resting
SETTLED_SPEED: Final[float] = 0.05  # m/s
BROOM_CENTER_X: Final[float] = -0.07  # body-frame x of the broom's footprint centre


class SweepScrapsEnv(TaskEnv):
    """Sweep paper scraps into a zone with a hand broom (see the module docstring).

    Observation, action and info follow :class:`~sarm2_gym.envs.core.task_env.TaskEnv`.
    ``env_state`` (``obs_mode="state"``, 37 values): broom position (3) and quaternion (4), broom
    held (1), zone centre xy (2), broom area centre xy (2), every scrap's xy (24), fraction of
    scraps inside the zone (1).
    """

    name = "SweepScraps"
    instruction = "sweep paper scraps WITH broom"
    stages = (
        Stage("grasp the broom", "pick_grab", 1.0),
        Stage("sweep the scraps into the zone", "sweep", 7.0),
        Stage("put the broom down in its area", "place", 1.6),
    )
    env_state_dim = 37

    # ------------------------------------------------------------------ scene
    def _build_scene(self, scene: SceneBuilder) -> None:
        zx, zy = ZONE_HALF
        scene.add_body(
            f"""<body name="zone" pos="{ZONE_CENTER[0]} {ZONE_CENTER[1]} 0">
              <geom name="zone" type="box" size="{zx} {zy} 0.0005" pos="0 0 0.0005"
                    rgba="0.3 0.7 0.35 0.55" contype="0" conaffinity="0"/>
            </body>"""
        )
        ax, ay = AREA_HALF
        strip = 0.006
        outline = "".join(
            f'<geom type="box" size="{sx} {sy} 0.0005" pos="{px} {py} 0.0006" '
            f'rgba="0.85 0.85 0.2 1" contype="0" conaffinity="0"/>'
            for px, py, sx, sy in (
                (0, ay, ax, strip),
                (0, -ay, ax, strip),
                (ax, 0, strip, ay),
                (-ax, 0, strip, ay),
            )
        )
        scene.add_body(
            f'<body name="broom_area" pos="{AREA_CENTER[0]} {AREA_CENTER[1]} 0">{outline}</body>'
        )

        bx, by, bz = BRISTLE_HALF
        hx, hy, hz = HEAD_HALF
        (x0, x1), r = HANDLE_X, HANDLE_RADIUS
        mu = BROOM_FRICTION  # priority 1: the broom's own low friction, not the table's
        scene.add_body(
            f"""<body name="broom" pos="{AREA_CENTER[0] - BROOM_CENTER_X} {AREA_CENTER[1]} 0">
              <freejoint name="broom"/>
              <geom name="broom_bristles" type="box" size="{bx} {by} {bz}" pos="0 0 {bz}"
                    mass="{BRISTLE_MASS}" rgba="0.85 0.72 0.45 1" friction="{mu} 0.005 0.0001"
                    priority="1"/>
              <geom name="broom_head" type="box" size="{hx} {hy} {hz}" pos="0 0 {2 * bz + hz}"
                    mass="{HEAD_MASS}" rgba="0.45 0.25 0.12 1" friction="{mu} 0.005 0.0001"
                    priority="1"/>
              <geom name="broom_handle" type="capsule" size="{r}"
                    fromto="{x0} 0 {HANDLE_Z} {x1} 0 {HANDLE_Z}" mass="{HANDLE_MASS}"
                    rgba="0.75 0.2 0.15 1" friction="1.0 0.01 0.001"/>
            </body>"""
        )
        for k in range(N_SCRAPS):
            half = SCRAP_THICKNESS / 2
            if k % 3 == 2:
                shape = f'type="cylinder" size="{SCRAP_DISC_RADIUS} {half}"'
            else:
                shape = f'type="box" size="{SCRAP_BOX_HALF[0]} {SCRAP_BOX_HALF[1]} {half}"'
            shade = 0.86 + 0.1 * ((k * 7) % 3) / 2
            scene.add_body(
                f"""<body name="scrap_{k}" pos="{0.02 * k} 0 {half}">
                  <freejoint name="scrap_{k}"/>
                  <geom name="scrap_{k}" {shape} mass="{SCRAP_MASS}"
                        rgba="{shade} {shade} {shade - 0.04} 1"
                        friction="{SCRAP_FRICTION} 0.005 0.0001" priority="1"/>
                </body>"""
            )

    def _configure(self) -> None:
        self._broom = self.body_id("broom")
        self._zone = self.body_id("zone")
        self._area = self.body_id("broom_area")
        self._scraps = np.array([self.body_id(f"scrap_{k}") for k in range(N_SCRAPS)])
        self._scrap_dist0 = np.ones(N_SCRAPS)
        self.robot.register_graspable(["broom"])

    # ------------------------------------------------------------------ episode
    def _initialize_episode(self, rng: np.random.Generator, options: dict[str, Any]) -> None:
        zone_xy = ZONE_CENTER + rng.uniform(-0.02, 0.02, 2)
        self.model.body_pos[self._zone, :2] = zone_xy
        area_xy = AREA_CENTER + rng.uniform(-0.025, 0.025, 2)
        rot = yaw_mat(float(rng.uniform(-BROOM_YAW_RANGE, BROOM_YAW_RANGE)))
        self.model.body_pos[self._area, :2] = area_xy
        self.model.body_quat[self._area] = mat_to_quat(rot)
        broom_xy = area_xy - (rot[:2, :2] @ np.array([BROOM_CENTER_X, 0.0]))
        self.set_free_body_pose(self._broom, np.array([*broom_xy, 0.0005]), mat_to_quat(rot))

        region_c = SCRAP_REGION_CENTER + rng.uniform(-0.02, 0.02, 2)
        placed: list[np.ndarray] = []
        while len(placed) < N_SCRAPS:
            xy = region_c + rng.uniform(-SCRAP_REGION_HALF, SCRAP_REGION_HALF)
            if all(np.linalg.norm(xy - p) >= SCRAP_MIN_GAP for p in placed):
                placed.append(xy)
        for body, xy in zip(self._scraps, placed, strict=True):
            quat = mat_to_quat(yaw_mat(float(rng.uniform(-np.pi, np.pi))))
            self.set_free_body_pose(int(body), np.array([*xy, SCRAP_THICKNESS / 2 + 0.0005]), quat)
        self._scrap_dist0 = np.maximum(self._zone_distance(np.array(placed), zone_xy), 0.02)

    # ------------------------------------------------------------------ readouts
    def broom_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Broom body origin (under the bristle centre, at their bottom face) and rotation."""
        return self.data.xpos[self._broom].copy(), self.data.xmat[self._broom].reshape(3, 3).copy()

    def broom_yaw(self) -> float:
        """Yaw of the broom's pushing direction (body +x) in the world."""
        mat = self.data.xmat[self._broom].reshape(3, 3)
        return float(np.arctan2(mat[1, 0], mat[0, 0]))

    def grip_point(self) -> np.ndarray:
        """World position of the handle point the expert grips."""
        pos, mat = self.broom_pose()
        return pos + mat @ np.array([GRIP_X, 0.0, HANDLE_Z])

    def broom_held(self) -> bool:
        """Whether either gripper holds the broom."""
        return any(self.robot.holding(a) == self._broom for a in ARMS)

    def scrap_xy(self) -> np.ndarray:
        """World xy of every scrap, shape ``(N_SCRAPS, 2)``."""
        return self.data.xpos[self._scraps, :2].copy()

    def zone_center(self) -> np.ndarray:
        """World xy of the target zone's centre."""
        return self.data.xpos[self._zone, :2].copy()

    def area_pose(self) -> tuple[np.ndarray, float]:
        """World xy of the broom area's centre and the yaw the broom should lie at."""
        mat = self.data.xmat[self._area].reshape(3, 3)
        return self.data.xpos[self._area, :2].copy(), float(np.arctan2(mat[1, 0], mat[0, 0]))

    def in_zone(self) -> np.ndarray:
        """Per scrap, whether its centre lies inside the zone (and on the table)."""
        rel = np.abs(self.scrap_xy() - self.zone_center())
        low = self.data.xpos[self._scraps, 2] < 0.03
        return np.all(rel <= ZONE_HALF, axis=1) & low

    def _zone_distance(self, xy: np.ndarray, zone_xy: np.ndarray) -> np.ndarray:
        gap = np.maximum(np.abs(xy - zone_xy) - ZONE_HALF, 0.0)
        return np.asarray(np.linalg.norm(gap, axis=1))

    def broom_center_xy(self) -> np.ndarray:
        """World xy of the middle of the broom's footprint."""
        pos, mat = self.broom_pose()
        return (pos + mat @ np.array([BROOM_CENTER_X, 0.0, 0.0]))[:2]

    def broom_in_area(self) -> bool:
        """Broom lying on its bristles inside its marked area, at rest."""
        pos, mat = self.broom_pose()
        area_xy, area_yaw = self.area_pose()
        close = np.linalg.norm(self.broom_center_xy() - area_xy) <= AREA_POS_TOL
        dyaw = abs((self.broom_yaw() - area_yaw + np.pi) % (2 * np.pi) - np.pi)
        upright = mat[2, 2] > 0.95
        low = pos[2] <= REST_HEIGHT_TOL
        speed = float(np.linalg.norm(self.data.cvel[self._broom, 3:]))
        return bool(close and dyaw <= AREA_YAW_TOL and upright and low and speed < SETTLED_SPEED)

    # ------------------------------------------------------------------ status
    def _evaluate(self) -> TaskStatus:
        pos, _ = self.broom_pose()
        held = self.broom_held()
        inside = self.in_zone()
        n_in = int(inside.sum())
        area_xy, _ = self.area_pose()
        area_dist = float(np.linalg.norm(self.broom_center_xy() - area_xy))
        picked = held and (pos[2] >= LIFT_HEIGHT or area_dist > AREA_POS_TOL)
        swept = n_in >= SCRAPS_REQUIRED
        placed = swept and not held and self.broom_in_area()

        tcp_dist = min(
            float(np.linalg.norm(self.robot.tcp_pos(self.data, a) - self.grip_point()))
            for a in ARMS
        )
        if held:
            w_pick = 0.7 + 0.3 * float(np.clip(pos[2] / LIFT_HEIGHT, 0, 1))
        else:
            w_pick = 0.7 * (1 - float(np.clip(tcp_dist / 0.4, 0, 1)))
        # Per scrap: 1 inside the zone, otherwise how much of its initial way to the zone is done.
        dist = self._zone_distance(self.scrap_xy(), self.zone_center())
        share = np.where(inside, 1.0, 0.9 * np.clip(1.0 - dist / self._scrap_dist0, 0.0, 1.0))
        w_sweep = float(np.clip(share.sum() / SCRAPS_REQUIRED, 0.0, 1.0))
        w_place = 0.85 * (1 - float(np.clip(area_dist / 0.45, 0, 1))) + (0.0 if held else 0.15)
        return sequential_status(
            done=[picked or n_in >= SWEEP_STARTED, swept, placed],
            within=[w_pick, w_sweep, w_place],
            metrics={"scraps_in_zone": float(n_in), "area_dist": area_dist},
        )

    def _env_state(self) -> np.ndarray:
        pos, mat = self.broom_pose()
        area_xy, _ = self.area_pose()
        return np.concatenate(
            [
                pos,
                mat_to_quat(mat),
                [float(self.broom_held())],
                self.zone_center(),
                area_xy,
                self.scrap_xy().ravel(),
                [self.in_zone().mean()],
            ]
        )
