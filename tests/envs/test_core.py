from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from sarm2_gym.envs.core import primitives as P
from sarm2_gym.envs.core.stages import Stage, StageMachine, TaskStatus, sequential_status
from sarm2_gym.envs.registry import TASKS, task_by_id, task_index

ENV = "SARM2-CleanWhiteboard-v0"
INFO_KEYS = {"is_success", "primitive", "stage", "progress", "sparse_reward", "task"}


def test_primitive_vocabulary_matches_design() -> None:
    expected = (
        "clamp erase fold_flatten hang insert install pass pick_grab place pour_dump press pull "
        "roll rotate_turn scoop screw_unscrew sweep tie untie wrap zip_unzip dummy"
    )
    assert expected.split() == list(P.PRIMITIVES)
    assert P.NUM_PRIMITIVES == 22 and P.NUM_GROUPS == 8
    assert P.GROUP_NAMES[P.group_of("pick_grab")] == "Acquire"
    assert P.GROUP_NAMES[P.group_of("pour_dump")] == "Release"
    assert P.GROUP_NAMES[P.group_of("pass")] == "Translate"
    assert P.GROUP_NAMES[P.group_of("install")] == "Insert"
    assert P.GROUP_NAMES[P.group_of("hang")] == "Shape Clothes"
    assert P.GROUP_NAMES[P.group_of("roll")] == "Rotate"
    assert P.GROUP_NAMES[P.group_of("clamp")] == "Force"
    assert P.group_of(P.DUMMY) == 7
    assert sorted(p for g in P.GROUPS for p in g) == sorted(P.PRIMITIVES)
    with pytest.raises(KeyError, match="unknown primitive"):
        P.primitive_index("juggle")


def test_stage_machine_breakpoints_and_success() -> None:
    sm = StageMachine(
        [Stage("a", "pick_grab", 1), Stage("b", "fold_flatten", 2), Stage("c", "press", 1)]
    )
    assert np.allclose(sm.breakpoints, [0, 0.25, 0.75, 1.0])
    assert sm.progress(TaskStatus(1, 0.5, False)) == pytest.approx(0.5)
    assert sm.progress(TaskStatus(2, 1.0, False)) < 1.0
    assert sm.progress(TaskStatus(2, 0.2, True)) == 1.0
    assert sm.primitive(2) == P.primitive_index("press")
    assert sequential_status([True, False, False], [1, 0.3, 0]).stage == 1
    assert sequential_status([True, True, True], [1, 1, 1]).success
    with pytest.raises(ValueError, match="unique"):
        StageMachine([Stage("a", "place"), Stage("a", "place")])
    with pytest.raises(KeyError):
        Stage("x", "teleport")


def test_task_table_order_and_lookup() -> None:
    assert [t.instruction for t in TASKS][:3] == [
        "pick and place plates into bin",
        "clean whiteboard WITH whiteboard eraser",
        "folding shorts",
    ]
    assert len(TASKS) == 10
    assert task_index(ENV) == 1
    with pytest.raises(ValueError, match="unknown task"):
        task_by_id("SARM2-JuggleKnives-v0")


@pytest.mark.parametrize("obs_mode", ["state", "rgb"])
def test_info_contract_and_seeded_determinism(obs_mode: str) -> None:
    env = gym.make(ENV, obs_mode=obs_mode)
    obs1, info = env.reset(seed=7)
    assert set(info) >= INFO_KEYS
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (5, 14)).astype(np.float32)
    traj1 = []
    for a in actions:
        obs, _, _, _, info = env.step(a)
        assert set(info) >= INFO_KEYS
        assert info["task"] == "clean whiteboard WITH whiteboard eraser"
        assert 0.0 <= info["progress"] <= 1.0
        traj1.append(obs)
    obs2, _ = env.reset(seed=7)
    for key in obs1:
        np.testing.assert_array_equal(obs1[key], obs2[key])
    for a, o1 in zip(actions, traj1, strict=True):
        o2, *_ = env.step(a)
        for key in o1:
            np.testing.assert_array_equal(o1[key], o2[key])
    env.close()


def test_seeds_change_the_scene() -> None:
    env = gym.make(ENV, obs_mode="state")
    a, _ = env.reset(seed=1)
    b, _ = env.reset(seed=2)
    assert not np.allclose(a["env_state"], b["env_state"])
    env.close()


def test_bad_actions_and_kwargs_raise_clear_errors() -> None:
    env = gym.make(ENV, obs_mode="state", disable_env_checker=True)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(14,\)"):
        env.step(np.zeros(7))
    bad = np.zeros(14)
    bad[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        env.step(bad)
    env.close()
    with pytest.raises(ValueError, match="obs_mode"):
        gym.make(ENV, obs_mode="depth")
    with pytest.raises(ValueError, match="reward"):
        gym.make(ENV, reward="dense-ish")
    with pytest.raises(gym.error.Error):
        gym.make("SARM2-JuggleKnives-v0")


def test_rigid_grasp_attaches_on_contact_and_releases_on_open() -> None:
    env = gym.make(ENV, obs_mode="state")
    env.reset(seed=0)
    task = env.unwrapped
    expert = __import__("sarm2_gym.envs", fromlist=["expert_for"]).expert_for(ENV)
    expert.reset(task, seed=0)
    for _ in range(80):
        step = expert.act()
        env.step(step.action)
        if task.eraser_held():
            break
    assert task.eraser_held(), "the expert's closed gripper should hold the eraser"
    z0 = task.eraser_pose()[0][2]
    up = np.zeros(14, dtype=np.float32)
    up[13] = 1.0
    up[9] = 1.0  # right arm up
    for _ in range(3):
        env.step(up)
    assert task.eraser_pose()[0][2] > z0 + 0.05, "a held eraser follows the gripper"
    release = up.copy()
    release[9] = 0.0
    release[13] = -1.0
    env.step(release)
    assert not task.eraser_held()
    for _ in range(10):
        env.step(release)
    assert task.eraser_pose()[0][2] < z0 + 0.02, "a released eraser falls"
    env.close()
