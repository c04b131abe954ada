"""The latent temperature of a flow-matching chunk policy: ``z = T * N(0, I)``."""

from __future__ import annotations

import math

import torch

__all__ = ["check_temperature", "draw_latents"]


def check_temperature(value: float, name: str = "temperature") -> float:
    """``value`` as a float if it is a usable latent temperature (finite, >= 0).

    Raises:
        ValueError: Naming ``name``, if ``value`` is negative, NaN or infinite.
    """
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return float(value)


def draw_latents(
    shape: tuple[int, ...], generator: torch.Generator, temperature: float = 1.0
) -> torch.Tensor:
    """Latents ``temperature * N(0, I)`` of ``shape``, drawn from ``generator``.

    The generator advances the same way at every temperature, so runs that differ only in it
    see the same underlying draws.
    """
    noise = torch.randn(shape, generator=generator)
    return noise if temperature == 1.0 else temperature * noise
