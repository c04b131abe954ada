"""Pose-target action chunks: absolute commanded poses, turned into the env's delta actions.

The benchmark's action is a *delta* per arm (``[dxyz, drpy, gripper]``, in ``[-1, 1]``, scaled by
:class:`~sarm2_gym.envs.core.embodiment.ControlLimits`) and the robot state holds the commanded
pose the deltas were added to (the end effectors are kinematic, so they reach it each step).
Cloning deltas leaves a height error unseen: a policy that stops a few millimetres above the
board predicts "hold still" there, as the expert did at its own height, and never presses.
Diffusion Policy (Chi et al., 2023) reports the same failure of velocity-style actions with action
chunks and clones *positions* instead. A ``"target"`` TinyVLA does that: it learns the commanded
pose after each step of the chunk (each demonstrated delta added to the state it was recorded in,
clipped as the env clips its command: :func:`targets_from_states`), and each sampled chunk is
turned back into deltas from the *current* state (:func:`actions_from_targets`), so every new
chunk steers towards absolute poses again.

State and action share one layout per arm: ``[x, y, z, roll, pitch, yaw, gripper]``; the gripper
entry of a target is the demonstrated gripper command itself.
"""

from __future__ import annotations

from dataclasses import astuple
from typing import Any, Final

import numpy as np
import torch

from sarm2_gym.algos.vla.config import LIMITS_WIDTH
from sarm2_gym.envs.core.embodiment import ControlLimits

__all__ = [
    "LIMITS_WIDTH",
    "actions_from_targets",
    "limits_from_tuple",
    "limits_to_tuple",
    "targets_from_actions",
    "targets_from_states",
]

_ARM_WIDTH: Final[int] = 7  # x, y, z, roll, pitch, yaw, gripper


def limits_to_tuple(limits: ControlLimits) -> tuple[float, ...]:
    """Flat form stored in a checkpoint's config (field order of ``ControlLimits``)."""
    flat: list[float] = []
    for value in astuple(limits):
        flat.extend(float(v) for v in np.atleast_1d(value))
    return tuple(flat)


def limits_from_tuple(flat: tuple[float, ...] | list[float]) -> ControlLimits:
    """Inverse of :func:`limits_to_tuple`.

    Raises:
        ValueError: If ``flat`` does not hold ``LIMITS_WIDTH`` numbers.
    """
    if len(flat) != LIMITS_WIDTH:
        raise ValueError(f"control limits need {LIMITS_WIDTH} numbers, got {len(flat)}")
    v = [float(x) for x in flat]
    return ControlLimits(
        max_translation=v[0],
        max_rotation=v[1],
        workspace_low=(v[2], v[3], v[4]),
        workspace_high=(v[5], v[6], v[7]),
        rpy_low=(v[8], v[9], v[10]),
        rpy_high=(v[11], v[12], v[13]),
    )


def _bounds(limits: ControlLimits, like: torch.Tensor) -> dict[str, Any]:
    def t(values: Any) -> torch.Tensor:
        return torch.as_tensor(values, dtype=like.dtype, device=like.device)

    return {
        "step": t([limits.max_translation] * 3 + [limits.max_rotation] * 3),
        "low": t([*limits.workspace_low, *limits.rpy_low]),
        "high": t([*limits.workspace_high, *limits.rpy_high]),
    }


def _check(state: torch.Tensor, chunk: torch.Tensor) -> int:
    if state.ndim != 2 or chunk.ndim != 3 or chunk.shape[0] != state.shape[0]:
        raise ValueError(
            f"need state (B, S) and a chunk (B, H, A), got {tuple(state.shape)} and "
            f"{tuple(chunk.shape)}"
        )
    width = state.shape[1]
    if width % _ARM_WIDTH or chunk.shape[2] != width:
        raise ValueError(
            f"state and action must both be {_ARM_WIDTH} values per arm, got {width} and "
            f"{chunk.shape[2]}"
        )
    return width // _ARM_WIDTH


def targets_from_actions(
    state: torch.Tensor, actions: torch.Tensor, limits: ControlLimits
) -> torch.Tensor:
    """The commanded pose after each step of a delta-action chunk (the env's own integration).

    Args:
        state: ``(B, S)`` state at the chunk's first step.
        actions: ``(B, H, A)`` delta actions in env units.
        limits: The env's control limits.

    Returns:
        ``(B, H, A)``: per arm the pose after each step (clipped to the workspace and rotation
        limits, as the env clips its commanded pose) and the action's gripper command.
    """
    arms = _check(state, actions)
    b = _bounds(limits, actions)
    out = actions.clone()
    for arm in range(arms):
        pose = slice(arm * _ARM_WIDTH, arm * _ARM_WIDTH + 6)
        current = state[:, pose].to(actions.dtype)
        for k in range(actions.shape[1]):
            step = actions[:, k, pose].clamp(-1.0, 1.0) * b["step"]
            current = (current + step).clamp(b["low"], b["high"])
            out[:, k, pose] = current
    return out


def targets_from_states(
    states: torch.Tensor, actions: torch.Tensor, limits: ControlLimits
) -> torch.Tensor:
    """The pose each action commands from the state it was taken in (recorded states).

    Unlike :func:`targets_from_actions` nothing is integrated: with DART pushes the executed
    action differed from the recorded one, and the recorded states say where the arm really was.

    Args:
        states: ``(B, H, S)`` state at each step of the chunk.
        actions: ``(B, H, A)`` delta actions in env units.
        limits: The env's control limits.
    """
    if states.ndim != 3 or states.shape[:2] != actions.shape[:2]:
        raise ValueError(
            f"need states (B, H, S) matching actions (B, H, A), got {tuple(states.shape)} and "
            f"{tuple(actions.shape)}"
        )
    arms = _check(states[:, 0], actions)
    b = _bounds(limits, actions)
    out = actions.clone()
    for arm in range(arms):
        pose = slice(arm * _ARM_WIDTH, arm * _ARM_WIDTH + 6)
        moved = states[:, :, pose].to(actions.dtype) + actions[:, :, pose].clamp(-1, 1) * b["step"]
        out[:, :, pose] = moved.clamp(b["low"], b["high"])
    return out


def actions_from_targets(
    state: torch.Tensor, targets: torch.Tensor, limits: ControlLimits
) -> torch.Tensor:
    """Delta actions (in ``[-1, 1]``) that drive the commanded pose through ``targets``.

    Step ``k`` moves from where step ``k - 1`` left the pose (the state for ``k = 0``); a move
    larger than one step allows is cut to it, and later steps start from where it ended. The
    gripper command is passed through (clipped to ``[-1, 1]``).

    Args:
        state: ``(B, S)`` current state.
        targets: ``(B, H, A)`` pose targets (see :func:`targets_from_actions`).
        limits: The env's control limits.
    """
    arms = _check(state, targets)
    b = _bounds(limits, targets)
    out = targets.clamp(-1.0, 1.0)  # gripper columns; the pose columns are overwritten
    for arm in range(arms):
        pose = slice(arm * _ARM_WIDTH, arm * _ARM_WIDTH + 6)
        current = state[:, pose].to(targets.dtype)
        for k in range(targets.shape[1]):
            delta = ((targets[:, k, pose] - current) / b["step"]).clamp(-1.0, 1.0)
            out[:, k, pose] = delta
            current = (current + delta * b["step"]).clamp(b["low"], b["high"])
    return out
