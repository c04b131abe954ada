"""Exceptions raised by the real-robot layer.

Every error derives from :class:`RobotError`, so a control loop can catch one type. The
subclasses say what went wrong in a way a user can act on: the server is unreachable, the token
is wrong, a command was refused by the safety layer, or the watchdog stopped the robot.
"""

from __future__ import annotations

__all__ = [
    "RobotAuthError",
    "RobotConnectionError",
    "RobotError",
    "RobotProtocolError",
    "RobotTimeoutError",
    "UnsafeCommandError",
    "WatchdogTrippedError",
]


class RobotError(RuntimeError):
    """Base class of every real-robot error."""


class RobotConnectionError(RobotError):
    """The robot (or its network server) cannot be reached."""


class RobotTimeoutError(RobotConnectionError):
    """A request to the robot server got no answer within its deadline."""


class RobotAuthError(RobotError):
    """A message failed token authentication (wrong or missing token)."""


class RobotProtocolError(RobotError):
    """A message was malformed, oversized, or of an unsupported schema version."""


class UnsafeCommandError(RobotError):
    """The safety layer refused a command (NaN/inf, or a limit violation in ``refuse`` mode)."""


class WatchdogTrippedError(RobotError):
    """The watchdog stopped the robot because commands stopped arriving.

    The robot stays stopped until :meth:`~sarm2_gym.real.interface.RobotInterface.home` is called
    (``env.reset()`` does that), so a stalled policy never resumes motion by surprise.
    """
