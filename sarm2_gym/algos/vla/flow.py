"""pi0-style flow-matching action head: linear path, velocity regression, Euler sampling.

Conventions follow pi0: ``t = 1`` is pure noise and ``t = 0`` the action chunk,

    x_t = t * z + (1 - t) * a,        u = z - a,        loss = || v_theta(x_t, t, c) - u ||^2,

with training times ``t ~ Beta(1.5, 1) * 0.999 + 0.001`` (pi0's schedule, which favours the
noisy end). Sampling integrates ``dx/dt = v`` from ``x_1 = z`` to ``t = 0`` with ``K`` Euler
steps of ``dt = -1/K``; no randomness enters after ``z``, so a chunk is a deterministic function
of the conditioning ``c`` and the latent ``z`` (what SPIRAL's residual actor and best-of-kappa
rely on).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["FlowHead", "sample_flow_times"]


def sample_flow_times(
    n: int, alpha: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw ``n`` training times ``Beta(alpha, 1) * 0.999 + 0.001`` (pi0: alpha = 1.5).

    ``Beta(alpha, 1)`` has CDF ``x**alpha``, so ``u**(1/alpha)`` with uniform ``u`` samples it
    exactly from the given generator (``torch.distributions.Beta`` cannot take a generator, and a
    resumed run must draw the same times).
    """
    if alpha <= 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    u = torch.rand(n, generator=generator)
    return u.pow(1.0 / alpha) * 0.999 + 0.001


def _time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding ``(B, dim)`` of times in [0, 1]."""
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=t.device) / max(half - 1, 1))
    angles = t[:, None] * freqs[None] * 1000.0
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class _Block(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = h + self.mlp(self.norm(h) + cond)
        return out


class FlowHead(nn.Module):
    """Velocity network ``v(x_t, t, c)`` over a flattened chunk, conditioned in every block.

    Args:
        chunk_size: ``H``.
        action_dim: ``A``.
        cond_dim: Width of the conditioning vector ``c`` (the trunk's readout).
        hidden: Block width.
        layers: Residual blocks.
        time_dim: Width of the sinusoidal time embedding.
    """

    def __init__(
        self,
        chunk_size: int,
        action_dim: int,
        cond_dim: int,
        hidden: int,
        layers: int,
        time_dim: int = 64,
    ) -> None:
        super().__init__()
        self.chunk_size = chunk_size
        self.action_dim = action_dim
        self.time_dim = time_dim
        flat = chunk_size * action_dim
        self.in_proj = nn.Linear(flat, hidden)
        self.cond_proj = nn.Sequential(
            nn.Linear(cond_dim + time_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden)
        )
        self.blocks = nn.ModuleList(_Block(hidden) for _ in range(layers))
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, flat))

    def velocity(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """``v(x_t, t, c)``: ``(B, H, A)`` from ``x_t (B, H, A)``, ``t (B,)``, ``c (B, C)``."""
        c = self.cond_proj(torch.cat([cond, _time_embedding(t, self.time_dim)], dim=-1))
        h = self.in_proj(x_t.flatten(1))
        for block in self.blocks:
            h = block(h, c)
        out: torch.Tensor = self.out(h).view_as(x_t)
        return out

    def loss(
        self, actions: torch.Tensor, cond: torch.Tensor, noise: torch.Tensor, t: torch.Tensor
    ) -> torch.Tensor:
        """Per-element squared velocity error ``(B, H, A)`` (masking and weighting by the caller).

        Args:
            actions: Normalised target chunks ``a``.
            cond: Conditioning ``c``.
            noise: ``z``, same shape as ``actions``.
            t: ``(B,)`` flow times.
        """
        tt = t[:, None, None]
        x_t = tt * noise + (1.0 - tt) * actions
        u = noise - actions
        return (self.velocity(x_t, t, cond) - u).pow(2)

    def sample(self, cond: torch.Tensor, noise: torch.Tensor, steps: int) -> torch.Tensor:
        """Integrate from ``x_1 = noise`` to ``t = 0`` in ``steps`` Euler steps (deterministic)."""
        x = noise
        dt = -1.0 / steps
        for k in range(steps):
            t = torch.full((x.shape[0],), 1.0 + k * dt, device=x.device, dtype=x.dtype)
            x = x + dt * self.velocity(x, t, cond)
        return x
