"""Typed outputs of the reward model: training outputs (torch) and predictions (numpy)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sarm2_gym.envs.core.primitives import GROUP_NAMES, PRIMITIVES
from sarm2_gym.reward.mmoe import RoutingOutput

__all__ = ["PredictionBatch", "PredictionResult", "RewardLosses", "RewardOutput"]


@dataclass(frozen=True)
class RewardLosses:
    """Training losses (scalar tensors). ``total`` is what to backpropagate.

    Attributes:
        total: Phase loss: joint = ``value + alpha_aux * aux + w * (primitive + group)``
            (spec §1.7); stage pretraining = ``primitive + w_group * group`` (spec §1.5).
        value: MSE of steps-to-go over valid positions (zero in stage pretraining).
        aux: Routing auxiliary loss ``lambda_bal*balance + lambda_imp*importance - lambda_ent*H``.
        balance: Load-balance variance.
        importance: Importance variance.
        entropy: Mean gate entropy.
        primitive: Primitive cross-entropy over the anchor and stage-window positions.
        group: Group cross-entropy over the same positions.
    """

    total: torch.Tensor
    value: torch.Tensor
    aux: torch.Tensor
    balance: torch.Tensor
    importance: torch.Tensor
    entropy: torch.Tensor
    primitive: torch.Tensor
    group: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        """Detached values for logging."""
        return {k: float(v.detach()) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class RewardOutput:
    """Output of :meth:`SARM2RewardModel.forward`.

    Attributes:
        primitive_logits: ``(B, T, 22)`` per-position primitive logits (rewind positions repeat
            the logits of the frame they show).
        group_logits: ``(B, T, 8)`` group-head logits.
        gate_index: ``(B, T)`` gate used per position (group of the argmax primitive).
        steps_to_go: ``(B, T)`` predicted steps-to-go; None in stage-only mode.
        routing: MMoE routing details; None in stage-only mode.
        losses: Present when the batch carries the targets the phase needs.
    """

    primitive_logits: torch.Tensor
    group_logits: torch.Tensor
    gate_index: torch.Tensor
    steps_to_go: torch.Tensor | None
    routing: RoutingOutput | None
    losses: RewardLosses | None


@dataclass(frozen=True)
class PredictionResult:
    """The reward model's reading of one frame.

    Attributes:
        progress: ``1 - steps_to_go`` in [0, 1].
        steps_to_go: Predicted normalised remaining time in [0, 1].
        primitive: Predicted primitive index (vocabulary order).
        primitive_name: Its name.
        group: Group of ``primitive``; with 8 gates, the gate that produced the value.
        group_name: Its name.
        primitive_probs: ``(22,)`` softmax of the primitive logits.
        group_probs: ``(8,)`` softmax of the group head.
    """

    progress: float
    steps_to_go: float
    primitive: int
    primitive_name: str
    group: int
    group_name: str
    primitive_probs: np.ndarray
    group_probs: np.ndarray


@dataclass(frozen=True)
class PredictionBatch:
    """Readings of many frames (or envs); fields as :class:`PredictionResult`, leading dim Q."""

    progress: np.ndarray
    steps_to_go: np.ndarray
    primitive: np.ndarray
    group: np.ndarray
    primitive_probs: np.ndarray
    group_probs: np.ndarray

    def __len__(self) -> int:
        return int(self.progress.shape[0])

    def __getitem__(self, i: int) -> PredictionResult:
        prim, group = int(self.primitive[i]), int(self.group[i])
        return PredictionResult(
            progress=float(self.progress[i]),
            steps_to_go=float(self.steps_to_go[i]),
            primitive=prim,
            primitive_name=PRIMITIVES[prim],
            group=group,
            group_name=GROUP_NAMES[group],
            primitive_probs=self.primitive_probs[i],
            group_probs=self.group_probs[i],
        )

    @property
    def primitive_names(self) -> tuple[str, ...]:
        """Names of the predicted primitives."""
        return tuple(PRIMITIVES[int(p)] for p in self.primitive)
