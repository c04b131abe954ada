"""``SARM2-PlatesIntoBin-v0``: pick three plates off the table and put them into a bin.

Scene: three rimmed plates (see :mod:`sarm2_gym.envs.tasks._pick_place`: a thin base disc with
a 2.2 cm rim wall that the gripper pinches from above) lie in a row on the near side of the
table, one on the robot's left, one in the middle, one on its right; an open bin (static walls
around a patch of table) stands on the far side. Plates stack in the bin, each resting on the rim
of the one below.

Stages: (pick_grab, place) x 3, counted: with ``n`` plates in the bin the task is at stage ``2n``
(pick a plate) or ``2n + 1`` (a plate is held and lifted: put it in the bin).

Success: all three plates inside the bin (centre within ``BIN_INNER_HALF - PLATE_RADIUS +
IN_BIN_MARGIN`` of the bin centre, bottom below the bin's wall top), none held, all at rest.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from sarm2_gym.envs.core.geometry import mat_to_quat, yaw_mat
from sarm2_gym.envs.core.scene import SceneBuilder
from sarm2_gym.envs.tasks._pick_place import (
    PLATE_HEIGHT,
    PLATE_RADIUS,
    RIM_RADIUS,
    PickPlaceEnv,
    pick_place_stages,
    plate_rim_distance,
    rimmed_plate_xml,
)

__all__ = ["PlatesIntoBinEnv"]

N_PLATES: Final[int] = 3
PLATE_COLORS: Final[tuple[tuple[str, str], ...]] = (
    ("0.96 0.96 0.93 1", "0.86 0.86 0.82 1"),  # white
    ("0.72 0.84 0.95 1", "0.55 0.7 0.88 1"),  # light blue
    ("0.95 0.86 0.62 1", "0.88 0.74 0.42 1"),  # cream yellow
)
BIN_INNER_HALF: Final[float] = 0.15  # square bin, inner half side (m): room for open fingers
BIN_WALL: Final[float] = 0.008  # wall half thickness
BIN_HEIGHT: Final[float] = 0.09  # wall height
BIN_CENTER: Final = np.array([0.22, 0.0])  # nominal bin position (randomised per episode)
BIN_JITTER: Final = np.array([0.03, 0.05])
PLATE_ROW_X: Final[float] = -0.1  # plates start in a row along y at this x
PLATE_SLOTS_Y: Final[tuple[float, ...]] = (0.26, 0.0, -0.26)
PLATE_JITTER: Final = np.array([0.03, 0.02])
# Named success thresholds.
IN_BIN_MARGIN: Final[float] = 0.01  # slack (m) on "plate centre inside the bin"
CARRY_CLEARANCE: Final[float] = 0.03  # carried plate bottom this far above the bin wall top


class PlatesIntoBinEnv(PickPlaceEnv):
    """Put three plates into a bin (see the module docstring).

    Observation, action and info follow :class:`~sarm2_gym.envs.core.task_env.TaskEnv`.
    ``env_state`` (``obs_mode="state"``, 29 values): per plate (3 x 9) position (3), quaternion
    (4), held (1), in the bin (1); then the bin centre xy (2).
    """

    name = "PlatesIntoBin"
    instruction = "pick and place plates into bin"
    # Weights: share of an expert episode.
    stages = pick_place_stages(("first plate", "second plate", "third plate"), 1.0, 1.1)
    item_names = tuple(f"plate{i}" for i in range(N_PLATES))
    env_state_dim = 9 * N_PLATES + 2
    place_scale = 0.7

    # ------------------------------------------------------------------ scene
    def _build_scene(self, scene: SceneBuilder) -> None:
        h, w, half = BIN_HEIGHT, BIN_WALL, BIN_INNER_HALF
        # (x, y, half size x, half size y) of the four walls
        walls = [
            (0.0, half + w, half + 2 * w, w),
            (0.0, -(half + w), half + 2 * w, w),
            (half + w, 0.0, w, half),
            (-(half + w), 0.0, w, half),
        ]
        wall_xml = "".join(
            f'<geom type="box" size="{sx} {sy} {h / 2}" pos="{px} {py} {h / 2}" '
            f'rgba="0.3 0.38 0.5 1" friction="0.6 0.01 0.001"/>'
            for px, py, sx, sy in walls
        )
        # The bin stands open-bottomed on the table: plates rest on the table plane inside it.
        # Plane contacts give a flat disc several contact points (a disc on a box floor gets
        # one and rocks); the floor drawn here is paint only.
        scene.add_body(
            f"""<body name="bin" pos="{BIN_CENTER[0]} {BIN_CENTER[1]} 0">
              {wall_xml}
              <geom type="box" size="{half} {half} 0.0005" pos="0 0 0.0005"
                    rgba="0.22 0.28 0.38 1" contype="0" conaffinity="0"/>
            </body>"""
        )
        for i, (rgba, rim) in enumerate(PLATE_COLORS):
            scene.add_body(rimmed_plate_xml(f"plate{i}", rgba, rim))

    def _configure(self) -> None:
        super()._configure()
        self._bin = self.body_id("bin")

    # ------------------------------------------------------------------ episode
    def _initialize_episode(self, rng: np.random.Generator, options: dict[str, Any]) -> None:
        bin_xy = BIN_CENTER + rng.uniform(-BIN_JITTER, BIN_JITTER)
        self.model.body_pos[self._bin, :2] = bin_xy
        slots = rng.permutation(N_PLATES)
        for k in range(N_PLATES):
            xy = np.array([PLATE_ROW_X, PLATE_SLOTS_Y[slots[k]]]) + rng.uniform(
                -PLATE_JITTER, PLATE_JITTER
            )
            yaw = rng.uniform(-np.pi, np.pi)
            self.set_free_body_pose(
                self.items[k], np.array([*xy, 0.0005]), mat_to_quat(yaw_mat(yaw))
            )

    # ------------------------------------------------------------------ geometry
    def bin_center(self) -> np.ndarray:
        """World xy of the bin centre."""
        return self.data.xpos[self._bin, :2].copy()

    def plate_in_bin(self, k: int) -> bool:
        """Plate ``k`` lies inside the bin walls (held or not)."""
        pos = self.item_pos(k)
        off = np.abs(pos[:2] - self.bin_center())
        return bool(
            np.all(off <= BIN_INNER_HALF - PLATE_RADIUS + IN_BIN_MARGIN) and pos[2] < BIN_HEIGHT
        )

    def stack_top(self, exclude: int = -1) -> float:
        """Height a plate put into the bin now comes to rest on (table or the top plate)."""
        tops = [
            self.item_pos(j)[2] + PLATE_HEIGHT
            for j in range(N_PLATES)
            if j != exclude and self.item_holder(j) is None and self.plate_in_bin(j)
        ]
        return max(tops, default=0.0)

    def rim_point(self, k: int, angle: float) -> np.ndarray:
        """Top of plate ``k``'s rim wall in the world direction ``angle`` from its centre."""
        pos = self.item_pos(k)
        return pos + np.array(
            [RIM_RADIUS * np.cos(angle), RIM_RADIUS * np.sin(angle), PLATE_HEIGHT]
        )

    # ------------------------------------------------------------------ pick-place hooks
    def item_goal(self, k: int) -> np.ndarray:
        """Bin centre, on top of the plates already in it."""
        return np.array([*self.bin_center(), self.stack_top(exclude=k)])

    def item_at_goal(self, k: int) -> bool:
        """The plate lies inside the bin."""
        return self.plate_in_bin(k)

    def item_carry_z(self, k: int) -> float:
        """Carried plates clear the bin walls."""
        return BIN_HEIGHT + CARRY_CLEARANCE

    def grasp_distance(self, k: int, tcp: np.ndarray) -> float:
        """Distance to the nearest point of the rim wall's top edge."""
        return plate_rim_distance(self.item_pos(k), self.item_mat(k), tcp)

    def _env_state(self) -> np.ndarray:
        return np.concatenate([self.items_state(), self.bin_center()])
