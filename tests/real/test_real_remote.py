"""End to end across processes: ``sarm2 robot-server --sim`` <- RemoteRobot <- RealRobotEnv.

The server runs in a subprocess with a fake simulated task behind it, exactly as a robot PC
would run it; the tests drive full episodes, record them, and kill or starve the server.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from sarm2_gym.data import LeRobotDataset
from sarm2_gym.real.client import RemoteRobot
from sarm2_gym.real.env import RealRobotEnv
from sarm2_gym.real.errors import RobotConnectionError, RobotTimeoutError, WatchdogTrippedError
from sarm2_gym.real.operator import OperatorLoop
from sarm2_gym.real.recording import open_dataset_writer
from sarm2_gym.real.sim_robot import success_from_extras
from tests.real.helpers import ServerProcess, start_server

FORWARD = np.zeros(14, np.float32)
FORWARD[0] = 1.0
FORWARD[6] = FORWARD[13] = -1.0


def remote_env(srv: ServerProcess, **kwargs) -> RealRobotEnv:
    robot = RemoteRobot(srv.endpoint, srv.token, timeout_s=kwargs.pop("timeout_s", 2.0))
    kwargs.setdefault("success_fn", success_from_extras)
    return RealRobotEnv(robot, **kwargs)


def test_full_episodes_through_the_server(shared_server: ServerProcess) -> None:
    env = remote_env(shared_server, max_episode_steps=8, pass_labels=True)
    assert env.instruction == "move the left gripper forward"  # reported by the server
    assert env.config.name == "sim-bimanual"
    for seed in range(3):
        obs, info = env.reset(seed=seed)
        assert env.observation_space.contains(obs)
        steps = 0
        while True:
            obs, reward, terminated, truncated, info = env.step(FORWARD)
            steps += 1
            assert "progress" not in info
            if terminated or truncated:
                break
        assert terminated and info["is_success"] and reward == 1.0 and steps == 3
        assert info["stage"] == 1  # labels passed through from the simulator
        timing = info["timing"]
        assert timing["steps"] == 3 and timing["period_s"] == pytest.approx(0.1)
        assert 6.0 <= timing["achieved_hz"] <= 10.5  # loose: CI machines are shared
    # Truncation by the step limit: never move.
    env.reset(seed=0)
    for _ in range(8):
        *_, terminated, truncated, info = env.step(np.zeros(14, np.float32))
    assert truncated and not terminated and not info["is_success"]
    env.close()


def test_check_env_over_the_network(shared_server: ServerProcess) -> None:
    env = remote_env(shared_server, control_hz=50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=True, skip_render_check=True)
    env.close()


def test_watchdog_stops_the_robot_when_the_client_goes_silent(shared_server: ServerProcess) -> None:
    robot = RemoteRobot(shared_server.endpoint, shared_server.token, timeout_s=2.0)
    robot.connect()
    deadline = robot.config.safety.watchdog_timeout_s
    robot.home(seed=0)
    before = robot.status()["watchdog"]["trips"]
    state = robot.observe().state
    robot.act(state)
    time.sleep(deadline + 0.3)  # the learning PC hangs
    dog = robot.status()["watchdog"]
    assert dog["trips"] == before + 1 and dog["tripped"]
    # Measured in the server process, from the last command to stop().
    assert deadline <= dog["last_trip_delay_s"] <= deadline + 0.1, dog
    with pytest.raises(WatchdogTrippedError, match="home"):
        robot.act(state)
    robot.home(seed=0)  # clears the trip
    robot.observe()
    robot.act(state)
    robot.stop()
    robot.close()


def test_server_killed_mid_episode_keeps_finished_episodes(tmp_path: Path) -> None:
    srv = start_server(tmp_path)
    root = tmp_path / "rollouts"
    env = remote_env(srv, max_episode_steps=10, timeout_s=0.5)
    answers = iter(["", "s", "", "f", "", "s"])
    steps = {"n": 0}

    def policy(obs: dict[str, np.ndarray]) -> np.ndarray:
        steps["n"] += 1
        if steps["n"] == 3 + 3 + 2:  # two finished episodes of 3 steps, then 2 steps into the third
            srv.kill()
        return FORWARD

    try:
        with open_dataset_writer(root, fps=10) as writer:
            loop = OperatorLoop(
                env, policy, writer, input_fn=lambda p: next(answers), print_fn=lambda *a: None
            )
            t0 = time.monotonic()
            with pytest.raises(RobotConnectionError) as err:
                loop.run(n_episodes=5)
            assert time.monotonic() - t0 < 10
        assert isinstance(err.value, RobotTimeoutError)
        assert "did not answer" in str(err.value) and srv.endpoint in str(err.value)
    finally:
        env.close()
        srv.stop()
    ds = LeRobotDataset(root)
    assert ds.num_episodes == 2
    first, second = ds.episode(0), ds.episode(1)
    assert first.length == second.length == 3
    assert first.success and not second.success  # the operator's labels
    assert first.frames["next.reward"].tolist() == [0.0, 0.0, 1.0]
    assert first.meta["privileged_progress"] is False and first.meta["operator_label"] is True
    assert first.frames["observation.images.top"].shape == (3, 96, 96, 3)
    np.testing.assert_allclose(first.frames["action"], np.tile(FORWARD, (3, 1)))


def test_robot_server_cli_creates_a_private_token(tmp_path: Path) -> None:
    srv = start_server(tmp_path, "--dummy")
    try:
        assert srv.token_file.stat().st_mode & 0o777 == 0o600
        robot = RemoteRobot(srv.endpoint, srv.token, timeout_s=2.0)
        robot.connect()
        robot.home()
        assert robot.observe().images["top"].shape == (96, 96, 3)
        robot.close()
    finally:
        srv.stop()
    assert srv.proc.returncode == 0  # SIGTERM: clean shutdown


def test_a_benchmark_task_behind_the_server(tmp_path: Path) -> None:
    """The same stack with a real simulated task (MuJoCo, rendered cameras) behind the server."""
    srv = start_server(tmp_path, "--sim", "SARM2-PullPlug-v0", timeout=120.0)
    try:
        env = remote_env(srv, max_episode_steps=12, timeout_s=10.0)
        assert env.instruction == "pull plug off the socket"
        rng = np.random.default_rng(0)
        for seed in range(2):
            obs, _ = env.reset(seed=seed)
            assert obs["top"].shape == (96, 96, 3) and obs["top"].std() > 5  # a rendered scene
            for _ in range(12):
                action = rng.uniform(-0.5, 0.5, 14).astype(np.float32)
                obs, _, terminated, truncated, info = env.step(action)
                assert env.observation_space.contains(obs) and "progress" not in info
                if terminated or truncated:
                    break
            assert truncated and info["timing"]["steps"] == 12
        env.close()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sb3_check_env(
                remote_env(srv, control_hz=50, timeout_s=10.0), warn=True, skip_render_check=True
            )
    finally:
        srv.stop()
