"""SPIRAL: residual actor-critic over a frozen chunk policy, guided by a reward model (spec §2).

Public surface: the :class:`SPIRAL` algorithm, its :class:`SPIRALConfig`, the policy it trains
(:class:`ResidualChunkPolicy`, with :class:`WithFrozenImageFeatures` when its actor and critics also
read frozen image features), the reward-model interfaces (:class:`RolloutLabeler`,
:class:`RewardModelAdapter`) and the labellers shipped here (:class:`PrivilegedProgressLabeler`, an
oracle for tests and ablations; :class:`RewardModelLabeler` over a learned progress model).
"""

from __future__ import annotations

from sarm2_gym.algos.spiral.adaptation import (
    AnnotatedRollout,
    Annotator,
    RewardModelAdapter,
    annotate_from_progress,
    privileged_annotator,
)
from sarm2_gym.algos.spiral.config import GAMMA_10HZ, SPIRALConfig, convert_discount
from sarm2_gym.algos.spiral.features import WithFrozenImageFeatures
from sarm2_gym.algos.spiral.labeling import (
    EpisodeLabels,
    PrivilegedProgressLabeler,
    RewardModelLabeler,
    RolloutEpisode,
    RolloutLabeler,
)
from sarm2_gym.algos.spiral.policies import ResidualChunkPolicy
from sarm2_gym.algos.spiral.spiral import SPIRAL

__all__ = [
    "GAMMA_10HZ",
    "SPIRAL",
    "AnnotatedRollout",
    "Annotator",
    "EpisodeLabels",
    "PrivilegedProgressLabeler",
    "ResidualChunkPolicy",
    "RewardModelAdapter",
    "RewardModelLabeler",
    "RolloutEpisode",
    "RolloutLabeler",
    "SPIRALConfig",
    "WithFrozenImageFeatures",
    "annotate_from_progress",
    "convert_discount",
    "privileged_annotator",
]
