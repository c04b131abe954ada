"""Reward-model commands: ``train-rm``, ``eval-rm`` and ``label``.

``train-rm`` trains data parallel (DDP, gloo on CPU) when launched by ``torchrun``::

    torchrun --nproc_per_node 2 -m sarm2_gym.cli train-rm --data data/train --out runs/rm

``label`` labels on Ray actors with ``--num-workers N`` and/or ``--ray-address ADDR``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from sarm2_gym.cli._app import app

__all__ = ["eval_rm_command", "label_command", "load_config", "train_rm_command"]

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
