"""``SARM2-CoilHeadphones-v0``: take the headphone cable's end and wind the cable around them.

Scene: a pair of headphones (a rigid body: a headband arching over two ear cups) stands on its
cups on the table; an elastic cable (a MuJoCo cable: capsule segments on ball joints with the
``mujoco.elasticity.cable`` bending/twisting model, see :mod:`sarm2_gym.envs.core.cable`) leaves
the bottom of one cup and lies curled on the table beside them, ending in a jack plug.

Winding is measured around the headband's vertical axis (through the headphones' centre): the
signed angle the cable's segment points sweep around it, summed along the cable from the cup to
the jack, counting only cable lying within :data:`WRAP_RADIUS` of the axis (against the cups and
band, not loose loops on the table).

Winding pulls on the cable's root, so the expert does what a person does: one hand (left)
holds the headphones by the top of the band while the other (right) winds; a light pair of
headphones left to itself is dragged along and tipped over by the cable.

Stages: pick_grab (jack grasped and raised) -> wrap (cable wound at least
:data:`MIN_WINDING` around the band) -> place (jack laid on the table and released, headphones
let go).

Success: winding >= :data:`MIN_WINDING` (one and a half turns), the jack released and lying on the
table, the headphones released and standing on their cups.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from sarm2_gym.envs.core.cable import (
    Cable,
    CableSpec,
    cable_bodies_xml,
    cable_plugin_xml,
    planar_points,
    winding_angle,
)
from sarm2_gym.envs.core.geometry import mat_to_quat, yaw_mat
from sarm2_gym.envs.core.scene import SceneBuilder
from sarm2_gym.envs.core.stages import Stage, TaskStatus, sequential_status
from sarm2_gym.envs.core.task_env import TaskEnv

__all__ = ["CoilHeadphonesEnv"]

ARMS: Final[tuple[str, str]] = ("left", "right")
# Headphones (body frame: origin on the table between the cups, cups along y).
# At rest the band's clamping force presses the cushions together: the cups touch at y = 0, so
# a cable drawn tight around them cannot slip between them.
CUP_HALF_T: Final[float] = 0.016
CUP_Y: Final[float] = CUP_HALF_T + 0.001
CUP_RADIUS: Final[float] = 0.034
FOOT_H: Final[float] = 0.004
CUP_BASE_HALF_X: Final[float] = 0.031
CUP_Z: Final[float] = FOOT_H + CUP_RADIUS
BAND_RADIUS: Final[float] = 0.007  # thickness of the band
BAND_ARC: Final[float] = 0.046  # radius of the band's arc over the cups
BAND_SEGMENTS: Final[int] = 8
HEADPHONES_MASS: Final[float] = 0.22
# Cable.
CABLE: Final = CableSpec(
    "cord",
    n_segments=20,
    segment_length=0.048,
    radius=0.004,
    mass=0.03,
    bend=3e5,  # floppy enough to hug the cups, stiff enough not to kink
    twist=1e6,
    damping=0.0005,
    armature=1e-5,
    friction=0.35,  # a smooth rubber sleeve: slides over the table as it is drawn tight
    priority=1,
)
JACK_RADIUS: Final[float] = 0.0055
JACK_LENGTH: Final[float] = 0.024
CABLE_ROOT: Final = np.array([0.0, -(CUP_Y + CUP_HALF_T + 0.006), 0.0045])  # headphones frame
STRAIGHT_LEAD: Final[float] = 0.08  # the cable leaves the cup straight for this long
# Layout (world frame).
HEADPHONES_XY: Final = np.array([0.12, 0.02])
HEADPHONES_XY_RANGE: Final = np.array([0.03, 0.04])
HEADPHONES_YAW: Final[float] = 0.4
LAYOUT_CLEARANCE: Final[float] = 0.14  # initial cable (past its lead) this far from the axis
LAYOUT_CURVATURE: Final[tuple[float, float]] = (1.5, 6.0)  # rad/m of the curled cable
TIP_BOX: Final = (np.array([-0.30, -0.45]), np.array([0.35, 0.15]))  # where the jack may start
# Named thresholds.
WRAP_RADIUS: Final[float] = 0.09  # cable within this of the band's axis counts as wound
MIN_WINDING: Final[float] = 3 * np.pi  # one and a half turns around the band
# Wound this far, the grasp stage counts as done: a jack dropped later is a setback within the
# winding (re-grasp and go on), not a return to the start.
WRAP_STARTED: Final[float] = np.pi / 2
LIFT_HEIGHT: Final[float] = 0.015  # jack centre raised this high = picked (it rests at 0.0055)
REST_HEIGHT_TOL: Final[float] = 0.025  # jack centre this low = laid down (on the table or coil)
SETTLED_SPEED: Final[float] = 0.05  # m/s: cable segments slower than this are at rest
UPRIGHT_COS: Final[float] = 0.9  # headphones' up axis within ~25 deg of vertical = standing
BAND_TOP_Z: Final[float] = CUP_Z + BAND_ARC  # height of the band's centre line at its top


class CoilHeadphonesEnv(TaskEnv):
    """Wind the headphone cable around the headband (see the module docstring).

    Observation, action and info follow :class:`~sarm2_gym.envs.core.task_env.TaskEnv`.
    ``env_state`` (``obs_mode="state"``, 78 values): headphones position (3) and quaternion (4),
    jack held (1), headphones held (1), winding angle in turns (1), cable points xyz
    (21 x 3 = 63), jack position (3), jack resting on the table (1), jack distance from the
    axis (1).
    """

    name = "CoilHeadphones"
    instruction = "coil and wrap headphones"
    stages = (
        Stage("grasp the cable's jack", "pick_grab", 1.0),
        Stage("wind the cable around the headband", "wrap", 3.0),
        Stage("lay the jack down", "place", 0.5),
    )
    env_state_dim = 15 + 3 * (CABLE.n_segments + 1)

    # ------------------------------------------------------------------ scene
    def _build_scene(self, scene: SceneBuilder) -> None:
        scene.add_extension(cable_plugin_xml(CABLE))
        m_cup = HEADPHONES_MASS * 0.35
        m_band = HEADPHONES_MASS * 0.3 / BAND_SEGMENTS
        parts = []
        for s in (-1, 1):
            y = s * CUP_Y
            parts.append(
                f'<geom name="cup_{"lr"[s > 0]}" type="cylinder" size="{CUP_RADIUS} {CUP_HALF_T}" '
                f'pos="0 {y} {CUP_Z}" zaxis="0 1 0" mass="{m_cup}" rgba="0.15 0.15 0.18 1"/>'
                f'<geom type="cylinder" size="{CUP_RADIUS * 0.75} 0.002" '
                f'pos="0 {y + s * (CUP_HALF_T - 0.0015)} {CUP_Z}" zaxis="0 1 0" mass="0.001" '
                f'rgba="0.55 0.1 0.12 1" contype="0" conaffinity="0"/>'
                f'<geom type="capsule" size="{BAND_RADIUS * 0.8}" '
                f'fromto="0 {y + s * CUP_HALF_T * 0.5} {CUP_Z + CUP_RADIUS * 0.35} '
                f"0 {s * BAND_ARC * np.cos(np.deg2rad(12)):.5f} "
                f'{CUP_Z + BAND_ARC * np.sin(np.deg2rad(12)):.5f}" mass="0.002" '
                f'rgba="0.25 0.25 0.3 1"/>'
                # Flat-bottomed lower half: nothing for the cable to slide under.
                f'<geom name="cup_base_{"lr"[s > 0]}" type="box" '
                f'size="{CUP_BASE_HALF_X} {CUP_HALF_T} {CUP_Z / 2}" pos="0 {y} {CUP_Z / 2}" '
                f'mass="0.001" rgba="0.15 0.15 0.18 1"/>'
            )
        angles = np.linspace(np.deg2rad(12), np.deg2rad(168), BAND_SEGMENTS + 1)
        arc = np.c_[-BAND_ARC * np.cos(angles), CUP_Z + BAND_ARC * np.sin(angles)]
        for k in range(BAND_SEGMENTS):
            (y0, z0), (y1, z1) = arc[k], arc[k + 1]
            parts.append(
                f'<geom name="band_{k}" type="capsule" size="{BAND_RADIUS}" '
                f'fromto="0 {y0:.5f} {z0:.5f} 0 {y1:.5f} {z1:.5f}" mass="{m_band}" '
                f'rgba="0.25 0.25 0.3 1"/>'
            )
        jack = (
            f'<geom name="jack" type="capsule" size="{JACK_RADIUS}" '
            f'fromto="{CABLE.segment_length} 0 0 {CABLE.segment_length + JACK_LENGTH} 0 0" '
            f'mass="0.004" rgba="0.75 0.75 0.78 1" friction="1.0 0.01 0.001"/>'
        )
        root = CABLE_ROOT
        scene.add_body(
            f"""<body name="headphones" pos="{HEADPHONES_XY[0]} {HEADPHONES_XY[1]} 0">
              <freejoint name="headphones"/>
              {"".join(parts)}
              {cable_bodies_xml(CABLE, pos=root, euler=(0.0, 0.0, -np.pi / 2), end_geoms=jack)}
            </body>"""
        )

    def _configure(self) -> None:
        self._headphones = self.body_id("headphones")
        self.cable = Cable(self.model, CABLE)
        self._jack_body = int(self.cable.bodies[-1])
        self.robot.register_graspable(["headphones", f"{CABLE.prefix}B_{CABLE.n_segments - 1}"])

    # ------------------------------------------------------------------ episode
    def _initialize_episode(self, rng: np.random.Generator, options: dict[str, Any]) -> None:
        xy = HEADPHONES_XY + rng.uniform(-HEADPHONES_XY_RANGE, HEADPHONES_XY_RANGE)
        yaw = float(rng.uniform(-HEADPHONES_YAW, HEADPHONES_YAW))
        rot = yaw_mat(yaw)
        self.set_free_body_pose(self._headphones, np.array([*xy, 0.0005]), mat_to_quat(rot))
        root_xy = xy + rot[:2, :2] @ CABLE_ROOT[:2]
        self.cable.set_planar_shape(
            self.data, self._sample_layout(rng, xy, root_xy, yaw - np.pi / 2)
        )

    def _sample_layout(
        self, rng: np.random.Generator, center: np.ndarray, root: np.ndarray, heading: float
    ) -> np.ndarray:
        """Joint turns of a random cable lying clear of the headphones with its jack reachable.

        The cable leaves its cup straight, then curls one way (two random curvatures of the
        same sign), so that seen from the headband's axis it sweeps steadily round: a cable
        looped back on itself would have to be pulled through its own loops to be wound.
        """
        n_turns = CABLE.n_segments - 1
        s = CABLE.segment_length * np.arange(1, n_turns + 1)
        lead = s <= STRAIGHT_LEAD
        far = np.arange(CABLE.n_segments + 1) * CABLE.segment_length > STRAIGHT_LEAD + 0.04
        for _ in range(1000):
            sign = rng.choice([-1.0, 1.0])
            k1, k2 = sign * rng.uniform(*LAYOUT_CURVATURE, 2)
            split = rng.uniform(0.3, 0.7) * CABLE.length
            turns = np.where(s < split, k1, k2) * CABLE.segment_length
            turns = np.where(lead, 0.0, turns + rng.normal(0.0, 0.03, n_turns))
            pts = planar_points(CABLE, root, heading, turns)
            rel = pts - center
            if np.min(np.linalg.norm(rel[far], axis=1)) < LAYOUT_CLEARANCE:
                continue
            if np.any(pts < [-0.45, -0.6]) or np.any(pts > [0.5, 0.6]):
                continue
            if np.any(pts[-1] < TIP_BOX[0]) or np.any(pts[-1] > TIP_BOX[1]):
                continue
            sweep = sign * np.diff(np.unwrap(np.arctan2(rel[:, 1], rel[:, 0])))
            if np.any(sweep[2:] < -0.02):  # doubles back round the axis
                continue
            gaps = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
            idx = np.arange(len(pts))
            if np.any(gaps[np.abs(idx[:, None] - idx[None]) >= 3] < 0.03):
                continue
            return np.asarray(turns)
        # Unreachable with these bounds in practice; a gentle arc is always valid.
        return np.where(lead, 0.0, 2.0 * CABLE.segment_length)

    # ------------------------------------------------------------------ readouts
    def axis_center(self) -> np.ndarray:
        """World xy of the headband's vertical axis."""
        return self.data.xpos[self._headphones, :2].copy()

    def headphones_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Headphones origin and rotation."""
        return self.data.xpos[self._headphones].copy(), self.data.xmat[self._headphones].reshape(
            3, 3
        ).copy()

    def cable_points(self) -> np.ndarray:
        """Cable points from the cup to the tip of the last segment, ``(n + 1, 3)``."""
        return self.cable.points(self.data)

    def jack_pos(self) -> np.ndarray:
        """World position of the jack's centre (where the expert grips)."""
        mat = self.data.xmat[self._jack_body].reshape(3, 3)
        return self.data.xpos[self._jack_body] + mat[:, 0] * (
            CABLE.segment_length + JACK_LENGTH / 2
        )

    def jack_axis(self) -> np.ndarray:
        """Unit direction of the jack (along the cable)."""
        return self.data.xmat[self._jack_body].reshape(3, 3)[:, 0].copy()

    def jack_held(self) -> bool:
        """Whether either gripper holds the jack."""
        return any(self.robot.holding(a) == self._jack_body for a in ARMS)

    def headphones_held(self) -> bool:
        """Whether either gripper holds the headphones."""
        return any(self.robot.holding(a) == self._headphones for a in ARMS)

    def band_top(self) -> np.ndarray:
        """World position of the top of the headband's centre line (where it is held)."""
        pos, mat = self.headphones_pose()
        return pos + mat @ np.array([0.0, 0.0, BAND_TOP_Z])

    def band_yaw(self) -> float:
        """Yaw of the band's span (the headphones' y axis) in the world."""
        _, mat = self.headphones_pose()
        return float(np.arctan2(mat[1, 1], mat[0, 1]))

    def headphones_upright(self) -> bool:
        """The headphones stand on their cups."""
        _, mat = self.headphones_pose()
        return bool(mat[2, 2] >= UPRIGHT_COS and self.data.xpos[self._headphones, 2] < 0.01)

    def winding(self) -> float:
        """Signed winding angle of the cable around the band's axis (radians, CCW positive)."""
        return winding_angle(self.cable_points(), self.axis_center(), WRAP_RADIUS)

    def jack_resting(self) -> bool:
        """The jack lies on the table or on the coil, and the cable has come to rest."""
        speed = np.linalg.norm(self.data.cvel[self.cable.bodies, 3:], axis=1).max()
        return bool(self.jack_pos()[2] <= REST_HEIGHT_TOL and speed < SETTLED_SPEED)

    # ------------------------------------------------------------------ status
    def _evaluate(self) -> TaskStatus:
        held = self.jack_held()
        hp_held = self.headphones_held()
        jack = self.jack_pos()
        wound = abs(self.winding())
        wrapped = wound >= MIN_WINDING
        picked = held and jack[2] >= LIFT_HEIGHT
        placed = (
            wrapped
            and not held
            and self.jack_resting()
            and not hp_held
            and self.headphones_upright()
        )

        def approach(target: np.ndarray) -> float:
            dist = min(
                float(np.linalg.norm(self.robot.tcp_pos(self.data, a) - target)) for a in ARMS
            )
            return 1 - float(np.clip(dist / 0.45, 0, 1))

        w_jack = (
            0.7 + 0.3 * float(np.clip(jack[2] / LIFT_HEIGHT, 0, 1))
            if held
            else 0.7 * approach(jack)
        )
        w_hp = 1.0 if hp_held else approach(self.band_top())
        w_pick = 0.75 * w_jack + 0.25 * w_hp
        w_wrap = float(np.clip(wound / MIN_WINDING, 0.0, 1.0))
        w_place = 0.5 * (1 - float(np.clip((jack[2] - 0.006) / 0.05, 0, 1)))
        w_place += (0.0 if held else 0.25) + (0.0 if hp_held else 0.25)
        return sequential_status(
            done=[picked or wound >= WRAP_STARTED, wrapped, placed],
            within=[w_pick, w_wrap, w_place],
            metrics={"winding_turns": wound / (2 * np.pi), "jack_height": float(jack[2])},
        )

    def _env_state(self) -> np.ndarray:
        pos, mat = self.headphones_pose()
        jack = self.jack_pos()
        return np.concatenate(
            [
                pos,
                mat_to_quat(mat),
                [float(self.jack_held()), float(self.headphones_held())],
                [self.winding() / (2 * np.pi)],
                self.cable_points().ravel(),
                jack,
                [float(self.jack_resting()), float(np.linalg.norm(jack[:2] - self.axis_center()))],
            ]
        )
