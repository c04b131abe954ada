"""``SARM2-SetDinnerTable-v0``: lay a plate, a fork, a knife and a cup at their places on a mat.

Scene: the tableware waits in a row on the near edge of the table (a random order of four
slots, left to right, with random headings), a placemat on the far side is printed with
coloured marks: a blue disc for the plate in the middle, a green fork outline on its left (+y),
a red knife outline on its right, an orange disc for the cup beyond the knife's tip. The plate is
the rimmed plate of :mod:`sarm2_gym.envs.tasks._pick_place`; fork and knife have chunky 1.4 cm
handles that the fingers pinch from above across their width; the cup is pinched across its body.

Stages: (pick_grab, place) x 4, counted: with ``n`` items at their marks and released the task
is at stage ``2n`` (pick the next item) or ``2n + 1`` (an item is held and lifted: place it).

Success: every item within its named position tolerance of its mark (fork and knife also within
``CUTLERY_YAW_TOL`` of pointing away from the robot; plate and cup upright), resting on the table,
released, and all at rest.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from sarm2_gym.envs.core.geometry import mat_to_quat, yaw_mat
from sarm2_gym.envs.core.scene import SceneBuilder
from sarm2_gym.envs.tasks._pick_place import (
    PLATE_RADIUS,
    PickPlaceEnv,
    pick_place_stages,
    plate_rim_distance,
    rimmed_plate_xml,
)

__all__ = ["ITEMS", "SetDinnerTableEnv"]

ITEMS: Final[tuple[str, ...]] = ("plate", "fork", "knife", "cup")
PLATE, FORK, KNIFE, CUP = range(4)
# ---- tableware (body origins at the bottom centre; cutlery origin under the handle's middle)
HANDLE_HALF: Final = np.array([0.05, 0.009, 0.007])  # fork/knife handle box half sizes
CUP_RADIUS: Final[float] = 0.032
CUP_HEIGHT: Final[float] = 0.09
# Height above an item's bottom where the fingers pinch it: the handle just above the table
# (fingertips then clear the table by 3 mm) and the cup a little below its brim.
CUTLERY_GRIP_Z: Final[float] = 0.012
CUP_GRIP_Z: Final[float] = 0.065
# ---- placemat and marks (offsets of each item's origin from the mat centre; headings)
MAT_HALF: Final = np.array([0.2, 0.25])
MAT_CENTER: Final = np.array([0.16, 0.0])  # nominal; randomised per episode
MAT_JITTER_LOW: Final = np.array([-0.02, -0.06])
MAT_JITTER_HIGH: Final = np.array([0.03, 0.06])
MARK_OFFSETS: Final[tuple[tuple[float, float], ...]] = (
    (0.0, 0.0),  # plate in the middle
    (-0.045, 0.16),  # fork on the left, tines away from the robot
    (-0.055, -0.16),  # knife on the right, blade away from the robot
    (0.15, -0.2),  # cup beyond the knife's tip
)
MARK_YAWS: Final[tuple[float | None, ...]] = (None, 0.0, 0.0, None)
# ---- starting row
ROW_X: Final[float] = -0.2
ROW_SLOTS_Y: Final[tuple[float, ...]] = (0.285, 0.095, -0.095, -0.285)
ROW_JITTER: Final = np.array([0.015, 0.015])
CUTLERY_START_YAW: Final[float] = 0.35  # cutlery starts within this of pointing away
# ---- named success thresholds
POS_TOL: Final[tuple[float, ...]] = (0.03, 0.025, 0.025, 0.025)  # per item, metres (xy)
CUTLERY_YAW_TOL: Final[float] = 0.2  # radians
UPRIGHT_COS: Final[float] = 0.95  # plate and cup: local z within ~18 deg of vertical
ON_TABLE_Z: Final[float] = 0.02  # item origin at most this high: on the table, not on another
CARRY_HEIGHT: Final[float] = CUP_HEIGHT + 0.025  # carried items clear the tallest tableware


def _cutlery_xml(name: str, handle_rgba: str, head: str) -> str:
    hx, hy, hz = HANDLE_HALF
    return f"""<body name="{name}" pos="0 0 0">
      <freejoint name="{name}"/>
      <geom name="{name}_handle" type="box" size="{hx} {hy} {hz}" pos="0 0 {hz}" mass="0.035"
            rgba="{handle_rgba}" friction="0.8 0.01 0.001"/>
      {head}
    </body>"""


FORK_HEAD: Final[str] = (
    '<geom name="fork_neck" type="box" size="0.02 0.005 0.0025" pos="0.07 0 0.0025" mass="0.005" '
    'rgba="0.78 0.78 0.8 1"/>'
    '<geom name="fork_head" type="box" size="0.022 0.013 0.002" pos="0.112 0 0.002" mass="0.01" '
    'rgba="0.78 0.78 0.8 1"/>'
    + "".join(
        f'<geom type="box" size="0.012 0.0018 0.0015" pos="0.146 {y} 0.0015" '
        f'rgba="0.78 0.78 0.8 1" contype="0" conaffinity="0" mass="0"/>'
        for y in (-0.0105, -0.0035, 0.0035, 0.0105)
    )
)
KNIFE_HEAD: Final[str] = (
    '<geom name="knife_blade" type="box" size="0.055 0.01 0.0015" pos="0.105 0.001 0.0015" '
    'mass="0.02" rgba="0.8 0.8 0.82 1"/>'
)


class SetDinnerTableEnv(PickPlaceEnv):
    """Set a place at the dinner table (see the module docstring).

    Observation, action and info follow :class:`~sarm2_gym.envs.core.task_env.TaskEnv`.
    ``env_state`` (``obs_mode="state"``, 38 values): per item (plate, fork, knife, cup; 4 x 9)
    position (3), quaternion (4), held (1), at its mark (1); then the mat centre xy (2).
    """

    name = "SetDinnerTable"
    instruction = "set dinner table"
    # Weights: share of an expert episode (placing carries the item across the table).
    stages = pick_place_stages(("first item", "second item", "third item", "fourth item"), 1.0, 1.4)
    item_names = ITEMS
    env_state_dim = 9 * len(ITEMS) + 2
    place_scale = 0.8

    # ------------------------------------------------------------------ scene
    def _build_scene(self, scene: SceneBuilder) -> None:
        mx, my = MAT_HALF
        (px, py), (fx, fy), (kx, ky), (cx, cy) = MARK_OFFSETS
        mark = 'contype="0" conaffinity="0" group="1"'
        scene.add_body(
            f"""<body name="mat" pos="{MAT_CENTER[0]} {MAT_CENTER[1]} 0">
              <geom type="box" size="{mx} {my} 0.0004" pos="0 0 0.0004" rgba="0.86 0.8 0.66 1"
                    {mark}/>
              <geom type="cylinder" size="{PLATE_RADIUS + 0.012} 0.0004" pos="{px} {py} 0.001"
                    rgba="0.25 0.45 0.85 1" {mark}/>
              <geom type="box" size="0.1 0.017 0.0004" pos="{fx + 0.047} {fy} 0.001"
                    rgba="0.2 0.65 0.3 1" {mark}/>
              <geom type="box" size="0.108 0.015 0.0004" pos="{kx + 0.055} {ky} 0.001"
                    rgba="0.8 0.25 0.25 1" {mark}/>
              <geom type="cylinder" size="{CUP_RADIUS + 0.01} 0.0004" pos="{cx} {cy} 0.001"
                    rgba="0.95 0.55 0.15 1" {mark}/>
            </body>"""
        )
        scene.add_body(rimmed_plate_xml("plate", "0.97 0.97 0.95 1", "0.85 0.85 0.82 1"))
        scene.add_body(_cutlery_xml("fork", "0.15 0.4 0.22 1", FORK_HEAD))
        scene.add_body(_cutlery_xml("knife", "0.5 0.15 0.15 1", KNIFE_HEAD))
        h = CUP_HEIGHT / 2
        # Rolling friction (condim 6): a cup set down slightly tilted would otherwise keep
        # circling on its bottom edge like a spun coin.
        scene.add_body(
            f"""<body name="cup" pos="0 0 0">
              <freejoint name="cup"/>
              <geom name="cup" type="cylinder" size="{CUP_RADIUS} {h}" pos="0 0 {h}" mass="0.15"
                    rgba="0.95 0.6 0.2 1" friction="0.8 0.01 0.002" condim="6"/>
              <geom type="cylinder" size="{CUP_RADIUS - 0.005} 0.0005" pos="0 0 {CUP_HEIGHT}"
                    rgba="0.35 0.2 0.1 1" contype="0" conaffinity="0" mass="0"/>
            </body>"""
        )

    def _configure(self) -> None:
        super()._configure()
        self._mat = self.body_id("mat")

    # ------------------------------------------------------------------ episode
    def _initialize_episode(self, rng: np.random.Generator, options: dict[str, Any]) -> None:
        self.model.body_pos[self._mat, :2] = MAT_CENTER + rng.uniform(
            MAT_JITTER_LOW, MAT_JITTER_HIGH
        )
        slots = rng.permutation(len(ITEMS))
        for k in range(len(ITEMS)):
            xy = np.array([ROW_X, ROW_SLOTS_Y[slots[k]]]) + rng.uniform(-ROW_JITTER, ROW_JITTER)
            if k in (FORK, KNIFE):
                yaw = rng.uniform(-CUTLERY_START_YAW, CUTLERY_START_YAW)
            else:
                yaw = rng.uniform(-np.pi, np.pi)
            self.set_free_body_pose(
                self.items[k], np.array([*xy, 0.0005]), mat_to_quat(yaw_mat(yaw))
            )

    # ------------------------------------------------------------------ geometry
    def mat_center(self) -> np.ndarray:
        """World xy of the placemat centre."""
        return self.data.xpos[self._mat, :2].copy()

    def mark(self, k: int) -> np.ndarray:
        """World xy of item ``k``'s mark (where its origin belongs)."""
        return self.mat_center() + np.asarray(MARK_OFFSETS[k])

    # ------------------------------------------------------------------ pick-place hooks
    def item_goal(self, k: int) -> np.ndarray:
        """The item's mark, on the table."""
        return np.array([*self.mark(k), 0.0])

    def item_goal_yaw(self, k: int) -> float | None:
        """Cutlery points away from the robot; plate and cup are round."""
        return MARK_YAWS[k]

    def item_at_goal(self, k: int) -> bool:
        """Within the item's position (and heading) tolerance, upright, on the table."""
        pos, mat = self.item_pos(k), self.item_mat(k)
        if np.linalg.norm(pos[:2] - self.mark(k)) > POS_TOL[k] or pos[2] > ON_TABLE_Z:
            return False
        goal_yaw = MARK_YAWS[k]
        if goal_yaw is not None:
            err = (self.item_yaw(k) - goal_yaw + np.pi) % (2 * np.pi) - np.pi
            return bool(abs(err) <= CUTLERY_YAW_TOL)
        return bool(mat[2, 2] >= UPRIGHT_COS)

    def item_carry_z(self, k: int) -> float:
        """All tableware is carried at one height above everything on the table."""
        return CARRY_HEIGHT

    def grasp_distance(self, k: int, tcp: np.ndarray) -> float:
        """Distance to where item ``k`` is pinched (rim, handle middle, cup body)."""
        pos, mat = self.item_pos(k), self.item_mat(k)
        if k == PLATE:
            return plate_rim_distance(pos, mat, tcp)
        grip = CUP_GRIP_Z if k == CUP else CUTLERY_GRIP_Z
        return float(np.linalg.norm(tcp - (pos + mat[:, 2] * grip)))

    def _env_state(self) -> np.ndarray:
        return np.concatenate([self.items_state(), self.mat_center()])
