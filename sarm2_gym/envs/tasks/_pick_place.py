"""Shared base of the pick-and-place tasks: move a list of rigid items, one by one, to goals.

``SARM2-PlatesIntoBin-v0`` and ``SARM2-SetDinnerTable-v0`` both have the stage list
(pick_grab, place) x N. Their stage is counted, not tied to item identity: with ``n`` items at
their goals (and released), the task is in stage ``2n`` (pick the next item) or, while a pending
item is held and lifted, ``2n + 1`` (place it). So any order the robot chooses is progress, and an
item knocked off its goal, or set down short of it, sends the task back honestly.

Within-stage progress, from simulator state:

* pick: ``PICK_APPROACH_SHARE`` x closeness of the nearest free gripper to the nearest graspable
  point of a pending item; once held, the rest grows with the lift height;
* place: ``PLACE_ROUTE_SHARE`` x (1 - remaining route / ``place_scale``), the route being the
  canonical transport path: up to the carry height, across to the goal, down to the goal.

This module also holds the rimmed plate both tasks use. A plate is a thin disc (a real plate's
foot and well) with a low rim wall around it, like a deep-lipped ceramic plate: a parallel
gripper coming from above straddles the rim, one finger over the plate's well and one outside,
and pinches the rim wall. No finger has to get under a disc lying flat on the table.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar, Final

import numpy as np

from sarm2_gym.envs.core.embodiment import ARMS
from sarm2_gym.envs.core.geometry import mat_to_quat
from sarm2_gym.envs.core.stages import Stage, TaskStatus
from sarm2_gym.envs.core.task_env import TaskEnv

__all__ = [
    "PLATE_HEIGHT",
    "PLATE_RADIUS",
    "RIM_HALF_THICK",
    "RIM_RADIUS",
    "PickPlaceEnv",
    "pick_place_stages",
    "plate_rim_distance",
    "rimmed_plate_xml",
    "yaw_of",
]

# ---- rimmed plate (body origin at the centre of its bottom face)
PLATE_RADIUS: Final[float] = 0.088  # base disc radius (m)
PLATE_BASE_HALF: Final[float] = 0.003  # half thickness of the base disc
RIM_RADIUS: Final[float] = 0.085  # radius of the rim wall's centre line
RIM_HALF_THICK: Final[float] = 0.004  # half thickness of the rim wall (8 mm wall)
RIM_HEIGHT: Final[float] = 0.022  # rim wall height above the base
RIM_SEGMENTS: Final[int] = 16  # the round rim as a polygon of boxes (box-box contacts are robust)
PLATE_HEIGHT: Final[float] = 2 * PLATE_BASE_HALF + RIM_HEIGHT  # bottom to rim top
PLATE_BASE_MASS: Final[float] = 0.15  # kg (a melamine plate)
PLATE_RIM_MASS: Final[float] = 0.06  # kg, all rim segments together

# ---- named progress / stage thresholds
LIFT_HEIGHT: Final[float] = 0.03  # held item this far above its table rest height = picked
APPROACH_SCALE: Final[float] = 0.6  # gripper-item distance (m) at which approach progress is 0
PICK_APPROACH_SHARE: Final[float] = 0.7  # share of the pick stage earned by the approach
PLACE_ROUTE_SHARE: Final[float] = 0.9  # share of the place stage earned along the route
ROUTE_XY_TOL: Final[float] = 0.02  # item this close (xy) to its goal is on the final descent
NEAR_GOAL_XY: Final[float] = 0.05  # a held item this close (xy) to its goal is being placed
SETTLED_SPEED: Final[float] = 0.05  # m/s: an item moving slower than this is at rest
SETTLED_SPIN: Final[float] = 0.5  # rad/s: ... and turning slower than this


def pick_place_stages(
    items: tuple[str, ...], pick_weight: float, place_weight: float
) -> tuple[Stage, ...]:
    """The stage list (pick_grab, place) for each entry of ``items`` (names are per position).

    Args:
        items: One description per pick-and-place cycle, e.g. ``("first plate", ...)``.
        pick_weight: Weight of each pick stage (share of an expert's time).
        place_weight: Weight of each place stage.
    """
    stages: list[Stage] = []
    for item in items:
        stages.append(Stage(f"pick the {item}", "pick_grab", pick_weight))
        stages.append(Stage(f"place the {item}", "place", place_weight))
    return tuple(stages)


def rimmed_plate_xml(name: str, rgba: str, rim_rgba: str) -> str:
    """MJCF of a free rimmed plate named ``name`` (see the module docstring).

    Args:
        name: Body, joint and geom name prefix.
        rgba: Colour of the base disc.
        rim_rgba: Colour of the rim wall.
    """
    # Side length of the regular polygon whose edge midpoints lie on the rim circle, plus a
    # sliver of overlap so the wall has no gaps a fingertip could slip into.
    side = 2 * RIM_RADIUS * np.tan(np.pi / RIM_SEGMENTS) + 0.001
    z = 2 * PLATE_BASE_HALF + RIM_HEIGHT / 2
    seg_mass = PLATE_RIM_MASS / RIM_SEGMENTS
    segments = []
    for i in range(RIM_SEGMENTS):
        a = 2 * np.pi * i / RIM_SEGMENTS
        segments.append(
            f'<geom name="{name}_rim{i}" type="box" size="{RIM_HALF_THICK} {side / 2:.5f} '
            f'{RIM_HEIGHT / 2}" pos="{RIM_RADIUS * np.cos(a):.5f} {RIM_RADIUS * np.sin(a):.5f} '
            f'{z}" euler="0 0 {a:.5f}" mass="{seg_mass:.5f}" rgba="{rim_rgba}" '
            f'friction="0.8 0.01 0.001"/>'
        )
    return f"""<body name="{name}" pos="0 0 0">
      <freejoint name="{name}"/>
      <geom name="{name}_base" type="cylinder" size="{PLATE_RADIUS} {PLATE_BASE_HALF}"
            pos="0 0 {PLATE_BASE_HALF}" mass="{PLATE_BASE_MASS}" rgba="{rgba}"
            friction="0.8 0.01 0.001"/>
      <geom type="cylinder" size="{RIM_RADIUS - 0.03} 0.0004" pos="0 0 {2 * PLATE_BASE_HALF}"
            rgba="{rim_rgba}" contype="0" conaffinity="0" mass="0"/>
      {"".join(segments)}
    </body>"""


def plate_rim_distance(pos: np.ndarray, mat: np.ndarray, point: np.ndarray) -> float:
    """Distance from ``point`` to the top edge of a rimmed plate's rim (centre line).

    Args:
        pos: Plate origin (bottom centre), world frame.
        mat: Plate orientation.
        point: Query point, world frame.
    """
    normal = mat[:, 2]
    centre = pos + normal * PLATE_HEIGHT
    rel = point - centre
    radial = rel - normal * float(rel @ normal)
    norm = float(np.linalg.norm(radial))
    direction = radial / norm if norm > 1e-9 else mat[:, 0]
    return float(np.linalg.norm(point - (centre + RIM_RADIUS * direction)))


def yaw_of(mat: np.ndarray) -> float:
    """Heading of a body's local x axis in the world (radians)."""
    return float(np.arctan2(mat[1, 0], mat[0, 0]))


class PickPlaceEnv(TaskEnv):
    """Base class of tasks that carry rigid items to goals one at a time.

    Subclasses set :attr:`item_names` (free bodies whose origin is the centre of their bottom
    face), build the scene, and implement :meth:`item_goal`, :meth:`item_at_goal` and
    :meth:`item_carry_z`; the stage list must be :func:`pick_place_stages` over the items.
    Stage and success come from :meth:`_evaluate` here (see the module docstring).
    """

    item_names: ClassVar[tuple[str, ...]]
    place_scale: ClassVar[float] = 0.7  # route length (m) at which place progress is 0

    def _configure(self) -> None:
        self.items: tuple[int, ...] = tuple(self.body_id(n) for n in self.item_names)
        self.robot.register_graspable(list(self.item_names))

    # ------------------------------------------------------------------ task hooks
    @abstractmethod
    def item_goal(self, k: int) -> np.ndarray:
        """Where item ``k``'s origin (bottom centre) comes to rest when placed (world xyz)."""

    def item_goal_yaw(self, k: int) -> float | None:
        """Required heading of item ``k`` at its goal (``None``: any)."""
        return None

    @abstractmethod
    def item_at_goal(self, k: int) -> bool:
        """Whether item ``k``'s pose satisfies its goal (whether held or not)."""

    @abstractmethod
    def item_carry_z(self, k: int) -> float:
        """Height of item ``k``'s bottom while it is carried (clears everything on the way)."""

    def grasp_distance(self, k: int, tcp: np.ndarray) -> float:
        """Distance from a tool centre point to the nearest place item ``k`` can be grasped."""
        return float(np.linalg.norm(tcp - self.item_pos(k)))

    # ------------------------------------------------------------------ readouts
    def item_pos(self, k: int) -> np.ndarray:
        """World position of item ``k``'s origin."""
        return self.data.xpos[self.items[k]].copy()

    def item_mat(self, k: int) -> np.ndarray:
        """World orientation of item ``k``."""
        return self.data.xmat[self.items[k]].reshape(3, 3).copy()

    def item_yaw(self, k: int) -> float:
        """Heading of item ``k``'s local x axis."""
        return yaw_of(self.item_mat(k))

    def item_holder(self, k: int) -> str | None:
        """The arm holding item ``k``, if any."""
        for arm in ARMS:
            if self.robot.holding(arm) == self.items[k]:
                return arm
        return None

    def item_settled(self, k: int) -> bool:
        """Whether item ``k`` is at rest."""
        vel = self.data.cvel[self.items[k]]
        return bool(
            np.linalg.norm(vel[3:]) < SETTLED_SPEED and np.linalg.norm(vel[:3]) < SETTLED_SPIN
        )

    def item_done(self, k: int) -> bool:
        """Item ``k`` is at its goal and released."""
        return self.item_holder(k) is None and self.item_at_goal(k)

    def pending_items(self) -> list[int]:
        """Items not yet placed, in index order."""
        return [k for k in range(len(self.items)) if not self.item_done(k)]

    # ------------------------------------------------------------------ status
    def _place_within(self, k: int) -> float:
        """Progress along the canonical route (up, across, down) of held item ``k``."""
        pos = self.item_pos(k)
        goal = self.item_goal(k)
        carry = max(self.item_carry_z(k), goal[2])
        d_xy = float(np.linalg.norm(pos[:2] - goal[:2]))
        if d_xy > ROUTE_XY_TOL:
            remaining = max(0.0, carry - pos[2]) + d_xy + (carry - goal[2])
        else:
            remaining = max(0.0, pos[2] - goal[2]) + d_xy
        return PLACE_ROUTE_SHARE * (1.0 - float(np.clip(remaining / self.place_scale, 0.0, 1.0)))

    def _pick_within(self, pending: list[int]) -> float:
        for k in pending:  # an item held but not lifted yet: the lift completes the stage
            if self.item_holder(k) is not None:
                lift = (self.item_pos(k)[2] - self.item_rest_z(k)) / LIFT_HEIGHT
                return PICK_APPROACH_SHARE + (1 - PICK_APPROACH_SHARE) * float(np.clip(lift, 0, 1))
        free = [a for a in ARMS if self.robot.holding(a) < 0]
        dists = [
            self.grasp_distance(k, self.robot.tcp_pos(self.data, a)) for a in free for k in pending
        ]
        if not dists:
            return 0.0
        return PICK_APPROACH_SHARE * (1.0 - float(np.clip(min(dists) / APPROACH_SCALE, 0, 1)))

    def item_rest_z(self, k: int) -> float:
        """Height of item ``k``'s origin when it rests on the table."""
        return 0.0

    def item_lifted(self, k: int) -> bool:
        """Item ``k`` is held and raised clear of where it rested, or held over its goal.

        The second case keeps an item that is being lowered onto its goal in the place stage.
        """
        if self.item_holder(k) is None:
            return False
        pos = self.item_pos(k)
        near_goal = float(np.linalg.norm(pos[:2] - self.item_goal(k)[:2])) <= NEAR_GOAL_XY
        return near_goal or pos[2] - self.item_rest_z(k) >= LIFT_HEIGHT

    def _evaluate(self) -> TaskStatus:
        n = len(self.items)
        done = [self.item_done(k) for k in range(n)]
        n_done = int(sum(done))
        pending = [k for k in range(n) if not done[k]]
        metrics = {"items_placed": float(n_done)}
        if not pending:
            settled = all(self.item_settled(k) for k in range(n))
            # Everything placed but still rocking: the last stage is all but complete.
            return TaskStatus(2 * n - 1, 1.0 if settled else 0.99, settled, metrics)
        carried = [k for k in pending if self.item_lifted(k)]
        if carried:
            within = max(self._place_within(k) for k in carried)
            return TaskStatus(2 * n_done + 1, within, False, metrics)
        return TaskStatus(2 * n_done, self._pick_within(pending), False, metrics)

    def items_state(self) -> np.ndarray:
        """Per item: position (3), quaternion (4), held (1), placed (1)."""
        rows = []
        for k in range(len(self.items)):
            rows.append(
                np.concatenate(
                    [
                        self.item_pos(k),
                        mat_to_quat(self.item_mat(k)),
                        [float(self.item_holder(k) is not None), float(self.item_done(k))],
                    ]
                )
            )
        return np.concatenate(rows)
