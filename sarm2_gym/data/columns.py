"""Add or overwrite per-frame columns of an existing dataset (labels, annotations).

Used by the reward labeller and the rollout annotation tool, and to add labels such as
``act_pri`` to datasets from elsewhere. Images are never decoded: the other columns of each
rewritten data file are copied as Arrow data.
"""

from __future__ import annotations

import contextlib
import json
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
    column_from_arrow,
    column_to_arrow,
    describe_mismatch,
    feature_of,
    hf_schema_metadata,
    is_image,
    schema_of,
)
from sarm2_gym.data.layout import (
    BOOKKEEPING_FEATURES,
    EPISODES_DIR,
    INFO_PATH,
    STATS_PATH,
    DatasetFormatError,
    chunk_file,
    data_file_path,
    episode_meta_path,
    load_info,
    user_features,
)
from sarm2_gym.data.meta import (
    EPISODE_FIELDS,
    episode_row_table,
    read_episode_rows,
    require_own_layout,
)
from sarm2_gym.data.stats import (
    STAT_NAMES,
    aggregate_stats,
    feature_stats,
    has_stats,
    stats_fields,
    stats_from_row,
    stats_to_json,
    stats_to_row,
)
from sarm2_gym.data.video import is_video

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

    Works on datasets written by :class:`LeRobotDatasetWriter` and on datasets written by
    LeRobot itself (several episodes per data and ``meta/episodes`` file, ``video`` cameras):
    there every other column, the episode rows' other fields (video locations included) and the
    other entries of ``stats.json`` are kept as they are, so LeRobot still loads the dataset.

    Args:
        root: Dataset directory (no writer may have it open).
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
        DatasetFormatError: If a data file is missing or does not match the episode rows.

    Example (labels for a LeRobot dataset from segment annotations)::

        from sarm2_gym.envs.core.primitives import primitive_index
        act_pri = {ep: np.full(length, primitive_index("dummy")) for ep, length in ...}
        add_frame_columns("my_dataset", {"act_pri": act_pri})
    """
    root = Path(root)
    load_info(root)  # fails on a non-dataset before the lock file is created there
    lock = DatasetLock(root)
    lock.acquire()
    try:
        info = load_info(root)
        remove_temp_files(root)
        rows = read_episode_rows(root)
        own = _is_own_layout(info, rows)
        if own:
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
        if own:
            _write_own_layout(root, info, rows, stored, new_features, values)
        else:
            _write_shared_files(root, info, rows, new_features, values)
    finally:
        lock.release()


def _is_own_layout(info: Mapping[str, Any], rows: list[dict[str, Any]]) -> bool:
    """Whether this library wrote the dataset: one episode per file, our episode-row fields."""
    if any(is_video(f) for f in info["features"].values()):
        return False
    cs = int(info["chunks_size"])
    fields = {f.name for f in EPISODE_FIELDS}
    return all(
        fields <= set(r)
        and (int(r["data/chunk_index"]), int(r["data/file_index"]))
        == chunk_file(int(r["episode_index"]), cs)
        for r in rows
    )


def _write_own_layout(
    root: Path,
    info: dict[str, Any],
    rows: list[dict[str, Any]],
    stored: dict[str, dict[str, Any]],
    new_features: dict[str, dict[str, Any]],
    values: dict[str, dict[int, np.ndarray]],
) -> None:
    """Rewrite one-episode-per-file data and rows (the schema is rebuilt from the features)."""
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
        _discard(temps)
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


def _discard(temps: list[tuple[Path, Path]]) -> None:
    for tmp, _ in temps:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _set_column(table: pa.Table, name: str, array: pa.Array) -> pa.Table:
    """Replace column ``name`` of ``table`` or append it."""
    field = pa.field(name, array.type)
    index = table.schema.get_field_index(name)
    if index >= 0:
        return table.set_column(index, field, array)
    return table.append_column(field, array)


def _with_hf_features(
    schema_meta: Mapping[bytes, bytes] | None, features: Mapping[str, Mapping[str, Any]]
) -> dict[bytes, bytes] | None:
    """Schema metadata with the Hugging Face ``datasets`` entries of ``features`` added."""
    if not schema_meta:
        return None
    meta = dict(schema_meta)
    if b"huggingface" in meta:
        try:
            hf = json.loads(meta[b"huggingface"])
            added = json.loads(hf_schema_metadata(features))["info"]["features"]
            hf.setdefault("info", {}).setdefault("features", {}).update(added)
            meta[b"huggingface"] = json.dumps(hf).encode()
        except (ValueError, TypeError, AttributeError):
            pass  # metadata we do not understand stays as it was
    return meta


def _write_shared_files(
    root: Path,
    info: dict[str, Any],
    rows: list[dict[str, Any]],
    new_features: dict[str, dict[str, Any]],
    values: dict[str, dict[int, np.ndarray]],
) -> None:
    """Add columns to a dataset LeRobot wrote (files hold several episodes).

    Each affected data file gets the new column for all its rows (episodes found through the
    file's ``episode_index`` column); other columns are copied as Arrow data. Episode-row files
    get the new ``stats/<key>/<stat>`` columns; ``stats.json`` gets the new keys' pooled stats.
    """
    lengths = [int(r["length"]) for r in rows]
    affected = sorted({ep for arrays in values.values() for ep in arrays})
    files: dict[tuple[int, int], list[int]] = {}
    for ep in affected:
        where = (int(rows[ep]["data/chunk_index"]), int(rows[ep]["data/file_index"]))
        files.setdefault(where, []).append(ep)

    # 1. Data files: all temporaries first, then the swaps.
    temps: list[tuple[Path, Path]] = []
    try:
        for (chunk, file), eps in sorted(files.items()):
            path = data_file_path(root, info, chunk, file)
            if not path.is_file():
                raise DatasetFormatError(f"data file {path} of episodes {eps} is missing")
            table = pq.read_table(path)
            if "episode_index" not in table.column_names:
                raise DatasetFormatError(f"data file {path} has no episode_index column")
            owner = table.column("episode_index").to_numpy()
            for key, feature in new_features.items():
                arrays = values[key]
                shape = [int(s) for s in feature["shape"]]
                if key in table.column_names:
                    full = np.array(column_from_arrow(table.column(key), feature))  # writable
                else:
                    dtype = np.dtype(object if feature["dtype"] == "string" else feature["dtype"])
                    full = np.zeros((table.num_rows, *([] if shape == [1] else shape)), dtype)
                    uncovered = sorted(set(np.unique(owner).tolist()) - set(arrays))
                    if uncovered:
                        raise DatasetFormatError(
                            f"data file {path} holds rows of episodes {uncovered[:10]} that "
                            f"have no values for the new column {key!r}"
                        )
                for ep in sorted(set(arrays) & set(np.unique(owner).tolist())):
                    mask = owner == ep
                    if int(mask.sum()) != lengths[ep]:
                        raise DatasetFormatError(
                            f"data file {path} holds {int(mask.sum())} rows of episode {ep}, "
                            f"its metadata says {lengths[ep]}"
                        )
                    full[mask] = arrays[ep]
                table = _set_column(table, key, column_to_arrow(full, feature))
            meta = _with_hf_features(table.schema.metadata, new_features)
            table = table.replace_schema_metadata(meta)
            temps.append((write_parquet_temp(path, table), path))
    except BaseException:
        _discard(temps)
        raise
    for tmp, path in temps:
        replace_file(tmp, path)

    # 2. Episode rows: per-episode statistics of the new columns, in every file holding rows.
    stat_features = {k: f for k, f in new_features.items() if has_stats(f)}
    fields = {f.name: f.type for f in stats_fields(stat_features)}
    for path in sorted((root / EPISODES_DIR).glob("chunk-*/file-*.parquet")):
        table = pq.read_table(path)
        eps = [int(e) for e in table.column("episode_index").to_pylist()]
        if not any(ep in values[k] for k in stat_features for ep in eps):
            continue
        for key, feature in stat_features.items():
            stats = {ep: feature_stats(values[key][ep], feature) for ep in eps if ep in values[key]}
            for name in STAT_NAMES:
                column = f"stats/{key}/{name}"
                old = table.column(column).to_pylist() if column in table.column_names else None
                cells = [
                    stats[ep][name].tolist() if ep in stats else (old[i] if old else None)
                    for i, ep in enumerate(eps)
                ]
                table = _set_column(table, column, pa.array(cells, fields[column]))
        atomic_write_parquet(path, table)

    # 3. info.json (features appended, everything else kept) and the new keys of stats.json.
    features = dict(info["features"])
    features.update(new_features)
    info["features"] = features
    atomic_write_json(root / INFO_PATH, info)
    stats_path = root / STATS_PATH
    stats_json = json.loads(stats_path.read_text()) if stats_path.is_file() else {}
    rows = read_episode_rows(root)
    pooled = aggregate_stats([stats_from_row(r, stat_features) for r in rows])
    stats_json.update(stats_to_json(pooled))
    atomic_write_json(stats_path, stats_json)
