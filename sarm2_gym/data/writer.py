"""Record :class:`Episode` objects into a LeRobot v3.0 dataset, atomically and resumably.

Atomicity and resume
--------------------
Each episode gets its own data file and its own ``meta/episodes`` file. ``add_episode`` writes,
each file through a temporary file and :func:`os.replace`:

1. ``meta/info.json`` with the feature schema, only when the first episode defines it;
2. the data file ``data/chunk-C/file-F.parquet``;
3. ``meta/tasks.parquet``, only when the episode brings a new task;
4. the episode row ``meta/episodes/chunk-C/file-F.parquet`` -- **the commit point**: an episode
   exists exactly when its row file exists;
5. ``meta/info.json`` (totals) and ``meta/stats.json`` (pooled statistics).

The task table is written before the row (not after it) so that a committed episode's task is
always in ``tasks.parquet``. Whenever the process dies, the directory is a readable dataset of
the committed episodes (``info.json``/``stats.json`` may lag one episode behind; the reader takes
the episode rows as the truth). Re-opening the writer resumes after the last committed episode:
it deletes temporary files and orphan data files (written but never committed), drops tasks no
committed episode uses, and rewrites ``tasks.parquet``, ``info.json`` and ``stats.json`` from the
episode rows.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa

from sarm2_gym.data._fs import (
    LOCK_NAME,
    TMP_MARK,
    DatasetLock,
    atomic_write_json,
    atomic_write_parquet,
    remove_temp_files,
)
from sarm2_gym.data.episode import Episode
from sarm2_gym.data.features import (
    IMAGE_NAMES,
    check_column_name,
    column_to_arrow,
    default_names,
    describe_mismatch,
    feature_of,
    schema_of,
)
from sarm2_gym.data.layout import (
    BOOKKEEPING_FEATURES,
    DEFAULT_CHUNKS_SIZE,
    INFO_PATH,
    STATS_PATH,
    DatasetFormatError,
    chunk_file,
    data_file_path,
    episode_meta_path,
    load_info,
    new_info,
    user_features,
)
from sarm2_gym.data.meta import (
    episode_row_table,
    public_meta,
    read_episode_rows,
    read_tasks,
    require_own_layout,
    to_json,
    write_tasks,
)
from sarm2_gym.data.stats import (
    Stats,
    aggregate_stats,
    episode_stats,
    stats_from_row,
    stats_to_json,
    stats_to_row,
)

__all__ = ["LeRobotDatasetWriter"]

_IMAGE_FORMATS: Final[tuple[str, ...]] = ("png",)
_DATA_NAME: Final[re.Pattern[str]] = re.compile(r"chunk-(\d+)/file-(\d+)\.parquet$")


def _normalise_features(features: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Check caller-declared features and bring them to the stored form."""
    out: dict[str, dict[str, Any]] = {}
    for key, ft in features.items():
        check_column_name(key)
        if key in BOOKKEEPING_FEATURES:
            raise ValueError(f"feature {key!r} is added by the writer; do not declare it")
        if "dtype" not in ft or "shape" not in ft:
            raise ValueError(f"feature {key!r} needs 'dtype' and 'shape', got {dict(ft)}")
        shape = [int(s) for s in ft["shape"]]
        dtype = str(ft["dtype"])
        if dtype == "video":
            raise ValueError(f"feature {key!r}: video features are not supported; use 'image'")
        if dtype == "image" and (len(shape) != 3 or shape[2] != 3):
            raise ValueError(f"image feature {key!r} must have shape [H, W, 3], got {shape}")
        names = ft.get("names")
        if names is None:
            names = list(IMAGE_NAMES) if dtype == "image" else default_names(key, shape)
        out[key] = {"dtype": dtype, "shape": shape, "names": names}
    return out


def _seed_value(seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ValueError(f"Episode.meta['seed'] must be an int or None, got {seed!r}")
    return int(seed)


def _has_foreign_files(root: Path) -> bool:
    """Whether ``root`` holds any file other than our lock and temporary files."""
    if not root.exists():
        return False
    lock = root / LOCK_NAME
    return any(p.is_file() and p != lock and TMP_MARK not in p.name for p in root.rglob("*"))


class LeRobotDatasetWriter:
    """Create a LeRobot v3.0 dataset, or re-open one to append (resume) episodes.

    Args:
        root: Dataset directory. Created when missing or empty; re-opened when it holds a dataset.
        fps: Frames per second; every episode must have this ``Episode.fps``.
        robot_type: Stored in ``info.json``.
        features: Optional per-frame feature declarations ``{name: {dtype, shape, names}}``
            (without LeRobot's ``timestamp``/``frame_index``/``episode_index``/``index``/
            ``task_index``, which the writer adds). When ``None`` the first episode defines them.
        image_format: ``"png"``: frames are PNG bytes inside the data files (LeRobot ``image``
            features, lossless). Video encoding is not implemented.
        chunks_size: Files per chunk directory (LeRobot's default 1000); ``None`` keeps the
            stored value of an existing dataset.
        png_compress_level: zlib level of the PNG frames (0-9); low is faster.

    Raises:
        ValueError: If ``root`` is a non-empty directory without a dataset, or holds a dataset
            with another fps, robot_type, chunks_size, features or codebase version.
        RuntimeError: If another writer holds the dataset open.

    Example:
        >>> import tempfile
        >>> from sarm2_gym.data import LeRobotDataset
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     with LeRobotDatasetWriter(tmp, fps=10) as writer:
        ...         print(writer.num_episodes)
        ...     print(LeRobotDataset(tmp).num_episodes)
        0
        0
    """

    def __init__(
        self,
        root: str | Path,
        *,
        fps: int,
        robot_type: str | None = "sarm2_bimanual",
        features: Mapping[str, Mapping[str, Any]] | None = None,
        image_format: str = "png",
        chunks_size: int | None = None,
        png_compress_level: int = 1,
    ) -> None:
        if image_format not in _IMAGE_FORMATS:
            raise ValueError(f"image_format must be one of {_IMAGE_FORMATS}, got {image_format!r}")
        if int(fps) <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if chunks_size is not None and chunks_size <= 0:
            raise ValueError(f"chunks_size must be positive, got {chunks_size}")
        if not 0 <= png_compress_level <= 9:
            raise ValueError(f"png_compress_level must be in 0..9, got {png_compress_level}")
        self._root = Path(root)
        self._fps = int(fps)
        self._robot_type = robot_type
        self._png_level = png_compress_level
        declared = _normalise_features(features) if features is not None else None
        # Names are compared on resume only where the caller spelled them out.
        self._named = {k for k, f in (features or {}).items() if f.get("names") is not None}

        if self._root.exists() and not self._root.is_dir():
            raise ValueError(f"{self._root} exists and is not a directory")
        if not (self._root / INFO_PATH).is_file() and _has_foreign_files(self._root):
            raise ValueError(
                f"{self._root} is not empty and holds no LeRobot dataset (no {INFO_PATH}); "
                "refusing to write into it"
            )
        self._root.mkdir(parents=True, exist_ok=True)
        self._lock = DatasetLock(self._root)
        self._lock.acquire()
        self._closed = False
        try:
            if (self._root / INFO_PATH).is_file():
                self._resume(declared, chunks_size)
            else:
                self._create(declared, chunks_size or DEFAULT_CHUNKS_SIZE)
        except BaseException:
            self._lock.release()
            self._closed = True
            raise

    # ------------------------------------------------------------------ opening

    def _create(self, declared: dict[str, dict[str, Any]] | None, chunks_size: int) -> None:
        self._info = new_info(
            fps=self._fps,
            robot_type=self._robot_type,
            features=declared or {},
            chunks_size=chunks_size,
            use_videos=False,
        )
        self._rows: list[dict[str, Any]] = []
        self._tasks: dict[int, str] = {}
        self._stats: Stats = {}
        self._total_frames = 0
        atomic_write_json(self._root / INFO_PATH, self._info)

    def _resume(self, declared: dict[str, dict[str, Any]] | None, chunks_size: int | None) -> None:
        info = load_info(self._root)  # DatasetFormatError (a ValueError) names the problem
        problems = []
        if int(info["fps"]) != self._fps:
            problems.append(f"fps {info['fps']} (asked {self._fps})")
        if info.get("robot_type") != self._robot_type:
            problems.append(f"robot_type {info.get('robot_type')!r} (asked {self._robot_type!r})")
        if chunks_size is not None and int(info["chunks_size"]) != chunks_size:
            problems.append(f"chunks_size {info['chunks_size']} (asked {chunks_size})")
        stored = user_features(info)
        videos = [k for k, f in stored.items() if f["dtype"] == "video"]
        if videos:
            problems.append(f"video features {videos} (this writer stores images)")
        if declared is not None and stored:
            missing = sorted(set(stored) - set(declared))
            extra = sorted(set(declared) - set(stored))
            if missing:
                problems.append(f"features {missing} stored but not declared")
            if extra:
                problems.append(f"features {extra} declared but not stored")
            for key in sorted(set(stored) & set(declared)):
                diff = describe_mismatch(key, stored[key], declared[key], names=key in self._named)
                if diff:
                    problems.append(f"feature {diff}")
        if problems:
            raise ValueError(
                f"{self._root} holds a different dataset: " + "; ".join(problems) + ". "
                "Use another directory (existing data is never overwritten)."
            )
        self._info = info
        if declared is not None and not stored:
            self._info["features"] = {**declared, **BOOKKEEPING_FEATURES}

        remove_temp_files(self._root)
        rows = read_episode_rows(self._root)
        require_own_layout(self._root, info, rows, "appending to it")
        self._remove_orphans(len(rows))

        tasks = read_tasks(self._root)
        used = {t for row in rows for t in row["tasks"]}
        unknown = used - set(tasks.values())
        if unknown:
            raise DatasetFormatError(f"tasks {sorted(unknown)} are missing from tasks.parquet")
        self._tasks = {i: t for i, t in tasks.items() if t in used}
        self._rows = rows
        self._total_frames = sum(int(r["length"]) for r in rows)
        all_features = self._info["features"]
        per_episode = [stats_from_row(r, all_features) for r in rows]
        self._stats = aggregate_stats(per_episode) if per_episode else {}
        # Repair whatever an interrupted add_episode left behind.
        if self._tasks != tasks:
            write_tasks(self._root, self._tasks)
        self._write_info_and_stats()

    def _remove_orphans(self, num_episodes: int) -> None:
        """Delete data files of episodes that were written but never committed."""
        cs = self.chunks_size
        for path in (self._root / "data").glob("chunk-*/file-*.parquet"):
            match = _DATA_NAME.search(path.as_posix())
            if match and int(match[1]) * cs + int(match[2]) >= num_episodes:
                path.unlink()

    # ------------------------------------------------------------------ properties

    @property
    def root(self) -> Path:
        """Dataset directory."""
        return self._root

    @property
    def fps(self) -> int:
        """Frames per second."""
        return self._fps

    @property
    def chunks_size(self) -> int:
        """Files per chunk directory."""
        return int(self._info["chunks_size"])

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        """All features as in ``info.json`` (empty of user features until the first episode)."""
        return {k: dict(v) for k, v in self._info["features"].items()}

    @property
    def tasks(self) -> dict[int, str]:
        """``{task_index: task}`` of the committed episodes."""
        return dict(self._tasks)

    @property
    def num_episodes(self) -> int:
        """Committed episodes."""
        return len(self._rows)

    @property
    def num_frames(self) -> int:
        """Frames of the committed episodes."""
        return self._total_frames

    @property
    def episodes_meta(self) -> list[dict[str, Any]]:
        """Per-episode metadata of the committed episodes.

        Dicts with ``episode_index``, ``tasks``, ``task_index``, ``length``, ``success``,
        ``env_id``, ``seed``, ``quality``, ``quality_knobs``, ``meta``, ..., e.g. to find which
        seeds are already recorded.
        """
        return [public_meta(r) for r in self._rows]

    # ------------------------------------------------------------------ writing

    def _resolve_task(self, task: str, task_index: int | None) -> tuple[int, bool]:
        """Return ``(task_index, is_new)`` for an episode's task."""
        by_task = {t: i for i, t in self._tasks.items()}
        if task in by_task:
            if task_index is not None and task_index != by_task[task]:
                raise ValueError(
                    f"task {task!r} already has task_index {by_task[task]}, not {task_index}"
                )
            return by_task[task], False
        if task_index is None:
            return max(self._tasks, default=-1) + 1, True
        if task_index < 0:
            raise ValueError(f"task_index must be >= 0, got {task_index}")
        if task_index in self._tasks:
            raise ValueError(
                f"task_index {task_index} is already used by task {self._tasks[task_index]!r}"
            )
        return task_index, True

    def _check_episode_features(
        self, frames: Mapping[str, np.ndarray]
    ) -> tuple[dict[str, dict[str, Any]], bool]:
        """Return the dataset's user features for this episode and whether they are new."""
        actual = {}
        for key, arr in frames.items():
            check_column_name(key)
            actual[key] = feature_of(key, arr)
        stored = user_features(self._info)
        if not stored:
            return actual, True
        problems = []
        missing = sorted(set(stored) - set(actual))
        extra = sorted(set(actual) - set(stored))
        if missing:
            problems.append(f"missing columns {missing}")
        if extra:
            problems.append(f"unexpected columns {extra}")
        for key in sorted(set(stored) & set(actual)):
            diff = describe_mismatch(key, stored[key], actual[key])
            if diff:
                problems.append(diff)
        if problems:
            raise ValueError(
                "episode does not match the dataset's features: " + "; ".join(problems)
            )
        return stored, False

    def add_episode(self, episode: Episode, task_index: int | None = None) -> int:
        """Append one episode (atomically; see the module docstring).

        Args:
            episode: The episode. Bookkeeping columns in its frames (``timestamp``,
                ``frame_index``, ``episode_index``, ``index``, ``task_index``) are ignored and
                recomputed. ``meta['seed']``, ``meta['quality']`` and ``meta['quality_knobs']``
                also go to their own episode columns.
            task_index: Index of ``episode.task`` in ``tasks.parquet``. ``None``: the task's
                existing index, or the next free one for a new task. A caller that fixes a
                task order (e.g. the paper's ten tasks) passes it so indices agree across datasets.

        Returns:
            The new episode's index.

        Raises:
            ValueError: If the episode is invalid (see :meth:`Episode.validate`, e.g. NaN values),
                its fps or columns do not match the dataset, its metadata is not JSON-able, or
                ``task_index`` conflicts with the stored tasks.
            RuntimeError: If the writer is closed.
        """
        if self._closed:
            raise RuntimeError("the writer is closed")
        episode.validate()
        if int(episode.fps) != self._fps:
            raise ValueError(f"episode fps {episode.fps} differs from the dataset's {self._fps}")
        if task_index is not None:
            task_index = operator.index(task_index)
        frames = {k: v for k, v in episode.frames.items() if k not in BOOKKEEPING_FEATURES}
        features, schema_is_new = self._check_episode_features(frames)
        meta = dict(episode.meta)
        meta_json = to_json(meta, "Episode.meta")
        knobs = meta.get("quality_knobs")
        knobs_json = None if knobs is None else to_json(knobs, "Episode.meta['quality_knobs']")
        quality = meta.get("quality")
        if quality is not None and not isinstance(quality, str):
            raise ValueError(f"Episode.meta['quality'] must be a str or None, got {quality!r}")
        seed = _seed_value(meta.get("seed"))
        tidx, task_is_new = self._resolve_task(episode.task, task_index)

        ep = len(self._rows)
        length = episode.length
        start = self._total_frames
        all_features = {**features, **BOOKKEEPING_FEATURES}
        frame_index = np.arange(length, dtype=np.int64)
        columns: dict[str, np.ndarray] = {k: frames[k] for k in features}
        columns["timestamp"] = (frame_index / self._fps).astype(np.float32)
        columns["frame_index"] = frame_index
        columns["episode_index"] = np.full(length, ep, dtype=np.int64)
        columns["index"] = start + frame_index
        columns["task_index"] = np.full(length, tidx, dtype=np.int64)
        table = pa.Table.from_arrays(
            [
                column_to_arrow(columns[k], ft, compress_level=self._png_level)
                for k, ft in all_features.items()
            ],
            schema=schema_of(all_features),
        )
        ep_stats = episode_stats(columns, all_features)
        chunk, file = chunk_file(ep, self.chunks_size)

        if schema_is_new:  # the schema must be on disk before any data that uses it
            self._info["features"] = all_features
            atomic_write_json(self._root / INFO_PATH, self._info)
        atomic_write_parquet(data_file_path(self._root, self._info, chunk, file), table)
        tasks = {**self._tasks, tidx: episode.task} if task_is_new else self._tasks
        if task_is_new:
            write_tasks(self._root, tasks)
        row: dict[str, Any] = {
            "episode_index": ep,
            "tasks": [episode.task],
            "length": length,
            "data/chunk_index": chunk,
            "data/file_index": file,
            "dataset_from_index": start,
            "dataset_to_index": start + length,
            "meta/episodes/chunk_index": chunk,
            "meta/episodes/file_index": file,
            "task_index": tidx,
            "success": bool(episode.success),
            "env_id": episode.env_id,
            "seed": seed,
            "quality": quality,
            "quality_knobs": knobs_json,
            "meta": meta_json,
        }
        row.update(stats_to_row(ep_stats))
        atomic_write_parquet(
            episode_meta_path(self._root, ep, self.chunks_size),
            episode_row_table(row, all_features),
        )
        # Committed: the episode now exists on disk; mirror that in memory before the
        # (repairable) info/stats updates.
        self._tasks = dict(tasks)
        self._rows.append(row)
        self._total_frames += length
        self._stats = aggregate_stats([self._stats, ep_stats]) if self._stats else ep_stats
        self._write_info_and_stats()
        return ep

    def _write_info_and_stats(self) -> None:
        self._info["total_episodes"] = len(self._rows)
        self._info["total_frames"] = self._total_frames
        self._info["total_tasks"] = len(self._tasks)
        self._info["splits"] = {"train": f"0:{len(self._rows)}"} if self._rows else {}
        atomic_write_json(self._root / INFO_PATH, self._info)
        atomic_write_json(self._root / STATS_PATH, stats_to_json(self._stats))

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Release the dataset (idempotent). Everything is already on disk."""
        if not self._closed:
            self._lock.release()
            self._closed = True

    def __enter__(self) -> LeRobotDatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"LeRobotDatasetWriter({str(self._root)!r}, episodes={self.num_episodes}, "
            f"frames={self.num_frames}, tasks={len(self._tasks)})"
        )
