"""Baselines SARM2 is judged against, trained on the same data, features and budget.

* :class:`ReWiNDModel` — language-conditioned progress regressor with rewind, no stage estimator.
* :class:`SARMv1Model` — SARM (v1) single-task stage + tau models with the temporal-proportion
  prior, one per task.
* The SARM2 ablations (without stage estimator, single gate, plain MLP head) are
  :class:`~sarm2_gym.reward.model.SARM2RewardModel` with config overrides; see
  :data:`sarm2_gym.reward.kinds.MODEL_KINDS`.
"""

from __future__ import annotations

from sarm2_gym.reward.baselines.checkpoint import (
    BASELINE_FORMAT,
    build_baseline,
    load_baseline,
    save_baseline,
)
from sarm2_gym.reward.baselines.common import BaselineOutput, NormalizedInputs
from sarm2_gym.reward.baselines.rewind import ReWiNDModel
from sarm2_gym.reward.baselines.sarm_v1 import SARMv1Model, SARMv1Task, sarm_v1_frame_labels

__all__ = [
    "BASELINE_FORMAT",
    "BaselineOutput",
    "NormalizedInputs",
    "ReWiNDModel",
    "SARMv1Model",
    "SARMv1Task",
    "build_baseline",
    "load_baseline",
    "sarm_v1_frame_labels",
    "save_baseline",
]
