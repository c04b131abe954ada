"""NumPy observations to tensors without torch's read-only-array warning."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["to_tensor"]


def to_tensor(value: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``value`` as a tensor, sharing its memory where torch may write to it.

    Read-only arrays (memory-mapped dataset columns, arrays a vector env hands out as views) are
    copied first: ``torch.from_numpy`` on them warns that writing to the tensor would be undefined.
    """
    if isinstance(value, torch.Tensor):
        return value
    arr = np.asarray(value)
    return torch.from_numpy(arr if arr.flags.writeable else arr.copy())
