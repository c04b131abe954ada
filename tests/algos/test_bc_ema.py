"""BC's moving average of the policy weights (``BCConfig.ema_decay``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from sarm2_gym.algos.common.io import CheckpointError, load_tensors
from sarm2_gym.algos.vla import BCConfig, TinyVLA, train_bc
from sarm2_gym.algos.vla.ema import WeightEMA, ema_rate
from sarm2_gym.cli import app

from .helpers import FakeText, tiny_bc_config, tiny_vla


def _config(data: Path, out: Path, **overrides: object) -> BCConfig:
    return tiny_bc_config(data, out, **{"ema_decay": 0.9, **overrides})


def _final_snapshot(out: Path) -> Path:
    latest = json.loads((out / "train_state" / "latest.json").read_text())["latest"]
    return out / "train_state" / latest


def test_ema_rate_warms_up_to_the_decay() -> None:
    assert ema_rate(0.999, 1) == pytest.approx(2 / 11)
    assert ema_rate(0.999, 90) == pytest.approx(91 / 100)
    assert ema_rate(0.9, 1000) == 0.9
    assert ema_rate(0.0, 5) == 0.0
    for decay, step, match in ((1.0, 1, r"\[0, 1\)"), (-0.1, 1, r"\[0, 1\)"), (0.5, 0, "from 1")):
        with pytest.raises(ValueError, match=match):
            ema_rate(decay, step)


def test_weight_ema_averages_parameters_and_copies_buffers() -> None:
    model = tiny_vla(seed=0)
    ema = WeightEMA(model, decay=0.5)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    target = tiny_vla(seed=1)  # other weights, the same shapes
    model.load_state_dict(target.state_dict())
    rate = ema.update(model, step=100)  # past the warm-up: the decay itself
    assert rate == 0.5
    params = {name for name, _ in model.named_parameters()}
    averaged = ema.state_dict()
    # the saved buffers: normalisation statistics, instruction embeddings
    buffers = {name for name, _ in model.named_buffers()} & set(averaged)
    assert buffers
    for name in params:
        expected = 0.5 * start[name] + 0.5 * target.state_dict()[name]
        assert torch.allclose(averaged[name], expected, atol=1e-6), name
    for name in buffers:
        assert torch.equal(averaged[name], target.state_dict()[name]), name
    assert not any(p.requires_grad for p in ema.model.parameters())
    # the averaged copy is its own: training the model further leaves it alone
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    assert torch.equal(ema.state_dict()[next(iter(params))], averaged[next(iter(params))])


def test_bc_exports_the_weight_average(tmp_path: Path, reach_demos: Path) -> None:
    out = train_bc(
        _config(reach_demos, tmp_path / "ema"), text_encoder=FakeText(), progress_bar=False
    )
    exported = TinyVLA.from_pretrained(out).state_dict()
    snapshot = _final_snapshot(out)
    average = load_tensors(snapshot / "ema.safetensors")
    last_iterate = load_tensors(snapshot / "model.safetensors")
    assert all(torch.equal(exported[k], average[k]) for k in exported)
    differs = [k for k in exported if not torch.equal(exported[k], last_iterate[k])]
    assert differs  # the average is not the last iterate...
    # ...and the run without an average exports its last iterate (same seed, same steps)
    plain = train_bc(
        _config(reach_demos, tmp_path / "plain", ema_decay=0.0),
        text_encoder=FakeText(),
        progress_bar=False,
    )
    plain_weights = TinyVLA.from_pretrained(plain).state_dict()
    assert all(torch.equal(plain_weights[k], last_iterate[k]) for k in plain_weights)
    assert not (_final_snapshot(plain) / "ema.safetensors").exists()
    assert json.loads((out / "bc_summary.json").read_text())["ema_decay"] == 0.9


def test_resume_checks_the_decay_and_accepts_runs_from_before_it(
    tmp_path: Path, reach_demos: Path
) -> None:
    out = tmp_path / "bc"
    train_bc(_config(reach_demos, out, steps=5), text_encoder=FakeText(), progress_bar=False)
    with pytest.raises(CheckpointError, match="ema_decay"):
        train_bc(_config(reach_demos, out, steps=7, ema_decay=0.0), resume=True, progress_bar=False)
    # A run without an average, its snapshot written before the option existed (no key).
    old = tmp_path / "old"
    train_bc(
        _config(reach_demos, old, steps=5, ema_decay=0.0),
        text_encoder=FakeText(),
        progress_bar=False,
    )
    state_path = _final_snapshot(old) / "state.json"
    state = json.loads(state_path.read_text())
    assert "ema_decay" not in state["fingerprint"]
    train_bc(_config(reach_demos, old, steps=7, ema_decay=0.0), resume=True, progress_bar=False)
    assert json.loads((old / "bc_summary.json").read_text())["steps"] == 7


def test_bc_config_and_cli_refuse_a_decay_outside_zero_to_one(
    tmp_path: Path, reach_demos: Path, said: Callable[[str], str]
) -> None:
    with pytest.raises(ValueError, match=r"ema_decay must be in \[0, 1\)"):
        _config(reach_demos, tmp_path / "x", ema_decay=1.0)
    res = CliRunner().invoke(
        app,
        ["bc", "--data", str(reach_demos), "--out", str(tmp_path / "y"), "--ema-decay", "1.5"],
    )
    assert res.exit_code == 2
    assert "ema_decay must be in [0, 1) (0: off), got 1.5" in said(res.output)
