"""SB3 companions of the reward wrappers: logging and replay-buffer relabelling."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback

from sarm2_gym.reward.model import SARM2RewardModel
from sarm2_gym.wrappers.observations import ObservationAdapter
from sarm2_gym.wrappers.scoring import RewardConfig, RewardScorer

__all__ = ["SARM2LoggingCallback", "relabel_replay_buffer"]


class SARM2LoggingCallback(BaseCallback):
    """Logs what a SARM2-wrapped run does, per finished episode, to the SB3 logger.

    Keys: ``sarm2/wrapped_return`` (the dense return the agent optimises),
    ``sarm2/sparse_return`` (the env's own return), ``sarm2/success_rate`` and
    ``sarm2/final_progress`` / ``sarm2/mean_progress`` (the model's reading at the end / over the
    episode), averaged over the episodes finished since the last dump.

    Args:
        verbose: SB3 verbosity.
    """

    def __init__(self, verbose: int = 0) -> None:
        super().__init__(verbose)
        self._wrapped: np.ndarray = np.zeros(0)
        self._sparse: np.ndarray = np.zeros(0)
        self._progress_sum: np.ndarray = np.zeros(0)
        self._steps: np.ndarray = np.zeros(0)

    def _on_training_start(self) -> None:
        n = self.training_env.num_envs if self.training_env is not None else 1
        self._wrapped, self._sparse = np.zeros(n), np.zeros(n)
        self._progress_sum, self._steps = np.zeros(n), np.zeros(n)

    def _on_step(self) -> bool:
        rewards = np.asarray(self.locals["rewards"], dtype=np.float64)
        infos: Sequence[Mapping[str, Any]] = self.locals["infos"]
        dones = np.asarray(self.locals["dones"], dtype=bool)
        self._wrapped += rewards
        for i, info in enumerate(infos):
            self._sparse[i] += float(info.get("sparse_reward", 0.0))
            progress = info.get("sarm2", {}).get("progress")
            if progress is not None:
                self._progress_sum[i] += progress
                self._steps[i] += 1
            if dones[i]:
                self.logger.record_mean("sarm2/wrapped_return", float(self._wrapped[i]))
                self.logger.record_mean("sarm2/sparse_return", float(self._sparse[i]))
                self.logger.record_mean(
                    "sarm2/success_rate", float(bool(info.get("is_success", False)))
                )
                if progress is not None:
                    self.logger.record_mean("sarm2/final_progress", float(progress))
                if self._steps[i]:
                    self.logger.record_mean(
                        "sarm2/mean_progress", float(self._progress_sum[i] / self._steps[i])
                    )
                self._wrapped[i] = self._sparse[i] = self._progress_sum[i] = self._steps[i] = 0.0
        return True


def relabel_replay_buffer(
    buffer: ReplayBuffer | DictReplayBuffer,
    model: SARM2RewardModel,
    instruction: str,
    *,
    adapter: ObservationAdapter | None = None,
    config: RewardConfig | None = None,
) -> np.ndarray:
    """Recompute the rewards of an off-policy replay buffer with a (re-trained) SARM2 model.

    The buffer is walked in insertion order per env; ``dones`` split it into episodes, each
    replayed through a fresh :class:`RewardScorer` exactly as the wrappers score them online.
    The first stored transition of a wrapped-around buffer has lost its episode start, so that
    partial episode is scored from the oldest frame still stored.

    Args:
        buffer: An SB3 ``DictReplayBuffer`` (image observations) holding the transitions.
        model: The reward model to score with.
        instruction: The task instruction.
        adapter: Observation mapping (default: the model's camera names and ``state``).
        config: Reward semantics (default: the paper's ``"delta"``).

    Returns:
        The new rewards, shape ``(buffer_size or pos, n_envs)``, also written into ``buffer``.
    """
    if not isinstance(buffer, DictReplayBuffer):
        raise TypeError("relabel_replay_buffer needs a DictReplayBuffer of image observations")
    cfg = model.config
    adapter = adapter or ObservationAdapter(cfg.camera_names, cfg.image_size, cfg.state_dim)
    size = buffer.buffer_size if buffer.full else buffer.pos
    order = (np.arange(size) + buffer.pos) % buffer.buffer_size if buffer.full else np.arange(size)
    new = np.zeros((size, buffer.n_envs), dtype=np.float32)
    for env in range(buffer.n_envs):
        scorer = RewardScorer(model, 1, instruction, config)
        start = True
        for t in order:
            if start:
                obs = {k: v[t, env][None] for k, v in buffer.observations.items()}
                scorer.reset([0], *adapter.batch(obs, 1))
                start = False
            nxt = {k: v[t, env][None] for k, v in buffer.next_observations.items()}
            done = bool(buffer.dones[t, env])
            timeout = bool(buffer.timeouts[t, env]) if hasattr(buffer, "timeouts") else False
            r, _ = scorer.step(
                *adapter.batch(nxt, 1),
                env_rewards=np.zeros(1),
                successes=np.zeros(1, dtype=bool),
                terminal=np.array([done]),
                terminated=np.array([done and not timeout]),
            )
            new[t, env] = r[0]
            start = done
    buffer.rewards[order] = new
    return new
