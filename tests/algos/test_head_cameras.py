"""TinyVLA's ``head_cameras``: the flow head also reads chosen cameras' encoder features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sarm2_gym.algos.spiral import SPIRAL, PrivilegedProgressLabeler, SPIRALConfig
from sarm2_gym.algos.vla import TinyVLA, TinyVLAConfig, train_bc
from sarm2_gym.algos.vla.data import load_demos
from sarm2_gym.algos.vla.vision import resize_frames

from .helpers import (
    IMAGE,
    INSTRUCTION,
    FakeText,
    make_reach_env,
    random_observation,
    tiny_bc_config,
    tiny_vla,
    tiny_vla_config,
    unit_normalization,
)


def test_the_config_widens_the_features_by_each_head_camera() -> None:
    plain = tiny_vla_config()
    top = tiny_vla_config(head_cameras=("top",))
    both = tiny_vla_config(head_cameras=("right_wrist", "top"))
    assert top.feature_dim == plain.feature_dim + 16
    assert both.feature_dim == plain.feature_dim + 32
    with pytest.raises(ValueError, match="head_cameras"):
        tiny_vla_config(head_cameras=("front",))
    with pytest.raises(ValueError, match="head_cameras"):
        tiny_vla_config(head_cameras=("top", "top"))
    # JSON gives lists; a config written before the field existed loads without head cameras
    data = top.to_dict()
    data["head_cameras"] = list(data["head_cameras"])
    assert TinyVLAConfig.from_dict(data) == top
    del data["head_cameras"]
    assert TinyVLAConfig.from_dict(data).head_cameras == ()


def test_the_features_hold_the_head_cameras_features_before_the_state() -> None:
    vla = tiny_vla(head_cameras=("right_wrist", "top"))
    unit_normalization(vla)
    vla.eval()
    obs = random_observation(3)
    feats = vla.encode(obs, INSTRUCTION)
    d, w = vla.config.d_model, vla.config.image_feature_dim
    assert feats.shape == (3, vla.feature_dim)
    for j, cam in enumerate(("right_wrist", "top")):  # in head_cameras' order
        own = vla.cnn(resize_frames(torch.as_tensor(obs[cam]), IMAGE))  # type: ignore[misc]
        assert torch.allclose(feats[:, d + j * w : d + (j + 1) * w], own, atol=1e-5)
    # the normalised state stays last (target-mode actions read it back from there)
    assert torch.allclose(feats[:, -14:], torch.as_tensor(obs["state"]))


def test_the_head_reads_the_camera_past_the_trunk() -> None:
    """With the trunk's read-out held fixed, the top frames still move the chunk."""
    vla = tiny_vla(head_cameras=("top",))
    unit_normalization(vla)
    vla.eval()
    obs, other = random_observation(2), random_observation(2, seed=1)
    changed = dict(obs, top=other["top"])
    z = torch.randn(2, vla.chunk_size, 14, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        f0, f1 = vla.encode(obs, INSTRUCTION), vla.encode(changed, INSTRUCTION)
        d = vla.config.d_model
        f1[:, :d] = f0[:, :d]  # the same read-out token: only the head camera block differs
        assert not torch.equal(f0, f1)
        assert not torch.allclose(vla.sample_actions(f0, z), vla.sample_actions(f1, z))
    # a plain TinyVLA's head sees nothing of a camera but the read-out
    plain = tiny_vla()
    assert plain.feature_dim == vla.feature_dim - vla.config.image_feature_dim


def test_bc_trains_and_round_trips_a_head_camera_policy(reach_demos: Path, tmp_path: Path) -> None:
    model = tiny_vla_config(head_cameras=("top",))
    path = train_bc(
        tiny_bc_config(reach_demos, tmp_path / "bc", model=model),
        text_encoder=FakeText(),
        progress_bar=False,
    )
    vla = TinyVLA.from_pretrained(path)
    assert vla.config.head_cameras == ("top",)
    demos = load_demos([reach_demos], cameras=vla.config.cameras, image_size=IMAGE, max_episodes=2)
    batch = demos.batch(np.array([0, 3, 5]), vla.chunk_size)
    loss = vla.bc_loss(batch, generator=torch.Generator().manual_seed(0))
    loss.backward()
    # the CNN learns from the head's direct path too: its gradient is there and finite
    grads = [p.grad for p in vla.cnn.parameters()]  # type: ignore[union-attr]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_spiral_runs_over_a_head_camera_base_policy(tmp_path: Path) -> None:
    from stable_baselines3.common.vec_env import DummyVecEnv

    base = tiny_vla(head_cameras=("top",))
    config = SPIRALConfig(
        rollouts_per_round=2, gradient_steps=4, actor_hidden=(16, 16), critic_hidden=(16, 16)
    )
    env = DummyVecEnv([make_reach_env] * 2)
    model = SPIRAL(base, env, PrivilegedProgressLabeler(), config=config, seed=0)
    model.learn(30)
    assert model.replay.feature_dim == base.feature_dim
    model.save(tmp_path / "run")
    loaded = SPIRAL.load(tmp_path / "run", env=env, reward_model=PrivilegedProgressLabeler())
    obs = env.reset()
    assert np.array_equal(
        model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0]
    )
