"""Past states: the env wrapper, the same states from demonstrations, and a TinyVLA reading them."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from sarm2_gym.algos.baselines.common import evaluate_on_task
from sarm2_gym.algos.spiral.offline import demonstration_episodes
from sarm2_gym.algos.vla import TinyVLA, VLAController
from sarm2_gym.algos.vla.data import load_demos
from sarm2_gym.algos.vla.policy import ChunkBatch, wrap_env_for_policy
from sarm2_gym.data.episode import STATE_KEY, image_key
from sarm2_gym.data.reader import LeRobotDataset
from sarm2_gym.envs.past_states import PAST_STATES_KEY, PastStates, episode_past_states

from .helpers import (
    IMAGE,
    INSTRUCTION,
    ReachEnv,
    expert_action,
    fit_batch,
    make_reach_env,
    tiny_vla,
)


def _obs(n: int, past: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    obs = {c: rng.integers(0, 255, (n, IMAGE, IMAGE, 3), dtype=np.uint8) for c in
           ("top", "left_wrist", "right_wrist")}  # fmt: skip
    obs["state"] = rng.normal(size=(n, 14)).astype(np.float32)
    if past:
        obs[PAST_STATES_KEY] = rng.normal(size=(n, past, 14)).astype(np.float32)
    return obs


def test_the_wrapper_gives_the_states_stride_steps_apart_oldest_first() -> None:
    env = PastStates(ReachEnv(), n=2, stride=2)
    assert env.observation_space[PAST_STATES_KEY].shape == (2, 14)
    obs, _ = env.reset(seed=0)
    states = [obs["state"]]
    # before the episode's start: its first state
    np.testing.assert_array_equal(obs[PAST_STATES_KEY], np.stack([states[0]] * 2))
    for t in range(1, 6):
        obs, *_ = env.step(expert_action(obs, env.unwrapped))  # type: ignore[arg-type]
        states.append(obs["state"])
        want = [states[max(t - 4, 0)], states[max(t - 2, 0)]]
        np.testing.assert_array_equal(obs[PAST_STATES_KEY], np.stack(want), err_msg=f"t={t}")
    assert not np.array_equal(states[5], states[1])  # the test would see a wrong lag
    obs, _ = env.reset(seed=1)  # a new episode forgets the old one
    np.testing.assert_array_equal(obs[PAST_STATES_KEY], np.stack([obs["state"]] * 2))
    assert env.observation_space.contains(obs)
    # the same from a recorded episode's states
    recorded = episode_past_states(np.stack(states), 2, 2)
    np.testing.assert_array_equal(recorded[5], np.stack([states[1], states[3]]))
    np.testing.assert_array_equal(recorded[1], np.stack([states[0], states[0]]))


def test_the_wrapper_refuses_bad_settings_and_spaces() -> None:
    with pytest.raises(ValueError, match="n and stride must be >= 1"):
        PastStates(ReachEnv(), n=0)
    with pytest.raises(ValueError, match="n and stride must be >= 1"):
        PastStates(ReachEnv(), n=1, stride=0)
    with pytest.raises(ValueError, match="already has 'past_states'"):
        PastStates(PastStates(ReachEnv(), n=1), n=1)
    with pytest.raises(ValueError, match="1-d 'state' Box"):
        PastStates(gym.make("CartPole-v1"), n=1)  # type: ignore[arg-type]


def test_benchmark_envs_take_past_states_from_gym_make() -> None:
    env = gym.make("SARM2-CleanWhiteboard-v0", obs_mode="state", past_states=3)
    obs, _ = env.reset(seed=0)
    assert obs[PAST_STATES_KEY].shape == (3, 14)
    plain, _ = gym.make("SARM2-CleanWhiteboard-v0", obs_mode="state").reset(seed=0)
    assert PAST_STATES_KEY not in plain


def test_demonstrations_give_the_past_states_the_wrapper_gives(reach_demos: Path) -> None:
    """A policy trained on recorded episodes must see at run time what it saw in training."""
    demos = load_demos([reach_demos], cameras=("top",), image_size=IMAGE, max_episodes=2)
    _, _, start, length, _ = demos.episodes[1]  # the second: its past must not reach the first
    recorded = demos.past_states(np.arange(start, start + length), 3, 2)
    env = PastStates(ReachEnv(), n=3, stride=2)
    obs, _ = env.reset(seed=1)  # record_demos seeds episode i with i
    live = [obs[PAST_STATES_KEY]]
    for _ in range(length - 1):
        obs, *_ = env.step(expert_action(obs, env.unwrapped))  # type: ignore[arg-type]
        live.append(obs[PAST_STATES_KEY])
    np.testing.assert_allclose(recorded, np.stack(live), atol=1e-6)
    batch = demos.batch(np.array([start + 3]), 4, past_states=3, past_state_stride=2)
    np.testing.assert_array_equal(batch.inputs[PAST_STATES_KEY].numpy(), recorded[3:4])
    assert PAST_STATES_KEY not in demos.batch(np.array([start]), 4).inputs


def test_a_tiny_vla_reads_its_past_states_and_names_what_is_missing(tmp_path: Path) -> None:
    vla = tiny_vla(past_states=2, past_state_stride=3)
    assert vla.feature_dim == 32 + 2 * 14 + 14
    obs = _obs(3, past=2)
    state = obs["state"]
    motion = (state[:, None] - obs[PAST_STATES_KEY]).reshape(-1, 14)
    vla.set_normalization(
        state.mean(0), state.std(0), np.zeros(14), np.ones(14), motion.std(0)[None].repeat(2, 0)
    )
    z = torch.randn(3, vla.chunk_size, 14, generator=torch.Generator().manual_seed(0))
    chunk = vla.sample_chunk(obs, INSTRUCTION, z)
    moved = {**obs, PAST_STATES_KEY: obs[PAST_STATES_KEY] + 0.5}
    assert not torch.allclose(vla.sample_chunk(moved, INSTRUCTION, z), chunk)
    # the features end with the normalised state (target-mode actions read it back)
    feats = vla.encode(obs, INSTRUCTION)
    want = (torch.from_numpy(state) - vla.state_mean) / vla.state_std
    torch.testing.assert_close(feats[:, -14:], want)

    with pytest.raises(ValueError, match=r"needs 'past_states'.*wrap_env_for_policy"):
        vla.encode(_obs(3), INSTRUCTION)
    with pytest.raises(ValueError, match=r"'past_states' must be \(3, 2, 14\)"):
        vla.encode({**obs, PAST_STATES_KEY: obs[PAST_STATES_KEY][:, :1]}, INSTRUCTION)
    with pytest.raises(ValueError, match="motion_std is needed exactly when past_states > 0"):
        vla.set_normalization(np.zeros(14), np.ones(14), np.zeros(14), np.ones(14))
    with pytest.raises(ValueError, match="past_states must be >= 0"):
        tiny_vla(past_states=-1)

    loaded = TinyVLA.from_pretrained(vla.save_pretrained(tmp_path / "vla"))
    assert loaded.config.past_states == 2 and loaded.config.past_state_stride == 3
    torch.testing.assert_close(loaded.sample_chunk(obs, INSTRUCTION, z), chunk)
    assert "motion_std" not in tiny_vla().state_dict()  # older checkpoints load as before


def _two_moments(n: int) -> tuple[ChunkBatch, np.ndarray]:
    """Samples that look the same now and differ only in where the arm came from.

    The arm is at the same place with the same images; it got there moving +x or -x, and the
    demonstrated chunk keeps going that way. Only the past state tells which.
    """
    direction = np.where(np.arange(n) % 2 == 0, 1.0, -1.0).astype(np.float32)
    frame = np.random.default_rng(0).integers(0, 255, (1, IMAGE, IMAGE, 3), dtype=np.uint8)
    state = np.full((n, 14), 0.2, np.float32)
    past = state[:, None].repeat(1, 1)
    past[:, 0, 0] -= 0.03 * direction  # 3 steps ago it was 3 cm behind
    actions = np.zeros((n, 4, 14), np.float32)
    actions[:, :, 0] = 0.5 * direction[:, None]
    inputs = {c: torch.from_numpy(frame.repeat(n, 0)) for c in ("top", "left_wrist", "right_wrist")}
    inputs["state"] = torch.from_numpy(state)
    inputs[PAST_STATES_KEY] = torch.from_numpy(past)
    batch = ChunkBatch(
        inputs=inputs,
        task_ids=torch.zeros(n, dtype=torch.long),
        actions=torch.from_numpy(actions),
        action_pad=torch.zeros(n, 4, dtype=torch.bool),
    )
    return batch, direction


@pytest.mark.parametrize("past_states", [1, 0])
def test_past_states_tell_apart_moments_that_look_the_same(past_states: int) -> None:
    torch.manual_seed(0)
    vla = tiny_vla(past_states=past_states, past_state_stride=3)
    batch, direction = _two_moments(16)
    past = batch.inputs[PAST_STATES_KEY].numpy() if past_states else None
    vla.fit_normalization(batch.inputs["state"].numpy(), batch.actions[:, 0].numpy(), past)
    fit_batch(vla, batch, steps=300, lr=2e-3)
    obs = {k: v.numpy() for k, v in batch.inputs.items()}
    chunk = vla.sample_chunk(obs, INSTRUCTION, torch.zeros(16, 4, 14))
    first_x = chunk[:, :, 0].mean(1).numpy()
    if past_states:  # each moment goes on its own way
        np.testing.assert_allclose(first_x, 0.5 * direction, atol=0.15)
    else:  # without them both moments get the same chunk: the flow's zero latent is the middle
        assert np.ptp(first_x) < 0.05


def test_evaluation_envs_give_a_policy_the_past_states_it_reads() -> None:
    task = "SARM2-CleanWhiteboard-v0"
    instruction = gym.make(task, obs_mode="state").unwrapped.instruction  # type: ignore[attr-defined]
    vla = tiny_vla(past_states=2, instructions=(instruction,))
    vla.set_normalization(np.zeros(14), np.ones(14), np.zeros(14), np.ones(14), np.ones((2, 14)))
    controller = VLAController(vla, instruction)
    # found through the controller; a policy without past states leaves the env alone
    wrapped = wrap_env_for_policy(ReachEnv(), controller)
    assert isinstance(wrapped, PastStates) and wrapped.n == 2
    plain = ReachEnv()
    assert wrap_env_for_policy(plain, tiny_vla()) is plain
    assert wrap_env_for_policy(wrapped, vla) is wrapped  # it gives them already
    result = evaluate_on_task(
        controller, task, [0], image_size=IMAGE, n_envs=1, max_episode_steps=3
    )
    assert result.success_rate == 0.0 and result.lengths == [3]


def test_spiral_runs_over_a_base_policy_that_reads_past_states(reach_demos: Path) -> None:
    from dataclasses import replace

    from stable_baselines3.common.vec_env import DummyVecEnv

    from sarm2_gym.algos.spiral import SPIRAL, PrivilegedProgressLabeler, SPIRALConfig

    vla = tiny_vla(past_states=1, past_state_stride=2)
    vla.set_normalization(np.zeros(14), np.ones(14), np.zeros(14), np.ones(14), np.ones((1, 14)))
    config = SPIRALConfig(
        rollouts_per_round=2, gradient_steps=8, actor_hidden=(16, 16), critic_hidden=(16, 16),
        frozen_image_features="efficientnet_lite0", frozen_image_size=32,
    )  # fmt: skip
    env = DummyVecEnv([lambda: wrap_env_for_policy(make_reach_env(), vla)] * 2)
    model = SPIRAL(vla, env, PrivilegedProgressLabeler(), config=config, seed=0)
    # the frozen image features are of the cameras, not of the past states
    assert sorted(model.policy.base.cameras) == ["left_wrist", "right_wrist", "top"]
    assert model.replay.feature_dim == vla.feature_dim + 3 * 1280
    model.learn(60)
    assert model.round >= 1 and np.isfinite(model.history[-1]["train_critic_loss"])

    # A single env (or an env id) SPIRAL wraps itself; a VecEnv must give the past states.
    config = replace(config, frozen_image_features=None)
    single = SPIRAL(vla, make_reach_env(), PrivilegedProgressLabeler(), config=config, seed=0)
    assert PAST_STATES_KEY in single.observation_space.spaces  # type: ignore[attr-defined]
    # offline demonstrations get the past states the env would have given while recording
    demo = next(demonstration_episodes(single.policy, reach_demos, 1, keep_images=False))
    ep = LeRobotDataset(reach_demos).episode(0)
    obs = {c: ep.frames[image_key(c)] for c in ("top", "left_wrist", "right_wrist")}
    obs["state"] = ep.frames[STATE_KEY]
    obs[PAST_STATES_KEY] = episode_past_states(obs["state"], 1, 2)
    np.testing.assert_allclose(demo.features, vla.encode(obs, INSTRUCTION).numpy(), atol=1e-5)
    bare = DummyVecEnv([make_reach_env] * 2)
    plain = SPIRAL(vla, bare, PrivilegedProgressLabeler(), config=config, seed=0)
    with pytest.raises(ValueError, match="needs 'past_states'"):
        plain.learn(10)
