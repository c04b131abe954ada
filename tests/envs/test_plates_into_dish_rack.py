from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from sarm2_gym.envs.core.geometry import euler_to_mat, mat_to_quat
from sarm2_gym.envs.core.primitives import primitive_index as pi
from sarm2_gym.envs.tasks.plates_into_dish_rack import (
    PLATE_MID_OFFSET,
    PLATE_REST_Z,
    SLOT_Y,
    PlatesIntoDishRackEnv,
)
from tests.envs.helpers import label_sequence, max_drop, run_expert

ENV = "SARM2-PlatesIntoDishRack-v0"
STAGE_PRIMITIVES = [pi("pick_grab"), pi("rotate_turn"), pi("insert")] * 2


def test_registered_with_the_papers_instruction_and_stage_list() -> None:
    env = gym.make(ENV, obs_mode="state")
    _, info = env.reset(seed=0)
    assert info["task"] == "pick and place plates into dish rack"
    assert [s.primitive for s in env.unwrapped.stages] == ["pick_grab", "rotate_turn", "insert"] * 2
    assert env.spec is not None and env.spec.max_episode_steps is not None
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
            assert len(r.labels) < 200


@pytest.mark.parametrize("seed", range(3))
def test_partial_and_failed_presets_do_what_they_say(seed: int) -> None:
    partial = run_expert(ENV, seed, "partial")
    failed = run_expert(ENV, seed, "failed")
    assert partial.gave_up and not partial.success
    assert 0.3 < partial.progress[-1] < 1.0
    assert failed.gave_up and not failed.success
    assert failed.progress[-1] < 0.25


def test_slow_and_mistake_presets_still_finish_but_differ() -> None:
    expert = run_expert(ENV, 3)
    slow = run_expert(ENV, 3, "slow")
    assert slow.success and len(slow.progress) > 1.4 * len(expert.progress)
    mistakes = [run_expert(ENV, s, "mistake") for s in range(5)]
    assert sum(m.success for m in mistakes) >= 4
    # Mistakes cost time and show up as setbacks in the privileged progress.
    assert np.mean([len(m.progress) for m in mistakes]) > len(expert.progress) + 10
    assert any(m.success and max_drop(m.progress) > 0.02 for m in mistakes)


def test_clumsy_preset_is_noisy_but_stays_physical() -> None:
    r = run_expert(ENV, 1, "clumsy")
    assert not r.physics_instability
    assert np.all((r.progress >= 0.0) & (r.progress <= 1.0))
    assert len(r.progress) > len(run_expert(ENV, 1).progress)


def _place(env: PlatesIntoDishRackEnv, index: int, slot: int | None) -> None:
    """Teleport a plate (test set-up only): upright in ``slot``, or flat beside the rack."""
    body = env._plates[index]
    if slot is None:
        env.set_free_body_pose(body, np.array([0.0, 0.3, PLATE_REST_Z]), np.array([1.0, 0, 0, 0]))
        return
    roll = -np.pi / 2 if index == 1 else np.pi / 2  # face normal +-y, rim towards the arm
    mat = euler_to_mat(np.array([roll, 0.0, 0.0]))
    centre = env.slot_center(slot) - mat[:, 2] * PLATE_MID_OFFSET
    centre[2] = env.seated_height() + 0.002
    env.set_free_body_pose(body, centre, mat_to_quat(mat))


def _settle(env: PlatesIntoDishRackEnv, steps: int = 15) -> None:
    for _ in range(steps):
        env.step(np.zeros(14, dtype=np.float32))


def test_success_needs_both_plates_upright_in_slots_and_released() -> None:
    env = PlatesIntoDishRackEnv(obs_mode="state")
    env.reset(seed=0)
    _place(env, 0, 1)
    _place(env, 1, None)
    _settle(env)
    assert not env.status.success
    assert env.status.stage == 3  # one plate racked: working on the second
    assert env.plate_states()[0].slot == 1

    _place(env, 1, len(SLOT_Y) - 1)
    _settle(env)
    assert env.status.success and env.progress == 1.0
    env.close()


def test_plate_is_held_only_by_a_real_pinch_of_its_rim() -> None:
    env = PlatesIntoDishRackEnv(obs_mode="state")
    env.reset(seed=0)
    # Closing the right gripper high above the plate holds nothing.
    close = np.zeros(14, dtype=np.float32)
    close[13] = 1.0
    for _ in range(5):
        env.step(close)
    assert env.plate_held_by(0) is None
    env.close()
