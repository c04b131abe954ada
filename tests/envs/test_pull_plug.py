"""SARM2-PullPlug-v0: expert, degraded presets, holding force, success rule, determinism."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import sarm2_gym  # noqa: F401  (registers the envs)
from sarm2_gym.envs.core.geometry import mat_to_quat, yaw_mat
from sarm2_gym.envs.core.primitives import primitive_index as pi
from sarm2_gym.envs.registry import expert_for
from sarm2_gym.envs.tasks.pull_plug import (
    HOLD_FORCE,
    HOUSING_HALF,
    INSERTION_DEPTH,
    PULL_DISTANCE,
    PullPlugEnv,
)
from tests.envs.helpers import Rollout, label_sequence, max_drop, run_expert

ENV = "SARM2-PullPlug-v0"
STAGE_PRIMITIVES = [pi("pick_grab"), pi("pull"), pi("place")]
PROGRESS_NOISE = 0.05


@pytest.fixture(scope="module")
def expert_runs() -> list[Rollout]:
    return [run_expert(ENV, seed) for seed in range(20)]


@pytest.fixture
def env() -> gym.Env:
    e = gym.make(ENV, obs_mode="state")
    yield e
    e.close()


def test_instruction_and_stages(env: gym.Env) -> None:
    task = env.unwrapped
    assert task.instruction == "pull plug off the socket"
    assert list(task.stage_machine.primitives) == STAGE_PRIMITIVES


def test_expert_succeeds_on_20_seeds_with_monotone_progress_and_ordered_labels(
    expert_runs: list[Rollout],
) -> None:
    successes = sum(r.success for r in expert_runs)
    assert successes >= 19, f"expert success {successes}/20"
    for seed, r in enumerate(expert_runs):
        assert not r.physics_instability, seed
        if r.success:
            assert r.progress[-1] == 1.0 and r.progress[:-1].max() < 1.0, seed
            assert max_drop(r.progress) < PROGRESS_NOISE, seed
            assert label_sequence(r.labels) == STAGE_PRIMITIVES, seed
            assert label_sequence(r.info_primitives) == STAGE_PRIMITIVES, seed


@pytest.mark.parametrize("seed", range(2))
def test_partial_and_failed_presets_do_what_they_say(seed: int) -> None:
    partial = run_expert(ENV, seed, "partial")
    failed = run_expert(ENV, seed, "failed")
    assert partial.gave_up and not partial.success
    assert failed.gave_up and not failed.success
    assert failed.progress[-1] < 0.3 < partial.progress[-1] < 1.0


def test_slow_clumsy_and_mistake_presets(expert_runs: list[Rollout]) -> None:
    slow = run_expert(ENV, 0, "slow")
    assert slow.success and len(slow.labels) > 1.3 * len(expert_runs[0].labels)
    clumsy = run_expert(ENV, 1, "clumsy")
    assert clumsy.success and len(clumsy.labels) > 1.5 * len(expert_runs[1].labels)
    mistakes = [run_expert(ENV, s, "mistake") for s in range(4)]
    assert sum(m.success for m in mistakes) >= 3
    assert sum(len(m.labels) for m in mistakes) > sum(len(expert_runs[s].labels) for s in range(4))


def _push(env: gym.Env, force: np.ndarray, steps: int) -> None:
    """Apply a constant world-frame force at the plug's centre of mass for up to ``steps`` steps.

    The force is taken away as soon as the plug has come out of the socket.
    """
    task = env.unwrapped
    task.data.xfrc_applied[task._plug, :3] = force
    for _ in range(steps):
        env.step(np.zeros(14))
        if not task.latched():
            break
    task.data.xfrc_applied[task._plug, :3] = 0.0


def test_plug_is_held_by_the_socket_until_pulled_hard_enough(env: gym.Env) -> None:
    env.reset(seed=2)
    task = env.unwrapped
    assert isinstance(task, PullPlugEnv)
    _, axis = task.seat()
    out = -axis
    # Sideways and downward loads far above the holding force do not move the seated plug.
    _push(
        env,
        5 * HOLD_FORCE * np.array([0.0, 0.0, -1.0]) + 3 * HOLD_FORCE * np.cross(axis, [0, 0, 1]),
        10,
    )
    assert task.latched() and task.seat_distance() < 0.003
    # A pull below the contacts' friction does not draw the prongs out either.
    _push(env, 0.7 * HOLD_FORCE * out, 10)
    assert task.latched() and task.slider_travel() < 1e-3
    # Above it, the prongs slide out and, past the insertion depth, the plug comes free.
    _push(env, 1.6 * HOLD_FORCE * out, 15)
    assert not task.latched() and task.slider_travel() >= INSERTION_DEPTH - 0.002


def test_success_needs_the_plug_out_and_lying_in_the_area(env: gym.Env) -> None:
    env.reset(seed=4)
    task = env.unwrapped
    idle = np.zeros(14)
    _push(env, 1.6 * HOLD_FORCE * -task.seat()[1], 15)
    for _ in range(5):
        env.step(idle)
    assert not task.latched() and not env.unwrapped.status.success
    # Lay the free plug in its area, housing down, as a gripper would.
    _, mat = task.plug_pose()
    yaw = float(np.arctan2(mat[1, 0], mat[0, 0]))
    rot = yaw_mat(yaw)
    origin = task.area_center() - (rot @ np.array([-HOUSING_HALF[0], 0.0, 0.0]))[:2]
    task.set_free_body_pose(
        task._plug, np.array([*origin, HOUSING_HALF[2] + 0.002]), mat_to_quat(rot)
    )
    for _ in range(10):
        _, reward, terminated, _, info = env.step(idle)
        if terminated:
            break
    assert task.seat_distance() >= PULL_DISTANCE
    assert info["is_success"] and terminated and reward == 1.0 and info["progress"] == 1.0


def test_seeded_resets_are_deterministic(env: gym.Env) -> None:
    def trace(seed: int) -> np.ndarray:
        obs, _ = env.reset(seed=seed)
        expert = expert_for(ENV, "expert")
        expert.reset(env.unwrapped, seed)
        rows = [obs["env_state"]]
        for _ in range(30):
            obs, *_ = env.step(expert.act().action)
            rows.append(np.concatenate([obs["env_state"], obs["state"]]))
        return np.concatenate(rows)

    np.testing.assert_array_equal(trace(11), trace(11))
    first = [env.reset(seed=s)[0]["env_state"] for s in (11, 12)]
    assert not np.allclose(first[0], first[1])
