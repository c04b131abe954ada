"""Labelling on a local Ray cluster writes exactly what single-process labelling writes."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from sarm2_gym.cli import app
from sarm2_gym.data import LeRobotDataset
from sarm2_gym.data.generation import collect
from sarm2_gym.reward.labeller import PROGRESS_COLUMN, REWARD_COLUMN, label_dataset
from sarm2_gym.reward.testing import tiny_model

pytestmark = pytest.mark.slow

ENV = "SARM2-CleanWhiteboard-v0"
SIZE = 48


@pytest.fixture()
def local_ray() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    yield
    ray.shutdown()


def test_ray_labels_equal_single_process(tmp_path: Path, local_ray: None) -> None:
    data = collect([ENV], 2, tmp_path / "data", seed=3, image_size=SIZE, progress=False)
    single, on_ray = tmp_path / "single", tmp_path / "ray"
    shutil.copytree(data, single)
    shutil.copytree(data, on_ray)
    model = tiny_model(SIZE, seed=1)
    label_dataset(single, model, progress=False)
    checkpoint = model.save_pretrained(tmp_path / "model")
    result = CliRunner().invoke(
        app,
        [
            "label",
            str(on_ray),
            "--model",
            str(checkpoint),
            "--num-workers",
            "2",
            "--ray-address",
            "local",
        ],
    )
    assert result.exit_code == 0, result.output
    a, b = LeRobotDataset(single), LeRobotDataset(on_ray)
    assert a.num_episodes == b.num_episodes == 2
    for i in range(2):
        cols = [PROGRESS_COLUMN, REWARD_COLUMN]
        fa, fb = a.read_frames(i, cols), b.read_frames(i, cols)
        for c in cols:
            np.testing.assert_array_equal(fa[c], fb[c], err_msg=f"episode {i} {c}")
        assert np.ptp(fa[PROGRESS_COLUMN]) >= 0  # labelled, finite
    ta = pq.read_table(single / "sarm_progress.parquet")
    tb = pq.read_table(on_ray / "sarm_progress.parquet")
    assert ta.equals(tb)
