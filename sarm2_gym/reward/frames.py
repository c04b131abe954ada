"""Whole datasets as per-frame tables, with frozen-encoder features computed once and cached.

Training and evaluation read thousands of frame windows per second, so every frame of every
episode is loaded once into a :class:`FrameTable`: per camera one array of all frames' features
(float16, as cached by :class:`~sarm2_gym.reward.encoders.cache.FeatureCache`) or, for the
trainable CNN, of raw uint8 images; plus the state, primitive, stage and privileged progress
columns, concatenated over episodes. :func:`load_frame_table` builds it from LeRobot datasets and
computes missing features first, in parallel worker processes when asked (each worker owns one
encoder on one thread; on a 2-core machine two workers roughly double the rate).

Example:
    >>> t = FrameTable.empty(("top",))
    >>> t.num_frames, t.num_episodes
    (0, 0)
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
from tqdm.auto import tqdm

from sarm2_gym.data.episode import STATE_KEY, image_key
from sarm2_gym.data.reader import LeRobotDataset
from sarm2_gym.reward.config import SARM2Config
from sarm2_gym.reward.encoders.base import ImageEncoder
from sarm2_gym.reward.encoders.cache import FeatureCache

__all__ = [
    "DEFAULT_CACHE_DIR",
    "EpisodeInfo",
    "FrameTable",
    "dataset_cache_key",
    "extract_features",
    "load_frame_table",
]

DEFAULT_CACHE_DIR: Final[Path] = Path(
    os.environ.get("SARM2_CACHE_DIR", Path.home() / ".cache" / "sarm2_gym" / "features")
)
"""Feature cache root (override with ``SARM2_CACHE_DIR`` or ``--cache-dir``)."""

_LABEL_COLUMNS: Final[tuple[str, ...]] = (STATE_KEY, "act_pri", "stage", "progress")


@dataclass(frozen=True, slots=True)
class EpisodeInfo:
    """Where one episode sits in a :class:`FrameTable` and what it is.

    Attributes:
        dataset: Dataset directory.
        index: Episode index within that dataset.
        start: First row of the episode in the table.
        length: Number of frames.
        task: Language instruction.
        env_id: Gymnasium id of the task (empty for data from elsewhere).
        success: Whether the episode succeeded.
        outcome: ``meta["outcome"]`` (success / partial / failed) of recorded episodes, else "".
        quality: Expert quality preset that produced the episode (``"expert"`` for
            demonstrations), "" for data from elsewhere.
    """

    dataset: str
    index: int
    start: int
    length: int
    task: str
    env_id: str
    success: bool
    outcome: str
    quality: str = ""

    @property
    def is_demo(self) -> bool:
        """A demonstration: an expert episode, or one without a recorded outcome."""
        return self.quality == "expert" or not self.outcome

    @property
    def rows(self) -> slice:
        """The episode's rows in the table."""
        return slice(self.start, self.start + self.length)


@dataclass
class FrameTable:
    """Per-frame arrays of many episodes, concatenated along frames.

    Attributes:
        cameras: Camera names, in model order.
        frames: Camera -> ``(N, F)`` features (float16/32) or ``(N, H, W, 3)`` uint8 images.
        state: ``(N, S)`` float32 raw state.
        act_pri: ``(N,)`` primitive index.
        stage: ``(N,)`` stage index within the episode's task.
        progress: ``(N,)`` privileged progress in [0, 1].
        episodes: One :class:`EpisodeInfo` per episode, in row order.
    """

    cameras: tuple[str, ...]
    frames: dict[str, np.ndarray]
    state: np.ndarray
    act_pri: np.ndarray
    stage: np.ndarray
    progress: np.ndarray
    episodes: list[EpisodeInfo] = field(default_factory=list)

    @classmethod
    def empty(cls, cameras: Sequence[str]) -> FrameTable:
        """A table without frames."""
        return cls(
            tuple(cameras),
            {c: np.zeros((0, 1), np.float16) for c in cameras},
            np.zeros((0, 14), np.float32),
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros(0, np.float32),
        )

    @property
    def num_frames(self) -> int:
        """Total frames N."""
        return int(self.state.shape[0])

    @property
    def num_episodes(self) -> int:
        """Number of episodes."""
        return len(self.episodes)

    @property
    def tasks(self) -> tuple[str, ...]:
        """Instructions present, in first-appearance order."""
        return tuple(dict.fromkeys(e.task for e in self.episodes))

    def episode_arrays(self, i: int) -> dict[str, Any]:
        """Views of one episode's columns (``frames`` is a camera mapping)."""
        rows = self.episodes[i].rows
        return {
            "frames": {c: self.frames[c][rows] for c in self.cameras},
            "state": self.state[rows],
            "act_pri": self.act_pri[rows],
            "stage": self.stage[rows],
            "progress": self.progress[rows],
        }

    def state_stats(self, episode_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of the state over the given episodes' frames (spec §1.4 z-scoring)."""
        rows = np.concatenate(
            [np.arange(self.episodes[i].start, self.episodes[i].rows.stop) for i in episode_ids]
        )
        st = self.state[rows].astype(np.float64)
        return st.mean(axis=0).astype(np.float32), st.std(axis=0).astype(np.float32)


def dataset_cache_key(root: str | Path) -> str:
    """Cache name of a dataset: its folder name plus a hash of its resolved path."""
    resolved = Path(root).resolve()
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:12]
    return f"{resolved.parent.name}-{resolved.name}-{digest}"


def _episode_key(index: int) -> str:
    return f"episode_{index:06d}"


# ------------------------------------------------------------------ feature extraction
_WORKER_ENCODER: dict[str, ImageEncoder] = {}


def _extract_one(job: tuple[str, int, str, dict[str, Any], str]) -> int:
    """Worker: encode one episode's frames into the cache (one encoder per process)."""
    import torch

    from sarm2_gym.reward.encoders import build_image_encoder

    root, index, cache_root, config_dict, device = job
    torch.set_num_threads(1)
    config = SARM2Config.from_dict(config_dict)
    key = repr(sorted(config_dict.items()))
    if key not in _WORKER_ENCODER:
        _WORKER_ENCODER[key] = build_image_encoder(config).to(device)
    _encode_episode(_WORKER_ENCODER[key], root, index, cache_root, config.camera_names)
    return index


def _encode_episode(
    encoder: ImageEncoder, root: str, index: int, cache_root: str, cameras: Sequence[str]
) -> dict[str, np.ndarray]:
    import torch

    ds = LeRobotDataset(root)
    cache = FeatureCache(cache_root, dataset_cache_key(root), encoder, cameras=cameras)
    images = ds.read_frames(index, [image_key(c) for c in cameras])
    with torch.no_grad():
        return cache.get(_episode_key(index), {c: images[image_key(c)] for c in cameras})


def extract_features(
    roots: Sequence[str | Path],
    config: SARM2Config,
    *,
    cache_dir: str | Path = DEFAULT_CACHE_DIR,
    image_encoder: ImageEncoder | None = None,
    num_workers: int = 1,
    progress: bool = True,
    device: str = "cpu",
) -> int:
    """Compute and cache the frozen-encoder features of every episode not cached yet.

    Args:
        roots: Dataset directories.
        config: Names the encoder (``config.frozen_encoder`` must be true) and cameras.
        cache_dir: Feature cache root.
        image_encoder: Encoder instance to use in this process (e.g. a test double); by
            default each worker builds the one ``config`` names.
        num_workers: Worker processes (1 = in this process).
        progress: Show a progress bar.
        device: Where the encoder runs (each worker moves its own copy there).

    Returns:
        Number of episodes encoded now.
    """
    if not config.frozen_encoder:
        raise ValueError(f"encoder {config.encoder!r} is trained end to end; nothing to cache")
    if image_encoder is None and num_workers <= 1:
        from sarm2_gym.reward.encoders import build_image_encoder

        image_encoder = build_image_encoder(config).to(device)
    jobs: list[tuple[str, int, str, dict[str, Any], str]] = []
    probe = _probe(config, image_encoder)
    for root in roots:
        ds = LeRobotDataset(root)
        cache = FeatureCache(cache_dir, dataset_cache_key(root), probe, cameras=config.camera_names)
        for meta in ds.episodes_meta:
            i = int(meta["episode_index"])
            if cache.load(_episode_key(i), int(meta["length"]), as_float32=False) is None:
                jobs.append((str(root), i, str(cache_dir), config.to_dict(), device))
    bar = tqdm(total=len(jobs), desc="features", unit="ep", disable=not progress or not jobs)
    if image_encoder is not None:
        for root, i, cache_root, _, _ in jobs:
            _encode_episode(image_encoder, root, i, cache_root, config.camera_names)
            bar.update(1)
    elif jobs:
        # forkserver: torch threads and GL state do not survive a plain fork.
        with mp.get_context("forkserver").Pool(num_workers) as pool:
            for _ in pool.imap_unordered(_extract_one, jobs):
                bar.update(1)
    bar.close()
    return len(jobs)


class _KeyOnly:
    """Stands in for EfficientNet where only its cache key and width are needed."""

    trainable = False

    def __init__(self, config: SARM2Config) -> None:
        self.out_dim = config.image_feature_dim
        self.cache_key = f"efficientnet_lite0-{config.encoder_input_size or config.image_size}"

    def encode(self, images: Any) -> Any:  # pragma: no cover - never called
        raise RuntimeError("a key-only encoder cannot encode")

    def to(self, device: Any) -> _KeyOnly:  # pragma: no cover - never called
        return self


# ------------------------------------------------------------------------- the table
def _probe(config: SARM2Config, image_encoder: ImageEncoder | None) -> Any:
    """An object with the encoder's cache key (without loading EfficientNet weights)."""
    if image_encoder is not None:
        return image_encoder
    if config.encoder == "efficientnet_lite0":
        return _KeyOnly(config)
    from sarm2_gym.reward.encoders import build_image_encoder

    return build_image_encoder(config)


def _episode_info(ds: LeRobotDataset, meta: Mapping[str, Any], start: int) -> EpisodeInfo:
    tasks = meta.get("tasks") or []
    extra = meta.get("meta") or {}
    success = bool(meta.get("success") or False)
    return EpisodeInfo(
        dataset=str(ds.root),
        index=int(meta["episode_index"]),
        start=start,
        length=int(meta["length"]),
        task=str(tasks[0]) if tasks else "",
        env_id=str(meta.get("env_id") or ""),
        success=success,
        outcome=str(extra.get("outcome", "")) if isinstance(extra, Mapping) else "",
        quality=str(meta.get("quality") or ""),
    )


def load_frame_table(
    roots: Sequence[str | Path],
    config: SARM2Config,
    *,
    cache_dir: str | Path = DEFAULT_CACHE_DIR,
    image_encoder: ImageEncoder | None = None,
    num_workers: int = 1,
    progress: bool = True,
    device: str = "cpu",
) -> FrameTable:
    """Load datasets into one :class:`FrameTable`, computing missing features first.

    Args:
        roots: Dataset directories (LeRobot v3.0, with ``act_pri``/``stage``/``progress``).
        config: Model configuration (encoder, cameras).
        cache_dir: Feature cache root.
        image_encoder: Frozen encoder instance (default: built from ``config``).
        num_workers: Feature-extraction processes.
        progress: Show progress bars.
        device: Where feature extraction runs.
    """
    cams = config.camera_names
    if config.frozen_encoder:
        extract_features(
            roots,
            config,
            cache_dir=cache_dir,
            image_encoder=image_encoder,
            num_workers=num_workers,
            progress=progress,
            device=device,
        )
        probe = _probe(config, image_encoder)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in (*_LABEL_COLUMNS, *cams)}
    episodes: list[EpisodeInfo] = []
    start = 0
    for root in roots:
        ds = LeRobotDataset(root)
        missing = [c for c in cams if image_key(c) not in ds.camera_keys]
        if missing:
            raise ValueError(f"{root} lacks camera(s) {missing}; the model needs {list(cams)}")
        if config.frozen_encoder:
            cache = FeatureCache(cache_dir, dataset_cache_key(root), probe, cameras=cams)
        for meta in ds.episodes_meta:
            info = _episode_info(ds, meta, start)
            cols = ds.read_frames(info.index, _LABEL_COLUMNS)
            for k in _LABEL_COLUMNS:
                parts[k].append(cols[k])
            if config.frozen_encoder:
                feats = cache.load(_episode_key(info.index), info.length, as_float32=False)
                if feats is None:
                    raise RuntimeError(f"features of {root} episode {info.index} are missing")
            else:
                imgs = ds.read_frames(info.index, [image_key(c) for c in cams])
                feats = {c: imgs[image_key(c)] for c in cams}
            for c in cams:
                parts[c].append(feats[c])
            episodes.append(info)
            start += info.length
    if not episodes:
        raise ValueError(f"no episodes in {list(map(str, roots))}")
    return FrameTable(
        cameras=cams,
        frames={c: np.concatenate(parts[c]) for c in cams},
        state=np.concatenate(parts[STATE_KEY]).astype(np.float32),
        act_pri=np.concatenate(parts["act_pri"]).astype(np.int64),
        stage=np.concatenate(parts["stage"]).astype(np.int64),
        progress=np.concatenate(parts["progress"]).astype(np.float32),
        episodes=episodes,
    )
