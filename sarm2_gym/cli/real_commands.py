"""Real-robot commands: ``robot-server`` and ``annotate``."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from sarm2_gym.cli._app import app

__all__ = ["annotate", "parse_episodes", "robot_server"]


def parse_episodes(spec: str) -> list[int]:
    """Parse ``"0,3,5-7"`` into ``[0, 3, 5, 6, 7]``."""
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        out += list(range(int(lo), int(hi) + 1)) if sep else [int(lo)]
    return out


@app.command("robot-server")
def robot_server(
    token_file: Annotated[
        Path,
        typer.Option(help="Shared-token file; created (mode 600) with a new token if missing."),
    ],
    sim: Annotated[
        str | None,
        typer.Option(help="Serve this simulated task (Gymnasium id, e.g. SARM2-FoldShorts-v0)."),
    ] = None,
    dummy: Annotated[
        bool, typer.Option("--dummy", help="Serve a physics-free kinematic robot (dry runs).")
    ] = False,
    host: Annotated[
        str, typer.Option(help="Interface to bind; loopback unless you need the network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0: pick a free one).")] = 5555,
    config: Annotated[
        Path | None,
        typer.Option(help="Robot config (.toml/.json); default: the simulated bimanual robot."),
    ] = None,
    max_message_mb: Annotated[float, typer.Option(help="Largest accepted request.")] = 16.0,
) -> None:
    """Serve a robot over the network for RemoteRobot / RealRobotEnv (Ctrl-C stops it)."""
    from sarm2_gym.real.auth import load_token, write_token_file
    from sarm2_gym.real.config import default_robot_config, load_robot_config
    from sarm2_gym.real.dummy import KinematicRobot
    from sarm2_gym.real.interface import RobotInterface
    from sarm2_gym.real.server import RobotServer
    from sarm2_gym.real.sim_robot import SimulatedRobot

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if (sim is None) == (not dummy):
        raise typer.BadParameter("give exactly one of --sim ENV_ID or --dummy")
    if token_file.exists():
        token = load_token(token_file)
    else:
        token = write_token_file(token_file)
        typer.echo(f"created a new token in {token_file}; copy it to the learning PC")
    cfg = load_robot_config(config) if config is not None else default_robot_config()
    robot: RobotInterface
    if sim is not None:
        robot = SimulatedRobot.from_id(sim, cfg)
        what = f"simulated task {sim}"
    else:
        robot = KinematicRobot(image_size=cfg.image_size, cameras=cfg.cameras)
        what = "kinematic dummy robot"
    server = RobotServer(
        robot,
        token,
        config=cfg,
        host=host,
        port=port,
        max_message_bytes=int(max_message_mb * 1024 * 1024),
    )
    endpoint = server.bind()

    def _stop(signum: int, frame: Any) -> None:
        server.shutdown()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    # Tests and scripts parse this line for the port when --port 0 is used.
    typer.echo(f"robot server: serving {what} on {endpoint}", err=False)
    server.serve_forever()
    typer.echo("robot server: stopped")


@app.command("annotate")
def annotate(
    dataset: Annotated[Path, typer.Argument(help="LeRobot v3 dataset directory.")],
    episodes: Annotated[
        str | None, typer.Option(help="Episodes to annotate, e.g. '0,3,5-9' (default: all).")
    ] = None,
    redo: Annotated[bool, typer.Option(help="Re-annotate episodes that have labels.")] = False,
    annotator: Annotated[str, typer.Option(help="Your name, stored with the labels.")] = "",
    columns_only: Annotated[
        bool, typer.Option(help="Only rewrite the dataset columns from the stored labels.")
    ] = False,
) -> None:
    """Mark fast / slow / adjust / mistake segments of rollouts; write progress columns."""
    from sarm2_gym.real.annotate_cli import ANNOTATIONS_FILE, AnnotationSession

    session = AnnotationSession(dataset, annotator=annotator)
    if columns_only:
        session.write_columns()
        return
    chosen = parse_episodes(episodes) if episodes else None
    saved = session.run(chosen, redo=redo)
    typer.echo(f"{saved} episodes annotated; labels in {dataset / ANNOTATIONS_FILE}")
