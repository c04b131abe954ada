"""Frozen pretrained image features beside the base policy's, for SPIRAL's actor and critics.

The reference's residual actor and critics read frozen, general-purpose vision features: each
camera's SigLIP patch tokens average-pooled, next to the state (spec §2.2). TinyVLA's features are
its own trunk's, trained only to clone the demonstrations' actions: what the demonstrator never
had to look at need not be in them (whether ink is left on a board that every demonstration swept
whole), and critics cannot value what their features do not show.
:class:`WithFrozenImageFeatures` appends each camera's frozen EfficientNet-Lite0 features (the
encoder the reward model uses, global-average pooled) to the base policy's own. The base policy
keeps reading its own slice, so the chunks it samples do not change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sarm2_gym.algos.spiral.config import FROZEN_IMAGE_ENCODERS
from sarm2_gym.algos.vla.policy import ChunkBatch, ChunkPolicy

__all__ = ["WithFrozenImageFeatures", "frozen_image_encoder"]


def frozen_image_encoder(name: str, input_size: int, device: torch.device | str = "cpu") -> Any:
    """The frozen image encoder ``name`` at ``input_size`` pixels on ``device``.

    Raises:
        ValueError: For an unknown encoder name.
    """
    if name not in FROZEN_IMAGE_ENCODERS:
        raise ValueError(
            f"frozen image encoder must be one of {FROZEN_IMAGE_ENCODERS}, got {name!r}"
        )
    from sarm2_gym.reward.encoders.efficientnet import EfficientNetLite0Encoder

    return EfficientNetLite0Encoder(input_size, device=device)


class WithFrozenImageFeatures:
    """A :class:`~sarm2_gym.algos.vla.policy.ChunkPolicy` whose features gain frozen image ones.

    ``encode`` returns ``[base features, encoder(camera) for each camera]``; every method that
    takes features hands the base policy its own first ``base.feature_dim`` columns.

    Args:
        base: The frozen base policy.
        cameras: Cameras whose frames are encoded, in feature order.
        encoder: Frozen encoder with ``encode(uint8 (N, H, W, 3)) -> (N, D)`` and ``out_dim``.
    """

    def __init__(self, base: ChunkPolicy, cameras: Sequence[str], encoder: Any) -> None:
        if not cameras:
            raise ValueError("cameras must name at least one camera")
        self.base = base
        self.cameras = tuple(cameras)
        self.encoder = encoder
        self.base_feature_dim = base.feature_dim

    @property
    def chunk_size(self) -> int:
        """Chunk length H (the base policy's)."""
        return self.base.chunk_size

    @property
    def action_dim(self) -> int:
        """Action width A (the base policy's)."""
        return self.base.action_dim

    @property
    def feature_dim(self) -> int:
        """The base policy's feature width plus one encoder output per camera."""
        return self.base_feature_dim + len(self.cameras) * int(self.encoder.out_dim)

    @property
    def instructions(self) -> tuple[str, ...]:
        """The base policy's instructions."""
        return self.base.instructions

    @property
    def n_action_steps(self) -> int | None:
        """The base policy's default actions per chunk, if it has one."""
        return getattr(self.base, "n_action_steps", None)

    def _own(self, features: torch.Tensor) -> torch.Tensor:
        if features.shape[-1] != self.feature_dim:
            raise ValueError(
                f"features must be (B, {self.feature_dim}), got {tuple(features.shape)}"
            )
        return features[:, : self.base_feature_dim]

    @torch.no_grad()
    def encode(
        self, observation: Mapping[str, np.ndarray | torch.Tensor], instruction: str | Sequence[str]
    ) -> torch.Tensor:
        """``(B, feature_dim)``: the base policy's features, then each camera's frozen ones."""
        missing = [c for c in self.cameras if c not in observation]
        if missing:
            raise ValueError(f"observation lacks cameras {missing}; it has {sorted(observation)}")
        own = self.base.encode(observation, instruction)
        # the encoder checks the frames (uint8, (N, H, W, 3)) and names what is wrong
        frozen = [
            self.encoder.encode(torch.as_tensor(observation[c])).to(own) for c in self.cameras
        ]
        return torch.cat([own, *frozen], dim=-1)

    def sample_actions(self, features: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The base policy's chunks in env units (from its own features)."""
        return self.base.sample_actions(self._own(features), noise)

    def sample_normalized_actions(
        self, features: torch.Tensor, noise: torch.Tensor
    ) -> torch.Tensor:
        """The base policy's chunks in its normalised action space."""
        return self.base.sample_normalized_actions(self._own(features), noise)

    def env_actions(self, features: torch.Tensor, normalized: torch.Tensor) -> torch.Tensor:
        """Env-unit chunks for normalised ones (the base policy's mapping)."""
        return self.base.env_actions(self._own(features), normalized)

    def sample_chunk(
        self, observation: Mapping[str, Any], instruction: str | Sequence[str], noise: torch.Tensor
    ) -> torch.Tensor:
        """The base policy's chunk for an observation (the frozen features play no part)."""
        return self.base.sample_chunk(observation, instruction, noise)

    def bc_loss(self, batch: ChunkBatch, weights: torch.Tensor | None = None) -> torch.Tensor:
        """The base policy's behaviour-cloning loss."""
        return self.base.bc_loss(batch, weights)

    def save_pretrained(self, directory: str | Path) -> Path:
        """Save the base policy (the frozen encoder is rebuilt from SPIRAL's config)."""
        return self.base.save_pretrained(directory)
