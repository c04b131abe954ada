from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from sarm2_gym.envs.core.geometry import mat_to_quat
from sarm2_gym.envs.core.primitives import primitive_index as pi
from sarm2_gym.envs.tasks.put_away_umbrella import TIP_X, PutAwayUmbrellaEnv
from tests.envs.helpers import label_sequence, max_drop, run_expert

ENV = "SARM2-PutAwayUmbrella-v0"
STAGE_PRIMITIVES = [pi("pick_grab"), pi("rotate_turn"), pi("insert")]


def test_registered_with_the_papers_instruction_and_stage_list() -> None:
    env = gym.make(ENV, obs_mode="state")
    _, info = env.reset(seed=0)
    assert info["task"] == "put away an umbrella"
    assert [s.primitive for s in env.unwrapped.stages] == ["pick_grab", "rotate_turn", "insert"]
    env.close()


def test_expert_succeeds_on_20_seeds_with_monotone_progress_and_ordered_labels() -> None:
    rollouts = [run_expert(ENV, seed) for seed in range(20)]
    successes = sum(r.success for r in rollouts)
    assert successes >= 19, f"expert success {successes}/20"
    for r in rollouts:
        assert not r.physics_instability
        if r.success:
            assert r.progress[-1] == 1.0
            assert max_drop(r.progress) < 0.05, "expert progress should not go backwards"
            assert label_sequence(r.labels) == STAGE_PRIMITIVES
            assert label_sequence(r.info_primitives) == STAGE_PRIMITIVES
            assert len(r.labels) < 120


def test_seeds_differ_meaningfully() -> None:
    env = PutAwayUmbrellaEnv(obs_mode="state")
    sides, poses = set(), []
    for seed in range(8):
        obs, _ = env.reset(seed=seed)
        sides.add(env.stand_side)
        poses.append(obs["env_state"])
    assert sides == {"left", "right"}
    assert np.min(np.ptp(np.array(poses)[:, :2], axis=0)) > 0.01
    env.close()


@pytest.mark.parametrize("seed", range(3))
def test_partial_and_failed_presets_do_what_they_say(seed: int) -> None:
    partial = run_expert(ENV, seed, "partial")
    failed = run_expert(ENV, seed, "failed")
    assert partial.gave_up and not partial.success
    assert 0.3 < partial.progress[-1] < 1.0
    assert failed.gave_up and not failed.success
    # Giving up with the umbrella just lifted reaches the second stage at most.
    assert failed.progress[-1] < 0.4


def test_slow_and_mistake_presets_still_finish_but_differ() -> None:
    expert = run_expert(ENV, 3)
    slow = run_expert(ENV, 3, "slow")
    assert slow.success and len(slow.progress) > 1.4 * len(expert.progress)
    mistakes = [run_expert(ENV, s, "mistake") for s in range(6)]
    assert sum(m.success for m in mistakes) >= 5
    assert any(m.success and max_drop(m.progress) > 0.02 for m in mistakes)


def test_success_needs_the_umbrella_upright_in_the_stand_and_released() -> None:
    env = PutAwayUmbrellaEnv(obs_mode="state")
    env.reset(seed=0)
    stand = env.stand_center()
    # Teleported (test set-up only) standing in the stand, tip just above its floor.
    up = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])  # shaft along +z
    pos = stand + np.array([0.0, 0.0, -TIP_X + 0.002])
    env.set_free_body_pose(env._umbrella, pos, mat_to_quat(up))
    for _ in range(10):
        env.step(np.zeros(14, dtype=np.float32))
    assert env.tip_in_stand() and env.status.success

    # Lying on the table beside the stand is not put away.
    env.set_free_body_pose(
        env._umbrella, stand + np.array([-0.15, 0.0, 0.03]), np.array([1.0, 0, 0, 0])
    )
    for _ in range(10):
        env.step(np.zeros(14, dtype=np.float32))
    assert not env.status.success and env.status.stage == 0
    env.close()
