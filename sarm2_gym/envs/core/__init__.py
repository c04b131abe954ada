"""Simulation core shared by every task: scene, embodiment, cameras, stages, experts."""

from __future__ import annotations

from sarm2_gym.envs.core.expert import ArmTarget, ExpertQuality, ScriptedExpert, Waypoint
from sarm2_gym.envs.core.primitives import GROUP_NAMES, GROUPS, PRIMITIVES
from sarm2_gym.envs.core.stages import Stage, StageMachine, TaskStatus, sequential_status
from sarm2_gym.envs.core.task_env import CAMERAS, CONTROL_HZ, TaskEnv

__all__ = [
    "CAMERAS",
    "CONTROL_HZ",
    "GROUPS",
    "GROUP_NAMES",
    "PRIMITIVES",
    "ArmTarget",
    "ExpertQuality",
    "ScriptedExpert",
    "Stage",
    "StageMachine",
    "TaskEnv",
    "TaskStatus",
    "Waypoint",
    "sequential_status",
]
