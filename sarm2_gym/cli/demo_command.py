"""``sarm2 demo``: the README's main job on its embedded default."""

from __future__ import annotations

from pathlib import Path

import typer

from sarm2_gym.cli._app import app

__all__ = ["demo_command"]


@app.command("demo")
def demo_command(
    task: str = typer.Option("SARM2-FoldShorts-v0", "--task", help="Task to demonstrate."),
    episodes: int = typer.Option(2, "--episodes", min=1, help="Expert episodes to collect."),
    out: Path = typer.Option(Path("sarm2_demo"), "--out", help="Output folder."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Collect expert demonstrations, then write a video and a progress/primitive plot of each."""
    from sarm2_gym.cli.demo import run_demo

    try:
        report = run_demo(task, episodes=episodes, out=out, seed=seed)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"demo written to {report}")
