"""Executed-only pushes of the scripted expert (the ``"dart"`` quality preset)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from sarm2_gym.data.recording import record_episode
from sarm2_gym.envs.core.expert import QUALITY_PRESETS, ExpertQuality, ExpertStep
from sarm2_gym.envs.registry import expert_for

ENV = "SARM2-CleanWhiteboard-v0"  # right arm only; the left arm has no target


def _rollout(quality: str | ExpertQuality, seed: int = 0, steps: int = 60) -> list[ExpertStep]:
    env = gym.make(ENV, obs_mode="state")
    env.reset(seed=seed)
    expert = expert_for(ENV, quality)
    expert.reset(env.unwrapped, seed=seed)  # type: ignore[arg-type]
    out = []
    for _ in range(steps):
        step = expert.act()
        out.append(step)
        *_, terminated, truncated, _ = env.step(step.env_action)
        if terminated or truncated:
            break
    env.close()
    return out


def test_pushes_change_only_the_executed_motion_of_the_busy_arm() -> None:
    steps = _rollout(ExpertQuality(name="push", perturbation=0.3, perturbation_scale=0.5))
    pushed = [s for s in steps if s.executed is not None]
    assert 5 <= len(pushed) < len(steps), "pushes happen on some steps, not all"
    for s in pushed:
        diff = s.executed - s.action
        assert np.all(diff[:7] == 0), "the left arm has no target here: it is never pushed"
        assert np.all(diff[6::7] == 0), "grippers are never pushed"
        assert np.abs(diff[7:10]).max() > 0, "the right arm's translation is pushed"
        assert np.all(np.abs(s.executed) <= 1.0)
    for s in steps:
        assert s.env_action is (s.action if s.executed is None else s.executed)


def test_pushes_last_their_drawn_length_with_one_offset() -> None:
    q = ExpertQuality(name="push", perturbation=0.2, perturbation_steps=(3, 3))
    steps = _rollout(q, steps=80)
    runs, current = [], 0
    for s in steps:
        if s.executed is not None:
            current += 1
        elif current:
            runs.append(current)
            current = 0
    assert runs and all(r % 3 == 0 for r in runs), f"pushes come in runs of 3 steps: {runs}"


def test_no_perturbation_draws_nothing_and_recording_keeps_the_expert_action() -> None:
    plain = _rollout("expert")
    assert all(s.executed is None for s in plain)
    env = gym.make(ENV, obs_mode="state")
    ep = record_episode(env, expert_for(ENV, "dart"), seed=3, env_id=ENV)
    env.close()
    assert ep.success, "the pushed expert steers back and still finishes"
    assert ep.meta["quality"] == "dart" and ep.meta["quality_knobs"]["perturbation"] > 0
    # Recorded actions are the expert's: inside the normalised box, grippers at +-1 exactly.
    actions = ep.frames["action"]
    assert np.all(np.abs(actions) <= 1.0)
    assert set(np.unique(actions[:-1, 13])) <= {-1.0, 1.0}


def test_perturbation_knobs_are_validated() -> None:
    assert QUALITY_PRESETS["dart"].perturbation > 0
    with pytest.raises(ValueError, match="perturbation"):
        ExpertQuality(perturbation=1.5)
    with pytest.raises(ValueError, match="perturbation_steps"):
        ExpertQuality(perturbation_steps=(4, 2))
    with pytest.raises(ValueError, match="perturbation_scale"):
        ExpertQuality(perturbation_scale=2.0)
