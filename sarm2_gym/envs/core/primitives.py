"""The shared action-primitive vocabulary: 22 primitives in 8 gate groups.

This module owns the table. Index order and group membership follow the SARM2 reference
configuration (spec §1.3): index = position in :data:`PRIMITIVES`, and each primitive belongs to
exactly one of the 8 groups in :data:`GROUPS`, one MMoE gate per group. ``dummy`` is the null
class used for idle and transit frames.

Example:
    >>> from sarm2_gym.envs.core.primitives import primitive_index, group_of
    >>> primitive_index("pick_grab")
    7
    >>> GROUP_NAMES[group_of("pick_grab")]
    'Acquire'
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

__all__ = [
    "DUMMY",
    "GROUPS",
    "GROUP_NAMES",
    "NUM_GROUPS",
    "NUM_PRIMITIVES",
    "PRIMITIVES",
    "PRIMITIVE_TO_GROUP",
    "group_of",
    "primitive_index",
    "primitive_name",
]

PRIMITIVES: Final[tuple[str, ...]] = (
    "clamp",
    "erase",
    "fold_flatten",
    "hang",
    "insert",
    "install",
    "pass",
    "pick_grab",
    "place",
    "pour_dump",
    "press",
    "pull",
    "roll",
    "rotate_turn",
    "scoop",
    "screw_unscrew",
    "sweep",
    "tie",
    "untie",
    "wrap",
    "zip_unzip",
    "dummy",
)
"""The 22 primitive classes (21 primitives + the null class ``dummy``), index order."""

GROUPS: Final[tuple[tuple[str, ...], ...]] = (
    ("pick_grab", "scoop", "pull"),
    ("place", "pour_dump"),
    ("erase", "zip_unzip", "sweep", "pass"),
    ("install", "insert"),
    ("fold_flatten", "hang"),
    ("rotate_turn", "screw_unscrew", "tie", "wrap", "untie", "roll"),
    ("press", "clamp"),
    ("dummy",),
)
"""Members of each gate group, in gate order."""

GROUP_NAMES: Final[tuple[str, ...]] = (
    "Acquire",
    "Release",
    "Translate",
    "Insert",
    "Shape Clothes",
    "Rotate",
    "Force",
    "Other",
)
"""Human-readable name of each gate group."""

NUM_PRIMITIVES: Final[int] = len(PRIMITIVES)
NUM_GROUPS: Final[int] = len(GROUPS)
DUMMY: Final[int] = PRIMITIVES.index("dummy")

_INDEX: Final = MappingProxyType({name: i for i, name in enumerate(PRIMITIVES)})

PRIMITIVE_TO_GROUP: Final[tuple[int, ...]] = tuple(
    next(g for g, members in enumerate(GROUPS) if name in members) for name in PRIMITIVES
)
"""Gate group index of every primitive, indexed by primitive index."""


def primitive_index(name: str) -> int:
    """Return the vocabulary index of a primitive name.

    Args:
        name: One of :data:`PRIMITIVES`.

    Returns:
        Its index in :data:`PRIMITIVES`.

    Raises:
        KeyError: If ``name`` is not in the vocabulary; the message lists the valid names.
    """
    try:
        return _INDEX[name]
    except KeyError:
        raise KeyError(f"unknown primitive {name!r}; expected one of {list(PRIMITIVES)}") from None


def primitive_name(index: int) -> str:
    """Return the primitive name at a vocabulary index.

    Raises:
        IndexError: If ``index`` is outside ``[0, NUM_PRIMITIVES)``.
    """
    if not 0 <= int(index) < NUM_PRIMITIVES:
        raise IndexError(f"primitive index {index} outside [0, {NUM_PRIMITIVES})")
    return PRIMITIVES[int(index)]


def group_of(primitive: str | int) -> int:
    """Return the gate group index of a primitive given by name or index."""
    idx = primitive_index(primitive) if isinstance(primitive, str) else int(primitive)
    primitive_name(idx)  # validates the range
    return PRIMITIVE_TO_GROUP[idx]
