"""Whole datasets as per-frame tables, with frozen-encoder features computed once and cached.

Training and evaluation read thousands of frame windows per second, so every frame of every
episode is loaded once into a :class:`FrameTable`: per camera one array of all frames' features
(float16, as cached by :class:`~sarm2_gym.reward.encoders.cache.FeatureCache`) or, for the
trainable CNN, of raw uint8 images; plus the state, primitive, stage and privileged progress
columns, concatenated over episodes. :func:`load_frame_table` builds it from LeRobot datasets and
computes missing features first, in parallel worker processes when asked (each worker owns one
encoder on one thread; on a 2-core machine two workers roughly double the rate).

Datasets from elsewhere (LeRobot's own, e.g. from the Hugging Face hub) load too:

* camera ``c`` of the config is the dataset feature ``observation.images.<c>``, stored as
  ``image`` or ``video`` (decoded by :class:`~sarm2_gym.data.reader.LeRobotDataset`);
* frames of another size are resized to the config's ``image_size`` (:func:`fit_frames`, the
  same bilinear resize the reward wrappers apply with ``resize=True``, so training and inference
  see the same pixels); non-square frames are stretched;
* ``observation.state`` must have ``config.state_dim`` values;
* the label columns ``act_pri``, ``stage`` and ``progress`` may be missing: the table then holds
  placeholders (``IGNORE_INDEX``, ``-1``, NaN) and lists the column in
  :attr:`FrameTable.missing_labels`; training checks that the model kind and target it was asked
  for do not need it (:func:`~sarm2_gym.reward.sampling.check_labels`).

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

from sarm2_gym.data.episode import STATE_KEY, has_privileged_progress, image_key
from sarm2_gym.data.reader import LeRobotDataset
from sarm2_gym.reward.batch import IGNORE_INDEX
from sarm2_gym.reward.config import SARM2Config
from sarm2_gym.reward.encoders.base import ImageEncoder
from sarm2_gym.reward.encoders.cache import FeatureCache

__all__ = [
    "DEFAULT_CACHE_DIR",
    "EpisodeInfo",
    "FrameTable",
    "dataset_cache_key",
    "extract_features",
    "fit_frames",
    "load_frame_table",
    "missing_labels",
    "read_camera_frames",
]

DEFAULT_CACHE_DIR: Final[Path] = Path(
    os.environ.get("SARM2_CACHE_DIR", Path.home() / ".cache" / "sarm2_gym" / "features")
)
"""Feature cache root (override with ``SARM2_CACHE_DIR`` or ``--cache-dir``)."""

_LABEL_COLUMNS: Final[tuple[str, ...]] = (STATE_KEY, "act_pri", "stage", "progress")
_PLACEHOLDERS: Final[dict[str, tuple[Any, Any]]] = {
    "act_pri": (IGNORE_INDEX, np.int64),
    "stage": (-1, np.int64),
    "progress": (np.nan, np.float32),
}
"""Value and dtype that stand in for a label column a dataset does not have."""
_VIDEO_CHUNK: Final[int] = 256
"""Video frames decoded at a time before resizing (bounds memory for long HD episodes)."""


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
        missing_labels: Label column (``act_pri``, ``stage``, ``progress``) -> the datasets
            that lack it (their rows hold ``IGNORE_INDEX``, ``-1`` or NaN there).
    """

    cameras: tuple[str, ...]
    frames: dict[str, np.ndarray]
    state: np.ndarray
    act_pri: np.ndarray
    stage: np.ndarray
    progress: np.ndarray
    episodes: list[EpisodeInfo] = field(default_factory=list)
    missing_labels: dict[str, tuple[str, ...]] = field(default_factory=dict)

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


def fit_frames(images: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 frames ``(T, H, W, 3)`` to ``size x size`` (bilinear; unchanged if already).

    The same resize as the reward wrappers' ``resize=True``, so a model sees the same pixels in
    training, offline labelling and online scoring. Non-square frames are stretched.

    Example:
        >>> fit_frames(np.zeros((2, 48, 64, 3), np.uint8), 40).shape
        (2, 40, 40, 3)
    """
    if images.shape[1:3] == (size, size):
        return images
    from PIL import Image

    out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for i, im in enumerate(images):
        out[i] = np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.BILINEAR))
    return out


def read_camera_frames(
    ds: LeRobotDataset, episode_index: int, cameras: Sequence[str], size: int
) -> dict[str, np.ndarray]:
    """One episode's frames of each camera (``observation.images.<camera>``) at ``size``.

    Video cameras are decoded and resized in chunks of 256 frames, so a long high-resolution
    episode never sits in memory at full size.

    Returns:
        Camera -> uint8 ``(T, size, size, 3)``.
    """
    videos = set(ds.video_keys)
    length = int(ds.episode_meta(episode_index)["length"])
    out: dict[str, np.ndarray] = {}
    for cam in cameras:
        key = image_key(cam)
        if key in videos:
            out[cam] = np.concatenate(
                [
                    fit_frames(
                        ds.read_video(episode_index, key, s, min(_VIDEO_CHUNK, length - s)), size
                    )
                    for s in range(0, length, _VIDEO_CHUNK)
                ]
            )
        else:
            out[cam] = fit_frames(ds.read_frames(episode_index, [key])[key], size)
    return out


def _stored_size(feature: Mapping[str, Any]) -> tuple[int, int] | None:
    """Declared ``(H, W)`` of a camera feature (channels first or last), if it says."""
    shape = [int(s) for s in feature.get("shape") or []]
    if len(shape) != 3:
        return None
    names = feature.get("names") or []
    channels_first = len(names) == 3 and str(names[0]).startswith("channel")
    return (shape[1], shape[2]) if channels_first else (shape[0], shape[1])


def _cache_name(ds: LeRobotDataset, cameras: Sequence[str], image_size: int) -> str:
    """Feature-cache name of a dataset; datasets whose frames get resized name the size."""
    feats = ds.features
    sizes = {_stored_size(feats[image_key(c)]) for c in cameras if image_key(c) in feats}
    resized = sizes != {(image_size, image_size)}
    key = dataset_cache_key(ds.root)
    return f"{key}-{image_size}px" if resized else key


def missing_labels(roots: Sequence[str | Path]) -> dict[str, tuple[str, ...]]:
    """Label column (``act_pri``, ``stage``, ``progress``) -> the datasets that lack it.

    Reads only ``meta/info.json``, so a training run can refuse data it cannot use before
    spending time on feature extraction.
    """
    out: dict[str, list[str]] = {}
    for root in roots:
        for k in _absent_labels(LeRobotDataset(root)):
            out.setdefault(k, []).append(str(root))
    return {k: tuple(v) for k, v in out.items()}


def _absent_labels(ds: LeRobotDataset) -> list[str]:
    """The label columns a dataset lacks, or holds only as placeholders.

    A real robot's recorder writes a ``progress`` column of zeros (every episode needs one) and
    marks its episodes ``privileged_progress: false``: that column is no target to train on.
    """
    absent = [k for k in _PLACEHOLDERS if k not in ds.features]
    if "progress" not in absent and not all(
        has_privileged_progress(m.get("meta") or {}) for m in ds.episodes_meta
    ):
        absent.append("progress")
    return absent


def _check_dataset(root: str | Path, ds: LeRobotDataset, config: SARM2Config) -> None:
    """Cameras and state of a dataset against the config, with errors that say what to change."""
    cams = config.camera_names
    missing = [c for c in cams if image_key(c) not in ds.camera_keys]
    if missing:
        have = [k.removeprefix("observation.images.") for k in ds.camera_keys]
        raise ValueError(
            f"{root} lacks camera(s) {missing}; the model needs {list(cams)} (dataset features "
            f"observation.images.<camera>); this dataset's cameras are {have}: set "
            '"camera_names" in the config JSON'
        )
    feature = ds.features.get(STATE_KEY)
    if feature is None:
        raise ValueError(f"{root} has no {STATE_KEY} column; the reward model needs the state")
    dim = int(np.prod(feature["shape"]))
    if dim != config.state_dim:
        raise ValueError(
            f"{root}: {STATE_KEY} has {dim} values but the config's state_dim is "
            f'{config.state_dim}; set "state_dim": {dim} in the config JSON'
        )


# ------------------------------------------------------------------ feature extraction
# Per worker process, for the lifetime of one extraction pool: the encoder, and each dataset opened
# once (opening reads every episode's metadata, which costs more than encoding one episode).
_WORKER_ENCODER: dict[str, ImageEncoder] = {}
_WORKER_DATASETS: dict[str, LeRobotDataset] = {}


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
    if root not in _WORKER_DATASETS:
        _WORKER_DATASETS[root] = LeRobotDataset(root)
    _encode_episode(
        _WORKER_ENCODER[key],
        _WORKER_DATASETS[root],
        index,
        cache_root,
        config.camera_names,
        config.image_size,
    )
    return index


def _encode_episode(
    encoder: ImageEncoder,
    ds: LeRobotDataset,
    index: int,
    cache_root: str,
    cameras: Sequence[str],
    image_size: int,
) -> dict[str, np.ndarray]:
    import torch

    name = _cache_name(ds, cameras, image_size)
    cache = FeatureCache(cache_root, name, encoder, cameras=cameras)
    images = read_camera_frames(ds, index, cameras, image_size)
    with torch.no_grad():
        return cache.get(_episode_key(index), images)


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
    opened: dict[str, LeRobotDataset] = {}  # reused below when encoding in this process
    for root in roots:
        ds = opened[str(root)] = LeRobotDataset(root)
        _check_dataset(root, ds, config)
        name = _cache_name(ds, config.camera_names, config.image_size)
        cache = FeatureCache(cache_dir, name, probe, cameras=config.camera_names)
        for meta in ds.episodes_meta:
            i = int(meta["episode_index"])
            if cache.load(_episode_key(i), int(meta["length"]), as_float32=False) is None:
                jobs.append((str(root), i, str(cache_dir), config.to_dict(), device))
    bar = tqdm(total=len(jobs), desc="features", unit="ep", disable=not progress or not jobs)
    if image_encoder is not None:
        for root, i, cache_root, _, _ in jobs:
            _encode_episode(
                image_encoder, opened[root], i, cache_root, config.camera_names, config.image_size
            )
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
        from sarm2_gym.reward.encoders.efficientnet import efficientnet_cache_key

        self.cache_key = efficientnet_cache_key(config.encoder_input_size or config.image_size)

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
        roots: Dataset directories (LeRobot v3.0; ``act_pri``/``stage``/``progress`` columns
            are used where present, see the module docstring).
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
    unlabelled: dict[str, list[str]] = {}
    start = 0
    for root in roots:
        ds = LeRobotDataset(root)
        _check_dataset(root, ds, config)
        absent = _absent_labels(ds)
        for k in absent:
            unlabelled.setdefault(k, []).append(str(root))
        present = [k for k in _LABEL_COLUMNS if k not in absent]
        if config.frozen_encoder:
            name = _cache_name(ds, cams, config.image_size)
            cache = FeatureCache(cache_dir, name, probe, cameras=cams)
        for meta in ds.episodes_meta:
            info = _episode_info(ds, meta, start)
            cols = ds.read_frames(info.index, present)
            for k in absent:
                value, dtype = _PLACEHOLDERS[k]
                cols[k] = np.full(info.length, value, dtype=dtype)
            for k in _LABEL_COLUMNS:
                parts[k].append(cols[k].reshape(info.length, -1) if k == STATE_KEY else cols[k])
            if config.frozen_encoder:
                feats = cache.load(_episode_key(info.index), info.length, as_float32=False)
                if feats is None:
                    raise RuntimeError(f"features of {root} episode {info.index} are missing")
            else:
                feats = read_camera_frames(ds, info.index, cams, config.image_size)
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
        missing_labels={k: tuple(v) for k, v in unlabelled.items()},
    )
