"""Filtered BC: a base policy improved by cloning its own successful rollouts, round by round.

The self-improvement baseline that needs no critic: every round rolls the current policy out
(fresh latents per chunk, as a flow-matching VLA is deployed), keeps the episodes the env's sparse
success flag marks successful, and fine-tunes the policy (:class:`~sarm2_gym.algos.vla.BCConfig`
with ``init``) on the demonstrations it was cloned from plus every success kept so far. It uses
the same signal as PPO with the sparse reward and the same rollouts per round as SPIRAL, so it
answers whether SPIRAL's critics add anything over keeping what worked.

``clone_rollouts=False`` is its control: the same fine-tuning rounds on the demonstrations alone
and no rollouts, which separates the rollouts' effect from that of more BC steps.

``collector="lookahead"`` collects the rollouts with
:class:`~sarm2_gym.algos.baselines.lookahead.SimulatedLookahead` instead: each chunk is chosen
among the current policy's candidates by simulating them ahead with the simulator's progress (an
oracle planner), and the successes are cloned. That is expert iteration with a simulator
planner, not SPIRAL: it asks what cloning the choices of a perfect short-horizon critic would do.

Output folder (``out``)::

    round{r}/successes/     LeRobot dataset: the round's successful rollouts (written atomically)
    round{r}/rollouts.json  every rollout of the round: reset seed, success, length, progress
    round{r}/policy/        the round's fine-tuned TinyVLA (a resumable BC run)
    round{r}/eval.json      the round's held-out evaluation (a curve point)
    curve.json              ``{"curve": [...], "wall_seconds": ...}``, as SPIRAL runs write it
    result.json

A killed run resumes: finished rounds are read back, a round's rollouts are collected again
unless ``rollouts.json`` was written, and BC resumes from its last snapshot.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from tqdm.auto import tqdm

from sarm2_gym.algos.baselines.common import (
    RunResult,
    evaluate_vla,
    load_result,
    make_task_env,
    task_instruction,
)
from sarm2_gym.algos.baselines.lookahead import SimulatedLookahead
from sarm2_gym.algos.common.io import atomic_write_json, read_json
from sarm2_gym.algos.vla import BCConfig, TinyVLA, VLAController, train_bc

__all__ = ["FilteredBCRunConfig", "rollout_seed", "run_filtered_bc"]

ROLLOUT_LATENT_SEED: Final[int] = 9_000_000
"""Plus ``seed * 1000 + round``: the latents of a round's rollouts."""
COLLECTORS: Final[tuple[str, ...]] = ("policy", "lookahead")


@dataclass(frozen=True, slots=True, kw_only=True)
class FilteredBCRunConfig:
    """A filtered-BC run (or, with ``clone_rollouts=False``, its BC-continued control).

    Args:
        task: Env id.
        base_policy: TinyVLA checkpoint the first round starts from.
        demos: The dataset the base policy was cloned from (kept in every round's data).
        demo_episodes: Its first this many episodes (``None``: all), as the base policy used.
        out: Output folder.
        rounds: Rounds of rollouts and fine-tuning.
        rollouts_per_round: Episodes rolled out per round.
        clone_rollouts: Collect rollouts and clone the successful ones; ``False``: the control,
            fine-tuning on the demonstrations alone without rollouts.
        finetune_steps: BC steps per round, from the previous round's policy.
        lr: Peak learning rate of each round's fine-tuning.
        warmup_steps: Its warm-up.
        batch_size: Its batch size.
        seed: Run seed (BC seeds, rollout reset seeds and latents derive from it).
        image_size: Camera size of the envs (``None``: the side the policy was cloned from,
            :func:`~sarm2_gym.algos.vla.policy.render_size_for`).
        eval_episodes: Held-out evaluation episodes after every round.
        n_eval_envs: Envs of the evaluation.
        max_episode_steps: Override of the task's time limit (rollouts and evaluation).
        eval_stochastic: Evaluate every round a second time with fresh latents per chunk.
        latent_temperature: Scale of the latents in rollouts and evaluations.
        collector: ``"policy"`` (the current policy, fresh latents) or ``"lookahead"`` (its
            chunks chosen by simulating ``lookahead_candidates`` of them
            ``lookahead_horizon`` steps ahead; simulation only).
        lookahead_horizon: Steps simulated after each candidate chunk.
        lookahead_candidates: Candidate chunks per decision.
    """

    task: str
    base_policy: str
    demos: str
    demo_episodes: int | None
    out: str
    rounds: int = 3
    rollouts_per_round: int = 50
    clone_rollouts: bool = True
    finetune_steps: int = 1500
    lr: float = 3e-4
    warmup_steps: int = 100
    batch_size: int = 64
    seed: int = 0
    image_size: int | None = None
    eval_episodes: int = 50
    n_eval_envs: int = 2
    max_episode_steps: int | None = None
    eval_stochastic: bool = False
    latent_temperature: float = 1.0
    collector: str = "policy"
    lookahead_horizon: int = 50
    lookahead_candidates: int = 4

    def __post_init__(self) -> None:
        for name in ("rounds", "rollouts_per_round", "finetune_steps", "eval_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.collector not in COLLECTORS:
            raise ValueError(f"collector must be one of {COLLECTORS}, got {self.collector!r}")
        if self.collector == "lookahead" and not self.clone_rollouts:
            raise ValueError(
                "collector 'lookahead' collects rollouts to clone: it needs clone_rollouts=True "
                "(the control, clone_rollouts=False, collects none)"
            )

    @property
    def method(self) -> str:
        """``"filtered_bc"``, ``"lookahead_bc"``, or ``"bc_continued"`` for the control."""
        if not self.clone_rollouts:
            return "bc_continued"
        return "lookahead_bc" if self.collector == "lookahead" else "filtered_bc"


def rollout_seed(run_seed: int, round_index: int, episode: int) -> int:
    """Reset seed of a rollout (the scheme SPIRAL's rounds use; disjoint from the held-out)."""
    return run_seed * 100_000 + 1_000 * round_index + episode


def _collect(config: FilteredBCRunConfig, policy: TinyVLA, round_index: int, folder: Path) -> None:
    """Roll out ``policy``; write the successes as a dataset, then every rollout's summary."""
    from sarm2_gym.data.recording import record_policy_episode
    from sarm2_gym.data.writer import LeRobotDatasetWriter
    from sarm2_gym.envs.core.task_env import CONTROL_HZ

    staging = folder / "successes.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(folder / "successes", ignore_errors=True)
    instruction = task_instruction(config.task, policy)
    latent_seed = ROLLOUT_LATENT_SEED + config.seed * 1000 + round_index
    planner: SimulatedLookahead | None = None
    if config.collector == "lookahead":
        planner = SimulatedLookahead(
            policy,
            instruction,
            config.task,
            horizon=config.lookahead_horizon,
            candidates=config.lookahead_candidates,
            seed=latent_seed,
            temperature=config.latent_temperature,
            image_size=config.image_size,
            max_episode_steps=config.max_episode_steps,
        )
    controller = VLAController(
        policy, instruction, seed=latent_seed, temperature=config.latent_temperature
    )
    env = make_task_env(
        config.task, policy, config.image_size, max_episode_steps=config.max_episode_steps
    )
    summaries: list[dict[str, Any]] = []
    writer: LeRobotDatasetWriter | None = None
    try:
        for i in tqdm(range(config.rollouts_per_round), desc=f"round {round_index} rollouts"):
            seed = rollout_seed(config.seed, round_index, i)
            simulated = 0
            if planner is not None:
                planner.start(seed)
                simulated = planner.simulated_steps
            episode = record_policy_episode(
                env,
                planner or controller,
                seed,
                env_id=config.task,
                meta={"round": round_index, "collector": config.collector},
            )
            summaries.append(
                {
                    "seed": seed,
                    "success": episode.success,
                    "length": episode.length - 1,  # env steps (the final row is no step)
                    "final_progress": episode.meta["final_progress"],
                    **(
                        {"simulated_steps": planner.simulated_steps - simulated}
                        if planner is not None
                        else {}
                    ),
                }
            )
            if episode.success:
                if writer is None:
                    writer = LeRobotDatasetWriter(staging, fps=CONTROL_HZ)
                writer.add_episode(episode)
    finally:
        env.close()
        if planner is not None:
            planner.close()
        if writer is not None:
            writer.close()
    if writer is not None:
        staging.rename(folder / "successes")
    atomic_write_json(folder / "rollouts.json", summaries)


def _round_policy(config: FilteredBCRunConfig, round_index: int, init: str) -> str:
    """Fine-tune ``init`` on the demonstrations and every success kept up to this round."""
    root = Path(config.out)
    out = root / f"round{round_index}" / "policy"
    if (out / "bc_summary.json").is_file():  # written last: the round's policy is finished
        return str(out)
    kept = (
        [
            str(root / f"round{r}" / "successes")
            for r in range(1, round_index + 1)
            if (root / f"round{r}" / "successes").is_dir()
        ]
        if config.clone_rollouts
        else []
    )
    bc = BCConfig(
        data=(config.demos,),
        extra_data=tuple(kept),
        max_episodes=config.demo_episodes,
        init=init,
        out=str(out),
        steps=config.finetune_steps,
        lr=config.lr,
        warmup_steps=config.warmup_steps,
        batch_size=config.batch_size,
        seed=config.seed + 1000 * round_index,
    )
    return str(train_bc(bc, resume=True, progress_bar=True))


def _evaluate(config: FilteredBCRunConfig, policy_dir: str) -> dict[str, Any]:
    """The round's policy on the held-out seeds, as a curve point."""
    start = time.perf_counter()
    fixed, fresh = evaluate_vla(
        TinyVLA.from_pretrained(policy_dir), config.task, config.seed,
        eval_episodes=config.eval_episodes, image_size=config.image_size,
        n_envs=config.n_eval_envs, max_episode_steps=config.max_episode_steps,
        fresh_latents=config.eval_stochastic, latent_temperature=config.latent_temperature,
    )  # fmt: skip
    point: dict[str, Any] = {"success_rate": fixed.success_rate, "eval": fixed.to_dict()}
    if fresh is not None:
        point["success_rate_stochastic"] = fresh.success_rate
        point["eval_stochastic"] = fresh.to_dict()  # per episode, as BC's result keeps it
    point["eval_seconds"] = time.perf_counter() - start
    return point


def run_filtered_bc(config: FilteredBCRunConfig) -> RunResult:
    """Run (or resume) the rounds and evaluate every round's policy on the held-out seeds.

    Returns:
        The run's result; ``curve`` holds one point per round (rollouts, env steps and rollout
        successes so far, as SPIRAL's curve counts them; success on the held-out seeds;
        wall-clock so far).
    """
    done = load_result(config.out)
    if done is not None:
        return done
    root = Path(config.out)
    root.mkdir(parents=True, exist_ok=True)
    wall_file = root / "wall.json"
    wall_before = float(read_json(wall_file, "wall-clock")["seconds"]) if wall_file.is_file() else 0
    start = time.perf_counter()
    policy_dir = config.base_policy
    curve: list[dict[str, Any]] = []
    env_steps = rollouts = successes = simulated_steps = 0
    for r in range(1, config.rounds + 1):
        folder = root / f"round{r}"
        folder.mkdir(exist_ok=True)
        if config.clone_rollouts:
            if not (folder / "rollouts.json").is_file():
                _collect(config, TinyVLA.from_pretrained(policy_dir), r, folder)
            summary = read_json(folder / "rollouts.json", "rollout summary")
            env_steps += sum(int(s["length"]) for s in summary)
            rollouts += len(summary)
            successes += sum(bool(s["success"]) for s in summary)
            simulated_steps += sum(int(s.get("simulated_steps", 0)) for s in summary)
        policy_dir = _round_policy(config, r, policy_dir)
        if not (folder / "eval.json").is_file():
            point = _evaluate(config, policy_dir)
            point["wall_seconds"] = wall_before + time.perf_counter() - start
            atomic_write_json(folder / "eval.json", point)
            atomic_write_json(wall_file, {"seconds": point["wall_seconds"]})
        point = read_json(folder / "eval.json", "round evaluation")
        curve.append(
            {
                "round": r,
                "env_steps": env_steps,
                "rollouts": rollouts,
                "rollout_successes": successes,
                **({"simulated_steps": simulated_steps} if config.collector == "lookahead" else {}),
                **{k: v for k, v in point.items() if k not in ("eval", "eval_stochastic")},
            }
        )
        atomic_write_json(
            root / "curve.json", {"curve": curve, "wall_seconds": point["wall_seconds"]}
        )
    last = read_json(root / f"round{config.rounds}" / "eval.json", "round evaluation")
    episodes = int(read_json(Path(policy_dir) / "bc_summary.json", "BC summary")["episodes"])
    run = RunResult(
        method=config.method,
        task=config.task,
        seed=config.seed,
        env_steps=env_steps,
        demos=episodes - successes,  # every success was kept (0 for the control)
        success_rate=float(last["success_rate"]),
        wall_seconds=wall_before + time.perf_counter() - start,
        curve=curve,
        eval=last["eval"],
        extra={
            "filtered_bc": _config_record(config),
            "kept_successes": successes,
            # the final policy's fresh-latent episodes (rounds evaluated before they were kept
            # have only the rate, on the curve)
            **({"stochastic_eval": last["eval_stochastic"]} if "eval_stochastic" in last else {}),
        },
    )
    return run.save(config.out)


def _config_record(config: FilteredBCRunConfig) -> dict[str, Any]:
    """Every field of the run's config, the planner's only for the lookahead collector."""
    record = asdict(config)
    if config.collector != "lookahead":
        del record["lookahead_horizon"], record["lookahead_candidates"]
    return record
