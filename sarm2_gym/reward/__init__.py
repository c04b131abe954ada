"""SARM2 reward model: stage estimator + multi-gate MoE value head (spec §1.3-§1.8).

Public surface: :class:`SARM2Config`, :class:`SARM2RewardModel` (``forward`` for training,
``predict*`` for numpy inference, ``save_pretrained`` / ``from_pretrained``), the batch type the
training forward takes, the prediction types, the :class:`StreamingScorer` that reward
wrappers use, training (:func:`train_reward_model`, also for the baselines and ablations of
:data:`MODEL_KINDS`), the offline labeller (:func:`label_episode`, :func:`label_dataset`) and
held-out evaluation (:func:`evaluate_model`).
"""

from __future__ import annotations

from sarm2_gym.reward.batch import IGNORE_INDEX, RewardBatch, Sample, build_sample
from sarm2_gym.reward.checkpoint import CheckpointError, load_pretrained, save_pretrained
from sarm2_gym.reward.config import BENCHMARK_INSTRUCTIONS, SARM2Config
from sarm2_gym.reward.encoders.text import TextEmbeddings
from sarm2_gym.reward.evaluation import evaluate_model
from sarm2_gym.reward.kinds import MODEL_KINDS, load_model
from sarm2_gym.reward.labeller import EpisodeLabels, label_dataset, label_episode
from sarm2_gym.reward.model import SARM2RewardModel
from sarm2_gym.reward.outputs import PredictionBatch, PredictionResult, RewardLosses, RewardOutput
from sarm2_gym.reward.streaming import StreamingScorer
from sarm2_gym.reward.trainer import TrainOptions, TrainResult, train_reward_model

__all__ = [
    "BENCHMARK_INSTRUCTIONS",
    "IGNORE_INDEX",
    "MODEL_KINDS",
    "CheckpointError",
    "EpisodeLabels",
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
    "TrainOptions",
    "TrainResult",
    "build_sample",
    "evaluate_model",
    "label_dataset",
    "label_episode",
    "load_model",
    "load_pretrained",
    "save_pretrained",
    "train_reward_model",
]
