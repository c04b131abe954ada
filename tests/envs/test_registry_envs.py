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


def test_the_benchmark_covers_the_primitive_vocabulary() -> None:
    """Across the tasks the labels span >= 9 primitives and >= 7 of the 8 gate groups."""
    from sarm2_gym.envs.core.primitives import DUMMY, group_of, primitive_index
    from sarm2_gym.envs.registry import env_class

    primitives = {
        primitive_index(s.primitive)
        for t in implemented_tasks()
        for s in env_class(t.env_id).stages
    }
    primitives.add(DUMMY)  # transit and idle frames of every demonstration
    groups = {group_of(p) for p in primitives}
    assert len(primitives) >= 9 and len(groups) >= 7, (sorted(primitives), sorted(groups))
