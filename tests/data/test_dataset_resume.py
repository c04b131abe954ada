from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from sarm2_gym.data import (
    DatasetFormatError,
    Episode,
    LeRobotDataset,
    LeRobotDatasetWriter,
    add_frame_columns,
)

from .helpers import TASKS, make_episode

REPO = Path(__file__).resolve().parents[2]


def _write_two(root: Path) -> None:
    with LeRobotDatasetWriter(root, fps=10) as writer:
        writer.add_episode(make_episode(4, seed=0, task=TASKS[0]))
        writer.add_episode(make_episode(5, seed=1, task=TASKS[1]))


def _check_consistent(root: Path, lengths: list[int]) -> LeRobotDataset:
    ds = LeRobotDataset(root)
    assert [m["length"] for m in ds.episodes_meta] == lengths
    index = ds.read_columns(["index", "episode_index", "frame_index"])
    np.testing.assert_array_equal(index["index"], np.arange(sum(lengths)))
    np.testing.assert_array_equal(
        index["episode_index"], np.repeat(np.arange(len(lengths)), lengths)
    )
    for i in range(ds.num_episodes):
        ds.episode(i)  # every committed episode reads completely
    return ds


def test_resume_appends_with_continuing_indices(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    _write_two(root)
    with LeRobotDatasetWriter(root, fps=10) as writer:
        assert writer.num_episodes == 2 and writer.num_frames == 9
        assert [m["seed"] for m in writer.episodes_meta] == [0, 1]
        assert writer.tasks == {0: TASKS[0], 1: TASKS[1]}
        assert writer.add_episode(make_episode(3, seed=7, task=TASKS[1])) == 2
        assert writer.add_episode(make_episode(2, seed=8, task=TASKS[2])) == 3
    ds = _check_consistent(root, [4, 5, 3, 2])
    assert ds.tasks == {0: TASKS[0], 1: TASKS[1], 2: TASKS[2]}
    info = json.loads((root / "meta/info.json").read_text())
    assert (info["total_episodes"], info["total_frames"], info["splits"]) == (
        4,
        14,
        {"train": "0:4"},
    )
    assert json.loads((root / "meta/stats.json").read_text())["progress"]["count"] == [14]


def test_failure_before_commit_leaves_previous_episodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "ds"
    _write_two(root)
    real_replace = os.replace

    def failing_replace(src: object, dst: object) -> None:
        if "meta/episodes" in Path(str(dst)).as_posix():
            raise OSError("disk full")
        real_replace(src, dst)  # type: ignore[arg-type]

    writer = LeRobotDatasetWriter(root, fps=10)
    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        writer.add_episode(make_episode(6, seed=2, task=TASKS[2]))
    monkeypatch.setattr(os, "replace", real_replace)
    assert writer.num_episodes == 2
    assert (root / "data/chunk-000/file-002.parquet").is_file()  # orphan, never committed
    ds = _check_consistent(root, [4, 5])
    assert TASKS[2] in ds.tasks.values()  # the task table was written before the commit
    writer.close()

    with LeRobotDatasetWriter(root, fps=10) as writer:  # resume cleans up
        assert not (root / "data/chunk-000/file-002.parquet").exists()
        assert writer.tasks == {0: TASKS[0], 1: TASKS[1]}
        assert writer.add_episode(make_episode(3, seed=3, task=TASKS[0])) == 2
    assert not list(root.rglob("*sarm2tmp"))
    ds = _check_consistent(root, [4, 5, 3])
    assert ds.tasks == {0: TASKS[0], 1: TASKS[1]}


_KILL_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    sys.path.insert(0, {repo!r})
    from sarm2_gym.data import LeRobotDatasetWriter
    from tests.data.helpers import TASKS, make_episode

    root, kill_at = Path(sys.argv[1]), sys.argv[2]
    writer = LeRobotDatasetWriter(root, fps=10)
    writer.add_episode(make_episode(4, seed=0, task=TASKS[0]))
    writer.add_episode(make_episode(5, seed=1, task=TASKS[1]))
    real_replace = os.replace

    def dying_replace(src, dst):
        real_replace(src, dst)
        if kill_at in Path(str(dst)).as_posix():
            os._exit(3)  # no cleanup, no finally blocks: like a kill -9 right after this file

    os.replace = dying_replace
    writer.add_episode(make_episode(6, seed=2, task=TASKS[2]))
    """
)


@pytest.mark.parametrize(
    ("kill_at", "committed"),
    [
        ("data/chunk-000/file-002.parquet", [4, 5]),
        ("meta/tasks.parquet", [4, 5]),
        ("meta/episodes/chunk-000/file-002.parquet", [4, 5, 6]),
    ],
)
def test_killed_writer_leaves_readable_dataset_and_resumes(
    tmp_path: Path, kill_at: str, committed: list[int]
) -> None:
    root = tmp_path / "ds"
    script = tmp_path / "kill.py"
    script.write_text(_KILL_SCRIPT.format(repo=str(REPO)))
    proc = subprocess.run(
        [sys.executable, str(script), str(root), kill_at],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3, proc.stderr
    _check_consistent(root, committed)  # readable as is, before any repair

    with LeRobotDatasetWriter(root, fps=10) as writer:
        assert writer.num_episodes == len(committed)
        new = writer.add_episode(make_episode(2, seed=9, task=TASKS[0]))
        assert new == len(committed)
    ds = _check_consistent(root, [*committed, 2])
    info = json.loads((root / "meta/info.json").read_text())
    assert info["total_episodes"] == len(committed) + 1
    assert info["total_frames"] == sum(committed) + 2
    assert set(ds.tasks.values()) == {TASKS[i] for i in range(len(committed))}
    assert not list(root.rglob("*sarm2tmp"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fps": 30}, "fps 10"),
        ({"fps": 10, "robot_type": "aloha"}, "robot_type 'sarm2_bimanual'"),
        ({"fps": 10, "chunks_size": 5}, "chunks_size 1000"),
        ({"fps": 10, "features": {"progress": {"dtype": "float64", "shape": [1]}}}, "progress"),
    ],
)
def test_different_dataset_is_refused(tmp_path: Path, kwargs: dict, message: str) -> None:
    root = tmp_path / "ds"
    _write_two(root)
    before = sorted(p.stat().st_mtime_ns for p in root.rglob("*.parquet"))
    with pytest.raises(ValueError, match="holds a different dataset") as err:
        LeRobotDatasetWriter(root, **kwargs)
    assert message in str(err.value)
    assert sorted(p.stat().st_mtime_ns for p in root.rglob("*.parquet")) == before
    LeRobotDatasetWriter(root, fps=10).close()  # and the lock was released


def test_non_dataset_directories(tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    (busy / "sub").mkdir(parents=True)
    (busy / "sub" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty and holds no LeRobot dataset"):
        LeRobotDatasetWriter(busy, fps=10)
    assert (busy / "sub" / "notes.txt").read_text() == "mine"
    assert not (busy / "meta").exists()

    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        LeRobotDatasetWriter(a_file, fps=10)

    empty = tmp_path / "empty"
    (empty / "meta").mkdir(parents=True)  # e.g. left by a crash before info.json
    with LeRobotDatasetWriter(empty, fps=10) as writer:
        writer.add_episode(make_episode(2, cameras=()))

    old = tmp_path / "old"
    _write_two(old)
    info = json.loads((old / "meta/info.json").read_text())
    info["codebase_version"] = "v2.1"
    (old / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(DatasetFormatError, match=r"v2\.1"):
        LeRobotDatasetWriter(old, fps=10)


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    writer = LeRobotDatasetWriter(root, fps=10)
    with pytest.raises(RuntimeError, match="another writer"):
        LeRobotDatasetWriter(root, fps=10)
    with pytest.raises(RuntimeError, match="another writer"):
        add_frame_columns(root, {})
    writer.close()
    with pytest.raises(RuntimeError, match="closed"):
        writer.add_episode(make_episode(2))
    LeRobotDatasetWriter(root, fps=10).close()


def test_nan_is_refused_and_nothing_written(tmp_path: Path) -> None:
    ep = make_episode(3, cameras=())
    frames = dict(ep.frames)
    frames["progress"] = np.array([0.0, np.nan, 1.0], np.float32)
    with pytest.raises(ValueError, match="'progress' holds NaN"):
        Episode(task="t", env_id="", frames=frames, success=False)
    root = tmp_path / "ds"
    with LeRobotDatasetWriter(root, fps=10) as writer:
        ep.frames["observation.state"][1, 3] = np.inf  # corrupted after construction
        with pytest.raises(ValueError, match=r"observation\.state"):
            writer.add_episode(ep)
        bad_meta = make_episode(3, cameras=(), meta={"seed": 0, "knob": object()})
        with pytest.raises(ValueError, match="JSON"):
            writer.add_episode(bad_meta)
        assert writer.num_episodes == 0
    assert not list(root.rglob("*.parquet"))


def test_resume_with_declared_features(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    _write_two(root)
    stored = LeRobotDataset(root).features
    declared = {
        k: {"dtype": f["dtype"], "shape": f["shape"]}
        for k, f in stored.items()
        if k not in ("timestamp", "frame_index", "episode_index", "index", "task_index")
    }
    with LeRobotDatasetWriter(root, fps=10, features=declared) as writer:  # names not compared
        assert writer.num_episodes == 2
    declared["observation.state"]["names"] = [f"joint{i}" for i in range(14)]
    with pytest.raises(ValueError, match="names"):
        LeRobotDatasetWriter(root, fps=10, features=declared)
