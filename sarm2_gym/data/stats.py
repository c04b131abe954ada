"""Feature statistics as LeRobot computes and stores them.

Per feature: ``min``, ``max``, ``mean``, ``std`` (float) and ``count`` (``[n]``). Vector features
get per-dimension arrays; scalar features arrays of shape ``(1,)``; image features per-channel
values of shape ``(3, 1, 1)`` in [0, 1], computed on up to 100 evenly spaced frames of an episode
(as LeRobot does). Episode statistics are stored in the episode rows (``stats/<key>/<stat>``),
and ``meta/stats.json`` is their exact pooled aggregate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import pyarrow as pa

from sarm2_gym.data.features import is_image

__all__ = [
    "STAT_NAMES",
    "Stats",
    "aggregate_stats",
    "episode_stats",
    "feature_stats",
    "has_stats",
    "stats_fields",
    "stats_from_json",
    "stats_from_row",
    "stats_to_json",
    "stats_to_row",
]

STAT_NAMES: Final[tuple[str, ...]] = ("min", "max", "mean", "std", "count")
MAX_IMAGE_SAMPLES: Final[int] = 100
_DOWNSAMPLE_ABOVE: Final[int] = 300  # image side (pixels) above which stats use a strided view
_DOWNSAMPLE_TARGET: Final[int] = 150

Stats = dict[str, dict[str, np.ndarray]]
"""Feature name -> stat name -> array."""


def has_stats(feature: Mapping[str, Any]) -> bool:
    """Whether statistics are kept for a feature (not for strings, as in LeRobot)."""
    return feature["dtype"] != "string"


def _stats_rank(feature: Mapping[str, Any]) -> int:
    if is_image(feature):
        return 3
    return len(feature["shape"])


def _image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel min, max, mean and std in [0, 1] of ``(T, H, W, 3)`` frames.

    uint8 frames go through a per-channel histogram of the 256 levels: the same numbers as the
    float computation, without a float64 copy of every pixel (that copy made the statistics the
    largest cost of writing an episode, ahead of PNG encoding).
    """
    if frames.dtype != np.uint8:
        x = frames.astype(np.float64) / 255.0
        axes = (0, 1, 2)
        return {"min": x.min(axes), "max": x.max(axes), "mean": x.mean(axes), "std": x.std(axes)}
    levels = np.arange(256, dtype=np.float64) / 255.0
    flat = frames.reshape(-1, 3)
    hist = np.stack([np.bincount(flat[:, c], minlength=256) for c in range(3)]).astype(np.float64)
    n = hist.sum(axis=1)
    mean = hist @ levels / n
    var = (hist * (levels[None] - mean[:, None]) ** 2).sum(axis=1) / n
    seen = hist > 0
    return {
        "min": np.array([levels[row.argmax()] for row in seen]),
        "max": np.array([levels[255 - row[::-1].argmax()] for row in seen]),
        "mean": mean,
        "std": np.sqrt(var),
    }


def feature_stats(arr: np.ndarray, feature: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Statistics of one column of one episode.

    Args:
        arr: The column, leading dimension = frames (images ``(T, H, W, 3)`` uint8).
        feature: Its declaration.
    """
    if is_image(feature):
        n = len(arr)
        picks = np.unique(np.round(np.linspace(0, n - 1, min(n, MAX_IMAGE_SAMPLES))).astype(int))
        frames = arr[picks]
        side = max(frames.shape[1], frames.shape[2])
        if side >= _DOWNSAMPLE_ABOVE:  # a strided view is plenty for normalisation constants
            step = max(1, side // _DOWNSAMPLE_TARGET)
            frames = frames[:, ::step, ::step]
        out = {k: v.reshape(3, 1, 1) for k, v in _image_stats(frames).items()}
        out["count"] = np.array([len(picks)], dtype=np.int64)
        return out
    x = arr.astype(np.float64).reshape(len(arr), *[int(s) for s in feature["shape"]])
    return {
        "min": x.min(axis=0),
        "max": x.max(axis=0),
        "mean": x.mean(axis=0),
        "std": x.std(axis=0),
        "count": np.array([len(arr)], dtype=np.int64),
    }


def episode_stats(
    columns: Mapping[str, np.ndarray], features: Mapping[str, Mapping[str, Any]]
) -> Stats:
    """Statistics of every column of an episode that has a feature with statistics."""
    return {
        key: feature_stats(arr, features[key])
        for key, arr in columns.items()
        if key in features and has_stats(features[key])
    }


def aggregate_stats(stats_list: Sequence[Stats]) -> Stats:
    """Pool statistics of several episodes exactly (count-weighted mean, pooled variance).

    Features missing from some entries are pooled over the entries that have them.
    """
    keys: dict[str, None] = {}
    for stats in stats_list:
        keys.update(dict.fromkeys(stats))
    out: Stats = {}
    for key in keys:
        parts = [s[key] for s in stats_list if key in s]
        counts = np.array([float(p["count"][0]) for p in parts])
        total = counts.sum()
        means = np.stack([p["mean"] for p in parts])
        weights = (counts / total).reshape(-1, *([1] * (means.ndim - 1)))
        mean = (means * weights).sum(axis=0)
        second = ((np.stack([p["std"] for p in parts]) ** 2 + (means - mean) ** 2) * weights).sum(
            axis=0
        )
        out[key] = {
            "min": np.min(np.stack([p["min"] for p in parts]), axis=0),
            "max": np.max(np.stack([p["max"] for p in parts]), axis=0),
            "mean": mean,
            "std": np.sqrt(np.maximum(second, 0.0)),
            "count": np.array([int(total)], dtype=np.int64),
        }
    return out


def stats_to_json(stats: Stats) -> dict[str, dict[str, Any]]:
    """JSON form of ``meta/stats.json`` (nested lists)."""
    return {key: {name: v.tolist() for name, v in s.items()} for key, s in stats.items()}


def stats_from_json(obj: Mapping[str, Mapping[str, Any]]) -> Stats:
    """Inverse of :func:`stats_to_json`."""
    return {
        key: {
            name: np.asarray(v, dtype=np.int64 if name == "count" else np.float64)
            for name, v in s.items()
        }
        for key, s in obj.items()
    }


def stats_fields(features: Mapping[str, Mapping[str, Any]]) -> list[pa.Field]:
    """Arrow fields of the ``stats/<key>/<stat>`` columns of an episode row."""
    fields = []
    for key, feature in features.items():
        if not has_stats(feature) or feature["dtype"] == "video":
            continue
        rank = _stats_rank(feature)
        for name in STAT_NAMES:
            typ: pa.DataType = pa.int64() if name == "count" else pa.float64()
            for _ in range(1 if name == "count" else rank):
                typ = pa.list_(typ)
            fields.append(pa.field(f"stats/{key}/{name}", typ))
    return fields


def stats_to_row(stats: Stats) -> dict[str, Any]:
    """Flatten statistics into ``stats/<key>/<stat>`` row values (nested lists)."""
    return {
        f"stats/{key}/{name}": value.tolist()
        for key, s in stats.items()
        for name, value in s.items()
    }


def stats_from_row(row: Mapping[str, Any], features: Mapping[str, Mapping[str, Any]]) -> Stats:
    """Rebuild an episode's statistics from its row; features without stats columns are skipped."""
    out: Stats = {}
    for key in features:
        cols = {name: row.get(f"stats/{key}/{name}") for name in STAT_NAMES}
        if any(v is None for v in cols.values()):
            continue
        out[key] = {
            name: np.asarray(v, dtype=np.int64 if name == "count" else np.float64)
            for name, v in cols.items()
        }
    return out
