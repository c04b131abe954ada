"""``PrivilegedProgressReward``: the simulator's own progress as a dense reward (an ORACLE).

For development runs only: it reads ``info["progress"]``, the task progress the benchmark's
simulated tasks compute from their privileged state, as if it were SARM2's reading, and turns it
into rewards with the same ``"delta"`` math as :class:`~sarm2_gym.wrappers.SARM2Reward` (the mean
of the last ``smoothing_window`` readings, never allowed to fall, rewarded by its increase). It
is what SPIRAL's privileged labeller gives its rollouts, so PPO can be compared against SPIRAL
on the same dense signal. No robot has it: it is not SARM2.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from sarm2_gym.common.smoothed_progress import SMOOTHING_WINDOW, SmoothedProgress

__all__ = ["PrivilegedProgressReward"]


class PrivilegedProgressReward(gym.Wrapper[Any, Any, Any, Any]):
    """Replace an env's reward with increases of its smoothed privileged progress.

    The env's own reward goes to ``info["sparse_reward"]``. An episode's rewards sum to its
    highest smoothed progress, so they are at most 1.

    Args:
        env: An env whose ``step`` info holds ``"progress"`` in [0, 1].
        smoothing_window: Readings averaged (spec §1.8: 5, as SARM2's ``"delta"`` rewards).

    Raises:
        ValueError: At construction for a window below 1; at a step whose info has no
            ``"progress"`` (the env has no privileged progress: use a reward model).
    """

    def __init__(self, env: gym.Env[Any, Any], smoothing_window: int = SMOOTHING_WINDOW) -> None:
        super().__init__(env)
        self.progress = SmoothedProgress(smoothing_window)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the env and the reading history."""
        self.progress.reset()
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env; the reward is the increase of the smoothed progress."""
        obs, env_reward, terminated, truncated, info = self.env.step(action)
        if "progress" not in info:
            raise ValueError(
                "PrivilegedProgressReward needs info['progress'] (the benchmark's simulated "
                "tasks give it); this env has none"
            )
        reward = self.progress.add(float(np.clip(info["progress"], 0.0, 1.0)))
        return obs, reward, terminated, truncated, dict(info, sparse_reward=float(env_reward))
