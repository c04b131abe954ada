"""``meta/tasks.parquet`` and ``meta/episodes/*`` rows.

Episode rows carry LeRobot's columns (``episode_index``, ``tasks``, ``length``,
``data/chunk_index``, ``data/file_index``, ``dataset_from_index``, ``dataset_to_index``,
``meta/episodes/chunk_index``, ``meta/episodes/file_index``, ``stats/<key>/<stat>``) and ours:
``task_index``, ``success``, ``env_id``, ``seed``, ``quality``, ``quality_knobs`` (JSON) and
``meta`` (the whole :attr:`Episode.meta` as JSON, so it round-trips exactly).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from sarm2_gym.data._fs import atomic_write_parquet, json_default
from sarm2_gym.data.layout import (
    EPISODES_DIR,
    TASKS_PATH,
    DatasetFormatError,
    chunk_file,
    data_file_path,
)
from sarm2_gym.data.stats import stats_fields

__all__ = [
    "EPISODE_FIELDS",
    "episode_row_table",
    "public_meta",
    "read_episode_rows",
    "read_tasks",
    "require_own_layout",
    "to_json",
    "write_tasks",
]

EPISODE_FIELDS: Final[list[pa.Field]] = [
    pa.field("episode_index", pa.int64()),
    pa.field("tasks", pa.list_(pa.string())),
    pa.field("length", pa.int64()),
    pa.field("data/chunk_index", pa.int64()),
    pa.field("data/file_index", pa.int64()),
    pa.field("dataset_from_index", pa.int64()),
    pa.field("dataset_to_index", pa.int64()),
    pa.field("meta/episodes/chunk_index", pa.int64()),
    pa.field("meta/episodes/file_index", pa.int64()),
    pa.field("task_index", pa.int64()),
    pa.field("success", pa.bool_()),
    pa.field("env_id", pa.string()),
    pa.field("seed", pa.int64()),
    pa.field("quality", pa.string()),
    pa.field("quality_knobs", pa.string()),
    pa.field("meta", pa.string()),
]
_JSON_FIELDS: Final[tuple[str, ...]] = ("quality_knobs", "meta")


def to_json(value: Any, what: str) -> str:
    """Serialise metadata to JSON (numpy scalars allowed).

    Raises:
        ValueError: Naming ``what`` if the value cannot be stored as JSON.
    """
    try:
        return json.dumps(value, default=json_default, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be JSON-serialisable: {exc}") from exc


def episode_row_table(
    row: Mapping[str, Any], features: Mapping[str, Mapping[str, Any]]
) -> pa.Table:
    """One episode row as a table.

    The schema is fixed (identical across files), so LeRobot and ``datasets`` can concatenate
    the files.
    """
    schema = pa.schema([*EPISODE_FIELDS, *stats_fields(features)])
    return pa.Table.from_pylist([dict(row)], schema=schema)


def read_episode_rows(root: Path) -> list[dict[str, Any]]:
    """All episode rows of a dataset, sorted by ``episode_index``.

    Files may hold one row (our layout) or many (LeRobot's own writer).

    Raises:
        DatasetFormatError: If a file is unreadable, or the episode indices are not 0..N-1.
    """
    rows: list[dict[str, Any]] = []
    for path in sorted((root / EPISODES_DIR).glob("chunk-*/file-*.parquet")):
        try:
            rows.extend(pq.read_table(path).to_pylist())
        except (pa.ArrowException, OSError) as exc:
            raise DatasetFormatError(f"episode metadata file {path} is unreadable: {exc}") from exc
    rows.sort(key=lambda r: int(r["episode_index"]))
    indices = [int(r["episode_index"]) for r in rows]
    if indices != list(range(len(rows))):
        gaps = sorted(set(range(max(indices, default=-1) + 1)) - set(indices))
        raise DatasetFormatError(
            f"{root / EPISODES_DIR} holds episodes {indices[:10]}...; expected 0..{len(rows) - 1} "
            f"(missing {gaps[:10]}, or duplicates)"
        )
    return rows


def require_own_layout(
    root: Path, info: Mapping[str, Any], rows: list[dict[str, Any]], action: str
) -> None:
    """Check that a dataset uses this library's one-episode-per-file layout and is intact.

    Args:
        root: Dataset root.
        info: Its ``info.json``.
        rows: Its episode rows.
        action: What the caller wants to do, for the error message.

    Raises:
        ValueError: If an episode shares its data file with others (LeRobot's own writer).
        DatasetFormatError: If an episode's data file is missing.
    """
    cs = int(info["chunks_size"])
    for row in rows:
        ep = int(row["episode_index"])
        where = (int(row["data/chunk_index"]), int(row["data/file_index"]))
        if where != chunk_file(ep, cs):
            raise ValueError(
                f"{root} stores several episodes per file (episode {ep} is in chunk {where[0]} "
                f"file {where[1]}); {action} is not supported"
            )
        path = data_file_path(root, dict(info), *where)
        if not path.is_file():
            raise DatasetFormatError(f"data file {path} of episode {ep} is missing")


def public_meta(row: Mapping[str, Any]) -> dict[str, Any]:
    """An episode row without ``stats/*`` columns, JSON fields decoded to Python objects."""
    out = {k: v for k, v in row.items() if not k.startswith("stats/")}
    for key in _JSON_FIELDS:
        if isinstance(out.get(key), str):
            out[key] = json.loads(out[key])
    return out


def write_tasks(root: Path, tasks: Mapping[int, str]) -> None:
    """Write ``meta/tasks.parquet`` atomically, rows ordered by task index.

    LeRobot stores a pandas frame indexed by the task string with a ``task_index`` column; the
    ``pandas`` schema metadata written here makes ``pandas.read_parquet`` rebuild that index, so
    the file reads the same as one LeRobot wrote (without this library depending on pandas).
    """
    order = sorted(tasks)
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [
            {
                "name": None,
                "field_name": None,
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": {"encoding": "UTF-8"},
            }
        ],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {
                "name": "task",
                "field_name": "task",
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": None,
            },
        ],
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.3",
    }
    schema = pa.schema(
        [pa.field("task_index", pa.int64()), pa.field("task", pa.string())],
        metadata={b"pandas": json.dumps(pandas_meta).encode()},
    )
    table = pa.Table.from_pydict(
        {"task_index": order, "task": [tasks[i] for i in order]}, schema=schema
    )
    atomic_write_parquet(root / TASKS_PATH, table)


def read_tasks(root: Path) -> dict[int, str]:
    """Read ``meta/tasks.parquet`` as ``{task_index: task}`` (empty when the file is absent).

    Raises:
        DatasetFormatError: If the file is unreadable or lacks the task column.
    """
    path = root / TASKS_PATH
    if not path.is_file():
        return {}
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DatasetFormatError(f"{path} is unreadable: {exc}") from exc
    # Files written through pandas keep the task strings in the (named or unnamed) index column.
    name = next((n for n in ("task", "__index_level_0__") if n in table.column_names), None)
    if name is None or "task_index" not in table.column_names:
        raise DatasetFormatError(
            f"{path} has columns {table.column_names}; expected task/task_index"
        )
    tasks = table.column(name).to_pylist()
    indices = table.column("task_index").to_pylist()
    return {int(i): str(t) for i, t in zip(indices, tasks, strict=True)}
