"""sarm2-gym: stage-aware dense rewards (SARM2) and reward-guided self-improvement (SPIRAL).

Importing the package registers the ``SARM2-<Task>-v0`` environments with Gymnasium.
"""

from __future__ import annotations

from sarm2_gym._gl import configure_gl_backend

# MuJoCo reads MUJOCO_GL when it is first imported: choose a headless backend before that.
configure_gl_backend()

from sarm2_gym import envs  # noqa: E402  (registers the environments)

__version__ = "0.1.0"

__all__ = ["__version__", "envs"]
