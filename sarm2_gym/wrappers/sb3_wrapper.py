"""``SARM2VecEnvWrapper``: SARM2 dense rewards for a stable-baselines3 ``VecEnv``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

from sarm2_gym.reward.model import SARM2RewardModel
from sarm2_gym.wrappers.observations import ObservationAdapter
from sarm2_gym.wrappers.scoring import RewardConfig, RewardScorer

__all__ = ["SARM2VecEnvWrapper"]


class SARM2VecEnvWrapper(VecEnvWrapper):
    """Replace a ``VecEnv``'s rewards with SARM2's dense reward (one forward pass per step).

    SB3 resets finished envs inside ``step``: the frame an episode ended on is taken from
    ``info["terminal_observation"]`` and scored, then the reset observation starts the env's new
    history. Each env's info gets ``sparse_reward`` (and imitation's ``original_env_rew``) with
    the env's own reward and ``sarm2`` with the model's reading. Put ``VecNormalize`` or
    ``VecMonitor`` outside this wrapper so they see the dense reward.

    Args:
        venv: The vectorised env.
        model: A SARM2 reward model.
        instruction: Instruction of every env; default each env's ``instruction`` attribute.
        camera_keys: Model camera -> observation key (or ``"render"``); default same names.
        state_key: Observation key of the state, or ``None`` for zeros.
        missing_cameras: ``"zeros"`` or ``"repeat"``.
        resize: Resize frames of another size instead of raising.
        **reward_kwargs: :class:`~sarm2_gym.wrappers.scoring.RewardConfig` fields.

    Example:
        >>> import gymnasium as gym
        >>> import sarm2_gym
        >>> from stable_baselines3.common.vec_env import DummyVecEnv
        >>> from sarm2_gym.reward.testing import tiny_model
        >>> venv = DummyVecEnv([lambda: gym.make("SARM2-CleanWhiteboard-v0")] * 2)
        >>> venv = SARM2VecEnvWrapper(venv, tiny_model())
        >>> obs = venv.reset()
        >>> obs, rewards, dones, infos = venv.step(np.stack([venv.action_space.sample()] * 2))
        >>> rewards.shape, infos[0]["sparse_reward"]
        ((2,), 0.0)
        >>> venv.close()
    """

    def __init__(
        self,
        venv: VecEnv,
        model: SARM2RewardModel,
        instruction: str | None = None,
        camera_keys: Mapping[str, str] | None = None,
        state_key: str | None = "state",
        missing_cameras: str = "zeros",
        resize: bool = False,
        **reward_kwargs: Any,
    ) -> None:
        super().__init__(venv)
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
        self.adapter.validate_space(venv.observation_space)
        instructions: str | list[str]
        if instruction:
            instructions = instruction
        else:
            try:
                instructions = [str(t) for t in venv.get_attr("instruction")]
            except AttributeError:
                raise ValueError(
                    "instruction is required: the envs have no .instruction attribute"
                ) from None
        self.scorer = RewardScorer(
            model, self.num_envs, instructions, RewardConfig(**reward_kwargs)
        )

    def _inputs(
        self, obs: Any, idx: np.ndarray | None = None
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        rendered = None
        if self.adapter.uses_render:
            images = self.venv.get_images()
            rendered = [
                np.asarray(images[i]) for i in (range(self.num_envs) if idx is None else idx)
            ]
        n = self.num_envs if idx is None else len(idx)
        return self.adapter.batch(obs if isinstance(obs, Mapping) else {}, n, rendered)

    def reset(self) -> VecEnvObs:
        """Reset every env and start new histories."""
        obs = self.venv.reset()
        frames, state = self._inputs(obs)
        self.scorer.reset(list(range(self.num_envs)), frames, state)
        return obs

    def step_wait(self) -> VecEnvStepReturn:
        """Step, score the new (or terminal) frames, and restart the histories of finished envs."""
        obs, env_rewards, dones, infos = self.venv.step_wait()
        frames, state = self._inputs(obs)
        done_idx = np.flatnonzero(dones)
        reset_frames = {c: f[done_idx] for c, f in frames.items()}
        reset_state = state[done_idx]
        if done_idx.size:
            terminal = {
                k: np.stack([np.asarray(infos[i]["terminal_observation"][k]) for i in done_idx])
                for k in infos[done_idx[0]]["terminal_observation"]
            }
            term_frames, term_state = self._inputs(terminal, done_idx)
            frames = {c: f.copy() for c, f in frames.items()}
            state = state.copy()
            for c in frames:
                frames[c][done_idx] = term_frames[c]
            state[done_idx] = term_state
        truncated = np.array([bool(info.get("TimeLimit.truncated", False)) for info in infos])
        rewards, readings = self.scorer.step(
            frames,
            state,
            env_rewards=np.asarray(env_rewards),
            successes=np.array([bool(info.get("is_success", False)) for info in infos]),
            terminal=np.asarray(dones, dtype=bool),
            terminated=np.asarray(dones, dtype=bool) & ~truncated,
        )
        if done_idx.size:
            self.scorer.reset(done_idx.tolist(), reset_frames, reset_state)
        for i, info in enumerate(infos):
            info["sparse_reward"] = float(env_rewards[i])
            info["original_env_rew"] = float(env_rewards[i])
            info["sarm2"] = readings[i]
        return obs, rewards, dones, infos
