"""The latent temperature of a flow-matching chunk policy: ``z = T * N(0, I)``."""

from __future__ import annotations

import math

__all__ = ["check_temperature"]


def check_temperature(value: float, name: str = "temperature") -> float:
    """``value`` as a float if it is a usable latent temperature (finite, >= 0).

    Raises:
        ValueError: Naming ``name``, if ``value`` is negative, NaN or infinite.
    """
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return float(value)
