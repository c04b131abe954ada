"""What the baseline reward models share: stored text, state normalisation, outputs.

Baselines read the same cached frozen-encoder features and the same batches
(:class:`~sarm2_gym.reward.batch.RewardBatch`) as SARM2, so "same data, same encoders" holds by
construction. They are for benchmarking; the reward wrappers use SARM2 models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from sarm2_gym.reward.batch import RewardBatch
from sarm2_gym.reward.config import SARM2Config
from sarm2_gym.reward.encoders.text import TextEmbeddings

__all__ = ["BaselineOutput", "NormalizedInputs"]


@dataclass(frozen=True)
class BaselineOutput:
    """Output of a baseline's forward pass.

    Attributes:
        steps_to_go: ``(B, T)`` predicted steps-to-go in [0, 1].
        stage: ``(B, T)`` predicted stage index within the task (SARM v1), else None.
        losses: ``{"total": ..., ...}`` scalar tensors when targets were given.
    """

    steps_to_go: torch.Tensor
    stage: torch.Tensor | None
    losses: dict[str, torch.Tensor] | None


class NormalizedInputs(nn.Module):
    """Base class: instruction embeddings and state z-scoring stored as buffers.

    Args:
        config: The shared reward-model configuration.
        text: Instruction embeddings in ``config.instructions`` order.
    """

    kind: ClassVar[str] = ""
    instruction_embeddings: torch.Tensor
    state_mean: torch.Tensor
    state_std: torch.Tensor

    def __init__(self, config: SARM2Config, text: TextEmbeddings) -> None:
        super().__init__()
        if text.instructions != config.instructions:
            raise ValueError("text embeddings were computed for other instructions than config's")
        self.config = config
        self.register_buffer("instruction_embeddings", torch.from_numpy(text.instruction.copy()))
        self.register_buffer("state_mean", torch.zeros(config.state_dim))
        self.register_buffer("state_std", torch.ones(config.state_dim))

    @property
    def device(self) -> torch.device:
        """Device of the model's tensors."""
        return self.state_mean.device

    def set_state_stats(self, mean: np.ndarray, std: np.ndarray, eps: float = 1e-6) -> None:
        """Set the state z-score statistics; ``std`` is floored at ``eps``."""
        self.state_mean.copy_(torch.as_tensor(np.asarray(mean, np.float32)))
        self.state_std.copy_(torch.as_tensor(np.asarray(std, np.float32)).clamp_min(eps))

    def normalize_state(self, state: torch.Tensor) -> torch.Tensor:
        """``(state - mean) / std`` on the model's device."""
        return (state.to(self.device, torch.float32) - self.state_mean) / self.state_std

    def valid_mask(self, lengths: torch.Tensor, t: int) -> torch.Tensor:
        """``(B, T)`` True at positions ``< lengths``."""
        return torch.arange(t, device=self.device).unsqueeze(0) < lengths.to(self.device)[:, None]

    def batch_features(self, batch: RewardBatch) -> torch.Tensor:
        """Camera features ``(B, N, T, F)`` of a feature batch (baselines need cached features)."""
        if batch.features is None:
            raise ValueError("baselines train on cached frozen-encoder features, not images")
        return torch.stack(
            [batch.features[c].to(self.device, torch.float32) for c in self.config.camera_names],
            dim=1,
        )
