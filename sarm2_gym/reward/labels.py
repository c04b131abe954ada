"""Label math for reward-model training: pure numpy functions, no torch.

* Steps-to-go targets of SARM2 (spec §1.7): ``1 - p_t``.
* SARM (v1) temporal-proportion priors and stage/tau labels (spec §3.2), for the baselines.
* Frame-index layouts of the value model and of the stage estimator, with the episode-start
  anchor (spec §1.4), and rewind augmentation (spec §1.7).

Inference layout. The reference trains with the evenly spread layout early in an episode but
queries raw rollouts with history frames clamped at 0 (spec §1.4, PART VI.3). Here inference uses
:func:`value_frame_indices` exactly as training does: a scorer that keeps the anchor plus the last
``n_obs_steps * frame_gap`` frames can build it at every step (see
:attr:`SARM2Config.history_frames`), so there is no train/inference mismatch to learn around.

Example:
    >>> value_frame_indices(100, n_obs_steps=6, frame_gap=5).tolist()
    [0, 75, 80, 85, 90, 95, 100]
    >>> value_frame_indices(12, n_obs_steps=6, frame_gap=5).tolist()
    [0, 2, 4, 6, 8, 10, 12]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "apply_rewind",
    "linear_progress",
    "normalize_stage_tau",
    "primitive_segments",
    "rewind_source_positions",
    "sample_rewind_steps",
    "sarm_v1_labels",
    "stage_and_tau",
    "stage_frame_indices",
    "steps_to_go",
    "temporal_proportions",
    "value_frame_indices",
]

Segment = tuple[int, int]
"""A subtask's ``(start, end)`` frame indices, inclusive."""

_AFTER_LAST_TAU = 0.999  # spec §3.2 edge rule: after the last subtask -> (K-1, 0.999)


# --------------------------------------------------------------------------- steps to go
def linear_progress(length: int) -> np.ndarray:
    """Frame-index progress ``t / (T - 1)`` of a demonstration (spec §1.7, README formula).

    Args:
        length: Number of frames T >= 1. A one-frame episode has progress ``[1.0]``.

    Returns:
        float32 array (T,) rising linearly from 0 to 1.
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    if length == 1:
        return np.ones(1, dtype=np.float32)
    return (np.arange(length, dtype=np.float64) / (length - 1)).astype(np.float32)


def steps_to_go(length: int, progress: np.ndarray | None = None) -> np.ndarray:
    """Value-model regression target ``1 - p_t`` (spec §1.7).

    Args:
        length: Number of frames T.
        progress: Per-frame progress in [0, 1] (e.g. the privileged ``progress`` column);
            ``None`` uses :func:`linear_progress`.

    Returns:
        float32 array (T,) in [0, 1]; 0 at task completion.

    Raises:
        ValueError: If ``progress`` has the wrong shape or values outside [0, 1] / NaN.
    """
    if progress is None:
        p = linear_progress(length)
    else:
        p = np.asarray(progress, dtype=np.float32)
        if p.shape != (length,):
            raise ValueError(f"progress must have shape ({length},), got {p.shape}")
        if not np.all(np.isfinite(p)) or p.min() < 0.0 or p.max() > 1.0:
            raise ValueError("progress must be finite and within [0, 1]")
    return (1.0 - p).astype(np.float32)


# ------------------------------------------------------------------ SARM v1 stage labels
def primitive_segments(labels: np.ndarray) -> list[tuple[int, int, int]]:
    """Split a per-frame label column into runs ``(label, start, end)`` (end inclusive).

    Example:
        >>> primitive_segments(np.array([7, 7, 8, 8, 8, 7]))
        [(7, 0, 1), (8, 2, 4), (7, 5, 5)]
    """
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError("labels must be a non-empty 1-D array")
    cuts = np.flatnonzero(arr[1:] != arr[:-1]) + 1
    starts = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts - 1, [arr.size - 1]])
    return [(int(arr[s]), int(s), int(e)) for s, e in zip(starts, ends, strict=True)]


def temporal_proportions(
    segments: Sequence[Sequence[Segment]], lengths: Sequence[int]
) -> np.ndarray:
    """Average temporal proportion of each subtask, SARM Formula 1 (spec §3.2).

    ``alpha_k = mean_i L_ik / T_i`` with ``L_ik = e_k - s_k + 1`` frames, renormalised to sum
    to 1 (as the lerobot implementation does, so gaps between subtasks do not shrink the total).

    Args:
        segments: Per demonstration, the K subtasks' ``(start, end)`` inclusive, in order.
        lengths: Per demonstration, its number of frames ``T_i``.

    Returns:
        float64 array (K,) of proportions summing to 1.
    """
    if not segments or len(segments) != len(lengths):
        raise ValueError("need one segment list and one length per demonstration")
    k = len(segments[0])
    if k == 0 or any(len(s) != k for s in segments):
        raise ValueError("every demonstration must have the same number K >= 1 of subtasks")
    props = np.zeros(k, dtype=np.float64)
    for segs, length in zip(segments, lengths, strict=True):
        if length < 1:
            raise ValueError(f"demonstration length must be >= 1, got {length}")
        for j, (start, end) in enumerate(segs):
            if not 0 <= start <= end < length:
                raise ValueError(f"segment {(start, end)} outside [0, {length})")
            props[j] += (end - start + 1) / length
    props /= len(segments)
    return props / props.sum()


def stage_and_tau(t: int, segments: Sequence[Segment], length: int) -> tuple[int, float]:
    """Stage index and within-stage fraction of frame ``t`` (spec §3.2, with its edge rules).

    Rules: before the first subtask -> ``(0, 0)``; after the last -> ``(K-1, 0.999)``; in a gap
    between subtasks -> the previous subtask with ``tau = 1``; a zero-length subtask (start ==
    end) -> ``tau = 1``; a single subtask (single-stage mode) -> ``tau = t / (T - 1)``.

    Args:
        t: Frame index.
        segments: The K subtasks' ``(start, end)`` inclusive, in order.
        length: Number of frames T.
    """
    if not segments:
        raise ValueError("segments must not be empty")
    if len(segments) == 1:
        return 0, min(1.0, max(0.0, t / max(length - 1, 1)))
    if t < segments[0][0]:
        return 0, 0.0
    if t > segments[-1][1]:
        return len(segments) - 1, _AFTER_LAST_TAU
    for k, (start, end) in enumerate(segments):
        if start <= t <= end:
            return k, (1.0 if end == start else (t - start) / (end - start))
        if k + 1 < len(segments) and end < t < segments[k + 1][0]:
            return k, 1.0
    raise ValueError(f"segments {list(segments)} are not ordered")


def normalize_stage_tau(stage: np.ndarray, tau: np.ndarray, proportions: np.ndarray) -> np.ndarray:
    """Progress ``P_{k-1} + alpha_k * tau`` from stage and tau, SARM Formula 2 (spec §3.2)."""
    alpha = np.asarray(proportions, dtype=np.float64)
    breaks = np.concatenate([[0.0], np.cumsum(alpha)])
    k = np.asarray(stage, dtype=np.int64)
    return (breaks[k] + alpha[k] * np.asarray(tau, dtype=np.float64)).astype(np.float32)


def sarm_v1_labels(
    length: int, segments: Sequence[Segment], proportions: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame SARM v1 labels of one demonstration.

    Returns:
        ``(stage int64 (T,), tau float32 (T,), progress float32 (T,))``.
    """
    if len(proportions) != len(segments):
        raise ValueError(f"{len(proportions)} proportions for {len(segments)} subtasks")
    pairs = [stage_and_tau(t, segments, length) for t in range(length)]
    stage = np.array([p[0] for p in pairs], dtype=np.int64)
    tau = np.array([p[1] for p in pairs], dtype=np.float32)
    return stage, tau, normalize_stage_tau(stage, tau, proportions)


# ------------------------------------------------------------------------ frame layouts
def _mid_frames(idx: int, ep_start: int, n_obs_steps: int, frame_gap: int) -> list[int]:
    """The ``n_obs_steps - 1`` history frames between the anchor and ``idx`` (spec §1.4)."""
    distance = idx - ep_start
    if distance >= frame_gap * n_obs_steps:
        # Enough history: fixed stride ending one gap before the current frame.
        return [idx - frame_gap * j for j in range(n_obs_steps - 1, 0, -1)]
    # Early in the episode: spread evenly between the anchor and idx (Python round, as the
    # reference; a monotone result is guaranteed because round is monotone).
    return [ep_start + round(distance * k / n_obs_steps) for k in range(1, n_obs_steps)]


def _check_layout_args(idx: int, ep_start: int, n_obs_steps: int, frame_gap: int) -> None:
    if idx < ep_start:
        raise ValueError(f"frame index {idx} precedes the episode start {ep_start}")
    if n_obs_steps < 2 or frame_gap < 1:
        raise ValueError("n_obs_steps must be >= 2 and frame_gap >= 1")


def value_frame_indices(
    idx: int, *, n_obs_steps: int, frame_gap: int, ep_start: int = 0
) -> np.ndarray:
    """Value-model layout ``[ep_start] + mid + [idx]``, length ``n_obs_steps + 1`` (spec §1.4).

    Used for training and, unchanged, for inference (see the module docstring).

    Returns:
        int64 array of non-decreasing frame indices.
    """
    _check_layout_args(idx, ep_start, n_obs_steps, frame_gap)
    return np.array([ep_start, *_mid_frames(idx, ep_start, n_obs_steps, frame_gap), idx], np.int64)


def stage_frame_indices(
    idx: int, *, n_obs_steps: int, frame_gap: int, ep_start: int = 0
) -> np.ndarray:
    """Stage-estimator layout ``mid + [idx]``: ``n_obs_steps`` frames, no anchor (spec §1.4).

    It equals positions ``1 .. n_obs_steps`` of :func:`value_frame_indices`.
    """
    _check_layout_args(idx, ep_start, n_obs_steps, frame_gap)
    return np.array([*_mid_frames(idx, ep_start, n_obs_steps, frame_gap), idx], np.int64)


def sample_rewind_steps(
    rng: np.random.Generator,
    idx: int,
    *,
    n_obs_steps: int,
    frame_gap: int,
    max_rewind: int,
    prob: float,
    ep_start: int = 0,
) -> int:
    """Draw the number r of rewind frames for a sample (spec §1.7); 0 means no rewind.

    Rewind is allowed only when ``idx > ep_start + n_obs_steps * frame_gap`` (the strided
    layout, so the rewound frames are history frames); then with probability ``prob``,
    ``r ~ U{1 .. min(max_rewind, (idx - ep_start) // frame_gap)}``.
    """
    if max_rewind <= 0 or idx <= ep_start + n_obs_steps * frame_gap:
        return 0
    if rng.random() >= prob:
        return 0
    hi = min(max_rewind, (idx - ep_start) // frame_gap)
    return int(rng.integers(1, hi + 1))


def apply_rewind(indices: np.ndarray, steps: int) -> np.ndarray:
    """Append ``steps`` history frames in reverse order: ``idx - gap, ..., idx - steps*gap``.

    The appended frames are the value layout's positions ``n-2, n-3, ...`` (``n`` = its
    length), i.e. the video played backwards from the current frame. Their targets are those
    frames' own targets, which is the reference's ``flip(progress)[i + 1]`` (spec §1.7).

    Example:
        >>> apply_rewind(np.array([0, 75, 80, 85, 90, 95, 100]), 2).tolist()
        [0, 75, 80, 85, 90, 95, 100, 95, 90]
    """
    n = len(indices)
    if not 0 <= steps <= n - 2:
        raise ValueError(f"rewind steps must be in [0, {n - 2}], got {steps}")
    return np.concatenate([indices, indices[rewind_source_positions(n, steps)]])


def rewind_source_positions(seq_len: int, steps: int) -> np.ndarray:
    """Positions of the layout that the ``steps`` rewind frames repeat: ``n-2, ..., n-1-steps``."""
    return np.arange(seq_len - 2, seq_len - 2 - steps, -1, dtype=np.int64)
