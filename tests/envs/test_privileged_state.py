from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from sarm2_gym.envs.privileged_state import PrivilegedState


def test_adds_the_tasks_privileged_state_to_every_observation() -> None:
    env = PrivilegedState(gym.make("SARM2-CleanWhiteboard-v0", image_size=32))
    obs, _ = env.reset(seed=0)
    task = env.unwrapped
    assert obs["env_state"].dtype == np.float32 and obs["env_state"].shape == (15,)
    assert np.array_equal(obs["env_state"], task.privileged_state())  # type: ignore[attr-defined]
    assert env.observation_space.contains(obs)
    before = obs["env_state"]
    for _ in range(3):
        obs, *_ = env.step(env.action_space.sample())
    assert np.array_equal(obs["env_state"], task.privileged_state())  # type: ignore[attr-defined]
    assert not np.array_equal(obs["env_state"], before)  # the arm moved the eraser or the state
    # the images and the robot state are those of the env underneath
    assert set(obs) == {"left_wrist", "right_wrist", "top", "state", "env_state"}
    env.close()


@pytest.mark.filterwarnings("ignore:.*different from the unwrapped version")
def test_passes_gymnasiums_checker() -> None:
    env = PrivilegedState(gym.make("SARM2-PlatesIntoBin-v0", image_size=32))
    check_env(env.unwrapped)
    check_env(env, skip_render_check=True)
    env.close()


def test_refuses_envs_without_a_privileged_state_or_with_one_already() -> None:
    with pytest.raises(ValueError, match="has no privileged state"):
        PrivilegedState(gym.make("CartPole-v1"))
    with pytest.raises(ValueError, match="already has 'env_state'"):
        PrivilegedState(gym.make("SARM2-CleanWhiteboard-v0", obs_mode="state"))
