"""Atomic file writing shared by every checkpoint, cache and annotation writer.

A file is written under a temporary name in its destination directory, flushed, and moved over
the final name (``os.replace``), so a process killed mid-write leaves the old file or the new one.
Multi-file outputs are filled into a staging directory (:func:`make_staging_dir`) that the caller
renames into place.

Modes: ``tempfile.mkstemp`` files and ``mkdtemp`` directories are owner-only (0600 / 0700), and
so is every file safetensors' ``save_file`` creates. Left like that, a checkpoint could not be read
by other users of a shared machine. :func:`atomic_write`, :func:`make_staging_dir` and
:func:`save_safetensors` give their outputs the mode a plain ``open()`` / ``mkdir()`` would have
under the process's umask, so writers need no mode handling of their own.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["atomic_write", "fsync_dir", "make_staging_dir", "save_safetensors", "set_default_mode"]

_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    # os.umask can only be read by setting it; the lock keeps other threads of this library from
    # seeing the temporary value (the window is two system calls long).
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def set_default_mode(path: str | Path) -> None:
    """Give ``path`` the mode a new file (0666) or directory (0777) gets under the umask."""
    p = Path(path)
    base = 0o777 if p.is_dir() else 0o666
    os.chmod(p, base & ~_umask())


def fsync_dir(directory: Path) -> None:
    """Make a rename inside ``directory`` durable across power loss, where the platform allows."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Write ``path`` atomically: ``write`` fills a temporary file, which then replaces it.

    Args:
        path: Destination (its directory is created if needed).
        write: Writes the whole content to the temporary path it is given.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        set_default_mode(tmp)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def make_staging_dir(parent: Path, name: str) -> Path:
    """A fresh hidden ``parent/.name.*.tmp`` directory with umask modes, to rename into place."""
    staging = Path(tempfile.mkdtemp(dir=parent, prefix=f".{name}.", suffix=".tmp"))
    set_default_mode(staging)
    return staging


def save_safetensors(
    tensors: Mapping[str, torch.Tensor], path: Path, metadata: Mapping[str, str] | None = None
) -> None:
    """``safetensors.torch.save_file`` with the umask mode instead of owner-only."""
    from safetensors.torch import save_file  # here, so the data layer can import this module

    save_file(dict(tensors), str(path), metadata=dict(metadata) if metadata else None)
    set_default_mode(path)
