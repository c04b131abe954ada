"""Generating datasets from the benchmark's scripted experts: ``collect`` and ``make-benchmark``.

Episodes are produced by a pool of worker processes (one env per task per worker) and written by
the parent in a fixed order, so a run is reproducible whatever the number of workers. Every
writer call is atomic per episode; a rerun reads what is on disk and continues with the seeds
not yet used, which is how an interrupted run resumes.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from tqdm.auto import tqdm

from sarm2_gym.data.episode import Episode, image_key
from sarm2_gym.data.recording import OUTCOMES, record_episode
from sarm2_gym.data.writer import LeRobotDatasetWriter
from sarm2_gym.envs.core.expert import MIXED_WEIGHTS, ScriptedExpert
from sarm2_gym.envs.core.task_env import CONTROL_HZ
from sarm2_gym.envs.registry import TASKS, expert_for, implemented_tasks, task_by_id

__all__ = [
    "DEMO_KINDS",
    "BenchmarkSizes",
    "Job",
    "collect",
    "make_benchmark",
    "resolve_tasks",
]

# Seed ranges keep the splits disjoint: a held-out episode never shares a scene with training.
SPLIT_SEED_BASE: Final[dict[str, int]] = {
    "train": 0,
    "heldout_demos": 1_000_000,
    "heldout_rollouts": 2_000_000,
}
# Kinds of demonstrations a policy is behaviour-cloned from: name -> (quality preset, expert
# options). The ``sweep`` kinds exist for CleanWhiteboard only (its expert's ``wipe`` option);
# the ``_miss`` ones add missed grasps that the expert retries (the ``grasp_miss`` preset), the
# ``_lifted`` one lanes executed off the board so that ink is left and chased (``lanes=lifted``),
# the ``_high`` one the eraser carried back high and lowered onto its tray (``carry=high``), the
# ``_full`` one every lane wiped to its end even once the board is clean (``finish=sweep``);
# ``_full_high`` combines the last two; ``_full_survey`` is ``_full`` with the first grasp
# approached from above the tray's mean place (``approach=survey``), and ``_full_survey_carry``
# stops there on the way back as well (``carry=survey``).
DEMO_KINDS: Final[Mapping[str, tuple[str, Mapping[str, str]]]] = MappingProxyType(
    {
        "expert": ("expert", MappingProxyType({})),
        "dart": ("dart", MappingProxyType({})),
        "miss": ("grasp_miss", MappingProxyType({})),
        "sweep": ("expert", MappingProxyType({"wipe": "sweep"})),
        "dart_sweep": ("dart", MappingProxyType({"wipe": "sweep"})),
        "sweep_miss": ("grasp_miss", MappingProxyType({"wipe": "sweep"})),
        "dense_sweep": ("expert", MappingProxyType({"wipe": "dense_sweep"})),
        "dense_sweep_miss": ("grasp_miss", MappingProxyType({"wipe": "dense_sweep"})),
        "dense_sweep_lifted": (
            "expert",
            MappingProxyType({"wipe": "dense_sweep", "lanes": "lifted"}),
        ),
        "dense_sweep_full": (
            "expert",
            MappingProxyType({"wipe": "dense_sweep", "finish": "sweep"}),
        ),
        "dense_sweep_high": (
            "expert",
            MappingProxyType({"wipe": "dense_sweep", "carry": "high"}),
        ),
        "dense_sweep_full_high": (
            "expert",
            MappingProxyType({"wipe": "dense_sweep", "finish": "sweep", "carry": "high"}),
        ),
        "dense_sweep_full_survey": (
            "expert",
            MappingProxyType({"wipe": "dense_sweep", "finish": "sweep", "approach": "survey"}),
        ),
        "dense_sweep_full_survey_carry": (
            "expert",
            MappingProxyType(
                {"wipe": "dense_sweep", "finish": "sweep", "approach": "survey", "carry": "survey"}
            ),
        ),
    }
)
# Degraded experts that still finish: the "successful rollouts" of the held-out rollout split.
_SUCCESS_PRESETS: Final[tuple[str, ...]] = ("slow", "clumsy", "mistake")
_OUTCOME_PRESET: Final[dict[str, tuple[str, ...]]] = {
    "success": _SUCCESS_PRESETS,
    "partial": ("partial",),
    "failed": ("failed",),
}


@dataclass(frozen=True, slots=True)
class Job:
    """One episode to record."""

    env_id: str
    seed: int
    quality: str
    image_size: int = 96
    expert_options: tuple[tuple[str, str], ...] = ()  # (name, value) pairs


def resolve_tasks(task: str) -> list[str]:
    """``"all"`` -> every implemented task id in the paper's order, else the one task's id."""
    if task == "all":
        return [t.env_id for t in implemented_tasks()]
    return [task_by_id(task).env_id]


# ---------------------------------------------------------------------------- workers
_ENVS: dict[tuple[str, int], Any] = {}


def _run_job(job: Job) -> Episode:
    import gymnasium as gym

    import sarm2_gym  # noqa: F401  (registers the envs, picks the GL backend)

    key = (job.env_id, job.image_size)
    if key not in _ENVS:
        _ENVS[key] = gym.make(job.env_id, obs_mode="rgb", image_size=job.image_size)
    expert = expert_for(job.env_id, job.quality, dict(job.expert_options))
    return record_episode(_ENVS[key], expert, job.seed, env_id=job.env_id)


def _episodes(
    jobs: Sequence[Job], num_workers: int, ray_address: str | None = None
) -> Iterator[Episode]:
    """Record ``jobs`` in order.

    On Ray actors when ``ray_address`` is given, otherwise in ``num_workers`` local processes (in
    this one for 1).
    """
    if ray_address is not None:
        from sarm2_gym.common.ray_pool import ray_map

        yield from ray_map(_run_job, jobs, max(num_workers, 1), ray_address)
        return
    if num_workers <= 1:
        for job in jobs:
            yield _run_job(job)
        return
    # forkserver: MuJoCo GL contexts and torch threads do not survive a plain fork.
    ctx = mp.get_context("forkserver")
    with ctx.Pool(num_workers, maxtasksperchild=200) as pool:
        yield from pool.imap(_run_job, jobs, chunksize=1)


def _task_index(env_id: str) -> int:
    return next(i for i, t in enumerate(TASKS) if t.env_id == env_id)


def _open_writer(root: Path, image_size: int) -> LeRobotDatasetWriter:
    writer = LeRobotDatasetWriter(root, fps=CONTROL_HZ)
    # A resumed dataset must get frames like the ones it holds; say so before any work is done.
    stored = writer.features.get(image_key("top"), {}).get("shape")
    if stored is not None and list(stored)[:2] != [image_size, image_size]:
        writer.close()
        raise ValueError(
            f"{root} holds a different dataset: observation.images.top has shape {list(stored)}, "
            f"but --image-size {image_size} was asked for"
        )
    return writer


def _done_seeds(writer: LeRobotDatasetWriter) -> dict[str, set[int]]:
    done: dict[str, set[int]] = {}
    for meta in writer.episodes_meta:
        done.setdefault(str(meta["env_id"]), set()).add(int(meta["seed"]))
    return done


def _check_expert_options(
    writer: LeRobotDatasetWriter, root: Path, experts: Mapping[str, ScriptedExpert]
) -> None:
    """Refuse to add episodes recorded with other expert options than ``experts`` use.

    Episodes recorded before the options were stored count as recorded with the defaults, and so
    do the options an expert gained after an episode was recorded.
    """
    for meta in writer.episodes_meta:
        env_id = str(meta["env_id"])
        if env_id not in experts:
            continue
        want = experts[env_id].options
        stored = (meta.get("meta") or {}).get("expert_options")
        stored = type(experts[env_id]).resolve_options(dict(stored or {}))
        if stored != want:
            raise ValueError(
                f"{root} holds {env_id} episodes recorded with expert options {stored}, "
                f"but {want} were asked for (--expert-option): record them into another folder"
            )


def _check_quality(writer: LeRobotDatasetWriter, root: Path, quality: str) -> None:
    """Refuse to add ``quality`` episodes to a dataset recorded with another preset.

    ``"mixed"`` records the preset drawn for each episode, so any of its presets is accepted.
    """
    allowed = set(MIXED_WEIGHTS) if quality == "mixed" else {quality}
    for meta in writer.episodes_meta:
        stored = meta.get("quality")
        if stored is not None and stored not in allowed:
            raise ValueError(
                f"{root} holds {meta['env_id']} episodes of expert quality {stored!r}, "
                f"but --quality {quality} was asked for: record them into another folder"
            )


# ---------------------------------------------------------------------------- collect
def collect(
    tasks: Sequence[str],
    episodes_per_task: int,
    out: str | Path,
    *,
    quality: str = "mixed",
    seed: int = 0,
    image_size: int = 96,
    num_workers: int = 1,
    progress: bool = True,
    ray_address: str | None = None,
    expert_options: Mapping[str, str] | None = None,
) -> Path:
    """Record ``episodes_per_task`` expert episodes of each task into one dataset at ``out``.

    Episode ``i`` of a task uses reset seed ``seed + i``; the dataset's ``task_index`` is the
    task's position in the paper's order. Rerunning with the same arguments finishes an
    interrupted run; asking for more episodes appends them.

    Args:
        tasks: Task ids.
        episodes_per_task: Episodes of each task the dataset should hold.
        out: Dataset folder (created, or resumed).
        quality: Expert quality preset (``"mixed"``: drawn per episode).
        seed: Reset seed of episode 0.
        image_size: Side of the recorded camera frames.
        num_workers: Recording processes (1: this one).
        progress: Show a progress bar.
        ray_address: Record on Ray actors at this address instead.
        expert_options: Strategy options for the experts (e.g. ``{"wipe": "sweep"}``); every
            task's expert must have them.

    Raises:
        ValueError: Unknown task, quality preset or expert option, or ``out`` holding a
            different dataset (other image size, quality preset or expert options).
    """
    options = dict(expert_options or {})
    # One expert per task checks task, quality and options before any work is done.
    experts = {env_id: expert_for(env_id, quality, options) for env_id in tasks}
    pairs = tuple(sorted(options.items()))
    root = Path(out)
    with _open_writer(root, image_size) as writer:
        _check_quality(writer, root, quality)
        _check_expert_options(writer, root, experts)
        done = _done_seeds(writer)
        jobs = [
            Job(env_id, seed + i, quality, image_size, pairs)
            for env_id in tasks
            for i in range(episodes_per_task)
            if seed + i not in done.get(env_id, set())
        ]
        bar = tqdm(total=len(jobs), desc=f"collect -> {root}", unit="ep", disable=not progress)
        for episode in _episodes(jobs, num_workers, ray_address):
            writer.add_episode(episode, task_index=_task_index(episode.env_id))
            bar.update(1)
            bar.set_postfix(task=episode.env_id.removeprefix("SARM2-"), ok=episode.success)
        bar.close()
    return root


# ---------------------------------------------------------------------------- benchmark
@dataclass(frozen=True, slots=True)
class BenchmarkSizes:
    """Episodes per task in each split of the standard benchmark data.

    Args:
        train: Mixed-quality training episodes.
        heldout_demos: Expert demonstrations on unseen seeds.
        rollouts_per_outcome: Held-out rollouts per outcome (success / partial / failed).
    """

    train: int = 60
    heldout_demos: int = 10
    rollouts_per_outcome: int = 12

    def __post_init__(self) -> None:
        if min(self.train, self.heldout_demos, self.rollouts_per_outcome) < 0:
            raise ValueError(f"split sizes must be non-negative, got {self}")


@dataclass
class _Quota:
    """Outcome quotas of one task in the rollout split."""

    want: int
    have: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    next_seed: int = 0

    def missing(self) -> dict[str, int]:
        return {o: self.want - n for o, n in self.have.items() if n < self.want}


def make_benchmark(
    out: str | Path,
    *,
    tasks: Sequence[str] | None = None,
    sizes: BenchmarkSizes | None = None,
    image_size: int = 96,
    num_workers: int = 2,
    progress: bool = True,
    max_rounds: int = 25,
    ray_address: str | None = None,
) -> dict[str, Path]:
    """Build the standard benchmark data under ``out``: three multi-task datasets.

    * ``train/``: per task ``sizes.train`` episodes of mixed quality;
    * ``heldout_demos/``: per task ``sizes.heldout_demos`` expert episodes on other seeds;
    * ``heldout_rollouts/``: per task ``sizes.rollouts_per_outcome`` successful, partial and
      failed episodes from degraded experts (outcome from privileged progress).

    Resumable: rerunning continues where an interrupted run stopped. With ``ray_address`` the
    episodes are recorded on Ray actors (``"local"`` starts a local cluster).

    Returns:
        Split name -> dataset directory.
    """
    sizes = sizes or BenchmarkSizes()
    env_ids = list(tasks) if tasks else [t.env_id for t in implemented_tasks()]
    root = Path(out)
    paths = {split: root / split for split in SPLIT_SEED_BASE}
    total = len(env_ids) * (sizes.train + sizes.heldout_demos + 3 * sizes.rollouts_per_outcome)
    bar = tqdm(total=total, desc=f"benchmark -> {root}", unit="ep", disable=not progress)

    def fixed_split(split: str, per_task: int, quality: str) -> None:
        with _open_writer(paths[split], image_size) as writer:
            done = _done_seeds(writer)
            bar.update(sum(min(len(done.get(e, ())), per_task) for e in env_ids))
            base = SPLIT_SEED_BASE[split]
            jobs = [
                Job(e, base + i, quality, image_size)
                for e in env_ids
                for i in range(per_task)
                if base + i not in done.get(e, set())
            ]
            for episode in _episodes(jobs, num_workers, ray_address):
                writer.add_episode(episode, task_index=_task_index(episode.env_id))
                bar.update(1)

    fixed_split("train", sizes.train, "mixed")
    fixed_split("heldout_demos", sizes.heldout_demos, "expert")
    _rollout_split(
        paths["heldout_rollouts"],
        env_ids,
        sizes,
        image_size,
        num_workers,
        bar.update,
        max_rounds,
        ray_address,
    )
    bar.close()
    return paths


def _rollout_split(
    path: Path,
    env_ids: Sequence[str],
    sizes: BenchmarkSizes,
    image_size: int,
    num_workers: int,
    tick: Callable[[int], Any],
    max_rounds: int,
    ray_address: str | None,
) -> None:
    base = SPLIT_SEED_BASE["heldout_rollouts"]
    with _open_writer(path, image_size) as writer:
        quotas = {e: _Quota(sizes.rollouts_per_outcome, next_seed=base) for e in env_ids}
        for meta in writer.episodes_meta:
            q = quotas.get(str(meta["env_id"]))
            if q is None:
                continue
            q.have[meta["meta"]["outcome"]] += 1
            q.next_seed = max(q.next_seed, int(meta["seed"]) + 1)
        tick(sum(min(n, q.want) for q in quotas.values() for n in q.have.values()))
        for _ in range(max_rounds):
            jobs: list[Job] = []
            for e, q in quotas.items():
                for outcome, n in q.missing().items():
                    presets = _OUTCOME_PRESET[outcome]
                    for k in range(n):
                        jobs.append(Job(e, q.next_seed, presets[k % len(presets)], image_size))
                        q.next_seed += 1
            if not jobs:
                return
            for episode in _episodes(jobs, num_workers, ray_address):
                q = quotas[episode.env_id]
                outcome = episode.meta["outcome"]
                if q.have[outcome] < q.want:  # keep any outcome whose quota is still open
                    writer.add_episode(episode, task_index=_task_index(episode.env_id))
                    q.have[outcome] += 1
                    tick(1)
        short = {e: q.missing() for e, q in quotas.items() if q.missing()}
        raise RuntimeError(f"could not fill the rollout quotas after {max_rounds} rounds: {short}")
