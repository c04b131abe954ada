"""SARM2 reward wrappers for Gymnasium envs, Gymnasium vector envs and SB3 ``VecEnv`` s.

One batched scoring core (:class:`RewardScorer`) behind three faces: :class:`SARM2Reward`,
:class:`SARM2VectorReward` and :class:`SARM2VecEnvWrapper`.
"""

from __future__ import annotations

from sarm2_gym.envs.past_states import PastStates
from sarm2_gym.wrappers.callbacks import SARM2LoggingCallback, relabel_replay_buffer
from sarm2_gym.wrappers.factory import PACKAGED_MODEL_DIR, load_reward_model, wrap_with_sarm2
from sarm2_gym.wrappers.gym_wrapper import SARM2Reward
from sarm2_gym.wrappers.observations import RENDER, ObservationAdapter
from sarm2_gym.wrappers.resize import ResizeCameras
from sarm2_gym.wrappers.sb3_wrapper import SARM2VecEnvWrapper
from sarm2_gym.wrappers.scoring import (
    REWARD_MODES,
    RewardConfig,
    RewardScorer,
    RunningRewardNormalizer,
)
from sarm2_gym.wrappers.vector_wrapper import SARM2VectorReward

__all__ = [
    "PACKAGED_MODEL_DIR",
    "RENDER",
    "REWARD_MODES",
    "ObservationAdapter",
    "PastStates",
    "ResizeCameras",
    "RewardConfig",
    "RewardScorer",
    "RunningRewardNormalizer",
    "SARM2LoggingCallback",
    "SARM2Reward",
    "SARM2VecEnvWrapper",
    "SARM2VectorReward",
    "load_reward_model",
    "relabel_replay_buffer",
    "wrap_with_sarm2",
]
