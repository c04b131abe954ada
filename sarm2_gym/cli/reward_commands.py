"""Reward-model commands: ``train-rm``, ``eval-rm``, ``label`` and ``adapt-rm``.

``train-rm`` trains data parallel (DDP, gloo on CPU) when launched by ``torchrun``::

    torchrun --nproc_per_node 2 -m sarm2_gym.cli train-rm --data data/train --out runs/rm

``label`` labels on Ray actors with ``--num-workers N`` and/or ``--ray-address ADDR``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer

from sarm2_gym.cli._app import app

__all__ = [
    "adapt_rm_command",
    "eval_rm_command",
    "label_command",
    "load_config",
    "train_rm_command",
]

_CACHE_HELP = "Feature cache root (default: $SARM2_CACHE_DIR or ~/.cache/sarm2_gym/features)."


def load_config(name: str):  # type: ignore[no-untyped-def]
    """``default``, ``paper`` or a JSON file of :class:`SARM2Config` fields (over the default)."""
    from sarm2_gym.reward.config import SARM2Config

    if name == "default":
        return SARM2Config()
    if name == "paper":
        return SARM2Config.paper()
    path = Path(name)
    if not path.is_file():
        raise typer.BadParameter(f"--config must be 'default', 'paper' or a JSON file, got {name}")
    try:
        return SARM2Config.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise typer.BadParameter(f"{path}: {exc}") from exc


def _cache(cache_dir: Path | None) -> str:
    from sarm2_gym.reward.frames import DEFAULT_CACHE_DIR

    return str(cache_dir or DEFAULT_CACHE_DIR)


@app.command("train-rm")
def train_rm_command(
    data: list[Path] = typer.Option(..., "--data", help="Training dataset directories."),
    out: Path = typer.Option(..., "--out", help="Output checkpoint directory."),
    config: str = typer.Option("default", "--config", help="default, paper, or a JSON file."),
    kind: str = typer.Option(
        "sarm2",
        "--kind",
        help="sarm2, sarm2_no_stage, sarm2_single_gate, sarm2_mlp_head, rewind or sarm_v1.",
    ),
    steps: int | None = typer.Option(None, "--steps", min=1, help="Total optimizer steps."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out."),
    seed: int | None = typer.Option(None, "--seed", help="Seed (default: the config's)."),
    target: str = typer.Option(
        "progress", "--target", help="progress (privileged) or linear (paper's t/T label)."
    ),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1),
    checkpoint_every: int = typer.Option(500, "--checkpoint-every", min=1),
    val_every: int = typer.Option(500, "--val-every", min=0),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or auto."),
    num_workers: int = typer.Option(1, "--num-workers", min=1, help="Feature processes."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help=_CACHE_HELP),
) -> None:
    """Train a SARM2 reward model (or a baseline / ablation) on LeRobot datasets.

    Under ``torchrun --nproc_per_node N -m sarm2_gym.cli train-rm ...`` the N processes train
    one model data parallel (each draws its shard of the same global batch); rank 0 writes.
    """
    from sarm2_gym.reward.trainer import TrainOptions, train_reward_model

    cfg = load_config(config)
    try:
        options = TrainOptions(
            kind=kind,
            steps=steps,
            seed=seed,
            target=target,
            batch_size=batch_size,
            checkpoint_every=checkpoint_every,
            val_every=val_every,
            device=device,
            num_workers=num_workers,
            cache_dir=_cache(cache_dir),
        )
        result = train_reward_model(data, out, cfg, options=options, resume=resume)
    except (ValueError, FileExistsError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    if int(os.environ.get("RANK", "0")) != 0:
        return  # torchrun: rank 0 reports
    val = ", ".join(f"{k}={v:.4f}" for k, v in result.val.items())
    typer.echo(f"{out}: {result.steps} steps in {result.wall_clock_s:.0f} s; val {val}")


@app.command("eval-rm")
def eval_rm_command(
    model: Path = typer.Option(..., "--model", help="Checkpoint directory (any model kind)."),
    data: list[Path] = typer.Option(..., "--data", help="Held-out dataset directories."),
    out: Path = typer.Option(..., "--out", help="Report directory."),
    frame_gap: int | None = typer.Option(None, "--frame-gap", min=1, help="Query gap."),
    plots: int = typer.Option(1, "--plots", min=0, help="Plots per task and split kind."),
    num_workers: int = typer.Option(1, "--num-workers", min=1),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help=_CACHE_HELP),
) -> None:
    """Evaluate a reward model on held-out demos and rollouts (table + plots)."""
    from sarm2_gym.reward.evaluation import evaluate_model, metrics_table
    from sarm2_gym.reward.kinds import load_model

    try:
        loaded = load_model(model)
        results = evaluate_model(
            loaded,
            data,
            out,
            cache_dir=_cache(cache_dir),
            num_workers=num_workers,
            frame_gap=frame_gap,
            plots=plots,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(metrics_table(results, title=str(model)))


@app.command("label")
def label_command(
    dataset: Path = typer.Argument(..., help="Dataset directory to label in place."),
    model: Path | None = typer.Option(
        None, "--model", help="SARM2 checkpoint (default: the packaged model)."
    ),
    frame_gap: int | None = typer.Option(None, "--frame-gap", min=1, help="Query gap."),
    window: int = typer.Option(5, "--window", min=1, help="Smoothing window (samples)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing columns."),
    num_workers: int = typer.Option(
        1, "--num-workers", min=1, help="Ray actors (>1 starts a local Ray cluster if no address)."
    ),
    ray_address: str | None = typer.Option(
        None,
        "--ray-address",
        help="Label on this Ray cluster ('local' starts one); needs Ray (distributed extra).",
    ),
    worker_threads: int | None = typer.Option(
        None,
        "--worker-threads",
        min=1,
        help="Torch threads per Ray actor (default: as here, so labels match bit for bit).",
    ),
) -> None:
    """Write per-frame sarm2_progress / sarm2_reward columns and sarm_progress.parquet."""
    from sarm2_gym.reward.labeller import label_dataset
    from sarm2_gym.wrappers.factory import load_reward_model

    try:
        path = label_dataset(
            dataset,
            load_reward_model(model),
            frame_gap=frame_gap,
            window=window,
            overwrite=overwrite,
            num_workers=num_workers,
            ray_address=ray_address,
            worker_threads=worker_threads,
        )
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"labelled {dataset}; wrote {path}")


@app.command("adapt-rm")
def adapt_rm_command(
    model: str = typer.Option(
        ..., "--model", help="RM1: a SARM2 checkpoint directory, or 'sarm2' (the packaged model)."
    ),
    rollouts: list[Path] = typer.Option(
        ..., "--rollouts", help="Rollout datasets labelled with `sarm2 annotate`."
    ),
    out: Path = typer.Option(..., "--out", help="New directory for RM2 (a SARM2 checkpoint)."),
    demos: Path | None = typer.Option(
        None,
        "--demos",
        help="Demonstrations mixed into every batch, as the paper mixes in its pretraining "
        "data (their progress column, or the linear label on a real robot's).",
    ),
    demo_episodes: int | None = typer.Option(
        None, "--demo-episodes", min=1, help="Only the first N episodes of --demos."
    ),
    demo_fraction: float | None = typer.Option(
        None, "--demo-fraction", help="Share of every batch from --demos (default 0.5)."
    ),
    steps: int | None = typer.Option(None, "--steps", min=1, help="Optimiser steps (default 500)."),
    batch_size: int | None = typer.Option(
        None, "--batch-size", min=1, help="Frames per step (default 32)."
    ),
    lr: float | None = typer.Option(None, "--lr", help="AdamW learning rate (default 3e-5)."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Fine-tune SARM2 on annotated rollouts (RM1 -> RM2, SPIRAL's stage 2a) and save it.

    The real-robot path of the adaptation `sarm2 spiral --adapt-steps` runs in simulation: record
    rollouts of the base policy, label them with `sarm2 annotate`, then label SPIRAL's later
    rounds with the model this writes (`--labeler OUT`, or `RewardModelLabeler.from_pretrained`).
    """
    from dataclasses import replace

    from sarm2_gym.algos.spiral.adaptation import load_annotated_rollouts
    from sarm2_gym.reward import SARM2RewardModel
    from sarm2_gym.reward.adaptation import AdaptationConfig, SARM2Adapter, load_demonstrations

    if (out / "config.json").exists():
        raise typer.BadParameter(f"--out {out} already holds a model; choose a new directory")
    given: dict[str, Any] = {
        "steps": steps, "batch_size": batch_size, "lr": lr, "demo_fraction": demo_fraction
    }  # fmt: skip
    if demos is None and (demo_episodes is not None or demo_fraction is not None):
        raise typer.BadParameter("--demo-episodes and --demo-fraction need --demos")
    try:
        config = replace(
            AdaptationConfig(seed=seed), **{k: v for k, v in given.items() if v is not None}
        )
        if model == "sarm2":
            from sarm2_gym.wrappers.factory import load_reward_model

            rm1 = load_reward_model(None)
        else:
            rm1 = SARM2RewardModel.from_pretrained(model)
        annotated = [r for root in rollouts for r in load_annotated_rollouts(root)]
        demonstrations = [] if demos is None else load_demonstrations(demos, demo_episodes)
        adapter = SARM2Adapter(rm1, config, progress=True, demonstrations=demonstrations)
        adapter.adapt(annotated, out)
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    losses = adapter.losses
    head = float(sum(losses[:20]) / len(losses[:20]))
    tail = float(sum(losses[-20:]) / len(losses[-20:]))
    frames = sum(len(r.progress) for r in annotated)
    typer.echo(
        f"{len(annotated)} annotated rollouts ({frames} frames), {len(demonstrations)} "
        "demonstrations; "
        f"value MSE {head:.4f} (first 20 steps) -> {tail:.4f} (last 20); RM2 saved to {out}"
    )
