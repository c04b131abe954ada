"""The ``sarm2`` command line.

Each command group lives in its own module and registers itself on :data:`app`; importing this
package imports them all.
"""

from __future__ import annotations

from sarm2_gym.cli._app import app

# Command modules register their commands on ``app`` at import time.
from sarm2_gym.cli import (  # noqa: F401  isort: skip
    data_commands,
    demo_command,
    policy_commands,
    real_commands,
    reward_commands,
)

__all__ = ["app"]
