"""Record scripted-expert (or policy) episodes from the benchmark envs into :class:`Episode` s.

Rows follow LeRobot: row ``t`` holds observation ``o_t``, the action ``a_t`` taken from it and
the reward / done / success that followed. One extra final row holds the last observation ``o_T``
(with a hold-still action and ``next.done``), so the state the episode ended in — a finished fold,
a dropped eraser — is in the data: a reward model must see the end of the task.

The recorded action is the expert's own (:attr:`ExpertStep.action`). An expert that perturbs its
execution (the ``"dart"`` preset) steps the env with another action for a few steps; the data then
pair the states the push led to with the expert's corrective action, which is the point.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from sarm2_gym.data.episode import ACTION_KEY, ENV_STATE_KEY, STATE_KEY, Episode, image_key
from sarm2_gym.envs.core.task_env import CAMERAS, CONTROL_HZ

if TYPE_CHECKING:
    import gymnasium as gym

    from sarm2_gym.algos.common.evaluation import Predictor
    from sarm2_gym.envs.core.expert import ScriptedExpert

__all__ = [
    "ENV_STATE_WIDTH",
    "OUTCOMES",
    "PARTIAL_MIN_PROGRESS",
    "classify_outcome",
    "record_episode",
    "record_policy_episode",
]

OUTCOMES: Final[tuple[str, ...]] = ("success", "partial", "failed")
PARTIAL_MIN_PROGRESS: Final[float] = 0.25
"""An unsuccessful episode that ends at or above this privileged progress is ``partial``."""
ENV_STATE_WIDTH: Final[int] = 128
"""Width of the recorded ``observation.environment_state``: each task's privileged state is
zero-padded to it (its true size is ``meta["env_state_dim"]``), so episodes of different tasks
share one feature schema and one multi-task dataset can hold them all."""
GIVE_UP_GRACE_STEPS: Final[int] = 15
"""Steps recorded after the expert gives up, as an operator would watch before stopping."""


def classify_outcome(success: bool, final_progress: float) -> str:
    """``"success"``, ``"partial"`` (ended at >= 25 % progress) or ``"failed"``."""
    if success:
        return "success"
    return "partial" if final_progress >= PARTIAL_MIN_PROGRESS else "failed"


@dataclass
class _Rows:
    images: dict[str, list[np.ndarray]]
    state: list[np.ndarray]
    env_state: list[np.ndarray]
    action: list[np.ndarray]
    reward: list[float]
    done: list[bool]
    success: list[bool]
    act_pri: list[int]
    stage: list[int]
    progress: list[float]

    @classmethod
    def empty(cls, cameras: tuple[str, ...]) -> _Rows:
        return cls({c: [] for c in cameras}, [], [], [], [], [], [], [], [], [])


def record_episode(
    env: gym.Env[Any, Any],
    expert: ScriptedExpert,
    seed: int,
    *,
    env_id: str = "",
    max_steps: int | None = None,
) -> Episode:
    """Roll out ``expert`` in ``env`` from ``reset(seed=seed)`` and return the episode.

    Args:
        env: A benchmark env (``gym.make`` output; ``obs_mode="rgb"`` records images).
        expert: The task's scripted expert (its quality knobs decide the episode's character).
        seed: Reset seed; also seeds the expert's own randomness.
        env_id: Stored in the episode.
        max_steps: Step cap (default: the env's TimeLimit).

    Returns:
        The episode, with ``meta`` holding seed, quality preset and knobs, the expert's strategy
        options, outcome, final progress and whether the expert gave up.
    """
    task = env.unwrapped
    obs, info = env.reset(seed=seed)
    expert.reset(task, seed=seed)  # type: ignore[arg-type]
    cameras = tuple(c for c in CAMERAS if c in obs)
    rows = _Rows.empty(cameras)
    limit = max_steps or (env.spec.max_episode_steps if env.spec else None) or 10_000
    grace = 0
    label = 21
    for _ in range(limit):
        step = expert.act()
        label = step.primitive
        _append_obs(rows, task, obs, info)
        rows.action.append(np.asarray(step.action, dtype=np.float32))
        rows.act_pri.append(label)
        obs, reward, terminated, truncated, info = env.step(step.env_action)
        rows.reward.append(float(reward))
        rows.done.append(bool(terminated or truncated))
        rows.success.append(bool(info["is_success"]))
        grace += int(expert.gave_up)
        if terminated or truncated or grace > GIVE_UP_GRACE_STEPS:
            break
    meta = {
        "quality": expert.quality.name,
        "quality_knobs": expert.quality.to_dict(),
        "expert_options": dict(expert.options),
        "gave_up": bool(expert.gave_up),
    }
    return _episode(rows, task, obs, info, label, seed=seed, env_id=env_id, meta=meta)


def record_policy_episode(
    env: gym.Env[Any, Any],
    predictor: Predictor,
    seed: int,
    *,
    env_id: str = "",
    deterministic: bool = False,
    max_steps: int | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Episode:
    """Roll out a policy in ``env`` from ``reset(seed=seed)`` and return the episode.

    The recorded action is the one the policy sent to the env; ``act_pri`` is the primitive of
    the stage the env reports before each step (a policy names none of its own).

    Args:
        env: A benchmark env with cameras, wrapped as the policy reads it (e.g.
            :func:`~sarm2_gym.algos.vla.policy.wrap_env_for_policy`); extra observation keys
            are not recorded.
        predictor: Anything with SB3's ``predict`` (e.g. a
            :class:`~sarm2_gym.algos.vla.controller.VLAController`); it is told the episode
            starts on its first call.
        seed: Reset seed.
        env_id: Stored in the episode.
        deterministic: Passed to ``predict``.
        max_steps: Step cap (default: the env's TimeLimit).
        meta: JSON-able facts kept in the episode's ``meta`` (e.g. which policy).

    Returns:
        The episode, with ``meta`` holding the seed, outcome, final progress and ``meta``.
    """
    task = env.unwrapped
    obs, info = env.reset(seed=seed)
    cameras = tuple(c for c in CAMERAS if c in obs)
    rows = _Rows.empty(cameras)
    limit = max_steps or (env.spec.max_episode_steps if env.spec else None) or 10_000
    state: Any = None
    start = np.ones(1, dtype=bool)
    label = int(info["primitive"])
    for _ in range(limit):
        label = int(info["primitive"])
        action, state = predictor.predict(obs, state, start, deterministic)
        start = np.zeros(1, dtype=bool)
        action = np.asarray(action, dtype=np.float32)
        _append_obs(rows, task, obs, info)
        rows.action.append(action)
        rows.act_pri.append(label)
        obs, reward, terminated, truncated, info = env.step(action)
        rows.reward.append(float(reward))
        rows.done.append(bool(terminated or truncated))
        rows.success.append(bool(info["is_success"]))
        if terminated or truncated:
            break
    return _episode(rows, task, obs, info, label, seed=seed, env_id=env_id, meta=dict(meta or {}))


def _episode(
    rows: _Rows,
    task: Any,
    obs: dict[str, np.ndarray],
    info: dict[str, Any],
    label: int,
    *,
    seed: int,
    env_id: str,
    meta: dict[str, Any],
) -> Episode:
    """The recorded rows plus a final row, as an :class:`Episode`."""
    # Final row: the observation the episode ended in, with a hold-still action.
    _append_obs(rows, task, obs, info)
    hold = np.zeros(14, dtype=np.float32)
    hold[6::7] = rows.action[-1][6::7]
    rows.action.append(hold)
    rows.act_pri.append(label)
    rows.reward.append(0.0)
    rows.done.append(True)
    rows.success.append(bool(info["is_success"]))

    success = bool(info["is_success"])
    final_progress = float(info["progress"])
    frames: dict[str, np.ndarray] = {
        STATE_KEY: np.stack(rows.state),
        ENV_STATE_KEY: np.stack(rows.env_state),
        ACTION_KEY: np.stack(rows.action),
        "next.reward": np.asarray(rows.reward, dtype=np.float32),
        "next.done": np.asarray(rows.done, dtype=np.bool_),
        "next.success": np.asarray(rows.success, dtype=np.bool_),
        "act_pri": np.asarray(rows.act_pri, dtype=np.int64),
        "stage": np.asarray(rows.stage, dtype=np.int64),
        "progress": np.asarray(rows.progress, dtype=np.float32),
    }
    for cam in rows.images:
        frames[image_key(cam)] = np.stack(rows.images[cam])
    return Episode(
        task=task.instruction,
        env_id=env_id,
        frames=frames,
        success=success,
        fps=CONTROL_HZ,
        meta={
            "seed": int(seed),
            **meta,
            "outcome": classify_outcome(success, final_progress),
            "final_progress": final_progress,
            "env_state_dim": int(task.env_state_dim),
        },
    )


def _append_obs(rows: _Rows, task: Any, obs: dict[str, np.ndarray], info: dict[str, Any]) -> None:
    for cam in rows.images:
        rows.images[cam].append(obs[cam])
    rows.state.append(np.asarray(obs["state"], dtype=np.float32))
    env_state = task.privileged_state()
    if env_state.shape[0] > ENV_STATE_WIDTH:
        raise ValueError(
            f"privileged state of {env_state.shape[0]} values exceeds {ENV_STATE_WIDTH}"
        )
    rows.env_state.append(np.pad(env_state, (0, ENV_STATE_WIDTH - env_state.shape[0])))
    rows.stage.append(int(info["stage"]))
    rows.progress.append(float(info["progress"]))
