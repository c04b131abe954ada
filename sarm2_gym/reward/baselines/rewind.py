"""ReWiND-style baseline: a language-conditioned causal transformer that regresses progress.

Paper: ReWiND (Zhang et al., 2025), as reproduced by the SARM2 authors (spec PART IV,
``models/rewind_reward_model.py``). No stage estimator, no primitive stream, no experts: per time
step one frame token (all cameras' features concatenated and projected, plus the projected state)
and one instruction token; the same anchor + history + rewind layout, block-causal mask and
first-frame marker as SARM2 (:mod:`sarm2_gym.reward.transformer`), so the comparison isolates the
stage-aware parts. A linear head with a sigmoid gives progress; the loss is the MSE of progress
(``1 - steps_to_go``) over valid positions.

Example:
    >>> from sarm2_gym.reward.testing import tiny_config
    >>> from sarm2_gym.reward.encoders.text import TextEmbeddings
    >>> cfg = tiny_config()
    >>> m = ReWiNDModel(cfg, TextEmbeddings.zeros(cfg.instructions, cfg.text_dim))
    >>> sum(p.numel() for p in m.parameters()) > 0
    True
"""

from __future__ import annotations

import torch
from torch import nn

from sarm2_gym.reward.baselines.common import BaselineOutput, NormalizedInputs
from sarm2_gym.reward.config import SARM2Config
from sarm2_gym.reward.encoders.text import TextEmbeddings
from sarm2_gym.reward.transformer import build_encoder, encode

__all__ = ["ReWiNDModel"]


class ReWiNDModel(NormalizedInputs):
    """Progress regressor over frame tokens + instruction token.

    Args:
        config: Widths, depth (``value_layers``), cameras and layout sizes are read from it.
        text: Instruction embeddings (stored in the checkpoint).
    """

    kind = "rewind"

    def __init__(self, config: SARM2Config, text: TextEmbeddings) -> None:
        super().__init__(config, text)
        d = config.d_model
        self.frame_proj = nn.Linear(config.num_cameras * config.image_feature_dim, d)
        self.state_proj = nn.Linear(config.state_dim, d)
        self.lang_proj = nn.Linear(config.text_dim, d)
        self.first_pos = nn.Parameter(torch.zeros(d))
        self.transformer = build_encoder(
            d, config.n_heads, config.ffn_dim, config.dropout, config.value_layers
        )
        self.head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 1))

    def forward_features(
        self,
        feats: torch.Tensor,
        state: torch.Tensor,
        lengths: torch.Tensor,
        task_ids: torch.Tensor,
        steps_to_go: torch.Tensor | None = None,
    ) -> BaselineOutput:
        """Predict steps-to-go at every position.

        Args:
            feats: ``(B, N, T, F)`` camera features (position 0 = anchor frame).
            state: ``(B, T, S)`` raw state.
            lengths: ``(B,)`` valid positions.
            task_ids: ``(B,)`` instruction indices.
            steps_to_go: ``(B, T)`` targets; when given, ``losses`` holds the progress MSE.
        """
        b, n, t, f = feats.shape
        frame = self.frame_proj(feats.permute(0, 2, 1, 3).reshape(b, t, n * f))
        frame = frame + self.state_proj(self.normalize_state(state))
        marker = torch.zeros(t, 1, device=frame.device, dtype=frame.dtype)
        marker[0] = 1.0
        frame = frame + marker * self.first_pos  # the anchor frame, as in SARM2 (spec §1.6)
        lang = self.lang_proj(self.instruction_embeddings[task_ids.to(self.device)])
        tokens = torch.stack([frame, lang.unsqueeze(1).expand(b, t, -1)], dim=2)  # (B, T, 2, d)
        h = encode(self.transformer, tokens, lengths.to(self.device))
        progress = torch.sigmoid(self.head(h[:, :, 0]).squeeze(-1))  # (B, T)
        steps = 1.0 - progress
        losses = None
        if steps_to_go is not None:
            valid = self.valid_mask(lengths, t)
            mse = ((steps - steps_to_go.to(self.device)) ** 2)[valid].mean()
            losses = {"total": mse, "value": mse}
        return BaselineOutput(steps, None, losses)
