"""``SARM2-FoldShorts-v0``: fold a pair of shorts in half twice, then press along the fold.

Scene: a pair of shorts (a 0.32 m x 0.32 m cloth ``flexcomp`` on a 4 cm lattice: a waist band on
the far half and two legs on the near half with a crotch gap between them) lies on the table,
shifted, turned and mildly wrinkled at random. In the garment frame the waist is at +u (away from
the robot) and the garment's left leg at +v (the robot's left).

Stages and their goals, all judged from cloth vertex positions (thresholds are the module
constants):

0. pick_grab: both grippers hold the cloth and have lifted the left waist corner and the left
   leg's outer end to ``LIFT_HEIGHT``.
1. fold_flatten: the left half lies on the right half, let go: waist corners and both leg ends
   within ``FOLD1_KEYPOINT_TOL`` (xy) of their partners, the folded layer resting on the lower
   one (``LAYER_SEPARATED_FRACTION`` of stacked vertex pairs at least ``LAYER_MIN_GAP`` apart in
   height; without self-collision it would sink into it), and the footprint's IoU with the
   right half at least ``FOLD1_IOU``.
2. pick_grab: both grippers hold the stacked leg ends and have lifted them.
3. fold_flatten: the leg ends folded up onto the waist, let go: each leg end within
   ``FOLD2_KEYPOINT_TOL`` of its waist corner across the garment and along it, except that the
   outer layer, which wraps round the three others, may land up to ``FOLD2_OUTER_SHORT`` short;
   layers separated, footprint IoU with the right waist quarter at least ``FOLD2_IOU`` and the
   folded footprint at most ``FOLDED_AREA_RATIO`` of the flat area.
4. press: a required contact pass along the new crease. A crease vertex counts as pressed when
   a gripper pushes on the cloth with at least ``PRESS_FORCE`` (total normal contact force; a
   light touch stays below a third of it) while the vertex lies within ``PRESS_RADIUS`` of its
   tool point; done when ``PRESS_COVERAGE`` of the crease is pressed and the cloth rests again.
   Pressing squeezes the stack at the crease to about half its height while the hand is on it,
   but the layers spring back afterwards (MuJoCo cloth has no plasticity and the coarse crease
   keeps a small bulge), so a flatness measure after the press would not tell a pressed fold
   from an unpressed one; the press is judged on the contact pass, and ``stack_height`` is
   reported in the metrics.

Success: every stage done, the cloth let go and at rest (``REST_STEPS`` control steps with no
vertex faster than ``SETTLED_SPEED``). Folds are judged only on a resting cloth; the verdict is
kept while the stack is carried for the next fold, and with hysteresis (``UNDO_SLACK``) so the
slow settling of a fresh stack does not flip it. A cloth that comes to rest unfolded again (a
drop) sends the stage machine back.

Self-collision keeps folded layers on top of each other (platform notes §8) and costs most of
the physics time, so it is switched on the first time the cloth is grasped or lifted off the
table, before any layers can stack.
"""

from __future__ import annotations

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

__all__ = ["FoldShortsEnv", "shorts_mesh"]

# ---- garment
SPACING: Final[float] = 0.04  # lattice pitch (m)
CELLS: Final[int] = 8  # cells along each side: 0.32 m x 0.32 m; even, so both folds hinge on edges
GAP_CELLS: Final[int] = 2  # crotch gap width in cells (legs are 3 cells = 0.12 m wide)
MATERIAL: Final = ClothMaterial(
    mass=0.08,
    radius=0.004,
    friction=0.8,
    young=5e4,
    thickness=1e-3,
    selfcollide="none",
    rgba=(0.2, 0.34, 0.62, 1.0),
)
# ---- stage / success thresholds
LIFT_HEIGHT: Final[float] = 0.035  # grasped corners this high (z, m) = picked up
FOLD1_KEYPOINT_TOL: Final[float] = 0.03  # m, xy distance of each corner to its partner
FOLD2_KEYPOINT_TOL: Final[float] = 0.04  # m, leg end to its waist corner (either axis)
# The outer layer of the second fold wraps round three layers 2 radii apart, hinged on a 4 cm
# lattice, and settles 2-10 cm short of the waist band; it only has to lie well over the waist
# quarter (past 30 % of the way from the crease) and line up across the garment.
FOLD2_OUTER_SHORT: Final[float] = 0.7 * CELLS / 2 * SPACING
UNDO_SLACK: Final[float] = 1.5  # a made fold counts as undone only beyond 1.5x its tolerances
LEGS_UP_DIST: Final[float] = 0.5 * CELLS * SPACING  # leg ends nearer the waist than this: legs up
LAYER_MIN_GAP: Final[float] = MATERIAL.radius  # resting layers are ~2 radii apart
LAYER_SEPARATED_FRACTION: Final[float] = 0.75
FOLD1_IOU: Final[float] = 0.8  # footprint vs the right half
FOLD2_IOU: Final[float] = 0.7  # footprint vs the right waist quarter
FOLDED_AREA_RATIO: Final[float] = 0.4  # folded footprint / flat area (ideal 0.29)
PRESS_FORCE: Final[float] = ClothFoldEnv.press_force  # the cloth-fold defaults, named here
PRESS_RADIUS: Final[float] = ClothFoldEnv.press_radius
PRESS_COVERAGE: Final[float] = 0.8  # fraction of crease vertices that must be pressed
SETTLED_SPEED: Final[float] = ClothFoldEnv.settled_speed
REST_STEPS: Final[int] = ClothFoldEnv.rest_steps


def shorts_mesh() -> GarmentMesh:
    """The shorts outline: a full waist half (+u) and two legs (-u) split by the crotch gap."""
    mask = np.ones((CELLS, CELLS), dtype=bool)  # rows along v, columns along u
    lo = (CELLS - GAP_CELLS) // 2
    mask[lo : lo + GAP_CELLS, : CELLS // 2] = False  # the legs end where the crotch cell starts
    return lattice_garment(mask, SPACING)


class FoldShortsEnv(ClothFoldEnv):
    """Fold a pair of shorts (see the module docstring for stages and thresholds).

    Observation, action and info follow :class:`~sarm2_gym.envs.core.task_env.TaskEnv`.
    ``env_state`` (``obs_mode="state"``, 31 values): positions of the eight keypoints (24:
    waist left/right outer corners, waist left/right above the inner leg edges, leg left/right
    outer and inner ends, in :attr:`KEYPOINTS` order), cloth centroid (3), highest vertex z (1),
    whether the left / right gripper holds cloth (2), pressed fraction of the crease (1).
    """

    name = "FoldShorts"
    instruction = "folding shorts"
    # Weights ~ each stage's share of an expert episode (24/19/20/22/27 steps of ~115).
    stages = (
        Stage("grasp the left side", "pick_grab", 1.0),
        Stage("fold left half onto right half", "fold_flatten", 0.8),
        Stage("grasp the leg ends", "pick_grab", 0.85),
        Stage("fold leg ends up onto the waist", "fold_flatten", 0.9),
        Stage("press along the fold", "press", 1.1),
    )
    physics = PhysicsOptions(timestep=0.01, solver="CG", iterations=100, tolerance=1e-6)
    env_state_dim = 31
    settle_steps = 50
    flex_name = "shorts"
    material = MATERIAL

    KEYPOINTS: Final[tuple[str, ...]] = (
        "waist_left",
        "waist_right",
        "waist_left_inner",
        "waist_right_inner",
        "leg_left_outer",
        "leg_right_outer",
        "leg_left_inner",
        "leg_right_inner",
    )

    # ------------------------------------------------------------------ set-up
    def _garment_mesh(self) -> GarmentMesh:
        return shorts_mesh()

    def _configure_folds(self) -> None:
        mesh = self.mesh
        n, lo = CELLS, (CELLS - GAP_CELLS) // 2
        left_in, right_in = lo + GAP_CELLS, lo  # node rows of the legs' inner edges
        self.kp = {
            "waist_left": mesh.node(n, n),
            "waist_right": mesh.node(n, 0),
            "waist_left_inner": mesh.node(n, left_in),
            "waist_right_inner": mesh.node(n, right_in),
            "leg_left_outer": mesh.node(0, n),
            "leg_right_outer": mesh.node(0, 0),
            "leg_left_inner": mesh.node(0, left_in),
            "leg_right_inner": mesh.node(0, right_in),
        }
        kp = self.kp
        self.fold1_pairs = {
            "waist": (kp["waist_left"], kp["waist_right"]),
            "leg_outer": (kp["leg_left_outer"], kp["leg_right_outer"]),
            "leg_inner": (kp["leg_left_inner"], kp["leg_right_inner"]),
        }
        self.fold2_pairs = {
            "right_outer": (kp["leg_right_outer"], kp["waist_right"]),
            "right_inner": (kp["leg_right_inner"], kp["waist_right_inner"]),
            "left_outer": (kp["leg_left_outer"], kp["waist_left"]),
            "left_inner": (kp["leg_left_inner"], kp["waist_left_inner"]),
        }
        pts = mesh.points
        centroids = pts[mesh.triangles].mean(axis=1)
        self._right_half = np.flatnonzero(centroids[:, 1] < 0)
        self._right_waist = np.flatnonzero((centroids[:, 1] < 0) & (centroids[:, 0] > 0))
        self._stack1 = mesh.mirror_pairs(axis=1, min_separation=1.5 * SPACING)
        self._stack2 = mesh.mirror_pairs(axis=0, min_separation=1.5 * SPACING)
        self.crease = np.flatnonzero(np.abs(pts[:, 0]) < 0.5 * SPACING)  # the second fold's hinge
        self._crease_right = mesh.node(CELLS // 2, 0)  # where the second fold meets the right edge

    def _reset_folds(self) -> None:
        self._fold1 = False
        self._fold2 = False
        self._lifted1 = False
        self._lifted2 = False

    def _press_open(self) -> bool:
        return self._fold2

    # ------------------------------------------------------------------ measures
    def crease_reach(self, vertices: np.ndarray) -> np.ndarray:
        """Distance of crease ``vertices`` from the first fold's edge (+v lies on -v)."""
        return np.abs(self.mesh.points[vertices, 1])

    def garment_yaw_now(self) -> float:
        """Direction of the garment's u axis (legs -> waist), read off the right side's corners."""
        kp = self.keypoints()
        d = kp["waist_right"] - kp["leg_right_outer"]
        if np.linalg.norm(d[:2]) < 0.05:  # legs already folded onto the waist: use the v axis
            v = kp["waist_right"] - kp["waist_right_inner"]
            return float(np.arctan2(v[1], v[0]) + np.pi / 2)
        return float(np.arctan2(d[1], d[0]))

    def _fold_measures(self, pos: np.ndarray) -> dict[str, float]:
        xy = pos[:, :2]
        iou1, area = self._footprint.iou(xy, self._right_half)
        iou2, _ = self._footprint.iou(xy, self._right_waist)
        return {
            "iou_half": iou1,
            "iou_quarter": iou2,
            "area_ratio": area / self._flat_area,
            "layers1": layer_separation(pos, self._stack1, LAYER_MIN_GAP),
            "layers2": layer_separation(pos, self._stack2, LAYER_MIN_GAP),
        }

    def _fold1_ok(
        self, pos: np.ndarray, err1: dict[str, float], legs_up: bool, slack: float = 1.0
    ) -> bool:
        # Folding the stack again pulls the outer leg layer back (FOLD2_OUTER_SHORT), so once the
        # legs are folded up (or on their way) only the waist corners still have to meet.
        checked = ("waist",) if legs_up else tuple(err1)
        if max(err1[k] for k in checked) > FOLD1_KEYPOINT_TOL * slack:
            return False
        geo = self._geometry(pos, self._fold_measures)
        return geo["layers1"] >= LAYER_SEPARATED_FRACTION and geo["iou_half"] >= FOLD1_IOU

    def fold2_offsets(self, pos: np.ndarray) -> dict[str, np.ndarray]:
        """Leg end minus its waist partner, ``(du, dv)`` in the frame of the right waist quarter.

        The right waist quarter is the bottom layer of the finished stack and does not move, so
        its edge gives the garment's axes: ``u`` from the crease to the waist band, ``v`` across.
        """
        axis = pos[self.kp["waist_right"], :2] - pos[self._crease_right, :2]
        u = axis / max(float(np.linalg.norm(axis)), 1e-9)
        frame = np.array([u, [-u[1], u[0]]])
        return {k: frame @ (pos[a, :2] - pos[b, :2]) for k, (a, b) in self.fold2_pairs.items()}

    def _fold2_ok(self, pos: np.ndarray, slack: float = 1.0) -> bool:
        tol = FOLD2_KEYPOINT_TOL * slack
        for name, (du, dv) in self.fold2_offsets(pos).items():
            # The outer (right leg) layer wraps round three others and lands short (along -u).
            short = FOLD2_OUTER_SHORT if name.startswith("right") else tol
            if abs(dv) > tol or not -short <= du <= tol:
                return False
        geo = self._geometry(pos, self._fold_measures)
        return (
            geo["layers2"] >= LAYER_SEPARATED_FRACTION
            and geo["iou_quarter"] >= FOLD2_IOU
            and geo["area_ratio"] <= FOLDED_AREA_RATIO
        )

    # ------------------------------------------------------------------ status
    def _evaluate(self) -> TaskStatus:
        pos = self.cloth.positions(self.data)
        kp = self.kp
        held = self.cloth_held()
        both = all(held)
        err1 = keypoint_errors(pos, self.fold1_pairs)
        err2 = keypoint_errors(pos, self.fold2_pairs)

        speed = float(np.abs(self.cloth.velocities(self.data)).max())
        resting = self._update_rest(speed)
        if resting:
            # Folds are judged on a resting cloth; a cloth lying still is not "picked up".
            # Once the legs are up, the leg pairs of the first fold no longer line up.
            legs_up = float(np.mean(list(err2.values()))) < LEGS_UP_DIST
            # Hysteresis: a fold that was made is undone only well beyond its tolerances, so
            # the slow settling of a fresh stack does not flip the verdict back and forth.
            slack1 = UNDO_SLACK if self._fold1 else 1.0
            slack2 = UNDO_SLACK if self._fold2 else 1.0
            self._fold1 = self._fold1_ok(pos, err1, legs_up=legs_up, slack=slack1)
            self._fold2 = self._fold1 and self._fold2_ok(pos, slack=slack2)
            self._lifted1 = self._lifted2 = False
            if not self._fold2:
                self._pressed[:] = False
        elif both:
            corners1 = pos[[kp["waist_left"], kp["leg_left_outer"]], 2]
            ends2 = pos[[kp["leg_left_outer"], kp["leg_left_inner"]], 2]
            self._lifted1 = self._lifted1 or bool(np.all(corners1 >= LIFT_HEIGHT))
            self._lifted2 = self._fold1 and (self._lifted2 or bool(np.all(ends2 >= LIFT_HEIGHT)))
        elif any(held):  # one hand let go: whatever was carried has to be picked up again
            self._lifted1 = self._lifted2 = False
        # (let go, still falling or settling: the verdict waits until it rests)
        n_held = sum(held) / 2.0
        carry1 = 1.0 - np.mean([err1["waist"], err1["leg_outer"]]) / (CELLS * SPACING)
        carry2 = 1.0 - np.mean(list(err2.values())) / (CELLS * SPACING)
        coverage = self.press_coverage()
        pressed = self._fold2 and resting and coverage >= PRESS_COVERAGE
        within = [
            0.7 * self._approach(pos, kp["waist_left"], kp["leg_left_outer"]) + 0.3 * n_held,
            0.9 * float(np.clip(carry1, 0, 1)),
            0.7 * self._approach(pos, kp["leg_left_outer"], kp["leg_left_inner"]) + 0.3 * n_held,
            0.9 * float(np.clip(carry2, 0, 1)),
            min(coverage / PRESS_COVERAGE, 1.0),
        ]
        metrics = {
            **{f"fold1_{k}": v for k, v in err1.items()},
            **{f"fold2_{k}": v for k, v in err2.items()},
            "stack_height": float(pos[:, 2].max()),
            "press_coverage": coverage,
            "max_speed": speed,
            **self._geo,
        }
        return sequential_status(
            done=[
                self._lifted1 or self._fold1,
                self._fold1,
                self._lifted2 or self._fold2,
                self._fold2,
                pressed,
            ],
            within=within,
            metrics=metrics,
        )

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
