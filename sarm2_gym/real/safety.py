"""The safety layer between a policy and a robot.

:class:`SafetyLayer` is pure: it checks one absolute target against the limits of a
:class:`~sarm2_gym.real.config.SafetyConfig` and returns the filtered target with the names of
the limits it hit. :class:`SafeRobot` wraps any :class:`RobotInterface` with that filter and a
:class:`~sarm2_gym.real.watchdog.Watchdog`; the robot server always drives its robot through one,
so no client can bypass the limits.

Order of the checks, and what it guarantees:

1. Shape and NaN/inf: refused in every mode (a NaN cannot be clipped to anything meaningful).
2. Workspace box, orientation box, gripper range: per-axis clip.
3. Velocity: the move from the previous accepted target, over the time that really passed since
   it, is scaled down to ``max_linear_velocity`` / ``max_angular_velocity``.
4. Step: the move from the last *measured* pose is scaled down to ``max_step_translation`` /
   ``max_step_rotation``. This runs last, so a commanded pose is never farther than one step from
   where the robot was last seen, whatever the client sends. If the measured pose is inside the
   workspace box, the result is inside it too (clipping toward a point of a convex box).

In ``refuse`` mode any violation raises :class:`~sarm2_gym.real.errors.UnsafeCommandError`
and nothing is sent; in ``clip`` mode the filtered target is sent and the violation counted.

Example:
    >>> import numpy as np
    >>> from sarm2_gym.real.config import default_robot_config
    >>> layer = SafetyLayer(default_robot_config().safety)
    >>> state = np.zeros(14); state[2] = state[9] = 0.3
    >>> target = state.copy(); target[0] = 0.3          # a 0.3 m jump of the left arm
    >>> result = layer.filter(target, state, now=0.0)
    >>> round(float(result.target[0]), 3), result.violations
    (0.06, ('step_translation',))
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from sarm2_gym.real.actions import wrap_angle
from sarm2_gym.real.config import ARM_DIM, STATE_DIM, RobotConfig, SafetyConfig
from sarm2_gym.real.errors import UnsafeCommandError, WatchdogTrippedError
from sarm2_gym.real.interface import RobotInterface, RobotObservation
from sarm2_gym.real.watchdog import Watchdog

__all__ = ["VIOLATION_KINDS", "SafeRobot", "SafetyLayer", "SafetyResult"]

VIOLATION_KINDS: Final[tuple[str, ...]] = (
    "nonfinite",
    "workspace",
    "orientation",
    "gripper",
    "velocity_linear",
    "velocity_angular",
    "step_translation",
    "step_rotation",
)
"""Names under which violations are counted."""

_MIN_DT: Final[float] = 1e-3  # two commands in the same millisecond get one millisecond of motion


@dataclass(frozen=True)
class SafetyResult:
    """The outcome of filtering one target.

    Args:
        target: The target that may be sent (float64 (14,)).
        violations: Names (from :data:`VIOLATION_KINDS`) of the limits that were hit, in order.
    """

    target: np.ndarray
    violations: tuple[str, ...]

    @property
    def clipped(self) -> bool:
        """Whether the target was changed."""
        return bool(self.violations)


def _limit_norm(delta: np.ndarray, limit: float, tol: float) -> tuple[np.ndarray, bool]:
    """Scale ``delta`` down to norm ``limit``; report whether it was over by more than ``tol``."""
    norm = float(np.linalg.norm(delta))
    if norm <= limit + tol:
        return delta, False
    return delta * (limit / norm), True


class SafetyLayer:
    """Checks absolute end-effector targets against a :class:`SafetyConfig`.

    Args:
        config: The limits.

    Attributes:
        counts: Violations per kind since creation.
        accepted: Targets let through (possibly clipped).
        refused: Targets refused (NaN/inf, or any violation in ``refuse`` mode).
    """

    def __init__(self, config: SafetyConfig) -> None:
        self.config = config
        self.counts: Counter[str] = Counter()
        self.accepted = 0
        self.refused = 0
        self._prev_target: np.ndarray | None = None
        self._prev_time = 0.0

    def reset(self) -> None:
        """Forget the previous target (after home/stop: the next move is judged from scratch)."""
        self._prev_target = None

    def filter(self, target: np.ndarray, measured: np.ndarray, now: float) -> SafetyResult:
        """Check one target.

        Args:
            target: Requested absolute target (14,).
            measured: Last measured state (14,), the reference of the step limit.
            now: Monotonic time of the command, for the velocity limit.

        Returns:
            The target to send and the violations found.

        Raises:
            UnsafeCommandError: For a wrongly shaped or non-finite target or state, or for any
                violation in ``refuse`` mode.
        """
        cfg = self.config
        req = np.asarray(target, dtype=np.float64)
        meas = np.asarray(measured, dtype=np.float64)
        if req.shape != (STATE_DIM,) or not np.all(np.isfinite(req)):
            self.counts["nonfinite"] += 1
            self.refused += 1
            raise UnsafeCommandError(
                f"refused target: need {STATE_DIM} finite numbers, got shape {req.shape} "
                f"with {int(np.size(req) - np.isfinite(req).sum())} NaN/inf values"
            )
        if meas.shape != (STATE_DIM,) or not np.all(np.isfinite(meas)):
            self.refused += 1
            raise UnsafeCommandError("refused target: the measured robot state is not finite")

        out = req.copy()
        found: list[str] = []
        prev = self._prev_target
        dt = max(now - self._prev_time, _MIN_DT)
        for arm, lim in enumerate(cfg.arms):
            pos = slice(arm * ARM_DIM, arm * ARM_DIM + 3)
            rot = slice(arm * ARM_DIM + 3, arm * ARM_DIM + 6)
            grip = arm * ARM_DIM + 6
            # 2. Boxes.
            boxed = np.clip(out[pos], lim.workspace_low, lim.workspace_high)
            if np.any(np.abs(boxed - out[pos]) > cfg.tolerance):
                found.append("workspace")
            out[pos] = boxed
            rpy = wrap_angle(out[rot])
            boxed = np.clip(rpy, lim.orientation_low, lim.orientation_high)
            if np.any(np.abs(boxed - rpy) > cfg.tolerance):
                found.append("orientation")
            out[rot] = boxed
            g = float(np.clip(out[grip], cfg.gripper_min, cfg.gripper_max))
            if abs(g - out[grip]) > cfg.tolerance:
                found.append("gripper")
            out[grip] = g
            # 3. Velocity, from the previous accepted target.
            if prev is not None:
                d, hit = _limit_norm(
                    out[pos] - prev[pos], cfg.max_linear_velocity * dt, cfg.tolerance
                )
                out[pos] = prev[pos] + d
                found += ["velocity_linear"] if hit else []
                d, hit = _limit_norm(
                    wrap_angle(out[rot] - prev[rot]), cfg.max_angular_velocity * dt, cfg.tolerance
                )
                out[rot] = wrap_angle(prev[rot] + d)
                found += ["velocity_angular"] if hit else []
            # 4. Step, from the measured pose (last, so it always holds).
            d, hit = _limit_norm(out[pos] - meas[pos], cfg.max_step_translation, cfg.tolerance)
            out[pos] = meas[pos] + d
            found += ["step_translation"] if hit else []
            d, hit = _limit_norm(
                wrap_angle(out[rot] - meas[rot]), cfg.max_step_rotation, cfg.tolerance
            )
            out[rot] = wrap_angle(meas[rot] + d)
            found += ["step_rotation"] if hit else []

        kinds = tuple(dict.fromkeys(found))  # de-duplicate across arms, keep order
        self.counts.update(kinds)
        if kinds and cfg.on_violation == "refuse":
            self.refused += 1
            raise UnsafeCommandError(f"refused target: violates {', '.join(kinds)}")
        self.accepted += 1
        self._prev_target, self._prev_time = out, now
        return SafetyResult(out, kinds)

    def stats(self) -> dict[str, Any]:
        """Counters as a JSON-able dict."""
        return {
            "accepted": self.accepted,
            "refused": self.refused,
            "violations": {k: int(self.counts[k]) for k in VIOLATION_KINDS},
        }


class SafeRobot:
    """A :class:`RobotInterface` that filters every target and stops the robot when commands stop.

    Args:
        robot: The robot to protect.
        config: Its limits (a :class:`RobotConfig` or just its :class:`SafetyConfig`).
        watchdog: Run the watchdog (``safety.watchdog_timeout_s``). On a trip the robot is
            stopped and :meth:`act` raises :class:`WatchdogTrippedError` until :meth:`home`.
        clock: Monotonic clock for the velocity limit and the watchdog.

    The step limit is relative to the state of the last :meth:`observe`, so a target is refused
    until the robot has been observed since connecting or homing.
    """

    def __init__(
        self,
        robot: RobotInterface,
        config: RobotConfig | SafetyConfig,
        *,
        watchdog: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.robot = robot
        self.config = config.safety if isinstance(config, RobotConfig) else config
        self.layer = SafetyLayer(self.config)
        self._clock = clock
        # One lock around every call into the driver: the watchdog thread calls stop().
        self._lock = threading.RLock()
        self._state: np.ndarray | None = None
        self.last_result: SafetyResult | None = None
        self.watchdog = (
            Watchdog(self.config.watchdog_timeout_s, self._on_watchdog, clock=clock)
            if watchdog
            else None
        )

    def connect(self) -> None:
        """Connect the robot and start the watchdog."""
        with self._lock:
            self.robot.connect()
        if self.watchdog is not None:
            self.watchdog.start()

    def observe(self) -> RobotObservation:
        """Observe, remembering the state as the reference of the step limit."""
        with self._lock:
            obs = self.robot.observe()
            self._state = np.array(obs.state, dtype=np.float64)
        return obs

    def act(self, target: np.ndarray) -> None:
        """Filter ``target`` and send it.

        Raises:
            UnsafeCommandError: If the target is refused (see :class:`SafetyLayer`), or the robot
                was not observed since connecting/homing.
            WatchdogTrippedError: If the watchdog stopped the robot since the last home.
        """
        with self._lock:
            if self.watchdog is not None and self.watchdog.tripped:
                raise WatchdogTrippedError(
                    "the watchdog stopped the robot (no command within "
                    f"{self.config.watchdog_timeout_s} s); call home() / env.reset() to continue"
                )
            if self._state is None:
                raise UnsafeCommandError("refused target: observe the robot before commanding it")
            result = self.layer.filter(target, self._state, self._clock())
            self.robot.act(result.target)
            self.last_result = result
            if self.watchdog is not None:
                self.watchdog.feed()

    def home(self, seed: int | None = None) -> None:
        """Home the robot; clears a watchdog trip."""
        if self.watchdog is not None:
            self.watchdog.disarm()
        with self._lock:
            self.robot.home(seed)
            self.layer.reset()
            self._state = None
            if self.watchdog is not None:
                self.watchdog.clear()

    def stop(self) -> None:
        """Stop the robot and disarm the watchdog (stopping on purpose is not a fault)."""
        if self.watchdog is not None:
            self.watchdog.disarm()
        with self._lock:
            self.robot.stop()
            self.layer.reset()

    def close(self) -> None:
        """Stop the watchdog, stop and close the robot."""
        if self.watchdog is not None:
            self.watchdog.close()
        with self._lock:
            try:
                self.robot.stop()
            finally:
                self.robot.close()

    def stats(self) -> dict[str, Any]:
        """Safety counters and watchdog trips, JSON-able."""
        out = self.layer.stats()
        dog = self.watchdog
        out["watchdog"] = {
            "timeout_s": self.config.watchdog_timeout_s,
            "trips": dog.trips if dog else 0,
            "tripped": dog.tripped if dog else False,
            "last_trip_delay_s": dog.last_trip_delay_s if dog else None,
        }
        return out

    def _on_watchdog(self) -> None:
        with self._lock:
            self.robot.stop()
            self.layer.reset()
