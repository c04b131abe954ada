"""Multi-gate mixture-of-experts head with hard gate selection (spec §1.6).

One gate MLP per primitive group and ``E`` experts shared by all gates. For every token the gate
of its *predicted group* is selected (hard selection; the gate still reads the fused token), its
softmax picks the top-k experts, their weights are renormalised over the top-k, and the output is
the weighted sum of those experts' scalars. Padded tokens output 0 (so ``sigmoid`` gives 0.5) and
are excluded from the routing losses.

The reference selects one gate per *sample* (from the current frame's prediction); here the gate
index is per token, which equals the reference at the current frame and keeps earlier positions
causal (see :mod:`.value_model`). All gates and experts run densely on all tokens: the heads are
small, and dense compute makes results independent of batch composition. In eval mode without
autograd the gates and experts run on stacked weights, a few batched matrix products per family
(:meth:`MMoEHead._dense_eval`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "MMoEHead",
    "RoutingAux",
    "RoutingOutput",
    "StackedMLPs",
    "make_mlp",
    "routing_aux_losses",
    "stack_mlps",
    "stacked_mlp_forward",
    "top_k_route",
]


def make_mlp(in_dim: int, hidden: Sequence[int], out_dim: int, dropout: float) -> nn.Sequential:
    """``LayerNorm -> [Linear -> GELU -> Dropout] x len(hidden) -> Linear`` (spec §1.6)."""
    layers: list[nn.Module] = [nn.LayerNorm(in_dim)]
    prev = in_dim
    for width in hidden:
        layers += [nn.Linear(prev, width), nn.GELU(), nn.Dropout(dropout)]
        prev = width
    layers.append(nn.Linear(prev, out_dim))
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class RoutingOutput:
    """MMoE head outputs, all indexed like the input tokens ``(...,)``.

    Attributes:
        output: ``(...)`` mixed expert scalar (pre-sigmoid); 0 at padded tokens.
        gate_probs: ``(..., E)`` softmax of the selected gate.
        topk_index: ``(..., k)`` chosen experts, most probable first.
        topk_weight: ``(..., k)`` renormalised weights of the chosen experts.
    """

    output: torch.Tensor
    gate_probs: torch.Tensor
    topk_index: torch.Tensor
    topk_weight: torch.Tensor


@dataclass(frozen=True)
class RoutingAux:
    """Routing auxiliary terms (spec §1.6), each a scalar tensor.

    Attributes:
        balance: ``Var(load)``, load = share of top-k slots per expert.
        importance: ``Var(imp)``, imp = share of gate probability mass per expert.
        entropy: Mean gate entropy H (a bonus: it enters the loss with a minus sign).
    """

    balance: torch.Tensor
    importance: torch.Tensor
    entropy: torch.Tensor

    def total(self, lambda_bal: float, lambda_imp: float, lambda_ent: float) -> torch.Tensor:
        """``lambda_bal * balance + lambda_imp * importance - lambda_ent * entropy``."""
        return lambda_bal * self.balance + lambda_imp * self.importance - lambda_ent * self.entropy


def top_k_route(probs: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k experts of each token and their weights renormalised to sum to 1.

    Returns:
        ``(index (..., k), weight (..., k))``.
    """
    top_p, top_i = torch.topk(probs, k=k, dim=-1)
    return top_i, top_p / top_p.sum(dim=-1, keepdim=True)


def routing_aux_losses(
    gate_probs: torch.Tensor, topk_index: torch.Tensor, valid: torch.Tensor
) -> RoutingAux:
    """Load-balance, importance and entropy terms over the valid tokens (spec §1.6).

    Args:
        gate_probs: ``(..., E)`` gate softmax.
        topk_index: ``(..., k)`` routed experts.
        valid: ``(...)`` bool, True for real (non-padded) tokens.
    """
    probs = gate_probs[valid]  # (Nv, E)
    index = topk_index[valid]  # (Nv, k)
    num_valid, num_experts = probs.shape
    if num_valid == 0:
        zero = gate_probs.sum() * 0.0
        return RoutingAux(zero, zero, zero)
    counts = torch.zeros(num_experts, device=probs.device, dtype=probs.dtype)
    counts.scatter_add_(0, index.reshape(-1), torch.ones_like(index.reshape(-1), dtype=probs.dtype))
    load = counts / (num_valid * index.shape[-1])
    mass = probs.sum(dim=0)
    importance = mass / mass.sum()
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum(dim=-1).mean()
    return RoutingAux(
        balance=load.var(unbiased=False),
        importance=importance.var(unbiased=False),
        entropy=entropy,
    )


class MMoEHead(nn.Module):
    """Multi-gate MoE regression head.

    Args:
        in_dim: Width of the fused token.
        num_gates: Gate networks (one per primitive group).
        num_experts: Shared experts E.
        top_k: Experts per token.
        expert_hidden: Hidden widths of each expert MLP.
        gate_hidden: Hidden width of each gate MLP.
        dropout: Dropout inside gates and experts.
    """

    def __init__(
        self,
        in_dim: int,
        num_gates: int,
        num_experts: int,
        top_k: int,
        expert_hidden: Sequence[int],
        gate_hidden: int,
        dropout: float,
    ) -> None:
        super().__init__()
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"top_k must be in [1, {num_experts}], got {top_k}")
        self.top_k = top_k
        self.gates = nn.ModuleList(
            make_mlp(in_dim, [gate_hidden], num_experts, dropout) for _ in range(num_gates)
        )
        self.experts = nn.ModuleList(
            make_mlp(in_dim, expert_hidden, 1, dropout) for _ in range(num_experts)
        )
        # Eval-mode stacked weights (see _dense_eval) and the parameter state they were built at.
        self._stacked: tuple[StackedMLPs, StackedMLPs] | None = None
        self._stacked_key: tuple[object, ...] | None = None

    def forward(
        self, x: torch.Tensor, gate_index: torch.Tensor, valid: torch.Tensor
    ) -> RoutingOutput:
        """Route every token through the experts chosen by its own gate.

        Args:
            x: ``(..., in_dim)`` fused tokens.
            gate_index: ``(...)`` long, which gate each token uses.
            valid: ``(...)`` bool, False for padded tokens.
        """
        if gate_index.numel() and (
            int(gate_index.max()) >= len(self.gates) or int(gate_index.min()) < 0
        ):
            raise ValueError(f"gate_index must be in [0, {len(self.gates)})")
        if self.training or torch.is_grad_enabled():
            all_logits = torch.stack([g(x) for g in self.gates], dim=-2)  # (..., G, E)
            expert_out = torch.cat([e(x) for e in self.experts], dim=-1)  # (..., E)
        else:
            all_logits, expert_out = self._dense_eval(x)
        pick = (
            gate_index.unsqueeze(-1)
            .unsqueeze(-1)
            .expand(*gate_index.shape, 1, all_logits.shape[-1])
        )
        gate_probs = torch.softmax(all_logits.gather(-2, pick).squeeze(-2), dim=-1)  # (..., E)
        topk_index, topk_weight = top_k_route(gate_probs, self.top_k)
        chosen = expert_out.gather(-1, topk_index)  # (..., k)
        output = (chosen * topk_weight).sum(dim=-1) * valid.to(x.dtype)
        return RoutingOutput(output, gate_probs, topk_index, topk_weight)

    def _dense_eval(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Eval-mode gate logits ``(..., G, E)`` and expert outputs ``(..., E)`` in one pass each.

        The same functions as the gate and expert modules without dropout, up to float rounding,
        but each family runs as a few batched matrix products over stacked weights instead of
        one small module call per gate and per expert: a batch-8 value query spent a sixth of its
        time in these calls on one CPU thread. Used only without autograd (``no_grad`` /
        ``inference_mode``): gradients must reach the modules' own parameters. The stacked
        weights are rebuilt whenever a parameter changes (storage or in-place version), so a
        model trained further, loaded or moved is never scored with stale weights.
        """
        key = tuple((p.data_ptr(), p._version) for p in self.parameters())
        if self._stacked is None or self._stacked_key != key:
            self._stacked = (stack_mlps(self.gates), stack_mlps(self.experts))
            self._stacked_key = key
        gates, experts = self._stacked
        lead = x.shape[:-1]
        flat = x.reshape(-1, x.shape[-1])
        logits = stacked_mlp_forward(gates, flat).permute(1, 0, 2)  # (M, G, E)
        out = stacked_mlp_forward(experts, flat).squeeze(-1).transpose(0, 1)  # (M, E)
        return logits.reshape(*lead, *logits.shape[1:]), out.reshape(*lead, out.shape[-1])


@dataclass(frozen=True)
class StackedMLPs:
    """Weights of K same-shaped :func:`make_mlp` networks stacked along a leading K axis.

    Attributes:
        norm_weight: ``(K, 1, in)`` LayerNorm scales.
        norm_bias: ``(K, 1, in)`` LayerNorm shifts.
        eps: The LayerNorms' epsilon (the same for all).
        weights: Per linear layer ``(K, in, out)`` (transposed for ``baddbmm``).
        biases: Per linear layer ``(K, 1, out)``.
    """

    norm_weight: torch.Tensor
    norm_bias: torch.Tensor
    eps: float
    weights: tuple[torch.Tensor, ...]
    biases: tuple[torch.Tensor, ...]


@torch.no_grad()
def stack_mlps(mlps: nn.ModuleList) -> StackedMLPs:
    """Stack the weights of :func:`make_mlp` networks of one shape (see :class:`StackedMLPs`)."""
    nets = [cast(nn.Sequential, m) for m in mlps]
    norms = [cast(nn.LayerNorm, m[0]) for m in nets]
    linears = [[layer for layer in m if isinstance(layer, nn.Linear)] for m in nets]
    depth = len(linears[0])
    return StackedMLPs(
        norm_weight=torch.stack([n.weight for n in norms]).unsqueeze(1),
        norm_bias=torch.stack([n.bias for n in norms]).unsqueeze(1),
        eps=norms[0].eps,
        weights=tuple(torch.stack([ls[j].weight.t() for ls in linears]) for j in range(depth)),
        biases=tuple(
            torch.stack([ls[j].bias for ls in linears]).unsqueeze(1) for j in range(depth)
        ),
    )


def stacked_mlp_forward(stacked: StackedMLPs, x: torch.Tensor) -> torch.Tensor:
    """All K networks on ``x (M, in)`` without dropout: ``(K, M, out)``.

    LayerNorm normalises once (the K norms differ only in their affine part); every hidden layer
    is GELU, as in :func:`make_mlp`.
    """
    h = F.layer_norm(x, (x.shape[-1],), eps=stacked.eps).unsqueeze(0)  # (1, M, in)
    h = torch.addcmul(stacked.norm_bias, h, stacked.norm_weight)  # (K, M, in)
    last = len(stacked.weights) - 1
    for j, (w, b) in enumerate(zip(stacked.weights, stacked.biases, strict=True)):
        h = torch.baddbmm(b, h, w)
        if j < last:
            h = F.gelu(h)
    return h
