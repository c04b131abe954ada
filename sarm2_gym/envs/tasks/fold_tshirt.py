"""``SARM2-FoldTShirt-v0``: fold both sleeves in, fold the bottom up, press along the fold.

Scene: a t-shirt (a cloth ``flexcomp`` of 79 vertices on a 4 cm lattice: a 0.32 m long, 0.24 m
wide body and two sleeves, 0.08 m long and 0.12 m wide, at the shoulders) lies flat on the
table, shifted, turned and mildly wrinkled at random. In the garment frame the hem is at -u (near
the robot), the shoulders at +u, the shirt's left side at +v (the robot's left). Every fold line
(both side seams, the middle of the body) runs along lattice edges, so each fold can lie flat.

Stages and their goals, all judged from cloth vertex positions (thresholds are the module
constants):

0. pick_grab: both grippers hold the left sleeve and have lifted both corners of its cuff.
1. fold_flatten: the left sleeve folded in over the body along the side seam, let go: both cuff
   corners within ``SLEEVE_KEYPOINT_TOL`` of their mirror points on the body, the sleeve resting
   on the body (``LAYER_SEPARATED_FRACTION`` of stacked vertex pairs at least ``LAYER_MIN_GAP``
   apart in height) and nothing sticking out: the footprint's IoU with the rest of the shirt at
   least ``SLEEVE_IOU`` (an unfolded sleeve gives 0.9, a folded one about 1).
2. pick_grab, 3. fold_flatten: the same for the right sleeve.
4. pick_grab: both grippers hold the hem corners and have lifted them.
5. fold_flatten: the bottom folded up onto the top, let go: both hem corners within
   ``HEM_KEYPOINT_TOL`` of the shoulders, layers separated, footprint IoU with the top half of the
   body at least ``BOTTOM_IOU`` and the folded footprint at most ``FOLDED_AREA_RATIO`` of the
   flat area.
6. press: a required contact pass along the last crease, as in ``SARM2-FoldShorts-v0``: a crease
   vertex counts as pressed when a gripper pushes on the cloth with at least ``PRESS_FORCE``
   while the vertex lies within ``PRESS_RADIUS`` of its tool point; done when
   ``PRESS_COVERAGE`` of the crease is pressed and the cloth rests again.

Success: every stage done, the cloth let go and at rest. Folds are judged only on a resting cloth
(with hysteresis, ``UNDO_SLACK``) and the verdict is kept while the next fold is carried; a
cloth that comes to rest unfolded again sends the stage machine back. Self-collision is switched
on the first time the cloth is grasped or lifted (see :mod:`sarm2_gym.envs.tasks._cloth_fold`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from sarm2_gym.envs.core.cloth import (
    ClothMaterial,
    GarmentMesh,
    keypoint_errors,
    lattice_garment,
    layer_separation,
)
from sarm2_gym.envs.core.scene import PhysicsOptions
from sarm2_gym.envs.core.stages import Stage, TaskStatus, sequential_status
from sarm2_gym.envs.tasks._cloth_fold import ClothFoldEnv

__all__ = ["FoldTShirtEnv", "tshirt_mesh"]

# ---- garment (lattice cells: columns along u from the hem, rows along v across the shirt)
SPACING: Final[float] = 0.04  # lattice pitch (m)
LENGTH_CELLS: Final[int] = 8  # body length 0.32 m; even, so the bottom fold hinges on edges
BODY_ROWS: Final[tuple[int, int]] = (2, 8)  # body rows [2, 8): 0.24 m wide
SLEEVE_COLS: Final[tuple[int, int]] = (5, 8)  # sleeves hang off the top 3 cells (0.12 m)
WIDTH_CELLS: Final[int] = 10  # body plus a 2-cell (0.08 m) sleeve on each side
MATERIAL: Final = ClothMaterial(
    mass=0.08,
    radius=0.004,
    friction=0.8,
    young=5e4,
    thickness=1e-3,
    selfcollide="none",
    rgba=(0.72, 0.2, 0.22, 1.0),
)
# ---- stage / success thresholds
LIFT_HEIGHT: Final[float] = 0.035  # grasped corners this high (z, m) = picked up
SLEEVE_KEYPOINT_TOL: Final[float] = 0.025  # m, cuff corner to its mirror point on the body
HEM_KEYPOINT_TOL: Final[float] = 0.03  # m, hem corner to its shoulder
UNDO_SLACK: Final[float] = 1.5  # a made fold counts as undone only beyond 1.5x its tolerances
LAYER_MIN_GAP: Final[float] = MATERIAL.radius  # resting layers are ~2 radii apart
LAYER_SEPARATED_FRACTION: Final[float] = 0.75
SLEEVE_IOU: Final[float] = 0.97  # footprint vs the shirt without the sleeve (unfolded: 0.9)
BOTTOM_IOU: Final[float] = 0.8  # footprint vs the top half of the body (before the fold: 0.5)
FOLDED_AREA_RATIO: Final[float] = 0.45  # folded footprint / flat area (ideal 0.4, sleeves in: 0.8)
PRESS_FORCE: Final[float] = ClothFoldEnv.press_force  # the cloth-fold defaults, named here
PRESS_RADIUS: Final[float] = ClothFoldEnv.press_radius
PRESS_COVERAGE: Final[float] = 0.8  # fraction of crease vertices that must be pressed
SETTLED_SPEED: Final[float] = ClothFoldEnv.settled_speed
REST_STEPS: Final[int] = ClothFoldEnv.rest_steps


def tshirt_mesh() -> GarmentMesh:
    """The t-shirt outline: the body and a sleeve on each side of its top three cells."""
    mask = np.zeros((WIDTH_CELLS, LENGTH_CELLS), dtype=bool)  # rows along v, columns along u
    mask[BODY_ROWS[0] : BODY_ROWS[1], :] = True
    mask[: BODY_ROWS[0], SLEEVE_COLS[0] : SLEEVE_COLS[1]] = True
    mask[BODY_ROWS[1] :, SLEEVE_COLS[0] : SLEEVE_COLS[1]] = True
    return lattice_garment(mask, SPACING)


@dataclass(frozen=True)
class _Fold:
    """One fold: keypoint pairs that must meet, stacked vertex pairs, footprint reference."""

    name: str
    pairs: dict[str, tuple[int, int]]  # carried keypoint name -> (its vertex, target vertex)
    flat: np.ndarray  # flat distance of each pair (m): how far the carry has to go
    tol: float
    stack: np.ndarray
    reference: np.ndarray  # triangles the folded footprint should coincide with
    iou: float


class FoldTShirtEnv(ClothFoldEnv):
    """Fold a t-shirt (see the module docstring for stages and thresholds).

    Observation, action and info follow :class:`~sarm2_gym.envs.core.task_env.TaskEnv`.
    ``env_state`` (``obs_mode="state"``, 31 values): positions of the eight keypoints (24: the
    four cuff corners, the two hem corners, the two shoulders, in :attr:`KEYPOINTS` order), cloth
    centroid (3), highest vertex z (1), whether the left / right gripper holds cloth (2), pressed
    fraction of the crease (1).
    """

    name = "FoldTShirt"
    instruction = "folding the t-shirt"
    # Weights ~ each stage's share of an expert episode (24/13/18/13/21/23/33 steps of ~145).
    stages = (
        Stage("grasp the left sleeve", "pick_grab", 1.0),
        Stage("fold the left sleeve in", "fold_flatten", 0.55),
        Stage("grasp the right sleeve", "pick_grab", 0.75),
        Stage("fold the right sleeve in", "fold_flatten", 0.55),
        Stage("grasp the hem", "pick_grab", 0.9),
        Stage("fold the bottom up", "fold_flatten", 0.95),
        Stage("press along the fold", "press", 1.35),
    )
    physics = PhysicsOptions(timestep=0.01, solver="CG", iterations=100, tolerance=1e-6)
    env_state_dim = 31
    settle_steps = 50
    flex_name = "tshirt"
    material = MATERIAL

    KEYPOINTS: Final[tuple[str, ...]] = (
        "cuff_left_top",
        "cuff_left_bottom",
        "cuff_right_top",
        "cuff_right_bottom",
        "hem_left",
        "hem_right",
        "shoulder_left",
        "shoulder_right",
    )
    # Keypoints each fold's two hands carry (left hand, right hand) and where they go.
    CARRY: Final[tuple[tuple[tuple[str, str], tuple[str, str]], ...]] = (
        (("cuff_left_top", "cuff_left_bottom"), ("body_left_top", "body_left_low")),
        (("cuff_right_top", "cuff_right_bottom"), ("body_right_top", "body_right_low")),
        (("hem_left", "hem_right"), ("shoulder_left", "shoulder_right")),
    )

    # ------------------------------------------------------------------ set-up
    def _garment_mesh(self) -> GarmentMesh:
        return tshirt_mesh()

    def _configure_folds(self) -> None:
        mesh = self.mesh
        top, low = LENGTH_CELLS, SLEEVE_COLS[0]
        b0, b1 = BODY_ROWS
        sleeve = b0  # sleeve width in rows
        self.kp = {
            "cuff_left_top": mesh.node(top, WIDTH_CELLS),
            "cuff_left_bottom": mesh.node(low, WIDTH_CELLS),
            "cuff_right_top": mesh.node(top, 0),
            "cuff_right_bottom": mesh.node(low, 0),
            "hem_left": mesh.node(0, b1),
            "hem_right": mesh.node(0, b0),
            "shoulder_left": mesh.node(top, b1),
            "shoulder_right": mesh.node(top, b0),
            "body_left_top": mesh.node(top, b1 - sleeve),
            "body_left_low": mesh.node(low, b1 - sleeve),
            "body_right_top": mesh.node(top, b0 + sleeve),
            "body_right_low": mesh.node(low, b0 + sleeve),
        }
        pts = mesh.points
        v_left, v_right = pts[self.kp["shoulder_left"], 1], pts[self.kp["shoulder_right"], 1]
        cent = pts[mesh.triangles].mean(axis=1)
        left_sleeve = cent[:, 1] > v_left
        right_sleeve = cent[:, 1] < v_right
        sep = 1.5 * SPACING
        folds = []
        for name, (moved, target), stack, ref, tol, iou in (
            (
                "sleeve_left",
                self.CARRY[0],
                mesh.mirror_pairs(axis=1, min_separation=sep, line=v_left),
                ~left_sleeve,
                SLEEVE_KEYPOINT_TOL,
                SLEEVE_IOU,
            ),
            (
                "sleeve_right",
                self.CARRY[1],
                mesh.mirror_pairs(axis=1, min_separation=sep, line=v_right),
                ~left_sleeve & ~right_sleeve,
                SLEEVE_KEYPOINT_TOL,
                SLEEVE_IOU,
            ),
            (
                "bottom",
                self.CARRY[2],
                mesh.mirror_pairs(axis=0, min_separation=sep),
                (cent[:, 0] > 0) & ~left_sleeve & ~right_sleeve,
                HEM_KEYPOINT_TOL,
                BOTTOM_IOU,
            ),
        ):
            pairs = {a: (self.kp[a], self.kp[b]) for a, b in zip(moved, target, strict=True)}
            flat = np.array([np.linalg.norm(pts[i] - pts[j]) for i, j in pairs.values()])
            folds.append(_Fold(name, pairs, flat, tol, stack, np.flatnonzero(ref), iou))
        self.folds = tuple(folds)
        self.crease = np.flatnonzero(np.abs(pts[:, 0]) < 0.5 * SPACING)  # the bottom fold's hinge

    def _reset_folds(self) -> None:
        self._made = [False] * len(self.folds)
        self._lifted = [False] * len(self.folds)

    def _press_open(self) -> bool:
        return self._made[-1]

    # ------------------------------------------------------------------ measures
    def crease_reach(self, vertices: np.ndarray) -> np.ndarray:
        """Position of crease ``vertices`` across the shirt (flat v coordinate)."""
        return np.asarray(self.mesh.points[vertices, 1])

    def garment_yaw_now(self) -> float:
        """Direction of the garment's u axis (hem -> shoulders), from the body's top edge.

        The shoulders stay where they are through all three folds (the sleeves fold onto the
        body beside them, the bottom folds up onto them), so the line from the right to the left
        shoulder gives the v axis.
        """
        kp = self.keypoints()
        v = kp["shoulder_left"] - kp["shoulder_right"]
        return float(np.arctan2(v[1], v[0]) - np.pi / 2)

    def _fold_measures(self, pos: np.ndarray) -> dict[str, float]:
        xy = pos[:, :2]
        fp = self._footprint
        centres, _ = fp.grid(xy)
        whole = fp.cover(xy, centres)  # rasterised once, shared by the three folds' IoUs
        out = {"area_ratio": float(whole.sum() * fp.cell**2) / self._flat_area}
        for fold in self.folds:
            part = fp.cover(xy, centres, fold.reference)
            union = max(int((whole | part).sum()), 1)
            out[f"{fold.name}_iou"] = float((whole & part).sum()) / union
            out[f"{fold.name}_layers"] = layer_separation(pos, fold.stack, LAYER_MIN_GAP)
        return out

    def _fold_ok(self, k: int, pos: np.ndarray, err: dict[str, float], slack: float) -> bool:
        fold = self.folds[k]
        if max(err.values()) > fold.tol * slack:
            return False
        geo = self._geometry(pos, self._fold_measures)
        ok = (
            geo[f"{fold.name}_layers"] >= LAYER_SEPARATED_FRACTION
            and geo[f"{fold.name}_iou"] >= fold.iou
        )
        if k == len(self.folds) - 1:
            ok = ok and geo["area_ratio"] <= FOLDED_AREA_RATIO
        return ok

    # ------------------------------------------------------------------ status
    def _evaluate(self) -> TaskStatus:
        pos = self.cloth.positions(self.data)
        held = self.cloth_held()
        errs = [keypoint_errors(pos, f.pairs) for f in self.folds]
        speed = float(np.abs(self.cloth.velocities(self.data)).max())
        resting = self._update_rest(speed)
        if resting:
            # Folds are judged on a resting cloth, with hysteresis (see the module docstring).
            made = True
            for k in range(len(self.folds)):
                slack = UNDO_SLACK if self._made[k] else 1.0
                made = made and self._fold_ok(k, pos, errs[k], slack)
                self._made[k] = made
            self._lifted = [False] * len(self.folds)
            if not self._made[-1]:
                self._pressed[:] = False
        elif all(held):
            for k, fold in enumerate(self.folds):
                corners = pos[[a for a, _ in fold.pairs.values()], 2]
                earlier = all(self._made[:k])
                up = self._lifted[k] or bool(np.all(corners >= LIFT_HEIGHT))
                self._lifted[k] = earlier and up
        elif any(held):  # one hand let go: whatever was carried has to be picked up again
            self._lifted = [False] * len(self.folds)

        done: list[bool] = []
        within: list[float] = []
        n_held = sum(held) / 2.0
        for k, fold in enumerate(self.folds):
            a, b = (self.kp[name] for name in self.CARRY[k][0])
            carry = 1.0 - float(np.mean(np.array(list(errs[k].values())) / fold.flat))
            done += [self._lifted[k] or self._made[k], self._made[k]]
            within += [
                0.7 * self._approach(pos, a, b) + 0.3 * n_held,
                0.9 * float(np.clip(carry, 0.0, 1.0)),
            ]
        coverage = self.press_coverage()
        done.append(self._made[-1] and resting and coverage >= PRESS_COVERAGE)
        within.append(min(coverage / PRESS_COVERAGE, 1.0))
        metrics = {
            **{
                f"{f.name}_{k}": v
                for f, e in zip(self.folds, errs, strict=True)
                for k, v in e.items()
            },
            "stack_height": float(pos[:, 2].max()),
            "press_coverage": coverage,
            "max_speed": speed,
            **self._geo,
        }
        return sequential_status(done=done, within=within, metrics=metrics)

    def _env_state(self) -> np.ndarray:
        pos = self.cloth.positions(self.data)
        kps = pos[[self.kp[k] for k in self.KEYPOINTS]].ravel()
        held = self.cloth_held()
        return np.concatenate(
            [
                kps,
                pos.mean(axis=0),
                [pos[:, 2].max()],
                np.asarray(held, dtype=float),
                [self.press_coverage()],
            ]
        )
