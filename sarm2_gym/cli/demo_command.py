"""``sarm2 demo``: the README's main job on its embedded default."""

from __future__ import annotations

from pathlib import Path

import typer

from sarm2_gym.cli._app import app

__all__ = ["demo_command"]


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("sarm2_demo"), "--out", help="Output folder for the report."),
    task: str = typer.Option("SARM2-FoldShorts-v0", "--task", help="Benchmark task."),
    reward_model: str | None = typer.Option(
        None, "--reward-model", help="SARM2 checkpoint dir (default: the packaged model)."
    ),
    base_policy: str | None = typer.Option(
        None, "--base-policy", help="TinyVLA checkpoint dir (default: the packaged policy)."
    ),
    spiral_rollouts: int = typer.Option(8, "--spiral-rollouts", min=1),
    spiral_updates: int = typer.Option(400, "--spiral-updates", min=1),
    eval_episodes: int = typer.Option(6, "--eval-episodes", min=1),
    max_steps: int | None = typer.Option(None, "--max-steps", min=1, help="Cap episode length."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """SARM2 on an expert and a clumsy rollout, one SPIRAL round, and an HTML report."""
    from sarm2_gym.demo import DemoConfig, run_demo

    config = DemoConfig(
        task=task,
        reward_model=reward_model,
        base_policy=base_policy,
        seed=seed,
        spiral_rollouts=spiral_rollouts,
        spiral_updates=spiral_updates,
        eval_episodes=eval_episodes,
        max_steps=max_steps,
    )
    try:
        report = run_demo(out, config)
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"report written to {report.resolve()}")
