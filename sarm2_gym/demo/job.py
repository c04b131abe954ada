"""The demo job.

1. Roll out the scripted expert and a deliberately clumsy policy (slower, noisy, with mistakes it
   recovers from) on the task, recording the three cameras.
2. Score every frame with the SARM2 model and compare its progress and primitive predictions
   with the simulator's privileged progress and the expert's primitive labels.
3. Run one short SPIRAL round from a small base policy: rollouts -> SARM2 labels -> residual
   actor-critic updates, and measure success before and after on the same held-out seeds.
4. Write ``report.html`` (videos with live progress bars, progress plots with primitive bands,
   a table of the numbers) into the output folder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from scipy.stats import spearmanr
from tqdm.auto import tqdm

from sarm2_gym.common.plots import plot_progress
from sarm2_gym.common.report import HtmlReport
from sarm2_gym.common.video import compose_frame, write_video
from sarm2_gym.data.episode import Episode, image_key
from sarm2_gym.data.recording import record_episode
from sarm2_gym.envs.core.expert import ExpertQuality
from sarm2_gym.envs.core.task_env import CAMERAS
from sarm2_gym.envs.registry import expert_for, task_by_id
from sarm2_gym.reward.model import SARM2RewardModel
from sarm2_gym.wrappers.factory import load_reward_model

__all__ = ["CLUMSY", "PACKAGED_POLICY_DIR", "DemoConfig", "run_demo"]

PACKAGED_POLICY_DIR = Path(__file__).resolve().parent.parent / "pretrained" / "tinyvla_fold_shorts"
"""The small TinyVLA base policy shipped for the demo (trained on FoldShorts demonstrations)."""

CLUMSY = ExpertQuality(
    name="clumsy-demo", speed=0.7, action_noise=0.2, hesitation=0.04, mistake=1.0
)
"""A policy that gets there the hard way: slow, noisy, and one recovered mistake per stage."""

EVAL_SEED_BASE = 3_000_000  # held-out seeds, disjoint from every dataset split


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoConfig:
    """What the demo runs.

    Args:
        task: Benchmark task id.
        reward_model: SARM2 checkpoint directory (``None``: the packaged model).
        base_policy: TinyVLA checkpoint directory (``None``: the packaged FoldShorts policy).
        seed: Seed of the demonstration episodes.
        spiral_rollouts: Rollouts collected in the SPIRAL round.
        spiral_updates: Actor-critic updates in the SPIRAL round.
        eval_episodes: Held-out episodes for the before/after success rates.
        max_steps: Cap on every episode's length (``None``: the task's limit).
    """

    task: str = "SARM2-FoldShorts-v0"
    reward_model: str | None = None
    base_policy: str | None = None
    seed: int = 0
    spiral_rollouts: int = 8
    spiral_updates: int = 400
    eval_episodes: int = 6
    max_steps: int | None = None


def run_demo(out: str | Path, config: DemoConfig | None = None, progress: bool = True) -> Path:
    """Run the demo job and return the path of ``report.html``."""
    cfg = config or DemoConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    task = task_by_id(cfg.task)
    model = load_reward_model(cfg.reward_model)
    report = HtmlReport(out, f"sarm2-gym demo: {task.env_id}")
    report.paragraph(
        f'Task "{task.instruction}". SARM2 reads the three cameras, the robot state and the '
        "instruction and estimates task progress; the simulator's privileged progress is the "
        "ground truth it is compared with."
    )
    t0 = time.perf_counter()
    # Parts: two scored rollouts, then the SPIRAL round's base evaluation, round, evaluation.
    bar = tqdm(total=5, desc="demo", unit="part", disable=not progress)

    # 1-2: two rollouts, scored by SARM2 ------------------------------------------------------
    env = gym.make(task.env_id, obs_mode="rgb", image_size=model.config.image_size)
    rows = []
    report.heading("SARM2 on an expert and a clumsy rollout")
    for name, quality, seed in (("expert", "expert", cfg.seed), ("clumsy", CLUMSY, cfg.seed + 1)):
        bar.set_postfix_str(f"{name} rollout, scored by SARM2")
        episode = record_episode(
            env, expert_for(task.env_id, quality), seed, env_id=task.env_id, max_steps=cfg.max_steps
        )
        bar.update(1)
        rows.append(_score_and_show(episode, name, model, out, report))
    env.close()
    report.table(
        [
            "rollout",
            "frames",
            "success",
            "true final progress",
            "SARM2 final progress",
            "Spearman",
            "primitive acc.",
        ],
        rows,
    )

    # 3: one SPIRAL round ---------------------------------------------------------------------
    report.heading("One SPIRAL round from a small base policy")
    spiral_rows, note = _spiral_round(cfg, task.env_id, model, out, bar)
    report.paragraph(note)
    report.table(["policy", "success", "mean final progress", "episodes", "env steps"], spiral_rows)
    report.paragraph(
        f"Wall-clock of the whole demo: {time.perf_counter() - t0:.0f} s on this machine.",
        note=True,
    )
    bar.close()
    return report.write()


def _score_and_show(
    episode: Episode, name: str, model: SARM2RewardModel, out: Path, report: HtmlReport
) -> list[Any]:
    frames = {c: episode.frames[image_key(c)] for c in CAMERAS}
    state = episode.frames["observation.state"]
    pred = model.predict_episode(frames, state, episode.task)
    true_p = episode.frames["progress"]
    labels = episode.frames["act_pri"]
    video_frames = [
        compose_frame(
            [frames[c][t] for c in CAMERAS],
            progress=[float(true_p[t]), float(pred.progress[t])],
            primitives=[int(labels[t]), int(pred.primitive[t])],
            labels=["true ", "SARM2"],
        )
        for t in range(episode.length)
    ]
    video = write_video(video_frames, out / f"{name}.webm", fps=episode.fps)
    plot = plot_progress(
        {"privileged (true)": true_p, "SARM2": pred.progress},
        labels,
        out / f"{name}_progress.png",
        title=f"{name}: {episode.task} (success={episode.success})",
        fps=episode.fps,
        predicted_labels=pred.primitive,
    )
    report.video(
        video,
        f"{name} rollout: top / left wrist / right wrist cameras; bars: true and SARM2 "
        "progress, coloured by primitive",
    )
    report.image(
        plot, f"{name} rollout: progress over time; bands: labelled and predicted primitives"
    )
    rho = float(spearmanr(pred.progress, true_p).statistic) if np.ptp(true_p) > 0 else float("nan")
    acc = float(np.mean(pred.primitive == labels))
    return [
        name,
        episode.length,
        episode.success,
        float(true_p[-1]),
        float(pred.progress[-1]),
        rho,
        acc,
    ]


def _spiral_round(
    cfg: DemoConfig, env_id: str, model: SARM2RewardModel, out: Path, bar: tqdm
) -> tuple[list[list[Any]], str]:
    from sarm2_gym.algos.baselines.common import evaluate_on_task
    from sarm2_gym.algos.spiral import SPIRAL, SPIRALConfig
    from sarm2_gym.algos.spiral.labeling import RewardModelLabeler
    from sarm2_gym.algos.vla import TinyVLA, VLAController

    policy_dir = Path(cfg.base_policy) if cfg.base_policy else PACKAGED_POLICY_DIR
    if not (policy_dir / "config.json").is_file():
        raise FileNotFoundError(f"no base policy at {policy_dir}; pass --base-policy DIR")
    policy = TinyVLA.from_pretrained(policy_dir)
    instruction = task_by_id(env_id).instruction
    seeds = [EVAL_SEED_BASE + i for i in range(cfg.eval_episodes)]
    size = model.config.image_size
    bar.set_postfix_str(f"base policy on {len(seeds)} held-out seeds")
    before = evaluate_on_task(
        VLAController(policy, instruction),
        env_id,
        seeds,
        image_size=size,
        max_episode_steps=cfg.max_steps,
    )
    bar.update(1)
    bar.set_postfix_str(
        f"SPIRAL round: {cfg.spiral_rollouts} rollouts, SARM2 rewards, {cfg.spiral_updates} updates"
    )
    spiral = SPIRAL(
        policy,
        env_id,
        RewardModelLabeler(model, frame_gap=model.config.frame_gap),
        config=SPIRALConfig(
            rollouts_per_round=cfg.spiral_rollouts, gradient_steps=cfg.spiral_updates
        ),
        instruction=instruction,
        checkpoint_dir=out / "spiral",
        tensorboard_log=str(out / "tensorboard"),
        seed=cfg.seed,
    )
    spiral.learn(total_timesteps=10**9, max_rounds=1, tb_log_name="demo")
    bar.update(1)
    bar.set_postfix_str(f"SPIRAL policy on {len(seeds)} held-out seeds")
    after = evaluate_on_task(
        spiral, env_id, seeds, image_size=size, max_episode_steps=cfg.max_steps
    )
    bar.update(1)
    rows = [
        [
            "base policy (BC)",
            before.success_rate,
            float(np.nanmean(before.final_progress)),
            len(seeds),
            before.env_steps,
        ],
        [
            "after 1 SPIRAL round",
            after.success_rate,
            float(np.nanmean(after.final_progress)),
            len(seeds),
            after.env_steps,
        ],
    ]
    note = (
        f"{cfg.spiral_rollouts} rollouts of the base policy were scored by SARM2 (dense rewards) "
        f"and used for {cfg.spiral_updates} residual actor-critic updates, then the policy was "
        "deployed with best-of-kappa. One short round is a smoke run of the loop, not the "
        "benchmark: see docs/results/spiral.md for full runs. "
        f"TensorBoard logs: {out / 'tensorboard'}."
    )
    return rows, note
