"""Data commands: ``collect`` and ``make-benchmark``."""

from __future__ import annotations

from pathlib import Path

import typer

from sarm2_gym.cli._app import app

__all__ = ["collect_command", "make_benchmark_command"]


@app.command("collect")
def collect_command(
    task: str = typer.Option(
        ..., "--task", help="Task id (SARM2-FoldShorts-v0), short name, or 'all'."
    ),
    out: Path = typer.Option(..., "--out", help="Dataset directory (created, or resumed)."),
    episodes: int = typer.Option(
        10, "--episodes", "--episodes-per-task", min=1, help="Episodes per task."
    ),
    quality: str = typer.Option(
        "mixed",
        "--quality",
        help="Expert quality: expert, slow, clumsy, mistake, partial, failed, mixed; for BC also "
        "dart (the expert pushed off its path while executing, recording its corrections) or "
        "grasp_miss (half of the grasp attempts executed beside the object, then retried).",
    ),
    seed: int = typer.Option(0, "--seed", help="Episode i uses reset seed SEED+i."),
    image_size: int = typer.Option(96, "--image-size", min=16, max=512),
    num_workers: int = typer.Option(1, "--num-workers", min=1, help="Recording processes/actors."),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="Record on Ray actors: a cluster address, or 'local'."
    ),
    expert_option: list[str] | None = typer.Option(
        None,
        "--expert-option",
        help="NAME=VALUE strategy option of the task's expert, repeatable (e.g. CleanWhiteboard's "
        "wipe=sweep: the whole board in lanes instead of chasing the nearest ink; lanes=lifted: "
        "some of those lanes executed off the board, leaving ink the expert then chases; "
        "finish=sweep: every lane wiped to its end even once the board is clean; "
        "carry=high: the eraser carried back to its tray high and lowered straight onto it; "
        "carry=survey: a stop above the tray's mean place on the way back; "
        "approach=survey: the first grasp started from above the tray's mean place).",
    ),
) -> None:
    """Record scripted-expert episodes into a LeRobot v3.0 dataset (resumable)."""
    from sarm2_gym.data.generation import collect, resolve_tasks

    options: dict[str, str] = {}
    for item in expert_option or []:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise typer.BadParameter(f"--expert-option {item!r} is not NAME=VALUE")
        if name in options:
            raise typer.BadParameter(f"--expert-option {name} is given twice")
        options[name] = value
    try:
        tasks = resolve_tasks(task)
        root = collect(
            tasks,
            episodes,
            out,
            quality=quality,
            seed=seed,
            image_size=image_size,
            num_workers=num_workers,
            ray_address=ray_address,
            expert_options=options,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    from sarm2_gym.data.reader import LeRobotDataset

    ds = LeRobotDataset(root)
    ok = sum(bool(m["success"]) for m in ds.episodes_meta)
    typer.echo(f"{root}: {ds.num_episodes} episodes, {ds.num_frames} frames, {ok} successful")


@app.command("make-benchmark")
def make_benchmark_command(
    out: Path = typer.Option(
        ..., "--out", help="Output folder (train/, heldout_demos/, heldout_rollouts/)."
    ),
    train: int = typer.Option(
        60, "--train", min=0, help="Mixed-quality training episodes per task."
    ),
    heldout_demos: int = typer.Option(10, "--heldout-demos", min=0, help="Expert demos per task."),
    rollouts: int = typer.Option(
        12,
        "--rollouts-per-outcome",
        min=0,
        help="Held-out success/partial/failed rollouts per task, each.",
    ),
    task: str = typer.Option("all", "--task", help="Task id or 'all'."),
    image_size: int = typer.Option(96, "--image-size", min=16, max=512),
    num_workers: int = typer.Option(2, "--num-workers", min=1, help="Recording processes/actors."),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="Record on Ray actors: a cluster address, or 'local'."
    ),
) -> None:
    """Build the standard benchmark data (resumable: rerun to continue)."""
    from sarm2_gym.data.generation import BenchmarkSizes, make_benchmark, resolve_tasks

    try:
        paths = make_benchmark(
            out,
            tasks=resolve_tasks(task),
            sizes=BenchmarkSizes(
                train=train, heldout_demos=heldout_demos, rollouts_per_outcome=rollouts
            ),
            image_size=image_size,
            num_workers=num_workers,
            ray_address=ray_address,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    for split, path in paths.items():
        typer.echo(f"{split}: {path}")
