"""``python -m sarm2_gym.cli`` runs the ``sarm2`` command line."""

from __future__ import annotations

from sarm2_gym.cli import app

if __name__ == "__main__":
    app()
