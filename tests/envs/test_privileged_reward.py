"""The privileged-progress oracle reward: SARM2's delta math on the simulator's own progress."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from sarm2_gym.algos.baselines.ppo import PPORunConfig
from sarm2_gym.envs.privileged_reward import PrivilegedProgressReward
from sarm2_gym.envs.testing import StepIndexEnv


def test_rewards_are_increases_of_the_smoothed_progress() -> None:
    env = PrivilegedProgressReward(StepIndexEnv(min_steps=8, max_steps=8), smoothing_window=3)
    env.reset(seed=0)
    rewards, infos = [], []
    done = False
    while not done:
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        rewards.append(float(reward))
        infos.append(info)
        done = terminated or truncated
    # progress t / 8; smoothed: mean of the last three readings (1/8, 1.5/8, 2/8, 3/8, ...)
    assert rewards[:4] == pytest.approx([1 / 8, 0.5 / 8, 0.5 / 8, 1 / 8])
    assert sum(rewards) == pytest.approx(np.mean([6 / 8, 7 / 8, 1.0]))  # the last smoothed value
    assert min(rewards) >= 0.0
    assert infos[-1]["sparse_reward"] in (0.0, 1.0)
    env.reset(seed=1)  # a new episode starts from nothing
    _, reward, *_ = env.step(env.action_space.sample())
    assert float(reward) == pytest.approx(1 / env.unwrapped._length)  # its first progress


def test_the_smoothed_progress_never_falls() -> None:
    class Dips(StepIndexEnv):
        def _info(self) -> dict[str, Any]:
            info = super()._info()
            info["progress"] = [0.0, 0.6, 0.1, 0.1, 0.9][min(self._t, 4)]
            return info

    env = PrivilegedProgressReward(Dips(min_steps=4, max_steps=4), smoothing_window=1)
    env.reset(seed=0)
    rewards = [float(env.step(env.action_space.sample())[1]) for _ in range(4)]
    assert rewards == pytest.approx([0.6, 0.0, 0.0, 0.3])  # no credit for regaining lost ground


def test_an_env_without_progress_is_refused() -> None:
    class NoProgress(StepIndexEnv):
        def _info(self) -> dict[str, Any]:
            return {k: v for k, v in super()._info().items() if k != "progress"}

    env = PrivilegedProgressReward(NoProgress())
    env.reset(seed=0)
    with pytest.raises(ValueError, match="needs info\\['progress'\\]"):
        env.step(env.action_space.sample())
    with pytest.raises(ValueError, match="smoothing_window"):
        PrivilegedProgressReward(StepIndexEnv(), smoothing_window=0)


def test_benchmark_envs_and_ppo_take_the_privileged_reward() -> None:
    env = gym.make("SARM2-CleanWhiteboard-v0", reward="privileged", obs_mode="state")
    env.reset(seed=0)
    _, reward, _, _, info = env.step(env.action_space.sample() * 0)
    assert float(reward) >= 0.0 and info["sparse_reward"] == 0.0
    env.close()
    assert PPORunConfig(task="t", out="o", timesteps=1, reward="privileged").method == "ppo_sarm2"
    with pytest.raises(ValueError, match="'privileged'"):
        PPORunConfig(task="t", out="o", timesteps=1, reward="oracle")
