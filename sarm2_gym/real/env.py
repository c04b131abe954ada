"""``RealRobotEnv``: the Gym contract of the simulated SARM2 tasks, over a real robot.

Spaces are those of the simulated tasks: a ``Dict`` observation with one uint8 image per camera
(``top``, ``left_wrist``, ``right_wrist``; 96x96 by default) and ``state`` (float32 (14,), per arm
``[x, y, z, roll, pitch, yaw, gripper]``, gripper in [0, 1]); a ``Box(-1, 1, (14,))`` action of
per-arm deltas plus an absolute gripper command.

What differs from simulation, by necessity:

* ``info["progress"]`` is **absent**: a real robot has no privileged task progress. Use a reward
  model (``SARM2Reward``) or annotate rollouts (``sarm2 annotate``) instead.
* ``info["primitive"]`` and ``info["stage"]`` are ``-1`` (unknown) unless ``pass_labels=True``
  and the robot reports them (a :class:`~sarm2_gym.real.sim_robot.SimulatedRobot` does).
* Success comes from a ``success_fn`` or from the operator (:meth:`RealRobotEnv.request_stop`,
  driven by :class:`~sarm2_gym.real.operator.OperatorLoop`); the reward is the sparse success
  reward (1.0 on the success step), also in ``info["sparse_reward"]``.
* Resets home the robot; a seeded reset is only reproducible on a simulated robot.

Timing: observations are taken on a fixed clock grid of period ``1 / control_hz``. ``step``
sends the action as soon as it is called (policy inference runs inside the period), sleeps to
the next tick, and observes. A step whose observation comes later than ``(1 + late_tolerance)``
periods after the previous one is *late*; the grid is then re-anchored instead of rushing to
catch up. Counts are in :meth:`RealRobotEnv.timing_stats` and, on the last step of an episode,
in ``info["timing"]`` (not on every step, so identical actions give identical infos).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sarm2_gym.real.actions import action_to_target
from sarm2_gym.real.config import ARM_DIM, STATE_DIM, RobotConfig, default_robot_config
from sarm2_gym.real.errors import RobotError, WatchdogTrippedError
from sarm2_gym.real.interface import RobotInterface, RobotObservation, resize_nearest
from sarm2_gym.real.safety import SafeRobot

__all__ = ["UNKNOWN_LABEL", "RealRobotEnv", "SuccessFn", "TimingStats"]

UNKNOWN_LABEL = -1
"""``info["primitive"]`` / ``info["stage"]`` on a robot that cannot know them."""

STATE_BOUND = 10.0
"""Bounds of the ``state`` space, as in the simulated tasks (metres, radians, fractions)."""

SuccessFn = Callable[[dict[str, np.ndarray], RobotObservation], bool]
"""``success_fn(obs, robot_observation) -> bool``: task success detector (optional)."""


@dataclasses.dataclass
class TimingStats:
    """Control-loop timing of the current (or last) episode.

    Args:
        steps: Steps taken.
        late_steps: Steps whose observation came more than ``1 + late_tolerance`` periods after
            the previous one.
        period_s: Target period.
        mean_interval_s: Mean time between consecutive observations.
        max_interval_s: Longest time between consecutive observations.
        mean_act_s: Mean duration of ``robot.act`` (round trip for a remote robot).
        mean_observe_s: Mean duration of ``robot.observe``.
    """

    steps: int = 0
    late_steps: int = 0
    period_s: float = 0.1
    mean_interval_s: float = 0.0
    max_interval_s: float = 0.0
    mean_act_s: float = 0.0
    mean_observe_s: float = 0.0

    @property
    def achieved_hz(self) -> float:
        """Observations per second actually achieved."""
        return 1.0 / self.mean_interval_s if self.mean_interval_s > 0 else 0.0

    def as_dict(self) -> dict[str, float]:
        """JSON-able summary, including :attr:`achieved_hz`."""
        return dataclasses.asdict(self) | {"achieved_hz": self.achieved_hz}


class RealRobotEnv(gym.Env[dict[str, Any], np.ndarray]):
    """Gymnasium env over a :class:`RobotInterface` (local driver or :class:`RemoteRobot`).

    Args:
        robot: The robot. Connected here unless ``connect=False``; wrapped in a
            :class:`SafeRobot` (limits + watchdog) unless it already is one.
        config: Robot config; by default ``robot.config`` when the robot has one (a connected
            :class:`RemoteRobot` gets it from the server), else the shipped simulated-robot config.
        task: Language instruction (``env.unwrapped.instruction`` and ``info["task"]``); by
            default the robot's ``instruction`` attribute if it has one (a simulated task's).
        max_episode_steps: Truncate after this many steps (``None``: only the operator, the
            ``success_fn`` or the robot end an episode).
        success_fn: Success detector; success terminates the episode.
        control_hz: Override ``config.control_hz``.
        late_tolerance: Relative slack before a step counts as late.
        pass_labels: Copy ``primitive``/``stage`` from the robot's extras into ``info``.
        watchdog: Run a client-side watchdog too (the robot server always runs its own).
        on_watchdog: What :meth:`step` does when a watchdog stopped the robot since the last
            step (commands stopped for longer than ``safety.watchdog_timeout_s``, e.g. while an
            SB3 algorithm trains between rollouts): ``"truncate"`` ends the episode
            (``truncated=True``, ``info["watchdog_tripped"] = True``, the action is not sent);
            ``"raise"`` raises :class:`~sarm2_gym.real.errors.WatchdogTrippedError`.
        render_mode: ``"rgb_array"`` renders the first camera.
        connect: Call ``robot.connect()`` now.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 10}  # noqa: RUF012

    def __init__(
        self,
        robot: RobotInterface,
        *,
        config: RobotConfig | None = None,
        task: str | None = None,
        max_episode_steps: int | None = None,
        success_fn: SuccessFn | None = None,
        control_hz: float | None = None,
        late_tolerance: float = 0.1,
        pass_labels: bool = False,
        watchdog: bool = True,
        on_watchdog: str = "truncate",
        render_mode: str | None = None,
        connect: bool = True,
    ) -> None:
        if on_watchdog not in ("truncate", "raise"):
            raise ValueError(f"on_watchdog must be 'truncate' or 'raise', got {on_watchdog!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if connect:
            robot.connect()
        if config is None:
            try:
                config = getattr(robot, "config", None)
            except RobotError:  # e.g. a RemoteRobot that is not connected yet
                config = None
        cfg = config or default_robot_config()
        if not isinstance(cfg, RobotConfig):
            raise TypeError(f"config must be a RobotConfig, got {type(cfg).__name__}")
        if control_hz is not None:
            cfg = dataclasses.replace(cfg, control_hz=float(control_hz))
        self.config = cfg
        self.robot = (
            robot if isinstance(robot, SafeRobot) else SafeRobot(robot, cfg, watchdog=watchdog)
        )
        if connect and self.robot.watchdog is not None:
            self.robot.watchdog.start()
        self.instruction = str(getattr(robot, "instruction", "")) if task is None else task
        self.max_episode_steps = max_episode_steps
        self.success_fn = success_fn
        self.late_tolerance = float(late_tolerance)
        self.pass_labels = pass_labels
        self.on_watchdog = on_watchdog
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": round(cfg.control_hz)}
        size = cfg.image_size
        self.observation_space = spaces.Dict(
            {cam: spaces.Box(0, 255, (size, size, 3), np.uint8) for cam in cfg.cameras}
            | {"state": spaces.Box(-STATE_BOUND, STATE_BOUND, (STATE_DIM,), np.float32)}
        )
        self.action_space = spaces.Box(-1.0, 1.0, (STATE_DIM,), np.float32)
        self._active = False
        self._closed = False
        self._state = np.zeros(STATE_DIM)
        self._last_image: np.ndarray | None = None
        self._stop_request: tuple[bool | None] | None = None
        self._timing = TimingStats(period_s=cfg.period_s)
        self._next_tick = self._last_obs_time = 0.0
        self._sums = np.zeros(3)  # interval, act, observe durations

    # ------------------------------------------------------------------ Gym API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Home the robot (unless ``options={"home": False}``) and observe.

        Args:
            seed: Seeds ``np_random``; a simulated robot also resets its scene with it.
            options: ``{"home": False}`` starts from the current pose.
        """
        super().reset(seed=seed)
        if self._active:
            self.robot.stop()
        self._active = False
        if (options or {}).get("home", True):
            self.robot.home(seed)
        robot_obs = self.robot.observe()
        self._last_obs_time = time.monotonic()
        self._next_tick = self._last_obs_time + self.config.period_s
        self._timing = TimingStats(period_s=self.config.period_s)
        self._sums[:] = 0.0
        self._stop_request = None
        self._active = True
        obs = self._to_obs(robot_obs)
        return obs, self._info(robot_obs, success=False)

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Send one action, wait for the next control tick, observe.

        Raises:
            UnsafeCommandError: NaN/inf action, or a refused target in ``refuse`` mode.
            WatchdogTrippedError: The robot was stopped for lack of commands and
                ``on_watchdog="raise"``; reset to go on.
            RobotConnectionError: The robot (server) is unreachable.
        """
        if not self._active:
            raise RuntimeError("episode is over or not started: call reset() first")
        a = np.asarray(action, dtype=np.float32)
        if a.shape != (STATE_DIM,):
            raise ValueError(f"action must have shape ({STATE_DIM},), got {a.shape}")
        target = action_to_target(self._state, a, self.config)  # NaN stays NaN: refused below
        tripped = False
        try:
            robot_obs = self._act_and_observe(target)
        except WatchdogTrippedError:
            if self.on_watchdog == "raise":
                self._active = False
                raise
            # The robot is stopped and the action was not sent: end the episode where it is.
            tripped = True
            robot_obs = self.robot.observe()
        except BaseException:
            self._active = False
            raise
        obs = self._to_obs(robot_obs)
        stop = self._stop_request
        success = stop == (True,) or bool(self.success_fn and self.success_fn(obs, robot_obs))
        terminated = success or stop == (False,)
        truncated = not terminated and (
            tripped
            or stop == (None,)
            or (self.max_episode_steps is not None and self._timing.steps >= self.max_episode_steps)
            or bool(robot_obs.extras.get("episode_over", False))
        )
        info = self._info(robot_obs, success=success)
        result = self.robot.last_result
        info["safety_violations"] = list(result.violations) if result and not tripped else []
        if tripped:
            info["watchdog_tripped"] = True
        if terminated or truncated:
            self._active = False
            self.robot.stop()
            info["timing"] = self._timing.as_dict()
        return obs, float(info["sparse_reward"]), terminated, truncated, info

    def render(self) -> np.ndarray | None:
        """The last image of the first camera (``render_mode="rgb_array"``)."""
        if self.render_mode != "rgb_array" or self._last_image is None:
            return None
        return self._last_image.copy()

    def close(self) -> None:
        """Stop and release the robot (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._active = False
        with contextlib.suppress(RobotError):  # already gone: nothing left to stop
            self.robot.close()

    # ------------------------------------------------------------------ real-robot extras

    def request_stop(self, success: bool | None = None) -> None:
        """End the episode at the next step (thread-safe; called by an operator).

        Args:
            success: ``True``/``False`` terminate with that label; ``None`` truncates (early stop
                without a label, e.g. to relabel later).
        """
        self._stop_request = (success,)

    def stop_robot(self) -> None:
        """Stop the robot now and end the episode (e.g. on Ctrl-C)."""
        self._active = False
        self.robot.stop()

    def timing_stats(self) -> TimingStats:
        """Timing of the current (or last) episode."""
        return dataclasses.replace(self._timing)

    def safety_stats(self) -> dict[str, Any]:
        """Client-side safety counters (violations, refusals, watchdog trips)."""
        return self.robot.stats()

    # ------------------------------------------------------------------ internals

    def _act_and_observe(self, target: np.ndarray) -> RobotObservation:
        period = self.config.period_s
        t0 = time.monotonic()
        self.robot.act(target)
        t1 = time.monotonic()
        if t1 < self._next_tick:
            time.sleep(self._next_tick - t1)
        t2 = time.monotonic()
        robot_obs = self.robot.observe()
        t3 = time.monotonic()
        interval = t3 - self._last_obs_time
        late = interval > period * (1.0 + self.late_tolerance)
        # Late: re-anchor the grid at this observation rather than rushing to catch up.
        self._next_tick = t3 + period if late else self._next_tick + period
        self._last_obs_time = t3
        timing = self._timing
        timing.steps += 1
        timing.late_steps += int(late)
        self._sums += (interval, t1 - t0, t3 - t2)
        timing.mean_interval_s, timing.mean_act_s, timing.mean_observe_s = (
            float(v) for v in self._sums / timing.steps
        )
        timing.max_interval_s = max(timing.max_interval_s, interval)
        return robot_obs

    def _to_obs(self, robot_obs: RobotObservation) -> dict[str, np.ndarray]:
        size = self.config.image_size
        obs: dict[str, np.ndarray] = {}
        for cam in self.config.cameras:
            img = robot_obs.images.get(cam)
            if img is None:
                raise RobotError(f"robot returned no image for camera {cam!r}")
            img = np.asarray(img, dtype=np.uint8)
            if img.ndim != 3 or img.shape[-1] != 3:
                raise RobotError(f"camera {cam!r} image must be (H, W, 3), got {img.shape}")
            obs[cam] = np.array(resize_nearest(img, size), dtype=np.uint8, copy=True)
        state = np.array(robot_obs.state, dtype=np.float64)
        if state.shape != (STATE_DIM,):
            raise RobotError(f"robot state must have shape ({STATE_DIM},), got {state.shape}")
        state[ARM_DIM - 1 :: ARM_DIM] = np.clip(state[ARM_DIM - 1 :: ARM_DIM], 0.0, 1.0)
        self._state = state
        obs["state"] = np.clip(state, -STATE_BOUND, STATE_BOUND).astype(np.float32)
        self._last_image = obs[self.config.cameras[0]]
        return obs

    def _info(self, robot_obs: RobotObservation, *, success: bool) -> dict[str, Any]:
        extras = robot_obs.extras
        labels = self.pass_labels
        return {
            "is_success": bool(success),
            "primitive": int(extras.get("primitive", UNKNOWN_LABEL)) if labels else UNKNOWN_LABEL,
            "stage": int(extras.get("stage", UNKNOWN_LABEL)) if labels else UNKNOWN_LABEL,
            "sparse_reward": 1.0 if success else 0.0,
            "task": self.instruction,
        }
