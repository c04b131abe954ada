"""File-system helpers for datasets: atomic writes, temp-file cleanup and a writer lock.

Every file of a dataset is written to a hidden temporary file in the directory it belongs to and
then moved over its final name with :func:`os.replace`, which is atomic on POSIX and Windows when
source and target are on the same file system. A reader therefore sees either the old or the new
file, never a half-written one, whatever moment the writing process dies at.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import IO, Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sarm2_gym.common.files import fsync_dir

try:  # POSIX only; on other systems the lock is a no-op (documented on DatasetLock).
    import fcntl
except ImportError:  # pragma: no cover - exercised on Windows only
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "LOCK_NAME",
    "TMP_MARK",
    "DatasetLock",
    "atomic_write_json",
    "atomic_write_parquet",
    "json_default",
    "remove_temp_files",
    "replace_file",
    "temp_path",
    "write_parquet_temp",
]

TMP_MARK: Final[str] = ".sarm2tmp"
"""Every temporary file name contains this mark, so stale ones can be found and removed."""

LOCK_NAME: Final[str] = "meta/.writer.lock"
"""Lock file (relative to the dataset root) held by the one process that may write."""


def temp_path(path: Path) -> Path:
    """Return a hidden temporary name next to ``path`` (same directory, so same file system).

    The name starts with a dot and does not end in ``.parquet``/``.json``, so globbing tools (for
    example LeRobot's ``*/*.parquet``) never pick up a half-written file.
    """
    return path.parent / f".{path.name}.{os.getpid()}{TMP_MARK}"


def replace_file(tmp: Path, path: Path) -> None:
    """Move a fully written temporary file over ``path`` atomically."""
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _write_temp(path: Path, write: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return tmp


def write_parquet_temp(path: Path, table: pa.Table) -> Path:
    """Write ``table`` to the temporary file of ``path`` and return that temporary path.

    Used when several files must all be written before any of them is swapped in.
    """

    def write(f: IO[bytes]) -> None:
        pq.write_table(table, f, compression="snappy")

    return _write_temp(path, write)


def atomic_write_parquet(path: Path, table: pa.Table) -> None:
    """Write a parquet file atomically (temporary file, fsync, rename)."""
    replace_file(write_parquet_temp(path, table), path)


def json_default(value: Any) -> Any:
    """Convert numpy scalars and arrays for :func:`json.dumps`.

    Raises:
        TypeError: For anything else that JSON cannot hold.
    """
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"object of type {type(value).__name__} is not JSON serialisable")


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically."""
    data = (json.dumps(obj, indent=4, ensure_ascii=False, default=json_default) + "\n").encode()

    def write(f: IO[bytes]) -> None:
        f.write(data)

    replace_file(_write_temp(path, write), path)


def remove_temp_files(root: Path) -> list[Path]:
    """Delete temporary files left by an interrupted writer anywhere under ``root``.

    Returns:
        The removed paths.
    """
    removed = []
    for path in root.rglob(f"*{TMP_MARK}"):
        if path.is_file():
            path.unlink()
            removed.append(path)
    return removed


class DatasetLock:
    """Exclusive advisory lock on a dataset directory, so two writers never interleave.

    The lock is an ``flock`` on ``meta/.writer.lock``: the operating system releases it when the
    process exits, even when it is killed, so a crashed writer never leaves a stale lock. On
    systems without ``fcntl`` (Windows) the lock does nothing.

    Args:
        root: Dataset root directory.
    """

    def __init__(self, root: Path) -> None:
        self._path = root / LOCK_NAME
        self._file: IO[bytes] | None = None

    def acquire(self) -> None:
        """Take the lock.

        Raises:
            RuntimeError: If another process (or another open writer) holds it.
        """
        self._path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self._path, "ab")  # noqa: SIM115 - kept open for the lock's lifetime
        if fcntl is not None:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                f.close()
                raise RuntimeError(
                    f"dataset {self._path.parent.parent} is being written by another writer "
                    "(close it first)"
                ) from exc
        self._file = f

    def release(self) -> None:
        """Release the lock (idempotent)."""
        if self._file is not None:
            if fcntl is not None:
                with contextlib.suppress(OSError):
                    fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None
