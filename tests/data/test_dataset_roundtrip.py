from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sarm2_gym.data import LeRobotDataset, LeRobotDatasetWriter
from sarm2_gym.data.features import _encode_frames, decode_png, encode_png
from sarm2_gym.data.stats import feature_stats

from .helpers import TASKS, assert_frames_equal, make_episode


@pytest.fixture()
def written(tmp_path: Path) -> tuple[Path, list]:
    episodes = [
        make_episode(6, seed=0, task=TASKS[0], extra=True),
        make_episode(9, seed=1, task=TASKS[1], extra=True, success=False),
        make_episode(4, seed=2, task=TASKS[0], extra=True, meta={"seed": 2, "note": [1, 2]}),
    ]
    root = tmp_path / "ds"
    with LeRobotDatasetWriter(root, fps=10) as writer:
        for i, ep in enumerate(episodes):
            assert writer.add_episode(ep) == i
        assert writer.num_episodes == 3
        assert writer.num_frames == 19
    return root, episodes


def test_round_trip_is_exact(written: tuple[Path, list]) -> None:
    root, episodes = written
    ds = LeRobotDataset(root)
    assert (ds.num_episodes, ds.num_frames, ds.fps, len(ds)) == (3, 19, 10, 19)
    assert ds.tasks == {0: TASKS[0], 1: TASKS[1]}
    assert ds.robot_type == "sarm2_bimanual"
    assert ds.camera_keys == ["observation.images.top", "observation.images.left_wrist"]
    for i, want in enumerate(episodes):
        got = ds.episode(i)
        assert_frames_equal(got.frames, want.frames)
        assert (got.task, got.env_id, got.success, got.fps) == (
            want.task,
            want.env_id,
            want.success,
            want.fps,
        )
        assert got.meta == want.meta
    assert [e.task for e in ds.iter_episodes(decode_images=False)] == [e.task for e in episodes]


def test_images_are_stored_as_lossless_png(written: tuple[Path, list]) -> None:
    root, episodes = written
    ds = LeRobotDataset(root)
    raw = ds.read_frames(1, ["observation.images.top"], decode_images=False)
    blobs = raw["observation.images.top"]
    assert blobs.dtype == object and len(blobs) == 9
    assert all(b[:8] == b"\x89PNG\r\n\x1a\n" for b in blobs)
    decoded = np.stack([decode_png(b) for b in blobs])
    assert decoded.tobytes() == episodes[1].frames["observation.images.top"].tobytes()


def test_bookkeeping_columns(written: tuple[Path, list]) -> None:
    root, _ = written
    ds = LeRobotDataset(root)
    cols = ds.read_frames(1, ["timestamp", "frame_index", "episode_index", "index", "task_index"])
    np.testing.assert_array_equal(cols["frame_index"], np.arange(9))
    np.testing.assert_allclose(cols["timestamp"], np.arange(9) / 10)
    assert cols["timestamp"].dtype == np.float32
    np.testing.assert_array_equal(cols["episode_index"], np.full(9, 1))
    np.testing.assert_array_equal(cols["index"], 6 + np.arange(9))
    np.testing.assert_array_equal(cols["task_index"], np.full(9, 1))
    assert all(cols[k].dtype == np.int64 for k in ("frame_index", "index", "task_index"))
    # the episode view never contains them
    assert "index" not in ds.episode(1).frames


def test_partial_reads(written: tuple[Path, list]) -> None:
    root, episodes = written
    ds = LeRobotDataset(root)
    ep = ds.episode(0, columns=["stage_probs"], decode_images=False)
    assert "observation.images.top" not in ep.frames
    assert "observation.environment_state" not in ep.frames
    np.testing.assert_array_equal(ep.frames["stage_probs"], episodes[0].frames["stage_probs"])
    cols = ds.read_columns(["observation.state", "act_pri", "progress", "episode_index"])
    assert cols["observation.state"].shape == (19, 14)
    want = np.concatenate([e.frames["act_pri"] for e in episodes])
    np.testing.assert_array_equal(cols["act_pri"], want)
    np.testing.assert_array_equal(np.bincount(cols["episode_index"]), [6, 9, 4])
    with pytest.raises(KeyError, match="nope"):
        ds.read_frames(0, ["nope"])
    with pytest.raises(IndexError):
        ds.episode(3)


def test_frame_access_by_global_index(written: tuple[Path, list]) -> None:
    root, episodes = written
    ds = LeRobotDataset(root)
    item = ds[7]  # episode 1, frame 1
    assert item["task"] == TASKS[1]
    assert (item["episode_index"], item["frame_index"], item["index"]) == (1, 1, 7)
    np.testing.assert_array_equal(
        item["observation.state"], episodes[1].frames["observation.state"][1]
    )
    np.testing.assert_array_equal(
        item["observation.images.left_wrist"],
        episodes[1].frames["observation.images.left_wrist"][1],
    )
    assert ds[-1]["index"] == 18
    with pytest.raises(IndexError):
        ds[19]


def test_episode_meta_columns(written: tuple[Path, list]) -> None:
    root, _ = written
    ds = LeRobotDataset(root)
    meta = ds.episode_meta(1)
    assert meta["episode_index"] == 1
    assert meta["tasks"] == [TASKS[1]]
    assert meta["task_index"] == 1
    assert (meta["length"], meta["dataset_from_index"], meta["dataset_to_index"]) == (9, 6, 15)
    assert meta["success"] is False
    assert meta["env_id"] == "SARM2-PlatesIntoBin-v0"
    assert (meta["seed"], meta["quality"]) == (1, "noisy")
    assert meta["quality_knobs"] == {"noise": 0.05, "speed": 1.2}
    # absent knobs are stored as nulls, not invented
    assert ds.episode_meta(2)["quality"] is None and ds.episode_meta(2)["quality_knobs"] is None
    assert not any(k.startswith("stats/") for k in meta)


def test_stats_match_numpy(written: tuple[Path, list]) -> None:
    root, episodes = written
    stats = json.loads((root / "meta/stats.json").read_text())
    state = np.concatenate([e.frames["observation.state"] for e in episodes]).astype(np.float64)
    np.testing.assert_allclose(stats["observation.state"]["mean"], state.mean(0), rtol=1e-10)
    np.testing.assert_allclose(stats["observation.state"]["std"], state.std(0), rtol=1e-10)
    np.testing.assert_allclose(stats["observation.state"]["min"], state.min(0))
    np.testing.assert_allclose(stats["observation.state"]["max"], state.max(0))
    assert stats["observation.state"]["count"] == [19]
    assert stats["progress"]["mean"] == pytest.approx(
        [np.concatenate([e.frames["progress"] for e in episodes]).astype(np.float64).mean()]
    )
    img = stats["observation.images.top"]
    assert np.asarray(img["mean"]).shape == (3, 1, 1)
    assert np.min(img["min"]) >= 0.0 and np.max(img["max"]) <= 1.0
    pixels = np.concatenate([e.frames["observation.images.top"] for e in episodes]) / 255.0
    np.testing.assert_allclose(np.ravel(img["mean"]), pixels.mean((0, 1, 2)), rtol=1e-10)
    assert "segment" not in stats  # strings have no statistics, as in LeRobot
    assert {"timestamp", "frame_index", "index", "task_index", "episode_index"} <= set(stats)
    assert LeRobotDataset(root).stats["observation.state"]["count"].tolist() == [19]


def test_image_stats_equal_the_float_computation() -> None:
    # The histogram path must give what float64 min/max/mean/std over every pixel give.
    rng = np.random.default_rng(3)
    frames = rng.integers(30, 220, (7, 12, 10, 3), dtype=np.uint8)
    frames[2, 3, 4] = (0, 255, 9)
    feature = {"dtype": "image", "shape": [12, 10, 3], "names": ["height", "width", "channels"]}
    got = feature_stats(frames, feature)
    x = frames.astype(np.float64) / 255.0
    for name, fn in (("min", np.min), ("max", np.max), ("mean", np.mean), ("std", np.std)):
        np.testing.assert_allclose(got[name].ravel(), fn(x, axis=(0, 1, 2)), rtol=1e-12)
    assert got["min"].ravel()[0] == 0.0 and got["max"].ravel()[1] == 1.0
    assert got["count"].tolist() == [7]


def test_threaded_png_encoding_matches_frame_by_frame() -> None:
    frames = np.random.default_rng(0).integers(0, 256, (40, 9, 11, 3), dtype=np.uint8)
    encoded = _encode_frames(frames, 1)
    assert encoded == [encode_png(f, 1) for f in frames]  # same bytes, same order
    assert np.array_equal(decode_png(encoded[17]), frames[17])


def test_column_of_shape_t_by_1_reads_back_flat(tmp_path: Path) -> None:
    ep = make_episode(5, cameras=())
    ep.frames["weight"] = np.ones((5, 1), np.float32)
    with LeRobotDatasetWriter(tmp_path / "ds", fps=10) as writer:
        writer.add_episode(ep)
    ds = LeRobotDataset(tmp_path / "ds")
    assert ds.features["weight"]["shape"] == [1]
    assert ds.episode(0).frames["weight"].shape == (5,)
