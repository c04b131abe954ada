"""Every example runs end to end with a short budget and the packaged reward model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(script: str, *args: str, cwd: Path) -> str:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stdout


def test_dense_rewards_on_a_benchmark_env(tmp_path: Path) -> None:
    out = run("dense_rewards_benchmark_env.py", "--steps", "25", cwd=tmp_path)
    assert "model progress" in out and "dense return" in out


def test_wrap_a_gymnasium_mujoco_env_and_train_ppo(tmp_path: Path) -> None:
    out = run(
        "wrap_gymnasium_mujoco.py",
        "--timesteps",
        "128",
        "--n-steps",
        "64",
        "--logdir",
        "tb",
        cwd=tmp_path,
    )
    assert "trained 128 steps" in out
    assert list((tmp_path / "tb").rglob("events.out.tfevents*"))


@pytest.mark.slow
def test_wrap_robosuite_and_train_ppo(tmp_path: Path) -> None:
    pytest.importorskip("robosuite", reason="the [robosuite] extra is not installed")
    out = run(
        "wrap_robosuite_lift.py",
        "--timesteps",
        "64",
        "--n-steps",
        "32",
        "--logdir",
        "tb",
        cwd=tmp_path,
    )
    assert "trained 64 steps" in out
