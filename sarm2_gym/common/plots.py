"""Plots of progress curves over an episode with primitive bands."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: never needs a display

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch

from sarm2_gym.envs.core.primitives import NUM_PRIMITIVES, PRIMITIVES

__all__ = ["PRIMITIVE_COLORS", "plot_progress", "primitive_segments"]

_CMAP = plt.get_cmap("tab20", NUM_PRIMITIVES)
PRIMITIVE_COLORS: tuple[tuple[float, float, float, float], ...] = tuple(
    (0.85, 0.85, 0.85, 1.0) if name == "dummy" else _CMAP(i) for i, name in enumerate(PRIMITIVES)
)
"""A fixed colour per primitive (``dummy`` is light grey), shared by every plot and video."""


def primitive_segments(labels: Sequence[int] | np.ndarray) -> list[tuple[int, int, int]]:
    """Runs of equal labels as ``(start, end_exclusive, primitive)``."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return []
    cuts = np.flatnonzero(np.diff(labels)) + 1
    starts = np.r_[0, cuts]
    ends = np.r_[cuts, labels.size]
    return [(int(s), int(e), int(labels[s])) for s, e in zip(starts, ends, strict=True)]


def plot_progress(
    curves: Mapping[str, np.ndarray],
    labels: Sequence[int] | np.ndarray,
    path: str | Path,
    *,
    title: str = "",
    fps: float = 10.0,
    predicted_labels: Sequence[int] | np.ndarray | None = None,
) -> Path:
    """Plot progress curves over time above a band of primitive labels.

    Args:
        curves: Name -> per-frame values in [0, 1] (e.g. ``{"privileged": ..., "SARM2": ...}``).
        labels: Per-frame primitive indices (the reference band; negative = unlabelled).
        path: Output image path (PNG).
        title: Figure title.
        fps: Frames per second, for the time axis.
        predicted_labels: Optional second band (e.g. the model's predicted primitive).

    Returns:
        The written path.
    """
    bands = [("labels", np.asarray(labels))]
    if predicted_labels is not None:
        bands.append(("predicted", np.asarray(predicted_labels)))
    fig, axes = plt.subplots(
        1 + len(bands),
        1,
        figsize=(8, 3.2 + 0.5 * len(bands)),
        sharex=True,
        gridspec_kw={"height_ratios": [6] + [1] * len(bands)},
    )
    ax = axes[0]
    for name, values in curves.items():
        t = np.arange(len(values)) / fps
        ax.plot(t, values, label=name, lw=2)
    ax.set_ylim(-0.02, 1.05)
    ax.set_ylabel("progress")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    used: set[int] = set()
    for band_ax, (name, band) in zip(axes[1:], bands, strict=True):
        for start, end, prim in primitive_segments(band):
            if prim < 0:  # unlabelled frames (data without act_pri): no band
                continue
            band_ax.axvspan(start / fps, end / fps, color=PRIMITIVE_COLORS[prim], lw=0)
            used.add(prim)
        band_ax.set_yticks([])
        band_ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    axes[-1].set_xlabel("time (s)")
    handles = [Patch(color=PRIMITIVE_COLORS[p], label=PRIMITIVES[p]) for p in sorted(used)]
    fig.legend(
        handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False
    )
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
