"""The LeRobot v3.0 on-disk layout: paths, constants and ``meta/info.json``.

A dataset directory looks like this::

    meta/info.json                                  schema, fps, totals, path templates
    meta/stats.json                                 mean/std/min/max/count per feature
    meta/tasks.parquet                              task string <-> task_index
    meta/episodes/chunk-000/file-000.parquet        per-episode rows (one episode per file here)
    data/chunk-000/file-000.parquet                 per-frame rows (one episode per file here)

Episode ``e`` lives in chunk ``e // chunks_size``, file ``e % chunks_size``: LeRobot v3 allows a
file to hold one or many episodes, and one per file is what makes per-episode atomic writes and
resuming simple.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

__all__ = [
    "BOOKKEEPING_FEATURES",
    "CODEBASE_VERSION",
    "DATA_PATH",
    "DEFAULT_CHUNKS_SIZE",
    "EPISODES_DIR",
    "EPISODES_PATH",
    "INFO_PATH",
    "STATS_PATH",
    "TASKS_PATH",
    "VIDEO_PATH",
    "DatasetFormatError",
    "chunk_file",
    "data_file_path",
    "episode_meta_path",
    "load_info",
    "new_info",
    "user_features",
]

CODEBASE_VERSION: Final[str] = "v3.0"
DEFAULT_CHUNKS_SIZE: Final[int] = 1000
DEFAULT_DATA_FILE_SIZE_IN_MB: Final[int] = 100
DEFAULT_VIDEO_FILE_SIZE_IN_MB: Final[int] = 500

INFO_PATH: Final[str] = "meta/info.json"
STATS_PATH: Final[str] = "meta/stats.json"
TASKS_PATH: Final[str] = "meta/tasks.parquet"
EPISODES_DIR: Final[str] = "meta/episodes"
EPISODES_PATH: Final[str] = EPISODES_DIR + "/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DATA_PATH: Final[str] = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH: Final[str] = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"

BOOKKEEPING_FEATURES: Final[dict[str, dict[str, Any]]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
"""Per-frame columns LeRobot adds to every dataset; the writer computes them, callers never do."""

_REQUIRED_INFO_KEYS: Final[tuple[str, ...]] = (
    "codebase_version",
    "fps",
    "features",
    "data_path",
    "chunks_size",
)


class DatasetFormatError(ValueError):
    """A directory is not a (supported, intact) LeRobot v3.0 dataset."""


def chunk_file(episode_index: int, chunks_size: int) -> tuple[int, int]:
    """Return ``(chunk_index, file_index)`` of an episode in the one-episode-per-file layout."""
    return episode_index // chunks_size, episode_index % chunks_size


def episode_meta_path(root: Path, episode_index: int, chunks_size: int) -> Path:
    """Path of the ``meta/episodes`` file that holds one episode's row."""
    chunk, file = chunk_file(episode_index, chunks_size)
    return root / EPISODES_PATH.format(chunk_index=chunk, file_index=file)


def data_file_path(root: Path, info: dict[str, Any], chunk_index: int, file_index: int) -> Path:
    """Path of a data file, from the ``data_path`` template recorded in ``info.json``."""
    return root / str(info["data_path"]).format(chunk_index=chunk_index, file_index=file_index)


def new_info(
    *,
    fps: int,
    robot_type: str | None,
    features: dict[str, dict[str, Any]],
    chunks_size: int,
    use_videos: bool,
) -> dict[str, Any]:
    """Return the ``info.json`` of an empty dataset (same keys, same order as LeRobot).

    Args:
        fps: Frames per second.
        robot_type: Free-form robot name.
        features: Per-frame features without the bookkeeping ones (added here, last).
        chunks_size: Files per chunk directory.
        use_videos: Whether ``video_path`` is set.
    """
    return {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": 0,
        "total_frames": 0,
        "total_tasks": 0,
        "chunks_size": chunks_size,
        "data_files_size_in_mb": DEFAULT_DATA_FILE_SIZE_IN_MB,
        "video_files_size_in_mb": DEFAULT_VIDEO_FILE_SIZE_IN_MB,
        "fps": fps,
        "splits": {},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if use_videos else None,
        "features": {**features, **BOOKKEEPING_FEATURES},
    }


def user_features(info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The features of ``info`` without LeRobot's bookkeeping columns."""
    return {k: v for k, v in info["features"].items() if k not in BOOKKEEPING_FEATURES}


def load_info(root: Path) -> dict[str, Any]:
    """Read and check ``meta/info.json``.

    Raises:
        FileNotFoundError: If ``root`` or its ``meta/info.json`` does not exist.
        DatasetFormatError: If the file is not valid JSON, lacks required keys, or declares a
            codebase version other than v3.0.
    """
    path = root / INFO_PATH
    if not root.is_dir():
        raise FileNotFoundError(f"dataset directory {root} does not exist")
    if not path.is_file():
        raise FileNotFoundError(f"{root} is not a LeRobot dataset: {INFO_PATH} is missing")
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetFormatError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(info, dict):
        raise DatasetFormatError(f"{path} must hold a JSON object")
    missing = [k for k in _REQUIRED_INFO_KEYS if k not in info]
    if missing:
        raise DatasetFormatError(f"{path} lacks the keys {missing}")
    version = info["codebase_version"]
    if version != CODEBASE_VERSION:
        raise DatasetFormatError(
            f"{root} has codebase_version {version!r}; only LeRobot {CODEBASE_VERSION} datasets "
            "are supported (convert older ones with LeRobot's conversion script)"
        )
    return info
