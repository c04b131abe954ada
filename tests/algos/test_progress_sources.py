from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from sarm2_gym.algos.spiral import RewardModelLabeler, RolloutEpisode
from sarm2_gym.algos.vla import BCConfig, TinyVLA, train_bc
from sarm2_gym.algos.vla.data import load_demos
from sarm2_gym.algos.vla.progress import episode_progress
from sarm2_gym.data import LeRobotDataset, LeRobotDatasetWriter
from sarm2_gym.data.episode import PRIVILEGED_PROGRESS_META
from sarm2_gym.data.sarm_progress import write_sarm_progress
from sarm2_gym.reward import SARM2Config, SARM2RewardModel, TextEmbeddings

from .helpers import INSTRUCTION, FakeText, record_demos, tiny_vla_config

SIZE = 40  # the reward model's small CNN needs >= 36 px


@pytest.fixture(scope="module")
def demos40(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record_demos(tmp_path_factory.mktemp("d40") / "reach", 2, image_size=SIZE)


def _tiny_reward_model() -> SARM2RewardModel:
    torch.manual_seed(0)
    cfg = SARM2Config(
        encoder="cnn", cnn_out_dim=8, image_size=SIZE, d_model=16, n_heads=2, text_dim=4,
        instructions=(INSTRUCTION,), expert_hidden=(8,), gate_hidden=8,
    )  # fmt: skip
    return SARM2RewardModel(cfg, TextEmbeddings.zeros((INSTRUCTION,), 4))


def test_reward_model_labeler_scores_episodes_with_the_shared_math(demos40: Path) -> None:
    ep = RolloutEpisode.from_episode(LeRobotDataset(demos40).episode(0))
    labels = RewardModelLabeler(_tiny_reward_model(), frame_gap=2, window=3).label(ep)
    assert labels.progress.shape == labels.reward.shape == (ep.length,)
    assert np.all(np.diff(labels.progress) >= -1e-12) and labels.reward[0] == 0.0
    assert np.all((labels.progress >= 0) & (labels.progress <= 1))
    with pytest.raises(ValueError, match="camera frames"):
        RewardModelLabeler(_tiny_reward_model()).label(
            RolloutEpisode.from_episode(LeRobotDataset(demos40).episode(0), keep_images=False)
        )


def test_rabc_progress_sources(tmp_path: Path, demos40: Path) -> None:
    demos = load_demos([demos40], cameras=("top",), image_size=24)
    lengths = [length for *_, length, _ in demos.episodes]
    privileged = episode_progress("privileged", demos)
    assert [len(p) for p in privileged] == lengths
    rm_dir = tmp_path / "rm"
    _tiny_reward_model().save_pretrained(rm_dir)
    from_model = episode_progress(str(rm_dir), demos)
    assert [len(p) for p in from_model] == lengths
    with pytest.raises(FileNotFoundError):
        episode_progress("sarm_progress", demos)
    write_sarm_progress(demos40, {0: privileged[0][::-1].copy(), 1: privileged[1]})
    from_file = episode_progress("sarm_progress", demos)
    assert np.allclose(from_file[0], privileged[0][::-1]) and np.allclose(
        from_file[1], privileged[1]
    )


def test_frozen_encoder_features_are_cached(tmp_path: Path, demos40: Path) -> None:
    model = tiny_vla_config(
        image_encoder="efficientnet_lite0", image_feature_dim=1280, image_size=32
    )
    cfg = BCConfig(
        data=(str(demos40),), out=str(tmp_path / "bc"), steps=2, batch_size=4, model=model
    )
    out = train_bc(cfg, text_encoder=FakeText(), progress_bar=False)
    cached = sorted((out / "feature_cache").rglob("*.safetensors"))
    assert len(cached) == 2  # one file per episode, all cameras inside
    stamps = [p.stat().st_mtime_ns for p in cached]
    demos = load_demos([demos40], cameras=model.cameras, image_size=32, feature_fn=None)
    vla = TinyVLA.from_pretrained(out)
    obs = {c: demos.inputs[c][:2] for c in model.cameras}
    obs["state"] = demos.state[:2]
    assert vla.encode(obs, INSTRUCTION).shape == (2, vla.feature_dim)
    train_bc(replace(cfg, steps=3), resume=True, progress_bar=False)
    assert [p.stat().st_mtime_ns for p in cached] == stamps  # reused, not recomputed


def test_privileged_rabc_refuses_a_real_robots_placeholder_progress(
    tmp_path: Path, demos40: Path
) -> None:
    # A real robot's recorder fills `progress` with zeros and marks the episode; RA-BC's oracle
    # must not weigh frames by those zeros.
    source = LeRobotDataset(demos40)
    with LeRobotDatasetWriter(tmp_path / "real", fps=10) as writer:
        for i in range(source.num_episodes):
            ep = source.episode(i)
            ep.frames["progress"] = np.zeros(ep.length, np.float32)
            ep.meta[PRIVILEGED_PROGRESS_META] = False
            writer.add_episode(ep)
    demos = load_demos([tmp_path / "real"], cameras=("top",), image_size=24)
    assert np.isnan(demos.progress).all()
    with pytest.raises(ValueError, match=r"no privileged progress.*reward model"):
        episode_progress("privileged", demos)
    sim = load_demos([demos40], cameras=("top",), image_size=24)
    assert np.isfinite(sim.progress).all() and sim.progress.max() > 0.5
