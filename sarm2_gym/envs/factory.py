"""Entry point behind every ``SARM2-<Task>-v0`` id: builds the task env and its reward.

``gym.make(id, reward=...)`` passes ``reward`` here: ``"sparse"`` (default) is the env's own
success reward; ``"sarm2"`` wraps the env with the packaged SARM2 reward model and
``"sarm2:<dir>"`` with a checkpoint directory (see :mod:`sarm2_gym.wrappers`); ``"privileged"``
gives the simulator's own progress as dense rewards, an oracle for development runs
(:class:`~sarm2_gym.envs.privileged_reward.PrivilegedProgressReward`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym

from sarm2_gym.envs.past_states import PastStates
from sarm2_gym.envs.privileged_reward import PrivilegedProgressReward
from sarm2_gym.envs.registry import env_class, task_by_id

__all__ = ["make_task_env"]


def make_task_env(
    task: str,
    reward: str = "sparse",
    past_states: int = 0,
    past_state_stride: int = 1,
    reward_options: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> gym.Env:
    """Build the env of ``task`` with the requested reward.

    Args:
        task: Gymnasium id of the task.
        reward: ``"sparse"``, ``"sarm2"``, ``"sarm2:<checkpoint dir>"`` or ``"privileged"``
            (an oracle: the simulator's progress as SARM2's ``"delta"`` rewards).
        past_states: With ``n >= 1``, the observation also holds ``"past_states"``, the ``n``
            states ``past_state_stride`` steps apart before the current one
            (:class:`~sarm2_gym.envs.past_states.PastStates`), for a policy that reads them.
        past_state_stride: Steps between those states.
        reward_options: How the dense reward is made from its readings. ``"sarm2"``:
            :class:`~sarm2_gym.wrappers.scoring.RewardConfig` fields (e.g. ``query_every``,
            ``smoothing_window``), so that online rewards can match an offline labeller's;
            ``"privileged"``: ``smoothing_window`` only; none for ``"sparse"``.
        **kwargs: Forwarded to the task env (``obs_mode``, ``image_size``, ``render_mode``, ...).
            With a SARM2 reward the env renders at the model's image size, and an
            ``image_size`` other than that gives the agent resized images (``ResizeCameras``).

    Note:
        ``gym.make`` keeps its ``max_episode_steps`` argument to itself: the task's own limit
        goes inside the reward wrapper, and a shorter override cuts the episode outside it. The
        model then reads the last frame only if the cut falls on a query step (every
        ``frame_gap`` frames), so up to ``frame_gap - 1`` final frames of progress go uncredited.
        For exact final readings under a shorter limit, build the stack yourself:
        ``wrap_with_sarm2(TimeLimit(env, n))``.

    Raises:
        ValueError: For an unknown reward specification, or ``reward_options`` the reward does
            not take.
    """
    env = _make_with_reward(task, reward, dict(reward_options or {}), kwargs)
    if past_states:
        env = PastStates(env, past_states, past_state_stride)
    return env


def _make_with_reward(
    task: str, reward: str, options: dict[str, Any], kwargs: dict[str, Any]
) -> gym.Env:
    if reward == "sparse":
        if options:
            raise ValueError(f"the sparse reward takes no reward_options, got {sorted(options)}")
        return env_class(task)(**kwargs)
    if reward == "privileged":
        unknown = sorted(set(options) - {"smoothing_window"})
        if unknown:
            raise ValueError(
                f"reward 'privileged' takes reward_options smoothing_window only, got {unknown}"
            )
        return PrivilegedProgressReward(env_class(task)(**kwargs), **options)
    if reward == "sarm2" or reward.startswith("sarm2:"):
        # lazy: pulls in torch
        from sarm2_gym.wrappers import (
            ResizeCameras,
            RewardConfig,
            SARM2Reward,
            load_reward_model,
        )

        unknown = sorted(set(options) - set(RewardConfig.__dataclass_fields__))
        if unknown:
            raise ValueError(
                f"unknown reward_options {unknown} for a SARM2 reward; RewardConfig has "
                f"{sorted(RewardConfig.__dataclass_fields__)}"
            )

        model = load_reward_model(reward.partition(":")[2] or None)
        model_size = model.config.image_size
        wanted: int | None = kwargs.get("image_size")
        # The model scores frames at its own size: render at that size and hand the agent the
        # size it asked for (by default the model's).
        env: gym.Env = env_class(task)(**{**kwargs, "image_size": model_size})
        # gym.make puts its TimeLimit outside this env; the reward wrapper must see the
        # truncation to score the last frame, so the same limit also goes inside it.
        env = gym.wrappers.TimeLimit(env, task_by_id(task).max_episode_steps)
        env = SARM2Reward(env, model, **options)
        return env if wanted is None or wanted == model_size else ResizeCameras(env, wanted)
    raise ValueError(
        f"reward must be 'sparse', 'sarm2', 'sarm2:<checkpoint dir>' or 'privileged', "
        f"got {reward!r}"
    )
