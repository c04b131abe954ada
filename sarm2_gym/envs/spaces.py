"""What is what in a ``Dict`` observation space."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

__all__ = ["image_entries"]


def image_entries(space: spaces.Space[Any]) -> tuple[str, ...]:
    """Names of a ``Dict`` space's camera images (``(H, W, 3)`` uint8), in the space's order.

    What reads "every entry but the state" as a camera must use this: the state is not the only
    other entry (e.g. ``"past_states"``).
    """
    if not isinstance(space, spaces.Dict):
        return ()
    return tuple(
        k
        for k, s in space.spaces.items()
        if isinstance(s, spaces.Box) and s.dtype == np.uint8 and len(s.shape) == 3
        and s.shape[-1] == 3
    )  # fmt: skip
