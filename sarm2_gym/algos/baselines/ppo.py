"""SB3 PPO on a benchmark task, with the sparse reward or SARM2 dense rewards.

``reward="sparse"`` trains on the env's own success reward; ``reward="sarm2"`` (or
``"sarm2:<checkpoint dir>"``) builds the envs with ``gym.make(task, reward=...)``, which wraps them
with the SARM2 reward wrappers (:mod:`sarm2_gym.wrappers`); ``reward="privileged"`` with the
simulator's own progress as the same kind of dense rewards, an oracle for development runs that
compare PPO with SPIRAL on privileged labels. Evaluation always uses the plain env
and counts task success. PPO uses SB3's ``MultiInputPolicy`` on the same observations as the VLA
(``obs_mode="rgb"``) unless told otherwise. A killed PPO run restarts from scratch (SB3's own
checkpoints are pickles, which this library does not load); a finished run is skipped.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from sarm2_gym.algos.baselines.common import RunResult, eval_seeds, evaluate_on_task, load_result
from sarm2_gym.algos.common.io import atomic_save_tensors

__all__ = ["PPORunConfig", "run_ppo"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PPORunConfig:
    """A PPO comparison run.

    Args:
        task: Env id.
        out: Output folder (``result.json``, ``tb/``, ``policy.safetensors``).
        timesteps: Env-step budget (the same budget as the SPIRAL run it is compared with).
        reward: ``"sparse"``, ``"sarm2"``, ``"sarm2:<checkpoint dir>"`` or ``"privileged"``
            (an oracle; method ``ppo_sarm2`` all the same: the dense-reward PPO).
        reward_options: How the dense reward is made from its readings (``make_task_env``'s
            ``reward_options``, e.g. ``{"query_every": 5, "smoothing_window": 2}`` to match
            the labels SPIRAL learns from); empty: the reward's defaults.
        seed: Seed of PPO and its envs.
        n_envs: Parallel envs.
        obs_mode: ``"rgb"`` (cameras + state, as the VLA sees) or ``"state"`` (privileged).
        image_size: Camera size.
        n_steps: PPO rollout length per env.
        batch_size: PPO minibatch size.
        eval_episodes: Held-out evaluation episodes.
        max_episode_steps: Override of the task's time limit (training and evaluation).
        ppo_kwargs: Other ``PPO`` arguments.
    """

    task: str
    out: str
    timesteps: int
    reward: str = "sparse"
    reward_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    n_envs: int = 2
    obs_mode: str = "rgb"
    image_size: int = 64
    n_steps: int = 256
    batch_size: int = 64
    eval_episodes: int = 50
    max_episode_steps: int | None = None
    ppo_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (self.reward in ("sparse", "privileged") or self.reward.split(":", 1)[0] == "sarm2"):
            raise ValueError(
                f"reward must be 'sparse', 'sarm2', 'sarm2:<dir>' or 'privileged', "
                f"got {self.reward!r}"
            )
        if self.reward == "sparse" and self.reward_options:
            raise ValueError(
                f"the sparse reward takes no reward_options, got {sorted(self.reward_options)}"
            )
        if self.timesteps < 1:
            raise ValueError(f"timesteps must be >= 1, got {self.timesteps}")

    @property
    def method(self) -> str:
        """``"ppo_sparse"`` or ``"ppo_sarm2"``."""
        return "ppo_sparse" if self.reward == "sparse" else "ppo_sarm2"


def _make_env(config: PPORunConfig) -> Any:
    from stable_baselines3.common.env_util import make_vec_env

    kwargs: dict[str, Any] = {
        "obs_mode": config.obs_mode,
        "image_size": config.image_size,
        "reward": config.reward,
    }
    if config.reward_options:
        kwargs["reward_options"] = dict(config.reward_options)
    if config.max_episode_steps is not None:
        kwargs["max_episode_steps"] = config.max_episode_steps
    try:
        return make_vec_env(config.task, n_envs=config.n_envs, seed=config.seed, env_kwargs=kwargs)
    except ImportError as exc:  # the wrappers package is built separately
        raise RuntimeError(
            f"reward={config.reward!r} needs the SARM2 reward wrappers (sarm2_gym.wrappers), "
            f"which are not available: {exc}"
        ) from exc


def _unaliased(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop second names of shared tensors (SB3 shares one extractor as pi/vf extractor)."""
    seen: set[tuple[int, int]] = set()
    out = {}
    for name, tensor in state.items():
        key = (tensor.untyped_storage().data_ptr(), int(tensor.storage_offset()))
        if key not in seen:
            seen.add(key)
            out[name] = tensor
    return out


def _episode_counter() -> Any:
    """An SB3 callback counting finished training episodes and their successes."""
    from stable_baselines3.common.callbacks import BaseCallback

    class EpisodeCounter(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.episodes = 0
            self.successes = 0

        def _on_step(self) -> bool:
            for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
                if done:
                    self.episodes += 1
                    self.successes += int(bool(info.get("is_success", False)))
            return True

    return EpisodeCounter()


def run_ppo(config: PPORunConfig, progress_bar: bool = False) -> RunResult:
    """Train PPO for ``config.timesteps`` env steps and evaluate it; skip if already finished.

    ``extra`` records the training episodes (``train_episodes``, ``train_successes``) so PPO can
    be placed on a success-vs-rollouts plot next to SPIRAL, and ``train_seconds``.
    """
    from stable_baselines3 import PPO

    done = load_result(config.out)
    if done is not None:
        return done
    out = Path(config.out)
    start = time.perf_counter()
    env = _make_env(config)
    model = PPO(
        "MultiInputPolicy",  # both observation modes are dicts
        env,
        n_steps=config.n_steps,
        batch_size=config.batch_size,
        seed=config.seed,
        tensorboard_log=str(out / "tb"),
        verbose=0,
        device="cpu",
        **config.ppo_kwargs,
    )
    counter = _episode_counter()
    model.learn(
        config.timesteps, callback=counter, tb_log_name=config.method, progress_bar=progress_bar
    )
    env.close()
    train_seconds = time.perf_counter() - start
    atomic_save_tensors(out / "policy.safetensors", _unaliased(model.policy.state_dict()))
    result = evaluate_on_task(
        model,
        config.task,
        eval_seeds(config.eval_episodes),
        image_size=config.image_size,
        obs_mode=config.obs_mode,
        max_episode_steps=config.max_episode_steps,
    )
    run = RunResult(
        method=config.method,
        task=config.task,
        seed=config.seed,
        env_steps=int(model.num_timesteps),
        demos=0,
        success_rate=result.success_rate,
        wall_seconds=time.perf_counter() - start,
        eval=result.to_dict(),
        extra={
            "config": asdict(config),
            "train_episodes": counter.episodes,
            "train_successes": counter.successes,
            "train_seconds": train_seconds,
        },
    )
    return run.save(out)
