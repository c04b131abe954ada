"""Progress readings smoothed into dense rewards, as the paper's labeller does it online.

Spec §1.8: the mean of the last ``window`` readings, never allowed to fall (a running maximum);
the reward of a reading is that smoothed value's increase, so an episode's rewards are never
negative and sum to its final smoothed progress. Shared by the SARM2 reward wrappers (readings
from the model) and the privileged-progress oracle (readings from the simulator).
"""

from __future__ import annotations

from collections import deque
from typing import Final

import numpy as np

__all__ = ["SMOOTHING_WINDOW", "SmoothedProgress"]

# Readings averaged by default (spec §1.8: a 5-sample moving average), online and offline alike.
SMOOTHING_WINDOW: Final[int] = 5


class SmoothedProgress:
    """One episode's smoothed progress.

    Args:
        window: Readings averaged.

    Raises:
        ValueError: For a window below 1.
    """

    def __init__(self, window: int = SMOOTHING_WINDOW) -> None:
        if window < 1:
            raise ValueError(f"smoothing_window must be >= 1, got {window}")
        self.readings: deque[float] = deque(maxlen=window)
        self.value = 0.0

    def reset(self) -> None:
        """Forget the episode."""
        self.readings.clear()
        self.value = 0.0

    def add(self, reading: float) -> float:
        """Take a reading; return the increase of the smoothed progress it brings (>= 0)."""
        self.readings.append(reading)
        smoothed = max(self.value, float(np.mean(self.readings)))
        increase, self.value = smoothed - self.value, smoothed
        return increase
