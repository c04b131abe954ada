"""Scripted expert for ``SARM2-PlatesIntoBin-v0`` (left plate: left arm; the rest: right arm)."""

from __future__ import annotations

from typing import cast

import numpy as np

from sarm2_gym.envs.experts._pick_place import Grasp, PickPlaceExpert
from sarm2_gym.envs.tasks._pick_place import PLATE_RADIUS
from sarm2_gym.envs.tasks.plates_into_bin import BIN_INNER_HALF, PlatesIntoBinEnv

__all__ = ["PlatesIntoBinExpert"]

LEFT_ARM_MIN_Y = 0.13  # plates further left than this (y, m) are the left arm's
OPEN_FINGER_REACH = 0.06  # open fingers reach this far beyond the rim (m)


class PlatesIntoBinExpert(PickPlaceExpert):
    """Left plate by the left arm, the middle and right ones by the right arm; stacked in the bin.

    Args:
        quality: Quality preset or knobs (see :class:`~sarm2_gym.envs.core.expert.ExpertQuality`).
    """

    @property
    def plates(self) -> PlatesIntoBinEnv:
        """The task being demonstrated."""
        return cast(PlatesIntoBinEnv, self._require_env())

    def grasp(self, k: int, arm: str) -> Grasp:
        """Pinch the rim beside the plate's way to the bin."""
        return self.plate_grasp(k, arm)

    def arm_for(self, k: int) -> str:
        """The left arm takes the plate on the robot's left, the right arm the other two."""
        return "left" if self.plates.item_pos(k)[1] > LEFT_ARM_MIN_Y else "right"

    def next_item(self, pending: list[int]) -> int:
        """The left arm's plate first, then the right arm's, the one nearest the bin first.

        Once the left arm has put its plate in the bin it parks, and the right arm starts on
        the middle plate rather than passing it by on the way to the far one.
        """
        bin_xy = self.plates.bin_center()

        def key(k: int) -> tuple[int, float]:
            first = 0 if self.arm_for(k) == "left" else 1
            return first, float(np.linalg.norm(self.plates.item_pos(k)[:2] - bin_xy))

        return min(pending, key=key)

    def item_radius(self, k: int) -> float:
        """Plate plus the open fingers on one side."""
        return PLATE_RADIUS + OPEN_FINGER_REACH

    def keep_out(self) -> list[tuple[np.ndarray, float]]:
        """The bin (as the disc around its walls)."""
        return [(self.plates.bin_center(), BIN_INNER_HALF * np.sqrt(2) + 0.02)]
