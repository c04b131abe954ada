"""Attention masks and the transformer encoder shared by the stage estimator and value model.

Token order is **time-major**: ``(t=0, s=0), (t=0, s=1), ..., (t=1, s=0), ...`` for S streams.
The mask is block-causal in time: a token at time t attends to every stream at times <= t and
to nothing later.

Why not the reference's mask: the reference flattens stream-major and applies a plain
upper-triangular mask (spec PART VI.1), so e.g. the state token at t=0 attends to camera tokens at
t=9, and in training the current-frame output can see the rewind frames appended after it, which
never exist online. SARM2 here provides *online* rewards, so an output at time t may depend on
frames <= t only; ``tests/reward/test_causality.py`` checks that a future frame never changes an
earlier output.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "block_causal_mask",
    "build_encoder",
    "encode",
    "encode_last_step",
    "flatten_time_major",
    "padding_mask",
]


def block_causal_mask(num_steps: int, num_streams: int, device: torch.device) -> torch.Tensor:
    """Boolean ``(L, L)`` attention mask, ``L = num_steps * num_streams``; True = blocked.

    Example:
        >>> block_causal_mask(2, 2, torch.device("cpu")).int().tolist()
        [[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]]
    """
    t = torch.arange(num_steps, device=device).repeat_interleave(num_streams)
    return t.unsqueeze(0) > t.unsqueeze(1)  # [query, key]: key later than query


def padding_mask(lengths: torch.Tensor, num_steps: int, num_streams: int) -> torch.Tensor:
    """Boolean key-padding mask ``(B, T * S)``, True at time steps ``>= lengths``."""
    steps = torch.arange(num_steps, device=lengths.device)
    pad = steps.unsqueeze(0) >= lengths.unsqueeze(1)  # (B, T)
    return pad.repeat_interleave(num_streams, dim=1)


def flatten_time_major(tokens: torch.Tensor) -> torch.Tensor:
    """``(B, T, S, D)`` -> ``(B, T * S, D)`` in time-major order."""
    b, t, s, d = tokens.shape
    return tokens.reshape(b, t * s, d)


def build_encoder(
    d_model: int, n_heads: int, ffn_dim: int, dropout: float, num_layers: int
) -> nn.TransformerEncoder:
    """Post-LN ReLU ``nn.TransformerEncoder`` (PyTorch defaults, as the reference, spec §1.5)."""
    layer = nn.TransformerEncoderLayer(d_model, n_heads, ffn_dim, dropout, batch_first=True)
    return nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)


def encode(
    encoder: nn.TransformerEncoder, tokens: torch.Tensor, lengths: torch.Tensor
) -> torch.Tensor:
    """Run ``encoder`` on ``(B, T, S, D)`` tokens with the block-causal and padding masks.

    Returns:
        ``(B, T, S, D)`` outputs. Every query sees the t=0 block (``lengths >= 1``), so no
        attention row is fully masked.
    """
    b, t, s, d = tokens.shape
    mask = block_causal_mask(t, s, tokens.device)
    pad = padding_mask(lengths, t, s)
    out: torch.Tensor = encoder(flatten_time_major(tokens), mask=mask, src_key_padding_mask=pad)
    return out.reshape(b, t, s, d)


def encode_last_step(encoder: nn.TransformerEncoder, tokens: torch.Tensor) -> torch.Tensor:
    """Outputs of the last time step only, for full-length ``(B, T, S, D)`` tokens (inference).

    Equals ``encode(encoder, tokens, lengths=T)[:, -1]`` up to float rounding but skips work the
    last step's outputs do not need: every layer but the last runs on all tokens (its keys and
    values feed the last step), and the last layer computes queries, feed-forward and norms for
    the S tokens of the last step only. Under the block-causal mask the last step attends to
    every token, so no mask is needed there.

    Raises:
        ValueError: In training mode (the last layer has no dropout here), or for an encoder
            that :func:`build_encoder` does not build (final norm, pre-norm layers).

    Returns:
        ``(B, S, D)``.
    """
    b, t, s, d = tokens.shape
    x = flatten_time_major(tokens)
    layers = list(encoder.layers)
    if encoder.training:
        raise ValueError("encode_last_step is for inference: put the model in eval mode")
    if encoder.norm is not None:
        raise ValueError("encode_last_step supports encoders without a final norm")
    if layers:
        mask = block_causal_mask(t, s, tokens.device)
        for layer in layers[:-1]:
            x = layer(x, src_mask=mask)
        last = layers[-1]
        if last.norm_first:
            raise ValueError("encode_last_step supports post-norm layers (build_encoder)")
        q = x[:, -s:]
        attn = last.self_attn(q, x, x, need_weights=False)[0]
        h = last.norm1(q + attn)
        x = last.norm2(h + last.linear2(last.activation(last.linear1(h))))
    else:
        x = x[:, -s:]
    return x.reshape(b, s, d)
