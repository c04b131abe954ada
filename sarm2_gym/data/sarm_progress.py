"""``sarm_progress.parquet``: per-frame progress in LeRobot's RA-BC schema.

LeRobot's ``compute_rabc_weights`` writes, and its RA-BC sample weighting reads, a parquet file
next to the dataset with the columns ``index`` (global frame index), ``episode_index``,
``frame_index`` (int64) and ``progress_sparse`` and/or ``progress_dense`` (float32), sorted by
``index``. Writing the same file lets LeRobot users train RA-BC policies on progress from SARM2.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sarm2_gym.data._fs import atomic_write_parquet
from sarm2_gym.data.layout import DatasetFormatError, load_info
from sarm2_gym.data.meta import read_episode_rows

__all__ = ["SARM_PROGRESS_FILE", "read_sarm_progress", "write_sarm_progress"]

SARM_PROGRESS_FILE: Final[str] = "sarm_progress.parquet"
_INDEX_COLUMNS: Final[tuple[str, ...]] = ("index", "episode_index", "frame_index")


def _as_progress(name: str, ep: int, value: Any, length: int) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float32)
    if arr.shape != (length,):
        raise ValueError(f"{name}[{ep}] must have shape ({length},), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}[{ep}] holds NaN or inf values")
    return arr


def write_sarm_progress(
    root: str | Path,
    progress_sparse: Mapping[int, np.ndarray],
    progress_dense: Mapping[int, np.ndarray] | None = None,
    path: str | Path | None = None,
) -> Path:
    """Write per-frame progress of a dataset's episodes as ``sarm_progress.parquet``.

    Args:
        root: Dataset directory (for the episodes' lengths and global frame indices).
        progress_sparse: ``{episode_index: (T,) progress}``; episodes may be a subset.
        progress_dense: Optional second head, same episodes as ``progress_sparse``.
        path: Output file; default ``<root>/sarm_progress.parquet``.

    Returns:
        The written path.

    Raises:
        ValueError: For wrong lengths, NaN/inf, or differing episode sets.
        IndexError: For episode indices out of range.
    """
    root = Path(root)
    load_info(root)
    rows = read_episode_rows(root)
    episodes = sorted(operator.index(k) for k in progress_sparse)
    if progress_dense is not None and sorted(progress_dense) != episodes:
        raise ValueError("progress_dense must cover the same episodes as progress_sparse")
    cols: dict[str, list[np.ndarray]] = {k: [] for k in _INDEX_COLUMNS}
    sparse: list[np.ndarray] = []
    dense: list[np.ndarray] = []
    for ep in episodes:
        if not 0 <= ep < len(rows):
            raise IndexError(f"episode {ep} out of range ({len(rows)} episodes)")
        length = int(rows[ep]["length"])
        start = int(rows[ep]["dataset_from_index"])
        frame_index = np.arange(length, dtype=np.int64)
        cols["index"].append(start + frame_index)
        cols["episode_index"].append(np.full(length, ep, dtype=np.int64))
        cols["frame_index"].append(frame_index)
        sparse.append(_as_progress("progress_sparse", ep, progress_sparse[ep], length))
        if progress_dense is not None:
            dense.append(_as_progress("progress_dense", ep, progress_dense[ep], length))

    def cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)

    data = {k: pa.array(cat(v, np.int64), pa.int64()) for k, v in cols.items()}
    data["progress_sparse"] = pa.array(cat(sparse, np.float32), pa.float32())
    if progress_dense is not None:
        data["progress_dense"] = pa.array(cat(dense, np.float32), pa.float32())
    out = Path(path) if path is not None else root / SARM_PROGRESS_FILE
    # Episodes are sorted and global indices increase with the episode, so rows are sorted by
    # ``index`` as LeRobot expects.
    atomic_write_parquet(out, pa.table(data))
    return out


def read_sarm_progress(path: str | Path) -> dict[str, np.ndarray]:
    """Read a ``sarm_progress.parquet`` file (ours or LeRobot's) into column arrays.

    Raises:
        DatasetFormatError: If the file lacks the index columns or any progress column.
    """
    table = pq.read_table(path)
    names = table.column_names
    if not set(_INDEX_COLUMNS) <= set(names) or not (
        "progress_sparse" in names or "progress_dense" in names
    ):
        raise DatasetFormatError(f"{path} is not a SARM progress file (columns {names})")
    return {k: table.column(k).to_numpy() for k in names}
