"""Offline labeller: per-frame dense reward and progress of recorded episodes (spec §1.8).

Exactly the reference labeller (``sarm2_label_ws.py::_process_one_episode``):

1. query the model at frames ``0, g, 2g, ...`` (``g`` = the model's frame gap) and clip the
   predicted steps-to-go ``s_k`` to [0, 1];
2. smooth: mean of the last 5 accepted samples, then a running minimum, so the smoothed
   steps-to-go ``s~_k`` never increases (``RegressionConfidenceSmoother`` with confidence 1);
3. sample rewards ``rho_k = -(s~_k - s~_{k-1})`` with ``s~_{-1} = 0``, so progress at the samples
   is ``P_k = sum_j rho_j = -s~_k`` in [-1, 0];
4. interpolate ``P`` linearly onto every frame (frames after the last sample keep its value);
   per-frame reward ``r_t = P_t - P_{t-1}``, ``r_0 = 0``;
5. clip rewards at 0 (``clip_reward_nonneg``).

Progress is returned shifted by +1 to [0, 1], as SPIRAL reads it. :func:`label_episode` is the
function other code calls (``progress, reward = label_episode(model, episode)``);
:func:`label_dataset` labels a whole LeRobot dataset and writes the columns ``sarm2_progress``
and ``sarm2_reward`` plus ``sarm_progress.parquet`` (LeRobot's RA-BC schema).

With ``num_workers > 1`` or a ``ray_address`` (``sarm2 label --num-workers N --ray-address
ADDR``, the ``[distributed]`` extra) the episodes are labelled on Ray actors
(:func:`~sarm2_gym.common.ray_pool.ray_map`): the model travels to each actor once, as the bytes
of its checkpoint, and is loaded there with :func:`~sarm2_gym.reward.checkpoint.load_pretrained`;
each actor reads its episodes' frames from the dataset itself (so on a multi-machine cluster the
dataset must be at the same path on every node, e.g. a shared file system), and the parent
collects the labels in episode order and writes them exactly as the single-process path does.
Same model, same frames: the same labels, bit for bit (``tests/scaling/test_ray_labelling.py``),
provided the actors run torch with as many threads as this process does (the default; on the
same kind of CPU): some kernels (e.g. oneDNN convolutions in EfficientNet) round differently
with another thread count, by about 1e-5 in features and 1e-8 in progress. ``worker_threads=1``
gives each actor one core, faster when actors fill the machine, and labels identical across any
number of actors but not bit-identical to a multi-threaded single process.

Example:
    >>> lab = labels_from_steps_to_go(np.array([0, 2, 4]), np.array([1.0, 0.5, 0.0]), 5, window=1)
    >>> lab.progress.tolist(), lab.reward.tolist()
    ([0.0, 0.25, 0.5, 0.75, 1.0], [0.0, 0.25, 0.25, 0.25, 0.25])
"""

from __future__ import annotations

import functools
import hashlib
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NamedTuple

import numpy as np
from tqdm.auto import tqdm

from sarm2_gym.data.columns import add_frame_columns
from sarm2_gym.data.episode import STATE_KEY, Episode, image_key
from sarm2_gym.data.reader import LeRobotDataset
from sarm2_gym.data.sarm_progress import write_sarm_progress
from sarm2_gym.reward.frames import fit_frames
from sarm2_gym.reward.model import SARM2RewardModel

__all__ = [
    "PROGRESS_COLUMN",
    "REWARD_COLUMN",
    "SMOOTHING_WINDOW",
    "EpisodeLabels",
    "label_dataset",
    "label_episode",
    "labels_from_steps_to_go",
    "smooth_steps_to_go",
]

SMOOTHING_WINDOW: Final[int] = 5  # spec §1.8: window_size=5, beta=2, confidence fixed at 1
PROGRESS_COLUMN: Final[str] = "sarm2_progress"
REWARD_COLUMN: Final[str] = "sarm2_reward"


class EpisodeLabels(NamedTuple):
    """Dense labels of one episode (unpacks as ``progress, reward``).

    Attributes:
        progress: ``(T,)`` smoothed progress in [0, 1] (the reference's ``progress.npy`` + 1).
        reward: ``(T,)`` non-negative per-frame reward, ``reward[0] = 0``.
    """

    progress: np.ndarray
    reward: np.ndarray


def smooth_steps_to_go(values: np.ndarray, window: int = SMOOTHING_WINDOW) -> np.ndarray:
    """Spec §1.8 step 2: trailing mean over ``window`` samples, then a running minimum.

    Example:
        >>> smooth_steps_to_go(np.array([1.0, 0.6, 0.8, 0.2]), window=2).round(6).tolist()
        [1.0, 0.8, 0.7, 0.5]
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    v = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    csum = np.concatenate([[0.0], np.cumsum(v)])
    hi = np.arange(1, v.size + 1)
    lo = np.maximum(hi - window, 0)
    return np.minimum.accumulate((csum[hi] - csum[lo]) / (hi - lo))


def labels_from_steps_to_go(
    query_frames: np.ndarray,
    steps_to_go: np.ndarray,
    length: int,
    *,
    window: int = SMOOTHING_WINDOW,
    clip_nonneg: bool = True,
) -> EpisodeLabels:
    """Spec §1.8 steps 2-5 from the predictions at the query frames.

    Args:
        query_frames: Increasing frame indices the model was queried at.
        steps_to_go: Predicted steps-to-go at those frames.
        length: Frames of the episode.
        window: Smoothing window (samples).
        clip_nonneg: Clip per-frame rewards at 0 (the reference's ``clip_reward_nonneg``).
    """
    q = np.asarray(query_frames, dtype=np.float64)
    if q.ndim != 1 or q.size == 0 or q.size != np.asarray(steps_to_go).size:
        raise ValueError("need one prediction per query frame, at least one")
    if np.any(np.diff(q) <= 0) or q[0] < 0 or q[-1] >= length:
        raise ValueError(f"query frames must increase within [0, {length})")
    smoothed = smooth_steps_to_go(steps_to_go, window)
    rho = -np.diff(smoothed, prepend=0.0)  # step 3: rho_k = -(s~_k - s~_{k-1}), s~_{-1} = 0
    p_samples = np.cumsum(rho)  # = -s~_k, in [-1, 0]
    p = np.interp(np.arange(length, dtype=np.float64), q, p_samples)
    reward = np.diff(p, prepend=p[0])  # r_0 = 0
    if clip_nonneg:
        reward = np.maximum(reward, 0.0)
    return EpisodeLabels(progress=(p + 1.0).astype(np.float32), reward=reward.astype(np.float32))


def _episode_inputs(episode: Episode | Mapping[str, Any]) -> tuple[dict[str, Any], Any, str]:
    if isinstance(episode, Episode):
        frames = {c: episode.frames[image_key(c)] for c in episode.cameras}
        return frames, episode.frames[STATE_KEY], episode.task
    return dict(episode["images"]), episode["state"], str(episode["task"])


def _is_frames(images: Any) -> bool:
    return (
        isinstance(images, np.ndarray)
        and images.dtype == np.uint8
        and images.ndim == 4
        and images.shape[-1] == 3
    )


def label_episode(
    model: SARM2RewardModel,
    episode: Episode | Mapping[str, Any],
    *,
    frame_gap: int | None = None,
    window: int = SMOOTHING_WINDOW,
) -> EpisodeLabels:
    """Dense per-frame progress and reward of one episode with a SARM2 model (spec §1.8).

    Args:
        model: The reward model.
        episode: An :class:`~sarm2_gym.data.episode.Episode` with its camera images, or a
            mapping with ``images`` (camera -> uint8 ``(T, H, W, 3)``), ``state`` ``(T, S)`` and
            ``task`` (instruction). Frames of another size are resized to the model's
            ``image_size`` as in training (:func:`~sarm2_gym.reward.frames.fit_frames`).
        frame_gap: Query every this many frames (default: the model's frame gap).
        window: Smoothing window in samples.

    Returns:
        ``EpisodeLabels(progress, reward)``, both ``(T,)`` float32.
    """
    frames, state, task = _episode_inputs(episode)
    size = model.config.image_size
    frames = {  # e.g. a LeRobot dataset's 480x640 video frames (invalid ones fail in predict)
        c: fit_frames(v, size) if _is_frames(v) else v for c, v in frames.items()
    }
    length = int(np.asarray(state).shape[0])
    gap = frame_gap or model.config.frame_gap
    query = np.arange(0, length, gap, dtype=np.int64)
    pred = model.predict_episode(frames, np.asarray(state), task, indices=query)
    return labels_from_steps_to_go(query, pred.steps_to_go, length, window=window)


def _read_episode(ds: LeRobotDataset, index: int, cameras: Sequence[str]) -> dict[str, Any]:
    """The inputs :func:`label_episode` needs of one stored episode."""
    cols = ds.read_frames(index, [STATE_KEY, *(image_key(c) for c in cameras)])
    return {
        "images": {c: cols[image_key(c)] for c in cameras},
        "state": cols[STATE_KEY],
        "task": ds.episode_meta(index)["tasks"][0],
    }


# ------------------------------------------------------------------ labelling on Ray actors
@dataclass(frozen=True)
class _Checkpoint:
    """A model's checkpoint files as bytes: what each actor receives once and loads."""

    files: dict[str, bytes]
    digest: str

    @classmethod
    def of(cls, model: SARM2RewardModel) -> _Checkpoint:
        with tempfile.TemporaryDirectory(prefix="sarm2-label-") as tmp:
            path = model.save_pretrained(Path(tmp) / "model")
            files = {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}
        digest = hashlib.sha256(b"".join(files[k] for k in sorted(files))).hexdigest()
        return cls(files, digest)

    def load(self) -> SARM2RewardModel:
        from sarm2_gym.reward.checkpoint import load_pretrained

        with tempfile.TemporaryDirectory(prefix="sarm2-label-") as tmp:
            for name, data in self.files.items():
                (Path(tmp) / name).write_bytes(data)
            return load_pretrained(tmp)


@dataclass(frozen=True, slots=True)
class _LabelJob:
    """One episode to label on an actor."""

    root: str
    index: int
    frame_gap: int | None
    window: int
    threads: int


# Per actor process: loaded models (by checkpoint digest) and open datasets (by path).
_ACTOR_MODELS: dict[str, SARM2RewardModel] = {}
_ACTOR_DATASETS: dict[str, LeRobotDataset] = {}


def _label_on_actor(checkpoint: _Checkpoint, job: _LabelJob) -> EpisodeLabels:
    """Actor side: label one stored episode (the model is loaded on the actor's first job)."""
    import torch

    if torch.get_num_threads() != job.threads:
        torch.set_num_threads(job.threads)
    model = _ACTOR_MODELS.get(checkpoint.digest)
    if model is None:
        _ACTOR_MODELS.clear()
        model = _ACTOR_MODELS[checkpoint.digest] = checkpoint.load()
    ds = _ACTOR_DATASETS.get(job.root)
    if ds is None:
        ds = _ACTOR_DATASETS[job.root] = LeRobotDataset(job.root)
    episode = _read_episode(ds, job.index, model.config.camera_names)
    return label_episode(model, episode, frame_gap=job.frame_gap, window=job.window)


def _labels(
    ds: LeRobotDataset,
    model: SARM2RewardModel,
    frame_gap: int | None,
    window: int,
    num_workers: int,
    ray_address: str | None,
    worker_threads: int | None,
) -> Iterator[EpisodeLabels]:
    """Labels of every episode of ``ds``, in episode order (here or on Ray actors)."""
    if num_workers <= 1 and ray_address is None:
        for i in range(ds.num_episodes):
            episode = _read_episode(ds, i, model.config.camera_names)
            yield label_episode(model, episode, frame_gap=frame_gap, window=window)
        return
    import torch

    from sarm2_gym.common.ray_pool import ray_map

    threads = worker_threads or torch.get_num_threads()
    jobs = [_LabelJob(str(ds.root), i, frame_gap, window, threads) for i in range(ds.num_episodes)]
    fn = functools.partial(_label_on_actor, _Checkpoint.of(model))
    workers = min(max(num_workers, 1), max(len(jobs), 1))
    yield from ray_map(fn, jobs, workers, ray_address or "local")


def label_dataset(
    root: str | Path,
    model: SARM2RewardModel,
    *,
    frame_gap: int | None = None,
    window: int = SMOOTHING_WINDOW,
    overwrite: bool = False,
    progress: bool = True,
    num_workers: int = 1,
    ray_address: str | None = None,
    worker_threads: int | None = None,
) -> Path:
    """Label every episode of a dataset; write the columns and ``sarm_progress.parquet``.

    Args:
        root: LeRobot v3.0 dataset written by this library.
        model: The reward model.
        frame_gap: Query gap (default: the model's).
        window: Smoothing window.
        overwrite: Replace existing ``sarm2_progress`` / ``sarm2_reward`` columns.
        progress: Show a progress bar.
        num_workers: Ray actors to label on (1 with no ``ray_address``: in this process).
        ray_address: Ray cluster to use (``"local"`` starts a local one, as does
            ``num_workers > 1`` without an address). The dataset must be readable at ``root``
            from every node.
        worker_threads: Torch threads of each actor (default: as many as this process uses,
            which keeps the labels bit-identical to labelling here; see the module docstring).

    Returns:
        The path of ``sarm_progress.parquet``.
    """
    ds = LeRobotDataset(root)
    prog: dict[int, np.ndarray] = {}
    rew: dict[int, np.ndarray] = {}
    labels = _labels(ds, model, frame_gap, window, num_workers, ray_address, worker_threads)
    bar = tqdm(labels, total=ds.num_episodes, desc=f"label {root}", disable=not progress)
    for i, (p, r) in enumerate(bar):
        prog[i], rew[i] = p, r
    add_frame_columns(root, {PROGRESS_COLUMN: prog, REWARD_COLUMN: rew}, overwrite=overwrite)
    return write_sarm_progress(root, progress_sparse=prog)
