"""Missed grasps of the scripted expert (the ``"grasp_miss"`` quality preset)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from sarm2_gym.data.recording import record_episode
from sarm2_gym.envs.core.expert import QUALITY_PRESETS, ExpertQuality, Waypoint
from sarm2_gym.envs.registry import expert_for
from sarm2_gym.envs.tasks.clean_whiteboard import CleanWhiteboardEnv

ENV = "SARM2-CleanWhiteboard-v0"  # right arm only: action[7:10] moves it, action[13] its gripper


def test_a_miss_closes_beside_the_object_while_the_recording_stays_the_experts() -> None:
    env = gym.make(ENV, obs_mode="state")
    env.reset(seed=0)
    task: CleanWhiteboardEnv = env.unwrapped  # type: ignore[assignment]
    q = ExpertQuality(name="always", grasp_miss=1.0, grasp_miss_offset=(0.04, 0.04))
    expert = expert_for(ENV, q)
    expert.reset(task, seed=0)
    steps, closes_at = [], None
    for _ in range(40):
        step = expert.act()
        if closes_at is None and step.executed is not None and step.executed[13] > 0:
            # Where the fingers close: 4 cm from the eraser along the fingers' closing axis.
            tcp = task.robot.arms["right"].target_pos
            eraser, _ = task.eraser_pose()
            finger_axis = task.robot.tcp_mat(task.data, "right")[:2, 1]
            off = tcp[:2] - eraser[:2]
            closes_at = (float(np.linalg.norm(off)), abs(float(off @ finger_axis)))
        steps.append(step)
        env.step(step.env_action)
    env.close()
    assert closes_at is not None, "the first attempt misses"
    dist, along = closes_at
    assert dist == pytest.approx(0.04, abs=0.006) and along == pytest.approx(dist, abs=0.006)
    missed = [s for s in steps if s.executed is not None]
    assert all(s.action[13] == -1.0 for s in missed), "the recording never closes off target"
    closing = [s for s in missed if s.executed[13] > 0]
    assert len(closing) >= q.grasp_miss_close_steps
    assert not task.eraser_held(), "closed 4 cm off along the finger axis: nothing is held"
    # After the miss the expert re-plans from the missed state: open and rise, not pushed.
    first = next(i for i, s in enumerate(steps) if s is closing[0])
    after = next(s for s in steps[first:] if s.executed is None)
    assert after.executed is None and after.action[13] == -1.0 and after.action[9] > 0


def test_missed_grasps_are_retried_and_the_episode_still_succeeds() -> None:
    env = gym.make(ENV, obs_mode="state")
    plain = record_episode(env, expert_for(ENV, "expert"), seed=1, env_id=ENV)
    missed = record_episode(env, expert_for(ENV, "grasp_miss"), seed=1, env_id=ENV)
    env.close()
    assert plain.success and missed.success
    assert missed.meta["quality"] == "grasp_miss"
    assert missed.meta["quality_knobs"]["grasp_miss"] == QUALITY_PRESETS["grasp_miss"].grasp_miss
    # Seed 1 misses twice (fixed physics, fixed seed): the retries take their time.
    assert missed.length >= plain.length + 25
    # Misses are executed only: the recording closes the gripper once, at the grasp that holds.
    grip = missed.frames["action"][:, 13]
    assert int(np.sum((grip[:-1] < 0) & (grip[1:] > 0))) == 1


def test_no_grasp_waypoint_no_miss_and_knobs_are_validated() -> None:
    assert Waypoint("pick_grab").grasp is False
    assert QUALITY_PRESETS["grasp_miss"].grasp_miss > 0
    assert QUALITY_PRESETS["expert"].grasp_miss == 0.0
    with pytest.raises(ValueError, match="grasp_miss"):
        ExpertQuality(grasp_miss=1.5)
    with pytest.raises(ValueError, match="grasp_miss_offset"):
        ExpertQuality(grasp_miss_offset=(0.05, 0.02))
    with pytest.raises(ValueError, match="grasp_miss_close_steps"):
        ExpertQuality(grasp_miss_close_steps=0)


@pytest.mark.parametrize(
    "env_id", ["SARM2-PullPlug-v0", "SARM2-SweepScraps-v0", "SARM2-PlatesIntoBin-v0"]
)
def test_other_experts_mark_their_grasps_and_recover_from_misses(env_id: str) -> None:
    env = gym.make(env_id, obs_mode="state")
    q = ExpertQuality(name="miss", grasp_miss=0.5)
    misses, successes = 0, 0
    for seed in range(2):
        env.reset(seed=seed)
        expert = expert_for(env_id, q)
        expert.reset(env.unwrapped, seed=seed)  # type: ignore[arg-type]
        for _ in range(env.spec.max_episode_steps or 400):  # type: ignore[union-attr]
            step = expert.act()
            misses += (
                step.executed is not None and step.executed[6::7].max() > step.action[6::7].max()
            )
            *_, terminated, truncated, info = env.step(step.env_action)
            if terminated or truncated:
                break
        successes += bool(info["is_success"])
    env.close()
    assert misses > 0, "some attempt missed: the expert marks its grasp waypoint"
    assert successes == 2
