from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sarm2_gym.algos.common.io import CheckpointError
from sarm2_gym.algos.vla import TinyVLA, VLAController
from sarm2_gym.algos.vla.data import load_demos
from sarm2_gym.algos.vla.policy import ChunkBatch, ChunkPolicy
from sarm2_gym.algos.vla.vision import (
    _shift_by_gather,
    _shift_by_slices,
    random_shift,
    resize_frames,
)

from .helpers import IMAGE, INSTRUCTION, random_observation, tiny_vla


def test_tiny_vla_implements_the_protocol() -> None:
    vla = tiny_vla()
    assert isinstance(vla, ChunkPolicy)
    feats = vla.encode(random_observation(3), INSTRUCTION)
    assert feats.shape == (3, vla.feature_dim) and not feats.requires_grad
    chunk = vla.sample_actions(feats, torch.randn(3, vla.chunk_size, 14))
    assert chunk.shape == (3, vla.chunk_size, 14)
    assert chunk.abs().max() <= 1.0


def test_flow_head_is_deterministic_given_the_noise() -> None:
    vla = tiny_vla()
    obs = random_observation(4)
    z = torch.randn(4, vla.chunk_size, 14, generator=torch.Generator().manual_seed(1))
    a1 = vla.sample_chunk(obs, INSTRUCTION, z)
    a2 = vla.sample_chunk(obs, INSTRUCTION, z.clone())
    assert torch.equal(a1, a2)
    a3 = vla.sample_chunk(obs, INSTRUCTION, z + 0.5)
    assert not torch.allclose(a1, a3)
    # per-sample independence: a batch equals its rows sampled one at a time
    single = vla.sample_chunk({k: v[1:2] for k, v in obs.items()}, INSTRUCTION, z[1:2])
    assert torch.allclose(single[0], a1[1], atol=1e-5)


def test_unknown_instruction_and_bad_noise_are_rejected() -> None:
    vla = tiny_vla()
    with pytest.raises(ValueError, match="unknown instructions"):
        vla.encode(random_observation(1), "fold the laundry")
    with pytest.raises(ValueError, match="noise must be"):
        vla.sample_actions(vla.encode(random_observation(1), INSTRUCTION), torch.zeros(1, 3, 14))


def test_tiny_vla_overfits_a_handful_of_demonstrations(reach_demos: Path) -> None:
    torch.manual_seed(0)
    vla = tiny_vla(flow_hidden=128)
    demos = load_demos([reach_demos], cameras=vla.config.cameras, image_size=IMAGE, max_episodes=3)
    vla.fit_normalization(demos.state, demos.actions)
    index = np.arange(demos.num_frames)
    batch = demos.batch(np.tile(index, 4), vla.chunk_size)
    opt = torch.optim.AdamW(vla.parameters(), lr=1e-3, foreach=True)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(250):
        loss = vla.bc_loss(batch, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-10:]) < 0.15 * np.mean(losses[:10])
    # sampled chunks (random latents) reproduce the demonstrated ones
    full = demos.batch(index, vla.chunk_size)
    obs = {k: v.numpy() for k, v in full.inputs.items()}
    pred = vla.sample_chunk(
        obs, INSTRUCTION, torch.randn(len(index), vla.chunk_size, 14, generator=gen)
    )
    valid = ~full.action_pad
    target = full.actions[valid][:, :2]
    err = (pred[valid][:, :2] - target).abs().mean()
    mean_guess = (target - target.mean(0)).abs().mean()
    assert err < 0.35 * mean_guess, (err, mean_guess)


def test_weighted_bc_loss_ignores_zero_weight_samples(reach_demos: Path) -> None:
    vla = tiny_vla()
    demos = load_demos([reach_demos], cameras=vla.config.cameras, image_size=IMAGE, max_episodes=2)
    batch = demos.batch(np.array([0, 3]), vla.chunk_size)
    altered = ChunkBatch(batch.inputs, batch.task_ids, batch.actions.clone(), batch.action_pad)
    altered.actions[1] = -altered.actions[1] + 0.3

    def loss(b: ChunkBatch, w: torch.Tensor | None) -> float:
        return float(vla.bc_loss(b, w, generator=torch.Generator().manual_seed(5)).detach())

    w = torch.tensor([1.0, 0.0])
    assert loss(batch, w) == pytest.approx(loss(altered, w), rel=1e-6)
    assert loss(batch, None) != pytest.approx(loss(altered, None), rel=1e-3)
    assert loss(batch, torch.tensor([2.0, 2.0])) == pytest.approx(loss(batch, None), rel=1e-5)


def test_chunks_past_the_episode_end_are_padded(reach_demos: Path) -> None:
    demos = load_demos([reach_demos], cameras=("top",), image_size=IMAGE, max_episodes=1)
    last = demos.num_frames - 1
    idx, pad = demos.chunk_indices(np.array([last - 1]), 4)
    assert idx.tolist() == [[last - 1, last, last, last]]
    assert pad.tolist() == [[False, False, True, True]]


def test_checkpoint_round_trip_and_clear_errors(tmp_path: Path) -> None:
    vla = tiny_vla()
    vla.set_normalization(np.ones(14), np.full(14, 2.0), np.zeros(14), np.full(14, 0.5))
    vla.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    loaded = TinyVLA.from_pretrained(tmp_path / "ckpt")
    obs, z = random_observation(2), torch.randn(2, vla.chunk_size, 14)
    assert torch.equal(
        loaded.sample_chunk(obs, INSTRUCTION, z), vla.sample_chunk(obs, INSTRUCTION, z)
    )

    meta = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    meta["config"]["d_model"] = 48
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="does not match its config"):
        TinyVLA.from_pretrained(tmp_path / "ckpt")
    meta["format"] = "something-else"
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="not a TinyVLA checkpoint"):
        TinyVLA.from_pretrained(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match="not found"):
        TinyVLA.from_pretrained(tmp_path / "missing")


def test_controller_executes_whole_chunks_and_replans_on_episode_start() -> None:
    vla = tiny_vla()
    ctrl = VLAController(vla, INSTRUCTION, seed=0)
    obs = random_observation(2)
    plans = []
    original = ctrl.plan
    ctrl.plan = lambda o, d: plans.append(len(o["state"])) or original(o, d)  # type: ignore[method-assign]
    state = None
    first, state = ctrl.predict(obs, state, np.ones(2, bool))
    for _ in range(vla.chunk_size - 1):
        _, state = ctrl.predict(obs, state, np.zeros(2, bool))
    assert plans == [2]
    _, state = ctrl.predict(obs, state, np.array([True, False]))
    assert plans == [2, 2]  # both exhausted their chunk
    _, state = ctrl.predict(obs, state, np.array([True, False]))
    assert plans == [2, 2, 1]  # only the env that starts a new episode replans
    det1, _ = ctrl.predict(obs, None, deterministic=True)
    det2, _ = ctrl.predict(obs, None, deterministic=True)
    assert np.array_equal(det1, det2) and first.shape == (2, 14)


def test_controller_latent_temperature_scales_the_noise() -> None:
    vla = tiny_vla()
    obs = random_observation(2)
    z = torch.randn((2, vla.chunk_size, vla.action_dim), generator=torch.Generator().manual_seed(3))
    cooled = VLAController(vla, INSTRUCTION, seed=3, temperature=0.5).plan(obs, False)
    want = vla.sample_chunk(obs, INSTRUCTION, 0.5 * z).numpy()
    assert np.allclose(cooled, want)
    assert not np.allclose(VLAController(vla, INSTRUCTION, seed=3).plan(obs, False), want)
    zero = vla.sample_chunk(obs, INSTRUCTION, torch.zeros_like(z)).numpy()
    assert np.allclose(VLAController(vla, INSTRUCTION, temperature=0.0).plan(obs, False), zero)
    with pytest.raises(ValueError, match="temperature must be a finite number >= 0"):
        VLAController(vla, INSTRUCTION, temperature=-1.0)


def test_resize_and_shift_keep_shapes() -> None:
    frames = torch.randint(0, 256, (3, 40, 40, 3), dtype=torch.uint8)
    assert resize_frames(frames, 24).shape == (3, 24, 24, 3)
    assert resize_frames(frames, 40) is frames
    x = torch.rand(3, 3, 24, 24)
    shifted = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert shifted.shape == x.shape and not torch.equal(shifted, x)


def test_the_batched_shift_crops_what_the_per_frame_shift_crops() -> None:
    # The accelerator path (one gather) must give the CPU path's frames exactly.
    padded = torch.rand(5, 3, 28, 30)
    offsets = torch.tensor([[0, 0], [4, 6], [2, 1], [4, 0], [0, 6]])
    gathered = _shift_by_gather(padded, offsets, 24, 24)
    assert gathered.shape == (5, 3, 24, 24) and gathered.is_contiguous()
    assert torch.equal(gathered, _shift_by_slices(padded, offsets, 24, 24))
    assert torch.equal(gathered[1], padded[1, :, 4:28, 6:30])


def test_the_checkpoint_carries_its_chunk_execution(tmp_path: Path) -> None:
    vla = tiny_vla(n_action_steps=2)
    assert vla.n_action_steps == 2 and tiny_vla().n_action_steps == vla.chunk_size
    vla.save_pretrained(tmp_path / "ckpt")
    loaded = TinyVLA.from_pretrained(tmp_path / "ckpt")
    ctrl = VLAController(loaded, INSTRUCTION)
    assert ctrl.n_action_steps == 2
    assert VLAController(loaded, INSTRUCTION, n_action_steps=3).n_action_steps == 3
    plans = []
    original = ctrl.plan
    ctrl.plan = lambda o, d: plans.append(1) or original(o, d)  # type: ignore[method-assign]
    state = None
    for i in range(6):
        _, state = ctrl.predict(random_observation(1), state, np.array([i == 0]))
    assert len(plans) == 3  # replans every 2 steps
    with pytest.raises(ValueError, match="n_action_steps"):
        tiny_vla(n_action_steps=vla.chunk_size + 1)


def test_several_flow_samples_per_observation_and_the_spatial_grid(reach_demos: Path) -> None:
    vla = tiny_vla(spatial_grid=2)
    demos = load_demos([reach_demos], cameras=vla.config.cameras, image_size=IMAGE, max_episodes=2)
    batch = demos.batch(np.array([0, 3, 5]), vla.chunk_size)
    one = vla.bc_loss(batch, generator=torch.Generator().manual_seed(0))
    again = vla.bc_loss(batch, generator=torch.Generator().manual_seed(0), flow_samples=1)
    assert torch.equal(one, again)
    many = vla.bc_loss(batch, generator=torch.Generator().manual_seed(0), flow_samples=4)
    many.backward()
    assert torch.isfinite(many) and vla.grid_proj.weight.grad is not None
    assert vla.grid_embed.shape == (3, 4, vla.config.d_model)
    with pytest.raises(ValueError, match="flow_samples"):
        vla.bc_loss(batch, flow_samples=0)
    with pytest.raises(ValueError, match="spatial_grid"):
        tiny_vla(spatial_grid=2, image_encoder="efficientnet_lite0", image_feature_dim=1280)


@pytest.mark.parametrize("grid", [0, 2])
def test_camera_features_are_per_camera_and_what_the_trunk_reads(grid: int) -> None:
    vla = tiny_vla(spatial_grid=grid)
    vla.train()
    obs = random_observation(2)
    feats = vla.camera_features(obs)
    assert feats.shape[:2] == (2, 3) and not feats.requires_grad
    assert vla.training, "the probe leaves the policy's mode as it was"
    # Changing one camera's frames changes that camera's row only.
    other = dict(obs, left_wrist=random_observation(2, seed=1)["left_wrist"])
    changed = (vla.camera_features(other) - feats).abs().amax(dim=(0, 2))
    assert changed[1] > 0 and changed[0] == 0 and changed[2] == 0
    # Row j is camera j's frames through the CNN on their own.
    vla.eval()
    for j, cam in enumerate(("top", "left_wrist", "right_wrist")):
        own = vla.cnn(resize_frames(torch.as_tensor(obs[cam]), vla.config.image_size))
        assert torch.allclose(feats[:, j], own, atol=1e-5)


def test_bc_loss_on_given_features_equals_encoding_the_batch(reach_demos: Path) -> None:
    vla = tiny_vla()
    demos = load_demos([reach_demos], cameras=vla.config.cameras, image_size=IMAGE, max_episodes=2)
    batch = demos.batch(np.array([0, 3, 5]), vla.chunk_size)
    encoded = vla.bc_loss(batch, generator=torch.Generator().manual_seed(2))
    feats = vla.features_from_inputs(batch.inputs, batch.task_ids)
    given = vla.bc_loss(batch, generator=torch.Generator().manual_seed(2), features=feats)
    assert torch.equal(encoded, given)
    with pytest.raises(ValueError, match="not both"):
        vla.bc_loss(batch, shift=2, features=feats)
    with pytest.raises(ValueError, match="do not match the batch"):
        vla.bc_loss(batch, features=feats[:2])
