"""Scripted expert for ``SARM2-SetDinnerTable-v0``: plate, then fork, knife and cup."""

from __future__ import annotations

from typing import cast

import numpy as np

from sarm2_gym.envs.experts._pick_place import Grasp, PickPlaceExpert, wrap_half_turn
from sarm2_gym.envs.tasks._pick_place import PLATE_RADIUS
from sarm2_gym.envs.tasks.set_dinner_table import (
    CUP,
    CUP_GRIP_Z,
    CUP_RADIUS,
    CUTLERY_GRIP_Z,
    FORK,
    HANDLE_HALF,
    KNIFE,
    PLATE,
    SetDinnerTableEnv,
)

__all__ = ["SetDinnerTableExpert"]

ORDER = (PLATE, FORK, KNIFE, CUP)  # plate first: the cutlery and the cup are laid around it
OPEN_FINGER_REACH = 0.06  # open fingers reach this far beyond an item's side (m)
CUTLERY_REACH = 0.15  # disc around a fork or knife (half its length and a margin), m


class SetDinnerTableExpert(PickPlaceExpert):
    """Lays the plate, the fork, the knife and the cup, each with the arm on its side.

    Args:
        quality: Quality preset or knobs (see :class:`~sarm2_gym.envs.core.expert.ExpertQuality`).
    """

    @property
    def table(self) -> SetDinnerTableEnv:
        """The task being demonstrated."""
        return cast(SetDinnerTableEnv, self._require_env())

    def grasp(self, k: int, arm: str) -> Grasp:
        """Plate by its rim, cutlery across the handle's middle, the cup across its body."""
        table = self.table
        pos = table.item_pos(k)
        if k == PLATE:
            return self.plate_grasp(k, arm)
        if k == CUP:
            return Grasp(pos + np.array([0.0, 0.0, CUP_GRIP_Z]), 0.0, 2 * CUP_RADIUS)
        # Fingers across the handle: the finger axis (sin yaw, -cos yaw) is perpendicular to the
        # handle's heading when the tool yaw equals that heading.
        grip = pos + np.array([0.0, 0.0, CUTLERY_GRIP_Z])
        return Grasp(grip, wrap_half_turn(table.item_yaw(k)), 2 * HANDLE_HALF[1])

    def next_item(self, pending: list[int]) -> int:
        """In table-setting order: plate, fork, knife, cup."""
        return min(pending, key=ORDER.index)

    def item_radius(self, k: int) -> float:
        """A disc around the item and the open fingers."""
        if k == PLATE:
            return PLATE_RADIUS + OPEN_FINGER_REACH
        if k == CUP:
            return CUP_RADIUS + OPEN_FINGER_REACH
        return CUTLERY_REACH
