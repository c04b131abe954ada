"""What SPIRAL records about each round: the history entry and the SB3 logger keys."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.logger import Logger

from sarm2_gym.algos.spiral.rollouts import CollectStats

__all__ = ["log_round", "round_record"]


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def round_record(
    round_index: int,
    num_timesteps: int,
    stats: CollectStats,
    dense_returns: Sequence[float],
    train_stats: dict[str, float],
) -> dict[str, Any]:
    """The JSON-able summary of one round kept in ``SPIRAL.history``."""
    return {
        "round": round_index,
        "num_timesteps": num_timesteps,
        "episodes": stats.episodes,
        "success_rate": _mean([float(s) for s in stats.successes]),
        "ep_len_mean": _mean([float(n) for n in stats.lengths]),
        "dense_return_mean": _mean(dense_returns),
        "discarded_steps": stats.discarded_steps,
        "collect_seconds": stats.seconds,
        **{f"train_{k}": v for k, v in train_stats.items()},
    }


def log_round(
    logger: Logger,
    record: dict[str, Any],
    train_stats: dict[str, float],
    fps: int,
    episode_rewards: Sequence[float],
) -> None:
    """Record a round under SB3-style keys (``rollout/``, ``train/``, ``time/``, ``spiral/``)."""
    logger.record("spiral/round", record["round"])
    for key in ("success_rate", "ep_len_mean", "dense_return_mean", "episodes"):
        logger.record(f"rollout/{key}", record[key])
    if episode_rewards:  # the env's own (sparse) return, from SB3's Monitor
        logger.record("rollout/ep_rew_mean", _mean(episode_rewards))
    logger.record("time/fps", fps)
    logger.record("time/round_seconds", record["round_seconds"])
    logger.record("time/total_timesteps", record["num_timesteps"], exclude="tensorboard")
    for key, value in train_stats.items():
        logger.record(f"train/{key}", value)
    for key, value in record.items():
        if key.startswith("critic_heldout_"):
            logger.record(f"spiral/{key}", value)
