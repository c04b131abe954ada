"""Smoke test of ``sarm2 train-rm`` / ``eval-rm`` / ``label`` on a tiny collected dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sarm2_gym.cli import app
from sarm2_gym.data import LeRobotDataset, read_sarm_progress

TINY = {
    "encoder_input_size": 32,  # EfficientNet at 32 px: fast, and enough for a smoke test
    "d_model": 32,
    "n_heads": 2,
    "stage_layers": 1,
    "value_layers": 1,
    "num_experts": 4,
    "expert_hidden": [16],
    "gate_hidden": 16,
    "batch_size": 4,
}


@pytest.mark.slow
def test_train_eval_label_round_trip(tmp_path: Path) -> None:
    runner = CliRunner()
    data, ckpt, cache = tmp_path / "ds", tmp_path / "ckpt", tmp_path / "cache"
    res = runner.invoke(
        app,
        ["collect", "--task", "SARM2-CleanWhiteboard-v0", "--episodes", "2", "--out", str(data)],
    )
    assert res.exit_code == 0, res.output
    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps(TINY))
    common = ["--cache-dir", str(cache)]
    res = runner.invoke(
        app,
        [
            "train-rm",
            "--data",
            str(data),
            "--out",
            str(ckpt),
            "--config",
            str(cfg),
            "--steps",
            "3",
            "--checkpoint-every",
            "2",
            "--val-every",
            "0",
            *common,
        ],
    )
    assert res.exit_code == 0, res.output
    assert (ckpt / "config.json").is_file() and (ckpt / "train" / "summary.json").is_file()
    res = runner.invoke(
        app,
        [
            "train-rm",
            "--data",
            str(data),
            "--out",
            str(ckpt),
            "--config",
            str(cfg),
            "--steps",
            "3",
            *common,
        ],
    )
    assert res.exit_code != 0 and "resume" in res.output

    report = tmp_path / "report"
    res = runner.invoke(
        app, ["eval-rm", "--model", str(ckpt), "--data", str(data), "--out", str(report), *common]
    )
    assert res.exit_code == 0, res.output
    metrics = json.loads((report / "metrics.json").read_text())
    assert "CleanWhiteboard" in metrics and "overall" in metrics
    assert list((report / "plots").glob("*.png"))

    res = runner.invoke(app, ["label", str(data), "--model", str(ckpt)])
    assert res.exit_code == 0, res.output
    ds = LeRobotDataset(data)
    cols = ds.read_frames(0, ["sarm2_progress", "sarm2_reward"])
    assert (cols["sarm2_reward"] >= 0).all() and cols["sarm2_reward"][0] == 0
    assert 0.0 <= cols["sarm2_progress"].min() <= cols["sarm2_progress"].max() <= 1.0
    table = read_sarm_progress(data / "sarm_progress.parquet")
    assert len(table["progress_sparse"]) == ds.num_frames
