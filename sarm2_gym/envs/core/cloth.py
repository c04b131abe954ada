"""Cloth garments as MuJoCo ``flexcomp`` s: outline lattices, material, run-time access, measures.

A garment is drawn as a 2-D outline on a square lattice: cells outside the outline are dropped and
every kept cell becomes two triangles (:func:`lattice_garment`). The flat mesh lives in a garment
frame ``(u, v)`` centred on the outline's bounding box; :func:`flexcomp_xml` turns it into a
``flexcomp type="direct"`` whose vertices are independent bodies (3 slide joints each), with
length-preserving edges (equality constraints) and the shell bending model. The material defaults
are the ones that stayed stable on MuJoCo 3.3.0 with the CG solver (platform notes §4/§8): an
accurate solver (tolerance 1e-6, 100 iterations) is required once layers collide with each other.

At run time :class:`Cloth` reads and writes vertex positions, switches self-collision on and off,
and :func:`wrinkle` / :func:`planar_pose` randomise an episode's start. The measures at the end
(keypoint distances, footprint rasterisation and IoU, layer separation) are what fold tasks build
their stage and success rules from.

Example:
    >>> mask = np.ones((2, 3), dtype=bool)
    >>> mesh = lattice_garment(mask, spacing=0.1)
    >>> mesh.points.shape, mesh.triangles.shape
    ((12, 2), (12, 3))
    >>> round(mesh.area, 3)
    0.06
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import mujoco
import numpy as np

from sarm2_gym.envs.core.geometry import yaw_mat

__all__ = [
    "SHELL_PLUGIN_XML",
    "Cloth",
    "ClothMaterial",
    "Footprint",
    "GarmentMesh",
    "flexcomp_xml",
    "keypoint_errors",
    "lattice_garment",
    "layer_separation",
    "planar_pose",
    "push_forces",
    "wrinkle",
]

SHELL_PLUGIN_XML: Final[str] = '<plugin plugin="mujoco.elasticity.shell"/>'
"""The ``<extension>`` entry a scene needs for :func:`flexcomp_xml` (bending stiffness)."""

SELFCOLLIDE_MODES: Final[dict[str, int]] = {
    "none": int(mujoco.mjtFlexSelf.mjFLEXSELF_NONE),
    "narrow": int(mujoco.mjtFlexSelf.mjFLEXSELF_NARROW),
    "bvh": int(mujoco.mjtFlexSelf.mjFLEXSELF_BVH),
    "sap": int(mujoco.mjtFlexSelf.mjFLEXSELF_SAP),
    "auto": int(mujoco.mjtFlexSelf.mjFLEXSELF_AUTO),
}


# ---------------------------------------------------------------------------- flat mesh
@dataclass(frozen=True, slots=True)
class GarmentMesh:
    """A flat triangle mesh on a square lattice, in the garment frame (metres, centred).

    Args:
        points: ``(N, 2)`` vertex coordinates ``(u, v)``.
        triangles: ``(M, 3)`` vertex indices, counter-clockwise seen from +z.
        grid: ``(rows + 1, cols + 1)`` vertex index of every lattice node, -1 where dropped;
            ``grid[j, i]`` is the node in row ``j`` (along v) and column ``i`` (along u).
        spacing: Lattice pitch.
    """

    points: np.ndarray
    triangles: np.ndarray
    grid: np.ndarray
    spacing: float

    @property
    def n_vertices(self) -> int:
        """Number of vertices."""
        return len(self.points)

    @property
    def area(self) -> float:
        """Flat area of the garment (m^2)."""
        a, b, c = (self.points[self.triangles[:, k]] for k in range(3))
        cross = (b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0]
        return float(0.5 * np.abs(cross).sum())

    def node(self, col: int, row: int) -> int:
        """Vertex index of lattice node ``(col, row)`` (negative indices count from the end).

        Raises:
            ValueError: If the node was dropped with its cells.
        """
        idx = int(self.grid[row, col])
        if idx < 0:
            raise ValueError(f"lattice node (col={col}, row={row}) is not part of the garment")
        return idx

    def nearest(self, uv: np.ndarray) -> int:
        """Index of the vertex nearest to garment-frame point ``uv``."""
        return int(np.argmin(np.linalg.norm(self.points - np.asarray(uv), axis=1)))

    def mirror_pairs(self, axis: int, min_separation: float = 0.0, line: float = 0.0) -> np.ndarray:
        """Vertex pairs that a fold along ``u = line`` (axis 0) or ``v = line`` (axis 1) stacks.

        Only pairs with ``a`` below the line and flat distance >= ``min_separation`` are
        returned (vertices right at a fold line are not a stack).
        """
        flipped = self.points.copy()
        flipped[:, axis] = 2.0 * line - flipped[:, axis]
        pairs = []
        for a in np.flatnonzero(self.points[:, axis] < line - 1e-9):
            d = np.linalg.norm(self.points - flipped[a], axis=1)
            b = int(np.argmin(d))
            if d[b] < 1e-6 and abs(2.0 * (self.points[a, axis] - line)) >= min_separation:
                pairs.append((int(a), b))
        return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def lattice_garment(mask: np.ndarray, spacing: float) -> GarmentMesh:
    """Mesh of the lattice cells where ``mask`` is true.

    Args:
        mask: ``(rows, cols)`` booleans; row 0 is the lowest ``v``, column 0 the lowest ``u``.
        spacing: Cell side (metres).

    Cell diagonals point away from the mask's centre (a "union jack" pattern), so a mask that is
    mirror-symmetric gives a mirror-symmetric mesh: a fold along a middle row (column) of
    vertices puts every vertex onto a partner vertex and hinges on lattice edges that run along
    the fold line, so the folded layer can lie flat. (A fold through the middle of a row of cells
    cannot: a triangle only bends along its edges, so the crease cells stand up like a tent.)

    Raises:
        ValueError: If the mask is not 2-D or keeps no cell.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2 or not mask.any():
        raise ValueError("mask must be a 2-D boolean array with at least one true cell")
    rows, cols = mask.shape
    used = np.zeros((rows + 1, cols + 1), dtype=bool)
    for j, i in zip(*np.nonzero(mask), strict=True):
        used[j : j + 2, i : i + 2] = True
    grid = np.full(used.shape, -1, dtype=np.int64)
    grid[used] = np.arange(int(used.sum()))
    jj, ii = np.nonzero(used)
    centre = np.array([cols, rows]) * spacing / 2.0
    points = np.c_[ii * spacing, jj * spacing] - centre
    tris = []
    for j, i in zip(*np.nonzero(mask), strict=True):
        a, b, c, d = grid[j, i], grid[j, i + 1], grid[j + 1, i + 1], grid[j + 1, i]
        if (2 * i + 1 - cols) * (2 * j + 1 - rows) >= 0:  # diagonal a-c
            tris += [(a, b, c), (a, c, d)]
        else:  # diagonal b-d
            tris += [(a, b, d), (b, c, d)]
    return GarmentMesh(points, np.asarray(tris, dtype=np.int64), grid, float(spacing))


# ---------------------------------------------------------------------------- MJCF
@dataclass(frozen=True, slots=True, kw_only=True)
class ClothMaterial:
    """Physical and contact settings of a garment.

    Args:
        mass: Total mass (kg), spread evenly over the vertices.
        radius: Collision radius around vertices/triangles (m); layers rest about two radii apart.
        friction: Sliding friction with the table, the grippers and itself.
        condim: Contact dimensionality, at most 3 (sliding friction; see ``priority``).
        priority: Contact priority over geoms (which have 0). A higher priority makes the cloth's
            ``condim``, ``friction`` and ``solref`` govern its contacts with every geom, e.g. the
            grippers' fingers, whose ``condim`` 4 (torsional friction for rigid grasps) would
            otherwise win. MuJoCo 3.3.0 computes the rotational Jacobian of a contact with a
            flex element (``condim`` > 3) from uninitialised memory when the Jacobian is sparse
            (``mj_jacSum``, fixed upstream in 3.11): the torsional rows then hold stale numbers,
            at times NaN, and the step diverges (``mjWARN_BADQACC``). Torsion is meaningless
            on a cloth anyway: its vertices only slide.
        young: Young's modulus of the shell bending model (Pa).
        poisson: Poisson ratio of the shell model.
        thickness: Shell thickness (m); bending stiffness grows with its cube.
        edge_damping: Damping of the length-preserving edge constraints.
        solref: Contact solver reference (time constant, damping ratio).
        selfcollide: Initial self-collision mode (``none``, ``narrow``, ``bvh``, ``sap``, ``auto``).
        rgba: Colour.
    """

    mass: float = 0.08
    radius: float = 0.004
    friction: float = 0.8
    condim: int = 3
    priority: int = 1
    young: float = 5e4
    poisson: float = 0.0
    thickness: float = 1e-3
    edge_damping: float = 0.002
    solref: tuple[float, float] = (0.02, 1.0)
    selfcollide: str = "bvh"
    rgba: tuple[float, float, float, float] = (0.2, 0.35, 0.65, 1.0)

    def __post_init__(self) -> None:
        if self.selfcollide not in SELFCOLLIDE_MODES:
            raise ValueError(
                f"selfcollide must be one of {list(SELFCOLLIDE_MODES)}, got {self.selfcollide!r}"
            )
        if self.mass <= 0 or self.radius <= 0:
            raise ValueError("mass and radius must be positive")
        if not 1 <= self.condim <= 3 or self.priority < 1:
            # See ``priority``: contacts with flex elements must stay at condim <= 3.
            raise ValueError("cloth needs condim in 1..3 and priority >= 1 (above every geom)")


def flexcomp_xml(
    name: str, mesh: GarmentMesh, material: ClothMaterial, pos: tuple[float, float, float]
) -> str:
    """A ``<flexcomp type="direct">`` worldbody fragment for ``mesh`` lying flat at ``pos``.

    The scene must also carry :data:`SHELL_PLUGIN_XML` in its ``<extension>``. Internal
    (adjacent-element) collisions are off: on a thin shell they only cost time.
    """
    z = material.radius
    point = " ".join(f"{u:.5f} {v:.5f} {z:.5f}" for u, v in mesh.points)
    element = " ".join(" ".join(str(int(k)) for k in tri) for tri in mesh.triangles)
    m = material
    rgba = " ".join(f"{c:g}" for c in m.rgba)
    return f"""
    <flexcomp name="{name}" type="direct" dim="2" pos="{pos[0]} {pos[1]} {pos[2]}"
              point="{point}" element="{element}" radius="{m.radius}" mass="{m.mass}"
              rgba="{rgba}">
      <contact condim="{m.condim}" priority="{m.priority}" friction="{m.friction}"
               selfcollide="{m.selfcollide}" internal="false"
               solref="{m.solref[0]} {m.solref[1]}"/>
      <edge equality="true" damping="{m.edge_damping}"/>
      <plugin plugin="mujoco.elasticity.shell">
        <config key="young" value="{m.young}"/>
        <config key="poisson" value="{m.poisson}"/>
        <config key="thickness" value="{m.thickness}"/>
      </plugin>
    </flexcomp>"""


# ---------------------------------------------------------------------------- run time
class Cloth:
    """Run-time access to one flex of a compiled model.

    Args:
        model: The compiled model.
        flex_name: Name given to the ``flexcomp``.

    Raises:
        ValueError: If there is no such flex.
    """

    def __init__(self, model: mujoco.MjModel, flex_name: str) -> None:
        idx = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_FLEX, flex_name)
        if idx < 0:
            raise ValueError(f"no flex named {flex_name!r}")
        self.model = model
        self.flex_id = int(idx)
        adr, num = int(model.flex_vertadr[idx]), int(model.flex_vertnum[idx])
        self.bodies = np.asarray(model.flex_vertbodyid[adr : adr + num], dtype=np.int64)
        jnt = model.body_jntadr[self.bodies]
        if np.any(model.body_jntnum[self.bodies] != 3):
            raise ValueError(f"flex {flex_name!r}: every vertex needs its own 3 slide joints")
        self._qadr = np.asarray(model.jnt_qposadr[jnt], dtype=np.int64)[:, None] + np.arange(3)
        self._vadr = np.asarray(model.jnt_dofadr[jnt], dtype=np.int64)[:, None] + np.arange(3)
        self.radius = float(model.flex_radius[idx])

    @property
    def n_vertices(self) -> int:
        """Number of vertices."""
        return len(self.bodies)

    def positions(self, data: mujoco.MjData) -> np.ndarray:
        """World positions of the vertices, ``(N, 3)`` (valid after a forward pass / step)."""
        return data.xpos[self.bodies].copy()

    def velocities(self, data: mujoco.MjData) -> np.ndarray:
        """Vertex velocities, ``(N, 3)``."""
        return data.qvel[self._vadr].copy()

    def set_positions(self, data: mujoco.MjData, points: np.ndarray) -> None:
        """Place the vertices at world ``points`` ``(N, 3)`` at rest (joints are world-aligned)."""
        data.qpos[self._qadr] = np.asarray(points) - self.model.body_pos[self.bodies]
        data.qvel[self._vadr] = 0.0

    def set_selfcollide(self, mode: str) -> None:
        """Switch self-collision (``none``, ``narrow``, ``bvh``, ``sap``, ``auto``) at run time."""
        self.model.flex_selfcollide[self.flex_id] = SELFCOLLIDE_MODES[mode]

    @property
    def selfcollide(self) -> bool:
        """Whether self-collision is on."""
        return bool(self.model.flex_selfcollide[self.flex_id] != SELFCOLLIDE_MODES["none"])


def planar_pose(mesh: GarmentMesh, centre: np.ndarray, yaw: float, z: float) -> np.ndarray:
    """World ``(N, 3)`` positions of the flat mesh turned by ``yaw`` and centred at ``centre``."""
    rot = yaw_mat(yaw)[:2, :2]
    xy = mesh.points @ rot.T + np.asarray(centre)[:2]
    return np.c_[xy, np.full(len(xy), z)]


def wrinkle(
    points: np.ndarray,
    rng: np.random.Generator,
    n_bumps: int = 3,
    height: float = 0.015,
    width: float = 0.05,
    jitter: float = 0.002,
) -> np.ndarray:
    """Mild wrinkles: smooth random bumps lifted out of plane plus a little in-plane jitter.

    Dropped from these heights the cloth settles with small folds and creases where the bumps
    were, because the length-preserving edges pull the lifted region in (a cheap crumple pass).

    Args:
        points: ``(N, 3)`` flat world positions.
        rng: Random generator.
        n_bumps: Number of bumps.
        height: Maximum bump height (m); each bump draws its own in ``[0.3, 1] * height``.
        width: Gaussian width of a bump (m).
        jitter: Std of the in-plane vertex jitter (m).
    """
    out = np.asarray(points, dtype=np.float64).copy()
    lo, hi = out[:, :2].min(axis=0), out[:, :2].max(axis=0)
    for _ in range(n_bumps):
        c = rng.uniform(lo, hi)
        h = rng.uniform(0.3, 1.0) * height
        out[:, 2] += h * np.exp(-np.sum((out[:, :2] - c) ** 2, axis=1) / (2.0 * width**2))
    out[:, :2] += rng.normal(0.0, jitter, (len(out), 2))
    return out


def push_forces(
    model: mujoco.MjModel, data: mujoco.MjData, flex_id: int, geom_owner: Mapping[int, str]
) -> dict[str, float]:
    """Total normal contact force each owner's geoms (e.g. a gripper's fingers) put on a flex.

    Args:
        model: The model.
        data: The data after a step (contacts and constraint forces current).
        flex_id: Id of the cloth flex.
        geom_owner: Geom id -> owner name (``"left"``, ``"right"``).
    """
    push = dict.fromkeys(geom_owner.values(), 0.0)
    con = data.contact
    if len(con) == 0:
        return push
    geoms, flexes = np.asarray(con.geom), np.asarray(con.flex)
    force = np.zeros(6)
    for i in np.flatnonzero((flexes == flex_id).any(axis=1)):
        owner = geom_owner.get(int(geoms[i].max()))  # the flex side of the pair reads -1
        if owner is not None:
            mujoco.mj_contactForce(model, data, int(i), force)
            push[owner] += float(force[0])
    return push


# ---------------------------------------------------------------------------- measures
def keypoint_errors(
    pos: np.ndarray, pairs: Mapping[str, tuple[int, int]], planar: bool = True
) -> dict[str, float]:
    """Distance between the two vertices of each named pair (xy only when ``planar``)."""
    dims = slice(0, 2) if planar else slice(0, 3)
    return {k: float(np.linalg.norm(pos[a, dims] - pos[b, dims])) for k, (a, b) in pairs.items()}


def layer_separation(pos: np.ndarray, pairs: np.ndarray, min_gap: float) -> float:
    """Fraction of stacked vertex pairs whose heights differ by at least ``min_gap``.

    Without self-collision a folded layer sinks into the one below (both end at table height);
    with it the layers rest about two radii apart. A valid fold keeps most pairs apart.
    """
    if len(pairs) == 0:
        return 0.0
    dz = np.abs(pos[pairs[:, 0], 2] - pos[pairs[:, 1], 2])
    return float(np.mean(dz >= min_gap))


class Footprint:
    """Rasterises a garment's triangles, seen from above, onto a world-aligned grid.

    Args:
        triangles: ``(M, 3)`` vertex indices of the garment.
        cell: Grid pitch (m).
    """

    def __init__(self, triangles: np.ndarray, cell: float = 0.01) -> None:
        self.triangles = np.asarray(triangles, dtype=np.int64)
        self.cell = float(cell)

    def grid(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cell centres ``(C, 2)`` of a grid covering ``xy`` (plus one cell of margin)."""
        lo = np.floor(xy.min(axis=0) / self.cell) * self.cell - self.cell
        hi = np.ceil(xy.max(axis=0) / self.cell) * self.cell + self.cell
        gx = np.arange(lo[0] + self.cell / 2, hi[0], self.cell)
        gy = np.arange(lo[1] + self.cell / 2, hi[1], self.cell)
        mx, my = np.meshgrid(gx, gy, indexing="ij")
        return np.c_[mx.ravel(), my.ravel()], lo

    def cover(
        self, xy: np.ndarray, centres: np.ndarray, subset: np.ndarray | None = None
    ) -> np.ndarray:
        """Which ``centres`` lie inside any triangle (of ``subset``, default all)."""
        tris = self.triangles if subset is None else self.triangles[subset]
        a, b, c = xy[tris[:, 0]], xy[tris[:, 1]], xy[tris[:, 2]]
        v0, v1 = b - a, c - a
        den = v0[:, 0] * v1[:, 1] - v0[:, 1] * v1[:, 0]
        ok = np.abs(den) > 1e-12  # skip triangles folded edge-on
        a, v0, v1, den = a[ok], v0[ok], v1[ok], den[ok]
        p = centres[:, None, :] - a[None]
        s = (p[..., 0] * v1[None, :, 1] - p[..., 1] * v1[None, :, 0]) / den
        t = (v0[None, :, 0] * p[..., 1] - v0[None, :, 1] * p[..., 0]) / den
        inside = (s >= 0) & (t >= 0) & (s + t <= 1)
        return np.asarray(inside.any(axis=1))

    def area(self, xy: np.ndarray) -> float:
        """Area covered by the garment seen from above (m^2)."""
        centres, _ = self.grid(xy)
        return float(self.cover(xy, centres).sum() * self.cell**2)

    def iou(self, xy: np.ndarray, subset: np.ndarray) -> tuple[float, float]:
        """IoU of the whole footprint with the footprint of the triangles in ``subset``.

        For a fold, ``subset`` is the part that stays on the table: a perfect fold covers
        nothing else, so the IoU is 1; whatever hangs over lowers it.

        Returns:
            ``(iou, area)``: the IoU and the whole footprint's area.
        """
        centres, _ = self.grid(xy)
        whole = self.cover(xy, centres)
        part = self.cover(xy, centres, subset)
        union = float((whole | part).sum())
        return (
            float((whole & part).sum()) / union if union else 0.0,
            float(whole.sum() * self.cell**2),
        )
