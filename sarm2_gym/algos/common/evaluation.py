"""Success rate of any SB3-style predictor on fixed, held-out reset seeds.

Every episode starts from ``env.reset(seed=s)`` for a seed from the given list, so two methods
evaluated on the same seeds face the same initial scenes. Several envs run side by side and the
predictor sees their observations as one batch (one policy forward per control step); the
``state`` returned by ``predict`` (recurrent state, or a chunk queue) is kept per env. With
``videos`` every episode is also written as a video, to see how the failures fail.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, NamedTuple, Protocol

import gymnasium as gym
import numpy as np

from sarm2_gym.envs.spaces import image_entries

__all__ = [
    "VIDEO_EPISODES",
    "EvalResult",
    "Predictor",
    "StageTally",
    "evaluate_success",
    "tally_stages",
]


class Predictor(Protocol):
    """The SB3 ``predict`` signature (``BaseAlgorithm``, ``BasePolicy``, chunk controllers)."""

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """Actions for a batch of observations, and the next state."""
        ...


@dataclass(frozen=True)
class EvalResult:
    """Outcome of :func:`evaluate_success`.

    Attributes:
        success_rate: Fraction of episodes that ended in task success.
        seeds: Reset seed of each episode.
        successes: Per-episode success.
        lengths: Per-episode control steps.
        final_progress: Per-episode privileged progress at the end (``nan`` if not reported).
        final_stage: Per-episode stage index at the end (``info["stage"]``; -1 if not
            reported). Unlike a stage read back from progress, it says e.g. that a wiping
            stage was finished even when little progress was made in the next one.
        furthest_stage: Per-episode highest stage index reported during the episode (-1 if
            not reported). Stage machines go back when a finished stage comes undone (a fold
            that slid open, an eraser let go early), so an episode can end in its first stage
            after getting much further.
        env_steps: Control steps taken in total.
        wall_seconds: Wall-clock time of the evaluation.
    """

    success_rate: float
    seeds: list[int]
    successes: list[bool]
    lengths: list[int]
    final_progress: list[float]
    env_steps: int
    wall_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)
    final_stage: list[int] = field(default_factory=list)
    furthest_stage: list[int] = field(default_factory=list)

    @property
    def steps_per_second(self) -> float:
        """Control steps per wall-clock second (policy included)."""
        return self.env_steps / max(self.wall_seconds, 1e-9)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {**asdict(self), "steps_per_second": self.steps_per_second}

    def stage_tally(self, n_stages: int) -> StageTally:
        """Where these episodes ended (:func:`tally_stages` of this evaluation)."""
        return tally_stages(self.successes, self.final_stage, self.furthest_stage, n_stages)


class StageTally(NamedTuple):
    """Where a set of episodes ended (see :func:`tally_stages`)."""

    ended: list[int]  # failures ending in each stage, then the successes (n_stages + 1)
    furthest: list[int]  # failures whose furthest stage was each stage (n_stages)


def tally_stages(
    successes: Sequence[bool],
    final_stage: Sequence[int],
    furthest_stage: Sequence[int] | None,
    n_stages: int,
) -> StageTally:
    """Count episodes by the stage they ended in, and failures by the furthest stage reached.

    Episodes whose env reported no stage (-1) are not counted in that tally; a stage index past
    the last counts as the last.

    Args:
        successes: Per-episode success.
        final_stage: Per-episode stage at the end (:attr:`EvalResult.final_stage`).
        furthest_stage: Per-episode furthest stage (:attr:`EvalResult.furthest_stage`), or
            ``None`` where the evaluation did not record it (the tally is then all zeros).
        n_stages: Stages of the task.

    Raises:
        ValueError: If the lists differ in length or ``n_stages`` is below 1.
    """
    furthest_stage = [-1] * len(successes) if furthest_stage is None else furthest_stage
    if not len(successes) == len(final_stage) == len(furthest_stage):
        raise ValueError(
            f"per-episode lists differ in length: {len(successes)} successes, "
            f"{len(final_stage)} final stages, {len(furthest_stage)} furthest stages"
        )
    if n_stages < 1:
        raise ValueError(f"n_stages must be at least 1, got {n_stages}")
    ended = [0] * (n_stages + 1)
    furthest = [0] * n_stages
    for ok, stage, far in zip(successes, final_stage, furthest_stage, strict=True):
        if ok:
            ended[-1] += 1
            continue
        if stage >= 0:
            ended[min(int(stage), n_stages - 1)] += 1
        if far >= 0:
            furthest[min(int(far), n_stages - 1)] += 1
    return StageTally(ended, furthest)


class _Episode(NamedTuple):
    """How one evaluation episode ended."""

    success: bool
    length: int
    progress: float  # privileged progress at the last step (NaN if the env reports none)
    stage: int  # stage index at the last step (-1 if the env reports none)
    furthest: int  # highest stage index of the episode (-1 if the env reports none)


def _slice_state(state: Any, index: np.ndarray) -> Any:
    if state is None:
        return None
    return tuple(np.asarray(s)[index] for s in state)


def _merge_state(old: Any, new: Any, index: np.ndarray, n: int) -> Any:
    if new is None:
        return None
    if old is None:
        old = tuple(np.zeros((n, *np.asarray(s).shape[1:]), dtype=np.asarray(s).dtype) for s in new)
    merged = []
    for o, s in zip(old, new, strict=True):
        o = np.array(o)
        o[index] = s
        merged.append(o)
    return tuple(merged)


VIDEO_EPISODES: Final[tuple[str, ...]] = ("all", "failures", "successes")


@dataclass(frozen=True, slots=True)
class _ClipStep:
    """What one video frame shows; composed only for an episode whose video is written."""

    images: tuple[np.ndarray, ...]
    progress: float
    primitive: int | None


def _clip_step(
    observation: Mapping[str, np.ndarray], info: Mapping[str, Any], cameras: tuple[str, ...]
) -> _ClipStep:
    images = tuple(np.array(observation[c], copy=True) for c in cameras)
    primitive = info.get("primitive")
    return _ClipStep(
        images,
        float(info.get("progress", math.nan)),
        None if primitive is None else int(primitive),
    )


def _video_frame(step: _ClipStep) -> np.ndarray:
    """The cameras side by side over a bar of the env's progress and primitive."""
    from sarm2_gym.common.video import compose_frame

    if not math.isfinite(step.progress):
        return compose_frame(list(step.images))
    return compose_frame(
        list(step.images),
        progress=[step.progress],
        primitives=[] if step.primitive is None else [step.primitive],
        labels=["progress"],
    )


def _write_clip(
    steps: list[_ClipStep], directory: Path, seed: int, success: bool, env: gym.Env[Any, Any]
) -> None:
    from sarm2_gym.common.video import write_video

    fps = int(env.metadata.get("render_fps") or 10)
    outcome = "success" if success else "failure"
    write_video([_video_frame(s) for s in steps], directory / f"{seed}_{outcome}.mp4", fps=fps)


def evaluate_success(
    predictor: Predictor,
    make_env: Callable[[], gym.Env[Any, Any]],
    seeds: Sequence[int],
    *,
    n_envs: int = 1,
    deterministic: bool = True,
    videos: str | Path | None = None,
    video_episodes: str = "all",
) -> EvalResult:
    """Run one episode per seed and report the success rate.

    Args:
        predictor: Anything with SB3's ``predict``.
        make_env: Builds one env (with its TimeLimit, e.g. ``lambda: gym.make(task, ...)``).
        seeds: One episode per seed.
        n_envs: Envs stepped side by side (batched policy calls).
        deterministic: Passed to ``predict``.
        videos: Write every episode here as ``<seed>_<success|failure>.mp4``: its camera
            observations side by side over a bar of the env's privileged progress, coloured and
            captioned by the current stage's primitive (for envs that report them).
        video_episodes: Which episodes get a video: ``"all"``, ``"failures"`` or
            ``"successes"`` (the others cost a copy of their frames, not a video).

    Raises:
        ValueError: For no or repeated seeds, an unknown ``video_episodes``, or ``videos`` with
            observations without cameras.
    """
    if not seeds:
        raise ValueError("need at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError("seeds must be distinct (one episode per seed)")
    if video_episodes not in VIDEO_EPISODES:
        raise ValueError(f"video_episodes must be one of {VIDEO_EPISODES}, got {video_episodes!r}")
    start = time.perf_counter()
    envs = [make_env() for _ in range(min(n_envs, len(seeds)))]
    video_dir = None if videos is None else Path(videos)
    cameras = image_entries(envs[0].observation_space)
    clips: list[list[_ClipStep]] = [[] for _ in envs]
    pending = list(seeds)[::-1]
    slot_seed: list[int | None] = [None] * len(envs)
    obs: list[dict[str, np.ndarray] | None] = [None] * len(envs)
    lengths = [0] * len(envs)
    furthest = [-1] * len(envs)
    starts = np.ones(len(envs), dtype=bool)
    state: Any = None
    results: dict[int, _Episode] = {}
    env_steps = 0

    def start_next(i: int) -> None:
        """Reset env ``i`` to the next pending seed (its slot goes idle when none is left)."""
        slot_seed[i] = pending.pop() if pending else None
        if slot_seed[i] is None:
            return
        first, reset_info = envs[i].reset(seed=slot_seed[i])
        obs[i] = first
        if video_dir is not None:
            clips[i] = [_clip_step(first, reset_info, cameras)]

    try:  # the envs are closed however this ends, a refused request included
        if video_dir is not None and not cameras:
            raise ValueError(
                f"videos need camera observations; the env gives {envs[0].observation_space}"
            )
        for i in range(len(envs)):
            start_next(i)
        while True:
            active = np.array([s is not None for s in slot_seed])
            if not active.any():
                break
            idx = np.flatnonzero(active)
            current = [obs[i] for i in idx]
            batch = {
                k: np.stack([o[k] for o in current if o is not None]) for k in current[0] or {}
            }
            actions, new_state = predictor.predict(
                batch,
                state=_slice_state(state, idx),
                episode_start=starts[idx],
                deterministic=deterministic,
            )
            state = _merge_state(state, new_state, idx, len(envs))
            starts[idx] = False
            for j, i in enumerate(idx):
                o, _, terminated, truncated, info = envs[i].step(np.asarray(actions[j]))
                lengths[i] += 1
                env_steps += 1
                obs[i] = o
                stage = int(info.get("stage", -1))
                furthest[i] = max(furthest[i], stage)
                if video_dir is not None:
                    clips[i].append(_clip_step(o, info, cameras))
                if terminated or truncated:
                    seed = slot_seed[i]
                    assert seed is not None
                    progress = float(info.get("progress", float("nan")))
                    results[seed] = _Episode(
                        success=bool(info.get("is_success", False)),
                        length=lengths[i],
                        progress=progress,
                        stage=stage,
                        furthest=furthest[i],
                    )
                    ok = results[seed].success
                    wanted = video_episodes == "all" or (video_episodes == "successes") == ok
                    if video_dir is not None and wanted:
                        _write_clip(clips[i], video_dir, seed, ok, envs[i])
                    clips[i] = []
                    lengths[i] = 0
                    furthest[i] = -1
                    starts[i] = True
                    start_next(i)
    finally:
        for env in envs:
            env.close()
    ordered = [results[s] for s in seeds]
    successes = [r.success for r in ordered]
    return EvalResult(
        success_rate=float(np.mean(successes)),
        seeds=[int(s) for s in seeds],
        successes=successes,
        lengths=[r.length for r in ordered],
        final_progress=[r.progress for r in ordered],
        env_steps=env_steps,
        wall_seconds=time.perf_counter() - start,
        final_stage=[r.stage for r in ordered],
        furthest_stage=[r.furthest for r in ordered],
    )
