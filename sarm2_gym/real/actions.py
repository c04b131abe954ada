"""Conversions between normalised Gym actions and absolute end-effector targets.

The Gym action is per arm ``[dx, dy, dz, droll, dpitch, dyaw, gripper]`` in [-1, 1]: deltas
scaled by :attr:`RobotConfig.max_translation_per_step` and
:attr:`RobotConfig.max_rotation_per_step`, and an absolute gripper command (-1 open, +1 closed).
A robot is commanded with absolute targets in the state layout (gripper in [0, 1]). Orientation
deltas are added to roll/pitch/yaw and wrapped to [-pi, pi), the same small-step convention as
the simulated tasks.

Example:
    >>> import numpy as np
    >>> from sarm2_gym.real.config import default_robot_config
    >>> cfg = default_robot_config()
    >>> state = np.zeros(14)
    >>> action = np.zeros(14, dtype=np.float32); action[0] = 1.0; action[6] = 1.0
    >>> target = action_to_target(state, action, cfg)
    >>> float(target[0]), float(target[6])
    (0.03, 1.0)
    >>> bool(np.allclose(target_to_action(state, target, cfg), action))
    True
"""

from __future__ import annotations

import math

import numpy as np

from sarm2_gym.real.config import ARM_DIM, STATE_DIM, RobotConfig

__all__ = ["action_to_target", "target_to_action", "wrap_angle"]


def wrap_angle(angle: np.ndarray) -> np.ndarray:
    """Wrap angles (radians) to [-pi, pi)."""
    return np.mod(np.asarray(angle, dtype=np.float64) + math.pi, 2 * math.pi) - math.pi


def _check(name: str, x: np.ndarray) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.shape != (STATE_DIM,):
        raise ValueError(f"{name} must have shape ({STATE_DIM},), got {arr.shape}")
    return arr


def action_to_target(state: np.ndarray, action: np.ndarray, config: RobotConfig) -> np.ndarray:
    """Turn a normalised delta action into an absolute end-effector target.

    Args:
        state: Measured state (14,), per arm [x, y, z, roll, pitch, yaw, gripper].
        action: Gym action (14,); components are clipped to [-1, 1] first.
        config: Supplies the metric scale of one action unit.

    Returns:
        float64 target (14,) in the state layout, gripper in [0, 1]. NaN in ``action`` stays NaN
        so the safety layer can refuse it rather than have it silently clipped away here.
    """
    s = _check("state", state)
    a = np.clip(_check("action", action), -1.0, 1.0)
    target = np.empty(STATE_DIM, dtype=np.float64)
    for o in (0, ARM_DIM):
        target[o : o + 3] = s[o : o + 3] + a[o : o + 3] * config.max_translation_per_step
        target[o + 3 : o + 6] = wrap_angle(
            s[o + 3 : o + 6] + a[o + 3 : o + 6] * config.max_rotation_per_step
        )
        target[o + 6] = 0.5 * (a[o + 6] + 1.0)
    return target


def target_to_action(state: np.ndarray, target: np.ndarray, config: RobotConfig) -> np.ndarray:
    """Inverse of :func:`action_to_target`: the action that moves ``state`` to ``target``.

    Used to drive a simulated task (which takes delta actions) from absolute targets. Motions
    larger than one step saturate at +-1.

    Returns:
        float32 action (14,) in [-1, 1].
    """
    s = _check("state", state)
    t = _check("target", target)
    action = np.empty(STATE_DIM, dtype=np.float64)
    for o in (0, ARM_DIM):
        action[o : o + 3] = (t[o : o + 3] - s[o : o + 3]) / config.max_translation_per_step
        action[o + 3 : o + 6] = (
            wrap_angle(t[o + 3 : o + 6] - s[o + 3 : o + 6]) / config.max_rotation_per_step
        )
        action[o + 6] = 2.0 * t[o + 6] - 1.0
    return np.clip(action, -1.0, 1.0).astype(np.float32)
