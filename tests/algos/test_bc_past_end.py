"""What BC does with chunk steps past an episode's end (``BCConfig.past_end``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sarm2_gym.algos.common.io import CheckpointError
from sarm2_gym.algos.vla import train_bc
from sarm2_gym.algos.vla.data import load_demos
from sarm2_gym.algos.vla.flow import sample_flow_times
from sarm2_gym.cli import app

from .helpers import IMAGE, FakeText, tiny_bc_config, tiny_vla


def test_the_loss_masks_or_trains_the_steps_past_the_end(reach_demos: Path) -> None:
    vla = tiny_vla()
    demos = load_demos([reach_demos], cameras=vla.config.cameras, image_size=IMAGE, max_episodes=1)
    last = demos.num_frames - 1
    index = np.array([0, last - 2])  # the second chunk has 3 recorded steps, then padding
    batch = demos.batch(index, vla.chunk_size)
    assert batch.action_pad[0].sum() == 0 and batch.action_pad[1].sum() == vla.chunk_size - 3
    # the padding repeats the episode's final row: hold still, the gripper as it ended
    assert torch.equal(batch.actions[1, 3:], batch.actions[1, 2:3].expand(vla.chunk_size - 3, -1))

    # The per-step errors by hand, from the same draws the loss makes (no image shift: none).
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        feats = vla.features_from_inputs(batch.inputs, batch.task_ids)
        target = vla.normalize_actions(batch.actions)
        noise = torch.randn(target.shape, generator=gen)
        t = sample_flow_times(2, vla.config.flow_time_alpha, gen)
        err = vla.head.loss(target, feats, noise, t).mean(dim=-1)  # (2, H)
        masked = vla.bc_loss(batch, generator=torch.Generator().manual_seed(7))
        held = vla.bc_loss(batch, generator=torch.Generator().manual_seed(7), mask_padding=False)
    by_hand_masked = (err[0].mean() + err[1, :3].mean()) / 2
    by_hand_held = err.mean()
    assert float(masked) == pytest.approx(float(by_hand_masked), rel=1e-5)
    assert float(held) == pytest.approx(float(by_hand_held), rel=1e-5)
    assert float(masked) != pytest.approx(float(held), rel=1e-3)


def test_bc_runs_record_the_mode_and_refuse_to_resume_with_another(
    tmp_path: Path, reach_demos: Path
) -> None:
    out = tmp_path / "hold"
    train_bc(
        tiny_bc_config(reach_demos, out, past_end="hold", steps=5),
        text_encoder=FakeText(),
        progress_bar=False,
    )
    assert json.loads((out / "bc_summary.json").read_text())["past_end"] == "hold"
    with pytest.raises(CheckpointError, match=r"different \['past_end'\]"):
        train_bc(tiny_bc_config(reach_demos, out, steps=7), resume=True, progress_bar=False)
    # the default mode leaves the fingerprint as runs from before the option had it
    assert "past_end" not in tiny_bc_config(reach_demos, out).fingerprint()
    with pytest.raises(ValueError, match="past_end must be one of"):
        tiny_bc_config(reach_demos, out, past_end="repeat")
    result = CliRunner().invoke(
        app, ["bc", "--data", str(reach_demos), "--out", str(tmp_path / "x"), "--past-end", "pad"]
    )
    assert result.exit_code != 0 and "past_end must be one of" in result.output
