"""The robot-side contract: what any real (or simulated) robot must provide.

A robot is commanded with **absolute** end-effector targets in the state layout
(per arm ``[x, y, z, roll, pitch, yaw, gripper]``, left arm first, gripper in [0, 1]). Turning
policy actions into targets, safety limits and the control rate are the job of the layers above
(:mod:`sarm2_gym.real.safety`, :class:`~sarm2_gym.real.env.RealRobotEnv`), so a driver only
talks to its hardware.

Example:
    >>> from sarm2_gym.real.dummy import KinematicRobot
    >>> robot = KinematicRobot(image_size=8)
    >>> isinstance(robot, RobotInterface)
    True
    >>> robot.connect(); robot.home()
    >>> obs = robot.observe()
    >>> sorted(obs.images), obs.state.shape
    (['left_wrist', 'right_wrist', 'top'], (14,))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["RobotInterface", "RobotObservation", "resize_nearest"]


@dataclass
class RobotObservation:
    """One reading of the robot.

    Args:
        images: Camera name -> uint8 (H, W, 3) image.
        state: float (14,) end-effector state, per arm [x, y, z, roll, pitch, yaw, gripper].
        timestamps: Sensor name (camera names and ``"state"``) -> capture time in seconds
            (``time.time()`` clock of the robot PC), for latency and synchronisation checks.
        extras: JSON-able scalars a driver wants to report (for a simulated robot: the
            simulator's ``is_success``, ``primitive``, ``stage``, ``progress``). The Gym env never
            copies privileged values such as ``progress`` into ``info``.
    """

    images: dict[str, np.ndarray]
    state: np.ndarray
    timestamps: dict[str, float] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class RobotInterface(Protocol):
    """A robot that the real-robot layer can drive.

    Implementations: :class:`~sarm2_gym.real.sim_robot.SimulatedRobot` (a Gym task),
    :class:`~sarm2_gym.real.client.RemoteRobot` (a robot behind a network server),
    :class:`~sarm2_gym.real.dummy.KinematicRobot` (no physics, for dry runs),
    :class:`~sarm2_gym.real.lerobot_adapter.LeRobotAdapter` (a LeRobot ``Robot``), and
    :class:`~sarm2_gym.real.safety.SafeRobot` (limits + watchdog around any of them).
    Methods may block; they raise :class:`~sarm2_gym.real.errors.RobotError` subclasses.
    """

    def connect(self) -> None:
        """Open the connection to the hardware. Calling it twice is allowed."""
        ...

    def observe(self) -> RobotObservation:
        """Read cameras and state now."""
        ...

    def act(self, target: np.ndarray) -> None:
        """Command an absolute end-effector target (14,); returns without waiting for motion."""
        ...

    def home(self, seed: int | None = None) -> None:
        """Move to the start pose and block until there.

        Args:
            seed: Used by simulated robots to reset the scene reproducibly; hardware ignores it.
        """
        ...

    def stop(self) -> None:
        """Stop all motion now and hold position. Must be safe to call from another thread."""
        ...

    def close(self) -> None:
        """Stop and release the hardware. Calling it twice is allowed."""
        ...


def resize_nearest(image: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop an image to a square and resize it to ``size`` x ``size`` (nearest neighbour).

    Cameras deliver e.g. 640x480; policies get the configured square size. Nearest neighbour
    keeps this free of image libraries and costs well under a millisecond at these sizes.

    Args:
        image: uint8 (H, W, 3).
        size: Output side length.

    Returns:
        A new uint8 (size, size, 3) array (the input when it already has that shape).
    """
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    idx = (np.arange(size) * side) // size
    return np.ascontiguousarray(image[top + idx][:, left + idx])
