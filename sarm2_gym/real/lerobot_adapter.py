"""Drive a LeRobot ``Robot`` (``lerobot.robots.Robot``) through the :class:`RobotInterface`.

LeRobot robots speak dictionaries: ``get_observation()`` returns motor readings
(``"shoulder_pan.pos": float``) and camera frames (``"wrist": uint8 (H, W, 3)``), and
``send_action({...})`` takes motor targets. Most are joint-space arms, while this library's
contract is end-effector space, so the adapter takes two small functions from the user:
``state_fn`` (forward kinematics: LeRobot observation -> 14-D end-effector state) and
``action_fn`` (inverse kinematics: 14-D target -> LeRobot action dict). Everything else (camera
mapping, stop = hold the measured joint positions, connect/disconnect) is generic.

``lerobot`` is imported lazily and only by :meth:`LeRobotAdapter.from_config`; the adapter
itself works with any object that has LeRobot's ``Robot`` methods. lerobot cannot share a
virtualenv with this project's pinned torch (see ``docs/real_robot.md``); run it on the robot
PC in its own environment behind ``RobotServer`` and connect with ``RemoteRobot``.

Example:
    >>> class Arm:  # a stand-in with LeRobot's Robot methods
    ...     action_features = {"j.pos": float}
    ...     is_connected = False
    ...     def connect(self, calibrate=True): self.is_connected = True
    ...     def get_observation(self):
    ...         return {"j.pos": 0.1, "cam": np.zeros((4, 4, 3), np.uint8)}
    ...     def send_action(self, action): self.sent = action; return action
    ...     def disconnect(self): self.is_connected = False
    >>> robot = LeRobotAdapter(
    ...     Arm(), cameras={"top": "cam", "left_wrist": "cam", "right_wrist": "cam"},
    ...     state_fn=lambda obs: np.full(14, obs["j.pos"]),
    ...     action_fn=lambda target, obs: {"j.pos": float(target[0])})
    >>> robot.connect(); robot.observe().state[:2]
    array([0.1, 0.1])
    >>> robot.stop(); robot.robot.sent   # stop holds the measured joint positions
    {'j.pos': 0.1}
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from sarm2_gym.real.config import STATE_DIM
from sarm2_gym.real.errors import RobotError
from sarm2_gym.real.interface import RobotObservation

__all__ = ["LeRobotAdapter", "import_lerobot_robots"]

StateFn = Callable[[Mapping[str, Any]], np.ndarray]
ActionFn = Callable[[np.ndarray, Mapping[str, Any]], dict[str, Any]]


def import_lerobot_robots() -> Any:
    """Import ``lerobot.robots`` or explain how to get it.

    Raises:
        ImportError: With the install recipe, if lerobot is not installed.
    """
    try:
        import lerobot.robots as robots
    except ImportError as exc:
        raise ImportError(
            "lerobot is not installed. It pins torch below this project's torch, so install it "
            "in a separate environment on the robot PC (see docs/real_robot.md, 'LeRobot robots')"
        ) from exc
    return robots


class LeRobotAdapter:
    """A LeRobot ``Robot`` behind the :class:`~sarm2_gym.real.interface.RobotInterface`.

    Args:
        robot: A LeRobot ``Robot`` (or anything with ``connect``, ``get_observation``,
            ``send_action``, ``disconnect``, ``action_features``, ``is_connected``).
        cameras: This library's camera name -> LeRobot observation key.
        state_fn: LeRobot observation -> float (14,) end-effector state (forward kinematics).
        action_fn: ``(target (14,), last LeRobot observation) -> action dict`` (inverse
            kinematics; the observation seeds the solver).
        home_fn: Moves the robot to its start pose and blocks (``None``: homing does nothing,
            so the operator must place the arms).
        hold_fn: LeRobot observation -> the action that holds the current pose; by default the
            measured value of every ``action_features`` key found in the observation.
        calibrate: Passed to ``robot.connect``.
    """

    def __init__(
        self,
        robot: Any,
        *,
        cameras: Mapping[str, str],
        state_fn: StateFn,
        action_fn: ActionFn,
        home_fn: Callable[[Any], None] | None = None,
        hold_fn: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None,
        calibrate: bool = False,
    ) -> None:
        self.robot = robot
        self.cameras = dict(cameras)
        self.state_fn, self.action_fn = state_fn, action_fn
        self.home_fn, self.hold_fn = home_fn, hold_fn
        self.calibrate = calibrate
        self._last: Mapping[str, Any] | None = None

    @classmethod
    def from_config(cls, robot_config: Any, **kwargs: Any) -> LeRobotAdapter:
        """Build the LeRobot robot from its config (``lerobot.robots.make_robot_from_config``)."""
        robots = import_lerobot_robots()
        make = getattr(robots, "make_robot_from_config", None)
        if make is None:  # lerobot 0.3/0.4 keep the factory in a submodule
            make = importlib.import_module("lerobot.robots.utils").make_robot_from_config
        return cls(make(robot_config), **kwargs)

    def connect(self) -> None:
        """Connect (idempotent)."""
        if not getattr(self.robot, "is_connected", False):
            self.robot.connect(calibrate=self.calibrate)

    def observe(self) -> RobotObservation:
        """Read the LeRobot observation and map it to images + end-effector state."""
        raw = self.robot.get_observation()
        now = time.time()
        self._last = raw
        images = {}
        for name, key in self.cameras.items():
            if key not in raw:
                raise RobotError(f"LeRobot observation has no camera key {key!r} (for {name!r})")
            images[name] = np.asarray(raw[key], dtype=np.uint8)
        state = np.asarray(self.state_fn(raw), dtype=np.float64)
        if state.shape != (STATE_DIM,):
            raise RobotError(f"state_fn must return shape ({STATE_DIM},), got {state.shape}")
        stamps = dict.fromkeys(images, now) | {"state": now}
        return RobotObservation(images, state, stamps)

    def act(self, target: np.ndarray) -> None:
        """Send the action ``action_fn`` computes for ``target``."""
        if self._last is None:
            self._last = self.robot.get_observation()
        self.robot.send_action(self.action_fn(np.asarray(target, dtype=np.float64), self._last))

    def home(self, seed: int | None = None) -> None:
        """Run ``home_fn`` if given."""
        if self.home_fn is not None:
            self.home_fn(self.robot)
        self._last = None

    def stop(self) -> None:
        """Hold the current pose (position-controlled motors stop where they are)."""
        raw = self.robot.get_observation()
        if self.hold_fn is not None:
            action = self.hold_fn(raw)
        else:
            keys = getattr(self.robot, "action_features", {})
            action = {k: raw[k] for k in keys if k in raw}
        if action:
            self.robot.send_action(action)

    def close(self) -> None:
        """Disconnect (idempotent)."""
        if getattr(self.robot, "is_connected", False):
            self.robot.disconnect()
