"""BC's held-out measurements (``BCConfig.val_episodes``, :mod:`sarm2_gym.algos.vla.validation`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sarm2_gym.algos.common.io import load_tensors
from sarm2_gym.algos.vla import TinyVLA, train_bc
from sarm2_gym.algos.vla.data import DemoData, load_demos
from sarm2_gym.algos.vla.validation import BCProbe, ValidationLog, bc_metrics, held_out_ranges
from sarm2_gym.cli import app

from .helpers import IMAGE, FakeText, tiny_bc_config, tiny_vla

KEYS = ("heldout/flow_loss", "heldout/chunk_mse", "train_probe/flow_loss", "train_probe/chunk_mse")


def _rows(out: Path) -> list[dict[str, float]]:
    rows: list[dict[str, float]] = json.loads((out / "validation.json").read_text())["rows"]
    return rows


def _demos(root: Path, **kwargs: Any) -> DemoData:
    return load_demos(
        [root], cameras=("top", "left_wrist", "right_wrist"), image_size=IMAGE, **kwargs
    )


def test_held_out_ranges_take_the_last_episodes_and_refuse_to_leave_nothing() -> None:
    ranges = held_out_ranges([6, 10], 2)
    assert ranges == [range(4, 6), range(8, 10)] and [r.start for r in ranges] == [4, 8]
    with pytest.raises(ValueError, match=r"dataset\(s\) \[1\] hold only \[3\]"):
        held_out_ranges([6, 3], 3)
    with pytest.raises(ValueError, match=">= 1"):
        held_out_ranges([6], 0)


def test_load_demos_reads_the_episodes_a_range_names(reach_demos: Path) -> None:
    tail = _demos(reach_demos, episode_ranges=[range(4, 6)])
    head = _demos(reach_demos, max_episodes=4)
    everything = _demos(reach_demos)
    assert [e[1] for e in tail.episodes] == [4, 5]
    assert head.num_frames + tail.num_frames == everything.num_frames
    np.testing.assert_array_equal(
        tail.actions,
        everything.actions[head.num_frames :],
    )
    with pytest.raises(ValueError, match="not both"):
        _demos(reach_demos, max_episodes=2, episode_ranges=[range(2)])
    with pytest.raises(ValueError, match="1 ranges for 2 datasets"):
        load_demos(
            [reach_demos, reach_demos], cameras=("top",), image_size=IMAGE, episode_ranges=[None]
        )
    with pytest.raises(ValueError, match=r"holds episodes 0\.\.5"):
        _demos(reach_demos, episode_ranges=[range(5, 7)])


def test_bc_metrics_repeat_exactly_and_touch_no_other_random_stream(reach_demos: Path) -> None:
    demos = _demos(reach_demos)
    probe = BCProbe.spread("p", demos, 20, seed=3)
    assert len(probe.index) == 20 and probe.index[0] == 0
    assert probe.index[-1] == demos.num_frames - 1
    policy = tiny_vla()
    policy.train()
    rng_before = torch.get_rng_state()
    first = bc_metrics(policy, probe)
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert policy.training  # left in the mode it came in
    assert bc_metrics(policy, probe) == first
    assert set(first) == {"p/flow_loss", "p/chunk_mse"}
    assert all(np.isfinite(v) and v > 0 for v in first.values())
    # another seed draws other noise: the numbers move, the scale does not
    other = bc_metrics(policy, BCProbe("p", demos, probe.index, seed=4))
    assert other != first
    assert other["p/chunk_mse"] == pytest.approx(first["p/chunk_mse"], rel=0.5)
    with pytest.raises(ValueError, match="at least one frame"):
        BCProbe.spread("p", demos, 0)


def test_measuring_holds_episodes_out_without_changing_training(
    tmp_path: Path, reach_demos: Path
) -> None:
    measured = tiny_bc_config(reach_demos, tmp_path / "val", val_episodes=2, val_every=4)
    train_bc(measured, text_encoder=FakeText(), progress_bar=False)
    # Training on the first four episodes without measuring gives the same weights bit for bit:
    # the last two were never trained on, and measuring drew from no training stream.
    plain = tiny_bc_config(reach_demos, tmp_path / "plain", max_episodes=4)
    train_bc(plain, text_encoder=FakeText(), progress_bar=False)
    a = load_tensors(tmp_path / "val" / "model.safetensors")
    b = load_tensors(tmp_path / "plain" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    rows = _rows(tmp_path / "val")
    assert [r["step"] for r in rows] == [4, 8, 12]  # every val_every steps and the last
    assert all(set(r) == {"step", *KEYS} for r in rows)
    # the last row measures the exported policy
    again = bc_metrics(
        TinyVLA.from_pretrained(tmp_path / "val"),
        BCProbe.spread("heldout", _demos(reach_demos, episode_ranges=[range(4, 6)]), 512),
    )
    assert again["heldout/chunk_mse"] == pytest.approx(rows[-1]["heldout/chunk_mse"], rel=1e-5)
    summary = json.loads((tmp_path / "val" / "bc_summary.json").read_text())
    assert summary["episodes"] == 4
    assert summary["validation"]["last"] == rows[-1]
    assert summary["validation"]["best_step"] in (4, 8, 12)
    assert json.loads((tmp_path / "plain" / "bc_summary.json").read_text())["validation"] is None
    tb = list((tmp_path / "val" / "tb").glob("events.*"))
    assert tb and b"heldout/chunk_mse" in tb[0].read_bytes()


def test_the_training_probe_tracks_fitting(tmp_path: Path, reach_demos: Path) -> None:
    seen: list[dict[str, float]] = []
    cfg = tiny_bc_config(
        reach_demos, tmp_path / "fit", val_episodes=1, val_every=20, steps=120, lr=3e-3
    )
    train_bc(
        cfg,
        text_encoder=FakeText(),
        progress_bar=False,
        callback=lambda step, m: seen.append(m) if "heldout/chunk_mse" in m else None,
    )
    rows = _rows(tmp_path / "fit")
    assert [m["train_probe/chunk_mse"] for m in seen] == [r["train_probe/chunk_mse"] for r in rows]
    for key in KEYS:  # all four fall as the policy fits (the first row is already at step 20)
        values = [r[key] for r in rows]
        assert values[-1] < 0.8 * values[0], key
    # the frames it trains on are fitted better than the ones it never saw
    assert rows[-1]["train_probe/chunk_mse"] < rows[-1]["heldout/chunk_mse"]
    assert rows[-1]["train_probe/flow_loss"] < rows[-1]["heldout/flow_loss"]


def test_a_resumed_run_logs_what_an_uninterrupted_one_does(
    tmp_path: Path, reach_demos: Path
) -> None:
    whole = tiny_bc_config(reach_demos, tmp_path / "whole", val_episodes=2, val_every=3)
    train_bc(whole, text_encoder=FakeText(), progress_bar=False)

    def kill(step: int, metrics: dict[str, float]) -> None:
        if step == 8:  # after the measurement at 6, between the snapshots at 5 and 10
            raise KeyboardInterrupt

    out = tmp_path / "killed"
    cfg = tiny_bc_config(reach_demos, out, val_episodes=2, val_every=3)
    with pytest.raises(KeyboardInterrupt):
        train_bc(cfg, text_encoder=FakeText(), callback=kill, progress_bar=False)
    # The row of step 6 was written past the step-5 snapshot the run resumes from: it is
    # measured again, not kept twice.
    assert [r["step"] for r in _rows(out)] == [3, 6]
    train_bc(cfg, resume=True, progress_bar=False)
    assert _rows(out) == _rows(tmp_path / "whole")


def test_validation_log_refuses_a_foreign_file(tmp_path: Path) -> None:
    path = tmp_path / "validation.json"
    path.write_text(json.dumps({"rows": [{"loss": 1.0}]}))
    with pytest.raises(ValueError, match="not a BC validation log"):
        ValidationLog(path, keep_through=5)
    fresh = ValidationLog(path, keep_through=0)  # a fresh run starts its own log
    assert fresh.rows == [] and fresh.summary()["best"] is None


def test_config_and_cli_errors(tmp_path: Path, reach_demos: Path) -> None:
    with pytest.raises(ValueError, match="val_episodes must be >= 0"):
        tiny_bc_config(reach_demos, tmp_path / "a", val_episodes=-1)
    with pytest.raises(ValueError, match="val_every must be >= 1"):
        tiny_bc_config(reach_demos, tmp_path / "a", val_episodes=1, val_every=0)
    with pytest.raises(ValueError, match="leave nothing to train on"):
        train_bc(
            tiny_bc_config(reach_demos, tmp_path / "b", val_episodes=6),
            text_encoder=FakeText(),
            progress_bar=False,
        )
    result = CliRunner().invoke(
        app,
        ["bc", "--data", str(reach_demos), "--out", str(tmp_path / "c"), "--val-episodes", "9"],
    )
    assert result.exit_code != 0 and "leave nothing to train on" in result.output
