"""SARM2 reward model: stage estimator + multi-gate MoE value head (spec §1.3-§1.8).

Public surface: :class:`SARM2Config`, :class:`SARM2RewardModel` (``forward`` for training,
``predict*`` for numpy inference, ``save_pretrained`` / ``from_pretrained``), the batch type the
training forward takes, the prediction types, and the :class:`StreamingScorer` that reward
wrappers use.
"""

from __future__ import annotations

from sarm2_gym.reward.batch import IGNORE_INDEX, RewardBatch, Sample, build_sample
from sarm2_gym.reward.checkpoint import CheckpointError, load_pretrained, save_pretrained
from sarm2_gym.reward.config import BENCHMARK_INSTRUCTIONS, SARM2Config
from sarm2_gym.reward.encoders.text import TextEmbeddings
from sarm2_gym.reward.model import SARM2RewardModel
from sarm2_gym.reward.outputs import PredictionBatch, PredictionResult, RewardLosses, RewardOutput
from sarm2_gym.reward.streaming import StreamingScorer

__all__ = [
    "BENCHMARK_INSTRUCTIONS",
    "IGNORE_INDEX",
    "CheckpointError",
    "PredictionBatch",
    "PredictionResult",
    "RewardBatch",
    "RewardLosses",
    "RewardOutput",
    "SARM2Config",
    "SARM2RewardModel",
    "Sample",
    "StreamingScorer",
    "TextEmbeddings",
    "build_sample",
    "load_pretrained",
    "save_pretrained",
]
