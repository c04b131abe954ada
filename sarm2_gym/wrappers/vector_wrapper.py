"""``SARM2VectorReward``: SARM2 dense rewards for a Gymnasium vector env, one forward per step."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium.utils import RecordConstructorArgs
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper

from sarm2_gym.reward.model import SARM2RewardModel
from sarm2_gym.wrappers.observations import ObservationAdapter
from sarm2_gym.wrappers.scoring import RewardConfig, RewardScorer

__all__ = ["SARM2VectorReward"]


def _rows(
    frames: Mapping[str, np.ndarray], state: np.ndarray, idx: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    return {c: f[idx] for c, f in frames.items()}, state[idx]


class SARM2VectorReward(VectorWrapper, RecordConstructorArgs):
    """Replace a vector env's rewards with SARM2's dense reward, batched over the envs.

    Every autoreset mode is handled so that the frame an episode ended on is scored and the next
    episode starts with an empty history: ``NEXT_STEP`` (the reset step that follows a finished
    episode gets reward 0 and becomes the new anchor frame), ``SAME_STEP`` (``final_obs`` is
    scored, then the reset observation becomes the anchor) and ``DISABLED`` (call ``reset`` with
    ``options={"reset_mask": ...}``). ``infos["sparse_reward"]`` holds the env's own rewards and
    ``infos["sarm2"]`` the model's readings (arrays over envs).

    Args:
        env: The vector env.
        model: A SARM2 reward model.
        instruction: Instruction of every env; default each sub-env's ``instruction`` attribute.
        camera_keys: Model camera -> observation key (or ``"render"``); default same names.
        state_key: Observation key of the state, or ``None`` for zeros.
        missing_cameras: ``"zeros"`` or ``"repeat"``.
        resize: Resize frames of another size instead of raising.
        **reward_kwargs: :class:`~sarm2_gym.wrappers.scoring.RewardConfig` fields.

    Example:
        >>> import gymnasium as gym
        >>> import sarm2_gym
        >>> from sarm2_gym.reward.testing import tiny_model
        >>> envs = gym.make_vec("SARM2-CleanWhiteboard-v0", num_envs=2, vectorization_mode="sync")
        >>> envs = SARM2VectorReward(envs, tiny_model())
        >>> obs, infos = envs.reset(seed=0)
        >>> obs, rewards, terminated, truncated, infos = envs.step(envs.action_space.sample())
        >>> rewards.shape, infos["sparse_reward"].tolist()
        ((2,), [0.0, 0.0])
        >>> envs.close()
    """

    def __init__(
        self,
        env: VectorEnv,
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
        VectorWrapper.__init__(self, env)
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
        self.adapter.validate_space(env.single_observation_space)
        self.autoreset_mode = AutoresetMode(
            env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        )
        instructions: str | list[str]
        if instruction:
            instructions = instruction
        else:
            try:
                instructions = list(env.get_attr("instruction"))  # type: ignore[attr-defined]
            except AttributeError:
                raise ValueError(
                    "instruction is required: the sub-envs have no .instruction attribute"
                ) from None
        self.scorer = RewardScorer(
            model, self.num_envs, instructions, RewardConfig(**reward_kwargs)
        )
        self._pending_reset = np.zeros(self.num_envs, dtype=bool)

    def _inputs(self, obs: Any) -> tuple[dict[str, np.ndarray], np.ndarray]:
        rendered = self.env.render() if self.adapter.uses_render else None
        return self.adapter.batch(obs if isinstance(obs, Mapping) else {}, self.num_envs, rendered)  # type: ignore[arg-type]

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset (all envs, or those in ``options["reset_mask"]``) and restart their histories."""
        mask = None if options is None else options.get("reset_mask")
        obs, infos = self.env.reset(seed=seed, options=options)  # type: ignore[arg-type]
        idx = np.arange(self.num_envs) if mask is None else np.flatnonzero(mask)
        frames, state = self._inputs(obs)
        self.scorer.reset(idx.tolist(), *_rows(frames, state, idx))
        self._pending_reset[idx] = False
        return obs, infos

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step all envs; score the new frames of every live episode in one forward pass."""
        obs, env_rewards, terminated, truncated, infos = self.env.step(actions)
        frames, state = self._inputs(obs)
        done = np.logical_or(terminated, truncated)
        successes = _info_array(infos, "is_success", self.num_envs)
        live = np.ones(self.num_envs, dtype=bool)

        if self.autoreset_mode == AutoresetMode.NEXT_STEP and self._pending_reset.any():
            # These envs were reset by this step: their frame starts a new history, reward 0.
            fresh = np.flatnonzero(self._pending_reset)
            self.scorer.reset(fresh.tolist(), *_rows(frames, state, fresh))
            live[fresh] = False
        if self.autoreset_mode == AutoresetMode.SAME_STEP and done.any():
            # The step already reset these envs: score the frame the episode ended on.
            final_frames, final_state = self._final_inputs(infos, done)
            for cam in frames:
                frames[cam] = frames[cam].copy()
            reset_frames, reset_state = _rows(frames, state, np.flatnonzero(done))
            for cam in frames:
                frames[cam][done] = final_frames[cam]
            state = state.copy()
            state[done] = final_state
            successes[done] = _final_info_array(infos, "is_success", self.num_envs)[done]

        rewards = np.zeros(self.num_envs, dtype=np.float32)
        readings: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        idx = np.flatnonzero(live)
        if idx.size:
            r, infos_live = self.scorer.step(
                *_rows(frames, state, idx),
                env_rewards=np.asarray(env_rewards)[idx],
                successes=successes[idx],
                terminal=done[idx],
                terminated=np.asarray(terminated)[idx],
                env_indices=idx.tolist(),
            )
            rewards[idx] = r
            for k, i in enumerate(idx):
                readings[i] = infos_live[k]
        if self.autoreset_mode == AutoresetMode.SAME_STEP and done.any():
            self.scorer.reset(np.flatnonzero(done).tolist(), reset_frames, reset_state)
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            self._pending_reset = done.copy()

        infos = dict(infos)
        infos["sparse_reward"] = np.asarray(env_rewards, dtype=np.float64)
        infos["_sparse_reward"] = np.ones(self.num_envs, dtype=bool)
        infos["sarm2"] = _stack_readings(readings)
        infos["_sarm2"] = live
        return obs, rewards, terminated, truncated, infos

    def _final_inputs(
        self, infos: dict[str, Any], done: np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        final = infos["final_obs"]
        idx = np.flatnonzero(done)
        if isinstance(final, Mapping):  # Dict spaces: a dict of arrays over all envs
            obs = {k: np.asarray(v)[idx] for k, v in final.items()}
        else:  # object array of per-env observations
            obs = {k: np.stack([final[i][k] for i in idx]) for k in final[idx[0]]}
        rendered = None
        if self.adapter.uses_render:
            rendered = [np.asarray(f) for f in np.asarray(self.env.render())[idx]]
        return self.adapter.batch(obs, len(idx), rendered)


def _info_array(infos: Mapping[str, Any], key: str, n: int) -> np.ndarray:
    values = infos.get(key)
    if values is None:
        return np.zeros(n, dtype=bool)
    mask = infos.get(f"_{key}", np.ones(n, dtype=bool))
    return np.asarray(values, dtype=bool) & np.asarray(mask, dtype=bool)


def _final_info_array(infos: Mapping[str, Any], key: str, n: int) -> np.ndarray:
    final = infos.get("final_info")
    if isinstance(final, Mapping):
        return _info_array(final, key, n)
    return np.zeros(n, dtype=bool)


def _stack_readings(readings: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    keys = ("progress", "primitive", "primitive_name", "group", "confidence", "queried")
    defaults: dict[str, Any] = {
        "progress": np.nan,
        "primitive": -1,
        "primitive_name": "",
        "group": -1,
        "confidence": np.nan,
        "queried": False,
    }
    return {k: np.array([r.get(k, defaults[k]) for r in readings]) for k in keys}
