"""BC's random-shift augmentation of camera frames (``BCConfig.random_shift``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from sarm2_gym.algos.common.io import CheckpointError
from sarm2_gym.algos.vla import train_bc
from sarm2_gym.cli import app

from .helpers import FakeText, tiny_bc_config


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(out / "model.safetensors")


def test_the_shift_reaches_training_and_is_recorded(tmp_path: Path, reach_demos: Path) -> None:
    runs = {}
    for shift in (0, 2):
        out = tmp_path / f"shift{shift}"
        train_bc(
            tiny_bc_config(reach_demos, out, random_shift=shift, steps=5),
            text_encoder=FakeText(),
            progress_bar=False,
        )
        assert json.loads((out / "bc_summary.json").read_text())["random_shift"] == shift
        runs[shift] = _weights(out)
    # Same seed, same batches and flow draws: only the frames the CNN saw differ.
    cnn = [k for k in runs[0] if k.startswith("cnn.")]
    assert cnn, sorted(runs[0])
    assert any(not torch.equal(runs[0][k], runs[2][k]) for k in cnn)
    with pytest.raises(CheckpointError, match=r"different \['random_shift'\]"):
        train_bc(
            tiny_bc_config(reach_demos, tmp_path / "shift0", random_shift=2, steps=7),
            resume=True,
            progress_bar=False,
        )
    with pytest.raises(ValueError, match="random_shift must be >= 0"):
        tiny_bc_config(reach_demos, tmp_path / "x", random_shift=-1)


def test_cli_passes_the_shift_and_refuses_a_negative_one(tmp_path: Path, reach_demos: Path) -> None:
    res = CliRunner().invoke(
        app,
        ["bc", "--data", str(reach_demos), "--out", str(tmp_path / "bc"), "--steps", "2",
         "--batch-size", "4", "--chunk-size", "4", "--image-size", "24", "--max-episodes", "2",
         "--random-shift", "0"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "bc" / "bc_summary.json").read_text())["random_shift"] == 0
    res = CliRunner().invoke(
        app,
        ["bc", "--data", str(reach_demos), "--out", str(tmp_path / "y"), "--random-shift", "-1"],
    )
    assert res.exit_code != 0 and "--random-shift" in res.output
