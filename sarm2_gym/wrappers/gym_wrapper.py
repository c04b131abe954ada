"""``SARM2Reward``: SARM2 dense rewards for one Gymnasium env."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium.utils import RecordConstructorArgs

from sarm2_gym.reward.model import SARM2RewardModel
from sarm2_gym.wrappers.observations import ObservationAdapter
from sarm2_gym.wrappers.scoring import RewardConfig, RewardScorer

__all__ = ["SARM2Reward"]


class SARM2Reward(gym.Wrapper[Any, Any, Any, Any], RecordConstructorArgs):
    """Replace an env's reward with SARM2's dense stage-aware reward.

    The env's own reward goes to ``info["sparse_reward"]``; the model's reading (progress,
    primitive name and index, group, confidence) to ``info["sarm2"]``. A full ``Wrapper`` rather
    than a ``RewardWrapper``: the reward depends on the observation.

    Args:
        env: The env to wrap.
        model: A SARM2 reward model (e.g. ``SARM2RewardModel.from_pretrained(dir)``).
        instruction: The task instruction; default ``env.unwrapped.instruction``.
        camera_keys: Model camera -> observation key (or ``"render"``); default same names.
        state_key: Observation key of the 14-d state, or ``None`` to feed zeros.
        missing_cameras: ``"zeros"`` or ``"repeat"`` for model cameras without a key.
        resize: Resize frames of another size instead of raising.
        **reward_kwargs: :class:`~sarm2_gym.wrappers.scoring.RewardConfig` fields
            (``reward_mode``, ``query_every``, ``success_bonus``, ``env_reward_weight``, ...).

    Example:
        >>> import gymnasium as gym
        >>> import sarm2_gym
        >>> from sarm2_gym.reward.testing import tiny_model
        >>> env = SARM2Reward(gym.make("SARM2-CleanWhiteboard-v0"), tiny_model(), query_every=1)
        >>> obs, info = env.reset(seed=0)
        >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        >>> sorted(info["sarm2"])
        ['confidence', 'group', 'primitive', 'primitive_name', 'progress', 'queried']
        >>> info["sparse_reward"], reward >= 0.0
        (0.0, True)
        >>> env.close()
    """

    def __init__(
        self,
        env: gym.Env[Any, Any],
        model: SARM2RewardModel,
        instruction: str | None = None,
        camera_keys: Mapping[str, str] | None = None,
        state_key: str | None = "state",
        missing_cameras: str = "zeros",
        resize: bool = False,
        **reward_kwargs: Any,
    ) -> None:
        RecordConstructorArgs.__init__(
            self,
            model=model,
            instruction=instruction,
            camera_keys=camera_keys,
            state_key=state_key,
            missing_cameras=missing_cameras,
            resize=resize,
            **reward_kwargs,
        )
        gym.Wrapper.__init__(self, env)
        cfg = model.config
        self.adapter = ObservationAdapter(
            cfg.camera_names,
            cfg.image_size,
            cfg.state_dim,
            camera_keys,
            state_key,
            missing_cameras,
            resize,
        )
        self.adapter.validate_space(env.observation_space)
        if self.adapter.uses_render and env.render_mode != "rgb_array":
            raise ValueError(
                "camera_keys uses env.render(): make the env with render_mode='rgb_array'"
            )
        instruction = instruction or getattr(env.unwrapped, "instruction", None)
        if not instruction:
            raise ValueError("instruction is required: this env has no .instruction attribute")
        self.instruction = instruction
        self.scorer = RewardScorer(model, 1, instruction, RewardConfig(**reward_kwargs))

    def _inputs(self, obs: Any) -> tuple[dict[str, np.ndarray], np.ndarray]:
        rendered = [self.env.render()] if self.adapter.uses_render else None
        mapping = obs if isinstance(obs, Mapping) else {}
        return self.adapter.batch({k: np.asarray(v)[None] for k, v in mapping.items()}, 1, rendered)  # type: ignore[arg-type]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the env and start a new reward history from its first frame."""
        obs, info = self.env.reset(seed=seed, options=options)
        frames, state = self._inputs(obs)
        self.scorer.reset([0], frames, state)
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env and return SARM2's reward for the new frame."""
        obs, env_reward, terminated, truncated, info = self.env.step(action)
        frames, state = self._inputs(obs)
        rewards, readings = self.scorer.step(
            frames,
            state,
            env_rewards=np.array([float(env_reward)]),
            successes=np.array([bool(info.get("is_success", False))]),
            terminal=np.array([terminated or truncated]),
            terminated=np.array([terminated]),
        )
        info = dict(info, sparse_reward=float(env_reward), sarm2=readings[0])
        return obs, float(rewards[0]), terminated, truncated, info
