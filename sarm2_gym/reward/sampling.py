"""Training and evaluation batches drawn from a :class:`~sarm2_gym.reward.frames.FrameTable`.

Every batch is built with :func:`~sarm2_gym.reward.batch.build_sample`, the function inference
uses, so training and inference layouts are identical (spec §1.4). Targets:

* ``"progress"`` (default): ``steps_to_go = 1 - progress`` with the simulator's privileged
  progress. It is our equivalent of annotated progress and stays right on failed and partial
  episodes, where the frame-index label would claim the task got done.
* ``"linear"``: the paper's demonstration label ``1 - t / (T - 1)`` (spec §1.7). Datasets from
  elsewhere (no ``progress`` column) train with this one; :func:`check_labels` says so.

The sampler's only randomness is one numpy ``Generator``; its state is part of a training
checkpoint, so a resumed run draws the same batches as an uninterrupted one.

Example:
    >>> frame_targets_linear = linear_steps_to_go([3])
    >>> frame_targets_linear.tolist()
    [1.0, 0.5, 0.0]
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import torch

from sarm2_gym.reward.batch import IGNORE_INDEX, RewardBatch
from sarm2_gym.reward.config import SARM2Config
from sarm2_gym.reward.frames import FrameTable
from sarm2_gym.reward.labels import (
    apply_rewind,
    linear_progress,
    sample_rewind_steps,
    value_frame_indices,
)

__all__ = [
    "TARGETS",
    "BatchSampler",
    "TrainBatch",
    "assemble_batch",
    "check_labels",
    "frame_targets",
    "linear_steps_to_go",
    "query_batches",
    "query_frames",
    "split_episodes",
    "task_ids_of",
]

TARGETS: Final[tuple[str, ...]] = ("progress", "linear")


@dataclass(frozen=True)
class TrainBatch:
    """A model batch plus where each position came from.

    Attributes:
        batch: The model input (targets included).
        rows: ``(B, T)`` table rows of every position (0 on padding).
        valid: ``(B, T)`` bool, False on padding.
        episodes: ``(B,)`` episode id of each sample.
        frames: ``(B,)`` query frame (within its episode) of each sample.
    """

    batch: RewardBatch
    rows: np.ndarray
    valid: np.ndarray
    episodes: np.ndarray
    frames: np.ndarray

    def gather(self, per_frame: np.ndarray, fill: float | int = 0) -> np.ndarray:
        """Per-position values of a per-frame table column, ``fill`` on padding."""
        out = np.asarray(per_frame)[self.rows]
        out[~self.valid] = fill
        return out


def linear_steps_to_go(lengths: Sequence[int]) -> np.ndarray:
    """Concatenated ``1 - t / (T - 1)`` of episodes with the given lengths."""
    return np.concatenate([1.0 - linear_progress(n) for n in lengths]).astype(np.float32)


def check_labels(
    missing: Mapping[str, Sequence[str]],
    *,
    primitives: bool,
    stages: bool = False,
    target: str = "linear",
) -> None:
    """Check that the label columns a training run needs are in every dataset.

    Args:
        missing: Label column -> datasets without it (:attr:`FrameTable.missing_labels`, or
            :func:`~sarm2_gym.reward.frames.missing_labels` before loading anything).
        primitives: The model has a stage estimator (needs per-frame ``act_pri``).
        stages: The model is SARM v1 (needs the per-frame task ``stage``).
        target: Steps-to-go target; ``"progress"`` needs a ``progress`` column.

    Raises:
        ValueError: Naming the column, the datasets without it and how to proceed.
    """
    if primitives and "act_pri" in missing:
        raise ValueError(
            f"{list(missing['act_pri'])} have no act_pri column, which SARM2's stage estimator "
            "trains on: add a per-frame primitive index (0-21, sarm2_gym.envs.core.primitives."
            "PRIMITIVES, 'dummy' for idle/transit frames) with "
            "sarm2_gym.data.add_frame_columns(root, {'act_pri': {episode: labels}}), e.g. from "
            "segment annotations (docs/tutorials/train_on_lerobot_data.md), or train a model "
            "that needs no primitive labels (--kind rewind or sarm2_no_stage)"
        )
    if stages and "stage" in missing:
        raise ValueError(
            f"{list(missing['stage'])} have no stage column (the per-frame index of the task "
            "stage), which SARM v1 trains on; add one with sarm2_gym.data.add_frame_columns"
        )
    if target == "progress" and "progress" in missing:
        raise ValueError(
            f"{list(missing['progress'])} have no progress column (or only the zeros a real "
            "robot's recorder writes there): train on the paper's "
            "linear label with --target linear (target='linear'), or add annotated per-frame "
            "progress in [0, 1] with sarm2_gym.data.add_frame_columns"
        )


def frame_targets(table: FrameTable, target: str = "progress") -> np.ndarray:
    """Per-frame steps-to-go ``(N,)`` of a table for a target kind (see the module docstring).

    Raises:
        ValueError: For an unknown target, or ``"progress"`` on data without progress.
    """
    if target == "progress":
        check_labels(table.missing_labels, primitives=False, target=target)
        return (1.0 - np.clip(table.progress, 0.0, 1.0)).astype(np.float32)
    if target == "linear":
        return linear_steps_to_go([e.length for e in table.episodes])
    raise ValueError(f"target must be one of {TARGETS}, got {target!r}")


def split_episodes(
    table: FrameTable, val_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Hold out about ``val_fraction`` of each task's episodes for validation.

    At least one episode is held out of a task with 3 or more, chosen with ``seed``.

    Returns:
        ``(train_ids, val_ids)``.
    """
    rng = np.random.default_rng(seed)
    train: list[int] = []
    val: list[int] = []
    for task in table.tasks:
        ids = [i for i, e in enumerate(table.episodes) if e.task == task]
        n_val = round(val_fraction * len(ids))
        if val_fraction > 0 and n_val == 0 and len(ids) >= 3:
            n_val = 1
        chosen = set(rng.choice(ids, size=n_val, replace=False).tolist()) if n_val else set()
        train += [i for i in ids if i not in chosen]
        val += sorted(chosen)
    return sorted(train), val


def task_ids_of(table: FrameTable, config: SARM2Config) -> np.ndarray:
    """Instruction index (in ``config.instructions``) of every episode of a table."""
    known = {t: i for i, t in enumerate(config.instructions)}
    unknown = sorted({e.task for e in table.episodes} - set(known))
    if unknown:
        raise ValueError(f"tasks {unknown} are not among the model's instructions")
    return np.array([known[e.task] for e in table.episodes], dtype=np.int64)


def assemble_batch(
    table: FrameTable,
    config: SARM2Config,
    targets: np.ndarray,
    task_ids: np.ndarray,
    episodes: np.ndarray,
    frames: np.ndarray,
    rewinds: np.ndarray,
) -> TrainBatch:
    """Build a batch from (episode, query frame, rewind steps) triples.

    Vectorised equivalent of :func:`~sarm2_gym.reward.batch.build_sample` +
    :meth:`RewardBatch.collate` (the inference path; ``tests/reward/test_sampling.py`` checks
    they agree): the layouts are computed per sample, then every column is gathered with one
    fancy index over the whole table.

    Args:
        table: The data.
        config: Layout sizes.
        targets: Per-frame steps-to-go ``(N,)``.
        task_ids: Per-episode instruction index (:func:`task_ids_of`).
        episodes: ``(B,)`` episode ids.
        frames: ``(B,)`` query frames within their episodes.
        rewinds: ``(B,)`` rewind steps (0 at inference).
    """
    b, t = len(episodes), config.max_seq_len
    local = np.zeros((b, t), dtype=np.int64)
    lengths = np.zeros(b, dtype=np.int64)
    starts = np.zeros(b, dtype=np.int64)
    for i, (ep, idx, rw) in enumerate(zip(episodes, frames, rewinds, strict=True)):
        info = table.episodes[int(ep)]
        if not 0 <= idx < info.length:
            raise ValueError(f"frame {idx} outside an episode of {info.length} frames")
        lay = value_frame_indices(
            int(idx), n_obs_steps=config.n_obs_steps, frame_gap=config.frame_gap
        )
        lay = apply_rewind(lay, int(rw))
        local[i, : len(lay)] = lay
        lengths[i], starts[i] = len(lay), info.start
    valid = np.arange(t)[None, :] < lengths[:, None]
    rows = starts[:, None] + local  # padding reads the episode's first frame, then is zeroed

    def gather(column: np.ndarray, fill: float | int = 0) -> np.ndarray:
        out = column[rows]
        out[~valid] = fill
        return out

    images = table.frames[table.cameras[0]].dtype == np.uint8
    cams = {}
    for c in table.cameras:
        arr = torch.from_numpy(gather(table.frames[c]))
        cams[c] = arr if images else arr.float()
    batch = RewardBatch(
        state=torch.from_numpy(gather(table.state).astype(np.float32)),
        lengths=torch.from_numpy(lengths),
        task_ids=torch.from_numpy(task_ids[np.asarray(episodes, dtype=np.int64)]),
        features=None if images else cams,
        images=cams if images else None,
        primitive_targets=torch.from_numpy(gather(table.act_pri, IGNORE_INDEX)),
        steps_to_go=torch.from_numpy(gather(targets).astype(np.float32)),
    )
    return TrainBatch(batch, rows, valid, np.asarray(episodes), np.asarray(frames))


class BatchSampler:
    """Draws training batches: frames uniformly over the given episodes, with rewind (§1.7).

    Args:
        table: The training data.
        episode_ids: Episodes to draw from.
        config: Layout sizes and rewind settings.
        targets: Per-frame steps-to-go ``(N,)`` (:func:`frame_targets`).
        seed: Seed of the sampler's generator.
    """

    def __init__(
        self,
        table: FrameTable,
        episode_ids: Sequence[int],
        config: SARM2Config,
        targets: np.ndarray,
        seed: int,
    ) -> None:
        if not episode_ids:
            raise ValueError("no episodes to sample from")
        self.table = table
        self.config = config
        self.targets = targets
        self.episode_ids = np.asarray(episode_ids, dtype=np.int64)
        lengths = np.array([table.episodes[i].length for i in episode_ids], dtype=np.float64)
        self._p = lengths / lengths.sum()
        self._task_ids = task_ids_of(table, config)
        self.rng = np.random.default_rng(seed)

    def sample(self, batch_size: int, part: slice | None = None) -> TrainBatch:
        """One batch of ``batch_size`` samples, or only the samples ``part`` of it.

        The generator draws the whole batch either way, so data-parallel ranks that share a
        seed and each assemble their own ``part`` (:func:`~sarm2_gym.common.distributed.shard`)
        together hold exactly the batch a single process draws, and stay in step.
        """
        cfg = self.config
        eps = self.rng.choice(self.episode_ids, size=batch_size, p=self._p)
        frames = np.array(
            [self.rng.integers(0, self.table.episodes[int(e)].length) for e in eps], np.int64
        )
        rewinds = np.array(
            [
                sample_rewind_steps(
                    self.rng,
                    int(i),
                    n_obs_steps=cfg.n_obs_steps,
                    frame_gap=cfg.frame_gap,
                    max_rewind=cfg.max_rewind,
                    prob=cfg.rewind_prob,
                )
                for i in frames
            ],
            np.int64,
        )
        if part is not None:
            eps, frames, rewinds = eps[part], frames[part], rewinds[part]
        return assemble_batch(self.table, cfg, self.targets, self._task_ids, eps, frames, rewinds)

    def state_dict(self) -> dict[str, Any]:
        """JSON-able generator state."""
        return {"bit_generator": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the generator state."""
        self.rng.bit_generator.state = state["bit_generator"]


def query_frames(length: int, frame_gap: int) -> np.ndarray:
    """Query frames of an episode for evaluation/labelling: ``0, g, 2g, ...`` (spec §1.8)."""
    return np.arange(0, length, frame_gap, dtype=np.int64)


def query_batches(
    table: FrameTable,
    episode_ids: Sequence[int],
    config: SARM2Config,
    targets: np.ndarray,
    *,
    frame_gap: int | None = None,
    batch_size: int = 256,
) -> Iterator[TrainBatch]:
    """Inference-layout batches (no rewind) of the query frames of every given episode.

    Args:
        table: The data.
        episode_ids: Episodes to score.
        config: Layout sizes.
        targets: Per-frame steps-to-go (used for losses; any array of the right length).
        frame_gap: Query every this many frames (default ``config.frame_gap``; 1 = all).
        batch_size: Queries per batch.
    """
    gap = frame_gap or config.frame_gap
    task_ids = task_ids_of(table, config)
    eps = np.concatenate(
        [np.full(len(query_frames(table.episodes[i].length, gap)), i) for i in episode_ids]
    ).astype(np.int64)
    frames = np.concatenate([query_frames(table.episodes[i].length, gap) for i in episode_ids])
    for s in range(0, len(eps), batch_size):
        e, f = eps[s : s + batch_size], frames[s : s + batch_size]
        yield assemble_batch(table, config, targets, task_ids, e, f, np.zeros_like(f))
