from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sarm2_gym.data import LeRobotDataset, LeRobotDatasetWriter

from .helpers import TASKS, make_episode

LEROBOT_INFO_KEYS = {
    "codebase_version",
    "robot_type",
    "total_episodes",
    "total_frames",
    "total_tasks",
    "chunks_size",
    "data_files_size_in_mb",
    "video_files_size_in_mb",
    "fps",
    "splits",
    "data_path",
    "video_path",
    "features",
}
LEROBOT_EPISODE_COLUMNS = {
    "episode_index",
    "tasks",
    "length",
    "data/chunk_index",
    "data/file_index",
    "dataset_from_index",
    "dataset_to_index",
    "meta/episodes/chunk_index",
    "meta/episodes/file_index",
}


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    with LeRobotDatasetWriter(root, fps=10) as writer:
        writer.add_episode(make_episode(5, seed=0, task=TASKS[0]))
        writer.add_episode(make_episode(3, seed=1, task=TASKS[1]))
    return root


def test_info_json(root: Path) -> None:
    info = json.loads((root / "meta/info.json").read_text())
    assert set(info) == LEROBOT_INFO_KEYS
    assert info["codebase_version"] == "v3.0"
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (2, 8, 2)
    assert info["splits"] == {"train": "0:2"}
    assert info["chunks_size"] == 1000 and info["fps"] == 10
    assert info["robot_type"] == "sarm2_bimanual"
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    feats = info["features"]
    assert feats["observation.images.top"] == {
        "dtype": "image",
        "shape": [8, 10, 3],
        "names": ["height", "width", "channels"],
    }
    assert feats["observation.state"]["dtype"] == "float32"
    assert feats["observation.state"]["shape"] == [14]
    assert feats["observation.state"]["names"][0] == "left_x"
    assert feats["progress"] == {"dtype": "float32", "shape": [1], "names": None}
    assert feats["next.done"]["dtype"] == "bool"
    assert feats["act_pri"]["dtype"] == "int64"
    for key, dtype in [
        ("timestamp", "float32"),
        ("frame_index", "int64"),
        ("index", "int64"),
        ("episode_index", "int64"),
        ("task_index", "int64"),
    ]:
        assert feats[key] == {"dtype": dtype, "shape": [1], "names": None}
    # bookkeeping features come last, as in LeRobot
    assert list(feats)[-5:] == ["timestamp", "frame_index", "episode_index", "index", "task_index"]


def test_files_and_schemas(root: Path) -> None:
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.parquet")) == [
        "data/chunk-000/file-000.parquet",
        "data/chunk-000/file-001.parquet",
        "meta/episodes/chunk-000/file-000.parquet",
        "meta/episodes/chunk-000/file-001.parquet",
        "meta/tasks.parquet",
    ]
    tasks = pq.read_table(root / "meta/tasks.parquet")
    assert tasks.column_names == ["task_index", "task"]
    assert tasks.to_pylist() == [
        {"task_index": 0, "task": TASKS[0]},
        {"task_index": 1, "task": TASKS[1]},
    ]
    pandas_meta = json.loads(tasks.schema.metadata[b"pandas"])
    assert pandas_meta["index_columns"] == ["task"]  # pandas.read_parquet indexes by task

    episodes = pq.read_table(root / "meta/episodes/chunk-000/file-001.parquet")
    assert set(episodes.column_names) >= LEROBOT_EPISODE_COLUMNS
    assert {"success", "env_id", "seed", "quality", "quality_knobs"} <= set(episodes.column_names)
    assert "stats/observation.state/mean" in episodes.column_names
    assert episodes.schema.field("tasks").type == pa.list_(pa.string())
    row = episodes.to_pylist()[0]
    assert (row["data/chunk_index"], row["data/file_index"]) == (0, 1)

    data = pq.read_table(root / "data/chunk-000/file-001.parquet")
    schema = data.schema
    assert schema.field("observation.images.top").type == pa.struct(
        [("bytes", pa.binary()), ("path", pa.string())]
    )
    assert schema.field("observation.state").type == pa.list_(pa.float32(), 14)
    assert schema.field("progress").type == pa.float32()
    assert schema.field("next.done").type == pa.bool_()
    assert schema.field("index").type == pa.int64()
    hf = json.loads(schema.metadata[b"huggingface"])["info"]["features"]
    assert hf["observation.images.top"] == {"_type": "Image"}
    assert hf["observation.state"]["length"] == 14
    # every episode file shares one schema so LeRobot can concatenate them
    other = pq.read_schema(root / "meta/episodes/chunk-000/file-000.parquet")
    assert other.equals(episodes.schema)


def test_task_index_is_caller_controlled(tmp_path: Path) -> None:
    with LeRobotDatasetWriter(tmp_path / "ds", fps=10) as writer:
        writer.add_episode(make_episode(3, task=TASKS[2]), task_index=2)
        writer.add_episode(make_episode(3, task=TASKS[2]))  # known task keeps its index
        writer.add_episode(make_episode(3, task=TASKS[0]), task_index=0)
        writer.add_episode(make_episode(3, task="a new task"))  # next free index
        with pytest.raises(ValueError, match="already has task_index 2"):
            writer.add_episode(make_episode(3, task=TASKS[2]), task_index=5)
        with pytest.raises(ValueError, match="already used"):
            writer.add_episode(make_episode(3, task="another"), task_index=0)
        assert writer.num_episodes == 4
    ds = LeRobotDataset(tmp_path / "ds")
    assert ds.tasks == {0: TASKS[0], 2: TASKS[2], 3: "a new task"}
    assert ds.read_frames(0, ["task_index"])["task_index"].tolist() == [2, 2, 2]
    assert [m["task_index"] for m in ds.episodes_meta] == [2, 2, 0, 3]


def test_chunks_roll_over(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    with LeRobotDatasetWriter(root, fps=10, chunks_size=2) as writer:
        for i in range(3):
            writer.add_episode(make_episode(2, seed=i, cameras=()))
    assert (root / "data/chunk-001/file-000.parquet").is_file()
    assert (root / "meta/episodes/chunk-001/file-000.parquet").is_file()
    ds = LeRobotDataset(root)
    assert ds.episode_meta(2)["data/chunk_index"] == 1
    assert ds.read_frames(2, ["index"])["index"].tolist() == [4, 5]


def test_declared_features_are_enforced(tmp_path: Path) -> None:
    ep = make_episode(3, cameras=("top",))
    features = {
        k: {
            "dtype": "image" if k.startswith("observation.images") else v.dtype.name,
            "shape": list(v.shape[1:]) or [1],
        }
        for k, v in ep.frames.items()
    }
    features["observation.state"]["names"] = [f"s{i}" for i in range(14)]
    with LeRobotDatasetWriter(tmp_path / "ds", fps=10, features=features) as writer:
        info = json.loads((tmp_path / "ds/meta/info.json").read_text())
        assert info["features"]["observation.state"]["names"][0] == "s0"
        writer.add_episode(ep)
        with pytest.raises(ValueError, match=r"missing columns \['observation.images.top'\]"):
            writer.add_episode(make_episode(3, cameras=()))
        with pytest.raises(ValueError, match=r"'observation.images.top': shape"):
            writer.add_episode(make_episode(3, cameras=("top",), image_hw=(4, 4)))
        bad = make_episode(3, cameras=("top",))
        bad.frames["extra"] = np.zeros(3, np.float32)
        with pytest.raises(ValueError, match=r"unexpected columns \['extra'\]"):
            writer.add_episode(bad)
        wrong_fps = make_episode(3, cameras=("top",))
        wrong_fps.fps = 30
        with pytest.raises(ValueError, match="fps"):
            writer.add_episode(wrong_fps)
        assert writer.num_episodes == 1
