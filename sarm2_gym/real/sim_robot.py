"""Stand a simulated task behind the robot interface, so the real-robot stack can be run on it.

:class:`SimulatedRobot` turns each absolute target back into the task's normalised delta action
(:func:`~sarm2_gym.real.actions.target_to_action`) and steps the env once per :meth:`act`. The
simulator's ``is_success``, ``primitive``, ``stage`` and (privileged) ``progress`` are reported
in :attr:`RobotObservation.extras`; :class:`~sarm2_gym.real.env.RealRobotEnv` never copies
``progress`` into ``info``, exactly as on hardware.

Example:
    >>> import gymnasium as gym
    >>> robot = SimulatedRobot.from_id("SARM2-FoldShorts-v0")  # doctest: +SKIP
    >>> robot.connect(); robot.home(seed=0)                    # doctest: +SKIP
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np

from sarm2_gym.real.actions import target_to_action
from sarm2_gym.real.config import STATE_DIM, RobotConfig, default_robot_config
from sarm2_gym.real.errors import RobotError
from sarm2_gym.real.interface import RobotObservation

__all__ = ["SimulatedRobot", "success_from_extras"]

_EXTRA_KEYS = ("is_success", "primitive", "stage", "progress", "sparse_reward")


class SimulatedRobot:
    """A :class:`~sarm2_gym.real.interface.RobotInterface` backed by a Gymnasium env.

    The env must have the task observation contract: a ``Dict`` with ``state`` (14,) and one
    uint8 image per camera of ``config.cameras``, and the 14-D normalised delta action.

    Args:
        env: The env (owned: :meth:`close` closes it).
        config: Action scale and cameras; the shipped simulated-robot config by default.

    Attributes:
        stops: Number of :meth:`stop` calls (the simulation holds still by not stepping).
        episode_over: The env terminated or truncated; further targets are ignored until
            :meth:`home`, as a robot that finished its task would hold its pose.
    """

    def __init__(self, env: gym.Env[Any, Any], config: RobotConfig | None = None) -> None:
        self.env = env
        self.config = config or default_robot_config()
        space = env.observation_space
        missing = [
            k for k in ("state", *self.config.cameras) if k not in getattr(space, "spaces", {})
        ]
        if missing:
            raise ValueError(f"env observation space lacks {missing}; need obs_mode='rgb'")
        self._obs: dict[str, Any] | None = None
        self._info: dict[str, Any] = {}
        self.episode_over = False
        self.stops = 0

    @classmethod
    def from_id(
        cls, env_id: str, config: RobotConfig | None = None, **kwargs: Any
    ) -> SimulatedRobot:
        """``gym.make(env_id, obs_mode="rgb", **kwargs)`` behind the interface."""
        kwargs.setdefault("obs_mode", "rgb")
        cfg = config or default_robot_config()
        kwargs.setdefault("image_size", cfg.image_size)
        return cls(gym.make(env_id, **kwargs), cfg)

    @property
    def instruction(self) -> str:
        """The task's language instruction, if the env has one."""
        return str(getattr(self.env.unwrapped, "instruction", ""))

    def connect(self) -> None:
        """Nothing to connect; the env is reset by :meth:`home`."""

    def observe(self) -> RobotObservation:
        """The latest env observation, with the simulator's labels as extras."""
        if self._obs is None:
            raise RobotError("simulated robot not homed yet: call home() first")
        now = time.time()
        images = {cam: np.array(self._obs[cam], dtype=np.uint8) for cam in self.config.cameras}
        extras = {k: self._info[k] for k in _EXTRA_KEYS if k in self._info}
        extras["episode_over"] = self.episode_over
        stamps = dict.fromkeys(images, now) | {"state": now}
        return RobotObservation(
            images, np.array(self._obs["state"], dtype=np.float64), stamps, extras
        )

    def act(self, target: np.ndarray) -> None:
        """Step the env once toward ``target``."""
        if self._obs is None:
            raise RobotError("simulated robot not homed yet: call home() first")
        if self.episode_over:
            return
        target = np.asarray(target, dtype=np.float64)
        if target.shape != (STATE_DIM,):
            raise ValueError(f"target must have shape ({STATE_DIM},)")
        action = target_to_action(np.asarray(self._obs["state"]), target, self.config)
        obs, _, terminated, truncated, info = self.env.step(action)
        self._obs, self._info = obs, dict(info)
        self.episode_over = bool(terminated or truncated)

    def home(self, seed: int | None = None) -> None:
        """Reset the env (``seed`` makes it reproducible)."""
        obs, info = self.env.reset(seed=seed)
        self._obs, self._info = obs, dict(info)
        self.episode_over = False

    def stop(self) -> None:
        """Count the stop; a simulation holds still between steps."""
        self.stops += 1

    def close(self) -> None:
        """Close the env."""
        self.env.close()


def success_from_extras(obs: dict[str, np.ndarray], robot_obs: RobotObservation) -> bool:
    """A ``success_fn`` for :class:`~sarm2_gym.real.env.RealRobotEnv` that trusts the simulator.

    Only meaningful behind a :class:`SimulatedRobot`; on hardware the operator labels success.
    """
    return bool(robot_obs.extras.get("is_success", False))
