"""Every registered task passes both env checkers in both observation modes."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from sarm2_gym.envs.registry import implemented_tasks

IDS = [t.env_id for t in implemented_tasks()]


@pytest.mark.parametrize("obs_mode", ["state", "rgb"])
@pytest.mark.parametrize("env_id", IDS)
def test_env_checkers(env_id: str, obs_mode: str) -> None:
    env = gym.make(env_id, obs_mode=obs_mode)
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=True)
    env.close()


@pytest.mark.parametrize("env_id", IDS)
def test_render_and_spec(env_id: str) -> None:
    env = gym.make(env_id, obs_mode="state", render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (256, 256, 3) and frame.dtype == np.uint8 and frame.std() > 5
    assert env.spec.max_episode_steps and env.spec.max_episode_steps >= 100
    assert env.unwrapped.instruction
    env.close()
