"""RealRobotEnv: the Gym contract, fixed-rate control, and the simulated-robot adapter."""

from __future__ import annotations

import time
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from sarm2_gym.real.dummy import KinematicRobot
from sarm2_gym.real.env import UNKNOWN_LABEL, RealRobotEnv
from sarm2_gym.real.errors import UnsafeCommandError
from sarm2_gym.real.lerobot_adapter import LeRobotAdapter, import_lerobot_robots
from sarm2_gym.real.sim_robot import SimulatedRobot, success_from_extras
from tests.real.fake_bimanual import HOME, FakeBimanualEnv

FORWARD = np.zeros(14, np.float32)
FORWARD[0] = 1.0  # left arm +x at full speed
FORWARD[6] = FORWARD[13] = -1.0  # grippers open


def sim_env(**kwargs) -> RealRobotEnv:
    robot = SimulatedRobot(gym.wrappers.TimeLimit(FakeBimanualEnv(), max_episode_steps=30))
    kwargs.setdefault("success_fn", success_from_extras)
    return RealRobotEnv(robot, **kwargs)


def test_spaces_match_the_task_contract() -> None:
    env = sim_env()
    task_env = FakeBimanualEnv()
    assert env.observation_space == task_env.observation_space
    assert env.action_space == task_env.action_space
    assert env.instruction == task_env.instruction
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert set(info) == {"is_success", "primitive", "stage", "sparse_reward", "task"}
    env.close()


def test_gymnasium_and_sb3_check_env() -> None:
    env = sim_env(control_hz=50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any checker warning fails the test
        gym_check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=True, skip_render_check=True)
    env.close()


def test_episode_info_has_no_privileged_progress() -> None:
    env = sim_env(pass_labels=False)
    env.reset(seed=1)
    for _ in range(3):
        obs, reward, terminated, _, info = env.step(FORWARD)
        assert "progress" not in info
        assert info["primitive"] == UNKNOWN_LABEL and info["stage"] == UNKNOWN_LABEL
    assert terminated and info["is_success"] and reward == 1.0 and info["sparse_reward"] == 1.0
    assert obs["state"][0] == pytest.approx(HOME[0] + 0.09, abs=0.011)
    assert info["timing"]["steps"] == 3
    env.close()


def test_fixed_rate_and_late_steps() -> None:
    env = RealRobotEnv(KinematicRobot(image_size=32), control_hz=20, watchdog=False)
    assert env.observation_space["top"].shape == (96, 96, 3)  # resized from 32x32
    env.reset()
    t0 = time.monotonic()
    for _ in range(5):
        obs, *_ = env.step(np.zeros(14, np.float32))
    elapsed = time.monotonic() - t0
    assert obs["top"].shape == (96, 96, 3)
    stats = env.timing_stats()
    assert 0.2 <= elapsed <= 0.4  # 5 periods of 50 ms on a clock grid (loose: shared CI)
    assert stats.steps == 5
    time.sleep(0.12)  # the policy "thinks" for more than two periods
    env.step(np.zeros(14, np.float32))
    env.step(np.zeros(14, np.float32))
    stats = env.timing_stats()
    assert stats.late_steps >= 1
    assert stats.max_interval_s >= 0.12
    env.close()


def test_nan_action_never_reaches_the_robot() -> None:
    robot = KinematicRobot(image_size=8)
    env = RealRobotEnv(robot, control_hz=50, watchdog=False)
    env.reset()
    action = np.zeros(14, np.float32)
    action[2] = np.nan
    with pytest.raises(UnsafeCommandError):
        env.step(action)
    assert robot.targets == []
    assert env.safety_stats()["violations"]["nonfinite"] == 1
    env.reset()  # the env recovers after a reset
    env.step(np.zeros(14, np.float32))
    assert len(robot.targets) == 1
    env.close()


def test_operator_stop_request_labels_the_episode() -> None:
    env = sim_env(control_hz=50, success_fn=None)
    env.reset(seed=0)
    env.step(np.zeros(14, np.float32))
    env.request_stop(success=False)
    _, reward, terminated, truncated, info = env.step(np.zeros(14, np.float32))
    assert terminated and not truncated and not info["is_success"] and reward == 0.0
    env.reset(seed=0)
    env.request_stop(None)
    _, _, terminated, truncated, _ = env.step(np.zeros(14, np.float32))
    assert truncated and not terminated
    env.close()


def test_simulated_robot_tracks_absolute_targets() -> None:
    robot = SimulatedRobot(FakeBimanualEnv(noise=0.0))
    robot.home(seed=0)
    obs = robot.observe()
    target = obs.state.copy()
    target[0] += 0.02
    target[10] += 0.1
    target[13] = 1.0
    robot.act(target)
    after = robot.observe()
    np.testing.assert_allclose(after.state, target, atol=1e-6)
    assert after.extras["primitive"] == 21 and "progress" in after.extras
    with pytest.raises(ValueError, match="obs_mode"):
        SimulatedRobot(gym.make("CartPole-v1"))


class FakeLeRobotArm:
    """Quacks like a LeRobot Robot: dict observations and actions, joint-space 'motors'."""

    def __init__(self) -> None:
        self.action_features = {f"m{i}.pos": float for i in range(14)}
        self.pos = {f"m{i}.pos": float(v) for i, v in enumerate(HOME)}
        self.is_connected = False
        self.sent: list[dict[str, float]] = []

    def connect(self, calibrate: bool = True) -> None:
        self.is_connected = True

    def get_observation(self) -> dict:
        img = np.zeros((48, 64, 3), np.uint8)
        return dict(self.pos) | {"front": img, "wrist_l": img, "wrist_r": img}

    def send_action(self, action: dict) -> dict:
        self.sent.append(dict(action))
        self.pos.update(action)
        return action

    def disconnect(self) -> None:
        self.is_connected = False


def test_lerobot_adapter_through_the_env() -> None:
    arm = FakeLeRobotArm()
    keys = list(arm.action_features)
    robot = LeRobotAdapter(
        arm,
        cameras={"top": "front", "left_wrist": "wrist_l", "right_wrist": "wrist_r"},
        state_fn=lambda obs: np.array([obs[k] for k in keys]),  # identity "kinematics"
        action_fn=lambda target, obs: {k: float(v) for k, v in zip(keys, target, strict=True)},
    )
    env = RealRobotEnv(robot, control_hz=50, watchdog=False, task="move")
    obs, _ = env.reset()
    assert obs["top"].shape == (96, 96, 3)  # 48x64 centre-cropped and resized
    obs, *_ = env.step(FORWARD)
    assert obs["state"][0] == pytest.approx(HOME[0] + 0.03)
    env.close()  # stop holds the measured pose, then disconnect
    assert arm.sent[-1] == {k: pytest.approx(v) for k, v in arm.pos.items()}
    assert not arm.is_connected


def test_lerobot_import_is_lazy_and_explains_itself() -> None:
    try:
        import lerobot  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="separate environment"):
            import_lerobot_robots()
    else:  # pragma: no cover - only where lerobot is installed
        assert import_lerobot_robots() is not None


@pytest.mark.parametrize("mode", ["truncate", "raise"])
def test_watchdog_trip_between_steps(mode: str) -> None:
    import dataclasses

    from sarm2_gym.real.config import default_robot_config
    from sarm2_gym.real.errors import WatchdogTrippedError

    cfg = default_robot_config()
    cfg = dataclasses.replace(cfg, safety=dataclasses.replace(cfg.safety, watchdog_timeout_s=0.15))
    robot = KinematicRobot(image_size=8)
    env = RealRobotEnv(robot, config=cfg, control_hz=50, on_watchdog=mode)
    env.reset()
    env.step(FORWARD)
    time.sleep(0.3)  # e.g. PPO training between rollouts
    assert len(robot.stop_times) == 1
    if mode == "raise":
        with pytest.raises(WatchdogTrippedError):
            env.step(FORWARD)
    else:
        _, _, terminated, truncated, info = env.step(FORWARD)
        assert truncated and not terminated and info["watchdog_tripped"]
    assert len(robot.targets) == 1  # the late action was not sent
    env.reset()  # homing clears the trip
    env.step(FORWARD)
    assert len(robot.targets) == 2
    env.close()
