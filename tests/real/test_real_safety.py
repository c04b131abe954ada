"""Safety layer, watchdog and robot config."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest

from sarm2_gym.real.config import RobotConfig, default_robot_config, load_robot_config
from sarm2_gym.real.dummy import HOME_STATE, KinematicRobot
from sarm2_gym.real.errors import UnsafeCommandError, WatchdogTrippedError
from sarm2_gym.real.safety import SafeRobot, SafetyLayer

CFG = default_robot_config()
LIM = CFG.safety


def refuse_config() -> RobotConfig:
    return dataclasses.replace(CFG, safety=dataclasses.replace(LIM, on_violation="refuse"))


def test_nonfinite_refused_in_every_mode() -> None:
    for cfg in (CFG, refuse_config()):
        layer = SafetyLayer(cfg.safety)
        for bad in (np.nan, np.inf, -np.inf):
            target = HOME_STATE.copy()
            target[3] = bad
            with pytest.raises(UnsafeCommandError, match="NaN/inf"):
                layer.filter(target, HOME_STATE, now=0.0)
        with pytest.raises(UnsafeCommandError):
            layer.filter(np.zeros(13), HOME_STATE, now=0.0)
        assert layer.counts["nonfinite"] == 4 and layer.refused == 4 and layer.accepted == 0


def test_boxes_and_gripper_are_clipped() -> None:
    layer = SafetyLayer(dataclasses.replace(LIM, max_step_translation=10.0, max_step_rotation=10.0))
    target = HOME_STATE.copy()
    target[2] = -0.5  # below the table
    target[3] = 2.5  # roll beyond 1.75
    target[13] = 1.7  # gripper beyond closed
    result = layer.filter(target, HOME_STATE, now=0.0)
    assert result.target[2] == pytest.approx(LIM.left.workspace_low[2])
    assert result.target[3] == pytest.approx(LIM.left.orientation_high[0])
    assert result.target[13] == 1.0
    assert result.violations == ("workspace", "orientation", "gripper")


def test_step_limit_is_relative_to_measured_pose() -> None:
    layer = SafetyLayer(LIM)
    target = HOME_STATE.copy()
    target[0:3] += [0.2, 0.2, 0.0]
    target[10] += 0.9  # right arm: rotate roll by 0.9 rad
    result = layer.filter(target, HOME_STATE, now=0.0)
    moved = result.target - HOME_STATE
    assert np.linalg.norm(moved[0:3]) == pytest.approx(LIM.max_step_translation)
    np.testing.assert_allclose(moved[0:3] / np.linalg.norm(moved[0:3]), [2**-0.5, 2**-0.5, 0])
    assert np.linalg.norm(moved[10:13]) == pytest.approx(LIM.max_step_rotation)
    assert set(result.violations) == {"step_translation", "step_rotation"}


def test_velocity_limit_uses_real_elapsed_time() -> None:
    layer = SafetyLayer(LIM)
    first = HOME_STATE.copy()
    first[0] += 0.03
    assert not layer.filter(first, HOME_STATE, now=10.0).clipped
    second = first.copy()
    second[0] += 0.03
    # 10 ms later: 0.6 m/s allows 6 mm, not 30 mm.
    result = layer.filter(second, first, now=10.01)
    assert result.target[0] - first[0] == pytest.approx(LIM.max_linear_velocity * 0.01)
    assert result.violations == ("velocity_linear",)
    # After a full period the same move is fine.
    layer2 = SafetyLayer(LIM)
    layer2.filter(first, HOME_STATE, now=10.0)
    assert not layer2.filter(second, first, now=10.1).clipped


def test_refuse_mode_raises_and_sends_nothing() -> None:
    robot = KinematicRobot(image_size=8)
    safe = SafeRobot(robot, refuse_config(), watchdog=False)
    safe.connect()
    safe.home()
    state = safe.observe().state
    ok = state.copy()
    ok[0] += 0.01
    safe.act(ok)
    bad = state.copy()
    bad[0] += 0.5
    with pytest.raises(UnsafeCommandError, match="refused target: violates"):
        safe.act(bad)
    assert len(robot.targets) == 1
    np.testing.assert_allclose(robot.targets[0], ok)
    assert safe.stats()["refused"] == 1


def test_out_of_limit_and_nan_targets_never_reach_the_robot() -> None:
    robot = KinematicRobot(image_size=8)
    safe = SafeRobot(robot, CFG, watchdog=False)
    safe.connect()
    safe.home()
    rng = np.random.default_rng(0)
    sent = 0
    for i in range(300):
        state = safe.observe().state
        target = state + rng.normal(scale=0.5, size=14)  # wild targets, mostly out of limits
        if i % 7 == 0:
            target[rng.integers(14)] = np.nan
        try:
            safe.act(target)
            sent += 1
        except UnsafeCommandError:
            assert i % 7 == 0
        time.sleep(0.0005)
    assert len(robot.targets) == sent
    prev = HOME_STATE
    for t in robot.targets:
        assert np.all(np.isfinite(t))
        for arm, lim in enumerate(LIM.arms):
            o = 7 * arm
            assert np.all(t[o : o + 3] >= np.array(lim.workspace_low) - 1e-9)
            assert np.all(t[o : o + 3] <= np.array(lim.workspace_high) + 1e-9)
            assert np.all(t[o + 3 : o + 6] >= np.array(lim.orientation_low) - 1e-9)
            assert np.all(t[o + 3 : o + 6] <= np.array(lim.orientation_high) + 1e-9)
            assert 0.0 <= t[o + 6] <= 1.0
            assert np.linalg.norm(t[o : o + 3] - prev[o : o + 3]) <= LIM.max_step_translation + 1e-9
        prev = t  # the kinematic robot reaches each target: it is the next measured pose
    assert safe.stats()["violations"]["nonfinite"] > 0


def test_watchdog_stops_robot_within_deadline() -> None:
    timeout = 0.2
    cfg = dataclasses.replace(CFG, safety=dataclasses.replace(LIM, watchdog_timeout_s=timeout))
    robot = KinematicRobot(image_size=8)
    safe = SafeRobot(robot, cfg)
    safe.connect()
    safe.home()
    # Feeding faster than the deadline keeps the robot going.
    for _ in range(5):
        safe.observe()
        safe.act(robot.state.copy())
        time.sleep(timeout / 4)
    assert robot.stop_times == []
    last_act = time.monotonic()
    safe.act(robot.state.copy())
    give_up = time.monotonic() + timeout + 2.0
    while not robot.stop_times and time.monotonic() < give_up:
        time.sleep(0.002)
    assert len(robot.stop_times) == 1
    delay = robot.stop_times[0] - last_act
    assert timeout <= delay <= timeout + 0.1, delay  # measured ~1 ms over the deadline when idle
    assert timeout <= safe.stats()["watchdog"]["last_trip_delay_s"] <= timeout + 0.1
    with pytest.raises(WatchdogTrippedError, match="home"):
        safe.act(robot.state.copy())
    safe.home()  # clears the trip
    safe.observe()
    safe.act(robot.state.copy())
    safe.stop()  # a deliberate stop disarms: no trip afterwards
    time.sleep(timeout + 0.1)
    assert safe.stats()["watchdog"]["trips"] == 1
    safe.close()


def test_act_before_observe_is_refused() -> None:
    safe = SafeRobot(KinematicRobot(image_size=8), CFG, watchdog=False)
    safe.connect()
    safe.home()
    with pytest.raises(UnsafeCommandError, match="observe"):
        safe.act(HOME_STATE)


def test_config_files(tmp_path: Path) -> None:
    cfg = default_robot_config()
    assert cfg.period_s == pytest.approx(0.1)
    path = tmp_path / "robot.json"
    path.write_text(json.dumps(cfg.to_dict()))
    assert load_robot_config(path) == cfg
    toml = tmp_path / "robot.toml"
    toml.write_text(
        'name = "arm"\n[safety]\nmax_setp_translation = 0.1\n'
        "[safety.left]\nworkspace_low = [0, 0, 0]\nworkspace_high = [1, 1, 1]\n"
        "[safety.right]\nworkspace_low = [0, 0, 0]\nworkspace_high = [1, 1, 1]\n"
    )
    with pytest.raises(ValueError, match=r"unknown keys.*max_setp_translation"):
        load_robot_config(toml)
    toml.write_text(
        toml.read_text().replace("max_setp_translation = 0.1", "watchdog_timeout_s = 0.05")
    )
    with pytest.raises(ValueError, match="must exceed the control period"):
        load_robot_config(toml)
    toml.write_text(toml.read_text().replace("watchdog_timeout_s = 0.05", ""))
    loaded = load_robot_config(toml)
    assert loaded.name == "arm" and loaded.safety.left.workspace_high == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="workspace_low"):
        toml.write_text(
            toml.read_text().replace("workspace_high = [1, 1, 1]", "workspace_high = [1, -1, 1]", 1)
        )
        load_robot_config(toml)
