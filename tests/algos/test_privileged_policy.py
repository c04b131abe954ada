"""A TinyVLA that also reads the simulator's privileged object state (an oracle for diagnostics)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sarm2_gym.algos.vla import TinyVLA, VLAController
from sarm2_gym.algos.vla.data import load_demos
from sarm2_gym.algos.vla.policy import ChunkBatch, wrap_env_for_policy
from sarm2_gym.cli import app
from sarm2_gym.data.reader import LeRobotDataset
from sarm2_gym.data.writer import LeRobotDatasetWriter
from sarm2_gym.envs.privileged_state import PRIVILEGED_STATE_KEY, PrivilegedState

from .helpers import (
    IMAGE,
    INSTRUCTION,
    REACH_ID,
    ReachEnv,
    expert_action,
    fit_batch,
    tiny_vla,
    unit_normalization,
)

CAMERAS = ("top", "left_wrist", "right_wrist")


def _obs(n: int, privileged: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    obs = {c: rng.integers(0, 255, (n, IMAGE, IMAGE, 3), dtype=np.uint8) for c in CAMERAS}
    obs["state"] = rng.normal(size=(n, 14)).astype(np.float32)
    if privileged:
        obs[PRIVILEGED_STATE_KEY] = rng.normal(size=(n, privileged)).astype(np.float32)
    return obs


def _normalize(vla: TinyVLA, privileged: np.ndarray | None) -> None:
    vla.set_normalization(
        np.zeros(14),
        np.ones(14),
        np.zeros(14),
        np.ones(14),
        privileged_mean=None if privileged is None else privileged.mean(0),
        privileged_std=None if privileged is None else privileged.std(0),
    )


def test_demonstrations_give_the_privileged_state_the_env_recorded(reach_demos: Path) -> None:
    demos = load_demos(
        [reach_demos], cameras=CAMERAS, image_size=IMAGE, max_episodes=2, privileged_state_dim=4
    )
    assert demos.privileged_state is not None and demos.privileged_state.shape == (
        demos.num_frames,
        4,
    )
    # the same values a live env gives: the point and the goal of each recorded frame
    env = ReachEnv()
    obs, _ = env.reset(seed=1)  # record_demos seeds episode i with i
    _, _, start, length, _ = demos.episodes[1]
    live = [env.privileged_state()]
    for _ in range(length - 1):
        obs, *_ = env.step(expert_action(obs, env))
        live.append(env.privileged_state())
    np.testing.assert_allclose(demos.privileged_state[start : start + length], np.stack(live))
    batch = demos.batch(np.array([start + 2]), 4)
    np.testing.assert_array_equal(
        batch.inputs[PRIVILEGED_STATE_KEY].numpy(), demos.privileged_state[start + 2 : start + 3]
    )
    plain = load_demos([reach_demos], cameras=CAMERAS, image_size=IMAGE, max_episodes=1)
    assert (
        plain.privileged_state is None
        and PRIVILEGED_STATE_KEY not in plain.batch(np.array([0]), 4).inputs
    )

    with pytest.raises(ValueError, match=r"privileged state 4 wide, the policy's .* is 6"):
        load_demos([reach_demos], cameras=CAMERAS, image_size=IMAGE, privileged_state_dim=6)


def test_data_without_a_recorded_privileged_state_is_refused(
    tmp_path: Path, reach_demos: Path
) -> None:
    ep = LeRobotDataset(reach_demos).episode(0)
    # as a real robot's recorder writes it: no simulator, so no privileged state
    meta = {k: v for k, v in ep.meta.items() if k != "env_state_dim"}
    with LeRobotDatasetWriter(tmp_path / "robot", fps=10) as writer:
        writer.add_episode(replace(ep, meta=meta))
    with pytest.raises(ValueError, match=r"episode 0 of .*robot has no privileged state"):
        load_demos([tmp_path / "robot"], cameras=CAMERAS, image_size=IMAGE, privileged_state_dim=4)


def test_a_tiny_vla_reads_the_privileged_state_and_names_what_is_wrong(tmp_path: Path) -> None:
    vla = tiny_vla(privileged_state_dim=4)
    obs = _obs(3, privileged=4)
    _normalize(vla, obs[PRIVILEGED_STATE_KEY])
    assert vla.feature_dim == 32 + 14  # SPIRAL's features are unchanged
    z = torch.randn(3, vla.chunk_size, 14, generator=torch.Generator().manual_seed(0))
    chunk = vla.sample_chunk(obs, INSTRUCTION, z)
    moved = {**obs, PRIVILEGED_STATE_KEY: obs[PRIVILEGED_STATE_KEY] + 1.0}
    assert not torch.allclose(vla.sample_chunk(moved, INSTRUCTION, z), chunk)

    with pytest.raises(ValueError, match=r"needs 'env_state'.*wrap_env_for_policy"):
        vla.encode(_obs(3), INSTRUCTION)
    with pytest.raises(ValueError, match=r"'env_state' must be \(3, 4\), got \(3, 3\)"):
        vla.encode({**obs, PRIVILEGED_STATE_KEY: obs[PRIVILEGED_STATE_KEY][:, :3]}, INSTRUCTION)
    bad = obs[PRIVILEGED_STATE_KEY].copy()
    bad[0, 1] = np.nan
    with pytest.raises(ValueError, match="'env_state' holds NaN"):
        vla.encode({**obs, PRIVILEGED_STATE_KEY: bad}, INSTRUCTION)
    with pytest.raises(ValueError, match="needed exactly when privileged_state_dim > 0"):
        _normalize(vla, None)
    with pytest.raises(ValueError, match="needed exactly when privileged_state_dim > 0"):
        _normalize(tiny_vla(), obs[PRIVILEGED_STATE_KEY])
    with pytest.raises(ValueError, match="privileged_state_dim must be >= 0"):
        tiny_vla(privileged_state_dim=-1)

    loaded = TinyVLA.from_pretrained(vla.save_pretrained(tmp_path / "vla"))
    assert loaded.config.privileged_state_dim == 4
    torch.testing.assert_close(loaded.sample_chunk(obs, INSTRUCTION, z), chunk)
    assert "privileged_mean" not in tiny_vla().state_dict()  # older checkpoints load as before


def _two_boards(n: int, privileged: bool) -> ChunkBatch:
    """Samples whose cameras and robot state are the same and whose object state is not.

    Half the samples have the object on the left and the demonstrated chunk goes left, the other
    half the reverse; only the privileged state says which.
    """
    side = np.where(np.arange(n) % 2 == 0, 1.0, -1.0).astype(np.float32)
    frame = np.random.default_rng(0).integers(0, 255, (1, IMAGE, IMAGE, 3), dtype=np.uint8)
    actions = np.zeros((n, 4, 14), np.float32)
    actions[:, :, 0] = 0.5 * side[:, None]
    inputs = {c: torch.from_numpy(frame.repeat(n, 0)) for c in CAMERAS}
    inputs["state"] = torch.full((n, 14), 0.2)
    if privileged:
        inputs[PRIVILEGED_STATE_KEY] = torch.from_numpy(np.stack([side, -side], axis=1))
    return ChunkBatch(
        inputs=inputs,
        task_ids=torch.zeros(n, dtype=torch.long),
        actions=torch.from_numpy(actions),
        action_pad=torch.zeros(n, 4, dtype=torch.bool),
    )


@pytest.mark.parametrize("privileged", [True, False])
def test_the_privileged_state_tells_apart_what_the_cameras_cannot(privileged: bool) -> None:
    torch.manual_seed(0)
    vla = tiny_vla(privileged_state_dim=2 if privileged else 0)
    batch = _two_boards(16, privileged)
    given = batch.inputs.get(PRIVILEGED_STATE_KEY)
    vla.fit_normalization(
        batch.inputs["state"].numpy(),
        batch.actions[:, 0].numpy(),
        privileged_state=None if given is None else given.numpy(),
    )
    fit_batch(vla, batch, steps=300, lr=2e-3)
    obs = {k: v.numpy() for k, v in batch.inputs.items()}
    first_x = vla.sample_chunk(obs, INSTRUCTION, torch.zeros(16, 4, 14))[:, :, 0].mean(1).numpy()
    side = batch.actions[:, 0, 0].numpy() / 0.5
    if privileged:  # each side gets its own chunk
        np.testing.assert_allclose(first_x, 0.5 * side, atol=0.15)
    else:  # both get the same: the flow's zero latent is the middle of the two
        assert np.ptp(first_x) < 0.05


def test_bc_and_evaluation_give_an_oracle_policy_the_state_it_reads(
    tmp_path: Path, reach_demos: Path
) -> None:
    runner = CliRunner()
    res = runner.invoke(
        app,
        ["bc", "--data", str(reach_demos), "--out", str(tmp_path / "bc"), "--steps", "2",
         "--batch-size", "4", "--chunk-size", "4", "--image-size", "24", "--max-episodes", "2",
         "--model", json.dumps({"privileged_state_dim": 4})],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    vla = TinyVLA.from_pretrained(tmp_path / "bc")
    demos = load_demos(
        [reach_demos], cameras=CAMERAS, image_size=24, max_episodes=2, privileged_state_dim=4
    )
    assert demos.privileged_state is not None
    np.testing.assert_allclose(
        vla.privileged_mean.numpy(), demos.privileged_state.mean(0), rtol=1e-5, atol=1e-6
    )
    # found through the controller; the env gets the wrapper, once
    wrapped = wrap_env_for_policy(ReachEnv(), VLAController(vla, INSTRUCTION))
    assert isinstance(wrapped, PrivilegedState)
    assert wrap_env_for_policy(wrapped, vla) is wrapped
    plain = ReachEnv()
    assert wrap_env_for_policy(plain, tiny_vla()) is plain
    res = runner.invoke(
        app,
        ["eval-policy", "--policy", str(tmp_path / "bc"), "--task", REACH_ID, "--episodes", "1"],
    )
    assert res.exit_code == 0, res.output
    assert 0.0 <= json.loads(res.output.strip().splitlines()[-1])["success_rate"] <= 1.0
    with pytest.raises(ValueError, match="has no privileged state"):
        wrap_env_for_policy(gym.make("CartPole-v1"), vla)


def test_spiral_runs_over_an_oracle_base_policy(reach_demos: Path) -> None:
    from sarm2_gym.algos.spiral import SPIRAL, PrivilegedProgressLabeler, SPIRALConfig
    from sarm2_gym.algos.spiral.offline import demonstration_episodes
    from sarm2_gym.data.episode import ENV_STATE_KEY, STATE_KEY, image_key

    from .helpers import make_reach_env

    vla = tiny_vla(privileged_state_dim=4)
    unit_normalization(vla, 4)
    config = SPIRALConfig(
        rollouts_per_round=2, gradient_steps=4, actor_hidden=(16, 16), critic_hidden=(16, 16)
    )
    # a single env SPIRAL wraps itself, so its rollouts carry the state the base policy reads
    model = SPIRAL(vla, make_reach_env(), PrivilegedProgressLabeler(), config=config, seed=0)
    assert PRIVILEGED_STATE_KEY in model.observation_space.spaces  # type: ignore[attr-defined]
    model.learn(30)
    assert model.round >= 1 and np.isfinite(model.history[-1]["train_critic_loss"])
    # offline demonstrations give it the state they recorded
    demo = next(demonstration_episodes(model.policy, reach_demos, 1, keep_images=False))
    ep = LeRobotDataset(reach_demos).episode(0)
    obs = {c: ep.frames[image_key(c)] for c in CAMERAS}
    obs["state"] = ep.frames[STATE_KEY]
    obs[PRIVILEGED_STATE_KEY] = ep.frames[ENV_STATE_KEY][:, :4]
    np.testing.assert_allclose(demo.features, vla.encode(obs, INSTRUCTION).numpy(), atol=1e-5)
