"""Headless GL backend selection, imported before anything imports ``mujoco``.

MuJoCo picks its GL backend from ``MUJOCO_GL`` when ``mujoco`` is first imported, so this module
must not import mujoco (nor anything that does); ``sarm2_gym/__init__.py`` runs it first.
"""

from __future__ import annotations

import ctypes.util
import os

__all__ = ["configure_gl_backend"]


def configure_gl_backend() -> str | None:
    """Choose a headless GL backend if the user has not chosen one.

    EGL (surfaceless Mesa or a GPU driver) first, OSMesa as the fallback, nothing when a display
    is present. ``PYOPENGL_PLATFORM`` is set to match, as PyOpenGL needs the same choice.

    Returns:
        The backend now in ``MUJOCO_GL`` (``None`` when left to MuJoCo's default).
    """
    chosen = os.environ.get("MUJOCO_GL")
    if chosen:
        os.environ.setdefault("PYOPENGL_PLATFORM", chosen)
        return chosen
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    for backend, library in (("egl", "EGL"), ("osmesa", "OSMesa")):
        if ctypes.util.find_library(library):
            os.environ["MUJOCO_GL"] = backend
            os.environ.setdefault("PYOPENGL_PLATFORM", backend)
            return backend
    return None
