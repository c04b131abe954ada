"""Read LeRobot v3.0 datasets into numpy arrays and :class:`Episode` objects.

Cameras may be ``image`` features (PNG bytes inside the data files, as this library writes them)
or ``video`` features (MP4 files under ``videos/``, as LeRobot writes them and as datasets on the
Hugging Face hub store them); both read back as ``(T, H, W, 3)`` uint8 arrays aligned with the
episode's data rows. Video frames are decoded per episode, one sequential ``ffmpeg`` pass over the
episode's segment per camera (:mod:`sarm2_gym.data.video`).
"""

from __future__ import annotations

import bisect
import copy
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sarm2_gym.data.episode import REQUIRED_COLUMNS, Episode
from sarm2_gym.data.features import column_from_arrow, is_image
from sarm2_gym.data.layout import (
    STATS_PATH,
    DatasetFormatError,
    data_file_path,
    load_info,
    user_features,
)
from sarm2_gym.data.meta import public_meta, read_episode_rows, read_tasks
from sarm2_gym.data.stats import Stats, stats_from_json
from sarm2_gym.data.video import episode_video_segment, is_video, read_episode_video

__all__ = ["LeRobotDataset"]


class LeRobotDataset:
    """Read-only view of a LeRobot v3.0 dataset directory.

    The episode rows in ``meta/episodes`` are the source of truth for which episodes exist (a
    writer killed mid-episode may leave ``info.json`` one episode behind). Datasets written by
    LeRobot itself read too: several episodes per file, cameras as ``video`` features (decoded
    with ffmpeg, lossy codecs read back as encoded), any state size, no ``act_pri``/``progress``
    columns (:meth:`read_frames` reads whatever columns exist; :meth:`episode` needs the
    columns of an :class:`Episode`).

    ``len(ds)`` is the number of frames and ``ds[i]`` the ``i``-th frame as a dict of numpy
    values plus ``"task"``, like LeRobot's dataset (numpy instead of torch).

    Args:
        root: Dataset directory.

    Raises:
        FileNotFoundError: If ``root`` or ``meta/info.json`` is missing.
        DatasetFormatError: If the metadata is corrupt or of another codebase version.
    """

    def __init__(self, root: str | Path) -> None:
        self._root = Path(root)
        self._info = load_info(self._root)
        self._rows = read_episode_rows(self._root)
        self._tasks = read_tasks(self._root)
        used = {t for r in self._rows for t in r.get("tasks") or []}
        missing = used - set(self._tasks.values())
        if missing:
            raise DatasetFormatError(f"tasks {sorted(missing)} are missing from tasks.parquet")
        self._starts = [int(r["dataset_from_index"]) for r in self._rows]
        self._stats: Stats | None = None
        self._cache: tuple[int, pa.Table] | None = None

    # ------------------------------------------------------------------ metadata

    @property
    def root(self) -> Path:
        """Dataset directory."""
        return self._root

    @property
    def info(self) -> dict[str, Any]:
        """A copy of ``meta/info.json``."""
        return copy.deepcopy(self._info)

    @property
    def fps(self) -> int:
        """Frames per second."""
        return int(self._info["fps"])

    @property
    def robot_type(self) -> str | None:
        """Robot type from ``info.json``."""
        value = self._info.get("robot_type")
        return None if value is None else str(value)

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        """All features, as declared in ``info.json``."""
        return copy.deepcopy(self._info["features"])

    @property
    def camera_keys(self) -> list[str]:
        """Image and video features."""
        return [k for k, f in self._info["features"].items() if is_image(f)]

    @property
    def num_episodes(self) -> int:
        """Number of (committed) episodes."""
        return len(self._rows)

    @property
    def num_frames(self) -> int:
        """Number of frames over all episodes."""
        return sum(int(r["length"]) for r in self._rows)

    @property
    def tasks(self) -> dict[int, str]:
        """``{task_index: task}``."""
        return dict(self._tasks)

    @property
    def stats(self) -> Stats:
        """``meta/stats.json`` as arrays (empty when absent)."""
        if self._stats is None:
            path = self._root / STATS_PATH
            self._stats = stats_from_json(json.loads(path.read_text())) if path.is_file() else {}
        return copy.deepcopy(self._stats)

    @property
    def episodes_meta(self) -> list[dict[str, Any]]:
        """Per-episode metadata of every episode (see :meth:`episode_meta`)."""
        return [public_meta(r) for r in self._rows]

    def episode_meta(self, episode_index: int) -> dict[str, Any]:
        """One episode's metadata row without its statistics.

        Holds LeRobot's ``episode_index``, ``tasks``, ``length``, ``dataset_from_index``,
        ``dataset_to_index``, ``data/chunk_index``, ``data/file_index`` and, for datasets written
        here, ``task_index``, ``success``, ``env_id``, ``seed``, ``quality``, ``quality_knobs``
        (dict) and ``meta`` (the full :attr:`Episode.meta`).
        """
        return public_meta(self._rows[self._check(episode_index)])

    def _check(self, episode_index: int) -> int:
        if not -len(self._rows) <= episode_index < len(self._rows):
            raise IndexError(f"episode {episode_index} out of range ({len(self._rows)} episodes)")
        return episode_index % len(self._rows)

    # ------------------------------------------------------------------ frames

    def _data_columns(self) -> list[str]:
        return [k for k, f in self._info["features"].items() if not is_video(f)]

    @property
    def video_keys(self) -> list[str]:
        """Camera features stored as video (decoded on read)."""
        return [k for k, f in self._info["features"].items() if is_video(f)]

    def video_file(self, episode_index: int, key: str) -> Path:
        """The MP4 file holding one episode's frames of a video feature.

        Raises:
            KeyError: If ``key`` is not a video feature.
            DatasetFormatError: If the episode row does not locate the video.
        """
        if key not in self.video_keys:
            raise KeyError(f"{key!r} is not a video feature; videos: {self.video_keys}")
        row = self._rows[self._check(episode_index)]
        return episode_video_segment(self._root, self._info, row, key).path

    def _read_table(self, episode_index: int, columns: Sequence[str] | None) -> pa.Table:
        row = self._rows[episode_index]
        path = data_file_path(
            self._root, self._info, int(row["data/chunk_index"]), int(row["data/file_index"])
        )
        if not path.is_file():
            raise FileNotFoundError(f"data file {path} of episode {episode_index} is missing")
        length = int(row["length"])
        try:
            table = pq.read_table(path, columns=columns)
            if table.num_rows != length:  # a file holding several episodes (LeRobot's writer)
                table = pq.read_table(
                    path, columns=columns, filters=[("episode_index", "==", episode_index)]
                )
        except (pa.ArrowException, OSError) as exc:
            raise DatasetFormatError(
                f"data file {path} of episode {episode_index} is unreadable: {exc}"
            ) from exc
        if table.num_rows != length:
            raise DatasetFormatError(
                f"data file {path} has {table.num_rows} frames of episode {episode_index}, "
                f"its metadata says {length}"
            )
        return table

    def _columns_arg(self, columns: Iterable[str] | None) -> list[str]:
        available = [*self._data_columns(), *self.video_keys]
        if columns is None:
            return available
        wanted = list(dict.fromkeys(columns))
        unknown = [c for c in wanted if c not in available]
        if unknown:
            raise KeyError(f"unknown columns {unknown}; the dataset has {available}")
        return wanted

    def read_video(
        self, episode_index: int, key: str, first: int = 0, count: int | None = None
    ) -> np.ndarray:
        """Decode frames ``first .. first + count - 1`` of one episode's video feature.

        One ffmpeg process seeks to the first frame and decodes sequentially, so a long episode
        can be read in chunks without holding all of it at full resolution.

        Args:
            episode_index: Episode to read.
            key: A video feature (:attr:`video_keys`).
            first: First frame (row of the episode).
            count: Number of frames; ``None``: to the end of the episode.

        Returns:
            ``(count, H, W, 3)`` uint8, aligned with the episode's data rows.

        Raises:
            KeyError: If ``key`` is not a video feature.
            IndexError: For frames outside the episode.
            FileNotFoundError: If the video file is missing.
            DatasetFormatError: If it cannot be decoded (corrupt, truncated, other frame rate).
        """
        if key not in self.video_keys:
            raise KeyError(f"{key!r} is not a video feature; videos: {self.video_keys}")
        row = self._rows[self._check(episode_index)]
        return read_episode_video(self._root, self._info, row, key, first, count)

    def read_frames(
        self,
        episode_index: int,
        columns: Iterable[str] | None = None,
        *,
        decode_images: bool = True,
    ) -> dict[str, np.ndarray]:
        """Read columns of one episode; only the requested columns are read from disk.

        Args:
            episode_index: Episode to read.
            columns: Column names, video features included (``None``: all, including LeRobot's
                ``timestamp``, ``frame_index``, ``episode_index``, ``index`` and
                ``task_index``).
            decode_images: Decode image and video columns to ``(T, H, W, 3)`` uint8; when
                ``False`` image columns are object arrays of the stored PNG bytes and video
                columns are left out (asking for one by name is an error).

        Raises:
            KeyError: For unknown column names.
            ValueError: For a video column asked for with ``decode_images=False``.
            FileNotFoundError: If the episode's data or video file is missing.
            DatasetFormatError: If a data file is unreadable or has the wrong length, or a video
                cannot be decoded (corrupt, truncated, other frame rate).
        """
        ep = self._check(episode_index)
        names = self._columns_arg(columns)
        videos = [k for k in names if k in self.video_keys]
        if videos and not decode_images:
            if columns is not None:
                raise ValueError(
                    f"video columns {videos} have no stored per-frame bytes; "
                    "read them with decode_images=True"
                )
            names = [k for k in names if k not in videos]
            videos = []
        data = [k for k in names if k not in videos]
        table = self._read_table(ep, data) if data or not videos else None
        feats = self._info["features"]
        out: dict[str, np.ndarray] = {}
        for k in names:
            if k in videos:
                out[k] = self.read_video(ep, k)
            else:
                assert table is not None
                out[k] = column_from_arrow(table.column(k), feats[k], decode_images=decode_images)
        return out

    def read_columns(
        self, columns: Iterable[str], episodes: Iterable[int] | None = None
    ) -> dict[str, np.ndarray]:
        """Read columns of many episodes, concatenated along frames (images stay undecoded).

        Cheap way to get, e.g., ``observation.state``, ``act_pri`` and ``progress`` for a whole
        dataset without touching image bytes. Add ``episode_index``/``frame_index`` to the
        columns to know where each row came from. Video columns cannot be read this way.
        """
        names = self._columns_arg(columns)
        eps = range(self.num_episodes) if episodes is None else list(episodes)
        parts = [self.read_frames(ep, names, decode_images=False) for ep in eps]
        if not parts:
            return {k: np.zeros(0) for k in names}
        return {k: np.concatenate([p[k] for p in parts]) for k in names}

    def episode(
        self,
        episode_index: int,
        columns: Iterable[str] | None = None,
        decode_images: bool = True,
    ) -> Episode:
        """Read one episode as an :class:`Episode`.

        Args:
            episode_index: Episode to read.
            columns: Per-frame columns to include besides the ones every episode needs
                (``observation.state``, ``action``, ``next.*``, ``act_pri``, ``stage``,
                ``progress``); ``None``: all, cameras stored as video included (decoded).
                LeRobot's bookkeeping columns are never included.
            decode_images: ``False`` leaves image and video columns out (much faster).

        Raises:
            KeyError: For unknown columns.
            ValueError: If the stored columns do not form a valid episode (e.g. a dataset from
                elsewhere without ``act_pri``); use :meth:`read_frames` for those.
        """
        ep = self._check(episode_index)
        frame_features = user_features(self._info)
        if columns is None:
            names = list(frame_features)
        else:
            wanted = set(columns) | set(REQUIRED_COLUMNS)
            unknown = sorted(wanted - set(frame_features))
            if unknown:
                raise KeyError(f"unknown columns {unknown}; the dataset has {list(frame_features)}")
            names = [k for k in frame_features if k in wanted]
        if not decode_images:
            names = [k for k in names if not is_image(frame_features[k])]
        frames = self.read_frames(ep, names)
        row = self._rows[ep]
        meta_json = row.get("meta")
        meta = json.loads(meta_json) if isinstance(meta_json, str) else {}
        tasks = row.get("tasks") or []
        task = tasks[0] if tasks else self._tasks.get(int(row.get("task_index") or 0), "")
        return Episode(
            task=str(task),
            env_id=str(row.get("env_id") or ""),
            frames=frames,
            success=bool(row.get("success") or False),
            fps=self.fps,
            meta=meta,
        )

    def iter_episodes(
        self,
        episodes: Iterable[int] | None = None,
        columns: Iterable[str] | None = None,
        decode_images: bool = True,
    ) -> Iterator[Episode]:
        """Yield episodes in order (all by default); arguments as in :meth:`episode`."""
        cols = None if columns is None else list(columns)
        for ep in range(self.num_episodes) if episodes is None else episodes:
            yield self.episode(ep, cols, decode_images)

    # ------------------------------------------------------------------ frame access

    def __len__(self) -> int:
        return self.num_frames

    def __getitem__(self, index: int) -> dict[str, Any]:
        """One frame by global index: every column's value (images decoded) and ``"task"``.

        A video frame costs one short ffmpeg seek; read whole episodes with
        :meth:`read_frames` when you need many frames.
        """
        total = self.num_frames
        if not -total <= index < total:
            raise IndexError(f"frame {index} out of range ({total} frames)")
        index %= total
        ep = bisect.bisect_right(self._starts, index) - 1
        if self._cache is None or self._cache[0] != ep:
            self._cache = (ep, self._read_table(ep, self._data_columns()))
        local = index - self._starts[ep]
        table = self._cache[1].slice(local, 1)
        feats = self._info["features"]
        item: dict[str, Any] = {
            k: column_from_arrow(table.column(k), feats[k])[0] for k in table.column_names
        }
        for key in self.video_keys:
            item[key] = self.read_video(ep, key, local, 1)[0]
        task_index = item.get("task_index")
        item["task"] = self._tasks.get(int(task_index), "") if task_index is not None else ""
        return item

    def __repr__(self) -> str:
        return (
            f"LeRobotDataset({str(self._root)!r}, episodes={self.num_episodes}, "
            f"frames={self.num_frames}, tasks={len(self._tasks)})"
        )
