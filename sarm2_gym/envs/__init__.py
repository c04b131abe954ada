"""Benchmark environments; importing this module registers them with Gymnasium.

Example:
    >>> import gymnasium as gym
    >>> import sarm2_gym
    >>> env = gym.make("SARM2-CleanWhiteboard-v0", obs_mode="state")
    >>> obs, info = env.reset(seed=0)
    >>> info["task"], info["stage"]
    ('clean whiteboard WITH whiteboard eraser', 0)
    >>> env.close()
"""

from __future__ import annotations

import gymnasium as gym

from sarm2_gym.envs.past_states import PAST_STATES_KEY, PastStates
from sarm2_gym.envs.registry import TASKS, TaskInfo, expert_for, implemented_tasks, task_by_id

__all__ = [
    "PAST_STATES_KEY",
    "TASKS",
    "PastStates",
    "TaskInfo",
    "expert_for",
    "implemented_tasks",
    "task_by_id",
]

for _task in implemented_tasks():
    if _task.env_id not in gym.registry:
        gym.register(
            id=_task.env_id,
            entry_point="sarm2_gym.envs.factory:make_task_env",
            max_episode_steps=_task.max_episode_steps,
            kwargs={"task": _task.env_id},
        )
