from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sarm2_gym.data import DatasetFormatError, LeRobotDataset, LeRobotDatasetWriter

from .helpers import make_episode


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    with LeRobotDatasetWriter(root, fps=10) as writer:
        writer.add_episode(make_episode(3, seed=0))
        writer.add_episode(make_episode(3, seed=1))
    return root


def test_missing_dataset(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        LeRobotDataset(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"info\.json is missing"):
        LeRobotDataset(tmp_path)


def test_corrupt_or_foreign_info(root: Path) -> None:
    info_path = root / "meta/info.json"
    info = json.loads(info_path.read_text())
    info_path.write_text("{not json")
    with pytest.raises(DatasetFormatError, match="not valid JSON"):
        LeRobotDataset(root)
    info_path.write_text(json.dumps({**info, "codebase_version": "v2.1"}))
    with pytest.raises(DatasetFormatError, match=r"codebase_version 'v2\.1'"):
        LeRobotDataset(root)
    del info["features"]
    info_path.write_text(json.dumps(info))
    with pytest.raises(DatasetFormatError, match="features"):
        LeRobotDataset(root)


def test_missing_or_corrupt_data_file(root: Path) -> None:
    (root / "data/chunk-000/file-001.parquet").unlink()
    ds = LeRobotDataset(root)
    ds.episode(0)
    with pytest.raises(FileNotFoundError, match=r"file-001\.parquet of episode 1"):
        ds.episode(1)
    (root / "data/chunk-000/file-000.parquet").write_bytes(b"garbage")
    with pytest.raises(DatasetFormatError, match="unreadable"):
        ds.read_frames(0, ["progress"])
    with pytest.raises(DatasetFormatError, match="missing"):
        LeRobotDatasetWriter(root, fps=10)  # never appends to a damaged dataset


def test_missing_episode_row(root: Path) -> None:
    (root / "meta/episodes/chunk-000/file-000.parquet").unlink()
    with pytest.raises(DatasetFormatError, match="missing"):
        LeRobotDataset(root)


def test_reads_lerobot_multi_episode_files(root: Path) -> None:
    """LeRobot's own writer packs several episodes into one file; reading must still work."""
    want = [LeRobotDataset(root).episode(i) for i in range(2)]
    data = pa.concat_tables(
        [pq.read_table(root / f"data/chunk-000/file-00{i}.parquet") for i in range(2)]
    )
    rows = [
        pq.read_table(root / f"meta/episodes/chunk-000/file-00{i}.parquet").to_pylist()[0]
        for i in range(2)
    ]
    for i in range(2):
        (root / f"data/chunk-000/file-00{i}.parquet").unlink()
        (root / f"meta/episodes/chunk-000/file-00{i}.parquet").unlink()
    pq.write_table(data, root / "data/chunk-000/file-000.parquet")
    rows[1]["data/file_index"] = 0
    pq.write_table(pa.Table.from_pylist(rows), root / "meta/episodes/chunk-000/file-000.parquet")

    ds = LeRobotDataset(root)
    for i in range(2):
        got = ds.episode(i)
        for key, arr in want[i].frames.items():
            assert (got.frames[key] == arr).all(), key
    assert ds[4]["frame_index"] == 1
    with pytest.raises(ValueError, match="several episodes per file"):
        LeRobotDatasetWriter(root, fps=10)
