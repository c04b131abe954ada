"""Value transformer with the multi-gate MoE head (``RewardTransformer``, spec §1.6).

Token streams per time step (S = N + 3): one per camera (own linear projection), the primitive
embedding, the instruction embedding (the same at every step), and the state. A learned
``first_pos`` vector is added to the camera tokens of the anchor frame only; there is no other
positional encoding, so the model cannot read absolute time off the position (as ReWiND/SARM).
The tokens pass a time-major block-causal transformer; per time step the S outputs are
concatenated (no fusion MLP) and fed to the MMoE head; ``sigmoid`` gives steps-to-go in [0, 1].

Per-step primitive conditioning. The reference broadcasts the *current* frame's predicted
primitive (embedding and gate) over all time steps, so earlier positions are conditioned on a
later frame. Here each position t gets the primitive predicted for its own frame from frames
``<= t`` (see :meth:`SARM2RewardModel.forward`), which keeps every output causal; at the current
frame, the output the reward uses, this is exactly the reference's conditioning.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sarm2_gym.reward.config import SARM2Config
from sarm2_gym.reward.mmoe import MMoEHead, RoutingOutput
from sarm2_gym.reward.transformer import build_encoder, encode, encode_last_step

__all__ = ["ValueOutput", "ValueTransformer"]


@dataclass(frozen=True)
class ValueOutput:
    """Value-model outputs.

    Attributes:
        steps_to_go: ``(B, T)`` in [0, 1]; 0.5 at padded positions.
        routing: MMoE routing details (``(B, T, ...)``).
    """

    steps_to_go: torch.Tensor
    routing: RoutingOutput


class ValueTransformer(nn.Module):
    """Goal-distance estimator: causal transformer + MMoE head.

    Args:
        config: Model configuration (cameras, widths, ``value_layers``, MMoE sizes).
    """

    def __init__(self, config: SARM2Config) -> None:
        super().__init__()
        d = config.d_model
        self.visual_proj = nn.ModuleList(
            nn.Linear(config.image_feature_dim, d) for _ in config.camera_names
        )
        self.primitive_proj = nn.Linear(config.text_dim, d)
        self.instruction_proj = nn.Linear(config.text_dim, d)
        self.state_proj = nn.Linear(config.state_dim, d)
        self.first_pos = nn.Parameter(torch.zeros(d))
        self.transformer = build_encoder(
            d, config.n_heads, config.ffn_dim, config.dropout, config.value_layers
        )
        self.head = MMoEHead(
            in_dim=config.num_streams_value * d,
            num_gates=config.num_gates,
            num_experts=config.num_experts,
            top_k=config.top_k,
            expert_hidden=config.expert_hidden,
            gate_hidden=config.gate_hidden,
            dropout=config.dropout,
        )

    def _tokens(
        self,
        features: torch.Tensor,
        primitive_emb: torch.Tensor,
        instruction_emb: torch.Tensor,
        state: torch.Tensor,
    ) -> torch.Tensor:
        """Token streams ``(B, T, N + 3, d)`` (see :meth:`forward` for the arguments)."""
        b, _, t, _ = features.shape
        cams = [proj(features[:, i]) for i, proj in enumerate(self.visual_proj)]  # N x (B,T,d)
        cam_tokens = torch.stack(cams, dim=2)  # (B, T, N, d)
        # first_pos marks the anchor frame's camera tokens only (spec §1.6).
        anchor = torch.zeros(t, 1, 1, device=features.device, dtype=features.dtype)
        anchor[0] = 1.0
        cam_tokens = cam_tokens + anchor * self.first_pos
        instr = self.instruction_proj(instruction_emb).unsqueeze(1).expand(b, t, -1)
        streams = [
            cam_tokens,
            self.primitive_proj(primitive_emb).unsqueeze(2),
            instr.unsqueeze(2),
            self.state_proj(state).unsqueeze(2),
        ]
        return torch.cat(streams, dim=2)  # (B, T, N+3, d)

    def forward(
        self,
        features: torch.Tensor,
        primitive_emb: torch.Tensor,
        instruction_emb: torch.Tensor,
        state: torch.Tensor,
        lengths: torch.Tensor,
        gate_index: torch.Tensor,
    ) -> ValueOutput:
        """Predict steps-to-go at every position.

        Args:
            features: ``(B, N, T, F)`` camera features; position 0 is the anchor frame.
            primitive_emb: ``(B, T, text_dim)`` primitive-name embedding per position.
            instruction_emb: ``(B, text_dim)`` task-instruction embedding.
            state: ``(B, T, state_dim)``, normalised.
            lengths: ``(B,)`` valid positions.
            gate_index: ``(B, T)`` gate (primitive group) per position.
        """
        b, _, t, _ = features.shape
        tokens = self._tokens(features, primitive_emb, instruction_emb, state)
        h = encode(self.transformer, tokens, lengths)
        valid = torch.arange(t, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)
        routing = self.head(h.reshape(b, t, -1), gate_index, valid)
        return ValueOutput(torch.sigmoid(routing.output), routing)

    def forward_last(
        self,
        features: torch.Tensor,
        primitive_emb: torch.Tensor,
        instruction_emb: torch.Tensor,
        state: torch.Tensor,
        gate_index: torch.Tensor,
    ) -> torch.Tensor:
        """Steps-to-go ``(B,)`` at the last position of full-length windows (inference).

        Equals ``forward(...).steps_to_go[:, -1]`` with every position valid, up to float
        rounding, for a fraction of the work: the last transformer layer and the MMoE head run
        for the last time step only (see :func:`.transformer.encode_last_step`).

        Args:
            features: ``(B, N, T, F)``; as :meth:`forward`.
            primitive_emb: ``(B, T, text_dim)``.
            instruction_emb: ``(B, text_dim)``.
            state: ``(B, T, state_dim)``, normalised.
            gate_index: ``(B,)`` gate of the last position.
        """
        b = features.shape[0]
        tokens = self._tokens(features, primitive_emb, instruction_emb, state)
        h = encode_last_step(self.transformer, tokens)  # (B, S, d)
        valid = torch.ones(b, dtype=torch.bool, device=features.device)
        routing = self.head(h.reshape(b, -1), gate_index, valid)
        return torch.sigmoid(routing.output)
