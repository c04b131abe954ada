"""Per-frame progress of demonstration episodes for RA-BC, and frozen-feature caching.

``--rabc SOURCE`` names where the progress comes from:

* a SARM2 reward-model checkpoint directory: every episode is scored with
  :class:`~sarm2_gym.algos.spiral.labeling.RewardModelLabeler` (smoothed progress, spec §1.8);
* ``sarm_progress``: each dataset's own ``sarm_progress.parquet`` (LeRobot's RA-BC schema;
  ``progress_dense`` if present, else ``progress_sparse``), e.g. written by the SARM2 labeller;
* ``privileged``: the simulator's ground-truth ``progress`` column. An **oracle** for ablations,
  never a substitute for a reward model in reported results.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from sarm2_gym.algos.vla.data import DemoData
from sarm2_gym.data.episode import Episode
from sarm2_gym.data.reader import LeRobotDataset

__all__ = ["cached_frame_features", "episode_progress"]


def _from_parquet(demos: DemoData) -> list[np.ndarray]:
    from sarm2_gym.data.sarm_progress import SARM_PROGRESS_FILE, read_sarm_progress

    tables: dict[str, dict[str, np.ndarray]] = {}
    out = []
    for root, ep_index, _, length, _ in demos.episodes:
        if root not in tables:
            path = Path(root) / SARM_PROGRESS_FILE
            if not path.is_file():
                raise FileNotFoundError(f"--rabc sarm_progress: {path} does not exist")
            tables[root] = read_sarm_progress(path)
        table = tables[root]
        column = "progress_dense" if "progress_dense" in table else "progress_sparse"
        rows = np.flatnonzero(table["episode_index"] == ep_index)
        frames = table["frame_index"][rows]
        if rows.size != length or not np.array_equal(np.sort(frames), np.arange(length)):
            raise ValueError(
                f"{root}: sarm_progress.parquet does not cover episode {ep_index} ({length} frames)"
            )
        out.append(table[column][rows][np.argsort(frames)].astype(np.float64))
    return out


def _from_reward_model(directory: str, demos: DemoData) -> list[np.ndarray]:
    from sarm2_gym.algos.spiral.labeling import RewardModelLabeler, RolloutEpisode

    labeler = RewardModelLabeler.from_pretrained(directory)
    datasets: dict[str, LeRobotDataset] = {}
    out = []
    for root, ep_index, _, _, _ in demos.episodes:
        if root not in datasets:  # opening reads every episode's metadata: once per root
            datasets[root] = LeRobotDataset(root)
        ds = datasets[root]
        out.append(labeler.label(RolloutEpisode.from_episode(ds.episode(ep_index))).progress)
    return out


def episode_progress(source: str, demos: DemoData) -> list[np.ndarray]:
    """One progress array per loaded episode, from ``source`` (see the module docstring).

    Raises:
        ValueError: For an unknown source or progress that does not fit the episodes.
    """
    if source == "privileged":
        progress = [demos.progress[s].astype(np.float64) for s in demos.episode_slices()]
        if any(not np.all(np.isfinite(p)) for p in progress):
            raise ValueError(
                "the dataset has no privileged progress (a real robot's recording has none): "
                "use --rabc with a reward model or 'sarm_progress'"
            )
        return progress
    if source == "sarm_progress":
        return _from_parquet(demos)
    if Path(source, "config.json").is_file():
        return _from_reward_model(source, demos)
    raise ValueError(
        f"--rabc must be 'privileged', 'sarm_progress' or a reward-model directory, got {source!r}"
    )


def cached_frame_features(
    cache_dir: Path, input_size: int, cameras: tuple[str, ...]
) -> Callable[[str, int, Episode], np.ndarray]:
    """``(dataset root, episode index, episode) -> (T, n_cameras, 1280)`` frozen features.

    EfficientNet-Lite0 features of each episode are computed once and stored with the reward
    package's :class:`~sarm2_gym.reward.encoders.cache.FeatureCache` (safetensors, atomic), keyed
    by the dataset's resolved path and the episode index.
    """
    from sarm2_gym.reward.encoders.cache import FeatureCache
    from sarm2_gym.reward.encoders.efficientnet import EfficientNetLite0Encoder

    encoder = EfficientNetLite0Encoder(input_size)

    def features(root: str, index: int, episode: Episode) -> np.ndarray:
        key = hashlib.sha1(str(Path(root).resolve()).encode()).hexdigest()[:12]
        cache = FeatureCache(cache_dir, f"{Path(root).name}-{key}", encoder, cameras=cameras)
        with torch.no_grad():
            feats = cache.get_episode(f"episode_{index:06d}", episode)
        return np.stack([feats[c] for c in cameras], axis=1)

    return features
