"""Decode the camera frames of LeRobot v3.0 ``video`` features.

LeRobot stores each camera of a dataset as MP4 files under
``videos/<key>/chunk-CCC/file-FFF.mp4`` (the ``video_path`` template of ``info.json``), many
episodes back to back in one file. An episode's row in ``meta/episodes`` locates its segment
with ``videos/<key>/chunk_index``, ``videos/<key>/file_index``,
``videos/<key>/from_timestamp`` and ``videos/<key>/to_timestamp`` (seconds from the start of the
file). Row ``t`` of the episode's data is the ``t``-th video frame of that segment, shown at
``from_timestamp + t / fps``.

:func:`decode_video_frames` decodes a run of consecutive frames in one ``ffmpeg`` process (the
binary that ships with ``imageio-ffmpeg``, which reads H.264, HEVC, VP9 and AV1 -- LeRobot's
default codec is AV1): it seeks to the first wanted frame (``ffmpeg``'s input seeking decodes
from the preceding key frame and drops what lies before) and then reads the frames sequentially
as raw RGB, so an episode costs one pass over its own segment, never over the whole file.

Example:
    >>> import numpy as np
    >>> row = {
    ...     "videos/observation.images.top/chunk_index": 0,
    ...     "videos/observation.images.top/file_index": 2,
    ...     "videos/observation.images.top/from_timestamp": 4.0,
    ...     "videos/observation.images.top/to_timestamp": 6.5,
    ... }
    >>> from sarm2_gym.data.layout import VIDEO_PATH
    >>> info = {"video_path": VIDEO_PATH}
    >>> seg = episode_video_segment(Path("ds"), info, row, "observation.images.top")
    >>> seg.path.as_posix(), seg.from_timestamp, seg.to_timestamp
    ('ds/videos/observation.images.top/chunk-000/file-002.mp4', 4.0, 6.5)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from sarm2_gym.data.layout import DatasetFormatError

__all__ = [
    "VIDEO_ROW_FIELDS",
    "VideoSegment",
    "decode_video_frames",
    "episode_video_segment",
    "is_video",
    "read_episode_video",
]

VIDEO_ROW_FIELDS: Final[tuple[str, ...]] = (
    "chunk_index",
    "file_index",
    "from_timestamp",
    "to_timestamp",
)
"""Per-camera columns ``videos/<key>/<field>`` of a LeRobot v3.0 episode row."""

_FPS_TOLERANCE: Final[float] = 0.01  # relative difference between video and dataset fps


def is_video(feature: Mapping[str, Any]) -> bool:
    """Whether a feature is stored as video (not in the data files)."""
    return feature.get("dtype") == "video"


@dataclass(frozen=True, slots=True)
class VideoSegment:
    """Where one episode's frames of one camera lie.

    Attributes:
        key: Feature key of the camera (``observation.images.<name>``).
        path: The MP4 file.
        from_timestamp: Time of the episode's first frame in the file, in seconds.
        to_timestamp: End of the episode's segment in the file (``None`` when not recorded).
    """

    key: str
    path: Path
    from_timestamp: float
    to_timestamp: float | None


def episode_video_segment(
    root: Path, info: Mapping[str, Any], row: Mapping[str, Any], key: str
) -> VideoSegment:
    """Locate one episode's video segment of one camera from its ``meta/episodes`` row.

    Args:
        root: Dataset directory.
        info: ``meta/info.json`` (for the ``video_path`` template).
        row: The episode's row.
        key: Feature key of the video.

    Raises:
        DatasetFormatError: If ``info.json`` has no ``video_path`` or the row lacks the
            ``videos/<key>/...`` columns.
    """
    template = info.get("video_path")
    if not template:
        raise DatasetFormatError(
            f"feature {key!r} is a video but {root}/meta/info.json has no video_path"
        )
    missing = [
        f"videos/{key}/{f}" for f in VIDEO_ROW_FIELDS[:3] if row.get(f"videos/{key}/{f}") is None
    ]
    if missing:
        ep = row.get("episode_index")
        raise DatasetFormatError(
            f"episode {ep} of {root} has no {missing} in meta/episodes: cannot locate its video"
        )
    chunk = int(row[f"videos/{key}/chunk_index"])
    file = int(row[f"videos/{key}/file_index"])
    path = root / str(template).format(video_key=key, chunk_index=chunk, file_index=file)
    to_ts = row.get(f"videos/{key}/to_timestamp")
    return VideoSegment(
        key=key,
        path=path,
        from_timestamp=float(row[f"videos/{key}/from_timestamp"]),
        to_timestamp=None if to_ts is None else float(to_ts),
    )


def _ffmpeg_error(text: str) -> str:
    """The lines of an ffmpeg log that say what went wrong (the last few otherwise)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "rror" in ln or "not found" in ln or "Invalid" in ln]
    return " | ".join((errors or lines)[-3:])


def decode_video_frames(
    path: str | Path,
    start: float,
    num_frames: int,
    fps: float,
    *,
    what: str = "",
) -> np.ndarray:
    """Decode ``num_frames`` consecutive frames starting with the frame shown at ``start``.

    One ``ffmpeg`` process seeks to half a frame before ``start`` (so rounding in the stored
    timestamps never skips or repeats a frame) and pipes raw RGB frames sequentially.

    Args:
        path: Video file.
        start: Presentation time of the first wanted frame, in seconds from the file start.
        num_frames: How many frames to read (>= 1).
        fps: The dataset's frame rate; the video must have the same.
        what: Words naming the episode and camera, for error messages.

    Returns:
        ``(num_frames, H, W, 3)`` uint8.

    Raises:
        FileNotFoundError: If the file does not exist.
        DatasetFormatError: If ffmpeg cannot read the file, the video's frame rate differs from
            ``fps``, or the file holds fewer frames than asked for (truncated or corrupt).
    """
    import imageio_ffmpeg

    path = Path(path)
    where = f" ({what})" if what else ""
    if not path.is_file():
        raise FileNotFoundError(f"video file {path}{where} is missing")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    seek = max(0.0, float(start) - 0.5 / float(fps))
    reader = imageio_ffmpeg.read_frames(
        str(path),
        input_params=["-nostdin", "-ss", f"{seek:.6f}"],
        output_params=["-map", "0:v:0", "-frames:v", str(int(num_frames))],
    )
    try:
        try:
            meta = next(reader)
        except (OSError, RuntimeError, StopIteration, IndexError, AttributeError) as exc:
            raise DatasetFormatError(
                f"video file {path}{where} is unreadable: {_ffmpeg_error(str(exc))}"
            ) from exc
        video_fps = float(meta.get("fps") or 0.0)
        if video_fps > 0 and abs(video_fps - fps) > _FPS_TOLERANCE * fps:
            raise DatasetFormatError(
                f"video file {path}{where} runs at {video_fps:g} fps but the dataset at {fps:g}"
            )
        width, height = (int(s) for s in meta["size"])
        frames = []
        try:
            for data in reader:
                frames.append(np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3))
        except RuntimeError as exc:
            raise DatasetFormatError(
                f"video file {path}{where} is corrupt: {_ffmpeg_error(str(exc))}"
            ) from exc
    finally:
        reader.close()
    if len(frames) != num_frames:
        raise DatasetFormatError(
            f"video file {path}{where} holds {len(frames)} frames from {start:.3f} s on, "
            f"{num_frames} were expected (truncated or corrupt video, or wrong timestamps)"
        )
    return np.stack(frames)


def read_episode_video(
    root: Path,
    info: Mapping[str, Any],
    row: Mapping[str, Any],
    key: str,
    first: int = 0,
    count: int | None = None,
) -> np.ndarray:
    """Decode frames ``first .. first + count - 1`` of one episode's video of one camera.

    Args:
        root: Dataset directory.
        info: ``meta/info.json``.
        row: The episode's ``meta/episodes`` row (with ``length``).
        key: Feature key of the video.
        first: First frame (row of the episode) to decode.
        count: Number of frames; ``None``: to the end of the episode.

    Returns:
        ``(count, H, W, 3)`` uint8, aligned with the episode's data rows.

    Raises:
        FileNotFoundError: If the video file is missing.
        DatasetFormatError: If the segment cannot be located, is shorter than the episode, or
            the file cannot be decoded.
    """
    length = int(row["length"])
    count = length - first if count is None else count
    if not (first >= 0 and count >= 1 and first + count <= length):
        raise IndexError(f"frames {first}..{first + count - 1} outside an episode of {length}")
    fps = float(info["fps"])
    seg = episode_video_segment(root, info, row, key)
    ep = row.get("episode_index")
    what = f"episode {ep}, {key}"
    if seg.to_timestamp is not None:
        last = seg.from_timestamp + (length - 1) / fps
        if last > seg.to_timestamp + 0.5 / fps:
            raise DatasetFormatError(
                f"episode {ep} has {length} frames but its {key} video segment "
                f"[{seg.from_timestamp:.3f} s, {seg.to_timestamp:.3f} s] of {seg.path} holds only "
                f"about {round((seg.to_timestamp - seg.from_timestamp) * fps)} at {fps:g} fps"
            )
    return decode_video_frames(seg.path, seg.from_timestamp + first / fps, count, fps, what=what)
