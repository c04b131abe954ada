"""Features beside the base policy's, for SPIRAL's actor and critics.

The reference's residual actor and critics read frozen, general-purpose vision features: each
camera's SigLIP patch tokens average-pooled, next to the state (spec §2.2). TinyVLA's features are
its own trunk's, trained only to clone the demonstrations' actions: what the demonstrator never
had to look at need not be in them (whether ink is left on a board that every demonstration swept
whole), and critics cannot value what their features do not show.
:class:`WithFrozenImageFeatures` appends each camera's frozen EfficientNet-Lite0 features (the
encoder the reward model uses, global-average pooled) to the base policy's own. The base policy
keeps reading its own slice, so the chunks it samples do not change.

:class:`WithPrivilegedState` appends the simulator's object state, after any frozen features (an
env wrapped in :class:`~sarm2_gym.envs.privileged_state.PrivilegedState` gives it): asymmetric
actor-critic, in which the critics read it and the residual actor does not
(``SPIRALConfig.critic_privileged_state``; simulation only).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sarm2_gym.algos.common.tensors import to_tensor
from sarm2_gym.algos.spiral.config import FROZEN_IMAGE_ENCODERS
from sarm2_gym.algos.vla.policy import ChunkBatch, ChunkPolicy
from sarm2_gym.envs.privileged_state import PRIVILEGED_STATE_KEY

__all__ = ["WithFrozenImageFeatures", "WithPrivilegedState", "frozen_image_encoder"]


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


class _WithExtraFeatures(ABC):
    """A :class:`~sarm2_gym.algos.vla.policy.ChunkPolicy` whose features gain extra columns.

    ``encode`` returns ``[base features, extra]``; every method that takes features hands the
    base policy its own first ``base.feature_dim`` columns, so its chunks do not change.
    Subclasses say what the extra columns are (``extra_dim``, ``_extra``).
    """

    def __init__(self, base: ChunkPolicy) -> None:
        self.base = base
        self.base_feature_dim = base.feature_dim

    @property
    @abstractmethod
    def extra_dim(self) -> int:
        """Width of the appended columns."""

    @abstractmethod
    def _extra(
        self, observation: Mapping[str, np.ndarray | torch.Tensor], like: torch.Tensor
    ) -> list[torch.Tensor]:
        """The appended columns for a batched observation, ``(B, .)`` each, like ``like``."""

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
        """The base policy's feature width plus the appended columns."""
        return self.base_feature_dim + self.extra_dim

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
        """``(B, feature_dim)``: the base policy's features, then the appended ones."""
        own = self.base.encode(observation, instruction)
        return torch.cat([own, *self._extra(observation, own)], dim=-1)

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
        """The base policy's chunk for an observation (the appended columns play no part)."""
        return self.base.sample_chunk(observation, instruction, noise)

    def bc_loss(self, batch: ChunkBatch, weights: torch.Tensor | None = None) -> torch.Tensor:
        """The base policy's behaviour-cloning loss."""
        return self.base.bc_loss(batch, weights)

    def save_pretrained(self, directory: str | Path) -> Path:
        """Save the base policy (what is appended is rebuilt from SPIRAL's config)."""
        return self.base.save_pretrained(directory)


class WithFrozenImageFeatures(_WithExtraFeatures):
    """Base features, then each camera's frozen image features.

    Args:
        base: The frozen base policy.
        cameras: Cameras whose frames are encoded, in feature order.
        encoder: Frozen encoder with ``encode(uint8 (N, H, W, 3)) -> (N, D)`` and ``out_dim``.
    """

    def __init__(self, base: ChunkPolicy, cameras: Sequence[str], encoder: Any) -> None:
        if not cameras:
            raise ValueError("cameras must name at least one camera")
        super().__init__(base)
        self.cameras = tuple(cameras)
        self.encoder = encoder

    @property
    def extra_dim(self) -> int:
        """One encoder output per camera."""
        return len(self.cameras) * int(self.encoder.out_dim)

    def _extra(
        self, observation: Mapping[str, np.ndarray | torch.Tensor], like: torch.Tensor
    ) -> list[torch.Tensor]:
        missing = [c for c in self.cameras if c not in observation]
        if missing:
            raise ValueError(f"observation lacks cameras {missing}; it has {sorted(observation)}")
        # the encoder checks the frames (uint8, (N, H, W, 3)) and names what is wrong
        return [self.encoder.encode(to_tensor(observation[c])).to(like) for c in self.cameras]


class WithPrivilegedState(_WithExtraFeatures):
    """Base features, then the simulator's privileged object state (``"env_state"``).

    Args:
        base: The base policy (or another wrapper of it).
        state_dim: Width of the privileged state.
    """

    def __init__(self, base: ChunkPolicy, state_dim: int) -> None:
        if state_dim < 1:
            raise ValueError(f"state_dim must be >= 1, got {state_dim}")
        super().__init__(base)
        self.state_dim = int(state_dim)

    @property
    def extra_dim(self) -> int:
        """The privileged state's width."""
        return self.state_dim

    def _extra(
        self, observation: Mapping[str, np.ndarray | torch.Tensor], like: torch.Tensor
    ) -> list[torch.Tensor]:
        if PRIVILEGED_STATE_KEY not in observation:
            raise ValueError(
                f"observation lacks {PRIVILEGED_STATE_KEY!r} (it has {sorted(observation)}): wrap "
                "the env in sarm2_gym.envs.privileged_state.PrivilegedState"
            )
        state = to_tensor(observation[PRIVILEGED_STATE_KEY]).to(like)
        if state.shape != (like.shape[0], self.state_dim):
            raise ValueError(
                f"{PRIVILEGED_STATE_KEY!r} must be ({like.shape[0]}, {self.state_dim}), "
                f"got {tuple(state.shape)}"
            )
        if not torch.isfinite(state).all():
            raise ValueError(f"{PRIVILEGED_STATE_KEY!r} holds NaN or inf")
        return [state]
