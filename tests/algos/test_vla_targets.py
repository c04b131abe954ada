"""Pose-target TinyVLA: targets integrate like the env, and chunks come back as env deltas."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import sarm2_gym  # noqa: F401  (registers the tasks)
from sarm2_gym.algos.vla.bc import _demo_control_limits
from sarm2_gym.algos.vla.config import TinyVLAConfig
from sarm2_gym.algos.vla.data import load_demos
from sarm2_gym.algos.vla.targets import (
    actions_from_targets,
    limits_from_tuple,
    limits_to_tuple,
    targets_from_actions,
    targets_from_states,
)
from sarm2_gym.envs.core.embodiment import ControlLimits
from sarm2_gym.envs.registry import env_class

from .helpers import IMAGE, INSTRUCTION, fit_batch, tiny_vla

CW = "SARM2-CleanWhiteboard-v0"
# The fake reaching task moves 0.15 per unit action in an unbounded plane.
REACH_LIMITS = ControlLimits(
    max_translation=0.15,
    max_rotation=0.15,
    workspace_low=(-10.0, -10.0, -10.0),
    workspace_high=(10.0, 10.0, 10.0),
    rpy_low=(-3.0, -3.0, -3.0),
    rpy_high=(3.0, 3.0, 3.0),
)


def test_targets_are_the_poses_the_env_commands() -> None:
    env = gym.make(CW, obs_mode="state")
    obs, _ = env.reset(seed=3)
    start = obs["state"].copy()
    rng = np.random.default_rng(0)
    actions, states = [], []
    for _ in range(8):
        a = rng.uniform(-1, 1, 14).astype(np.float32)
        obs, *_ = env.step(a)
        actions.append(a)
        states.append(obs["state"].copy())
    env.close()
    targets = targets_from_actions(
        torch.tensor(start)[None],
        torch.tensor(np.array(actions))[None],
        env_class(CW).control_limits,
    )[0].numpy()
    pose = [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12]
    np.testing.assert_allclose(targets[:, pose], np.array(states)[:, pose], atol=1e-6)
    np.testing.assert_array_equal(targets[:, [6, 13]], np.array(actions)[:, [6, 13]])


def test_recorded_states_give_the_commanded_poses_when_actions_were_pushed() -> None:
    # DART data: the env executed recorded + push, so only the recorded states say where the
    # arm was when each action was chosen; integrating the recorded actions drifts away.
    env = gym.make(CW, obs_mode="state")
    obs, _ = env.reset(seed=5)
    rng = np.random.default_rng(1)
    before, recorded, executed, after = [], [], [], []
    for _ in range(6):
        a = rng.uniform(-0.5, 0.5, 14).astype(np.float32)
        push = rng.uniform(-0.4, 0.4, 14).astype(np.float32)
        push[[6, 13]] = 0.0
        before.append(obs["state"].copy())
        obs, *_ = env.step(a + push)
        recorded.append(a)
        executed.append(a + push)
        after.append(obs["state"].copy())
    env.close()
    limits = env_class(CW).control_limits
    states = torch.tensor(np.array(before))[None]
    pose = [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12]
    reached = targets_from_states(states, torch.tensor(np.array(executed))[None], limits)[0]
    np.testing.assert_allclose(reached.numpy()[:, pose], np.array(after)[:, pose], atol=1e-6)
    intended = targets_from_states(states, torch.tensor(np.array(recorded))[None], limits)[0]
    drifted = targets_from_actions(states[:, 0], torch.tensor(np.array(recorded))[None], limits)[0]
    assert torch.allclose(intended[0], drifted[0])  # the first step agrees
    assert (intended[-1, pose] - drifted[-1, pose]).abs().max() > 0.01  # later ones do not


def test_targets_turn_back_into_the_same_deltas_and_moves_are_bounded() -> None:
    limits = ControlLimits()
    gen = torch.Generator().manual_seed(0)
    state = torch.rand(5, 14, generator=gen) * 0.2
    state[:, [2, 9]] += 0.15  # well inside the workspace: no clipping
    actions = torch.rand(5, 6, 14, generator=gen) * 2 - 1
    back = actions_from_targets(state, targets_from_actions(state, actions, limits), limits)
    torch.testing.assert_close(back, actions, atol=1e-5, rtol=0)
    # a target out of reach is approached at full speed, one bounded step at a time
    far = targets_from_actions(state, torch.zeros(5, 3, 14), limits)
    far[:, :, 2] += 0.1
    steps = actions_from_targets(state, far, limits)
    assert steps.abs().max() <= 1.0
    torch.testing.assert_close(steps[:, :, 2], torch.ones(5, 3))
    # the workspace floor clips the integrated pose, as the env clips its command
    low = targets_from_actions(state, -torch.ones(5, 20, 14), limits)
    assert float(low[:, -1, 2].min()) == pytest.approx(limits.workspace_low[2])
    assert limits_from_tuple(limits_to_tuple(limits)) == limits


def test_a_target_tiny_vla_overfits_and_samples_env_deltas(reach_demos: Path) -> None:
    torch.manual_seed(0)
    vla = tiny_vla(
        flow_hidden=128, action_space="target", control_limits=limits_to_tuple(REACH_LIMITS)
    )
    demos = load_demos([reach_demos], cameras=vla.config.cameras, image_size=IMAGE, max_episodes=3)
    vla.fit_normalization(demos.state, demos.actions)
    index = np.arange(demos.num_frames)
    batch = demos.batch(np.tile(index, 4), vla.chunk_size)
    assert batch.action_states is not None
    assert torch.equal(batch.action_states[:, 0], batch.inputs["state"])
    gen = fit_batch(vla, batch, steps=250, lr=1e-3)
    full = demos.batch(index, vla.chunk_size)
    obs = {k: v.numpy() for k, v in full.inputs.items()}
    noise = torch.randn(len(index), vla.chunk_size, 14, generator=gen)
    pred = vla.sample_chunk(obs, INSTRUCTION, noise)
    assert pred.abs().max() <= 1.0  # env units, whatever the head generates
    with torch.no_grad():  # the two halves SPIRAL's residual goes between give the same chunks
        feats = vla.encode(obs, INSTRUCTION)
        halves = vla.env_actions(feats, vla.sample_normalized_actions(feats, noise))
    assert torch.allclose(halves, pred, atol=1e-6)
    # what it learned is where to go: the poses its chunks reach match the demonstrated ones
    state = full.inputs["state"]
    reached = targets_from_actions(state, pred, REACH_LIMITS)[~full.action_pad][:, :2]
    shown = targets_from_actions(state, full.actions, REACH_LIMITS)[~full.action_pad][:, :2]
    err = (reached - shown).abs().mean()
    assert err < 0.35 * (shown - shown.mean(0)).abs().mean(), err


def test_target_configuration_errors(reach_demos: Path) -> None:
    with pytest.raises(ValueError, match="needs control_limits"):
        tiny_vla(action_space="target")
    with pytest.raises(ValueError, match="control_limits must hold 14"):
        TinyVLAConfig(action_space="target", control_limits=(0.1, 0.2))
    with pytest.raises(ValueError, match="action_space must be one of"):
        TinyVLAConfig(action_space="velocity")
    demos = load_demos([reach_demos], cameras=("top",), image_size=IMAGE, max_episodes=1)
    mixed = type(demos)(**{**demos.__dict__, "env_ids": (CW, "SARM2-PutAwayUmbrella-v0")})
    with pytest.raises(ValueError, match="different control limits"):
        _demo_control_limits(mixed)
    foreign = type(demos)(**{**demos.__dict__, "env_ids": ("MyLab-Wipe-v3",)})
    with pytest.raises(ValueError, match=r"set TinyVLAConfig\.control_limits"):
        _demo_control_limits(foreign)
    same = type(demos)(**{**demos.__dict__, "env_ids": (CW, "SARM2-FoldShorts-v0")})
    assert _demo_control_limits(same) == limits_to_tuple(ControlLimits())
