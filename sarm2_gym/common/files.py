"""File permissions for atomically written files.

``tempfile.mkstemp`` creates files readable by their owner only (0600) and ``mkdtemp`` such
directories (0700). A checkpoint or annotation written through one of them and then renamed into
place would keep those modes, so other users of a shared machine could not read it. Writers call
:func:`set_default_mode` on the temporary path before the rename, which gives it the mode a
plain ``open()`` or ``mkdir()`` would have under the process's umask.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

__all__ = ["set_default_mode"]

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
