from __future__ import annotations

from collections import defaultdict
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.vec_env import DummyVecEnv

from sarm2_gym.envs.testing import StepIndexEnv
from sarm2_gym.reward.testing import tiny_model
from sarm2_gym.wrappers import (
    RENDER,
    ResizeCameras,
    SARM2LoggingCallback,
    SARM2Reward,
    SARM2VecEnvWrapper,
    SARM2VectorReward,
)

SIZE = 40


@pytest.fixture(scope="module")
def model() -> Any:
    return tiny_model(image_size=SIZE)


class Spy:
    """Records, per env, which step-index frames were pushed, reset and scored."""

    def __init__(self, scorer: Any) -> None:
        self.events: dict[int, list[tuple[str, int]]] = defaultdict(list)
        streaming = scorer.streaming
        push, reset, score = streaming.push, streaming.reset, streaming.score

        def spy_push(images: Any, state: np.ndarray, env_indices: Any = None) -> None:
            envs = range(streaming.num_envs) if env_indices is None else env_indices
            for row, e in enumerate(envs):
                self.events[int(e)].append(("push", int(state[row][0])))
            push(images, state, env_indices)

        def spy_reset(env_indices: Any = None) -> None:
            for e in range(streaming.num_envs) if env_indices is None else env_indices:
                self.events[int(e)].append(("reset", -1))
            reset(env_indices)

        def spy_score(env_indices: Any = None) -> Any:
            for e in range(streaming.num_envs) if env_indices is None else env_indices:
                self.events[int(e)].append(("score", int(streaming.steps[int(e)])))
            return score(env_indices)

        streaming.push, streaming.reset, streaming.score = spy_push, spy_reset, spy_score


def _episodes_from_events(events: list[tuple[str, int]]) -> list[list[tuple[str, int]]]:
    episodes: list[list[tuple[str, int]]] = []
    for ev in events:
        if ev[0] == "reset":
            episodes.append([])
        elif episodes:
            episodes[-1].append(ev)
    return episodes


def _check_history(events: list[tuple[str, int]], lengths: list[int]) -> None:
    """Each episode's history starts empty at frame 0 and its terminal frame is scored."""
    episodes = _episodes_from_events(events)
    for ep, length in zip(episodes, lengths, strict=False):
        pushes = [v for kind, v in ep if kind == "push"]
        assert pushes == list(range(length + 1)), pushes  # frames 0..T, nothing from before
        assert ep[-1] == ("score", length + 1), ep[-3:]  # the terminal frame, scored last


def _env(**kw: Any) -> StepIndexEnv:
    return StepIndexEnv(image_size=SIZE, **kw)


def test_single_env_wrapper_passes_checkers_and_keeps_the_sparse_reward(model: Any) -> None:
    env = SARM2Reward(_env(), model, query_every=2)
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(env)
    env.reset(seed=3)
    done, total_sparse = False, 0.0
    while not done:
        _obs, r, term, trunc, info = env.step(env.action_space.sample())
        total_sparse += info["sparse_reward"]
        assert set(info["sarm2"]) >= {
            "progress",
            "primitive",
            "primitive_name",
            "group",
            "confidence",
        }
        assert r >= 0.0  # delta rewards never go negative
        done = term or trunc
    assert total_sparse == float(info["is_success"])


@pytest.mark.parametrize(
    "mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP, AutoresetMode.DISABLED]
)
def test_vector_autoreset_modes_score_terminal_frames_and_restart_history(
    model: Any, mode: AutoresetMode
) -> None:
    n = 3
    venv = SyncVectorEnv([_env] * n, autoreset_mode=mode)
    env = SARM2VectorReward(venv, model, query_every=3)
    spy = Spy(env.scorer)
    env.reset(seed=0)
    lengths: dict[int, list[int]] = defaultdict(list)
    pending = np.zeros(n, dtype=bool)
    for _ in range(40):
        obs, rewards, term, trunc, infos = env.step(env.action_space.sample())
        assert rewards.shape == (n,) and np.all(np.isfinite(rewards))
        np.testing.assert_array_equal(infos["sparse_reward"], np.asarray(term, dtype=float))
        if mode == AutoresetMode.NEXT_STEP:
            assert np.all(rewards[pending] == 0.0), "the reset step gets no reward"
        done = np.logical_or(term, trunc)
        for i in np.flatnonzero(done & ~pending):
            final_step = (
                infos["final_info"]["step_index"][i]
                if mode == AutoresetMode.SAME_STEP
                else obs["state"][i][0]
            )
            lengths[i].append(int(final_step))
        pending = done if mode == AutoresetMode.NEXT_STEP else np.zeros(n, dtype=bool)
        if mode == AutoresetMode.DISABLED and done.any():
            env.reset(options={"reset_mask": done})
    for i in range(n):
        assert lengths[i], "every env finished at least one episode"
        _check_history(spy.events[i], lengths[i])


def test_sb3_wrapper_scores_terminal_observation_and_restarts(model: Any) -> None:
    n = 2
    venv = SARM2VecEnvWrapper(DummyVecEnv([_env] * n), model, query_every=2)
    spy = Spy(venv.scorer)
    venv.seed(1)
    venv.reset()
    lengths: dict[int, list[int]] = defaultdict(list)
    for _ in range(30):
        _, _rewards, dones, infos = venv.step(np.stack([venv.action_space.sample()] * n))
        for i in np.flatnonzero(dones):
            lengths[i].append(int(infos[i]["terminal_observation"]["state"][0]))
            assert infos[i]["sarm2"]["queried"]
        for info in infos:
            assert info["original_env_rew"] == info["sparse_reward"]
    for i in range(n):
        _check_history(spy.events[i], lengths[i])


def test_batched_scoring_equals_per_env_scoring(model: Any) -> None:
    n, steps = 4, 25
    actions = np.zeros((steps, n, 14), dtype=np.float32)
    batched = SARM2VectorReward(
        SyncVectorEnv([_env] * n), model, query_every=1, reward_mode="progress"
    )
    batched.reset(seed=list(range(n)))
    vec = np.stack([batched.step(actions[t])[1] for t in range(steps)], axis=1)
    for i in range(n):
        single = SARM2VectorReward(
            SyncVectorEnv([_env]), model, query_every=1, reward_mode="progress"
        )
        single.reset(seed=[i])
        one = np.array([single.step(actions[t][i : i + 1])[1][0] for t in range(steps)])
        np.testing.assert_allclose(vec[i], one, atol=1e-5)


@pytest.mark.parametrize("reward_mode", ["delta", "progress", "potential"])
def test_rewards_are_reproducible_under_a_seed(model: Any, reward_mode: str) -> None:
    def run() -> np.ndarray:
        env = SARM2Reward(_env(), model, reward_mode=reward_mode, query_every=1, success_bonus=1.0)
        env.reset(seed=7)
        env.action_space.seed(7)
        return np.array([env.step(env.action_space.sample())[1] for _ in range(10)])

    np.testing.assert_array_equal(run(), run())


def test_delta_rewards_sum_to_the_smoothed_final_progress(model: Any) -> None:
    env = SARM2Reward(_env(min_steps=20, max_steps=20), model, query_every=1, smoothing_window=1)
    env.reset(seed=0)
    total, readings = 0.0, []
    for _ in range(20):
        _, r, _term, _trunc, info = env.step(env.action_space.sample())
        total += r
        readings.append(info["sarm2"]["progress"])
    assert total == pytest.approx(max(readings), abs=1e-5)


def test_render_source_and_missing_cameras(model: Any) -> None:
    env = SARM2Reward(
        _env(render_mode="rgb_array"),
        model,
        camera_keys={"top": RENDER},
        state_key=None,
        missing_cameras="repeat",
    )
    env.reset(seed=0)
    _, r, *_ = env.step(env.action_space.sample())
    assert np.isfinite(r)


def test_sb3_ppo_trains_on_a_wrapped_vector_env(model: Any, tmp_path: Any) -> None:
    venv = SARM2VecEnvWrapper(DummyVecEnv([_env] * 2), model)
    agent = PPO("MultiInputPolicy", venv, n_steps=64, batch_size=32, n_epochs=1, seed=0,
                policy_kwargs={"net_arch": [16]}, tensorboard_log=str(tmp_path))  # fmt: skip
    agent.learn(total_timesteps=256, callback=SARM2LoggingCallback())
    assert agent.num_timesteps >= 256
    assert list(tmp_path.rglob("events.out.tfevents*"))


def test_bad_input_raises_clear_errors(model: Any) -> None:
    with pytest.raises(ValueError, match="no keys"):
        SARM2Reward(_env(), model, camera_keys={"top": "rgb"})
    with pytest.raises(ValueError, match="query_every"):
        SARM2Reward(_env(), model, query_every=0)
    with pytest.raises(ValueError, match="instruction is required"):
        SARM2Reward(
            gym.make("Pendulum-v1", render_mode="rgb_array"),
            model,
            camera_keys={"top": RENDER},
            state_key=None,
        )
    with pytest.raises(ValueError, match="reward_mode"):
        SARM2Reward(_env(), model, reward_mode="sparse-ish")
    big = SARM2Reward(StepIndexEnv(image_size=48), model)
    with pytest.raises(ValueError, match="48x48 but the reward model takes 40x40"):
        big.reset(seed=0)


def test_gym_make_with_a_user_checkpoint_wraps_the_benchmark_env(tmp_path: Any) -> None:
    tiny_model(image_size=96).save_pretrained(tmp_path / "rm")
    env = gym.make("SARM2-CleanWhiteboard-v0", reward=f"sarm2:{tmp_path / 'rm'}")
    assert any(isinstance(w, SARM2Reward) for w in _wrapper_chain(env))
    gym_check_env(env.unwrapped, skip_render_check=True)
    _obs, info = env.reset(seed=0)
    _, reward, _, _, info = env.step(env.action_space.sample())
    assert info["sparse_reward"] == 0.0 and "sarm2" in info and reward >= 0.0
    env.close()
    with pytest.raises(FileNotFoundError, match="no SARM2 checkpoint"):
        gym.make("SARM2-CleanWhiteboard-v0", reward=f"sarm2:{tmp_path / 'missing'}")


def test_gym_make_renders_at_the_models_size_and_gives_the_agent_its_own(tmp_path: Any) -> None:
    tiny_model(image_size=96).save_pretrained(tmp_path / "rm")
    env = gym.make("SARM2-CleanWhiteboard-v0", image_size=48, reward=f"sarm2:{tmp_path / 'rm'}")
    chain = _wrapper_chain(env)
    assert any(isinstance(w, ResizeCameras) for w in chain)
    assert env.unwrapped.image_size == 96  # type: ignore[attr-defined]  # what the model scores
    obs, _ = env.reset(seed=0)
    cams = [k for k in obs if k != "state"]
    assert cams and all(obs[k].shape == (48, 48, 3) and obs[k].dtype == np.uint8 for k in cams)
    assert env.observation_space[cams[0]].shape == (48, 48, 3)  # type: ignore[index]
    obs, reward, _, _, info = env.step(env.action_space.sample())
    assert obs[cams[0]].shape == (48, 48, 3) and "sarm2" in info and np.isfinite(reward)
    env.close()
    with pytest.raises(ValueError, match="needs a Dict observation space"):
        ResizeCameras(gym.make("Pendulum-v1"), 32)


def _wrapper_chain(env: Any) -> list[Any]:
    chain = [env]
    while hasattr(chain[-1], "env"):
        chain.append(chain[-1].env)
    return chain
