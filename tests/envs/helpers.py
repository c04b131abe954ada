"""Shared helpers for task tests: run the scripted expert and summarise the episode."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from sarm2_gym.envs import expert_for
from sarm2_gym.envs.core.primitives import DUMMY


@dataclass
class Rollout:
    success: bool
    progress: np.ndarray
    labels: np.ndarray
    stages: np.ndarray
    info_primitives: np.ndarray
    gave_up: bool
    physics_instability: bool


def run_expert(
    env_id: str,
    seed: int,
    quality: str = "expert",
    obs_mode: str = "state",
    idle_after_give_up: int = 5,
    options: dict[str, str] | None = None,
) -> Rollout:
    env = gym.make(env_id, obs_mode=obs_mode)
    try:
        _, info = env.reset(seed=seed)
        expert = expert_for(env_id, quality, options)
        expert.reset(env.unwrapped, seed=seed)
        progress, labels, stages, prims = (
            [info["progress"]],
            [],
            [info["stage"]],
            [info["primitive"]],
        )
        idle = 0
        unstable = False
        while True:
            step = expert.act()
            _, _, terminated, truncated, info = env.step(step.env_action)  # pushes, misses
            labels.append(step.primitive)
            progress.append(info["progress"])
            stages.append(info["stage"])
            prims.append(info["primitive"])
            unstable |= bool(info.get("physics_instability", False))
            idle += int(expert.gave_up)
            if terminated or truncated or idle > idle_after_give_up:
                break
        return Rollout(
            success=bool(info["is_success"]),
            progress=np.asarray(progress),
            labels=np.asarray(labels),
            stages=np.asarray(stages),
            info_primitives=np.asarray(prims),
            gave_up=expert.gave_up,
            physics_instability=unstable,
        )
    finally:
        env.close()


def label_sequence(labels: np.ndarray) -> list[int]:
    """Run-length sequence of the non-dummy primitive labels."""
    seq: list[int] = []
    for lab in labels:
        if lab != DUMMY and (not seq or seq[-1] != lab):
            seq.append(int(lab))
    return seq


def max_drop(progress: np.ndarray) -> float:
    """Largest decrease of progress below its running maximum."""
    return float(np.max(np.maximum.accumulate(progress) - progress))
