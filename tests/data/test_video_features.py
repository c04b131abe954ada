"""LeRobot v3.0 datasets with ``video`` cameras, as LeRobot writes them (and the hub stores them).

The dataset is written here by hand, file by file, the way LeRobot's writer lays it out: one data
file and one ``meta/episodes`` file for all episodes, cameras as MP4 files holding several
episodes back to back (located by ``videos/<key>/{chunk,file}_index`` and
``videos/<key>/{from,to}_timestamp``), a 6-d state, ``task_index`` + ``meta/tasks.parquet``, and
no ``act_pri`` / ``progress`` columns. It then goes through everything a user of
``docs/tutorials/train_on_lerobot_data.md`` does: read frames, add primitive labels, train,
evaluate, label.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from sarm2_gym.data import DatasetFormatError, LeRobotDataset, add_frame_columns
from sarm2_gym.data.layout import DATA_PATH, VIDEO_PATH
from sarm2_gym.data.meta import write_tasks
from sarm2_gym.data.stats import feature_stats, stats_to_json
from sarm2_gym.envs.core.primitives import primitive_index
from sarm2_gym.reward import SARM2Config
from sarm2_gym.reward.trainer import TrainOptions, TrainResult, train_reward_model

FPS = 10
H, W = 48, 64  # not square, not the model's size: the trainer resizes
STATE_DIM = 6
CAMERAS = ("cam_high", "cam_left_wrist")
TASK = "put the cup on the saucer"
LENGTHS = (14, 17)


def _encoders() -> list[str]:
    out = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-encoders"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return [c for c in ("libx264", "libsvtav1") if f" {c} " in out]


CODECS = _encoders()


def frame(episode: int, t: int, camera: int) -> np.ndarray:
    """A smooth frame (codec friendly) that differs from every other frame of the dataset."""
    img = np.empty((H, W, 3), np.uint8)
    img[..., 0] = (20 + 13 * t) % 256
    img[..., 1] = (50 + 120 * episode) % 256
    img[..., 2] = np.linspace(30 + 60 * camera, 200, W, dtype=np.float64)[None, :].astype(np.uint8)
    return img


def original(episode: int, camera: int, lengths: Sequence[int] = LENGTHS) -> np.ndarray:
    return np.stack([frame(episode, t, camera) for t in range(lengths[episode])])


def _encode(path: Path, frames: Sequence[np.ndarray], codec: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # LeRobot's encoder settings: yuv420p, a key frame every 2 frames.
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (W, H),
        fps=FPS,
        codec=codec,
        pix_fmt_out="yuv420p",
        macro_block_size=1,
        output_params=["-g", "2"],
        ffmpeg_log_level="error",
    )
    writer.send(None)
    for f in frames:
        writer.send(np.ascontiguousarray(f))
    writer.close()


def write_lerobot_video_dataset(
    root: Path,
    codec: str = "libx264",
    *,
    cameras: Sequence[str] = CAMERAS,
    lengths: Sequence[int] = LENGTHS,
    task: str = TASK,
) -> Path:
    """Write a LeRobot v3.0 dataset (2 episodes by default) with video cameras.

    The first camera holds all episodes in one MP4 (episode 1 starts at ``from_timestamp``
    1.4 s); the others have one MP4 per episode (``file_index`` = episode).
    """
    rng = np.random.default_rng(0)
    keys = [f"observation.images.{c}" for c in cameras]
    n = sum(lengths)
    episodes = range(len(lengths))
    starts = np.cumsum((0, *lengths[:-1]))
    # Videos.
    _encode(
        root / VIDEO_PATH.format(video_key=keys[0], chunk_index=0, file_index=0),
        [f for e in episodes for f in original(e, 0, lengths)],
        codec,
    )
    for c in range(1, len(keys)):
        for e in episodes:
            _encode(
                root / VIDEO_PATH.format(video_key=keys[c], chunk_index=0, file_index=e),
                original(e, c, lengths),
                codec,
            )
    # Data: one file for both episodes, HF-datasets style (variable-length lists).
    state = rng.normal(size=(n, STATE_DIM)).astype(np.float32)
    action = rng.normal(size=(n, STATE_DIM)).astype(np.float32)
    frame_index = np.concatenate([np.arange(length) for length in lengths])
    data = pa.table(
        {
            "observation.state": pa.array(state.tolist(), pa.list_(pa.float32())),
            "action": pa.array(action.tolist(), pa.list_(pa.float32())),
            "timestamp": pa.array((frame_index / FPS).astype(np.float32)),
            "frame_index": pa.array(frame_index.astype(np.int64)),
            "episode_index": pa.array(np.repeat(list(episodes), lengths).astype(np.int64)),
            "index": pa.array(np.arange(n, dtype=np.int64)),
            "task_index": pa.array(np.zeros(n, np.int64)),
        }
    )
    path = root / DATA_PATH.format(chunk_index=0, file_index=0)
    path.parent.mkdir(parents=True)
    pq.write_table(data, path)
    # Episode rows: all in one file, video locations per camera, stats of the numeric features.
    video_info = {
        "video.height": H,
        "video.width": W,
        "video.codec": "h264" if codec == "libx264" else "av1",
        "video.pix_fmt": "yuv420p",
        "video.is_depth_map": False,
        "video.fps": FPS,
        "video.channels": 3,
        "has_audio": False,
    }
    features = {
        **{
            k: {
                "dtype": "video",
                "shape": [H, W, 3],
                "names": ["height", "width", "channels"],
                "info": video_info,
            }
            for k in keys
        },
        "observation.state": {
            "dtype": "float32",
            "shape": [STATE_DIM],
            "names": [f"joint_{i}" for i in range(STATE_DIM)],
        },
        "action": {
            "dtype": "float32",
            "shape": [STATE_DIM],
            "names": [f"joint_{i}" for i in range(STATE_DIM)],
        },
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        "frame_index": {"dtype": "int64", "shape": [1], "names": None},
        "episode_index": {"dtype": "int64", "shape": [1], "names": None},
        "index": {"dtype": "int64", "shape": [1], "names": None},
        "task_index": {"dtype": "int64", "shape": [1], "names": None},
    }
    rows = []
    for e, length in enumerate(lengths):
        rows_e = slice(starts[e], starts[e] + length)
        row = {
            "episode_index": e,
            "data/chunk_index": 0,
            "data/file_index": 0,
            "dataset_from_index": int(starts[e]),
            "dataset_to_index": int(starts[e] + length),
            "tasks": [task],
            "length": length,
            "meta/episodes/chunk_index": 0,
            "meta/episodes/file_index": 0,
        }
        for c, k in enumerate(keys):
            file, t0 = (0, starts[e] / FPS) if c == 0 else (e, 0.0)
            row[f"videos/{k}/chunk_index"] = 0
            row[f"videos/{k}/file_index"] = file
            row[f"videos/{k}/from_timestamp"] = float(t0)
            row[f"videos/{k}/to_timestamp"] = float(t0 + length / FPS)
        for key, arr in (("observation.state", state), ("action", action)):
            for name, value in feature_stats(arr[rows_e], features[key]).items():
                row[f"stats/{key}/{name}"] = value.tolist()
        rows.append(row)
    path = root / "meta/episodes/chunk-000/file-000.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    write_tasks(root, {0: task})
    stats = {
        "observation.state": feature_stats(state, features["observation.state"]),
        "action": feature_stats(action, features["action"]),
    }
    (root / "meta/stats.json").write_text(json.dumps(stats_to_json(stats), indent=4))
    info = {
        "codebase_version": "v3.0",
        "robot_type": "aloha",
        "total_episodes": len(lengths),
        "total_frames": n,
        "total_tasks": 1,
        "chunks_size": 1000,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 500,
        "fps": FPS,
        "splits": {"train": f"0:{len(lengths)}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH,
        "features": features,
    }
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))
    return root


def primitive_labels(length: int) -> np.ndarray:
    """``act_pri`` from segment annotations: pick_grab, then place, idle frames ``dummy``."""
    t = np.arange(length) / FPS
    labels = np.full(length, primitive_index("dummy"), np.int64)
    labels[(t >= 0.1) & (t < 0.7)] = primitive_index("pick_grab")
    labels[t >= 0.7] = primitive_index("place")
    return labels


@pytest.fixture(scope="module")
def video_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_lerobot_video_dataset(tmp_path_factory.mktemp("lerobot_video") / "ds")


def _mae(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


# ------------------------------------------------------------------------------- reading
@pytest.mark.parametrize("codec", CODECS)
def test_video_frames_read_back_aligned(tmp_path: Path, codec: str) -> None:
    ds = LeRobotDataset(write_lerobot_video_dataset(tmp_path / "ds", codec))
    keys = [f"observation.images.{c}" for c in CAMERAS]
    assert ds.video_keys == keys and ds.camera_keys == keys
    for e, length in enumerate(LENGTHS):
        cols = ds.read_frames(e)
        assert cols["observation.state"].shape == (length, STATE_DIM)
        for c, key in enumerate(keys):
            got, want = cols[key], original(e, c)
            assert got.dtype == np.uint8 and got.shape == (length, H, W, 3)
            assert _mae(got, want) < 4.0, (codec, e, key)  # lossy codec
            # Order: every decoded frame is closest to its own original (frames differ by 13
            # grey levels in red from one step to the next).
            dist = np.abs(got[:, None].astype(np.int16) - want[None].astype(np.int16)).mean(
                axis=(2, 3, 4)
            )
            assert dist.argmin(axis=1).tolist() == list(range(length)), (codec, e, key)


def test_partial_and_single_frame_reads(video_root: Path) -> None:
    ds = LeRobotDataset(video_root)
    key = "observation.images.cam_high"
    only = ds.read_frames(1, [key])
    assert list(only) == [key] and only[key].shape == (LENGTHS[1], H, W, 3)
    assert "observation.images.cam_high" not in ds.read_frames(1, decode_images=False)
    with pytest.raises(ValueError, match="decode_images=True"):
        ds.read_frames(1, [key], decode_images=False)
    item = ds[LENGTHS[0] + 5]  # episode 1, frame 5: in the middle of the shared MP4
    assert item["frame_index"] == 5 and item["task"] == TASK
    assert _mae(item[key], frame(1, 5, 0)) < 4.0
    assert _mae(item["observation.images.cam_left_wrist"], frame(1, 5, 1)) < 4.0
    assert ds.video_file(1, key).name == "file-000.mp4"
    assert ds.video_file(1, "observation.images.cam_left_wrist").name == "file-001.mp4"
    with pytest.raises(ValueError, match="act_pri"):  # not a full Episode: use read_frames
        ds.episode(0)


def test_missing_video_file(tmp_path: Path) -> None:
    root = write_lerobot_video_dataset(tmp_path / "ds")
    path = root / VIDEO_PATH.format(
        video_key="observation.images.cam_left_wrist", chunk_index=0, file_index=1
    )
    path.unlink()
    ds = LeRobotDataset(root)
    ds.read_frames(0)  # episode 0 has its own file: still fine
    with pytest.raises(FileNotFoundError, match=r"file-001\.mp4.*episode 1"):
        ds.read_frames(1)
    with pytest.raises(FileNotFoundError, match="missing"):
        ds[LENGTHS[0]]


def test_corrupt_or_unlocatable_video(tmp_path: Path) -> None:
    root = write_lerobot_video_dataset(tmp_path / "ds")
    key = "observation.images.cam_high"
    path = root / VIDEO_PATH.format(video_key=key, chunk_index=0, file_index=0)
    path.write_bytes(path.read_bytes()[:200])  # truncated: no index left
    with pytest.raises(DatasetFormatError, match="unreadable"):
        LeRobotDataset(root).read_frames(0, [key])

    rows_path = root / "meta/episodes/chunk-000/file-000.parquet"
    rows = pq.read_table(rows_path).to_pylist()
    rows[1][f"videos/{key}/to_timestamp"] = rows[1][f"videos/{key}/from_timestamp"] + 0.5
    pq.write_table(pa.Table.from_pylist(rows), rows_path)
    with pytest.raises(DatasetFormatError, match="holds only"):
        LeRobotDataset(root).read_frames(1, [key])
    pq.write_table(
        pa.Table.from_pylist(rows).drop_columns([f"videos/{key}/from_timestamp"]), rows_path
    )
    with pytest.raises(DatasetFormatError, match="cannot locate its video"):
        LeRobotDataset(root).read_frames(1, [key])


# ------------------------------------------------------------------------------- labels
def test_add_primitive_labels_to_a_lerobot_dataset(tmp_path: Path) -> None:
    root = write_lerobot_video_dataset(tmp_path / "ds")
    data_path = root / DATA_PATH.format(chunk_index=0, file_index=0)
    before = pq.read_table(data_path)
    rows_before = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    labels = {e: primitive_labels(length) for e, length in enumerate(LENGTHS)}
    add_frame_columns(root, {"act_pri": labels})

    ds = LeRobotDataset(root)
    for e in range(2):
        np.testing.assert_array_equal(ds.read_frames(e, ["act_pri"])["act_pri"], labels[e])
    after = pq.read_table(data_path)
    assert after.drop_columns(["act_pri"]).equals(before)  # every other column untouched
    assert ds.features["act_pri"] == {"dtype": "int64", "shape": [1], "names": None}
    assert ds.features["observation.images.cam_high"]["dtype"] == "video"
    rows = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    for old, new in zip(rows_before, rows, strict=True):
        assert {k: v for k, v in new.items() if k in old} == old  # video locations kept
        assert new["stats/act_pri/count"] == [old["length"]]
    stats = json.loads((root / "meta/stats.json").read_text())
    assert set(stats) == {"observation.state", "action", "act_pri"}
    assert stats["act_pri"]["count"] == [sum(LENGTHS)]
    all_labels = np.concatenate(list(labels.values()))
    assert stats["act_pri"]["max"] == [float(all_labels.max())]
    assert (
        _mae(
            ds.read_frames(1, ["observation.images.cam_high"])["observation.images.cam_high"],
            original(1, 0),
        )
        < 4.0
    )

    # Overwriting one episode keeps the other's labels.
    fixed = np.full(LENGTHS[1], primitive_index("pull"), np.int64)
    add_frame_columns(root, {"act_pri": {1: fixed}}, overwrite=True)
    ds = LeRobotDataset(root)
    np.testing.assert_array_equal(ds.read_frames(0, ["act_pri"])["act_pri"], labels[0])
    np.testing.assert_array_equal(ds.read_frames(1, ["act_pri"])["act_pri"], fixed)
    with pytest.raises(ValueError, match="must cover every episode"):
        add_frame_columns(root, {"progress": {0: np.zeros(LENGTHS[0], np.float32)}})


# ------------------------------------------------------------------------------- training
class FakeTextEncoder:
    """Seeded pseudo-embeddings (no sentence-transformers model needed)."""

    out_dim = 8

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        rows = [np.random.default_rng(sum(map(ord, t))).normal(size=8) for t in texts]
        return np.asarray(rows, np.float32)


class FakeFrozenEncoder:
    """A frozen image encoder: mean colour of each quadrant (12-d), checks the frame size."""

    trainable = False
    out_dim = 12
    cache_key = "fake-quadrants"

    def __init__(self, size: int) -> None:
        self.size = size
        self.calls = 0

    def to(self, device: torch.device | str) -> FakeFrozenEncoder:
        return self

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        assert tuple(images.shape[1:]) == (self.size, self.size, 3), images.shape
        self.calls += 1
        x = images.float().permute(0, 3, 1, 2) / 255.0
        return torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)


def lerobot_config(**overrides: object) -> SARM2Config:
    """A tiny config for the dataset's cameras and 6-d state (what the tutorial's JSON says)."""
    base: dict[str, object] = {
        "camera_names": CAMERAS,
        "image_size": 40,
        "state_dim": STATE_DIM,
        "encoder": "cnn",
        "cnn_out_dim": 16,
        "text_dim": 8,
        "instructions": (TASK,),
        "n_obs_steps": 4,
        "frame_gap": 2,
        "max_rewind": 2,
        "d_model": 32,
        "n_heads": 2,
        "stage_layers": 1,
        "value_layers": 1,
        "num_experts": 4,
        "top_k": 2,
        "expert_hidden": (16,),
        "gate_hidden": 16,
        "dropout": 0.0,
        "batch_size": 4,
        "warmup_steps": 0,
    }
    base.update(overrides)
    return SARM2Config(**base)  # type: ignore[arg-type]


def _train(
    root: Path,
    out: Path,
    config: SARM2Config | None = None,
    image_encoder: FakeFrozenEncoder | None = None,
    **options: object,
) -> TrainResult:
    opts = {"steps": 4, "target": "linear", "progress": False, "cache_dir": str(out / "cache")}
    opts.update(options)
    return train_reward_model(
        [root],
        out / "model",
        config or lerobot_config(),
        options=TrainOptions(**opts),
        image_encoder=image_encoder,
        text_encoder=FakeTextEncoder(),
    )


def test_load_frame_table_resizes_and_marks_missing_labels(
    video_root: Path, tmp_path: Path
) -> None:
    from sarm2_gym.reward.batch import IGNORE_INDEX
    from sarm2_gym.reward.frames import load_frame_table

    cfg = lerobot_config()
    table = load_frame_table([video_root], cfg, progress=False)
    assert table.frames["cam_high"].shape == (sum(LENGTHS), 40, 40, 3)
    assert table.state.shape == (sum(LENGTHS), STATE_DIM)
    assert set(table.missing_labels) == {"act_pri", "stage", "progress"}
    assert (table.act_pri == IGNORE_INDEX).all() and np.isnan(table.progress).all()
    assert [e.task for e in table.episodes] == [TASK, TASK]

    # A frozen encoder sees resized frames; their cache is kept apart from native-size ones.
    enc = FakeFrozenEncoder(40)
    frozen = cfg.replace(encoder="hf", encoder_name="fake", hf_feature_dim=12)
    cache = tmp_path / "cache"
    table = load_frame_table(
        [video_root], frozen, cache_dir=cache, image_encoder=enc, progress=False
    )
    assert table.frames["cam_left_wrist"].shape == (sum(LENGTHS), 12) and enc.calls > 0
    assert all(p.name.endswith("-40px") for p in cache.iterdir())

    with pytest.raises(ValueError, match='"state_dim": 6'):
        load_frame_table([video_root], cfg.replace(state_dim=14), progress=False)
    with pytest.raises(ValueError, match=r"cam_high.*camera_names"):
        load_frame_table([video_root], cfg.replace(camera_names=("top",)), progress=False)


def test_training_without_labels_explains_what_to_add(video_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no act_pri column.*add_frame_columns.*--kind rewind"):
        _train(video_root, tmp_path / "a")
    with pytest.raises(ValueError, match="--target linear"):
        _train(video_root, tmp_path / "b", kind="rewind", target="progress")
    with pytest.raises(ValueError, match="no stage column"):
        _train(video_root, tmp_path / "c", kind="sarm_v1")
    # ReWiND-style regression needs no primitive labels (baselines train on frozen features).
    frozen = lerobot_config(encoder="hf", encoder_name="fake", hf_feature_dim=12)
    result = _train(video_root, tmp_path / "d", frozen, FakeFrozenEncoder(40), kind="rewind")
    assert result.finished and (tmp_path / "d/model/config.json").is_file()


def test_sarm2_end_to_end_on_video_data(tmp_path: Path) -> None:
    from sarm2_gym.data import read_sarm_progress
    from sarm2_gym.reward.evaluation import evaluate_model
    from sarm2_gym.reward.frames import fit_frames
    from sarm2_gym.reward.labeller import PROGRESS_COLUMN, label_dataset

    root = write_lerobot_video_dataset(tmp_path / "ds")
    add_frame_columns(root, {"act_pri": {e: primitive_labels(n) for e, n in enumerate(LENGTHS)}})
    result = _train(root, tmp_path / "run", steps=6)
    model = result.model
    assert result.finished and model.config.camera_names == CAMERAS

    metrics = evaluate_model(model, [root], tmp_path / "report", progress=False)
    overall = metrics["overall"]
    assert 0.0 <= overall["primitive_acc"] <= 1.0 and np.isfinite(overall["demo_mse_linear"])
    assert np.isnan(overall["demo_mse"])  # no progress column: only the linear label
    assert list((tmp_path / "report/plots").glob("*.png"))

    path = label_dataset(root, model, progress=False)
    ds = LeRobotDataset(root)
    labelled = ds.read_frames(1, [PROGRESS_COLUMN])[PROGRESS_COLUMN]
    assert labelled.shape == (LENGTHS[1],) and np.all(np.diff(labelled) >= 0)
    rabc = read_sarm_progress(path)
    assert rabc["index"].tolist() == list(range(sum(LENGTHS)))

    cols = ds.read_frames(0)
    frames = {c: fit_frames(cols[f"observation.images.{c}"], 40) for c in CAMERAS}
    pred = model.predict(frames, cols["observation.state"], TASK)
    assert 0.0 <= pred.progress <= 1.0


def test_camera_frames_are_decoded_in_chunks(
    video_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sarm2_gym.reward import frames as frames_module

    ds = LeRobotDataset(video_root)
    key = "observation.images.cam_high"
    whole = frames_module.fit_frames(ds.read_frames(1, [key])[key], 40)
    monkeypatch.setattr(frames_module, "_VIDEO_CHUNK", 5)  # 17 frames: chunks 5 + 5 + 5 + 2
    chunked = frames_module.read_camera_frames(ds, 1, CAMERAS, 40)
    np.testing.assert_array_equal(chunked["cam_high"], whole)
    assert chunked["cam_left_wrist"].shape == (LENGTHS[1], 40, 40, 3)
    with pytest.raises(IndexError):
        ds.read_video(1, key, LENGTHS[1] - 2, 5)


def test_episode_objects_decode_video(tmp_path: Path) -> None:
    root = write_lerobot_video_dataset(tmp_path / "ds")
    n = dict(enumerate(LENGTHS))
    add_frame_columns(
        root,
        {
            "next.reward": {e: np.zeros(k, np.float32) for e, k in n.items()},
            "next.done": {e: np.arange(k) == k - 1 for e, k in n.items()},
            "next.success": {e: np.arange(k) == k - 1 for e, k in n.items()},
            "act_pri": {e: primitive_labels(k) for e, k in n.items()},
            "stage": {e: np.zeros(k, np.int64) for e, k in n.items()},
            "progress": {e: np.linspace(0, 1, k, dtype=np.float32) for e, k in n.items()},
        },
    )
    ds = LeRobotDataset(root)
    episode = ds.episode(1)
    assert episode.task == TASK and episode.length == LENGTHS[1]
    for c, cam in enumerate(CAMERAS):
        got = episode.frames[f"observation.images.{cam}"]
        assert got.shape == (LENGTHS[1], H, W, 3) and _mae(got, original(1, c)) < 4.0
    assert "observation.images.cam_high" not in ds.episode(1, decode_images=False).frames
