"""Add or overwrite per-frame columns of an existing dataset (labels, annotations).

Used by the reward labeller and the rollout annotation tool. Images are never decoded: the other
columns of each rewritten data file are copied as Arrow data.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sarm2_gym.data._fs import (
    DatasetLock,
    atomic_write_json,
    atomic_write_parquet,
    remove_temp_files,
    replace_file,
    write_parquet_temp,
)
from sarm2_gym.data.features import (
    check_column_name,
    column_to_arrow,
    describe_mismatch,
    feature_of,
    is_image,
    schema_of,
)
from sarm2_gym.data.layout import (
    BOOKKEEPING_FEATURES,
    INFO_PATH,
    STATS_PATH,
    DatasetFormatError,
    data_file_path,
    episode_meta_path,
    load_info,
    user_features,
)
from sarm2_gym.data.meta import episode_row_table, read_episode_rows, require_own_layout
from sarm2_gym.data.stats import (
    aggregate_stats,
    feature_stats,
    has_stats,
    stats_from_row,
    stats_to_json,
    stats_to_row,
)

__all__ = ["add_frame_columns"]


def _prepare_column(
    name: str,
    per_episode: Mapping[int, Any],
    existing: Mapping[str, Any] | None,
    lengths: list[int],
) -> tuple[dict[str, Any], dict[int, np.ndarray]]:
    """Validate one column's arrays; return its feature and ``{episode: array}``."""
    check_column_name(name)
    if name in BOOKKEEPING_FEATURES:
        raise ValueError(f"column {name!r} is maintained by the dataset and cannot be set")
    if name.startswith("observation.images.") or (existing is not None and is_image(existing)):
        raise ValueError(f"column {name!r}: image columns cannot be added or replaced this way")
    arrays: dict[int, np.ndarray] = {}
    feature: dict[str, Any] | None = dict(existing) if existing is not None else None
    for key, value in per_episode.items():
        ep = operator.index(key)
        if not 0 <= ep < len(lengths):
            raise IndexError(
                f"column {name!r}: episode {ep} out of range ({len(lengths)} episodes)"
            )
        arr = np.asarray(value)
        if arr.ndim == 0 or len(arr) != lengths[ep]:
            raise ValueError(
                f"column {name!r}: episode {ep} has {lengths[ep]} frames, got shape {arr.shape}"
            )
        if (
            existing is not None
            and existing["dtype"] != "string"
            and arr.dtype != existing["dtype"]
        ):
            target = np.dtype(str(existing["dtype"]))
            if not np.can_cast(arr.dtype, target, casting="same_kind"):
                raise ValueError(
                    f"column {name!r}: episode {ep} has dtype {arr.dtype}, the dataset stores "
                    f"{existing['dtype']}"
                )
            arr = arr.astype(target)
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise ValueError(f"column {name!r}: episode {ep} holds NaN or inf values")
        actual = feature_of(name, arr)
        if feature is None:
            feature = actual
        else:
            diff = describe_mismatch(name, feature, actual)
            if diff:
                raise ValueError(f"column {diff} (episode {ep} differs from the others)")
        arrays[ep] = arr
    if feature is None:
        raise ValueError(f"column {name!r}: no episodes given")
    if existing is None:
        missing = sorted(set(range(len(lengths))) - set(arrays))
        if missing:
            raise ValueError(
                f"new column {name!r} must cover every episode; missing episodes {missing[:20]}"
            )
    return feature, arrays


def add_frame_columns(
    root: str | Path,
    columns: Mapping[str, Mapping[int, np.ndarray]],
    *,
    overwrite: bool = False,
) -> None:
    """Add per-frame columns to a dataset, or overwrite existing ones.

    Rewrites the affected data files and episode rows, then ``info.json`` (features) and
    ``stats.json``. Every data file is written to a temporary file first; all of them are swapped
    in only once all are written, so an error while preparing changes nothing. A crash during the
    swap can leave some episodes updated and others not: calling again with the same arguments
    (and ``overwrite=True`` if the column was already registered) finishes the job.

    Args:
        root: Dataset directory (written by :class:`LeRobotDatasetWriter`; no writer may have it
            open).
        columns: ``{column: {episode_index: array}}``, arrays with one row per frame. A new
            column must cover every episode; an overwritten one may cover a subset and must keep
            its dtype (floats/ints are cast within their kind) and shape.
        overwrite: Allow replacing columns that exist (including ``progress`` etc.).

    Raises:
        ValueError: For unknown/bookkeeping/image columns, existing columns without
            ``overwrite``, wrong lengths, NaN/inf, inconsistent dtypes or shapes, or a new column
            missing episodes.
        IndexError: For episode indices out of range.
        RuntimeError: If a writer holds the dataset open.
    """
    root = Path(root)
    load_info(root)  # fails on a non-dataset before the lock file is created there
    lock = DatasetLock(root)
    lock.acquire()
    try:
        info = load_info(root)
        remove_temp_files(root)
        rows = read_episode_rows(root)
        require_own_layout(root, info, rows, "adding columns to it")
        lengths = [int(r["length"]) for r in rows]
        stored = user_features(info)

        new_features: dict[str, dict[str, Any]] = {}
        values: dict[str, dict[int, np.ndarray]] = {}
        for name, per_episode in columns.items():
            existing = stored.get(name)
            if existing is not None and not overwrite:
                raise ValueError(f"column {name!r} already exists; pass overwrite=True to replace")
            feature, arrays = _prepare_column(name, per_episode, existing, lengths)
            new_features[name] = feature
            values[name] = arrays
        if not values:
            return
        all_features = {**stored, **new_features, **BOOKKEEPING_FEATURES}
        affected = sorted({ep for arrays in values.values() for ep in arrays})

        # 1. Data files: all temporaries first, then the swaps.
        temps: list[tuple[Path, Path]] = []
        try:
            for ep in affected:
                path = data_file_path(
                    root, info, int(rows[ep]["data/chunk_index"]), int(rows[ep]["data/file_index"])
                )
                table = pq.read_table(path)
                arrays_out = []
                for key, ft in all_features.items():
                    if ft["dtype"] == "video":
                        continue
                    if key in values and ep in values[key]:
                        arrays_out.append(column_to_arrow(values[key][ep], ft))
                    elif key in table.column_names:
                        arrays_out.append(table.column(key))
                    else:
                        raise DatasetFormatError(f"data file {path} lacks column {key!r}")
                new_table = pa.Table.from_arrays(arrays_out, schema=schema_of(all_features))
                temps.append((write_parquet_temp(path, new_table), path))
        except BaseException:
            for tmp, _ in temps:
                with contextlib.suppress(OSError):
                    tmp.unlink()
            raise
        for tmp, path in temps:
            replace_file(tmp, path)

        # 2. Episode rows (their statistics), 3. info.json and stats.json.
        chunks_size = int(info["chunks_size"])
        for ep in affected:
            row = rows[ep]
            row.update(
                stats_to_row(
                    {
                        key: feature_stats(arrays[ep], all_features[key])
                        for key, arrays in values.items()
                        if ep in arrays and has_stats(all_features[key])
                    }
                )
            )
            atomic_write_parquet(
                episode_meta_path(root, ep, chunks_size), episode_row_table(row, all_features)
            )
        info["features"] = all_features
        atomic_write_json(root / INFO_PATH, info)
        per_episode_stats = [stats_from_row(r, all_features) for r in rows]
        atomic_write_json(root / STATS_PATH, stats_to_json(aggregate_stats(per_episode_stats)))
    finally:
        lock.release()
