"""``docs/cli.md`` is the CLI's current help (regenerate with ``scripts/make_cli_docs.sh``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_cli_reference_is_current(tmp_path: Path) -> None:
    out = tmp_path / "cli.md"
    cmd = [sys.executable, "-m", "typer", "sarm2_gym.cli", "utils", "docs", "--name", "sarm2"]
    subprocess.run([*cmd, "--output", str(out)], check=True, capture_output=True, cwd=ROOT)
    committed = (ROOT / "docs" / "cli.md").read_text()
    assert out.read_text() == committed, "docs/cli.md is stale: run scripts/make_cli_docs.sh"
