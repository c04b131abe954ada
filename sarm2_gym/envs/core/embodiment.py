"""The bimanual embodiment: two 6-DoF mocap-driven end effectors with parallel grippers.

Each arm is a mocap body (the palm) carrying two position-controlled slide fingers, a wrist camera
and a tool-centre-point site between the finger pads. An action moves the commanded TCP pose by a
bounded delta; the mocap body is interpolated to it over the physics substeps so contacts see a
smooth motion rather than a 3 cm jump.

Grasping is physical first: the fingers close until they touch. A rigid object is then held by a
weld constraint that is switched on only while both fingers are in contact with it and the gripper
is commanded closed (and off when it opens); cloth is held by switching on ``connect`` constraints
to the nearest cloth vertices lying between the closed fingers, as cloth cannot be pinched
reliably by contact alone (MuJoCo issues #1480/#1556).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import mujoco
import numpy as np

from sarm2_gym.envs.core.geometry import (
    euler_to_mat,
    look_at_xyaxes,
    mat_to_euler,
    mat_to_quat,
    rel_pose,
)

__all__ = [
    "ARMS",
    "FINGER_TRAVEL",
    "STATE_DIM",
    "ArmState",
    "BimanualRobot",
    "ControlLimits",
    "grasp_equalities_xml",
    "gripper_actuators_xml",
    "gripper_body_xml",
]

ARMS: Final[tuple[str, ...]] = ("left", "right")
STATE_DIM: Final[int] = 14  # per arm: xyz, rpy, gripper
FINGER_TRAVEL: Final[float] = 0.04  # metres each finger slides from open to closed
TCP_OFFSET: Final[np.ndarray] = np.array([0.0, 0.0, 0.085])  # palm origin -> between finger pads
CLOTH_SLOTS: Final[int] = 3  # cloth vertices one gripper can hold at once
# Orientation of a palm pointing straight down (its +z, the approach axis, along world -z).
HOME_MAT: Final[np.ndarray] = np.diag([1.0, -1.0, -1.0])
# Region between closed finger pads (TCP frame) in which cloth vertices count as pinched.
PINCH_HALF_EXTENT: Final[np.ndarray] = np.array([0.022, 0.022, 0.03])
GRIPPER_CLOSED_THRESHOLD: Final[float] = 0.5  # closure fraction above which cloth can be held
# Wrist camera behind the palm, looking past the fingers (palm frame: +z is the approach axis).
WRIST_CAMERA_POS: Final[str] = "-0.075 0 -0.01"
_WRIST_XYAXES: Final[str] = look_at_xyaxes(
    np.array([-0.075, 0.0, -0.01]), np.array([0.0, 0.0, 0.16]), up=np.array([1.0, 0.0, 0.0])
)


@dataclass(frozen=True, slots=True)
class ControlLimits:
    """Metric scale of the normalised action and the reachable workspace.

    Args:
        max_translation: TCP displacement per control step at action 1.0 (metres).
        max_rotation: Rotation per control step at action 1.0 (radians).
        workspace_low: Lower corner of the TCP workspace box (world frame, metres).
        workspace_high: Upper corner of the TCP workspace box.
        rpy_low: Lower limits of roll, pitch, yaw relative to the home (pointing-down) pose.
        rpy_high: Upper limits of roll, pitch, yaw.
    """

    max_translation: float = 0.03
    max_rotation: float = 0.15
    workspace_low: tuple[float, float, float] = (-0.40, -0.50, 0.012)
    workspace_high: tuple[float, float, float] = (0.45, 0.50, 0.50)
    rpy_low: tuple[float, float, float] = (-1.75, -1.2, -np.pi)
    rpy_high: tuple[float, float, float] = (1.75, 1.2, np.pi)


HOME_POSITIONS: Final[dict[str, tuple[float, float, float]]] = {
    "left": (-0.18, 0.22, 0.25),
    "right": (-0.18, -0.22, 0.25),
}


def gripper_body_xml(arm: str, rgba: str = "0.25 0.25 0.28 1") -> str:
    """MJCF of one arm's end effector (a world child: mocap bodies must be)."""
    pos = " ".join(str(v) for v in HOME_POSITIONS[arm])
    quat = " ".join(f"{v:.6f}" for v in mat_to_quat(HOME_MAT))
    half_gap = FINGER_TRAVEL + 0.006
    return f"""
    <body name="{arm}_ee" mocap="true" pos="{pos}" quat="{quat}">
      <geom name="{arm}_palm" type="box" size="0.018 0.055 0.02" pos="0 0 0.02" rgba="{rgba}"
            mass="0.3" contype="1" conaffinity="1"/>
      <geom name="{arm}_wrist" type="cylinder" size="0.025 0.04" pos="0 0 -0.04" rgba="{rgba}"
            contype="0" conaffinity="0" mass="0.1"/>
      <camera name="{arm}_wrist" pos="{WRIST_CAMERA_POS}" xyaxes="{_WRIST_XYAXES}" fovy="75"/>
      <site name="{arm}_tcp" pos="{TCP_OFFSET[0]} {TCP_OFFSET[1]} {TCP_OFFSET[2]}" size="0.004"
            rgba="1 0 0 0" group="3"/>
      <body name="{arm}_finger_a" pos="0 {half_gap} 0.07">
        <joint name="{arm}_finger_a" type="slide" axis="0 -1 0" range="0 {FINGER_TRAVEL}"
               damping="2" armature="0.01"/>
        <geom name="{arm}_finger_a" type="box" size="0.012 0.006 0.024" mass="0.04"
              rgba="0.8 0.5 0.2 1" friction="1.5 0.02 0.002" condim="4" contype="1"
              conaffinity="1" solref="0.004 1"/>
      </body>
      <body name="{arm}_finger_b" pos="0 -{half_gap} 0.07">
        <joint name="{arm}_finger_b" type="slide" axis="0 1 0" range="0 {FINGER_TRAVEL}"
               damping="2" armature="0.01"/>
        <geom name="{arm}_finger_b" type="box" size="0.012 0.006 0.024" mass="0.04"
              rgba="0.8 0.5 0.2 1" friction="1.5 0.02 0.002" condim="4" contype="1"
              conaffinity="1" solref="0.004 1"/>
      </body>
    </body>"""


def gripper_actuators_xml(arm: str) -> str:
    """MJCF position actuators for one arm's two fingers."""
    return "".join(
        f'<position name="{arm}_finger_{s}" joint="{arm}_finger_{s}" kp="400" kv="8" '
        f'ctrlrange="0 {FINGER_TRAVEL}" forcerange="-40 40"/>'
        for s in ("a", "b")
    )


def grasp_equalities_xml(arm: str) -> str:
    """Inactive grasp constraints (re-targeted at run time): one weld, CLOTH_SLOTS connects."""
    parts = [
        f'<weld name="{arm}_grasp_weld" body1="{arm}_ee" active="false" '
        f'solref="0.01 1" solimp="0.95 0.99 0.001"/>'
    ]
    parts += [
        f'<connect name="{arm}_grasp_cloth_{k}" body1="{arm}_ee" anchor="0 0 0" active="false" '
        f'solref="0.01 1"/>'
        for k in range(CLOTH_SLOTS)
    ]
    return "".join(parts)


@dataclass
class ArmState:
    """Commanded and interpolation state of one arm (all world frame)."""

    target_pos: np.ndarray
    target_rpy: np.ndarray
    gripper_cmd: float  # in [-1, 1]: -1 open, +1 closed
    start_pos: np.ndarray = field(default_factory=lambda: np.zeros(3))
    start_quat: np.ndarray = field(default_factory=lambda: np.array([1.0, 0, 0, 0]))
    held_body: int = -1  # rigid body id held by the weld, -1 for none
    held_vertices: list[int] = field(default_factory=list)  # cloth vertex body ids
    # Mocap pose of (target_pos, target_rpy), cached: interpolation needs it every substep.
    goal: tuple[tuple[float, ...], np.ndarray, np.ndarray] | None = None


class BimanualRobot:
    """Run-time control of the two grippers in a compiled model.

    Args:
        model: A model built with :func:`gripper_body_xml`, :func:`gripper_actuators_xml` and
            :func:`grasp_equalities_xml` for both arms.
        limits: Action scale and workspace.
    """

    def __init__(self, model: mujoco.MjModel, limits: ControlLimits | None = None) -> None:
        self.model = model
        self.limits = limits or ControlLimits()
        self._ws_low = np.asarray(self.limits.workspace_low)
        self._ws_high = np.asarray(self.limits.workspace_high)
        self._rpy_low = np.asarray(self.limits.rpy_low)
        self._rpy_high = np.asarray(self.limits.rpy_high)

        def _id(kind: mujoco.mjtObj, name: str) -> int:
            idx = mujoco.mj_name2id(model, kind, name)
            if idx < 0:
                raise ValueError(f"model has no {kind.name} named {name!r}")
            return int(idx)

        obj = mujoco.mjtObj
        self._ee_body = {a: _id(obj.mjOBJ_BODY, f"{a}_ee") for a in ARMS}
        self._mocap = {a: int(model.body_mocapid[self._ee_body[a]]) for a in ARMS}
        self._tcp_site = {a: _id(obj.mjOBJ_SITE, f"{a}_tcp") for a in ARMS}
        self._finger_qadr = {
            a: [int(model.jnt_qposadr[_id(obj.mjOBJ_JOINT, f"{a}_finger_{s}")]) for s in "ab"]
            for a in ARMS
        }
        self._actuators = {
            a: [_id(obj.mjOBJ_ACTUATOR, f"{a}_finger_{s}") for s in "ab"] for a in ARMS
        }
        self._finger_geoms = {
            a: [_id(obj.mjOBJ_GEOM, f"{a}_finger_{s}") for s in "ab"] for a in ARMS
        }
        self._weld_eq = {a: _id(obj.mjOBJ_EQUALITY, f"{a}_grasp_weld") for a in ARMS}
        self._cloth_eq = {
            a: [_id(obj.mjOBJ_EQUALITY, f"{a}_grasp_cloth_{k}") for k in range(CLOTH_SLOTS)]
            for a in ARMS
        }
        self.arms: dict[str, ArmState] = {}
        self.graspable_bodies: set[int] = set()
        self.cloth_vertex_bodies: np.ndarray = np.zeros(0, dtype=np.int64)

    # ------------------------------------------------------------------ registration
    def register_graspable(self, body_names: list[str]) -> None:
        """Declare rigid bodies that a closed gripper may hold."""
        for name in body_names:
            idx = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, name)
            if idx < 0:
                raise ValueError(f"no body named {name!r} to register as graspable")
            self.graspable_bodies.add(int(idx))

    def register_cloth(self, flex_name: str) -> None:
        """Declare a flex (cloth) whose vertex bodies a closed gripper may pinch."""
        idx = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_FLEX, flex_name)
        if idx < 0:
            raise ValueError(f"no flex named {flex_name!r} to register as cloth")
        adr, num = self.model.flex_vertadr[idx], self.model.flex_vertnum[idx]
        bodies = np.asarray(self.model.flex_vertbodyid[adr : adr + num], dtype=np.int64)
        self.cloth_vertex_bodies = np.unique(np.concatenate([self.cloth_vertex_bodies, bodies]))

    # ------------------------------------------------------------------ episode control
    def reset(self, data: mujoco.MjData, home: dict[str, np.ndarray] | None = None) -> None:
        """Put both arms at their home pose, fingers open, nothing held."""
        for arm in ARMS:
            pos = np.asarray(HOME_POSITIONS[arm] if home is None else home[arm], dtype=float)
            self.arms[arm] = ArmState(target_pos=pos.copy(), target_rpy=np.zeros(3), gripper_cmd=-1)
            self._release(data, arm)
            mocap_pos, mocap_quat = self._mocap_pose(pos, np.zeros(3))
            data.mocap_pos[self._mocap[arm]] = mocap_pos
            data.mocap_quat[self._mocap[arm]] = mocap_quat
            for q, act in zip(self._finger_qadr[arm], self._actuators[arm], strict=True):
                data.qpos[q] = 0.0
                data.ctrl[act] = 0.0

    def apply_action(self, data: mujoco.MjData, action: np.ndarray) -> None:
        """Turn a normalised (14,) action into new commanded poses and finger targets."""
        lim = self.limits
        for i, arm in enumerate(ARMS):
            a = action[7 * i : 7 * i + 7]
            st = self.arms[arm]
            st.start_pos = data.mocap_pos[self._mocap[arm]].copy()
            st.start_quat = data.mocap_quat[self._mocap[arm]].copy()
            st.target_pos = np.clip(
                st.target_pos + a[:3] * lim.max_translation, self._ws_low, self._ws_high
            )
            st.target_rpy = np.clip(
                st.target_rpy + a[3:6] * lim.max_rotation, self._rpy_low, self._rpy_high
            )
            st.gripper_cmd = float(a[6])
            ctrl = (st.gripper_cmd + 1.0) * 0.5 * FINGER_TRAVEL
            for act in self._actuators[arm]:
                data.ctrl[act] = ctrl

    def interpolate(self, data: mujoco.MjData, fraction: float) -> None:
        """Move the mocap bodies ``fraction`` of the way from their start to the target pose."""
        for arm in ARMS:
            st = self.arms[arm]
            key = (*st.target_pos, *st.target_rpy)
            if st.goal is None or st.goal[0] != key:
                st.goal = (key, *self._mocap_pose(st.target_pos, st.target_rpy))
            _, goal_pos, goal_quat = st.goal
            start_quat = st.start_quat
            if float(np.dot(start_quat, goal_quat)) < 0.0:  # shortest arc
                goal_quat = -goal_quat
            quat = (1.0 - fraction) * start_quat + fraction * goal_quat
            data.mocap_pos[self._mocap[arm]] = (1.0 - fraction) * st.start_pos + fraction * goal_pos
            data.mocap_quat[self._mocap[arm]] = quat / np.linalg.norm(quat)

    def update_grasps(self, data: mujoco.MjData) -> None:
        """Attach or release held objects from the current contacts and gripper commands."""
        for arm in ARMS:
            st = self.arms[arm]
            if st.gripper_cmd <= 0.0:
                if st.held_body >= 0 or st.held_vertices:
                    self._release(data, arm)
                continue
            if st.held_body < 0 and not st.held_vertices:
                body = self._pinched_rigid_body(data, arm)
                if body >= 0:
                    self._attach_rigid(data, arm, body)
                elif (
                    self.cloth_vertex_bodies.size
                    and self.closure(data, arm) > GRIPPER_CLOSED_THRESHOLD
                ):
                    self._attach_cloth(data, arm)

    # ------------------------------------------------------------------ readouts
    def tcp_pos(self, data: mujoco.MjData, arm: str) -> np.ndarray:
        """World position of the tool centre point."""
        return data.site_xpos[self._tcp_site[arm]].copy()

    def tcp_mat(self, data: mujoco.MjData, arm: str) -> np.ndarray:
        """World orientation of the tool (columns: tool x, y (finger axis), z (approach))."""
        return data.site_xmat[self._tcp_site[arm]].reshape(3, 3).copy()

    def closure(self, data: mujoco.MjData, arm: str) -> float:
        """Finger closure in [0, 1] (0 open, 1 fully closed), from the finger joints."""
        q = data.qpos[self._finger_qadr[arm]]
        return float(np.clip(np.mean(q) / FINGER_TRAVEL, 0.0, 1.0))

    def rpy(self, data: mujoco.MjData, arm: str) -> np.ndarray:
        """Tool orientation as roll, pitch, yaw relative to the home (pointing-down) pose."""
        mat = data.xmat[self._ee_body[arm]].reshape(3, 3)
        return mat_to_euler(mat @ HOME_MAT.T)

    def state(self, data: mujoco.MjData) -> np.ndarray:
        """The (14,) proprioceptive state: per arm [x, y, z, roll, pitch, yaw, gripper]."""
        parts: list[np.ndarray] = []
        for arm in ARMS:
            parts += [
                self.tcp_pos(data, arm),
                self.rpy(data, arm),
                np.array([self.closure(data, arm)]),
            ]
        return np.concatenate(parts).astype(np.float32)

    def holding(self, arm: str) -> int:
        """Id of the rigid body ``arm`` holds, or -1."""
        return self.arms[arm].held_body

    def holding_cloth(self, arm: str) -> list[int]:
        """Cloth vertex body ids ``arm`` holds."""
        return list(self.arms[arm].held_vertices)

    def finger_geoms(self, arm: str) -> list[int]:
        """Geom ids of the two fingers."""
        return list(self._finger_geoms[arm])

    # ------------------------------------------------------------------ internals
    def _mocap_pose(self, tcp_pos: np.ndarray, rpy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mat = euler_to_mat(rpy) @ HOME_MAT
        return tcp_pos - mat @ TCP_OFFSET, mat_to_quat(mat)

    def _pinched_rigid_body(self, data: mujoco.MjData, arm: str) -> int:
        touching: list[set[int]] = [set(), set()]
        fa, fb = self._finger_geoms[arm]
        for i in range(data.ncon):
            con = data.contact[i]
            for k, finger in enumerate((fa, fb)):
                if con.geom1 == finger or con.geom2 == finger:
                    other = con.geom2 if con.geom1 == finger else con.geom1
                    if other >= 0:
                        touching[k].add(int(self.model.geom_bodyid[other]))
        common = (touching[0] & touching[1]) & self.graspable_bodies
        return min(common) if common else -1

    def _attach_rigid(self, data: mujoco.MjData, arm: str, body: int) -> None:
        eq = self._weld_eq[arm]
        ee = self._ee_body[arm]
        rel_p, rel_q = rel_pose(
            data.xpos[ee],
            data.xmat[ee].reshape(3, 3),
            data.xpos[body],
            data.xmat[body].reshape(3, 3),
        )
        self.model.eq_obj2id[eq] = body
        self.model.eq_data[eq, 0:3] = 0.0
        self.model.eq_data[eq, 3:6] = rel_p
        self.model.eq_data[eq, 6:10] = rel_q
        self.model.eq_data[eq, 10] = 1.0
        data.eq_active[eq] = 1
        self.arms[arm].held_body = body

    def _attach_cloth(self, data: mujoco.MjData, arm: str) -> None:
        tcp = self.tcp_pos(data, arm)
        mat = self.tcp_mat(data, arm)
        local = (data.xpos[self.cloth_vertex_bodies] - tcp) @ mat
        inside = np.all(np.abs(local) <= PINCH_HALF_EXTENT, axis=1)
        if not np.any(inside):
            return
        candidates = self.cloth_vertex_bodies[inside]
        order = np.argsort(np.linalg.norm(local[inside], axis=1))[:CLOTH_SLOTS]
        ee = self._ee_body[arm]
        ee_pos, ee_mat = data.xpos[ee], data.xmat[ee].reshape(3, 3)
        held = []
        for eq, body in zip(self._cloth_eq[arm], candidates[order], strict=False):
            self.model.eq_obj2id[eq] = int(body)
            self.model.eq_data[eq, 0:3] = ee_mat.T @ (data.xpos[body] - ee_pos)
            self.model.eq_data[eq, 3:6] = 0.0
            data.eq_active[eq] = 1
            held.append(int(body))
        self.arms[arm].held_vertices = held

    def _release(self, data: mujoco.MjData, arm: str) -> None:
        data.eq_active[self._weld_eq[arm]] = 0
        for eq in self._cloth_eq[arm]:
            data.eq_active[eq] = 0
        if arm in self.arms:
            self.arms[arm].held_body = -1
            self.arms[arm].held_vertices = []
