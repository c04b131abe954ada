"""Rollout annotation -> progress curves (spec §2.3, the RM₂ adaptation labels of SPIRAL).

An annotator splits a rollout's timeline into segments labelled ``fast`` / ``slow`` / ``adjust`` /
``mistake`` (optionally ``catastrophic``), may mark a catastrophic frame, and gives the final
progress. Each segment gets a slope relative to a base slope ``s``: fast ``+2s``, slow ``+1s``,
adjust ``0``, mistake ``-1s``, catastrophic ``0``. ``s`` is solved so that the curve integrates
from ``start_progress`` to ``final_progress`` over the frames before the catastrophic frame:

    s = (p_final - p_start) / sum_{t < t_cat} m_t dt_t
    p_t = p_start + sum_{tau <= t} s m_tau dt_tau

with ``dt_0 = 0``. After the catastrophic frame progress is 0; the curve is clipped to [0, 1]. If
the weighted sum is 0 (e.g. only ``adjust`` segments), the curve is the straight line from
``p_start`` to ``p_final`` over the whole rollout (constant when they are equal). The reward is
``diff(progress, prepend=0)``.

Conventions kept from the reference labeller: a segment covers ``start <= t < end``; frames not
covered by any segment have slope 0; the last segment (by start) extends to the end of the
rollout; a catastrophic rollout labelled with the reference UI's sentinel ``final_progress = -100``
yields an all-zero curve (the clip). Times are in any unit (frame indices by default).

Example (hand-computed: 10 frames, 5 fast then 5 slow; sum m dt = 2*4 + 1*5 = 13):
    >>> ann = RolloutAnnotation((Segment(0, 5, "fast"), Segment(5, 10, "slow")), final_progress=1.0)
    >>> p = progress_curve(ann, 10)
    >>> [round(float(x) * 13, 6) for x in p]
    [0.0, 2.0, 4.0, 6.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0]
    >>> round(float(reward_from_progress(p).sum()), 6)
    1.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from types import MappingProxyType
from typing import Any, Final

import numpy as np

__all__ = [
    "LABEL_ALIASES",
    "SLOPE_MULTIPLIERS",
    "RolloutAnnotation",
    "Segment",
    "progress_curve",
    "reward_from_progress",
    "slope_multipliers",
]

SLOPE_MULTIPLIERS: Final[Mapping[str, float]] = MappingProxyType(
    {"fast": 2.0, "slow": 1.0, "adjust": 0.0, "mistake": -1.0, "catastrophic": 0.0}
)
"""Slope of each segment label, in units of the base slope ``s``."""

LABEL_ALIASES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "progress_fast": "fast",
        "progress_slow": "slow",
        "f": "fast",
        "s": "slow",
        "a": "adjust",
        "m": "mistake",
        "c": "catastrophic",
    }
)
"""Other spellings accepted on input (the reference tool's names, one-letter shortcuts)."""

_EPS: Final[float] = 1e-9


def _label(name: str) -> str:
    label = LABEL_ALIASES.get(name, name)
    if label not in SLOPE_MULTIPLIERS:
        raise ValueError(
            f"unknown segment label {name!r}; expected one of {list(SLOPE_MULTIPLIERS)}"
        )
    return label


@dataclass(frozen=True)
class Segment:
    """A labelled span ``start <= t < end`` of a rollout (frame indices by default)."""

    start: float
    end: float
    label: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "label", _label(self.label))
        if not (math.isfinite(self.start) and math.isfinite(self.end)):
            raise ValueError(f"segment bounds must be finite, got {self.start}, {self.end}")
        if not 0 <= self.start < self.end:
            raise ValueError(f"segment needs 0 <= start < end, got [{self.start}, {self.end})")


@dataclass(frozen=True)
class RolloutAnnotation:
    """Everything an annotator says about one rollout.

    Args:
        segments: Non-overlapping labelled spans (any order; sorted on creation).
        final_progress: Progress reached at the end (or just before the catastrophic frame).
        catastrophic: Time of the catastrophic failure, or ``None``.
        start_progress: Progress at the first frame.
    """

    segments: tuple[Segment, ...]
    final_progress: float
    catastrophic: float | None = None
    start_progress: float = 0.0

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.segments, key=lambda s: s.start))
        for a, b in pairwise(ordered):
            if b.start < a.end:
                raise ValueError(f"segments overlap: [{a.start}, {a.end}) and [{b.start}, {b.end})")
        object.__setattr__(self, "segments", ordered)
        for name in ("final_progress", "start_progress"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be finite")
        if self.catastrophic is not None and not (
            math.isfinite(self.catastrophic) and self.catastrophic >= 0
        ):
            raise ValueError(f"catastrophic must be a time >= 0, got {self.catastrophic}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the reference tool's field names)."""
        return {
            "final_progress": self.final_progress,
            "start_progress": self.start_progress,
            "catastrophic_frame": self.catastrophic,
            "segments": [{"start": s.start, "end": s.end, "label": s.label} for s in self.segments],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RolloutAnnotation:
        """Inverse of :meth:`to_dict`; also reads the reference tool's labels."""
        cat = data.get("catastrophic_frame")
        return cls(
            segments=tuple(
                Segment(float(s["start"]), float(s["end"]), str(s["label"]))
                for s in data["segments"]
            ),
            final_progress=float(data["final_progress"]),
            catastrophic=None if cat is None else float(cat),
            start_progress=float(data.get("start_progress", 0.0)),
        )


def _times(times: Sequence[float] | np.ndarray | int) -> np.ndarray:
    t = (
        np.arange(times, dtype=np.float64)
        if isinstance(times, int)
        else np.asarray(times, dtype=np.float64)
    )
    if t.ndim != 1 or t.size == 0:
        raise ValueError("need a non-empty 1-D array of times (or a frame count)")
    if np.any(np.diff(t) < 0):
        raise ValueError("times must be non-decreasing")
    return t - t[0]


def slope_multipliers(
    segments: Sequence[Segment], times: Sequence[float] | np.ndarray | int
) -> np.ndarray:
    """Per-frame slope multiplier ``m_t`` (0 where no segment covers the frame).

    Args:
        segments: Labelled spans, times relative to the first frame.
        times: Frame times, or a frame count ``T`` for times ``0..T-1``.
    """
    t = _times(times)
    m = np.zeros_like(t)
    ordered = sorted(segments, key=lambda s: s.start)
    for seg in ordered:
        m[(t >= seg.start) & (t < seg.end)] = SLOPE_MULTIPLIERS[seg.label]
    if ordered:
        # The last segment runs to the end, so the final frame is covered even when it sits
        # exactly on the segment's end boundary.
        last = ordered[-1]
        m[t >= last.start] = SLOPE_MULTIPLIERS[last.label]
    return m


def progress_curve(
    annotation: RolloutAnnotation, times: Sequence[float] | np.ndarray | int
) -> np.ndarray:
    """The progress curve of an annotated rollout, per spec §2.3.

    Args:
        annotation: Segments, final progress, catastrophic time.
        times: Frame times (e.g. a dataset's ``timestamp`` column), or a frame count ``T`` for
            frame-index times ``0..T-1`` (the unit of ``sarm2 annotate``).

    Returns:
        float64 (T,) progress in [0, 1].
    """
    t = _times(times)
    m = slope_multipliers(annotation.segments, t)
    dt = np.diff(t, prepend=0.0)  # dt_0 = 0: the first frame sits at the start progress
    p0, p1 = annotation.start_progress, annotation.final_progress
    cat = annotation.catastrophic
    counted = t < cat if cat is not None else np.ones(t.shape, dtype=bool)
    weighted = float(np.sum(m[counted] * dt[counted]))
    if abs(weighted) < _EPS:
        # No net slope to scale: fall back to a straight line (a constant if nothing changes).
        progress = np.full(t.shape, p0) if abs(p1 - p0) < _EPS else np.linspace(p0, p1, t.size)
    else:
        base_slope = (p1 - p0) / weighted
        progress = p0 + np.cumsum(base_slope * m * dt)
    if cat is not None:
        progress[t >= cat] = 0.0
    return np.clip(progress, 0.0, 1.0)


def reward_from_progress(progress: np.ndarray) -> np.ndarray:
    """Per-step reward ``diff(progress, prepend=0)`` (spec §2.3)."""
    return np.diff(np.asarray(progress, dtype=np.float64), prepend=0.0)
