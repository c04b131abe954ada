"""The reward-model adaptation step of SPIRAL (spec §2.1 stage 2a, §2.3): the hook and annotators.

After the first round of rollouts of the base policy, the paper has humans annotate about 100
rollouts (segments labelled fast / slow / adjust / mistake, a final progress, an optional
catastrophic frame), turns the annotations into progress curves (spec §2.3) and fine-tunes the
reward model RM1 -> RM2, which then labels all later rounds.

Here the step is a hook: SPIRAL calls ``adapter.adapt(rollouts, out_dir)`` once, with every
rollout of the adaptation round annotated, and labels everything from then on with the labeller it
returns. Implementing the fine-tuning is the reward model's job (``RewardModelAdapter``).
Annotations come from an :data:`Annotator`: a person on a real robot (e.g. through
``sarm2 annotate``), or, in simulation, :func:`privileged_annotator`, which segments the
simulator's privileged progress curve the way an annotator would and goes through the very same
segment-to-progress protocol (:func:`sarm2_gym.real.annotation.progress_curve`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from sarm2_gym.algos.spiral.labeling import RolloutEpisode, RolloutLabeler
from sarm2_gym.real.annotation import (
    RolloutAnnotation,
    Segment,
    progress_curve,
    reward_from_progress,
)

__all__ = [
    "AnnotatedRollout",
    "Annotator",
    "RewardModelAdapter",
    "annotate_from_progress",
    "annotate_rollouts",
    "load_annotated_rollouts",
    "privileged_annotator",
]

Annotator = Callable[[RolloutEpisode], RolloutAnnotation]
"""Turns one rollout into a segment annotation (spec §2.3)."""


@dataclass(frozen=True)
class AnnotatedRollout:
    """A rollout with its annotation and the progress targets the annotation implies.

    Attributes:
        episode: The rollout (frames included when the collector kept them).
        annotation: Segments, final progress, catastrophic frame.
        progress: ``(L,)`` target progress curve (spec §2.3).
        reward: ``(L,)`` ``diff(progress, prepend=0)``.
    """

    episode: RolloutEpisode
    annotation: RolloutAnnotation
    progress: np.ndarray
    reward: np.ndarray


@runtime_checkable
class RewardModelAdapter(Protocol):
    """Fine-tunes the reward model on annotated rollouts (implemented by the reward model).

    ``adapt`` returns the labeller SPIRAL uses from then on (RM2) and should save what it needs
    into ``out_dir`` (when given), so that ``restore(out_dir)`` can rebuild that labeller when a
    run resumes after the adaptation round.
    """

    def adapt(self, rollouts: Sequence[AnnotatedRollout], out_dir: Path | None) -> RolloutLabeler:
        """Fine-tune on the annotated rollouts (mixing in pretraining data as the paper does)."""
        ...

    def restore(self, out_dir: Path) -> RolloutLabeler:
        """The adapted labeller saved by an earlier :meth:`adapt` call into ``out_dir``."""
        ...


def _segment_label(delta: float, fast_threshold: float, flat_tol: float) -> str:
    if delta < -flat_tol:
        return "mistake"
    if delta <= flat_tol:
        return "adjust"
    return "fast" if delta >= fast_threshold else "slow"


def annotate_from_progress(
    progress: np.ndarray,
    *,
    window: int = 5,
    flat_tol: float = 0.01,
    fast_ratio: float = 1.5,
    catastrophic_drop: float = 0.5,
) -> RolloutAnnotation:
    """Annotate a progress curve the way a person would, with the spec §2.3 labels.

    The timeline is cut into windows of ``window`` frames; a window whose progress falls by more
    than ``flat_tol`` is a ``mistake``, one that barely changes is ``adjust``, and rising windows
    are ``fast`` when they gain at least ``fast_ratio`` times the median rising gain, else
    ``slow``. Consecutive windows with one label merge into one segment. If progress drops by more
    than ``catastrophic_drop`` below its running best and never recovers, the first such frame
    is marked catastrophic. The final progress is the curve's last value.

    Example:
        >>> ann = annotate_from_progress(np.r_[np.linspace(0, 0.5, 10), np.full(10, 0.5)], window=5)
        >>> [(s.start, s.end, s.label) for s in ann.segments]
        [(0.0, 10.0, 'slow'), (10.0, 20.0, 'adjust')]
    """
    p = np.asarray(progress, dtype=np.float64)
    if p.ndim != 1 or p.size < 2:
        raise ValueError(f"need a 1-D progress curve of at least 2 frames, got shape {p.shape}")
    bounds = [*range(0, p.size, window), p.size]
    deltas = [p[min(e, p.size - 1)] - p[s] for s, e in itertools.pairwise(bounds)]
    rising = [d for d in deltas if d > flat_tol]
    fast_threshold = fast_ratio * float(np.median(rising)) if rising else np.inf
    segments: list[Segment] = []
    for (s, e), d in zip(itertools.pairwise(bounds), deltas, strict=True):
        label = _segment_label(d, fast_threshold, flat_tol)
        if segments and segments[-1].label == label:
            segments[-1] = Segment(segments[-1].start, float(e), label)
        else:
            segments.append(Segment(float(s), float(e), label))
    best = np.maximum.accumulate(p)
    collapsed = p < best - catastrophic_drop
    catastrophic = None
    if collapsed.any():
        first = int(np.argmax(collapsed))
        if np.all(p[first:] < best[first] - catastrophic_drop):
            catastrophic = float(first)
    final = float(p[first - 1]) if catastrophic is not None else float(p[-1])
    return RolloutAnnotation(
        tuple(segments), final_progress=final, catastrophic=catastrophic, start_progress=float(p[0])
    )


def privileged_annotator(episode: RolloutEpisode) -> RolloutAnnotation:
    """Simulation stand-in for a human annotator: segments the privileged progress curve.

    Raises:
        ValueError: If the episode has no privileged progress (use a human annotator then).
    """
    if episode.progress is None:
        raise ValueError("privileged_annotator needs privileged progress (simulation only)")
    return annotate_from_progress(episode.progress)


def annotate_rollouts(
    episodes: Sequence[RolloutEpisode], annotator: Annotator
) -> list[AnnotatedRollout]:
    """Annotate rollouts and derive their progress/reward targets (spec §2.3)."""
    out = []
    for ep in episodes:
        annotation = annotator(ep)
        progress = progress_curve(annotation, ep.length)
        out.append(AnnotatedRollout(ep, annotation, progress, reward_from_progress(progress)))
    return out


def load_annotated_rollouts(dataset: str | Path) -> list[AnnotatedRollout]:
    """The rollouts of a LeRobot dataset that ``sarm2 annotate`` labelled, with their targets.

    The stored segment annotations (``meta/rollout_annotations.json``) go through the same
    protocol as in :func:`annotate_rollouts`; episodes without one are left out.

    Raises:
        ValueError: If the dataset has no annotations, or one names an episode it lacks.
    """
    from sarm2_gym.data.reader import LeRobotDataset
    from sarm2_gym.real.annotate_cli import ANNOTATIONS_FILE, load_annotations

    records = load_annotations(dataset)
    if not records:
        raise ValueError(
            f"{dataset} has no rollout annotations ({ANNOTATIONS_FILE}): label its rollouts "
            f"first with `sarm2 annotate {dataset}`"
        )
    ds = LeRobotDataset(dataset)
    episodes = []
    for index in sorted(records):
        if index >= ds.num_episodes:
            raise ValueError(
                f"{dataset}: {ANNOTATIONS_FILE} annotates episode {index}, but the dataset holds "
                f"{ds.num_episodes} episodes"
            )
        episodes.append(RolloutEpisode.from_episode(ds.episode(index), dataset_episode=index))

    def stored(episode: RolloutEpisode) -> RolloutAnnotation:
        return RolloutAnnotation.from_dict(records[episode.meta["dataset_episode"]]["label"])

    return annotate_rollouts(episodes, stored)
