"""Collecting chunked rollouts from an SB3 ``VecEnv`` with SPIRAL's current policy.

Every env executes best-of-kappa chunks; each frame's base-policy features are computed once
(they are also what the replay buffer stores). A finished episode is returned in the dataset row
layout: ``L = T + 1`` frames, the last one the terminal observation with a hold-still action, as
recorded demonstrations are, so rollouts and demonstrations share one code path downstream.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv

from sarm2_gym.algos.spiral.labeling import RolloutEpisode
from sarm2_gym.algos.spiral.policies import ResidualChunkPolicy

__all__ = ["CollectStats", "CollectedEpisode", "collect_rollouts", "hold_action"]


def hold_action(last: np.ndarray) -> np.ndarray:
    """Hold still, keeping each gripper command (indices 6 and 13), as recorded datasets do."""
    hold = np.zeros_like(last)
    hold[6::7] = last[6::7]
    return hold


@dataclass
class CollectedEpisode:
    """A finished rollout and the base-policy features of its frames ``(L, F)``."""

    episode: RolloutEpisode
    features: np.ndarray


@dataclass
class CollectStats:
    """What one collection phase did."""

    episodes: int = 0
    env_steps: int = 0
    discarded_steps: int = 0
    successes: list[bool] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    seconds: float = 0.0
    aborted: bool = False


class _Recorder:
    def __init__(self, keep_images: bool, cameras: tuple[str, ...]) -> None:
        self.keep_images, self.cameras = keep_images, cameras
        self.clear()

    def clear(self) -> None:
        self.images: dict[str, list[np.ndarray]] = {c: [] for c in self.cameras}
        self.state: list[np.ndarray] = []
        self.features: list[np.ndarray] = []
        self.actions: list[np.ndarray] = []
        self.progress: list[float] = []

    def frame(self, obs: dict[str, np.ndarray], feat: np.ndarray, info: dict[str, Any]) -> None:
        if self.keep_images:
            for c in self.cameras:
                self.images[c].append(obs[c])
        self.state.append(np.asarray(obs["state"], np.float32))
        self.features.append(feat)
        self.progress.append(float(info.get("progress", np.nan)))

    def finish(self, task: str, success: bool, meta: dict[str, Any]) -> CollectedEpisode:
        self.actions.append(hold_action(self.actions[-1]))
        progress = np.asarray(self.progress, dtype=np.float64)
        episode = RolloutEpisode(
            task=task,
            state=np.stack(self.state),
            actions=np.stack(self.actions).astype(np.float32),
            success=success,
            images={c: np.stack(v) for c, v in self.images.items()} if self.keep_images else None,
            progress=None if np.isnan(progress).any() else progress,
            meta=meta,
        )
        out = CollectedEpisode(episode, np.stack(self.features))
        self.clear()
        return out


def collect_rollouts(
    policy: ResidualChunkPolicy,
    env: VecEnv,
    n_episodes: int,
    max_env_steps: int,
    callback: BaseCallback,
    on_episode: Callable[[CollectedEpisode], None],
    *,
    keep_images: bool,
    on_env_step: Callable[[int, list[dict[str, Any]], np.ndarray], None],
    meta: dict[str, Any] | None = None,
) -> CollectStats:
    """Run episodes until ``n_episodes`` finished or ``max_env_steps`` steps were taken.

    Episodes still running when collection stops are dropped (their steps are counted in
    ``discarded_steps``: they were spent). The env must have been seeded and is reset here.

    Args:
        policy: Acts with best-of-kappa chunks (stochastic latents).
        env: SB3 vector env (auto-reset, ``terminal_observation`` in ``info``).
        n_episodes: Episodes to finish.
        max_env_steps: Env-step budget of this phase (over all envs).
        callback: SB3 callback; ``on_step`` is called after every vector step.
        on_episode: Receives each finished episode.
        keep_images: Keep camera frames (for image-based labellers).
        on_env_step: Called with ``(n_envs, infos, dones)`` after each vector step (bookkeeping).
        meta: Added to every episode's metadata.
    """
    start = time.perf_counter()
    stats = CollectStats()
    n = env.num_envs
    cameras = policy.cameras
    task = policy.instruction
    obs: dict[str, np.ndarray] = env.reset()  # type: ignore[assignment]
    infos: list[dict[str, Any]] = [dict(i) for i in getattr(env, "reset_infos", [{}] * n)]
    recorders = [_Recorder(keep_images, cameras) for _ in range(n)]
    h, a = policy.chunk_shape
    queue = np.zeros((n, h, a), dtype=np.float32)
    cursor = np.full(n, policy.n_action_steps, dtype=np.int64)
    policy.set_training_mode(False)
    while stats.episodes < n_episodes and stats.env_steps < max_env_steps:
        feats = policy.encode(obs)  # (n, F)
        feats_np = feats.cpu().numpy()
        for i in range(n):
            recorders[i].frame({k: v[i] for k, v in obs.items()}, feats_np[i], infos[i])
        need = cursor >= policy.n_action_steps
        if need.any():
            with torch.no_grad():
                queue[need] = (
                    policy.plan_from_features(feats[torch.from_numpy(need)], policy.rng)
                    .cpu()
                    .numpy()
                )
            cursor[need] = 0
        actions = queue[np.arange(n), cursor].copy()
        cursor += 1
        obs, _, dones, infos = env.step(actions)  # type: ignore[assignment]
        stats.env_steps += n
        on_env_step(n, infos, dones)
        callback.update_locals(locals())
        if not callback.on_step():
            stats.aborted = True
            break
        for i in range(n):
            recorders[i].actions.append(actions[i])
        done_idx = np.flatnonzero(dones)
        if done_idx.size:
            terminal = {
                k: np.stack([infos[i]["terminal_observation"][k] for i in done_idx]) for k in obs
            }
            term_feats = policy.encode(terminal).cpu().numpy()
            for j, i in enumerate(done_idx):
                rec = recorders[i]
                rec.frame({k: v[j] for k, v in terminal.items()}, term_feats[j], infos[i])
                success = bool(infos[i].get("is_success", False))
                if stats.episodes < n_episodes:
                    stats.episodes += 1
                    stats.successes.append(success)
                    stats.lengths.append(len(rec.state) - 1)
                    on_episode(rec.finish(task, success, dict(meta or {})))
                else:
                    rec.clear()
                cursor[i] = policy.n_action_steps
                infos[i] = dict(getattr(env, "reset_infos", [{}] * n)[i])
    stats.discarded_steps = sum(len(r.actions) for r in recorders)
    stats.seconds = time.perf_counter() - start
    return stats
