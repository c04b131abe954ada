"""The typer application object shared by every command module."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="sarm2",
    help="Stage-aware dense rewards (SARM2) and reward-guided self-improvement (SPIRAL).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
