"""SPIRAL's residual actor and critic ensemble over action chunks (spec §2.2).

Both are ``[Linear -> LayerNorm -> SiLU] x N -> Linear`` MLPs, as the reference. The actor reads
``[features, flatten(z)]`` and returns a residual chunk; the critic ensemble reads
``[features, flatten(z), flatten(a)]`` and returns one Q per member. The ensemble is evaluated as
one batched matrix product per layer (members stacked along a leading axis), which on a CPU is
several times faster than looping over five separate MLPs.

Two deliberate choices, both documented where they act:

* The residual is ``scale * tanh(mlp(.))``, so it is bounded by ``scale`` (0.1) in every entry.
  The reference multiplies the raw output by the scale ("initial residual magnitude"); bounding
  it makes the 0.1 a guarantee that the deployed action stays near the base policy's.
* The critic's input weights for the latent ``z`` start at zero. The critic is trained only on
  (dataset or rollout) actions with ``z = 0`` (spec §2.2: the latent of a stored action is
  unknown), so those weights receive no gradient and stay at zero: Q does not react to latents it
  was never trained on. Random weights there would add a latent-dependent offset to Q that
  best-of-kappa would then select on.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["CriticEnsemble", "EnsembleLinear", "ResidualActor", "best_of_kappa"]


def _mlp(in_dim: int, hidden: Sequence[int], out_dim: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    dims = [in_dim, *hidden]
    for a, b in itertools.pairwise(dims):
        layers += [nn.Linear(a, b), nn.LayerNorm(b), nn.SiLU()]
    layers.append(nn.Linear(dims[-1], out_dim))
    return nn.Sequential(*layers)


class ResidualActor(nn.Module):
    """Residual chunk ``s_theta(f, z) = scale * tanh(MLP([f, z]))`` of shape ``(B, H, A)``.

    Args:
        feature_dim: Width of the base policy's features.
        chunk_size: ``H``.
        action_dim: ``A``.
        hidden: Hidden widths.
        output_scale: Bound of every residual entry (spec: 0.1).
    """

    def __init__(
        self,
        feature_dim: int,
        chunk_size: int,
        action_dim: int,
        hidden: Sequence[int],
        output_scale: float,
    ) -> None:
        super().__init__()
        self.chunk_size, self.action_dim, self.output_scale = chunk_size, action_dim, output_scale
        flat = chunk_size * action_dim
        self.mlp = _mlp(feature_dim + flat, hidden, flat)
        # Near-zero last layer: before any update every candidate is (almost exactly) a base
        # chunk. Which candidate runs is still the untrained critics' choice, so the first round's
        # policy is not the base policy itself.
        last = self.mlp[-1]
        assert isinstance(last, nn.Linear)
        nn.init.uniform_(last.weight, -1e-3, 1e-3)
        nn.init.zeros_(last.bias)

    def forward(self, features: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``(B, H, A)`` residual, every entry in ``[-output_scale, output_scale]``."""
        x = torch.cat([features, noise.flatten(1)], dim=-1)
        out = self.output_scale * torch.tanh(self.mlp(x))
        return out.view(-1, self.chunk_size, self.action_dim)


class EnsembleLinear(nn.Module):
    """``n`` independent linear layers applied to ``(n, B, in)`` in one batched product."""

    def __init__(self, n: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)  # nn.Linear's default initialisation range
        self.weight = nn.Parameter(torch.empty(n, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, B, out)``."""
        return torch.baddbmm(self.bias, x, self.weight)


class _EnsembleLayerNorm(nn.Module):
    def __init__(self, n: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n, 1, dim))
        self.bias = nn.Parameter(torch.zeros(n, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = nn.functional.layer_norm(x, x.shape[-1:]) * self.weight + self.bias
        return out


class CriticEnsemble(nn.Module):
    """``N_Q`` independent Q-networks over ``[features, flatten(z), flatten(a)]``.

    Args:
        n_critics: Ensemble size (spec: 5).
        feature_dim: Width of the features.
        chunk_size: ``H``.
        action_dim: ``A``.
        hidden: Hidden widths of every member.
    """

    def __init__(
        self,
        n_critics: int,
        feature_dim: int,
        chunk_size: int,
        action_dim: int,
        hidden: Sequence[int],
    ) -> None:
        super().__init__()
        self.n_critics = n_critics
        flat = chunk_size * action_dim
        dims = [feature_dim + 2 * flat, *hidden]
        self.linears = nn.ModuleList(
            EnsembleLinear(n_critics, a, b) for a, b in itertools.pairwise(dims)
        )
        self.norms = nn.ModuleList(_EnsembleLayerNorm(n_critics, b) for b in dims[1:])
        self.out = EnsembleLinear(n_critics, dims[-1], 1)
        first = self.linears[0] if len(self.linears) else self.out
        assert isinstance(first, EnsembleLinear)
        with torch.no_grad():  # zero latent weights: see the module docstring
            first.weight[:, feature_dim : feature_dim + flat].zero_()

    def forward(
        self, features: torch.Tensor, noise: torch.Tensor, actions: torch.Tensor
    ) -> torch.Tensor:
        """Q of every member: ``(N_Q, B)``."""
        x = torch.cat([features, noise.flatten(1), actions.flatten(1)], dim=-1)
        h = x.unsqueeze(0).expand(self.n_critics, -1, -1)
        for linear, norm in zip(self.linears, self.norms, strict=True):
            h = nn.functional.silu(norm(linear(h)))
        out: torch.Tensor = self.out(h).squeeze(-1)
        return out

    def min_q(
        self, features: torch.Tensor, noise: torch.Tensor, actions: torch.Tensor
    ) -> torch.Tensor:
        """Conservative estimate ``min_i Q_i``: ``(B,)``."""
        return self(features, noise, actions).min(dim=0).values


def best_of_kappa(
    min_q: torch.Tensor, candidates: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick, per state, the candidate chunk with the highest min-Q (spec §2.2 deployment).

    Args:
        min_q: ``(B, kappa)`` ensemble-min Q of each candidate.
        candidates: ``(B, kappa, H, A)`` candidate chunks.

    Returns:
        ``(chunks (B, H, A), chosen index (B,))``.
    """
    if min_q.shape != candidates.shape[:2]:
        raise ValueError(
            f"min_q {tuple(min_q.shape)} does not match candidates {tuple(candidates.shape[:2])}"
        )
    best = min_q.argmax(dim=1)
    return candidates[torch.arange(candidates.shape[0]), best], best
