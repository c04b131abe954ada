"""``SARM2-CleanWhiteboard-v0``: pick up an eraser, wipe the marker strokes, put it back.

Scene: a whiteboard lying on the table carries a grid of ink cells drawn as random marker strokes;
an eraser rests in a tray to the robot's right. A cell is erased when the eraser's felt face is in
contact with the board and covers the cell centre. Stages: pick_grab (eraser grasped and lifted)
-> erase (every stroke wiped) -> place (eraser released inside its tray).

Success: no ink left and the eraser resting in the tray, not held.
"""

from __future__ import annotations

from typing import Any, Final

import mujoco
import numpy as np

from sarm2_gym.envs.core.geometry import mat_to_quat, yaw_mat
from sarm2_gym.envs.core.scene import SceneBuilder
from sarm2_gym.envs.core.stages import Stage, TaskStatus, sequential_status
from sarm2_gym.envs.core.task_env import TaskEnv

__all__ = ["CleanWhiteboardEnv"]

BOARD_HALF: Final = np.array([0.15, 0.21, 0.006])
BOARD_TOP: Final[float] = 2 * BOARD_HALF[2]
INK_GRID: Final[tuple[int, int]] = (10, 14)  # cells along board x and y
INK_CELL: Final[float] = 0.028  # cell pitch (metres)
ERASER_HALF: Final = np.array([0.05, 0.024, 0.018])
TRAY_INNER_HALF: Final = np.array([0.072, 0.042])
TRAY_WALL: Final[float] = 0.006
TRAY_HEIGHT: Final[float] = 0.022
TRAY_BASE: Final[float] = 0.004
TRAY_MEAN_XY: Final = np.array([-0.06, -0.31])  # the tray is placed anew within TRAY_RANGE
TRAY_RANGE: Final[float] = 0.03  # of this, in x and in y, every episode
# Named success / stage thresholds.
LIFT_HEIGHT: Final[float] = 0.03  # eraser raised this far above its tray rest = picked
ERASER_FLAT_COS: Final[float] = 0.9  # felt face within ~25 deg of the board to erase
IN_TRAY_MARGIN: Final[float] = 0.008  # slack (m) on "eraser lies inside the tray, on its base"
# How far the eraser's centre may lie from the tray's centre (x, y) and count as inside it.
IN_TRAY_SLACK_XY: Final = TRAY_INNER_HALF - ERASER_HALF[:2] + IN_TRAY_MARGIN
SETTLED_SPEED: Final[float] = 0.05  # m/s: an eraser moving slower than this is at rest
ERASE_APPROACH_SHARE: Final[float] = 0.15  # share of the erase stage spent bringing the felt to ink
APPROACH_SCALE: Final[float] = 0.3  # metres from the ink at which the approach share starts
STROKES: Final[tuple[int, int]] = (2, 3)
STROKE_RADIUS: Final[float] = 0.016  # ink half-width around the stroke centre line


class CleanWhiteboardEnv(TaskEnv):
    """Clean a whiteboard with an eraser (see the module docstring).

    Observation, action and info follow :class:`~sarm2_gym.envs.core.task_env.TaskEnv`.
    ``env_state`` (``obs_mode="state"``, 15 values): eraser position (3) and quaternion (4), board
    centre xy (2), tray centre xy (2), eraser held (1), ink fraction left (1), centroid of the
    remaining ink relative to the board centre (2).
    """

    name = "CleanWhiteboard"
    instruction = "clean whiteboard WITH whiteboard eraser"
    stages = (
        Stage("grasp the eraser", "pick_grab", 1.0),
        Stage("erase the strokes", "erase", 2.4),
        Stage("put the eraser in its tray", "place", 1.3),
    )
    env_state_dim = 15

    # ------------------------------------------------------------------ scene
    def _build_scene(self, scene: SceneBuilder) -> None:
        nx, ny = INK_GRID
        cells = []
        for i in range(nx):
            for j in range(ny):
                x, y = self._cell_local(i, j)
                cells.append(
                    f'<geom name="ink_{i}_{j}" type="box" size="{INK_CELL / 2 * 1.02} '
                    f'{INK_CELL / 2 * 1.02} 0.0006" pos="{x} {y} {BOARD_HALF[2] + 0.0006}" '
                    f'rgba="0.1 0.15 0.55 1" contype="0" conaffinity="0" group="1"/>'
                )
        bx, by, bz = BOARD_HALF
        scene.add_body(
            f"""<body name="board" pos="0.12 0 {bz}">
              <geom name="board" type="box" size="{bx} {by} {bz}" rgba="0.96 0.96 0.97 1"
                    friction="0.6 0.01 0.001"/>
              <geom type="box" size="{bx + 0.01} {by + 0.01} {bz * 0.9}" rgba="0.55 0.57 0.6 1"
                    contype="0" conaffinity="0" pos="0 0 -0.0006"/>
              {"".join(cells)}
            </body>"""
        )
        ix, iy = TRAY_INNER_HALF
        w, h = TRAY_WALL, TRAY_HEIGHT
        walls = [
            (0, iy + w, ix + 2 * w, w),
            (0, -(iy + w), ix + 2 * w, w),
            (ix + w, 0, w, iy),
            (-(ix + w), 0, w, iy),
        ]
        wall_xml = "".join(
            f'<geom type="box" size="{sx} {sy} {h / 2}" pos="{px} {py} {h / 2}" '
            f'rgba="0.2 0.45 0.3 1"/>'
            for px, py, sx, sy in walls
        )
        scene.add_body(
            f"""<body name="tray" pos="-0.05 -0.3 0">
              <geom name="tray_base" type="box" size="{ix + 2 * w} {iy + 2 * w} {TRAY_BASE / 2}"
                    pos="0 0 {TRAY_BASE / 2}" rgba="0.2 0.45 0.3 1"/>
              {wall_xml}
            </body>"""
        )
        ex, ey, ez = ERASER_HALF
        scene.add_body(
            f"""<body name="eraser" pos="-0.05 -0.3 {TRAY_BASE + ez}">
              <freejoint name="eraser"/>
              <geom name="eraser" type="box" size="{ex} {ey} {ez}" mass="0.08"
                    rgba="0.15 0.3 0.75 1" friction="1.0 0.01 0.001"/>
              <geom name="eraser_felt" type="box" size="{ex * 0.98} {ey * 0.98} 0.004"
                    pos="0 0 {-ez + 0.0035}" rgba="0.35 0.35 0.35 1" contype="0"
                    conaffinity="0"/>
            </body>"""
        )

    def _configure(self) -> None:
        m = self.model
        self._board = self.body_id("board")
        self._tray = self.body_id("tray")
        self._eraser = self.body_id("eraser")
        self._board_geom = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "board")
        self._eraser_geom = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "eraser")
        nx, ny = INK_GRID
        self._ink_geoms = np.array(
            [
                mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, f"ink_{i}_{j}")
                for i in range(nx)
                for j in range(ny)
            ]
        )
        self._ink_local = np.array([self._cell_local(i, j) for i in range(nx) for j in range(ny)])
        self._ink_rgba = m.geom_rgba[self._ink_geoms].copy()
        self._ink = np.zeros(len(self._ink_geoms), dtype=bool)
        self._ink0 = 1
        self._eraser_rest_z = TRAY_BASE + ERASER_HALF[2]
        self.robot.register_graspable(["eraser"])

    @staticmethod
    def _cell_local(i: int, j: int) -> tuple[float, float]:
        nx, ny = INK_GRID
        return ((i - (nx - 1) / 2) * INK_CELL, (j - (ny - 1) / 2) * INK_CELL)

    # ------------------------------------------------------------------ episode
    def _initialize_episode(self, rng: np.random.Generator, options: dict[str, Any]) -> None:
        board_xy = np.array([0.12, 0.0]) + rng.uniform(-0.03, 0.03, 2)
        self.model.body_pos[self._board, :2] = board_xy
        tray_xy = TRAY_MEAN_XY + rng.uniform(-TRAY_RANGE, TRAY_RANGE, 2)
        self.model.body_pos[self._tray, :2] = tray_xy
        yaw = rng.uniform(-0.15, 0.15)
        self.set_free_body_pose(
            self._eraser,
            np.array([*tray_xy, self._eraser_rest_z + 0.001]),
            mat_to_quat(yaw_mat(yaw)),
        )
        self._ink = self._draw_strokes(rng)
        self._ink0 = int(self._ink.sum())
        self._refresh_ink_colors()

    def _draw_strokes(self, rng: np.random.Generator) -> np.ndarray:
        """Rasterise 2-3 random quadratic Bezier strokes onto the ink grid."""
        ink = np.zeros(len(self._ink_local), dtype=bool)
        span = np.array([BOARD_HALF[0] - 0.04, BOARD_HALF[1] - 0.04])
        t = np.linspace(0.0, 1.0, 40)[:, None]
        for _ in range(int(rng.integers(STROKES[0], STROKES[1] + 1))):
            p0, p1, p2 = (rng.uniform(-span, span) for _ in range(3))
            curve = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
            d = np.linalg.norm(self._ink_local[:, None, :] - curve[None], axis=-1).min(axis=1)
            ink |= d <= STROKE_RADIUS
        if not ink.any():  # degenerate draw: ink the centre cell so the task is never empty
            ink[np.argmin(np.linalg.norm(self._ink_local, axis=1))] = True
        return ink

    def _refresh_ink_colors(self) -> None:
        rgba = self._ink_rgba.copy()
        rgba[~self._ink, 3] = 0.0
        self.model.geom_rgba[self._ink_geoms] = rgba

    def _after_step(self) -> None:
        if not self._eraser_wiping():
            return
        pos = self.data.xpos[self._eraser]
        mat = self.data.xmat[self._eraser].reshape(3, 3)
        board = self.data.xpos[self._board]
        cells = np.c_[self._ink_local + board[:2], np.full(len(self._ink_local), board[2])]
        local = (cells - pos) @ mat
        covered = (np.abs(local[:, 0]) <= ERASER_HALF[0]) & (np.abs(local[:, 1]) <= ERASER_HALF[1])
        if np.any(covered & self._ink):
            self._ink &= ~covered
            self._refresh_ink_colors()

    def _eraser_wiping(self) -> bool:
        """The eraser's face touches the board and lies roughly flat on it."""
        mat = self.data.xmat[self._eraser].reshape(3, 3)
        if mat[2, 2] < ERASER_FLAT_COS:
            return False
        for i in range(self.data.ncon):
            con = self.data.contact[i]
            if {con.geom1, con.geom2} == {self._eraser_geom, self._board_geom}:
                return True
        return False

    # ------------------------------------------------------------------ status
    def eraser_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Eraser centre position and rotation matrix."""
        return self.data.xpos[self._eraser].copy(), self.data.xmat[self._eraser].reshape(
            3, 3
        ).copy()

    def board_center(self) -> np.ndarray:
        """World position of the board's top-face centre."""
        return self.data.xpos[self._board] + np.array([0.0, 0.0, BOARD_HALF[2]])

    def tray_center(self) -> np.ndarray:
        """World position of the tray's base top-face centre."""
        return self.data.xpos[self._tray] + np.array([0.0, 0.0, TRAY_BASE])

    def remaining_ink(self) -> np.ndarray:
        """World xy of every ink cell still on the board."""
        return self._ink_local[self._ink] + self.data.xpos[self._board, :2]

    def eraser_held(self) -> bool:
        """Whether either gripper holds the eraser."""
        return any(self.robot.holding(a) == self._eraser for a in ("left", "right"))

    def eraser_speed(self) -> float:
        """The eraser's linear speed (m/s); below :data:`SETTLED_SPEED` it is at rest."""
        return float(np.linalg.norm(self.data.cvel[self._eraser, 3:]))

    def eraser_in_tray(self) -> bool:
        """Whether the eraser lies at rest inside the tray, on its base.

        A gripper may still hold it there: the place stage also wants it let go.
        """
        pos, _ = self.eraser_pose()
        rel = np.abs(pos[:2] - self.data.xpos[self._tray, :2])
        inside = bool(np.all(rel <= IN_TRAY_SLACK_XY))
        low = pos[2] <= self._eraser_rest_z + IN_TRAY_MARGIN
        return inside and low and self.eraser_speed() < SETTLED_SPEED

    def _evaluate(self) -> TaskStatus:
        pos, _ = self.eraser_pose()
        held = self.eraser_held()
        left = int(self._ink.sum())
        erased = 1.0 - left / max(self._ink0, 1)
        board_xy = self.data.xpos[self._board, :2]
        over_board = bool(np.all(np.abs(pos[:2] - board_xy) <= BOARD_HALF[:2]))
        lift = pos[2] - self._eraser_rest_z
        picked = held and (lift >= LIFT_HEIGHT or over_board)
        erase_done = left == 0
        placed = erase_done and not held and self.eraser_in_tray()

        tcp_dist = min(
            np.linalg.norm(self.robot.tcp_pos(self.data, a) - pos) for a in ("left", "right")
        )
        w_pick = (
            0.7 + 0.3 * np.clip(lift / LIFT_HEIGHT, 0, 1)
            if held
            else 0.7 * (1 - np.clip(tcp_dist / 0.35, 0, 1))
        )
        tray_dist = float(np.linalg.norm(pos[:2] - self.data.xpos[self._tray, :2]))
        w_place = 0.85 * (1 - np.clip(tray_dist / 0.4, 0, 1)) + (0.15 if not held else 0.0)
        # Carrying the eraser to the ink is part of erasing: a small share before wiping starts.
        approach = 1.0 - np.clip(self._distance_to_ink(pos) / APPROACH_SCALE, 0, 1)
        w_erase = ERASE_APPROACH_SHARE * (approach if erased == 0 else 1.0)
        w_erase += (1 - ERASE_APPROACH_SHARE) * erased
        return sequential_status(
            done=[picked or erase_done, erase_done, placed],
            within=[float(w_pick), float(w_erase), float(w_place)],
            metrics={"ink_left": float(left), "erased_fraction": erased, "tray_dist": tray_dist},
        )

    def _distance_to_ink(self, eraser_pos: np.ndarray) -> float:
        """Distance from the felt face to the nearest remaining ink cell (0 when none is left)."""
        ink = self.remaining_ink()
        if len(ink) == 0:
            return 0.0
        felt = eraser_pos - np.array([0.0, 0.0, ERASER_HALF[2]])
        cells = np.c_[ink, np.full(len(ink), BOARD_TOP)]
        return float(np.min(np.linalg.norm(cells - felt, axis=1)))

    def _env_state(self) -> np.ndarray:
        pos, mat = self.eraser_pose()
        board_xy = self.data.xpos[self._board, :2]
        remaining = self._ink_local[self._ink]
        centroid = remaining.mean(axis=0) if len(remaining) else np.zeros(2)
        return np.concatenate(
            [
                pos,
                mat_to_quat(mat),
                board_xy,
                self.data.xpos[self._tray, :2],
                [float(self.eraser_held()), self._ink.sum() / max(self._ink0, 1)],
                centroid,
            ]
        )


def eraser_yaw(mat: np.ndarray) -> float:
    """Yaw of the eraser's long axis in the world."""
    return float(np.arctan2(mat[1, 0], mat[0, 0]))
