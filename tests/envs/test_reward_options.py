"""``reward_options``: how a benchmark env's dense reward is made from its readings."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import pytest

from sarm2_gym.algos.baselines.ppo import PPORunConfig, _make_env
from sarm2_gym.envs.privileged_reward import PrivilegedProgressReward

TASK = "SARM2-CleanWhiteboard-v0"


def _find(env: Any, kind: type) -> Any:
    while not isinstance(env, kind):
        env = env.env
    return env


def test_the_privileged_reward_takes_its_smoothing_window() -> None:
    env = gym.make(TASK, reward="privileged", reward_options={"smoothing_window": 2})
    assert _find(env, PrivilegedProgressReward).progress.readings.maxlen == 2
    env.close()
    default = gym.make(TASK, reward="privileged")
    assert _find(default, PrivilegedProgressReward).progress.readings.maxlen == 5
    default.close()
    with pytest.raises(ValueError, match="smoothing_window only, got \\['query_every'\\]"):
        gym.make(TASK, reward="privileged", reward_options={"query_every": 3})
    with pytest.raises(ValueError, match="sparse reward takes no reward_options"):
        gym.make(TASK, reward_options={"smoothing_window": 2})


def test_the_sarm2_reward_takes_the_labellers_query_gap_and_window() -> None:
    from sarm2_gym.wrappers import SARM2Reward

    env = gym.make(TASK, reward="sarm2", reward_options={"query_every": 3, "smoothing_window": 2})
    scorer = _find(env, SARM2Reward).scorer
    assert (scorer.query_every, scorer.config.smoothing_window) == (3, 2)
    env.close()
    with pytest.raises(ValueError, match="unknown reward_options \\['window'\\]"):
        gym.make(TASK, reward="sarm2", reward_options={"window": 2})


def test_ppo_passes_its_reward_options_to_its_envs() -> None:
    config = PPORunConfig(
        task=TASK,
        out="unused",
        timesteps=1,
        reward="privileged",
        reward_options={"smoothing_window": 3},
        n_envs=1,
        obs_mode="state",
    )
    venv = _make_env(config)
    assert _find(venv.envs[0], PrivilegedProgressReward).progress.readings.maxlen == 3
    venv.close()
    with pytest.raises(ValueError, match="sparse reward takes no reward_options"):
        PPORunConfig(task=TASK, out="o", timesteps=1, reward_options={"smoothing_window": 3})
