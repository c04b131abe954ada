"""Cables: a chain of capsule bodies on ball joints with MuJoCo's elastic cable model.

:func:`cable_bodies_xml` writes the same structure that ``<composite type="cable">`` expands to
in MuJoCo 3.3.0 (nested bodies along their local x axis, a ball joint between neighbours, one
``mujoco.elasticity.cable`` plugin instance for bending and twisting), but by hand, so that a
task can name the segments, give the free end extra geoms (a plug, a jack) and set the cable's
shape per episode. The first segment has no joint: it is fixed to the parent body the chain is
placed in (the cable's root, e.g. an ear cup). :class:`Cable` reads the compiled chain back:
segment positions, and a planar shape setter for randomised initial layouts.

Example:
    >>> spec = CableSpec("cord", n_segments=4, segment_length=0.05)
    >>> "cordB_3" in cable_bodies_xml(spec, pos=(0, 0, 0.01))
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

__all__ = [
    "Cable",
    "CableSpec",
    "cable_bodies_xml",
    "cable_plugin_xml",
    "planar_points",
    "winding_angle",
]

PLUGIN = "mujoco.elasticity.cable"


@dataclass(frozen=True, slots=True)
class CableSpec:
    """Geometry and material of a cable.

    Args:
        prefix: Name prefix; segment ``k`` is body ``<prefix>B_<k>``, joint ``<prefix>J_<k>``,
            geom ``<prefix>G_<k>``.
        n_segments: Number of rigid segments.
        segment_length: Length of one segment (m).
        radius: Capsule radius (m); also the cross-section the elastic model uses.
        mass: Total mass (kg).
        bend: Bending stiffness (Young's modulus, Pa) of the elastic model.
        twist: Twisting stiffness (shear modulus, Pa).
        damping: Ball-joint damping (N m s / rad); damps the explicit elastic forces.
        armature: Ball-joint armature (kg m^2). A light chain of short segments is badly
            conditioned for the constraint solver; a little armature (about the segments' own
            rotational inertia) cuts the solver's iterations several-fold.
        friction: Sliding friction of the segments.
        priority: Contact priority of the segments: above the other geom's, the cable's own
            friction applies (MuJoCo otherwise takes the larger of the two).
        rgba: Segment colour.
    """

    prefix: str
    n_segments: int
    segment_length: float
    radius: float = 0.004
    mass: float = 0.03
    bend: float = 1e6
    twist: float = 1e6
    damping: float = 0.001
    armature: float = 0.0
    friction: float = 0.8
    priority: int = 0
    rgba: str = "0.1 0.1 0.1 1"

    def __post_init__(self) -> None:
        if self.n_segments < 2:
            raise ValueError(f"a cable needs at least 2 segments, got {self.n_segments}")
        if not (self.segment_length > 2 * self.radius > 0):
            raise ValueError("segment_length must exceed the capsule diameter")

    @property
    def length(self) -> float:
        """Total length (m)."""
        return self.n_segments * self.segment_length

    @property
    def instance(self) -> str:
        """Name of the cable's elastic plugin instance."""
        return f"{self.prefix}_elastic"


def cable_plugin_xml(spec: CableSpec) -> str:
    """The ``<extension>`` child declaring the cable's elastic plugin instance."""
    return (
        f'<plugin plugin="{PLUGIN}"><instance name="{spec.instance}">'
        f'<config key="twist" value="{spec.twist}"/><config key="bend" value="{spec.bend}"/>'
        f'<config key="vmax" value="0"/></instance></plugin>'
    )


def cable_bodies_xml(
    spec: CableSpec,
    pos: tuple[float, float, float] | np.ndarray,
    euler: tuple[float, float, float] | np.ndarray = (0.0, 0.0, 0.0),
    end_geoms: str = "",
) -> str:
    """Nested segment bodies, to be placed inside the parent body the cable is fixed to.

    Args:
        spec: The cable.
        pos: Root position in the parent frame.
        euler: Root orientation (xyz Euler, radians) in the parent frame; the cable leaves the
            root along the resulting x axis.
        end_geoms: Extra MJCF geoms of the last segment, in its frame (it spans ``x`` from 0
            to ``segment_length``). They are written after the segment's capsule, which the
            elastic model reads as the cross-section.
    """
    seg, n, r = spec.segment_length, spec.n_segments, spec.radius
    m = spec.mass / n
    opened = []
    for k in range(n):
        where = (
            f'pos="{pos[0]} {pos[1]} {pos[2]}" euler="{euler[0]} {euler[1]} {euler[2]}"'
            if k == 0
            else f'pos="{seg} 0 0"'
        )
        joint = (
            ""
            if k == 0
            else f'<joint name="{spec.prefix}J_{k}" type="ball" damping="{spec.damping}" '
            f'armature="{spec.armature}" group="3"/>'
        )
        extra = end_geoms if k == n - 1 else ""
        opened.append(
            f'<body name="{spec.prefix}B_{k}" {where}>{joint}'
            f'<geom name="{spec.prefix}G_{k}" type="capsule" size="{r}" '
            f'fromto="0 0 0 {seg} 0 0" mass="{m}" rgba="{spec.rgba}" '
            f'friction="{spec.friction} 0.005 0.0001" priority="{spec.priority}" condim="3"/>'
            f'{extra}<plugin instance="{spec.instance}"/>'
        )
    return "".join(opened) + "</body>" * n


class Cable:
    """Run-time access to a compiled cable chain.

    Args:
        model: A model containing :func:`cable_bodies_xml` of ``spec``.
        spec: The cable.
    """

    def __init__(self, model: mujoco.MjModel, spec: CableSpec) -> None:
        self.spec = spec
        ids = [
            mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, f"{spec.prefix}B_{k}")
            for k in range(spec.n_segments)
        ]
        if min(ids) < 0:
            raise ValueError(f"model has no cable {spec.prefix!r} of {spec.n_segments} segments")
        self.bodies = np.asarray(ids, dtype=np.int64)
        joints = [
            mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, f"{spec.prefix}J_{k}")
            for k in range(1, spec.n_segments)
        ]
        self.joint_qadr = np.asarray([model.jnt_qposadr[j] for j in joints], dtype=np.int64)
        self.joint_dofadr = np.asarray([model.jnt_dofadr[j] for j in joints], dtype=np.int64)

    def points(self, data: mujoco.MjData) -> np.ndarray:
        """World positions of the segment joints plus the free tip, shape ``(n + 1, 3)``."""
        pos = data.xpos[self.bodies]
        tip_dir = data.xmat[self.bodies[-1]].reshape(3, 3)[:, 0]
        return np.vstack([pos, pos[-1] + tip_dir * self.spec.segment_length])

    def tip(self, data: mujoco.MjData) -> np.ndarray:
        """World position of the free end."""
        return self.points(data)[-1]

    def set_planar_shape(self, data: mujoco.MjData, turns: np.ndarray) -> None:
        """Bend the chain in its root's xy plane: joint ``k`` turns by ``turns[k]`` radians.

        Velocities of the chain are zeroed; call ``mj_forward`` afterwards.
        """
        turns = np.asarray(turns, dtype=np.float64)
        if turns.shape != (self.spec.n_segments - 1,):
            raise ValueError(f"need {self.spec.n_segments - 1} joint turns, got {turns.shape}")
        for qadr, dof, angle in zip(self.joint_qadr, self.joint_dofadr, turns, strict=True):
            data.qpos[qadr : qadr + 4] = [np.cos(angle / 2), 0.0, 0.0, np.sin(angle / 2)]
            data.qvel[dof : dof + 3] = 0.0


def planar_points(
    spec: CableSpec, root: np.ndarray, heading: float, turns: np.ndarray
) -> np.ndarray:
    """Points ``(n + 1, 2)`` of a planar chain with the given joint turns (to plan a layout)."""
    headings = heading + np.concatenate([[0.0], np.cumsum(turns)])
    steps = spec.segment_length * np.c_[np.cos(headings), np.sin(headings)]
    return np.vstack([root, root + np.cumsum(steps, axis=0)])


def winding_angle(points: np.ndarray, center: np.ndarray, radius: float) -> float:
    """Signed angle (radians) a polyline winds around a vertical axis, counting close parts only.

    The angle each consecutive pair of points subtends at ``center`` (in the xy plane) is
    summed over pairs with both points within ``radius`` of the axis, so a cable lying far
    from the axis adds nothing however it curls. Counter-clockwise is positive.

    Example:
        >>> t = np.linspace(0, 3 * np.pi, 50)
        >>> round(winding_angle(np.c_[np.cos(t), np.sin(t)], np.zeros(2), 2.0) / np.pi, 3)
        3.0
    """
    rel = np.asarray(points)[:, :2] - np.asarray(center)[:2]
    near = np.linalg.norm(rel, axis=1) <= radius
    ang = np.arctan2(rel[:, 1], rel[:, 0])
    step = (np.diff(ang) + np.pi) % (2 * np.pi) - np.pi
    return float(np.sum(step[near[1:] & near[:-1]]))
