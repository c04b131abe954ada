"""Real robots: the Gym task contract over hardware, safely, across the network.

A safety layer, a network robot server and client, an operator loop and a rollout-annotation
tool complete the interface.

Typical use on two machines::

    # robot PC
    sarm2 robot-server --dummy --port 5555 --token-file robot.token    # or --sim ENV_ID
    # learning PC
    robot = RemoteRobot("tcp://robot-pc:5555", token=load_token("robot.token"))
    env = RealRobotEnv(robot, task="folding shorts", max_episode_steps=600)

See ``docs/real_robot.md``.
"""

from __future__ import annotations

from sarm2_gym.real.annotation import (
    RolloutAnnotation,
    Segment,
    progress_curve,
    reward_from_progress,
)
from sarm2_gym.real.auth import generate_token, load_token, write_token_file
from sarm2_gym.real.client import RemoteRobot
from sarm2_gym.real.config import (
    ArmLimits,
    RobotConfig,
    SafetyConfig,
    default_robot_config,
    load_robot_config,
)
from sarm2_gym.real.dummy import KinematicRobot
from sarm2_gym.real.env import RealRobotEnv, TimingStats
from sarm2_gym.real.errors import (
    RobotAuthError,
    RobotConnectionError,
    RobotError,
    RobotProtocolError,
    RobotTimeoutError,
    UnsafeCommandError,
    WatchdogTrippedError,
)
from sarm2_gym.real.interface import RobotInterface, RobotObservation
from sarm2_gym.real.lerobot_adapter import LeRobotAdapter
from sarm2_gym.real.operator import EpisodeOutcome, OperatorLoop
from sarm2_gym.real.recording import EpisodeRecorder, open_dataset_writer
from sarm2_gym.real.safety import SafeRobot, SafetyLayer
from sarm2_gym.real.server import RobotServer
from sarm2_gym.real.sim_robot import SimulatedRobot, success_from_extras
from sarm2_gym.real.watchdog import Watchdog

__all__ = [
    "ArmLimits",
    "EpisodeOutcome",
    "EpisodeRecorder",
    "KinematicRobot",
    "LeRobotAdapter",
    "OperatorLoop",
    "RealRobotEnv",
    "RemoteRobot",
    "RobotAuthError",
    "RobotConfig",
    "RobotConnectionError",
    "RobotError",
    "RobotInterface",
    "RobotObservation",
    "RobotProtocolError",
    "RobotServer",
    "RobotTimeoutError",
    "RolloutAnnotation",
    "SafeRobot",
    "SafetyConfig",
    "SafetyLayer",
    "Segment",
    "SimulatedRobot",
    "TimingStats",
    "UnsafeCommandError",
    "Watchdog",
    "WatchdogTrippedError",
    "default_robot_config",
    "generate_token",
    "load_robot_config",
    "load_token",
    "open_dataset_writer",
    "progress_curve",
    "reward_from_progress",
    "success_from_extras",
    "write_token_file",
]
