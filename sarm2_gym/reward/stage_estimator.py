"""Stage estimator: a causal transformer that classifies the action primitive (spec §1.5).

Inputs are the camera features and the state of a window of frames (``mid + [idx]``, spec §1.4);
there is no language input, so the estimator is task-agnostic. Each camera has its own linear
projection, the state its own; a learned temporal position embedding is added to every stream;
the tokens pass a time-major block-causal transformer (see :mod:`.transformer`); per time step the
stream outputs are concatenated and fused (LayerNorm -> Linear -> ReLU); two heads give 22
primitive logits and 8 group logits.

The reference reads only the last valid position. Here every position has logits, and because of
the causal mask the logits at position j depend on frames ``<= j`` of the window only; the value
model uses them as per-frame primitive predictions (see :mod:`.value_model`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sarm2_gym.reward.config import SARM2Config
from sarm2_gym.reward.transformer import build_encoder, encode

__all__ = ["StageEstimator", "StageLogits"]


@dataclass(frozen=True)
class StageLogits:
    """Per-position stage-estimator outputs.

    Attributes:
        primitive: ``(B, T, NUM_PRIMITIVES)`` logits.
        group: ``(B, T, NUM_GROUPS)`` logits.
    """

    primitive: torch.Tensor
    group: torch.Tensor


class StageEstimator(nn.Module):
    """Action-primitive classifier over cameras + state (``ActionTransformer``, spec §1.5).

    Args:
        config: Model configuration (uses cameras, widths, ``stage_layers``, ``n_obs_steps``).
    """

    def __init__(self, config: SARM2Config) -> None:
        super().__init__()
        d = config.d_model
        self.max_steps = config.n_obs_steps
        self.visual_proj = nn.ModuleList(
            nn.Linear(config.image_feature_dim, d) for _ in config.camera_names
        )
        self.state_proj = nn.Linear(config.state_dim, d)
        self.time_pos_emb = nn.Parameter(torch.zeros(config.n_obs_steps, d))
        nn.init.normal_(self.time_pos_emb, std=0.02)
        self.transformer = build_encoder(
            d, config.n_heads, config.ffn_dim, config.dropout, config.stage_layers
        )
        fused = config.num_streams_stage * d
        self.fusion = nn.Sequential(nn.LayerNorm(fused), nn.Linear(fused, d), nn.ReLU())
        self.primitive_head = nn.Linear(d, config.num_primitives)
        self.group_head = nn.Linear(d, config.num_groups)

    def forward(
        self, features: torch.Tensor, state: torch.Tensor, lengths: torch.Tensor
    ) -> StageLogits:
        """Classify every position of a window.

        Args:
            features: ``(B, N, T, F)`` camera features, ``T <= n_obs_steps``.
            state: ``(B, T, state_dim)``, already normalised.
            lengths: ``(B,)`` valid positions per sample (>= 1).

        Returns:
            Per-position logits; padded positions hold values that must be ignored.
        """
        b, _, t, _ = features.shape
        if t > self.max_steps:
            raise ValueError(f"stage window has {t} frames; at most {self.max_steps}")
        cams = [proj(features[:, i]) for i, proj in enumerate(self.visual_proj)]  # N x (B,T,d)
        tokens = torch.stack([*cams, self.state_proj(state)], dim=2)  # (B, T, N+1, d)
        tokens = tokens + self.time_pos_emb[:t].view(1, t, 1, -1)
        h = encode(self.transformer, tokens, lengths)  # (B, T, N+1, d)
        fused = self.fusion(h.reshape(b, t, -1))  # (B, T, d)
        return StageLogits(self.primitive_head(fused), self.group_head(fused))
