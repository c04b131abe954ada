"""Per-robot configuration: action scaling, control rate and safety limits.

A robot is described by one TOML or JSON file, loaded into the frozen :class:`RobotConfig`.
Unknown keys are an error, not a warning: a typo in a safety file (``max_setp_translation``)
must never silently fall back to a default limit.

Example:
    >>> cfg = default_robot_config()
    >>> cfg.name, cfg.control_hz, cfg.safety.on_violation
    ('sim-bimanual', 10.0, 'clip')
    >>> cfg.period_s
    0.1
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal

from sarm2_gym.data.episode import CAMERA_NAMES

__all__ = [
    "ARM_DIM",
    "STATE_DIM",
    "ArmLimits",
    "RobotConfig",
    "SafetyConfig",
    "default_robot_config",
    "load_robot_config",
]

ARM_DIM: Final[int] = 7
"""Per-arm layout of states, targets and actions: x, y, z, roll, pitch, yaw, gripper."""
STATE_DIM: Final[int] = 2 * ARM_DIM
"""Left arm first, then right arm."""

Vec3 = tuple[float, float, float]
_PI: Final[float] = math.pi


def _vec3(name: str, value: Any) -> Vec3:
    """Coerce a length-3 sequence of finite numbers, naming the field on failure."""
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a list of 3 numbers, got {value!r}") from None
    if len(out) != 3 or not all(math.isfinite(v) for v in out):
        raise ValueError(f"{name} must be 3 finite numbers, got {value!r}")
    return out


def _positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ArmLimits:
    """Workspace box and orientation limits of one end effector.

    Args:
        workspace_low: Lowest allowed (x, y, z) in metres, robot base frame.
        workspace_high: Highest allowed (x, y, z) in metres.
        orientation_low: Lowest allowed (roll, pitch, yaw) in radians, within [-pi, pi].
        orientation_high: Highest allowed (roll, pitch, yaw) in radians, within [-pi, pi].
    """

    workspace_low: Vec3
    workspace_high: Vec3
    orientation_low: Vec3 = (-_PI, -_PI, -_PI)
    orientation_high: Vec3 = (_PI, _PI, _PI)

    def __post_init__(self) -> None:
        # Frozen dataclass: coerce lists from config files into tuples through object.__setattr__.
        for f in fields(self):
            object.__setattr__(self, f.name, _vec3(f.name, getattr(self, f.name)))
        for lo, hi, what in (
            (self.workspace_low, self.workspace_high, "workspace"),
            (self.orientation_low, self.orientation_high, "orientation"),
        ):
            if any(a > b for a, b in zip(lo, hi, strict=True)):
                raise ValueError(f"{what}_low {lo} must be <= {what}_high {hi} on every axis")
        bounds = (*self.orientation_low, *self.orientation_high)
        if any(abs(v) > _PI + 1e-9 for v in bounds):
            raise ValueError(f"orientation limits must lie within [-pi, pi], got {bounds}")


@dataclass(frozen=True, slots=True, kw_only=True)
class SafetyConfig:
    """Limits the safety layer enforces between the policy and the robot.

    Args:
        left: Limits of the left end effector.
        right: Limits of the right end effector.
        max_step_translation: Largest distance (m) between a target position and the last
            measured position of the same arm.
        max_step_rotation: Largest rotation (rad, norm of the wrapped roll/pitch/yaw difference)
            between a target orientation and the last measured one.
        max_linear_velocity: Largest speed (m/s) between two consecutive targets, over the time
            that actually passed between them.
        max_angular_velocity: Largest angular speed (rad/s) between consecutive targets.
        gripper_min: Lowest gripper command (0 = open).
        gripper_max: Highest gripper command (1 = closed).
        watchdog_timeout_s: The robot is stopped when no command arrives for this long.
        on_violation: ``"clip"`` moves the target to the nearest allowed one and counts the
            violation; ``"refuse"`` raises :class:`~sarm2_gym.real.errors.UnsafeCommandError` and
            sends nothing. NaN/inf targets are refused in both modes.
        tolerance: Violations smaller than this are not counted (float round-off).
    """

    left: ArmLimits
    right: ArmLimits
    max_step_translation: float = 0.06
    max_step_rotation: float = 0.3
    max_linear_velocity: float = 0.6
    max_angular_velocity: float = 3.0
    gripper_min: float = 0.0
    gripper_max: float = 1.0
    watchdog_timeout_s: float = 0.5
    on_violation: Literal["clip", "refuse"] = "clip"
    tolerance: float = 1e-6

    def __post_init__(self) -> None:
        for name in (
            "max_step_translation",
            "max_step_rotation",
            "max_linear_velocity",
            "max_angular_velocity",
            "watchdog_timeout_s",
        ):
            _positive(name, float(getattr(self, name)))
        if not 0.0 <= self.gripper_min <= self.gripper_max <= 1.0:
            raise ValueError(
                f"need 0 <= gripper_min <= gripper_max <= 1, got {self.gripper_min}, "
                f"{self.gripper_max}"
            )
        if self.on_violation not in ("clip", "refuse"):
            raise ValueError(f"on_violation must be 'clip' or 'refuse', got {self.on_violation!r}")
        if not (math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise ValueError(f"tolerance must be a finite number >= 0, got {self.tolerance!r}")

    @property
    def arms(self) -> tuple[ArmLimits, ArmLimits]:
        """``(left, right)``, in state order."""
        return (self.left, self.right)


@dataclass(frozen=True, slots=True, kw_only=True)
class RobotConfig:
    """Everything the real-robot layer needs to know about one robot.

    Args:
        name: Robot name, reported by the server.
        safety: The safety limits.
        control_hz: Control rate of :class:`~sarm2_gym.real.env.RealRobotEnv`.
        max_translation_per_step: Metres per step that an action component of 1 means.
        max_rotation_per_step: Radians per step that an action component of 1 means.
        cameras: Camera names, in observation order.
        image_size: Side of the square images handed to the policy.
    """

    name: str
    safety: SafetyConfig
    control_hz: float = 10.0
    max_translation_per_step: float = 0.03
    max_rotation_per_step: float = 0.15
    cameras: tuple[str, ...] = field(default=CAMERA_NAMES)
    image_size: int = 96

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("name must be a non-empty string")
        for name in ("control_hz", "max_translation_per_step", "max_rotation_per_step"):
            _positive(name, float(getattr(self, name)))
        object.__setattr__(self, "cameras", tuple(self.cameras))
        if not self.cameras or len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"cameras must be distinct names, got {self.cameras}")
        if not (isinstance(self.image_size, int) and self.image_size > 0):
            raise ValueError(f"image_size must be a positive int, got {self.image_size!r}")
        # A watchdog shorter than one control period would stop a healthy loop.
        if self.safety.watchdog_timeout_s <= self.period_s:
            raise ValueError(
                f"safety.watchdog_timeout_s ({self.safety.watchdog_timeout_s}) must exceed the "
                f"control period ({self.period_s:.4f} s)"
            )

    @property
    def period_s(self) -> float:
        """Control period in seconds."""
        return 1.0 / self.control_hz

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict that :meth:`from_dict` reads back."""
        out = asdict(self)
        out["cameras"] = list(self.cameras)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RobotConfig:
        """Build and validate a config from a parsed TOML/JSON document.

        Raises:
            ValueError: On unknown or missing keys, or on invalid values.
        """
        data = dict(data)
        _check_keys("robot config", data, cls)
        safety = dict(data.pop("safety", None) or {})
        _check_keys("[safety]", safety, SafetyConfig)
        arms = {}
        for side in ("left", "right"):
            arm = safety.pop(side, None)
            if not isinstance(arm, dict):
                raise ValueError(f"[safety.{side}] table is missing")
            _check_keys(f"[safety.{side}]", arm, ArmLimits)
            arms[side] = ArmLimits(**arm)
        try:
            limits = SafetyConfig(left=arms["left"], right=arms["right"], **safety)
            return cls(safety=limits, **data)
        except TypeError as exc:  # a missing required key
            raise ValueError(f"invalid robot config: {exc}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> RobotConfig:
        """Load a ``.toml`` or ``.json`` robot config file."""
        return load_robot_config(path)


def _check_keys(where: str, data: dict[str, Any], klass: type) -> None:
    allowed = {f.name for f in fields(klass)}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"unknown keys in {where}: {unknown}; allowed: {sorted(allowed)}")


def load_robot_config(path: str | Path) -> RobotConfig:
    """Load a robot config from a TOML or JSON file.

    Args:
        path: A ``.toml`` or ``.json`` file laid out like the shipped ``sim_bimanual.toml``.

    Raises:
        ValueError: If the suffix is unknown or the content is invalid.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".toml":
        data = tomllib.loads(text)
    elif path.suffix == ".json":
        data = json.loads(text)
    else:
        raise ValueError(f"robot config must be .toml or .json, got {path.name!r}")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: top level must be a table/object")
    try:
        return RobotConfig.from_dict(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def default_robot_config() -> RobotConfig:
    """Return the shipped config of the simulated bimanual robot (``configs/sim_bimanual.toml``)."""
    text = resources.files("sarm2_gym.real").joinpath("configs/sim_bimanual.toml").read_text()
    return RobotConfig.from_dict(tomllib.loads(text))
