"""``sarm2 adapt-rm``: RM1 fine-tuned on rollouts labelled with ``sarm2 annotate`` (real-robot
stage 2a), and :func:`load_annotated_rollouts` that feeds it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from reward_helpers import synthetic_episode
from typer.testing import CliRunner

from sarm2_gym.algos.spiral.adaptation import load_annotated_rollouts
from sarm2_gym.cli import app
from sarm2_gym.data import LeRobotDataset, LeRobotDatasetWriter
from sarm2_gym.real.annotate_cli import AnnotationSession
from sarm2_gym.reward import SARM2RewardModel
from sarm2_gym.reward.config import BENCHMARK_INSTRUCTIONS
from sarm2_gym.reward.testing import tiny_model

TASK = BENCHMARK_INSTRUCTIONS[1]


def _real_dataset(root: Path, lengths: tuple[int, ...]) -> Path:
    """Episodes as a real robot's recorder writes them: placeholder progress, so marked."""
    with LeRobotDatasetWriter(root, fps=10) as writer:
        for i, n in enumerate(lengths):
            ep = synthetic_episode(n, seed=i, task=TASK, success=i == 0)
            ep.meta["privileged_progress"] = False
            writer.add_episode(ep, task_index=0)
    return root


def _annotate(root: Path, lines: list[str]) -> None:
    it = iter(lines)
    AnnotationSession(root, input_fn=lambda _: next(it), print_fn=lambda *a: None).run()


@pytest.fixture
def rollouts(tmp_path: Path) -> Path:
    root = _real_dataset(tmp_path / "rollouts", (20, 16, 24))
    _annotate(
        root,
        [
            "seg 0 20 fast", "final 1", "done",  # episode 0: done well
            "skip",  # episode 1: not annotated
            "seg 0 12 slow", "seg 12 24 mistake", "final 0.2", "done",  # episode 2: undone
        ],
    )  # fmt: skip
    return root


def test_load_annotated_rollouts_gives_the_annotate_tools_curves(rollouts: Path) -> None:
    loaded = load_annotated_rollouts(rollouts)
    assert [r.episode.meta["dataset_episode"] for r in loaded] == [0, 2]
    ds = LeRobotDataset(rollouts)
    for r in loaded:
        index = r.episode.meta["dataset_episode"]
        column = ds.read_frames(index, ["annotated_progress"])["annotated_progress"]
        np.testing.assert_allclose(r.progress, column, atol=1e-6)
        assert r.episode.progress is None  # the recorder's zeros are no privileged progress
    assert loaded[1].progress[-1] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="sarm2 annotate"):
        load_annotated_rollouts(_real_dataset(Path(str(rollouts) + "_bare"), (10,)))


def test_adapt_rm_fine_tunes_rm1_into_rm2(
    rollouts: Path, tmp_path: Path, said: Callable[[str], str]
) -> None:
    rm1 = tiny_model(image_size=40)
    rm1.save_pretrained(tmp_path / "rm1")
    demos = _real_dataset(tmp_path / "demos", (18, 22))
    runner = CliRunner()
    args = ["adapt-rm", "--model", str(tmp_path / "rm1"), "--rollouts", str(rollouts)]
    res = runner.invoke(
        app,
        [*args, "--out", str(tmp_path / "rm2"), "--steps", "30", "--batch-size", "8",
         "--lr", "3e-3", "--demos", str(demos), "--demo-episodes", "1"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "2 annotated rollouts (44 frames), 1 demonstrations" in res.output
    rm2 = SARM2RewardModel.from_pretrained(tmp_path / "rm2")
    before, after = rm1.state_dict(), rm2.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before if k.startswith("stage."))
    assert not all(torch.equal(after[k], before[k]) for k in before if k.startswith("value."))

    res = runner.invoke(app, [*args, "--out", str(tmp_path / "rm2")])
    assert res.exit_code != 0 and "already holds a model" in said(res.output)
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "x"), "--demo-fraction", "0.3"])
    assert res.exit_code != 0 and "need --demos" in said(res.output)
    bare = _real_dataset(tmp_path / "bare", (10,))
    res = runner.invoke(
        app, ["adapt-rm", "--model", str(tmp_path / "rm1"), "--rollouts", str(bare), "--out",
              str(tmp_path / "y")],
    )  # fmt: skip
    assert res.exit_code != 0 and "sarm2 annotate" in said(res.output)


def test_adapt_rm_help_states_the_config_defaults() -> None:
    """The help names the defaults without importing torch; they must be AdaptationConfig's."""
    import re

    from typer.main import get_command

    from sarm2_gym.reward.adaptation import AdaptationConfig

    options = {p.name: p for p in get_command(app).commands["adapt-rm"].params}  # type: ignore[attr-defined]
    defaults = AdaptationConfig()
    for field in ("steps", "batch_size", "lr", "demo_fraction"):
        stated = re.search(r"\(default ([^)]+)\)", getattr(options[field], "help", "") or "")
        assert stated is not None, field
        assert float(stated.group(1)) == float(getattr(defaults, field)), field
