"""Shared machinery of the garment-folding tasks (FoldShorts, FoldTShirt).

A folding task is a sequence of folds, each made by two hands carrying two corners over a fold
line, followed by pressing along the last crease. :class:`ClothFoldEnv` holds what every such
task needs besides its own fold rules: the cloth and its named keypoints, the switch that turns
self-collision on once the cloth leaves the table plane, the "cloth is let go and at rest"
counter that fold verdicts wait for, a footprint cache, the approach measure of the grasp
stages, and the press detector (a crease vertex is pressed when a gripper pushes on the cloth
with at least ``press_force`` newtons while the vertex lies within ``press_radius`` of its tool
point).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from typing import ClassVar

import mujoco
import numpy as np

from sarm2_gym.envs.core.cloth import (
    SHELL_PLUGIN_XML,
    Cloth,
    ClothMaterial,
    Footprint,
    GarmentMesh,
    flexcomp_xml,
    planar_pose,
    push_forces,
    wrinkle,
)
from sarm2_gym.envs.core.embodiment import ARMS
from sarm2_gym.envs.core.scene import SceneBuilder
from sarm2_gym.envs.core.task_env import TaskEnv

__all__ = ["ClothFoldEnv"]


class ClothFoldEnv(TaskEnv):
    """Base of the folding tasks: one garment, keypoints, rest detection and pressing.

    Subclasses set the class attributes below, build :attr:`kp` and :attr:`crease` in
    :meth:`_configure_folds`, and implement ``_evaluate`` / ``_env_state``.
    """

    flex_name: ClassVar[str] = "garment"
    material: ClassVar[ClothMaterial]
    centre: ClassVar[tuple[float, float]] = (0.08, 0.0)  # nominal garment centre (m)
    centre_range: ClassVar[float] = 0.03  # +- uniform shift per axis (m)
    yaw_range: ClassVar[float] = 0.3  # +- uniform turn (rad)
    wrinkle_bumps: ClassVar[tuple[int, int]] = (2, 4)
    wrinkle_height: ClassVar[float] = 0.015  # m
    settled_speed: ClassVar[float] = 0.05  # m/s, fastest vertex of a cloth at rest
    rest_steps: ClassVar[int] = 3  # control steps let go and that slow before folds are judged
    press_force: ClassVar[float] = 0.25  # N, one hand pushing on the cloth
    press_radius: ClassVar[float] = 0.04  # m, crease vertices this close to the tool are pressed
    approach_ref: ClassVar[float] = 0.45  # m, gripper-to-corner distance counted as "far"
    footprint_cell: ClassVar[float] = 0.01  # m
    geometry_cache_motion: ClassVar[float] = 0.003  # m; recompute footprints beyond this motion

    mesh: GarmentMesh
    kp: dict[str, int]
    crease: np.ndarray

    # ------------------------------------------------------------------ hooks for subclasses
    @abstractmethod
    def _garment_mesh(self) -> GarmentMesh:
        """The flat garment."""

    @abstractmethod
    def _configure_folds(self) -> None:
        """Set :attr:`kp` (keypoint name -> vertex), :attr:`crease` and fold bookkeeping."""

    def _reset_folds(self) -> None:
        """Clear per-episode fold state (latches)."""

    @abstractmethod
    def _press_open(self) -> bool:
        """Whether pressing counts now (the last fold is made)."""

    # ------------------------------------------------------------------ scene and episode
    def _build_scene(self, scene: SceneBuilder) -> None:
        self.mesh = self._garment_mesh()
        scene.add_extension(SHELL_PLUGIN_XML)
        pos = (float(self.centre[0]), float(self.centre[1]), 0.0)
        scene.add_body(flexcomp_xml(self.flex_name, self.mesh, self.material, pos))

    def _configure(self) -> None:
        self.cloth = Cloth(self.model, self.flex_name)
        self.robot.register_cloth(self.flex_name)
        self._footprint = Footprint(self.mesh.triangles, self.footprint_cell)
        self._flat_area = self.mesh.area
        self._press_geoms: dict[int, str] = {
            int(g): a
            for a in ARMS
            for g in (
                *self.robot.finger_geoms(a),
                mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, f"{a}_palm"),
            )
        }
        self._configure_folds()
        self._reset_task_state()

    def _reset_task_state(self) -> None:
        self._rest = 0
        self._pressed = np.zeros(len(self.crease), dtype=bool)
        self._geo_pos: np.ndarray | None = None
        self._geo: dict[str, float] = {}
        self._reset_folds()

    def _initialize_episode(self, rng: np.random.Generator, options: dict[str, object]) -> None:
        self._reset_task_state()
        self.cloth.set_selfcollide("none")
        centre = np.asarray(self.centre) + rng.uniform(-self.centre_range, self.centre_range, 2)
        self.garment_yaw = float(rng.uniform(-self.yaw_range, self.yaw_range))
        flat = planar_pose(self.mesh, centre, self.garment_yaw, self.material.radius)
        bumps = int(rng.integers(self.wrinkle_bumps[0], self.wrinkle_bumps[1] + 1))
        self.cloth.set_positions(
            self.data, wrinkle(flat, rng, n_bumps=bumps, height=self.wrinkle_height)
        )

    def _after_step(self) -> None:
        if not self.cloth.selfcollide:
            # Layers can only stack once the cloth leaves the table plane: held, or any vertex
            # higher than a flat cloth ever is.
            held = any(self.robot.holding_cloth(a) for a in ARMS)
            top = self.cloth.positions(self.data)[:, 2].max()
            if held or top > 2.5 * self.material.radius:
                self.cloth.set_selfcollide("bvh")
        if self._press_open():
            self._record_press()

    def _record_press(self) -> None:
        """Mark crease vertices under a gripper that pushes on the cloth hard enough."""
        push = push_forces(self.model, self.data, self.cloth.flex_id, self._press_geoms)
        pushing = [arm for arm, f in push.items() if f >= self.press_force]
        if not pushing:
            return
        crease_xy = self.cloth.positions(self.data)[self.crease, :2]
        for arm in pushing:
            tool = self.robot.tcp_pos(self.data, arm)[:2]
            self._pressed |= np.linalg.norm(crease_xy - tool, axis=1) <= self.press_radius

    # ------------------------------------------------------------------ readouts
    def keypoints(self) -> dict[str, np.ndarray]:
        """World positions of the named keypoints."""
        pos = self.cloth.positions(self.data)
        return {k: pos[i] for k, i in self.kp.items()}

    def stack_height(self) -> float:
        """Height of the highest cloth vertex (m)."""
        return float(self.cloth.positions(self.data)[:, 2].max())

    def unpressed_crease(self) -> np.ndarray:
        """Vertex indices of the crease not pressed yet."""
        return np.asarray(self.crease[~self._pressed])

    def press_coverage(self) -> float:
        """Fraction of crease vertices pressed since the last fold was made."""
        return float(self._pressed.mean())

    @abstractmethod
    def crease_reach(self, vertices: np.ndarray) -> np.ndarray:
        """Position of crease ``vertices`` along the crease (flat garment coordinates, m)."""

    @abstractmethod
    def garment_yaw_now(self) -> float:
        """Current direction of the garment's u axis on the table (rad)."""

    def cloth_held(self) -> tuple[bool, bool]:
        """Whether the left / right gripper holds cloth."""
        return bool(self.robot.holding_cloth("left")), bool(self.robot.holding_cloth("right"))

    # ------------------------------------------------------------------ helpers
    def _update_rest(self, pos_speed: float) -> bool:
        """Count control steps the cloth has been let go and slow; True once it rests."""
        at_rest = not any(self.cloth_held()) and pos_speed <= self.settled_speed
        self._rest = self._rest + 1 if at_rest else 0
        return self._rest >= self.rest_steps

    def _geometry(
        self, pos: np.ndarray, compute: Callable[[np.ndarray], dict[str, float]]
    ) -> dict[str, float]:
        """Footprint measures of the cloth, recomputed only once it has moved noticeably."""
        if (
            self._geo_pos is not None
            and np.max(np.abs(pos - self._geo_pos)) < self.geometry_cache_motion
        ):
            return self._geo
        self._geo = compute(pos)
        self._geo_pos = pos.copy()
        return self._geo

    def _approach(self, pos: np.ndarray, a: int, b: int) -> float:
        """How close the two tool points are to vertices ``a`` and ``b`` (either assignment)."""
        left, right = (self.robot.tcp_pos(self.data, arm) for arm in ARMS)
        d = min(
            np.linalg.norm(left - pos[a]) + np.linalg.norm(right - pos[b]),
            np.linalg.norm(left - pos[b]) + np.linalg.norm(right - pos[a]),
        )
        return float(np.clip(1.0 - d / (2.0 * self.approach_ref), 0.0, 1.0))
