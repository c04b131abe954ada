"""Small rotation helpers (numpy, world frame, MuJoCo quaternion order w-x-y-z)."""

from __future__ import annotations

import mujoco
import numpy as np

__all__ = [
    "euler_to_mat",
    "look_at_xyaxes",
    "mat_to_euler",
    "mat_to_quat",
    "quat_to_mat",
    "rel_pose",
    "yaw_mat",
]


def euler_to_mat(rpy: np.ndarray) -> np.ndarray:
    """Rotation matrix ``Rz(yaw) @ Ry(pitch) @ Rx(roll)`` (extrinsic x-y-z) from ``rpy``."""
    r, p, y = (float(v) for v in rpy)
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    return np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ]
    )


def mat_to_euler(mat: np.ndarray) -> np.ndarray:
    """Inverse of :func:`euler_to_mat` (pitch in [-pi/2, pi/2])."""
    pitch = float(np.arcsin(np.clip(-mat[2, 0], -1.0, 1.0)))
    roll = float(np.arctan2(mat[2, 1], mat[2, 2]))
    yaw = float(np.arctan2(mat[1, 0], mat[0, 0]))
    return np.array([roll, pitch, yaw])


def mat_to_quat(mat: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) of a rotation matrix."""
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, np.ascontiguousarray(mat, dtype=np.float64).reshape(9))
    return quat


def quat_to_mat(quat: np.ndarray) -> np.ndarray:
    """Rotation matrix of a quaternion (w, x, y, z)."""
    mat = np.empty(9)
    mujoco.mju_quat2Mat(mat, np.asarray(quat, dtype=np.float64))
    return mat.reshape(3, 3)


def yaw_mat(yaw: float) -> np.ndarray:
    """Rotation about the world z axis."""
    return euler_to_mat(np.array([0.0, 0.0, yaw]))


def rel_pose(
    pos1: np.ndarray, mat1: np.ndarray, pos2: np.ndarray, mat2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pose of frame 2 expressed in frame 1: ``(R1^T (p2 - p1), quat(R1^T R2))``."""
    rel_p = mat1.T @ (pos2 - pos1)
    rel_q = mat_to_quat(mat1.T @ mat2)
    return rel_p, rel_q


def look_at_xyaxes(eye: np.ndarray, target: np.ndarray, up: np.ndarray | None = None) -> str:
    """MJCF ``xyaxes`` string for a camera at ``eye`` looking at ``target``.

    MuJoCo cameras look along their local -z axis with +y up in the image.
    """
    up = np.array([0.0, 0.0, 1.0]) if up is None else up
    fwd = np.asarray(target, dtype=float) - np.asarray(eye, dtype=float)
    fwd /= np.linalg.norm(fwd)
    x_axis = np.cross(fwd, up)
    if np.linalg.norm(x_axis) < 1e-6:  # looking straight along `up`: pick any horizontal x
        x_axis = np.array([0.0, -1.0, 0.0])
    x_axis /= np.linalg.norm(x_axis)
    y_axis = np.cross(x_axis, fwd)
    return " ".join(f"{v:.6f}" for v in (*x_axis, *y_axis))
