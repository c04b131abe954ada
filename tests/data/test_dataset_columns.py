from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sarm2_gym.data import (
    LeRobotDataset,
    LeRobotDatasetWriter,
    add_frame_columns,
    read_sarm_progress,
    write_sarm_progress,
)

from .helpers import TASKS, make_episode


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    with LeRobotDatasetWriter(root, fps=10) as writer:
        writer.add_episode(make_episode(4, seed=0, task=TASKS[0]))
        writer.add_episode(make_episode(6, seed=1, task=TASKS[1]))
    return root


def test_add_new_columns_round_trip(root: Path) -> None:
    before = LeRobotDataset(root)
    images_before = [
        before.read_frames(i, ["observation.images.top"], decode_images=False) for i in range(2)
    ]
    reward = {
        0: np.linspace(0, 1, 4, dtype=np.float32),
        1: np.linspace(0, 0.5, 6, dtype=np.float32),
    }
    probs = {
        0: np.full((4, 3), 1 / 3, np.float32),
        1: np.eye(3, dtype=np.float32)[[0, 1, 2, 2, 1, 0]],
    }
    add_frame_columns(root, {"sarm2.progress": reward, "sarm2.stage_probs": probs})

    ds = LeRobotDataset(root)
    assert ds.features["sarm2.progress"] == {"dtype": "float32", "shape": [1], "names": None}
    assert ds.features["sarm2.stage_probs"]["shape"] == [3]
    assert list(ds.features)[-5:][0] == "timestamp"  # new features go before bookkeeping
    for i in range(2):
        frames = ds.read_frames(i, ["sarm2.progress", "sarm2.stage_probs"])
        np.testing.assert_array_equal(frames["sarm2.progress"], reward[i])
        np.testing.assert_array_equal(frames["sarm2.stage_probs"], probs[i])
        raw = ds.read_frames(i, ["observation.images.top"], decode_images=False)
        assert (
            raw["observation.images.top"].tolist()
            == images_before[i]["observation.images.top"].tolist()
        )
        assert "sarm2.progress" in ds.episode(i).frames
    stats = json.loads((root / "meta/stats.json").read_text())
    both = np.concatenate([reward[0], reward[1]]).astype(np.float64)
    assert stats["sarm2.progress"]["mean"] == pytest.approx([both.mean()])
    assert stats["sarm2.progress"]["count"] == [10]
    assert stats["observation.state"]["count"] == [10]  # untouched features keep their stats
    row = pq.read_table(root / "meta/episodes/chunk-000/file-001.parquet").to_pylist()[0]
    assert row["stats/sarm2.progress/max"] == pytest.approx([0.5])
    # The writer resumes with the new schema: new episodes must carry the new columns.
    with LeRobotDatasetWriter(root, fps=10) as writer:
        with pytest.raises(ValueError, match="missing columns"):
            writer.add_episode(make_episode(2, seed=5))
        ep = make_episode(2, seed=5)
        ep.frames["sarm2.progress"] = np.zeros(2, np.float32)
        ep.frames["sarm2.stage_probs"] = np.zeros((2, 3), np.float32)
        assert writer.add_episode(ep) == 2


def test_overwrite_rules(root: Path) -> None:
    new = {0: np.full(4, 0.5, np.float64)}  # float64 is cast to the stored float32
    with pytest.raises(ValueError, match="already exists"):
        add_frame_columns(root, {"progress": new})
    add_frame_columns(root, {"progress": new}, overwrite=True)
    ds = LeRobotDataset(root)
    assert ds.read_frames(0, ["progress"])["progress"].tolist() == [0.5] * 4
    assert ds.read_frames(0, ["progress"])["progress"].dtype == np.float32
    np.testing.assert_array_equal(
        ds.read_frames(1, ["progress"])["progress"], np.linspace(0, 1, 6, dtype=np.float32)
    )  # other episode kept
    assert ds.features["progress"]["dtype"] == "float32"


@pytest.mark.parametrize(
    ("columns", "error", "message"),
    [
        ({"label": {0: np.zeros(4)}}, ValueError, "must cover every episode"),
        ({"label": {0: np.zeros(4), 1: np.zeros(5)}}, ValueError, "has 6 frames"),
        ({"label": {0: np.zeros(4), 1: np.full(6, np.nan)}}, ValueError, "NaN"),
        ({"label": {0: np.zeros(4), 1: np.zeros((6, 2))}}, ValueError, "differs"),
        ({"label": {0: np.zeros(4), 7: np.zeros(6)}}, IndexError, "episode 7"),
        ({"index": {0: np.zeros(4), 1: np.zeros(6)}}, ValueError, "maintained by the dataset"),
        ({"a/b": {0: np.zeros(4), 1: np.zeros(6)}}, ValueError, "forbids '/'"),
        ({"progress": {0: np.zeros((4, 2), np.float32)}}, ValueError, "shape"),
        ({"act_pri": {0: np.zeros(4, np.float32)}}, ValueError, "dtype"),
    ],
)
def test_invalid_columns_change_nothing(
    root: Path, columns: dict, error: type[Exception], message: str
) -> None:
    snapshot = {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    with pytest.raises(error, match=message):
        add_frame_columns(root, columns, overwrite=True)
    assert {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()} == snapshot


def test_sarm_progress_schema(root: Path) -> None:
    sparse = {1: np.linspace(0, 1, 6), 0: np.linspace(0, 1, 4)}
    dense = {0: np.zeros(4), 1: np.ones(6)}
    path = write_sarm_progress(root, sparse, dense)
    assert path == root / "sarm_progress.parquet"
    table = pq.read_table(path)
    assert table.schema.names == [
        "index",
        "episode_index",
        "frame_index",
        "progress_sparse",
        "progress_dense",
    ]
    assert [f.type for f in table.schema] == [pa.int64()] * 3 + [pa.float32()] * 2
    data = read_sarm_progress(path)
    np.testing.assert_array_equal(data["index"], np.arange(10))
    np.testing.assert_array_equal(data["episode_index"], [0] * 4 + [1] * 6)
    np.testing.assert_array_equal(data["frame_index"], [*range(4), *range(6)])
    np.testing.assert_allclose(data["progress_sparse"][4:], np.linspace(0, 1, 6), rtol=1e-6)
    np.testing.assert_array_equal(data["progress_dense"], [0] * 4 + [1] * 6)

    only = write_sarm_progress(root, {1: np.zeros(6)}, path=root / "other.parquet")
    table = pq.read_table(only)
    assert table.schema.names == ["index", "episode_index", "frame_index", "progress_sparse"]
    assert table.column("index").to_pylist() == list(range(4, 10))

    with pytest.raises(ValueError, match="same episodes"):
        write_sarm_progress(root, sparse, {0: np.zeros(4)})
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        write_sarm_progress(root, {0: np.zeros(3)})
    with pytest.raises(ValueError, match="NaN"):
        write_sarm_progress(root, {0: np.full(4, np.nan)})
