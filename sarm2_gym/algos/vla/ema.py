"""An exponential moving average (EMA) of a policy's weights, kept beside its training.

Diffusion and flow-matching policies are usually deployed with an EMA of their weights rather
than the last optimizer iterate: the flow loss is noisy (every step draws its own noise and flow
times), so the last iterate sits wherever the last few batches pushed it, while the average sits
near the middle of where training wandered. BC keeps one when ``BCConfig.ema_decay > 0`` and
exports it as the policy.

The decay is warmed up, ``min(decay, (1 + step) / (10 + step))``, so the random initial weights
are forgotten within the first few dozen steps instead of weighing on the average for thousands.
"""

from __future__ import annotations

import torch

from sarm2_gym.algos.vla.tiny_vla import TinyVLA

__all__ = ["WeightEMA", "ema_rate"]


def ema_rate(decay: float, step: int) -> float:
    """The decay used after optimizer step ``step`` (1-based): warmed up towards ``decay``.

    Raises:
        ValueError: If ``decay`` is outside ``[0, 1)`` or ``step`` is below 1.
    """
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
    if step < 1:
        raise ValueError(f"EMA steps count from 1, got {step}")
    return min(decay, (1 + step) / (10 + step))


class WeightEMA:
    """A TinyVLA whose weights follow a training TinyVLA's as an exponential moving average.

    Floating-point parameters are averaged; buffers (normalisation statistics, the stored
    instruction embeddings) are copied, since training does not change them and an average
    of a constant is the constant.

    Args:
        model: The policy being trained; the average starts at its current weights.
        decay: Target decay in ``[0, 1)`` (e.g. 0.999: an average over roughly the last 1,000
            steps).
    """

    def __init__(self, model: TinyVLA, decay: float) -> None:
        ema_rate(decay, 1)  # validates
        self.decay = decay
        self.model = TinyVLA(model.config)
        self.model.load_state_dict(model.state_dict(), strict=True)
        self.model.to(next(model.parameters()).device)
        self.model.eval()
        self.model.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: TinyVLA, step: int) -> float:
        """Fold ``model``'s weights after optimizer step ``step`` in; returns the decay used."""
        rate = ema_rate(self.decay, step)
        for averaged, current in zip(self.model.parameters(), model.parameters(), strict=True):
            averaged.lerp_(current.detach(), 1.0 - rate)
        for kept, buffer in zip(self.model.buffers(), model.buffers(), strict=True):
            kept.copy_(buffer)
        return rate

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged weights, keyed as the model's own state dict."""
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore averaged weights saved by :meth:`state_dict` (strict: every key must match)."""
        self.model.load_state_dict(state, strict=True)
