"""A robot without physics, for dry runs of the whole stack and for benchmarks.

:class:`KinematicRobot` reaches every target instantly and draws synthetic camera images (a
marker per gripper on a grey table), so a server, a client, the safety layer and the operator
loop can be exercised on any machine: ``sarm2 robot-server --dummy``.

Example:
    >>> import numpy as np
    >>> robot = KinematicRobot(image_size=16)
    >>> robot.connect(); robot.home()
    >>> target = robot.observe().state.copy(); target[0] += 0.01
    >>> robot.act(target)
    >>> round(float(robot.observe().state[0] - HOME_STATE[0]), 6)
    0.01
"""

from __future__ import annotations

import threading
import time
from typing import Final

import numpy as np

from sarm2_gym.data.episode import CAMERA_NAMES
from sarm2_gym.real.config import ARM_DIM, STATE_DIM
from sarm2_gym.real.interface import RobotObservation

__all__ = ["HOME_STATE", "KinematicRobot"]

HOME_STATE: Final[np.ndarray] = np.array(
    [-0.18, 0.22, 0.25, 0.0, 0.0, 0.0, 0.0, -0.18, -0.22, 0.25, 0.0, 0.0, 0.0, 0.0]
)
"""Start pose of the simulated tasks: grippers open and pointing down, 0.25 m above the table."""


class KinematicRobot:
    """A :class:`~sarm2_gym.real.interface.RobotInterface` whose pose is its last target.

    Args:
        image_size: Side of the square synthetic images.
        cameras: Camera names.
        home_state: Pose after :meth:`home` (default :data:`HOME_STATE`).

    Attributes:
        targets: Every target received by :meth:`act`, in order (for tests).
        stop_times: ``time.monotonic()`` of every :meth:`stop` call.
    """

    def __init__(
        self,
        *,
        image_size: int = 96,
        cameras: tuple[str, ...] = CAMERA_NAMES,
        home_state: np.ndarray | None = None,
    ) -> None:
        self.image_size = int(image_size)
        self.cameras = tuple(cameras)
        self.home_state = np.array(
            HOME_STATE if home_state is None else home_state, dtype=np.float64
        )
        if self.home_state.shape != (STATE_DIM,):
            raise ValueError(f"home_state must have shape ({STATE_DIM},)")
        self.state = self.home_state.copy()
        self.targets: list[np.ndarray] = []
        self.stop_times: list[float] = []
        self.connected = False
        self._lock = threading.Lock()

    def connect(self) -> None:
        """Mark the robot connected."""
        self.connected = True

    def observe(self) -> RobotObservation:
        """Return the current pose and synthetic images."""
        with self._lock:
            state = self.state.copy()
        now = time.time()
        images = {cam: self._draw(state, i) for i, cam in enumerate(self.cameras)}
        stamps = dict.fromkeys(self.cameras, now)
        stamps["state"] = now
        return RobotObservation(images=images, state=state, timestamps=stamps)

    def act(self, target: np.ndarray) -> None:
        """Jump to ``target`` (gripper clipped to [0, 1])."""
        t = np.array(target, dtype=np.float64)
        with self._lock:
            self.targets.append(t.copy())
            t[ARM_DIM - 1 :: ARM_DIM] = np.clip(t[ARM_DIM - 1 :: ARM_DIM], 0.0, 1.0)
            self.state = t

    def home(self, seed: int | None = None) -> None:
        """Jump to the home pose."""
        with self._lock:
            self.state = self.home_state.copy()

    def stop(self) -> None:
        """Record the stop (the pose already holds still)."""
        self.stop_times.append(time.monotonic())

    def close(self) -> None:
        """Mark the robot disconnected."""
        self.connected = False

    def _draw(self, state: np.ndarray, camera: int) -> np.ndarray:
        size = self.image_size
        img = np.full((size, size, 3), 96 + 16 * camera, dtype=np.uint8)
        for arm, colour in ((0, (220, 40, 40)), (1, (40, 40, 220))):
            x, y = state[arm * ARM_DIM], state[arm * ARM_DIM + 1]
            # Map +-0.6 m onto the image; a closed gripper draws a larger marker.
            r = int(np.clip((0.6 - y) / 1.2 * size, 0, size - 1))
            c = int(np.clip((x + 0.6) / 1.2 * size, 0, size - 1))
            half = 1 + int(2 * state[arm * ARM_DIM + 6])
            img[max(r - half, 0) : r + half + 1, max(c - half, 0) : c + half + 1] = colour
        return img
